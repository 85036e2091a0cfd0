package controllers

import (
	"context"
	"fmt"
	"maps"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// Options configure the operator's controllers.
type Options struct {
	// Segment configures the policy compiler.
	Segment segment.Config
	// Namespace is the operator's own namespace, where it reads advisory
	// ConfigMaps; DefaultNamespace when empty.
	Namespace string
	// Reports receives what verifiers report through the attestation
	// endpoint; a new, unconnected store when nil.
	Reports *Reports
	// Identity, when set, runs the device certificate controllers too.
	Identity *IdentityOptions
	// Attestation, when set together with Identity, serves the endpoint
	// verifier sidecars report to.
	Attestation *AttestationOptions
	// PolicyEngine picks what enforces segments; EngineAuto when empty.
	PolicyEngine EngineMode
	// EnginePollInterval is how often Cilium's CRD is looked for while
	// running; DefaultEnginePollInterval when zero.
	EnginePollInterval time.Duration
}

// DefaultNamespace is the operator's namespace when none is given.
const DefaultNamespace = "iomt-system"

func (o Options) namespace() string {
	if o.Namespace == "" {
		return DefaultNamespace
	}
	return o.Namespace
}

// identity returns the identity options, in the operator's namespace
// unless they name another.
func (o Options) identity() IdentityOptions {
	id := *o.Identity
	if id.OperatorNamespace == "" {
		id.OperatorNamespace = o.namespace()
	}
	return id
}

// NewScheme returns a scheme with the kinds the operator reads and writes.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := iomtv1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := ciliumv2.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// CacheOptions keep the cache to what the operator manages: of
// NetworkPolicies only its own, of ConfigMaps only the advisories in its
// namespace, of Secrets only its own in the namespaces identity may touch,
// and no managedFields on anything.
func CacheOptions(opts Options) cache.Options {
	hasAdvisories, err := labels.NewRequirement(iomtv1.AdvisoriesLabel, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	byObject := map[client.Object]cache.ByObject{
		&networkingv1.NetworkPolicy{}: {
			Label: labels.SelectorFromSet(labels.Set{segment.ManagedByLabel: segment.ManagedByValue}),
		},
		&corev1.ConfigMap{}: {
			Namespaces: map[string]cache.Config{
				opts.namespace(): {LabelSelector: labels.NewSelector().Add(*hasAdvisories)},
			},
		},
	}
	if opts.Identity != nil {
		maps.Copy(byObject, opts.identity().CacheObjects())
	}
	return cache.Options{DefaultTransform: cache.TransformStripManagedFields(), ByObject: byObject}
}

// Setup registers every controller with the manager.
//
// What the controllers may do is declared in the Helm chart's
// templates/rbac, each rule with its reason; the install tests run the
// operator under exactly those permissions.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	recorder := mgr.GetEventRecorder("iomt-operator")
	mode, err := ParseEngineMode(string(opts.PolicyEngine))
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("failed to create discovery client: %w", err)
	}
	engine, err := newEngineDetector(ctx, mode, disc, mgr.GetAPIReader(), opts.EnginePollInterval)
	if err != nil {
		return err
	}
	if err := mgr.Add(engine); err != nil {
		return fmt.Errorf("failed to add policy engine detection: %w", err)
	}
	if err := (&SegmentPolicyReconciler{
		Client:    mgr.GetClient(),
		Recorder:  recorder,
		Config:    opts.Segment,
		APIReader: mgr.GetAPIReader(),
		engine:    engine,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	reports := opts.Reports
	if reports == nil {
		reports = NewReports()
	}
	devices := &MedicalDeviceReconciler{
		Client:     mgr.GetClient(),
		Recorder:   recorder,
		Advisories: &AdvisoryStore{Namespace: opts.namespace(), Recorder: recorder},
		Reports:    reports,
	}
	if opts.Identity != nil {
		devices.ReportsExpected = opts.Identity.enrolled
	}
	if err := devices.SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&BaselineReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).
		SetupWithManager(mgr); err != nil {
		return err
	}
	if opts.Identity == nil {
		return nil
	}
	id := opts.identity()
	auth, err := setupIdentity(ctx, mgr, id)
	if err != nil || opts.Attestation == nil {
		return err
	}
	id, err = id.complete()
	if err != nil {
		return err
	}
	return mgr.Add(&attestationEndpoint{opts: *opts.Attestation, trustDomain: id.TrustDomain,
		namespace: id.OperatorNamespace, auth: auth, reports: reports})
}
