package install_test

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/medinaii/iomt-operator/internal/webhook"
	"github.com/medinaii/iomt-operator/test/clinic"
	"github.com/medinaii/iomt-operator/test/helmtest"
)

var (
	chartDir  = filepath.Join("..", "..", "charts", "iomt-operator")
	configDir = filepath.Join("..", "..", "config")
)

// valuesSets are the chart's ci/*-values.yaml files: defaults, cert-manager
// mode, the Cilium engine and the ServiceMonitor.
func valuesSets(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("want at least 4 values files in %s/ci, found %v (%v)", chartDir, files, err)
	}
	return files
}

// helm runs the pinned Helm.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return helmtest.Run(t, args...)
}

// render returns the chart's objects for the release iomt-operator in
// namespace, with the given values files and --set flags.
func render(t *testing.T, namespace string, valuesFiles []string, sets ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "iomt-operator", chartDir, "--namespace", namespace}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := clinic.DecodeManifests([]byte(out), "helm template")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func convert[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	if o == nil {
		t.Fatalf("missing object of type %T", *new(T))
	}
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(
		o.Object, &out, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &out
}

func TestChartLintsCleanWithEveryValuesSet(t *testing.T) {
	for _, f := range valuesSets(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if out, err := helm(t, "lint", "--strict", chartDir, "--values", f); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

func TestSchemaRefusesValuesTheOperatorCannotUse(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"replicaCount=0", "replicaCount"},
		{"policyEngine=calico", "policyEngine"},
		{"deviceNamespaces={ICU}", "deviceNamespaces"},
		{"identity.lifetime=1day", "lifetime"},
		{"certManager.issuer.kind=Vault", "kind"},
		{"image.digest=latest", "digest"},
		{"crds.kepp=false", "kepp"},
		{"networkPolicy.apiServer.ports={0}", "ports"},
		{"deviceNamespaces={*,icu}", "deviceNamespaces"},
		{"deviceNamespaces={kube-system}", "deviceNamespaces"},
		{"deviceNamespaces={iomt-system}", "own namespace"},
		{"logLevel=0", "logLevel"},
		{"replicaCount=3000000", "replicaCount"},
		{"podDisruptionBudget.maxUnavailable=0", "maxUnavailable"},
		{"identity.lifetime=1s", "lifetime"},
		{"identity.lifetime=9000h", "longer than 8760h"},
		{"identity.caLifetime=48h", "too short"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out, err := helm(t, "template", "iomt-operator", chartDir, "--namespace", "iomt-system",
				"--set", tc.set)
			if err == nil {
				t.Fatalf("rendered with --set %s; want a schema error", tc.set)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("error does not name %q:\n%s", tc.want, out)
			}
		})
	}
}

// The chart's webhook configurations are the ones the operator's Go
// builders describe, in whatever namespace the chart is installed.
func TestChartWebhooksMatchTheOperatorsBuilders(t *testing.T) {
	for _, ns := range []string{"iomt-system", "clinic-ops"} {
		objs := render(t, ns, nil)
		opts := webhook.Options{OperatorNamespace: ns}
		gotM := convert[admissionregistrationv1.MutatingWebhookConfiguration](t,
			find(objs, "MutatingWebhookConfiguration", webhook.DefaultConfigurationName))
		gotV := convert[admissionregistrationv1.ValidatingWebhookConfiguration](t,
			find(objs, "ValidatingWebhookConfiguration", webhook.DefaultConfigurationName))
		if diff := diffJSON(webhook.MutatingConfiguration(opts).Webhooks, gotM.Webhooks); diff != "" {
			t.Errorf("namespace %s: mutating webhooks differ from the builder's:\n%s", ns, diff)
		}
		if diff := diffJSON(webhook.ValidatingConfiguration(opts).Webhooks, gotV.Webhooks); diff != "" {
			t.Errorf("namespace %s: validating webhooks differ from the builder's:\n%s", ns, diff)
		}
	}
}

func TestChartPodMeetsTheRestrictedProfile(t *testing.T) {
	for _, f := range valuesSets(t) {
		dep := convert[appsv1.Deployment](t, find(render(t, "iomt-system", []string{f}), "Deployment",
			"iomt-operator"))
		pod := dep.Spec.Template.Spec
		if *dep.Spec.Replicas < 2 {
			t.Errorf("%s: %d replicas, want 2", f, *dep.Spec.Replicas)
		}
		if !slices.Contains(pod.Containers[0].Args, "--leader-elect=true") {
			t.Errorf("%s: leader election is off", f)
		}
		sc := pod.Containers[0].SecurityContext
		switch {
		case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: root filesystem is writable", f)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: privilege escalation allowed", f)
		case pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot:
			t.Errorf("%s: may run as root", f)
		case pod.SecurityContext.SeccompProfile == nil ||
			pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault":
			t.Errorf("%s: seccomp profile is not RuntimeDefault", f)
		}
		res := pod.Containers[0].Resources
		if res.Requests.Cpu().IsZero() || res.Requests.Memory().IsZero() || res.Limits.Memory().IsZero() {
			t.Errorf("%s: resources %v", f, res)
		}
	}
}

// With device namespaces listed, nothing the chart grants cluster-wide lets
// the operator read Secrets or Pods; Secrets are granted in those
// namespaces only.
func TestChartGrantsNoClusterWideSecretOrPodAccess(t *testing.T) {
	objs := render(t, "iomt-system", nil, "deviceNamespaces={icu,ward-3}")
	clusterRoles := map[string]*rbacv1.ClusterRole{}
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" {
			clusterRoles[o.GetName()] = convert[rbacv1.ClusterRole](t, o)
		}
	}
	var secretNamespaces []string
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRoleBinding":
			b := convert[rbacv1.ClusterRoleBinding](t, o)
			role := clusterRoles[b.RoleRef.Name]
			if role == nil {
				t.Fatalf("ClusterRoleBinding %s binds %s, which the chart does not define", b.Name,
					b.RoleRef.Name)
			}
			for _, r := range role.Rules {
				if grants(r, "secrets") || grants(r, "pods") {
					t.Errorf("ClusterRole %s, bound cluster-wide, grants %v on %v", role.Name, r.Verbs,
						r.Resources)
				}
			}
		case "RoleBinding":
			if o.GetName() == "iomt-operator-device-identity" {
				secretNamespaces = append(secretNamespaces, o.GetNamespace())
			}
		}
	}
	slices.Sort(secretNamespaces)
	if !slices.Equal(secretNamespaces, []string{"icu", "ward-3"}) {
		t.Errorf("device identity bound in %v, want [icu ward-3]", secretNamespaces)
	}
	args := convert[appsv1.Deployment](t, find(objs, "Deployment", "iomt-operator")).
		Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--device-namespaces=icu,ward-3") {
		t.Errorf("the operator is not told its device namespaces: %v", args)
	}
}

func grants(r rbacv1.PolicyRule, resource string) bool {
	return slices.Contains(r.APIGroups, "") &&
		(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*"))
}

func TestChartKeepsCRDsUnlessAsked(t *testing.T) {
	for _, tc := range []struct {
		set  string
		keep bool
	}{{"crds.keep=true", true}, {"crds.keep=false", false}} {
		objs := render(t, "iomt-system", nil, tc.set)
		n := 0
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			n++
			_, kept := o.GetAnnotations()["helm.sh/resource-policy"]
			if kept != tc.keep {
				t.Errorf("%s: CRD %s kept=%v", tc.set, o.GetName(), kept)
			}
			if o.GetAnnotations()["argocd.argoproj.io/sync-wave"] != "-1" {
				t.Errorf("CRD %s is not synced before the rest", o.GetName())
			}
		}
		if n != 2 {
			t.Errorf("%s: %d CRDs, want 2", tc.set, n)
		}
	}
	for _, o := range render(t, "iomt-system", nil, "crds.install=false") {
		if o.GetKind() == "CustomResourceDefinition" {
			t.Errorf("crds.install=false still renders %s", o.GetName())
		}
	}
}

// On Cilium the operator's pods reach the API server by Cilium's entity for
// it, in a rule Cilium's own parser accepts; elsewhere no Cilium object is
// rendered.
func TestChartLetsTheOperatorReachTheAPIServerOnCilium(t *testing.T) {
	if o := find(render(t, "iomt-system", nil), "CiliumNetworkPolicy", "iomt-operator-apiserver"); o != nil {
		t.Error("a CiliumNetworkPolicy is rendered without Cilium")
	}
	cnp := convert[ciliumv2.CiliumNetworkPolicy](t, find(render(t, "iomt-system",
		[]string{filepath.Join(chartDir, "ci", "cilium-values.yaml")}), "CiliumNetworkPolicy",
		"iomt-operator-apiserver"))
	rules, err := cnp.Parse(slog.New(slog.DiscardHandler), "default")
	if err != nil {
		t.Fatalf("Cilium refuses the rule: %v", err)
	}
	if len(rules) != 1 || len(rules[0].Egress) != 1 ||
		!slices.Contains(rules[0].Egress[0].ToEntities, "kube-apiserver") {
		t.Errorf("rules %+v do not allow the kube-apiserver entity", rules)
	}
}
