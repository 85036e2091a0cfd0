package verifier

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/medinaii/iomt-operator/internal/attest"
)

// The names of the checks in a report.
const (
	CheckIdentity = "identity"
	CheckEndpoint = "endpoint"
	CheckFirmware = "firmware"
)

// minLifeLeft is the share of its lifetime a certificate must have left;
// below it the operator failed to renew it in time.
const minLifeLeft = 0.10

// checkIdentity checks the verifier's own certificate: that it chains to
// the trusted CAs and has at least a tenth of its lifetime left.
func checkIdentity(id *Identity, now time.Time) attest.Check {
	c := attest.Check{Name: CheckIdentity}
	_, err := id.Leaf.Verify(x509.VerifyOptions{
		Roots:         id.Roots,
		Intermediates: id.Intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		c.Detail = fmt.Sprintf("certificate %s does not chain to %s: %v", id.SPIFFEID, id.RootsFile, err)
		return c
	}
	lifetime := id.Leaf.NotAfter.Sub(id.Leaf.NotBefore)
	left := id.Leaf.NotAfter.Sub(now)
	if float64(left) < minLifeLeft*float64(lifetime) {
		c.Detail = fmt.Sprintf("certificate %s expires at %s, %s left of %s: it was not renewed in time",
			id.SPIFFEID, id.Leaf.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Second), lifetime)
		return c
	}
	c.Passed = true
	c.Detail = fmt.Sprintf("certificate %s chains to %s, valid until %s", id.SPIFFEID, id.RootsFile,
		id.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return c
}

// peerRule is what the device endpoint must present: a certificate that
// chains to the trusted CAs and carries SPIFFEID, or one whose SHA-256
// fingerprint is Fingerprint. With both set, both must hold.
type peerRule struct {
	SPIFFEID    string
	Fingerprint string
}

func (r peerRule) String() string {
	switch {
	case r.SPIFFEID != "" && r.Fingerprint != "":
		return fmt.Sprintf("%s pinned to %s", r.SPIFFEID, r.Fingerprint)
	case r.Fingerprint != "":
		return "certificate " + r.Fingerprint
	default:
		return r.SPIFFEID
	}
}

// verifyPeer checks the certificates the endpoint presented against rule.
func verifyPeer(certs []*x509.Certificate, id *Identity, rule peerRule, now time.Time) error {
	if len(certs) == 0 {
		return errors.New("the endpoint presented no certificate")
	}
	leaf := certs[0]
	if rule.Fingerprint != "" {
		sum := sha256.Sum256(leaf.Raw)
		if got := hex.EncodeToString(sum[:]); got != rule.Fingerprint {
			return fmt.Errorf("the endpoint's certificate has fingerprint %s, not the pinned %s", got,
				rule.Fingerprint)
		}
		if rule.SPIFFEID == "" {
			return nil
		}
	}

	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         id.Roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("the endpoint's certificate does not chain to %s: %w", id.RootsFile, err)
	}
	var presented []string
	for _, u := range leaf.URIs {
		presented = append(presented, u.String())
	}
	if !slices.Contains(presented, rule.SPIFFEID) {
		return fmt.Errorf("the endpoint presents %v, not %s", presented, rule.SPIFFEID)
	}
	return nil
}

// dialEndpoint opens a mutual TLS connection to the device endpoint,
// presenting the verifier's certificate and holding the endpoint to rule.
// alpn, when set, is offered as the application protocol.
func dialEndpoint(ctx context.Context, addr string, id *Identity, rule peerRule, alpn string,
	now func() time.Time) (*tls.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("failed to parse endpoint %q: %w", addr, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		ServerName:   host,
		Certificates: []tls.Certificate{id.KeyPair},
		// The endpoint is judged by its SPIFFE ID or its pinned
		// fingerprint, not by host name; VerifyConnection does that.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs.PeerCertificates, id, rule, now())
		},
	}
	if alpn != "" {
		cfg.NextProtos = []string{alpn}
	}
	d := &tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to %s over mutual TLS: %w", addr, err)
	}
	return conn.(*tls.Conn), nil
}
