// Command devicesim runs a simulated device: mutual TLS on a local
// address with the certificate of an identity directory, and the firmware
// probe answered from flags or from a file it reads at every probe, so
// that changing the file changes what the device reports.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/test/devicesim"
)

func main() {
	var (
		identityDir = flag.String("identity-dir", "",
			"Directory with tls.crt, tls.key and bundle.crt (or ca.crt) of the device.")
		addr     = flag.String("listen", "127.0.0.1:8443", "Address to serve mutual TLS on.")
		path     = flag.String("path", devicesim.DefaultPath, "URL path of the firmware probe.")
		version  = flag.String("firmware-version", "1.0.0", "Firmware version to report.")
		digest   = flag.String("firmware-sha256", "", "Firmware image digest to report.")
		fromFile = flag.String("firmware-file", "",
			"JSON file {\"version\", \"sha256\"} read at every probe; wins over the other firmware flags.")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*identityDir, devicesim.Config{
		Addr: *addr, Path: *path, FirmwareFile: *fromFile,
		Firmware: attest.Firmware{Version: *version, SHA256: *digest},
	}, log); err != nil {
		log.Error("Simulator stopped", "error", err)
		os.Exit(1)
	}
}

func run(identityDir string, cfg devicesim.Config, log *slog.Logger) error {
	if identityDir == "" {
		return fmt.Errorf("failed to start: --identity-dir is required")
	}
	cert, pool, err := devicesim.LoadIdentityDir(identityDir)
	if err != nil {
		return err
	}
	cfg.Certificate, cfg.ClientCAs = cert, pool

	sim, err := devicesim.Start(cfg)
	if err != nil {
		return err
	}
	log.Info("Serving the simulated device", "address", sim.Addr(), "path", cfg.Path)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return sim.Close()
}
