// Command manager runs the iomt-operator: it turns MedicalDevices and
// SegmentPolicies into enforced NetworkPolicies.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/internal/identity"
	"github.com/medinaii/iomt-operator/internal/segment"
	iomtwebhook "github.com/medinaii/iomt-operator/internal/webhook"
)

// The range of --identity-lifetime: the range the MedicalDevice CRD's CEL
// rule allows for spec.identity.lifetime (api/v1alpha1/identity_types.go),
// so that the default is a lifetime a device could also ask for.
const (
	minIdentityLifetime = time.Hour
	maxIdentityLifetime = 8760 * time.Hour
)

// config is what the command line sets.
type config struct {
	metricsAddr   string
	secureMetrics bool
	probeAddr     string
	leaderElect   bool
	namespace     string
	dnsNamespace  string
	dnsPodLabels  string
	webhooks      bool
	policyEngine  string
	// deviceNamespaces is --device-namespaces as given.
	deviceNamespaces string
	webhook          iomtwebhook.Options
	identity         controllers.IdentityOptions
	attestation      controllers.AttestationOptions
	attestHosts      string
}

func main() {
	var c config
	flag.StringVar(&c.metricsAddr, "metrics-bind-address", ":8443",
		"Address the metrics endpoint listens on; 0 turns it off.")
	flag.BoolVar(&c.secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS (TLS 1.2 or newer), allowing only callers Kubernetes authorizes.")
	flag.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081", "Address of the health probes.")
	flag.BoolVar(&c.leaderElect, "leader-elect", false,
		"Elect a leader, so that only one of several replicas writes.")
	flag.StringVar(&c.namespace, "namespace", envOr("POD_NAMESPACE", controllers.DefaultNamespace),
		"The operator's own namespace, where it reads advisory ConfigMaps.")
	flag.StringVar(&c.dnsNamespace, "dns-namespace", "kube-system", "Namespace of the cluster DNS pods.")
	flag.StringVar(&c.dnsPodLabels, "dns-pod-labels", "k8s-app=kube-dns",
		"Labels of the cluster DNS pods, as k=v[,k=v].")
	flag.StringVar(&c.policyEngine, "policy-engine", string(controllers.EngineAuto),
		"What enforces segments: auto (Cilium while its CiliumNetworkPolicy CRD is served, "+
			"NetworkPolicy otherwise), kubernetes, cilium, or both.")
	flag.BoolVar(&c.webhooks, "enable-webhooks", true,
		"Serve the pod admission webhooks (identity injection and workload binding). Turn off "+
			"only when the API server cannot reach the operator, as when running it outside the cluster.")
	c.webhook.BindFlags(flag.CommandLine)
	flag.StringVar(&c.identity.TrustDomain, "trust-domain", "iomt.local",
		"SPIFFE trust domain of device identities.")
	flag.StringVar(&c.deviceNamespaces, "device-namespaces", "*",
		"Namespaces where device identities are issued, comma-separated, and the only ones "+
			"besides --namespace whose Secrets the operator reads or writes: * for every namespace, "+
			"an empty value for none. A device elsewhere gets IdentityIssued=False, reason "+
			"NamespaceNotEnrolled, and is segmented as usual.")
	flag.DurationVar(&c.identity.DefaultLifetime, "identity-lifetime", 24*time.Hour,
		"Lifetime of device certificates whose MedicalDevice does not set spec.identity.lifetime, "+
			"from 1h to 8760h.")
	flag.DurationVar(&c.identity.CALifetime, "ca-lifetime", 365*24*time.Hour,
		"Lifetime of each device CA the operator makes; it is rotated two thirds through, so it "+
			"must be at least 3 × (--identity-lifetime + --ca-propagation-delay).")
	flag.DurationVar(&c.identity.PropagationDelay, "ca-propagation-delay", 2*time.Minute,
		"How long a CA rotation waits, once every trust bundle holds the new CA, before signing with it.")
	flag.BoolVar(&c.identity.CertManager.Default, "cert-manager-default", false,
		"Have cert-manager sign device certificates in namespaces that do not choose.")
	flag.StringVar(&c.identity.CertManager.IssuerName, "cert-manager-issuer-name", "",
		"The cert-manager issuer that signs device certificates.")
	flag.StringVar(&c.identity.CertManager.IssuerKind, "cert-manager-issuer-kind", "ClusterIssuer",
		"Issuer or ClusterIssuer.")
	flag.StringVar(&c.attestation.Addr, "attestation-bind-address", ":8444",
		"Address of the attestation endpoint verifier sidecars report to; 0 turns it off.")
	flag.StringVar(&c.attestHosts, "attestation-hosts", "",
		"DNS names verifiers use to reach the attestation endpoint, comma-separated; default "+
			"iomt-operator-attestation.<namespace>.svc and its .cluster.local form.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(c); err != nil {
		ctrl.Log.WithName("setup").Error(err, "Operator stopped")
		os.Exit(1)
	}
}

func run(c config) error {
	err := checkLifetimes(c.identity.DefaultLifetime, c.identity.CALifetime, c.identity.PropagationDelay)
	if err != nil {
		return err
	}
	dnsLabels, err := labels.ConvertSelectorToLabelsMap(strings.TrimSpace(c.dnsPodLabels))
	if err != nil {
		return fmt.Errorf("failed to parse --dns-pod-labels: %w", err)
	}
	segCfg := segment.DefaultConfig()
	segCfg.DNSNamespace, segCfg.DNSPodLabels = c.dnsNamespace, dnsLabels
	segCfg.AttestationNamespace = c.namespace
	c.identity.OperatorNamespace = c.namespace
	c.identity.DeviceNamespaces, err = parseDeviceNamespaces(c.deviceNamespaces)
	if err != nil {
		return err
	}
	engine, err := controllers.ParseEngineMode(c.policyEngine)
	if err != nil {
		return fmt.Errorf("failed to parse --policy-engine: %w", err)
	}
	opts := controllers.Options{Segment: segCfg, Namespace: c.namespace, Identity: &c.identity,
		PolicyEngine: engine}
	opts.Segment.AttestationPort = 0
	if c.attestation.Addr != "0" {
		_, port, err := net.SplitHostPort(c.attestation.Addr)
		if err != nil {
			return fmt.Errorf("failed to parse --attestation-bind-address: %w", err)
		}
		p, err := strconv.ParseInt(port, 10, 32)
		if err != nil {
			return fmt.Errorf("failed to parse --attestation-bind-address port: %w", err)
		}
		opts.Segment.AttestationPort = int32(p)
		c.attestation.Hosts = attestationHosts(c.attestHosts, c.namespace)
		opts.Attestation = &c.attestation
	}

	metricsOpts := metricsserver.Options{
		BindAddress:   c.metricsAddr,
		SecureServing: c.secureMetrics,
		TLSOpts:       []func(*tls.Config){func(t *tls.Config) { t.MinVersion = tls.VersionTLS12 }},
	}
	if c.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	c.webhook = webhookOptions(c)
	mgrOpts := ctrl.Options{
		Scheme:                  controllers.NewScheme(),
		Cache:                   controllers.CacheOptions(opts),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  c.probeAddr,
		LeaderElection:          c.leaderElect,
		LeaderElectionID:        "iomt-operator.iomt.medinaii.io",
		LeaderElectionNamespace: c.namespace,
		// Safe only because the process exits as soon as mgr.Start returns.
		LeaderElectionReleaseOnCancel: true,
	}
	if c.webhooks {
		mgrOpts.WebhookServer = iomtwebhook.NewServer(c.webhook)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), mgrOpts)
	if err != nil {
		return fmt.Errorf("failed to create manager: %w", err)
	}

	ctx := ctrl.SetupSignalHandler()
	if err := controllers.Setup(ctx, mgr, opts); err != nil {
		return fmt.Errorf("failed to set up controllers: %w", err)
	}
	if opts.Attestation != nil {
		if err := followLeader(ctx, mgr, c.namespace); err != nil {
			return err
		}
	}
	if c.webhooks {
		if err := iomtwebhook.SetupWebhooks(mgr, c.webhook); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add ready check: %w", err)
	}
	return mgr.Start(ctx)
}

// checkLifetimes checks --identity-lifetime, --ca-lifetime and
// --ca-propagation-delay. A CA is rotated two thirds through its life and
// keeps signing for one propagation delay after that, and a certificate it
// signs then must expire before the CA does; otherwise the CA runs out in
// the middle of its own rotation. So the CA must live at least three times
// the identity lifetime plus the delay.
func checkLifetimes(identityLifetime, caLifetime, propagationDelay time.Duration) error {
	if identityLifetime < minIdentityLifetime || identityLifetime > maxIdentityLifetime {
		return fmt.Errorf("--identity-lifetime=%s is out of range: it must be from %s to %s, "+
			"like a MedicalDevice's spec.identity.lifetime", identityLifetime, minIdentityLifetime,
			maxIdentityLifetime)
	}
	if propagationDelay < 0 {
		return fmt.Errorf("--ca-propagation-delay=%s must not be negative", propagationDelay)
	}

	// Compared as a third of the CA lifetime, which cannot overflow.
	if propagationDelay > caLifetime/3-identityLifetime {
		return fmt.Errorf("--ca-lifetime=%s is too short: it must be at least 3 × (--identity-lifetime + "+
			"--ca-propagation-delay) = 3 × (%s + %s) = %s, because a CA is rotated two thirds through "+
			"its life and the certificates it signs last must expire before it does",
			caLifetime, identityLifetime, propagationDelay, 3*(identityLifetime+propagationDelay))
	}
	return nil
}

// webhookOptions completes the webhook flags with what other flags set:
// the operator's namespace, the device namespaces and the trust domain the
// injected verifiers expect.
func webhookOptions(c config) iomtwebhook.Options {
	o := c.webhook
	o.OperatorNamespace = c.namespace
	o.DeviceNamespaces = c.identity.DeviceNamespaces
	o.TrustDomain = c.identity.TrustDomain
	return o
}

// parseDeviceNamespaces reads --device-namespaces: "*" is every namespace
// (nil), an empty value none (an empty list), anything else a
// comma-separated list of namespace names.
func parseDeviceNamespaces(value string) (identity.Namespaces, error) {
	ns, err := identity.ParseNamespaces(value)
	if err != nil {
		return nil, fmt.Errorf("failed to parse --device-namespaces: %w", err)
	}
	return ns, nil
}

// followLeader has only the leader's pod carry the label the attestation
// Service selects, since only the leader serves reports. A restarted
// container drops the label before it can become ready. Outside a cluster,
// with no POD_NAME, it does nothing.
func followLeader(ctx context.Context, mgr ctrl.Manager, namespace string) error {
	pods, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return fmt.Errorf("failed to create a client for the operator's pod: %w", err)
	}
	label := controllers.NewLeaderLabel(pods, namespace, os.Getenv("POD_NAME"))
	withdrawCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := label.Withdraw(withdrawCtx); err != nil {
		return fmt.Errorf("failed to withdraw the attestation label from this pod: %w", err)
	}
	if err := mgr.Add(label); err != nil {
		return fmt.Errorf("failed to add the attestation label: %w", err)
	}
	return nil
}

// attestationHosts are the names in the attestation endpoint's certificate.
func attestationHosts(flagValue, namespace string) []string {
	if flagValue != "" {
		return strings.Split(flagValue, ",")
	}
	svc := "iomt-operator-attestation." + namespace + ".svc"
	return []string{svc, svc + ".cluster.local"}
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
