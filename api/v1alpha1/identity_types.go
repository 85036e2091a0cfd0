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

// DeviceIdentity asks for details of the device's certificate.
type DeviceIdentity struct {
	// dnsNames are extra DNS names for the certificate, besides its SPIFFE
	// ID, for devices that serve TLS by name. At most 8.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
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
