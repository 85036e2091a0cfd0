package webhook

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

const testImage = "registry.example/iomt/verifier:1.0.0"

var testOptions = Options{VerifierImage: testImage}.withDefaults()

// plainPod is a device pod with two app containers, one already mounting a
// volume of its own.
const plainPod = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "gw", "namespace": "ward-3", "labels": {"iomt.medinaii.io/device": "pump-7"}},
  "spec": {
    "containers": [
      {"name": "gateway", "image": "gw:1", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
      {"name": "adapter", "image": "adapter:1"}
    ],
    "volumes": [{"name": "data", "emptyDir": {}}]
  }
}`

// sidecarPod brings its own native sidecar and fields no schema knows of,
// including a number too large for a float64 to hold exactly.
const sidecarPod = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "gw", "namespace": "ward-3", "labels": {"iomt.medinaii.io/device": "pump-7"}},
  "x-top": {"kept": true},
  "spec": {
    "x-spec": [1, 2, 3],
    "initContainers": [
      {"name": "setup", "image": "setup:1"},
      {"name": "mesh-proxy", "image": "proxy:1", "restartPolicy": "Always",
       "x-container": {"answer": 42},
       "volumeMounts": [{"name": "proxy-certs", "mountPath": "/certs"}]}
    ],
    "containers": [{"name": "gateway", "image": "gw:1", "x-future": "kept",
      "securityContext": {"runAsUser": 9007199254740993}}],
    "volumes": [{"name": "proxy-certs", "secret": {"secretName": "proxy"}}]
  }
}`

func TestIdentityInjector(t *testing.T) {
	injected := mustApply(t, plainPod, handle(t, plainPod, "ward-3", admissionv1.Create))

	tests := []struct {
		name      string
		pod       string
		namespace string
		op        admissionv1.Operation
		// wantPatch is false when the pod must be let through as it is.
		wantPatch bool
		check     func(t *testing.T, before, after map[string]any)
	}{
		{name: "a plain device pod gets the volume, the mounts and the sidecar",
			pod: plainPod, namespace: "ward-3", op: admissionv1.Create, wantPatch: true,
			check: checkInjected},
		{name: "a pod's own native sidecar and unknown fields survive untouched",
			pod: sidecarPod, namespace: "ward-3", op: admissionv1.Create, wantPatch: true,
			check: func(t *testing.T, before, after map[string]any) {
				checkInjected(t, before, after)
				for _, path := range [][]string{{"x-top"}, {"spec", "x-spec"}} {
					if !reflect.DeepEqual(dig(before, path...), dig(after, path...)) {
						t.Errorf("%v changed: %v", path, dig(after, path...))
					}
				}
				inits := dig(after, "spec", "initContainers").([]any)
				oldInits := dig(before, "spec", "initContainers").([]any)
				if !reflect.DeepEqual(inits[:2], oldInits) {
					t.Errorf("the pod's init containers changed:\n%v\nwant\n%v", inits[:2], oldInits)
				}
				main := dig(after, "spec", "containers").([]any)[0].(map[string]any)
				if main["x-future"] != "kept" {
					t.Errorf("unknown container field lost: %v", main)
				}
				uid := dig(main, "securityContext", "runAsUser").(json.Number)
				if uid.String() != "9007199254740993" {
					t.Errorf("runAsUser = %s, want it unchanged", uid)
				}
			}},
		{name: "an injected pod comes back unchanged with an empty patch",
			pod: injected, namespace: "ward-3", op: admissionv1.Create},
		{name: "a pod in kube-system is untouched",
			pod: plainPod, namespace: "kube-system", op: admissionv1.Create},
		{name: "a pod in the operator's namespace is untouched",
			pod: plainPod, namespace: DefaultOperatorNamespace, op: admissionv1.Create},
		{name: "a pod without the device label is untouched",
			pod:       strings.Replace(plainPod, `"iomt.medinaii.io/device"`, `"app"`, 1),
			namespace: "ward-3", op: admissionv1.Create},
		{name: "a pod with an empty device label is left to the binding check",
			pod: strings.Replace(plainPod, `"pump-7"`, `""`, 1), namespace: "ward-3",
			op: admissionv1.Create},
		{name: "a label that cannot name a device is left to the binding check",
			pod: strings.Replace(plainPod, `"pump-7"`, `"Pump_7"`, 1), namespace: "ward-3",
			op: admissionv1.Create},
		{name: "an update is never patched",
			pod: plainPod, namespace: "ward-3", op: admissionv1.Update},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := handle(t, tt.pod, tt.namespace, tt.op)
			if !resp.Allowed {
				t.Fatalf("refused: %v", resp.Result)
			}
			if !tt.wantPatch {
				if len(resp.Patches) != 0 || resp.PatchType != nil {
					t.Fatalf("patched a pod it must leave alone: %v", resp.Patches)
				}
				return
			}
			for _, op := range resp.Patches {
				if op.Operation != "add" {
					t.Errorf("patch %s %s: only add operations are expected", op.Operation, op.Path)
				}
			}
			after := mustApply(t, tt.pod, resp)
			tt.check(t, decode(t, tt.pod), decode(t, after))

			// Run again on its own output, as a reinvocation would.
			again := handle(t, after, tt.namespace, tt.op)
			if !again.Allowed || len(again.Patches) != 0 {
				t.Fatalf("second injection patched again: %v", again.Patches)
			}
		})
	}
}

// TestIdentityInjectorAddsToLateContainers covers a reinvocation after a
// later webhook added a container: only that container gets a mount.
func TestIdentityInjectorAddsToLateContainers(t *testing.T) {
	injected := decode(t, mustApply(t, plainPod, handle(t, plainPod, "ward-3", admissionv1.Create)))
	spec := injected["spec"].(map[string]any)
	spec["containers"] = append(spec["containers"].([]any),
		map[string]any{"name": "late", "image": "late:1"})
	raw, _ := json.Marshal(injected)

	resp := handle(t, string(raw), "ward-3", admissionv1.Create)
	if len(resp.Patches) != 1 || resp.Patches[0].Path != "/spec/containers/2/volumeMounts" {
		t.Fatalf("patches = %v, want one mount for the late container", resp.Patches)
	}
}

// TestIdentityInjectorOnlyInDeviceNamespaces covers Options.DeviceNamespaces:
// a device pod is injected only where the operator issues identities, and
// elsewhere is let through as sent, also when the API server reinvokes.
func TestIdentityInjectorOnlyInDeviceNamespaces(t *testing.T) {
	// The pod is always created in ward-3; the list varies.
	tests := []struct {
		name       string
		namespaces []string
		wantPatch  bool
	}{
		{name: "a device pod in a listed namespace is injected",
			namespaces: []string{"icu", "ward-3"}, wantPatch: true},
		{name: "a device pod in an unlisted namespace is left as sent",
			namespaces: []string{"icu", "radiology"}},
		{name: "a nil list injects in every namespace", namespaces: nil, wantPatch: true},
		{name: "an empty list injects in no namespace", namespaces: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions
			opts.DeviceNamespaces = tt.namespaces
			h := &IdentityInjector{Options: opts}
			resp := h.Handle(context.Background(), createRequest(plainPod, "ward-3"))
			if !resp.Allowed {
				t.Fatalf("refused: %v", resp.Result)
			}
			if !tt.wantPatch {
				if len(resp.Patches) != 0 || resp.PatchType != nil {
					t.Fatalf("patched a pod outside the device namespaces: %v", resp.Patches)
				}
				return
			}
			after := mustApply(t, plainPod, resp)
			checkInjected(t, decode(t, plainPod), decode(t, after))
			again := h.Handle(context.Background(), createRequest(after, "ward-3"))
			if !again.Allowed || len(again.Patches) != 0 {
				t.Fatalf("reinvocation patched again: %v", again.Patches)
			}
		})
	}

	// A pod that already carries what the injector would add, in a namespace
	// outside the list, is not touched or refused either: what the injector
	// reserves matters only where it injects.
	t.Run("an unlisted namespace leaves even a pod using the reserved names alone", func(t *testing.T) {
		injected := mustApply(t, plainPod, handle(t, plainPod, "ward-3", admissionv1.Create))
		clash := strings.Replace(plainPod, `{"name": "data", "emptyDir": {}}`,
			`{"name": "iomt-identity", "emptyDir": {}}`, 1)
		opts := testOptions
		opts.DeviceNamespaces = []string{"icu"}
		h := &IdentityInjector{Options: opts}
		for _, pod := range []string{injected, clash} {
			resp := h.Handle(context.Background(), createRequest(pod, "ward-3"))
			if !resp.Allowed || len(resp.Patches) != 0 {
				t.Fatalf("got allowed=%v patches=%v, want admitted as sent", resp.Allowed, resp.Patches)
			}
		}
	})
}

func TestIdentityInjectorRefusesReservedNames(t *testing.T) {
	tests := []struct {
		name    string
		from    string
		to      string
		message string
	}{
		{"a volume of the pod's own named like the identity",
			`{"name": "data", "emptyDir": {}}`, `{"name": "iomt-identity", "emptyDir": {}}`,
			`volume "iomt-identity" is reserved`},
		{"the identity mounted through subPath",
			`{"name": "data", "mountPath": "/data"}`,
			`{"name": "iomt-identity", "mountPath": "/var/run/iomt/identity", "subPath": "tls.crt"}`,
			"subPath"},
		{"the identity mounted elsewhere",
			`{"name": "data", "mountPath": "/data"}`,
			`{"name": "iomt-identity", "mountPath": "/identity"}`,
			"mounted at /var/run/iomt/identity"},
		{"another volume where the identity goes",
			`{"name": "data", "mountPath": "/data"}`,
			`{"name": "data", "mountPath": "/var/run/iomt/identity"}`,
			"where the device identity goes"},
		{"an app container named like the verifier",
			`"name": "adapter"`, `"name": "iomt-verifier"`,
			`container name "iomt-verifier" is reserved`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := strings.Replace(plainPod, tt.from, tt.to, 1)
			if pod == plainPod {
				t.Fatalf("test pod unchanged: %q not found", tt.from)
			}
			resp := handle(t, pod, "ward-3", admissionv1.Create)
			if resp.Allowed {
				t.Fatalf("admitted, want refused")
			}
			if !strings.Contains(resp.Result.Message, tt.message) {
				t.Errorf("message %q does not say %q", resp.Result.Message, tt.message)
			}
		})
	}

	t.Run("an init container named like the verifier", func(t *testing.T) {
		pod := strings.Replace(sidecarPod, `"name": "setup"`, `"name": "iomt-verifier"`, 1)
		resp := handle(t, pod, "ward-3", admissionv1.Create)
		if resp.Allowed || !strings.Contains(resp.Result.Message, "reserved for the verifier") {
			t.Fatalf("got %v, want refused as reserved", resp.Result)
		}
	})
}

// checkInjected checks what the injector must add to any device pod.
func checkInjected(t *testing.T, before, after map[string]any) {
	t.Helper()
	var pod corev1.Pod
	raw, _ := json.Marshal(after)
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}

	var vols []corev1.Volume
	for _, v := range pod.Spec.Volumes {
		if v.Name == IdentityVolumeName {
			vols = append(vols, v)
		}
	}
	if len(vols) != 1 || vols[0].Projected == nil || len(vols[0].Projected.Sources) != 2 {
		t.Fatalf("identity volumes = %+v, want one projected volume with two sources", vols)
	}
	src := vols[0].Projected.Sources
	if src[0].Secret == nil || src[0].Secret.Name != "pump-7-identity" ||
		!reflect.DeepEqual(keys(src[0].Secret.Items), []string{"tls.crt", "tls.key", "ca.crt"}) {
		t.Errorf("secret source = %+v", src[0].Secret)
	}
	if src[1].ConfigMap == nil || src[1].ConfigMap.Name != iomtv1.TrustBundleName ||
		len(src[1].ConfigMap.Items) != 1 || src[1].ConfigMap.Items[0].Path != "bundle.crt" {
		t.Errorf("trust bundle source = %+v", src[1].ConfigMap)
	}
	if n := len(before["spec"].(map[string]any)["volumes"].([]any)); len(pod.Spec.Volumes) != n+1 {
		t.Errorf("%d volumes, want the pod's %d and the identity", len(pod.Spec.Volumes), n)
	}

	for _, c := range pod.Spec.Containers {
		checkMount(t, c)
	}
	last := pod.Spec.InitContainers[len(pod.Spec.InitContainers)-1]
	if last.Name != VerifierContainerName || last.Image != testImage {
		t.Fatalf("last init container = %s (%s), want the verifier", last.Name, last.Image)
	}
	checkMount(t, last)
	if last.RestartPolicy == nil || *last.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("verifier restartPolicy = %v, want Always", last.RestartPolicy)
	}
	if !slices.Contains(last.Args, "--identity-dir=/var/run/iomt/identity") ||
		!slices.Contains(last.Args, "--device=ward-3/pump-7") {
		t.Errorf("verifier args = %v", last.Args)
	}
	sc := last.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem ||
		!reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("verifier securityContext is not restricted: %+v", sc)
	}
	if last.Resources.Requests.Cpu().IsZero() || last.Resources.Limits.Memory().IsZero() {
		t.Errorf("verifier resources = %+v, want requests and limits", last.Resources)
	}
}

func checkMount(t *testing.T, c corev1.Container) {
	t.Helper()
	var found []corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if m.Name == IdentityVolumeName {
			found = append(found, m)
		}
	}
	want := corev1.VolumeMount{Name: IdentityVolumeName, MountPath: iomtv1.IdentityMountPath, ReadOnly: true}
	if len(found) != 1 || !reflect.DeepEqual(found[0], want) {
		t.Errorf("container %s identity mounts = %+v, want exactly %+v", c.Name, found, want)
	}
}

func handle(t *testing.T, pod, namespace string, op admissionv1.Operation) admission.Response {
	t.Helper()
	h := &IdentityInjector{Options: testOptions}
	req := createRequest(pod, namespace)
	req.Operation = op
	if op == admissionv1.Update {
		req.OldObject = req.Object
	}
	return h.Handle(context.Background(), req)
}

// createRequest is the admission request for creating pod in namespace.
func createRequest(pod, namespace string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: admissionv1.Create, Namespace: namespace,
		Object: runtime.RawExtension{Raw: []byte(pod)},
	}}
}

// mustApply applies a response's patch to pod.
func mustApply(t *testing.T, pod string, resp admission.Response) string {
	t.Helper()
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply([]byte(pod))
	if err != nil {
		t.Fatalf("failed to apply %s: %v", ops, err)
	}
	return string(out)
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	doc, err := decodeObject([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func dig(obj any, path ...string) any {
	for _, p := range path {
		m, ok := obj.(map[string]any)
		if !ok {
			return nil
		}
		obj = m[p]
	}
	return obj
}

func keys(items []corev1.KeyToPath) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}
