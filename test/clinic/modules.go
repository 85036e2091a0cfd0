package clinic

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
)

// ModuleDir returns where a module (path@version) is in the module cache,
// fetching it from the Go module proxy when it is not there yet.
func ModuleDir(module string) (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		return "", fmt.Errorf("failed to download %s: %w", module, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("failed to locate %s: %v", module, err)
	}
	return mod.Dir, nil
}

// CertManagerModule is the cert-manager release whose CRDs the tests
// install.
const CertManagerModule = "github.com/cert-manager/cert-manager@v1.21.2"

// CertManagerCRDs returns the paths of the Certificate, Issuer and
// ClusterIssuer CRDs that ship in CertManagerModule.
func CertManagerCRDs() ([]string, error) {
	dir, err := ModuleDir(CertManagerModule)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, kind := range []string{"certificates", "issuers", "clusterissuers"} {
		paths = append(paths, filepath.Join(dir, "deploy", "crds", "cert-manager.io_"+kind+".yaml"))
	}
	return paths, nil
}
