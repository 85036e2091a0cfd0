package webhook

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// MutatingConfiguration returns the MutatingWebhookConfiguration that sends
// the creation of device pods to the identity injector. Its caBundle is left
// empty: the operator or cert-manager fills it in.
func MutatingConfiguration(opts Options) *admissionregistrationv1.MutatingWebhookConfiguration {
	opts = opts.withDefaults()
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{
			APIVersion: admissionregistrationv1.SchemeGroupVersion.String(),
			Kind:       "MutatingWebhookConfiguration",
		},
		ObjectMeta: metav1.ObjectMeta{Name: opts.ConfigurationName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    MutatingWebhookName,
			ClientConfig:            clientConfig(opts, MutatePodPath),
			Rules:                   podRules(admissionregistrationv1.Create),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       namespaceSelector(opts),
			ObjectSelector:          deviceSelector(),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
			// Called again when a later webhook changes the pod, so that a
			// container added after the injection gets the identity too.
			ReinvocationPolicy: ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		}},
	}
}

// ValidatingConfiguration returns the ValidatingWebhookConfiguration that
// sends device pods, when created and when their labels may change, to the
// workload binding check.
func ValidatingConfiguration(opts Options) *admissionregistrationv1.ValidatingWebhookConfiguration {
	opts = opts.withDefaults()
	createOrUpdate := []admissionregistrationv1.OperationType{
		admissionregistrationv1.Create, admissionregistrationv1.Update,
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{
			APIVersion: admissionregistrationv1.SchemeGroupVersion.String(),
			Kind:       "ValidatingWebhookConfiguration",
		},
		ObjectMeta: metav1.ObjectMeta{Name: opts.ConfigurationName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    ValidatingWebhookName,
			ClientConfig:            clientConfig(opts, ValidatePodPath),
			Rules:                   podRules(createOrUpdate...),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       namespaceSelector(opts),
			ObjectSelector:          deviceSelector(),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

func clientConfig(opts Options, path string) admissionregistrationv1.WebhookClientConfig {
	return admissionregistrationv1.WebhookClientConfig{
		Service: &admissionregistrationv1.ServiceReference{
			Namespace: opts.OperatorNamespace,
			Name:      opts.ServiceName,
			Path:      ptr.To(path),
			Port:      ptr.To[int32](443),
		},
	}
}

func podRules(ops ...admissionregistrationv1.OperationType) []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: ops,
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{""},
			APIVersions: []string{"v1"},
			Resources:   []string{"pods"},
			Scope:       ptr.To(admissionregistrationv1.NamespacedScope),
		},
	}}
}

// namespaceSelector leaves out kube-system, the operator's namespace and
// namespaces labelled out. The handlers check the first two in code as well,
// so a configuration edited by hand cannot widen their reach.
func namespaceSelector(opts Options) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key:      corev1.LabelMetadataName,
		Operator: metav1.LabelSelectorOpNotIn,
		Values:   []string{"kube-system", opts.OperatorNamespace},
	}, {
		Key:      AdmissionLabel,
		Operator: metav1.LabelSelectorOpNotIn,
		Values:   []string{AdmissionDisabled},
	}}}
}

// deviceSelector picks pods that carry the device label, whatever its
// value; on update, the API server matches the old pod as well as the new.
func deviceSelector() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: iomtv1.DeviceLabel, Operator: metav1.LabelSelectorOpExists,
	}}}
}
