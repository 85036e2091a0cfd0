package clinic

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// SegmentSummary is what the operator reports about one SegmentPolicy.
type SegmentSummary struct {
	Namespace   string
	Name        string
	Enforcement string
	Members     int32
	// Ready and Enforced are "<status>/<reason>" of those conditions.
	Ready    string
	Enforced string
	// Unresolved is the Ready message when some flow peers resolved to
	// nothing, empty otherwise.
	Unresolved string
	Policies   []string
}

// DeviceSummary is what the operator reports about one MedicalDevice.
type DeviceSummary struct {
	Namespace   string
	Name        string
	Class       string
	Criticality string
	Segment     string
	// Segmented is "<status>/<reason>" of the Segmented condition.
	Segmented string
	// Quarantine is the quarantine state and its reason, "None" when free.
	Quarantine string
}

// Summary is the operator's view of a clinic, read from status.
type Summary struct {
	Segments []SegmentSummary
	Devices  []DeviceSummary
}

// Summarize reads the status of every SegmentPolicy and MedicalDevice in
// namespaces.
func Summarize(ctx context.Context, c client.Reader, namespaces []string) (*Summary, error) {
	var s Summary
	for _, ns := range namespaces {
		var segs iomtv1.SegmentPolicyList
		if err := c.List(ctx, &segs, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("failed to list SegmentPolicies in %s: %w", ns, err)
		}
		for _, seg := range segs.Items {
			sum := SegmentSummary{
				Namespace:   ns,
				Name:        seg.Name,
				Enforcement: string(seg.Status.Enforcement),
				Members:     seg.Status.MemberCount,
				Ready:       condition(seg.Status.Conditions, iomtv1.ConditionReady),
				Enforced:    condition(seg.Status.Conditions, iomtv1.ConditionEnforced),
				Policies:    seg.Status.Policies,
			}
			ready := meta.FindStatusCondition(seg.Status.Conditions, iomtv1.ConditionReady)
			if ready != nil && ready.Reason == iomtv1.ReasonUnresolvedPeers {
				sum.Unresolved = ready.Message
			}
			s.Segments = append(s.Segments, sum)
		}

		var devs iomtv1.MedicalDeviceList
		if err := c.List(ctx, &devs, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("failed to list MedicalDevices in %s: %w", ns, err)
		}
		for _, d := range devs.Items {
			s.Devices = append(s.Devices, DeviceSummary{
				Namespace:   ns,
				Name:        d.Name,
				Class:       string(d.Spec.Class),
				Criticality: string(d.Spec.Criticality),
				Segment:     d.Status.Segment,
				Segmented:   condition(d.Status.Conditions, iomtv1.ConditionSegmented),
				Quarantine:  quarantine(d.Status.Quarantine),
			})
		}
	}
	return &s, nil
}

func condition(conds []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return "-"
	}
	return string(c.Status) + "/" + c.Reason
}

// WriteSegments prints one line per segment, then, for segments that left
// flow peers out, which ones and why.
func (s *Summary) WriteSegments(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tSEGMENT\tENFORCEMENT\tMEMBERS\tREADY\tENFORCED\tNETWORKPOLICIES")
	for _, seg := range s.Segments {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", seg.Namespace, seg.Name, seg.Enforcement,
			seg.Members, seg.Ready, seg.Enforced, orDash(strings.Join(seg.Policies, ",")))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("failed to write the segment summary: %w", err)
	}
	for _, seg := range s.Segments {
		if seg.Unresolved == "" {
			continue
		}
		if _, err := fmt.Fprintf(w, "  %s/%s: %s\n", seg.Namespace, seg.Name, seg.Unresolved); err != nil {
			return fmt.Errorf("failed to write the segment summary: %w", err)
		}
	}
	return nil
}

// WriteDevices prints one line per device.
func (s *Summary) WriteDevices(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tDEVICE\tCLASS\tCRITICALITY\tSEGMENT\tSEGMENTED\tQUARANTINE")
	for _, d := range s.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Namespace, d.Name, d.Class, d.Criticality,
			orDash(d.Segment), d.Segmented, d.Quarantine)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("failed to write the device summary: %w", err)
	}
	return nil
}

func quarantine(q *iomtv1.QuarantineStatus) string {
	if q == nil {
		return "-"
	}
	if q.State == iomtv1.QuarantineNone {
		return string(q.State)
	}
	return string(q.State) + "/" + q.Reason
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
