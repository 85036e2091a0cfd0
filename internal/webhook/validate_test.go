package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

func TestWorkloadBinding(t *testing.T) {
	devices := []client.Object{
		medicalDevice("ward-3", "pump-7", "pump-gateway"),
		medicalDevice("ward-3", "monitor-2", ""),
	}
	tests := []struct {
		name      string
		namespace string
		op        admissionv1.Operation
		old, pod  *corev1.Pod
		// want is empty for an admitted pod, else words the refusal says.
		want []string
	}{
		{name: "the device's workload is admitted",
			namespace: "ward-3", op: admissionv1.Create,
			pod: pod("pump-7", "pump-gateway")},
		{name: "another service account is refused, naming the device and the expected one",
			namespace: "ward-3", op: admissionv1.Create,
			pod:  pod("pump-7", "intruder"),
			want: []string{`MedicalDevice "pump-7"`, `"pump-gateway"`, `"intruder"`}},
		{name: "an empty service account is the default one",
			namespace: "ward-3", op: admissionv1.Create,
			pod:  pod("pump-7", ""),
			want: []string{`"pump-gateway"`, `runs as "default"`}},
		{name: "a device that does not exist is refused",
			namespace: "ward-3", op: admissionv1.Create,
			pod:  pod("pump-9", "pump-gateway"),
			want: []string{`MedicalDevice "pump-9" does not exist`, `"ward-3"`}},
		{name: "a device in another namespace does not count",
			namespace: "ward-4", op: admissionv1.Create,
			pod:  pod("pump-7", "pump-gateway"),
			want: []string{"does not exist", `"ward-4"`}},
		{name: "a device that names no workload is refused",
			namespace: "ward-3", op: admissionv1.Create,
			pod:  pod("monitor-2", "monitor-gateway"),
			want: []string{`MedicalDevice "monitor-2" names no workload`, "spec.workload.serviceAccountName"}},
		{name: "an empty label is refused",
			namespace: "ward-3", op: admissionv1.Create,
			pod:  pod("", "pump-gateway"),
			want: []string{"is empty"}},
		{name: "a pod without the label is admitted",
			namespace: "ward-3", op: admissionv1.Create,
			pod: pod("-", "intruder")},
		{name: "kube-system is out of reach",
			namespace: "kube-system", op: admissionv1.Create,
			pod: pod("pump-7", "intruder")},
		{name: "the operator's namespace is out of reach",
			namespace: DefaultOperatorNamespace, op: admissionv1.Create,
			pod: pod("pump-7", "intruder")},
		{name: "an update that adds the label is checked",
			namespace: "ward-3", op: admissionv1.Update,
			old: pod("-", "intruder"), pod: pod("pump-7", "intruder"),
			want: []string{`"pump-gateway"`}},
		{name: "an update that changes the label is checked",
			namespace: "ward-3", op: admissionv1.Update,
			old: pod("pump-7", "pump-gateway"), pod: pod("monitor-2", "pump-gateway"),
			want: []string{"names no workload"}},
		{name: "an update that keeps the label is admitted even when the binding is gone",
			namespace: "ward-3", op: admissionv1.Update,
			old: pod("pump-9", "intruder"), pod: pod("pump-9", "intruder")},
		{name: "an update that removes the label is admitted",
			namespace: "ward-3", op: admissionv1.Update,
			old: pod("pump-7", "intruder"), pod: pod("-", "intruder")},
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(devices...).Build()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &WorkloadBinding{Reader: c, Options: testOptions}
			resp := h.Handle(context.Background(), bindingRequest(t, tt.namespace, tt.op, tt.old, tt.pod))
			if len(tt.want) == 0 {
				if !resp.Allowed {
					t.Fatalf("refused: %s", resp.Result.Message)
				}
				return
			}
			if resp.Allowed {
				t.Fatalf("admitted, want refused")
			}
			if resp.Result.Code != http.StatusForbidden {
				t.Errorf("code = %d, want %d", resp.Result.Code, http.StatusForbidden)
			}
			for _, w := range tt.want {
				if !strings.Contains(resp.Result.Message, w) {
					t.Errorf("message %q does not say %s", resp.Result.Message, w)
				}
			}
		})
	}
}

// TestWorkloadBindingOutsideDeviceNamespaces covers a namespace where the
// operator issues no identity: the label still opens the device's flows,
// so the binding is checked there as anywhere else.
func TestWorkloadBindingOutsideDeviceNamespaces(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithObjects(medicalDevice("ward-3", "pump-7", "pump-gateway")).Build()
	opts := testOptions
	opts.DeviceNamespaces = []string{"icu"}
	h := &WorkloadBinding{Reader: c, Options: opts}

	resp := h.Handle(context.Background(),
		bindingRequest(t, "ward-3", admissionv1.Create, nil, pod("pump-7", "pump-gateway")))
	if !resp.Allowed {
		t.Errorf("the device's workload was refused: %s", resp.Result.Message)
	}
	resp = h.Handle(context.Background(),
		bindingRequest(t, "ward-3", admissionv1.Create, nil, pod("pump-7", "intruder")))
	if resp.Allowed {
		t.Errorf("a pod of another service account was admitted into the device's segment")
	}
}

func TestWorkloadBindingFailsClosed(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object,
			...client.GetOption) error {
			return errors.New("cache not synced")
		},
	}).Build()
	h := &WorkloadBinding{Reader: c, Options: testOptions}
	resp := h.Handle(context.Background(),
		bindingRequest(t, "ward-3", admissionv1.Create, nil, pod("pump-7", "pump-gateway")))
	if resp.Allowed || resp.Result.Code != http.StatusInternalServerError {
		t.Fatalf("got allowed=%v code=%d, want an error that refuses the pod",
			resp.Allowed, resp.Result.Code)
	}
}

func medicalDevice(ns, name, sa string) *iomtv1.MedicalDevice {
	d := &iomtv1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if sa != "" {
		d.Spec.Workload = &iomtv1.Workload{ServiceAccountName: sa}
	}
	return d
}

// pod returns a pod acting for device as service account sa; device "-"
// leaves the label out.
func pod(device, sa string) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Labels: map[string]string{"app": "gw"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "gateway", Image: "gw:1"}},
		},
	}
	if device != "-" {
		p.Labels[iomtv1.DeviceLabel] = device
	}
	return p
}

func bindingRequest(t *testing.T, ns string, op admissionv1.Operation, old, p *corev1.Pod) admission.Request {
	t.Helper()
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: op, Namespace: ns, Object: runtime.RawExtension{Raw: mustJSON(t, p)},
	}}
	if old != nil {
		req.OldObject = runtime.RawExtension{Raw: mustJSON(t, old)}
	}
	return req
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := iomtv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}
