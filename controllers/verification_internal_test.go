package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/internal/verification"
)

// A device whose verifier cannot report, because no identity is issued in
// its namespace, is not failed for silence; elsewhere silence fails it.
func TestSilenceCountsOnlyWhereReportsAreExpected(t *testing.T) {
	set := verification.Settings{Interval: time.Second, Threshold: 2}
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	later := start.Add(time.Minute)

	for _, tc := range []struct {
		expected bool
		want     iomtv1.VerificationState
	}{
		{expected: true, want: iomtv1.VerificationFailed},
		{expected: false, want: iomtv1.VerificationVerified},
	} {
		reports := NewReports()
		dev := &iomtv1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Namespace: "lab", Name: "analyzer",
			UID: "u1"}}
		key := types.NamespacedName{Namespace: "lab", Name: "analyzer"}
		reports.Accept(key, attest.Report{Device: "lab/analyzer", Time: start,
			Checks: []attest.Check{{Name: "identity", Passed: true}}}, start)
		if got := reports.fold(dev, set, tc.expected, start).State; got != iomtv1.VerificationVerified {
			t.Fatalf("expected=%v: after a passing report the state is %s", tc.expected, got)
		}

		if got := reports.fold(dev, set, tc.expected, later).State; got != tc.want {
			t.Errorf("expected=%v: a minute of silence leaves the state %s, want %s",
				tc.expected, got, tc.want)
		}
	}
}
