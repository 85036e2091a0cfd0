package install_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ciliumcrds "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/client/crds/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
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
	installCiliumCRD(t)

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

// installCiliumCRD installs the CiliumNetworkPolicy CRD from Cilium's Go
// module for one test, and removes it after, so that later tests see a
// cluster without Cilium.
func installCiliumCRD(t *testing.T) {
	t.Helper()
	raw, err := ciliumcrds.EmbedFS.ReadFile("ciliumnetworkpolicies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(cluster.cfg, envtest.CRDInstallOptions{
		CRDs: []*apiextensionsv1.CustomResourceDefinition{&crd},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := envtest.UninstallCRDs(cluster.cfg, envtest.CRDInstallOptions{
			CRDs: []*apiextensionsv1.CustomResourceDefinition{&crd},
		})
		if err != nil {
			t.Errorf("failed to remove the Cilium CRD: %v", err)
		}
		err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute,
			true, func(ctx context.Context) (bool, error) {
				err := cluster.k8s.Get(ctx, client.ObjectKeyFromObject(&crd),
					&apiextensionsv1.CustomResourceDefinition{})
				return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
			})
		if err != nil {
			t.Errorf("the Cilium CRD outlived its test: %v", err)
		}
	})
}
