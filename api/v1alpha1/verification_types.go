package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReleaseAnnotation releases a device held in quarantine by failed
// verification. Its value is any new token (a ticket number, say): each
// token releases once, and status records the last one used.
const ReleaseAnnotation = "iomt.medinaii.io/release"

// FirmwareProbeType is how the verifier learns the firmware a device runs.
// +kubebuilder:validation:Enum=HTTPSJSON;File
type FirmwareProbeType string

// The firmware probes.
const (
	// FirmwareProbeHTTPSJSON asks the device endpoint, over the same mutual
	// TLS connection, for a JSON document {"version": ..., "sha256": ...}.
	FirmwareProbeHTTPSJSON FirmwareProbeType = "HTTPSJSON"
	// FirmwareProbeFile reads the same JSON document from a file the
	// device's gateway writes into a volume shared with the verifier.
	FirmwareProbeFile FirmwareProbeType = "File"
)

// Verification says how the verifier sidecar keeps checking the device.
type Verification struct {
	// interval is the time between checks, from 5s to 1h. When left out,
	// 30s, shown in status.verification.interval.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s') && duration(self) <= duration('1h')",message="interval must be a duration from 5s to 1h, for example 30s"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// failureThreshold is how many failed or missing reports in a row
	// quarantine the device, from 1 to 20. When left out, 3.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20
	FailureThreshold *int32 `json:"failureThreshold,omitempty"`

	// endpoint is where the verifier reaches the device over mutual TLS,
	// host:port, for example 10.20.1.15:8443 or pump-7.icu.svc:8443. When
	// left out, the verifier checks only its own identity and the firmware
	// file.
	// +optional
	// +kubebuilder:validation:MaxLength=270
	// +kubebuilder:validation:Pattern=`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$`
	Endpoint string `json:"endpoint,omitempty"`

	// serverSPIFFEID is the identity the device must present at endpoint.
	// When left out, and serverFingerprint too, the device's own SPIFFE ID.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^spiffe://[^/]+/.+$`
	ServerSPIFFEID string `json:"serverSPIFFEID,omitempty"`

	// serverFingerprint pins the device's certificate by the lowercase hex
	// SHA-256 of its DER, for devices whose certificates no CA of ours
	// signs.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	ServerFingerprint string `json:"serverFingerprint,omitempty"`

	// firmwareProbe is how the verifier learns the running firmware. When
	// left out, firmware is not checked.
	// +optional
	FirmwareProbe *FirmwareProbe `json:"firmwareProbe,omitempty"`
}

// FirmwareProbe says where the device reports its firmware.
//
// +kubebuilder:validation:XValidation:rule="self.type != 'File' || has(self.path)",message="a File probe needs path, the file the gateway writes"
type FirmwareProbe struct {
	// type is HTTPSJSON (ask the endpoint) or File (read a shared file).
	// +required
	Type FirmwareProbeType `json:"type"`

	// path is the URL path for HTTPSJSON (default /firmware) or the file
	// path for File.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`
}

// VerificationState is where a device stands with its verifier.
// +kubebuilder:validation:Enum=Pending;Verified;Failing;Failed
type VerificationState string

// The verification states.
const (
	// VerificationPending: no report has arrived yet.
	VerificationPending VerificationState = "Pending"
	// VerificationVerified: the last report passed every check.
	VerificationVerified VerificationState = "Verified"
	// VerificationFailing: recent reports failed or are missing, fewer than
	// the threshold.
	VerificationFailing VerificationState = "Failing"
	// VerificationFailed: the threshold was reached; the device is held in
	// quarantine until released.
	VerificationFailed VerificationState = "Failed"
)

// VerificationStatus is what the verifier last reported.
type VerificationStatus struct {
	// state is Pending, Verified, Failing or Failed.
	// +optional
	State VerificationState `json:"state,omitempty"`

	// interval and failureThreshold in effect.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`

	// lastReportTime is when the last report arrived. It is refreshed at
	// most once per interval while nothing else changes.
	// +optional
	LastReportTime *metav1.Time `json:"lastReportTime,omitempty"`

	// consecutiveFailures counts failed or missing reports in a row.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`

	// consecutivePasses counts passing reports in a row.
	// +optional
	ConsecutivePasses int32 `json:"consecutivePasses,omitempty"`

	// observedFirmware is the firmware the device last reported.
	// +optional
	ObservedFirmware *Firmware `json:"observedFirmware,omitempty"`

	// message says what the last failed check found.
	// +optional
	Message string `json:"message,omitempty"`

	// failedSince is when the device reached Failed.
	// +optional
	FailedSince *metav1.Time `json:"failedSince,omitempty"`

	// releasedWith is the last release token used, from the
	// iomt.medinaii.io/release annotation or "auto".
	// +optional
	ReleasedWith string `json:"releasedWith,omitempty"`

	// tokenAtFailure is the iomt.medinaii.io/release value in place when
	// the device last failed; only another value releases it.
	// +optional
	TokenAtFailure string `json:"tokenAtFailure,omitempty"`

	// releasedAt is when the device was last released.
	// +optional
	ReleasedAt *metav1.Time `json:"releasedAt,omitempty"`
}
