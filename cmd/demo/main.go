// Command demo shows the operator at work on a sample clinic without a
// cluster: it starts a local kube-apiserver and etcd (Secrets encrypted at
// rest), runs the operator in-process, applies config/samples, stands in
// pods for the devices' workloads, waits until everything is reconciled and
// prints the segments, the devices and which connections the generated
// NetworkPolicies allow. Run it with make demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/internal/segment"
	"github.com/medinaii/iomt-operator/test/clinic"
)

const (
	// convergeTimeout bounds the wait for the operator to catch up.
	convergeTimeout = 60 * time.Second
	// runTimeout bounds the whole demo.
	runTimeout = 2 * time.Minute
)

func main() {
	verbose := flag.Bool("v", false, "Print the operator's logs to stderr.")
	flag.Parse()
	if *verbose {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

// run does the whole demo; it stops the control plane whatever happens.
func run(ctx context.Context, out io.Writer) (err error) {
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "iomt-operator demo: a sample clinic on a local control plane")
	fmt.Fprintln(out)

	// A control plane with Secrets encrypted at rest, checked straight in etcd.
	cp, err := clinic.StartControlPlane(filepath.Join(root, "config", "crd", "bases"))
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := cp.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	c, err := clinic.NewClient(cp.Config)
	if err != nil {
		return err
	}
	if err := checkEncryption(ctx, cp, c); err != nil {
		return err
	}
	fmt.Fprintf(out, "%-14s kube-apiserver and etcd from %s\n", "Control plane",
		os.Getenv(clinic.AssetsEnv))
	fmt.Fprintf(out, "%-14s Secrets stored in etcd as %q... (AES-256-GCM, fresh key)\n", "",
		clinic.EncryptedPrefix)

	// The operator, in this process.
	operatorCtx, stopOperator := context.WithCancel(ctx)
	operator, err := clinic.StartOperator(operatorCtx, cp.Config)
	if err != nil {
		stopOperator()
		return err
	}
	defer func() {
		stopOperator()
		if opErr := <-operator.Done; opErr != nil {
			err = errors.Join(err, fmt.Errorf("operator stopped with an error: %w", opErr))
		}
	}()
	fmt.Fprintf(out, "%-14s running in this process (metrics and probes off)\n", "Operator")

	docs, maps, err := clinic.LoadAdvisories(ctx, c, filepath.Join(root, "config", "samples", "advisories"),
		controllers.DefaultNamespace)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-14s %d real CSAF advisories (CISA ICSMA) in %d ConfigMaps in %s\n", "Advisories",
		docs, maps, controllers.DefaultNamespace)

	namespaces, err := loadClinic(ctx, c, filepath.Join(root, "config", "samples"), out)
	if err != nil {
		return err
	}
	if err := report(ctx, c, namespaces, out); err != nil {
		return err
	}
	if err := quarantineByHand(ctx, c, namespaces, out); err != nil {
		return err
	}
	if err := verifyPump(ctx, c, namespaces, operator.AttestationURL, out); err != nil {
		return err
	}

	fmt.Fprint(out, `
On a real cluster, install the operator with Helm or kustomize (README,
"Install"), or try it from here with the current kubeconfig's context:
  make install                      # the CRDs
  kubectl create namespace iomt-system
  make run                          # the operator, from here
  kubectl apply -k config/samples   # in another terminal: the same clinic
  kubectl create configmap icsma-samples -n iomt-system --from-file=config/samples/advisories/
  kubectl label configmap icsma-samples -n iomt-system iomt.medinaii.io/advisories=icsma
  kubectl get segpol,mdev -A        # watch it converge
`)
	fmt.Fprintf(out, "\nDone in %s; stopping the control plane.\n",
		time.Since(started).Round(100*time.Millisecond))
	return nil
}

// loadClinic applies the samples, stands in pods and waits for the operator
// to catch up. It returns the clinic's namespaces.
func loadClinic(ctx context.Context, c client.Client, samples string,
	out io.Writer) ([]string, error) {
	objs, err := clinic.LoadManifests(samples)
	if err != nil {
		return nil, err
	}
	if err := clinic.Apply(ctx, c, objs, clinic.SampleFieldOwner); err != nil {
		return nil, err
	}
	namespaces := clinic.Namespaces(objs)
	fmt.Fprintf(out, "%-14s %d objects from config/samples: %d Namespaces, %d MedicalDevices, "+
		"%d SegmentPolicies\n", "Applied", len(objs), len(namespaces),
		clinic.Count(objs, "MedicalDevice"), clinic.Count(objs, "SegmentPolicy"))

	pods, err := clinic.CreateSamplePods(ctx, c, namespaces)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "%-14s %d stand-in pods (%d for device workloads), IPs set in status\n",
		"Pods", pods.Total, pods.Devices)

	waitStart := time.Now()
	if err := clinic.WaitForConvergence(ctx, c, namespaces, convergeTimeout); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "%-14s every SegmentPolicy and MedicalDevice reconciled in %s\n", "Converged",
		time.Since(waitStart).Round(10*time.Millisecond))

	if err := waitUpToDate(ctx, c, namespaces, out); err != nil {
		return nil, err
	}
	return namespaces, nil
}

// waitUpToDate waits, bounded, until every segment's policies match its
// members: quarantines that follow from device status take a second round.
func waitUpToDate(ctx context.Context, c client.Client, namespaces []string, out io.Writer) error {
	deadline := time.Now().Add(convergeTimeout)
	for {
		stale, err := clinic.StalePolicies(ctx, c, namespaces, segment.DefaultConfig())
		if err != nil {
			return err
		}
		if len(stale) == 0 {
			fmt.Fprintf(out, "%-14s every segment's NetworkPolicies match its current members and flows\n",
				"Up to date")
			return nil
		}
		if time.Now().After(deadline) {
			for _, s := range stale {
				fmt.Fprintf(out, "%-14s %s\n", "WARNING", s)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// report prints the segments, the devices and the flow table.
func report(ctx context.Context, c client.Client, namespaces []string, out io.Writer) error {
	summary, err := clinic.Summarize(ctx, c, namespaces)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nSegments")
	if err := summary.WriteSegments(out); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nDevices")
	if err := summary.WriteDevices(out); err != nil {
		return err
	}

	fmt.Fprintln(out, "\nIdentities: each device's certificate from the operator's CA, in a Secret it owns")
	if err := clinic.WaitForIdentities(ctx, c, namespaces, convergeTimeout); err != nil {
		return err
	}
	if err := clinic.WriteIdentities(ctx, c, namespaces, out); err != nil {
		return err
	}

	fmt.Fprintln(out, "\nSecurity advisories: what they say about each device's firmware and what the "+
		"operator did")
	if err := clinic.WriteVulnerabilities(ctx, c, namespaces, out); err != nil {
		return err
	}

	probes, err := clinic.SampleProbes(ctx, c)
	if err != nil {
		return err
	}
	table, err := clinic.EvaluateFlows(ctx, c, append(namespaces, metav1.NamespaceSystem), probes,
		clinic.ClinicalPorts)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nAllowed flows: %d NetworkPolicies read back from the API server, "+
		"evaluated by cyclonus (Y allowed, . denied)\n", table.Policies)
	return table.Write(out)
}

// checkEncryption writes a Secret and fails unless etcd holds it encrypted.
func checkEncryption(ctx context.Context, cp *clinic.ControlPlane, c client.Client) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "iomt-demo-at-rest"},
		StringData: map[string]string{"check": "plain text that must not reach etcd"},
	}
	if err := c.Create(ctx, secret); err != nil {
		return fmt.Errorf("failed to create Secret %s: %w", secret.Name, err)
	}
	raw, err := cp.ReadEtcd(ctx, clinic.SecretKey(secret.Namespace, secret.Name))
	if err != nil {
		return err
	}
	if !clinic.IsEncrypted(raw) {
		return fmt.Errorf("secret %s is not encrypted at rest in etcd", secret.Name)
	}
	return nil
}

// moduleRoot finds the directory of go.mod, so that the demo finds
// config/ from anywhere in the repository.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("failed to find the working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("failed to find go.mod: run the demo from inside the repository")
		}
		dir = parent
	}
}
