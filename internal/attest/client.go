package attest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client sends reports to the attestation endpoint.
type Client struct {
	// URL is the endpoint's base URL, https://host:port.
	URL string
	// TLS returns the client TLS configuration: the device certificate
	// and the CAs that sign the endpoint's certificate. It is asked for
	// every connection, so rotated files are picked up.
	TLS func() (*tls.Config, error)
	// Attempts is how often a report is tried, at least once.
	Attempts int
	// Backoff is the wait before the first retry; it doubles each time.
	Backoff time.Duration
}

// Send posts a report, retrying with backoff on network errors and server
// errors. A refusal (4xx) is not retried: the report will not get better.
func (c *Client) Send(ctx context.Context, r Report) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("failed to encode report: %w", err)
	}
	attempts := max(c.Attempts, 1)
	wait := c.Backoff
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		}
		retry, err := c.post(ctx, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			break
		}
	}
	return last
}

func (c *Client) post(ctx context.Context, body []byte) (retry bool, err error) {
	cfg, err := c.TLS()
	if err != nil {
		return true, fmt.Errorf("failed to load TLS configuration: %w", err)
	}
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	hc := &http.Client{
		Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+Path,
		bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("failed to build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return true, fmt.Errorf("failed to send report: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode == http.StatusAccepted:
		return false, nil
	case resp.StatusCode >= 500:
		return true, fmt.Errorf("attestation endpoint failed: %s: %s", resp.Status, bytes.TrimSpace(msg))
	default:
		return false, fmt.Errorf("attestation endpoint refused the report: %s: %s", resp.Status,
			bytes.TrimSpace(msg))
	}
}
