package identity

import (
	"bytes"
	"crypto/x509"
	"slices"
)

// Bundle is the PEM of the given certificates, each once, oldest first
// (then by fingerprint), so the same set always gives the same bytes.
func Bundle(certs ...*x509.Certificate) []byte {
	seen := map[string]bool{}
	var uniq []*x509.Certificate
	for _, c := range certs {
		if c == nil || seen[Fingerprint(c)] {
			continue
		}
		seen[Fingerprint(c)] = true
		uniq = append(uniq, c)
	}
	slices.SortFunc(uniq, func(a, b *x509.Certificate) int {
		if c := a.NotBefore.Compare(b.NotBefore); c != 0 {
			return c
		}
		return bytes.Compare([]byte(Fingerprint(a)), []byte(Fingerprint(b)))
	})
	var buf bytes.Buffer
	for _, c := range uniq {
		buf.Write(certPEM(c))
	}
	return buf.Bytes()
}

// BundleHolds reports whether a PEM bundle holds every one of certs.
func BundleHolds(bundle []byte, certs ...*x509.Certificate) bool {
	have, err := ParseCertificates(bundle)
	if err != nil {
		return false
	}
	held := map[string]bool{}
	for _, c := range have {
		held[Fingerprint(c)] = true
	}
	for _, c := range certs {
		if !held[Fingerprint(c)] {
			return false
		}
	}
	return true
}
