package segment

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

func TestCiliumOnlyPeersAndRules(t *testing.T) {
	fhirPort := iomtv1.ProtocolPort{Name: iomtv1.ProtocolFHIR}
	hl7Port := iomtv1.ProtocolPort{Name: iomtv1.ProtocolHL7MLLP}
	results := flow("results", iomtv1.DirectionEgress, segRef("", "ehr"), fhirPort, hl7Port)
	results.FHIR = []iomtv1.FHIRInteraction{{Method: "POST", ResourceType: "Observation"}}
	pumps := seg("icu", "pumps", iomtv1.ClassInfusionPump)
	pumps.Spec.Flows = []iomtv1.Flow{
		results,
		flow("updates", iomtv1.DirectionEgress, iomtv1.Peer{FQDN: "updates.vendor.example"}, fhirPort),
		flow("api", iomtv1.DirectionEgress, iomtv1.Peer{Entity: iomtv1.EntityKubeAPIServer}, fhirPort),
	}
	m := Resolve(World{
		Segments: []iomtv1.SegmentPolicy{pumps, seg("icu", "ehr", iomtv1.ClassOther)},
		Devices: []iomtv1.MedicalDevice{dev("icu", "pump-1", iomtv1.ClassInfusionPump, nil),
			dev("icu", "gw-1", iomtv1.ClassOther, nil)},
	})
	compile := func(cfg Config) *Result {
		t.Helper()
		res, err := Compile(m, types.NamespacedName{Namespace: "icu", Name: "pumps"}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	egressPorts := func(res *Result) map[int32]int {
		out := map[int32]int{}
		for _, r := range res.Policies[0].Spec.Egress {
			if len(r.To) == 0 {
				t.Fatalf("egress rule with no peer: %+v", r)
			}
			for _, p := range r.Ports {
				out[p.Port.IntVal]++
			}
		}
		return out
	}

	t.Run("fqdn and entity peers are not unresolved and open nothing in a NetworkPolicy", func(t *testing.T) {
		res := compile(DefaultConfig())
		if len(res.Unresolved) > 0 {
			t.Fatalf("unresolved %v", res.Unresolved)
		}
		// 443 once, for the results flow to the ehr members; never for names
		if got := egressPorts(res); got[443] != 1 || got[2575] != 1 {
			t.Fatalf("egress ports %v", got)
		}
	})
	t.Run("HTTP rules sit on the FHIR port only", func(t *testing.T) {
		for _, r := range compile(DefaultConfig()).Plans[0].Rules {
			for _, p := range r.Ports {
				if len(r.HTTP) > 0 && p.Number != 443 {
					t.Fatalf("HTTP rule on port %d", p.Number)
				}
			}
		}
	})
	t.Run("with Cilium beside it the NetworkPolicy leaves HTTP-narrowed ports out", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.LeaveL7ToCilium = true
		if got := egressPorts(compile(cfg)); got[443] != 0 || got[2575] != 1 {
			t.Fatalf("egress ports %v", got)
		}
	})
	t.Run("the flows that need Cilium are named", func(t *testing.T) {
		got := CiliumOnlyFlows(&pumps)
		if len(got) != 3 {
			t.Fatalf("CiliumOnlyFlows %v", got)
		}
	})
}
