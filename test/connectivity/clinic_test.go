package connectivity

import (
	"fmt"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// Argo CD marks everything it applies with this label and prunes what
// carries it but is not in Git. Every user object here carries it.
const (
	trackingLabel = "app.kubernetes.io/instance"
	trackingValue = "clinic"
)

// labels turns key, value, key, value... into a label map.
func labels(kv ...string) map[string]string {
	Expect(len(kv)%2).To(BeZero(), "labels come in key, value pairs")
	m := make(map[string]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// newNamespace creates a namespace named prefix-<random>.
func newNamespace(prefix string, lbls map[string]string) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: prefix + "-" + rand.String(5), Labels: lbls,
	}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// lastPodIP numbers the pod IPs handed out, from 10.244.0.0/16; nothing
// else in these clinics uses that range.
var lastPodIP atomic.Uint32

// newPod creates a pod and, standing in for the kubelet, gives it an IP
// through the status subresource. The pod stays Pending.
func newPod(namespace, name string, lbls map[string]string) endpoint {
	GinkgoHelper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: lbls},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	Expect(k8s.Create(ctx, pod)).To(Succeed())

	n := lastPodIP.Add(1)
	ip := fmt.Sprintf("10.244.%d.%d", n/200, n%200+10)
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	Expect(k8s.Status().Update(ctx, pod)).To(Succeed())
	return endpoint{namespace: namespace, pod: name}
}

// devicePod creates a pod that serves a MedicalDevice.
func devicePod(namespace, name, device string) endpoint {
	GinkgoHelper()
	return newPod(namespace, name, labels(iomtv1.DeviceLabel, device))
}

type deviceOption func(*iomtv1.MedicalDevice)

// speaking sets the protocols a device speaks.
func speaking(names ...iomtv1.ProtocolName) deviceOption {
	return func(d *iomtv1.MedicalDevice) { d.Spec.Protocols = protocols(names...) }
}

// onLAN sets where a device sits on the clinic network.
func onLAN(addrs ...iomtv1.LANAddress) deviceOption {
	return func(d *iomtv1.MedicalDevice) { d.Spec.Addresses = addrs }
}

// tagged adds labels to a device.
func tagged(kv ...string) deviceOption {
	return func(d *iomtv1.MedicalDevice) {
		for k, v := range labels(kv...) {
			d.Labels[k] = v
		}
	}
}

// newDevice creates a MedicalDevice.
func newDevice(namespace, name string, class iomtv1.DeviceClass,
	opts ...deviceOption) *iomtv1.MedicalDevice {
	GinkgoHelper()
	d := &iomtv1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name, Labels: labels(trackingLabel, trackingValue),
		},
		Spec: iomtv1.MedicalDeviceSpec{
			Class:        class,
			Criticality:  iomtv1.CriticalityHigh,
			Manufacturer: "Northwind Medical",
			Model:        string(class) + " 3",
		},
	}
	for _, o := range opts {
		o(d)
	}
	Expect(k8s.Create(ctx, d)).To(Succeed())
	return d
}

type segmentOption func(*iomtv1.SegmentPolicy)

// egress lets members connect to peers on the given protocols.
func egress(name string, protos []iomtv1.ProtocolPort, peers ...iomtv1.Peer) segmentOption {
	return flow(name, iomtv1.DirectionEgress, protos, peers)
}

// ingress lets peers connect to members on the given protocols.
func ingress(name string, protos []iomtv1.ProtocolPort, peers ...iomtv1.Peer) segmentOption {
	return flow(name, iomtv1.DirectionIngress, protos, peers)
}

func flow(name string, dir iomtv1.Direction, protos []iomtv1.ProtocolPort,
	peers []iomtv1.Peer) segmentOption {
	return func(s *iomtv1.SegmentPolicy) {
		s.Spec.Flows = append(s.Spec.Flows, iomtv1.Flow{
			Name: name, Direction: dir, Peers: peers, Protocols: protos,
		})
	}
}

// observing puts a segment in Observe mode.
func observing() segmentOption {
	return func(s *iomtv1.SegmentPolicy) { s.Spec.Enforcement = iomtv1.EnforcementObserve }
}

// withoutDNS forbids members to query cluster DNS.
func withoutDNS() segmentOption {
	return func(s *iomtv1.SegmentPolicy) { s.Spec.DNS = iomtv1.DNSDeny }
}

// newSegment creates a SegmentPolicy.
func newSegment(namespace, name string, sel iomtv1.DeviceSelector,
	opts ...segmentOption) *iomtv1.SegmentPolicy {
	GinkgoHelper()
	s := &iomtv1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name, Labels: labels(trackingLabel, trackingValue),
		},
		Spec: iomtv1.SegmentPolicySpec{DeviceSelector: sel},
	}
	for _, o := range opts {
		o(s)
	}
	Expect(k8s.Create(ctx, s)).To(Succeed())
	return s
}

// classes selects devices by class.
func classes(c ...iomtv1.DeviceClass) iomtv1.DeviceSelector {
	return iomtv1.DeviceSelector{Classes: c}
}

// labelled selects devices by their labels.
func labelled(kv ...string) iomtv1.DeviceSelector {
	return iomtv1.DeviceSelector{Labels: iomtv1.SelectorFromLabels(labels(kv...))}
}

// segmentPeer names another SegmentPolicy.
func segmentPeer(namespace, name string) iomtv1.Peer {
	return iomtv1.Peer{Segment: &iomtv1.SegmentReference{Namespace: namespace, Name: name}}
}

// podsPeer selects pods by namespace labels and pod labels; a nil map
// leaves that selector out.
func podsPeer(namespaceLabels, podLabels map[string]string) iomtv1.Peer {
	p := &iomtv1.PodPeer{}
	if namespaceLabels != nil {
		p.NamespaceSelector = iomtv1.SelectorFromLabels(namespaceLabels)
	}
	if podLabels != nil {
		p.PodSelector = iomtv1.SelectorFromLabels(podLabels)
	}
	return iomtv1.Peer{Pods: p}
}

// cidrPeer is a range of addresses with holes.
func cidrPeer(cidr string, except ...string) iomtv1.Peer {
	return iomtv1.Peer{CIDR: &iomtv1.CIDRPeer{CIDR: cidr, Except: except}}
}

// protocols refers to known protocols by name.
func protocols(names ...iomtv1.ProtocolName) []iomtv1.ProtocolPort {
	out := make([]iomtv1.ProtocolPort, len(names))
	for i, n := range names {
		out[i] = iomtv1.ProtocolPort{Name: n}
	}
	return out
}

// explicitPort is a port that no protocol template names.
func explicitPort(n int32, t iomtv1.Transport) []iomtv1.ProtocolPort {
	return []iomtv1.ProtocolPort{{Port: ptr.To(n), Transport: t}}
}

// awaitDevices waits until the operator has seen each device, so what
// comes next is computed with them in its cache.
func awaitDevices(devices ...*iomtv1.MedicalDevice) {
	GinkgoHelper()
	for _, d := range devices {
		key := client.ObjectKeyFromObject(d)
		Eventually(func(g Gomega) {
			var have iomtv1.MedicalDevice
			g.Expect(k8s.Get(ctx, key, &have)).To(Succeed())
			g.Expect(have.Status.ObservedGeneration).To(Equal(have.Generation))
		}).Should(Succeed(), "the operator never recorded MedicalDevice %s", key)
	}
}

// awaitSegments waits until the operator has recorded the current spec of
// each segment in its status.
func awaitSegments(segments ...*iomtv1.SegmentPolicy) {
	GinkgoHelper()
	for _, s := range segments {
		key := client.ObjectKeyFromObject(s)
		Eventually(func(g Gomega) {
			var have iomtv1.SegmentPolicy
			g.Expect(k8s.Get(ctx, key, &have)).To(Succeed())
			g.Expect(have.Status.ObservedGeneration).To(Equal(have.Generation))
		}).Should(Succeed(), "the operator never recorded SegmentPolicy %s", key)
	}
}

// conditionOf returns a poller for one condition of a segment; it yields an
// empty condition while the segment has none of that type.
func conditionOf(s *iomtv1.SegmentPolicy, typ string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		var have iomtv1.SegmentPolicy
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(s), &have)).To(Succeed())
		if c := meta.FindStatusCondition(have.Status.Conditions, typ); c != nil {
			return *c
		}
		return metav1.Condition{}
	}
}
