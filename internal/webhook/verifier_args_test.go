package webhook

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

func TestVerifierArgs(t *testing.T) {
	full := &iomtv1.MedicalDevice{Spec: iomtv1.MedicalDeviceSpec{Verification: &iomtv1.Verification{
		Interval: &metav1.Duration{Duration: 5 * time.Second}, Endpoint: "10.20.1.15:8443",
		ServerSPIFFEID: "spiffe://iomt.local/ns/icu/device/pump-7", ServerFingerprint: strings.Repeat("a", 64),
		FirmwareProbe: &iomtv1.FirmwareProbe{Type: iomtv1.FirmwareProbeFile, Path: "/run/fw.json"},
	}}}
	tests := []struct {
		name string
		dev  *iomtv1.MedicalDevice
		opts Options
		want []string
	}{
		{"a device without verification settings gets the defaults the operator counts with", nil,
			Options{OperatorNamespace: "ops"}, []string{"--device=icu/pump-7", "--interval=30s",
				"--attestation-url=https://iomt-operator-attestation.ops.svc:8444", "--trust-domain=iomt.local"}},
		{"a device's verification settings reach the verifier", full, Options{TrustDomain: "clinic.example"},
			[]string{"--interval=5s", "--endpoint=10.20.1.15:8443",
				"--server-spiffe-id=spiffe://iomt.local/ns/icu/device/pump-7",
				"--server-fingerprint=" + strings.Repeat("a", 64), "--firmware-probe=file",
				"--firmware-path=/run/fw.json", "--trust-domain=clinic.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := verifierArgs("icu", "pump-7", tt.dev, tt.opts)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("args %v lack %s", got, w)
				}
			}
		})
	}
}
