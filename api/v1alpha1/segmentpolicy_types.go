package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EnforcementMode says whether a segment's policy is written.
// +kubebuilder:validation:Enum=Enforce;Observe
type EnforcementMode string

// The enforcement modes.
const (
	// EnforcementEnforce writes the segment's NetworkPolicy.
	EnforcementEnforce EnforcementMode = "Enforce"
	// EnforcementObserve computes the segment and reports it in status
	// without writing a policy of its own.
	EnforcementObserve EnforcementMode = "Observe"
)

// DNSMode says whether members may resolve names through cluster DNS.
// +kubebuilder:validation:Enum=Allow;Deny
type DNSMode string

// The DNS modes.
const (
	DNSAllow DNSMode = "Allow"
	DNSDeny  DNSMode = "Deny"
)

// Direction is the direction of a flow, seen from the segment's members.
// +kubebuilder:validation:Enum=Ingress;Egress
type Direction string

// The flow directions.
const (
	DirectionIngress Direction = "Ingress"
	DirectionEgress  Direction = "Egress"
)

// SegmentPolicySpec describes one micro-segment.
type SegmentPolicySpec struct {
	// deviceSelector picks the MedicalDevices in this namespace that belong
	// to the segment. A device picked by two segments belongs to neither
	// until the overlap is removed: its pods keep only the deny-all
	// baseline, and both segments report a Conflict condition.
	// +required
	DeviceSelector DeviceSelector `json:"deviceSelector"`

	// enforcement is Enforce (write the segment's NetworkPolicy) or Observe
	// (compute the segment and report it in status, write nothing of its
	// own). In Observe the members' pods stay under the namespace's deny-all
	// baseline, so Observe never opens anything. When left out, Enforce is
	// used and shown in status.enforcement.
	// +optional
	Enforcement EnforcementMode `json:"enforcement,omitempty"`

	// flows are the only traffic the members may send or receive, besides
	// DNS (see dns). A flow to or from another SegmentPolicy is written on
	// both sides: egress here and ingress there, or the reverse. At most 32.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Flows []Flow `json:"flows,omitempty"`

	// dns is Allow (members may query cluster DNS on UDP and TCP 53) or Deny.
	// When left out, Allow is used and shown in status.dns.
	// +optional
	DNS DNSMode `json:"dns,omitempty"`

	// quarantine says what quarantines members and what stays open for
	// them. When left out, restricted members keep their essential flows,
	// their own LAN link and DNS; isolated ones keep only the attestation
	// endpoint; failed verification restricts; vulnerable firmware is only
	// reported.
	// +optional
	Quarantine *QuarantinePolicy `json:"quarantine,omitempty"`
}

// DeviceSelector picks MedicalDevices by labels, classes, or both (a device
// must then match both).
//
// +kubebuilder:validation:XValidation:rule="has(self.labels) || has(self.classes)",message="deviceSelector needs labels, classes or both"
type DeviceSelector struct {
	// labels select MedicalDevices by their own labels. An empty selector
	// ({}) selects every MedicalDevice in the namespace.
	// +optional
	Labels *LabelSelector `json:"labels,omitempty"`

	// classes select MedicalDevices by spec.class. At most 8.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Classes []DeviceClass `json:"classes,omitempty"`
}

// Flow is one kind of traffic the segment's members may have.
type Flow struct {
	// name identifies the flow within the segment, for status and events:
	// lowercase letters, digits and '-', at most 63 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// direction is Ingress (peers connect to members) or Egress (members
	// connect to peers).
	// +required
	Direction Direction `json:"direction"`

	// peers are who is on the other end. A peer that resolves to nothing
	// (a segment with no members, say) is left out of the policy; when no
	// peer of a flow resolves, the flow allows nothing and the segment's
	// Ready condition says so. At least 1, at most 16.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Peers []Peer `json:"peers"`

	// protocols are the ports the flow opens, on the member's side for
	// Ingress and on the peer's side for Egress. At least 1, at most 16.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Protocols []ProtocolPort `json:"protocols"`

	// essential marks a flow that patient care depends on: it stays open
	// when a member is restricted by quarantine. When left out, false.
	// +optional
	Essential bool `json:"essential,omitempty"`
}

// Peer is one end of a flow: exactly one of segment, pods or cidr.
//
// +kubebuilder:validation:XValidation:rule="[has(self.segment), has(self.pods), has(self.cidr)].filter(x, x).size() == 1",message="a peer is exactly one of segment, pods or cidr"
type Peer struct {
	// segment is another SegmentPolicy: its member devices' pods and LAN
	// addresses.
	// +optional
	Segment *SegmentReference `json:"segment,omitempty"`

	// pods are pods that match namespaceSelector AND podSelector together.
	// +optional
	Pods *PodPeer `json:"pods,omitempty"`

	// cidr is a range of addresses outside the cluster's pods.
	// +optional
	CIDR *CIDRPeer `json:"cidr,omitempty"`
}

// SegmentReference names a SegmentPolicy.
type SegmentReference struct {
	// namespace of the SegmentPolicy. When left out, this segment's own.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// name of the SegmentPolicy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// PodPeer selects pods; both selectors must match the same pod.
//
// +kubebuilder:validation:XValidation:rule="has(self.namespaceSelector) || has(self.podSelector)",message="pods needs namespaceSelector, podSelector or both"
type PodPeer struct {
	// namespaceSelector selects namespaces by their labels; every namespace
	// carries kubernetes.io/metadata.name=<name>. When left out, only this
	// segment's namespace.
	// +optional
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`

	// podSelector selects pods by their labels within those namespaces.
	// When left out, every pod in them.
	// +optional
	PodSelector *LabelSelector `json:"podSelector,omitempty"`
}

// CIDRPeer is a network range with optional holes.
//
// +kubebuilder:validation:XValidation:rule="!has(self.except) || self.except.all(e, cidr(self.cidr).containsCIDR(e) && cidr(e).prefixLength() > cidr(self.cidr).prefixLength())",message="every except entry must lie strictly inside cidr",fieldPath=".except"
type CIDRPeer struct {
	// cidr is the range, for example 10.40.0.0/16, with no host bits set.
	// +required
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self) && cidr(self) == cidr(self).masked()",message="must be a CIDR with no host bits set, such as 10.40.0.0/16"
	CIDR string `json:"cidr"`

	// except are ranges inside cidr that stay closed. At most 8.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self) && cidr(self) == cidr(self).masked()",message="must be a CIDR with no host bits set, such as 10.40.9.0/24"
	Except []string `json:"except,omitempty"`
}

// SegmentPolicyStatus is what the operator last computed and wrote.
type SegmentPolicyStatus struct {
	// observedGeneration is the generation of the spec this status is for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are Ready, Enforced and Conflict.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// enforcement is the mode in effect, spec.enforcement or its default.
	// +optional
	Enforcement EnforcementMode `json:"enforcement,omitempty"`

	// dns is the DNS mode in effect, spec.dns or its default.
	// +optional
	DNS DNSMode `json:"dns,omitempty"`

	// memberCount is how many MedicalDevices belong to the segment.
	// +optional
	MemberCount int32 `json:"memberCount"`

	// conflictCount is how many devices this segment selects that another
	// segment also selects; they belong to neither.
	// +optional
	ConflictCount int32 `json:"conflictCount,omitempty"`

	// quarantinedCount is how many members are restricted or isolated.
	// +optional
	QuarantinedCount int32 `json:"quarantinedCount"`

	// ingressRules and egressRules count the rules the segment's policy
	// holds (or would hold, in Observe).
	// +optional
	IngressRules int32 `json:"ingressRules"`
	// +optional
	EgressRules int32 `json:"egressRules"`

	// policies are the names of the NetworkPolicies the operator wrote for
	// this segment in its namespace.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=3
	Policies []string `json:"policies,omitempty"`
}

// SegmentPolicy is one micro-segment: which MedicalDevices belong to it and
// the only traffic their pods and LAN addresses may have.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=segpol,categories=iomt
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.status.enforcement`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.memberCount`
// +kubebuilder:printcolumn:name="Quarantined",type=integer,JSONPath=`.status.quarantinedCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Conflict",type=string,JSONPath=`.status.conditions[?(@.type=="Conflict")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 50",message="metadata.name must be at most 50 characters: a SegmentPolicy name becomes part of the names and labels of the policies the operator writes"
// +kubebuilder:validation:XValidation:rule="!self.metadata.name.endsWith('-restricted') && !self.metadata.name.endsWith('-isolated')",message="metadata.name must not end in -restricted or -isolated: the operator names a segment's quarantine policies that way"
type SegmentPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the segment.
	// +required
	Spec SegmentPolicySpec `json:"spec"`

	// status is what the operator computed and wrote.
	// +optional
	Status SegmentPolicyStatus `json:"status,omitempty"`
}

// SegmentPolicyList is a list of SegmentPolicies.
//
// +kubebuilder:object:root=true
type SegmentPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SegmentPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SegmentPolicy{}, &SegmentPolicyList{})
}
