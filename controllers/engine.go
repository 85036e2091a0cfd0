package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/conditions"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// EngineMode is how the operator picks what enforces segments.
type EngineMode string

// The engine modes, as --policy-engine takes them.
const (
	// EngineAuto uses Cilium while its CiliumNetworkPolicy CRD is served,
	// plain NetworkPolicy otherwise.
	EngineAuto       EngineMode = "auto"
	EngineKubernetes EngineMode = "kubernetes"
	EngineCilium     EngineMode = "cilium"
	EngineBoth       EngineMode = "both"
)

// ParseEngineMode reads a --policy-engine value; empty means auto.
func ParseEngineMode(s string) (EngineMode, error) {
	switch m := EngineMode(s); m {
	case "":
		return EngineAuto, nil
	case EngineAuto, EngineKubernetes, EngineCilium, EngineBoth:
		return m, nil
	}
	return "", fmt.Errorf("unknown policy engine %q: want auto, kubernetes, cilium or both", s)
}

// DefaultEnginePollInterval is how often auto looks for Cilium's CRD.
const DefaultEnginePollInterval = 30 * time.Second

// engineDetector knows whether the API server serves
// CiliumNetworkPolicies, checks again while running, and asks for every
// segment to be reconciled when the answer changes.
type engineDetector struct {
	mode     EngineMode
	disc     discovery.DiscoveryInterface
	reader   client.Reader
	interval time.Duration
	// changed carries one event per SegmentPolicy after the answer changed.
	changed chan event.GenericEvent

	mu     sync.Mutex
	served bool
}

func newEngineDetector(ctx context.Context, mode EngineMode, disc discovery.DiscoveryInterface,
	reader client.Reader, interval time.Duration) (*engineDetector, error) {
	if interval <= 0 {
		interval = DefaultEnginePollInterval
	}
	d := &engineDetector{mode: mode, disc: disc, reader: reader, interval: interval,
		changed: make(chan event.GenericEvent, 64)}
	served, err := d.ciliumServed()
	if err != nil {
		return nil, err
	}
	d.served = served
	log.FromContext(ctx).Info("Picked policy engine", "mode", mode, "ciliumServed", served,
		"engine", d.Engine())
	return d, nil
}

// ciliumServed asks discovery whether cilium.io/v2 serves
// ciliumnetworkpolicies.
func (d *engineDetector) ciliumServed() (bool, error) {
	list, err := d.disc.ServerResourcesForGroupVersion(ciliumv2.SchemeGroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to discover %s: %w", ciliumv2.SchemeGroupVersion, err)
	}
	for _, r := range list.APIResources {
		if r.Name == ciliumv2.CNPPluralName {
			return true, nil
		}
	}
	return false, nil
}

// Served reports whether CiliumNetworkPolicies were served when last checked.
func (d *engineDetector) Served() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.served
}

// Engine is the engine in use now.
func (d *engineDetector) Engine() iomtv1.PolicyEngine {
	switch d.mode {
	case EngineKubernetes:
		return iomtv1.EngineKubernetes
	case EngineCilium:
		return iomtv1.EngineCilium
	case EngineBoth:
		return iomtv1.EngineBoth
	}
	if d.Served() {
		return iomtv1.EngineCilium
	}
	return iomtv1.EngineKubernetes
}

// NeedLeaderElection is false: every replica must know its engine.
func (d *engineDetector) NeedLeaderElection() bool { return false }

// Start checks for Cilium's CRD every interval until ctx ends.
func (d *engineDetector) Start(ctx context.Context) error {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		served, err := d.ciliumServed()
		if err != nil {
			log.FromContext(ctx).V(1).Info("Cannot tell whether Cilium is served", "error", err.Error())
			continue
		}
		d.mu.Lock()
		moved := served != d.served
		d.served = served
		d.mu.Unlock()
		if !moved {
			continue
		}
		log.FromContext(ctx).Info("Cilium's CRD changed", "ciliumServed", served, "engine", d.Engine())
		d.requeueAll(ctx)
	}
}

// requeueAll asks for every SegmentPolicy to be reconciled.
func (d *engineDetector) requeueAll(ctx context.Context) {
	var segs iomtv1.SegmentPolicyList
	if err := d.reader.List(ctx, &segs); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list SegmentPolicies after the engine changed")
		return
	}
	for i := range segs.Items {
		select {
		case d.changed <- event.GenericEvent{Object: &segs.Items[i]}:
		case <-ctx.Done():
			return
		}
	}
}

// applyCiliumPolicy writes a CiliumNetworkPolicy by server-side apply
// unless the API server already holds the same, read uncached so that a
// CRD installed after start-up needs no informer.
// TODO: CiliumNetworkPolicies are watched, and so restored when edited,
// only when their CRD is served at start-up; an operator restart picks up
// a Cilium installed later.
func applyCiliumPolicy(ctx context.Context, c client.Client, reader client.Reader,
	want *ciliumv2.CiliumNetworkPolicy, owner metav1.OwnerReference) error {
	want.OwnerReferences = []metav1.OwnerReference{owner}
	key := client.ObjectKeyFromObject(want)

	var have ciliumv2.CiliumNetworkPolicy
	err := reader.Get(ctx, key, &have)
	switch {
	case err == nil && ciliumUpToDate(&have, want):
		return nil
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("failed to read CiliumNetworkPolicy %s: %w", key, err)
	}

	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
	if err != nil {
		return fmt.Errorf("failed to convert CiliumNetworkPolicy %s: %w", key, err)
	}
	obj := &unstructured.Unstructured{Object: u}
	unstructured.RemoveNestedField(obj.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(obj.Object, "status")
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj),
		client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to apply CiliumNetworkPolicy %s: %w", key, err)
	}
	log.FromContext(ctx).Info("Wrote CiliumNetworkPolicy", "ciliumNetworkPolicy", key)
	return nil
}

// ciliumUpToDate compares specs by their JSON, since Cilium's selector
// type carries unexported caches.
func ciliumUpToDate(have, want *ciliumv2.CiliumNetworkPolicy) bool {
	h, err1 := json.Marshal(have.Spec)
	w, err2 := json.Marshal(want.Spec)
	return metaUpToDate(have, want) && err1 == nil && err2 == nil && string(h) == string(w) &&
		len(have.Specs) == 0
}

// deleteCiliumPolicies removes the segment's CiliumNetworkPolicies that
// are not in keep.
func deleteCiliumPolicies(ctx context.Context, c client.Client, reader client.Reader,
	namespace, segmentName string, keep map[string]bool) error {
	for _, name := range segment.PolicyNames(segmentName) {
		if keep[name] {
			continue
		}
		var have ciliumv2.CiliumNetworkPolicy
		err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &have)
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) ||
			(err == nil && have.Labels[segment.SegmentLabel] != segmentName) {
			continue // not there, or another segment's
		}
		if err != nil {
			return fmt.Errorf("failed to read CiliumNetworkPolicy %s/%s: %w", namespace, name, err)
		}
		if err := c.Delete(ctx, &have); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("failed to delete CiliumNetworkPolicy %s/%s: %w", namespace, name, err)
		}
		log.FromContext(ctx).Info("Deleted CiliumNetworkPolicy",
			"ciliumNetworkPolicy", client.ObjectKeyFromObject(&have))
	}
	return nil
}

// setEnforceable says whether the engine in use enforces every flow. With
// plain NetworkPolicy, fqdn and entity peers open nothing and HTTP rules
// are not enforced; with Cilium, rules Cilium refuses are left out. The
// condition is left off a segment that plain NetworkPolicy enforces fully.
func setEnforceable(seg *iomtv1.SegmentPolicy, st *iomtv1.SegmentPolicyStatus, rejected []string) {
	gen := seg.Generation
	var reason, msg string
	switch {
	case st.Engine == iomtv1.EngineKubernetes:
		flows := segment.CiliumOnlyFlows(seg)
		if len(flows) == 0 {
			meta.RemoveStatusCondition(&st.Conditions, iomtv1.ConditionEnforceable)
			return
		}
		reason = iomtv1.ReasonNeedsCilium
		msg = fmt.Sprintf("flows %s need Cilium, and the engine is Kubernetes: their fqdn and "+
			"entity peers open nothing, and their http and fhir rules are not enforced, so "+
			"their HTTP ports take any request", truncList(flows))
	case len(rejected) > 0:
		reason = iomtv1.ReasonRejectedRule
		msg = "rules Cilium refuses are left out: " + truncList(rejected)
	default:
		conditions.Set(&st.Conditions, gen, iomtv1.ConditionEnforceable, metav1.ConditionTrue,
			iomtv1.ReasonAllEnforceable, fmt.Sprintf("engine %s enforces every flow", st.Engine))
		return
	}
	conditions.Set(&st.Conditions, gen, iomtv1.ConditionEnforceable, metav1.ConditionFalse,
		reason, msg)
	if c := meta.FindStatusCondition(st.Conditions, iomtv1.ConditionReady); c != nil &&
		c.Status == metav1.ConditionTrue {
		conditions.Set(&st.Conditions, gen, iomtv1.ConditionReady, metav1.ConditionFalse, reason, msg)
		// Ready went True and back within this reconcile: keep the time it
		// last really moved, so a steady segment sees no status write.
		was := meta.FindStatusCondition(seg.Status.Conditions, iomtv1.ConditionReady)
		if was != nil && was.Status == metav1.ConditionFalse {
			meta.FindStatusCondition(st.Conditions, iomtv1.ConditionReady).LastTransitionTime =
				was.LastTransitionTime
		}
	}
}

// ciliumPolicySource watches the operator's own CiliumNetworkPolicies
// through a cache of their own, so the manager's cache needs no Cilium CRD
// and holds no one else's policies.
func ciliumPolicySource(mgr ctrl.Manager) (source.Source, error) {
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{&ciliumv2.CiliumNetworkPolicy{}: {
			Label: labels.SelectorFromSet(labels.Set{segment.ManagedByLabel: segment.ManagedByValue}),
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create CiliumNetworkPolicy cache: %w", err)
	}
	if err := mgr.Add(c); err != nil {
		return nil, fmt.Errorf("failed to add CiliumNetworkPolicy cache: %w", err)
	}
	return source.Kind[client.Object](c, &ciliumv2.CiliumNetworkPolicy{},
		handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &iomtv1.SegmentPolicy{},
			handler.OnlyControllerOwner())), nil
}
