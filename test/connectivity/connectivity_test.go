package connectivity

import (
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

const (
	hl7    = iomtv1.ProtocolHL7MLLP
	dicom  = iomtv1.ProtocolDICOM
	sdc    = iomtv1.ProtocolSDC
	fhir   = iomtv1.ProtocolFHIR
	mqtt   = iomtv1.ProtocolMQTT
	syslog = iomtv1.ProtocolSyslog

	// zoneLabel is a label the clinic puts on its own namespaces.
	zoneLabel = "clinic.example/zone"
)

var _ = Describe("A segmented clinic", Ordered, ContinueOnFailure, func() {
	var (
		ward, nursing, pacs string

		// Pods of devices that belong to a segment.
		pump, pump2, monitor, gateway, scope, legacy, ct endpoint
		// Pods that carry the device label but belong to no segment: band-1
		// is selected by none, ghost is no MedicalDevice at all.
		band, ghost endpoint
		// Pods that serve no device.
		ehr, wardStation, station, kiosk, viewer endpoint

		devices       []*iomtv1.MedicalDevice
		segments      []*iomtv1.SegmentPolicy
		legacySegment *iomtv1.SegmentPolicy
	)

	BeforeAll(func() {
		ward = newNamespace("ward", nil)
		nursing = newNamespace("nursing", labels(zoneLabel, "nursing"))
		pacs = newNamespace("pacs", nil)

		By("registering the devices")
		devices = []*iomtv1.MedicalDevice{
			newDevice(ward, "pump-1", iomtv1.ClassInfusionPump, speaking(hl7),
				onLAN("10.20.1.15", "fd00:20::15")),
			newDevice(ward, "pump-2", iomtv1.ClassInfusionPump, speaking(hl7)),
			newDevice(ward, "monitor-1", iomtv1.ClassPatientMonitor, speaking(sdc),
				onLAN("10.20.2.0/28")),
			newDevice(ward, "hl7-gw", iomtv1.ClassOther, tagged("role", "gateway"), speaking(hl7),
				onLAN("10.20.5.5")),
			newDevice(ward, "scope-1", iomtv1.ClassDigitalStethoscope),
			newDevice(ward, "legacy-1", iomtv1.ClassOther, tagged("fleet", "legacy"), speaking(hl7)),
			newDevice(ward, "band-1", iomtv1.ClassWearable, speaking(mqtt)),
			newDevice(pacs, "ct-1", iomtv1.ClassImagingModality, speaking(dicom), onLAN("10.30.0.7")),
		}
		awaitDevices(devices...)

		By("segmenting them")
		legacySegment = newSegment(ward, "legacy", labelled("fleet", "legacy"),
			egress("to-retired", explicitPort(9000, iomtv1.TransportTCP), segmentPeer("", "retired")),
			ingress("from-spare", explicitPort(9001, iomtv1.TransportTCP), segmentPeer("", "spare")))
		segments = []*iomtv1.SegmentPolicy{
			legacySegment,
			newSegment(ward, "pumps", classes(iomtv1.ClassInfusionPump),
				egress("orders", protocols(hl7), segmentPeer("", "gateway")),
				egress("sync", explicitPort(7000, iomtv1.TransportTCP), segmentPeer("", "pumps")),
				ingress("handover", explicitPort(7100, iomtv1.TransportTCP),
					segmentPeer("", "pumps"))),
			newSegment(ward, "gateway", labelled("role", "gateway")),
			newSegment(ward, "monitors", classes(iomtv1.ClassPatientMonitor),
				ingress("central-station", protocols(hl7, sdc),
					podsPeer(labels(zoneLabel, "nursing"), labels("app", "central-station"))),
				egress("images", protocols(dicom), segmentPeer(pacs, "imaging")),
				egress("syslog", protocols(syslog), cidrPeer("10.40.0.0/16", "10.40.9.0/24"))),
			newSegment(ward, "stethoscopes", classes(iomtv1.ClassDigitalStethoscope), withoutDNS(),
				egress("charting", protocols(fhir), podsPeer(nil, labels("app", "ehr"))),
				egress("audio", explicitPort(5004, iomtv1.TransportUDP),
					podsPeer(nil, labels("app", "ehr")))),
			newSegment(ward, "spare", classes(iomtv1.ClassVentilator)),
			newSegment(pacs, "imaging", classes(iomtv1.ClassImagingModality)),
		}
		awaitSegments(segments...)

		By("starting the devices' pods and pods that serve no device")
		pump = devicePod(ward, "pump-1-0", "pump-1")
		pump2 = devicePod(ward, "pump-2-0", "pump-2")
		monitor = devicePod(ward, "monitor-1-0", "monitor-1")
		gateway = devicePod(ward, "hl7-gw-0", "hl7-gw")
		scope = devicePod(ward, "scope-1-0", "scope-1")
		legacy = devicePod(ward, "legacy-1-0", "legacy-1")
		band = devicePod(ward, "band-1-0", "band-1")
		ghost = devicePod(ward, "ghost-0", "ghost")
		ct = devicePod(pacs, "ct-1-0", "ct-1")
		ehr = newPod(ward, "ehr-0", labels("app", "ehr"))
		wardStation = newPod(ward, "central-station-0", labels("app", "central-station"))
		station = newPod(nursing, "central-station-0", labels("app", "central-station"))
		kiosk = newPod(nursing, "kiosk-0", labels("app", "kiosk"))
		viewer = newPod(pacs, "viewer-0", labels("app", "viewer"))
	})

	Context("when a pod is not a member of any segment", func() {
		It("should deny ordinary pods that no flow names", func() {
			expectConnectivity(
				denied(ehr, pump, tcp(2575)),
				denied(ehr, monitor, udp(3702)),
				denied(kiosk, monitor, tcp(2575)),
				denied(viewer, ct, tcp(104)),
				denied(ehr, ct, tcp(11112)),
				// What pods that serve no device say to each other is not
				// the operator's business.
				allowed(ehr, viewer, tcp(8080)),
				allowed(kiosk, ehr, tcp(443)),
			)
		})

		It("should deny device pods that no segment holds in both directions", func() {
			expectConnectivity(
				denied(band, ehr, tcp(8883)),
				denied(ehr, band, tcp(8883)),
				denied(station, band, tcp(2575)),
				denied(band, pump, tcp(2575)),
				denied(band, dns[0], udp(53)),
				denied(band, outside("10.1.2.3"), tcp(443)),
				denied(ghost, ehr, tcp(443)),
				denied(ehr, ghost, tcp(443)),
				denied(ghost, dns[0], udp(53)),
			)
		})
	})

	Context("when a flow declares protocols", func() {
		DescribeTable("should open exactly their ports",
			func(from, to *endpoint, p port, want bool) {
				expectConnectivity(connection{from: *from, to: *to, port: p, allowed: want})
			},
			Entry("HL7 v2 over MLLP on TCP 2575", &pump, &gateway, tcp(2575), true),
			Entry("no SSH on TCP 22 to an HL7 peer", &pump, &gateway, tcp(22), false),
			Entry("no TCP 2576 next to HL7", &pump, &gateway, tcp(2576), false),
			Entry("no HL7 port over UDP", &pump, &gateway, udp(2575), false),
			Entry("DICOM on TCP 104", &monitor, &ct, tcp(104), true),
			Entry("DICOM on TCP 11112", &monitor, &ct, tcp(11112), true),
			Entry("no TCP 105 next to DICOM", &monitor, &ct, tcp(105), false),
			Entry("no DICOM over TLS to a plain DICOM peer", &monitor, &ct, tcp(2762), false),
			Entry("SDC discovery on UDP 3702", &station, &monitor, udp(3702), true),
			Entry("no SDC discovery port over TCP", &station, &monitor, tcp(3702), false),
			Entry("SDC messages on TCP 443", &station, &monitor, tcp(443), true),
			Entry("no SDC messages port over UDP", &station, &monitor, udp(443), false),
			Entry("FHIR on TCP 443", &scope, &ehr, tcp(443), true),
			Entry("no plain HTTP for FHIR", &scope, &ehr, tcp(80), false),
			Entry("an explicit UDP port", &scope, &ehr, udp(5004), true),
			Entry("no explicit UDP port over TCP", &scope, &ehr, tcp(5004), false),
		)
	})

	Context("when two managed segments share a flow", func() {
		It("should open it on both sides in one namespace, in one direction only", func() {
			expectConnectivity(
				allowed(pump, gateway, tcp(2575)),
				denied(pump, gateway, tcp(2576)),
				denied(gateway, pump, tcp(2575)),
				denied(ehr, gateway, tcp(2575)),
				denied(monitor, gateway, tcp(2575)),
			)
		})

		It("should open it on both sides across namespaces, in one direction only", func() {
			expectConnectivity(
				allowed(monitor, ct, tcp(104)),
				allowed(monitor, ct, tcp(11112)),
				denied(monitor, ct, tcp(2575)),
				denied(ct, monitor, tcp(104)),
				denied(ct, monitor, tcp(11112)),
				denied(viewer, ct, tcp(104)),
				denied(pump, ct, tcp(104)),
			)
		})
	})

	Context("when a segment's flow names the segment itself", func() {
		It("should let its members reach each other on the flow's ports only", func() {
			expectConnectivity(
				allowed(pump, pump2, tcp(7000)).because(
					"egress sync names pumps itself, so the pumps' ingress must admit it too"),
				allowed(pump2, pump, tcp(7000)).because(
					"egress sync names pumps itself, so the pumps' ingress must admit it too"),
				allowed(pump, pump2, tcp(7100)).because(
					"ingress handover names pumps itself, so the pumps' egress must send it too"),
				denied(pump, pump2, tcp(7001)),
				denied(gateway, pump, tcp(7000)),
				denied(pump, gateway, tcp(7000)),
				denied(ehr, pump, tcp(7100)),
			)
		})
	})

	Context("when a pods peer has a namespace selector and a pod selector", func() {
		It("should allow only pods that match both", func() {
			expectConnectivity(
				allowed(station, monitor, tcp(2575)),
				denied(kiosk, monitor, tcp(2575)),
				denied(wardStation, monitor, tcp(2575)),
				denied(ehr, monitor, tcp(2575)),
			)
		})
	})

	Context("when a flow's only peer resolves to nothing", func() {
		It("should allow nobody on that flow's ports", func() {
			somewhere := outside("10.1.2.3")
			expectConnectivity(
				// to-retired names a segment that does not exist.
				denied(legacy, ehr, tcp(9000)),
				denied(legacy, gateway, tcp(9000)),
				denied(legacy, station, tcp(9000)),
				denied(legacy, ct, tcp(9000)),
				denied(legacy, somewhere, tcp(9000)),
				// from-spare names a segment without members.
				denied(ehr, legacy, tcp(9001)),
				denied(pump, legacy, tcp(9001)),
				denied(station, legacy, tcp(9001)),
				denied(somewhere, legacy, tcp(9001)),
				// The rest of the segment's policy is in force.
				allowed(legacy, dns[0], udp(53)),
			)
		})

		It("should report UnresolvedPeers in the Ready condition", func() {
			Eventually(conditionOf(legacySegment, iomtv1.ConditionReady)).Should(SatisfyAll(
				HaveField("Status", metav1.ConditionFalse),
				HaveField("Reason", iomtv1.ReasonUnresolvedPeers),
			))
		})
	})

	Context("when members resolve names", func() {
		It("should allow DNS to the kube-dns pods on UDP and TCP 53 only", func() {
			expectConnectivity(
				allowed(pump, dns[0], udp(53)),
				allowed(pump, dns[0], tcp(53)),
				allowed(pump, dns[1], udp(53)),
				allowed(monitor, dns[1], tcp(53)),
				allowed(ct, dns[0], udp(53)),
				denied(pump, dns[0], udp(5353)),
				denied(pump, dns[0], tcp(443)),
				denied(pump, bystander, udp(53)),
				denied(pump, bystander, tcp(53)),
				denied(pump, ehr, udp(53)),
				denied(pump, outside("8.8.8.8"), udp(53)),
			)
		})

		It("should deny DNS to a segment with dns Deny", func() {
			expectConnectivity(
				denied(scope, dns[0], udp(53)),
				denied(scope, dns[0], tcp(53)),
				denied(scope, dns[1], udp(53)),
				allowed(scope, ehr, tcp(443)),
			)
		})
	})

	Context("when a device sits on the clinic LAN", func() {
		It("should connect its addresses and the member pods on its own protocols only", func() {
			expectConnectivity(
				allowed(pump, outside("10.20.1.15"), tcp(2575)),
				allowed(outside("10.20.1.15"), pump, tcp(2575)),
				denied(pump, outside("10.20.1.15"), tcp(22)),
				denied(outside("10.20.1.15"), pump, tcp(22)),
				denied(outside("10.20.1.15"), pump, udp(2575)),
				denied(outside("10.20.1.99"), pump, tcp(2575)),
				allowed(outside("fd00:20::15"), pump, tcp(2575)),
				allowed(pump, outside("fd00:20::15"), tcp(2575)),
				denied(outside("fd00:20::16"), pump, tcp(2575)),
				// monitor-1 sits in 10.20.2.0/28 and speaks SDC only.
				allowed(outside("10.20.2.3"), monitor, udp(3702)),
				allowed(monitor, outside("10.20.2.14"), tcp(443)),
				denied(outside("10.20.2.3"), monitor, tcp(2575)),
				denied(outside("10.20.2.16"), monitor, udp(3702)),
				// Another segment's device is no peer.
				denied(monitor, outside("10.20.1.15"), tcp(2575)),
				denied(outside("10.20.1.15"), monitor, udp(3702)),
			)
		})

		It("should connect a peer segment's addresses on the flow's protocols only", func() {
			expectConnectivity(
				allowed(pump, outside("10.20.5.5"), tcp(2575)),
				allowed(outside("10.20.1.15"), gateway, tcp(2575)),
				allowed(monitor, outside("10.30.0.7"), tcp(104)),
				denied(pump, outside("10.20.5.5"), tcp(2576)),
				denied(outside("10.20.5.5"), pump, tcp(2575)),
				denied(outside("10.30.0.7"), monitor, tcp(104)),
			)
		})

		It("should keep the except range of a CIDR peer closed", func() {
			expectConnectivity(
				allowed(monitor, outside("10.40.1.10"), tcp(6514)),
				allowed(monitor, outside("10.40.255.1"), tcp(6514)),
				denied(monitor, outside("10.40.9.10"), tcp(6514)),
				denied(monitor, outside("10.40.9.255"), tcp(6514)),
				denied(monitor, outside("10.40.1.10"), tcp(514)),
				denied(monitor, outside("10.41.0.1"), tcp(6514)),
				denied(pump, outside("10.40.1.10"), tcp(6514)),
			)
		})
	})

	Context("when segments are unrelated", func() {
		It("should keep their members apart", func() {
			expectConnectivity(
				denied(pump, monitor, tcp(2575)),
				denied(pump, monitor, udp(3702)),
				denied(monitor, pump, tcp(2575)),
				denied(monitor, gateway, tcp(2575)),
				denied(gateway, monitor, tcp(443)),
				denied(scope, pump, tcp(443)),
				denied(pump, scope, tcp(443)),
				denied(ct, pump, tcp(2575)),
				denied(legacy, pump, tcp(2575)),
			)
		})
	})

	Context("when the API server holds the generated policies", func() {
		// owners are what a generated policy may belong to, by UID: a
		// segment, or for a baseline its namespace.
		owners := func(g Gomega) map[types.UID]string {
			uids := map[types.UID]string{}
			for _, s := range segments {
				uids[s.UID] = "SegmentPolicy"
			}
			for _, name := range []string{ward, pacs} {
				var ns corev1.Namespace
				g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, &ns)).To(Succeed())
				uids[ns.UID] = "Namespace"
			}
			return uids
		}

		It("should give each both policy types, the operator's labels and an owner", func() {
			Eventually(func(g Gomega) {
				uids := owners(g)
				policies := policiesIn(g, ward, pacs)
				// A baseline per namespace, and a policy per enforcing
				// segment with members: all but spare.
				g.Expect(policies).To(HaveLen(2 + len(segments) - 1))
				for _, np := range policies {
					g.Expect(np.Spec.PolicyTypes).To(ConsistOf(
						networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress), np.Name)
					g.Expect(np.Labels).To(HaveKeyWithValue(
						"app.kubernetes.io/managed-by", "iomt-operator"), np.Name)
					g.Expect(np.OwnerReferences).To(HaveLen(1), np.Name)
					owner := np.OwnerReferences[0]
					g.Expect(owner.Controller).To(HaveValue(BeTrue()), np.Name)
					g.Expect(uids).To(HaveKeyWithValue(owner.UID, owner.Kind), np.Name)
				}
			}).Should(Succeed())
		})

		It("should copy no label of the user's objects onto them", func() {
			Eventually(func(g Gomega) {
				policies := policiesIn(g, ward, pacs)
				g.Expect(policies).NotTo(BeEmpty())
				var users []client.Object
				for _, d := range devices {
					users = append(users, d)
				}
				for _, s := range segments {
					users = append(users, s)
				}
				for _, np := range policies {
					g.Expect(np.Labels).NotTo(HaveKey(trackingLabel), np.Name)
					for _, u := range users {
						for k, v := range u.GetLabels() {
							g.Expect(np.Labels).NotTo(HaveKeyWithValue(k, v),
								"%s carries label %s of %s", np.Name, k, u.GetName())
						}
					}
				}
			}).Should(Succeed())
		})
	})

	Context("when someone deletes or edits a generated policy", func() {
		// ownedBy finds the policy in the ward that belongs to owner.
		ownedBy := func(owner client.Object) *networkingv1.NetworkPolicy {
			GinkgoHelper()
			var found *networkingv1.NetworkPolicy
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(owner), owner)).To(Succeed())
				for _, np := range policiesIn(g, ward) {
					if len(np.OwnerReferences) == 1 && np.OwnerReferences[0].UID == owner.GetUID() {
						found = &np
					}
				}
				g.Expect(found).NotTo(BeNil(), "no policy in %s belongs to %s", ward, owner.GetName())
			}).Should(Succeed())
			return found
		}
		baseline := func() *networkingv1.NetworkPolicy {
			GinkgoHelper()
			return ownedBy(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ward}})
		}
		pumps := func() *networkingv1.NetworkPolicy {
			GinkgoHelper()
			return ownedBy(&iomtv1.SegmentPolicy{ObjectMeta: metav1.ObjectMeta{
				Namespace: ward, Name: "pumps"}})
		}
		// edit changes a policy the way kubectl edit would, as another
		// field manager.
		edit := func(np *networkingv1.NetworkPolicy, mergePatch string) {
			GinkgoHelper()
			Expect(k8s.Patch(ctx, np, client.RawPatch(types.MergePatchType, []byte(mergePatch)),
				client.FieldOwner("kubectl-edit"))).To(Succeed())
		}

		It("should restore a deleted baseline", func() {
			Expect(k8s.Delete(ctx, baseline())).To(Succeed())
			expectConnectivity(
				denied(band, ehr, tcp(8883)),
				denied(ehr, band, tcp(8883)),
				denied(ehr, ghost, tcp(443)),
				denied(ehr, pump, tcp(2575)),
			)
		})

		It("should restore a deleted segment policy", func() {
			Expect(k8s.Delete(ctx, pumps())).To(Succeed())
			expectConnectivity(
				allowed(pump, gateway, tcp(2575)),
				allowed(pump, dns[0], udp(53)),
				denied(ehr, pump, tcp(2575)),
			)
		})

		It("should undo an edit that opens a segment policy to everyone", func() {
			edit(pumps(), `{"spec":{"ingress":[{}]}}`)
			expectConnectivity(
				denied(ehr, pump, tcp(2575)),
				denied(station, pump, tcp(22)),
				allowed(pump, gateway, tcp(2575)),
			)
		})

		It("should undo an edit that narrows the baseline", func() {
			edit(baseline(), `{"spec":{"podSelector":{"matchLabels":{"clinic.example/edited":"yes"}}}}`)
			expectConnectivity(
				denied(band, ehr, tcp(8883)).because(
					"band-1 belongs to no segment; only the baseline keeps it shut"),
				denied(ehr, band, tcp(8883)).because(
					"band-1 belongs to no segment; only the baseline keeps it shut"),
				denied(ghost, ehr, tcp(443)).because(
					"ghost is no MedicalDevice; only the baseline keeps it shut"),
			)
		})

		It("should undo an edit that also strips the operator's labels", func() {
			edit(baseline(), `{"metadata":{"labels":{"app.kubernetes.io/managed-by":null,`+
				`"iomt.medinaii.io/policy-role":null}},"spec":{"podSelector":{"matchLabels":`+
				`{"clinic.example/edited":"yes"}}}}`)
			expectConnectivity(
				denied(band, ehr, tcp(8883)),
				denied(ehr, band, tcp(8883)),
				denied(ghost, ehr, tcp(443)),
			)
		})
	})
})

var _ = Describe("A device pod born before any SegmentPolicy", Ordered, ContinueOnFailure, func() {
	var (
		lab                    string
		analyzer, lis, archive endpoint
		labs                   *iomtv1.SegmentPolicy
	)

	BeforeAll(func() {
		lab = newNamespace("lab", nil)
		awaitDevices(newDevice(lab, "analyzer-1", iomtv1.ClassLabAnalyzer, speaking(hl7)))
		analyzer = devicePod(lab, "analyzer-1-0", "analyzer-1")
		lis = newPod(lab, "lis-0", labels("app", "lis"))
		archive = newPod(lab, "archive-0", labels("app", "archive"))
	})

	It("should be denied everything in both directions", func() {
		expectConnectivity(
			denied(analyzer, lis, tcp(2575)),
			denied(lis, analyzer, tcp(2575)),
			denied(archive, analyzer, tcp(443)),
			denied(analyzer, dns[0], udp(53)),
			denied(analyzer, outside("10.1.2.3"), tcp(443)),
			denied(outside("10.1.2.3"), analyzer, tcp(2575)),
			allowed(lis, archive, tcp(443)),
		)
	})

	Context("when a segment takes the device in", func() {
		It("should allow the segment's flows and nothing else", func() {
			labs = newSegment(lab, "labs", classes(iomtv1.ClassLabAnalyzer),
				egress("results", protocols(hl7), podsPeer(nil, labels("app", "lis"))))
			expectConnectivity(
				allowed(analyzer, lis, tcp(2575)),
				allowed(analyzer, dns[0], udp(53)),
				denied(lis, analyzer, tcp(2575)),
				denied(analyzer, archive, tcp(443)),
				denied(analyzer, archive, tcp(2575)),
			)
		})
	})

	Context("when an edit adds an egress flow", func() {
		It("should open the new destination on its port and nothing more", func() {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(labs), labs); err != nil {
					return err
				}
				egress("reports", protocols(fhir), podsPeer(nil, labels("app", "archive")))(labs)
				return k8s.Update(ctx, labs)
			})).To(Succeed())

			expectConnectivity(
				allowed(analyzer, archive, tcp(443)),
				allowed(analyzer, lis, tcp(2575)),
				denied(analyzer, archive, tcp(2575)),
				denied(analyzer, lis, tcp(443)),
				denied(archive, analyzer, tcp(443)),
				denied(analyzer, outside("10.1.2.3"), tcp(443)),
			)
		})
	})

	Context("when an edit removes a flow", func() {
		It("should close it and keep the others", func() {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(labs), labs); err != nil {
					return err
				}
				labs.Spec.Flows = slices.DeleteFunc(labs.Spec.Flows,
					func(f iomtv1.Flow) bool { return f.Name == "results" })
				return k8s.Update(ctx, labs)
			})).To(Succeed())

			expectConnectivity(
				denied(analyzer, lis, tcp(2575)),
				allowed(analyzer, archive, tcp(443)),
				allowed(analyzer, dns[0], udp(53)),
			)
		})
	})

	Context("when the segment is deleted", func() {
		It("should return the device's pod to deny-all", func() {
			Expect(k8s.Delete(ctx, labs)).To(Succeed())
			expectConnectivity(
				denied(analyzer, archive, tcp(443)),
				denied(analyzer, dns[0], udp(53)),
				denied(lis, analyzer, tcp(2575)),
				allowed(lis, archive, tcp(443)),
			)
		})
	})
})

var _ = Describe("A device that two segments select", Ordered, ContinueOnFailure, func() {
	var (
		vent, bed, station endpoint
		ventilators, icu   *iomtv1.SegmentPolicy
	)

	BeforeAll(func() {
		ns := newNamespace("icu", nil)
		awaitDevices(
			newDevice(ns, "vent-1", iomtv1.ClassVentilator, tagged("unit", "icu"), speaking(hl7)),
			newDevice(ns, "bed-1", iomtv1.ClassOther, tagged("unit", "icu"), speaking(hl7)),
		)
		fromStation := ingress("station", protocols(hl7),
			podsPeer(nil, labels("app", "central-station")))
		ventilators = newSegment(ns, "ventilators", classes(iomtv1.ClassVentilator), fromStation)
		icu = newSegment(ns, "icu", labelled("unit", "icu"), fromStation)
		awaitSegments(ventilators, icu)

		vent = devicePod(ns, "vent-1-0", "vent-1")
		bed = devicePod(ns, "bed-1-0", "bed-1")
		station = newPod(ns, "central-station-0", labels("app", "central-station"))
	})

	It("should deny that device's pods everything", func() {
		expectConnectivity(
			denied(station, vent, tcp(2575)),
			denied(vent, station, tcp(2575)),
			denied(vent, bed, tcp(2575)),
			denied(bed, vent, tcp(2575)),
			denied(vent, dns[0], udp(53)),
			// The segment's other member keeps its flows.
			allowed(station, bed, tcp(2575)),
			denied(station, bed, tcp(22)),
		)
	})

	It("should report Conflict on both segments", func() {
		for _, s := range []*iomtv1.SegmentPolicy{ventilators, icu} {
			Eventually(conditionOf(s, iomtv1.ConditionConflict)).Should(
				HaveField("Status", metav1.ConditionTrue), "segment %s", s.Name)
		}
	})
})

var _ = Describe("A segment in Observe mode", Ordered, ContinueOnFailure, func() {
	var (
		home           string
		wear, hub, ehr endpoint
		wearables      *iomtv1.SegmentPolicy
	)

	BeforeAll(func() {
		home = newNamespace("home-care", nil)
		awaitDevices(
			newDevice(home, "wear-1", iomtv1.ClassWearable, speaking(mqtt)),
			newDevice(home, "hub-1", iomtv1.ClassOther, tagged("role", "hub"), speaking(mqtt)),
		)
		fromEHR := ingress("from-ehr", protocols(mqtt), podsPeer(nil, labels("app", "ehr")))
		wearables = newSegment(home, "wearables", classes(iomtv1.ClassWearable), observing(), fromEHR,
			egress("telemetry", protocols(mqtt), segmentPeer("", "hub")))
		awaitSegments(wearables, newSegment(home, "hub", labelled("role", "hub"), fromEHR))

		wear = devicePod(home, "wear-1-0", "wear-1")
		hub = devicePod(home, "hub-1-0", "hub-1")
		ehr = newPod(home, "ehr-0", labels("app", "ehr"))
	})

	It("should leave its members denied everything", func() {
		expectConnectivity(
			denied(ehr, wear, tcp(8883)),
			denied(wear, hub, tcp(8883)),
			denied(wear, ehr, tcp(8883)),
			denied(wear, dns[0], udp(53)),
			denied(hub, wear, tcp(8883)),
			// An enforcing segment beside it works as stated.
			allowed(ehr, hub, tcp(8883)),
		)
	})

	It("should write no NetworkPolicy of its own", func() {
		Consistently(func(g Gomega) {
			for _, np := range policiesIn(g, home) {
				for _, ref := range np.OwnerReferences {
					g.Expect(ref.UID).NotTo(Equal(wearables.UID), "%s belongs to an observing segment", np.Name)
				}
			}
		}).Should(Succeed())
	})

	Context("when it switches to Enforce", func() {
		It("should open its flows on both sides", func() {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				key := client.ObjectKeyFromObject(wearables)
				if err := k8s.Get(ctx, key, wearables); err != nil {
					return err
				}
				wearables.Spec.Enforcement = iomtv1.EnforcementEnforce
				return k8s.Update(ctx, wearables)
			})).To(Succeed())

			expectConnectivity(
				allowed(ehr, wear, tcp(8883)),
				allowed(wear, hub, tcp(8883)),
				allowed(wear, dns[0], udp(53)),
				denied(wear, ehr, tcp(8883)),
				denied(hub, wear, tcp(8883)),
			)
		})
	})
})

var _ = Describe("A flow across namespaces", Ordered, ContinueOnFailure, func() {
	var (
		east, west              string
		pump5, pump6, pump7, rx endpoint
		pump, quarantined       *iomtv1.MedicalDevice
	)

	BeforeAll(func() {
		east = newNamespace("east-wing", nil)
		west = newNamespace("west-wing", nil)
		pump = newDevice(east, "pump-6", iomtv1.ClassInfusionPump, speaking(hl7), onLAN("10.20.6.6"))
		quarantined = newDevice(east, "pump-5", iomtv1.ClassInfusionPump, speaking(hl7),
			onLAN("10.20.5.50"))
		awaitDevices(pump, quarantined, newDevice(west, "rx-1", iomtv1.ClassOther, speaking(hl7)))
		awaitSegments(
			newSegment(east, "senders", classes(iomtv1.ClassInfusionPump),
				egress("orders", protocols(hl7), segmentPeer(west, "receivers"))),
			newSegment(west, "receivers", classes(iomtv1.ClassOther)),
		)
		pump5 = devicePod(east, "pump-5-0", "pump-5")
		pump6 = devicePod(east, "pump-6-0", "pump-6")
		rx = devicePod(west, "rx-1-0", "rx-1")
	})

	It("should open it on both sides for the members both segments start with", func() {
		expectConnectivity(
			allowed(pump6, rx, tcp(2575)),
			allowed(outside("10.20.6.6"), rx, tcp(2575)),
			allowed(pump5, rx, tcp(2575)),
			allowed(outside("10.20.5.50"), rx, tcp(2575)),
			denied(pump6, rx, tcp(2576)),
			denied(rx, pump6, tcp(2575)),
		)
	})

	Context("when a device joins the stating segment", func() {
		It("should open the flow for it on both sides", func() {
			awaitDevices(newDevice(east, "pump-7", iomtv1.ClassInfusionPump, speaking(hl7)))
			pump7 = devicePod(east, "pump-7-0", "pump-7")
			expectConnectivity(
				allowed(pump7, rx, tcp(2575)).because(
					"receivers' ingress must follow the membership of senders in the other namespace"),
				allowed(pump6, rx, tcp(2575)),
				denied(pump7, rx, tcp(2576)),
				denied(rx, pump7, tcp(2575)),
			)
		})
	})

	Context("when a member of the stating segment moves on the LAN", func() {
		It("should follow it to its new address on the other side", func() {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(pump), pump); err != nil {
					return err
				}
				onLAN("10.20.6.7")(pump)
				return k8s.Update(ctx, pump)
			})).To(Succeed())
			awaitDevices(pump)

			expectConnectivity(
				allowed(outside("10.20.6.7"), rx, tcp(2575)).because(
					"receivers' ingress must follow the addresses of senders' members"),
				denied(outside("10.20.6.6"), rx, tcp(2575)).because(
					"pump-6 left this address; whoever holds it now is no member of senders"),
				allowed(pump6, outside("10.20.6.7"), tcp(2575)),
				denied(pump6, outside("10.20.6.6"), tcp(2575)),
			)
		})
	})

	Context("when a member of the stating segment is isolated", func() {
		It("should close the flow for it on the other side too", func() {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				key := client.ObjectKeyFromObject(quarantined)
				if err := k8s.Get(ctx, key, quarantined); err != nil {
					return err
				}
				quarantined.Annotations = labels(iomtv1.QuarantineAnnotation, "Isolate")
				return k8s.Update(ctx, quarantined)
			})).To(Succeed())

			expectConnectivity(
				denied(pump5, rx, tcp(2575)),
				denied(outside("10.20.5.50"), rx, tcp(2575)).because(
					"pump-5 is isolated; its LAN address must lose the flow on receivers' side"),
				allowed(pump6, rx, tcp(2575)),
			)
		})
	})
})
