package attest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// maxReportBytes bounds a report's body.
const maxReportBytes = 64 << 10

// Sink receives each accepted report with the device it speaks for and when
// it arrived.
type Sink func(device types.NamespacedName, r Report, at time.Time)

// Server accepts reports over mutual TLS. A report is accepted only for the
// device named in the SPIFFE ID of the client certificate, which must chain
// to one of the trusted CAs.
type Server struct {
	// TrustDomain is the SPIFFE trust domain of device identities.
	TrustDomain string
	// ClientCAs returns the CAs currently trusted for device certificates;
	// it is asked at every handshake, so CA rotation needs no restart.
	ClientCAs func() *x509.CertPool
	// Sink receives accepted reports.
	Sink Sink
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// TLSConfig returns the listener's TLS configuration: TLS 1.2 or newer, a
// verified client certificate required, and the server's own certificate
// from getCert.
func (s *Server) TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return &tls.Config{
				MinVersion:     tls.VersionTLS12,
				GetCertificate: getCert,
				ClientAuth:     tls.RequireAndVerifyClientCert,
				ClientCAs:      s.ClientCAs(),
			}, nil
		},
	}
}

// ServeHTTP takes one report.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "reports are POSTed", http.StatusMethodNotAllowed)
		return
	}
	device, err := s.deviceOf(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}

	var rep Report
	dec := json.NewDecoder(io.LimitReader(r.Body, maxReportBytes))
	if err := dec.Decode(&rep); err != nil {
		http.Error(w, fmt.Sprintf("report is not valid JSON: %v", err), http.StatusBadRequest)
		return
	}
	if rep.Device != device.String() {
		http.Error(w, fmt.Sprintf("this certificate speaks for %s, not %q", device, rep.Device),
			http.StatusForbidden)
		return
	}

	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	s.Sink(device, rep, now())
	w.WriteHeader(http.StatusAccepted)
}

// deviceOf returns the device named by the verified client certificate.
func (s *Server) deviceOf(r *http.Request) (types.NamespacedName, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return types.NamespacedName{}, fmt.Errorf("a verified client certificate is required")
	}
	leaf := r.TLS.VerifiedChains[0][0]
	for _, u := range leaf.URIs {
		if d, ok := ParseSPIFFEID(s.TrustDomain, u.String()); ok {
			return d, nil
		}
	}
	return types.NamespacedName{}, fmt.Errorf("the client certificate carries no device SPIFFE ID "+
		"of trust domain %s", s.TrustDomain)
}

// ListenAndServe serves reports on addr until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string,
	getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) error {
	srv := &http.Server{
		Addr:              addr,
		Handler:           s,
		TLSConfig:         s.TLSConfig(getCert),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServeTLS("", "") }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	case err := <-errc:
		return fmt.Errorf("attestation endpoint stopped: %w", err)
	}
}
