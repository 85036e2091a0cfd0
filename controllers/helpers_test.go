package controllers_test

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// newNamespace creates a namespace with a random name for one test.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "clinic-" + rand.String(6)}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// deviceBuilder builds MedicalDevices for tests.
type deviceBuilder struct{ d iomtv1.MedicalDevice }

func device(ns, name string) *deviceBuilder {
	return &deviceBuilder{d: iomtv1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{}},
		Spec: iomtv1.MedicalDeviceSpec{
			Class:        iomtv1.ClassInfusionPump,
			Criticality:  iomtv1.CriticalityHigh,
			Manufacturer: "Baxter",
			Model:        "Sigma Spectrum",
		},
	}}
}

func (b *deviceBuilder) class(c iomtv1.DeviceClass) *deviceBuilder { b.d.Spec.Class = c; return b }
func (b *deviceBuilder) label(k, v string) *deviceBuilder          { b.d.Labels[k] = v; return b }
func (b *deviceBuilder) address(a ...iomtv1.LANAddress) *deviceBuilder {
	b.d.Spec.Addresses = append(b.d.Spec.Addresses, a...)
	return b
}
func (b *deviceBuilder) speaks(p ...iomtv1.ProtocolPort) *deviceBuilder {
	b.d.Spec.Protocols = append(b.d.Spec.Protocols, p...)
	return b
}
func (b *deviceBuilder) build() *iomtv1.MedicalDevice { return b.d.DeepCopy() }

// segmentBuilder builds SegmentPolicies for tests.
type segmentBuilder struct{ s iomtv1.SegmentPolicy }

func segmentPolicy(ns, name string) *segmentBuilder {
	return &segmentBuilder{s: iomtv1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
	}}
}

func (b *segmentBuilder) classes(c ...iomtv1.DeviceClass) *segmentBuilder {
	b.s.Spec.DeviceSelector.Classes = c
	return b
}
func (b *segmentBuilder) labels(kv map[string]string) *segmentBuilder {
	b.s.Spec.DeviceSelector.Labels = iomtv1.SelectorFromLabels(kv)
	return b
}
func (b *segmentBuilder) mode(m iomtv1.EnforcementMode) *segmentBuilder {
	b.s.Spec.Enforcement = m
	return b
}
func (b *segmentBuilder) flow(f iomtv1.Flow) *segmentBuilder {
	b.s.Spec.Flows = append(b.s.Spec.Flows, f)
	return b
}
func (b *segmentBuilder) build() *iomtv1.SegmentPolicy { return b.s.DeepCopy() }

func named(n iomtv1.ProtocolName) iomtv1.ProtocolPort { return iomtv1.ProtocolPort{Name: n} }

func port(p int32) iomtv1.ProtocolPort { return iomtv1.ProtocolPort{Port: ptr.To(p)} }

func toSegment(ns, name string) iomtv1.Peer {
	return iomtv1.Peer{Segment: &iomtv1.SegmentReference{Namespace: ns, Name: name}}
}

func toCIDR(c string) iomtv1.Peer { return iomtv1.Peer{CIDR: &iomtv1.CIDRPeer{CIDR: c}} }

func egress(name string, peer iomtv1.Peer, protos ...iomtv1.ProtocolPort) iomtv1.Flow {
	return iomtv1.Flow{Name: name, Direction: iomtv1.DirectionEgress, Peers: []iomtv1.Peer{peer},
		Protocols: protos}
}

func key(ns, name string) string { return fmt.Sprintf("%s/%s", ns, name) }

func stringsReplace(s, old, repl string) string { return strings.Replace(s, old, repl, 1) }
