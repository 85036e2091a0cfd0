// Package connectivity builds clinics through a real API server, lets the
// operator run against them, and checks what the NetworkPolicies it wrote
// allow with an independent NetworkPolicy evaluator.
package connectivity

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/internal/segment"
)

var (
	testEnv *envtest.Environment
	// k8s talks to the API server directly, never through a cache, so what
	// a test reads is what the cluster holds.
	k8s client.Client
	// ctx lives as long as the suite.
	ctx       context.Context
	stopSuite context.CancelFunc
	// dns are the cluster DNS pods and bystander a pod beside them that
	// does not serve DNS.
	dns       []endpoint
	bystander endpoint
)

func TestConnectivity(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: point it at kube-apiserver and etcd " +
			"(make control-plane builds them into bin/k8s)")
	}
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	SetDefaultConsistentlyDuration(2 * time.Second)
	RunSpecs(t, "Connectivity")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, stopSuite = context.WithCancel(context.Background())

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8s, err = client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())

	By("running the operator in this process")
	opts := controllers.Options{Segment: segment.DefaultConfig()}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  controllers.NewScheme(),
		Cache:   controllers.CacheOptions(opts),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(ctx, mgr, opts)).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()

	By("starting cluster DNS in kube-system")
	dns = []endpoint{
		newPod("kube-system", "coredns-0", labels("k8s-app", "kube-dns")),
		newPod("kube-system", "coredns-1", labels("k8s-app", "kube-dns")),
	}
	bystander = newPod("kube-system", "metrics-server-0", labels("k8s-app", "metrics-server"))
})

var _ = AfterSuite(func() {
	if stopSuite != nil {
		stopSuite()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
