package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

var (
	testHosts = []string{"iomt-operator-webhook.iomt-system.svc", "127.0.0.1"}
	epoch     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func TestIssueServingCert(t *testing.T) {
	sc, err := issueServingCert(testHosts, 90*24*time.Hour, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(sc.CertPEM, sc.KeyPEM)
	if err != nil {
		t.Fatalf("key pair does not load: %v", err)
	}
	leaf := pair.Leaf
	key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if leaf.IsCA {
		t.Errorf("serving certificate is a CA")
	}
	if got := leaf.NotAfter.Sub(epoch); got != 90*24*time.Hour {
		t.Errorf("valid for %s from now, want 90 days", got)
	}
	cas := parseCertificates(sc.CAPEM)
	if len(cas) != 1 || !cas[0].IsCA || leaf.CheckSignatureFrom(cas[0]) != nil {
		t.Fatalf("bundle does not hold exactly the issuing CA")
	}
	if reason := renewalReason(sc, testHosts, epoch); reason != "" {
		t.Errorf("fresh certificate needs renewal: %s", reason)
	}
	if _, err := issueServingCert(nil, time.Hour, epoch, nil); err == nil {
		t.Errorf("issued a certificate for no host")
	}
}

func TestIssueServingCertKeepsValidPreviousCAs(t *testing.T) {
	day := 24 * time.Hour
	first, _ := issueServingCert(testHosts, 90*day, epoch, nil)
	second, _ := issueServingCert(testHosts, 90*day, epoch.Add(60*day), first.CAPEM)
	if n := len(parseCertificates(second.CAPEM)); n != 2 {
		t.Fatalf("bundle holds %d CAs, want the new one and the previous one", n)
	}
	if !strings.HasPrefix(string(second.CAPEM), firstPEM(second.CAPEM)) {
		t.Fatalf("bundle does not start with its own CA")
	}
	// The serving certificate of the first is still trusted, so replicas
	// that have not caught up keep working.
	if reason := renewalReason(servingCert{first.CertPEM, first.KeyPEM, second.CAPEM},
		testHosts, epoch.Add(61*day)); reason != "two thirds of its lifetime have passed" {
		t.Errorf("old certificate under the new bundle: %q", reason)
	}

	// By the next renewal the first CA has expired and is dropped, and so
	// is anything in the bundle that is not a CA.
	junk := append(append([]byte{}, second.CAPEM...), first.CertPEM...)
	third, _ := issueServingCert(testHosts, 90*day, epoch.Add(120*day), junk)
	cas := parseCertificates(third.CAPEM)
	if len(cas) != 2 || !cas[1].Equal(parseCertificates(second.CAPEM)[0]) {
		t.Fatalf("bundle holds %d certificates, want the new CA and the second one", len(cas))
	}
}

func TestRenewalReason(t *testing.T) {
	day := 24 * time.Hour
	sc, _ := issueServingCert(testHosts, 90*day, epoch, nil)
	other, _ := issueServingCert(testHosts, 90*day, epoch, nil)
	tests := []struct {
		name  string
		sc    servingCert
		hosts []string
		at    time.Time
		want  string
	}{
		{"fresh", sc, testHosts, epoch, ""},
		{"just before two thirds", sc, testHosts, epoch.Add(59 * day), ""},
		{"past two thirds", sc, testHosts, epoch.Add(61 * day), "two thirds"},
		{"expired", sc, testHosts, epoch.Add(91 * day), "not valid"},
		{"a host it was not issued for", sc, append(testHosts, "webhook.example"), epoch,
			"not valid for webhook.example"},
		{"a key that does not match", servingCert{sc.CertPEM, other.KeyPEM, sc.CAPEM}, testHosts, epoch,
			"does not load"},
		{"a bundle of another CA", servingCert{sc.CertPEM, sc.KeyPEM, other.CAPEM}, testHosts, epoch,
			"not valid"},
		{"no bundle", servingCert{sc.CertPEM, sc.KeyPEM, nil}, testHosts, epoch, "bundle is empty"},
		{"nothing at all", servingCert{}, testHosts, epoch, "does not load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := renewalReason(tt.sc, tt.hosts, tt.at)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("renewalReason() = %q, want %q", got, tt.want)
			}
		})
	}
}

func firstPEM(bundle []byte) string {
	s := string(bundle)
	end := "-----END CERTIFICATE-----\n"
	return s[:strings.Index(s, end)+len(end)]
}

// leafOf parses the certificate of a serving pair.
func leafOf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	certs := parseCertificates(certPEM)
	if len(certs) != 1 {
		t.Fatalf("%d certificates, want 1", len(certs))
	}
	return certs[0]
}

func tlsPair(sc servingCert) (tls.Certificate, error) { return tls.X509KeyPair(sc.CertPEM, sc.KeyPEM) }
