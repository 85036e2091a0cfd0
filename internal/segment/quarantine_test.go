package segment

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

func TestQuarantineOfVulnerableFirmware(t *testing.T) {
	restricts := seg("icu", "pumps", iomtv1.ClassInfusionPump)
	restricts.Spec.Quarantine = &iomtv1.QuarantinePolicy{VulnerableFirmware: iomtv1.VulnerableRestrict}
	reports := seg("icu", "pumps", iomtv1.ClassInfusionPump)
	known := &iomtv1.VulnerabilityStatus{State: iomtv1.VulnerabilityKnownAffected, FirmwareVersion: "9.19"}
	accepted := known.DeepCopy()
	accepted.RiskAcceptedBy = "ciso"
	review := &iomtv1.VulnerabilityStatus{State: iomtv1.VulnerabilityNeedsReview}

	tests := []struct {
		name   string
		seg    *iomtv1.SegmentPolicy
		vuln   *iomtv1.VulnerabilityStatus
		manual string
		state  iomtv1.QuarantineState
		reason string
	}{
		{"known affected firmware is restricted where the segment restricts it", &restricts, known, "",
			iomtv1.QuarantineRestricted, iomtv1.ReasonKnownVulnerable},
		{"known affected firmware is only reported where the segment reports", &reports, known, "",
			iomtv1.QuarantineNone, iomtv1.ReasonHealthy},
		{"known affected firmware outside any segment is not quarantined", nil, known, "",
			iomtv1.QuarantineNone, iomtv1.ReasonHealthy},
		{"an accepted risk releases the device", &restricts, accepted, "",
			iomtv1.QuarantineNone, iomtv1.ReasonHealthy},
		{"an advisory that needs review does not restrict", &restricts, review, "",
			iomtv1.QuarantineNone, iomtv1.ReasonHealthy},
		{"a person's isolation outranks the vulnerability", &restricts, known, "Isolate",
			iomtv1.QuarantineIsolated, iomtv1.ReasonManual},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dev("icu", "d", iomtv1.ClassInfusionPump, nil)
			d.Status.Vulnerability = tt.vuln
			if tt.manual != "" {
				d.Annotations = map[string]string{iomtv1.QuarantineAnnotation: tt.manual}
			}
			q := QuarantineOf(&d, tt.seg)
			if q.State != tt.state || q.Reason != tt.reason {
				t.Fatalf("QuarantineOf() = %+v, want %s/%s", q, tt.state, tt.reason)
			}
		})
	}
}

func TestQuarantineOf(t *testing.T) {
	tests := []struct {
		name        string
		criticality iomtv1.Criticality
		annotations map[string]string
		state       iomtv1.QuarantineState
		reason      string
	}{
		{"no annotation means healthy", iomtv1.CriticalityHigh, nil,
			iomtv1.QuarantineNone, iomtv1.ReasonHealthy},
		{"Restrict restricts", iomtv1.CriticalityHigh,
			map[string]string{iomtv1.QuarantineAnnotation: "Restrict"},
			iomtv1.QuarantineRestricted, iomtv1.ReasonManual},
		{"Isolate isolates an ordinary device", iomtv1.CriticalityModerate,
			map[string]string{iomtv1.QuarantineAnnotation: "Isolate"},
			iomtv1.QuarantineIsolated, iomtv1.ReasonManual},
		{"a life-sustaining device is restricted, not isolated, without approval",
			iomtv1.CriticalityLifeSustaining,
			map[string]string{iomtv1.QuarantineAnnotation: "Isolate"},
			iomtv1.QuarantineRestricted, iomtv1.ReasonIsolationNotApproved},
		{"a life-sustaining device is isolated once a person approved it",
			iomtv1.CriticalityLifeSustaining,
			map[string]string{iomtv1.QuarantineAnnotation: "Isolate",
				iomtv1.IsolationApprovedByAnnotation: "dr.house"},
			iomtv1.QuarantineIsolated, iomtv1.ReasonManual},
		{"a blank approval approves nothing", iomtv1.CriticalityLifeSustaining,
			map[string]string{iomtv1.QuarantineAnnotation: "Isolate", iomtv1.IsolationApprovedByAnnotation: " "},
			iomtv1.QuarantineRestricted, iomtv1.ReasonIsolationNotApproved},
		{"an invisible approval approves nothing", iomtv1.CriticalityLifeSustaining,
			map[string]string{iomtv1.QuarantineAnnotation: "Isolate",
				iomtv1.IsolationApprovedByAnnotation: "\u200b"},
			iomtv1.QuarantineRestricted, iomtv1.ReasonIsolationNotApproved},
		{"an unknown value is taken as Restrict, never as healthy", iomtv1.CriticalityLow,
			map[string]string{iomtv1.QuarantineAnnotation: "yes please"},
			iomtv1.QuarantineRestricted, iomtv1.ReasonManual},
		{"an empty value is taken as Restrict", iomtv1.CriticalityLow,
			map[string]string{iomtv1.QuarantineAnnotation: ""},
			iomtv1.QuarantineRestricted, iomtv1.ReasonManual},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dev("icu", "d", iomtv1.ClassInfusionPump, nil)
			d.Spec.Criticality = tt.criticality
			d.Annotations = tt.annotations
			q := QuarantineOf(&d, nil)
			if q.State != tt.state || q.Reason != tt.reason || q.Message == "" {
				t.Fatalf("QuarantineOf() = %+v, want %s/%s", q, tt.state, tt.reason)
			}
		})
	}
}

// ports lists a policy's rules as "direction port" strings, to compare
// what each quarantine state keeps.
func rulePorts(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			out = append(out, "in "+p.Port.String())
		}
	}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			out = append(out, "out "+p.Port.String())
		}
	}
	return out
}

func TestCompileQuarantine(t *testing.T) {
	pumps := seg("icu", "pumps", iomtv1.ClassInfusionPump)
	pumps.Spec.Flows = []iomtv1.Flow{
		{Name: "orders", Direction: iomtv1.DirectionEgress, Peers: []iomtv1.Peer{segRef("", "ehr")},
			Protocols: []iomtv1.ProtocolPort{{Name: iomtv1.ProtocolHL7MLLP}}, Essential: true},
		{Name: "reports", Direction: iomtv1.DirectionEgress, Peers: []iomtv1.Peer{segRef("", "ehr")},
			Protocols: []iomtv1.ProtocolPort{{Name: iomtv1.ProtocolFHIR}}},
	}
	pumps.Spec.Quarantine = &iomtv1.QuarantinePolicy{Remediation: []iomtv1.Flow{
		{Name: "biomed", Direction: iomtv1.DirectionIngress,
			Peers:     []iomtv1.Peer{{CIDR: &iomtv1.CIDRPeer{CIDR: "10.99.0.0/24"}}},
			Protocols: []iomtv1.ProtocolPort{{Name: iomtv1.ProtocolSyslog}}},
	}}
	healthy := dev("icu", "pump-1", iomtv1.ClassInfusionPump, nil)
	restricted := dev("icu", "pump-2", iomtv1.ClassInfusionPump, nil)
	restricted.Annotations = map[string]string{iomtv1.QuarantineAnnotation: "Restrict"}
	restricted.Spec.Addresses = []iomtv1.LANAddress{"10.20.1.2"}
	restricted.Spec.Protocols = []iomtv1.ProtocolPort{{Name: iomtv1.ProtocolNTP}}
	isolated := dev("icu", "pump-3", iomtv1.ClassInfusionPump, nil)
	isolated.Annotations = map[string]string{iomtv1.QuarantineAnnotation: "Isolate"}
	isolated.Spec.Addresses = []iomtv1.LANAddress{"10.20.1.3"}
	isolated.Spec.Protocols = []iomtv1.ProtocolPort{{Name: iomtv1.ProtocolNTP}}
	gw := dev("icu", "gw", iomtv1.ClassOther, nil)

	m := Resolve(World{
		Segments: []iomtv1.SegmentPolicy{pumps, seg("icu", "ehr", iomtv1.ClassOther)},
		Devices:  []iomtv1.MedicalDevice{healthy, restricted, isolated, gw},
	})
	res, err := Compile(m, types.NamespacedName{Namespace: "icu", Name: "pumps"}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*networkingv1.NetworkPolicy{}
	for _, np := range res.Policies {
		byName[np.Name] = np
	}

	tests := []struct {
		name   string
		policy string
		member string
		want   string
	}{
		{"healthy members keep every flow, remediation, attestation and DNS", "iomt-segment-pumps", "pump-1",
			"in 6514,out 2575,out 443,out 8444,out 53,out 53"},
		{"restricted members keep essential and remediation flows, attestation, their own link and DNS",
			"iomt-segment-pumps-restricted", "pump-2", "in 6514,in 123,out 2575,out 8444,out 123,out 53,out 53"},
		{"isolated members keep only remediation flows, attestation and DNS", "iomt-segment-pumps-isolated",
			"pump-3", "in 6514,out 8444,out 53,out 53"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			np := byName[tt.policy]
			if np == nil {
				t.Fatalf("no policy %s among %v", tt.policy, PolicyNames("pumps"))
			}
			if got := np.Spec.PodSelector.MatchExpressions[0].Values; strings.Join(got, ",") != tt.member {
				t.Fatalf("selects %v, want %s", got, tt.member)
			}
			if got := strings.Join(rulePorts(np), ","); got != tt.want {
				t.Fatalf("ports %s, want %s", got, tt.want)
			}
		})
	}

	t.Run("quarantined members are counted", func(t *testing.T) {
		if strings.Join(res.Quarantined, ",") != "pump-2,pump-3" {
			t.Fatalf("quarantined %v", res.Quarantined)
		}
	})

	t.Run("the peer segment admits restricted members only on essential flows", func(t *testing.T) {
		ehr, err := Compile(m, types.NamespacedName{Namespace: "icu", Name: "ehr"}, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range ehr.Policies[0].Spec.Ingress {
			got[r.Ports[0].Port.String()] = strings.Join(r.From[0].PodSelector.MatchExpressions[0].Values, ",")
		}
		if got["2575"] != "pump-1,pump-2" || got["443"] != "pump-1" || len(got) != 2 {
			t.Fatalf("ehr ingress by port: %v", got)
		}
	})
}
