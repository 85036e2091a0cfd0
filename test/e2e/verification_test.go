package e2e

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// reconcileSlack is how long the operator may take, beyond the verifier's
// reports, to write status and policies on a busy machine.
const reconcileSlack = 3 * time.Second

var _ = Describe("The verifier sidecar", func() {
	Context("when the device's segment restricts failed devices and releases them on its own", func() {
		It("should verify a healthy device, quarantine it when its firmware changes and release it "+
			"once it is right again", func() {
			ns := newNamespace("ward")
			newSegment(ns, iomtv1.QuarantineModeRestrict, 2)
			pump := newDevice(ns, "pump-1", iomtv1.CriticalityHigh, 2)
			startVerifier(pump)

			By("reporting a healthy device as Verified")
			Eventually(pump.status()).Should(And(free(),
				HaveField("Verification.ObservedFirmware.Version", goodFirmware.Version)))
			expectFlows(pump, none)

			By("quarantining it within two intervals of the firmware changing")
			changed := time.Now()
			pump.sim.SetFirmware(badFirmware)
			Eventually(pump.status(), 2*verifierInterval+reconcileSlack).Should(And(
				quarantined(restricted),
				HaveField("Verification.Message", ContainSubstring(badFirmware.Version))))
			GinkgoWriter.Printf("Failed and restricted %s after the firmware changed\n",
				time.Since(changed).Round(time.Millisecond))
			expectFlows(pump, restricted)

			By("releasing it after two passing reports once the firmware is right again")
			pump.sim.SetFirmware(goodFirmware)
			Eventually(pump.status()).Should(And(free(), HaveField("Verification.ReleasedWith", "auto")))
			expectFlows(pump, none)
		})
	})

	Context("when the segment isolates failed devices and leaves release to people", func() {
		It("should hold the device until a person releases it, and take each token once", func() {
			ns := newNamespace("ward")
			newSegment(ns, iomtv1.QuarantineModeIsolate, 0)
			pump := newDevice(ns, "pump-2", iomtv1.CriticalityHigh, 2)
			startVerifier(pump)
			Eventually(pump.status()).Should(free())

			pump.sim.SetFirmware(badFirmware)
			Eventually(pump.status()).Should(quarantined(isolated))
			expectFlows(pump, isolated)

			By("keeping it isolated while clean reports arrive")
			pump.sim.SetFirmware(goodFirmware)
			Consistently(pump.status(), 3*verifierInterval).Should(quarantined(isolated))

			By("releasing it with a token")
			pump.annotate(iomtv1.ReleaseAnnotation, "INC-4711")
			Eventually(pump.status()).Should(And(free(), HaveField("Verification.ReleasedWith", "INC-4711")))
			expectFlows(pump, none)

			By("not releasing it again with the same token")
			pump.sim.SetFirmware(badFirmware)
			Eventually(pump.status()).Should(quarantined(isolated))
			pump.sim.SetFirmware(goodFirmware)
			Consistently(pump.status(), 3*verifierInterval).Should(quarantined(isolated))

			By("releasing it with a new token")
			pump.annotate(iomtv1.ReleaseAnnotation, "INC-4712")
			Eventually(pump.status()).Should(And(free(), HaveField("Verification.ReleasedWith", "INC-4712")))
			expectFlows(pump, none)
		})

		It("should restrict, not isolate, a life-sustaining pump", func() {
			ns := newNamespace("icu")
			newSegment(ns, iomtv1.QuarantineModeIsolate, 0)
			pump := newDevice(ns, "vent-pump-1", iomtv1.CriticalityLifeSustaining, 2)
			startVerifier(pump)
			Eventually(pump.status()).Should(free())

			pump.sim.SetFirmware(badFirmware)
			Eventually(pump.status()).Should(And(quarantined(restricted),
				HaveField("Quarantine.Message", ContainSubstring("LifeSustaining"))))
			expectFlows(pump, restricted)
			Consistently(pump.status(), 2*verifierInterval).Should(quarantined(restricted))
		})
	})

	Context("when a verifier holds one device's certificate and claims to speak for another", func() {
		It("should have its reports refused, leaving the other device without a report", func() {
			ns := newNamespace("ward")
			newSegment(ns, iomtv1.QuarantineModeRestrict, 0)
			holder := newDevice(ns, "pump-a", iomtv1.CriticalityHigh, 2)
			victim := newDevice(ns, "pump-b", iomtv1.CriticalityHigh, 2)
			Eventually(victim.status()).Should(HaveField("Verification.State", iomtv1.VerificationPending))

			since := time.Now()
			impostor := startVerifier(holder, "--device="+victim.key.String())
			Eventually(func(g Gomega) float64 {
				return impostor.metric(g, `iomt_verifier_reports_total{result="failed"}`)
			}).Should(BeNumerically(">=", 3))
			Expect(impostor.logs()).To(ContainSubstring("refused the report"))
			Expect(impostor.logs()).To(ContainSubstring(fmt.Sprintf("speaks for %s", holder.key)))

			Expect(arrivals.of(victim.key, since)).To(BeEmpty())
			Expect(arrivals.of(holder.key, since)).To(BeEmpty())
			Consistently(victim.status(), 2*verifierInterval).Should(And(
				HaveField("Verification.State", iomtv1.VerificationPending),
				HaveField("Verification.LastReportTime", BeNil())))
		})
	})

	Context("when the verifier stops", func() {
		It("should count its silence as failures and quarantine the device past the threshold", func() {
			ns := newNamespace("ward")
			newSegment(ns, iomtv1.QuarantineModeRestrict, 0)
			pump := newDevice(ns, "pump-3", iomtv1.CriticalityHigh, 2)
			v := startVerifier(pump)
			Eventually(pump.status()).Should(free())
			expectFlows(pump, none)

			v.kill()
			killed := time.Now()
			// Half an interval of grace, then threshold intervals of silence.
			Eventually(pump.status(), deviceInterval/2+2*deviceInterval+reconcileSlack).Should(And(
				quarantined(restricted),
				HaveField("Verification.Message", ContainSubstring("no report since"))))
			GinkgoWriter.Printf("Failed for silence %s after the verifier was killed\n",
				time.Since(killed).Round(time.Millisecond))
			expectFlows(pump, restricted)
		})
	})
})
