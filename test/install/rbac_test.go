package install_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/deploy/argocd"
	"github.com/medinaii/iomt-operator/test/clinic"
)

const (
	operatorNamespace = "iomt-system"
	operatorAccount   = "system:serviceaccount:iomt-system:iomt-operator"
)

// enrolled are the sample clinic's namespaces the chart is told hold
// devices with identities; the others get segments only.
var enrolled = []string{"icu", "ward-3"}

// The operator's own binary, with the arguments of the chart's Deployment,
// runs the sample clinic as the chart's service account: with exactly the
// RBAC the chart grants, through impersonation. Segments are enforced,
// identities issued where Secrets are granted and refused elsewhere,
// advisories read, the webhook caBundle kept, a leader elected, and
// metrics served to the scrapers the chart authorizes. Nothing it does is
// forbidden, and what it must not do, it cannot.
func TestOperatorRunsUnderExactlyTheChartsRBAC(t *testing.T) {
	cp := needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	run := runSampleClinic(t, ctx, "deviceNamespaces={"+strings.Join(enrolled, ",")+"}")
	objs, installed, pod, logs := run.objs, run.installed, run.pod, run.logs

	t.Run("segments are enforced", func(t *testing.T) {
		var segs iomtv1.SegmentPolicyList
		if err := cp.k8s.List(ctx, &segs); err != nil {
			t.Fatal(err)
		}
		enforced := 0
		for _, s := range segs.Items {
			if s.Status.Enforcement == iomtv1.EnforcementObserve {
				continue // computed and reported, not written
			}
			enforced++
			if len(s.Status.Policies) == 0 {
				t.Errorf("segment %s/%s reports no policies", s.Namespace, s.Name)
			}
			for _, name := range s.Status.Policies {
				var np networkingv1.NetworkPolicy
				if err := cp.k8s.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, &np); err != nil {
					t.Errorf("segment %s/%s: %v", s.Namespace, s.Name, err)
				}
			}
		}
		if enforced == 0 {
			t.Error("no sample segment is enforced")
		}
	})

	t.Run("a deleted policy is restored", func(t *testing.T) {
		var seg iomtv1.SegmentPolicy
		if err := cp.k8s.Get(ctx, client.ObjectKey{Namespace: "icu", Name: "icu-infusion"}, &seg); err != nil {
			t.Fatal(err)
		}
		if len(seg.Status.Policies) == 0 {
			t.Fatal("segment icu/icu-infusion reports no policies")
		}
		np := &networkingv1.NetworkPolicy{}
		key := client.ObjectKey{Namespace: "icu", Name: seg.Status.Policies[0]}
		if err := cp.k8s.Get(ctx, key, np); err != nil {
			t.Fatal(err)
		}
		deleted := np.UID
		if err := cp.k8s.Delete(ctx, np); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, func() error {
			if err := cp.k8s.Get(ctx, key, np); err != nil {
				return err
			}
			if np.UID == deleted {
				return fmt.Errorf("policy %s not deleted yet", key)
			}
			return nil
		})
	})

	t.Run("identities in device namespaces only", func(t *testing.T) {
		eventually(t, ctx, func() error { return identitiesAsGranted(ctx, cp.k8s) })
	})

	t.Run("advisories are read", func(t *testing.T) {
		var devs iomtv1.MedicalDeviceList
		if err := cp.k8s.List(ctx, &devs); err != nil {
			t.Fatal(err)
		}
		vulnerable := 0
		for _, d := range devs.Items {
			if meta.IsStatusConditionTrue(d.Status.Conditions, iomtv1.ConditionVulnerable) {
				vulnerable++
			}
		}
		if vulnerable == 0 {
			t.Error("no sample device is found vulnerable; the advisories were not read")
		}
	})

	t.Run("Argo CD health follows the real status", func(t *testing.T) {
		scripts := map[string]string{}
		for _, kind := range []string{"MedicalDevice", "SegmentPolicy"} {
			script, err := argocd.HealthScript(kind)
			if err != nil {
				t.Fatal(err)
			}
			scripts[kind] = script
		}
		counts := map[string]map[string]int{}
		health := func(obj client.Object, kind string) (string, string) {
			t.Helper()
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
			if err != nil {
				t.Fatal(err)
			}
			u["apiVersion"] = iomtv1.GroupVersion.String()
			u["kind"] = kind
			status, message, err := argocd.Health(scripts[kind], u)
			if err != nil {
				t.Fatalf("%s %s: the script failed, so Argo CD would show no health: %v",
					kind, client.ObjectKeyFromObject(obj), err)
			}
			if !slices.Contains([]string{"Healthy", "Progressing", "Degraded", "Suspended"}, status) {
				t.Errorf("%s %s: status %q (%s)", kind, client.ObjectKeyFromObject(obj), status, message)
			}
			if counts[kind] == nil {
				counts[kind] = map[string]int{}
			}
			counts[kind][status]++
			return status, message
		}

		// IdentityIssued is written by the identity controller and summed
		// into Ready by the device controller, which may not have caught up
		// at convergence: wait until no device is Ready with its identity
		// refused, and some device is refused one.
		var devs iomtv1.MedicalDeviceList
		eventually(t, ctx, func() error {
			if err := cp.k8s.List(ctx, &devs); err != nil {
				return err
			}
			notEnrolled := 0
			for _, d := range devs.Items {
				id := meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionIdentityIssued)
				if id == nil || id.Status != metav1.ConditionFalse {
					continue
				}
				if id.Reason == iomtv1.ReasonNamespaceNotEnrolled {
					notEnrolled++
				}
				if meta.IsStatusConditionTrue(d.Status.Conditions, iomtv1.ConditionReady) {
					return fmt.Errorf("device %s is Ready with IdentityIssued False", client.ObjectKeyFromObject(&d))
				}
			}
			if notEnrolled == 0 {
				return fmt.Errorf("no device reports %s yet", iomtv1.ReasonNamespaceNotEnrolled)
			}
			return nil
		})

		// A device refused an identity has Ready False. Ready names the
		// first thing wrong: its segment's reason if it is not segmented,
		// else NamespaceNotEnrolled. Of those only Observing, on a device
		// not quarantined, is not Degraded.
		for i := range devs.Items {
			d := &devs.Items[i]
			status, message := health(d, "MedicalDevice")
			id := meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionIdentityIssued)
			if id == nil || id.Reason != iomtv1.ReasonNamespaceNotEnrolled {
				continue
			}
			ready := meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionReady)
			want := "Degraded"
			quarantined := d.Status.Quarantine != nil && d.Status.Quarantine.State != iomtv1.QuarantineNone
			if ready.Reason == iomtv1.ReasonObserving && !quarantined {
				want = "Suspended"
			}
			if status != want {
				t.Errorf("device %s (Ready %s %s): %s (%s), want %s", client.ObjectKeyFromObject(d), ready.Status,
					ready.Reason, status, message, want)
			}
			if ready.Reason == iomtv1.ReasonNamespaceNotEnrolled && !quarantined &&
				!strings.HasPrefix(message, iomtv1.ReasonNamespaceNotEnrolled) {
				t.Errorf("device %s: message %q does not say why", client.ObjectKeyFromObject(d), message)
			}
		}

		// An Observe-mode segment that is Ready is Suspended; an enforced
		// one is Healthy. A False Ready is Degraded in either mode.
		var segs iomtv1.SegmentPolicyList
		if err := cp.k8s.List(ctx, &segs); err != nil {
			t.Fatal(err)
		}
		observing := 0
		for i := range segs.Items {
			s := &segs.Items[i]
			status, message := health(s, "SegmentPolicy")
			ready := meta.FindStatusCondition(s.Status.Conditions, iomtv1.ConditionReady)
			observe := s.Spec.Enforcement == iomtv1.EnforcementObserve
			if observe {
				observing++
			}
			var want string
			switch {
			case ready.Status == metav1.ConditionFalse:
				want = "Degraded"
			case ready.Status != metav1.ConditionTrue:
				continue
			case observe:
				want = "Suspended"
			default:
				want = "Healthy"
			}
			if status != want {
				t.Errorf("segment %s (%s, Ready %s %s): %s (%s), want %s", client.ObjectKeyFromObject(s),
					s.Spec.Enforcement, ready.Status, ready.Reason, status, message, want)
			}
		}
		if observing == 0 {
			t.Error("no sample segment is in Observe mode")
		}
		if counts["SegmentPolicy"]["Suspended"] == 0 {
			t.Error("no sample segment is Suspended, though one is in Observe mode")
		}
		if counts["SegmentPolicy"]["Healthy"] == 0 {
			t.Error("no sample segment is Healthy")
		}

		for _, kind := range []string{"MedicalDevice", "SegmentPolicy"} {
			t.Logf("Argo CD health of the sample clinic's %s objects: %v", kind, counts[kind])
		}
	})

	t.Run("webhook caBundle is kept", func(t *testing.T) {
		eventually(t, ctx, func() error {
			var m admissionregistrationv1.MutatingWebhookConfiguration
			var v admissionregistrationv1.ValidatingWebhookConfiguration
			key := client.ObjectKey{Name: "iomt-operator"}
			if err := cp.k8s.Get(ctx, key, &m); err != nil {
				return err
			}
			if err := cp.k8s.Get(ctx, key, &v); err != nil {
				return err
			}
			if len(m.Webhooks[0].ClientConfig.CABundle) == 0 || len(v.Webhooks[0].ClientConfig.CABundle) == 0 {
				return fmt.Errorf("caBundle not written yet")
			}
			return nil
		})
	})

	t.Run("the attestation Service reaches the leader", func(t *testing.T) {
		svc := convert[corev1.Service](t, find(objs, "Service", "iomt-operator-attestation"))
		eventually(t, ctx, func() error {
			if err := cp.k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
				return err
			}
			for k, v := range svc.Spec.Selector {
				if pod.Labels[k] != v {
					return fmt.Errorf("the leader's pod has %s=%q; the Service selects %q", k, pod.Labels[k], v)
				}
			}
			return nil
		})
	})

	t.Run("a leader is elected", func(t *testing.T) {
		var leases coordinationv1.LeaseList
		if err := cp.k8s.List(ctx, &leases, client.InNamespace(operatorNamespace)); err != nil {
			t.Fatal(err)
		}
		held := slices.ContainsFunc(leases.Items, func(l coordinationv1.Lease) bool {
			return l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != ""
		})
		if !held {
			t.Errorf("no lease held in %s", operatorNamespace)
		}
	})

	t.Run("metrics only for authorized scrapers", func(t *testing.T) {
		scrape := func(account string) int {
			token := serviceAccountToken(t, ctx, account)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet,
				"https://"+logs.metricsAddr+"/metrics", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			insecure := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			resp, err := (&http.Client{Transport: insecure, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		bindMetricsReader(t, ctx, "prometheus")
		if code := scrape("prometheus"); code != http.StatusOK {
			t.Errorf("a scraper bound to iomt-operator-metrics-reader got %d", code)
		}
		if code := scrape("stranger"); code != http.StatusForbidden {
			t.Errorf("an unbound service account got %d, want 403", code)
		}
	})

	t.Run("what it must not do, it cannot", func(t *testing.T) {
		for _, tc := range []struct {
			verb, resource, namespace string
			allowed                   bool
			name                      string
		}{
			{"list", "secrets", "", false, ""},
			{"watch", "secrets", "", false, ""},
			{"get", "secrets", "kube-system", false, ""},
			{"list", "secrets", "lab", false, ""},
			{"list", "pods", "", false, ""},
			{"get", "pods", "icu", false, ""},
			{"delete", "medicaldevices", "icu", false, ""},
			{"update", "medicaldevices", "icu", false, ""},
			{"patch", "mutatingwebhookconfigurations", "", false, ""},
			{"create", "clusterrolebindings", "", false, ""},
			{"update", "configmaps", "kube-system", false, ""},
			{"list", "configmaps", "", false, ""},
			{"create", "certificates", "kube-system", false, ""},
			{"update", "secrets", operatorNamespace, false, "sh.helm.release.v1.iomt-operator.v1"},
			{"list", "secrets", "icu", true, ""},
			{"create", "secrets", "ward-3", true, ""},
			{"update", "configmaps", "icu", true, ""},
			{"update", "secrets", operatorNamespace, true, "iomt-ca"},
		} {
			got := allowed(t, ctx, tc.verb, tc.resource, tc.namespace, tc.name)
			if got != tc.allowed {
				t.Errorf("%s %s %q in %q: allowed=%v, want %v", tc.verb, tc.resource, tc.name,
					tc.namespace, got, tc.allowed)
			}
		}
	})

	if forbidden := logs.forbidden(); len(forbidden) > 0 {
		t.Errorf("the operator was refused:\n%s", strings.Join(forbidden, "\n"))
	}
	cancel()
	logs.wait()
	if err := cp.k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	if _, held := pod.Labels[controllers.AttestationLabel]; held {
		t.Error("the stopped leader's pod still draws attestation traffic")
	}
	removeInstalled(t, installed)
}

// In its other modes the operator also runs under exactly the chart's
// RBAC: with the chart's defaults, with identities in every namespace, and
// with cert-manager signing devices and serving the webhook.
func TestOperatorRunsUnderTheChartsRBACInItsOtherModes(t *testing.T) {
	cp := needCluster(t)
	for _, mode := range []struct {
		name  string
		sets  []string
		check func(ctx context.Context, c client.Client) error
	}{
		{"the chart's defaults: identities nowhere", nil, noDeviceIssued},
		{"identities in every namespace", []string{"deviceNamespaces={*}"}, everyDeviceIssued},
		{"cert-manager", []string{"certManager.enabled=true", "certManager.issuer.name=clinic-ca",
			"deviceNamespaces={icu}"}, certificatesRequested},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			run := runSampleClinic(t, ctx, mode.sets...)
			installed, logs := run.installed, run.logs
			eventually(t, ctx, func() error { return mode.check(ctx, cp.k8s) })
			if forbidden := logs.forbidden(); len(forbidden) > 0 {
				t.Errorf("the operator was refused:\n%s", strings.Join(forbidden, "\n"))
			}
			cancel()
			logs.wait()
			removeInstalled(t, installed)
		})
	}
}

// clinicRun is the operator running the sample clinic.
type clinicRun struct {
	objs      []*unstructured.Unstructured
	installed []*unstructured.Unstructured
	pod       *corev1.Pod
	logs      *operatorLogs
}

// runSampleClinic installs what the chart, rendered with sets, needs for
// the operator, starts the operator's binary under it, applies the sample
// clinic and its advisories, and waits until the operator has reconciled
// every segment and device.
func runSampleClinic(t *testing.T, ctx context.Context, sets ...string) clinicRun {
	t.Helper()
	samples, err := clinic.LoadManifests(filepath.Join(configDir, "samples"))
	if err != nil {
		t.Fatal(err)
	}
	namespaces := clinic.Namespaces(samples)
	for _, ns := range append([]string{operatorNamespace}, namespaces...) {
		ensureNamespace(t, ns, nil)
	}

	var run clinicRun
	run.objs = render(t, operatorNamespace, nil, sets...)
	run.installed = installForOperator(t, run.objs)
	run.pod = operatorPod(t, ctx, run.objs)
	run.logs = startOperatorBinary(t, ctx, run.objs)

	if err := clinic.Apply(ctx, cluster.k8s, samples, "clinic-admin"); err != nil {
		t.Fatal(err)
	}
	advisories := filepath.Join(configDir, "samples", "advisories")
	_, _, err = clinic.LoadAdvisories(ctx, cluster.k8s, advisories, operatorNamespace)
	if err != nil && !apierrors.IsAlreadyExists(err) { // loaded by an earlier run
		t.Fatal(err)
	}
	if err := clinic.WaitForConvergence(ctx, cluster.k8s, namespaces, 2*time.Minute); err != nil {
		t.Fatalf("%v\noperator log:\n%s", err, run.logs.tail())
	}
	return run
}

// everyDeviceIssued checks that every device has its identity.
func everyDeviceIssued(ctx context.Context, c client.Client) error {
	var devs iomtv1.MedicalDeviceList
	if err := c.List(ctx, &devs); err != nil {
		return err
	}
	for _, d := range devs.Items {
		if !meta.IsStatusConditionTrue(d.Status.Conditions, iomtv1.ConditionIdentityIssued) {
			return fmt.Errorf("device %s/%s: IdentityIssued %v", d.Namespace, d.Name,
				meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionIdentityIssued))
		}
	}
	return nil
}

// noDeviceIssued checks that no device has an identity, and each says why.
func noDeviceIssued(ctx context.Context, c client.Client) error {
	var devs iomtv1.MedicalDeviceList
	if err := c.List(ctx, &devs); err != nil {
		return err
	}
	for _, d := range devs.Items {
		cond := meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionIdentityIssued)
		if cond == nil || cond.Reason != iomtv1.ReasonNamespaceNotEnrolled {
			return fmt.Errorf("device %s/%s: IdentityIssued %v", d.Namespace, d.Name, cond)
		}
	}
	return nil
}

// certificatesRequested checks that every device in icu has asked
// cert-manager for its certificate, which nobody signs here.
func certificatesRequested(ctx context.Context, c client.Client) error {
	var devs iomtv1.MedicalDeviceList
	if err := c.List(ctx, &devs, client.InNamespace("icu")); err != nil {
		return err
	}
	for _, d := range devs.Items {
		cert := &unstructured.Unstructured{}
		cert.SetAPIVersion("cert-manager.io/v1")
		cert.SetKind("Certificate")
		key := client.ObjectKey{Namespace: d.Namespace, Name: iomtv1.IdentitySecretName(d.Name)}
		if err := c.Get(ctx, key, cert); err != nil {
			return fmt.Errorf("device %s/%s: %w", d.Namespace, d.Name, err)
		}
	}
	if len(devs.Items) == 0 {
		return fmt.Errorf("no device in icu")
	}
	return nil
}

// operatorPodName is the pod the operator binary believes it runs in.
const operatorPodName = "iomt-operator-0"

// operatorPod creates the pod the operator process stands for, from the
// chart's pod template. No kubelet runs it; the operator only labels it.
func operatorPod(t *testing.T, ctx context.Context, objs []*unstructured.Unstructured) *corev1.Pod {
	t.Helper()
	dep := convert[appsv1.Deployment](t, find(objs, "Deployment", "iomt-operator"))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: operatorPodName, Namespace: operatorNamespace,
			Labels: dep.Spec.Template.Labels},
		Spec: dep.Spec.Template.Spec,
	}
	if err := cluster.k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.k8s.Delete(context.Background(), pod) })
	return pod
}

// installForOperator installs the chart's CRDs, service account, RBAC and
// webhook configurations for real: what the operator needs to exist. Its
// Deployment, which no kubelet here would run, is left out.
func installForOperator(t *testing.T, objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	t.Helper()
	ctx := context.Background()
	kinds := []string{"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
		"Role", "RoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
	var installed []*unstructured.Unstructured
	for _, o := range objs {
		if !slices.Contains(kinds, o.GetKind()) {
			continue
		}
		if err := cluster.k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
			client.FieldOwner("install-test"), client.ForceOwnership); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		installed = append(installed, o)
	}
	waitForCRD(t, devicesCRD)
	waitForCRD(t, segmentsCRD)
	return installed
}

func removeInstalled(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if err := cluster.k8s.Delete(context.Background(), o.DeepCopy()); client.IgnoreNotFound(err) != nil {
			t.Errorf("failed to remove %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	// The next install must not meet a CRD still being deleted.
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute,
			true, func(ctx context.Context) (bool, error) {
				err := cluster.k8s.Get(ctx, client.ObjectKeyFromObject(o), o.DeepCopy())
				return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
			})
		if err != nil {
			t.Errorf("CRD %s outlived its removal: %v", o.GetName(), err)
		}
	}
}

// identitiesAsGranted checks that every device in an enrolled namespace
// has its identity Secret and IdentityIssued, and every other device has
// neither and says why.
func identitiesAsGranted(ctx context.Context, c client.Client) error {
	var devs iomtv1.MedicalDeviceList
	if err := c.List(ctx, &devs); err != nil {
		return err
	}
	for _, d := range devs.Items {
		cond := meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionIdentityIssued)
		var secret corev1.Secret
		err := c.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: iomtv1.IdentitySecretName(d.Name)},
			&secret)
		if slices.Contains(enrolled, d.Namespace) {
			if cond == nil || cond.Status != metav1.ConditionTrue {
				return fmt.Errorf("device %s/%s: IdentityIssued %v", d.Namespace, d.Name, cond)
			}
			if err != nil {
				return fmt.Errorf("device %s/%s: %w", d.Namespace, d.Name, err)
			}
			continue
		}
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != iomtv1.ReasonNamespaceNotEnrolled {
			return fmt.Errorf("device %s/%s outside the device namespaces: IdentityIssued %v",
				d.Namespace, d.Name, cond)
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("device %s/%s outside the device namespaces has a Secret (%v)",
				d.Namespace, d.Name, err)
		}
	}
	return nil
}

// operatorLogs holds what the operator process printed.
type operatorLogs struct {
	mu          sync.Mutex
	buf         bytes.Buffer
	done        chan struct{}
	metricsAddr string
}

func (l *operatorLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *operatorLogs) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(l.buf.String(), "\n")
}

func (l *operatorLogs) tail() string {
	lines := l.lines()
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

var forbiddenLine = regexp.MustCompile(`(?i)forbidden|cannot (get|list|watch|create|update|patch|delete)`)

func (l *operatorLogs) forbidden() []string {
	var out []string
	for _, line := range l.lines() {
		if forbiddenLine.MatchString(line) {
			out = append(out, line)
		}
	}
	return out
}

func (l *operatorLogs) wait() {
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
	}
}

// startOperatorBinary builds cmd/manager and runs it with the arguments of
// the chart's Deployment, the listening addresses moved to free loopback
// ports, as the chart's service account.
func startOperatorBinary(t *testing.T, ctx context.Context,
	objs []*unstructured.Unstructured) *operatorLogs {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/manager")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	dep := convert[appsv1.Deployment](t, find(objs, "Deployment", "iomt-operator"))
	container := dep.Spec.Template.Spec.Containers[0]
	logs := &operatorLogs{done: make(chan struct{}), metricsAddr: freeAddress(t)}
	moved := map[string]string{
		"--metrics-bind-address":      logs.metricsAddr,
		"--health-probe-bind-address": freeAddress(t),
		"--attestation-bind-address":  freeAddress(t),
		"--webhook-port":              port(t, freeAddress(t)),
		"--webhook-cert-dir":          filepath.Join(dir, "serving-certs"),
	}
	if slices.Contains(container.Args, "--manage-webhook-certificates=false") {
		writeServingCert(t, moved["--webhook-cert-dir"])
	}
	var args []string
	for _, a := range container.Args {
		name, _, _ := strings.Cut(a, "=")
		if v, ok := moved[name]; ok {
			a = name + "=" + v
		}
		args = append(args, a)
	}
	args = append(args, "--kubeconfig="+serviceAccountKubeconfig(t), "--attestation-hosts=localhost")

	cmd := exec.CommandContext(ctx, bin, args...)
	// Stopped as the kubelet stops it: SIGTERM, so that it hands over its
	// lease and takes its label off, then SIGKILL if it lingers.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+operatorNamespace, "POD_NAME="+operatorPodName)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(logs.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		logs.wait()
		if t.Failed() {
			t.Logf("operator log:\n%s", logs.tail())
		}
	})
	return logs
}

// writeServingCert puts a self-signed key pair where cert-manager's Secret
// would be mounted.
func writeServingCert(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "iomt-operator-webhook"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"tls.crt": {Type: "CERTIFICATE", Bytes: der},
		"tls.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// serviceAccountKubeconfig writes a kubeconfig that acts as the chart's
// service account, by impersonation.
func serviceAccountKubeconfig(t *testing.T) string {
	t.Helper()
	cfg := cluster.cfg
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["operator"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Impersonate:           operatorAccount,
		ImpersonateGroups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace,
			"system:authenticated"},
	}
	kc.Contexts["operator"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "operator"}
	kc.CurrentContext = "operator"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// allowed asks the API server whether the chart's service account may do
// verb on resource in namespace ("" for every namespace), on the object
// name when one is given.
func allowed(t *testing.T, ctx context.Context, verb, resource, namespace, name string) bool {
	t.Helper()
	group := ""
	switch resource {
	case "medicaldevices":
		group = iomtv1.GroupVersion.Group
	case "mutatingwebhookconfigurations":
		group = admissionregistrationv1.GroupName
	case "clusterrolebindings":
		group = rbacv1.GroupName
	case "certificates":
		group = "cert-manager.io"
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   operatorAccount,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: verb, Group: group, Resource: resource, Namespace: namespace, Name: name,
		},
	}}
	if err := cluster.k8s.Create(ctx, sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// bindMetricsReader binds the chart's metrics reader ClusterRole to a
// service account of the operator's namespace.
func bindMetricsReader(t *testing.T, ctx context.Context, account string) {
	t.Helper()
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "iomt-operator-metrics-" + account},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole",
			Name: "iomt-operator-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: account, Namespace: operatorNamespace}},
	}
	if err := client.IgnoreAlreadyExists(cluster.k8s.Create(ctx, b)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.k8s.Delete(context.Background(), b) })
}

// serviceAccountToken creates a service account in the operator's
// namespace, if needed, and returns a token for it.
func serviceAccountToken(t *testing.T, ctx context.Context, account string) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: account, Namespace: operatorNamespace}}
	if err := client.IgnoreAlreadyExists(cluster.k8s.Create(ctx, sa)); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cluster.cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(operatorNamespace).CreateToken(ctx, account,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](600),
		}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func eventually(t *testing.T, ctx context.Context, check func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true,
		func(context.Context) (bool, error) {
			last = check()
			return last == nil, nil
		})
	if err != nil {
		t.Fatalf("%v (last: %v)", err, last)
	}
}

func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.Atoi(p); err != nil {
		t.Fatal(err)
	}
	return p
}
