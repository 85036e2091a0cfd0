package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// WorkloadBinding is the validating webhook for pods. A pod may carry
// iomt.medinaii.io/device=<name> only if MedicalDevice <name> exists in its
// namespace and names the pod's service account as its workload: the label
// is what puts a pod into the device's segment, so it must not be claimed by
// any other pod. The check runs when a pod is created and when an update
// adds the label or changes its value, in device namespaces and elsewhere
// alike: the label opens the device's flows whether or not the operator
// issues it an identity.
type WorkloadBinding struct {
	// Reader reads MedicalDevices, normally from the manager's cache.
	Reader client.Reader
	// Options says which namespaces are out of reach.
	Options Options
}

var _ admission.Handler = &WorkloadBinding{}

// Handle admits or refuses one pod.
func (h *WorkloadBinding) Handle(ctx context.Context, req admission.Request) admission.Response {
	if h.Options.excluded(req.Namespace) ||
		(req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return admission.Allowed("")
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("failed to decode pod: %w", err))
	}
	device, labelled := pod.Labels[iomtv1.DeviceLabel]
	if !labelled {
		return admission.Allowed("")
	}

	if req.Operation == admissionv1.Update {
		// Only a new claim is checked: a pod keeps running when its device
		// is deleted or rebound, and can still be updated then.
		was, err := podLabels(req.OldObject.Raw)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if old, ok := was[iomtv1.DeviceLabel]; ok && old == device {
			return admission.Allowed("")
		}
	}

	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	msg, err := h.refusal(ctx, req.Namespace, device, sa)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if msg != "" {
		log.FromContext(ctx).Info("Refused pod acting for a device", "device", device,
			"serviceAccount", sa)
		return admission.Denied(msg)
	}
	return admission.Allowed("")
}

// refusal says why a pod running as service account sa may not act for
// device in namespace, or nothing when it may.
func (h *WorkloadBinding) refusal(ctx context.Context, namespace, device, sa string) (string, error) {
	if device == "" {
		return fmt.Sprintf("label %s is empty: set it to the name of the MedicalDevice this pod "+
			"acts for, or remove it", iomtv1.DeviceLabel), nil
	}
	var dev iomtv1.MedicalDevice
	err := h.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: device}, &dev)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("pod is labelled %s=%s but MedicalDevice %q does not exist in "+
			"namespace %q: create it with spec.workload.serviceAccountName: %s, or fix the label",
			iomtv1.DeviceLabel, device, device, namespace, sa), nil
	case err != nil:
		return "", fmt.Errorf("failed to read MedicalDevice %s/%s: %w", namespace, device, err)
	case dev.Spec.Workload == nil || dev.Spec.Workload.ServiceAccountName == "":
		return fmt.Sprintf("MedicalDevice %q names no workload, so no pod may act for it: set its "+
			"spec.workload.serviceAccountName to the service account of its pods (this pod runs as %q)",
			device, sa), nil
	case dev.Spec.Workload.ServiceAccountName != sa:
		return fmt.Sprintf("MedicalDevice %q accepts pods running as service account %q only; "+
			"this pod runs as %q", device, dev.Spec.Workload.ServiceAccountName, sa), nil
	}
	return "", nil
}
