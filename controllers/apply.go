package controllers

import (
	"context"
	"fmt"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// FieldOwner is the field manager of everything the operator writes.
const FieldOwner = "iomt-operator"

// applyPolicy writes a NetworkPolicy by server-side apply unless the cached
// copy already says the same, so a steady cluster sees no writes. It reports
// whether it wrote.
func applyPolicy(ctx context.Context, c client.Client, want *networkingv1.NetworkPolicy,
	owner metav1.OwnerReference) (bool, error) {
	want.OwnerReferences = []metav1.OwnerReference{owner}

	var have networkingv1.NetworkPolicy
	err := c.Get(ctx, client.ObjectKeyFromObject(want), &have)
	switch {
	case err == nil && upToDate(&have, want):
		return false, nil
	case err != nil && !apierrors.IsNotFound(err):
		return false, fmt.Errorf("failed to read NetworkPolicy %s: %w", client.ObjectKeyFromObject(want), err)
	}

	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
	if err != nil {
		return false, fmt.Errorf("failed to convert NetworkPolicy %s: %w", want.Name, err)
	}
	obj := &unstructured.Unstructured{Object: u}
	unstructured.RemoveNestedField(obj.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(obj.Object, "status")
	// An empty rule list means "allow nothing" and must be ours too: left
	// out of the apply, a list someone else added (an allow-all [{}], say)
	// would survive.
	for _, dir := range []string{"ingress", "egress"} {
		if _, found, _ := unstructured.NestedSlice(obj.Object, "spec", dir); !found {
			if err := unstructured.SetNestedSlice(obj.Object, []any{}, "spec", dir); err != nil {
				return false, fmt.Errorf("failed to prepare NetworkPolicy %s: %w", want.Name, err)
			}
		}
	}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj),
		client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("failed to apply NetworkPolicy %s: %w", client.ObjectKeyFromObject(want), err)
	}
	log.FromContext(ctx).Info("Wrote NetworkPolicy", "networkPolicy", client.ObjectKeyFromObject(want),
		"ingressRules", len(want.Spec.Ingress), "egressRules", len(want.Spec.Egress))
	return true, nil
}

// upToDate reports whether have already carries want's spec, labels and
// owner. Labels or owners that others added are left alone.
func upToDate(have, want *networkingv1.NetworkPolicy) bool {
	return metaUpToDate(have, want) && equality.Semantic.DeepEqual(have.Spec, want.Spec)
}

// metaUpToDate reports whether have carries want's labels and is controlled
// by want's one owner.
func metaUpToDate(have, want metav1.Object) bool {
	for k, v := range want.GetLabels() {
		if have.GetLabels()[k] != v {
			return false
		}
	}
	owner := want.GetOwnerReferences()[0].UID
	for _, ref := range have.GetOwnerReferences() {
		if ref.UID == owner && ref.Controller != nil && *ref.Controller {
			return true
		}
	}
	return false
}

// deletePolicy removes a generated NetworkPolicy if it is there.
func deletePolicy(ctx context.Context, c client.Client, namespace, name string) (bool, error) {
	var have networkingv1.NetworkPolicy
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &have); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if err := c.Delete(ctx, &have); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("failed to delete NetworkPolicy %s/%s: %w", namespace, name, err)
	}
	log.FromContext(ctx).Info("Deleted NetworkPolicy", "networkPolicy", client.ObjectKeyFromObject(&have))
	return true, nil
}

func controllerRef(obj client.Object, gvkAPIVersion, kind string) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion: gvkAPIVersion, Kind: kind, Name: obj.GetName(), UID: obj.GetUID(),
		Controller: &yes, BlockOwnerDeletion: &yes,
	}
}

// requeueOnConflict turns a write conflict, someone else having written the
// object since it was read, into a quiet retry shortly after: it is
// routine, not an error worth a stack trace or the error metric.
// An object deleted meanwhile needs nothing more.
func requeueOnConflict(err error) (ctrl.Result, error) {
	switch {
	case apierrors.IsConflict(err):
		return ctrl.Result{RequeueAfter: 200 * time.Millisecond}, nil
	case apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}
