package webhook

import (
	"crypto/tls"
	"flag"
	"strings"
	"testing"

	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

func TestBindFlags(t *testing.T) {
	var opts Options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	opts.BindFlags(fs)
	if err := fs.Parse([]string{"--verifier-image=v:1"}); err != nil {
		t.Fatal(err)
	}
	if !opts.ManageCertificates || opts.Port != DefaultPort || opts.VerifierImage != "v:1" || opts.CertDir == "" {
		t.Errorf("flag defaults: %+v", opts)
	}
	if err := (Options{}).Validate(); err == nil || !strings.Contains(err.Error(), "--verifier-image") {
		t.Errorf("Validate() = %v, want the missing verifier image named", err)
	}
}

func TestCheckServer(t *testing.T) {
	opts := Options{CertDir: t.TempDir()}.withDefaults()
	if err := checkServer(NewServer(opts), opts); err != nil {
		t.Errorf("NewServer's server refused: %v", err)
	}
	if err := checkServer(crwebhook.NewServer(crwebhook.Options{}), opts); err == nil {
		t.Errorf("the manager's default server was accepted")
	}
	old := crwebhook.NewServer(crwebhook.Options{CertDir: opts.CertDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS10 }}})
	if err := checkServer(old, opts); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("checkServer() = %v, want TLS 1.0 refused", err)
	}
}
