package identity_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/identity"
)

const managedBy = "app.kubernetes.io/managed-by"

var _ = Describe("Device identity", func() {
	Context("when a device is created", func() {
		It("should get a certificate for its SPIFFE ID that verifies against its namespace's bundle",
			func(ctx SpecContext) {
				ns := newNamespace(ctx, nil, nil)
				newDevice(ctx, ns, "pump-1", withDNSNames("pump-1.icu.clinic"),
					withLabels(map[string]string{"team": "icu", "argocd.argoproj.io/instance": "clinic"}))
				dev := issued(ctx, ns, "pump-1")

				var s *corev1.Secret
				var leaf *x509.Certificate
				Eventually(func(g Gomega) {
					var err error
					s, leaf, err = secretLeaf(ctx, ns, "pump-1")
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
					g.Expect(dev.Status.Identity.SerialNumber).To(Equal(leaf.SerialNumber.Text(16)))
				}).Should(Succeed())

				By("storing it as a TLS Secret the device owns, with the operator's labels only")
				Expect(s.Type).To(Equal(corev1.SecretTypeTLS))
				Expect(s.Data).To(HaveKey("tls.key"))
				Expect(s.Labels).To(HaveKeyWithValue(managedBy, "iomt-operator"))
				Expect(s.Labels).NotTo(HaveKey("team"))
				Expect(s.Labels).NotTo(HaveKey("argocd.argoproj.io/instance"))
				Expect(metav1.IsControlledBy(s, dev)).To(BeTrue())

				By("naming the device by its SPIFFE ID and DNS names")
				Expect(leaf.URIs).To(HaveLen(1))
				Expect(leaf.URIs[0].String()).To(Equal(spiffeID(ns, "pump-1")))
				Expect(leaf.DNSNames).To(Equal([]string{"pump-1.icu.clinic"}))
				Expect(leaf.NotAfter.Sub(leaf.NotBefore)).To(Equal(lifetime))

				By("verifying against the namespace's bundle and the Secret's ca.crt")
				var bundle []byte
				Eventually(func() error {
					var err error
					bundle, err = bundleIn(ctx, ns)
					return err
				}).Should(Succeed())
				Expect(verify(leaf, bundle, time.Now())).To(Succeed())
				Expect(verify(leaf, s.Data["ca.crt"], time.Now())).To(Succeed())

				By("recording it in status next to the segment's conditions")
				id := dev.Status.Identity
				Expect(id.SPIFFEID).To(Equal(spiffeID(ns, "pump-1")))
				Expect(id.SecretName).To(Equal("pump-1-identity"))
				Expect(id.Issuer).To(HavePrefix("iomt-operator device CA sha256:"))
				Expect(id.Lifetime.Duration).To(Equal(lifetime))
				Expect(id.NotBefore.Time).To(BeTemporally("==", leaf.NotBefore))
				Expect(id.NotAfter.Time).To(BeTemporally("==", leaf.NotAfter))
				Expect(id.RenewAfter.Time).To(BeTemporally("==", leaf.NotBefore.Add(lifetime*2/3)))
				Eventually(func(g Gomega) {
					g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
					g.Expect(meta.FindStatusCondition(dev.Status.Conditions, iomtv1.ConditionSegmented)).
						NotTo(BeNil())
					g.Expect(meta.IsStatusConditionTrue(dev.Status.Conditions, iomtv1.ConditionIdentityIssued)).
						To(BeTrue())
				}).Should(Succeed())
				Eventually(func() []string { return eventReasons(ctx, ns, "pump-1") }).
					Should(ContainElement(iomtv1.ReasonIssued))
			})

		It("should renew the certificate before it expires", func(ctx SpecContext) {
			ns := newNamespace(ctx, nil, nil)
			newDevice(ctx, ns, "monitor-1")
			issued(ctx, ns, "monitor-1")
			_, first, err := secretLeaf(ctx, ns, "monitor-1")
			Expect(err).NotTo(HaveOccurred())

			var second *x509.Certificate
			Eventually(func(g Gomega) {
				_, c, err := secretLeaf(ctx, ns, "monitor-1")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(c.SerialNumber).NotTo(Equal(first.SerialNumber))
				second = c
			}).Should(Succeed())
			Expect(second.NotBefore).To(BeTemporally("<", first.NotAfter), "renewed only after expiry")
			Expect(second.NotBefore).To(BeTemporally(">=", identity.RenewAt(first)), "renewed too early")
			bundle, err := bundleIn(ctx, ns)
			Expect(err).NotTo(HaveOccurred())
			Expect(verify(second, bundle, time.Now())).To(Succeed())

			Eventually(func(g Gomega) {
				var d iomtv1.MedicalDevice
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "monitor-1"}, &d)).To(Succeed())
				c := meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionIdentityIssued)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(iomtv1.ReasonRenewed))
				g.Expect(d.Status.Identity.SerialNumber).NotTo(Equal(first.SerialNumber.Text(16)))
			}).Should(Succeed())
			Eventually(func() []string { return eventReasons(ctx, ns, "monitor-1") }).
				Should(ContainElement(iomtv1.ReasonRenewed))

			By("exposing the expiry and the renewals as metrics")
			Expect(metricValue("iomt_identity_issued_total", map[string]string{"reason": "renew"})).
				To(BeNumerically(">", 0))
			Expect(metricValue("iomt_identity_certificate_expiry_seconds",
				map[string]string{"namespace": ns, "device": "monitor-1"})).
				To(BeNumerically(">", float64(time.Now().Unix())))
		})

		It("should restore a deleted identity Secret and an edited trust bundle", func(ctx SpecContext) {
			ns := newNamespace(ctx, nil, nil)
			newDevice(ctx, ns, "vent-1")
			issued(ctx, ns, "vent-1")
			s, first, err := secretLeaf(ctx, ns, "vent-1")
			Expect(err).NotTo(HaveOccurred())
			Eventually(func() error { _, err := bundleIn(ctx, ns); return err }).Should(Succeed())

			Expect(k8s.Delete(ctx, s)).To(Succeed())
			Eventually(func(g Gomega) {
				_, c, err := secretLeaf(ctx, ns, "vent-1")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(c.SerialNumber).NotTo(Equal(first.SerialNumber))
			}).Should(Succeed())

			var cm corev1.ConfigMap
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: iomtv1.TrustBundleName}, &cm)).To(Succeed())
			cm.Data["ca.crt"] = "edited by hand"
			Expect(k8s.Update(ctx, &cm)).To(Succeed())
			Eventually(func(g Gomega) {
				bundle, err := bundleIn(ctx, ns)
				g.Expect(err).NotTo(HaveOccurred())
				_, leaf, err := secretLeaf(ctx, ns, "vent-1")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(verify(leaf, bundle, time.Now())).To(Succeed())
			}).Should(Succeed())
		})
	})

	Context("when a namespace chooses cert-manager", func() {
		It("should ask for a Certificate and report what cert-manager wrote", func(ctx SpecContext) {
			standIn := newCertManagerStandIn()
			ns := newNamespace(ctx,
				map[string]string{iomtv1.IssuerLabel: iomtv1.IssuerCertManager},
				map[string]string{iomtv1.IssuerNameAnnotation: "ward-issuer", iomtv1.IssuerKindAnnotation: "Issuer"})
			dev := newDevice(ctx, ns, "pump-1", withDNSNames("pump-1.ward.clinic"), withLifetime(time.Hour))

			By("creating a Certificate the device owns")
			crt := &unstructured.Unstructured{}
			crt.SetAPIVersion("cert-manager.io/v1")
			crt.SetKind("Certificate")
			Eventually(func() error {
				return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pump-1-identity"}, crt)
			}).Should(Succeed())
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
			Expect(metav1.IsControlledBy(crt, dev)).To(BeTrue())
			spec := crt.Object["spec"].(map[string]any)
			Expect(spec).To(HaveKeyWithValue("secretName", "pump-1-identity"))
			Expect(spec).To(HaveKeyWithValue("uris", ConsistOf(spiffeID(ns, "pump-1"))))
			Expect(spec).To(HaveKeyWithValue("dnsNames", ConsistOf("pump-1.ward.clinic")))
			Expect(spec).To(HaveKeyWithValue("duration", "1h0m0s"))
			Expect(spec).To(HaveKeyWithValue("renewBefore", "20m0s"))
			Expect(spec).To(HaveKeyWithValue("issuerRef", map[string]any{
				"name": "ward-issuer", "kind": "Issuer", "group": "cert-manager.io"}))
			Expect(spec).To(HaveKeyWithValue("usages", ConsistOf("digital signature", "client auth",
				"server auth")))

			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
				c := meta.FindStatusCondition(dev.Status.Conditions, iomtv1.ConditionIdentityIssued)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(iomtv1.ReasonCertificatePending))
			}).Should(Succeed())

			By("reading the Secret the stand-in for cert-manager writes")
			serial := standIn.issue(ctx, ns, "pump-1-identity")
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
				g.Expect(dev.Status.Identity).NotTo(BeNil())
				g.Expect(dev.Status.Identity.SerialNumber).To(Equal(serial))
				g.Expect(dev.Status.Identity.SPIFFEID).To(Equal(spiffeID(ns, "pump-1")))
				g.Expect(dev.Status.Identity.Issuer).To(Equal("cert-manager Issuer ward-issuer"))
				g.Expect(dev.Status.Identity.Lifetime.Duration).To(Equal(time.Hour))
				c := meta.FindStatusCondition(dev.Status.Conditions, iomtv1.ConditionIdentityIssued)
				g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(c.Reason).To(Equal(iomtv1.ReasonIssued))
			}).Should(Succeed())
			Eventually(func(g Gomega) {
				s, leaf, err := secretLeaf(ctx, ns, "pump-1")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(s.OwnerReferences).To(ContainElement(HaveField("UID", dev.UID)))
				bundle, err := bundleIn(ctx, ns)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(verify(leaf, bundle, time.Now())).To(Succeed())
				g.Expect(identity.BundleHolds(bundle, activeCA(ctx))).To(BeTrue())
			}).Should(Succeed())

			By("following cert-manager's renewals")
			renewed := standIn.issue(ctx, ns, "pump-1-identity")
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
				g.Expect(dev.Status.Identity.SerialNumber).To(Equal(renewed))
				c := meta.FindStatusCondition(dev.Status.Conditions, iomtv1.ConditionIdentityIssued)
				g.Expect(c.Reason).To(Equal(iomtv1.ReasonRenewed))
			}).Should(Succeed())
		})
	})

	Context("when a namespace changes its issuer", func() {
		It("should hand the device to cert-manager and take it back", func(ctx SpecContext) {
			standIn := newCertManagerStandIn()
			// The default lifetime keeps the certificates this spec has the
			// operator's CA sign from holding up the rotation spec.
			ns := newNamespace(ctx, nil, nil)
			dev := newDevice(ctx, ns, "pump-1")
			issued(ctx, ns, "pump-1")
			setIssuerLabel(ctx, ns, iomtv1.IssuerCertManager)

			crt := &unstructured.Unstructured{}
			crt.SetAPIVersion("cert-manager.io/v1")
			crt.SetKind("Certificate")
			Eventually(func() error {
				return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pump-1-identity"}, crt)
			}).Should(Succeed())
			Expect(crt.Object["spec"]).To(HaveKeyWithValue("issuerRef", HaveKeyWithValue("name", "clinic-ca")))
			serial := standIn.issue(ctx, ns, "pump-1-identity")
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
				g.Expect(dev.Status.Identity.SerialNumber).To(Equal(serial))
				g.Expect(dev.Status.Identity.Issuer).To(Equal("cert-manager ClusterIssuer clinic-ca"))
			}).Should(Succeed())

			setIssuerLabel(ctx, ns, iomtv1.IssuerOperator)
			Eventually(func(g Gomega) {
				err := k8s.Get(ctx, client.ObjectKeyFromObject(crt), crt)
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Certificate is still there")
				s, leaf, err := secretLeaf(ctx, ns, "pump-1")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(metav1.IsControlledBy(s, dev)).To(BeTrue())
				g.Expect(s.Labels).To(HaveKeyWithValue(iomtv1.IssuerLabel, iomtv1.IssuerOperator))
				g.Expect(s.Annotations).NotTo(HaveKey("cert-manager.io/issuer-name"))
				g.Expect(leaf.CheckSignatureFrom(activeCA(ctx))).To(Succeed())
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dev), dev)).To(Succeed())
				g.Expect(dev.Status.Identity.SerialNumber).To(Equal(leaf.SerialNumber.Text(16)))
				g.Expect(dev.Status.Identity.Issuer).To(HavePrefix("iomt-operator device CA"))
			}).Should(Succeed())
		})
	})

	Context("when the CA Secret is deleted", func() {
		It("should write back the same CA", func(ctx SpecContext) {
			waitForStableCA(ctx)
			before := activeCA(ctx)
			Expect(k8s.Delete(ctx, caSecret(ctx))).To(Succeed())
			Eventually(func(g Gomega) {
				var s corev1.Secret
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: iomtv1.CASecretName},
					&s)).To(Succeed())
				certs, err := identity.ParseCertificates(s.Data["tls.crt"])
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(certs[0].Equal(before)).To(BeTrue(), "a new CA was made")
			}).Should(Succeed())
			Eventually(func() []string { return eventReasons(ctx, operatorNamespace, iomtv1.CASecretName) }).
				Should(ContainElement("CARestored"))
		})
	})

	Context("when the CA is rotated", func() {
		It("should keep every certificate valid against every trust bundle at every step", func(ctx SpecContext) {
			waitForStableCA(ctx)
			ns1, ns2 := newNamespace(ctx, nil, nil), newNamespace(ctx, nil, nil)
			newDevice(ctx, ns1, "pump-1")
			newDevice(ctx, ns1, "monitor-2")
			newDevice(ctx, ns2, "scanner-1")
			issued(ctx, ns1, "pump-1")
			issued(ctx, ns1, "monitor-2")
			issued(ctx, ns2, "scanner-1")
			Eventually(func() error { _, err := bundleIn(ctx, ns2); return err }).Should(Succeed())
			oldCA := activeCA(ctx)

			By("asking for a rotation on the CA Secret")
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				s := caSecret(ctx)
				s.Annotations[iomtv1.RotateCAAnnotation] = "rotation-" + utilrand.String(5)
				return k8s.Update(ctx, s)
			})).To(Succeed())

			By("checking every certificate against every bundle until the old CA is gone")
			phases := map[string]int{}
			deadline := time.Now().Add(60 * time.Second)
			for {
				Expect(time.Now()).To(BeTemporally("<", deadline), "rotation not done; phases seen %v", phases)
				phase := caSecret(ctx).Annotations["iomt.medinaii.io/ca-rotation-phase"]
				phases[phase]++
				bundles := checkEveryLeafAgainstEveryBundle(ctx)
				active := activeCA(ctx)
				if phase == "Stable" && !active.Equal(oldCA) && noneHolds(bundles, oldCA) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			Expect(phases).To(HaveKey("Distributing"))
			Expect(phases).To(HaveKey("Draining"))

			By("leaving only certificates of the new CA")
			active := activeCA(ctx)
			var secrets corev1.SecretList
			Expect(k8s.List(ctx, &secrets, client.MatchingLabels{iomtv1.IssuerLabel: iomtv1.IssuerOperator})).
				To(Succeed())
			for _, s := range secrets.Items {
				leaf, err := identity.ParseLeaf(s.Data["tls.crt"], nil)
				Expect(err).NotTo(HaveOccurred())
				Expect(leaf.Cert.CheckSignatureFrom(active)).To(Succeed(), "%s/%s", s.Namespace, s.Name)
			}
			Eventually(func() []string { return eventReasons(ctx, operatorNamespace, iomtv1.CASecretName) }).
				Should(ContainElements("NewCADistributing", "SigningWithNewCA", "OldCARetired"))
			Eventually(func() []string { return eventReasons(ctx, ns1, "pump-1") }).
				Should(ContainElement(iomtv1.ReasonRotated))
		})
	})

	Context("when nothing changes", func() {
		It("should write nothing", func(ctx SpecContext) {
			waitForStableCA(ctx)
			ns := newNamespace(ctx, nil, nil)
			for i := range 3 {
				newDevice(ctx, ns, fmt.Sprintf("monitor-%d", i), withLifetime(time.Hour))
			}
			for i := range 3 {
				d := issued(ctx, ns, fmt.Sprintf("monitor-%d", i))
				Expect(d.Status.Identity.Lifetime.Duration).To(Equal(time.Hour))
				Expect(d.Status.Identity.NotAfter.Sub(d.Status.Identity.NotBefore.Time)).To(Equal(time.Hour))
			}
			Eventually(func() error { _, err := bundleIn(ctx, ns); return err }).Should(Succeed())

			var settled int
			Eventually(func() bool {
				before := writes.In(ns)
				time.Sleep(2 * time.Second)
				settled = writes.In(ns)
				return before == settled
			}).Should(BeTrue())

			By("touching what the operator wrote without changing what it said")
			var secrets corev1.SecretList
			Expect(k8s.List(ctx, &secrets, client.InNamespace(ns))).To(Succeed())
			for i := range secrets.Items {
				s := &secrets.Items[i]
				metav1.SetMetaDataAnnotation(&s.ObjectMeta, "backup.example.org/last", "now")
				Expect(k8s.Update(ctx, s)).To(Succeed())
			}
			var cm corev1.ConfigMap
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: iomtv1.TrustBundleName}, &cm)).To(Succeed())
			metav1.SetMetaDataAnnotation(&cm.ObjectMeta, "backup.example.org/last", "now")
			Expect(k8s.Update(ctx, &cm)).To(Succeed())

			Consistently(func() int { return writes.In(ns) }, 3*time.Second, 250*time.Millisecond).
				Should(Equal(settled))

			By("restarting the operator, which reads everything again")
			stopOperator()
			startOperator()
			Consistently(func() int { return writes.In(ns) }, 5*time.Second, 250*time.Millisecond).
				Should(Equal(settled))
			for i := range 3 {
				issued(ctx, ns, fmt.Sprintf("monitor-%d", i))
			}
		})
	})
})

// setIssuerLabel chooses a namespace's issuer.
func setIssuerLabel(ctx context.Context, ns, issuer string) {
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var n corev1.Namespace
		if err := k8s.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
			return err
		}
		metav1.SetMetaDataLabel(&n.ObjectMeta, iomtv1.IssuerLabel, issuer)
		return k8s.Update(ctx, &n)
	})).To(Succeed())
}

// waitForStableCA waits until no CA rotation is under way.
func waitForStableCA(ctx context.Context) {
	Eventually(func(g Gomega) {
		var s corev1.Secret
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: iomtv1.CASecretName}, &s)).
			To(Succeed())
		g.Expect(s.Annotations).To(HaveKeyWithValue("iomt.medinaii.io/ca-rotation-phase", "Stable"))
	}, 60*time.Second).Should(Succeed())
}

// activeCA is the CA that signs now.
func activeCA(ctx context.Context) *x509.Certificate {
	certs, err := identity.ParseCertificates(caSecret(ctx).Data["tls.crt"])
	Expect(err).NotTo(HaveOccurred())
	return certs[0]
}

// checkEveryLeafAgainstEveryBundle verifies every certificate the
// operator's CA signed against every trust bundle in use, the namespaces'
// ConfigMaps and the identity Secrets' ca.crt, and returns those bundles.
// Bundles are read first: a bundle only ever loses a CA once no
// certificate that CA signed is valid.
func checkEveryLeafAgainstEveryBundle(ctx context.Context) map[string][]byte {
	bundles := map[string][]byte{}
	var cms corev1.ConfigMapList
	Expect(k8s.List(ctx, &cms, client.MatchingLabels{"app.kubernetes.io/component": "trust-bundle"})).
		To(Succeed())
	for _, cm := range cms.Items {
		bundles["ConfigMap "+cm.Namespace+"/"+cm.Name] = []byte(cm.Data["ca.crt"])
	}

	at := time.Now()
	var secrets corev1.SecretList
	Expect(k8s.List(ctx, &secrets, client.MatchingLabels{iomtv1.IssuerLabel: iomtv1.IssuerOperator})).
		To(Succeed())
	for _, s := range secrets.Items {
		bundles["Secret "+s.Namespace+"/"+s.Name] = s.Data["ca.crt"]
	}
	for _, s := range secrets.Items {
		leaf, err := identity.ParseLeaf(s.Data["tls.crt"], nil)
		Expect(err).NotTo(HaveOccurred())
		for name, b := range bundles {
			Expect(verify(leaf.Cert, b, at)).To(Succeed(), "certificate of %s/%s against %s",
				s.Namespace, s.Name, name)
		}
	}
	return bundles
}

func noneHolds(bundles map[string][]byte, ca *x509.Certificate) bool {
	for _, b := range bundles {
		if identity.BundleHolds(b, ca) {
			return false
		}
	}
	return true
}

// metricValue reads a counter or gauge from the operator's registry.
func metricValue(name string, labels map[string]string) float64 {
	families, err := crmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matched := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					matched++
				}
			}
			if matched == len(labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	Fail(fmt.Sprintf("no metric %s%v", name, labels))
	return 0
}
