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

// QuarantineOf decides a device's quarantine from what people asked for.
// A LifeSustaining device is isolated only when a person approved it;
// otherwise it is restricted, so it keeps its essential flows. A value the
// operator does not know is taken as Restrict: asking for a quarantine
// never leaves a device more open than before.
func QuarantineOf(d *iomtv1.MedicalDevice) Quarantine {
	asked, ok := d.Annotations[iomtv1.QuarantineAnnotation]
	if !ok {
		return Quarantine{State: iomtv1.QuarantineNone, Reason: iomtv1.ReasonHealthy,
			Message: "nothing quarantines this device"}
	}

	switch asked {
	case "Isolate":
		if d.Spec.Criticality == iomtv1.CriticalityLifeSustaining &&
			d.Annotations[iomtv1.IsolationApprovedByAnnotation] == "" {
			return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonIsolationNotApproved,
				Message: fmt.Sprintf("isolation of a LifeSustaining device needs the %s annotation; "+
					"restricted to essential and remediation flows instead", iomtv1.IsolationApprovedByAnnotation)}
		}
		return Quarantine{State: iomtv1.QuarantineIsolated, Reason: iomtv1.ReasonManual,
			Message: "isolated by annotation: only remediation flows remain"}
	case "Restrict":
		return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonManual,
			Message: "restricted by annotation: only essential and remediation flows remain"}
	default:
		return Quarantine{State: iomtv1.QuarantineRestricted, Reason: iomtv1.ReasonManual,
			Message: fmt.Sprintf("%s=%q is neither Restrict nor Isolate; taken as Restrict",
				iomtv1.QuarantineAnnotation, asked)}
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
