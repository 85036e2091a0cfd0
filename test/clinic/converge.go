package clinic

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// pollInterval is how often WaitForConvergence looks again.
const pollInterval = 250 * time.Millisecond

// WaitForConvergence waits until the operator has reconciled every
// SegmentPolicy and MedicalDevice in namespaces: each has
// status.observedGeneration equal to its generation and a Ready condition
// for that generation. Ready need not be True; a device no segment
// selects is settled too. After timeout it fails, naming what is still
// pending. Read c straight from the API server, not from a cache.
func WaitForConvergence(ctx context.Context, c client.Reader, namespaces []string,
	timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var pending []string
	var lastErr error
	for {
		pending, lastErr = unsettled(ctx, c, namespaces)
		if lastErr == nil && len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if lastErr != nil && !errors.Is(lastErr, context.DeadlineExceeded) {
				return fmt.Errorf("failed to converge within %s: %w", timeout, lastErr)
			}
			return fmt.Errorf("failed to converge within %s: %d objects not reconciled: %s",
				timeout, len(pending), truncate(pending, 8))
		case <-time.After(pollInterval):
		}
	}
}

// unsettled lists the segments and devices the operator has not caught up
// with yet.
func unsettled(ctx context.Context, c client.Reader, namespaces []string) ([]string, error) {
	var pending []string
	for _, ns := range namespaces {
		var segs iomtv1.SegmentPolicyList
		if err := c.List(ctx, &segs, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("failed to list SegmentPolicies in %s: %w", ns, err)
		}
		for _, s := range segs.Items {
			if !settled(s.Generation, s.Status.ObservedGeneration, s.Status.Conditions) {
				pending = append(pending, "SegmentPolicy "+ns+"/"+s.Name)
			}
		}

		var devs iomtv1.MedicalDeviceList
		if err := c.List(ctx, &devs, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("failed to list MedicalDevices in %s: %w", ns, err)
		}
		for _, d := range devs.Items {
			if !settled(d.Generation, d.Status.ObservedGeneration, d.Status.Conditions) {
				pending = append(pending, "MedicalDevice "+ns+"/"+d.Name)
			}
		}
	}
	sort.Strings(pending)
	return pending, nil
}

func settled(generation, observed int64, conds []metav1.Condition) bool {
	ready := meta.FindStatusCondition(conds, iomtv1.ConditionReady)
	return observed == generation && ready != nil && ready.ObservedGeneration == generation
}

// truncate joins up to most items and says how many more there are.
func truncate(items []string, most int) string {
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:most], ", "), len(items)-most)
}
