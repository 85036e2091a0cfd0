package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    []string
		notOut     []string
		wantErrOut []string
	}{
		{
			name: "affected and undecidable devices are listed, others only counted",
			args: []string{"--advisories", "testdata/advisories", "--devices", "testdata/devices"},
			wantOut: []string{
				"ward-3/pump-0815", "KnownAffected", "ICSMA-20-317-01", "6.5", "CVE-2020-25165",
				"ward-3/portal", "Undecidable", "ICSMA-24-249-01", "10.0",
				`ward-3/portal ICSMA-24-249-01: cannot read version "<8/30/2024"`,
				"4 devices checked against 2 advisories: 1 affected, 2 to review, " +
					"1 with no known affected advisory",
			},
			notOut: []string{"pump-0816", "infusion"},
		},
		{
			name: "a device read from a list without firmware needs review",
			args: []string{"--advisories", "testdata/advisories", "--devices",
				"testdata/devices/exported.yml"},
			wantOut: []string{"ward-5/pump-0900", "Undecidable", "firmware version is unknown"},
		},
		{
			name: "unreadable advisories and manifests are reported and exit 1",
			args: []string{"--advisories", "testdata/bad-advisories", "--devices",
				"testdata/bad-devices"},
			wantCode: 1,
			wantOut:  []string{"ward-1/pump-2", "KnownAffected", "1 device checked against 1 advisory"},
			wantErrOut: []string{
				"truncated.json",
				"devices.yaml#1", "spec.firmware.version is the number 9.1",
				"devices.yaml#3",
			},
		},
		{
			name:       "missing devices path exits 1",
			args:       []string{"--advisories", "testdata/advisories", "--devices", "testdata/absent"},
			wantCode:   1,
			wantErrOut: []string{"failed to read devices"},
		},
		{
			name:       "missing flags are a usage error",
			args:       []string{"--advisories", "testdata/advisories"},
			wantCode:   2,
			wantErrOut: []string{"usage: advisories"},
		},
		{
			name:       "unknown flag is a usage error",
			args:       []string{"--advisory", "x"},
			wantCode:   2,
			wantErrOut: []string{"flag provided but not defined"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s",
					code, tt.wantCode, out.String(), errOut.String())
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.notOut {
				if strings.Contains(out.String(), s) {
					t.Errorf("stdout has %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.wantErrOut {
				if !strings.Contains(errOut.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut.String())
				}
			}
		})
	}
}

func TestLoadDevicesReadsOnlyMedicalDevices(t *testing.T) {
	devices, errs := loadDevices("testdata/devices/ward-3.yaml")
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	var names []string
	for _, d := range devices {
		names = append(names, d.name())
	}
	want := "ward-3/pump-0815 ward-3/pump-0816 ward-3/portal"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("devices = %q, want %q", got, want)
	}
	d := devices[0]
	if d.Manufacturer != "Becton, Dickinson and Company" || d.Model != "Alaris 8015" ||
		d.FirmwareVersion != "9.19" {
		t.Errorf("first device = %+v", d.Device)
	}
}
