package identity_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/internal/segment"
	"github.com/medinaii/iomt-operator/test/clinic"
	writelog "github.com/medinaii/iomt-operator/test/writes"
)

const (
	// operatorNamespace holds the CA Secret.
	operatorNamespace = "iomt-system"
	// lifetime is the operator's default certificate lifetime here, short
	// enough that renewal (after 6s) and the end of a rotation (once the
	// old CA's certificates expire) happen within a spec.
	lifetime = 9 * time.Second
	// propagationDelay keeps a rotation in its first phase long enough to
	// be seen.
	propagationDelay = 2 * time.Second
)

var (
	testEnv *envtest.Environment
	k8s     client.Client
	// opCfg is the operator's connection to the API server.
	opCfg        *rest.Config
	writes       = &writelog.Log{}
	stopOperator func()
)

func TestIdentity(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set; run make test")
	}
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	RunSpecs(t, "Device identity")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	crds, err := clinic.CertManagerCRDs()
	Expect(err).NotTo(HaveOccurred())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     append([]string{filepath.Join("..", "..", "config", "crd", "bases")}, crds...),
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8s, err = client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8s.Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace},
	})).To(Succeed())

	// The operator gets its own connection whose writes are counted per
	// namespace, so a spec can tell whether a steady namespace sees any.
	opCfg = rest.CopyConfig(cfg)
	opCfg.WrapTransport = writes.Wrap
	startOperator()
})

// startOperator starts the operator in this process: the segment
// controllers too, since they write the same status and neither may undo
// the other's fields.
func startOperator() {
	segmentOpts := controllers.Options{Segment: segment.DefaultConfig(), Namespace: operatorNamespace}
	cacheOpts := controllers.CacheOptions(segmentOpts)
	cacheOpts.ByObject = maps.Clone(cacheOpts.ByObject)
	maps.Copy(cacheOpts.ByObject, controllers.IdentityCacheObjects())
	mgr, err := ctrl.NewManager(opCfg, ctrl.Options{
		Scheme:     controllers.NewScheme(),
		Cache:      cacheOpts,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}, // restarted within one process
	})
	Expect(err).NotTo(HaveOccurred())

	ctx, cancel := context.WithCancel(context.Background())
	Expect(controllers.Setup(ctx, mgr, segmentOpts)).To(Succeed())
	Expect(controllers.SetupIdentity(ctx, mgr, controllers.IdentityOptions{
		OperatorNamespace: operatorNamespace,
		DefaultLifetime:   lifetime,
		PropagationDelay:  propagationDelay,
		CertManager:       controllers.CertManagerOptions{IssuerName: "clinic-ca"},
	})).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	stopOperator = func() {
		cancel()
		<-done
	}
}

var _ = AfterSuite(func() {
	if stopOperator != nil {
		stopOperator()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
