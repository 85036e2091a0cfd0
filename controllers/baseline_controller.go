package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// BaselineReconciler keeps a deny-all NetworkPolicy for device pods in every
// namespace that holds MedicalDevices or SegmentPolicies. Requests are keyed
// by namespace name.
type BaselineReconciler struct {
	client.Client
	// APIReader reads Namespaces, which the cache does not hold.
	APIReader client.Reader
}

// Reconcile writes the namespace's baseline while it holds devices or
// segments. The baseline is left in place when the last one goes: a pod
// that still carries the device label stays isolated.
func (r *BaselineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := req.Name
	inUse, err := r.inUse(ctx, ns)
	if err != nil || !inUse {
		return ctrl.Result{}, err
	}

	var have networkingv1.NetworkPolicy
	err = r.Get(ctx, client.ObjectKey{Namespace: ns, Name: segment.BaselineName}, &have)
	want := segment.Baseline(ns)
	if err == nil && len(have.OwnerReferences) > 0 {
		want.OwnerReferences = have.OwnerReferences[:1]
		if upToDate(&have, want) {
			return ctrl.Result{}, nil
		}
	}

	// The baseline belongs to its Namespace, so it goes with it.
	var namespace corev1.Namespace
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: ns}, &namespace); err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to read Namespace %s: %w", ns, err)
	}
	if !namespace.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	_, err = applyPolicy(ctx, r.Client, want, controllerRef(&namespace, "v1", "Namespace"))
	return ctrl.Result{}, err
}

// inUse reports whether the namespace holds a MedicalDevice or a
// SegmentPolicy.
func (r *BaselineReconciler) inUse(ctx context.Context, ns string) (bool, error) {
	var devs iomtv1.MedicalDeviceList
	if err := r.List(ctx, &devs, client.InNamespace(ns), client.Limit(1),
		client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("failed to list MedicalDevices in %s: %w", ns, err)
	}
	if len(devs.Items) > 0 {
		return true, nil
	}
	var segs iomtv1.SegmentPolicyList
	if err := r.List(ctx, &segs, client.InNamespace(ns), client.Limit(1),
		client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("failed to list SegmentPolicies in %s: %w", ns, err)
	}
	return len(segs.Items) > 0, nil
}

// SetupWithManager registers the reconciler and what it watches.
func (r *BaselineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toNamespace := handler.EnqueueRequestsFromMapFunc(
		func(_ context.Context, obj client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: obj.GetNamespace()}}}
		})
	baselineOnly := handler.EnqueueRequestsFromMapFunc(
		func(_ context.Context, obj client.Object) []reconcile.Request {
			if obj.GetLabels()[segment.RoleLabel] != segment.RoleBaseline {
				return nil
			}
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: obj.GetNamespace()}}}
		})
	return ctrl.NewControllerManagedBy(mgr).
		Named("baseline").
		Watches(&iomtv1.MedicalDevice{}, toNamespace).
		Watches(&iomtv1.SegmentPolicy{}, toNamespace).
		Watches(&networkingv1.NetworkPolicy{}, baselineOnly).
		Complete(r)
}
