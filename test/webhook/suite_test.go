// Package webhook runs the admission webhooks behind a real API server and
// checks what they do to pods that go through it.
package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	iomtwebhook "github.com/medinaii/iomt-operator/internal/webhook"
)

const (
	operatorNamespace = "iomt-system"
	verifierImage     = "registry.example/iomt/verifier:test"
)

var (
	testEnv *envtest.Environment
	cfg     *rest.Config
	// k8s talks to the API server directly, never through a cache.
	k8s client.Client
	// cached reads what the webhooks read.
	cached client.Reader
	// opts are the options the webhooks run with.
	opts iomtwebhook.Options
	// servingCAs trusts the webhook server's certificate.
	servingCAs *x509.CertPool
	ctx        context.Context
	stopSuite  context.CancelFunc
	late       = &lateSidecar{}
)

func TestWebhook(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: point it at kube-apiserver and etcd " +
			"(make control-plane builds them into bin/k8s)")
	}
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	SetDefaultConsistentlyDuration(2 * time.Second)
	RunSpecs(t, "Admission webhooks")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, stopSuite = context.WithCancel(context.Background())

	opts = iomtwebhook.Options{OperatorNamespace: operatorNamespace, VerifierImage: verifierImage}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			MutatingWebhooks: []*admissionregistrationv1.MutatingWebhookConfiguration{
				iomtwebhook.MutatingConfiguration(opts), lateSidecarConfiguration(),
			},
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{
				iomtwebhook.ValidatingConfiguration(opts),
			},
		},
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: newScheme()})
	Expect(err).NotTo(HaveOccurred())

	// The webhook server uses the certificate envtest made and trusts.
	wio := &testEnv.WebhookInstallOptions
	opts.Host, opts.Port, opts.CertDir = wio.LocalServingHost, wio.LocalServingPort, wio.LocalServingCertDir
	servingCAs = x509.NewCertPool()
	Expect(servingCAs.AppendCertsFromPEM(wio.LocalServingCAData)).To(BeTrue())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:        newScheme(),
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: iomtwebhook.NewServer(opts),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(iomtwebhook.SetupWebhooks(mgr, opts)).To(Succeed())
	mgr.GetWebhookServer().Register(lateSidecarPath, &admission.Webhook{Handler: late})
	cached = mgr.GetClient()
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()

	Expect(k8s.Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace},
	})).To(Succeed())
	addr := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
	Eventually(func() error {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: servingCAs})
		if err != nil {
			return err
		}
		return conn.Close()
	}).Should(Succeed())
})

// newScheme knows the kinds the webhooks and the tests read and write.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(s)).To(Succeed())
	Expect(iomtv1.AddToScheme(s)).To(Succeed())
	return s
}

var _ = AfterSuite(func() {
	if stopSuite != nil {
		stopSuite()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
