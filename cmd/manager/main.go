// Command manager runs the iomt-operator: it turns MedicalDevices and
// SegmentPolicies into enforced NetworkPolicies.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/internal/segment"
)

func main() {
	var (
		metricsAddr   string
		probeAddr     string
		leaderElect   bool
		dnsNamespace  string
		dnsPodLabels  string
		secureMetrics bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443",
		"Address the metrics endpoint listens on; 0 turns it off.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS (TLS 1.2 or newer), allowing only callers Kubernetes authorizes.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the health probes.")
	flag.BoolVar(&leaderElect, "leader-elect", false,
		"Elect a leader, so that only one of several replicas writes.")
	flag.StringVar(&dnsNamespace, "dns-namespace", "kube-system", "Namespace of the cluster DNS pods.")
	flag.StringVar(&dnsPodLabels, "dns-pod-labels", "k8s-app=kube-dns",
		"Labels of the cluster DNS pods, as k=v[,k=v].")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	setupLog := ctrl.Log.WithName("setup")

	if err := run(metricsAddr, secureMetrics, probeAddr, leaderElect, dnsNamespace, dnsPodLabels); err != nil {
		setupLog.Error(err, "Operator stopped")
		os.Exit(1)
	}
}

func run(metricsAddr string, secureMetrics bool, probeAddr string, leaderElect bool,
	dnsNamespace, dnsPodLabels string) error {
	dnsLabels, err := labels.ConvertSelectorToLabelsMap(strings.TrimSpace(dnsPodLabels))
	if err != nil {
		return fmt.Errorf("failed to parse --dns-pod-labels: %w", err)
	}

	metricsOpts := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }},
	}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Cache:                  controllers.CacheOptions(),
		Metrics:                metricsOpts,
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "iomt-operator.iomt.medinaii.io",
	})
	if err != nil {
		return fmt.Errorf("failed to create manager: %w", err)
	}

	ctx := ctrl.SetupSignalHandler()
	cfg := segment.Config{DNSNamespace: dnsNamespace, DNSPodLabels: dnsLabels}
	if err := controllers.Setup(ctx, mgr, controllers.Options{Segment: cfg}); err != nil {
		return fmt.Errorf("failed to set up controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add ready check: %w", err)
	}
	return mgr.Start(ctx)
}
