package clinic

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// WaitForIdentities waits, bounded, until every device in namespaces holds
// a certificate.
func WaitForIdentities(ctx context.Context, c client.Reader, namespaces []string,
	timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		for _, ns := range namespaces {
			var devs iomtv1.MedicalDeviceList
			if err := c.List(ctx, &devs, client.InNamespace(ns)); err != nil {
				return fmt.Errorf("failed to list MedicalDevices in %s: %w", ns, err)
			}
			for _, d := range devs.Items {
				if d.Status.Identity == nil || d.Status.Identity.NotAfter == nil {
					missing++
				}
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d devices still have no certificate after %s", missing, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WriteIdentities prints each device's SPIFFE ID, its certificate's serial
// and when it expires and is renewed.
func WriteIdentities(ctx context.Context, c client.Reader, namespaces []string, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SPIFFE ID\tSECRET\tSERIAL\tEXPIRES\tRENEWED AFTER")
	for _, ns := range namespaces {
		var devs iomtv1.MedicalDeviceList
		if err := c.List(ctx, &devs, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("failed to list MedicalDevices in %s: %w", ns, err)
		}
		for _, d := range devs.Items {
			id := d.Status.Identity
			if id == nil || id.NotAfter == nil {
				fmt.Fprintf(tw, "%s/%s\t-\t-\t-\t-\n", d.Namespace, d.Name)
				continue
			}
			serial := id.SerialNumber
			if len(serial) > 12 {
				serial = serial[:12] + "…"
			}
			renew := "-"
			if id.RenewAfter != nil {
				renew = id.RenewAfter.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id.SPIFFEID, id.SecretName, serial,
				id.NotAfter.UTC().Format(time.RFC3339), renew)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("failed to write the identity table: %w", err)
	}
	return nil
}
