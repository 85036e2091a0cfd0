package controllers

import (
	"context"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/cilium"
	"github.com/medinaii/iomt-operator/internal/conditions"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// SegmentPolicyReconciler keeps each segment's NetworkPolicy equal to what
// its spec, its members and the segments that name it call for.
type SegmentPolicyReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Config   segment.Config
	// APIReader reads CiliumNetworkPolicies, which are cached only when
	// their CRD is served at start-up.
	APIReader client.Reader
	// engine picks the policy engine; Kubernetes alone when nil.
	engine *engineDetector
}

// Reconcile computes the segment, writes or removes its NetworkPolicy, and
// records the outcome in status.
func (r *SegmentPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var seg iomtv1.SegmentPolicy
	if err := r.Get(ctx, req.NamespacedName, &seg); err != nil {
		if apierrors.IsNotFound(err) {
			forgetSegmentMetrics(req.Namespace, req.Name)
			if err := r.deleteCiliumPolicies(ctx, req.Namespace, req.Name, nil); err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{}, r.deletePolicies(ctx, req.Namespace, req.Name, nil)
		}
		return ctrl.Result{}, fmt.Errorf("failed to read SegmentPolicy: %w", err)
	}
	if !seg.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	engine := r.Engine()
	res, compileErr, err := r.compile(ctx, &seg, engine)
	if err != nil {
		return ctrl.Result{}, err
	}

	status := seg.Status.DeepCopy()
	status.ObservedGeneration = seg.Generation
	status.Enforcement = segment.EnforcementOf(&seg)
	status.DNS = segment.DNSOf(&seg)
	status.Engine = engine

	var writeErr error
	var rejected []string
	if compileErr == nil {
		rejected, writeErr = r.write(ctx, &seg, res, status)
	}
	r.setConditions(&seg, status, res, compileErr, writeErr)
	if compileErr == nil {
		setEnforceable(&seg, status, rejected)
	}
	recordSegmentMetrics(&seg, status)

	if err := r.patchStatus(ctx, &seg, status); err != nil {
		return requeueOnConflict(err)
	}
	return ctrl.Result{}, writeErr
}

// compile resolves membership in every namespace the segment touches and
// compiles it. A spec that cannot be used comes back as compileErr.
func (r *SegmentPolicyReconciler) compile(ctx context.Context, seg *iomtv1.SegmentPolicy,
	engine iomtv1.PolicyEngine) (res *segment.Result, compileErr, err error) {
	namespaces := append([]string{seg.Namespace}, peerNamespaces(seg)...)
	var naming iomtv1.SegmentPolicyList
	if err := r.List(ctx, &naming, client.MatchingFields{peerNamespaceIndex: seg.Namespace},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, fmt.Errorf("failed to list SegmentPolicies that name %s: %w", seg.Namespace, err)
	}
	for i := range naming.Items {
		namespaces = append(namespaces, naming.Items[i].Namespace)
	}

	world, err := loadWorld(ctx, r.Client, namespaces...)
	if err != nil {
		return nil, nil, err
	}
	cfg := r.Config
	cfg.LeaveL7ToCilium = engine == iomtv1.EngineBoth
	res, compileErr = segment.Compile(segment.Resolve(world), client.ObjectKeyFromObject(seg), cfg)
	return res, compileErr, nil
}

// write applies the segment's policies for the engine in use when it
// enforces, and removes the ones it no longer needs, those of another
// engine included. It returns the Cilium rules Cilium would refuse.
func (r *SegmentPolicyReconciler) write(ctx context.Context, seg *iomtv1.SegmentPolicy,
	res *segment.Result, status *iomtv1.SegmentPolicyStatus) ([]string, error) {
	status.MemberCount = int32(len(res.Members))
	status.QuarantinedCount = int32(len(res.Quarantined))
	status.ConflictCount = int32(len(res.Conflicts))
	status.IngressRules, status.EgressRules = 0, 0
	for _, np := range res.Policies {
		status.IngressRules += int32(len(np.Spec.Ingress))
		status.EgressRules += int32(len(np.Spec.Egress))
	}

	enforce := status.Enforcement == iomtv1.EnforcementEnforce
	owner := controllerRef(seg, iomtv1.GroupVersion.String(), "SegmentPolicy")
	keep := map[string]bool{}
	status.Policies = nil
	if enforce && status.Engine != iomtv1.EngineCilium {
		for _, np := range res.Policies {
			if _, err := applyPolicy(ctx, r.Client, np, owner); err != nil {
				return nil, err
			}
			keep[np.Name] = true
			status.Policies = append(status.Policies, np.Name)
		}
	}
	if err := r.deletePolicies(ctx, seg.Namespace, seg.Name, keep); err != nil {
		return nil, err
	}

	var rejected []string
	keepCilium := map[string]bool{}
	status.CiliumPolicies = nil
	if status.Engine == iomtv1.EngineCilium || status.Engine == iomtv1.EngineBoth {
		rendered := cilium.Render(seg.Namespace, seg.Name, res.Plans)
		rejected = rendered.Rejected
		for _, cnp := range rendered.Policies {
			if !enforce {
				break
			}
			if err := applyCiliumPolicy(ctx, r.Client, r.APIReader, cnp, owner); err != nil {
				return rejected, err
			}
			keepCilium[cnp.Name] = true
			status.CiliumPolicies = append(status.CiliumPolicies, cnp.Name)
		}
	}
	return rejected, r.deleteCiliumPolicies(ctx, seg.Namespace, seg.Name, keepCilium)
}

// Engine is the policy engine in use now.
func (r *SegmentPolicyReconciler) Engine() iomtv1.PolicyEngine {
	if r.engine == nil {
		return iomtv1.EngineKubernetes
	}
	return r.engine.Engine()
}

// deleteCiliumPolicies removes the segment's CiliumNetworkPolicies that are
// not in keep, where the API server serves them.
func (r *SegmentPolicyReconciler) deleteCiliumPolicies(ctx context.Context, namespace, name string,
	keep map[string]bool) error {
	if r.engine == nil || !r.engine.Served() {
		return nil
	}
	return deleteCiliumPolicies(ctx, r.Client, r.APIReader, namespace, name, keep)
}

// deletePolicies removes the segment's policies that are not in keep.
func (r *SegmentPolicyReconciler) deletePolicies(ctx context.Context, namespace, segmentName string,
	keep map[string]bool) error {
	for _, name := range segment.PolicyNames(segmentName) {
		if keep[name] {
			continue
		}
		var have networkingv1.NetworkPolicy
		err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &have)
		if apierrors.IsNotFound(err) || (err == nil && have.Labels[segment.SegmentLabel] != segmentName) {
			continue // not there, or another segment's
		}
		if err != nil {
			return fmt.Errorf("failed to read NetworkPolicy %s/%s: %w", namespace, name, err)
		}
		if _, err := deletePolicy(ctx, r.Client, namespace, name); err != nil {
			return err
		}
	}
	return nil
}

func (r *SegmentPolicyReconciler) setConditions(seg *iomtv1.SegmentPolicy, st *iomtv1.SegmentPolicyStatus,
	res *segment.Result, compileErr, writeErr error) {
	gen := seg.Generation
	set := func(typ string, s metav1.ConditionStatus, reason, msg string) {
		conditions.Set(&st.Conditions, gen, typ, s, reason, msg)
	}

	if compileErr != nil {
		// Leave Enforced and Conflict as they were: what is enforced stays.
		// TODO: while a spec cannot be used, a member quarantined meanwhile
		// stays in the kept policy, so its quarantine is not enforced until
		// the spec is fixed. The schema refuses every such spec but one
		// whose matchLabels keys are not label keys.
		kept := "; nothing is written until it is fixed"
		if len(st.Policies) > 0 {
			kept = "; the policies already in place are kept unchanged"
		}
		set(iomtv1.ConditionReady, metav1.ConditionFalse, iomtv1.ReasonInvalidSpec, compileErr.Error()+kept)
		return
	}

	if len(res.Conflicts) > 0 {
		set(iomtv1.ConditionConflict, metav1.ConditionTrue, iomtv1.ReasonOverlappingSegments,
			fmt.Sprintf("devices %s are also selected by another segment; they belong to "+
				"neither and their pods are denied all traffic", truncList(res.Conflicts)))
	} else {
		set(iomtv1.ConditionConflict, metav1.ConditionFalse, iomtv1.ReasonNoOverlap,
			"no other segment selects this segment's devices")
	}

	switch {
	case writeErr != nil:
		set(iomtv1.ConditionEnforced, metav1.ConditionFalse, iomtv1.ReasonApplyFailed, writeErr.Error())
	case st.Enforcement == iomtv1.EnforcementObserve:
		set(iomtv1.ConditionEnforced, metav1.ConditionFalse, iomtv1.ReasonObserving,
			fmt.Sprintf("Observe mode: would allow %d ingress and %d egress rules for %d devices; "+
				"nothing is written", st.IngressRules, st.EgressRules, st.MemberCount))
	case len(res.Policies) == 0:
		set(iomtv1.ConditionEnforced, metav1.ConditionFalse, iomtv1.ReasonNoMembers,
			"the segment selects no device, so it has no policy")
	default:
		set(iomtv1.ConditionEnforced, metav1.ConditionTrue, iomtv1.ReasonEnforced,
			fmt.Sprintf("policies %s allow %d ingress and %d egress rules for %d devices, %d quarantined",
				strings.Join(st.Policies, ", "), st.IngressRules, st.EgressRules, st.MemberCount,
				st.QuarantinedCount))
	}

	switch {
	case writeErr != nil:
		set(iomtv1.ConditionReady, metav1.ConditionFalse, iomtv1.ReasonApplyFailed, writeErr.Error())
	case len(res.Unresolved) > 0:
		set(iomtv1.ConditionReady, metav1.ConditionFalse, iomtv1.ReasonUnresolvedPeers,
			"peers that stand for nobody are left out of the policy (a flow with no peer left "+
				"allows nothing): "+truncList(res.Unresolved))
	case len(res.Conflicts) > 0:
		set(iomtv1.ConditionReady, metav1.ConditionFalse, iomtv1.ReasonOverlappingSegments,
			"some selected devices are also selected by another segment")
	case st.Enforcement == iomtv1.EnforcementObserve:
		set(iomtv1.ConditionReady, metav1.ConditionTrue, iomtv1.ReasonReconciled,
			"the segment is computed and reported as its spec asks; Observe writes nothing")
	default:
		set(iomtv1.ConditionReady, metav1.ConditionTrue, iomtv1.ReasonReconciled,
			"the segment is computed and written as its spec asks")
	}
}

// patchStatus writes status only when it changed, and emits Events for the
// conditions that moved. It writes the whole status, so counts of zero
// show as 0 rather than not at all; the resourceVersion guards against
// writing over a newer object.
func (r *SegmentPolicyReconciler) patchStatus(ctx context.Context, seg *iomtv1.SegmentPolicy,
	st *iomtv1.SegmentPolicyStatus) error {
	if equality.Semantic.DeepEqual(&seg.Status, st) {
		return nil
	}
	before := seg.DeepCopy()
	seg.Status = *st
	if err := r.Status().Update(ctx, seg); err != nil {
		return fmt.Errorf("failed to update SegmentPolicy status: %w", err)
	}

	for _, typ := range []string{iomtv1.ConditionEnforced, iomtv1.ConditionConflict, iomtv1.ConditionReady} {
		if !conditions.Changed(before.Status.Conditions, st.Conditions, typ) {
			continue
		}
		c := meta.FindStatusCondition(st.Conditions, typ)
		if typ == iomtv1.ConditionReady && c.Status == metav1.ConditionTrue &&
			before.Status.Conditions == nil {
			continue // a new segment that is simply fine says so through Enforced
		}
		r.Recorder.Eventf(seg, nil, eventType(typ, c.Status), c.Reason, "Reconcile", "%s", c.Message)
	}
	log.FromContext(ctx).V(1).Info("Updated SegmentPolicy status", "members", st.MemberCount)
	return nil
}

// SetupWithManager registers the reconciler and what it watches.
func (r *SegmentPolicyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &iomtv1.SegmentPolicy{}, peerNamespaceIndex,
		peerNamespaces); err != nil {
		return fmt.Errorf("failed to index SegmentPolicies: %w", err)
	}

	// Quarantine is asked for by annotation, so devices count as changed
	// when their annotations do.
	specChanged := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{},
		predicate.LabelChangedPredicate{}))
	deviceChanged := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{},
		predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{},
		quarantineInputsChanged()))
	b := ctrl.NewControllerManagedBy(mgr).
		Named("segmentpolicy").
		For(&iomtv1.SegmentPolicy{}).
		Owns(&networkingv1.NetworkPolicy{})
	if r.engine != nil {
		b = b.WatchesRawSource(source.Channel(r.engine.changed, &handler.EnqueueRequestForObject{}))
		if r.engine.Served() {
			src, err := ciliumPolicySource(mgr)
			if err != nil {
				return err
			}
			b = b.WatchesRawSource(src)
		}
	}
	return b.
		Watches(&iomtv1.SegmentPolicy{}, handler.EnqueueRequestsFromMapFunc(r.segmentsNear), specChanged).
		Watches(&iomtv1.MedicalDevice{}, handler.EnqueueRequestsFromMapFunc(r.segmentsNear), deviceChanged).
		Complete(r)
}

// quarantineInputsChanged passes device updates that change what the
// segment's quarantine depends on in the device's status: vulnerability and
// verification.
func quarantineInputsChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*iomtv1.MedicalDevice)
		n, ok2 := e.ObjectNew.(*iomtv1.MedicalDevice)
		if !ok1 || !ok2 {
			return false
		}
		key := func(st iomtv1.MedicalDeviceStatus) string {
			var k string
			if v := st.Vulnerability; v != nil {
				k = string(v.State) + "/" + v.RiskAcceptedBy
			}
			if v := st.Verification; v != nil {
				k += "/" + string(v.State)
			}
			return k
		}
		return key(o.Status) != key(n.Status)
	}}
}

// segmentsNear maps a change to a device or segment onto the segments whose
// policies may depend on it: those of its namespace, those that name a
// segment in its namespace, and, for a segment, those it names.
func (r *SegmentPolicyReconciler) segmentsNear(ctx context.Context, obj client.Object) []reconcile.Request {
	namespaces := append([]string{obj.GetNamespace()}, peerNamespaces(obj)...)
	var reqs []reconcile.Request
	seen := map[types.NamespacedName]bool{}
	for _, ns := range namespaces {
		keys, err := relatedSegments(ctx, r.Client, ns)
		if err != nil {
			log.FromContext(ctx).Error(err, "Cannot map change to segments", "object", klog.KObj(obj))
			continue
		}
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				reqs = append(reqs, reconcile.Request{NamespacedName: k})
			}
		}
	}
	return reqs
}

// eventType is Warning for conditions that have gone bad.
func eventType(typ string, s metav1.ConditionStatus) string {
	bad := (typ == iomtv1.ConditionConflict && s == metav1.ConditionTrue) ||
		(typ == iomtv1.ConditionReady && s == metav1.ConditionFalse)
	if bad {
		return "Warning"
	}
	return "Normal"
}

// truncList joins up to five items and says how many more there are, so a
// message stays readable with thousands of devices.
func truncList(items []string) string {
	const most = 5
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:most], ", "), len(items)-most)
}
