// Command verifier is the sidecar that keeps checking a device: its own
// certificate, the device endpoint's TLS identity and the firmware the
// device reports, sent every interval to the operator's attestation
// endpoint over mutual TLS with the device certificate.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/medinaii/iomt-operator/internal/verifier"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := verifier.ParseFlags(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Error("Cannot start", "error", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := verifier.New(cfg, log).Run(ctx); err != nil {
		log.Error("Verifier stopped", "error", err)
		os.Exit(1)
	}
}
