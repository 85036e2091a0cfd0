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
//
// +kubebuilder:validation:XValidation:rule="self.direction == 'Egress' || !self.peers.exists(p, has(p.fqdn))",message="fqdn peers are for Egress flows only",fieldPath=".peers"
// +kubebuilder:validation:XValidation:rule="(!has(self.http) && !has(self.fhir)) || self.protocols.exists(p, (has(p.name) && p.name in ['FHIR', 'DICOMweb']) || (!has(p.name) && (!has(p.transport) || p.transport == 'TCP')))",message="http and fhir rules need an HTTP port in protocols: FHIR, DICOMweb, or an explicit TCP port"
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

	// http narrows the flow to these HTTP requests (method and path) on
	// its HTTP ports: the FHIR and DICOMweb ports and explicit TCP ports
	// without a name. Its other ports stay open to any traffic. Only
	// Cilium enforces it: with plain NetworkPolicy the HTTP ports are open
	// to every request and the segment says so in its Enforceable
	// condition. Cilium reads HTTP in clear text only: on TLS ports it
	// needs TLS interception configured. When left out, any request. At
	// most 16.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	HTTP []HTTPRule `json:"http,omitempty"`

	// fhir narrows the flow to these FHIR interactions, each an HTTP
	// method on a resource type (Observation, say) or on a path. It is
	// enforced exactly like http, on the same ports. When left out, any
	// request. At most 16.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	FHIR []FHIRInteraction `json:"fhir,omitempty"`
}

// HTTPMethod is an HTTP request method.
// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;PATCH;DELETE;OPTIONS
type HTTPMethod string

// HTTPRule is one kind of HTTP request.
//
// +kubebuilder:validation:XValidation:rule="has(self.method) || has(self.path)",message="an http rule needs a method, a path or both"
type HTTPRule struct {
	// method is the request method. When left out, any method.
	// +optional
	Method HTTPMethod `json:"method,omitempty"`

	// path is a regular expression (RE2 syntax) the whole request path
	// must match, starting with '/', for example /fhir/Observation(/.*)?.
	// When left out, any path. At most 256 characters.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`
}

// FHIRInteraction is one kind of FHIR REST request: a method on a
// resource type or on a path.
//
// +kubebuilder:validation:XValidation:rule="has(self.resourceType) != has(self.path)",message="a fhir interaction names exactly one of resourceType or path"
type FHIRInteraction struct {
	// method is the HTTP method of the interaction: GET for read, vread,
	// search and history, POST for create and search, PUT for update,
	// PATCH for patch, DELETE for delete.
	// +required
	Method HTTPMethod `json:"method"`

	// resourceType is a FHIR resource type such as Observation or Patient.
	// It allows the type's paths under any base: .../Observation,
	// .../Observation/<id> and below, with or without a query.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z]*$`
	ResourceType string `json:"resourceType,omitempty"`

	// path is a regular expression (RE2 syntax) the whole request path
	// must match, starting with '/', for interactions a resource type
	// cannot name (/metadata, say). At most 256 characters.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`
}

// Peer is one end of a flow: exactly one of segment, pods, cidr, fqdn or
// entity.
//
// +kubebuilder:validation:XValidation:rule="[has(self.segment), has(self.pods), has(self.cidr), has(self.fqdn), has(self.entity)].filter(x, x).size() == 1",message="a peer is exactly one of segment, pods or cidr, or else one fqdn or entity (which only Cilium enforces)"
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

	// fqdn is a DNS name (fhir.example.org) or a pattern where '*' stands
	// for any part of a name (*.example.org), for Egress flows only. Only
	// Cilium enforces it: it learns the name's addresses from the members'
	// DNS answers, so the segment must allow DNS. With plain NetworkPolicy
	// nothing is opened for it and the Enforceable condition says so.
	// At most 253 characters.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('[a-z0-9]')",message="fqdn must name a domain: a pattern of only '*' would allow every name"
	// +kubebuilder:validation:Pattern=`^([a-z0-9*]([-a-z0-9*]*[a-z0-9*])?)(\.[a-z0-9*]([-a-z0-9*]*[a-z0-9*])?)*\.?$`
	FQDN string `json:"fqdn,omitempty"`

	// entity is a part of the cluster an address cannot name well:
	// KubeAPIServer (the API server, wherever it runs), Host (the member's
	// own node), RemoteNode (the other nodes) or World (everything outside
	// the cluster). Only Cilium enforces it; with plain NetworkPolicy
	// nothing is opened for it and the Enforceable condition says so.
	// +optional
	Entity Entity `json:"entity,omitempty"`
}

// Entity is a part of the cluster that Cilium knows by name.
// +kubebuilder:validation:Enum=KubeAPIServer;Host;RemoteNode;World
type Entity string

// The entities a peer can name.
const (
	EntityKubeAPIServer Entity = "KubeAPIServer"
	EntityHost          Entity = "Host"
	EntityRemoteNode    Entity = "RemoteNode"
	EntityWorld         Entity = "World"
)

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

	// engine is what enforces the segment: Kubernetes (NetworkPolicy),
	// Cilium (CiliumNetworkPolicy) or Both. The operator picks it from the
	// cluster (Cilium when its CRD is served) unless told otherwise.
	// +optional
	Engine PolicyEngine `json:"engine,omitempty"`

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

	// ciliumPolicies are the names of the CiliumNetworkPolicies the
	// operator wrote for this segment in its namespace.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=3
	CiliumPolicies []string `json:"ciliumPolicies,omitempty"`
}

// PolicyEngine is what enforces a segment's policies.
// +kubebuilder:validation:Enum=Kubernetes;Cilium;Both
type PolicyEngine string

// The policy engines.
const (
	// EngineKubernetes writes NetworkPolicies only.
	EngineKubernetes PolicyEngine = "Kubernetes"
	// EngineCilium writes CiliumNetworkPolicies only.
	EngineCilium PolicyEngine = "Cilium"
	// EngineBoth writes NetworkPolicies for what they can say and
	// CiliumNetworkPolicies for everything.
	EngineBoth PolicyEngine = "Both"
)

// SegmentPolicy is one micro-segment: which MedicalDevices belong to it and
// the only traffic their pods and LAN addresses may have.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=segpol,categories=iomt
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.status.enforcement`
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.status.engine`,priority=1
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
