package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations people put on a MedicalDevice to quarantine it by hand.
const (
	// QuarantineAnnotation quarantines the device: "Restrict" keeps only
	// the segment's essential and remediation flows, "Isolate" only its
	// remediation flows. Removing the annotation releases the device.
	QuarantineAnnotation = "iomt.medinaii.io/quarantine"
	// IsolationApprovedByAnnotation names the person who approved isolating
	// a LifeSustaining device. Without it such a device is restricted at
	// most, so that it is never cut off from its clinicians by mistake.
	IsolationApprovedByAnnotation = "iomt.medinaii.io/isolation-approved-by"
)

// QuarantineState is how far a device is cut off.
// +kubebuilder:validation:Enum=None;Restricted;Isolated
type QuarantineState string

// The quarantine states.
const (
	// QuarantineNone: the device has all of its segment's flows.
	QuarantineNone QuarantineState = "None"
	// QuarantineRestricted: only essential and remediation flows remain.
	QuarantineRestricted QuarantineState = "Restricted"
	// QuarantineIsolated: only remediation flows remain.
	QuarantineIsolated QuarantineState = "Isolated"
)

// QuarantinePolicy says what stays open for the segment's quarantined
// members.
type QuarantinePolicy struct {
	// remediation are flows that stay open whatever the quarantine: to the
	// biomedical engineering workstation or the vendor's update service,
	// say. They are open for healthy members too. At most 8.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Remediation []Flow `json:"remediation,omitempty"`

	// vulnerableFirmware is what happens to a member whose firmware a
	// security advisory lists as affected: Report (status, Event, metric)
	// or Restrict (also restricted as a quarantine would, until the
	// firmware changes or a person accepts the risk). When left out,
	// Report.
	// +optional
	VulnerableFirmware VulnerableFirmwareAction `json:"vulnerableFirmware,omitempty"`

	// onVerificationFailure is what a failed verification does to a
	// member: Observe (condition, Event and metric only), Restrict (only
	// essential and remediation flows) or Isolate (only remediation
	// flows). A LifeSustaining device is restricted at most unless a
	// person approved isolation with the
	// iomt.medinaii.io/isolation-approved-by annotation. When left out,
	// Restrict.
	// +optional
	OnVerificationFailure QuarantineMode `json:"onVerificationFailure,omitempty"`

	// autoRelease releases a device from a failed verification on its own
	// after enough passing reports. When left out, only a person releases
	// it, with the iomt.medinaii.io/release annotation.
	// +optional
	AutoRelease *AutoRelease `json:"autoRelease,omitempty"`
}

// QuarantineMode is what a failed verification does.
// +kubebuilder:validation:Enum=Observe;Restrict;Isolate
type QuarantineMode string

// The quarantine modes.
const (
	QuarantineModeObserve  QuarantineMode = "Observe"
	QuarantineModeRestrict QuarantineMode = "Restrict"
	QuarantineModeIsolate  QuarantineMode = "Isolate"
)

// AutoRelease says when a device leaves a failed verification on its own.
type AutoRelease struct {
	// afterPasses is how many passing reports in a row release the device,
	// from 1 to 100.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	AfterPasses int32 `json:"afterPasses"`
}

// QuarantineStatus is the device's quarantine as the operator enforces it.
type QuarantineStatus struct {
	// state is None, Restricted or Isolated.
	// +optional
	State QuarantineState `json:"state,omitempty"`

	// reason is why: Manual (the quarantine annotation),
	// IsolationNotApproved (a LifeSustaining device asked to be isolated
	// without the approval annotation, restricted instead) or
	// KnownVulnerable (an advisory lists its firmware and the segment
	// restricts such devices).
	// +optional
	Reason string `json:"reason,omitempty"`

	// message explains the state to a person.
	// +optional
	Message string `json:"message,omitempty"`

	// since is when the device entered its current state.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}
