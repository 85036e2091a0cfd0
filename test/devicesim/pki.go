package devicesim

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/medinaii/iomt-operator/internal/identity"
)

// Files of an identity directory, as the pod admission webhook projects
// them into a device pod.
const (
	CertFile   = "tls.crt"
	KeyFile    = "tls.key"
	CAFile     = "ca.crt"
	BundleFile = "bundle.crt"
)

// PKI is a device CA for tests: it issues device certificates with SPIFFE
// IDs the way the operator does.
type PKI struct {
	TrustDomain string
	CA          *identity.CA
}

// NewPKI makes a CA valid from an hour ago for a day.
func NewPKI(trustDomain string) (*PKI, error) {
	ca, err := identity.NewCA(time.Now().Add(-time.Hour), 25*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("failed to make a test CA: %w", err)
	}
	return &PKI{TrustDomain: trustDomain, CA: ca}, nil
}

// Pool is a pool holding the CA.
func (p *PKI) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.CA.Cert)
	return pool
}

// SPIFFEID is the SPIFFE ID of a device.
func (p *PKI) SPIFFEID(namespace, name string) string {
	req := identity.LeafRequest{TrustDomain: p.TrustDomain, Namespace: namespace, Name: name}
	return req.SPIFFEID()
}

// Issue signs a device certificate valid from notBefore for lifetime, with
// extra DNS names.
func (p *PKI) Issue(namespace, name string, notBefore time.Time, lifetime time.Duration,
	dnsNames ...string) (*identity.Leaf, error) {
	leaf, err := p.CA.Issue(identity.LeafRequest{
		TrustDomain: p.TrustDomain, Namespace: namespace, Name: name,
		DNSNames: dnsNames, Lifetime: lifetime,
	}, notBefore)
	if err != nil {
		return nil, fmt.Errorf("failed to issue a certificate for %s/%s: %w", namespace, name, err)
	}
	return leaf, nil
}

// KeyPair is a leaf as a TLS certificate.
func KeyPair(leaf *identity.Leaf) (tls.Certificate, error) {
	kp, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to load key pair: %w", err)
	}
	return kp, nil
}

// IdentityFiles are the files of an identity directory for leaf: its key
// pair, and the CA both as the issuing CA and as the trust bundle.
func (p *PKI) IdentityFiles(leaf *identity.Leaf) map[string][]byte {
	return map[string][]byte{
		CertFile:   leaf.CertPEM,
		KeyFile:    leaf.KeyPEM,
		CAFile:     p.CA.CertPEM(),
		BundleFile: p.CA.CertPEM(),
	}
}

// WriteAtomically writes files into dir the way the kubelet updates a
// projected volume: into a fresh hidden directory, then one rename of the
// ..data symlink, so a reader sees all old files or all new ones. Each
// file name in dir is a symlink through ..data.
func WriteAtomically(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	stamp := "..data-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := os.Mkdir(filepath.Join(dir, stamp), 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", stamp, err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, stamp, name), data, 0o600); err != nil {
			return fmt.Errorf("failed to write %s: %w", name, err)
		}
	}

	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(stamp, tmp); err != nil {
		return fmt.Errorf("failed to link the new data: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return fmt.Errorf("failed to swap in the new data: %w", err)
	}

	for name := range files {
		link := filepath.Join(dir, name)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join("..data", name) {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return fmt.Errorf("failed to link %s: %w", name, err)
		}
	}
	if old != "" && old != stamp {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			return fmt.Errorf("failed to remove the old data: %w", err)
		}
	}
	return nil
}

// LoadIdentityDir reads a key pair and the CAs to trust from an identity
// directory: bundle.crt, or ca.crt when there is no bundle.
func LoadIdentityDir(dir string) (tls.Certificate, *x509.CertPool, error) {
	kp, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("failed to load the key pair from %s: %w", dir, err)
	}
	var pem []byte
	for _, name := range []string{BundleFile, CAFile} {
		if pem, err = os.ReadFile(filepath.Join(dir, name)); err == nil && len(pem) > 0 {
			break
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("failed to load CAs from %s: neither %s nor %s "+
			"holds a certificate", dir, BundleFile, CAFile)
	}
	return kp, pool, nil
}
