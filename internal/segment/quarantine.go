package segment

import (
	"fmt"
	"strings"
	"unicode"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// Quarantine is a device's quarantine as the operator enforces it.
type Quarantine struct {
	State   iomtv1.QuarantineState
	Reason  string
	Message string
}

// QuarantineOf decides a device's quarantine in the segment that holds it
// (nil when none does). What people asked for by annotation, a failed
// verification and known vulnerable firmware each may quarantine it; the
// most severe wins, and on a tie the earlier in that order.
func QuarantineOf(d *iomtv1.MedicalDevice, seg *iomtv1.SegmentPolicy) Quarantine {
	best := Quarantine{State: iomtv1.QuarantineNone, Reason: iomtv1.ReasonHealthy,
		Message: "nothing quarantines this device"}
	for _, q := range []func() (Quarantine, bool){
		func() (Quarantine, bool) { return manualQuarantine(d) },
		func() (Quarantine, bool) { return verificationQuarantine(d, seg) },
		func() (Quarantine, bool) { return vulnerableQuarantine(d, seg) },
	} {
		if c, ok := q(); ok && severity(c.State) > severity(best.State) {
			best = c
		}
	}
	return best
}

func severity(s iomtv1.QuarantineState) int {
	switch s {
	case iomtv1.QuarantineIsolated:
		return 2
	case iomtv1.QuarantineRestricted:
		return 1
	default:
		return 0
	}
}

// verificationQuarantine quarantines a device whose verification failed, as
// the segment says. Only a person's approval lets a LifeSustaining device be
// isolated; otherwise it is restricted and keeps its essential flows.
func verificationQuarantine(d *iomtv1.MedicalDevice, seg *iomtv1.SegmentPolicy) (Quarantine, bool) {
	v := d.Status.Verification
	if seg == nil || v == nil || v.State != iomtv1.VerificationFailed {
		return Quarantine{}, false
	}
	why := "verification failed"
	if v.Message != "" {
		why += ": " + v.Message
	}
	switch OnVerificationFailureOf(seg) {
	case iomtv1.QuarantineModeObserve:
		return Quarantine{}, false
	case iomtv1.QuarantineModeIsolate:
		if d.Spec.Criticality != iomtv1.CriticalityLifeSustaining || isolationApproved(d) {
			return Quarantine{State: iomtv1.QuarantineIsolated, Reason: iomtv1.ReasonVerificationFailed,
				Message: why + "; isolated: only remediation flows remain"}, true
		}
		return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonVerificationFailed,
			Message: why + "; restricted, not isolated, because the device is LifeSustaining and no " +
				"person approved isolation"}, true
	default:
		return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonVerificationFailed,
			Message: why + "; restricted to essential and remediation flows"}, true
	}
}

// vulnerableQuarantine restricts a device whose firmware an advisory lists
// as affected, where the segment says so and nobody accepted the risk.
func vulnerableQuarantine(d *iomtv1.MedicalDevice, seg *iomtv1.SegmentPolicy) (Quarantine, bool) {
	v := d.Status.Vulnerability
	if v == nil || v.State != iomtv1.VulnerabilityKnownAffected || v.RiskAcceptedBy != "" ||
		VulnerableFirmwareOf(seg) != iomtv1.VulnerableRestrict {
		return Quarantine{}, false
	}
	var ids []string
	for _, a := range v.Advisories {
		if a.Status == iomtv1.VulnerabilityKnownAffected {
			ids = append(ids, a.ID)
		}
	}
	return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonKnownVulnerable,
		Message: fmt.Sprintf("firmware %s is listed as affected by %s and segment %s restricts "+
			"such devices; restricted until the firmware changes or a person accepts the risk",
			v.FirmwareVersion, strings.Join(ids, ", "), seg.Name)}, true
}

// OnVerificationFailureOf returns what a failed verification does in the
// segment, Restrict when unset.
func OnVerificationFailureOf(seg *iomtv1.SegmentPolicy) iomtv1.QuarantineMode {
	if seg == nil || seg.Spec.Quarantine == nil || seg.Spec.Quarantine.OnVerificationFailure == "" {
		return iomtv1.QuarantineModeRestrict
	}
	return seg.Spec.Quarantine.OnVerificationFailure
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
			!isolationApproved(d) {
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

// isolationApproved reports whether a person is named as approving the
// isolation; a blank name approves nothing.
func isolationApproved(d *iomtv1.MedicalDevice) bool {
	name := strings.TrimFunc(d.Annotations[iomtv1.IsolationApprovedByAnnotation], func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	})
	return name != ""
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
