package verifier

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medinaii/iomt-operator/test/devicesim"
)

func TestReloadSwitchesToARenewedCertificate(t *testing.T) {
	p := newPKI(t)
	dir, first := identityDir(t, p, "icu", "pump-7")
	src := &IdentitySource{Dir: dir, Log: quietLog(), Metrics: NewMetrics()}
	if changed, err := src.Reload(); err != nil || !changed {
		t.Fatalf("first load: changed %v, error %v", changed, err)
	}
	if changed, err := src.Reload(); err != nil || changed {
		t.Fatalf("unchanged directory: changed %v, error %v", changed, err)
	}

	renewed := issue(t, p, "icu", "pump-7", time.Now(), 24*time.Hour)
	if err := devicesim.WriteAtomically(dir, p.IdentityFiles(renewed)); err != nil {
		t.Fatal(err)
	}
	if changed, err := src.Reload(); err != nil || !changed {
		t.Fatalf("after renewal: changed %v, error %v", changed, err)
	}
	if got := src.Current().Leaf.SerialNumber; got.Cmp(renewed.Cert.SerialNumber) != 0 ||
		got.Cmp(first.Cert.SerialNumber) == 0 {
		t.Errorf("serial %s after renewal, want the renewed %s", got, renewed.Cert.SerialNumber)
	}
}

func TestReloadKeepsTheCurrentPairWhileAnUpdateIsHalfWritten(t *testing.T) {
	p := newPKI(t)
	dir, first := identityDir(t, p, "icu", "pump-7")
	src := &IdentitySource{Dir: dir, Log: quietLog(), Metrics: NewMetrics()}
	if _, err := src.Reload(); err != nil {
		t.Fatal(err)
	}

	// A writer that replaces files one by one has written the new
	// certificate but not yet its key.
	renewed := issue(t, p, "icu", "pump-7", time.Now(), 24*time.Hour)
	writePlain(t, dir, certFile, renewed.CertPEM)
	changed, err := src.Reload()
	if changed || err == nil || !strings.Contains(err.Error(), "key pair") {
		t.Fatalf("half-written update: changed %v, error %v; want it rejected", changed, err)
	}
	if src.Current().Leaf.SerialNumber.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatal("the previous identity was dropped")
	}
	// A truncated bundle is no better.
	writePlain(t, dir, keyFile, renewed.KeyPEM)
	writePlain(t, dir, bundleFile, p.CA.CertPEM()[:40])
	if changed, err := src.Reload(); changed || err == nil {
		t.Fatalf("truncated bundle: changed %v, error %v; want it rejected", changed, err)
	}

	writePlain(t, dir, bundleFile, p.CA.CertPEM())
	if changed, err := src.Reload(); err != nil || !changed {
		t.Fatalf("completed update: changed %v, error %v", changed, err)
	}
	if src.Current().Leaf.SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 {
		t.Error("the completed update was not taken")
	}
}

func TestWatchPicksUpARotationWithinAFewPolls(t *testing.T) {
	p := newPKI(t)
	dir, _ := identityDir(t, p, "icu", "pump-7")
	src := &IdentitySource{Dir: dir, Log: quietLog(), Metrics: NewMetrics()}
	if _, err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	go src.Watch(ctx, 10*time.Millisecond)

	renewed := issue(t, p, "icu", "pump-7", time.Now(), 24*time.Hour)
	if err := devicesim.WriteAtomically(dir, p.IdentityFiles(renewed)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for src.Current().Leaf.SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the rotated certificate was not picked up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLoadIdentityFallsBackToTheIssuingCAWithoutABundle(t *testing.T) {
	p := newPKI(t)
	dir, _ := identityDir(t, p, "icu", "pump-7")
	id := loadIdentity(t, dir)
	if id.RootsFile != bundleFile {
		t.Errorf("trust from %s, want %s", id.RootsFile, bundleFile)
	}
	if id.SPIFFEID != p.SPIFFEID("icu", "pump-7") {
		t.Errorf("SPIFFE ID %q", id.SPIFFEID)
	}

	files := p.IdentityFiles(issue(t, p, "icu", "pump-7", time.Now(), time.Hour))
	delete(files, devicesim.BundleFile)
	bare := filepath.Join(t.TempDir(), "identity")
	if err := devicesim.WriteAtomically(bare, files); err != nil {
		t.Fatal(err)
	}
	if id := loadIdentity(t, bare); id.RootsFile != caFile {
		t.Errorf("trust from %s, want %s", id.RootsFile, caFile)
	}
}

func TestLoadIdentityFailsWithoutAKeyPair(t *testing.T) {
	if _, err := LoadIdentity(t.TempDir()); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Errorf("error %v, want one naming %s", err, certFile)
	}
}

// writePlain replaces one file of an identity directory in place.
func writePlain(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
