package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/attest"
)

// report plays a verifier reporting the firmware it saw.
func report(ns, name, firmware string) {
	reports.Accept(types.NamespacedName{Namespace: ns, Name: name}, attest.Report{
		Device: ns + "/" + name, Time: time.Now(),
		Checks:   []attest.Check{{Name: "identity", Passed: true}},
		Firmware: &attest.Firmware{Version: firmware},
	}, time.Now())
}

var _ = Describe("Continuous verification", func() {
	var ns string
	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		seg := segmentPolicy(ns, "pumps").classes(iomtv1.ClassInfusionPump).
			flow(egress("ehr", toCIDR("10.40.0.0/16"), named(iomtv1.ProtocolHL7MLLP))).build()
		seg.Spec.Quarantine = &iomtv1.QuarantinePolicy{OnVerificationFailure: iomtv1.QuarantineModeIsolate}
		Expect(k8s.Create(ctx, seg)).To(Succeed())
		// Devices whose verifier went quiet keep changing as time passes;
		// remove them so they do not disturb other specs.
		DeferCleanup(func(ctx context.Context) {
			Expect(k8s.DeleteAllOf(ctx, &iomtv1.MedicalDevice{}, client.InNamespace(ns))).To(Succeed())
		})
	})

	newPump := func(ctx context.Context, name string, criticality iomtv1.Criticality) {
		d := device(ns, name).build()
		d.Spec.Criticality = criticality
		d.Spec.Firmware = &iomtv1.Firmware{Version: "8.01.01"}
		d.Spec.Verification = &iomtv1.Verification{Interval: &metav1.Duration{Duration: 5 * time.Second},
			FailureThreshold: ptr.To[int32](2)}
		Expect(k8s.Create(ctx, d)).To(Succeed())
	}

	It("should verify a healthy device, quarantine it on wrong firmware and release it by token",
		func(ctx context.Context) {
			newPump(ctx, "pump-1", iomtv1.CriticalityHigh)
			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(HaveField("Verification.State",
				iomtv1.VerificationPending))

			report(ns, "pump-1", "8.01.01")
			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(And(
				HaveField("Verification.State", iomtv1.VerificationVerified),
				HaveField("Verification.ObservedFirmware.Version", "8.01.01")))

			report(ns, "pump-1", "6.6.6")
			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(HaveField("Verification.State",
				iomtv1.VerificationFailing))
			report(ns, "pump-1", "6.6.6")
			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(And(
				HaveField("Verification.State", iomtv1.VerificationFailed),
				HaveField("Verification.Message", ContainSubstring(`device runs "6.6.6"`)),
				HaveField("Quarantine.State", iomtv1.QuarantineIsolated),
				HaveField("Quarantine.Reason", iomtv1.ReasonVerificationFailed)))
			Eventually(policy(ctx, ns, "iomt-segment-pumps-isolated")).Should(HaveField(
				"Spec.PodSelector.MatchExpressions", ConsistOf(HaveField("Values", ConsistOf("pump-1")))))

			By("passing reports alone do not release it without auto-release")
			report(ns, "pump-1", "8.01.01")
			Consistently(deviceStatus(ctx, ns, "pump-1"), "2s").Should(HaveField("Verification.State",
				iomtv1.VerificationFailed))

			By("a person releases it")
			annotate(ctx, ns, "pump-1", map[string]string{iomtv1.ReleaseAnnotation: "INC-4711"})
			Eventually(deviceStatus(ctx, ns, "pump-1")).Should(And(
				HaveField("Verification.ReleasedWith", "INC-4711"),
				HaveField("Quarantine.State", iomtv1.QuarantineNone)))
		})

	It("should restrict, never isolate, a life-sustaining device", func(ctx context.Context) {
		newPump(ctx, "vent-1", iomtv1.CriticalityLifeSustaining)
		report(ns, "vent-1", "6.6.6")
		report(ns, "vent-1", "6.6.6")
		Eventually(deviceStatus(ctx, ns, "vent-1")).Should(And(
			HaveField("Verification.State", iomtv1.VerificationFailed),
			HaveField("Quarantine.State", iomtv1.QuarantineRestricted)))
	})

	It("should count a silent verifier as failing and quarantine it past the threshold",
		func(ctx context.Context) {
			newPump(ctx, "pump-2", iomtv1.CriticalityHigh)
			report(ns, "pump-2", "8.01.01")
			Eventually(deviceStatus(ctx, ns, "pump-2")).Should(HaveField("Verification.State",
				iomtv1.VerificationVerified))
			// Interval 5s, threshold 2: failed once 2.5s of grace and two intervals passed.
			Eventually(deviceStatus(ctx, ns, "pump-2"), "20s").Should(And(
				HaveField("Verification.State", iomtv1.VerificationFailed),
				HaveField("Verification.Message", ContainSubstring("no report since")),
				HaveField("Quarantine.State", iomtv1.QuarantineIsolated)))
		})
})
