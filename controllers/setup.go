package controllers

import (
	"context"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
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
	return s
}

// CacheOptions keep the cache to what the operator manages: of
// NetworkPolicies only its own, and no managedFields on anything.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&networkingv1.NetworkPolicy{}: {
				Label: labels.SelectorFromSet(labels.Set{segment.ManagedByLabel: segment.ManagedByValue}),
			},
		},
	}
}

// Setup registers every controller with the manager.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := (&SegmentPolicyReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("iomt-operator"),
		Config:   opts.Segment,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := (&MedicalDeviceReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("iomt-operator"),
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&BaselineReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr)
}
