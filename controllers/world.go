package controllers

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// peerNamespaceIndex indexes SegmentPolicies by the namespaces of the
// segments their flows name, so a change in one namespace finds the
// segments elsewhere that depend on it.
const peerNamespaceIndex = "iomt.spec.flows.peers.segment.namespace"

func peerNamespaces(obj client.Object) []string {
	s, ok := obj.(*iomtv1.SegmentPolicy)
	if !ok {
		return nil
	}
	flows := s.Spec.Flows
	if s.Spec.Quarantine != nil {
		flows = append(append([]iomtv1.Flow(nil), flows...), s.Spec.Quarantine.Remediation...)
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range flows {
		for _, p := range f.Peers {
			if p.Segment == nil {
				continue
			}
			ns := p.Segment.Namespace
			if ns == "" {
				ns = s.Namespace
			}
			if !seen[ns] {
				seen[ns] = true
				out = append(out, ns)
			}
		}
	}
	return out
}

// loadWorld reads from the cache what membership in the given namespaces
// depends on: every segment (segments are few), and the devices of those
// namespaces. The objects are shared with the cache and must not be changed.
func loadWorld(ctx context.Context, c client.Reader, namespaces ...string) (segment.World, error) {
	var w segment.World
	var segs iomtv1.SegmentPolicyList
	if err := c.List(ctx, &segs, client.UnsafeDisableDeepCopy); err != nil {
		return w, fmt.Errorf("failed to list SegmentPolicies: %w", err)
	}
	w.Segments = segs.Items

	seen := map[string]bool{}
	for _, ns := range namespaces {
		if seen[ns] {
			continue
		}
		seen[ns] = true
		var devs iomtv1.MedicalDeviceList
		if err := c.List(ctx, &devs, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return w, fmt.Errorf("failed to list MedicalDevices in %s: %w", ns, err)
		}
		w.Devices = append(w.Devices, devs.Items...)
	}
	return w, nil
}

// relatedSegments lists the segments whose policies may change when
// something in namespace ns changes: those in ns, those elsewhere whose flows
// name a segment in ns (they hold ns's members as peers), and those that
// segments in ns name (they hold the mirrored side of ns's flows).
func relatedSegments(ctx context.Context, c client.Reader, ns string) ([]client.ObjectKey, error) {
	var local, naming iomtv1.SegmentPolicyList
	if err := c.List(ctx, &local, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list SegmentPolicies in %s: %w", ns, err)
	}
	if err := c.List(ctx, &naming, client.MatchingFields{peerNamespaceIndex: ns},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list SegmentPolicies that name %s: %w", ns, err)
	}
	found := append(local.Items, naming.Items...)

	named := map[string]bool{}
	for i := range local.Items {
		for _, other := range peerNamespaces(&local.Items[i]) {
			if other != ns {
				named[other] = true
			}
		}
	}
	for other := range named {
		var there iomtv1.SegmentPolicyList
		if err := c.List(ctx, &there, client.InNamespace(other), client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("failed to list SegmentPolicies in %s: %w", other, err)
		}
		found = append(found, there.Items...)
	}

	seen := map[client.ObjectKey]bool{}
	var keys []client.ObjectKey
	for i := range found {
		k := client.ObjectKeyFromObject(&found[i])
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}
