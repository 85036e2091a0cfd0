package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

func annotate(ctx context.Context, ns, name string, set map[string]string, remove ...string) {
	var d iomtv1.MedicalDevice
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d)).To(Succeed())
	before := d.DeepCopy()
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	for k, v := range set {
		d.Annotations[k] = v
	}
	for _, k := range remove {
		delete(d.Annotations, k)
	}
	Expect(k8s.Patch(ctx, &d, client.MergeFrom(before))).To(Succeed())
}

var _ = Describe("Manual quarantine", func() {
	var ns string
	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		Expect(k8s.Create(ctx, device(ns, "pump-1").build())).To(Succeed())
		vent := device(ns, "vent-1").build()
		vent.Spec.Criticality = iomtv1.CriticalityLifeSustaining
		Expect(k8s.Create(ctx, vent)).To(Succeed())
		seg := segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).
			flow(egress("ehr", toCIDR("10.40.0.0/16"), named(iomtv1.ProtocolHL7MLLP))).build()
		seg.Spec.Flows[0].Essential = true
		Expect(k8s.Create(ctx, seg)).To(Succeed())
		Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField(
			"Spec.PodSelector.MatchExpressions", ConsistOf(HaveField("Values", ConsistOf("pump-1", "vent-1")))))
	})

	It("should move a restricted device into the restricted policy and back on release",
		func(ctx context.Context) {
			annotate(ctx, ns, "pump-1", map[string]string{iomtv1.QuarantineAnnotation: "Restrict"})

			Eventually(policy(ctx, ns, "iomt-segment-pumps-restricted")).Should(HaveField(
				"Spec.PodSelector.MatchExpressions", ConsistOf(HaveField("Values", ConsistOf("pump-1")))))
			Eventually(policy(ctx, ns, "iomt-segment-pumps")).Should(HaveField(
				"Spec.PodSelector.MatchExpressions", ConsistOf(HaveField("Values", ConsistOf("vent-1")))))
			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(And(
				HaveField("Quarantine.State", iomtv1.QuarantineRestricted),
				HaveField("Conditions", ContainElement(And(HaveField("Type", iomtv1.ConditionReady),
					HaveField("Status", metav1.ConditionFalse), HaveField("Reason", iomtv1.ReasonQuarantined)))),
			))
			Eventually(segmentCondition(ctx, ns, "pumps", iomtv1.ConditionEnforced)).
				Should(HaveField("Message", ContainSubstring("1 quarantined")))

			annotate(ctx, ns, "pump-1", nil, iomtv1.QuarantineAnnotation)
			Eventually(func() error { _, err := policy(ctx, ns, "iomt-segment-pumps-restricted")(); return err }).
				Should(Satisfy(apierrors.IsNotFound))
			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(HaveField("Quarantine.State", iomtv1.QuarantineNone))
		})

	It("should restrict, not isolate, a life-sustaining device until a person approves",
		func(ctx context.Context) {
			annotate(ctx, ns, "vent-1", map[string]string{iomtv1.QuarantineAnnotation: "Isolate"})
			Eventually(deviceStatus(ctx, ns, "vent-1")).Should(And(
				HaveField("Quarantine.State", iomtv1.QuarantineRestricted),
				HaveField("Quarantine.Reason", iomtv1.ReasonIsolationNotApproved)))
			Eventually(policy(ctx, ns, "iomt-segment-pumps-restricted")).Should(
				HaveField("Spec.Egress", Not(BeEmpty())), "the essential flow stays open")

			annotate(ctx, ns, "vent-1", map[string]string{iomtv1.IsolationApprovedByAnnotation: "biomed-oncall"})
			Eventually(deviceStatus(ctx, ns, "vent-1")).Should(HaveField("Quarantine.State",
				iomtv1.QuarantineIsolated))
			port := func(p int) OmegaMatcher {
				return HaveField("Ports", ContainElement(HaveField("Port.IntVal", BeEquivalentTo(p))))
			}
			Eventually(policy(ctx, ns, "iomt-segment-pumps-isolated")).Should(And(
				HaveField("Spec.Ingress", BeEmpty()),
				HaveField("Spec.Egress", ConsistOf(port(segment.DefaultAttestationPort), port(53)))),
				"only attestation and the DNS to find it remain")
		})
})
