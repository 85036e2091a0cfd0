package identity

import (
	"crypto/x509"
	"math/big"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func mustCA(t *testing.T, now time.Time, lifetime time.Duration) *CA {
	t.Helper()
	ca, err := NewCA(now, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustIssue(t *testing.T, ca *CA, req LeafRequest, now time.Time) *Leaf {
	t.Helper()
	leaf, err := ca.Issue(req, now)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func pump() LeafRequest {
	return LeafRequest{TrustDomain: DefaultTrustDomain, Namespace: "icu", Name: "pump-7",
		Lifetime: DefaultLifetime}
}

func verify(leaf *x509.Certificate, bundle []byte, at time.Time) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}})
	return err
}

func TestSPIFFEID(t *testing.T) {
	tests := []struct {
		name string
		req  LeafRequest
		want string
	}{
		{"default trust domain", pump(), "spiffe://iomt.local/ns/icu/device/pump-7"},
		{"own trust domain",
			LeafRequest{TrustDomain: "clinic.example.org", Namespace: "radiology", Name: "ct-1"},
			"spiffe://clinic.example.org/ns/radiology/device/ct-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.req.SPIFFEID(); got != tt.want {
				t.Errorf("SPIFFEID() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca := mustCA(t, t0, DefaultCALifetime)
	tests := []struct {
		name         string
		dnsNames     []string
		lifetime     time.Duration
		wantDNS      []string
		wantLifetime time.Duration
	}{
		{name: "default lifetime, no DNS names", lifetime: DefaultLifetime, wantLifetime: 24 * time.Hour},
		{name: "lifetime from the device", lifetime: 72 * time.Hour, wantLifetime: 72 * time.Hour},
		{name: "DNS names sorted and once each", lifetime: time.Hour,
			dnsNames: []string{"pump-7.icu.clinic", "pump-7.local", "pump-7.icu.clinic"},
			wantDNS:  []string{"pump-7.icu.clinic", "pump-7.local"}, wantLifetime: time.Hour},
		{name: "cut short where the CA ends", lifetime: 2 * DefaultCALifetime,
			wantLifetime: DefaultCALifetime - 30*time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := pump()
			req.DNSNames, req.Lifetime = tt.dnsNames, tt.lifetime
			now := t0.Add(30*time.Minute + 500*time.Millisecond)
			leaf := mustIssue(t, ca, req, now)
			c := leaf.Cert

			if got := SPIFFEIDOf(c); got != "spiffe://iomt.local/ns/icu/device/pump-7" {
				t.Errorf("SPIFFE ID = %q", got)
			}
			if !slices.Equal(c.DNSNames, tt.wantDNS) {
				t.Errorf("DNS names = %v, want %v", c.DNSNames, tt.wantDNS)
			}
			if !c.NotBefore.Equal(now.Truncate(time.Second)) {
				t.Errorf("notBefore = %s, want %s", c.NotBefore, now.Truncate(time.Second))
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != tt.wantLifetime {
				t.Errorf("lifetime = %s, want %s", got, tt.wantLifetime)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth,
				x509.ExtKeyUsageServerAuth}) {
				t.Errorf("extended key usage = %v", c.ExtKeyUsage)
			}
			if c.IsCA {
				t.Error("a device certificate must not be a CA")
			}
			limit := new(big.Int).Lsh(big.NewInt(1), 128)
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.Cmp(limit) >= 0 {
				t.Errorf("serial %s is not a positive 128-bit number", c.SerialNumber)
			}
			if err := verify(c, ca.CertPEM(), now); err != nil {
				t.Errorf("does not verify against its CA: %v", err)
			}
			if _, err := ParseLeaf(leaf.CertPEM, leaf.KeyPEM); err != nil {
				t.Errorf("cannot read back: %v", err)
			}
		})
	}
}

func TestIssueSerialsDiffer(t *testing.T) {
	ca := mustCA(t, t0, DefaultCALifetime)
	a, b := mustIssue(t, ca, pump(), t0), mustIssue(t, ca, pump(), t0)
	if a.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) == 0 {
		t.Error("two certificates got the same serial number")
	}
}

func TestIssueRefusesExpiredCA(t *testing.T) {
	ca := mustCA(t, t0, time.Hour)
	if _, err := ca.Issue(pump(), t0.Add(2*time.Hour)); err == nil {
		t.Error("issued a certificate from an expired CA")
	}
}

func TestRenewAt(t *testing.T) {
	tests := []struct {
		lifetime, want time.Duration
	}{
		{24 * time.Hour, 16 * time.Hour},
		{time.Hour, 40 * time.Minute},
		{9 * time.Second, 6 * time.Second},
		{8760 * time.Hour, 5840 * time.Hour},
	}
	ca := mustCA(t, t0, 2*DefaultCALifetime)
	for _, tt := range tests {
		t.Run(tt.lifetime.String(), func(t *testing.T) {
			req := pump()
			req.Lifetime = tt.lifetime
			leaf := mustIssue(t, ca, req, t0)
			if got := RenewAt(leaf.Cert); !got.Equal(t0.Add(tt.want)) {
				t.Errorf("RenewAt = %s, want notBefore + %s", got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	active := mustCA(t, t0, DefaultCALifetime)
	other := mustCA(t, t0, DefaultCALifetime)
	short := mustCA(t, t0, 10*time.Hour)
	issued := t0.Add(time.Hour)
	data := func(ca *CA, mutate func(*LeafRequest)) map[string][]byte {
		req := pump()
		req.DNSNames = []string{"pump-7.icu.clinic"}
		if mutate != nil {
			mutate(&req)
		}
		l := mustIssue(t, ca, req, issued)
		return map[string][]byte{CertKey: l.CertPEM, KeyKey: l.KeyPEM}
	}
	good := data(active, nil)
	swapped := map[string][]byte{CertKey: good[CertKey], KeyKey: data(active, nil)[KeyKey]}

	tests := []struct {
		name   string
		data   map[string][]byte
		signer *CA
		mutate func(*LeafRequest)
		at     time.Time
		want   Action
	}{
		{name: "no Secret", data: nil, want: ActionIssue},
		{name: "no key", data: map[string][]byte{CertKey: good[CertKey]}, want: ActionIssue},
		{name: "not PEM", data: map[string][]byte{CertKey: []byte("x"), KeyKey: []byte("y")}, want: ActionIssue},
		{name: "key of another certificate", data: swapped, want: ActionIssue},
		{name: "another device's SPIFFE ID",
			data: data(active, func(r *LeafRequest) { r.Name = "pump-8" }), want: ActionIssue},
		{name: "another trust domain",
			data: data(active, func(r *LeafRequest) { r.TrustDomain = "other.local" }), want: ActionIssue},
		{name: "DNS names added", data: good,
			mutate: func(r *LeafRequest) { r.DNSNames = append(r.DNSNames, "pump-7.local") }, want: ActionIssue},
		{name: "DNS names removed", data: good, mutate: func(r *LeafRequest) { r.DNSNames = nil }, want: ActionIssue},
		{name: "DNS names repeated", data: good,
			mutate: func(r *LeafRequest) { r.DNSNames = append(r.DNSNames, r.DNSNames...) }, want: ActionNone},
		{name: "lifetime changed", data: good, mutate: func(r *LeafRequest) { r.Lifetime = 48 * time.Hour },
			want: ActionIssue},
		{name: "signed by a CA that no longer signs", data: data(other, nil), want: ActionRotate},
		{name: "fresh", data: good, at: issued.Add(time.Hour), want: ActionNone},
		{name: "just before renewal", data: good, at: issued.Add(16*time.Hour - time.Second), want: ActionNone},
		{name: "at renewal", data: good, at: issued.Add(16 * time.Hour), want: ActionRenew},
		{name: "expired", data: good, at: issued.Add(48 * time.Hour), want: ActionRenew},
		{name: "cut short by the CA is no lifetime change", data: data(short, nil), signer: short,
			at: issued, want: ActionNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := pump()
			req.DNSNames = []string{"pump-7.icu.clinic"}
			if tt.mutate != nil {
				tt.mutate(&req)
			}
			signer, at := tt.signer, tt.at
			if signer == nil {
				signer = active
			}
			if at.IsZero() {
				at = issued
			}
			if got := Check(tt.data, req, signer, at); got.Action != tt.want {
				t.Errorf("Check() = %q (%s), want %q", got.Action, got.Why, tt.want)
			}
		})
	}
}

func TestParseCA(t *testing.T) {
	ca := mustCA(t, t0, DefaultCALifetime)
	other := mustCA(t, t0, DefaultCALifetime)
	key, _ := ca.KeyPEM()
	otherKey, _ := other.KeyPEM()
	leaf := mustIssue(t, ca, pump(), t0)

	tests := []struct {
		name      string
		cert, key []byte
		wantErr   bool
	}{
		{name: "round trip", cert: ca.CertPEM(), key: key},
		{name: "key of another CA", cert: ca.CertPEM(), key: otherKey, wantErr: true},
		{name: "a device certificate", cert: leaf.CertPEM, key: leaf.KeyPEM, wantErr: true},
		{name: "two certificates", cert: append(ca.CertPEM(), other.CertPEM()...), key: key, wantErr: true},
		{name: "no key", cert: ca.CertPEM(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCA(tt.cert, tt.key)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseCA() error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !got.Cert.Equal(ca.Cert) {
				t.Error("read back another certificate")
			}
		})
	}
	if ca.Cert.Subject.CommonName != CAName || !ca.Cert.IsCA {
		t.Errorf("CA subject %q, IsCA %v", ca.Cert.Subject.CommonName, ca.Cert.IsCA)
	}
}

func TestBundle(t *testing.T) {
	older := mustCA(t, t0, DefaultCALifetime)
	newer := mustCA(t, t0.Add(time.Hour), DefaultCALifetime)
	sameTimeA := mustCA(t, t0.Add(2*time.Hour), DefaultCALifetime)
	sameTimeB := mustCA(t, t0.Add(2*time.Hour), DefaultCALifetime)
	want := Bundle(older.Cert, newer.Cert, sameTimeA.Cert, sameTimeB.Cert)

	tests := []struct {
		name  string
		certs []*x509.Certificate
	}{
		{"in order", []*x509.Certificate{older.Cert, newer.Cert, sameTimeA.Cert, sameTimeB.Cert}},
		{"reversed", []*x509.Certificate{sameTimeB.Cert, sameTimeA.Cert, newer.Cert, older.Cert}},
		{"duplicates", []*x509.Certificate{newer.Cert, older.Cert, sameTimeB.Cert, newer.Cert,
			sameTimeA.Cert, older.Cert, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Bundle(tt.certs...)
			if string(got) != string(want) {
				t.Errorf("bundle differs:\n%s\nwant\n%s", got, want)
			}
			certs, err := ParseCertificates(got)
			if err != nil || len(certs) != 4 || !certs[0].Equal(older.Cert) {
				t.Errorf("bundle holds %d certificates (err %v), oldest first: %v", len(certs), err,
					err == nil && certs[0].Equal(older.Cert))
			}
		})
	}

	if !BundleHolds(want, newer.Cert, older.Cert) {
		t.Error("BundleHolds misses certificates that are there")
	}
	if BundleHolds(Bundle(older.Cert), newer.Cert) {
		t.Error("BundleHolds finds a certificate that is not there")
	}
	if BundleHolds([]byte("garbage"), older.Cert) {
		t.Error("BundleHolds accepts garbage")
	}
}
