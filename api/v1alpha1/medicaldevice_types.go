package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeviceClass is the kind of medical device.
// +kubebuilder:validation:Enum=InfusionPump;PatientMonitor;DigitalStethoscope;ImagingModality;Ventilator;Wearable;LabAnalyzer;Other
type DeviceClass string

// The device classes.
const (
	ClassInfusionPump       DeviceClass = "InfusionPump"
	ClassPatientMonitor     DeviceClass = "PatientMonitor"
	ClassDigitalStethoscope DeviceClass = "DigitalStethoscope"
	ClassImagingModality    DeviceClass = "ImagingModality"
	ClassVentilator         DeviceClass = "Ventilator"
	ClassWearable           DeviceClass = "Wearable"
	ClassLabAnalyzer        DeviceClass = "LabAnalyzer"
	ClassOther              DeviceClass = "Other"
)

// Criticality says how much harm losing the device's network would cause.
// +kubebuilder:validation:Enum=LifeSustaining;High;Moderate;Low
type Criticality string

// The criticality levels.
const (
	CriticalityLifeSustaining Criticality = "LifeSustaining"
	CriticalityHigh           Criticality = "High"
	CriticalityModerate       Criticality = "Moderate"
	CriticalityLow            Criticality = "Low"
)

// MedicalDeviceSpec describes one physical device and how it talks.
type MedicalDeviceSpec struct {
	// class is the kind of device: InfusionPump, PatientMonitor,
	// DigitalStethoscope, ImagingModality, Ventilator, Wearable, LabAnalyzer
	// or Other. SegmentPolicies can select devices by class.
	// +required
	Class DeviceClass `json:"class"`

	// criticality is LifeSustaining, High, Moderate or Low. It is recorded
	// in status and metrics so that people can tell at a glance which
	// devices patients depend on.
	// +required
	Criticality Criticality `json:"criticality"`

	// manufacturer is the maker's name as on the device label, for example
	// "Baxter" or "Philips". Used to match security advisories.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Manufacturer string `json:"manufacturer"`

	// model is the maker's model name, for example "Sigma Spectrum".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Model string `json:"model"`

	// serialNumber is the maker's serial number, for inventory and audits.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	SerialNumber string `json:"serialNumber,omitempty"`

	// udi is the Unique Device Identifier as printed on the device (GS1,
	// HIBCC or ICCBBA form), for inventory and audits.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	UDI string `json:"udi,omitempty"`

	// firmware is the firmware the device is expected to run.
	// +optional
	Firmware *Firmware `json:"firmware,omitempty"`

	// addresses are where the device sits on the clinic LAN: IP addresses or
	// CIDRs without host bits. Member devices' addresses become ipBlock
	// peers of their segment on the device's protocols, so the segment's
	// pods can reach the device and the device can reach them. At most 16.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	Addresses []LANAddress `json:"addresses,omitempty"`

	// protocols are what the device speaks on its addresses. Left out, the
	// device's addresses are opened on no port at all. At most 16.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Protocols []ProtocolPort `json:"protocols,omitempty"`

	// workload names the service account whose pods act for this device
	// (its gateway or adapter). Those pods carry the label
	// iomt.medinaii.io/device=<this device's name>.
	// +optional
	Workload *Workload `json:"workload,omitempty"`

	// verification says how the verifier sidecar keeps checking the device.
	// When left out, checks run every 30s and 3 failed or missing reports
	// in a row count as a failed verification.
	// +optional
	Verification *Verification `json:"verification,omitempty"`

	// identity adjusts the device's certificate. When left out, the device
	// gets a certificate with its SPIFFE ID and the default lifetime.
	// +optional
	Identity *DeviceIdentity `json:"identity,omitempty"`
}

// Firmware identifies the firmware a device runs.
type Firmware struct {
	// version is the firmware version string as the maker writes it, for
	// example "8.01.01" or "R2.1.3".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version"`

	// sha256 is the lowercase hex SHA-256 digest of the firmware image, when
	// the maker publishes one.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256,omitempty"`
}

// Workload names the pods that act for a device.
type Workload struct {
	// serviceAccountName is the service account of the device's pods, in
	// the device's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName"`
}

// MedicalDeviceStatus is what the operator last observed and did.
type MedicalDeviceStatus struct {
	// observedGeneration is the generation of the spec this status is for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are Ready, Segmented, Quarantined, Vulnerable and
	// IdentityIssued.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// segment is the name of the SegmentPolicy whose flows this device's
	// pods are allowed. Empty while no single enforcing segment holds the
	// device: its pods then get only the namespace's deny-all baseline.
	// +optional
	Segment string `json:"segment,omitempty"`

	// quarantine is the device's quarantine as enforced now.
	// +optional
	Quarantine *QuarantineStatus `json:"quarantine,omitempty"`

	// verification is what the verifier sidecar last reported.
	// +optional
	Verification *VerificationStatus `json:"verification,omitempty"`

	// vulnerability is what the security advisories say about the device's
	// firmware.
	// +optional
	Vulnerability *VulnerabilityStatus `json:"vulnerability,omitempty"`

	// identity is the certificate the device holds now.
	// +optional
	Identity *IdentityStatus `json:"identity,omitempty"`
}

// MedicalDevice is one connected medical device: an infusion pump, patient
// monitor, imaging modality and so on. The SegmentPolicy that selects it
// decides what the device and its pods may talk to; pods labelled
// iomt.medinaii.io/device=<name> that no segment allows anything are denied
// all traffic.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mdev,categories=iomt
// +kubebuilder:printcolumn:name="Segment",type=string,JSONPath=`.status.segment`
// +kubebuilder:printcolumn:name="Class",type=string,JSONPath=`.spec.class`
// +kubebuilder:printcolumn:name="Criticality",type=string,JSONPath=`.spec.criticality`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Quarantine",type=string,JSONPath=`.status.quarantine.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: a MedicalDevice name is used as a pod label value"
type MedicalDevice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the device.
	// +required
	Spec MedicalDeviceSpec `json:"spec"`

	// status is what the operator observed and did.
	// +optional
	Status MedicalDeviceStatus `json:"status,omitempty"`
}

// MedicalDeviceList is a list of MedicalDevices.
//
// +kubebuilder:object:root=true
type MedicalDeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MedicalDevice `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MedicalDevice{}, &MedicalDeviceList{})
}
