package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/internal/segment"
	"github.com/medinaii/iomt-operator/internal/verifier"
	"github.com/medinaii/iomt-operator/test/clinic"
	"github.com/medinaii/iomt-operator/test/devicesim"
)

// verifyPump shows continuous verification: a simulated Sigma Spectrum
// pump behind mutual TLS, the verifier checking it every second with the
// identity the operator issued it, and reporting to the operator's
// attestation endpoint. The pump's firmware changes, it is quarantined;
// the firmware is restored, it is let back in.
func verifyPump(ctx context.Context, c client.Client, namespaces []string, attestationURL string,
	out io.Writer) error {
	const ns, name, good = "icu", "icu-pump-spectrum-01", "8.01.01"
	fmt.Fprintf(out, "\nContinuous verification: %s/%s, a simulated pump, checked every second by the "+
		"verifier sidecar\n", ns, name)

	dir, err := os.MkdirTemp("", "iomt-demo-identity-")
	if err != nil {
		return fmt.Errorf("failed to create the identity directory: %w", err)
	}
	defer os.RemoveAll(dir)
	pair, pool, err := mountIdentity(ctx, c, ns, name, dir)
	if err != nil {
		return err
	}

	sim, err := devicesim.Start(devicesim.Config{Certificate: pair, ClientCAs: pool,
		Firmware: attest.Firmware{Version: good}})
	if err != nil {
		return fmt.Errorf("failed to start the pump simulator: %w", err)
	}
	defer sim.Close()

	v := verifier.New(verifier.Config{
		IdentityDir: dir, AttestationURL: attestationURL, Interval: time.Second, Endpoint: sim.Addr(),
		FirmwareProbe: verifier.ProbeHTTPSJSON, FirmwarePath: devicesim.DefaultPath,
		TrustDomain: "iomt.local", ReloadEvery: 2 * time.Second,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	vctx, stopVerifier := context.WithCancel(ctx)
	defer stopVerifier()
	go func() { _ = v.Run(vctx) }()

	probes, err := pumpProbes(ctx, c)
	if err != nil {
		return err
	}
	steps := []struct {
		label    string
		firmware string
		state    iomtv1.VerificationState
		q        iomtv1.QuarantineState
	}{
		{"verified", good, iomtv1.VerificationVerified, iomtv1.QuarantineNone},
		{"tampered", "6.6.6", iomtv1.VerificationFailed, iomtv1.QuarantineRestricted},
		{"restored", good, iomtv1.VerificationVerified, iomtv1.QuarantineNone},
	}
	for _, step := range steps {
		sim.SetFirmware(attest.Firmware{Version: step.firmware})
		started := time.Now()
		d, err := waitVerification(ctx, c, ns, name, step.state, step.q, namespaces)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%-10s pump reports firmware %s -> verification %s, quarantine %s (%s)\n",
			step.label, step.firmware, d.Status.Verification.State, d.Status.Quarantine.State,
			time.Since(started).Round(100*time.Millisecond))
		if d.Status.Quarantine.State != iomtv1.QuarantineNone {
			fmt.Fprintf(out, "           %s\n", d.Status.Quarantine.Message)
		} else if step.label == "restored" {
			fmt.Fprintf(out, "           released after %d clean reports (released with %q)\n",
				d.Status.Verification.ConsecutivePasses, d.Status.Verification.ReleasedWith)
		}
		table, err := clinic.EvaluateFlows(ctx, c, append(namespaces, metav1.NamespaceSystem), probes,
			clinic.ClinicalPorts)
		if err != nil {
			return err
		}
		if err := table.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// mountIdentity writes the device's identity Secret and its namespace's
// trust bundle into dir as the pod admission webhook's volume would hold
// them, and returns the key pair and the trusted CAs.
func mountIdentity(ctx context.Context, c client.Client, ns, name, dir string) (
	tls.Certificate, *x509.CertPool, error) {
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: iomtv1.IdentitySecretName(name)},
		&secret); err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("failed to read the identity of %s: %w", name, err)
	}
	var bundle corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: iomtv1.TrustBundleName},
		&bundle); err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("failed to read the trust bundle of %s: %w", ns, err)
	}
	files := map[string][]byte{
		"tls.crt": secret.Data["tls.crt"], "tls.key": secret.Data["tls.key"],
		"ca.crt": secret.Data["ca.crt"], "bundle.crt": []byte(bundle.Data["ca.crt"]),
	}
	if err := devicesim.WriteAtomically(dir, files); err != nil {
		return tls.Certificate{}, nil, err
	}
	pair, err := tls.X509KeyPair(files["tls.crt"], files["tls.key"])
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("failed to load the identity of %s: %w", name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(files["bundle.crt"]) {
		return tls.Certificate{}, nil, errors.New("the trust bundle holds no certificate")
	}
	return pair, pool, nil
}

func pumpProbes(ctx context.Context, c client.Reader) ([]clinic.Probe, error) {
	pump, err := clinic.PodEndpoint(ctx, c, "icu", clinic.DevicePodName("icu-pump-spectrum-01"))
	if err != nil {
		return nil, err
	}
	gateway, err := clinic.PodEndpoint(ctx, c, "integration", clinic.DevicePodName("gw-neuron-01"))
	if err != nil {
		return nil, err
	}
	return []clinic.Probe{
		{From: pump, To: gateway},
		{From: pump, To: clinic.AddressEndpoint("drug library 10.30.4.20", "10.30.4.20")},
	}, nil
}

// waitVerification waits until the device shows the verification and
// quarantine states and every policy has caught up.
func waitVerification(ctx context.Context, c client.Client, ns, name string,
	state iomtv1.VerificationState, q iomtv1.QuarantineState, namespaces []string) (
	*iomtv1.MedicalDevice, error) {
	deadline := time.Now().Add(convergeTimeout)
	for {
		var d iomtv1.MedicalDevice
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return nil, fmt.Errorf("failed to read MedicalDevice %s/%s: %w", ns, name, err)
		}
		v, cur := d.Status.Verification, d.Status.Quarantine
		if v != nil && cur != nil && v.State == state && cur.State == q {
			if stale, err := clinic.StalePolicies(ctx, c, namespaces, segment.DefaultConfig()); err != nil {
				return nil, err
			} else if len(stale) == 0 {
				return &d, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s/%s did not reach verification %s and quarantine %s in %s",
				ns, name, state, q, convergeTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
