package segment

import (
	"sort"

	corev1 "k8s.io/api/core/v1"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// Port is one transport port.
type Port struct {
	Protocol corev1.Protocol
	Number   int32
}

// templates are the ports each known protocol uses. The CRD schema carries
// the same numbers in a validation rule; TestTemplatesMatchSchema keeps the
// two in step.
var templates = map[iomtv1.ProtocolName][]Port{
	iomtv1.ProtocolHL7MLLP:  {{corev1.ProtocolTCP, 2575}},
	iomtv1.ProtocolDICOM:    {{corev1.ProtocolTCP, 104}, {corev1.ProtocolTCP, 11112}},
	iomtv1.ProtocolDICOMTLS: {{corev1.ProtocolTCP, 2762}},
	iomtv1.ProtocolFHIR:     {{corev1.ProtocolTCP, 443}},
	iomtv1.ProtocolDICOMweb: {{corev1.ProtocolTCP, 443}},
	iomtv1.ProtocolMQTT:     {{corev1.ProtocolTCP, 8883}},
	iomtv1.ProtocolSDC:      {{corev1.ProtocolUDP, 3702}, {corev1.ProtocolTCP, 443}},
	iomtv1.ProtocolNTP:      {{corev1.ProtocolUDP, 123}},
	iomtv1.ProtocolSyslog:   {{corev1.ProtocolTCP, 6514}},
}

// Ports returns the ports a list of protocol references opens, sorted and
// without repeats. A named protocol opens its template's ports, narrowed to
// the one given in port when set; an explicit port opens that port over its
// transport, TCP when left out. Entries the schema would have refused (an
// unknown name, a port outside the template) open nothing.
func Ports(refs []iomtv1.ProtocolPort) []Port {
	seen := map[Port]bool{}
	var out []Port
	add := func(p Port) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}

	for _, ref := range refs {
		if ref.Name == "" {
			if ref.Port != nil {
				add(Port{Protocol: transport(ref.Transport), Number: *ref.Port})
			}
			continue
		}
		for _, p := range templates[ref.Name] {
			if ref.Port == nil || *ref.Port == p.Number {
				add(p)
			}
		}
	}

	sort.Slice(out, func(i, j int) bool {
		if out[i].Number != out[j].Number {
			return out[i].Number < out[j].Number
		}
		return out[i].Protocol < out[j].Protocol
	})
	return out
}

func transport(t iomtv1.Transport) corev1.Protocol {
	switch t {
	case iomtv1.TransportUDP:
		return corev1.ProtocolUDP
	case iomtv1.TransportSCTP:
		return corev1.ProtocolSCTP
	default:
		return corev1.ProtocolTCP
	}
}
