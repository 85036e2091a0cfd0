package identity

import (
	"strings"
	"testing"
	"time"
)

var policy = Policy{CALifetime: DefaultCALifetime, PropagationDelay: 2 * time.Minute}

func mustSet(t *testing.T) *CASet {
	t.Helper()
	s, err := NewCASet(t0, DefaultCALifetime)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// distributing is a set in phase 1 of a rotation requested as "r1".
func distributing(t *testing.T) *CASet {
	t.Helper()
	s, step, err := Advance(mustSet(t), Observation{Now: t0.Add(time.Hour), Requested: "r1"}, policy)
	if err != nil || step != StepDistribute {
		t.Fatalf("cannot start a rotation: %v, %q", err, step)
	}
	return s
}

// draining is a set in phase 2, whose old CA signed a certificate valid
// until retire.
func draining(t *testing.T, retire time.Time) *CASet {
	t.Helper()
	s := distributing(t)
	obs := Observation{Now: t0.Add(2 * time.Hour), Distributed: true,
		Leaves: []LeafSeen{{Signer: Fingerprint(s.Active.Cert), NotAfter: retire}}}
	s, step, err := Advance(s, obs, Policy{CALifetime: DefaultCALifetime})
	if err != nil || step != StepSwitch {
		t.Fatalf("cannot switch: %v, %q", err, step)
	}
	return s
}

func TestAdvance(t *testing.T) {
	retire := t0.Add(30 * time.Hour)
	tests := []struct {
		name      string
		set       func(t *testing.T) *CASet
		obs       func(s *CASet) Observation
		wantStep  Step
		wantPhase Phase
		check     func(t *testing.T, before, after *CASet)
	}{
		{
			name:      "stable without a request stays",
			set:       mustSet,
			obs:       func(*CASet) Observation { return Observation{Now: t0.Add(24 * time.Hour)} },
			wantPhase: PhaseStable,
		},
		{
			name: "a request starts phase 1: a new CA is trusted, the old one still signs",
			set:  mustSet,
			obs: func(*CASet) Observation {
				return Observation{Now: t0.Add(time.Hour), Requested: "2026-03-01"}
			},
			wantStep: StepDistribute, wantPhase: PhaseDistributing,
			check: func(t *testing.T, before, after *CASet) {
				if after.Next == nil || !after.Active.Cert.Equal(before.Active.Cert) {
					t.Error("want the old CA signing and a new one incoming")
				}
				if !BundleHolds(after.Bundle(), before.Active.Cert, after.Next.Cert) {
					t.Error("the bundle must hold both CAs")
				}
				if after.Handled != "2026-03-01" {
					t.Errorf("handled = %q", after.Handled)
				}
			},
		},
		{
			name: "a request already handled does nothing",
			set: func(t *testing.T) *CASet {
				s := mustSet(t)
				s.Handled = "r1"
				return s
			},
			obs:       func(*CASet) Observation { return Observation{Now: t0.Add(time.Hour), Requested: "r1"} },
			wantPhase: PhaseStable,
		},
		{
			name: "a CA two thirds through its life starts phase 1 by itself",
			set:  mustSet,
			obs: func(*CASet) Observation {
				return Observation{Now: t0.Add(DefaultCALifetime * 2 / 3)}
			},
			wantStep: StepDistribute, wantPhase: PhaseDistributing,
		},
		{
			name: "phase 1 waits while a bundle lacks the new CA",
			set:  distributing,
			obs: func(*CASet) Observation {
				return Observation{Now: t0.Add(2 * time.Hour), Distributed: false}
			},
			wantPhase: PhaseDistributing,
			check: func(t *testing.T, _, after *CASet) {
				if !after.DistributedAt.IsZero() {
					t.Error("distributedAt set while not distributed")
				}
			},
		},
		{
			name: "phase 1 waits for bundles to reach pods once distributed",
			set:  distributing,
			obs: func(*CASet) Observation {
				return Observation{Now: t0.Add(2 * time.Hour), Distributed: true}
			},
			wantPhase: PhaseDistributing,
			check: func(t *testing.T, _, after *CASet) {
				if !after.DistributedAt.Equal(t0.Add(2 * time.Hour)) {
					t.Errorf("distributedAt = %s", after.DistributedAt)
				}
			},
		},
		{
			name: "phase 2: after the propagation delay the new CA signs",
			set: func(t *testing.T) *CASet {
				s := distributing(t)
				s.DistributedAt = t0.Add(2 * time.Hour)
				return s
			},
			obs: func(s *CASet) Observation {
				return Observation{Now: t0.Add(2*time.Hour + 2*time.Minute), Distributed: true,
					Leaves: []LeafSeen{
						{Signer: Fingerprint(s.Active.Cert), NotAfter: retire},
						{Signer: Fingerprint(s.Active.Cert), NotAfter: retire.Add(-time.Hour)},
					},
					Signed: map[string]time.Time{Fingerprint(s.Active.Cert): retire.Add(-2 * time.Hour)}}
			},
			wantStep: StepSwitch, wantPhase: PhaseDraining,
			check: func(t *testing.T, before, after *CASet) {
				if !after.Active.Cert.Equal(before.Next.Cert) || after.Next != nil {
					t.Error("the incoming CA must sign now")
				}
				if len(after.Previous) != 1 || !after.Previous[0].Equal(before.Active.Cert) {
					t.Error("the old CA must stay trusted")
				}
				if !after.RetireAfter.Equal(retire) {
					t.Errorf("retireAfter = %s, want %s", after.RetireAfter, retire)
				}
				if string(after.Bundle()) != string(before.Bundle()) {
					t.Error("switching must not change the bundle")
				}
			},
		},
		{
			name: "phase 2 keeps the old CA while a certificate it signed is valid",
			set:  func(t *testing.T) *CASet { return draining(t, retire) },
			obs: func(s *CASet) Observation {
				return Observation{Now: retire.Add(time.Minute),
					Signed: map[string]time.Time{Fingerprint(s.Previous[0]): retire.Add(time.Hour)}}
			},
			wantPhase: PhaseDraining,
			check: func(t *testing.T, _, after *CASet) {
				if !after.RetireAfter.Equal(retire.Add(time.Hour)) {
					t.Errorf("retireAfter = %s, want it pushed to the last certificate", after.RetireAfter)
				}
			},
		},
		{
			name: "phase 2 ignores certificates of the new CA",
			set:  func(t *testing.T) *CASet { return draining(t, retire) },
			obs: func(s *CASet) Observation {
				return Observation{Now: retire, Leaves: []LeafSeen{
					{Signer: Fingerprint(s.Active.Cert), NotAfter: retire.Add(time.Hour)}}}
			},
			wantStep: StepRetire, wantPhase: PhaseStable,
		},
		{
			name:     "phase 3: the old CA leaves once its last certificate expired",
			set:      func(t *testing.T) *CASet { return draining(t, retire) },
			obs:      func(*CASet) Observation { return Observation{Now: retire} },
			wantStep: StepRetire, wantPhase: PhaseStable,
			check: func(t *testing.T, before, after *CASet) {
				if len(after.Previous) != 0 || !after.Active.Cert.Equal(before.Active.Cert) {
					t.Error("want the new CA alone")
				}
				if got, _ := ParseCertificates(after.Bundle()); len(got) != 1 {
					t.Errorf("bundle holds %d CAs", len(got))
				}
			},
		},
		{
			name: "a request during a rotation waits for the next one",
			set:  func(t *testing.T) *CASet { return draining(t, retire) },
			obs: func(*CASet) Observation {
				return Observation{Now: t0.Add(3 * time.Hour), Requested: "r2"}
			},
			wantPhase: PhaseDraining,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.set(t)
			after, step, err := Advance(before, tt.obs(before), policy)
			if err != nil {
				t.Fatal(err)
			}
			if step != tt.wantStep || after.Phase != tt.wantPhase {
				t.Errorf("Advance() = %q to %s, want %q to %s", step, after.Phase, tt.wantStep, tt.wantPhase)
			}
			if tt.check != nil {
				tt.check(t, before, after)
			}
		})
	}
}

func TestAdvanceUnknownPhase(t *testing.T) {
	s := mustSet(t)
	s.Phase = "Sideways"
	if _, _, err := Advance(s, Observation{Now: t0}, policy); err == nil {
		t.Error("want an error for an unknown phase")
	}
}

// TestRotationKeepsEveryCertificateValid walks a rotation while devices
// renew, and checks at every step that every stored certificate verifies
// against every bundle that may still be in use.
func TestRotationKeepsEveryCertificateValid(t *testing.T) {
	const lifetime = 9 * time.Hour
	set := mustSet(t)
	now := t0.Add(time.Hour)
	req := func(name string) LeafRequest {
		return LeafRequest{TrustDomain: DefaultTrustDomain, Namespace: "icu", Name: name, Lifetime: lifetime}
	}
	devices := []string{"pump-1", "monitor-2", "vent-3"}
	leaves := map[string]*Leaf{}
	signed := map[string]time.Time{}
	bundles := [][]byte{set.Bundle()} // bundles still mounted somewhere

	reconcileDevices := func() {
		for _, d := range devices {
			var data map[string][]byte
			if l := leaves[d]; l != nil {
				data = map[string][]byte{CertKey: l.CertPEM, KeyKey: l.KeyPEM}
			}
			if Check(data, req(d), set.Active, now).Action == ActionNone {
				continue
			}
			leaves[d] = mustIssue(t, set.Active, req(d), now)
			fp := Fingerprint(set.Active.Cert)
			if na := leaves[d].Cert.NotAfter; na.After(signed[fp]) {
				signed[fp] = na
			}
		}
	}
	observe := func() Observation {
		obs := Observation{Now: now, Requested: "rotate-1", Distributed: true, Signed: signed}
		for _, l := range leaves {
			obs.Leaves = append(obs.Leaves, LeafSeen{Fingerprint(set.SignerOf(l.Cert)), l.Cert.NotAfter})
		}
		return obs
	}
	checkAll := func(when string) {
		for d, l := range leaves {
			for i, b := range bundles {
				if err := verify(l.Cert, b, now); err != nil {
					t.Fatalf("%s: %s does not verify against bundle %d: %v", when, d, i, err)
				}
			}
		}
	}

	reconcileDevices()
	oldCA := set.Active.Cert
	var steps []string
	for i := 0; i < 200 && (len(steps) < 3); i++ {
		next, step, err := Advance(set, observe(), Policy{CALifetime: DefaultCALifetime,
			PropagationDelay: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		set = next
		if step != StepNone {
			steps = append(steps, string(step))
		}
		// Bundles follow the set; pods may still hold the last one for a while.
		bundles = append(bundles[max(0, len(bundles)-1):], set.Bundle())
		reconcileDevices()
		checkAll(string(set.Phase))
		now = now.Add(5 * time.Minute)
	}
	if got := strings.Join(steps, ","); got != "NewCADistributing,SigningWithNewCA,OldCARetired" {
		t.Fatalf("steps = %s", got)
	}
	for d, l := range leaves {
		if l.Cert.CheckSignatureFrom(oldCA) == nil {
			t.Errorf("%s still holds a certificate of the old CA", d)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	retire := t0.Add(30 * time.Hour)
	for _, tt := range []struct {
		name string
		set  func(t *testing.T) *CASet
	}{
		{"stable", mustSet},
		{"distributing", distributing},
		{"draining", func(t *testing.T) *CASet { return draining(t, retire) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.set(t)
			data, ann, err := s.Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeCASet(data, ann)
			if err != nil {
				t.Fatal(err)
			}
			data2, ann2, _ := got.Encode()
			for k := range data {
				if string(data[k]) != string(data2[k]) {
					t.Errorf("data %s differs after a round trip", k)
				}
			}
			for k := range ann {
				if ann[k] != ann2[k] {
					t.Errorf("annotation %s: %q, then %q", k, ann[k], ann2[k])
				}
			}
			if got.Phase != s.Phase || !got.RetireAfter.Equal(s.RetireAfter) || got.Handled != s.Handled {
				t.Errorf("got %s %s %q, want %s %s %q", got.Phase, got.RetireAfter, got.Handled,
					s.Phase, s.RetireAfter, s.Handled)
			}
		})
	}
}

func TestDecodeCASetErrors(t *testing.T) {
	d := distributing(t)
	data, ann, _ := d.Encode()
	stableData, _, _ := mustSet(t).Encode()
	tests := []struct {
		name string
		data map[string][]byte
		ann  map[string]string
	}{
		{"empty", map[string][]byte{}, nil},
		{"no key", map[string][]byte{CertKey: data[CertKey]}, nil},
		{"distributing without an incoming CA", stableData, map[string]string{PhaseAnnotation: "Distributing"}},
		{"draining without a previous CA", stableData, map[string]string{PhaseAnnotation: "Draining"}},
		{"stable with two CAs", data, map[string]string{PhaseAnnotation: "Stable"}},
		{"unknown phase", stableData, map[string]string{PhaseAnnotation: "Sideways"}},
		{"bad time", data, map[string]string{PhaseAnnotation: ann[PhaseAnnotation], SinceAnnotation: "soon"}},
		{"incoming key missing", map[string][]byte{CertKey: data[CertKey], KeyKey: data[KeyKey],
			NextCertKey: data[NextCertKey]}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeCASet(tt.data, tt.ann); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestDecodeInfersPhase(t *testing.T) {
	data, _, _ := distributing(t).Encode()
	s, err := DecodeCASet(data, nil)
	if err != nil || s.Phase != PhaseDistributing {
		t.Errorf("phase %s, err %v", s.Phase, err)
	}
}
