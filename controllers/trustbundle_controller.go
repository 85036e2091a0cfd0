package controllers

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/identity"
)

// authority is the CA set the operator signs with, shared by the
// controllers. The CA controller loads it from the CA Secret; the others
// wait until it is there and are woken whenever it changes.
type authority struct {
	mu  sync.Mutex
	set *identity.CASet
	// signed is, per CA fingerprint, the latest expiry of the certificates
	// it signed since the operator started.
	// TODO: a certificate replaced before the last restart by one that
	// expires sooner (its device's lifetime was shortened) is forgotten, so
	// a rotation may retire its CA while that older certificate is valid;
	// a pod still presenting it is refused until it reloads its Secret.
	signed map[string]time.Time
	subs   []chan event.GenericEvent
}

func newAuthority() *authority { return &authority{signed: map[string]time.Time{}} }

func (a *authority) current() *identity.CASet {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.set
}

// load replaces the set and wakes the subscribers when what is trusted or
// what signs has changed.
func (a *authority) load(s *identity.CASet) {
	a.mu.Lock()
	changed := a.set == nil || !a.set.Active.Cert.Equal(s.Active.Cert) ||
		!bytes.Equal(a.set.Bundle(), s.Bundle())
	a.set = s
	subs := a.subs
	a.mu.Unlock()
	if !changed {
		return
	}
	for _, c := range subs {
		select {
		case c <- event.GenericEvent{Object: &corev1.Secret{}}:
		default: // a wake-up is already pending, and one is enough
		}
	}
}

// issue signs a certificate with the active CA and remembers its expiry.
func (a *authority) issue(req identity.LeafRequest, now time.Time) (
	*identity.Leaf, *identity.CASet, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.set == nil {
		return nil, nil, errors.New("the CA is not loaded yet")
	}
	leaf, err := a.set.Active.Issue(req, now)
	if err != nil {
		return nil, a.set, err
	}
	fp := identity.Fingerprint(a.set.Active.Cert)
	if leaf.Cert.NotAfter.After(a.signed[fp]) {
		a.signed[fp] = leaf.Cert.NotAfter
	}
	return leaf, a.set, nil
}

func (a *authority) signedSoFar() map[string]time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.signed)
}

func (a *authority) rotating() bool {
	s := a.current()
	return s != nil && s.Phase != identity.PhaseStable
}

// subscribe returns a channel that receives an event whenever the set
// changes. Call it before the manager starts.
func (a *authority) subscribe() <-chan event.GenericEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := make(chan event.GenericEvent, 1)
	a.subs = append(a.subs, c)
	return c
}

// caReconciler keeps the operator's CA in the Secret iomt-ca: it creates
// it on first start, loads it into the authority, and steps CA rotations.
type caReconciler struct {
	client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	// own holds the trust bundle ConfigMaps.
	own  cache.Cache
	auth *authority
	opts IdentityOptions
	// invalidVersion is the CA Secret version last reported unreadable, so
	// that the Warning is given once per bad version.
	invalidVersion string
}

// Reconcile loads the CA, moves a rotation forward when it can, and
// saves where the rotation stands on the CA Secret.
func (r *caReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	secret, set, err := r.load(ctx)
	if err != nil {
		identityErrors.Inc()
		return ctrl.Result{}, err
	}
	r.auth.load(set)

	obs, err := r.observe(ctx, set, secret)
	if err != nil {
		return ctrl.Result{}, err
	}
	next, step, err := identity.Advance(set, obs, identity.Policy{
		CALifetime: r.opts.CALifetime, PropagationDelay: r.opts.PropagationDelay,
	})
	if err != nil {
		identityErrors.Inc()
		return ctrl.Result{}, fmt.Errorf("failed to advance the CA rotation: %w", err)
	}
	if err := r.save(ctx, secret, next); apierrors.IsConflict(err) {
		return ctrl.Result{}, nil // someone changed the Secret; its event brings us back
	} else if err != nil {
		identityErrors.Inc()
		return ctrl.Result{}, err
	}
	r.auth.load(next)
	if step != identity.StepNone {
		msg := stepMessage(step, set, next, next.Handled != set.Handled)
		r.Recorder.Eventf(secret, nil, corev1.EventTypeNormal, string(step), "RotateCA", "%s", msg)
		log.FromContext(ctx).Info("CA rotation moved", "secret", klog.KObj(secret), "phase", next.Phase,
			"step", step)
	}
	return ctrl.Result{RequeueAfter: r.wakeAfter(next, obs.Now)}, nil
}

func (r *caReconciler) key() client.ObjectKey {
	return client.ObjectKey{Namespace: r.opts.OperatorNamespace, Name: iomtv1.CASecretName}
}

// load reads the CA Secret, or makes a new CA when there is none. It reads
// past the cache: a copy older than the operator's last write would take
// the rotation back a step. A CA Secret someone else created (to bring
// their own CA) is adopted.
func (r *caReconciler) load(ctx context.Context) (*corev1.Secret, *identity.CASet, error) {
	var s corev1.Secret
	err := r.APIReader.Get(ctx, r.key(), &s)
	if err == nil && s.Labels[componentLabel] != componentCA {
		err = r.adopt(ctx, &s)
	}
	if apierrors.IsNotFound(err) {
		if set := r.auth.current(); set != nil {
			return r.restore(ctx, set)
		}
		return r.create(ctx)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read CA Secret %s: %w", r.key(), err)
	}
	set, err := identity.DecodeCASet(s.Data, s.Annotations)
	if err != nil {
		if s.ResourceVersion != r.invalidVersion {
			r.invalidVersion = s.ResourceVersion
			r.Recorder.Eventf(&s, nil, corev1.EventTypeWarning, "CAInvalid", "LoadCA",
				"the CA cannot be used, so no certificate is issued or renewed: %s", err)
		}
		return nil, nil, fmt.Errorf("failed to read CA Secret %s: %w", r.key(), err)
	}
	return &s, set, nil
}

func (r *caReconciler) adopt(ctx context.Context, s *corev1.Secret) error {
	before := s.DeepCopy()
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	maps.Copy(s.Labels, managedLabels(componentCA))
	if err := r.Patch(ctx, s, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("failed to label CA Secret %s: %w", r.key(), err)
	}
	log.FromContext(ctx).Info("Adopted CA Secret", "secret", klog.KObj(s))
	return nil
}

// create makes the first CA.
func (r *caReconciler) create(ctx context.Context) (*corev1.Secret, *identity.CASet, error) {
	set, err := identity.NewCASet(r.opts.Now(), r.opts.CALifetime)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to make a CA: %w", err)
	}
	s, err := r.write(ctx, set)
	if err != nil {
		return nil, nil, err
	}
	r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, "CACreated", "CreateCA",
		"created CA sha256:%s, valid until %s", identity.Fingerprint(set.Active.Cert),
		set.Active.Cert.NotAfter.Format(time.RFC3339))
	log.FromContext(ctx).Info("Created CA", "secret", klog.KObj(s))
	return s, set, nil
}

// restore writes back the CA the operator holds when its Secret was
// deleted: a new CA would leave every device's certificate untrusted.
func (r *caReconciler) restore(ctx context.Context, set *identity.CASet) (
	*corev1.Secret, *identity.CASet, error) {
	s, err := r.write(ctx, set)
	if err != nil {
		return nil, nil, err
	}
	r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, "CARestored", "RestoreCA",
		"the CA Secret was deleted; wrote back CA sha256:%s", identity.Fingerprint(set.Active.Cert))
	log.FromContext(ctx).Info("Restored deleted CA Secret", "secret", klog.KObj(s))
	return s, set, nil
}

func (r *caReconciler) write(ctx context.Context, set *identity.CASet) (*corev1.Secret, error) {
	data, ann, err := set.Encode()
	if err != nil {
		return nil, fmt.Errorf("failed to encode the CA: %w", err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.key().Namespace, Name: r.key().Name,
			Labels: managedLabels(componentCA), Annotations: ann},
		Type: corev1.SecretTypeTLS,
		Data: data,
	}
	if err := r.Create(ctx, s); err != nil {
		return nil, fmt.Errorf("failed to create CA Secret %s: %w", r.key(), err)
	}
	return s, nil
}

// observe gathers what a rotation in progress waits for: whether every
// trust bundle in use holds every trusted CA, and who signed the stored
// certificates.
func (r *caReconciler) observe(ctx context.Context, set *identity.CASet, secret *corev1.Secret) (
	identity.Observation, error) {
	obs := identity.Observation{
		Now:       r.opts.Now(),
		Requested: secret.Annotations[iomtv1.RotateCAAnnotation],
		Signed:    r.auth.signedSoFar(),
	}
	if set.Phase == identity.PhaseStable {
		return obs, nil
	}
	trusted := set.Trusted()
	distributed := true

	var secrets corev1.SecretList
	if err := r.List(ctx, &secrets, client.MatchingLabels(identityLabels(iomtv1.IssuerOperator)),
		client.UnsafeDisableDeepCopy); err != nil {
		return obs, fmt.Errorf("failed to list identity Secrets: %w", err)
	}
	for _, s := range secrets.Items {
		if !r.opts.enrolled(s.Namespace) {
			continue // left behind in a namespace no longer enrolled; never renewed
		}
		distributed = distributed && identity.BundleHolds(s.Data[identity.BundleKey], trusted...)
		leaf, err := identity.ParseLeaf(s.Data[identity.CertKey], nil)
		if err != nil {
			continue
		}
		if signer := set.SignerOf(leaf.Cert); signer != nil {
			obs.Leaves = append(obs.Leaves, identity.LeafSeen{
				Signer: identity.Fingerprint(signer), NotAfter: leaf.Cert.NotAfter,
			})
		}
	}

	var bundles corev1.ConfigMapList
	if err := r.own.List(ctx, &bundles, client.MatchingLabels(managedLabels(componentBundle)),
		client.UnsafeDisableDeepCopy); err != nil {
		return obs, fmt.Errorf("failed to list trust bundles: %w", err)
	}
	published := map[string]bool{}
	for _, cm := range bundles.Items {
		if !r.opts.enrolled(cm.Namespace) {
			continue
		}
		published[cm.Namespace] = true
		bundle := []byte(cm.Data[identity.BundleKey])
		distributed = distributed && identity.BundleHolds(bundle, trusted...)
	}
	var devs iomtv1.MedicalDeviceList
	if err := r.List(ctx, &devs, client.UnsafeDisableDeepCopy); err != nil {
		return obs, fmt.Errorf("failed to list MedicalDevices: %w", err)
	}
	for _, d := range devs.Items {
		if r.opts.enrolled(d.Namespace) {
			distributed = distributed && published[d.Namespace]
		}
	}
	obs.Distributed = distributed
	return obs, nil
}

// save writes the set to the CA Secret when it differs from what is there.
// The Secret's version guards against writing over someone else's change.
func (r *caReconciler) save(ctx context.Context, secret *corev1.Secret, set *identity.CASet) error {
	data, ann, err := set.Encode()
	if err != nil {
		return fmt.Errorf("failed to encode the CA: %w", err)
	}
	want := secret.DeepCopy()
	for _, k := range []string{identity.NextCertKey, identity.NextKeyKey, identity.PreviousCertKey} {
		delete(want.Data, k)
	}
	if want.Data == nil {
		want.Data = map[string][]byte{}
	}
	maps.Copy(want.Data, data)
	for _, k := range []string{identity.PhaseAnnotation, identity.SinceAnnotation,
		identity.DistributedAnnotation, identity.RetireAfterAnnotation, identity.HandledAnnotation} {
		delete(want.Annotations, k)
	}
	if want.Annotations == nil {
		want.Annotations = map[string]string{}
	}
	maps.Copy(want.Annotations, ann)
	if equality.Semantic.DeepEqual(secret.Data, want.Data) &&
		equality.Semantic.DeepEqual(secret.Annotations, want.Annotations) {
		return nil
	}
	if err := r.Update(ctx, want); err != nil {
		return fmt.Errorf("failed to update CA Secret %s: %w", r.key(), err)
	}
	return nil
}

// wakeAfter is when the rotation may next move without anything else
// changing: the CA's renewal time, the end of the propagation delay, or
// the expiry of the old CA's last certificate.
func (r *caReconciler) wakeAfter(set *identity.CASet, now time.Time) time.Duration {
	var at time.Time
	switch set.Phase {
	case identity.PhaseStable:
		at = identity.RenewAt(set.Active.Cert)
	case identity.PhaseDistributing:
		at = now.Add(10 * time.Second) // bundles are watched; this is a fallback
		if !set.DistributedAt.IsZero() {
			at = set.DistributedAt.Add(r.opts.PropagationDelay)
		}
	case identity.PhaseDraining:
		at = set.RetireAfter
	}
	return max(at.Sub(now), 200*time.Millisecond)
}

func stepMessage(step identity.Step, before, after *identity.CASet, requested bool) string {
	fp := func(c *x509.Certificate) string { return "sha256:" + identity.Fingerprint(c) }
	switch step {
	case identity.StepDistribute:
		why := "the CA is two thirds through its life"
		if requested {
			why = "requested with " + iomtv1.RotateCAAnnotation
		}
		return fmt.Sprintf("rotation started (%s): new CA %s is being added to every trust bundle; "+
			"%s still signs", why, fp(after.Next.Cert), fp(after.Active.Cert))
	case identity.StepSwitch:
		return fmt.Sprintf("CA %s now signs and device certificates are re-issued; %s stays trusted "+
			"until %s", fp(after.Active.Cert), fp(before.Active.Cert), after.RetireAfter.Format(time.RFC3339))
	default:
		return fmt.Sprintf("no certificate signed by %s is valid any more; it has left every trust bundle",
			fp(before.Previous[0]))
	}
}

// setupWithManager registers the reconciler. It starts once on its own,
// follows the CA Secret, and while a rotation is under way also follows
// the trust bundles and identity Secrets it waits for.
func (r *caReconciler) setupWithManager(mgr ctrl.Manager) error {
	caRequest := reconcile.Request{NamespacedName: r.key()}
	toCA := func(_ context.Context, obj client.Object) []reconcile.Request {
		component := obj.GetLabels()[componentLabel]
		awaited := component == componentIdentity || component == componentBundle
		if client.ObjectKeyFromObject(obj) == r.key() || (awaited && r.auth.rotating()) {
			return []reconcile.Request{caRequest}
		}
		return nil
	}
	onlyCA := handler.EnqueueRequestsFromMapFunc(toCA)
	start := source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(caRequest)
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("identity-ca").
		WatchesRawSource(start).
		Watches(&corev1.Secret{}, onlyCA).
		WatchesRawSource(source.Kind[client.Object](r.own, &corev1.ConfigMap{}, onlyCA)).
		Complete(r)
}

// trustBundleReconciler keeps the ConfigMap iomt-trust-bundle in every
// device namespace with devices, holding every CA a device certificate
// there may chain to. Requests are keyed by namespace name.
type trustBundleReconciler struct {
	client.Client
	// APIReader reads Namespaces, which the cache holds only in part.
	APIReader client.Reader
	// own holds the trust bundle ConfigMaps.
	own  cache.Cache
	auth *authority
	// opts say which namespaces are device namespaces.
	opts IdentityOptions
}

// Reconcile writes the namespace's bundle when it is missing or differs.
// A bundle stays, and stays current, when the last device goes: pods may
// still mount it.
func (r *trustBundleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	set := r.auth.current()
	ns := req.Name
	// Woken again once the CA is loaded. No identity, no bundle.
	if set == nil || !r.opts.enrolled(ns) {
		return ctrl.Result{}, nil
	}
	var have corev1.ConfigMap
	err := r.own.Get(ctx, client.ObjectKey{Namespace: ns, Name: iomtv1.TrustBundleName}, &have)
	if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("failed to read trust bundle in %s: %w", ns, err)
	}
	exists := err == nil
	if !exists {
		var devs iomtv1.MedicalDeviceList
		if err := r.List(ctx, &devs, client.InNamespace(ns), client.Limit(1),
			client.UnsafeDisableDeepCopy); err != nil {
			return ctrl.Result{}, fmt.Errorf("failed to list MedicalDevices in %s: %w", ns, err)
		}
		if len(devs.Items) == 0 {
			return ctrl.Result{}, nil
		}
	}

	bundle, err := r.bundleFor(ctx, ns, set)
	if err != nil {
		return ctrl.Result{}, err
	}
	if exists && bundleUpToDate(&have, bundle) {
		return ctrl.Result{}, nil
	}
	if err := r.write(ctx, ns, &have, exists, bundle); err != nil {
		identityErrors.Inc()
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// bundleFor is the PEM of the operator's trusted CAs and of the CAs
// cert-manager put into the namespace's identity Secrets.
func (r *trustBundleReconciler) bundleFor(ctx context.Context, ns string, set *identity.CASet) (
	string, error) {
	certs := set.Trusted()
	var secrets corev1.SecretList
	if err := r.List(ctx, &secrets, client.InNamespace(ns), client.UnsafeDisableDeepCopy,
		client.MatchingLabels(identityLabels(iomtv1.IssuerCertManager))); err != nil {
		return "", fmt.Errorf("failed to list identity Secrets in %s: %w", ns, err)
	}
	for _, s := range secrets.Items {
		if cas, err := identity.ParseCertificates(s.Data[identity.BundleKey]); err == nil {
			certs = append(certs, cas...)
		}
	}
	return string(identity.Bundle(certs...)), nil
}

func bundleUpToDate(have *corev1.ConfigMap, bundle string) bool {
	for k, v := range managedLabels(componentBundle) {
		if have.Labels[k] != v {
			return false
		}
	}
	ref := metav1.GetControllerOfNoCopy(have)
	return ref != nil && ref.Kind == "Namespace" && ref.Name == have.Namespace &&
		len(have.Data) == 1 && have.Data[identity.BundleKey] == bundle
}

// write creates or updates the bundle, owned by its Namespace so that it
// goes with it.
func (r *trustBundleReconciler) write(ctx context.Context, ns string, have *corev1.ConfigMap, exists bool,
	bundle string) error {
	var namespace corev1.Namespace
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: ns}, &namespace); err != nil {
		return fmt.Errorf("failed to read Namespace %s: %w", ns, err)
	}
	if !namespace.DeletionTimestamp.IsZero() {
		return nil
	}
	want := have.DeepCopy()
	want.Namespace, want.Name = ns, iomtv1.TrustBundleName
	if want.Labels == nil {
		want.Labels = map[string]string{}
	}
	maps.Copy(want.Labels, managedLabels(componentBundle))
	want.OwnerReferences = []metav1.OwnerReference{controllerRef(&namespace, "v1", "Namespace")}
	want.Data = map[string]string{identity.BundleKey: bundle}

	if exists {
		if err := r.Update(ctx, want); apierrors.IsConflict(err) {
			return nil // the cache is behind; the bundle's own event brings the namespace back
		} else if err != nil {
			return fmt.Errorf("failed to update trust bundle %s: %w", klog.KObj(want), err)
		}
	} else if err := r.Create(ctx, want); apierrors.IsAlreadyExists(err) {
		return nil // the cache is behind; the bundle's own event brings the namespace back
	} else if err != nil {
		return fmt.Errorf("failed to create trust bundle %s: %w", klog.KObj(want), err)
	}
	log.FromContext(ctx).Info("Wrote trust bundle", "configMap", klog.KObj(want))
	return nil
}

// setupWithManager registers the reconciler and what it watches.
func (r *trustBundleReconciler) setupWithManager(mgr ctrl.Manager) error {
	toNamespace := func(_ context.Context, obj client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: obj.GetNamespace()}}}
	}
	bundles := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetLabels()[componentLabel] == componentBundle
	})
	certManagerSecrets := builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetLabels()[componentLabel] == componentIdentity &&
			obj.GetLabels()[iomtv1.IssuerLabel] == iomtv1.IssuerCertManager
	}))
	deviceComesOrGoes := builder.WithPredicates(predicate.Funcs{
		UpdateFunc: func(event.UpdateEvent) bool { return false },
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("trustbundle").
		Watches(&iomtv1.MedicalDevice{}, handler.EnqueueRequestsFromMapFunc(toNamespace), deviceComesOrGoes).
		WatchesRawSource(source.Kind[client.Object](r.own, &corev1.ConfigMap{},
			handler.EnqueueRequestsFromMapFunc(toNamespace), bundles)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(toNamespace), certManagerSecrets).
		WatchesRawSource(source.Channel(r.auth.subscribe(),
			handler.EnqueueRequestsFromMapFunc(r.everyNamespace))).
		Complete(r)
}

// everyNamespace maps a CA change to every namespace with devices or a
// bundle.
func (r *trustBundleReconciler) everyNamespace(ctx context.Context, _ client.Object) []reconcile.Request {
	seen := map[string]bool{}
	var devs iomtv1.MedicalDeviceList
	if err := r.List(ctx, &devs, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Cannot map CA change to namespaces")
	}
	for _, d := range devs.Items {
		if r.opts.enrolled(d.Namespace) {
			seen[d.Namespace] = true
		}
	}
	var bundles corev1.ConfigMapList
	if err := r.own.List(ctx, &bundles, client.MatchingLabels(managedLabels(componentBundle)),
		client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Cannot map CA change to namespaces")
	}
	for _, cm := range bundles.Items {
		seen[cm.Namespace] = true
	}
	var reqs []reconcile.Request
	for ns := range seen {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Name: ns}})
	}
	return reqs
}
