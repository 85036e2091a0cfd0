package verifier

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestParseFlagsDefaultsMatchTheInjectedSidecar(t *testing.T) {
	noEnv := func(string) string { return "" }
	c, err := ParseFlags([]string{"--identity-dir=/var/run/iomt/identity"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		IdentityDir: DefaultIdentityDir, AttestationURL: DefaultAttestationURL,
		Interval: DefaultInterval, FirmwareProbe: ProbeNone, HealthAddr: DefaultHealthAddr,
		TrustDomain: DefaultTrustDomain, ReloadEvery: defaultReloadEvery,
	}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
}

func TestParseFlagsTakesTheAttestationURLFromTheEnvironmentUnlessGiven(t *testing.T) {
	env := func(k string) string {
		if k == AttestationURLEnv {
			return "https://attest.example:9443"
		}
		return ""
	}
	c, err := ParseFlags(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.AttestationURL != "https://attest.example:9443" {
		t.Errorf("attestation URL %q, want the environment's", c.AttestationURL)
	}
	c, err = ParseFlags([]string{"--attestation-url=https://flag.example:1"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.AttestationURL != "https://flag.example:1" {
		t.Errorf("attestation URL %q, want the flag's", c.AttestationURL)
	}
}

func TestParseFlagsCompletesTheProbeAndTheDevice(t *testing.T) {
	c, err := ParseFlags([]string{
		"--device=icu/pump-7", "--endpoint=10.20.1.15:8443", "--firmware-probe=https-json",
		"--server-fingerprint=AB:" + strings.Repeat("cd", 31), "--interval=5s",
	}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Device != (types.NamespacedName{Namespace: "icu", Name: "pump-7"}) {
		t.Errorf("device %v", c.Device)
	}
	if c.FirmwarePath != DefaultFirmwarePath {
		t.Errorf("firmware path %q, want %q", c.FirmwarePath, DefaultFirmwarePath)
	}
	if c.ServerFingerprint != "ab"+strings.Repeat("cd", 31) {
		t.Errorf("fingerprint %q is not normalised", c.ServerFingerprint)
	}
	if c.Interval != 5*time.Second {
		t.Errorf("interval %s", c.Interval)
	}
}

func TestParseFlagsRefusesWhatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--device=pump-7"}, "namespace/name"},
		{[]string{"--device=icu/a/b"}, "namespace/name"},
		{[]string{"--attestation-url=http://plain:80"}, "must start with https://"},
		{[]string{"--interval=100ms"}, "shorter than 1s"},
		{[]string{"--endpoint=10.20.1.15"}, "not host:port"},
		{[]string{"--firmware-probe=https-json"}, "needs --endpoint"},
		{[]string{"--firmware-probe=file"}, "needs --firmware-path"},
		{[]string{"--firmware-probe=snmp"}, "none of https-json, file, none"},
		{[]string{"--endpoint=h:1", "--firmware-probe=https-json", "--firmware-path=fw"},
			"must start with /"},
		{[]string{"--endpoint=h:1", "--server-spiffe-id=icu/pump-7"}, "not a spiffe:// URI"},
		{[]string{"--endpoint=h:1", "--server-fingerprint=abc"}, "not a hex SHA-256"},
		{[]string{"--server-spiffe-id=spiffe://iomt.local/x"}, "need --endpoint"},
		{[]string{"--identity-dir="}, "--identity-dir is required"},
		{[]string{"stray"}, "unexpected"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := ParseFlags(tc.args, func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
