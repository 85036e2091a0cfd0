package clinic

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// StalePolicies compiles every SegmentPolicy in namespaces afresh from
// what the API server holds now and describes each of their NetworkPolicies
// that is missing, differs from the result, or should not exist.
// The reference is the operator's own compiler, so this finds policies the
// operator failed to rewrite after a change, not mistakes in what it
// writes; that is what the flow table is for. Segments whose spec does
// not compile keep what they had and are not checked.
func StalePolicies(ctx context.Context, c client.Reader, namespaces []string,
	cfg segment.Config) ([]string, error) {
	var segs iomtv1.SegmentPolicyList
	if err := c.List(ctx, &segs); err != nil {
		return nil, fmt.Errorf("failed to list SegmentPolicies: %w", err)
	}
	var devs iomtv1.MedicalDeviceList
	if err := c.List(ctx, &devs); err != nil {
		return nil, fmt.Errorf("failed to list MedicalDevices: %w", err)
	}
	m := segment.Resolve(segment.World{Segments: segs.Items, Devices: devs.Items})

	inScope := map[string]bool{}
	for _, ns := range namespaces {
		inScope[ns] = true
	}
	var stale []string
	for i := range segs.Items {
		seg := &segs.Items[i]
		if !inScope[seg.Namespace] {
			continue
		}
		res, err := segment.Compile(m, client.ObjectKeyFromObject(seg), cfg)
		if err != nil {
			continue
		}
		want := map[string]*networkingv1.NetworkPolicy{}
		if segment.EnforcementOf(seg) == iomtv1.EnforcementEnforce {
			for _, np := range res.Policies {
				want[np.Name] = np
			}
		}

		for _, name := range segment.PolicyNames(seg.Name) {
			key := client.ObjectKey{Namespace: seg.Namespace, Name: name}
			problem, err := compare(ctx, c, key, want[name])
			if err != nil {
				return nil, err
			}
			if problem != "" {
				stale = append(stale, problem)
			}
		}
	}
	return stale, nil
}

// compare says how the live NetworkPolicy key differs from want, which is
// nil when it should not exist; it returns "" when they agree.
func compare(ctx context.Context, c client.Reader, key client.ObjectKey,
	want *networkingv1.NetworkPolicy) (string, error) {
	var have networkingv1.NetworkPolicy
	err := c.Get(ctx, key, &have)
	switch {
	case apierrors.IsNotFound(err):
		if want != nil {
			return key.String() + " is missing", nil
		}
		return "", nil
	case err != nil:
		return "", fmt.Errorf("failed to read NetworkPolicy %s: %w", key, err)
	case want == nil:
		return key.String() + " should not exist", nil
	case !equality.Semantic.DeepEqual(have.Spec, want.Spec):
		return key.String() + " does not match its segment's members and flows", nil
	}
	return "", nil
}
