package webhook

import (
	"crypto/tls"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// NewServer returns the webhook server to pass as the manager's
// WebhookServer: it listens on opts.Host and opts.Port, reads its key pair
// from opts.CertDir (reloading it when the files change) and speaks TLS 1.2
// or newer only.
func NewServer(opts Options) crwebhook.Server {
	opts = opts.withDefaults()
	return crwebhook.NewServer(crwebhook.Options{
		Host:    opts.Host,
		Port:    opts.Port,
		CertDir: opts.CertDir,
		TLSOpts: []func(*tls.Config){minTLS12},
	})
}

func minTLS12(c *tls.Config) {
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
}

// SetupWebhooks serves the identity injector and the workload binding check
// on the manager's webhook server, which must be one NewServer made with
// the same options. With opts.ManageCertificates it also adds a CertRotator
// and a readiness check that passes once the serving certificate is in
// place; the webhook server's own readiness check is added either way.
func SetupWebhooks(mgr ctrl.Manager, opts Options) error {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("failed to set up webhooks: %w", err)
	}
	server := mgr.GetWebhookServer()
	if err := checkServer(server, opts); err != nil {
		return fmt.Errorf("failed to set up webhooks: %w", err)
	}

	server.Register(MutatePodPath, &admission.Webhook{Handler: &IdentityInjector{
		Options: opts, Reader: mgr.GetClient()}})
	server.Register(ValidatePodPath, &admission.Webhook{Handler: &WorkloadBinding{
		Reader: mgr.GetClient(), Options: opts,
	}})
	if err := mgr.AddReadyzCheck("webhook-server", server.StartedChecker()); err != nil {
		return fmt.Errorf("failed to add webhook server readiness check: %w", err)
	}
	if !opts.ManageCertificates {
		return nil
	}

	rotator := NewCertRotator(mgr, opts)
	if err := rotator.Prime(); err != nil {
		return fmt.Errorf("failed to prepare webhook serving certificate: %w", err)
	}
	if err := mgr.Add(rotator); err != nil {
		return fmt.Errorf("failed to add webhook certificate rotator: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook-certificate", rotator.Checker); err != nil {
		return fmt.Errorf("failed to add webhook certificate readiness check: %w", err)
	}
	return nil
}

// checkServer refuses a webhook server that would read its key pair from
// elsewhere or accept TLS older than 1.2: the manager's default server does
// both.
func checkServer(server crwebhook.Server, opts Options) error {
	s, ok := server.(*crwebhook.DefaultServer)
	if !ok {
		return nil
	}
	if s.Options.CertDir != opts.CertDir {
		return fmt.Errorf("the webhook server reads certificates from %q, not %q: "+
			"build it with NewServer", s.Options.CertDir, opts.CertDir)
	}
	cfg := &tls.Config{}
	for _, o := range s.Options.TLSOpts {
		o(cfg)
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		return fmt.Errorf("the webhook server accepts TLS older than 1.2: build it with NewServer")
	}
	return nil
}
