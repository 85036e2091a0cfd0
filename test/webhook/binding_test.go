package webhook

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

var _ = Describe("Workload binding", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		newDevice(ns, "pump-7", "pump-gateway")
		newDevice(ns, "monitor-2", "")
	})

	Context("when a pod claims a device", func() {
		It("should admit the device's own workload", func() {
			_, err := create(newPod(ns, "gw").device("pump-7").runsAs("pump-gateway").build())
			Expect(err).NotTo(HaveOccurred())
		})

		DescribeTable("should refuse an impersonator, saying why",
			func(device, sa string, words ...string) {
				_, err := create(newPod(ns, "intruder").device(device).runsAs(sa).build())
				Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
				for _, w := range words {
					Expect(err.Error()).To(ContainSubstring(w))
				}
			},
			Entry("another service account", "pump-7", "intruder",
				`MedicalDevice "pump-7"`, `service account "pump-gateway"`, `runs as "intruder"`),
			Entry("the default service account", "pump-7", "",
				`MedicalDevice "pump-7"`, `service account "pump-gateway"`, `runs as "default"`),
			Entry("a device that does not exist", "pump-9", "pump-gateway",
				`MedicalDevice "pump-9" does not exist`, "spec.workload.serviceAccountName"),
			Entry("a device that names no workload", "monitor-2", "monitor-gateway",
				`MedicalDevice "monitor-2" names no workload`, "spec.workload.serviceAccountName"),
		)
	})

	Context("when a running pod is relabelled", func() {
		It("should refuse a label that claims someone else's device", func() {
			pod, err := create(newPod(ns, "bystander").runsAs("intruder").build())
			Expect(err).NotTo(HaveOccurred())

			patch := client.MergeFrom(pod.DeepCopy())
			pod.Labels[iomtv1.DeviceLabel] = "pump-7"
			err = k8s.Patch(ctx, pod, patch)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(`service account "pump-gateway"`))
		})

		It("should let a bound pod be updated after its device is gone", func() {
			pod, err := create(newPod(ns, "gw").device("pump-7").runsAs("pump-gateway").build())
			Expect(err).NotTo(HaveOccurred())
			dev := &iomtv1.MedicalDevice{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pump-7"}, dev)).To(Succeed())
			Expect(k8s.Delete(ctx, dev)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(cached.Get(ctx, client.ObjectKeyFromObject(dev), dev))
			}).Should(BeTrue())

			patch := client.MergeFrom(pod.DeepCopy())
			pod.Labels["shift"] = "night"
			Expect(k8s.Patch(ctx, pod, patch)).To(Succeed())
		})
	})
})

func randomSuffix() string { return rand.String(5) }
