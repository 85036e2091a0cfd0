package verifier

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/test/devicesim"
)

var pump7 = types.NamespacedName{Namespace: "icu", Name: "pump-7"}

func TestRunOnceReportsForTheDeviceItsCertificateNames(t *testing.T) {
	p := newPKI(t)
	dir, leaf := identityDir(t, p, "icu", "pump-7")
	sim := startSimulator(t, p, leaf, attest.Firmware{Version: "8.01.01"})
	url, got := startAttestation(t, p, nil)
	v := newVerifier(t, Config{IdentityDir: dir, AttestationURL: url, Endpoint: sim.Addr(),
		FirmwareProbe: ProbeHTTPSJSON})

	before := time.Now()
	v.RunOnce(t.Context())
	reports := got.of(pump7)
	if len(reports) != 1 {
		t.Fatalf("the endpoint got %d reports for %s, want 1", len(reports), pump7)
	}
	rep := reports[0]
	if rep.Device != "icu/pump-7" || rep.Time.Before(before) || len(rep.Failures()) != 0 ||
		rep.Firmware == nil || rep.Firmware.Version != "8.01.01" || len(rep.Checks) != 3 {
		t.Errorf("report %+v", rep)
	}
	m := v.Metrics()
	if n := value(t, m.reports.WithLabelValues("sent")); n != 1 {
		t.Errorf("%v reports counted as sent, want 1", n)
	}
	for _, name := range []string{CheckIdentity, CheckEndpoint, CheckFirmware} {
		if n := value(t, m.checks.WithLabelValues(name, "pass")); n != 1 {
			t.Errorf("%v passes of %s counted, want 1", n, name)
		}
	}
	if ts := value(t, m.lastSuccess); ts < float64(before.Unix()) {
		t.Errorf("last success %v is before the round", ts)
	}
	if exp := value(t, m.certExpiry); exp != float64(leaf.Cert.NotAfter.Unix()) {
		t.Errorf("certificate expiry %v, want %d", exp, leaf.Cert.NotAfter.Unix())
	}
}

func TestRunOnceCannotSpeakForAnotherDevice(t *testing.T) {
	p := newPKI(t)
	dir, _ := identityDir(t, p, "icu", "pump-7")
	url, got := startAttestation(t, p, nil)
	other := types.NamespacedName{Namespace: "icu", Name: "pump-8"}
	v := newVerifier(t, Config{IdentityDir: dir, AttestationURL: url, Device: other})

	v.RunOnce(t.Context())
	if n := len(got.of(other)) + len(got.of(pump7)); n != 0 {
		t.Errorf("the endpoint accepted %d reports from a verifier speaking for another device", n)
	}
	if n := value(t, v.Metrics().reports.WithLabelValues("failed")); n != 1 {
		t.Errorf("%v reports counted as failed, want 1", n)
	}
}

func TestRetryPolicyStaysWithinHalfAnInterval(t *testing.T) {
	for _, interval := range []time.Duration{time.Second, 5 * time.Second, 30 * time.Second,
		10 * time.Minute, time.Hour} {
		attempts, backoff := retryPolicy(interval)
		var waited time.Duration
		for i, wait := 1, backoff; i < attempts; i, wait = i+1, wait*2 {
			waited += wait
		}
		if attempts < 2 || waited > interval/2 {
			t.Errorf("interval %s: %d attempts waiting %s in all; want retries within %s",
				interval, attempts, waited, interval/2)
		}
	}
}

func TestRunOnceRetriesAFailingEndpointAndGivesUpWithinTheInterval(t *testing.T) {
	p := newPKI(t)
	dir, _ := identityDir(t, p, "icu", "pump-7")
	var mu sync.Mutex
	var tries []time.Time
	url, got := startAttestation(t, p, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			tries = append(tries, time.Now())
			mu.Unlock()
			http.Error(w, "busy", http.StatusServiceUnavailable)
		})
	})
	v := newVerifier(t, Config{IdentityDir: dir, AttestationURL: url, Interval: 2 * time.Second})

	start := time.Now()
	v.RunOnce(t.Context())
	took := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if len(tries) != retryAttempts {
		t.Errorf("%d tries, want %d", len(tries), retryAttempts)
	}
	if took > 2*time.Second {
		t.Errorf("the round took %s, longer than its interval", took)
	}
	for i := 2; i < len(tries); i++ {
		if tries[i].Sub(tries[i-1]) < tries[i-1].Sub(tries[i-2]) {
			t.Errorf("waits do not grow: %v", tries)
		}
	}
	if len(got.of(pump7)) != 0 {
		t.Error("a report arrived through a failing endpoint")
	}
	if n := value(t, v.Metrics().reports.WithLabelValues("failed")); n != 1 {
		t.Errorf("%v reports counted as failed, want 1", n)
	}
}

func TestRunReloadsTheIdentityAndReportsEveryInterval(t *testing.T) {
	p := newPKI(t)
	dir, _ := identityDir(t, p, "icu", "pump-7")
	url, got := startAttestation(t, p, nil)
	cfg := Config{IdentityDir: dir, AttestationURL: url, Interval: time.Second,
		TrustDomain: trustDomain, ReloadEvery: 50 * time.Millisecond}
	if err := cfg.complete(); err != nil {
		t.Fatal(err)
	}
	v := New(cfg, quietLog())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()

	waitFor(t, 5*time.Second, func() bool { return len(got.of(pump7)) >= 1 })
	renewed := issue(t, p, "icu", "pump-7", time.Now(), leafLife)
	if err := devicesim.WriteAtomically(dir, p.IdentityFiles(renewed)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		return v.ids.Current().Leaf.SerialNumber.Cmp(renewed.Cert.SerialNumber) == 0
	})
	sent := len(got.of(pump7))
	waitFor(t, 5*time.Second, func() bool { return len(got.of(pump7)) > sent })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHealthzNeedsAnIdentityAndMetricsAreServed(t *testing.T) {
	p := newPKI(t)
	dir, _ := identityDir(t, p, "icu", "pump-7")
	cfg := Config{IdentityDir: t.TempDir(), AttestationURL: "https://localhost:1",
		Interval: time.Second, TrustDomain: trustDomain}
	if err := cfg.complete(); err != nil {
		t.Fatal(err)
	}
	v := New(cfg, quietLog())
	v.started = time.Now()
	srv := httptest.NewServer(v.healthHandler())
	defer srv.Close()

	if code, body := get(t, srv.URL+"/healthz"); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "no device identity") {
		t.Errorf("healthz %d %q without an identity, want 503", code, body)
	}
	v.ids.Dir = dir
	if _, err := v.ids.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz %d with an identity, want 200", code)
	}
	v.metrics.checked(CheckIdentity, true)
	_, body := get(t, srv.URL+"/metrics")
	for _, name := range []string{"iomt_verifier_checks_total",
		"iomt_verifier_certificate_expiry_timestamp_seconds", "iomt_verifier_identity_reloads_total",
		"go_goroutines"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	t.Fatalf("%s is neither counter nor gauge", m.Desc())
	return 0
}
