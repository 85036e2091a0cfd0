// Package verification folds the verifier's reports, and their absence,
// into a device's verification state. It decides; it reads and writes
// nothing.
package verification

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/attest"
)

// Defaults applied when the device leaves them out.
const (
	DefaultInterval  = 30 * time.Second
	DefaultThreshold = 3
)

// Settings are the rules in effect for one device.
type Settings struct {
	Interval  time.Duration
	Threshold int32
	// AutoReleaseAfter is how many passing reports in a row release a
	// failed device; 0 means only a person releases it.
	AutoReleaseAfter int32
}

// SettingsOf returns a device's settings within its segment (nil when none).
func SettingsOf(d *iomtv1.MedicalDevice, seg *iomtv1.SegmentPolicy) Settings {
	s := Settings{Interval: DefaultInterval, Threshold: DefaultThreshold}
	if v := d.Spec.Verification; v != nil {
		if v.Interval != nil {
			s.Interval = v.Interval.Duration
		}
		if v.FailureThreshold != nil {
			s.Threshold = *v.FailureThreshold
		}
	}
	if seg != nil && seg.Spec.Quarantine != nil && seg.Spec.Quarantine.AutoRelease != nil {
		s.AutoReleaseAfter = seg.Spec.Quarantine.AutoRelease.AfterPasses
	}
	return s
}

// Record is what the operator knows about a device's reports. It lives in
// memory between reports and is rebuilt from status after a restart.
type Record struct {
	State iomtv1.VerificationState
	// LastReport is when the last report arrived; zero when none has.
	LastReport time.Time
	// Failures counts failed reports in a row, missed ones folded in.
	Failures int32
	// Missed counts reports missing since LastReport.
	Missed   int32
	Passes   int32
	Firmware *iomtv1.Firmware
	Message  string
	// FailedSince is when the device reached Failed.
	FailedSince  time.Time
	ReleasedWith string
	// ReleasedAt is when a release last happened; silence counts from
	// the later of it and LastReport.
	ReleasedAt time.Time
	// Token is the release annotation's value as last seen; TokenAtFailure
	// was its value when the device last failed. A token releases only a
	// failure that happened before it was set.
	Token, TokenAtFailure string
	// Of identifies the device object the record is about (its UID).
	Of string
	// Watching is when this operator began watching the device. Silence
	// counts from no earlier, since status keeps the last report time only
	// to within an interval.
	Watching time.Time
}

// FromStatus rebuilds a record from what status last recorded, when the
// operator starts watching the device at now.
func FromStatus(st *iomtv1.VerificationStatus, now time.Time) Record {
	if st == nil {
		return Record{State: iomtv1.VerificationPending, Watching: now}
	}
	r := Record{
		State: st.State,
		// Failures include the reports missed so far; silence is counted
		// again only from now on, so none is counted twice.
		Failures:       st.ConsecutiveFailures,
		Passes:         st.ConsecutivePasses,
		Firmware:       st.ObservedFirmware.DeepCopy(),
		Message:        st.Message,
		ReleasedWith:   st.ReleasedWith,
		TokenAtFailure: st.TokenAtFailure,
		Watching:       now,
	}
	if r.State == "" {
		r.State = iomtv1.VerificationPending
	}
	if st.LastReportTime != nil {
		r.LastReport = st.LastReportTime.Time
	}
	if st.FailedSince != nil {
		r.FailedSince = st.FailedSince.Time
	}
	if st.ReleasedAt != nil {
		r.ReleasedAt = st.ReleasedAt.Time
	}
	return r
}

// Judge decides whether a report passes: every check the verifier ran must
// have passed, and the firmware it saw must be the firmware the device is
// expected to run. It returns why not.
func Judge(d *iomtv1.MedicalDevice, r attest.Report) (bool, string) {
	failures := r.Failures()
	if len(r.Checks) == 0 {
		failures = append(failures, "report: it carries no checks")
	}
	if v := d.Spec.Verification; v != nil && v.FirmwareProbe != nil && d.Spec.Firmware != nil &&
		r.Firmware == nil {
		failures = append(failures, "firmware: the device is to report its firmware and did not")
	}
	if want := d.Spec.Firmware; want != nil && r.Firmware != nil && want.SHA256 != "" &&
		r.Firmware.SHA256 == "" && d.Spec.Verification != nil && d.Spec.Verification.FirmwareProbe != nil {
		failures = append(failures, "firmware: the image digest is expected and was not reported")
	}
	if want := d.Spec.Firmware; want != nil && r.Firmware != nil {
		if r.Firmware.Version != want.Version {
			failures = append(failures, fmt.Sprintf("firmware: device runs %q, expected %q",
				r.Firmware.Version, want.Version))
		} else if want.SHA256 != "" && r.Firmware.SHA256 != "" &&
			!strings.EqualFold(r.Firmware.SHA256, want.SHA256) {
			failures = append(failures, fmt.Sprintf("firmware: image digest %s, expected %s",
				r.Firmware.SHA256, want.SHA256))
		}
	}
	return len(failures) == 0, strings.Join(failures, "; ")
}

// Report folds one judged report into the record.
func (r *Record) Report(at time.Time, passed bool, message string, fw *attest.Firmware, s Settings) {
	r.LastReport = at
	if fw != nil {
		r.Firmware = &iomtv1.Firmware{Version: fw.Version, SHA256: strings.ToLower(fw.SHA256)}
	}
	// Reports that went missing before this one count against it.
	r.Failures += r.Missed
	r.Missed = 0

	if passed {
		r.Failures = 0
		r.Passes++
		r.Message = ""
		if r.State != iomtv1.VerificationFailed {
			r.State = iomtv1.VerificationVerified
		} else if s.AutoReleaseAfter > 0 && r.Passes >= s.AutoReleaseAfter {
			r.release("auto", at)
		}
		return
	}
	r.Passes = 0
	r.Failures++
	r.Message = message
	r.fail(at, s)
}

// Observe counts the reports missing by now. Silence counts only once a
// verifier has reported: a device whose verifier never started stays
// Pending.
// A failed device stays as it failed, so its status does not change while
// it waits for release.
func (r *Record) Observe(now time.Time, s Settings) {
	if r.LastReport.IsZero() || r.State == iomtv1.VerificationFailed {
		return
	}
	r.Missed = missed(r.silentSince(), now, s.Interval)
	if r.Missed == 0 {
		return
	}
	r.Passes = 0
	r.Message = fmt.Sprintf("no report since %s (%d missed)",
		r.LastReport.UTC().Format(time.RFC3339), r.Missed)
	r.fail(now, s)
}

func (r *Record) silentSince() time.Time {
	since := r.LastReport
	for _, t := range []time.Time{r.ReleasedAt, r.Watching} {
		if t.After(since) {
			since = t
		}
	}
	return since
}

// SeeToken records the release annotation's current value; call it before
// folding reports, so a failure remembers the token it happened under.
func (r *Record) SeeToken(token string) { r.Token = token }

// Release ends a failed verification by a person's token. A token releases
// only a failure that happened before it was set: the token in place when
// the device failed does nothing, so a token left from an earlier incident
// never releases a new one. It reports whether it released.
func (r *Record) Release(token string, now time.Time) bool {
	if token == "" || token == r.TokenAtFailure || r.State != iomtv1.VerificationFailed {
		return false
	}
	r.release(token, now)
	return true
}

// NextCheck returns how long until the next report would count as missing,
// or 0 when there is nothing to wait for.
func (r *Record) NextCheck(now time.Time, s Settings) time.Duration {
	if r.LastReport.IsZero() || r.State == iomtv1.VerificationFailed {
		return 0
	}
	grace := s.Interval / 2
	next := r.silentSince().Add(time.Duration(r.Missed+1)*s.Interval + grace)
	return max(next.Sub(now), time.Second)
}

// Status renders the record. LastReportTime moves at most once per
// interval while nothing else changes, so steady reports do not write
// status each time.
func (r *Record) Status(prev *iomtv1.VerificationStatus, s Settings) *iomtv1.VerificationStatus {
	st := &iomtv1.VerificationStatus{
		State:               r.State,
		Interval:            &metav1.Duration{Duration: s.Interval},
		FailureThreshold:    s.Threshold,
		ConsecutiveFailures: r.Failures + r.Missed,
		TokenAtFailure:      r.TokenAtFailure,
		ConsecutivePasses:   r.Passes,
		ObservedFirmware:    r.Firmware.DeepCopy(),
		Message:             r.Message,
		ReleasedWith:        r.ReleasedWith,
	}
	if !r.LastReport.IsZero() {
		t := metav1.NewTime(r.LastReport.Truncate(time.Second))
		st.LastReportTime = &t
		if prev != nil && prev.LastReportTime != nil && r.LastReport.Sub(prev.LastReportTime.Time) < s.Interval {
			st.LastReportTime = prev.LastReportTime.DeepCopy()
		}
	}
	if !r.FailedSince.IsZero() {
		t := metav1.NewTime(r.FailedSince.Truncate(time.Second))
		st.FailedSince = &t
	}
	if !r.ReleasedAt.IsZero() {
		t := metav1.NewTime(r.ReleasedAt.Truncate(time.Second))
		st.ReleasedAt = &t
	}
	return st
}

func (r *Record) fail(at time.Time, s Settings) {
	if r.State == iomtv1.VerificationFailed {
		return
	}
	if r.Failures+r.Missed >= s.Threshold {
		r.State = iomtv1.VerificationFailed
		r.FailedSince = at
		r.TokenAtFailure = r.Token
		return
	}
	r.State = iomtv1.VerificationFailing
}

func (r *Record) release(with string, at time.Time) {
	r.State = iomtv1.VerificationVerified
	if r.Passes == 0 {
		r.State = iomtv1.VerificationPending
	}
	r.Failures, r.Missed = 0, 0
	r.FailedSince = time.Time{}
	r.ReleasedWith = with
	r.ReleasedAt = at
	r.Message = ""
}

// missed is how many reports should have arrived since last and did not,
// allowing half an interval of lateness.
func missed(last, now time.Time, interval time.Duration) int32 {
	late := now.Sub(last) - interval/2
	if late < interval {
		return 0
	}
	return int32(late / interval)
}
