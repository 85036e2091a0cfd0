package v1alpha1

// Condition types.
const (
	// ConditionReady sums up the object: True when everything it asks for
	// is in place and nothing needs a person's attention.
	ConditionReady = "Ready"
	// ConditionSegmented is True on a MedicalDevice that belongs to exactly
	// one enforcing segment.
	ConditionSegmented = "Segmented"
	// ConditionEnforced is True on a SegmentPolicy whose NetworkPolicy is
	// written and selects its members.
	ConditionEnforced = "Enforced"
	// ConditionConflict is True on a SegmentPolicy that selects a device
	// another segment also selects.
	ConditionConflict = "Conflict"
)

// Condition reasons. Events use the same words.
const (
	// ReasonSegmented: the device belongs to an enforcing segment.
	ReasonSegmented = "Segmented"
	// ReasonNoSegment: no SegmentPolicy selects the device.
	ReasonNoSegment = "NoSegment"
	// ReasonSegmentConflict: two or more segments select the device.
	ReasonSegmentConflict = "SegmentConflict"
	// ReasonObserving: the segment is in Observe mode and writes nothing.
	ReasonObserving = "Observing"
	// ReasonEnforced: the segment's policy is written.
	ReasonEnforced = "Enforced"
	// ReasonNoMembers: the segment selects no device, so it has no policy.
	ReasonNoMembers = "NoMembers"
	// ReasonOverlappingSegments: another segment selects some of the same
	// devices.
	ReasonOverlappingSegments = "OverlappingSegments"
	// ReasonNoOverlap: no other segment selects this segment's devices.
	ReasonNoOverlap = "NoOverlap"
	// ReasonUnresolvedPeers: some flow peers resolve to nothing and were
	// left out.
	ReasonUnresolvedPeers = "UnresolvedPeers"
	// ReasonReconciled: everything asked for is in place.
	ReasonReconciled = "Reconciled"
	// ReasonApplyFailed: writing a generated object failed.
	ReasonApplyFailed = "ApplyFailed"
)

// ReasonInvalidSpec: the spec passed the schema but still cannot be used
// (a label selector that does not parse, say). What is enforced stays.
const ReasonInvalidSpec = "InvalidSpec"

// ConditionIdentityIssued is True on a MedicalDevice whose certificate is
// issued, valid and not yet due for renewal.
const ConditionIdentityIssued = "IdentityIssued"

// ReasonNamespaceNotEnrolled: IdentityIssued is False because the device's
// namespace is not one of the operator's device namespaces, so the operator
// neither reads nor writes Secrets there and issues no certificate. Adding
// the namespace to the operator's --device-namespaces fixes it. The other
// IdentityIssued reasons are with the identity types.
const ReasonNamespaceNotEnrolled = "NamespaceNotEnrolled"

// ConditionQuarantined is True on a MedicalDevice that is restricted or
// isolated.
const ConditionQuarantined = "Quarantined"

// Quarantine reasons.
const (
	// ReasonManual: a person quarantined the device with an annotation.
	ReasonManual = "Manual"
	// ReasonIsolationNotApproved: a LifeSustaining device was asked to be
	// isolated without approval and is restricted instead.
	ReasonIsolationNotApproved = "IsolationNotApproved"
	// ReasonHealthy: nothing quarantines the device.
	ReasonHealthy = "Healthy"
	// ReasonQuarantined: the device is Segmented but restricted or isolated.
	ReasonQuarantined = "Quarantined"
)

// ConditionVulnerable is True on a MedicalDevice whose firmware an advisory
// lists as affected, Unknown when an advisory needs a person's review.
const ConditionVulnerable = "Vulnerable"

// Vulnerability reasons.
const (
	// ReasonKnownAffected: an advisory lists the device's firmware.
	ReasonKnownAffected = "KnownAffected"
	// ReasonNeedsReview: an advisory may concern the device; a person must
	// decide.
	ReasonNeedsReview = "NeedsReview"
	// ReasonNoKnownAdvisory: no loaded advisory concerns the device.
	ReasonNoKnownAdvisory = "NoKnownAdvisory"
	// ReasonKnownVulnerable: the device is restricted because of a known
	// affected firmware.
	ReasonKnownVulnerable = "KnownVulnerable"
)

// ConditionVerified is True on a MedicalDevice whose verifier's last report
// passed, Unknown while none has arrived.
const ConditionVerified = "Verified"

// Verification reasons.
const (
	// ReasonVerificationPending: no report has arrived yet.
	ReasonVerificationPending = "VerificationPending"
	// ReasonVerificationPassed: the last report passed every check.
	ReasonVerificationPassed = "VerificationPassed"
	// ReasonVerificationFailing: recent reports failed or are missing.
	ReasonVerificationFailing = "VerificationFailing"
	// ReasonVerificationFailed: the failure threshold was reached.
	ReasonVerificationFailed = "VerificationFailed"
	// ReasonReleased: a person or enough passing reports released the
	// device from a failed verification.
	ReasonReleased = "Released"
)

// ConditionEnforceable is False on a SegmentPolicy with flows, or parts of
// flows, that the policy engine in use cannot enforce.
const ConditionEnforceable = "Enforceable"

// Enforceability reasons.
const (
	// ReasonAllEnforceable: the engine in use enforces every flow.
	ReasonAllEnforceable = "AllEnforceable"
	// ReasonNeedsCilium: some flows name fqdn or entity peers, or HTTP
	// rules, which plain NetworkPolicy cannot say.
	ReasonNeedsCilium = "NeedsCilium"
	// ReasonRejectedRule: a rendered rule failed Cilium's own checks and
	// was not written.
	ReasonRejectedRule = "RejectedRule"
)
