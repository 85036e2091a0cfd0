package install_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/medinaii/iomt-operator/test/clinic"
)

// helmOnly are the labels and annotations only Helm's route sets.
var (
	helmOnlyLabels      = []string{"helm.sh/chart", "app.kubernetes.io/managed-by"}
	helmOnlyAnnotations = []string{"helm.sh/resource-policy", "argocd.argoproj.io/sync-wave"}
)

// kustomize builds a kustomization with the kubectl of the test control
// plane.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set; run make test")
	}
	out, err := exec.Command(filepath.Join(assets, "kubectl"), "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
	}
	objs, err := clinic.DecodeManifests(out, dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// The two install routes install the same objects: the chart with its
// defaults, and config/default apart from the Namespace it creates.
func TestKustomizeBundleInstallsWhatTheChartInstalls(t *testing.T) {
	fromKustomize := index(t, kustomize(t, filepath.Join(configDir, "default")))
	fromHelm := index(t, render(t, "iomt-system", nil))

	ns, ok := fromKustomize["Namespace//iomt-system"]
	if !ok {
		t.Error("config/default does not create the namespace iomt-system")
	} else if ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Error("config/default does not enforce the restricted Pod Security Standard")
	}
	delete(fromKustomize, "Namespace//iomt-system")

	for _, key := range union(fromKustomize, fromHelm) {
		k, h := fromKustomize[key], fromHelm[key]
		switch {
		case k == nil:
			t.Errorf("%s is installed by the chart only", key)
		case h == nil:
			t.Errorf("%s is installed by config/default only", key)
		default:
			if d := diffJSON(normalize(h), normalize(k)); d != "" {
				t.Errorf("%s differs between the chart (-) and config/default (+); "+
					"run make manifests:\n%s", key, d)
			}
		}
	}
}

func index(t *testing.T, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		key := o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
		if _, dup := m[key]; dup {
			t.Errorf("%s is rendered twice", key)
		}
		m[key] = o
	}
	return m
}

func union(a, b map[string]*unstructured.Unstructured) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// normalize drops what only Helm's route sets: its labels wherever labels
// are, and on the CRDs, which controller-gen writes bare, every label.
func normalize(o *unstructured.Unstructured) map[string]any {
	c := o.DeepCopy()
	if c.GetKind() == "CustomResourceDefinition" {
		c.SetLabels(nil)
	}
	annotations := c.GetAnnotations()
	for _, a := range helmOnlyAnnotations {
		delete(annotations, a)
	}
	c.SetAnnotations(annotations)
	dropHelmLabels(c.Object)
	return c.Object
}

func dropHelmLabels(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if labels, ok := child.(map[string]any); ok && k == "labels" {
				for _, l := range helmOnlyLabels {
					delete(labels, l)
				}
				if len(labels) == 0 {
					delete(v, k)
				}
				continue
			}
			dropHelmLabels(child)
		}
	case []any:
		for _, child := range v {
			dropHelmLabels(child)
		}
	}
}

// diffJSON returns how got differs from want, or "" when they are the same
// once both are JSON.
func diffJSON(want, got any) string {
	var w, g any
	for _, p := range []struct {
		in  any
		out *any
	}{{want, &w}, {got, &g}} {
		raw, err := json.Marshal(p.in)
		if err != nil {
			return fmt.Sprintf("cannot compare: %v", err)
		}
		if err := json.Unmarshal(raw, p.out); err != nil {
			return fmt.Sprintf("cannot compare: %v", err)
		}
	}
	return cmp.Diff(w, g)
}
