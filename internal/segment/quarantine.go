package segment

import (
	"fmt"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// Quarantine is a device's quarantine as the operator enforces it.
type Quarantine struct {
	State   iomtv1.QuarantineState
	Reason  string
	Message string
}

// QuarantineOf decides a device's quarantine in the segment that holds it
// (nil when none does): what people asked for by annotation first, then
// known vulnerable firmware where the segment restricts it.
func QuarantineOf(d *iomtv1.MedicalDevice, seg *iomtv1.SegmentPolicy) Quarantine {
	if q, ok := manualQuarantine(d); ok {
		return q
	}
	if v := d.Status.Vulnerability; v != nil && v.State == iomtv1.VulnerabilityKnownAffected &&
		v.RiskAcceptedBy == "" && VulnerableFirmwareOf(seg) == iomtv1.VulnerableRestrict {
		return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonKnownVulnerable,
			Message: fmt.Sprintf("firmware %s is affected by %d advisories and segment %s restricts "+
				"such devices; restricted until the firmware changes or a person accepts the risk",
				v.FirmwareVersion, v.AdvisoryCount, seg.Name)}
	}
	return Quarantine{State: iomtv1.QuarantineNone, Reason: iomtv1.ReasonHealthy,
		Message: "nothing quarantines this device"}
}

// VulnerableFirmwareOf returns what the segment does with known vulnerable
// members, Report when unset.
func VulnerableFirmwareOf(seg *iomtv1.SegmentPolicy) iomtv1.VulnerableFirmwareAction {
	if seg == nil || seg.Spec.Quarantine == nil || seg.Spec.Quarantine.VulnerableFirmware == "" {
		return iomtv1.VulnerableReport
	}
	return seg.Spec.Quarantine.VulnerableFirmware
}

// manualQuarantine reads the quarantine annotation. A LifeSustaining device
// is isolated only when a person approved it; otherwise it is restricted,
// so it keeps its essential flows. A value the operator does not know is
// taken as Restrict: asking for a quarantine never leaves a device more
// open than before.
func manualQuarantine(d *iomtv1.MedicalDevice) (Quarantine, bool) {
	asked, ok := d.Annotations[iomtv1.QuarantineAnnotation]
	if !ok {
		return Quarantine{}, false
	}

	switch asked {
	case "Isolate":
		if d.Spec.Criticality == iomtv1.CriticalityLifeSustaining &&
			d.Annotations[iomtv1.IsolationApprovedByAnnotation] == "" {
			return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonIsolationNotApproved,
				Message: fmt.Sprintf("isolation of a LifeSustaining device needs the %s annotation; "+
					"restricted to essential and remediation flows instead",
					iomtv1.IsolationApprovedByAnnotation)}, true
		}
		return Quarantine{State: iomtv1.QuarantineIsolated, Reason: iomtv1.ReasonManual,
			Message: "isolated by annotation: only remediation flows remain"}, true
	case "Restrict":
		return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonManual,
			Message: "restricted by annotation: only essential and remediation flows remain"}, true
	default:
		return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonManual,
			Message: fmt.Sprintf("%s=%q is neither Restrict nor Isolate; taken as Restrict",
				iomtv1.QuarantineAnnotation, asked)}, true
	}
}

// tier ranks a flow by how much of a quarantine it survives.
type tier int

const (
	// tierNormal flows are open only for healthy members.
	tierNormal tier = iota
	// tierEssential flows stay open for restricted members.
	tierEssential
	// tierRemediation flows stay open for isolated members too.
	tierRemediation
)

// threshold is the lowest tier of flow a member in state s keeps.
func threshold(s iomtv1.QuarantineState) tier {
	switch s {
	case iomtv1.QuarantineIsolated:
		return tierRemediation
	case iomtv1.QuarantineRestricted:
		return tierEssential
	default:
		return tierNormal
	}
}

func flowTier(f iomtv1.Flow) tier {
	if f.Essential {
		return tierEssential
	}
	return tierNormal
}

// statedFlow is a flow of a segment with the tier it has there.
type statedFlow struct {
	iomtv1.Flow
	tier tier
}

// flowsOf lists a segment's flows and its remediation flows.
func flowsOf(s *iomtv1.SegmentPolicy) []statedFlow {
	out := make([]statedFlow, 0, len(s.Spec.Flows))
	for _, f := range s.Spec.Flows {
		out = append(out, statedFlow{f, flowTier(f)})
	}
	if s.Spec.Quarantine != nil {
		for _, f := range s.Spec.Quarantine.Remediation {
			out = append(out, statedFlow{f, tierRemediation})
		}
	}
	return out
}

// quarantineStates are the policies a segment can have, one per state.
var quarantineStates = []iomtv1.QuarantineState{
	iomtv1.QuarantineNone, iomtv1.QuarantineRestricted, iomtv1.QuarantineIsolated,
}
