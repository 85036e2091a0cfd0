package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iomtwebhook "github.com/medinaii/iomt-operator/internal/webhook"
	writelog "github.com/medinaii/iomt-operator/test/writes"
)

// A second operator that manages its own serving certificate, with its own
// webhook configurations that only pods labelled rotationLabel reach, so the
// rest of the suite keeps envtest's certificate.
var _ = Describe("Managed serving certificates", Ordered, func() {
	const rotationLabel = "webhook.test/rotation"
	var (
		ropts  iomtwebhook.Options
		writes writelog.Log
		stop   context.CancelFunc
		ns     string
	)

	secretKey := func() client.ObjectKey {
		return client.ObjectKey{Namespace: operatorNamespace, Name: ropts.SecretName}
	}
	stored := func() (*corev1.Secret, error) {
		var s corev1.Secret
		err := k8s.Get(ctx, secretKey(), &s)
		return &s, err
	}
	caBundles := func() ([][]byte, error) {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		key := client.ObjectKey{Name: ropts.ConfigurationName}
		if err := k8s.Get(ctx, key, &m); err != nil {
			return nil, err
		}
		if err := k8s.Get(ctx, key, &v); err != nil {
			return nil, err
		}
		return [][]byte{m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle}, nil
	}
	// served is the certificate the webhook server presents now.
	served := func() ([]byte, error) {
		addr := net.JoinHostPort(ropts.Host, strconv.Itoa(ropts.Port))
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw, nil
	}
	// inPlace checks that the Secret, both caBundles, the files and the
	// served certificate agree.
	inPlace := func(g Gomega) *corev1.Secret {
		s, err := stored()
		g.Expect(err).NotTo(HaveOccurred())
		bundles, err := caBundles()
		g.Expect(err).NotTo(HaveOccurred())
		for _, b := range bundles {
			g.Expect(b).To(Equal(s.Data["ca.crt"]))
		}
		onDisk, err := os.ReadFile(filepath.Join(ropts.CertDir, "tls.crt"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(onDisk).To(Equal(s.Data["tls.crt"]))
		der, err := served()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pemDER(s.Data["tls.crt"])).To(Equal(der))
		return s
	}
	admitted := func() error {
		_, err := create(newPod(ns, "rot-"+randomSuffix()).device("pump-7").runsAs("pump-gateway").
			label(rotationLabel, "yes").build())
		return err
	}

	BeforeAll(func() {
		ns = newNamespace()
		newDevice(ns, "pump-7", "pump-gateway")

		l, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		port := l.Addr().(*net.TCPAddr).Port
		Expect(l.Close()).To(Succeed())
		ropts = iomtwebhook.Options{
			OperatorNamespace:  operatorNamespace,
			VerifierImage:      verifierImage,
			ConfigurationName:  "iomt-operator-rotation",
			SecretName:         "iomt-operator-rotation-tls",
			Host:               "127.0.0.1",
			Port:               port,
			CertDir:            GinkgoT().TempDir(),
			ManageCertificates: true,
			CertHosts:          []string{"127.0.0.1"},
			CertCheckInterval:  300 * time.Millisecond,
		}

		// The configurations as shipped, pointed at this server by URL, with
		// no caBundle: until the operator fills it in, pods are refused.
		byURL := func(path string) admissionregistrationv1.WebhookClientConfig {
			u := fmt.Sprintf("https://127.0.0.1:%d%s", port, path)
			return admissionregistrationv1.WebhookClientConfig{URL: &u}
		}
		only := func(sel *metav1.LabelSelector) {
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: rotationLabel, Operator: metav1.LabelSelectorOpExists,
			})
		}
		m := iomtwebhook.MutatingConfiguration(ropts)
		m.Webhooks[0].ClientConfig = byURL(iomtwebhook.MutatePodPath)
		only(m.Webhooks[0].ObjectSelector)
		v := iomtwebhook.ValidatingConfiguration(ropts)
		v.Webhooks[0].ClientConfig = byURL(iomtwebhook.ValidatePodPath)
		only(v.Webhooks[0].ObjectSelector)
		Expect(k8s.Create(ctx, m)).To(Succeed())
		Expect(k8s.Create(ctx, v)).To(Succeed())
		DeferCleanup(func() {
			Expect(k8s.Delete(ctx, m)).To(Succeed())
			Expect(k8s.Delete(ctx, v)).To(Succeed())
		})
		Expect(admitted()).To(HaveOccurred(), "no caBundle yet: the webhooks fail closed")

		opCfg := rest.CopyConfig(cfg)
		opCfg.WrapTransport = writes.Wrap
		mgr, err := ctrl.NewManager(opCfg, ctrl.Options{
			Scheme:                 newScheme(),
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
			WebhookServer:          iomtwebhook.NewServer(ropts),
		})
		Expect(err).NotTo(HaveOccurred())
		Expect(iomtwebhook.SetupWebhooks(mgr, ropts)).To(Succeed())
		var mctx context.Context
		mctx, stop = context.WithCancel(ctx)
		go func() {
			defer GinkgoRecover()
			Expect(mgr.Start(mctx)).To(Succeed())
		}()
		DeferCleanup(func() { stop() })
	})

	It("should issue the certificate, publish its CA and serve it", func() {
		var s *corev1.Secret
		Eventually(func(g Gomega) { s = inPlace(g) }).Should(Succeed())
		Expect(s.Type).To(Equal(corev1.SecretTypeTLS))
		leaf, err := x509.ParseCertificate(pemDER(s.Data["tls.crt"]))
		Expect(err).NotTo(HaveOccurred())
		Expect(leaf.DNSNames).To(ContainElement("iomt-operator-webhook.iomt-system.svc"))
		Expect(leaf.NotAfter).To(BeTemporally("~", time.Now().Add(90*24*time.Hour), time.Hour))

		Eventually(admitted).Should(Succeed(), "the API server trusts the served certificate")
	})

	It("should leave other webhook configurations alone", func() {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		Expect(k8s.Get(ctx, client.ObjectKey{Name: "iomt-operator"}, &m)).To(Succeed())
		Expect(m.Webhooks[0].ClientConfig.CABundle).To(Equal(testEnv.WebhookInstallOptions.LocalServingCAData))
	})

	It("should write nothing while the certificate is good", func() {
		before := writes.Total()
		Consistently(writes.Total).Should(Equal(before))
	})

	It("should restore a caBundle someone emptied", func() {
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		Expect(k8s.Get(ctx, client.ObjectKey{Name: ropts.ConfigurationName}, &v)).To(Succeed())
		v.Webhooks[0].ClientConfig.CABundle = nil
		Expect(k8s.Update(ctx, &v)).To(Succeed())
		Eventually(func(g Gomega) { inPlace(g) }).Should(Succeed())
	})

	It("should move to a new CA without cutting off the old certificate", func() {
		old, err := stored()
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Delete(ctx, old)).To(Succeed())

		var renewed *corev1.Secret
		Eventually(func(g Gomega) {
			renewed = inPlace(g)
			g.Expect(renewed.UID).NotTo(Equal(old.UID))
		}).Should(Succeed())
		Expect(renewed.Data["tls.crt"]).NotTo(Equal(old.Data["tls.crt"]))
		Expect(bytes.HasSuffix(renewed.Data["ca.crt"], old.Data["ca.crt"])).To(BeTrue(),
			"the old CA stays trusted after the new one")
		Eventually(admitted).Should(Succeed())
	})
})

// pemDER returns the DER of the first certificate in a PEM bundle.
func pemDER(bundle []byte) []byte {
	GinkgoHelper()
	block, _ := pem.Decode(bundle)
	Expect(block).NotTo(BeNil())
	return block.Bytes
}
