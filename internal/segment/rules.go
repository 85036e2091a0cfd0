package segment

import (
	"regexp"

	networkingv1 "k8s.io/api/networking/v1"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// Rule is one allow rule of a segment's policy before it is written for a
// policy engine: NetworkPolicy says its Peers and Ports, Cilium says all
// of it.
type Rule struct {
	Direction iomtv1.Direction
	// Peers are pods and address blocks, as NetworkPolicy says them.
	Peers []networkingv1.NetworkPolicyPeer
	// FQDNs are DNS names or '*' patterns; only Cilium can say them.
	FQDNs []string
	// Entities are parts of the cluster Cilium knows by name.
	Entities []iomtv1.Entity
	Ports    []Port
	// HTTP narrows the rule to these requests; only Cilium enforces it.
	HTTP []HTTPMatch
	// DNS marks the rule that lets members query cluster DNS.
	DNS bool
}

// HTTPMatch is one kind of HTTP request; an empty field matches anything.
// Path is a regular expression the whole path must match.
type HTTPMatch struct {
	Method string
	Path   string
}

// Plan is one of a segment's policies for members in one quarantine state.
type Plan struct {
	Name  string
	State iomtv1.QuarantineState
	// Devices are the member devices the policy selects, sorted.
	Devices []string
	Rules   []Rule
	// Revoked are the segment's rules that these members lose to their
	// quarantine, for engines that can deny. Empty for healthy members.
	Revoked []Rule
}

// NeedsCilium reports whether a rule says something plain NetworkPolicy
// cannot.
func (r Rule) NeedsCilium() bool {
	return len(r.FQDNs) > 0 || len(r.Entities) > 0 || len(r.HTTP) > 0
}

// httpMatches turns a flow's http and fhir rules into request matches.
func httpMatches(f iomtv1.Flow) []HTTPMatch {
	var out []HTTPMatch
	for _, h := range f.HTTP {
		out = append(out, HTTPMatch{Method: string(h.Method), Path: h.Path})
	}
	for _, i := range f.FHIR {
		path := i.Path
		if i.ResourceType != "" {
			path = FHIRResourcePath(i.ResourceType)
		}
		out = append(out, HTTPMatch{Method: string(i.Method), Path: path})
	}
	return out
}

// FHIRResourcePath is the path expression of a FHIR resource type under
// any base URL: the type, one instance, or anything below it, with or
// without a query.
func FHIRResourcePath(resourceType string) string {
	return `(/[^/?]+)*/` + regexp.QuoteMeta(resourceType) + `(/[^?]*)?(\?.*)?`
}

// httpPorts are the ports of a flow that speak HTTP: those of FHIR and
// DICOMweb, and explicit TCP ports without a name.
func httpPorts(refs []iomtv1.ProtocolPort) []Port {
	var web []iomtv1.ProtocolPort
	for _, ref := range refs {
		switch {
		case ref.Name == iomtv1.ProtocolFHIR || ref.Name == iomtv1.ProtocolDICOMweb:
			web = append(web, ref)
		case ref.Name == "" && transport(ref.Transport) == "TCP":
			web = append(web, ref)
		}
	}
	return Ports(web)
}

// flowRules turns a flow into rules: one for its HTTP ports carrying its
// HTTP matches, one for the rest of its ports. A flow without HTTP
// matches is one rule.
func flowRules(f iomtv1.Flow, dir iomtv1.Direction, peers []networkingv1.NetworkPolicyPeer,
	fqdns []string, entities []iomtv1.Entity) []Rule {
	all := Ports(f.Protocols)
	base := Rule{Direction: dir, Peers: peers, FQDNs: fqdns, Entities: entities}
	matches := httpMatches(f)
	if len(matches) == 0 {
		base.Ports = all
		return []Rule{base}
	}
	web := map[Port]bool{}
	for _, p := range httpPorts(f.Protocols) {
		web[p] = true
	}
	l7, l4 := base, base
	l7.HTTP = matches
	for _, p := range all {
		if web[p] {
			l7.Ports = append(l7.Ports, p)
		} else {
			l4.Ports = append(l4.Ports, p)
		}
	}
	var out []Rule
	for _, r := range []Rule{l7, l4} {
		if len(r.Ports) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// CiliumOnlyFlows names the segment's flows, remediation flows included,
// that say something plain NetworkPolicy cannot: fqdn or entity peers, or
// http or fhir rules.
func CiliumOnlyFlows(seg *iomtv1.SegmentPolicy) []string {
	var out []string
	for _, f := range flowsOf(seg) {
		needs := len(f.HTTP) > 0 || len(f.FHIR) > 0
		for _, p := range f.Peers {
			needs = needs || p.FQDN != "" || p.Entity != ""
		}
		if needs {
			out = append(out, f.Name)
		}
	}
	return out
}
