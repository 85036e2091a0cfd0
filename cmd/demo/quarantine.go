package main

import (
	"context"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/segment"
	"github.com/medinaii/iomt-operator/test/clinic"
)

// quarantineByHand shows a person quarantining a life-sustaining
// ventilator: asked to isolate it, the operator restricts it instead, so
// its essential flow stays open; removing the annotation releases it.
func quarantineByHand(ctx context.Context, c client.Client, namespaces []string, out io.Writer) error {
	const ns, name = "icu", "icu-vent-pb980-01"
	fmt.Fprintf(out, "\nQuarantine by hand: a person annotates %s/%s (LifeSustaining) with %s=Isolate\n",
		ns, name, iomtv1.QuarantineAnnotation)

	probes, err := ventilatorProbes(ctx, c)
	if err != nil {
		return err
	}
	steps := []struct {
		label  string
		change map[string]*string
		want   iomtv1.QuarantineState
	}{
		{"before", nil, iomtv1.QuarantineNone},
		{"quarantined", map[string]*string{iomtv1.QuarantineAnnotation: ptr("Isolate")},
			iomtv1.QuarantineRestricted},
		{"released", map[string]*string{iomtv1.QuarantineAnnotation: nil}, iomtv1.QuarantineNone},
	}
	for _, step := range steps {
		if step.change != nil {
			if err := annotate(ctx, c, ns, name, step.change); err != nil {
				return err
			}
		}
		q, err := waitQuarantine(ctx, c, ns, name, step.want, namespaces)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%-12s quarantine %s", step.label, q.State)
		if q.State != iomtv1.QuarantineNone {
			fmt.Fprintf(out, " (%s): %s", q.Reason, q.Message)
		}
		fmt.Fprintln(out)
		table, err := clinic.EvaluateFlows(ctx, c, append(namespaces, metav1.NamespaceSystem), probes,
			clinic.ClinicalPorts)
		if err != nil {
			return err
		}
		if err := table.Write(out); err != nil {
			return err
		}
	}
	return nil
}

func ventilatorProbes(ctx context.Context, c client.Reader) ([]clinic.Probe, error) {
	endpoints := map[string][2]string{
		"vent":    {"icu", clinic.DevicePodName("icu-vent-pb980-01")},
		"gateway": {"integration", clinic.DevicePodName("gw-intellibridge-01")},
		"central": {"clinical-apps", "central-station"},
		"dns":     {metav1.NamespaceSystem, "coredns"},
	}
	eps := map[string]clinic.Endpoint{}
	for k, v := range endpoints {
		ep, err := clinic.PodEndpoint(ctx, c, v[0], v[1])
		if err != nil {
			return nil, err
		}
		eps[k] = ep
	}
	return []clinic.Probe{
		{From: eps["vent"], To: eps["gateway"]},
		{From: eps["central"], To: eps["vent"]},
		{From: eps["vent"], To: eps["dns"]},
	}, nil
}

func annotate(ctx context.Context, c client.Client, ns, name string, change map[string]*string) error {
	var d iomtv1.MedicalDevice
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
		return fmt.Errorf("failed to read MedicalDevice %s/%s: %w", ns, name, err)
	}
	before := d.DeepCopy()
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	for k, v := range change {
		if v == nil {
			delete(d.Annotations, k)
		} else {
			d.Annotations[k] = *v
		}
	}
	if err := c.Patch(ctx, &d, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("failed to annotate MedicalDevice %s/%s: %w", ns, name, err)
	}
	return nil
}

// waitQuarantine waits until the device shows the quarantine state and
// every policy has caught up with it.
func waitQuarantine(ctx context.Context, c client.Client, ns, name string, want iomtv1.QuarantineState,
	namespaces []string) (*iomtv1.QuarantineStatus, error) {
	deadline := time.Now().Add(convergeTimeout)
	for {
		var d iomtv1.MedicalDevice
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return nil, fmt.Errorf("failed to read MedicalDevice %s/%s: %w", ns, name, err)
		}
		if q := d.Status.Quarantine; q != nil && q.State == want {
			stale, err := clinic.StalePolicies(ctx, c, namespaces, segment.DefaultConfig())
			if err != nil {
				return nil, err
			}
			if len(stale) == 0 {
				return q, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s/%s did not reach quarantine state %s in %s", ns, name, want,
				convergeTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ptr(s string) *string { return &s }
