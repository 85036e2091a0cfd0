package segment

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// Labels and names the operator puts on what it writes.
const (
	// ManagedByLabel marks every object the operator writes.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is ManagedByLabel's value.
	ManagedByValue = "iomt-operator"
	// RoleLabel says what a generated NetworkPolicy is for.
	RoleLabel = "iomt.medinaii.io/policy-role"
	// SegmentLabel names the SegmentPolicy a generated object belongs to.
	SegmentLabel = "iomt.medinaii.io/segment"

	// RoleBaseline marks a namespace's deny-all baseline.
	RoleBaseline = "baseline"
	// RoleSegment marks a segment's allow policy.
	RoleSegment = "segment"

	// BaselineName is the name of the baseline NetworkPolicy.
	BaselineName = "iomt-baseline"
	// segmentPrefix starts the name of every segment NetworkPolicy.
	segmentPrefix = "iomt-segment-"
)

// Config is what the compiler needs to know about the cluster.
type Config struct {
	// DNSNamespace is where cluster DNS runs, kube-system on most clusters.
	DNSNamespace string
	// DNSPodLabels select the cluster DNS pods, k8s-app=kube-dns on most.
	DNSPodLabels map[string]string

	// AttestationNamespace and AttestationPodLabels select the operator's
	// pods, whose attestation endpoint every member may reach on
	// AttestationPort, whatever its quarantine. A zero port leaves the
	// rule out.
	AttestationNamespace string
	AttestationPodLabels map[string]string
	AttestationPort      int32

	// LeaveL7ToCilium leaves rules with HTTP matches out of the
	// NetworkPolicies, for when Cilium enforces them beside: Cilium adds
	// up every policy's allows, so an L4 allow of the same port would let
	// any request through.
	LeaveL7ToCilium bool
}

// DefaultAttestationPort is where the operator takes verifier reports.
const DefaultAttestationPort = 8444

// DefaultConfig suits clusters that run CoreDNS as kube-dns in kube-system
// and the operator in iomt-system.
func DefaultConfig() Config {
	return Config{
		DNSNamespace:         "kube-system",
		DNSPodLabels:         map[string]string{"k8s-app": "kube-dns"},
		AttestationNamespace: "iomt-system",
		AttestationPodLabels: map[string]string{"app.kubernetes.io/name": "iomt-operator"},
		AttestationPort:      DefaultAttestationPort,
	}
}

// Result is what one segment should look like.
type Result struct {
	// Members are the member device names, sorted.
	Members []string
	// Quarantined are the members that are restricted or isolated, sorted.
	Quarantined []string
	// Conflicts are devices the segment selects that another segment also
	// selects, sorted.
	Conflicts []string
	// Unresolved says, for each flow peer that resolved to nothing, why.
	Unresolved []string
	// Policies are the segment's NetworkPolicies: one for its healthy
	// members, one for restricted and one for isolated members, each only
	// when it has someone to select.
	Policies []*networkingv1.NetworkPolicy
	// Plans are the same policies before they are written for an engine,
	// in the same order, with the rules only Cilium can say.
	Plans []Plan
}

// PolicyName is the name of a segment's NetworkPolicy for members in a
// quarantine state.
func PolicyName(segment string, state iomtv1.QuarantineState) string {
	switch state {
	case iomtv1.QuarantineRestricted:
		return segmentPrefix + segment + "-restricted"
	case iomtv1.QuarantineIsolated:
		return segmentPrefix + segment + "-isolated"
	default:
		return segmentPrefix + segment
	}
}

// PolicyNames are the names every policy of a segment may have.
func PolicyNames(segment string) []string {
	out := make([]string, len(quarantineStates))
	for i, s := range quarantineStates {
		out[i] = PolicyName(segment, s)
	}
	return out
}

// Baseline returns the deny-all NetworkPolicy of a namespace that holds
// devices. It selects every pod that carries the device label, so a device
// pod is isolated from the moment it exists, in both directions.
func Baseline(namespace string) *networkingv1.NetworkPolicy {
	np := newPolicy(namespace, BaselineName, map[string]string{RoleLabel: RoleBaseline})
	np.Spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: iomtv1.DeviceLabel, Operator: metav1.LabelSelectorOpExists,
	}}}
	return np
}

// Compile returns what the segment key should look like, given everyone's
// membership. It fails only when the segment's own spec cannot be used; the
// caller then leaves whatever is enforced as it is.
func Compile(m *Membership, key types.NamespacedName, cfg Config) (*Result, error) {
	seg, ms := m.Segment(key)
	if seg == nil {
		return nil, fmt.Errorf("segment %s is not known", key)
	}
	if ms.Invalid != "" {
		return nil, fmt.Errorf("%s", ms.Invalid)
	}
	if err := validatePeers(seg); err != nil {
		return nil, err
	}

	res := &Result{Members: ms.Names(), Conflicts: ms.Conflicts}
	unresolved := map[string]bool{}
	for _, state := range quarantineStates {
		devs := ms.InState(state)
		if len(devs) == 0 {
			continue
		}
		if state != iomtv1.QuarantineNone {
			res.Quarantined = append(res.Quarantined, names(devs)...)
		}

		b := rules{threshold: threshold(state), leaveL7: cfg.LeaveL7ToCilium}
		for _, why := range b.ownFlows(m, seg) {
			if !unresolved[why] {
				unresolved[why] = true
				res.Unresolved = append(res.Unresolved, why)
			}
		}
		b.mirroredFlows(m, seg)
		b.attestation(cfg)
		if state != iomtv1.QuarantineIsolated {
			b.deviceAddresses(devs)
		}
		// DNS stays open even for isolated members: their verifier must
		// find the attestation endpoint by name to prove them healthy.
		if DNSOf(seg) == iomtv1.DNSAllow {
			b.dns(cfg)
		}

		np := newPolicy(seg.Namespace, PolicyName(seg.Name, state), map[string]string{
			RoleLabel: RoleSegment, SegmentLabel: seg.Name,
		})
		np.Spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: iomtv1.DeviceLabel, Operator: metav1.LabelSelectorOpIn, Values: names(devs),
		}}}
		np.Spec.Ingress = b.ingress
		np.Spec.Egress = b.egress
		res.Policies = append(res.Policies, np)
		plan := Plan{Name: np.Name, State: state, Devices: names(devs), Rules: b.plan}
		if state != iomtv1.QuarantineNone {
			plan.Revoked = revoked(m, seg, devs, b.plan)
		}
		res.Plans = append(res.Plans, plan)
	}
	sort.Strings(res.Quarantined)
	return res, nil
}

// rules collects a policy's rules without repeats, in the order added.
type rules struct {
	// threshold is the lowest tier of flow the policy's members keep.
	threshold tier
	// leaveL7 leaves rules with HTTP matches out of the NetworkPolicy.
	leaveL7 bool
	ingress []networkingv1.NetworkPolicyIngressRule
	egress  []networkingv1.NetworkPolicyEgressRule
	seen    map[string]bool
	// plan are the rules for every engine, without repeats.
	plan     []Rule
	seenPlan map[string]bool
}

// addRule adds a rule for every engine, and its NetworkPolicy part where
// NetworkPolicy can say it.
func (b *rules) addRule(r Rule) {
	if (len(r.Peers) == 0 && len(r.FQDNs) == 0 && len(r.Entities) == 0) || len(r.Ports) == 0 {
		return // fail closed, as in add
	}
	id, _ := json.Marshal(r)
	if b.seenPlan == nil {
		b.seenPlan = map[string]bool{}
	}
	if !b.seenPlan[string(id)] {
		b.seenPlan[string(id)] = true
		b.plan = append(b.plan, r)
	}
	if len(r.HTTP) > 0 && b.leaveL7 {
		return
	}
	b.add(r.Direction, r.Peers, r.Ports)
}

func (b *rules) add(dir iomtv1.Direction, peers []networkingv1.NetworkPolicyPeer, ports []Port) {
	if len(peers) == 0 || len(ports) == 0 {
		// An empty peer or port list would mean "everyone" or "every
		// port": a rule that resolves to nothing is left out instead.
		return
	}
	npPorts := policyPorts(ports)
	id, _ := json.Marshal(struct {
		D  iomtv1.Direction
		P  []networkingv1.NetworkPolicyPeer
		Pt []networkingv1.NetworkPolicyPort
	}{dir, peers, npPorts})
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	if b.seen[string(id)] {
		return
	}
	b.seen[string(id)] = true

	if dir == iomtv1.DirectionIngress {
		b.ingress = append(b.ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: npPorts})
	} else {
		b.egress = append(b.egress, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: npPorts})
	}
}

// ownFlows adds the segment's own flows that the policy's members keep,
// leaving out peers that resolve to nothing. It returns why for each.
func (b *rules) ownFlows(m *Membership, seg *iomtv1.SegmentPolicy) []string {
	var unresolved []string
	for _, f := range flowsOf(seg) {
		if f.tier < b.threshold {
			continue
		}
		var (
			peers    []networkingv1.NetworkPolicyPeer
			fqdns    []string
			entities []iomtv1.Entity
		)
		for i, p := range f.Peers {
			switch {
			case p.FQDN != "":
				fqdns = append(fqdns, p.FQDN)
				continue
			case p.Entity != "":
				entities = append(entities, p.Entity)
				continue
			}
			resolved, why := resolvePeer(m, seg, p, f.tier)
			if why != "" {
				unresolved = append(unresolved, fmt.Sprintf("flow %s peer %d: %s", f.Name, i, why))
				continue
			}
			peers = append(peers, resolved...)
		}
		for _, r := range flowRules(f.Flow, f.Direction, peers, fqdns, entities) {
			b.addRule(r)
		}
	}
	return unresolved
}

// mirroredFlows adds the other side of every flow that an enforcing segment
// states towards this one: its egress becomes ingress here, and the reverse.
// A segment's flow to itself is mirrored too, so its members can both send
// and receive it.
func (b *rules) mirroredFlows(m *Membership, seg *iomtv1.SegmentPolicy) {
	for _, k := range m.segmentKeys() {
		other, oms := m.Segment(k)
		if EnforcementOf(other) != iomtv1.EnforcementEnforce || oms.Invalid != "" {
			continue
		}
		for _, f := range flowsOf(other) {
			if f.tier < b.threshold {
				continue
			}
			for _, p := range f.Peers {
				if p.Segment == nil || refKey(other, p.Segment) != keyOf(seg) {
					continue
				}
				peers := memberPeers(seg.Namespace, k.Namespace, oms.upTo(f.tier))
				for _, r := range flowRules(f.Flow, opposite(f.Direction), peers, nil, nil) {
					b.addRule(r)
				}
			}
		}
	}
}

// deviceAddresses lets the policy's member pods and those members' LAN
// addresses reach each other on the devices' own protocols. Devices with
// the same protocols share one rule.
// TODO: every member address is one ipBlock, here and in each flow that
// names the segment, so a policy grows with members times flows; past
// roughly a thousand devices with many flows it can outgrow the API
// server's 3 MiB request limit, the write fails and the segment reports
// ApplyFailed. Merging adjacent addresses into wider blocks would help.
func (b *rules) deviceAddresses(devices []*iomtv1.MedicalDevice) {
	type group struct {
		ports []Port
		peers []networkingv1.NetworkPolicyPeer
	}
	groups := map[string]*group{}
	var order []string
	for _, d := range devices {
		ports := Ports(d.Spec.Protocols)
		if len(ports) == 0 || len(d.Spec.Addresses) == 0 {
			continue
		}
		id := fmt.Sprint(ports)
		g, ok := groups[id]
		if !ok {
			g = &group{ports: ports}
			groups[id] = g
			order = append(order, id)
		}
		g.peers = append(g.peers, addressPeers(d.Spec.Addresses)...)
	}
	for _, id := range order {
		g := groups[id]
		b.addRule(Rule{Direction: iomtv1.DirectionIngress, Peers: g.peers, Ports: g.ports})
		b.addRule(Rule{Direction: iomtv1.DirectionEgress, Peers: g.peers, Ports: g.ports})
	}
}

// attestation lets members reach the operator's attestation endpoint, so a
// device can always report, quarantined or not.
func (b *rules) attestation(cfg Config) {
	if cfg.AttestationPort == 0 {
		return
	}
	peer := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: namespaceSelector(cfg.AttestationNamespace),
		PodSelector:       &metav1.LabelSelector{MatchLabels: cfg.AttestationPodLabels},
	}
	b.addRule(Rule{Direction: iomtv1.DirectionEgress, Peers: []networkingv1.NetworkPolicyPeer{peer},
		Ports: []Port{{corev1.ProtocolTCP, cfg.AttestationPort}}})
}

// dns lets members query cluster DNS on UDP and TCP 53.
func (b *rules) dns(cfg Config) {
	peer := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: namespaceSelector(cfg.DNSNamespace),
		PodSelector:       &metav1.LabelSelector{MatchLabels: cfg.DNSPodLabels},
	}
	b.addRule(Rule{Direction: iomtv1.DirectionEgress, Peers: []networkingv1.NetworkPolicyPeer{peer},
		Ports: []Port{{corev1.ProtocolUDP, 53}, {corev1.ProtocolTCP, 53}}, DNS: true})
}

// resolvePeer turns a flow peer into NetworkPolicy peers. It returns a
// reason instead when the peer stands for nobody.
func resolvePeer(m *Membership, seg *iomtv1.SegmentPolicy, p iomtv1.Peer, t tier) (
	[]networkingv1.NetworkPolicyPeer, string) {
	switch {
	case p.Segment != nil:
		k := refKey(seg, p.Segment)
		other, oms := m.Segment(k)
		if other == nil {
			return nil, fmt.Sprintf("segment %s does not exist", k)
		}
		if oms.Invalid != "" {
			return nil, fmt.Sprintf("segment %s has an invalid spec", k)
		}
		devs := oms.upTo(t)
		if len(devs) == 0 {
			if len(oms.Devices) > 0 {
				return nil, fmt.Sprintf("segment %s has no members this flow may reach: all are quarantined", k)
			}
			return nil, fmt.Sprintf("segment %s has no members", k)
		}
		return memberPeers(seg.Namespace, k.Namespace, devs), ""
	case p.Pods != nil:
		return []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: p.Pods.NamespaceSelector.Kubernetes(),
			PodSelector:       p.Pods.PodSelector.Kubernetes(),
		}}, ""
	case p.CIDR != nil:
		return []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
			CIDR: p.CIDR.CIDR, Except: append([]string(nil), p.CIDR.Except...),
		}}}, ""
	}
	return nil, "peer names no segment, pods, cidr, fqdn or entity"
}

// memberPeers stands for some members of a segment: their pods, with
// namespace and pod selectors in one peer, and their LAN addresses. It is
// empty when devs is.
func memberPeers(policyNS, membersNS string, devs []*iomtv1.MedicalDevice) []networkingv1.NetworkPolicyPeer {
	if len(devs) == 0 {
		return nil
	}
	pods := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: iomtv1.DeviceLabel, Operator: metav1.LabelSelectorOpIn, Values: names(devs),
		}},
	}}
	if membersNS != policyNS {
		pods.NamespaceSelector = namespaceSelector(membersNS)
	}
	peers := []networkingv1.NetworkPolicyPeer{pods}
	for _, d := range devs {
		peers = append(peers, addressPeers(d.Spec.Addresses)...)
	}
	return peers
}

// addressPeers turns LAN addresses into ipBlock peers; a single address
// becomes a host prefix.
func addressPeers(addrs []iomtv1.LANAddress) []networkingv1.NetworkPolicyPeer {
	peers := make([]networkingv1.NetworkPolicyPeer, 0, len(addrs))
	for _, a := range addrs {
		if cidr, ok := hostPrefix(string(a)); ok {
			peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
		}
	}
	return peers
}

func hostPrefix(s string) (string, bool) {
	if addr, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(addr, addr.BitLen()).String(), true
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String(), true
	}
	return "", false
}

// validatePeers checks what the schema cannot: that label selectors parse.
func validatePeers(seg *iomtv1.SegmentPolicy) error {
	for _, f := range flowsOf(seg) {
		for i, p := range f.Peers {
			if p.Pods == nil {
				continue
			}
			if _, err := metav1.LabelSelectorAsSelector(p.Pods.NamespaceSelector.Kubernetes()); err != nil {
				return fmt.Errorf("spec.flows[%s].peers[%d].pods.namespaceSelector: %w", f.Name, i, err)
			}
			if _, err := metav1.LabelSelectorAsSelector(p.Pods.PodSelector.Kubernetes()); err != nil {
				return fmt.Errorf("spec.flows[%s].peers[%d].pods.podSelector: %w", f.Name, i, err)
			}
		}
	}
	return nil
}

func policyPorts(ports []Port) []networkingv1.NetworkPolicyPort {
	out := make([]networkingv1.NetworkPolicyPort, len(ports))
	for i, p := range ports {
		proto, num := p.Protocol, intstr.FromInt32(p.Number)
		out[i] = networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &num}
	}
	return out
}

func newPolicy(namespace, name string, extra map[string]string) *networkingv1.NetworkPolicy {
	lbls := map[string]string{ManagedByLabel: ManagedByValue}
	for k, v := range extra {
		lbls[k] = v
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: lbls},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{
				networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress,
			},
		},
	}
}

func namespaceSelector(ns string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}
}

func refKey(from *iomtv1.SegmentPolicy, ref *iomtv1.SegmentReference) types.NamespacedName {
	ns := ref.Namespace
	if ns == "" {
		ns = from.Namespace
	}
	return types.NamespacedName{Namespace: ns, Name: ref.Name}
}

func opposite(d iomtv1.Direction) iomtv1.Direction {
	if d == iomtv1.DirectionIngress {
		return iomtv1.DirectionEgress
	}
	return iomtv1.DirectionIngress
}

// revoked are the rules the segment gives its healthy members that these
// quarantined members do not keep.
func revoked(m *Membership, seg *iomtv1.SegmentPolicy, devs []*iomtv1.MedicalDevice,
	kept []Rule) []Rule {
	full := rules{threshold: tierNormal}
	full.ownFlows(m, seg)
	full.mirroredFlows(m, seg)
	full.deviceAddresses(devs)
	keep := map[string]bool{}
	for _, r := range kept {
		id, _ := json.Marshal(r)
		keep[string(id)] = true
	}
	var out []Rule
	for _, r := range full.plan {
		if id, _ := json.Marshal(r); !keep[string(id)] {
			out = append(out, r)
		}
	}
	return out
}
