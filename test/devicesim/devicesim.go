// Package devicesim stands in for a connected medical device: it serves
// mutual TLS with a device certificate, accepts only clients whose
// certificates chain to its trust bundle, and answers the firmware probe
// with the firmware it is told to run, which a test can change at any
// time.
package devicesim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medinaii/iomt-operator/internal/attest"
)

// DefaultPath is where the simulator answers the firmware probe.
const DefaultPath = "/firmware"

// Config says how a simulator serves.
type Config struct {
	// Addr is where it listens; 127.0.0.1 on a free port when empty.
	Addr string
	// Certificate is the device's key pair it presents.
	Certificate tls.Certificate
	// ClientCAs sign the client certificates it accepts.
	ClientCAs *x509.CertPool
	// Firmware is what it reports until told otherwise.
	Firmware attest.Firmware
	// FirmwareFile, when set, is read at every probe and wins over
	// Firmware: a JSON document {"version": ..., "sha256": ...}.
	FirmwareFile string
	// Path is where it answers the firmware probe; DefaultPath when empty.
	Path string
}

// Simulator is a running simulated device.
type Simulator struct {
	cfg      Config
	ln       net.Listener
	srv      *http.Server
	done     chan error
	mu       sync.Mutex
	firmware attest.Firmware
	probes   atomic.Int64
	stop     sync.Once
	stopErr  error
}

// Start listens and serves until Close.
func Start(cfg Config) (*Simulator, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.ClientCAs == nil {
		return nil, errors.New("failed to start the simulator: no client CAs")
	}
	s := &Simulator{cfg: cfg, firmware: cfg.Firmware, done: make(chan error, 1)}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", cfg.Addr, err)
	}
	s.ln = tls.NewListener(ln, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cfg.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    cfg.ClientCAs,
		NextProtos:   []string{"http/1.1"},
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+cfg.Path, s.serveFirmware)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { s.done <- s.srv.Serve(s.ln) }()
	return s, nil
}

// Addr is the address it listens on, host:port.
func (s *Simulator) Addr() string { return s.ln.Addr().String() }

// SetFirmware changes what it reports from the next probe on.
func (s *Simulator) SetFirmware(fw attest.Firmware) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.firmware = fw
}

// Firmware is what it reports now.
func (s *Simulator) Firmware() (attest.Firmware, error) {
	if s.cfg.FirmwareFile != "" {
		data, err := os.ReadFile(s.cfg.FirmwareFile)
		if err != nil {
			return attest.Firmware{}, fmt.Errorf("failed to read %s: %w", s.cfg.FirmwareFile, err)
		}
		var fw attest.Firmware
		if err := json.Unmarshal(data, &fw); err != nil {
			return attest.Firmware{}, fmt.Errorf("failed to parse %s: %w", s.cfg.FirmwareFile, err)
		}
		return fw, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firmware, nil
}

// Probes counts the firmware probes answered.
func (s *Simulator) Probes() int64 { return s.probes.Load() }

// Close stops serving and waits until it has stopped. Closing again
// returns what the first Close did.
func (s *Simulator) Close() error {
	s.stop.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.stopErr = fmt.Errorf("failed to stop the simulator: %w", err)
			return
		}
		if err := <-s.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.stopErr = fmt.Errorf("simulator stopped: %w", err)
		}
	})
	return s.stopErr
}

func (s *Simulator) serveFirmware(w http.ResponseWriter, _ *http.Request) {
	fw, err := s.Firmware()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.probes.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(fw)
}
