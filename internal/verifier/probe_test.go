package verifier

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medinaii/iomt-operator/internal/attest"
)

var goodDigest = strings.Repeat("ab", 32)

func TestHTTPSJSONProbeReadsWhatTheDeviceReports(t *testing.T) {
	p := newPKI(t)
	dir, leaf := identityDir(t, p, "icu", "pump-7")
	sim := startSimulator(t, p, leaf, attest.Firmware{Version: "8.01.01",
		SHA256: strings.ToUpper(goodDigest)})
	v := newVerifier(t, Config{IdentityDir: dir, Endpoint: sim.Addr(),
		FirmwareProbe: ProbeHTTPSJSON})

	rep, _ := v.Check(t.Context())
	if c, _ := checkNamed(rep, CheckFirmware); !c.Passed {
		t.Fatalf("firmware check %+v failed", c)
	}
	want := attest.Firmware{Version: "8.01.01", SHA256: goodDigest}
	if rep.Firmware == nil || *rep.Firmware != want {
		t.Errorf("firmware %+v, want %+v", rep.Firmware, want)
	}

	// The verifier passes on whatever the device says; judging it is the
	// operator's business.
	sim.SetFirmware(attest.Firmware{Version: "6.6.6"})
	rep, _ = v.Check(t.Context())
	if c, _ := checkNamed(rep, CheckFirmware); !c.Passed || rep.Firmware.Version != "6.6.6" {
		t.Errorf("check %+v firmware %+v, want 6.6.6 passed on", c, rep.Firmware)
	}
}

func TestHTTPSJSONProbeFails(t *testing.T) {
	p := newPKI(t)
	dir, leaf := identityDir(t, p, "icu", "pump-7")
	for _, tc := range []struct {
		name, path string
		firmware   attest.Firmware
		detail     string
	}{
		{"when the device has no such path", "/nothing", attest.Firmware{Version: "1"}, "404"},
		{"when the device reports no version", "", attest.Firmware{}, "no version"},
		{"when the digest is no SHA-256", "", attest.Firmware{Version: "1", SHA256: "abc"},
			"not a hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := startSimulator(t, p, leaf, tc.firmware)
			v := newVerifier(t, Config{IdentityDir: dir, Endpoint: sim.Addr(),
				FirmwareProbe: ProbeHTTPSJSON, FirmwarePath: tc.path})
			rep, _ := v.Check(t.Context())
			c, _ := checkNamed(rep, CheckFirmware)
			if c.Passed || !strings.Contains(c.Detail, tc.detail) || rep.Firmware != nil {
				t.Errorf("check %+v firmware %+v, want a failure saying %q", c, rep.Firmware, tc.detail)
			}
		})
	}
}

func TestHTTPSJSONProbeIsNotAskedWhenTheEndpointFails(t *testing.T) {
	p := newPKI(t)
	dir, _ := identityDir(t, p, "icu", "pump-7")
	sim := startSimulator(t, p, issue(t, p, "icu", "pump-8", leafStart(), leafLife),
		attest.Firmware{Version: "1"})
	v := newVerifier(t, Config{IdentityDir: dir, Endpoint: sim.Addr(),
		FirmwareProbe: ProbeHTTPSJSON})
	rep, _ := v.Check(t.Context())
	c, _ := checkNamed(rep, CheckFirmware)
	if c.Passed || !strings.Contains(c.Detail, "not probed") {
		t.Errorf("firmware check %+v, want not probed", c)
	}
	if sim.Probes() != 0 {
		t.Errorf("an endpoint with the wrong identity was asked %d times", sim.Probes())
	}
}

func TestFileProbe(t *testing.T) {
	p := newPKI(t)
	dir, _ := identityDir(t, p, "icu", "pump-7")
	for _, tc := range []struct {
		name    string
		content string
		passed  bool
		detail  string
	}{
		{"reads the firmware the gateway wrote",
			`{"version":"2.4.1","sha256":"` + goodDigest + `"}`, true, "version 2.4.1"},
		{"fails on a file that is not JSON", "version=2.4.1", false, "failed to decode"},
		{"fails on a missing file", "", false, "failed to open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "firmware.json")
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			v := newVerifier(t, Config{IdentityDir: dir, FirmwareProbe: ProbeFile, FirmwarePath: path})
			rep, _ := v.Check(t.Context())
			c, _ := checkNamed(rep, CheckFirmware)
			if c.Passed != tc.passed || !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("got %+v, want passed %v with %q", c, tc.passed, tc.detail)
			}
			if _, found := checkNamed(rep, CheckEndpoint); found {
				t.Error("an endpoint check ran without an endpoint")
			}
		})
	}
}
