// Package argocd holds what Argo CD needs to deploy and watch iomt-operator:
// health checks for MedicalDevice and SegmentPolicy laid out as in Argo CD's
// own repository, the argocd-cm keys that register them, and an example
// ApplicationSet for a fleet of clinic clusters with the per-clinic files it
// reads (clinics/). See docs/argocd.md.
package argocd

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

const (
	// CustomizationsDir holds one <group>/<kind>/health.lua per kind, with
	// its health_test.yaml and testdata beside it.
	CustomizationsDir = "resource_customizations"
	// ConfigMapFile is the argocd-cm snippet rendered from the health
	// checks.
	ConfigMapFile = "argocd-cm-health.yaml"

	healthScript = "health.lua"
)

// HealthCheck is one kind's health script.
type HealthCheck struct {
	Group string
	Kind  string
	// Dir is the folder that holds the script, health_test.yaml and
	// testdata.
	Dir    string
	Script string
}

// ConfigMapKey is the argocd-cm key under which Argo CD looks for the
// health check of a group and kind.
func ConfigMapKey(group, kind string) string {
	return "resource.customizations.health." + group + "_" + kind
}

// HealthChecks returns every health.lua under CustomizationsDir in fsys,
// sorted by group and kind.
func HealthChecks(fsys fs.FS) ([]HealthCheck, error) {
	var checks []HealthCheck
	err := fs.WalkDir(fsys, CustomizationsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != healthScript {
			return err
		}
		dir := path.Dir(p)
		parts := strings.Split(dir, "/")
		if len(parts) != 3 {
			return fmt.Errorf("%s: want %s/<group>/<kind>/%s", p, CustomizationsDir, healthScript)
		}
		script, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		checks = append(checks, HealthCheck{Group: parts[1], Kind: parts[2], Dir: dir,
			Script: string(script)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read health checks: %w", err)
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i].Dir < checks[j].Dir })
	return checks, nil
}

// RenderConfigMap returns an argocd-cm ConfigMap whose data registers every
// health check in fsys, each script verbatim in a YAML literal block.
func RenderConfigMap(fsys fs.FS) ([]byte, error) {
	checks, err := HealthChecks(fsys)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`# Argo CD health checks for iomt-operator's custom resources.
#
# Generated from resource_customizations/<group>/<kind>/health.lua by
#   go run ./deploy/argocd/gen
# Edit the scripts, not this file. To merge the keys into a running Argo CD:
#   kubectl -n argocd patch configmap argocd-cm --type merge \
#     --patch-file deploy/argocd/argocd-cm-health.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
`)
	for _, c := range checks {
		if err := literalSafe(c.Script); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", c.Dir, healthScript, err)
		}
		fmt.Fprintf(&b, "  %s: |\n", ConfigMapKey(c.Group, c.Kind))
		for _, line := range strings.Split(strings.TrimSuffix(c.Script, "\n"), "\n") {
			if line != "" {
				b.WriteString("    " + line)
			}
			b.WriteString("\n")
		}
	}
	return b.Bytes(), nil
}

// literalSafe reports why a script would not come back unchanged from a
// YAML literal block, if it would not.
func literalSafe(script string) error {
	switch {
	case !strings.HasSuffix(script, "\n") || strings.HasSuffix(script, "\n\n"):
		return fmt.Errorf("the script must end with exactly one newline")
	case strings.HasPrefix(script, " ") || strings.HasPrefix(script, "\n"):
		return fmt.Errorf("the script must not start with a space or a blank line")
	case strings.ContainsAny(script, "\t\r"):
		return fmt.Errorf("the script must not contain tabs or carriage returns")
	}
	for i, line := range strings.Split(script, "\n") {
		if strings.TrimRight(line, " ") != line {
			return fmt.Errorf("line %d ends in a space", i+1)
		}
	}
	return nil
}
