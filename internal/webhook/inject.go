package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// What the injector adds to a device pod.
const (
	// IdentityVolumeName is the projected volume with the device identity.
	IdentityVolumeName = "iomt-identity"
	// VerifierContainerName is the verifier sidecar's init container.
	VerifierContainerName = "iomt-verifier"
	// TrustBundleKey is the trust bundle's key in its ConfigMap, and
	// TrustBundlePath the file it becomes in the identity directory.
	TrustBundleKey  = "ca.crt"
	TrustBundlePath = "bundle.crt"
	// identityCAKey holds the issuing CA in the identity Secret.
	identityCAKey = "ca.crt"

	// verifierUser is the numeric user the verifier runs as, so that
	// runAsNonRoot holds whatever user the image names.
	verifierUser = 65532
)

// verifierResources are the sidecar's requests and limits. They are equal so
// that a pod with Guaranteed QoS keeps it after injection.
//
// TODO: they cannot be set per cluster or per device, so a namespace whose
// ResourceQuota has no room for them refuses every device pod.
var verifierResources = corev1.ResourceList{
	corev1.ResourceCPU:    resource.MustParse("50m"),
	corev1.ResourceMemory: resource.MustParse("64Mi"),
}

// conflictError says a pod claims a name the injector reserves, so injecting
// would either break the pod or leave it without its identity.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

func conflict(format string, args ...any) error {
	return &conflictError{msg: fmt.Sprintf(format, args...)}
}

// injector adds the device identity and the verifier sidecar to a pod.
type injector struct {
	verifierImage string
	// verifierArgs are the verifier's command line.
	verifierArgs []string
}

// inject returns raw, a Pod in JSON, with the identity volume of device
// mounted in every app container and the verifier appended to its init
// containers. What is already in place is left as it is, so a pod that was
// injected before comes back unchanged with changed false. The document is
// edited as generic JSON: fields this package does not know survive.
func (in injector) inject(raw []byte, device string) (out []byte, changed bool, err error) {
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return nil, false, fmt.Errorf("failed to decode pod: %w", err)
	}
	doc, err := decodeObject(raw)
	if err != nil {
		return nil, false, fmt.Errorf("failed to decode pod: %w", err)
	}
	spec, ok := doc["spec"].(map[string]any)
	if !ok {
		return nil, false, fmt.Errorf("failed to decode pod: spec is missing")
	}

	// The identity volume.
	addVolume, err := needsVolume(pod.Spec.Volumes, device)
	if err != nil {
		return nil, false, err
	}
	if addVolume {
		if err := appendItem(spec, "volumes", identityVolume(device)); err != nil {
			return nil, false, err
		}
		changed = true
	}

	// Its mount in every app container.
	containers, _ := spec["containers"].([]any)
	if len(containers) != len(pod.Spec.Containers) {
		return nil, false, fmt.Errorf("failed to decode pod: containers do not line up")
	}
	for i, c := range pod.Spec.Containers {
		add, err := needsMount(c)
		if err != nil {
			return nil, false, err
		}
		if !add {
			continue
		}
		cm, ok := containers[i].(map[string]any)
		if !ok {
			return nil, false, fmt.Errorf("failed to decode pod: container %d is not an object", i)
		}
		if err := appendItem(cm, "volumeMounts", identityMount()); err != nil {
			return nil, false, err
		}
		changed = true
	}

	// The verifier, last among the init containers, so that the pod's own
	// init steps and sidecars keep their order.
	addVerifier, err := in.needsVerifier(pod.Spec)
	if err != nil {
		return nil, false, err
	}
	if addVerifier {
		if err := appendItem(spec, "initContainers", in.verifier()); err != nil {
			return nil, false, err
		}
		changed = true
	}

	if !changed {
		return raw, false, nil
	}
	out, err = json.Marshal(doc)
	if err != nil {
		return nil, false, fmt.Errorf("failed to encode pod: %w", err)
	}
	return out, true, nil
}

// needsVolume reports whether the identity volume is still to be added. A
// volume of that name that is not the identity is refused.
func needsVolume(volumes []corev1.Volume, device string) (bool, error) {
	i := slices.IndexFunc(volumes, func(v corev1.Volume) bool { return v.Name == IdentityVolumeName })
	if i < 0 {
		return true, nil
	}
	if !isIdentityVolume(volumes[i], device) {
		return false, conflict("volume %q is reserved for the identity of device %q: "+
			"rename the pod's volume", IdentityVolumeName, device)
	}
	return false, nil
}

// isIdentityVolume reports whether v projects device's identity Secret and
// the trust bundle.
func isIdentityVolume(v corev1.Volume, device string) bool {
	if v.Projected == nil {
		return false
	}
	var secret, bundle bool
	for _, s := range v.Projected.Sources {
		if s.Secret != nil && s.Secret.Name == iomtv1.IdentitySecretName(device) {
			secret = true
		}
		if s.ConfigMap != nil && s.ConfigMap.Name == iomtv1.TrustBundleName {
			bundle = true
		}
	}
	return secret && bundle
}

// needsMount reports whether container c still lacks the identity mount. A
// container that mounts the identity through subPath, or mounts something
// else where the identity goes, is refused: either way it would not see the
// certificate that the verifier checks, nor its renewals.
func needsMount(c corev1.Container) (bool, error) {
	for _, m := range c.VolumeMounts {
		switch {
		case m.Name == IdentityVolumeName && (m.SubPath != "" || m.SubPathExpr != ""):
			return false, conflict("container %q mounts volume %q with subPath, which never "+
				"sees a renewed certificate: mount the whole volume", c.Name, IdentityVolumeName)
		case m.Name == IdentityVolumeName && m.MountPath != iomtv1.IdentityMountPath:
			return false, conflict("container %q mounts volume %q at %s: the device identity "+
				"is mounted at %s", c.Name, IdentityVolumeName, m.MountPath, iomtv1.IdentityMountPath)
		case m.Name == IdentityVolumeName:
			return false, nil
		case m.MountPath == iomtv1.IdentityMountPath:
			return false, conflict("container %q mounts volume %q at %s, where the device "+
				"identity goes: mount it elsewhere", c.Name, m.Name, iomtv1.IdentityMountPath)
		}
	}
	return true, nil
}

// needsVerifier reports whether the verifier is still to be added. Its name
// is reserved: only the verifier this webhook adds may carry it.
func (in injector) needsVerifier(spec corev1.PodSpec) (bool, error) {
	if slices.ContainsFunc(spec.Containers, func(c corev1.Container) bool {
		return c.Name == VerifierContainerName
	}) {
		return false, conflict("container name %q is reserved for the verifier sidecar: "+
			"rename the pod's container", VerifierContainerName)
	}
	i := slices.IndexFunc(spec.InitContainers, func(c corev1.Container) bool {
		return c.Name == VerifierContainerName
	})
	if i < 0 {
		return true, nil
	}
	c := spec.InitContainers[i]
	if c.Image != in.verifierImage || c.RestartPolicy == nil ||
		*c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		return false, conflict("init container name %q is reserved for the verifier sidecar "+
			"(image %s): rename the pod's init container", VerifierContainerName, in.verifierImage)
	}
	return false, nil
}

// identityVolume projects the device's key pair and CA with the namespace's
// trust bundle into one directory. A projected volume is updated in place
// when the Secret or the ConfigMap changes.
func identityVolume(device string) corev1.Volume {
	return corev1.Volume{
		Name: IdentityVolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{
					LocalObjectReference: corev1.LocalObjectReference{
						Name: iomtv1.IdentitySecretName(device),
					},
					Items: []corev1.KeyToPath{
						{Key: corev1.TLSCertKey, Path: corev1.TLSCertKey},
						{Key: corev1.TLSPrivateKeyKey, Path: corev1.TLSPrivateKeyKey},
						{Key: identityCAKey, Path: identityCAKey},
					},
				}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: iomtv1.TrustBundleName},
					Items:                []corev1.KeyToPath{{Key: TrustBundleKey, Path: TrustBundlePath}},
				}},
			},
		}},
	}
}

func identityMount() corev1.VolumeMount {
	return corev1.VolumeMount{
		Name: IdentityVolumeName, MountPath: iomtv1.IdentityMountPath, ReadOnly: true,
	}
}

// verifier is the sidecar: an init container that keeps running beside the
// app containers, as restricted as the Pod Security Standards allow.
func (in injector) verifier() corev1.Container {
	return corev1.Container{
		Name:          VerifierContainerName,
		Image:         in.verifierImage,
		Args:          in.verifierArgs,
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Resources: corev1.ResourceRequirements{
			Requests: verifierResources.DeepCopy(),
			Limits:   verifierResources.DeepCopy(),
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To[int64](verifierUser),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{identityMount()},
	}
}

// decodeObject decodes a JSON object, keeping numbers as they were written.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return doc, nil
}

// appendItem appends item, encoded as generic JSON, to the list obj[key].
func appendItem(obj map[string]any, key string, item any) error {
	b, err := json.Marshal(item)
	if err != nil {
		return fmt.Errorf("failed to encode %s: %w", key, err)
	}
	v, err := decodeObject(b)
	if err != nil {
		return fmt.Errorf("failed to encode %s: %w", key, err)
	}
	list, _ := obj[key].([]any)
	obj[key] = append(list, v)
	return nil
}
