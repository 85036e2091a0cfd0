package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// clockSkew backdates every certificate, so that an API server whose clock
// runs a little behind still accepts a fresh one.
const clockSkew = 5 * time.Minute

// servingCert is the webhook server's key pair and the CA bundle the API
// server verifies it with, all PEM-encoded.
type servingCert struct {
	CertPEM []byte
	KeyPEM  []byte
	// CAPEM holds the CA that signed CertPEM first, then earlier CAs that
	// are still valid, so that replicas still serving an earlier
	// certificate stay trusted while they catch up.
	CAPEM []byte
}

// issueServingCert makes a new CA, signs a serving certificate for hosts
// with it and discards the CA's key: nothing can sign with it again, and a
// renewal makes a new CA. Both are valid for lifetime from now. The CAs in
// previous that are still valid at now follow the new CA in the bundle.
func issueServingCert(hosts []string, lifetime time.Duration, now time.Time,
	previous []byte) (servingCert, error) {
	if len(hosts) == 0 {
		return servingCert{}, errors.New("failed to issue serving certificate: no host names")
	}
	notBefore, notAfter := now.Add(-clockSkew), now.Add(lifetime)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return servingCert{}, fmt.Errorf("failed to generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "iomt-operator webhook CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if caTmpl.SerialNumber, err = serialNumber(); err != nil {
		return servingCert{}, err
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return servingCert{}, fmt.Errorf("failed to create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return servingCert{}, fmt.Errorf("failed to parse CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return servingCert{}, fmt.Errorf("failed to generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.SerialNumber, err = serialNumber(); err != nil {
		return servingCert{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return servingCert{}, fmt.Errorf("failed to create serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return servingCert{}, fmt.Errorf("failed to encode serving key: %w", err)
	}

	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	seen := map[string]bool{string(caDER): true}
	for _, c := range parseCertificates(previous) {
		if now.Before(c.NotAfter) && c.IsCA && !seen[string(c.Raw)] {
			seen[string(c.Raw)] = true
			bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
	}
	return servingCert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		CAPEM:   bundle,
	}, nil
}

// renewalReason says why sc must be replaced at now to serve hosts, or
// returns "" when it is good: the pair loads, the bundle verifies it for
// every host, and less than two thirds of its lifetime have passed.
func renewalReason(sc servingCert, hosts []string, now time.Time) string {
	pair, err := tls.X509KeyPair(sc.CertPEM, sc.KeyPEM)
	if err != nil {
		return "the key pair does not load"
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return "the certificate does not parse"
		}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(sc.CAPEM) {
		return "the CA bundle is empty"
	}
	for _, h := range hosts {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName: h, Roots: roots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Sprintf("the certificate is not valid for %s: %v", h, err)
		}
	}
	if !now.Before(renewAt(leaf)) {
		return "two thirds of its lifetime have passed"
	}
	return ""
}

// renewAt is when a certificate is due for renewal: after two thirds of its
// lifetime.
func renewAt(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(life * 2 / 3)
}

// parseCertificates returns the certificates in a PEM bundle, skipping
// anything that does not parse.
func parseCertificates(bundle []byte) []*x509.Certificate {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return certs
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("failed to generate serial number: %w", err)
	}
	return n, nil
}
