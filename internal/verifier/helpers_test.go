package verifier

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/internal/identity"
	"github.com/medinaii/iomt-operator/test/devicesim"
)

const trustDomain = "iomt.test"

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newPKI(t *testing.T) *devicesim.PKI {
	t.Helper()
	p, err := devicesim.NewPKI(trustDomain)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func issue(t *testing.T, p *devicesim.PKI, ns, name string, notBefore time.Time,
	lifetime time.Duration, dns ...string) *identity.Leaf {
	t.Helper()
	leaf, err := p.Issue(ns, name, notBefore, lifetime, dns...)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// identityDir writes an identity directory for ns/name, valid for a day
// from an hour ago.
func identityDir(t *testing.T, p *devicesim.PKI, ns, name string) (string, *identity.Leaf) {
	t.Helper()
	leaf := issue(t, p, ns, name, time.Now().Add(-time.Hour), 24*time.Hour)
	dir := filepath.Join(t.TempDir(), "identity")
	if err := devicesim.WriteAtomically(dir, p.IdentityFiles(leaf)); err != nil {
		t.Fatal(err)
	}
	return dir, leaf
}

func keyPair(t *testing.T, leaf *identity.Leaf) tls.Certificate {
	t.Helper()
	kp, err := devicesim.KeyPair(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func loadIdentity(t *testing.T, dir string) *Identity {
	t.Helper()
	id, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// startSimulator serves a simulated device with leaf, trusting p's CA.
func startSimulator(t *testing.T, p *devicesim.PKI, leaf *identity.Leaf,
	fw attest.Firmware) *devicesim.Simulator {
	t.Helper()
	sim, err := devicesim.Start(devicesim.Config{Certificate: keyPair(t, leaf), ClientCAs: p.Pool(),
		Firmware: fw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// received collects what an attestation endpoint accepted.
type received struct {
	mu      sync.Mutex
	reports map[types.NamespacedName][]attest.Report
}

func (r *received) sink(d types.NamespacedName, rep attest.Report, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports[d] = append(r.reports[d], rep)
}

func (r *received) of(d types.NamespacedName) []attest.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attest.Report(nil), r.reports[d]...)
}

// startAttestation serves an attestation endpoint on localhost that trusts
// p's CA, with a serving certificate p signs, wrapped by wrap when set.
func startAttestation(t *testing.T, p *devicesim.PKI,
	wrap func(http.Handler) http.Handler) (string, *received) {
	t.Helper()
	got := &received{reports: map[types.NamespacedName][]attest.Report{}}
	srv := &attest.Server{TrustDomain: trustDomain, ClientCAs: p.Pool, Sink: got.sink}
	serving := keyPair(t, issue(t, p, "iomt-system", "attestation", time.Now().Add(-time.Hour),
		24*time.Hour, "localhost"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = srv
	if wrap != nil {
		h = wrap(srv)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	tlsLn := tls.NewListener(ln, srv.TLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return &serving, nil
	}))
	go func() { _ = hs.Serve(tlsLn) }()
	t.Cleanup(func() { _ = hs.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "https://localhost:" + port, got
}

// newVerifier makes a verifier of cfg with its identity loaded.
func newVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = trustDomain
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.AttestationURL == "" {
		cfg.AttestationURL = "https://localhost:1"
	}
	if err := cfg.complete(); err != nil {
		t.Fatal(err)
	}
	v := New(cfg, quietLog())
	if _, err := v.ids.Reload(); err != nil {
		t.Fatal(err)
	}
	return v
}

func checkNamed(rep attest.Report, name string) (attest.Check, bool) {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return attest.Check{}, false
}

// A leaf from an hour ago for a day.
const leafLife = 24 * time.Hour

func leafStart() time.Time { return time.Now().Add(-time.Hour) }
