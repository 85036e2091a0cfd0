package webhook

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"time"

	"github.com/medinaii/iomt-operator/internal/identity"
)

// Names the webhook uses in the cluster and on its server.
const (
	// DefaultOperatorNamespace is where the operator runs unless told.
	DefaultOperatorNamespace = "iomt-system"
	// DefaultServiceName is the Service in front of the webhook server.
	DefaultServiceName = "iomt-operator-webhook"
	// DefaultConfigurationName names both webhook configurations.
	DefaultConfigurationName = "iomt-operator"
	// DefaultSecretName is the Secret that holds the serving certificate.
	DefaultSecretName = "iomt-operator-webhook-tls"
	// DefaultPort is the port the webhook server listens on.
	DefaultPort = 9443

	// MutatePodPath is where the identity injector is served.
	MutatePodPath = "/iomt/mutate-pod"
	// ValidatePodPath is where the workload binding check is served.
	ValidatePodPath = "/iomt/validate-pod"

	// MutatingWebhookName names the identity injector inside its
	// configuration.
	MutatingWebhookName = "identity.pods.iomt.medinaii.io"
	// ValidatingWebhookName names the workload binding check inside its
	// configuration.
	ValidatingWebhookName = "binding.pods.iomt.medinaii.io"

	// TimeoutSeconds is how long the API server waits for an answer.
	TimeoutSeconds = 5

	// AdmissionLabel set to AdmissionDisabled on a namespace keeps both
	// webhooks away from its pods.
	AdmissionLabel    = "iomt.medinaii.io/admission"
	AdmissionDisabled = "disabled"

	defaultCertLifetime      = 90 * 24 * time.Hour
	defaultCertCheckInterval = time.Minute
)

// Options configure the admission webhooks and their serving certificate.
type Options struct {
	// OperatorNamespace is the namespace the operator runs in. Its pods are
	// never injected or checked, and the serving certificate's Secret lives
	// there. Default iomt-system.
	OperatorNamespace string

	// DeviceNamespaces are the namespaces where the operator issues device
	// identities, as in the identity controller's options: nil means every
	// namespace, an empty, non-nil list none. The injector leaves device
	// pods in any other namespace untouched, since the identity Secret it
	// would mount is never written there and the pod would never start.
	// The binding check still runs there: the device label also opens the
	// device's network flows.
	DeviceNamespaces identity.Namespaces

	// VerifierImage is the image of the verifier sidecar. Required.
	VerifierImage string

	// AttestationURL is where verifiers report; by default the
	// iomt-operator-attestation Service in OperatorNamespace on port 8444.
	AttestationURL string

	// TrustDomain is the SPIFFE trust domain verifiers expect; iomt.local
	// when empty.
	TrustDomain string

	// ServiceName is the Service in OperatorNamespace that routes to the
	// webhook server; the serving certificate is issued for its DNS names.
	// Default iomt-operator-webhook.
	ServiceName string

	// ConfigurationName names the MutatingWebhookConfiguration and the
	// ValidatingWebhookConfiguration whose caBundle is kept current.
	// Default iomt-operator.
	ConfigurationName string

	// Host and Port are where the webhook server listens. Host defaults to
	// every address, Port to 9443.
	Host string
	Port int

	// CertDir is where the webhook server reads tls.crt and tls.key, and
	// where the operator writes them when it manages certificates.
	// Default <temp dir>/iomt-operator/serving-certs.
	CertDir string

	// ManageCertificates makes the operator issue, store, rotate and
	// publish its own serving certificate. Turn it off when cert-manager
	// writes the key pair into CertDir and injects the caBundle.
	ManageCertificates bool

	// SecretName is the Secret in OperatorNamespace that holds the managed
	// serving certificate. Default iomt-operator-webhook-tls.
	SecretName string

	// CertHosts are further DNS names or IP addresses the managed serving
	// certificate is valid for, for a webhook reached by URL.
	CertHosts []string

	// CertLifetime is how long each managed serving certificate is valid;
	// it is replaced after two thirds of it. Default 90 days.
	CertLifetime time.Duration

	// CertCheckInterval is how often the managed certificate, its Secret,
	// the files and the caBundle are compared. Default one minute.
	CertCheckInterval time.Duration
}

// BindFlags registers the options as command-line flags, all but
// OperatorNamespace and DeviceNamespaces, which the operator's own
// --namespace and --device-namespaces flags set.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.VerifierImage, "verifier-image", "",
		"Image of the verifier sidecar added to device pods.")
	fs.StringVar(&o.ServiceName, "webhook-service-name", DefaultServiceName,
		"Service in the operator namespace that routes to the webhook server.")
	fs.IntVar(&o.Port, "webhook-port", DefaultPort, "Port the webhook server listens on.")
	fs.StringVar(&o.AttestationURL, "verifier-attestation-url", "",
		"Where injected verifiers report; default https://iomt-operator-attestation.<namespace>.svc:8444.")
	fs.StringVar(&o.CertDir, "webhook-cert-dir", defaultCertDir(),
		"Directory with the webhook server's tls.crt and tls.key.")
	fs.BoolVar(&o.ManageCertificates, "manage-webhook-certificates", true,
		"Issue and rotate the webhook's serving certificate and caBundle; "+
			"turn off when cert-manager provides them.")
}

// Validate reports options the webhooks cannot work with.
func (o Options) Validate() error {
	if o.VerifierImage == "" {
		return errors.New("the verifier image is required (--verifier-image)")
	}
	return nil
}

// withDefaults returns the options with every unset field defaulted.
func (o Options) withDefaults() Options {
	if o.OperatorNamespace == "" {
		o.OperatorNamespace = DefaultOperatorNamespace
	}
	if o.ServiceName == "" {
		o.ServiceName = DefaultServiceName
	}
	if o.ConfigurationName == "" {
		o.ConfigurationName = DefaultConfigurationName
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.CertDir == "" {
		o.CertDir = defaultCertDir()
	}
	if o.SecretName == "" {
		o.SecretName = DefaultSecretName
	}
	if o.CertLifetime == 0 {
		o.CertLifetime = defaultCertLifetime
	}
	if o.CertCheckInterval == 0 {
		o.CertCheckInterval = defaultCertCheckInterval
	}
	return o
}

func defaultCertDir() string {
	return filepath.Join(os.TempDir(), "iomt-operator", "serving-certs")
}

// excluded reports whether pods in namespace are out of the webhooks'
// reach whatever they carry: kube-system and the operator's own namespace.
func (o Options) excluded(namespace string) bool {
	return namespace == "kube-system" || namespace == o.OperatorNamespace
}

// issuesIdentity reports whether the operator issues device identities in
// namespace, and so whether its device pods may be given one.
func (o Options) issuesIdentity(namespace string) bool {
	return o.DeviceNamespaces.Include(namespace)
}
