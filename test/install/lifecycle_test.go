package install_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

const (
	devicesCRD  = "medicaldevices.iomt.medinaii.io"
	segmentsCRD = "segmentpolicies.iomt.medinaii.io"
)

// A release installs, upgrades its CRDs with the chart, and uninstalls
// leaving the CRDs, the inventory, no webhook and nothing stuck; asked to,
// it takes the CRDs along.
func TestHelmInstallUpgradeAndUninstall(t *testing.T) {
	cp := needCluster(t)
	ctx := context.Background()
	kubeconfig := adminKubeconfig(t, cp)
	release := func(args ...string) {
		t.Helper()
		args = append(args, "--kubeconfig", kubeconfig, "--namespace", "iomt-lifecycle")
		if out, err := helm(t, args...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}

	release("install", "iomt-operator", chartDir, "--create-namespace")
	for _, name := range []string{devicesCRD, segmentsCRD} {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := cp.k8s.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Fatalf("CRD %s after install: %v", name, err)
		}
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := cp.k8s.Get(ctx, client.ObjectKey{Name: "iomt-operator"}, &mwc); err != nil {
		t.Fatalf("webhook configuration after install: %v", err)
	}
	waitForCRD(t, devicesCRD)
	ensureNamespace(t, "lifecycle-ward", nil)
	device := &iomtv1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Name: "pump-01", Namespace: "lifecycle-ward"},
		Spec: iomtv1.MedicalDeviceSpec{
			Class: iomtv1.ClassInfusionPump, Criticality: iomtv1.CriticalityLifeSustaining,
			Manufacturer: "BD", Model: "Alaris 8015 PC Unit", Addresses: []iomtv1.LANAddress{"10.20.1.21"},
		},
	}
	if err := cp.k8s.Create(ctx, device); err != nil {
		t.Fatal(err)
	}

	// A newer chart whose CRD has a new printer column: helm upgrade
	// carries it to the cluster.
	newer := copyChart(t)
	crdFile := filepath.Join(newer, "files", "crds", "iomt.medinaii.io_medicaldevices.yaml")
	raw, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	column := "    - jsonPath: .spec.serialNumber\n      name: Serial\n      type: string\n"
	upgraded := strings.Replace(string(raw), "  - additionalPrinterColumns:\n",
		"  - additionalPrinterColumns:\n"+column, 1)
	if upgraded == string(raw) {
		t.Fatal("the CRD has no printer columns to extend")
	}
	if err := os.WriteFile(crdFile, []byte(upgraded), 0o644); err != nil {
		t.Fatal(err)
	}
	release("upgrade", "iomt-operator", newer)
	var crd apiextensionsv1.CustomResourceDefinition
	if err := cp.k8s.Get(ctx, client.ObjectKey{Name: devicesCRD}, &crd); err != nil {
		t.Fatal(err)
	}
	if !hasColumn(crd, "Serial") {
		t.Error("helm upgrade did not upgrade the MedicalDevice CRD")
	}

	release("uninstall", "iomt-operator", "--wait", "--timeout", "60s")
	for _, name := range []string{devicesCRD, segmentsCRD} {
		if err := cp.k8s.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Errorf("CRD %s after uninstall: %v", name, err)
		}
	}
	if err := cp.k8s.Get(ctx, client.ObjectKeyFromObject(device), device); err != nil {
		t.Errorf("the inventory did not survive uninstall: %v", err)
	} else if device.DeletionTimestamp != nil || len(device.Finalizers) > 0 {
		t.Errorf("device left deleting or with finalizers %v", device.Finalizers)
	}
	assertNoWebhooks(t)

	// Installed again, the release adopts the CRDs it kept; asked to,
	// uninstall then removes them and with them the inventory.
	release("install", "iomt-operator", chartDir, "--set", "crds.keep=false")
	release("uninstall", "iomt-operator", "--wait", "--timeout", "60s")
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true,
		func(ctx context.Context) (bool, error) {
			err := cp.k8s.Get(ctx, client.ObjectKey{Name: devicesCRD}, &crd)
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
	if err != nil {
		t.Errorf("the MedicalDevice CRD outlived uninstall with crds.keep=false: %v", err)
	}
	assertNoWebhooks(t)
}

func assertNoWebhooks(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	for _, o := range []client.Object{&mwc, &vwc} {
		if err := cluster.k8s.Get(ctx, client.ObjectKey{Name: "iomt-operator"}, o); !apierrors.IsNotFound(err) {
			t.Errorf("a %T survived uninstall (err %v)", o, err)
		}
	}
}

func hasColumn(crd apiextensionsv1.CustomResourceDefinition, name string) bool {
	for _, v := range crd.Spec.Versions {
		for _, c := range v.AdditionalPrinterColumns {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

// waitForCRD waits until a CRD is served.
func waitForCRD(t *testing.T, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second,
		true, func(ctx context.Context) (bool, error) {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := cluster.k8s.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
	if err != nil {
		t.Fatalf("CRD %s is not served: %v", name, err)
	}
	// The client's REST mapping learns of the new kind on its next miss.
}

// adminKubeconfig writes a kubeconfig for a cluster admin of the test
// control plane.
func adminKubeconfig(t *testing.T, cp *controlPlane) string {
	t.Helper()
	user, err := cp.env.AddUser(envtest.User{Name: "installer", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// copyChart copies the chart into a temporary folder.
func copyChart(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "iomt-operator")
	if err := os.CopyFS(dst, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	return dst
}
