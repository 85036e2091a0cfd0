package webhook

import (
	"fmt"
	"strings"
	"time"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// defaultVerifierInterval is the check interval of a device that sets none;
// the operator counts silence with the same default.
const defaultVerifierInterval = 30 * time.Second

// verifierArgs are the verifier's command line for a device, taken from its
// spec.verification, so the verifier checks what the device declares and
// as often as the operator expects a report. dev is nil when the device
// does not exist; the binding check then refuses the pod anyway.
func verifierArgs(namespace, device string, dev *iomtv1.MedicalDevice, opts Options) []string {
	args := []string{
		"--identity-dir=" + iomtv1.IdentityMountPath,
		"--device=" + namespace + "/" + device,
		"--attestation-url=" + opts.attestationURL(),
		"--trust-domain=" + opts.trustDomain(),
	}
	interval := defaultVerifierInterval
	var v *iomtv1.Verification
	if dev != nil {
		v = dev.Spec.Verification
	}
	if v != nil && v.Interval != nil {
		interval = v.Interval.Duration
	}
	args = append(args, "--interval="+interval.String())
	if v == nil {
		return args
	}
	if v.Endpoint != "" {
		args = append(args, "--endpoint="+v.Endpoint)
	}
	if v.ServerSPIFFEID != "" {
		args = append(args, "--server-spiffe-id="+v.ServerSPIFFEID)
	}
	if v.ServerFingerprint != "" {
		args = append(args, "--server-fingerprint="+v.ServerFingerprint)
	}
	if p := v.FirmwareProbe; p != nil {
		args = append(args, "--firmware-probe="+probeFlag(p.Type))
		if p.Path != "" {
			args = append(args, "--firmware-path="+p.Path)
		}
	}
	return args
}

func probeFlag(t iomtv1.FirmwareProbeType) string {
	switch t {
	case iomtv1.FirmwareProbeFile:
		return "file"
	default:
		return "https-json"
	}
}

func (o Options) attestationURL() string {
	if o.AttestationURL != "" {
		return o.AttestationURL
	}
	ns := o.OperatorNamespace
	if ns == "" {
		ns = DefaultOperatorNamespace
	}
	return fmt.Sprintf("https://iomt-operator-attestation.%s.svc:8444", ns)
}

func (o Options) trustDomain() string {
	if o.TrustDomain == "" {
		return "iomt.local"
	}
	return strings.TrimSpace(o.TrustDomain)
}
