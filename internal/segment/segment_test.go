package segment

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

func dev(ns, name string, class iomtv1.DeviceClass, lbls map[string]string) iomtv1.MedicalDevice {
	return iomtv1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec:       iomtv1.MedicalDeviceSpec{Class: class},
	}
}

func seg(ns, name string, classes ...iomtv1.DeviceClass) iomtv1.SegmentPolicy {
	return iomtv1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       iomtv1.SegmentPolicySpec{DeviceSelector: iomtv1.DeviceSelector{Classes: classes}},
	}
}

func flow(name string, dir iomtv1.Direction, peer iomtv1.Peer, protos ...iomtv1.ProtocolPort) iomtv1.Flow {
	return iomtv1.Flow{Name: name, Direction: dir, Peers: []iomtv1.Peer{peer}, Protocols: protos}
}

func segRef(ns, name string) iomtv1.Peer {
	return iomtv1.Peer{Segment: &iomtv1.SegmentReference{Namespace: ns, Name: name}}
}

func TestPorts(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	tests := []struct {
		name string
		refs []iomtv1.ProtocolPort
		want []Port
	}{
		{"a named protocol opens its template's ports",
			[]iomtv1.ProtocolPort{{Name: iomtv1.ProtocolDICOM}}, []Port{{tcp, 104}, {tcp, 11112}}},
		{"a port narrows a named protocol to that port",
			[]iomtv1.ProtocolPort{{Name: iomtv1.ProtocolDICOM, Port: ptr.To[int32](11112)}}, []Port{{tcp, 11112}}},
		{"SDC opens UDP discovery and TCP messages",
			[]iomtv1.ProtocolPort{{Name: iomtv1.ProtocolSDC}}, []Port{{tcp, 443}, {udp, 3702}}},
		{"an explicit port is TCP unless told otherwise",
			[]iomtv1.ProtocolPort{{Port: ptr.To[int32](8443)}}, []Port{{tcp, 8443}}},
		{"an explicit UDP port keeps its transport",
			[]iomtv1.ProtocolPort{{Port: ptr.To[int32](514), Transport: iomtv1.TransportUDP}}, []Port{{udp, 514}}},
		{"ports shared by two protocols appear once",
			[]iomtv1.ProtocolPort{{Name: iomtv1.ProtocolFHIR}, {Name: iomtv1.ProtocolDICOMweb}}, []Port{{tcp, 443}}},
		{"a port outside the template opens nothing",
			[]iomtv1.ProtocolPort{{Name: iomtv1.ProtocolHL7MLLP, Port: ptr.To[int32](22)}}, nil},
		{"an unknown name opens nothing",
			[]iomtv1.ProtocolPort{{Name: "Telnet"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Ports(tt.refs)
			if strings.Join(portStrings(got), ",") != strings.Join(portStrings(tt.want), ",") {
				t.Fatalf("Ports() = %v, want %v", got, tt.want)
			}
		})
	}
}

func portStrings(ps []Port) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Protocol) + "/" + strconv.Itoa(int(p.Number))
	}
	return out
}

// The schema refuses a port that is not the named protocol's; it must name
// the same ports as the compiler opens.
func TestTemplatesMatchSchema(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases",
		"iomt.medinaii.io_medicaldevices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	rule := findRule(crd, "self.port in")
	entries := regexp.MustCompile(`'(\w+)': \[([\d, ]+)\]`).FindAllStringSubmatch(rule, -1)
	if len(entries) != len(templates) {
		t.Fatalf("schema names %d protocols, the compiler %d", len(entries), len(templates))
	}
	for _, e := range entries {
		var want []string
		for _, p := range templates[iomtv1.ProtocolName(e[1])] {
			want = append(want, strconv.Itoa(int(p.Number)))
		}
		got := strings.Split(strings.ReplaceAll(e[2], " ", ""), ",")
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: schema allows ports %v, compiler opens %v", e[1], got, want)
		}
	}
}

// findRule returns the first CEL rule in a decoded CRD that contains text.
func findRule(node any, text string) string {
	switch n := node.(type) {
	case map[string]any:
		if r, ok := n["rule"].(string); ok && strings.Contains(r, text) {
			return r
		}
		for _, v := range n {
			if r := findRule(v, text); r != "" {
				return r
			}
		}
	case []any:
		for _, v := range n {
			if r := findRule(v, text); r != "" {
				return r
			}
		}
	}
	return ""
}

func TestResolve(t *testing.T) {
	observe := seg("icu", "monitors", iomtv1.ClassPatientMonitor)
	observe.Spec.Enforcement = iomtv1.EnforcementObserve
	ward := seg("icu", "ward-3")
	ward.Spec.DeviceSelector.Labels = iomtv1.SelectorFromLabels(map[string]string{"ward": "3"})
	broken := seg("icu", "broken")
	broken.Spec.DeviceSelector.Labels = iomtv1.SelectorFromLabels(map[string]string{"bad key": "x"})
	w := World{
		Segments: []iomtv1.SegmentPolicy{seg("icu", "pumps", iomtv1.ClassInfusionPump), ward, observe, broken,
			seg("radiology", "pumps", iomtv1.ClassInfusionPump)},
		Devices: []iomtv1.MedicalDevice{
			dev("icu", "pump-1", iomtv1.ClassInfusionPump, nil),
			dev("icu", "pump-2", iomtv1.ClassInfusionPump, map[string]string{"ward": "3"}),
			dev("icu", "mon-1", iomtv1.ClassPatientMonitor, nil),
			dev("icu", "vent-1", iomtv1.ClassVentilator, nil),
		},
	}
	m := Resolve(w)

	tests := []struct {
		device   string
		segment  string
		enforced bool
		reason   string
	}{
		{"pump-1", "pumps", true, iomtv1.ReasonSegmented},
		{"pump-2", "", false, iomtv1.ReasonSegmentConflict},
		{"mon-1", "monitors", false, iomtv1.ReasonObserving},
		{"vent-1", "", false, iomtv1.ReasonNoSegment},
	}
	for _, tt := range tests {
		t.Run(tt.device+" is "+tt.reason, func(t *testing.T) {
			a := m.Device(types.NamespacedName{Namespace: "icu", Name: tt.device})
			if a.Segment != tt.segment || a.Enforced != tt.enforced || a.Reason != tt.reason {
				t.Fatalf("got %+v, want segment %q enforced %v reason %s", a, tt.segment, tt.enforced, tt.reason)
			}
		})
	}

	t.Run("a contested device counts as a conflict on both segments and a member of neither", func(t *testing.T) {
		for _, name := range []string{"pumps", "ward-3"} {
			_, ms := m.Segment(types.NamespacedName{Namespace: "icu", Name: name})
			if strings.Join(ms.Conflicts, ",") != "pump-2" || strings.Contains(strings.Join(ms.Names(), ","), "pump-2") {
				t.Fatalf("%s: members %v conflicts %v", name, ms.Names(), ms.Conflicts)
			}
		}
	})
	t.Run("segments select only devices of their own namespace", func(t *testing.T) {
		_, ms := m.Segment(types.NamespacedName{Namespace: "radiology", Name: "pumps"})
		if len(ms.Devices) != 0 {
			t.Fatalf("radiology/pumps has members %v", ms.Names())
		}
	})
	t.Run("a selector that does not parse makes the segment invalid and select nothing", func(t *testing.T) {
		_, ms := m.Segment(types.NamespacedName{Namespace: "icu", Name: "broken"})
		if ms.Invalid == "" || len(ms.Devices) != 0 {
			t.Fatalf("broken: invalid %q members %v", ms.Invalid, ms.Names())
		}
		if _, err := Compile(m, types.NamespacedName{Namespace: "icu", Name: "broken"}, DefaultConfig()); err == nil {
			t.Fatal("Compile accepted a segment whose selector does not parse")
		}
	})
}

func TestCompile(t *testing.T) {
	pumps := seg("icu", "pumps", iomtv1.ClassInfusionPump)
	pumps.Spec.Flows = []iomtv1.Flow{
		flow("ehr", iomtv1.DirectionEgress, segRef("core", "ehr"), iomtv1.ProtocolPort{Name: iomtv1.ProtocolHL7MLLP}),
		flow("ghost", iomtv1.DirectionEgress, segRef("", "ghost"), iomtv1.ProtocolPort{Name: iomtv1.ProtocolFHIR}),
		flow("empty", iomtv1.DirectionIngress, segRef("icu", "vents"), iomtv1.ProtocolPort{Name: iomtv1.ProtocolNTP}),
	}
	quiet := seg("icu", "quiet", iomtv1.ClassWearable)
	quiet.Spec.DNS = iomtv1.DNSDeny
	pump := dev("icu", "pump-1", iomtv1.ClassInfusionPump, nil)
	pump.Spec.Addresses = []iomtv1.LANAddress{"10.20.1.15", "fd00::15", "10.20.2.0/28"}
	pump.Spec.Protocols = []iomtv1.ProtocolPort{{Name: iomtv1.ProtocolHL7MLLP}}
	gw := dev("core", "gw-1", iomtv1.ClassOther, nil)
	gw.Spec.Addresses = []iomtv1.LANAddress{"10.40.0.5"}

	m := Resolve(World{
		Segments: []iomtv1.SegmentPolicy{pumps, quiet, seg("core", "ehr", iomtv1.ClassOther),
			seg("icu", "vents", iomtv1.ClassVentilator)},
		Devices: []iomtv1.MedicalDevice{pump, gw, dev("icu", "band-1", iomtv1.ClassWearable, nil)},
	})
	compile := func(ns, name string) *Result {
		t.Helper()
		res, err := Compile(m, types.NamespacedName{Namespace: ns, Name: name}, DefaultConfig())
		if err != nil {
			t.Fatalf("Compile(%s/%s): %v", ns, name, err)
		}
		return res
	}

	res := compile("icu", "pumps")
	np := res.Policies[0]

	t.Run("every policy states both policy types", func(t *testing.T) {
		for _, p := range []*networkingv1.NetworkPolicy{np, healthyPolicy(compile("core", "ehr")), Baseline("icu")} {
			if len(p.Spec.PolicyTypes) != 2 {
				t.Fatalf("%s: policyTypes %v", p.Name, p.Spec.PolicyTypes)
			}
		}
	})
	t.Run("no rule has an empty peer or port list", func(t *testing.T) {
		for _, r := range np.Spec.Ingress {
			if len(r.From) == 0 || len(r.Ports) == 0 {
				t.Fatalf("ingress rule %+v would open too much", r)
			}
		}
		for _, r := range np.Spec.Egress {
			if len(r.To) == 0 || len(r.Ports) == 0 {
				t.Fatalf("egress rule %+v would open too much", r)
			}
		}
	})
	t.Run("peers that resolve to nothing are named and left out", func(t *testing.T) {
		got := strings.Join(res.Unresolved, "; ")
		for _, want := range []string{"flow ghost peer 0: segment icu/ghost does not exist",
			"flow empty peer 0: segment icu/vents has no members"} {
			if !strings.Contains(got, want) {
				t.Errorf("unresolved %q lacks %q", got, want)
			}
		}
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				if p.Port.IntValue() == 443 {
					t.Fatal("the ghost flow's port was opened")
				}
			}
		}
	})
	t.Run("a peer segment elsewhere is one peer with both selectors, plus its LAN addresses", func(t *testing.T) {
		r := np.Spec.Egress[0]
		if len(r.To) != 2 || r.To[0].NamespaceSelector == nil || r.To[0].PodSelector == nil ||
			r.To[0].NamespaceSelector.MatchLabels[corev1.LabelMetadataName] != "core" ||
			r.To[1].IPBlock == nil || r.To[1].IPBlock.CIDR != "10.40.0.5/32" {
			t.Fatalf("egress to ehr: %+v", r.To)
		}
	})
	t.Run("the peer segment gets the mirrored ingress on the same ports", func(t *testing.T) {
		ehr := healthyPolicy(compile("core", "ehr"))
		if len(ehr.Spec.Ingress) != 1 {
			t.Fatalf("ehr ingress: %+v", ehr.Spec.Ingress)
		}
		r := ehr.Spec.Ingress[0]
		if r.From[0].NamespaceSelector.MatchLabels[corev1.LabelMetadataName] != "icu" ||
			r.From[0].PodSelector.MatchExpressions[0].Values[0] != "pump-1" || r.Ports[0].Port.IntValue() != 2575 {
			t.Fatalf("mirrored rule: %+v", r)
		}
	})
	t.Run("member addresses become host prefixes opened both ways on the device's protocols", func(t *testing.T) {
		want := []string{"10.20.1.15/32", "fd00::15/128", "10.20.2.0/28"}
		found := 0
		for _, r := range np.Spec.Ingress {
			if len(r.From) == 3 && r.From[0].IPBlock != nil {
				for i, p := range r.From {
					if p.IPBlock.CIDR != want[i] {
						t.Fatalf("ingress from %v, want %v", p.IPBlock.CIDR, want[i])
					}
				}
				found++
			}
		}
		if found != 1 {
			t.Fatalf("found %d address ingress rules", found)
		}
	})
	t.Run("DNS egress goes to kube-dns on UDP and TCP 53", func(t *testing.T) {
		last := np.Spec.Egress[len(np.Spec.Egress)-1]
		if last.To[0].PodSelector.MatchLabels["k8s-app"] != "kube-dns" || len(last.Ports) != 2 ||
			last.Ports[0].Port.IntValue() != 53 || last.Ports[1].Port.IntValue() != 53 ||
			*last.Ports[0].Protocol == *last.Ports[1].Protocol {
			t.Fatalf("dns rule: %+v", last)
		}
	})
	t.Run("a segment that denies DNS has no DNS rule, only attestation", func(t *testing.T) {
		q := healthyPolicy(compile("icu", "quiet"))
		if len(q.Spec.Egress) != 1 || q.Spec.Egress[0].Ports[0].Port.IntValue() != DefaultAttestationPort {
			t.Fatalf("quiet egress: %+v", q.Spec.Egress)
		}
	})
	t.Run("members reach the attestation endpoint on the operator's pods only", func(t *testing.T) {
		var found bool
		for _, r := range np.Spec.Egress {
			if r.Ports[0].Port.IntValue() == DefaultAttestationPort {
				found = len(r.To) == 1 && r.To[0].PodSelector.MatchLabels["app.kubernetes.io/name"] == "iomt-operator" &&
					r.To[0].NamespaceSelector.MatchLabels[corev1.LabelMetadataName] == "iomt-system"
			}
		}
		if !found {
			t.Fatalf("no attestation rule in %+v", np.Spec.Egress)
		}
	})
	t.Run("a segment without members has no policy", func(t *testing.T) {
		if p := healthyPolicy(compile("icu", "vents")); p != nil {
			t.Fatalf("vents policy: %+v", p)
		}
	})
	t.Run("a flow to the segment itself is open both ways between members", func(t *testing.T) {
		mon := seg("icu", "monitors", iomtv1.ClassPatientMonitor)
		mon.Spec.Flows = []iomtv1.Flow{flow("peers", iomtv1.DirectionEgress, segRef("", "monitors"),
			iomtv1.ProtocolPort{Name: iomtv1.ProtocolSDC})}
		m := Resolve(World{Segments: []iomtv1.SegmentPolicy{mon},
			Devices: []iomtv1.MedicalDevice{dev("icu", "mon-1", iomtv1.ClassPatientMonitor, nil)}})
		res, err := Compile(m, types.NamespacedName{Namespace: "icu", Name: "monitors"}, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		np := res.Policies[0]
		if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 2 ||
			np.Spec.Ingress[0].From[0].PodSelector.MatchExpressions[0].Values[0] != "mon-1" {
			t.Fatalf("ingress from own members: %+v", np.Spec.Ingress)
		}
	})
	t.Run("an Observe segment's statements are not mirrored", func(t *testing.T) {
		obs := pumps.DeepCopy()
		obs.Spec.Enforcement = iomtv1.EnforcementObserve
		m := Resolve(World{Segments: []iomtv1.SegmentPolicy{*obs, seg("core", "ehr", iomtv1.ClassOther)},
			Devices: []iomtv1.MedicalDevice{pump, gw}})
		res, err := Compile(m, types.NamespacedName{Namespace: "core", Name: "ehr"}, DefaultConfig())
		if err != nil || len(res.Policies[0].Spec.Ingress) != 0 {
			t.Fatalf("ehr ingress from an observing segment: %v %+v", err, res.Policies[0].Spec.Ingress)
		}
	})
}

// healthyPolicy returns the policy for a segment's healthy members, or nil.
func healthyPolicy(res *Result) *networkingv1.NetworkPolicy {
	for _, p := range res.Policies {
		if !strings.HasSuffix(p.Name, "-restricted") && !strings.HasSuffix(p.Name, "-isolated") {
			return p
		}
	}
	return nil
}
