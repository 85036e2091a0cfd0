package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue makes a leaf with the given URI SAN (may be empty) and DNS names.
func (ca *testCA) issue(t *testing.T, uri string, dns ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), DNSNames: dns, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	if uri != "" {
		u, _ := url.Parse(uri)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestServer(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	serving := ca.issue(t, "", "localhost")

	var mu sync.Mutex
	var got []types.NamespacedName
	srv := &Server{TrustDomain: "iomt.test", ClientCAs: ca.pool, Sink: func(d types.NamespacedName, _ Report,
		_ time.Time) {
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
	}}
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = srv.TLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil })
	ts.StartTLS()
	defer ts.Close()

	pumpA := ca.issue(t, "spiffe://iomt.test/ns/icu/device/pump-a")
	client := func(cert *tls.Certificate, maxVersion uint16) *Client {
		return &Client{URL: ts.URL, Attempts: 1, TLS: func() (*tls.Config, error) {
			cfg := &tls.Config{RootCAs: ca.pool(), ServerName: "localhost", MaxVersion: maxVersion}
			if cert != nil {
				cfg.Certificates = []tls.Certificate{*cert}
			}
			return cfg, nil
		}}
	}
	foreign := other.issue(t, "spiffe://iomt.test/ns/icu/device/pump-a")
	noID := ca.issue(t, "")
	otherDomain := ca.issue(t, "spiffe://elsewhere/ns/icu/device/pump-a")

	tests := []struct {
		name    string
		client  *Client
		device  string
		wantErr string
	}{
		{"a device reports for itself", client(&pumpA, 0), "icu/pump-a", ""},
		{"a device cannot report for another", client(&pumpA, 0), "icu/pump-b", "speaks for icu/pump-a"},
		{"a client without a certificate is refused", client(nil, 0), "icu/pump-a", "certificate"},
		{"a certificate from another CA is refused", client(&foreign, 0), "icu/pump-a", "certificate"},
		{"a certificate without a device identity is refused", client(&noID, 0), "icu/pump-a",
			"no device SPIFFE ID"},
		{"an identity of another trust domain is refused", client(&otherDomain, 0), "icu/pump-a",
			"no device SPIFFE ID"},
		{"TLS 1.1 is refused", client(&pumpA, tls.VersionTLS11), "icu/pump-a", "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			err := tt.client.Send(context.Background(), Report{Device: tt.device, Time: time.Now()})
			mu.Lock()
			defer mu.Unlock()
			if tt.wantErr == "" {
				if err != nil || len(got) != 1 || got[0].String() != tt.device {
					t.Fatalf("err %v, accepted %v", err, got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || len(got) != 0 {
				t.Fatalf("err %v (want %q), accepted %v", err, tt.wantErr, got)
			}
		})
	}
}

func TestParseSPIFFEID(t *testing.T) {
	tests := []struct {
		id   string
		want string
		ok   bool
	}{
		{"spiffe://iomt.test/ns/icu/device/pump-a", "icu/pump-a", true},
		{"spiffe://iomt.test/ns/icu/device/", "", false},
		{"spiffe://iomt.test/ns/icu/workload/pump-a", "", false},
		{"spiffe://iomt.test/ns/icu/device/pump-a/extra", "", false},
		{"spiffe://iomt.testx/ns/icu/device/pump-a", "", false},
	}
	for _, tt := range tests {
		d, ok := ParseSPIFFEID("iomt.test", tt.id)
		if ok != tt.ok || (ok && d.String() != tt.want) {
			t.Errorf("ParseSPIFFEID(%q) = %v %v, want %q %v", tt.id, d, ok, tt.want, tt.ok)
		}
	}
}
