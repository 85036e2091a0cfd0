package controllers

import (
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestDeviceNamespacesScopeSecrets(t *testing.T) {
	managed := labels.Set{"app.kubernetes.io/managed-by": "iomt-operator"}
	tests := []struct {
		name    string
		devices []string
		// cached are the namespaces Secrets are cached in; nil for every one.
		cached []string
		// enrolled and notEnrolled are namespaces identity is and is not
		// issued in.
		enrolled, notEnrolled []string
	}{
		{name: "nil is every namespace", devices: nil, cached: nil,
			enrolled: []string{"icu", "iomt-system"}},
		{name: "empty is none but the CA's", devices: []string{}, cached: []string{"iomt-system"},
			notEnrolled: []string{"icu", "iomt-system"}},
		{name: "a list", devices: []string{"icu", "radiology"},
			cached: []string{"icu", "iomt-system", "radiology"}, enrolled: []string{"icu", "radiology"},
			notEnrolled: []string{"ward-3", "iomt-system", ""}},
		{name: "the operator's own namespace", devices: []string{"iomt-system"},
			cached: []string{"iomt-system"}, enrolled: []string{"iomt-system"},
			notEnrolled: []string{"icu"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := IdentityOptions{OperatorNamespace: "iomt-system", DeviceNamespaces: tt.devices}
			byObject := o.CacheObjects()
			var secrets *corev1.Secret
			for obj := range byObject {
				if s, ok := obj.(*corev1.Secret); ok {
					secrets = s
				}
			}
			if secrets == nil {
				t.Fatal("CacheObjects() has no entry for Secrets")
			}
			got := byObject[secrets]
			if !got.Label.Matches(managed) || got.Label.Matches(labels.Set{}) {
				t.Errorf("Secret label selector = %v, want the managed-by label", got.Label)
			}
			if tt.cached == nil {
				if got.Namespaces != nil {
					t.Errorf("Secret namespaces = %v, want nil (every namespace)", got.Namespaces)
				}
			} else {
				names := slices.Sorted(maps.Keys(got.Namespaces))
				if !slices.Equal(names, tt.cached) {
					t.Errorf("Secret namespaces = %v, want %v", names, tt.cached)
				}
				for ns, cfg := range got.Namespaces {
					if cfg.LabelSelector == nil || !cfg.LabelSelector.Matches(managed) ||
						cfg.LabelSelector.Matches(labels.Set{}) {
						t.Errorf("Secret label selector in %s = %v, want the managed-by label", ns,
							cfg.LabelSelector)
					}
				}
			}
			for _, ns := range tt.enrolled {
				if !o.enrolled(ns) {
					t.Errorf("enrolled(%q) = false, want true", ns)
				}
			}
			for _, ns := range tt.notEnrolled {
				if o.enrolled(ns) {
					t.Errorf("enrolled(%q) = true, want false", ns)
				}
			}
		})
	}
}

func TestDeviceNamespacesAreValidated(t *testing.T) {
	for _, list := range [][]string{{"icu", "Radiology"}, {""}, {"*"}, {"ward.3"}} {
		_, err := IdentityOptions{OperatorNamespace: "iomt-system", DeviceNamespaces: list}.complete()
		if err == nil || !strings.Contains(err.Error(), "is not a namespace name") {
			t.Errorf("complete() with device namespaces %q: error = %v, want a bad name", list, err)
		}
	}
	if _, err := (IdentityOptions{OperatorNamespace: "iomt-system",
		DeviceNamespaces: []string{"icu"}}).complete(); err != nil {
		t.Errorf("complete() with device namespaces [icu]: %v", err)
	}
}

func TestCacheOptionsKeepSecretsToDeviceNamespaces(t *testing.T) {
	opts := CacheOptions(Options{Identity: &IdentityOptions{DeviceNamespaces: []string{"icu"}}})
	for obj, by := range opts.ByObject {
		if _, ok := obj.(*corev1.Secret); !ok {
			continue
		}
		names := slices.Sorted(maps.Keys(by.Namespaces))
		if want := []string{"icu", DefaultNamespace}; !slices.Equal(names, want) {
			t.Fatalf("Secret namespaces = %v, want %v", names, want)
		}
		return
	}
	t.Fatal("CacheOptions() has no entry for Secrets")
}
