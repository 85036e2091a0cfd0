package verification

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/attest"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// step is one thing that happens to a device: a report (pass or fail) or
// the operator looking at it, at an offset from t0.
type step struct {
	at      time.Duration
	report  string // "pass", "fail", or "" to only look
	release string
}

func run(steps []step, s Settings) Record {
	r := FromStatus(nil, t0)
	annotation := ""
	for _, st := range steps {
		now := t0.Add(st.at)
		if st.release != "" {
			// A person sets the annotation; it stays until changed.
			annotation = st.release
		}
		r.SeeToken(annotation)
		switch {
		case st.release != "":
			r.Release(st.release, now)
		case st.report == "pass":
			r.Report(now, true, "", &attest.Firmware{Version: "1.0"}, s)
		case st.report == "fail":
			r.Report(now, false, "firmware: device runs \"6.6.6\"", nil, s)
		default:
			r.Observe(now, s)
		}
	}
	return r
}

func TestRecord(t *testing.T) {
	s := Settings{Interval: 10 * time.Second, Threshold: 3}
	auto := s
	auto.AutoReleaseAfter = 2
	sec := time.Second
	tests := []struct {
		name     string
		settings Settings
		steps    []step
		state    iomtv1.VerificationState
		failures int32
	}{
		{"a device nobody has reported for stays pending", s,
			[]step{{at: 10 * time.Minute}}, iomtv1.VerificationPending, 0},
		{"a passing report verifies", s,
			[]step{{at: 0, report: "pass"}}, iomtv1.VerificationVerified, 0},
		{"failures below the threshold are failing", s,
			[]step{{at: 0, report: "fail"}, {at: 10 * sec, report: "fail"}}, iomtv1.VerificationFailing, 2},
		{"failures reaching the threshold fail", s,
			[]step{{report: "fail"}, {at: 10 * sec, report: "fail"}, {at: 20 * sec, report: "fail"}},
			iomtv1.VerificationFailed, 3},
		{"a pass between failures starts the count again", s,
			[]step{{report: "fail"}, {at: 10 * sec, report: "fail"}, {at: 20 * sec, report: "pass"},
				{at: 30 * sec, report: "fail"}}, iomtv1.VerificationFailing, 1},
		{"a report that is only late is not missed", s,
			[]step{{report: "pass"}, {at: 14 * sec}}, iomtv1.VerificationVerified, 0},
		{"silence counts missing reports as failures", s,
			[]step{{report: "pass"}, {at: 16 * sec}}, iomtv1.VerificationFailing, 1},
		{"silence past the threshold fails", s,
			[]step{{report: "pass"}, {at: 36 * sec}}, iomtv1.VerificationFailed, 3},
		{"missed reports count against the next failing report", s,
			[]step{{report: "pass"}, {at: 26 * sec}, {at: 27 * sec, report: "fail"}},
			iomtv1.VerificationFailed, 3},
		{"a failed device stays failed on passing reports without auto-release", s,
			[]step{{report: "fail"}, {at: 1 * sec, report: "fail"}, {at: 2 * sec, report: "fail"},
				{at: 3 * sec, report: "pass"}, {at: 4 * sec, report: "pass"}, {at: 5 * sec, report: "pass"}},
			iomtv1.VerificationFailed, 0},
		{"auto-release frees a failed device after enough passes", auto,
			[]step{{report: "fail"}, {at: 1 * sec, report: "fail"}, {at: 2 * sec, report: "fail"},
				{at: 3 * sec, report: "pass"}, {at: 4 * sec, report: "pass"}},
			iomtv1.VerificationVerified, 0},
		{"a person's token releases a failed device", s,
			[]step{{report: "fail"}, {at: 1 * sec, report: "fail"}, {at: 2 * sec, report: "fail"},
				{at: 3 * sec, release: "TICKET-1"}}, iomtv1.VerificationPending, 0},
		{"a used token does not release the next failure", s,
			[]step{{report: "fail"}, {at: 1 * sec, report: "fail"}, {at: 2 * sec, report: "fail"},
				{at: 3 * sec, release: "TICKET-1"}, {at: 4 * sec, report: "fail"}, {at: 5 * sec, report: "fail"},
				{at: 6 * sec, report: "fail"}, {at: 7 * sec, release: "TICKET-1"}},
			iomtv1.VerificationFailed, 3},
		{"a token set before the failure does not release it", s,
			[]step{{release: "OLD-1"}, {at: 1 * sec, report: "fail"}, {at: 2 * sec, report: "fail"},
				{at: 3 * sec, report: "fail"}, {at: 4 * sec, release: "OLD-1"}},
			iomtv1.VerificationFailed, 3},
		{"a token left in place after an auto-release does not release the next failure", auto,
			[]step{{report: "fail"}, {at: 1 * sec, report: "fail"}, {at: 2 * sec, report: "fail"},
				{at: 3 * sec, release: "INC-1"}, {at: 4 * sec, report: "pass"},
				{at: 5 * sec, report: "fail"}, {at: 6 * sec, report: "fail"}, {at: 7 * sec, report: "fail"},
				{at: 8 * sec, release: "INC-1"}},
			iomtv1.VerificationFailed, 3},
		{"silence after a release counts from the release", s,
			[]step{{report: "pass"}, {at: 40 * sec}, {at: 41 * sec, release: "T"}, {at: 50 * sec}},
			iomtv1.VerificationPending, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(tt.steps, tt.settings)
			if r.State != tt.state || r.Failures+r.Missed != tt.failures {
				t.Fatalf("state %s failures %d (missed %d), want %s %d", r.State, r.Failures, r.Missed,
					tt.state, tt.failures)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	d := &iomtv1.MedicalDevice{Spec: iomtv1.MedicalDeviceSpec{
		Firmware: &iomtv1.Firmware{Version: "8.01.01"}}}
	d.Spec.Firmware.SHA256 = "aaaa"
	d.Spec.Verification = &iomtv1.Verification{FirmwareProbe: &iomtv1.FirmwareProbe{
		Type: iomtv1.FirmwareProbeHTTPSJSON}}
	ok := []attest.Check{{Name: "identity", Passed: true}}
	tests := []struct {
		name   string
		report attest.Report
		passed bool
	}{
		{"expected firmware and passing checks pass",
			attest.Report{Checks: []attest.Check{{Name: "identity", Passed: true}},
				Firmware: &attest.Firmware{Version: "8.01.01", SHA256: "AAAA"}}, true},
		{"another firmware version fails",
			attest.Report{Checks: ok, Firmware: &attest.Firmware{Version: "8.01.02"}}, false},
		{"no firmware from a device that is to report it fails",
			attest.Report{Checks: ok}, false},
		{"another image digest fails",
			attest.Report{Checks: ok, Firmware: &attest.Firmware{Version: "8.01.01", SHA256: "bbbb"}}, false},
		{"a report without checks fails",
			attest.Report{Firmware: &attest.Firmware{Version: "8.01.01", SHA256: "aaaa"}}, false},
		{"a failed check of the verifier fails",
			attest.Report{Checks: []attest.Check{{Name: "endpoint", Passed: false, Detail: "wrong SPIFFE ID"}}},
			false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			passed, why := Judge(d, tt.report)
			if passed != tt.passed || (!passed && why == "") {
				t.Fatalf("Judge() = %v %q, want %v", passed, why, tt.passed)
			}
		})
	}
}

func TestStatusRefreshesLastReportAtMostOncePerInterval(t *testing.T) {
	s := Settings{Interval: 10 * time.Second, Threshold: 3}
	r := FromStatus(nil, t0)
	r.Report(t0, true, "", nil, s)
	first := r.Status(nil, s)

	r.Report(t0.Add(4*time.Second), true, "", nil, s)
	if got := r.Status(first, s); !got.LastReportTime.Equal(first.LastReportTime) {
		t.Fatalf("lastReportTime moved within the interval: %v", got.LastReportTime)
	}
	r.Report(t0.Add(11*time.Second), true, "", nil, s)
	if got := r.Status(first, s); got.LastReportTime.Equal(first.LastReportTime) {
		t.Fatal("lastReportTime did not move after an interval")
	}
}

func TestSettingsOf(t *testing.T) {
	d := &iomtv1.MedicalDevice{}
	if s := SettingsOf(d, nil); s.Interval != DefaultInterval || s.Threshold != DefaultThreshold ||
		s.AutoReleaseAfter != 0 {
		t.Fatalf("defaults: %+v", s)
	}
	d.Spec.Verification = &iomtv1.Verification{Interval: &metav1.Duration{Duration: time.Minute},
		FailureThreshold: ptr.To[int32](5)}
	seg := &iomtv1.SegmentPolicy{Spec: iomtv1.SegmentPolicySpec{Quarantine: &iomtv1.QuarantinePolicy{
		AutoRelease: &iomtv1.AutoRelease{AfterPasses: 4}}}}
	if s := SettingsOf(d, seg); s.Interval != time.Minute || s.Threshold != 5 || s.AutoReleaseAfter != 4 {
		t.Fatalf("overrides: %+v", s)
	}
}

func TestRestart(t *testing.T) {
	s := Settings{Interval: 30 * time.Second, Threshold: 3}

	t.Run("missed reports are not counted twice after a restart", func(t *testing.T) {
		r := FromStatus(nil, t0)
		r.Report(t0, true, "", nil, s)
		r.Observe(t0.Add(75*time.Second), s)
		st := r.Status(nil, s)
		restarted := FromStatus(st, t0.Add(75*time.Second))
		restarted.Observe(t0.Add(75*time.Second), s)
		if restarted.State != iomtv1.VerificationFailing || restarted.Failures+restarted.Missed != 2 {
			t.Fatalf("after restart: %s with %d failures, want Failing with 2 (was %s with %d)",
				restarted.State, restarted.Failures+restarted.Missed, r.State, r.Failures+r.Missed)
		}
	})

	t.Run("silence counts from the restart when status lags the last report", func(t *testing.T) {
		one := Settings{Interval: 30 * time.Second, Threshold: 1}
		r := FromStatus(nil, t0)
		r.Report(t0, true, "", nil, one)
		first := r.Status(nil, one)
		r.Report(t0.Add(29*time.Second), true, "", nil, one)
		st := r.Status(first, one) // lastReportTime stays at t0
		restart := t0.Add(69 * time.Second)
		restarted := FromStatus(st, restart)
		restarted.Observe(restart, one)
		if restarted.State != iomtv1.VerificationVerified {
			t.Fatalf("after restart: %s (%s), want Verified", restarted.State, restarted.Message)
		}
		restarted.Observe(restart.Add(46*time.Second), one)
		if restarted.State != iomtv1.VerificationFailed {
			t.Fatalf("a real silence after the restart: %s, want Failed", restarted.State)
		}
	})
}
