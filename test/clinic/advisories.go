package clinic

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// configMapBudget keeps each advisory ConfigMap well under the API
// server's 1 MiB object limit.
const configMapBudget = 768 << 10

// LoadAdvisories puts every CSAF JSON file of dir into ConfigMaps labelled
// for the operator in namespace, as a user would with kubectl create
// configmap --from-file. It returns how many documents and ConfigMaps.
func LoadAdvisories(ctx context.Context, c client.Client, dir, namespace string) (docs, maps int, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return 0, 0, fmt.Errorf("failed to list advisories in %s: %w", dir, err)
	}
	sort.Strings(files)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := client.IgnoreAlreadyExists(c.Create(ctx, ns)); err != nil {
		return 0, 0, fmt.Errorf("failed to create namespace %s: %w", namespace, err)
	}

	var cm *corev1.ConfigMap
	size := 0
	flush := func() error {
		if cm == nil {
			return nil
		}
		if err := c.Create(ctx, cm); err != nil {
			return fmt.Errorf("failed to create ConfigMap %s: %w", cm.Name, err)
		}
		maps++
		cm, size = nil, 0
		return nil
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return docs, maps, fmt.Errorf("failed to read advisory %s: %w", f, err)
		}
		if cm != nil && size+len(raw) > configMapBudget {
			if err := flush(); err != nil {
				return docs, maps, err
			}
		}
		if cm == nil {
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("advisories-%d", maps+1),
					Labels: map[string]string{iomtv1.AdvisoriesLabel: "icsma"}},
				Data: map[string]string{},
			}
		}
		cm.Data[filepath.Base(f)] = string(raw)
		size += len(raw)
		docs++
	}
	return docs, maps, flush()
}

// WriteVulnerabilities prints the devices that an advisory concerns: what
// the advisories say and what the operator did about it.
func WriteVulnerabilities(ctx context.Context, c client.Reader, namespaces []string, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tMODEL\tFIRMWARE\tADVISORIES SAY\tBY\tCVSS\tOPERATOR DID")
	for _, ns := range namespaces {
		var devs iomtv1.MedicalDeviceList
		if err := c.List(ctx, &devs, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("failed to list MedicalDevices in %s: %w", ns, err)
		}
		for _, d := range devs.Items {
			v := d.Status.Vulnerability
			if v == nil || v.State == iomtv1.VulnerabilityNotAffected {
				continue
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Namespace, d.Name, d.Spec.Model,
				v.FirmwareVersion, v.State, advisoryList(v), maxScore(v), action(&d))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("failed to write the advisory table: %w", err)
	}
	return nil
}

func advisoryList(v *iomtv1.VulnerabilityStatus) string {
	var ids []string
	for _, a := range v.Advisories {
		if a.Status == v.State {
			ids = append(ids, a.ID)
		}
	}
	if len(ids) > 2 {
		return fmt.Sprintf("%s +%d", strings.Join(ids[:2], ","), len(ids)-2)
	}
	return strings.Join(ids, ",")
}

func maxScore(v *iomtv1.VulnerabilityStatus) string {
	best, text := -1.0, ""
	for _, a := range v.Advisories {
		if score, err := strconv.ParseFloat(a.MaxCVSS, 64); err == nil && a.Status == v.State && score > best {
			best, text = score, a.MaxCVSS
		}
	}
	return orDash(text)
}

// action says what the operator did about a device's advisories.
func action(d *iomtv1.MedicalDevice) string {
	q := d.Status.Quarantine
	switch {
	case q != nil && q.Reason == iomtv1.ReasonKnownVulnerable:
		return "restricted to essential flows (segment " + d.Status.Segment + ")"
	case d.Status.Vulnerability.State == iomtv1.VulnerabilityNeedsReview:
		return "asks for review (Vulnerable=Unknown)"
	case d.Status.Vulnerability.RiskAcceptedBy != "":
		return "risk accepted by " + d.Status.Vulnerability.RiskAcceptedBy
	default:
		return "reported: Vulnerable=True, Event"
	}
}
