package devicesim

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medinaii/iomt-operator/internal/attest"
)

// fixture is a CA, a simulator serving pump-7 and a client certificate.
type fixture struct {
	pki    *PKI
	sim    *Simulator
	client tls.Certificate
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	pki, err := NewPKI("iomt.test")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{pki: pki}
	cfg.Certificate = f.keyPair(t, pki, "pump-7")
	cfg.ClientCAs = pki.Pool()
	if f.sim, err = Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.sim.Close() })
	f.client = f.keyPair(t, pki, "pump-7")
	return f
}

func (f *fixture) keyPair(t *testing.T, pki *PKI, name string) tls.Certificate {
	t.Helper()
	leaf, err := pki.Issue("icu", name, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := KeyPair(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// get asks for path presenting cert, trusting the fixture's CA.
func (f *fixture) get(cert *tls.Certificate, path string) (*http.Response, error) {
	cfg := &tls.Config{RootCAs: f.pki.Pool(), ServerName: "pump-7", MinVersion: tls.VersionTLS12,
		// The simulator's certificate carries a SPIFFE ID, not a host name.
		InsecureSkipVerify: true} //nolint:gosec // a test client of a local simulator
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	return hc.Get("https://" + f.sim.Addr() + path)
}

func (f *fixture) firmware(t *testing.T) attest.Firmware {
	t.Helper()
	resp, err := f.get(&f.client, DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", DefaultPath, resp.Status)
	}
	var fw attest.Firmware
	if err := json.NewDecoder(resp.Body).Decode(&fw); err != nil {
		t.Fatal(err)
	}
	return fw
}

func TestSimulatorReportsTheFirmwareItIsGivenAtRunTime(t *testing.T) {
	f := newFixture(t, Config{Firmware: attest.Firmware{Version: "8.01.01"}})
	if fw := f.firmware(t); fw.Version != "8.01.01" {
		t.Errorf("firmware %+v, want 8.01.01", fw)
	}
	f.sim.SetFirmware(attest.Firmware{Version: "6.6.6", SHA256: strings.Repeat("0", 64)})
	if fw := f.firmware(t); fw.Version != "6.6.6" || fw.SHA256 != strings.Repeat("0", 64) {
		t.Errorf("firmware %+v after the change, want 6.6.6", fw)
	}
	if n := f.sim.Probes(); n != 2 {
		t.Errorf("%d probes counted, want 2", n)
	}
}

func TestSimulatorRereadsItsFirmwareFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "firmware.json")
	write := func(doc string) {
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"version":"2.4.1"}`)
	f := newFixture(t, Config{FirmwareFile: path, Firmware: attest.Firmware{Version: "ignored"}})
	if fw := f.firmware(t); fw.Version != "2.4.1" {
		t.Errorf("firmware %+v, want the file's 2.4.1", fw)
	}
	write(`{"version":"2.5.0"}`)
	if fw := f.firmware(t); fw.Version != "2.5.0" {
		t.Errorf("firmware %+v, want the rewritten 2.5.0", fw)
	}
}

func TestSimulatorRefusesClientsOutsideItsBundle(t *testing.T) {
	f := newFixture(t, Config{Firmware: attest.Firmware{Version: "1"}})
	other, err := NewPKI("iomt.test")
	if err != nil {
		t.Fatal(err)
	}
	stranger := f.keyPair(t, other, "pump-7")
	clients := map[string]*tls.Certificate{"no certificate": nil, "another CA": &stranger}
	for name, cert := range clients {
		t.Run(name, func(t *testing.T) {
			resp, err := f.get(cert, DefaultPath)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("answered %s", resp.Status)
			}
		})
	}
	if n := f.sim.Probes(); n != 0 {
		t.Errorf("%d probes answered", n)
	}
}

func TestWriteAtomicallySwapsEveryFileAtOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "identity")
	for _, v := range []string{"one", "two"} {
		if err := WriteAtomically(dir, map[string][]byte{"a": []byte(v), "b": []byte(v)}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a", "b"} {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || string(got) != v {
				t.Errorf("%s reads %q, %v; want %q", name, got, err, v)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// a, b, ..data and one data directory: the old one is gone.
	if len(entries) != 4 {
		t.Errorf("%d entries left in the directory, want 4", len(entries))
	}
}

func TestLoadIdentityDirReadsWhatTheWebhookMounts(t *testing.T) {
	pki, err := NewPKI("iomt.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.Issue("icu", "pump-7", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "identity")
	if err := WriteAtomically(dir, pki.IdentityFiles(leaf)); err != nil {
		t.Fatal(err)
	}
	kp, pool, err := LoadIdentityDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if kp.Leaf.URIs[0].String() != pki.SPIFFEID("icu", "pump-7") || !pool.Equal(pki.Pool()) {
		t.Errorf("loaded %v with another pool", kp.Leaf.URIs)
	}
}
