// Package e2e runs the verifier sidecar as its own process against the
// operator: a local kube-apiserver and etcd, the controllers and the
// attestation endpoint in this process, simulated devices serving mutual
// TLS, and what the generated NetworkPolicies allow judged by an
// independent evaluator.
package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/internal/segment"
	"github.com/medinaii/iomt-operator/test/clinic"
	"github.com/medinaii/iomt-operator/test/devicesim"
)

// trustDomain is the SPIFFE trust domain of the test devices.
const trustDomain = "iomt.local"

var (
	repoRoot = filepath.Join("..", "..")
	// ctx lives as long as the suite.
	ctx       context.Context
	stopSuite context.CancelFunc
	cp        *clinic.ControlPlane
	// k8s reads straight from the API server and can watch.
	k8s client.WithWatch
	// arrivals records every report the attestation endpoint accepted
	// before handing it to the operator.
	arrivals = &reportLog{byDevice: map[types.NamespacedName][]arrival{}}
	pki      *devicesim.PKI
	// attestationURL is where verifiers report.
	attestationURL string
	// verifierBin is the verifier built for this run.
	verifierBin string
	// operatorPod and dnsPod stand in for the operator and cluster DNS.
	operatorPod, dnsPod clinic.Endpoint
)

func TestE2E(t *testing.T) {
	if os.Getenv(clinic.AssetsEnv) == "" {
		t.Skip(clinic.AssetsEnv + " is not set: point it at kube-apiserver and etcd " +
			"(make control-plane builds them into bin/k8s)")
	}
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	SetDefaultConsistentlyPollingInterval(200 * time.Millisecond)
	RunSpecs(t, "Verifier end to end")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, stopSuite = context.WithCancel(context.Background())

	By("building the verifier")
	verifierBin = filepath.Join(GinkgoT().TempDir(), "verifier")
	build := exec.Command("go", "build", "-o", verifierBin, "./cmd/verifier")
	build.Dir = repoRoot
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build ./cmd/verifier: %s", out)

	By("starting kube-apiserver and etcd")
	cp, err = clinic.StartControlPlane(filepath.Join(repoRoot, "config", "crd", "bases"))
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.NewWithWatch(cp.Config, client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())

	By("running the operator in this process")
	reports := controllers.NewReports()
	opts := controllers.Options{Segment: segment.DefaultConfig(), Reports: reports}
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Cache:                  controllers.CacheOptions(opts),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(ctx, mgr, opts)).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()

	By("serving the attestation endpoint on a local port")
	pki, err = devicesim.NewPKI(trustDomain)
	Expect(err).NotTo(HaveOccurred())
	leaf, err := pki.Issue("iomt-system", "iomt-operator", time.Now().Add(-time.Minute), 24*time.Hour,
		"localhost")
	Expect(err).NotTo(HaveOccurred())
	serving, err := devicesim.KeyPair(leaf)
	Expect(err).NotTo(HaveOccurred())
	srv := &attest.Server{
		TrustDomain: trustDomain,
		ClientCAs:   pki.Pool,
		Sink: func(d types.NamespacedName, r attest.Report, at time.Time) {
			arrivals.add(d, r, at)
			reports.Accept(d, r, at)
		},
	}
	port := freePort()
	attestationURL = fmt.Sprintf("https://localhost:%d", port)
	go func() {
		defer GinkgoRecover()
		Expect(srv.ListenAndServe(ctx, fmt.Sprintf("127.0.0.1:%d", port),
			func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil })).To(Succeed())
	}()
	probe, err := pki.Issue("iomt-system", "probe", time.Now().Add(-time.Minute), time.Hour)
	Expect(err).NotTo(HaveOccurred())
	probeKP, err := devicesim.KeyPair(probe)
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() error {
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
			MinVersion: tls.VersionTLS12, ServerName: "localhost", RootCAs: pki.Pool(),
			Certificates: []tls.Certificate{probeKP},
		})
		if err == nil {
			_ = c.Close()
		}
		return err
	}).Should(Succeed())

	By("standing in pods for the operator and cluster DNS")
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "iomt-system"}})).
		To(Succeed())
	operatorPod = newPod("iomt-system", "iomt-operator-0",
		segment.DefaultConfig().AttestationPodLabels)
	dnsPod = newPod("kube-system", "coredns-0", map[string]string{"k8s-app": "kube-dns"})
})

var _ = AfterSuite(func() {
	if stopSuite != nil {
		stopSuite()
	}
	if cp != nil {
		Expect(cp.Stop()).To(Succeed())
	}
})

// freePort is a TCP port nothing listens on just now.
func freePort() int {
	GinkgoHelper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// arrival is a report as the attestation endpoint accepted it.
type arrival struct {
	At     time.Time
	Report attest.Report
}

// reportLog is every accepted report, by device.
type reportLog struct {
	mu       sync.Mutex
	byDevice map[types.NamespacedName][]arrival
}

func (l *reportLog) add(d types.NamespacedName, r attest.Report, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byDevice[d] = append(l.byDevice[d], arrival{At: at, Report: r})
}

// of returns the reports for a device that arrived at or after since.
func (l *reportLog) of(d types.NamespacedName, since time.Time) []arrival {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []arrival
	for _, a := range l.byDevice[d] {
		if !a.At.Before(since) {
			out = append(out, a)
		}
	}
	return out
}
