package controllers

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

func TestPeerNamespacesIncludeRemediationFlows(t *testing.T) {
	seg := &iomtv1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "icu", Name: "pumps"},
		Spec: iomtv1.SegmentPolicySpec{
			Flows: []iomtv1.Flow{{Name: "ehr", Peers: []iomtv1.Peer{
				{Segment: &iomtv1.SegmentReference{Namespace: "core", Name: "ehr"}}}}},
			Quarantine: &iomtv1.QuarantinePolicy{Remediation: []iomtv1.Flow{{Name: "biomed",
				Peers: []iomtv1.Peer{{Segment: &iomtv1.SegmentReference{Namespace: "biomed",
					Name: "workstations"}}}}}},
		},
	}
	got := peerNamespaces(seg)
	slices.Sort(got)
	if !slices.Equal(got, []string{"biomed", "core"}) {
		t.Fatalf("peerNamespaces() = %v, want [biomed core]", got)
	}
}
