package clinic

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Endpoint is one end of a probed connection: a pod, or an address outside
// the cluster.
type Endpoint struct {
	// Name is how the endpoint is shown in a flow table.
	Name string
	// IP is the pod's IP or the outside address.
	IP string
	// Namespace is the pod's namespace, empty for an outside address.
	Namespace string
	// PodLabels and NamespaceLabels are the pod's and its namespace's.
	PodLabels       map[string]string
	NamespaceLabels map[string]string
}

// PodEndpoint reads a pod and its namespace's labels from the API server.
// The pod must have an IP in status.
func PodEndpoint(ctx context.Context, c client.Reader, namespace, name string) (Endpoint, error) {
	var pod corev1.Pod
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pod); err != nil {
		return Endpoint{}, fmt.Errorf("failed to read Pod %s/%s: %w", namespace, name, err)
	}
	if pod.Status.PodIP == "" {
		return Endpoint{}, fmt.Errorf("pod %s/%s has no IP", namespace, name)
	}
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
		return Endpoint{}, fmt.Errorf("failed to read Namespace %s: %w", namespace, err)
	}
	return Endpoint{
		Name:            namespace + "/" + name,
		IP:              pod.Status.PodIP,
		Namespace:       namespace,
		PodLabels:       maps.Clone(pod.Labels),
		NamespaceLabels: maps.Clone(ns.Labels),
	}, nil
}

// AddressEndpoint is an address outside the cluster, a device on the
// clinic LAN say.
func AddressEndpoint(name, ip string) Endpoint {
	return Endpoint{Name: name, IP: ip}
}

func (e Endpoint) peer() *matcher.TrafficPeer {
	p := &matcher.TrafficPeer{IP: e.IP}
	if e.Namespace != "" {
		p.Internal = &matcher.InternalPeer{
			Namespace: e.Namespace, PodLabels: e.PodLabels, NamespaceLabels: e.NamespaceLabels,
		}
	}
	return p
}

// Port is a transport port.
type Port struct {
	Number   int
	Protocol corev1.Protocol
}

// String is the port number, followed by the protocol unless it is TCP.
func (p Port) String() string {
	if p.Protocol == corev1.ProtocolTCP {
		return strconv.Itoa(p.Number)
	}
	return strconv.Itoa(p.Number) + "/" + string(p.Protocol)
}

// ClinicalPorts are the ports a clinic's flows use: HL7 MLLP, DICOM,
// DICOM's other port, HTTPS (FHIR, DICOMweb, SDC messages), DNS, MQTT over
// TLS and SDC discovery, with SSH last as a port nothing should open.
var ClinicalPorts = []Port{
	{2575, corev1.ProtocolTCP},
	{104, corev1.ProtocolTCP},
	{11112, corev1.ProtocolTCP},
	{443, corev1.ProtocolTCP},
	{53, corev1.ProtocolUDP},
	{8883, corev1.ProtocolTCP},
	{3702, corev1.ProtocolUDP},
	{22, corev1.ProtocolTCP},
}

// Probe is a connection from one endpoint to another, to be tried on every
// port of a flow table.
type Probe struct {
	From, To Endpoint
}

// FlowRow says, for one probe, on which ports the connection is allowed.
type FlowRow struct {
	From, To string
	// Allowed is indexed like FlowTable.Ports.
	Allowed []bool
}

// FlowTable is what a set of NetworkPolicies allows.
type FlowTable struct {
	Ports []Port
	Rows  []FlowRow
	// Policies is how many NetworkPolicies were evaluated.
	Policies int
}

// EvaluateFlows reads every NetworkPolicy in namespaces from the API server
// and asks an independent evaluator, cyclonus, whether each probe's
// connection is allowed on each port: egress from the source and ingress
// at the destination must both allow it. Outside addresses are never
// isolated themselves, only the pods they talk to.
func EvaluateFlows(ctx context.Context, c client.Reader, namespaces []string, probes []Probe,
	ports []Port) (table *FlowTable, err error) {
	var netpols []*networkingv1.NetworkPolicy
	for _, ns := range namespaces {
		var list networkingv1.NetworkPolicyList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("failed to list NetworkPolicies in %s: %w", ns, err)
		}
		for i := range list.Items {
			netpols = append(netpols, &list.Items[i])
		}
	}

	// The evaluator panics on input it cannot read, an invalid CIDR say.
	defer func() {
		if r := recover(); r != nil {
			table, err = nil, fmt.Errorf("failed to evaluate NetworkPolicies: %v", r)
		}
	}()
	policy := matcher.BuildNetworkPolicies(true, netpols)

	table = &FlowTable{Ports: ports, Policies: len(netpols)}
	for _, p := range probes {
		row := FlowRow{From: p.From.Name, To: p.To.Name, Allowed: make([]bool, len(ports))}
		for i, port := range ports {
			row.Allowed[i] = policy.IsTrafficAllowed(&matcher.Traffic{
				Source:       p.From.peer(),
				Destination:  p.To.peer(),
				ResolvedPort: port.Number,
				Protocol:     port.Protocol,
			}).IsAllowed()
		}
		table.Rows = append(table.Rows, row)
	}
	return table, nil
}

// Allowed reports whether the table allows from to reach to on port, and
// whether it holds that probe and port at all.
func (t *FlowTable) Allowed(from, to string, port Port) (allowed, found bool) {
	for _, row := range t.Rows {
		if row.From != from || row.To != to {
			continue
		}
		for i, p := range t.Ports {
			if p == port {
				return row.Allowed[i], true
			}
		}
	}
	return false, false
}

// Write prints one line per probe: Y where the connection is allowed,
// a dot where it is denied.
func (t *FlowTable) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	head := []string{"FROM", "", "TO"}
	for _, p := range t.Ports {
		head = append(head, p.String())
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, row := range t.Rows {
		cells := []string{row.From, "->", row.To}
		for _, ok := range row.Allowed {
			if ok {
				cells = append(cells, "Y")
			} else {
				cells = append(cells, ".")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("failed to write the flow table: %w", err)
	}
	return nil
}
