// Package helmtest runs the pinned Helm that make helm builds from its Go
// module, for tests of the chart.
package helmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Run runs Helm with args, in caches and configuration of its own, and
// returns what it printed. Helm is the binary HELM names, or bin/helm of
// this repository; a test fails at once when neither is there. On failure
// the output includes what Helm printed to standard error.
func Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		_, here, _, _ := runtime.Caller(0)
		bin = filepath.Join(filepath.Dir(here), "..", "..", "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Helm is not built (%v): run make helm, or set HELM", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(),
		"HELM_DATA_HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("helm %s: %w\n%s",
			strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
