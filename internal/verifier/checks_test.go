package verifier

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/test/devicesim"
)

func TestIdentityCheck(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	now := time.Now()
	for _, tc := range []struct {
		name     string
		pki      *devicesim.PKI
		from     time.Time
		lifetime time.Duration
		passed   bool
		detail   string
	}{
		{"passes with most of its life left", p, now.Add(-time.Hour), 10 * time.Hour, true,
			"valid until"},
		{"passes with just over a tenth left", p, now.Add(-88 * time.Minute), 100 * time.Minute, true,
			""},
		{"fails below a tenth of its life", p, now.Add(-95 * time.Minute), 100 * time.Minute, false,
			"not renewed in time"},
		{"fails once expired", p, now.Add(-3 * time.Hour), 2 * time.Hour, false, "does not chain"},
		{"fails when another CA signed it", other, now.Add(-time.Hour), 10 * time.Hour, false,
			"does not chain to bundle.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf := issue(t, tc.pki, "icu", "pump-7", tc.from, tc.lifetime)
			files := p.IdentityFiles(leaf)
			files[devicesim.CertFile], files[devicesim.KeyFile] = leaf.CertPEM, leaf.KeyPEM
			dir := filepath.Join(t.TempDir(), "identity")
			if err := devicesim.WriteAtomically(dir, files); err != nil {
				t.Fatal(err)
			}
			c := checkIdentity(loadIdentity(t, dir), now)
			if c.Name != CheckIdentity || c.Passed != tc.passed || !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("got %+v, want passed %v with %q", c, tc.passed, tc.detail)
			}
		})
	}
}

func TestEndpointCheck(t *testing.T) {
	p := newPKI(t)
	foreign := newPKI(t)
	dir, _ := identityDir(t, p, "icu", "pump-7")
	anHour := time.Now().Add(-time.Hour)
	own := issue(t, p, "icu", "pump-7", anHour, 24*time.Hour)
	neighbour := issue(t, p, "icu", "pump-8", anHour, 24*time.Hour)
	stranger := issue(t, foreign, "icu", "pump-7", anHour, 24*time.Hour)
	sum := sha256.Sum256(stranger.Cert.Raw)
	fingerprint := hex.EncodeToString(sum[:])

	for _, tc := range []struct {
		name        string
		serving     *devicesim.Simulator
		spiffeID    string
		fingerprint string
		passed      bool
		detail      string
	}{
		{"passes when the device presents its own identity",
			startSimulator(t, p, own, attest.Firmware{}), "", "", true,
			"presents " + p.SPIFFEID("icu", "pump-7")},
		{"fails when another device answers", startSimulator(t, p, neighbour, attest.Firmware{}),
			"", "", false, "not " + p.SPIFFEID("icu", "pump-7")},
		{"passes when the expected identity is given",
			startSimulator(t, p, neighbour, attest.Firmware{}), p.SPIFFEID("icu", "pump-8"), "", true, ""},
		{"fails when no CA of the bundle signed the certificate",
			startSimulator(t, foreign, stranger, attest.Firmware{}), "", "", false, "does not chain"},
		{"passes a certificate pinned by fingerprint",
			startSimulator(t, foreign, stranger, attest.Firmware{}), "", fingerprint, true,
			"certificate " + fingerprint},
		{"fails a certificate that is not the pinned one", startSimulator(t, p, own, attest.Firmware{}),
			"", fingerprint, false, "not the pinned"},
		{"fails a pin without the chain when an identity is also required",
			startSimulator(t, foreign, stranger, attest.Firmware{}), p.SPIFFEID("icu", "pump-7"),
			fingerprint, false, "does not chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, Config{IdentityDir: dir, Endpoint: tc.serving.Addr(),
				ServerSPIFFEID: tc.spiffeID, ServerFingerprint: tc.fingerprint})
			rep, ok := v.Check(t.Context())
			if !ok {
				t.Fatal("no report")
			}
			c, found := checkNamed(rep, CheckEndpoint)
			if !found || c.Passed != tc.passed || !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("got %+v, want passed %v with %q", c, tc.passed, tc.detail)
			}
		})
	}
}

func TestEndpointCheckFailsWhenTheDeviceDoesNotAnswer(t *testing.T) {
	p := newPKI(t)
	dir, leaf := identityDir(t, p, "icu", "pump-7")
	sim := startSimulator(t, p, leaf, attest.Firmware{})
	addr := sim.Addr()
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, Config{IdentityDir: dir, Endpoint: addr})
	rep, _ := v.Check(t.Context())
	c, _ := checkNamed(rep, CheckEndpoint)
	if c.Passed || !strings.Contains(c.Detail, "failed to connect") {
		t.Errorf("got %+v, want a failed connection", c)
	}
}

func TestEndpointRefusesAVerifierWhoseCertificateItDoesNotTrust(t *testing.T) {
	p := newPKI(t)
	foreign := newPKI(t)
	// The verifier trusts the device, but holds a certificate of another CA.
	leaf := issue(t, foreign, "icu", "pump-7", time.Now().Add(-time.Hour), 24*time.Hour)
	files := p.IdentityFiles(leaf)
	dir := filepath.Join(t.TempDir(), "identity")
	if err := devicesim.WriteAtomically(dir, files); err != nil {
		t.Fatal(err)
	}
	sim := startSimulator(t, p, issue(t, p, "icu", "pump-7", leafStart(), leafLife), attest.Firmware{})
	v := newVerifier(t, Config{IdentityDir: dir, Endpoint: sim.Addr(),
		FirmwareProbe: ProbeHTTPSJSON})
	rep, _ := v.Check(t.Context())
	if c, _ := checkNamed(rep, CheckFirmware); c.Passed {
		t.Errorf("firmware check %+v passed through an endpoint that refuses the verifier", c)
	}
	if sim.Probes() != 0 {
		t.Errorf("the device answered %d probes from an untrusted client", sim.Probes())
	}
}
