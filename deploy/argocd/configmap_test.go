package argocd

import (
	"bytes"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestConfigMapIsCurrent fails when argocd-cm-health.yaml no longer holds
// the health checks as they are.
func TestConfigMapIsCurrent(t *testing.T) {
	want, err := RenderConfigMap(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(ConfigMapFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("deploy/argocd/%s differs from the health checks; regenerate it from the "+
			"repository root with: go run ./deploy/argocd/gen", ConfigMapFile)
	}

	// What Argo CD reads back must be each script, byte for byte.
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(got, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Name != "argocd-cm" {
		t.Errorf("ConfigMap is named %q, want argocd-cm", cm.Name)
	}
	checks := healthChecks(t)
	if len(cm.Data) != len(checks) {
		t.Errorf("ConfigMap has %d keys, want one per health check (%d)", len(cm.Data), len(checks))
	}
	for _, c := range checks {
		key := ConfigMapKey(c.Group, c.Kind)
		if cm.Data[key] != c.Script {
			t.Errorf("data[%s] is not %s/%s verbatim", key, c.Dir, healthScript)
		}
	}
}

func TestRenderConfigMapRefusesScriptsYAMLWouldChange(t *testing.T) {
	for _, script := range []string{
		"return {}",           // no final newline
		"return {}\n\n",       // two
		"  return {}\n",       // indented first line
		"local a = 1 \n",      // trailing space
		"if x then\n\ty()\n",  // tab
		"return {}\r\n",       // carriage return
		"\nreturn {}\n",       // blank first line
		"-- ok\nreturn {}\n ", // ends in a space, no newline
	} {
		if err := literalSafe(script); err == nil {
			t.Errorf("literalSafe(%q) = nil, want an error", script)
		}
	}
	if err := literalSafe("-- ok\n\nreturn {}\n"); err != nil {
		t.Errorf("literalSafe refused a plain script: %v", err)
	}
}
