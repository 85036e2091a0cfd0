package identity_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/internal/segment"
	writelog "github.com/medinaii/iomt-operator/test/writes"
)

var _ = Describe("Device namespaces", func() {
	Context("when the operator may touch Secrets only in its device namespaces", func() {
		It("should issue identities there, tell devices elsewhere how to enrol, and never be refused",
			func(ctx SpecContext) {
				waitForStableCA(ctx)
				enrolled := newNamespace(ctx, nil, nil)
				other := newNamespace(ctx, nil, nil)
				cmAnnotations := map[string]string{iomtv1.IssuerNameAnnotation: "ward-issuer",
					iomtv1.IssuerKindAnnotation: "Issuer"}
				cmLabels := map[string]string{iomtv1.IssuerLabel: iomtv1.IssuerCertManager}
				cmEnrolled := newNamespace(ctx, cmLabels, cmAnnotations)
				cmOther := newNamespace(ctx, cmLabels, cmAnnotations)

				By("granting Secrets only in the enrolled namespaces and the operator's own")
				user := "iomt-operator-" + utilrand.String(5)
				grantOperator(ctx, user, enrolled, cmEnrolled, operatorNamespace)

				By("running the operator as that user, in place of the suite's")
				requests := &requestLog{}
				scopedWrites := &writelog.Log{}
				stopOperator()
				var stopScoped func()
				DeferCleanup(func() {
					if stopScoped != nil {
						stopScoped()
					}
					startOperator()
				})
				stopScoped = startScopedOperator(user, []string{enrolled, cmEnrolled}, requests,
					scopedWrites)

				for _, ns := range []string{enrolled, other, cmEnrolled, cmOther} {
					newDevice(ctx, ns, "pump-1")
				}
				newPumpSegment(ctx, other)

				By("issuing the identity in the enrolled namespace")
				issued(ctx, enrolled, "pump-1")
				_, leaf, err := secretLeaf(ctx, enrolled, "pump-1")
				Expect(err).NotTo(HaveOccurred())
				Expect(leaf.URIs[0].String()).To(Equal(spiffeID(enrolled, "pump-1")))
				Eventually(func() error { _, err := bundleIn(ctx, enrolled); return err }).Should(Succeed())

				By("asking cert-manager in the enrolled namespace that chose it")
				standIn := newCertManagerStandIn()
				Eventually(func() error {
					return k8s.Get(ctx, client.ObjectKey{Namespace: cmEnrolled, Name: "pump-1-identity"},
						newCertificateObject())
				}).Should(Succeed())
				serial := standIn.issue(ctx, cmEnrolled, "pump-1-identity")
				Eventually(func(g Gomega) {
					var d iomtv1.MedicalDevice
					g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: cmEnrolled, Name: "pump-1"}, &d)).
						To(Succeed())
					g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, iomtv1.ConditionIdentityIssued)).
						To(BeTrue())
					g.Expect(d.Status.Identity.SerialNumber).To(Equal(serial))
				}).Should(Succeed())

				By("telling the devices elsewhere how to enrol their namespace")
				for _, ns := range []string{other, cmOther} {
					notEnrolled(ctx, ns, "pump-1")
				}

				By("reading or writing nothing of theirs")
				Consistently(func(g Gomega) {
					for _, ns := range []string{other, cmOther} {
						var secrets corev1.SecretList
						g.Expect(k8s.List(ctx, &secrets, client.InNamespace(ns))).To(Succeed())
						g.Expect(secrets.Items).To(BeEmpty())
						err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pump-1-identity"},
							newCertificateObject())
						g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a Certificate in %s", ns)
						_, err = bundleIn(ctx, ns)
						g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a trust bundle in %s", ns)
					}
				}, 3*time.Second, 250*time.Millisecond).Should(Succeed())

				By("still segmenting the device whose namespace is not enrolled")
				Eventually(func(g Gomega) {
					var d iomtv1.MedicalDevice
					g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: other, Name: "pump-1"}, &d)).
						To(Succeed())
					g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, iomtv1.ConditionSegmented)).
						To(BeTrue())
					ready := meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionReady)
					g.Expect(ready).NotTo(BeNil())
					g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
					g.Expect(ready.Reason).To(Equal(iomtv1.ReasonNamespaceNotEnrolled))
				}).Should(Succeed())

				By("settling: one Event, no status rewritten, no retries")
				var settled int
				Eventually(func() bool {
					before := scopedWrites.In(other)
					time.Sleep(2 * time.Second)
					settled = scopedWrites.In(other)
					return before == settled
				}).Should(BeTrue())
				Consistently(func() int { return scopedWrites.In(other) }, 3*time.Second, 250*time.Millisecond).
					Should(Equal(settled))
				Expect(notEnrolledEvents(ctx, other, "pump-1")).To(HaveLen(1))
				Expect(notEnrolledEvents(ctx, other, "pump-1")[0].Type).To(Equal(corev1.EventTypeWarning))

				By("never being refused, and never asking for Secrets elsewhere")
				Expect(requests.forbidden()).To(BeEmpty())
				allowed := []string{enrolled, cmEnrolled, operatorNamespace}
				secretNamespaces := requests.secretNamespaces()
				Expect(secretNamespaces).To(ContainElements(enrolled, cmEnrolled, operatorNamespace))
				for _, ns := range secretNamespaces {
					Expect(allowed).To(ContainElement(ns), "Secrets requested %s",
						requests.secretRequestsIn(ns))
				}
			})
	})
})

// grantOperator gives user what the operator needs everywhere, but
// Secrets, as a ClusterRole, and Secrets in the given namespaces only.
func grantOperator(ctx context.Context, user string, secretNamespaces ...string) {
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	read := []string{"get", "list", "watch"}
	write := []string{"get", "list", "watch", "create", "update", "patch"}
	cluster := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: write},
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: read},
			{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"},
				Verbs: []string{"create", "patch"}},
			{APIGroups: []string{"cert-manager.io"}, Resources: []string{"certificates"}, Verbs: all},
			{APIGroups: []string{"cilium.io"}, Resources: []string{"ciliumnetworkpolicies"}, Verbs: all},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: all},
			{APIGroups: []string{"iomt.medinaii.io"}, Resources: []string{"medicaldevices",
				"segmentpolicies"}, Verbs: read},
			{APIGroups: []string{"iomt.medinaii.io"}, Resources: []string{"medicaldevices/finalizers",
				"segmentpolicies/finalizers"}, Verbs: []string{"update"}},
			{APIGroups: []string{"iomt.medinaii.io"}, Resources: []string{"medicaldevices/status",
				"segmentpolicies/status"}, Verbs: []string{"get", "patch", "update"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: all},
		},
	}
	Expect(k8s.Create(ctx, cluster)).To(Succeed())
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
		Subjects:   subjects,
	})).To(Succeed())

	for _, ns := range secretNamespaces {
		Expect(k8s.Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: write},
			},
		})).To(Succeed())
		Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
			Subjects:   subjects,
		})).To(Succeed())
	}

	// RBAC takes effect once the API server's authorizer has seen it.
	Eventually(func(g Gomega) {
		cfg := rest.CopyConfig(testEnv.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		c, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
		g.Expect(err).NotTo(HaveOccurred())
		for _, ns := range secretNamespaces {
			g.Expect(c.List(ctx, &corev1.SecretList{}, client.InNamespace(ns))).To(Succeed())
		}
		g.Expect(c.List(ctx, &iomtv1.MedicalDeviceList{})).To(Succeed())
	}).Should(Succeed())
}

// startScopedOperator starts the operator in this process as user, issuing
// identities only in deviceNamespaces. Every request it makes is recorded
// in requests, its writes in writes. It returns a function that stops it.
func startScopedOperator(user string, deviceNamespaces []string, requests *requestLog,
	writes *writelog.Log) func() {
	cfg := rest.CopyConfig(testEnv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return requests.wrap(writes.Wrap(rt))
	}
	opts := controllers.Options{
		Segment:   segment.DefaultConfig(),
		Namespace: operatorNamespace,
		Identity: &controllers.IdentityOptions{
			DeviceNamespaces: deviceNamespaces,
			DefaultLifetime:  time.Hour,
			PropagationDelay: propagationDelay,
			CertManager:      controllers.CertManagerOptions{IssuerName: "clinic-ca"},
		},
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     controllers.NewScheme(),
		Cache:      controllers.CacheOptions(opts),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}, // beside the suite's
	})
	Expect(err).NotTo(HaveOccurred())

	ctx, cancel := context.WithCancel(context.Background())
	Expect(controllers.Setup(ctx, mgr, opts)).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return func() {
		cancel()
		<-done
	}
}

// notEnrolled waits until the device says its namespace is not enrolled
// and holds no identity.
func notEnrolled(ctx context.Context, ns, name string) {
	want := fmt.Sprintf("namespace %q is not one of the operator's device namespaces; add it to the "+
		"operator's --device-namespaces (Helm value deviceNamespaces)", ns)
	Eventually(func(g Gomega) {
		var d iomtv1.MedicalDevice
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d)).To(Succeed())
		c := meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionIdentityIssued)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(iomtv1.ReasonNamespaceNotEnrolled))
		g.Expect(c.Message).To(Equal(want))
		g.Expect(d.Status.Identity).To(BeNil())
	}).Should(Succeed())
}

// notEnrolledEvents lists the NamespaceNotEnrolled Events about a device.
func notEnrolledEvents(ctx context.Context, ns, name string) []eventsv1.Event {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == iomtv1.ReasonNamespaceNotEnrolled {
			out = append(out, e)
		}
	}
	return out
}

// newPumpSegment creates a segment of the namespace's infusion pumps.
func newPumpSegment(ctx context.Context, ns string) {
	Expect(k8s.Create(ctx, &iomtv1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pumps"},
		Spec: iomtv1.SegmentPolicySpec{
			DeviceSelector: iomtv1.DeviceSelector{Classes: []iomtv1.DeviceClass{iomtv1.ClassInfusionPump}},
		},
	})).To(Succeed())
}

func newCertificateObject() *unstructured.Unstructured {
	crt := &unstructured.Unstructured{}
	crt.SetAPIVersion("cert-manager.io/v1")
	crt.SetKind("Certificate")
	return crt
}

// requestLog records the requests a client makes that the API server
// refused, and those about Secrets.
type requestLog struct {
	mu sync.Mutex
	// refused are "METHOD path" of the requests answered 403 Forbidden.
	refused []string
	// secrets are "METHOD path?query" of the Secret requests, by the
	// namespace in their path; "" for cluster-wide ones.
	secrets map[string][]string
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		path := req.URL.Path
		l.mu.Lock()
		defer l.mu.Unlock()
		if resp != nil && resp.StatusCode == http.StatusForbidden {
			l.refused = append(l.refused, req.Method+" "+path)
		}
		if ns, ok := secretsNamespace(path); ok {
			if l.secrets == nil {
				l.secrets = map[string][]string{}
			}
			l.secrets[ns] = append(l.secrets[ns], req.Method+" "+path+"?"+req.URL.RawQuery)
		}
		return resp, err
	})
}

// secretsNamespace tells whether path is about Secrets and in which
// namespace; "" for all of them.
func secretsNamespace(path string) (string, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	// api/v1/secrets, api/v1/watch/secrets, or the same under namespaces/<ns>.
	if len(parts) < 3 || parts[0] != "api" || parts[1] != "v1" {
		return "", false
	}
	rest := parts[2:]
	if rest[0] == "watch" {
		rest = rest[1:]
	}
	if len(rest) >= 3 && rest[0] == "namespaces" && rest[2] == "secrets" {
		return rest[1], true
	}
	return "", len(rest) >= 1 && rest[0] == "secrets"
}

func (l *requestLog) forbidden() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.refused)
}

func (l *requestLog) secretNamespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for ns := range l.secrets {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

func (l *requestLog) secretRequestsIn(ns string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.secrets[ns])
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
