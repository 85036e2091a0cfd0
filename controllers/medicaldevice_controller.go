package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/conditions"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// MedicalDeviceReconciler records in each device's status which segment
// holds it.
type MedicalDeviceReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (r *MedicalDeviceReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// setQuarantine records the quarantine, keeping since while the state
// stays the same.
func setQuarantine(st *iomtv1.MedicalDeviceStatus, q segment.Quarantine, now time.Time) {
	since := metav1.NewTime(now.Truncate(time.Second))
	if st.Quarantine != nil && st.Quarantine.State == q.State && st.Quarantine.Since != nil {
		since = *st.Quarantine.Since
	}
	st.Quarantine = &iomtv1.QuarantineStatus{State: q.State, Reason: q.Reason, Message: q.Message, Since: &since}
}

// +kubebuilder:rbac:groups=iomt.medinaii.io,resources=medicaldevices,verbs=get;list;watch
// +kubebuilder:rbac:groups=iomt.medinaii.io,resources=medicaldevices/status,verbs=get;patch;update

// Reconcile works out the device's segment and writes it to status when it
// changed.
func (r *MedicalDeviceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var dev iomtv1.MedicalDevice
	if err := r.Get(ctx, req.NamespacedName, &dev); err != nil {
		if apierrors.IsNotFound(err) {
			forgetDeviceMetrics(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("failed to read MedicalDevice: %w", err)
	}
	if !dev.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	world, err := loadWorld(ctx, r.Client, dev.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	a := segment.Resolve(world).Device(req.NamespacedName)

	st := dev.Status.DeepCopy()
	st.ObservedGeneration = dev.Generation
	st.Segment = a.Segment
	segmented := metav1.ConditionFalse
	if a.Enforced {
		segmented = metav1.ConditionTrue
	}
	conditions.Set(&st.Conditions, dev.Generation, iomtv1.ConditionSegmented, segmented, a.Reason, a.Message)

	q := segment.QuarantineOf(&dev)
	setQuarantine(st, q, r.now())
	quarantined := metav1.ConditionFalse
	if q.State != iomtv1.QuarantineNone {
		quarantined = metav1.ConditionTrue
	}
	conditions.Set(&st.Conditions, dev.Generation, iomtv1.ConditionQuarantined, quarantined, q.Reason, q.Message)

	switch {
	case !a.Enforced:
		conditions.Set(&st.Conditions, dev.Generation, iomtv1.ConditionReady, metav1.ConditionFalse,
			a.Reason, a.Message)
	case quarantined == metav1.ConditionTrue:
		conditions.Set(&st.Conditions, dev.Generation, iomtv1.ConditionReady, metav1.ConditionFalse,
			iomtv1.ReasonQuarantined, q.Message)
	default:
		conditions.Set(&st.Conditions, dev.Generation, iomtv1.ConditionReady, metav1.ConditionTrue,
			a.Reason, a.Message)
	}
	recordDeviceMetrics(&dev, string(segmented), string(q.State))

	return ctrl.Result{}, r.patchStatus(ctx, &dev, st)
}

func (r *MedicalDeviceReconciler) patchStatus(ctx context.Context, dev *iomtv1.MedicalDevice,
	st *iomtv1.MedicalDeviceStatus) error {
	if equality.Semantic.DeepEqual(&dev.Status, st) {
		return nil
	}
	before := dev.DeepCopy()
	dev.Status = *st
	if err := r.Status().Patch(ctx, dev, client.MergeFromWithOptions(before,
		client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failed to update MedicalDevice status: %w", err)
	}

	if conditions.Changed(before.Status.Conditions, st.Conditions, iomtv1.ConditionSegmented) {
		c := meta.FindStatusCondition(st.Conditions, iomtv1.ConditionSegmented)
		typ := "Normal"
		if c.Reason == iomtv1.ReasonSegmentConflict {
			typ = "Warning"
		}
		r.Recorder.Eventf(dev, nil, typ, c.Reason, "Segment", "%s", c.Message)
		log.FromContext(ctx).Info("Device segment changed", "segment", st.Segment, "reason", c.Reason)
	}
	if conditions.Changed(before.Status.Conditions, st.Conditions, iomtv1.ConditionQuarantined) {
		c := meta.FindStatusCondition(st.Conditions, iomtv1.ConditionQuarantined)
		newDevice := meta.FindStatusCondition(before.Status.Conditions, iomtv1.ConditionQuarantined) == nil
		if c.Status == metav1.ConditionTrue || !newDevice {
			typ := "Normal"
			if c.Status == metav1.ConditionTrue {
				typ = "Warning"
			}
			r.Recorder.Eventf(dev, nil, typ, c.Reason, "Quarantine", "%s", c.Message)
			log.FromContext(ctx).Info("Device quarantine changed", "state", st.Quarantine.State,
				"reason", c.Reason)
		}
	}
	return nil
}

// SetupWithManager registers the reconciler and what it watches.
func (r *MedicalDeviceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	specChanged := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{},
		predicate.LabelChangedPredicate{}))
	return ctrl.NewControllerManagedBy(mgr).
		Named("medicaldevice").
		For(&iomtv1.MedicalDevice{}).
		Watches(&iomtv1.SegmentPolicy{}, handler.EnqueueRequestsFromMapFunc(r.devicesOf), specChanged).
		Complete(r)
}

// devicesOf maps a segment change onto the devices of its namespace.
func (r *MedicalDeviceReconciler) devicesOf(ctx context.Context, obj client.Object) []reconcile.Request {
	var list iomtv1.MedicalDeviceList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Cannot map segment change to devices")
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
}
