package verifier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medinaii/iomt-operator/internal/attest"
)

// Verifier runs the checks every interval and reports them.
type Verifier struct {
	cfg      Config
	log      *slog.Logger
	metrics  *Metrics
	ids      *IdentitySource
	probe    FirmwareProbe
	client   *attest.Client
	now      func() time.Time
	started  time.Time
	lastDone atomic.Int64
}

// New makes a verifier of a completed configuration.
func New(cfg Config, log *slog.Logger) *Verifier {
	m := NewMetrics()
	v := &Verifier{
		cfg:     cfg,
		log:     log,
		metrics: m,
		ids:     &IdentitySource{Dir: cfg.IdentityDir, Log: log, Metrics: m},
		probe:   newProbe(cfg),
		now:     time.Now,
	}
	attempts, backoff := retryPolicy(cfg.Interval)
	v.client = &attest.Client{URL: cfg.AttestationURL, TLS: v.clientTLS, Attempts: attempts,
		Backoff: backoff}
	return v
}

// Metrics are the verifier's metrics.
func (v *Verifier) Metrics() *Metrics { return v.metrics }

// retryAttempts is how often a report is tried per round.
const retryAttempts = 4

// retryPolicy spreads a round's retries over at most half the interval,
// so that a report is given up before the next round's report replaces
// it: the waits are b, 2b and 4b, 7b in all.
func retryPolicy(interval time.Duration) (attempts int, backoff time.Duration) {
	backoff = interval / 16
	backoff = min(max(backoff, 50*time.Millisecond), 2*time.Second)
	return retryAttempts, backoff
}

// checkBudget is how long a round's checks may take.
func checkBudget(interval time.Duration) time.Duration {
	return min(max(interval/2, time.Second), 10*time.Second)
}

// clientTLS presents the current device certificate to the attestation
// endpoint and trusts the bundle for the endpoint's certificate.
func (v *Verifier) clientTLS() (*tls.Config, error) {
	id := v.ids.Current()
	if id == nil {
		return nil, errors.New("no device identity loaded")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{id.KeyPair},
		RootCAs:      id.Roots,
	}, nil
}

// Run checks and reports every interval until ctx ends. It fails only
// when the health endpoint cannot listen.
func (v *Verifier) Run(ctx context.Context) error {
	v.started = v.now()
	if v.cfg.HealthAddr != "" {
		ln, err := net.Listen("tcp", v.cfg.HealthAddr)
		if err != nil {
			return fmt.Errorf("failed to listen on %s: %w", v.cfg.HealthAddr, err)
		}
		v.log.Info("Serving health and metrics", "address", ln.Addr().String())
		srv := &http.Server{Handler: v.healthHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer func() {
			shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
		}()
	}

	if _, err := v.ids.Reload(); err != nil {
		v.ids.logRejected(err)
	}
	go v.ids.Watch(ctx, v.cfg.ReloadEvery)
	v.log.Info("Verifying", "interval", v.cfg.Interval, "endpoint", v.cfg.Endpoint,
		"firmwareProbe", v.cfg.FirmwareProbe, "attestationURL", v.cfg.AttestationURL)

	t := time.NewTicker(v.cfg.Interval)
	defer t.Stop()
	for {
		v.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce runs one round: the checks, then the report.
func (v *Verifier) RunOnce(ctx context.Context) {
	defer v.lastDone.Store(v.now().UnixNano())
	rep, ok := v.Check(ctx)
	if !ok {
		return
	}
	sendCtx, cancel := context.WithTimeout(ctx, v.cfg.Interval)
	defer cancel()
	err := v.client.Send(sendCtx, rep)
	v.metrics.reported(err == nil, v.now())
	if err != nil {
		v.log.Error("Failed to report", "device", rep.Device, "error", err)
		return
	}
	if failures := rep.Failures(); len(failures) > 0 {
		v.log.Warn("Reported failed checks", "device", rep.Device, "failures", failures)
		return
	}
	v.log.Debug("Reported", "device", rep.Device)
}

// Check runs every check once and returns the report. It reports false
// when there is nothing to report with: no identity loaded, or no device
// to speak for.
func (v *Verifier) Check(ctx context.Context) (attest.Report, bool) {
	id := v.ids.Current()
	if id == nil {
		v.log.Warn("Not checking: no device identity loaded", "dir", v.cfg.IdentityDir)
		return attest.Report{}, false
	}
	device, ok := v.device(id)
	if !ok {
		v.log.Error("Not checking: the certificate names no device of the trust domain; "+
			"give --device", "spiffeID", id.SPIFFEID, "trustDomain", v.cfg.TrustDomain)
		return attest.Report{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, checkBudget(v.cfg.Interval))
	defer cancel()

	var checks []attest.Check
	record := func(c attest.Check) {
		v.metrics.checked(c.Name, c.Passed)
		checks = append(checks, c)
	}
	record(checkIdentity(id, v.now()))

	var conn *tls.Conn
	if v.cfg.Endpoint != "" {
		var alpn string
		if v.probe != nil {
			alpn = v.probe.Protocol()
		}
		rule := v.peerRule(id)
		c, err := dialEndpoint(ctx, v.cfg.Endpoint, id, rule, alpn, v.now)
		if err != nil {
			record(attest.Check{Name: CheckEndpoint, Detail: err.Error()})
		} else {
			conn = c
			defer conn.Close()
			record(attest.Check{Name: CheckEndpoint, Passed: true,
				Detail: fmt.Sprintf("%s presents %s", v.cfg.Endpoint, rule)})
		}
	}

	var firmware *attest.Firmware
	if v.probe != nil {
		fw, err := v.probe.Firmware(ctx, conn)
		if err != nil {
			record(attest.Check{Name: CheckFirmware, Detail: fmt.Sprintf("%s: %v", v.probe, err)})
		} else {
			firmware = &fw
			record(attest.Check{Name: CheckFirmware, Passed: true,
				Detail: fmt.Sprintf("%s: version %s", v.probe, fw.Version)})
		}
	}
	// Time is when the checks finished, so the operator's view of how
	// fresh a finding is does not include the checks' own duration.
	rep := attest.Report{Device: device.String(), Time: v.now(), Checks: checks, Firmware: firmware}
	return rep, true
}

// device is the device reported for: the one given, or the one the
// certificate names.
func (v *Verifier) device(id *Identity) (types.NamespacedName, bool) {
	if v.cfg.Device.Name != "" {
		return v.cfg.Device, true
	}
	return id.Device(v.cfg.TrustDomain)
}

// peerRule is what the endpoint must present: the SPIFFE ID and
// fingerprint given, or the device's own SPIFFE ID when neither is.
func (v *Verifier) peerRule(id *Identity) peerRule {
	r := peerRule{SPIFFEID: v.cfg.ServerSPIFFEID, Fingerprint: v.cfg.ServerFingerprint}
	if r.SPIFFEID == "" && r.Fingerprint == "" {
		r.SPIFFEID = id.SPIFFEID
	}
	return r
}

// healthHandler serves /healthz and /metrics. Healthy means an identity
// is loaded and rounds keep finishing; failed checks are the operator's
// business, not a reason to restart the sidecar.
func (v *Verifier) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(v.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := v.healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

func (v *Verifier) healthy() error {
	if v.ids.Current() == nil {
		return errors.New("no device identity loaded")
	}
	last := v.started
	if n := v.lastDone.Load(); n != 0 {
		last = time.Unix(0, n)
	}
	// A round takes at most its checks and its report, an interval each.
	if stale := v.now().Sub(last); stale > 3*v.cfg.Interval+checkBudget(v.cfg.Interval) {
		return fmt.Errorf("no round finished for %s", stale.Round(time.Second))
	}
	return nil
}
