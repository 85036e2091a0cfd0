// Package cilium writes a segment's compiled policies as
// CiliumNetworkPolicies: the rules plain NetworkPolicy can say, and those
// only Cilium can (HTTP requests, DNS names, entities, and quarantine as
// deny rules that outrank every allow). Every rule passes Cilium's own
// checks before it is kept.
package cilium

import (
	"fmt"
	"strconv"

	ciliumio "github.com/cilium/cilium/pkg/k8s/apis/cilium.io"
	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	slimv1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/meta/v1"
	"github.com/cilium/cilium/pkg/policy/api"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// Result is what a segment should look like under Cilium.
type Result struct {
	// Policies are the CiliumNetworkPolicies, one per plan that keeps at
	// least one rule, named like the plan.
	Policies []*ciliumv2.CiliumNetworkPolicy
	// Rejected says, for each rule left out, why.
	Rejected []string
}

// Render writes a segment's plans as CiliumNetworkPolicies in namespace.
// Rules that fail Cilium's checks are left out and reported; a rule is
// never loosened to make it pass.
func Render(namespace, segmentName string, plans []segment.Plan) *Result {
	res := &Result{}
	for _, plan := range plans {
		cnp, rejected := renderPlan(namespace, segmentName, plan)
		res.Rejected = append(res.Rejected, rejected...)
		if cnp != nil {
			res.Policies = append(res.Policies, cnp)
		}
	}
	return res
}

func renderPlan(namespace, segmentName string, plan segment.Plan) (
	*ciliumv2.CiliumNetworkPolicy, []string) {
	spec := &api.Rule{EndpointSelector: api.EndpointSelector{LabelSelector: &slimv1.LabelSelector{
		MatchExpressions: []slimv1.LabelSelectorRequirement{{
			Key: iomtv1.DeviceLabel, Operator: slimv1.LabelSelectorOpIn, Values: plan.Devices,
		}},
	}}}
	var rejected []string
	reject := func(what string, err error) {
		rejected = append(rejected, fmt.Sprintf("policy %s %s: %v", plan.Name, what, err))
	}

	// Cilium learns the addresses of DNS names only from answers its DNS
	// proxy sees, so names are written only beside the rule that sends
	// the members' queries through that proxy.
	var dnsRules []segment.Rule
	for _, r := range plan.Rules {
		if r.DNS {
			dnsRules = append(dnsRules, r)
		}
	}
	for i, r := range plan.Rules {
		what := fmt.Sprintf("rule %d (%s)", i, r.Direction)
		if r.DNS {
			continue
		}
		if len(r.FQDNs) > 0 && len(dnsRules) == 0 {
			reject(what, fmt.Errorf("DNS names %v need DNS, which the segment denies", r.FQDNs))
			r.FQDNs = nil
		}
		if r.Direction == iomtv1.DirectionIngress {
			for _, in := range ingressRules(r) {
				if err := check(spec, &api.Rule{Ingress: []api.IngressRule{in}}); err != nil {
					reject(what, err)
					continue
				}
				spec.Ingress = append(spec.Ingress, in)
			}
			continue
		}
		for _, eg := range egressRules(r, false) {
			if err := check(spec, &api.Rule{Egress: []api.EgressRule{eg}}); err != nil {
				reject(what, err)
				continue
			}
			spec.Egress = append(spec.Egress, eg)
		}
	}
	proxy := hasEgressFQDNs(spec.Egress)
	dnsWritten := false
	for _, r := range dnsRules {
		for _, eg := range egressRules(r, proxy) {
			if err := check(spec, &api.Rule{Egress: []api.EgressRule{eg}}); err != nil {
				reject("DNS rule", err)
				continue
			}
			spec.Egress = append(spec.Egress, eg)
			dnsWritten = true
		}
	}
	if proxy && !dnsWritten {
		reject("DNS names", fmt.Errorf("left out: without the DNS rule Cilium never learns "+
			"their addresses"))
		spec.Egress = withoutFQDNs(spec.Egress)
	}
	for i, r := range denials(plan) {
		what := fmt.Sprintf("deny rule %d (%s)", i, r.Direction)
		if r.Direction == iomtv1.DirectionIngress {
			for _, d := range ingressDenyRules(r) {
				if err := check(spec, &api.Rule{IngressDeny: []api.IngressDenyRule{d}}); err != nil {
					reject(what, err)
					continue
				}
				spec.IngressDeny = append(spec.IngressDeny, d)
			}
			continue
		}
		for _, d := range egressDenyRules(r) {
			if err := check(spec, &api.Rule{EgressDeny: []api.EgressDenyRule{d}}); err != nil {
				reject(what, err)
				continue
			}
			spec.EgressDeny = append(spec.EgressDeny, d)
		}
	}

	if len(spec.Ingress)+len(spec.Egress)+len(spec.IngressDeny)+len(spec.EgressDeny) == 0 {
		// Nothing to allow or deny: the namespace's baseline already
		// denies everything, and Cilium refuses an empty rule.
		return nil, rejected
	}
	if err := Sanitize(spec); err != nil {
		return nil, append(rejected, fmt.Sprintf("policy %s: %v", plan.Name, err))
	}
	return &ciliumv2.CiliumNetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "cilium.io/v2", Kind: "CiliumNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: plan.Name, Labels: map[string]string{
			segment.ManagedByLabel: segment.ManagedByValue,
			segment.RoleLabel:      segment.RoleSegment,
			segment.SegmentLabel:   segmentName,
		}},
		Spec: spec,
	}, rejected
}

// Sanitize runs Cilium's own checks on a copy of spec, since they rewrite
// what they check (selector keys, default-deny settings).
func Sanitize(spec *api.Rule) error {
	if err := spec.DeepCopy().Sanitize(); err != nil {
		return fmt.Errorf("cilium refuses the rule: %w", err)
	}
	return nil
}

// check runs Cilium's checks on one rule under the policy's selector.
func check(spec, one *api.Rule) error {
	one.EndpointSelector = spec.EndpointSelector
	return Sanitize(one)
}

// denials are the revoked rules that can be denied without touching what
// the members keep: a deny outranks every allow, so a revoked rule that
// shares a port with a kept rule of the same direction is left to the
// allow list alone. Cilium denies addresses and ports only, so HTTP
// matches and DNS names are dropped from deny rules.
// TODO: a revoked rule sharing a port with a kept one is not denied, so
// another party's policy that allows it still lets it through; splitting
// the deny by peer would close that.
func denials(plan segment.Plan) []segment.Rule {
	kept := map[string]bool{}
	for _, r := range plan.Rules {
		for _, p := range r.Ports {
			kept[portKey(r.Direction, p)] = true
		}
	}
	var out []segment.Rule
	for _, r := range plan.Revoked {
		if r.DNS {
			continue
		}
		clash := false
		for _, p := range r.Ports {
			clash = clash || kept[portKey(r.Direction, p)]
		}
		r.HTTP, r.FQDNs = nil, nil
		if clash || (len(r.Peers) == 0 && len(r.Entities) == 0) {
			continue
		}
		out = append(out, r)
	}
	return out
}

func portKey(d iomtv1.Direction, p segment.Port) string {
	return fmt.Sprintf("%s/%s/%d", d, p.Protocol, p.Number)
}

// ingressRules says one rule as Cilium ingress rules, one per kind of
// peer, since Cilium takes only one kind in a rule.
func ingressRules(r segment.Rule) []api.IngressRule {
	ports := portRules(r, false)
	var out []api.IngressRule
	for _, from := range peerSets(r) {
		out = append(out, api.IngressRule{IngressCommonRule: api.IngressCommonRule{
			FromEndpoints: from.endpoints, FromCIDRSet: from.cidrs, FromEntities: from.entities,
		}, ToPorts: ports})
	}
	return out
}

// egressRules says one rule as Cilium egress rules. DNS names get a rule
// of their own; dnsProxy puts the DNS rule's queries through Cilium's DNS
// proxy, which names need.
func egressRules(r segment.Rule, dnsProxy bool) []api.EgressRule {
	ports := portRules(r, dnsProxy)
	var out []api.EgressRule
	for _, to := range peerSets(r) {
		out = append(out, api.EgressRule{EgressCommonRule: api.EgressCommonRule{
			ToEndpoints: to.endpoints, ToCIDRSet: to.cidrs, ToEntities: to.entities,
		}, ToPorts: ports})
	}
	if len(r.FQDNs) > 0 {
		eg := api.EgressRule{ToPorts: ports}
		for _, n := range r.FQDNs {
			eg.ToFQDNs = append(eg.ToFQDNs, fqdnSelector(n))
		}
		out = append(out, eg)
	}
	return out
}

func ingressDenyRules(r segment.Rule) []api.IngressDenyRule {
	var out []api.IngressDenyRule
	for _, from := range peerSets(r) {
		out = append(out, api.IngressDenyRule{IngressCommonRule: api.IngressCommonRule{
			FromEndpoints: from.endpoints, FromCIDRSet: from.cidrs, FromEntities: from.entities,
		}, ToPorts: denyPorts(r)})
	}
	return out
}

func egressDenyRules(r segment.Rule) []api.EgressDenyRule {
	var out []api.EgressDenyRule
	for _, to := range peerSets(r) {
		out = append(out, api.EgressDenyRule{EgressCommonRule: api.EgressCommonRule{
			ToEndpoints: to.endpoints, ToCIDRSet: to.cidrs, ToEntities: to.entities,
		}, ToPorts: denyPorts(r)})
	}
	return out
}

// peerSet is one kind of Cilium peer.
type peerSet struct {
	endpoints []api.EndpointSelector
	cidrs     api.CIDRRuleSlice
	entities  api.EntitySlice
}

// peerSets groups a rule's peers by kind, each kind non-empty.
func peerSets(r segment.Rule) []peerSet {
	var eps peerSet
	var cidrs peerSet
	var ents peerSet
	for _, p := range r.Peers {
		if p.IPBlock != nil {
			cr := api.CIDRRule{Cidr: api.CIDR(p.IPBlock.CIDR)}
			for _, e := range p.IPBlock.Except {
				cr.ExceptCIDRs = append(cr.ExceptCIDRs, api.CIDR(e))
			}
			cidrs.cidrs = append(cidrs.cidrs, cr)
			continue
		}
		eps.endpoints = append(eps.endpoints, endpointSelector(p))
	}
	for _, e := range r.Entities {
		ents.entities = append(ents.entities, entity(e))
	}
	var out []peerSet
	if len(eps.endpoints) > 0 {
		out = append(out, eps)
	}
	if len(cidrs.cidrs) > 0 {
		out = append(out, cidrs)
	}
	if len(ents.entities) > 0 {
		out = append(out, ents)
	}
	return out
}

// endpointSelector says a NetworkPolicy pod peer the way Cilium does. A
// namespace selector becomes a match on the namespace's labels, which
// Cilium copies onto every endpoint; without one, Cilium keeps the peer to
// the policy's namespace, as NetworkPolicy does.
func endpointSelector(p networkingv1.NetworkPolicyPeer) api.EndpointSelector {
	sel := &slimv1.LabelSelector{}
	addSelector(sel, p.PodSelector, "")
	if ns := p.NamespaceSelector; ns != nil {
		if name, ok := namespaceName(ns); ok {
			addMatch(sel, "k8s:"+ciliumio.PodNamespaceLabel, name)
		} else {
			addSelector(sel, ns, "k8s:"+ciliumio.PodNamespaceMetaLabelsPrefix)
			sel.MatchExpressions = append(sel.MatchExpressions, slimv1.LabelSelectorRequirement{
				Key: "k8s:" + ciliumio.PodNamespaceLabel, Operator: slimv1.LabelSelectorOpExists,
			})
		}
	}
	return api.EndpointSelector{LabelSelector: sel}
}

// namespaceName returns the namespace a selector names by its
// kubernetes.io/metadata.name label alone.
func namespaceName(ns *metav1.LabelSelector) (string, bool) {
	name, ok := ns.MatchLabels[corev1.LabelMetadataName]
	return name, ok && len(ns.MatchLabels) == 1 && len(ns.MatchExpressions) == 0
}

func addSelector(dst *slimv1.LabelSelector, src *metav1.LabelSelector, prefix string) {
	if src == nil {
		return
	}
	for k, v := range src.MatchLabels {
		addMatch(dst, prefix+k, v)
	}
	for _, e := range src.MatchExpressions {
		dst.MatchExpressions = append(dst.MatchExpressions, slimv1.LabelSelectorRequirement{
			Key: prefix + e.Key, Operator: slimv1.LabelSelectorOperator(e.Operator),
			Values: append([]string(nil), e.Values...),
		})
	}
}

func addMatch(sel *slimv1.LabelSelector, k, v string) {
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]slimv1.MatchLabelsValue{}
	}
	sel.MatchLabels[k] = v
}

// portRules are a rule's ports with its HTTP matches on each, and, on the
// DNS rule when dnsProxy is set, a DNS rule that lets every query through
// Cilium's DNS proxy so it learns the addresses of names.
// TODO: HTTP matches on a TLS port (FHIR and DICOMweb on 443) are written
// without terminatingTLS/originatingTLS, so Cilium's proxy cannot read the
// requests and they fail unless TLS interception is set up on the cluster;
// naming the TLS secrets per flow would close that.
func portRules(r segment.Rule, dnsProxy bool) api.PortRules {
	pr := api.PortRule{}
	for _, p := range r.Ports {
		pr.Ports = append(pr.Ports, api.PortProtocol{
			Port: strconv.Itoa(int(p.Number)), Protocol: api.L4Proto(p.Protocol),
		})
	}
	switch {
	case len(r.HTTP) > 0:
		pr.Rules = &api.L7Rules{}
		for _, h := range r.HTTP {
			pr.Rules.HTTP = append(pr.Rules.HTTP, api.PortRuleHTTP{Method: h.Method, Path: h.Path})
		}
	case dnsProxy:
		pr.Rules = &api.L7Rules{DNS: []api.PortRuleDNS{{MatchPattern: "*"}}}
	}
	return api.PortRules{pr}
}

func denyPorts(r segment.Rule) api.PortDenyRules {
	pr := api.PortDenyRule{}
	for _, p := range r.Ports {
		pr.Ports = append(pr.Ports, api.PortProtocol{
			Port: strconv.Itoa(int(p.Number)), Protocol: api.L4Proto(p.Protocol),
		})
	}
	return api.PortDenyRules{pr}
}

func fqdnSelector(name string) api.FQDNSelector {
	for _, c := range name {
		if c == '*' {
			return api.FQDNSelector{MatchPattern: name}
		}
	}
	return api.FQDNSelector{MatchName: name}
}

func entity(e iomtv1.Entity) api.Entity {
	switch e {
	case iomtv1.EntityKubeAPIServer:
		return api.EntityKubeAPIServer
	case iomtv1.EntityHost:
		return api.EntityHost
	case iomtv1.EntityRemoteNode:
		return api.EntityRemoteNode
	case iomtv1.EntityWorld:
		return api.EntityWorld
	}
	// An entity the schema would have refused names nothing.
	return api.EntityNone
}

func hasEgressFQDNs(rules []api.EgressRule) bool {
	for _, r := range rules {
		if len(r.ToFQDNs) > 0 {
			return true
		}
	}
	return false
}

func withoutFQDNs(rules []api.EgressRule) []api.EgressRule {
	var out []api.EgressRule
	for _, r := range rules {
		if len(r.ToFQDNs) == 0 {
			out = append(out, r)
		}
	}
	return out
}
