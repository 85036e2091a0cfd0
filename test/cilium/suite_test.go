// Package cilium runs the operator against a real API server that starts
// without Cilium's CRDs and gains CiliumNetworkPolicy while the operator
// runs, and checks the policies it writes for either engine.
package cilium

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	crds "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/client/crds/v2"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/internal/segment"
	writelog "github.com/medinaii/iomt-operator/test/writes"
)

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8s       client.Client
	ctx       context.Context
	stopSuite context.CancelFunc
	// stopOperator stops the operator runOperator last started.
	stopOperator context.CancelFunc
	// writes counts the operator's writes.
	writes writelog.Log
)

func TestCilium(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: point it at kube-apiserver and etcd " +
			"(make control-plane builds them into bin/k8s)")
	}
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	RunSpecs(t, "Cilium")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, stopSuite = context.WithCancel(context.Background())

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())

	By("running the operator with the default engine, auto, before Cilium is installed")
	runOperator("")
})

// runOperator stops the running operator, if any, and starts it again in
// this process with the given --policy-engine value.
func runOperator(engine controllers.EngineMode) {
	if stopOperator != nil {
		stopOperator()
	}
	var opCtx context.Context
	opCtx, stopOperator = context.WithCancel(ctx)
	opts := controllers.Options{Segment: segment.DefaultConfig(), PolicyEngine: engine,
		EnginePollInterval: 300 * time.Millisecond}
	opCfg := rest.CopyConfig(cfg)
	opCfg.WrapTransport = writes.Wrap
	mgr, err := ctrl.NewManager(opCfg, ctrl.Options{
		Scheme:     controllers.NewScheme(),
		Cache:      controllers.CacheOptions(opts),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}, // restarted in one process
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(opCtx, mgr, opts)).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(opCtx)).To(Succeed())
	}()
}

var _ = AfterSuite(func() {
	if stopSuite != nil {
		stopSuite()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// installCiliumCRD installs the CiliumNetworkPolicy CRD shipped in
// Cilium's Go module, as a Cilium install would.
func installCiliumCRD() {
	raw, err := crds.EmbedFS.ReadFile("ciliumnetworkpolicies.yaml")
	Expect(err).NotTo(HaveOccurred())
	var crd apiextensionsv1.CustomResourceDefinition
	Expect(yaml.Unmarshal(raw, &crd)).To(Succeed())
	_, err = envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		CRDs: []*apiextensionsv1.CustomResourceDefinition{&crd},
	})
	Expect(err).NotTo(HaveOccurred())
}
