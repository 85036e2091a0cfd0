package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medinaii/iomt-operator/controllers"
	writelog "github.com/medinaii/iomt-operator/test/writes"
)

var _ = Describe("The attestation leader label", func() {
	var (
		ns string
		// podWrites counts what the label's own client writes.
		podWrites *writelog.Log
		labeler   client.Client
	)

	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		podWrites = &writelog.Log{}
		cfg := rest.CopyConfig(testEnv.Config)
		cfg.WrapTransport = podWrites.Wrap
		var err error
		labeler, err = client.New(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
	})

	Context("when withdrawn at process start", func() {
		It("should write nothing to a pod without the label", func(ctx context.Context) {
			pod := operatorPod(ctx, ns, map[string]string{"app.kubernetes.io/name": "iomt-operator"})

			Expect(controllers.NewLeaderLabel(labeler, ns, pod.Name).Withdraw(ctx)).To(Succeed())

			Expect(podWrites.Total()).To(BeZero(), "writes: %v", podWrites.Recent())
			Expect(podLabels(ctx, ns, pod.Name)()).To(Equal(pod.Labels))
			Expect(podVersion(ctx, ns, pod.Name)).To(Equal(pod.ResourceVersion))
		})

		It("should remove the label and keep every other label", func(ctx context.Context) {
			pod := operatorPod(ctx, ns, map[string]string{
				"app.kubernetes.io/name":     "iomt-operator",
				"app.kubernetes.io/instance": "iomt-operator",
				controllers.AttestationLabel: controllers.AttestationServing,
			})

			Expect(controllers.NewLeaderLabel(labeler, ns, pod.Name).Withdraw(ctx)).To(Succeed())

			Expect(podLabels(ctx, ns, pod.Name)()).To(Equal(map[string]string{
				"app.kubernetes.io/name":     "iomt-operator",
				"app.kubernetes.io/instance": "iomt-operator",
			}))
			Expect(podWrites.Total()).To(Equal(1), "writes: %v", podWrites.Recent())
		})

		It("should fail when the pod does not exist", func(ctx context.Context) {
			Expect(controllers.NewLeaderLabel(labeler, ns, "nobody").Withdraw(ctx)).
				To(MatchError(ContainSubstring("failed to get pod")))
		})
	})

	Context("when running as the leader", func() {
		It("should label the pod once on start and remove the label when leadership ends",
			func(ctx context.Context) {
				pod := operatorPod(ctx, ns, map[string]string{"app.kubernetes.io/name": "iomt-operator"})
				label := controllers.NewLeaderLabel(labeler, ns, pod.Name)
				Expect(label.NeedLeaderElection()).To(BeTrue())

				leading, stopLeading := context.WithCancel(ctx)
				defer stopLeading()
				done := make(chan error, 1)
				go func() { done <- label.Start(leading) }()

				Eventually(podLabels(ctx, ns, pod.Name)).Should(Equal(map[string]string{
					"app.kubernetes.io/name":     "iomt-operator",
					controllers.AttestationLabel: controllers.AttestationServing,
				}))
				By("holding the label without writing again")
				Consistently(podWrites.Total, 2*time.Second).Should(Equal(1), "writes: %v", podWrites.Recent())

				By("losing leadership")
				stopLeading()
				Eventually(done).Should(Receive(BeNil()))
				Expect(podLabels(ctx, ns, pod.Name)()).To(Equal(map[string]string{
					"app.kubernetes.io/name": "iomt-operator",
				}))
				Expect(podWrites.Total()).To(Equal(2), "writes: %v", podWrites.Recent())
			})

		It("should keep trying until its pod can be labelled", func(ctx context.Context) {
			label := controllers.NewLeaderLabel(labeler, ns, "late")
			leading, stopLeading := context.WithCancel(ctx)
			defer stopLeading()
			done := make(chan error, 1)
			go func() { done <- label.Start(leading) }()

			By("creating the pod after the first attempts failed")
			time.Sleep(time.Second)
			late := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late"},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "manager"}}},
			}
			Expect(k8s.Create(ctx, late)).To(Succeed())

			Eventually(podLabels(ctx, ns, "late")).Should(
				HaveKeyWithValue(controllers.AttestationLabel, controllers.AttestationServing))
			stopLeading()
			Eventually(done).Should(Receive(BeNil()))
			Expect(podLabels(ctx, ns, "late")()).NotTo(HaveKey(controllers.AttestationLabel))
		})
	})

	Context("when no pod name is given, as outside a cluster", func() {
		It("should neither read nor write, and wait for its context", func(ctx context.Context) {
			pod := operatorPod(ctx, ns, map[string]string{
				controllers.AttestationLabel: controllers.AttestationServing,
			})
			// A nil client proves it is never used.
			label := controllers.NewLeaderLabel(nil, ns, "")

			Expect(label.Withdraw(ctx)).To(Succeed())
			leading, stopLeading := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- label.Start(leading) }()
			Consistently(done, time.Second).ShouldNot(Receive())
			stopLeading()
			Eventually(done).Should(Receive(BeNil()))

			Expect(podVersion(ctx, ns, pod.Name)).To(Equal(pod.ResourceVersion))
		})
	})
})

// operatorPod creates a pod standing for an operator replica. Envtest runs
// no kubelet, so the pod only exists as an object, which is all the label
// needs.
func operatorPod(ctx context.Context, ns string, labels map[string]string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "iomt-operator-0", Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "manager"}}},
	}
	Expect(k8s.Create(ctx, pod)).To(Succeed())
	return pod
}

// podLabels reads a pod's labels, for Eventually or called at once.
func podLabels(ctx context.Context, ns, name string) func() (map[string]string, error) {
	return func() (map[string]string, error) {
		var pod corev1.Pod
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod)
		return pod.Labels, err
	}
}

// podVersion reads a pod's resourceVersion, which any write changes.
func podVersion(ctx context.Context, ns, name string) string {
	var pod corev1.Pod
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod)).To(Succeed())
	return pod.ResourceVersion
}
