package controllers

import (
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/internal/conditions"
	"github.com/medinaii/iomt-operator/internal/verification"
)

// maxQueuedReports bounds the reports kept for one device between
// reconciles; older ones are dropped, newer ones decide.
const maxQueuedReports = 32

// Reports holds what verifiers reported until the device's reconcile folds
// it into status, and the record of each device between reconciles.
type Reports struct {
	mu      sync.Mutex
	queued  map[types.NamespacedName][]arrival
	records map[types.NamespacedName]*verification.Record
	// Events wakes the device reconciler when a report arrives.
	Events chan event.GenericEvent
}

type arrival struct {
	at     time.Time
	report attest.Report
}

// NewReports returns an empty report store.
func NewReports() *Reports {
	return &Reports{
		queued:  map[types.NamespacedName][]arrival{},
		records: map[types.NamespacedName]*verification.Record{},
		Events:  make(chan event.GenericEvent, 1024),
	}
}

// Accept is the attestation endpoint's sink: it queues the report and
// wakes the device's reconcile. It never blocks the endpoint.
func (s *Reports) Accept(device types.NamespacedName, r attest.Report, at time.Time) {
	s.mu.Lock()
	q := append(s.queued[device], arrival{at: at, report: r})
	if len(q) > maxQueuedReports {
		q = q[len(q)-maxQueuedReports:]
	}
	s.queued[device] = q
	s.mu.Unlock()
	reportsReceived.Inc()

	obj := &iomtv1.MedicalDevice{}
	obj.Namespace, obj.Name = device.Namespace, device.Name
	select {
	case s.Events <- event.GenericEvent{Object: obj}:
	default:
		// The reconciler is behind; the queued report waits for the next
		// wake-up of this device, at the latest its silence check.
	}
}

// fold brings a device's record up to date at now: queued reports in
// order, a person's release, then silence, when reports are expected. It
// returns the record.
func (s *Reports) fold(d *iomtv1.MedicalDevice, set verification.Settings, expected bool,
	now time.Time) verification.Record {
	key := client.ObjectKeyFromObject(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.records[key]
	if !ok || rec.Of != string(d.UID) {
		// A device deleted and made again under the same name starts
		// afresh, not with the record of the one before.
		r := verification.FromStatus(d.Status.Verification, now)
		r.Of = string(d.UID)
		rec = &r
		s.records[key] = rec
	}
	rec.SeeToken(d.Annotations[iomtv1.ReleaseAnnotation])
	for _, a := range s.queued[key] {
		passed, why := verification.Judge(d, a.report)
		rec.Report(a.at, passed, why, a.report.Firmware, set)
	}
	delete(s.queued, key)
	rec.Release(d.Annotations[iomtv1.ReleaseAnnotation], now)
	if expected {
		rec.Observe(now, set)
	}
	return *rec
}

// staleReport is how long a report may wait for a device the cache does not
// show yet.
const staleReport = time.Minute

// forget drops the record of a device the cache no longer shows. Reports
// queued in the last minute stay: they may be for a device so new that the
// cache has not seen it yet.
func (s *Reports) forget(key types.NamespacedName, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, key)
	q := s.queued[key]
	for len(q) > 0 && now.Sub(q[0].at) > staleReport {
		q = q[1:]
	}
	if len(q) == 0 {
		delete(s.queued, key)
		return
	}
	s.queued[key] = q
}

// setVerified sets the Verified condition from the verification status.
func setVerified(st *iomtv1.MedicalDeviceStatus, gen int64) {
	v := st.Verification
	set := func(s metav1.ConditionStatus, reason, msg string) {
		conditions.Set(&st.Conditions, gen, iomtv1.ConditionVerified, s, reason, msg)
	}
	switch v.State {
	case iomtv1.VerificationVerified:
		msg := "the last report passed every check"
		if v.ObservedFirmware != nil {
			msg = fmt.Sprintf("the last report passed every check; firmware %s", v.ObservedFirmware.Version)
		}
		set(metav1.ConditionTrue, iomtv1.ReasonVerificationPassed, msg)
	case iomtv1.VerificationFailing:
		set(metav1.ConditionFalse, iomtv1.ReasonVerificationFailing, fmt.Sprintf("%d of %d failures: %s",
			v.ConsecutiveFailures, v.FailureThreshold, v.Message))
	case iomtv1.VerificationFailed:
		set(metav1.ConditionFalse, iomtv1.ReasonVerificationFailed, fmt.Sprintf("%s; held until released",
			v.Message))
	default:
		msg := "no report from the verifier yet"
		if v.ReleasedWith != "" {
			msg = fmt.Sprintf("released with %q; waiting for the next report", v.ReleasedWith)
		}
		set(metav1.ConditionUnknown, iomtv1.ReasonVerificationPending, msg)
	}
}
