package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	iomtwebhook "github.com/medinaii/iomt-operator/internal/webhook"
)

// newNamespace creates a namespace with a random name for one test.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "clinic-" + rand.String(6)}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// newDevice creates a MedicalDevice whose pods run as sa (none when empty)
// and waits until the webhooks can see it.
func newDevice(ns, name, sa string) *iomtv1.MedicalDevice {
	d := &iomtv1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: iomtv1.MedicalDeviceSpec{
			Class:        iomtv1.ClassInfusionPump,
			Criticality:  iomtv1.CriticalityHigh,
			Manufacturer: "Baxter",
			Model:        "Sigma Spectrum",
		},
	}
	if sa != "" {
		d.Spec.Workload = &iomtv1.Workload{ServiceAccountName: sa}
	}
	Expect(k8s.Create(ctx, d)).To(Succeed())
	Eventually(func() error {
		return cached.Get(ctx, client.ObjectKeyFromObject(d), &iomtv1.MedicalDevice{})
	}).Should(Succeed())
	return d
}

// podBuilder builds pods for tests.
type podBuilder struct{ p corev1.Pod }

func newPod(ns, name string) *podBuilder {
	return &podBuilder{p: corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{
				{Name: "gateway", Image: "registry.example/gw:1"},
				{Name: "adapter", Image: "registry.example/adapter:1",
					VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}},
			},
			Volumes: []corev1.Volume{{
				Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
			}},
		},
	}}
}

func (b *podBuilder) device(name string) *podBuilder {
	b.p.Labels[iomtv1.DeviceLabel] = name
	return b
}

func (b *podBuilder) label(k, v string) *podBuilder { b.p.Labels[k] = v; return b }

func (b *podBuilder) runsAs(sa string) *podBuilder { b.p.Spec.ServiceAccountName = sa; return b }

func (b *podBuilder) initContainer(c corev1.Container) *podBuilder {
	b.p.Spec.InitContainers = append(b.p.Spec.InitContainers, c)
	return b
}

func (b *podBuilder) build() *corev1.Pod { return b.p.DeepCopy() }

// create sends the pod through the API server and returns what it stored.
func create(p *corev1.Pod) (*corev1.Pod, error) {
	if err := k8s.Create(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

func identityVolumes(p *corev1.Pod) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range p.Spec.Volumes {
		if v.Name == iomtwebhook.IdentityVolumeName {
			out = append(out, v)
		}
	}
	return out
}

func identityMounts(c corev1.Container) []corev1.VolumeMount {
	var out []corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if m.Name == iomtwebhook.IdentityVolumeName || m.MountPath == iomtv1.IdentityMountPath {
			out = append(out, m)
		}
	}
	return out
}

func verifiers(p *corev1.Pod) []corev1.Container {
	var out []corev1.Container
	for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
		if c.Name == iomtwebhook.VerifierContainerName {
			out = append(out, c)
		}
	}
	return out
}

// lateSidecar is a second mutating webhook, called after the injector, that
// adds a container of its own. The API server then calls the injector
// again, which must mount the identity into that container and change
// nothing else.
type lateSidecar struct {
	// sawInjected records, per pod name, whether the pod already carried the
	// verifier when this webhook saw it, which proves the injector ran first.
	sawInjected sync.Map
}

const (
	lateSidecarPath  = "/test/late-sidecar"
	lateSidecarLabel = "webhook.test/late-sidecar"
	lateSidecarName  = "late"
)

func (l *lateSidecar) Handle(_ context.Context, req admission.Request) admission.Response {
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	l.sawInjected.Store(pod.Name, len(verifiers(&pod)) > 0)
	for _, c := range pod.Spec.Containers {
		if c.Name == lateSidecarName {
			return admission.Allowed("")
		}
	}
	var doc map[string]any
	if err := json.Unmarshal(req.Object.Raw, &doc); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	spec := doc["spec"].(map[string]any)
	spec["containers"] = append(spec["containers"].([]any),
		map[string]any{"name": lateSidecarName, "image": "registry.example/late:1"})
	out, err := json.Marshal(doc)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, out)
}

// lateSidecarConfiguration sorts after the injector's configuration, and the
// API server calls webhooks in that order.
func lateSidecarConfiguration() *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "zz-late-sidecar"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "late-sidecar.webhook.test",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{
					Namespace: "default", Name: "late-sidecar", Path: ptr.To(lateSidecarPath),
				},
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
				},
			}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: lateSidecarLabel, Operator: metav1.LabelSelectorOpExists,
			}}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		}},
	}
}
