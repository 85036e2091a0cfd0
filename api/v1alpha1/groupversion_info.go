// Package v1alpha1 holds the iomt.medinaii.io/v1alpha1 API: MedicalDevice,
// one connected medical device, and SegmentPolicy, one micro-segment that
// says what its member devices may talk to.
//
// +kubebuilder:object:generate=true
// +groupName=iomt.medinaii.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "iomt.medinaii.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
