package install_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/test/clinic"
)

// monitoringModule has the Go types the ServiceMonitor CRD is generated
// from.
const monitoringModule = "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@v0.95.2"

// cluster is the test control plane every test in this package shares; nil
// when KUBEBUILDER_ASSETS is not set.
var cluster *controlPlane

type controlPlane struct {
	env *envtest.Environment
	cfg *rest.Config
	// k8s reads and writes as cluster admin.
	k8s client.Client
	// warnings the API server sent to k8s since the last takeWarnings.
	mu       sync.Mutex
	warnings []string
}

func (cp *controlPlane) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.warnings = append(cp.warnings, text)
}

func (cp *controlPlane) takeWarnings() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	w := cp.warnings
	cp.warnings = nil
	return w
}

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		os.Exit(m.Run())
	}
	cp, err := startControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cluster = cp
	code := m.Run()
	if err := cp.env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// startControlPlane starts kube-apiserver and etcd with the CRDs of what the
// chart can use but does not install: cert-manager and the Prometheus
// Operator's ServiceMonitor. The operator's own CRDs come from the chart.
func startControlPlane() (*controlPlane, error) {
	crds, err := clinic.CertManagerCRDs()
	if err != nil {
		return nil, err
	}
	monitoring, err := serviceMonitorCRD()
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{env: &envtest.Environment{
		CRDDirectoryPaths:     append(crds, monitoring),
		ErrorIfCRDPathMissing: true,
	}}
	cfg, err := cp.env.Start()
	if err != nil {
		return nil, fmt.Errorf("failed to start the control plane: %w", err)
	}
	cp.cfg = rest.CopyConfig(cfg)
	cp.cfg.WarningHandlerWithContext = cp
	scheme := controllers.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cp.k8s, err = client.New(cp.cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	return cp, nil
}

// needCluster skips a test when there is no control plane.
func needCluster(t *testing.T) *controlPlane {
	t.Helper()
	if cluster == nil {
		t.Skip("KUBEBUILDER_ASSETS is not set; run make test")
	}
	return cluster
}

// ensureNamespace creates a namespace, with labels, unless it exists.
func ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := client.IgnoreAlreadyExists(cluster.k8s.Create(context.Background(), ns)); err != nil {
		t.Fatal(err)
	}
}

// serviceMonitorCRD generates the ServiceMonitor CRD from the Prometheus
// Operator's Go types with controller-gen, as that project does, because
// its module does not ship the YAML.
func serviceMonitorCRD() (string, error) {
	gen := os.Getenv("CONTROLLER_GEN")
	if gen == "" {
		return "", fmt.Errorf("CONTROLLER_GEN is not set; run make test")
	}
	work, err := os.MkdirTemp("", "servicemonitor-crd")
	if err != nil {
		return "", err
	}
	pkg := "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	files := map[string]string{
		"go.mod":     "module servicemonitorcrd\n\ngo 1.26\n",
		"imports.go": "package servicemonitorcrd\n\nimport _ \"" + pkg + "\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	for _, args := range [][]string{
		{"go", "get", monitoringModule},
		{"go", "mod", "tidy"},
		{gen, "crd:crdVersions=v1,maxDescLen=0", "paths=" + pkg, "output:crd:dir=" + work + "/crds"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%v: %w\n%s", args, err, out)
		}
	}
	return filepath.Join(work, "crds", "monitoring.coreos.com_servicemonitors.yaml"), nil
}
