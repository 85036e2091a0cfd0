package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/conditions"
	"github.com/medinaii/iomt-operator/internal/segment"
	"github.com/medinaii/iomt-operator/internal/verification"
)

// MedicalDeviceReconciler records in each device's status which segment
// holds it.
type MedicalDeviceReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Advisories are matched against each device's firmware.
	Advisories *AdvisoryStore
	// Reports holds what verifiers reported.
	Reports *Reports
	// ReportsExpected says whether devices in a namespace can report: only
	// where the operator issues identities. Where they cannot, silence is
	// not held against them. Nil expects reports everywhere.
	ReportsExpected func(namespace string) bool
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
func setQuarantine(st *iomtv1.MedicalDeviceStatus, gen int64, q segment.Quarantine, now time.Time) {
	since := metav1.NewTime(now.Truncate(time.Second))
	if st.Quarantine != nil && st.Quarantine.State == q.State && st.Quarantine.Since != nil {
		since = *st.Quarantine.Since
	}
	st.Quarantine = &iomtv1.QuarantineStatus{State: q.State, Reason: q.Reason, Message: q.Message, Since: &since}
	status := metav1.ConditionFalse
	if q.State != iomtv1.QuarantineNone {
		status = metav1.ConditionTrue
	}
	conditions.Set(&st.Conditions, gen, iomtv1.ConditionQuarantined, status, q.Reason, q.Message)
}

// Reconcile works out the device's segment and writes it to status when it
// changed.
func (r *MedicalDeviceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var dev iomtv1.MedicalDevice
	if err := r.Get(ctx, req.NamespacedName, &dev); err != nil {
		if apierrors.IsNotFound(err) {
			forgetDeviceMetrics(req.Namespace, req.Name)
			r.Reports.forget(req.NamespacedName, r.now())
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
	membership := segment.Resolve(world)
	a := membership.Device(req.NamespacedName)
	seg, _ := membership.Segment(types.NamespacedName{Namespace: dev.Namespace, Name: a.Segment})
	docs, err := r.Advisories.Documents(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}

	now := r.now()
	st := dev.Status.DeepCopy()
	st.ObservedGeneration = dev.Generation
	setSegmented(st, dev.Generation, a)

	st.Vulnerability = vulnerabilityOf(&dev, docs)
	setVulnerable(st, dev.Generation)

	settings := verification.SettingsOf(&dev, seg)
	expected := r.ReportsExpected == nil || r.ReportsExpected(dev.Namespace)
	rec := r.Reports.fold(&dev, settings, expected, now)
	st.Verification = rec.Status(dev.Status.Verification, settings)
	setVerified(st, dev.Generation)

	// Quarantine follows the status just computed, not the one the cache
	// last saw.
	current := dev.DeepCopy()
	current.Status = *st
	setQuarantine(st, dev.Generation, segment.QuarantineOf(current, seg), now)
	setReady(st, dev.Generation)
	recordDeviceMetrics(&dev, st)

	if err := r.patchStatus(ctx, &dev, st); err != nil {
		return requeueOnConflict(err)
	}
	return ctrl.Result{RequeueAfter: rec.NextCheck(now, settings)}, nil
}

// setSegmented records where the device stands among the segments.
func setSegmented(st *iomtv1.MedicalDeviceStatus, gen int64, a segment.Assignment) {
	st.Segment = a.Segment
	status := metav1.ConditionFalse
	if a.Enforced {
		status = metav1.ConditionTrue
	}
	conditions.Set(&st.Conditions, gen, iomtv1.ConditionSegmented, status, a.Reason, a.Message)
}

// setReady sums up: Ready when the device is segmented, its identity (where
// the operator issues one) is in order, verification has not failed and
// nothing quarantines it.
func setReady(st *iomtv1.MedicalDeviceStatus, gen int64) {
	set := func(s metav1.ConditionStatus, reason, msg string) {
		conditions.Set(&st.Conditions, gen, iomtv1.ConditionReady, s, reason, msg)
	}
	seg := meta.FindStatusCondition(st.Conditions, iomtv1.ConditionSegmented)
	id := meta.FindStatusCondition(st.Conditions, iomtv1.ConditionIdentityIssued)
	switch {
	case seg.Status != metav1.ConditionTrue:
		set(metav1.ConditionFalse, seg.Reason, seg.Message)
	case id != nil && id.Status == metav1.ConditionFalse:
		set(metav1.ConditionFalse, id.Reason, id.Message)
	case st.Quarantine.State != iomtv1.QuarantineNone:
		set(metav1.ConditionFalse, iomtv1.ReasonQuarantined, st.Quarantine.Message)
	case st.Verification.State == iomtv1.VerificationFailed:
		set(metav1.ConditionFalse, iomtv1.ReasonVerificationFailed, st.Verification.Message)
	default:
		set(metav1.ConditionTrue, seg.Reason, seg.Message)
	}
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
	if conditions.Changed(before.Status.Conditions, st.Conditions, iomtv1.ConditionVulnerable) {
		c := meta.FindStatusCondition(st.Conditions, iomtv1.ConditionVulnerable)
		if c.Status != metav1.ConditionFalse ||
			meta.FindStatusCondition(before.Status.Conditions, iomtv1.ConditionVulnerable) != nil {
			typ := "Normal"
			if c.Status != metav1.ConditionFalse {
				typ = "Warning"
			}
			r.Recorder.Eventf(dev, nil, typ, c.Reason, "MatchAdvisories", "%s", c.Message)
		}
	}
	if conditions.Changed(before.Status.Conditions, st.Conditions, iomtv1.ConditionVerified) {
		c := meta.FindStatusCondition(st.Conditions, iomtv1.ConditionVerified)
		switch {
		case c.Reason == iomtv1.ReasonVerificationFailed:
			r.Recorder.Eventf(dev, nil, corev1.EventTypeWarning, c.Reason, "Verify", "%s", c.Message)
		case before.Status.Verification != nil &&
			before.Status.Verification.State == iomtv1.VerificationFailed:
			r.Recorder.Eventf(dev, nil, corev1.EventTypeNormal, iomtv1.ReasonReleased, "Release",
				"released from a failed verification with %q", st.Verification.ReleasedWith)
		}
	}
	if conditions.Changed(before.Status.Conditions, st.Conditions, iomtv1.ConditionQuarantined) {
		c := meta.FindStatusCondition(st.Conditions, iomtv1.ConditionQuarantined)
		newDevice := meta.FindStatusCondition(before.Status.Conditions, iomtv1.ConditionQuarantined) == nil
		if c.Status == metav1.ConditionTrue || !newDevice {
			typ := corev1.EventTypeNormal
			if c.Status == metav1.ConditionTrue {
				typ = corev1.EventTypeWarning
				quarantineTransitions.WithLabelValues(string(st.Quarantine.State), c.Reason).Inc()
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
		WatchesRawSource(source.Channel(r.Reports.Events, &handler.EnqueueRequestForObject{})).
		Watches(&iomtv1.SegmentPolicy{}, handler.EnqueueRequestsFromMapFunc(r.devicesOf), specChanged).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.allDevices),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
				_, ok := o.GetLabels()[iomtv1.AdvisoriesLabel]
				return ok && o.GetNamespace() == r.Advisories.Namespace
			}))).
		Complete(r)
}

// allDevices maps a change of advisories onto every device.
func (r *MedicalDeviceReconciler) allDevices(ctx context.Context, _ client.Object) []reconcile.Request {
	var list iomtv1.MedicalDeviceList
	if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Cannot map advisory change to devices")
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
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
