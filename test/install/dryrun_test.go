package install_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// deviceNamespacesInValues are the device namespaces the ci values sets
// name; RoleBindings go there, so they must exist.
var deviceNamespacesInValues = []string{"icu", "ward-3", "radiology", "lab", "integration",
	"clinical-apps"}

// Every object of every values set, and of config/default, is accepted by
// the API server (server-side apply, dry run), into a namespace that warns
// about anything the restricted Pod Security Standard forbids.
func TestEveryRenderedObjectIsAcceptedByTheAPIServer(t *testing.T) {
	cp := needCluster(t)
	ensureNamespace(t, "iomt-system", map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	})
	for _, ns := range deviceNamespacesInValues {
		ensureNamespace(t, ns, nil)
	}

	routes := map[string][]*unstructured.Unstructured{
		"config/default": kustomize(t, filepath.Join(configDir, "default")),
		"config/overlays/sample-clinic": kustomize(t,
			filepath.Join(configDir, "overlays", "sample-clinic")),
	}
	for _, f := range valuesSets(t) {
		routes["chart with "+filepath.Base(f)] = render(t, "iomt-system", []string{f})
	}
	for route, objs := range routes {
		t.Run(route, func(t *testing.T) {
			cp.takeWarnings()
			for _, o := range objs {
				if err := dryRunApply(cp.k8s, o); err != nil {
					t.Errorf("%s %s/%s refused: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
			if w := cp.takeWarnings(); len(w) > 0 {
				t.Errorf("the API server warned:\n%s", strings.Join(w, "\n"))
			}
		})
	}
}

func dryRunApply(c client.Client, o *unstructured.Unstructured) error {
	return c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
		client.FieldOwner("install-test"), client.ForceOwnership, client.DryRunAll)
}
