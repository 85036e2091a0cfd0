package clinic

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

var _ = Describe("Sample clinic", Ordered, func() {
	var (
		samples    = filepath.Join(repoRoot, "config", "samples")
		objs       []*unstructured.Unstructured
		namespaces []string
		table      *FlowTable
		stop       context.CancelFunc
		stopped    <-chan error
	)

	BeforeAll(func() {
		var err error
		objs, err = LoadManifests(samples)
		Expect(err).NotTo(HaveOccurred())
		namespaces = Namespaces(objs)
		Expect(namespaces).To(ContainElements("icu", "radiology", "ward-3"))

		var ctx context.Context
		ctx, stop = context.WithCancel(context.Background())
		op, err := StartOperator(ctx, cp.Config)
		Expect(err).NotTo(HaveOccurred())
		stopped = op.Done
	})

	AfterAll(func() {
		if stop != nil {
			stop()
			Eventually(stopped).Should(Receive(BeNil()))
		}
	})

	It("should be accepted by kubectl apply -k, CEL rules included", func() {
		user := envtest.User{Name: "clinic-admin", Groups: []string{"system:masters"}}
		admin, err := cp.Env.AddUser(user, nil)
		Expect(err).NotTo(HaveOccurred())
		kubectl, err := admin.Kubectl()
		Expect(err).NotTo(HaveOccurred())
		_, stderr, err := kubectl.Run("apply", "--server-side", "--field-manager="+SampleFieldOwner,
			"-k", samples)
		if err != nil {
			msg, _ := io.ReadAll(stderr)
			Fail("kubectl apply -k refused the samples: " + string(msg))
		}
	})

	It("should change nothing when applied again", func(ctx SpecContext) {
		generations := func() map[string]int64 {
			gens := map[string]int64{}
			for _, o := range objs {
				u := &unstructured.Unstructured{}
				u.SetGroupVersionKind(o.GroupVersionKind())
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), u)).To(Succeed())
				gens[o.GetKind()+" "+describe(o)] = u.GetGeneration()
			}
			return gens
		}
		before := generations()
		Expect(Apply(ctx, k8sClient, objs, SampleFieldOwner)).To(Succeed())
		Expect(generations()).To(Equal(before))
	})

	It("should converge once device pods exist", func(ctx SpecContext) {
		counts, err := CreateSamplePods(ctx, k8sClient, namespaces)
		Expect(err).NotTo(HaveOccurred())
		Expect(counts.Devices).To(BeNumerically(">", 10))

		var pod corev1.Pod
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "icu",
			Name: DevicePodName("icu-pump-alaris-01")}, &pod)).To(Succeed())
		Expect(pod.Status.PodIP).NotTo(BeEmpty())
		Expect(pod.Labels).To(HaveKeyWithValue(iomtv1.DeviceLabel, "icu-pump-alaris-01"))

		Expect(WaitForConvergence(ctx, k8sClient, namespaces, 60*time.Second)).To(Succeed())
	})

	It("should segment every device but the unassigned bed, and only observe the virtual ward",
		func(ctx SpecContext) {
			summary, err := Summarize(ctx, k8sClient, namespaces)
			Expect(err).NotTo(HaveOccurred())
			Expect(summary.Devices).To(HaveLen(Count(objs, "MedicalDevice")))
			for _, d := range summary.Devices {
				switch {
				case d.Name == "icu-bed-intouch-01":
					Expect(d.Segmented).To(Equal("False/NoSegment"), d.Name)
				case d.Segment == "ward-3-virtual-ward":
					Expect(d.Segmented).To(Equal("False/Observing"), d.Name)
				default:
					Expect(d.Segmented).To(Equal("True/Segmented"), d.Name)
				}
			}
			for _, s := range summary.Segments {
				Expect(s.Ready).To(Equal("True/Reconciled"), s.Name)
				Expect(s.Unresolved).To(BeEmpty(), s.Name)
				if s.Enforcement == string(iomtv1.EnforcementObserve) {
					Expect(s.Policies).To(BeEmpty(), s.Name)
				} else {
					Expect(s.Policies).To(ConsistOf(
						segment.PolicyName(s.Name, iomtv1.QuarantineNone)), s.Name)
				}
			}
		})

	It("should have written every policy its segments call for now", func(ctx SpecContext) {
		stale, err := StalePolicies(ctx, k8sClient, namespaces, segment.DefaultConfig())
		Expect(err).NotTo(HaveOccurred())
		Expect(stale).To(BeEmpty())
	})

	Context("when its NetworkPolicies are evaluated by cyclonus", func() {
		BeforeAll(func(ctx SpecContext) {
			probes, err := SampleProbes(ctx, k8sClient)
			Expect(err).NotTo(HaveOccurred())
			table, err = EvaluateFlows(ctx, k8sClient, append(namespaces, "kube-system"), probes,
				ClinicalPorts)
			Expect(err).NotTo(HaveOccurred())
			Expect(table.Rows).To(HaveLen(len(probes)))
		})

		allowed := func(from, to string, port Port) bool {
			ok, found := table.Allowed(from, to, port)
			Expect(found).To(BeTrue(), "no probe %s -> %s", from, to)
			return ok
		}
		tcp := func(n int) Port { return Port{n, corev1.ProtocolTCP} }
		udp := func(n int) Port { return Port{n, corev1.ProtocolUDP} }

		It("should never allow SSH", func() {
			for _, row := range table.Rows {
				Expect(allowed(row.From, row.To, tcp(22))).To(BeFalse(), "%s -> %s", row.From, row.To)
			}
		})

		It("should deny everything to pods of unsegmented and observed devices", func() {
			for _, row := range table.Rows {
				if row.From != "icu/icu-bed-intouch-01-adapter" &&
					row.From != "ward-3/w3-wearable-w1-01-adapter" {
					continue
				}
				Expect(row.Allowed).NotTo(ContainElement(true), "%s -> %s", row.From, row.To)
			}
		})

		DescribeTable("should allow exactly the ports the segments open",
			func(from, to string, open ...Port) {
				for _, port := range ClinicalPorts {
					want := false
					for _, o := range open {
						want = want || o == port
					}
					Expect(allowed(from, to, port)).To(Equal(want), "%s -> %s on %s", from, to, port)
				}
			},
			Entry("pump to the integration gateway in another namespace, HL7",
				"icu/icu-pump-alaris-01-adapter", "integration/gw-neuron-01-adapter", tcp(2575)),
			Entry("pump LAN address to the gateway, HL7",
				"LAN icu-pump-alaris-02 "+pumpAlaris02, "integration/gw-neuron-01-adapter", tcp(2575)),
			Entry("pump to the data centre, FHIR",
				"icu/icu-pump-spectrum-01-adapter", "datacentre "+datacentre, tcp(443)),
			Entry("pump to the guest network, excepted from the data centre",
				"icu/icu-pump-spectrum-01-adapter", "guest network "+guestNetwork),
			Entry("central station pods to a monitor, SDC and HL7",
				"clinical-apps/central-station", "icu/icu-monitor-mx800-02-adapter",
				tcp(2575), tcp(443), udp(3702)),
			Entry("ventilator to cluster DNS",
				"icu/icu-vent-pb980-01-adapter", "kube-system/coredns", udp(53)),
			Entry("dashboard pod without a device label to a ventilator",
				"icu/bedside-dashboard", "icu/icu-vent-pb980-01-adapter"),
			Entry("CT to the PACS, DICOM",
				"radiology/rad-ct-somatom-01-adapter", "clinical-apps/pacs", tcp(104), tcp(11112)),
			Entry("MR to the RIS worklist, DICOM narrowed to 104",
				"radiology/rad-mr-ingenia-01-adapter", "clinical-apps/ris", tcp(104)),
			Entry("CT to cluster DNS, denied by its segment",
				"radiology/rad-ct-somatom-01-adapter", "kube-system/coredns"),
			Entry("reading room to the CT, DICOM narrowed to 11112",
				"reading room "+readingRoom, "radiology/rad-ct-somatom-01-adapter", tcp(11112)),
			Entry("VDI pool to the CT, excepted from the reading rooms",
				"VDI pool "+vdiPool, "radiology/rad-ct-somatom-01-adapter"),
			Entry("analyzer to the LIS, HL7",
				"lab/lab-cobas-8000-01-adapter", "clinical-apps/lis", tcp(2575)),
			Entry("interface engine to a pump",
				"clinical-apps/hl7-interface-engine", "icu/icu-pump-alaris-01-adapter"),
			Entry("visitor portal to the gateway",
				"clinical-apps/visitor-portal", "integration/gw-neuron-01-adapter"),
		)
	})

	It("should keep device private keys encrypted in etcd", func(ctx SpecContext) {
		Expect(WaitForIdentities(ctx, k8sClient, namespaces, time.Minute)).To(Succeed())
		var secret corev1.Secret
		key := client.ObjectKey{Namespace: "icu", Name: iomtv1.IdentitySecretName("icu-pump-alaris-01")}
		Expect(k8sClient.Get(ctx, key, &secret)).To(Succeed())
		Expect(string(secret.Data["tls.key"])).To(ContainSubstring("PRIVATE KEY"),
			"the API server hands the key out in the clear")

		raw, err := cp.ReadEtcd(ctx, SecretKey(key.Namespace, key.Name))
		Expect(err).NotTo(HaveOccurred())
		Expect(IsEncrypted(raw)).To(BeTrue(), "etcd holds %.40q", raw)
		Expect(string(raw)).NotTo(ContainSubstring("PRIVATE KEY"))
		Expect(string(raw)).NotTo(ContainSubstring(key.Name), "metadata is encrypted too")
	})

	It("should rewrite nothing once settled", func(ctx SpecContext) {
		versions := func() map[string]string {
			out := map[string]string{}
			for _, ns := range namespaces {
				for _, list := range []client.ObjectList{
					&iomtv1.SegmentPolicyList{}, &iomtv1.MedicalDeviceList{},
					&networkingv1.NetworkPolicyList{},
				} {
					Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
					for key, rv := range resourceVersions(list) {
						out[key] = rv
					}
				}
			}
			return out
		}
		before := versions()
		Consistently(versions, 3*time.Second, 500*time.Millisecond).Should(Equal(before))
	})
})

// resourceVersions maps "<kind> <namespace>/<name>" to the resourceVersion
// of every item of a list.
func resourceVersions(list client.ObjectList) map[string]string {
	items, err := meta.ExtractList(list)
	Expect(err).NotTo(HaveOccurred())
	out := map[string]string{}
	for _, item := range items {
		obj := item.(client.Object)
		out[fmt.Sprintf("%T %s", obj, client.ObjectKeyFromObject(obj))] = obj.GetResourceVersion()
	}
	return out
}
