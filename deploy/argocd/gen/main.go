// Command gen writes deploy/argocd/argocd-cm-health.yaml, the argocd-cm
// keys that register the health checks, from the scripts under
// deploy/argocd/resource_customizations. Run it from the repository root:
//
//	go run ./deploy/argocd/gen
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/medinaii/iomt-operator/deploy/argocd"
)

func main() {
	dir := flag.String("dir", filepath.Join("deploy", "argocd"),
		"the folder that holds "+argocd.CustomizationsDir)
	flag.Parse()

	if err := write(*dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func write(dir string) error {
	out, err := argocd.RenderConfigMap(os.DirFS(dir))
	if err != nil {
		return err
	}
	file := filepath.Join(dir, argocd.ConfigMapFile)
	if err := os.WriteFile(file, out, 0o644); err != nil {
		return fmt.Errorf("failed to write %s: %w", file, err)
	}
	return nil
}
