package controllers

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/advisory"
	"github.com/medinaii/iomt-operator/internal/conditions"
)

// AdvisoryStore keeps the advisories of the labelled ConfigMaps in the
// operator's namespace parsed, re-reading a ConfigMap only when it changes.
type AdvisoryStore struct {
	// Namespace is where advisory ConfigMaps live.
	Namespace string
	// Recorder reports documents that cannot be read, once per version of
	// their ConfigMap.
	Recorder events.EventRecorder

	mu     sync.Mutex
	parsed map[types.UID]parsedConfigMap
}

type parsedConfigMap struct {
	resourceVersion string
	// docs are the documents by key, in key order.
	docs []*advisory.Document
	keys map[string]*advisory.Document
}

// Documents returns every advisory currently loaded, in a fixed order.
func (s *AdvisoryStore) Documents(ctx context.Context, c client.Reader) ([]*advisory.Document, error) {
	var cms corev1.ConfigMapList
	if err := c.List(ctx, &cms, client.InNamespace(s.Namespace),
		client.HasLabels{iomtv1.AdvisoriesLabel}); err != nil {
		return nil, fmt.Errorf("failed to list advisory ConfigMaps: %w", err)
	}
	sort.Slice(cms.Items, func(i, j int) bool { return cms.Items[i].Name < cms.Items[j].Name })

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parsed == nil {
		s.parsed = map[types.UID]parsedConfigMap{}
	}
	seen := map[types.UID]bool{}
	var docs []*advisory.Document
	loaded, failed := 0, 0
	for i := range cms.Items {
		cm := &cms.Items[i]
		seen[cm.UID] = true
		p, ok := s.parsed[cm.UID]
		if !ok || p.resourceVersion != cm.ResourceVersion {
			p = s.parse(cm, p.keys)
			s.parsed[cm.UID] = p
		}
		docs = append(docs, p.docs...)
		loaded += len(p.docs)
		failed += max(len(cm.Data)+len(cm.BinaryData)-len(p.docs), 0)
	}
	for uid := range s.parsed {
		if !seen[uid] {
			delete(s.parsed, uid)
		}
	}
	advisoryDocuments.WithLabelValues("loaded").Set(float64(loaded))
	advisoryDocuments.WithLabelValues("failed").Set(float64(failed))
	return docs, nil
}

// parse reads every key of a ConfigMap as one CSAF document. A key that
// cannot be read is reported on the ConfigMap, never dropped silently; if
// an earlier version of the key could be read, that version stays in use,
// so a damaged update does not release the devices it concerns.
func (s *AdvisoryStore) parse(cm *corev1.ConfigMap, before map[string]*advisory.Document) parsedConfigMap {
	keys := map[string][]byte{}
	for k, v := range cm.Data {
		keys[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		keys[k] = v
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)

	p := parsedConfigMap{resourceVersion: cm.ResourceVersion, keys: map[string]*advisory.Document{}}
	var bad, defects []string
	for _, k := range names {
		doc, err := advisory.Parse(keys[k])
		if err != nil {
			msg := fmt.Sprintf("%s: %v", k, err)
			if old, ok := before[k]; ok {
				doc = old
				msg += " (the version read before stays in use)"
			}
			bad = append(bad, msg)
			if doc == nil {
				continue
			}
		}
		doc.Path = cm.Name + "/" + k
		if len(doc.Problems) > 0 {
			defects = append(defects, fmt.Sprintf("%s: %s", k, truncList(doc.Problems)))
		}
		p.docs = append(p.docs, doc)
		p.keys[k] = doc
	}
	if s.Recorder == nil {
		return p
	}
	if len(bad) > 0 {
		s.Recorder.Eventf(cm, nil, corev1.EventTypeWarning, "AdvisoryUnreadable", "Load",
			"%d of %d advisories cannot be read: %s", len(bad), len(names), truncList(bad))
	}
	if len(defects) > 0 {
		s.Recorder.Eventf(cm, nil, corev1.EventTypeWarning, "AdvisoryDefects", "Load",
			"%d advisories have defects that may hide affected products: %s", len(defects),
			truncList(defects))
	}
	return p
}

// vulnerabilityOf matches a device against the advisories and says what
// they mean for it, including whether a person accepted every known risk.
func vulnerabilityOf(d *iomtv1.MedicalDevice, docs []*advisory.Document) *iomtv1.VulnerabilityStatus {
	dev := advisory.Device{Manufacturer: d.Spec.Manufacturer, Model: d.Spec.Model}
	if d.Spec.Firmware != nil {
		dev.FirmwareVersion = d.Spec.Firmware.Version
	}
	res := advisory.Match(docs, dev)

	v := &iomtv1.VulnerabilityStatus{
		State:           iomtv1.VulnerabilityNotAffected,
		FirmwareVersion: dev.FirmwareVersion,
		Documents:       int32(len(docs)),
	}
	var known []string
	for _, f := range res.Findings {
		var state iomtv1.VulnerabilityState
		switch f.Status {
		case advisory.StatusKnownAffected:
			state = iomtv1.VulnerabilityKnownAffected
			known = append(known, f.AdvisoryID)
		case advisory.StatusUndecidable:
			state = iomtv1.VulnerabilityNeedsReview
		default:
			continue
		}
		v.AdvisoryCount++
		if len(v.Advisories) < 16 {
			v.Advisories = append(v.Advisories, finding(f, state))
		}
	}
	switch {
	case len(known) > 0:
		v.State = iomtv1.VulnerabilityKnownAffected
	case v.AdvisoryCount > 0 || res.Status == advisory.StatusUndecidable:
		v.State = iomtv1.VulnerabilityNeedsReview
	}

	// A person's acceptance counts only while it covers every advisory
	// that lists the device's firmware.
	by := strings.TrimSpace(d.Annotations[iomtv1.RiskAcceptedByAnnotation])
	accepted := splitList(d.Annotations[iomtv1.AcceptedAdvisoriesAnnotation])
	if by != "" && len(known) > 0 && covers(accepted, known) {
		v.RiskAcceptedBy = by
		v.AcceptedAdvisories = accepted
	}
	return v
}

func finding(f advisory.Finding, state iomtv1.VulnerabilityState) iomtv1.AdvisoryFinding {
	out := iomtv1.AdvisoryFinding{ID: f.AdvisoryID, Title: f.Title, Status: state}
	out.CVEs = f.CVEs
	if len(out.CVEs) > 16 {
		out.CVEs = out.CVEs[:16]
	}
	if f.MaxCVSS > 0 {
		out.MaxCVSS = strconv.FormatFloat(f.MaxCVSS, 'f', 1, 64)
	}
	if len(f.Products) > 0 {
		out.Product = f.Products[0].String()
	}
	if len(f.Reasons) > 0 {
		out.Reason = f.Reasons[0]
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) > 32 {
		out = out[:32]
	}
	return out
}

func covers(accepted, needed []string) bool {
	set := map[string]bool{}
	for _, a := range accepted {
		set[strings.ToUpper(a)] = true
	}
	for _, n := range needed {
		if !set[strings.ToUpper(n)] {
			return false
		}
	}
	return true
}

// setVulnerable sets the Vulnerable condition from the vulnerability.
func setVulnerable(st *iomtv1.MedicalDeviceStatus, gen int64) {
	v := st.Vulnerability
	set := func(s metav1.ConditionStatus, reason, msg string) {
		conditions.Set(&st.Conditions, gen, iomtv1.ConditionVulnerable, s, reason, msg)
	}
	switch {
	case v.State == iomtv1.VulnerabilityKnownAffected:
		msg := fmt.Sprintf("firmware %s is affected according to %s", v.FirmwareVersion,
			advisoryIDs(v, iomtv1.VulnerabilityKnownAffected))
		if v.RiskAcceptedBy != "" {
			msg += "; risk accepted by " + v.RiskAcceptedBy
		}
		set(metav1.ConditionTrue, iomtv1.ReasonKnownAffected, msg)
	case v.State == iomtv1.VulnerabilityNeedsReview:
		set(metav1.ConditionUnknown, iomtv1.ReasonNeedsReview, fmt.Sprintf(
			"a person must review %s for firmware %q", advisoryIDs(v, iomtv1.VulnerabilityNeedsReview),
			v.FirmwareVersion))
	case v.Documents == 0:
		set(metav1.ConditionFalse, iomtv1.ReasonNoKnownAdvisory, fmt.Sprintf("no advisories are loaded; "+
			"put CSAF documents in ConfigMaps labelled %s in the operator's namespace", iomtv1.AdvisoriesLabel))
	default:
		set(metav1.ConditionFalse, iomtv1.ReasonNoKnownAdvisory,
			fmt.Sprintf("none of %d advisories concerns firmware %q", v.Documents, v.FirmwareVersion))
	}
}

func advisoryIDs(v *iomtv1.VulnerabilityStatus, state iomtv1.VulnerabilityState) string {
	var ids []string
	for _, a := range v.Advisories {
		if a.Status == state {
			ids = append(ids, a.ID)
		}
	}
	return truncList(ids)
}
