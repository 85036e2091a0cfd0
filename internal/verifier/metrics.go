package verifier

import (
	"crypto/x509"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are what the verifier exposes on /metrics.
type Metrics struct {
	// Registry holds the verifier's metrics and the Go and process ones.
	Registry *prometheus.Registry

	checks      *prometheus.CounterVec
	reports     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	certExpiry  prometheus.Gauge
	reloads     *prometheus.CounterVec
}

// NewMetrics registers the verifier's metrics in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_verifier_checks_total",
			Help: "Checks run, by check (identity, endpoint, firmware) and result (pass, fail).",
		}, []string{"check", "result"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_verifier_reports_total",
			Help: "Reports to the attestation endpoint, by result: sent (accepted) or failed " +
				"(refused, or not delivered after every retry).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "iomt_verifier_last_report_success_timestamp_seconds",
			Help: "When the attestation endpoint last accepted a report, in seconds since the epoch.",
		}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "iomt_verifier_certificate_expiry_timestamp_seconds",
			Help: "When the device certificate in use expires, in seconds since the epoch.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iomt_verifier_identity_reloads_total",
			Help: "Reads of a changed identity directory, by result: loaded, or rejected " +
				"(the previous identity stays in use).",
		}, []string{"result"}),
	}
	m.Registry.MustRegister(m.checks, m.reports, m.lastSuccess, m.certExpiry, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func result(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func (m *Metrics) checked(name string, passed bool) {
	if m != nil {
		m.checks.WithLabelValues(name, result(passed, "pass", "fail")).Inc()
	}
}

func (m *Metrics) reported(sent bool, at time.Time) {
	if m == nil {
		return
	}
	m.reports.WithLabelValues(result(sent, "sent", "failed")).Inc()
	if sent {
		m.lastSuccess.Set(float64(at.UnixNano()) / 1e9)
	}
}

func (m *Metrics) reloaded(ok bool) {
	if m != nil {
		m.reloads.WithLabelValues(result(ok, "loaded", "rejected")).Inc()
	}
}

func (m *Metrics) certificate(c *x509.Certificate) {
	if m != nil {
		m.certExpiry.Set(float64(c.NotAfter.Unix()))
	}
}
