package connectivity

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// endpoint is one end of a connection: a pod, named by namespace and name,
// or an address outside the cluster.
type endpoint struct {
	namespace, pod string
	ip             string
}

// outside is an address outside the cluster, a device on the clinic LAN say.
func outside(ip string) endpoint { return endpoint{ip: ip} }

func (e endpoint) String() string {
	if e.pod == "" {
		return e.ip
	}
	return e.namespace + "/" + e.pod
}

// port is a transport port.
type port struct {
	protocol corev1.Protocol
	number   int
}

func tcp(n int) port { return port{corev1.ProtocolTCP, n} }
func udp(n int) port { return port{corev1.ProtocolUDP, n} }

func (p port) String() string { return fmt.Sprintf("%s/%d", p.protocol, p.number) }

// connection is one row of a truth table: whether from may open a
// connection to to on a port, and optionally why, for the failure report.
type connection struct {
	from, to endpoint
	port     port
	allowed  bool
	why      string
}

func allowed(from, to endpoint, p port) connection {
	return connection{from: from, to: to, port: p, allowed: true}
}

func denied(from, to endpoint, p port) connection {
	return connection{from: from, to: to, port: p}
}

// because explains a row whose reason is not plain from the table.
func (c connection) because(why string) connection {
	c.why = why
	return c
}

// expectConnectivity waits until the NetworkPolicies in the cluster allow
// exactly the rows marked allowed. Both sides count: a connection between
// two pods needs the source's egress and the destination's ingress.
func expectConnectivity(rows ...connection) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		checkConnectivity(g, rows)
	}).Should(Succeed())
}

// checkConnectivity evaluates every row against the policies the API server
// holds now and fails with the rows that disagree.
func checkConnectivity(g Gomega, rows []connection) {
	var list networkingv1.NetworkPolicyList
	g.Expect(k8s.List(ctx, &list)).To(Succeed())
	policies := make([]*networkingv1.NetworkPolicy, len(list.Items))
	for i := range list.Items {
		policies[i] = &list.Items[i]
	}
	evaluator := matcher.BuildNetworkPolicies(true, policies)

	peers := map[endpoint]*matcher.TrafficPeer{}
	peerOf := func(e endpoint) *matcher.TrafficPeer {
		if peers[e] == nil {
			peers[e] = trafficPeer(g, e)
		}
		return peers[e]
	}

	var wrong []verdict
	for _, r := range rows {
		res := evaluator.IsTrafficAllowed(&matcher.Traffic{
			Source:       peerOf(r.from),
			Destination:  peerOf(r.to),
			ResolvedPort: r.port.number,
			Protocol:     r.port.protocol,
		})
		if res.IsAllowed() != r.allowed {
			wrong = append(wrong, verdict{r, res.Egress.IsAllowed(), res.Ingress.IsAllowed()})
		}
	}
	g.Expect(len(wrong)).To(BeZero(), func() string { return explain(wrong, len(rows), list.Items) })
}

// verdict is what the evaluator said about a row: whether the source's
// egress and the destination's ingress let it through.
type verdict struct {
	connection
	egress, ingress bool
}

func (v verdict) String() string {
	switch {
	case v.egress && v.ingress:
		return "allow"
	case v.egress:
		return "deny (ingress)"
	case v.ingress:
		return "deny (egress)"
	}
	return "deny (both)"
}

// policiesIn lists the NetworkPolicies of some namespaces.
func policiesIn(g Gomega, namespaces ...string) []networkingv1.NetworkPolicy {
	var all []networkingv1.NetworkPolicy
	for _, ns := range namespaces {
		var list networkingv1.NetworkPolicyList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		all = append(all, list.Items...)
	}
	return all
}

// trafficPeer describes a live pod as the evaluator sees it: its labels,
// its namespace's labels and the IP its status reports.
func trafficPeer(g Gomega, e endpoint) *matcher.TrafficPeer {
	if e.pod == "" {
		return &matcher.TrafficPeer{IP: e.ip}
	}
	var pod corev1.Pod
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: e.namespace, Name: e.pod}, &pod)).To(Succeed())
	g.Expect(pod.Status.PodIP).NotTo(BeEmpty(), "pod %s has no IP", e)
	var ns corev1.Namespace
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: e.namespace}, &ns)).To(Succeed())
	return &matcher.TrafficPeer{
		IP: pod.Status.PodIP,
		Internal: &matcher.InternalPeer{
			PodLabels:       pod.Labels,
			NamespaceLabels: ns.Labels,
			Namespace:       ns.Name,
		},
	}
}

// explain prints the rows that disagree, then the NetworkPolicies of the
// namespaces those rows touch, as the API server holds them.
func explain(wrong []verdict, total int, policies []networkingv1.NetworkPolicy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d connections disagree with the NetworkPolicies in the cluster:\n\n",
		len(wrong), total)
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  FROM\tTO\tPORT\tWANT\tGOT")
	var namespaces []string
	for _, v := range wrong {
		want := "deny"
		if v.allowed {
			want = "allow"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", v.from, v.to, v.port, want, v)
		for _, e := range []endpoint{v.from, v.to} {
			if e.namespace != "" && !slices.Contains(namespaces, e.namespace) {
				namespaces = append(namespaces, e.namespace)
			}
		}
	}
	_ = w.Flush()
	sep := "\n"
	for _, v := range wrong {
		if v.why != "" {
			fmt.Fprintf(&b, "%s  %s -> %s %s: %s\n", sep, v.from, v.to, v.port, v.why)
			sep = ""
		}
	}

	for _, np := range policies {
		if !slices.Contains(namespaces, np.Namespace) {
			continue
		}
		np.ManagedFields = nil
		out, err := yaml.Marshal(np)
		if err != nil {
			out = []byte(err.Error())
		}
		fmt.Fprintf(&b, "\n---\n%s", out)
	}
	return b.String()
}
