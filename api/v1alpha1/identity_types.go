package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names of what carries a device's identity.
const (
	// IdentitySecretSuffix ends the name of a device's identity Secret:
	// <device name>-identity, holding tls.crt, tls.key and ca.crt.
	IdentitySecretSuffix = "-identity"
	// TrustBundleName is the ConfigMap in each namespace with devices that
	// holds every CA currently trusted, under the key ca.crt.
	TrustBundleName = "iomt-trust-bundle"
	// IdentityMountPath is where device pods find their identity.
	IdentityMountPath = "/var/run/iomt/identity"
)

// IdentitySecretName returns the name of a device's identity Secret.
func IdentitySecretName(device string) string { return device + IdentitySecretSuffix }

// The operator's certificate authority.
const (
	// CASecretName is the Secret in the operator's namespace that holds the
	// operator's CA: the key pair that signs now under tls.crt and tls.key,
	// and every CA currently trusted under ca.crt.
	CASecretName = "iomt-ca"
	// RotateCAAnnotation on the CA Secret asks for a CA rotation: set it to
	// any value it has not had before (a date, a ticket number). The
	// operator adds the new CA to every trust bundle, then signs with it
	// and re-issues every certificate, then drops the old CA once no
	// certificate it signed is still valid.
	RotateCAAnnotation = "iomt.medinaii.io/rotate-ca"
)

// Choosing who signs device certificates, per namespace.
const (
	// IssuerLabel on a Namespace chooses who signs its devices'
	// certificates: "operator" (the operator's own CA) or "cert-manager".
	// When left out, or set to anything else, the operator's default is
	// used (its own CA unless started with cert-manager as the default).
	IssuerLabel = "iomt.medinaii.io/issuer"
	// IssuerOperator is IssuerLabel's value for the operator's own CA.
	IssuerOperator = "operator"
	// IssuerCertManager is IssuerLabel's value for cert-manager.
	IssuerCertManager = "cert-manager"
	// IssuerNameAnnotation on a Namespace names the cert-manager Issuer or
	// ClusterIssuer that signs its devices' certificates, overriding the
	// operator's default issuer.
	IssuerNameAnnotation = "iomt.medinaii.io/issuer-name"
	// IssuerKindAnnotation on a Namespace is Issuer or ClusterIssuer. When
	// left out, the operator's default kind is used.
	IssuerKindAnnotation = "iomt.medinaii.io/issuer-kind"
	// IssuerGroupAnnotation on a Namespace is the API group of an external
	// cert-manager issuer. When left out, cert-manager.io.
	IssuerGroupAnnotation = "iomt.medinaii.io/issuer-group"
)

// IdentityIssued reasons. Events use the same words.
const (
	// ReasonIssued: the device holds a valid certificate, issued for its
	// current spec.
	ReasonIssued = "Issued"
	// ReasonRenewed: the certificate was replaced before it expired.
	ReasonRenewed = "Renewed"
	// ReasonRotated: the certificate was re-issued by a new CA during a CA
	// rotation.
	ReasonRotated = "Rotated"
	// ReasonIssueFailed: signing or storing the certificate failed.
	ReasonIssueFailed = "IssueFailed"
	// ReasonSecretConflict: a Secret with the identity Secret's name exists
	// and belongs to someone else; the operator leaves it alone.
	ReasonSecretConflict = "SecretConflict"
	// ReasonCertificatePending: cert-manager has not yet written a valid
	// certificate for the device.
	ReasonCertificatePending = "CertificatePending"
	// ReasonCertManagerMissing: the namespace asks for cert-manager, but
	// cert-manager's Certificate kind was not installed when the operator
	// started.
	ReasonCertManagerMissing = "CertManagerMissing"
)

// DeviceIdentity asks for details of the device's certificate.
type DeviceIdentity struct {
	// dnsNames are extra DNS names for the certificate, besides its SPIFFE
	// ID, for devices that serve TLS by name. At most 8; no wildcards, and
	// no name of the operator's own (beginning with iomt-operator), which
	// a device must not be able to claim.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:items:XValidation:rule="!self.startsWith('iomt-operator')",message="a device certificate must not name the operator's own services"
	DNSNames []string `json:"dnsNames,omitempty"`

	// lifetime is how long each certificate is valid, from 1h to 8760h
	// (one year), for example "24h". The certificate is renewed after two
	// thirds of it. When left out, the operator's default (24h unless set
	// by flag) is used and shown in status.identity.lifetime.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h') && duration(self) <= duration('8760h')",message="lifetime must be a duration from 1h to 8760h, for example 24h"
	Lifetime *metav1.Duration `json:"lifetime,omitempty"`
}

// IdentityStatus describes the certificate the device holds now.
type IdentityStatus struct {
	// spiffeID is the certificate's URI SAN,
	// spiffe://<trust domain>/ns/<namespace>/device/<name>.
	// +optional
	SPIFFEID string `json:"spiffeID,omitempty"`

	// secretName is the Secret that holds tls.crt, tls.key and ca.crt.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// issuer says who signed the certificate: the operator's CA (with the
	// CA's SHA-256 fingerprint) or a cert-manager issuer.
	// +optional
	Issuer string `json:"issuer,omitempty"`

	// serialNumber is the certificate's serial number in hex.
	// +optional
	SerialNumber string `json:"serialNumber,omitempty"`

	// lifetime is the lifetime in effect, spec.identity.lifetime or the
	// operator's default.
	// +optional
	Lifetime *metav1.Duration `json:"lifetime,omitempty"`

	// notBefore and notAfter bound the certificate's validity.
	// +optional
	NotBefore *metav1.Time `json:"notBefore,omitempty"`
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`

	// renewAfter is when the operator replaces the certificate.
	// +optional
	RenewAfter *metav1.Time `json:"renewAfter,omitempty"`
}
