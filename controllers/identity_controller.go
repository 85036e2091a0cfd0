package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/conditions"
	"github.com/medinaii/iomt-operator/internal/identity"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// IdentityOptions configure device certificates.
type IdentityOptions struct {
	// OperatorNamespace holds the CA Secret iomt-ca. Required.
	OperatorNamespace string
	// DeviceNamespaces are the namespaces where the operator issues device
	// identities, and so the only ones, besides OperatorNamespace, whose
	// Secrets it reads, watches and writes. Nil means every namespace; an
	// empty, non-nil list means none. A device in any other namespace
	// reports IdentityIssued=False with reason NamespaceNotEnrolled and is
	// segmented as usual. Each name must be a DNS-1123 label.
	DeviceNamespaces identity.Namespaces
	// TrustDomain is the SPIFFE trust domain; iomt.local when empty.
	TrustDomain string
	// DefaultLifetime is the lifetime of certificates whose device does
	// not set spec.identity.lifetime; 24h when zero.
	DefaultLifetime time.Duration
	// CALifetime is the lifetime of each CA the operator makes; one year
	// when zero. A CA is rotated two thirds through its life.
	CALifetime time.Duration
	// PropagationDelay is how long a CA rotation waits, once every trust
	// bundle holds the new CA, before signing with it, so that kubelets
	// can refresh the bundles mounted in pods; two minutes when zero.
	PropagationDelay time.Duration
	// CertManager configures cert-manager as the issuer.
	CertManager CertManagerOptions
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// CertManagerOptions choose cert-manager to sign device certificates.
// A namespace chooses for itself with the iomt.medinaii.io/issuer label
// and may name its issuer with annotations.
type CertManagerOptions struct {
	// Default makes cert-manager the issuer of every namespace that does
	// not choose. It needs cert-manager's Certificate kind installed.
	Default bool
	// IssuerName, IssuerKind (Issuer or ClusterIssuer; ClusterIssuer when
	// empty) and IssuerGroup (cert-manager.io when empty) name the issuer
	// used unless the namespace names another.
	IssuerName  string
	IssuerKind  string
	IssuerGroup string
}

// trustDomainPattern is what SPIFFE allows in a trust domain name.
var trustDomainPattern = regexp.MustCompile(`^[a-z0-9._-]+$`)

// complete fills in the defaults and checks what was given.
func (o IdentityOptions) complete() (IdentityOptions, error) {
	if o.TrustDomain == "" {
		o.TrustDomain = identity.DefaultTrustDomain
	}
	if o.DefaultLifetime == 0 {
		o.DefaultLifetime = identity.DefaultLifetime
	}
	if o.CALifetime == 0 {
		o.CALifetime = identity.DefaultCALifetime
	}
	if o.PropagationDelay == 0 {
		o.PropagationDelay = 2 * time.Minute
	}
	if o.CertManager.IssuerKind == "" {
		o.CertManager.IssuerKind = "ClusterIssuer"
	}
	if o.CertManager.IssuerGroup == "" {
		o.CertManager.IssuerGroup = certManagerGroup
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.OperatorNamespace == "":
		return o, errors.New("device identity needs the operator's namespace")
	case !trustDomainPattern.MatchString(o.TrustDomain):
		return o, fmt.Errorf("trust domain %q may hold only lowercase letters, digits, '.', '-' and '_'",
			o.TrustDomain)
	case o.DefaultLifetime < 0 || o.CALifetime < 0 || o.PropagationDelay < 0:
		return o, errors.New("lifetimes and the propagation delay must not be negative")
	case o.CertManager.Default && o.CertManager.IssuerName == "":
		return o, errors.New("cert-manager is the default issuer, but no issuer is named")
	}
	if err := o.DeviceNamespaces.Validate(); err != nil {
		return o, fmt.Errorf("device namespaces: %w", err)
	}
	return o, nil
}

// enrolled reports whether the operator issues identities in namespace ns.
func (o IdentityOptions) enrolled(ns string) bool {
	return o.DeviceNamespaces.Include(ns)
}

// cachedNamespaces are the namespaces whose labelled Secrets, trust
// bundles and Certificates are cached: the device namespaces and the
// operator's own, which holds the CA Secret. Nil, for every namespace, when
// DeviceNamespaces is nil. The operator's namespace keeps the map from
// ever being empty, which controller-runtime would take as every namespace.
func (o IdentityOptions) cachedNamespaces() map[string]cache.Config {
	if o.DeviceNamespaces == nil {
		return nil
	}
	out := map[string]cache.Config{}
	for _, ns := range append([]string{o.OperatorNamespace}, o.DeviceNamespaces...) {
		if ns != "" { // "" would mean every namespace; complete rejects it
			out[ns] = cache.Config{LabelSelector: managedSelector()}
		}
	}
	return out
}

// notEnrolledMessage says how to let the operator issue identities in ns.
func notEnrolledMessage(ns string) string {
	return fmt.Sprintf("namespace %q is not one of the operator's device namespaces; add it to the "+
		"operator's --device-namespaces (Helm value deviceNamespaces)", ns)
}

// Labels of what the identity controllers write, besides the managed-by
// label every generated object carries.
const (
	componentLabel    = "app.kubernetes.io/component"
	componentIdentity = "device-identity"
	componentBundle   = "trust-bundle"
	componentCA       = "certificate-authority"
)

const certManagerGroup = "cert-manager.io"

var certificateGVK = schema.GroupVersionKind{Group: certManagerGroup, Version: "v1", Kind: "Certificate"}

func managedLabels(component string) map[string]string {
	return map[string]string{segment.ManagedByLabel: segment.ManagedByValue, componentLabel: component}
}

// identityLabels mark a device identity Secret and who signed it.
func identityLabels(issuer string) map[string]string {
	l := managedLabels(componentIdentity)
	l[iomtv1.IssuerLabel] = issuer
	return l
}

// CacheObjects restrict the manager's cache to what device identity reads
// through it: Secrets the operator labelled, in the device namespaces and
// the operator's own (in every namespace when DeviceNamespaces is nil), and
// Namespaces that choose their issuer. Merge them into the manager's cache
// ByObject options; OperatorNamespace must be set. Trust bundle ConfigMaps
// and cert-manager Certificates are read through a cache of their own,
// which SetupIdentity adds to the manager, kept to the same namespaces.
func (o IdentityOptions) CacheObjects() map[client.Object]cache.ByObject {
	choosing, err := labels.NewRequirement(iomtv1.IssuerLabel, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return map[client.Object]cache.ByObject{
		&corev1.Secret{}:    {Label: managedSelector(), Namespaces: o.cachedNamespaces()},
		&corev1.Namespace{}: {Label: labels.NewSelector().Add(*choosing)},
	}
}

// IdentityCacheObjects are the CacheObjects of an operator that issues
// identities in every namespace: they cache Secrets cluster-wide. An
// operator given DeviceNamespaces must use IdentityOptions.CacheObjects.
func IdentityCacheObjects() map[client.Object]cache.ByObject {
	return IdentityOptions{}.CacheObjects()
}

func managedSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{segment.ManagedByLabel: segment.ManagedByValue})
}

// SetupIdentity registers the controllers that keep the operator's CA,
// every device's certificate and every namespace's trust bundle. The
// manager's cache must hold Secrets as opts.CacheObjects says.
func SetupIdentity(ctx context.Context, mgr ctrl.Manager, opts IdentityOptions) error {
	_, err := setupIdentity(ctx, mgr, opts)
	return err
}

// setupIdentity is SetupIdentity that also returns the authority holding
// the CAs, for the attestation endpoint.
func setupIdentity(ctx context.Context, mgr ctrl.Manager, opts IdentityOptions) (*authority, error) {
	opts, err := opts.complete()
	if err != nil {
		return nil, err
	}
	own, err := ownCache(mgr, opts)
	if err != nil {
		return nil, err
	}
	certManager, err := certManagerInstalled(mgr)
	if err != nil {
		return nil, err
	}
	if opts.CertManager.Default && !certManager {
		return nil, errors.New("cert-manager is the default issuer, but its Certificate kind is not installed")
	}

	auth := newAuthority()
	recorder := mgr.GetEventRecorder("iomt-operator")
	if err := (&caReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder,
		own: own, auth: auth, opts: opts,
	}).setupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&trustBundleReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), own: own, auth: auth, opts: opts,
	}).setupWithManager(mgr); err != nil {
		return nil, err
	}
	r := &identityReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder, auth: auth, opts: opts,
	}
	if certManager {
		r.certs = own
	}
	return auth, r.setupWithManager(mgr)
}

// ownCache is a cache of the operator's own ConfigMaps and Certificates,
// apart from the manager's, whose ConfigMaps are limited to the advisories
// in the operator's namespace. It holds the namespaces whose Secrets the
// operator may read.
func ownCache(mgr ctrl.Manager, opts IdentityOptions) (cache.Cache, error) {
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:               mgr.GetScheme(),
		Mapper:               mgr.GetRESTMapper(),
		HTTPClient:           mgr.GetHTTPClient(),
		DefaultNamespaces:    opts.cachedNamespaces(),
		DefaultLabelSelector: managedSelector(),
		DefaultTransform:     cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create the identity cache: %w", err)
	}
	if err := mgr.Add(c); err != nil {
		return nil, fmt.Errorf("failed to add the identity cache: %w", err)
	}
	return c, nil
}

// certManagerInstalled reports whether cert-manager's Certificate kind is
// served.
func certManagerInstalled(mgr ctrl.Manager) (bool, error) {
	_, err := mgr.GetRESTMapper().RESTMapping(certificateGVK.GroupKind(), certificateGVK.Version)
	if meta.IsNoMatchError(err) {
		// TODO: cert-manager installed after the operator started is not
		// noticed; namespaces that ask for it report CertManagerMissing
		// until the operator restarts.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to look up cert-manager's Certificate kind: %w", err)
	}
	return true, nil
}

var (
	identityExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "iomt_identity_certificate_expiry_seconds",
		Help: "When each device's certificate expires, in seconds since the Unix epoch.",
	}, []string{"namespace", "device"})

	identityIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "iomt_identity_issued_total",
		Help: "Device certificates the operator's CA signed, by why: issue, renew or rotate.",
	}, []string{"reason"})

	identityErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "iomt_identity_errors_total",
		Help: "Failures to load the CA or to sign, store or publish certificates and trust bundles.",
	})
)

func init() {
	metrics.Registry.MustRegister(identityExpiry, identityIssued, identityErrors)
	for _, a := range []identity.Action{identity.ActionIssue, identity.ActionRenew, identity.ActionRotate} {
		identityIssued.WithLabelValues(string(a))
	}
}

// identityReconciler gives each MedicalDevice its certificate: signed by
// the operator's CA into <device>-identity, or asked of cert-manager.
type identityReconciler struct {
	client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	auth      *authority
	opts      IdentityOptions
	// certs reads the operator's Certificates; nil when cert-manager is
	// not installed.
	certs cache.Cache
}

// outcome is what one pass found: the certificate the device holds and
// the IdentityIssued condition.
type outcome struct {
	// wait: nothing can be said yet; status is left alone.
	wait   bool
	status *iomtv1.IdentityStatus
	ok     bool
	// reason is the condition's reason; for a certificate found in place
	// it is left empty and follows from what status said before.
	reason  string
	message string
	// issuer, when set, names who issued a certificate found in place, to
	// announce it with an Event when status first records it.
	issuer  string
	requeue time.Duration
}

// Reconcile issues or renews the device's certificate and records it in
// status.identity and the IdentityIssued condition.
func (r *identityReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var dev iomtv1.MedicalDevice
	if err := r.Get(ctx, req.NamespacedName, &dev); err != nil {
		if apierrors.IsNotFound(err) {
			identityExpiry.DeleteLabelValues(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("failed to read MedicalDevice: %w", err)
	}
	if !dev.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	out, err := r.issue(ctx, &dev)
	if out.wait {
		return ctrl.Result{}, err
	}
	if err != nil {
		identityErrors.Inc()
	}
	if out.status != nil {
		identityExpiry.WithLabelValues(dev.Namespace, dev.Name).Set(float64(out.status.NotAfter.Unix()))
	} else {
		identityExpiry.DeleteLabelValues(dev.Namespace, dev.Name)
	}
	if perr := r.patchStatus(ctx, &dev, out); perr != nil {
		identityErrors.Inc()
		return ctrl.Result{}, errors.Join(err, perr)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: out.requeue}, nil
}

// issue has the device's certificate issued by whoever signs for its
// namespace. In a namespace the operator may not touch Secrets in, nothing
// is read or written and the device is told so.
func (r *identityReconciler) issue(ctx context.Context, dev *iomtv1.MedicalDevice) (
	outcome, error) {
	if !r.opts.enrolled(dev.Namespace) {
		return outcome{reason: iomtv1.ReasonNamespaceNotEnrolled,
			message: notEnrolledMessage(dev.Namespace)}, nil
	}

	iss, err := r.issuerOf(ctx, dev.Namespace)
	if err != nil {
		return outcome{wait: true}, err
	}
	if iss.certManager {
		return r.viaCertManager(ctx, dev, iss)
	}
	return r.viaOperator(ctx, dev)
}

// issuer is who signs a namespace's certificates.
type issuer struct {
	certManager             bool
	name, kind, group, text string
}

// issuerOf reads the namespace's choice. Only namespaces that choose are
// cached, so a missing one takes the operator's default.
func (r *identityReconciler) issuerOf(ctx context.Context, namespace string) (issuer, error) {
	var ns corev1.Namespace
	if err := r.Get(ctx, client.ObjectKey{Name: namespace}, &ns); client.IgnoreNotFound(err) != nil {
		return issuer{}, fmt.Errorf("failed to read Namespace %s: %w", namespace, err)
	}
	cm := r.opts.CertManager
	switch ns.Labels[iomtv1.IssuerLabel] {
	case iomtv1.IssuerCertManager:
	case iomtv1.IssuerOperator:
		return issuer{}, nil
	default:
		if !cm.Default {
			return issuer{}, nil
		}
	}
	iss := issuer{certManager: true, name: cm.IssuerName, kind: cm.IssuerKind, group: cm.IssuerGroup}
	if v := ns.Annotations[iomtv1.IssuerNameAnnotation]; v != "" {
		iss.name = v
	}
	if v := ns.Annotations[iomtv1.IssuerKindAnnotation]; v != "" {
		iss.kind = v
	}
	if v := ns.Annotations[iomtv1.IssuerGroupAnnotation]; v != "" {
		iss.group = v
	}
	iss.text = fmt.Sprintf("cert-manager %s %s", iss.kind, iss.name)
	return iss, nil
}

func (r *identityReconciler) leafRequest(dev *iomtv1.MedicalDevice) identity.LeafRequest {
	req := identity.LeafRequest{TrustDomain: r.opts.TrustDomain, Namespace: dev.Namespace, Name: dev.Name,
		Lifetime: r.opts.DefaultLifetime}
	if id := dev.Spec.Identity; id != nil {
		req.DNSNames = id.DNSNames
		if id.Lifetime != nil {
			req.Lifetime = id.Lifetime.Duration
		}
	}
	return req
}

// viaOperator signs the device's certificate with the operator's CA when
// it is missing, wrong, due or signed by a CA that no longer signs, and
// keeps the Secret's trust bundle current.
func (r *identityReconciler) viaOperator(ctx context.Context, dev *iomtv1.MedicalDevice) (
	outcome, error) {
	set := r.auth.current()
	if set == nil {
		return outcome{wait: true}, nil // the CA controller wakes every device once the CA is loaded
	}
	if err := r.dropCertificate(ctx, dev); err != nil {
		return failed(nil, err), err
	}
	req := r.leafRequest(dev)
	now := r.opts.Now()

	have, err := r.identitySecret(ctx, dev)
	switch {
	case errors.Is(err, errForeignSecret):
		return outcome{reason: iomtv1.ReasonSecretConflict, requeue: time.Minute, message: fmt.Sprintf(
			"Secret %s exists and does not belong to this device; delete or rename it",
			iomtv1.IdentitySecretName(dev.Name))}, nil
	case err != nil:
		return failed(nil, err), err
	}
	var data map[string][]byte
	if have != nil {
		data = have.Data
	}

	decision := identity.Check(data, req, set.Active, now)
	fromCertManager := have != nil && have.Labels[iomtv1.IssuerLabel] == iomtv1.IssuerCertManager
	if decision.Action == identity.ActionRotate && fromCertManager {
		decision = identity.Decision{Action: identity.ActionIssue, Why: "the namespace left cert-manager"}
	}
	var leaf *identity.Leaf
	if decision.Action == identity.ActionNone {
		leaf, err = identity.ParseLeaf(data[identity.CertKey], data[identity.KeyKey])
	} else {
		leaf, set, err = r.auth.issue(req, now)
	}
	if err != nil {
		err = fmt.Errorf("failed to sign certificate: %w", err)
		return failed(heldStatus(data, req, set), err), err
	}
	if err := r.writeSecret(ctx, dev, have, leaf, set.Bundle()); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			return outcome{wait: true}, nil // the cache is behind; the Secret's event brings us back
		}
		return failed(heldStatus(data, req, set), err), err
	}

	st := operatorStatus(req, leaf, set)
	var reason string
	if decision.Action != identity.ActionNone {
		reason = issuedReasons[decision.Action]
		identityIssued.WithLabelValues(string(decision.Action)).Inc()
		r.Recorder.Eventf(dev, nil, corev1.EventTypeNormal, reason, "IssueCertificate",
			"%s certificate %s for %s, valid until %s: %s", strings.ToLower(reason), st.SerialNumber,
			st.SPIFFEID, st.NotAfter.UTC().Format(time.RFC3339), decision.Why)
		log.FromContext(ctx).Info("Issued device certificate", "secret",
			klog.KRef(dev.Namespace, st.SecretName), "serial", st.SerialNumber, "reason", decision.Action)
	}
	return outcome{status: st, ok: true, reason: reason, message: validMessage(st),
		requeue: max(st.RenewAfter.Sub(now), 100*time.Millisecond)}, nil
}

var issuedReasons = map[identity.Action]string{
	identity.ActionIssue:  iomtv1.ReasonIssued,
	identity.ActionRenew:  iomtv1.ReasonRenewed,
	identity.ActionRotate: iomtv1.ReasonRotated,
}

// foundReason is the reason of a certificate found in place: the reason
// status gave it, Renewed when it replaced the one status shows for the
// same SPIFFE ID, Issued otherwise.
func foundReason(dev *iomtv1.MedicalDevice, st *iomtv1.IdentityStatus) string {
	old := dev.Status.Identity
	c := meta.FindStatusCondition(dev.Status.Conditions, iomtv1.ConditionIdentityIssued)
	switch {
	case old != nil && old.SerialNumber == st.SerialNumber && c != nil && c.Status == metav1.ConditionTrue:
		return c.Reason
	case old != nil && old.SerialNumber != st.SerialNumber && old.SPIFFEID == st.SPIFFEID:
		return iomtv1.ReasonRenewed
	}
	return iomtv1.ReasonIssued
}

func failed(st *iomtv1.IdentityStatus, err error) outcome {
	return outcome{status: st, reason: iomtv1.ReasonIssueFailed, message: err.Error()}
}

func validMessage(st *iomtv1.IdentityStatus) string {
	return fmt.Sprintf("certificate %s for %s is valid until %s and is renewed after %s",
		st.SerialNumber, st.SPIFFEID, st.NotAfter.UTC().Format(time.RFC3339),
		st.RenewAfter.UTC().Format(time.RFC3339))
}

// identityKey names a device's identity Secret, and its Certificate.
func identityKey(dev *iomtv1.MedicalDevice) client.ObjectKey {
	return client.ObjectKey{Namespace: dev.Namespace, Name: iomtv1.IdentitySecretName(dev.Name)}
}

var errForeignSecret = errors.New("the identity Secret belongs to someone else")

// identitySecret returns the device's identity Secret, nil when there is
// none, or errForeignSecret when one by that name is not the operator's.
// The cache holds only labelled Secrets; a Secret missing from it is
// looked up once more, so that one whose labels were removed is taken back.
func (r *identityReconciler) identitySecret(ctx context.Context, dev *iomtv1.MedicalDevice) (
	*corev1.Secret, error) {
	key := identityKey(dev)
	var s corev1.Secret
	err := r.Get(ctx, key, &s)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, &s)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err == nil && !metav1.IsControlledBy(&s, dev) {
			return nil, errForeignSecret
		}
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read Secret %s: %w", key, err)
	}
	if s.Labels[componentLabel] != componentIdentity && !metav1.IsControlledBy(&s, dev) {
		return nil, errForeignSecret
	}
	return &s, nil
}

// writeSecret stores the certificate, its key and the trust bundle, with
// the operator's labels and the device as controller, when the Secret
// does not already hold exactly that.
func (r *identityReconciler) writeSecret(ctx context.Context, dev *iomtv1.MedicalDevice,
	have *corev1.Secret, leaf *identity.Leaf, bundle []byte) error {
	data := map[string][]byte{
		identity.CertKey: leaf.CertPEM, identity.KeyKey: leaf.KeyPEM, identity.BundleKey: bundle,
	}
	owner := controllerRef(dev, iomtv1.GroupVersion.String(), "MedicalDevice")
	lbls := identityLabels(iomtv1.IssuerOperator)
	if have == nil {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: dev.Namespace, Name: iomtv1.IdentitySecretName(dev.Name),
				Labels: lbls, OwnerReferences: []metav1.OwnerReference{owner}},
			Type: corev1.SecretTypeTLS,
			Data: data,
		}
		if err := r.Create(ctx, s); err != nil {
			return fmt.Errorf("failed to create Secret %s: %w", klog.KObj(s), err)
		}
		return nil
	}

	want := have.DeepCopy()
	want.Data = data
	if want.Labels == nil {
		want.Labels = map[string]string{}
	}
	maps.Copy(want.Labels, lbls)
	// What cert-manager noted about a certificate it wrote no longer holds.
	maps.DeleteFunc(want.Annotations, func(k, _ string) bool {
		return strings.HasPrefix(k, certManagerGroup+"/")
	})
	// The device is the only controller; references cert-manager may have
	// left are dropped, so its clean-up does not take the Secret along.
	want.OwnerReferences = slices.DeleteFunc(want.OwnerReferences, func(o metav1.OwnerReference) bool {
		return o.Kind == "MedicalDevice" || o.Kind == certificateGVK.Kind
	})
	want.OwnerReferences = append(want.OwnerReferences, owner)
	if equality.Semantic.DeepEqual(have, want) {
		return nil
	}
	if err := r.Update(ctx, want); err != nil {
		return fmt.Errorf("failed to update Secret %s: %w", klog.KObj(want), err)
	}
	if !equality.Semantic.DeepEqual(have.Data, want.Data) {
		log.FromContext(ctx).V(1).Info("Updated identity Secret", "secret", klog.KObj(want))
	}
	return nil
}

// operatorStatus describes a certificate the operator's CA signed.
func operatorStatus(req identity.LeafRequest, leaf *identity.Leaf,
	set *identity.CASet) *iomtv1.IdentityStatus {
	st := leafStatus(req, leaf)
	if signer := set.SignerOf(leaf.Cert); signer != nil {
		st.Issuer = fmt.Sprintf("%s sha256:%s", identity.CAName, identity.Fingerprint(signer))
	}
	return st
}

// heldStatus describes the certificate a Secret holds when it is one for
// req that a trusted CA signed, and is nil otherwise.
func heldStatus(data map[string][]byte, req identity.LeafRequest,
	set *identity.CASet) *iomtv1.IdentityStatus {
	if set == nil || data == nil {
		return nil
	}
	leaf, err := identity.ParseLeaf(data[identity.CertKey], data[identity.KeyKey])
	if err != nil || identity.SPIFFEIDOf(leaf.Cert) != req.SPIFFEID() {
		return nil
	}
	if set.SignerOf(leaf.Cert) == nil {
		return nil
	}
	return operatorStatus(req, leaf, set)
}

func leafStatus(req identity.LeafRequest, leaf *identity.Leaf) *iomtv1.IdentityStatus {
	c := leaf.Cert
	t := func(v time.Time) *metav1.Time { mt := metav1.NewTime(v.UTC()); return &mt }
	return &iomtv1.IdentityStatus{
		SPIFFEID:     identity.SPIFFEIDOf(c),
		SecretName:   iomtv1.IdentitySecretName(req.Name),
		SerialNumber: c.SerialNumber.Text(16),
		Lifetime:     &metav1.Duration{Duration: req.Lifetime},
		NotBefore:    t(c.NotBefore),
		NotAfter:     t(c.NotAfter),
		RenewAfter:   t(identity.RenewAt(c)),
	}
}

// patchStatus writes status.identity and the IdentityIssued condition when
// they changed, leaving every other status field to its own reconciler.
// On a conflict it starts again from the device as the API server has it.
func (r *identityReconciler) patchStatus(ctx context.Context, dev *iomtv1.MedicalDevice,
	out outcome) error {
	cond := metav1.ConditionFalse
	if out.ok {
		cond = metav1.ConditionTrue
	}
	cur := dev
	var before, after []metav1.Condition
	reason, announce := out.reason, false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if cur != dev {
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(dev), cur); err != nil {
				return err
			}
		}
		if out.ok && out.reason == "" {
			reason = foundReason(cur, out.status)
		}
		patched := cur.DeepCopy()
		patched.Status.Identity = out.status
		conditions.Set(&patched.Status.Conditions, cur.Generation, iomtv1.ConditionIdentityIssued, cond,
			reason, out.message)
		before, after = cur.Status.Conditions, patched.Status.Conditions
		if equality.Semantic.DeepEqual(&cur.Status, &patched.Status) {
			return nil
		}
		announce = out.issuer != "" && (cur.Status.Identity == nil ||
			cur.Status.Identity.SerialNumber != out.status.SerialNumber)
		err := r.Status().Patch(ctx, patched, client.MergeFromWithOptions(cur,
			client.MergeFromWithOptimisticLock{}))
		if apierrors.IsConflict(err) {
			cur = &iomtv1.MedicalDevice{}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to update MedicalDevice status: %w", err)
	}

	if announce {
		st := out.status
		r.Recorder.Eventf(dev, nil, corev1.EventTypeNormal, reason, "IssueCertificate",
			"%s issued certificate %s for %s, valid until %s", out.issuer, st.SerialNumber, st.SPIFFEID,
			st.NotAfter.UTC().Format(time.RFC3339))
	}

	// Issuing has its own Event; failures and waits get one when they begin.
	if !out.ok && conditions.Changed(before, after, iomtv1.ConditionIdentityIssued) {
		typ := corev1.EventTypeWarning
		if out.reason == iomtv1.ReasonCertificatePending {
			typ = corev1.EventTypeNormal
		}
		r.Recorder.Eventf(dev, nil, typ, out.reason, "IssueCertificate", "%s", out.message)
		log.FromContext(ctx).Info("Device has no valid certificate", "reason", out.reason,
			"message", out.message)
	}
	return nil
}

// setupWithManager registers the reconciler and what it watches.
func (r *identityReconciler) setupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("identity").
		For(&iomtv1.MedicalDevice{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(deviceOfSecret)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.devicesIn)).
		WatchesRawSource(source.Channel(r.auth.subscribe(),
			handler.EnqueueRequestsFromMapFunc(r.devicesIn)))
	if r.certs != nil {
		b = b.WatchesRawSource(source.Kind[client.Object](r.certs, newCertificate(),
			handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &iomtv1.MedicalDevice{},
				handler.OnlyControllerOwner())))
	}
	return b.Complete(r)
}

// deviceOfSecret maps an identity Secret, whoever wrote it, to its device.
func deviceOfSecret(_ context.Context, obj client.Object) []reconcile.Request {
	name, ok := strings.CutSuffix(obj.GetName(), iomtv1.IdentitySecretSuffix)
	if !ok || obj.GetLabels()[componentLabel] != componentIdentity {
		return nil
	}
	key := client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}
	return []reconcile.Request{{NamespacedName: key}}
}

// devicesIn maps a Namespace to its devices, and anything else (the CA
// changing) to every device.
func (r *identityReconciler) devicesIn(ctx context.Context, obj client.Object) []reconcile.Request {
	var opts []client.ListOption
	if _, ok := obj.(*corev1.Namespace); ok {
		opts = append(opts, client.InNamespace(obj.GetName()))
	}
	var list iomtv1.MedicalDeviceList
	if err := r.List(ctx, &list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		log.FromContext(ctx).Error(err, "Cannot map change to devices", "object", klog.KObj(obj))
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
}

// viaCertManager asks cert-manager for the device's certificate with a
// Certificate, and reads what cert-manager wrote into the Secret.
func (r *identityReconciler) viaCertManager(ctx context.Context, dev *iomtv1.MedicalDevice,
	iss issuer) (outcome, error) {
	if r.certs == nil {
		return outcome{reason: iomtv1.ReasonCertManagerMissing, message: "the namespace asks for " +
			"cert-manager, but its Certificate kind was not installed when the operator started"}, nil
	}
	if iss.name == "" {
		return outcome{reason: iomtv1.ReasonIssueFailed, message: "the namespace asks for cert-manager " +
			"but names no issuer: set the annotation " + iomtv1.IssuerNameAnnotation}, nil
	}
	req := r.leafRequest(dev)
	if err := r.applyCertificate(ctx, dev, req, iss); err != nil {
		return failed(nil, err), err
	}

	pending := func(why string) (outcome, error) {
		return outcome{reason: iomtv1.ReasonCertificatePending,
			message: fmt.Sprintf("waiting for %s: %s", iss.text, why)}, nil
	}
	key := identityKey(dev)
	var s corev1.Secret
	if err := r.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return pending("Secret " + key.Name + " is not written yet")
		}
		return failed(nil, err), fmt.Errorf("failed to read Secret %s: %w", key, err)
	}
	leaf, err := identity.ParseLeaf(s.Data[identity.CertKey], nil)
	now := r.opts.Now()
	switch {
	case err != nil:
		return pending("the certificate in Secret " + key.Name + " cannot be read")
	case identity.SPIFFEIDOf(leaf.Cert) != req.SPIFFEID():
		return pending("the certificate in Secret " + key.Name + " is not for " + req.SPIFFEID())
	case !slices.Equal(sortedNames(leaf.Cert.DNSNames), sortedNames(req.DNSNames)):
		return pending("the certificate in Secret " + key.Name + " has other DNS names")
	case !now.Before(leaf.Cert.NotAfter):
		return pending("the certificate in Secret " + key.Name + " expired")
	}
	if err := r.ownSecret(ctx, dev, &s); err != nil {
		return failed(nil, err), err
	}

	st := leafStatus(req, leaf)
	st.Issuer = iss.text
	return outcome{status: st, ok: true, message: validMessage(st), issuer: iss.text,
		requeue: max(st.NotAfter.Sub(now), 100*time.Millisecond)}, nil
}

func sortedNames(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}

// certificateSpecKeys are the fields of a Certificate's spec the operator
// sets; others are left to whoever set them.
var certificateSpecKeys = []string{"secretName", "uris", "dnsNames", "duration", "renewBefore",
	"privateKey", "usages", "issuerRef", "secretTemplate"}

func newCertificate() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(certificateGVK)
	return u
}

// certificateSpec is the Certificate spec that asks cert-manager for the
// device's certificate, renewed after two thirds of its lifetime like the
// operator's own.
func certificateSpec(req identity.LeafRequest, iss issuer) map[string]any {
	lbls := map[string]any{}
	for k, v := range identityLabels(iomtv1.IssuerCertManager) {
		lbls[k] = v
	}
	spec := map[string]any{
		"secretName":  iomtv1.IdentitySecretName(req.Name),
		"uris":        []any{req.SPIFFEID()},
		"duration":    req.Lifetime.String(),
		"renewBefore": (req.Lifetime / 3).String(),
		"privateKey": map[string]any{
			"algorithm": "ECDSA", "size": int64(256), "rotationPolicy": "Always",
		},
		"usages":         []any{"digital signature", "client auth", "server auth"},
		"issuerRef":      map[string]any{"name": iss.name, "kind": iss.kind, "group": iss.group},
		"secretTemplate": map[string]any{"labels": lbls},
	}
	if names := sortedNames(req.DNSNames); len(names) > 0 {
		dns := make([]any, len(names))
		for i, n := range names {
			dns[i] = n
		}
		spec["dnsNames"] = dns
	}
	return spec
}

// applyCertificate creates or corrects the device's Certificate.
func (r *identityReconciler) applyCertificate(ctx context.Context, dev *iomtv1.MedicalDevice,
	req identity.LeafRequest, iss issuer) error {
	want := certificateSpec(req, iss)
	owner := controllerRef(dev, iomtv1.GroupVersion.String(), "MedicalDevice")
	have := newCertificate()
	err := r.certs.Get(ctx, identityKey(dev), have)
	if apierrors.IsNotFound(err) {
		c := newCertificate()
		c.SetNamespace(dev.Namespace)
		c.SetName(iomtv1.IdentitySecretName(dev.Name))
		c.SetLabels(managedLabels(componentIdentity))
		c.SetOwnerReferences([]metav1.OwnerReference{owner})
		c.Object["spec"] = want
		if err := r.Create(ctx, c); err != nil {
			return fmt.Errorf("failed to create Certificate %s: %w", klog.KObj(c), err)
		}
		log.FromContext(ctx).Info("Created Certificate", "certificate", klog.KObj(c), "issuer", iss.text)
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read Certificate: %w", err)
	}
	if !metav1.IsControlledBy(have, dev) {
		return fmt.Errorf("certificate %s does not belong to this device", klog.KObj(have))
	}

	spec, _, _ := unstructured.NestedMap(have.Object, "spec")
	if spec == nil {
		spec = map[string]any{}
	}
	same := true
	for _, k := range certificateSpecKeys {
		if !equality.Semantic.DeepEqual(spec[k], want[k]) {
			same = false
			if v, ok := want[k]; ok {
				spec[k] = v
			} else {
				delete(spec, k)
			}
		}
	}
	if same {
		return nil
	}
	upd := have.DeepCopy()
	upd.Object["spec"] = spec
	if err := r.Update(ctx, upd); err != nil {
		return fmt.Errorf("failed to update Certificate %s: %w", klog.KObj(upd), err)
	}
	log.FromContext(ctx).Info("Updated Certificate", "certificate", klog.KObj(upd), "issuer", iss.text)
	return nil
}

// ownSecret makes the device an owner of the Secret cert-manager wrote,
// so that the Secret goes with the device. cert-manager may control the
// Secret itself, so the device is an owner but not the controller.
func (r *identityReconciler) ownSecret(ctx context.Context, dev *iomtv1.MedicalDevice,
	s *corev1.Secret) error {
	ref := controllerRef(dev, iomtv1.GroupVersion.String(), "MedicalDevice")
	ref.Controller, ref.BlockOwnerDeletion = nil, nil
	for _, o := range s.OwnerReferences {
		if o.UID == dev.UID && (o.Controller == nil || !*o.Controller) {
			return nil
		}
	}
	want := s.DeepCopy()
	want.OwnerReferences = slices.DeleteFunc(want.OwnerReferences, func(o metav1.OwnerReference) bool {
		return o.UID == dev.UID
	})
	want.OwnerReferences = append(want.OwnerReferences, ref)
	patch := client.MergeFromWithOptions(s, client.MergeFromWithOptimisticLock{})
	if err := r.Patch(ctx, want, patch); err != nil {
		return fmt.Errorf("failed to add the device as owner of Secret %s: %w", klog.KObj(s), err)
	}
	return nil
}

// dropCertificate deletes the device's Certificate once its namespace no
// longer uses cert-manager, so that cert-manager stops writing the Secret.
func (r *identityReconciler) dropCertificate(ctx context.Context, dev *iomtv1.MedicalDevice) error {
	if r.certs == nil {
		return nil
	}
	c := newCertificate()
	err := r.certs.Get(ctx, identityKey(dev), c)
	if apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(c, dev)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read Certificate: %w", err)
	}
	if err := r.Delete(ctx, c); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to delete Certificate %s: %w", klog.KObj(c), err)
	}
	log.FromContext(ctx).Info("Deleted Certificate: the operator's CA signs again",
		"certificate", klog.KObj(c))
	return nil
}
