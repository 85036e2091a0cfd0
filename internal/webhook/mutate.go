package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// IdentityInjector is the mutating webhook for pod creation. A pod labelled
// iomt.medinaii.io/device=<name> gets the device's identity mounted read-only
// in every app container and the verifier as a native sidecar, unless its
// namespace is not one of Options.DeviceNamespaces. Anything else is let
// through untouched.
type IdentityInjector struct {
	// Options says which namespaces are out of reach, where identities are
	// issued and which verifier image to add.
	Options Options
	// Reader reads the pod's MedicalDevice, whose spec.verification sets
	// the verifier's arguments; nil leaves them at their defaults.
	Reader client.Reader
}

var _ admission.Handler = &IdentityInjector{}

// Handle answers one admission request with the JSON patch that injects the
// pod, or no patch at all.
func (h *IdentityInjector) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || h.Options.excluded(req.Namespace) {
		return admission.Allowed("")
	}
	labels, err := podLabels(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	device := labels[iomtv1.DeviceLabel]
	if device == "" || len(validation.IsDNS1123Subdomain(device)) > 0 {
		// Not a device pod; or one whose label cannot name a device, which
		// the binding check refuses with the reason.
		return admission.Allowed("")
	}

	if !h.Options.issuesIdentity(req.Namespace) {
		// No identity Secret is ever written here: mounting one would keep
		// the pod from starting.
		log.FromContext(ctx).V(1).Info("Not injecting device identity: the namespace is not "+
			"one of the operator's device namespaces", "device", device)
		return admission.Allowed("")
	}

	var dev *iomtv1.MedicalDevice
	if h.Reader != nil {
		var d iomtv1.MedicalDevice
		err := h.Reader.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: device}, &d)
		switch {
		case err == nil:
			dev = &d
		case !apierrors.IsNotFound(err):
			return admission.Errored(http.StatusInternalServerError,
				fmt.Errorf("failed to read MedicalDevice %s: %w", device, err))
		}
	}
	in := injector{verifierImage: h.Options.VerifierImage,
		verifierArgs: verifierArgs(req.Namespace, device, dev, h.Options)}
	out, changed, err := in.inject(req.Object.Raw, device)
	var refused *conflictError
	switch {
	case errors.As(err, &refused):
		return admission.Denied(refused.Error())
	case err != nil:
		return admission.Errored(http.StatusBadRequest, err)
	case !changed:
		return admission.Allowed("")
	}
	log.FromContext(ctx).Info("Injecting device identity", "device", device)
	return admission.PatchResponseFromRaw(req.Object.Raw, out)
}

// podLabels reads only the labels of a pod in JSON.
func podLabels(raw []byte) (map[string]string, error) {
	var obj struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("failed to decode pod: %w", err)
	}
	return obj.Metadata.Labels, nil
}
