package clinic

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The suite shares one control plane, started with Secrets encrypted at
// rest the way the demo starts it.
var (
	cp        *ControlPlane
	k8sClient client.Client
	// repoRoot is the repository, two levels up from this package.
	repoRoot = filepath.Join("..", "..")
)

func TestClinic(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "Clinic suite")
}

var _ = BeforeSuite(func() {
	if os.Getenv(AssetsEnv) == "" {
		Skip(AssetsEnv + " is not set; run make test, which builds the control plane first")
	}
	var err error
	cp, err = StartControlPlane(filepath.Join(repoRoot, "config", "crd", "bases"))
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = NewClient(cp.Config)
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if cp != nil {
		Expect(cp.Stop()).To(Succeed())
	}
})

// suiteContext is a context bounded well inside the suite's time.
func suiteContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}
