package cilium

import (
	"encoding/json"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/controllers"
)

var (
	fhir = iomtv1.ProtocolPort{Name: iomtv1.ProtocolFHIR}
	hl7  = iomtv1.ProtocolPort{Name: iomtv1.ProtocolHL7MLLP}
	ehr  = iomtv1.Peer{Pods: &iomtv1.PodPeer{NamespaceSelector: &iomtv1.LabelSelector{
		MatchLabels: map[string]iomtv1.LabelValue{"kubernetes.io/metadata.name": "core"}}}}
)

func egress(name string, peer iomtv1.Peer, protos ...iomtv1.ProtocolPort) iomtv1.Flow {
	return iomtv1.Flow{Name: name, Direction: iomtv1.DirectionEgress, Peers: []iomtv1.Peer{peer},
		Protocols: protos}
}

// pumpsSegment is one manifest used unchanged with and without Cilium: an
// essential FHIR flow narrowed to posting Observations plus HL7 on the
// same peer, updates from a vendor by name, and billing that quarantine
// takes away.
func pumpsSegment(ns string) *iomtv1.SegmentPolicy {
	results := egress("results", ehr, fhir, hl7)
	results.Essential = true
	results.FHIR = []iomtv1.FHIRInteraction{{Method: "POST", ResourceType: "Observation"}}
	return &iomtv1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pumps"},
		Spec: iomtv1.SegmentPolicySpec{
			DeviceSelector: iomtv1.DeviceSelector{Classes: []iomtv1.DeviceClass{iomtv1.ClassInfusionPump}},
			Flows: []iomtv1.Flow{
				results,
				egress("updates", iomtv1.Peer{FQDN: "updates.vendor.example"}, fhir),
				egress("billing", iomtv1.Peer{CIDR: &iomtv1.CIDRPeer{CIDR: "10.50.0.0/16"}},
					iomtv1.ProtocolPort{Port: ptr.To[int32](9000)}),
			},
		},
	}
}

func pumpDevice(ns string) *iomtv1.MedicalDevice {
	return &iomtv1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pump-1"},
		Spec: iomtv1.MedicalDeviceSpec{Class: iomtv1.ClassInfusionPump,
			Criticality: iomtv1.CriticalityHigh, Manufacturer: "Acme", Model: "P1"},
	}
}

func segmentStatus(ns string) func() iomtv1.SegmentPolicyStatus {
	return func() iomtv1.SegmentPolicyStatus {
		var s iomtv1.SegmentPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pumps"}, &s)).To(Succeed())
		return s.Status
	}
}

func condition(typ string) func(iomtv1.SegmentPolicyStatus) string {
	return func(st iomtv1.SegmentPolicyStatus) string {
		if c := meta.FindStatusCondition(st.Conditions, typ); c != nil {
			return string(c.Status) + "/" + c.Reason
		}
		return ""
	}
}

func ciliumPolicy(ns, name string) func() (*ciliumv2.CiliumNetworkPolicy, error) {
	return func() (*ciliumv2.CiliumNetworkPolicy, error) {
		var p ciliumv2.CiliumNetworkPolicy
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p)
		return &p, err
	}
}

func specJSON(p *ciliumv2.CiliumNetworkPolicy) string {
	b, err := json.Marshal(p.Spec)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

var _ = Describe("Policy engines", Ordered, func() {
	var ns string

	BeforeAll(func() {
		ns = "clinic-" + rand.String(6)
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		Expect(k8s.Create(ctx, pumpDevice(ns))).To(Succeed())
		Expect(k8s.Create(ctx, pumpsSegment(ns))).To(Succeed())
	})

	Context("when Cilium is not installed", func() {
		It("should enforce with NetworkPolicy and say which flows need Cilium", func() {
			Eventually(segmentStatus(ns)).Should(And(
				HaveField("Engine", iomtv1.EngineKubernetes),
				WithTransform(condition(iomtv1.ConditionEnforceable), Equal("False/NeedsCilium")),
				WithTransform(condition(iomtv1.ConditionReady), Equal("False/NeedsCilium")),
			))
			c := meta.FindStatusCondition(segmentStatus(ns)().Conditions, iomtv1.ConditionEnforceable)
			Expect(c.Message).To(And(ContainSubstring("results"), ContainSubstring("updates"),
				Not(ContainSubstring("billing"))))
		})

		It("should open nothing for a DNS name", func() {
			var np networkingv1.NetworkPolicy
			Eventually(func() error {
				return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "iomt-segment-pumps"}, &np)
			}).Should(Succeed())
			for _, r := range np.Spec.Egress {
				Expect(r.To).NotTo(BeEmpty(), "an egress rule with no peer allows everyone")
				for _, p := range r.To {
					if p.IPBlock != nil {
						Expect(p.IPBlock.CIDR).To(Equal("10.50.0.0/16"))
					}
				}
			}
			// results on 443 and on 2575, billing, attestation, DNS.
			Expect(np.Spec.Egress).To(HaveLen(5))
		})
	})

	Context("when a manifest asks for what no engine can check", func() {
		DescribeTable("should refuse it at apply time",
			func(edit func(*iomtv1.SegmentPolicy), msg string) {
				s := pumpsSegment(ns)
				s.Name = "bad-" + rand.String(4)
				edit(s)
				err := k8s.Create(ctx, s)
				Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
				Expect(err.Error()).To(ContainSubstring(msg))
			},
			Entry("a DNS pattern that matches every name", func(s *iomtv1.SegmentPolicy) {
				s.Spec.Flows[1].Peers[0].FQDN = "*"
			}, "fqdn must name a domain"),
			Entry("a DNS name on an ingress flow", func(s *iomtv1.SegmentPolicy) {
				s.Spec.Flows[1].Direction = iomtv1.DirectionIngress
			}, "fqdn peers are for Egress flows only"),
			Entry("an HTTP rule on a flow with no HTTP port", func(s *iomtv1.SegmentPolicy) {
				s.Spec.Flows[2].HTTP = []iomtv1.HTTPRule{{Method: "GET"}}
				s.Spec.Flows[2].Protocols = []iomtv1.ProtocolPort{hl7}
			}, "http and fhir rules need an HTTP port"),
			Entry("a peer that is both a DNS name and an entity", func(s *iomtv1.SegmentPolicy) {
				s.Spec.Flows[1].Peers[0].Entity = iomtv1.EntityKubeAPIServer
			}, "a peer is exactly one of segment, pods or cidr, or else one fqdn or entity"),
			Entry("a FHIR interaction with both a type and a path", func(s *iomtv1.SegmentPolicy) {
				s.Spec.Flows[0].FHIR[0].Path = "/metadata"
			}, "exactly one of resourceType or path"),
		)
	})

	Context("when Cilium's CRD is installed while the operator runs", func() {
		BeforeAll(installCiliumCRD)

		It("should switch to Cilium and remove the segment's NetworkPolicy", func() {
			Eventually(segmentStatus(ns)).Should(And(
				HaveField("Engine", iomtv1.EngineCilium),
				HaveField("CiliumPolicies", ConsistOf("iomt-segment-pumps")),
				HaveField("Policies", BeEmpty()),
				WithTransform(condition(iomtv1.ConditionEnforceable), Equal("True/AllEnforceable")),
				WithTransform(condition(iomtv1.ConditionReady), Equal("True/Reconciled")),
			))
			Eventually(func() bool {
				var np networkingv1.NetworkPolicy
				err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "iomt-segment-pumps"}, &np)
				return apierrors.IsNotFound(err)
			}).Should(BeTrue())
			var base networkingv1.NetworkPolicy
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "iomt-baseline"}, &base)).To(Succeed())
		})

		It("should put the FHIR rule on the FHIR port only", func() {
			cnp, err := ciliumPolicy(ns, "iomt-segment-pumps")()
			Expect(err).NotTo(HaveOccurred())
			Expect(cnp.OwnerReferences).To(HaveLen(1))
			var http int
			for _, eg := range cnp.Spec.Egress {
				for _, pr := range eg.ToPorts {
					if pr.Rules == nil || len(pr.Rules.HTTP) == 0 {
						continue
					}
					http++
					Expect(pr.Ports).To(HaveLen(1))
					Expect(pr.Ports[0].Port).To(Equal("443"))
					Expect(pr.Rules.HTTP[0].Method).To(Equal("POST"))
					Expect(pr.Rules.HTTP[0].Path).To(ContainSubstring("Observation"))
				}
			}
			Expect(http).To(Equal(1))
			Expect(specJSON(cnp)).To(ContainSubstring(`"ports":[{"port":"2575","protocol":"TCP"}]}]`))
		})

		It("should write a DNS name only with the DNS rule that lets Cilium learn it", func() {
			cnp, err := ciliumPolicy(ns, "iomt-segment-pumps")()
			Expect(err).NotTo(HaveOccurred())
			js := specJSON(cnp)
			Expect(js).To(ContainSubstring(`"toFQDNs":[{"matchName":"updates.vendor.example"}]`))
			Expect(js).To(ContainSubstring(`"dns":[{"matchPattern":"*"}]`))

			By("denying DNS, which leaves the name out")
			patchSegment(ns, func(s *iomtv1.SegmentPolicy) { s.Spec.DNS = iomtv1.DNSDeny })
			Eventually(func() string {
				cnp, err := ciliumPolicy(ns, "iomt-segment-pumps")()
				Expect(err).NotTo(HaveOccurred())
				return specJSON(cnp)
			}).ShouldNot(Or(ContainSubstring("toFQDNs"), ContainSubstring(`"dns":`)))
			Eventually(segmentStatus(ns)).Should(
				WithTransform(condition(iomtv1.ConditionEnforceable), Equal("False/RejectedRule")))

			patchSegment(ns, func(s *iomtv1.SegmentPolicy) { s.Spec.DNS = "" })
			Eventually(segmentStatus(ns)).Should(
				WithTransform(condition(iomtv1.ConditionEnforceable), Equal("True/AllEnforceable")))
		})

		It("should deny what quarantine takes away, and stop when it ends", func() {
			setQuarantine(ns, "Restrict")
			Eventually(ciliumPolicy(ns, "iomt-segment-pumps-restricted")).Should(
				WithTransform(specJSON, And(
					ContainSubstring(`"egressDeny":[{"toCIDRSet":[{"cidr":"10.50.0.0/16"}]`),
					ContainSubstring(`"port":"9000"`),
					// the essential FHIR flow stays, with its HTTP rule
					ContainSubstring(`"method":"POST"`),
				)))
			Eventually(segmentStatus(ns)).Should(
				HaveField("CiliumPolicies", ConsistOf("iomt-segment-pumps-restricted")))

			setQuarantine(ns, "")
			Eventually(ciliumPolicy(ns, "iomt-segment-pumps")).Should(
				WithTransform(specJSON, Not(ContainSubstring("egressDeny"))))
			Eventually(func() bool {
				_, err := ciliumPolicy(ns, "iomt-segment-pumps-restricted")()
				return apierrors.IsNotFound(err)
			}).Should(BeTrue())
		})

		It("should not write a rule Cilium refuses, and say why", func() {
			patchSegment(ns, func(s *iomtv1.SegmentPolicy) {
				f := egress("portal", ehr, iomtv1.ProtocolPort{Port: ptr.To[int32](8080)})
				f.HTTP = []iomtv1.HTTPRule{{Method: "GET", Path: "/portal/("}}
				s.Spec.Flows = append(s.Spec.Flows, f)
			})
			Eventually(segmentStatus(ns)).Should(And(
				WithTransform(condition(iomtv1.ConditionEnforceable), Equal("False/RejectedRule")),
				WithTransform(condition(iomtv1.ConditionReady), Equal("False/RejectedRule")),
			))
			st := segmentStatus(ns)()
			Expect(meta.FindStatusCondition(st.Conditions, iomtv1.ConditionEnforceable).Message).
				To(ContainSubstring("cilium refuses"))
			cnp, err := ciliumPolicy(ns, "iomt-segment-pumps")()
			Expect(err).NotTo(HaveOccurred())
			Expect(specJSON(cnp)).NotTo(Or(ContainSubstring("8080"), ContainSubstring("/portal/(")))
		})
	})

	Context("when nothing changed", func() {
		It("should not write again", func() {
			before := writes.In(ns)
			patchSegment(ns, func(s *iomtv1.SegmentPolicy) {
				s.Labels = map[string]string{"touched": "yes"} // reconciles, changes nothing
			})
			Consistently(func() int { return writes.In(ns) }, "3s").Should(Equal(before),
				"writes: %v", writes.Recent())
		})
	})

	Context("when the engine is switched by flag", func() {
		It("should remove the CiliumNetworkPolicies when told kubernetes", func() {
			runOperator(controllers.EngineKubernetes)
			Eventually(segmentStatus(ns)).Should(And(
				HaveField("Engine", iomtv1.EngineKubernetes),
				HaveField("Policies", ConsistOf("iomt-segment-pumps")),
				HaveField("CiliumPolicies", BeEmpty()),
			))
			Eventually(func() bool {
				_, err := ciliumPolicy(ns, "iomt-segment-pumps")()
				return apierrors.IsNotFound(err)
			}).Should(BeTrue())
		})

		It("should write both kinds when told both, the HTTP rules only for Cilium", func() {
			runOperator(controllers.EngineBoth)
			Eventually(segmentStatus(ns)).Should(And(
				HaveField("Engine", iomtv1.EngineBoth),
				HaveField("Policies", ConsistOf("iomt-segment-pumps")),
				HaveField("CiliumPolicies", ConsistOf("iomt-segment-pumps")),
			))
			cnp, err := ciliumPolicy(ns, "iomt-segment-pumps")()
			Expect(err).NotTo(HaveOccurred())
			Expect(specJSON(cnp)).To(ContainSubstring(`"method":"POST"`))

			// An L4 allow of 443 beside Cilium's HTTP rule would let any
			// request through, so the NetworkPolicy leaves the FHIR port out.
			Eventually(func() []string {
				var np networkingv1.NetworkPolicy
				Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "iomt-segment-pumps"}, &np)).
					To(Succeed())
				var ports []string
				for _, r := range np.Spec.Egress {
					for _, p := range r.Ports {
						ports = append(ports, p.Port.String())
					}
				}
				return ports
			}).Should(And(ContainElement("2575"), Not(ContainElement("443"))))
		})
	})
})

func patchSegment(ns string, edit func(*iomtv1.SegmentPolicy)) {
	Eventually(func() error {
		var s iomtv1.SegmentPolicy
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pumps"}, &s); err != nil {
			return err
		}
		edit(&s)
		return k8s.Update(ctx, &s)
	}).Should(Succeed())
}

func setQuarantine(ns, mode string) {
	Eventually(func() error {
		var d iomtv1.MedicalDevice
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pump-1"}, &d); err != nil {
			return err
		}
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		if mode == "" {
			delete(d.Annotations, iomtv1.QuarantineAnnotation)
		} else {
			d.Annotations[iomtv1.QuarantineAnnotation] = mode
		}
		return k8s.Update(ctx, &d)
	}).Should(Succeed())
}
