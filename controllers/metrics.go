package controllers

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/conditions"
)

// Reconcile errors are counted by controller-runtime itself, as
// controller_runtime_reconcile_errors_total{controller="..."}.
var (
	segmentMembers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "iomt_segment_members",
		Help: "Member devices of each SegmentPolicy.",
	}, []string{"namespace", "segment"})

	segmentConflicts = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "iomt_segment_conflicts",
		Help: "Devices a SegmentPolicy selects that another segment also selects.",
	}, []string{"namespace", "segment"})

	segmentInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "iomt_segment_info",
		Help: "One per SegmentPolicy, labelled with its enforcement mode and readiness.",
	}, []string{"namespace", "segment", "enforcement", "ready"})

	advisoryDocuments = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "iomt_advisory_documents",
		Help: "Advisory documents in the labelled ConfigMaps, by whether they could be read.",
	}, []string{"state"})

	deviceVulnerability = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "iomt_device_vulnerability",
		Help: "One per MedicalDevice, labelled with what the advisories say about its firmware.",
	}, []string{"namespace", "device", "state", "risk_accepted"})

	reportsReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "iomt_attestation_reports_total",
		Help: "Verifier reports the attestation endpoint accepted.",
	})

	quarantineTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "iomt_quarantine_transitions_total",
		Help: "Devices entering a quarantine state, by state and reason.",
	}, []string{"state", "reason"})

	deviceInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "iomt_device_info",
		Help: "One per MedicalDevice, labelled with its class, criticality, segment, " +
			"verification and quarantine state.",
	}, []string{"namespace", "device", "class", "criticality", "segmented", "verification", "quarantine"})
)

func init() {
	metrics.Registry.MustRegister(segmentMembers, segmentConflicts, segmentInfo, deviceInfo,
		advisoryDocuments, deviceVulnerability, reportsReceived, quarantineTransitions)
}

func recordSegmentMetrics(seg *iomtv1.SegmentPolicy, st *iomtv1.SegmentPolicyStatus) {
	segmentMembers.WithLabelValues(seg.Namespace, seg.Name).Set(float64(st.MemberCount))
	segmentConflicts.WithLabelValues(seg.Namespace, seg.Name).Set(float64(st.ConflictCount))
	segmentInfo.DeletePartialMatch(prometheus.Labels{"namespace": seg.Namespace, "segment": seg.Name})
	ready := string(conditions.Status(st.Conditions, iomtv1.ConditionReady))
	segmentInfo.WithLabelValues(seg.Namespace, seg.Name, string(st.Enforcement), ready).Set(1)
}

func forgetSegmentMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "segment": name}
	segmentMembers.DeletePartialMatch(labels)
	segmentConflicts.DeletePartialMatch(labels)
	segmentInfo.DeletePartialMatch(labels)
}

func recordDeviceMetrics(d *iomtv1.MedicalDevice, st *iomtv1.MedicalDeviceStatus) {
	deviceInfo.DeletePartialMatch(prometheus.Labels{"namespace": d.Namespace, "device": d.Name})
	deviceInfo.WithLabelValues(d.Namespace, d.Name, string(d.Spec.Class), string(d.Spec.Criticality),
		string(conditions.Status(st.Conditions, iomtv1.ConditionSegmented)), string(st.Verification.State),
		string(st.Quarantine.State)).Set(1)
}

func recordVulnerabilityMetrics(d *iomtv1.MedicalDevice, v *iomtv1.VulnerabilityStatus) {
	deviceVulnerability.DeletePartialMatch(prometheus.Labels{"namespace": d.Namespace, "device": d.Name})
	deviceVulnerability.WithLabelValues(d.Namespace, d.Name, string(v.State),
		strconv.FormatBool(v.RiskAcceptedBy != "")).Set(1)
}

func forgetDeviceMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "device": name}
	deviceInfo.DeletePartialMatch(labels)
	deviceVulnerability.DeletePartialMatch(labels)
}
