package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/internal/identity"
)

// AttestationOptions configure the endpoint verifier sidecars report to.
type AttestationOptions struct {
	// Addr is where the endpoint listens, :8444 by default.
	Addr string
	// Hosts are the DNS names verifiers use to reach it, such as
	// iomt-operator-attestation.iomt-system.svc.
	Hosts []string
}

// attestationEndpoint serves reports over mutual TLS. Its certificate and
// the CAs it trusts for clients both come from the operator's device CA, so
// verifiers trust it through the bundle they already mount. It runs on the
// leader only, whose reconcilers fold the reports in; LeaderLabel points
// the attestation Service at the leader's pod.
type attestationEndpoint struct {
	opts        AttestationOptions
	trustDomain string
	namespace   string
	auth        *authority
	reports     *Reports

	mu      sync.Mutex
	cert    *tls.Certificate
	signer  *x509.Certificate
	renewAt time.Time
}

// Start serves until ctx ends.
func (e *attestationEndpoint) Start(ctx context.Context) error {
	srv := &attest.Server{TrustDomain: e.trustDomain, ClientCAs: e.clientCAs, Sink: e.reports.Accept}
	ctrl.LoggerFrom(ctx).Info("Serving the attestation endpoint", "address", e.opts.Addr)
	return srv.ListenAndServe(ctx, e.opts.Addr, e.certificate)
}

// NeedLeaderElection keeps the endpoint on the leader.
func (e *attestationEndpoint) NeedLeaderElection() bool { return true }

// clientCAs are the operator's own device CAs.
// TODO: CAs of cert-manager issuers are not trusted, so verifiers of devices
// whose certificates cert-manager signs are refused and their verification
// stays Pending: silence never quarantines them.
func (e *attestationEndpoint) clientCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	if set := e.auth.current(); set != nil {
		for _, c := range set.Trusted() {
			pool.AddCert(c)
		}
	}
	return pool
}

// certificate returns the serving certificate, issuing a new one when the
// active CA changed or two thirds of the old one's life have passed.
func (e *attestationEndpoint) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := e.auth.current()
	if set == nil {
		return nil, fmt.Errorf("the device CA is not loaded yet")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if e.cert != nil && e.signer.Equal(set.Active.Cert) && now.Before(e.renewAt) {
		return e.cert, nil
	}
	// The certificate names the endpoint by its hosts; the SPIFFE ID the
	// device CA always adds names no MedicalDevice.
	leaf, err := set.Active.Issue(identity.LeafRequest{
		TrustDomain: e.trustDomain, Namespace: e.namespace, Name: "iomt-operator-attestation",
		DNSNames: e.opts.Hosts, Lifetime: 24 * time.Hour,
	}, now)
	if err != nil {
		return nil, fmt.Errorf("failed to issue the attestation certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to load the attestation certificate: %w", err)
	}
	e.cert, e.signer, e.renewAt = &pair, set.Active.Cert, identity.RenewAt(leaf.Cert)
	return e.cert, nil
}
