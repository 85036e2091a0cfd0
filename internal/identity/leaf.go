package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"
)

const (
	// DefaultTrustDomain is the SPIFFE trust domain unless configured.
	DefaultTrustDomain = "iomt.local"
	// DefaultLifetime is how long a device certificate is valid unless the
	// operator or the device says otherwise.
	DefaultLifetime = 24 * time.Hour
)

// Keys of a device identity Secret (a kubernetes.io/tls Secret) and of a
// trust bundle ConfigMap.
const (
	CertKey   = "tls.crt"
	KeyKey    = "tls.key"
	BundleKey = "ca.crt"
)

// LeafRequest is what a device's certificate must say.
type LeafRequest struct {
	// TrustDomain is the SPIFFE trust domain.
	TrustDomain string
	// Namespace and Name are the MedicalDevice's.
	Namespace, Name string
	// DNSNames are extra DNS SANs.
	DNSNames []string
	// Lifetime is how long the certificate is valid.
	Lifetime time.Duration
}

// SPIFFEID is spiffe://<trust domain>/ns/<namespace>/device/<name>.
func (r LeafRequest) SPIFFEID() string {
	u := url.URL{Scheme: "spiffe", Host: r.TrustDomain, Path: "/ns/" + r.Namespace + "/device/" + r.Name}
	return u.String()
}

// Leaf is a device certificate and, when the operator holds it, its key.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Issue signs a new key pair for the request. The certificate is valid
// from now for the request's lifetime, cut short where the CA itself
// expires sooner.
func (ca *CA) Issue(req LeafRequest, now time.Time) (*Leaf, error) {
	if req.Lifetime <= 0 {
		return nil, fmt.Errorf("certificate lifetime must be positive, not %s", req.Lifetime)
	}
	uri, err := url.Parse(req.SPIFFEID())
	if err != nil {
		return nil, fmt.Errorf("failed to build SPIFFE ID: %w", err)
	}
	notBefore := now.UTC().Truncate(time.Second)
	notAfter := notBefore.Add(req.Lifetime)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("the CA expired at %s", ca.Cert.NotAfter.Format(time.RFC3339))
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Name, OrganizationalUnit: []string{req.Namespace}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		URIs:                  []*url.URL{uri},
		DNSNames:              normalNames(req.DNSNames),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("failed to sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse new certificate: %w", err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: cert, CertPEM: certPEM(cert), KeyPEM: kp}, nil
}

// ParseLeaf reads a device certificate (the first one of certPEM) and, when
// keyPEM is not nil, checks that the key belongs to it.
func ParseLeaf(certPEM, keyPEM []byte) (*Leaf, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	leaf := &Leaf{Cert: certs[0], CertPEM: certPEM, KeyPEM: keyPEM}
	if keyPEM == nil {
		return leaf, nil
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(leaf.Cert.PublicKey) {
		return nil, errors.New("the private key does not match the certificate")
	}
	return leaf, nil
}

// SPIFFEIDOf returns a certificate's SPIFFE ID, or "" unless it carries
// exactly one URI SAN and that URI is a spiffe:// one.
func SPIFFEIDOf(cert *x509.Certificate) string {
	if len(cert.URIs) != 1 || cert.URIs[0].Scheme != "spiffe" {
		return ""
	}
	return cert.URIs[0].String()
}

// Action is what a device's certificate needs.
type Action string

// The actions, in the words the controllers count them with.
const (
	// ActionNone: the certificate is fine.
	ActionNone Action = ""
	// ActionIssue: there is no usable certificate for the current spec.
	ActionIssue Action = "issue"
	// ActionRenew: the certificate is due for renewal.
	ActionRenew Action = "renew"
	// ActionRotate: the certificate was signed by a CA that no longer signs.
	ActionRotate Action = "rotate"
)

// Decision is an Action and why it is needed.
type Decision struct {
	Action Action
	Why    string
}

// Check decides whether the certificate held in a Secret's data (nil when
// there is no Secret) must be issued anew for req, signed by signer, at now.
func Check(data map[string][]byte, req LeafRequest, signer *CA, now time.Time) Decision {
	if len(data[CertKey]) == 0 || len(data[KeyKey]) == 0 {
		return Decision{ActionIssue, "no certificate yet"}
	}
	leaf, err := ParseLeaf(data[CertKey], data[KeyKey])
	if err != nil {
		return Decision{ActionIssue, "the stored certificate cannot be used: " + err.Error()}
	}
	cert := leaf.Cert
	if got, want := SPIFFEIDOf(cert), req.SPIFFEID(); got != want {
		return Decision{ActionIssue, fmt.Sprintf("the certificate says %q, not %q", got, want)}
	}
	if !slices.Equal(normalNames(cert.DNSNames), normalNames(req.DNSNames)) {
		return Decision{ActionIssue, "the DNS names changed"}
	}
	if cert.CheckSignatureFrom(signer.Cert) != nil {
		return Decision{ActionRotate, "the certificate was signed by a CA that no longer signs"}
	}
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	cutByCA := cert.NotAfter.Equal(signer.Cert.NotAfter) && lifetime < req.Lifetime
	if lifetime != req.Lifetime && !cutByCA {
		return Decision{ActionIssue, fmt.Sprintf("the lifetime changed from %s to %s", lifetime, req.Lifetime)}
	}
	if !now.Before(RenewAt(cert)) {
		return Decision{ActionRenew, "the certificate is due for renewal"}
	}
	return Decision{}
}

// normalNames sorts and deduplicates DNS names; nil when there are none.
func normalNames(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}
