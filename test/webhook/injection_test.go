package webhook

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	jsonpatch "github.com/evanphx/json-patch/v5"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	iomtwebhook "github.com/medinaii/iomt-operator/internal/webhook"
)

var _ = Describe("Identity injection", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		newDevice(ns, "pump-7", "pump-gateway")
	})

	Context("when a device pod is created", func() {
		It("should mount the identity as one read-only projected volume in every app container", func() {
			pod, err := create(newPod(ns, "gw").device("pump-7").runsAs("pump-gateway").build())
			Expect(err).NotTo(HaveOccurred())

			vols := identityVolumes(pod)
			Expect(vols).To(HaveLen(1))
			Expect(vols[0].Projected).NotTo(BeNil(), "the identity is one projected volume")
			sources := vols[0].Projected.Sources
			Expect(sources).To(HaveLen(2))
			Expect(sources[0].Secret).NotTo(BeNil())
			Expect(sources[0].Secret.Name).To(Equal("pump-7-identity"))
			Expect(sources[0].Secret.Items).To(ConsistOf(
				corev1.KeyToPath{Key: "tls.crt", Path: "tls.crt"},
				corev1.KeyToPath{Key: "tls.key", Path: "tls.key"},
				corev1.KeyToPath{Key: "ca.crt", Path: "ca.crt"}))
			Expect(sources[1].ConfigMap).NotTo(BeNil())
			Expect(sources[1].ConfigMap.Name).To(Equal(iomtv1.TrustBundleName))
			Expect(sources[1].ConfigMap.Items).To(ConsistOf(corev1.KeyToPath{Key: "ca.crt", Path: "bundle.crt"}))

			for _, c := range append(pod.Spec.Containers, verifiers(pod)...) {
				Expect(identityMounts(c)).To(ConsistOf(corev1.VolumeMount{
					Name: iomtwebhook.IdentityVolumeName, MountPath: "/var/run/iomt/identity", ReadOnly: true,
				}), "container %s mounts the whole volume read-only, without subPath", c.Name)
			}
			Expect(pod.Spec.Containers[1].VolumeMounts[0].Name).To(Equal("scratch"),
				"the pod's own mounts stay first")
		})

		It("should add the verifier as a restricted native sidecar", func() {
			pod, err := create(newPod(ns, "gw").device("pump-7").runsAs("pump-gateway").build())
			Expect(err).NotTo(HaveOccurred())

			Expect(pod.Spec.Containers).To(HaveLen(2), "the verifier is not an app container")
			Expect(pod.Spec.InitContainers).To(HaveLen(1))
			v := pod.Spec.InitContainers[0]
			Expect(v.Name).To(Equal(iomtwebhook.VerifierContainerName))
			Expect(v.Image).To(Equal(verifierImage))
			Expect(v.RestartPolicy).To(HaveValue(Equal(corev1.ContainerRestartPolicyAlways)))
			Expect(v.Args).To(ContainElements("--identity-dir=/var/run/iomt/identity",
				"--device="+ns+"/pump-7", "--interval=30s"))

			sc := v.SecurityContext
			Expect(sc).NotTo(BeNil())
			Expect(sc.RunAsNonRoot).To(HaveValue(BeTrue()))
			Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
			Expect(sc.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
			Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
			Expect(sc.Capabilities.Add).To(BeEmpty())
			Expect(sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
			Expect(sc.Privileged).To(BeNil())

			Expect(v.Resources.Requests).To(HaveKey(corev1.ResourceCPU))
			Expect(v.Resources.Requests).To(HaveKey(corev1.ResourceMemory))
			Expect(v.Resources.Limits).To(Equal(v.Resources.Requests),
				"equal requests and limits keep a Guaranteed pod Guaranteed")
		})

		It("should leave the pod's own native sidecar as it was and start the verifier after it", func() {
			mesh := corev1.Container{
				Name: "mesh-proxy", Image: "registry.example/proxy:1",
				Args:          []string{"--listen=:15001"},
				RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				VolumeMounts:  []corev1.VolumeMount{{Name: "scratch", MountPath: "/var/run/proxy"}},
			}
			sent := newPod(ns, "gw").device("pump-7").runsAs("pump-gateway").initContainer(mesh).build()
			pod, err := create(sent.DeepCopy())
			Expect(err).NotTo(HaveOccurred())

			Expect(pod.Spec.InitContainers).To(HaveLen(2))
			got := pod.Spec.InitContainers[0]
			Expect(got.Name).To(Equal("mesh-proxy"))
			Expect(got.Image).To(Equal(mesh.Image))
			Expect(got.Args).To(Equal(mesh.Args))
			Expect(got.RestartPolicy).To(Equal(mesh.RestartPolicy))
			Expect(got.VolumeMounts).To(Equal(mesh.VolumeMounts), "no identity mount is added to it")
			Expect(pod.Spec.InitContainers[1].Name).To(Equal(iomtwebhook.VerifierContainerName))
		})
	})

	Context("when the injector is called again", func() {
		It("should only mount the identity into a container a later webhook added", func() {
			pod, err := create(newPod(ns, "gw").device("pump-7").runsAs("pump-gateway").
				label(lateSidecarLabel, "yes").build())
			Expect(err).NotTo(HaveOccurred())

			saw, _ := late.sawInjected.Load("gw")
			Expect(saw).To(BeTrue(), "the injector ran before the later webhook")
			Expect(pod.Spec.Containers).To(HaveLen(3))
			lateContainer := pod.Spec.Containers[2]
			Expect(lateContainer.Name).To(Equal(lateSidecarName))
			Expect(identityMounts(lateContainer)).To(HaveLen(1),
				"the reinvoked injector mounted the identity into the late container")
			Expect(identityVolumes(pod)).To(HaveLen(1))
			Expect(verifiers(pod)).To(HaveLen(1))
			for _, c := range pod.Spec.Containers {
				Expect(identityMounts(c)).To(HaveLen(1))
			}
		})

		It("should give the same pod for a pod it injected before", func() {
			first, err := create(newPod(ns, "gw").device("pump-7").runsAs("pump-gateway").build())
			Expect(err).NotTo(HaveOccurred())

			// The stored pod, sent through the API server once more.
			again := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: "gw-again", Labels: first.Labels,
			}, Spec: *first.Spec.DeepCopy()}
			second, err := create(again)
			Expect(err).NotTo(HaveOccurred())
			Expect(equality.Semantic.DeepEqual(second.Spec, first.Spec)).To(BeTrue(),
				"spec changed on a second injection:\n%v\nwas\n%v", second.Spec, first.Spec)

			// And straight to the webhook server: an empty patch.
			first.ManagedFields = nil
			raw, err := json.Marshal(first)
			Expect(err).NotTo(HaveOccurred())
			resp := review(ns, raw)
			Expect(resp.Allowed).To(BeTrue())
			Expect(resp.Patch).To(BeEmpty())
			Expect(resp.PatchType).To(BeNil())
		})
	})

	Context("when a pod carries fields the API server does not know", func() {
		It("should keep them all in the patched pod", func() {
			raw := []byte(fmt.Sprintf(`{
			  "apiVersion": "v1", "kind": "Pod", "x-vendor": {"ward": 3},
			  "metadata": {"name": "gw", "namespace": %q, "labels": {"iomt.medinaii.io/device": "pump-7"}},
			  "spec": {
			    "x-scheduling-hint": "edge",
			    "initContainers": [{"name": "mesh-proxy", "image": "proxy:1", "restartPolicy": "Always",
			      "x-proxy-mode": "transparent"}],
			    "containers": [{"name": "gateway", "image": "gw:1", "x-device-port": "/dev/ttyUSB0"}]
			  }
			}`, ns))
			resp := review(ns, raw)
			Expect(resp.Allowed).To(BeTrue())
			patch, err := jsonpatch.DecodePatch(resp.Patch)
			Expect(err).NotTo(HaveOccurred())
			out, err := patch.Apply(raw)
			Expect(err).NotTo(HaveOccurred())

			var pod map[string]any
			Expect(json.Unmarshal(out, &pod)).To(Succeed())
			spec := pod["spec"].(map[string]any)
			Expect(pod).To(HaveKeyWithValue("x-vendor", map[string]any{"ward": 3.0}))
			Expect(spec).To(HaveKeyWithValue("x-scheduling-hint", "edge"))
			inits := spec["initContainers"].([]any)
			Expect(inits).To(HaveLen(2))
			Expect(inits[0]).To(Equal(map[string]any{"name": "mesh-proxy", "image": "proxy:1",
				"restartPolicy": "Always", "x-proxy-mode": "transparent"}))
			Expect(spec["containers"].([]any)[0]).To(HaveKeyWithValue("x-device-port", "/dev/ttyUSB0"))
		})
	})

	Context("when a pod is out of scope", func() {
		DescribeTable("should store the pod as sent",
			func(namespace func() string, labelled bool) {
				b := newPod(namespace(), "p-"+randomSuffix()).runsAs("anyone")
				if labelled {
					b.device("no-such-device")
				}
				pod, err := create(b.build())
				Expect(err).NotTo(HaveOccurred(), "neither webhook acts on it")
				DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, pod))).To(Succeed()) })
				Expect(identityVolumes(pod)).To(BeEmpty())
				Expect(pod.Spec.InitContainers).To(BeEmpty())
				for _, c := range pod.Spec.Containers {
					Expect(identityMounts(c)).To(BeEmpty())
				}
			},
			Entry("a pod without the device label", func() string { return ns }, false),
			Entry("a device pod in kube-system", func() string { return "kube-system" }, true),
			Entry("a device pod in the operator's namespace", func() string { return operatorNamespace }, true),
			Entry("a device pod in a namespace labelled out", optedOut, true),
		)
	})
})

// optedOut creates a namespace that has turned both webhooks off.
func optedOut() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   "opted-out-" + randomSuffix(),
		Labels: map[string]string{iomtwebhook.AdmissionLabel: iomtwebhook.AdmissionDisabled},
	}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// review sends a pod creation straight to the injector on the webhook
// server and returns its answer.
func review(ns string, pod []byte) *admissionv1.AdmissionResponse {
	GinkgoHelper()
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "review-1",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Operation: admissionv1.Create,
			Namespace: ns,
		},
	})
	Expect(err).NotTo(HaveOccurred())
	// The pod goes in as sent, byte for byte.
	body = bytes.Replace(body, []byte(`"operation":"CREATE"`),
		append([]byte(`"operation":"CREATE","object":`), pod...), 1)

	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: servingCAs}}}
	url := "https://" + net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)) + iomtwebhook.MutatePodPath
	res, err := httpc.Post(url, "application/json", bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	Expect(err).NotTo(HaveOccurred())
	Expect(res.StatusCode).To(Equal(http.StatusOK), string(data))

	var out admissionv1.AdmissionReview
	Expect(json.Unmarshal(data, &out)).To(Succeed())
	Expect(out.Response).NotTo(BeNil())
	return out.Response
}
