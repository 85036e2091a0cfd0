package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// condition returns a condition of a segment as the API server has it.
func segmentCondition(ctx context.Context, ns, name, typ string) func(Gomega) *metav1.Condition {
	return func(g Gomega) *metav1.Condition {
		var s iomtv1.SegmentPolicy
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)).To(Succeed())
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		return meta.FindStatusCondition(s.Status.Conditions, typ)
	}
}

func deviceStatus(ctx context.Context, ns, name string) func(Gomega) iomtv1.MedicalDeviceStatus {
	return func(g Gomega) iomtv1.MedicalDeviceStatus {
		var d iomtv1.MedicalDevice
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d)).To(Succeed())
		return d.Status
	}
}

func policy(ctx context.Context, ns, name string) func() (*networkingv1.NetworkPolicy, error) {
	return func() (*networkingv1.NetworkPolicy, error) {
		var np networkingv1.NetworkPolicy
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &np)
		return &np, err
	}
}

func haveReason(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(Not(BeNil()),
		HaveField("Status", status), HaveField("Reason", reason))
}

var _ = Describe("SegmentPolicy controller", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	Context("when a segment selects devices", func() {
		It("should write one policy for the members and mark everything Ready", func(ctx context.Context) {
			Expect(k8s.Create(ctx, device(ns, "pump-1").address("10.20.1.15").
				speaks(named(iomtv1.ProtocolHL7MLLP)).build())).To(Succeed())
			Expect(k8s.Create(ctx, device(ns, "pump-2").build())).To(Succeed())
			Expect(k8s.Create(ctx, device(ns, "monitor-1").class(iomtv1.ClassPatientMonitor).build())).
				To(Succeed())
			seg := segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).
				flow(egress("ehr", toCIDR("10.40.0.0/16"), named(iomtv1.ProtocolHL7MLLP))).build()
			seg.Labels = map[string]string{"app.kubernetes.io/instance": "clinic"}
			Expect(k8s.Create(ctx, seg)).To(Succeed())

			Eventually(segmentCondition(ctx, ns, "pumps", iomtv1.ConditionEnforced)).
				Should(haveReason(metav1.ConditionTrue, iomtv1.ReasonEnforced))
			Eventually(segmentCondition(ctx, ns, "pumps", iomtv1.ConditionReady)).
				Should(haveReason(metav1.ConditionTrue, iomtv1.ReasonReconciled))

			np, err := policy(ctx, ns, "iomt-segment-pumps")()
			Expect(err).NotTo(HaveOccurred())
			Expect(np.Spec.PodSelector.MatchExpressions).To(ConsistOf(metav1.LabelSelectorRequirement{
				Key: iomtv1.DeviceLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{"pump-1", "pump-2"},
			}))
			Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
			Expect(np.Labels).To(HaveKeyWithValue(segment.ManagedByLabel, segment.ManagedByValue))
			Expect(np.Labels).NotTo(HaveKey("app.kubernetes.io/instance"))
			Expect(np.OwnerReferences).To(ConsistOf(HaveField("UID", seg.UID)))

			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(And(
				HaveField("Segment", "pumps"),
				HaveField("Conditions", ContainElement(And(
					HaveField("Type", iomtv1.ConditionSegmented), HaveField("Status", metav1.ConditionTrue)))),
			))
			Eventually(deviceStatus(ctx, ns, "monitor-1")).Should(HaveField("Conditions", ContainElement(And(
				HaveField("Type", iomtv1.ConditionSegmented), HaveField("Reason", iomtv1.ReasonNoSegment)))))

			var s iomtv1.SegmentPolicy
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(seg), &s)).To(Succeed())
			Expect(s.Status.Enforcement).To(Equal(iomtv1.EnforcementEnforce), "default shown in status")
			Expect(s.Status.DNS).To(Equal(iomtv1.DNSAllow), "default shown in status")
			Expect(s.Status.MemberCount).To(BeEquivalentTo(2))
			Expect(s.Status.Policies).To(ConsistOf("iomt-segment-pumps"))
		})

		It("should write a baseline as soon as the namespace holds a segment", func(ctx context.Context) {
			Expect(k8s.Create(ctx, segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).build())).
				To(Succeed())
			Eventually(policy(ctx, ns, segment.BaselineName)).Should(HaveField("Spec.PolicyTypes", HaveLen(2)))
		})

		It("should write a baseline that isolates every device pod in the namespace", func(ctx context.Context) {
			Expect(k8s.Create(ctx, device(ns, "pump-1").build())).To(Succeed())
			Eventually(policy(ctx, ns, segment.BaselineName)).Should(And(
				HaveField("Spec.PodSelector.MatchExpressions", ConsistOf(HaveField("Key", iomtv1.DeviceLabel))),
				HaveField("Spec.PolicyTypes", ConsistOf(networkingv1.PolicyTypeIngress,
					networkingv1.PolicyTypeEgress)),
				HaveField("Spec.Ingress", BeEmpty()),
				HaveField("Spec.Egress", BeEmpty()),
				HaveField("OwnerReferences", ConsistOf(HaveField("Kind", "Namespace"))),
			))
		})
	})

	Context("when a device joins a segment whose flow names a segment elsewhere", func() {
		It("should update the mirrored side in the other namespace", func(ctx context.Context) {
			core := newNamespace(ctx)
			Expect(k8s.Create(ctx, device(core, "gw").class(iomtv1.ClassOther).build())).To(Succeed())
			Expect(k8s.Create(ctx, segmentPolicy(core, "ehr").classes(iomtv1.ClassOther).build())).To(Succeed())
			Expect(k8s.Create(ctx, device(ns, "pump-1").build())).To(Succeed())
			Expect(k8s.Create(ctx, segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).
				flow(egress("ehr", toSegment(core, "ehr"), named(iomtv1.ProtocolHL7MLLP))).build())).To(Succeed())
			mirrored := func(names ...string) OmegaMatcher {
				return HaveField("Spec.Ingress", ConsistOf(HaveField("From", ContainElement(HaveField(
					"PodSelector.MatchExpressions", ConsistOf(HaveField("Values", ConsistOf(names))))))))
			}
			Eventually(policy(ctx, core, "iomt-segment-ehr")).Should(mirrored("pump-1"))

			Expect(k8s.Create(ctx, device(ns, "pump-2").build())).To(Succeed())
			Eventually(policy(ctx, core, "iomt-segment-ehr")).Should(mirrored("pump-1", "pump-2"))
		})
	})

	Context("when two segments select the same device", func() {
		It("should report Conflict on both and keep the device out of both", func(ctx context.Context) {
			Expect(k8s.Create(ctx, device(ns, "pump-1").label("ward", "3").build())).To(Succeed())
			Expect(k8s.Create(ctx, device(ns, "pump-2").build())).To(Succeed())
			Expect(k8s.Create(ctx, segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).build())).
				To(Succeed())
			Expect(k8s.Create(ctx, segmentPolicy(ns, "ward-3").labels(map[string]string{"ward": "3"}).build())).
				To(Succeed())

			for _, name := range []string{"pumps", "ward-3"} {
				Eventually(segmentCondition(ctx, ns, name, iomtv1.ConditionConflict)).
					Should(haveReason(metav1.ConditionTrue, iomtv1.ReasonOverlappingSegments))
			}
			Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField(
				"Spec.PodSelector.MatchExpressions", ConsistOf(HaveField("Values", ConsistOf("pump-2")))))
			Eventually(func() error { _, err := policy(ctx, ns, "iomt-segment-ward-3")(); return err }).
				Should(Satisfy(apierrors.IsNotFound), "a segment whose only device is contested writes nothing")
			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(And(HaveField("Segment", ""),
				HaveField("Conditions", ContainElement(HaveField("Reason", iomtv1.ReasonSegmentConflict)))))

			By("removing the overlap, the device joins the remaining segment")
			var ward iomtv1.SegmentPolicy
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ward-3"}, &ward)).To(Succeed())
			Expect(k8s.Delete(ctx, &ward)).To(Succeed())
			Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField(
				"Spec.PodSelector.MatchExpressions", ConsistOf(HaveField("Values", ConsistOf("pump-1", "pump-2")))))
			Eventually(segmentCondition(ctx, ns, "pumps", iomtv1.ConditionConflict)).
				Should(haveReason(metav1.ConditionFalse, iomtv1.ReasonNoOverlap))
		})
	})

	Context("when a segment is in Observe mode", func() {
		It("should report what it would allow and write nothing", func(ctx context.Context) {
			Expect(k8s.Create(ctx, device(ns, "pump-1").build())).To(Succeed())
			Expect(k8s.Create(ctx, segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).
				mode(iomtv1.EnforcementObserve).
				flow(egress("ehr", toCIDR("10.40.0.0/16"), named(iomtv1.ProtocolHL7MLLP))).build())).
				To(Succeed())
			Eventually(segmentCondition(ctx, ns, "pumps", iomtv1.ConditionEnforced)).
				Should(haveReason(metav1.ConditionFalse, iomtv1.ReasonObserving))
			Consistently(func() error { _, err := policy(ctx, ns, "iomt-segment-pumps")(); return err },
				2*time.Second).Should(Satisfy(apierrors.IsNotFound))
			var s iomtv1.SegmentPolicy
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pumps"}, &s)).To(Succeed())
			Expect(s.Status.EgressRules).To(BeEquivalentTo(3), "the ehr flow, attestation and DNS")
			Expect(s.Status.Policies).To(BeEmpty())
			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(HaveField("Conditions",
				ContainElement(HaveField("Reason", iomtv1.ReasonObserving))))
		})
	})

	Context("when a generated policy is edited or deleted", func() {
		It("should restore it", func(ctx context.Context) {
			Expect(k8s.Create(ctx, device(ns, "pump-1").build())).To(Succeed())
			Expect(k8s.Create(ctx, segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).
				flow(egress("ehr", toCIDR("10.40.0.0/16"), named(iomtv1.ProtocolHL7MLLP))).build())).
				To(Succeed())
			Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField("Spec.Egress", HaveLen(3)))
			want, _ := policy(ctx, ns, "iomt-segment-pumps")()

			By("opening it to everyone by hand")
			edited := want.DeepCopy()
			edited.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
			Expect(k8s.Patch(ctx, edited, client.MergeFrom(want))).To(Succeed())
			Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField("Spec", Equal(want.Spec)))

			By("deleting it")
			Expect(k8s.Delete(ctx, want)).To(Succeed())
			Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField("Spec", Equal(want.Spec)))

			By("adding an allow-all list where the policy has none")
			base, err := policy(ctx, ns, segment.BaselineName)()
			Expect(err).NotTo(HaveOccurred())
			opened := base.DeepCopy()
			opened.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
			opened.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
			Expect(k8s.Patch(ctx, opened, client.MergeFrom(base))).To(Succeed())
			Eventually(policy(ctx, ns, segment.BaselineName)).Should(And(
				HaveField("Spec.Ingress", BeEmpty()), HaveField("Spec.Egress", BeEmpty())))
			seg, _ := policy(ctx, ns, "iomt-segment-pumps")()
			openedSeg := seg.DeepCopy()
			openedSeg.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
			Expect(k8s.Patch(ctx, openedSeg, client.MergeFrom(seg))).To(Succeed())
			Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField("Spec.Ingress", BeEmpty()))

			By("deleting the baseline")
			base, err = policy(ctx, ns, segment.BaselineName)()
			Expect(err).NotTo(HaveOccurred())
			Expect(k8s.Delete(ctx, base)).To(Succeed())
			Eventually(policy(ctx, ns, segment.BaselineName)).Should(HaveField("UID", Not(Equal(base.UID))))
		})
	})

	Context("when a spec passes the schema but cannot be used", func() {
		It("should say so and keep the policy already enforced", func(ctx context.Context) {
			Expect(k8s.Create(ctx, device(ns, "pump-1").build())).To(Succeed())
			Expect(k8s.Create(ctx, segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).
				flow(egress("ehr", toCIDR("10.40.0.0/16"), named(iomtv1.ProtocolHL7MLLP))).build())).
				To(Succeed())
			Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField("Spec.Egress", HaveLen(3)))
			before, _ := policy(ctx, ns, "iomt-segment-pumps")()

			var s iomtv1.SegmentPolicy
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pumps"}, &s)).To(Succeed())
			unchanged := s.DeepCopy()
			s.Spec.Flows = append(s.Spec.Flows, iomtv1.Flow{
				Name: "bad", Direction: iomtv1.DirectionEgress,
				Peers: []iomtv1.Peer{{Pods: &iomtv1.PodPeer{PodSelector: iomtv1.SelectorFromLabels(
					map[string]string{"not a key": "x"})}}},
				Protocols: []iomtv1.ProtocolPort{named(iomtv1.ProtocolFHIR)},
			})
			Expect(k8s.Patch(ctx, &s, client.MergeFrom(unchanged))).To(Succeed())

			Eventually(segmentCondition(ctx, ns, "pumps", iomtv1.ConditionReady)).Should(And(
				haveReason(metav1.ConditionFalse, iomtv1.ReasonInvalidSpec),
				HaveField("Message", ContainSubstring("spec.flows[bad].peers[0].pods.podSelector"))))
			Consistently(policy(ctx, ns, "iomt-segment-pumps"), 2*time.Second).
				Should(HaveField("Spec", Equal(before.Spec)))
		})
	})

	Context("when a segment's state changes", func() {
		It("should emit an Event on the transition only", func(ctx context.Context) {
			Expect(k8s.Create(ctx, device(ns, "pump-1").build())).To(Succeed())
			Expect(k8s.Create(ctx, segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).build())).
				To(Succeed())
			enforcedEvents := func(g Gomega) int {
				var evs eventsv1.EventList
				g.Expect(k8s.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
				n := 0
				for _, e := range evs.Items {
					if e.Regarding.Kind == "SegmentPolicy" && e.Reason == iomtv1.ReasonEnforced {
						n++
					}
				}
				return n
			}
			Eventually(enforcedEvents).Should(Equal(1))

			By("touching devices without changing the segment's state")
			Expect(k8s.Create(ctx, device(ns, "pump-2").build())).To(Succeed())
			Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField(
				"Spec.PodSelector.MatchExpressions", ConsistOf(HaveField("Values", HaveLen(2)))))
			Consistently(enforcedEvents, 2*time.Second).Should(Equal(1))
		})
	})
})

var _ = Describe("A steady cluster", Ordered, func() {
	It("should see no writes from the operator for 60 seconds", func(ctx context.Context) {
		ns := newNamespace(ctx)
		other := newNamespace(ctx)
		for _, n := range []string{"pump-1", "pump-2", "pump-3"} {
			Expect(k8s.Create(ctx, device(ns, n).address("10.20.1.0/28").
				speaks(named(iomtv1.ProtocolHL7MLLP)).build())).To(Succeed())
		}
		Expect(k8s.Create(ctx, device(other, "gw").class(iomtv1.ClassOther).build())).To(Succeed())
		Expect(k8s.Create(ctx, segmentPolicy(other, "ehr").classes(iomtv1.ClassOther).build())).To(Succeed())
		Expect(k8s.Create(ctx, segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).
			flow(egress("ehr", toSegment(other, "ehr"), named(iomtv1.ProtocolHL7MLLP))).
			flow(egress("missing", toSegment(ns, "nobody"), port(8443))).build())).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x"}})).
			To(Succeed())

		Eventually(policy(ctx, other, "iomt-segment-ehr")).Should(HaveField("Spec.Ingress", HaveLen(1)))
		Eventually(segmentCondition(ctx, ns, "pumps", iomtv1.ConditionReady)).
			Should(haveReason(metav1.ConditionFalse, iomtv1.ReasonUnresolvedPeers))

		Expect(int64(writes.Total())).To(BeNumerically(">", 0), "the write counter sees the operator's writes")

		// Let the last writes settle, then count.
		Eventually(func() int64 {
			n := int64(writes.Total())
			time.Sleep(3 * time.Second)
			return int64(writes.Total()) - n
		}, 30*time.Second, time.Millisecond).Should(BeZero())
		start := int64(writes.Total())
		time.Sleep(60 * time.Second)
		Expect(int64(writes.Total())-start).To(BeZero(), "writes by the operator in a steady cluster; "+
			"the last ones: %v", writes.Recent())
	})
})
