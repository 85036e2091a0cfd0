package e2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// latencyRounds is how often the quarantine latency is measured.
const latencyRounds = 5

// enforcement is when one quarantine was seen, by several clocks.
type enforcement struct {
	// changed is when the simulator started reporting bad firmware.
	changed time.Time
	// checked is when the verifier finished the first check that saw it.
	checked time.Time
	// accepted is when the attestation endpoint accepted that report.
	accepted time.Time
	// observed is when a watch on the API server saw the restricting
	// NetworkPolicy select the device.
	observed time.Time
}

func (e enforcement) fromChange() time.Duration   { return e.observed.Sub(e.changed) }
func (e enforcement) fromCheck() time.Duration    { return e.observed.Sub(e.checked) }
func (e enforcement) fromAccepted() time.Duration { return e.observed.Sub(e.accepted) }

var _ = Describe("Quarantine latency", func() {
	It("should enforce a failing check within seconds, measured over several rounds", func() {
		ns := newNamespace("latency")
		newSegment(ns, iomtv1.QuarantineModeRestrict, 1)
		// One failing report fails the device, one passing report releases
		// it: what is measured is the operator, not the threshold.
		pump := newDevice(ns, "pump-9", iomtv1.CriticalityHigh, 1)
		startVerifier(pump)
		Eventually(pump.status()).Should(free())

		var rounds []enforcement
		for i := range latencyRounds {
			By(fmt.Sprintf("round %d", i+1))
			Eventually(policyOf(pump, restricted)).Should(BeNil())
			Eventually(policyOf(pump, none)).ShouldNot(BeNil())

			w, err := k8s.Watch(ctx, &networkingv1.NetworkPolicyList{}, client.InNamespace(ns))
			Expect(err).NotTo(HaveOccurred())
			// Change the firmware anywhere within the verifier's interval,
			// not always at the same moment of it.
			time.Sleep(rand.N(verifierInterval))
			e := enforcement{changed: time.Now()}
			pump.sim.SetFirmware(badFirmware)
			e.observed = awaitRestriction(w, pump, 30*time.Second)
			w.Stop()

			failing := firstFailing(pump, e.changed)
			Expect(failing).NotTo(BeNil(), "no failing report arrived")
			e.checked, e.accepted = failing.Report.Time, failing.At
			rounds = append(rounds, e)
			GinkgoWriter.Printf("round %d: from firmware change %s, from failing check %s, "+
				"from report accepted %s\n", i+1, e.fromChange().Round(time.Millisecond),
				e.fromCheck().Round(time.Millisecond), e.fromAccepted().Round(time.Millisecond))

			pump.sim.SetFirmware(goodFirmware)
			Eventually(pump.status()).Should(free())
		}

		summary := summarize(rounds)
		// Printed, not only logged, so that it shows in go test -v.
		fmt.Printf("\n%s", summary)
		AddReportEntry("quarantine latency", summary)

		// A generous bound: the check interval is 1s, and a healthy operator
		// enforces in well under a second on top.
		fromCheck := durations(rounds, enforcement.fromCheck)
		Expect(slices.Max(fromCheck)).To(BeNumerically("<", deviceInterval))
	})
})

// awaitRestriction waits on a NetworkPolicy watch until the segment's
// restricting policy selects the device, and returns when it saw that.
func awaitRestriction(w watch.Interface, d *device, limit time.Duration) time.Time {
	GinkgoHelper()
	name := segment.PolicyName("pumps", restricted)
	timeout := time.After(limit)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			Expect(ok).To(BeTrue(), "the watch ended")
			np, isPolicy := ev.Object.(*networkingv1.NetworkPolicy)
			if isPolicy && np.Name == name && ev.Type != watch.Deleted && policySelects(np, d.key.Name) {
				return time.Now()
			}
		case <-timeout:
			Fail(fmt.Sprintf("%s did not come to select %s within %s", name, d.key, limit))
		}
	}
}

// firstFailing is the first report with a failed check or other firmware
// that arrived for the device since.
func firstFailing(d *device, since time.Time) *arrival {
	for _, a := range arrivals.of(d.key, since) {
		bad := len(a.Report.Failures()) > 0 ||
			(a.Report.Firmware != nil && *a.Report.Firmware != goodFirmware)
		if bad {
			return &a
		}
	}
	return nil
}

func durations(rounds []enforcement, of func(enforcement) time.Duration) []time.Duration {
	out := make([]time.Duration, len(rounds))
	for i, e := range rounds {
		out[i] = of(e)
	}
	slices.Sort(out)
	return out
}

// summarize gives p50 and max of each measure.
func summarize(rounds []enforcement) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Quarantine latency to the restricting NetworkPolicy in the API server, "+
		"%d rounds, verifier interval %s, threshold 1:\n", len(rounds), verifierInterval)
	for _, m := range []struct {
		name string
		of   func(enforcement) time.Duration
	}{
		{"from the firmware change", enforcement.fromChange},
		{"from the failing check", enforcement.fromCheck},
		{"from the report accepted", enforcement.fromAccepted},
	} {
		d := durations(rounds, m.of)
		fmt.Fprintf(&b, "  %-26s p50 %6s  max %6s\n", m.name, d[(len(d)-1)/2].Round(time.Millisecond),
			d[len(d)-1].Round(time.Millisecond))
	}
	return b.String()
}
