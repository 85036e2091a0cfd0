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

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/conditions"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// MedicalDeviceReconciler records in each device's status which segment
// holds it.
type MedicalDeviceReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Advisories are matched against each device's firmware.
	Advisories *AdvisoryStore
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (r *MedicalDeviceReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// setVulnerable sets the Vulnerable condition from the vulnerability.
func setVulnerable(st *iomtv1.MedicalDeviceStatus, gen int64) {
	v := st.Vulnerability
	set := func(s metav1.ConditionStatus, reason, msg string) {
		conditions.Set(&st.Conditions, gen, iomtv1.ConditionVulnerable, s, reason, msg)
	}
	switch {
	case v.State == iomtv1.VulnerabilityKnownAffected:
		msg := fmt.Sprintf("firmware %s is affected according to %s", v.FirmwareVersion,
			advisoryIDs(v, iomtv1.VulnerabilityKnownAffected))
		if v.RiskAcceptedBy != "" {
			msg += "; risk accepted by " + v.RiskAcceptedBy
		}
		set(metav1.ConditionTrue, iomtv1.ReasonKnownAffected, msg)
	case v.State == iomtv1.VulnerabilityNeedsReview:
		set(metav1.ConditionUnknown, iomtv1.ReasonNeedsReview, fmt.Sprintf(
			"a person must review %s for firmware %q", advisoryIDs(v, iomtv1.VulnerabilityNeedsReview),
			v.FirmwareVersion))
	case v.Documents == 0:
		set(metav1.ConditionFalse, iomtv1.ReasonNoKnownAdvisory, fmt.Sprintf("no advisories are loaded; "+
			"put CSAF documents in ConfigMaps labelled %s in the operator's namespace", iomtv1.AdvisoriesLabel))
	default:
		set(metav1.ConditionFalse, iomtv1.ReasonNoKnownAdvisory,
			fmt.Sprintf("none of %d advisories concerns firmware %q", v.Documents, v.FirmwareVersion))
	}
}

func advisoryIDs(v *iomtv1.VulnerabilityStatus, state iomtv1.VulnerabilityState) string {
	var ids []string
	for _, a := range v.Advisories {
		if a.Status == state {
			ids = append(ids, a.ID)
		}
	}
	return truncList(ids)
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
	membership := segment.Resolve(world)
	a := membership.Device(req.NamespacedName)
	seg, _ := membership.Segment(types.NamespacedName{Namespace: dev.Namespace, Name: a.Segment})
	docs, err := r.Advisories.Documents(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}

	st := dev.Status.DeepCopy()
	st.ObservedGeneration = dev.Generation
	st.Segment = a.Segment
	segmented := metav1.ConditionFalse
	if a.Enforced {
		segmented = metav1.ConditionTrue
	}
	conditions.Set(&st.Conditions, dev.Generation, iomtv1.ConditionSegmented, segmented, a.Reason, a.Message)

	st.Vulnerability = vulnerabilityOf(&dev, docs)
	setVulnerable(st, dev.Generation)
	recordVulnerabilityMetrics(&dev, st.Vulnerability)

	// Quarantine follows the vulnerability just computed, not the one the
	// cache last saw.
	now := dev.DeepCopy()
	now.Status = *st
	q := segment.QuarantineOf(now, seg)
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
