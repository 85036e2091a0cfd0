package cilium

import (
	"encoding/json"
	"strings"
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"github.com/cilium/cilium/pkg/policy/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

func pump(name, quarantine string) iomtv1.MedicalDevice {
	d := iomtv1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "icu", Name: name},
		Spec:       iomtv1.MedicalDeviceSpec{Class: iomtv1.ClassInfusionPump},
	}
	if quarantine != "" {
		d.Annotations = map[string]string{iomtv1.QuarantineAnnotation: quarantine}
	}
	return d
}

func pumps(dns iomtv1.DNSMode, flows ...iomtv1.Flow) iomtv1.SegmentPolicy {
	return iomtv1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "icu", Name: "pumps"},
		Spec: iomtv1.SegmentPolicySpec{
			DeviceSelector: iomtv1.DeviceSelector{Classes: []iomtv1.DeviceClass{iomtv1.ClassInfusionPump}},
			Flows:          flows, DNS: dns,
		},
	}
}

func egressFlow(name string, peer iomtv1.Peer, protos ...iomtv1.ProtocolPort) iomtv1.Flow {
	return iomtv1.Flow{Name: name, Direction: iomtv1.DirectionEgress, Peers: []iomtv1.Peer{peer},
		Protocols: protos}
}

var (
	fhir = iomtv1.ProtocolPort{Name: iomtv1.ProtocolFHIR}
	hl7  = iomtv1.ProtocolPort{Name: iomtv1.ProtocolHL7MLLP}
	ehr  = iomtv1.Peer{Pods: &iomtv1.PodPeer{NamespaceSelector: &iomtv1.LabelSelector{
		MatchLabels: map[string]iomtv1.LabelValue{"kubernetes.io/metadata.name": "core"}}}}
	vendor = iomtv1.Peer{FQDN: "updates.vendor.example"}
)

// render compiles the pumps segment with the given devices and renders it.
func render(t *testing.T, seg iomtv1.SegmentPolicy, devs ...iomtv1.MedicalDevice) *Result {
	t.Helper()
	m := segment.Resolve(segment.World{Segments: []iomtv1.SegmentPolicy{seg}, Devices: devs})
	res, err := segment.Compile(m, types.NamespacedName{Namespace: "icu", Name: "pumps"},
		segment.DefaultConfig())
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return Render("icu", "pumps", res.Plans)
}

func policyNamed(r *Result, name string) *ciliumv2.CiliumNetworkPolicy {
	for _, p := range r.Policies {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func portsOf(pr api.PortRules) string {
	var out []string
	for _, r := range pr {
		for _, p := range r.Ports {
			out = append(out, string(p.Protocol)+"/"+p.Port)
		}
	}
	return strings.Join(out, ",")
}

func TestRender(t *testing.T) {
	fhirFlow := egressFlow("ehr", ehr, fhir, hl7)
	fhirFlow.FHIR = []iomtv1.FHIRInteraction{{Method: "POST", ResourceType: "Observation"}}
	badPath := egressFlow("bad", ehr, iomtv1.ProtocolPort{Port: ptr.To[int32](8080)})
	badPath.HTTP = []iomtv1.HTTPRule{{Method: "GET", Path: "/fhir/("}}
	apiServer := egressFlow("api", iomtv1.Peer{Entity: iomtv1.EntityKubeAPIServer},
		iomtv1.ProtocolPort{Port: ptr.To[int32](6443)})
	lan := egressFlow("lan", iomtv1.Peer{CIDR: &iomtv1.CIDRPeer{CIDR: "10.40.0.0/16",
		Except: []string{"10.40.9.0/24"}}}, iomtv1.ProtocolPort{Name: iomtv1.ProtocolNTP})
	essential := egressFlow("alarms", ehr, hl7)
	essential.Essential = true
	billing := egressFlow("billing", iomtv1.Peer{CIDR: &iomtv1.CIDRPeer{CIDR: "10.50.0.0/16"}},
		iomtv1.ProtocolPort{Port: ptr.To[int32](9000)})

	tests := []struct {
		name     string
		seg      iomtv1.SegmentPolicy
		devs     []iomtv1.MedicalDevice
		rejected string
		check    func(t *testing.T, r *Result)
	}{{
		name: "a FHIR interaction is an HTTP rule on the FHIR port only",
		seg:  pumps("", fhirFlow), devs: []iomtv1.MedicalDevice{pump("pump-1", "")},
		check: func(t *testing.T, r *Result) {
			var l7, l4 int
			for _, eg := range policyNamed(r, "iomt-segment-pumps").Spec.Egress {
				for _, pr := range eg.ToPorts {
					if pr.Rules != nil && len(pr.Rules.HTTP) > 0 {
						l7++
						if portsOf(eg.ToPorts) != "TCP/443" || pr.Rules.HTTP[0].Method != "POST" ||
							!strings.Contains(pr.Rules.HTTP[0].Path, "Observation") {
							t.Fatalf("HTTP rule on %s: %+v", portsOf(eg.ToPorts), pr.Rules.HTTP)
						}
					} else if portsOf(eg.ToPorts) == "TCP/2575" {
						l4++
					}
				}
			}
			if l7 != 1 || l4 != 1 {
				t.Fatalf("want one HTTP rule on 443 and one plain rule on 2575, got %d and %d", l7, l4)
			}
		},
	}, {
		name: "a DNS name comes with the DNS rule that shows Cilium the answers",
		seg:  pumps("", egressFlow("updates", vendor, fhir)), devs: []iomtv1.MedicalDevice{pump("pump-1", "")},
		check: func(t *testing.T, r *Result) {
			var names, dnsProxy bool
			for _, eg := range policyNamed(r, "iomt-segment-pumps").Spec.Egress {
				if len(eg.ToFQDNs) > 0 && eg.ToFQDNs[0].MatchName == "updates.vendor.example" {
					names = true
				}
				for _, pr := range eg.ToPorts {
					if pr.Rules != nil && len(pr.Rules.DNS) > 0 && portsOf(eg.ToPorts) == "UDP/53,TCP/53" {
						dnsProxy = true
					}
				}
			}
			if !names || !dnsProxy {
				t.Fatalf("toFQDNs %v, DNS proxy rule %v", names, dnsProxy)
			}
		},
	}, {
		name: "a DNS name is never written when the segment denies DNS",
		seg:  pumps(iomtv1.DNSDeny, egressFlow("updates", vendor, fhir)),
		devs: []iomtv1.MedicalDevice{pump("pump-1", "")}, rejected: "need DNS",
		check: func(t *testing.T, r *Result) {
			for _, p := range r.Policies {
				for _, eg := range p.Spec.Egress {
					if len(eg.ToFQDNs) > 0 {
						t.Fatalf("toFQDNs written without DNS: %+v", eg)
					}
				}
			}
		},
	}, {
		name: "a policy without DNS names sends no query through the DNS proxy",
		seg:  pumps("", egressFlow("ehr", ehr, hl7)), devs: []iomtv1.MedicalDevice{pump("pump-1", "")},
		check: func(t *testing.T, r *Result) {
			for _, eg := range policyNamed(r, "iomt-segment-pumps").Spec.Egress {
				for _, pr := range eg.ToPorts {
					if pr.Rules != nil {
						t.Fatalf("L7 rule in a policy with no L7 flow: %+v", pr.Rules)
					}
				}
			}
		},
	}, {
		name: "the API server is named as an entity, not an address",
		seg:  pumps("", apiServer), devs: []iomtv1.MedicalDevice{pump("pump-1", "")},
		check: func(t *testing.T, r *Result) {
			found := false
			for _, eg := range policyNamed(r, "iomt-segment-pumps").Spec.Egress {
				found = found || (len(eg.ToEntities) == 1 && eg.ToEntities[0] == api.EntityKubeAPIServer &&
					portsOf(eg.ToPorts) == "TCP/6443")
			}
			if !found {
				t.Fatal("no toEntities kube-apiserver rule on 6443")
			}
		},
	}, {
		name: "a CIDR peer keeps its holes",
		seg:  pumps("", lan), devs: []iomtv1.MedicalDevice{pump("pump-1", "")},
		check: func(t *testing.T, r *Result) {
			b, _ := json.Marshal(policyNamed(r, "iomt-segment-pumps").Spec.Egress)
			if !strings.Contains(string(b), `"toCIDRSet":[{"cidr":"10.40.0.0/16","except":["10.40.9.0/24"]}]`) {
				t.Fatalf("egress %s", b)
			}
		},
	}, {
		name: "a pod peer in another namespace names that namespace",
		seg:  pumps("", egressFlow("ehr", ehr, hl7)), devs: []iomtv1.MedicalDevice{pump("pump-1", "")},
		check: func(t *testing.T, r *Result) {
			b, _ := json.Marshal(policyNamed(r, "iomt-segment-pumps").Spec.Egress[0].ToEndpoints)
			if !strings.Contains(string(b), `"k8s:io.kubernetes.pod.namespace":"core"`) {
				t.Fatalf("toEndpoints %s", b)
			}
		},
	}, {
		name: "a restricted member gets deny rules for what it loses and keeps its essential flows",
		seg:  pumps("", essential, billing),
		devs: []iomtv1.MedicalDevice{pump("pump-1", ""), pump("pump-2", "Restrict")},
		check: func(t *testing.T, r *Result) {
			restricted := policyNamed(r, "iomt-segment-pumps-restricted")
			if restricted == nil {
				t.Fatal("no restricted policy")
			}
			b, _ := json.Marshal(restricted.Spec.EgressDeny)
			if len(restricted.Spec.EgressDeny) != 1 || !strings.Contains(string(b), "10.50.0.0/16") ||
				!strings.Contains(string(b), `"9000"`) {
				t.Fatalf("egressDeny %s", b)
			}
			if strings.Contains(string(b), "2575") {
				t.Fatalf("the essential flow is denied: %s", b)
			}
			if healthy := policyNamed(r, "iomt-segment-pumps"); len(healthy.Spec.EgressDeny) > 0 {
				t.Fatalf("healthy members got deny rules: %+v", healthy.Spec.EgressDeny)
			}
		},
	}, {
		name: "a path Cilium cannot compile is left out and reported",
		seg:  pumps("", badPath), devs: []iomtv1.MedicalDevice{pump("pump-1", "")}, rejected: "cilium refuses",
		check: func(t *testing.T, r *Result) {
			for _, eg := range policyNamed(r, "iomt-segment-pumps").Spec.Egress {
				if portsOf(eg.ToPorts) == "TCP/8080" {
					t.Fatalf("refused rule written: %+v", eg)
				}
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.seg, tt.devs...)
			got := strings.Join(r.Rejected, "; ")
			if (tt.rejected == "") != (got == "") || !strings.Contains(got, tt.rejected) {
				t.Fatalf("rejected %q, want %q", got, tt.rejected)
			}
			if len(r.Policies) == 0 {
				t.Fatal("no policy rendered")
			}
			for _, p := range r.Policies {
				if err := Sanitize(p.Spec); err != nil {
					t.Fatalf("%s fails Cilium's checks: %v", p.Name, err)
				}
				if p.Labels[segment.SegmentLabel] != "pumps" || p.Labels[segment.ManagedByLabel] == "" {
					t.Fatalf("%s labels %v", p.Name, p.Labels)
				}
			}
			tt.check(t, r)
		})
	}
}
