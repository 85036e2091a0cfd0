package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Phase is where a CA rotation stands.
type Phase string

// The phases. A rotation goes Stable, Distributing, Draining, Stable.
const (
	// PhaseStable: one CA signs and is the only one trusted.
	PhaseStable Phase = "Stable"
	// PhaseDistributing: a new CA is being added to every trust bundle;
	// the old one still signs.
	PhaseDistributing Phase = "Distributing"
	// PhaseDraining: the new CA signs and certificates are re-issued; the
	// old CA stays trusted until no certificate it signed is still valid.
	PhaseDraining Phase = "Draining"
)

// Step is a move between phases. Its value is the Event reason.
type Step string

// The steps of a rotation.
const (
	StepNone Step = ""
	// StepDistribute starts a rotation: a new CA joins every trust bundle.
	StepDistribute Step = "NewCADistributing"
	// StepSwitch makes the new CA the one that signs.
	StepSwitch Step = "SigningWithNewCA"
	// StepRetire drops the old CA from every trust bundle.
	StepRetire Step = "OldCARetired"
)

// CASet is every CA the operator holds and where its rotation stands. A
// CASet is never changed in place: Advance returns a new one.
type CASet struct {
	// Active signs device certificates.
	Active *CA
	// Next is the incoming CA while Distributing: trusted, not yet signing.
	Next *CA
	// Previous are CAs that no longer sign but are still trusted while
	// Draining. Their keys are not kept.
	Previous []*x509.Certificate
	// Phase is where the rotation stands, and Since when it got there.
	Phase Phase
	Since time.Time
	// DistributedAt is when every trust bundle was first seen holding Next.
	DistributedAt time.Time
	// RetireAfter is when the last certificate a previous CA signed expires.
	RetireAfter time.Time
	// Handled is the last rotation request acted on.
	Handled string
}

// NewCASet starts a set with one new CA.
func NewCASet(now time.Time, caLifetime time.Duration) (*CASet, error) {
	ca, err := NewCA(now, caLifetime)
	if err != nil {
		return nil, err
	}
	return &CASet{Active: ca, Phase: PhaseStable, Since: second(now)}, nil
}

// Trusted lists every CA a certificate may chain to: the active one, the
// incoming one and the previous ones.
func (s *CASet) Trusted() []*x509.Certificate {
	out := []*x509.Certificate{s.Active.Cert}
	if s.Next != nil {
		out = append(out, s.Next.Cert)
	}
	return append(out, s.Previous...)
}

// Bundle is the PEM trust bundle of the set.
func (s *CASet) Bundle() []byte { return Bundle(s.Trusted()...) }

// SignerOf returns the trusted CA certificate that signed cert, or nil.
func (s *CASet) SignerOf(cert *x509.Certificate) *x509.Certificate {
	for _, ca := range s.Trusted() {
		if cert.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// Observation is what the controllers saw of the cluster.
type Observation struct {
	Now time.Time
	// Requested is the rotation request on the CA Secret; "" for none.
	Requested string
	// Distributed reports whether every trust bundle in use holds every
	// trusted CA.
	Distributed bool
	// Leaves are the device certificates stored now.
	Leaves []LeafSeen
	// Signed maps the fingerprint of each CA to the latest expiry of the
	// certificates it signed since the operator started, including those
	// already replaced.
	Signed map[string]time.Time
}

// LeafSeen is one stored device certificate: the fingerprint of the CA
// that signed it and when it expires.
type LeafSeen struct {
	Signer   string
	NotAfter time.Time
}

// Policy tunes rotations.
type Policy struct {
	// CALifetime is how long each new CA is valid.
	CALifetime time.Duration
	// PropagationDelay is how long to wait, once every bundle holds the new
	// CA, before signing with it: the time kubelets take to refresh the
	// ConfigMaps and Secrets mounted in pods.
	PropagationDelay time.Duration
}

// Advance moves the rotation forward as far as obs allows, by at most one
// step. A rotation starts when one is requested or when the active CA is
// two thirds through its life. The new CA signs only once every trust
// bundle holds it and PropagationDelay has passed. An old CA leaves the
// bundles only once every certificate it signed has expired.
func Advance(s *CASet, obs Observation, p Policy) (*CASet, Step, error) {
	now := second(obs.Now)
	next := s.clone()
	switch s.Phase {
	case PhaseStable:
		requested := obs.Requested != "" && obs.Requested != s.Handled
		if !requested && now.Before(RenewAt(s.Active.Cert)) {
			return next, StepNone, nil
		}
		ca, err := NewCA(now, p.CALifetime)
		if err != nil {
			return nil, StepNone, err
		}
		next.Next, next.Phase, next.Since, next.DistributedAt = ca, PhaseDistributing, now, time.Time{}
		if requested {
			next.Handled = obs.Requested
		}
		return next, StepDistribute, nil

	case PhaseDistributing:
		if !obs.Distributed {
			next.DistributedAt = time.Time{}
			return next, StepNone, nil
		}
		if next.DistributedAt.IsZero() {
			next.DistributedAt = now
		}
		if now.Before(next.DistributedAt.Add(p.PropagationDelay)) {
			return next, StepNone, nil
		}
		next.Previous = append(next.Previous, next.Active.Cert)
		next.Active, next.Next = next.Next, nil
		next.Phase, next.Since, next.DistributedAt = PhaseDraining, now, time.Time{}
		next.RetireAfter = lastExpiry(next, obs)
		return next, StepSwitch, nil

	case PhaseDraining:
		next.RetireAfter = lastExpiry(next, obs)
		if now.Before(next.RetireAfter) {
			return next, StepNone, nil
		}
		next.Previous = nil
		next.Phase, next.Since, next.RetireAfter = PhaseStable, now, time.Time{}
		return next, StepRetire, nil
	}
	return nil, StepNone, fmt.Errorf("unknown rotation phase %q", s.Phase)
}

// lastExpiry is the latest expiry of any certificate a previous CA of s
// signed, as far as obs and s.RetireAfter know.
func lastExpiry(s *CASet, obs Observation) time.Time {
	last := s.RetireAfter
	for _, prev := range s.Previous {
		fp := Fingerprint(prev)
		if t := obs.Signed[fp]; t.After(last) {
			last = t
		}
		for _, l := range obs.Leaves {
			if l.Signer == fp && l.NotAfter.After(last) {
				last = l.NotAfter
			}
		}
	}
	return second(last)
}

func (s *CASet) clone() *CASet {
	c := *s
	c.Previous = slices.Clone(s.Previous)
	return &c
}

// Keys and annotations of the CA Secret.
const (
	// NextCertKey and NextKeyKey hold the incoming CA while Distributing.
	NextCertKey = "next.crt"
	NextKeyKey  = "next.key"
	// PreviousCertKey holds the CAs still trusted while Draining.
	PreviousCertKey = "previous.crt"

	// PhaseAnnotation is the rotation phase.
	PhaseAnnotation = "iomt.medinaii.io/ca-rotation-phase"
	// SinceAnnotation is when the phase began.
	SinceAnnotation = "iomt.medinaii.io/ca-rotation-since"
	// DistributedAnnotation is when every bundle first held the new CA.
	DistributedAnnotation = "iomt.medinaii.io/ca-distributed-at"
	// RetireAfterAnnotation is when the old CA may leave the bundles.
	RetireAfterAnnotation = "iomt.medinaii.io/ca-retire-after"
	// HandledAnnotation is the last rotation request acted on.
	HandledAnnotation = "iomt.medinaii.io/rotate-ca-handled"
)

// Encode writes the set as a Secret's data and the annotations that carry
// the rotation's state, so that it survives restarts.
func (s *CASet) Encode() (map[string][]byte, map[string]string, error) {
	key, err := s.Active.KeyPEM()
	if err != nil {
		return nil, nil, err
	}
	data := map[string][]byte{CertKey: s.Active.CertPEM(), KeyKey: key, BundleKey: s.Bundle()}
	if s.Next != nil {
		nextKey, err := s.Next.KeyPEM()
		if err != nil {
			return nil, nil, err
		}
		data[NextCertKey], data[NextKeyKey] = s.Next.CertPEM(), nextKey
	}
	if len(s.Previous) > 0 {
		data[PreviousCertKey] = Bundle(s.Previous...)
	}

	ann := map[string]string{PhaseAnnotation: string(s.Phase)}
	setTime := func(k string, t time.Time) {
		if !t.IsZero() {
			ann[k] = t.UTC().Format(time.RFC3339)
		}
	}
	setTime(SinceAnnotation, s.Since)
	setTime(DistributedAnnotation, s.DistributedAt)
	setTime(RetireAfterAnnotation, s.RetireAfter)
	if s.Handled != "" {
		ann[HandledAnnotation] = s.Handled
	}
	return data, ann, nil
}

// DecodeCASet reads a set that Encode wrote.
func DecodeCASet(data map[string][]byte, ann map[string]string) (*CASet, error) {
	active, err := ParseCA(data[CertKey], data[KeyKey])
	if err != nil {
		return nil, fmt.Errorf("failed to read the active CA: %w", err)
	}
	s := &CASet{Active: active, Handled: ann[HandledAnnotation]}
	if len(data[NextCertKey]) > 0 {
		if s.Next, err = ParseCA(data[NextCertKey], data[NextKeyKey]); err != nil {
			return nil, fmt.Errorf("failed to read the incoming CA: %w", err)
		}
	}
	if len(data[PreviousCertKey]) > 0 {
		if s.Previous, err = ParseCertificates(data[PreviousCertKey]); err != nil {
			return nil, fmt.Errorf("failed to read the previous CAs: %w", err)
		}
	}
	for k, t := range map[string]*time.Time{
		SinceAnnotation: &s.Since, DistributedAnnotation: &s.DistributedAt, RetireAfterAnnotation: &s.RetireAfter,
	} {
		if v := ann[k]; v != "" {
			if *t, err = time.Parse(time.RFC3339, v); err != nil {
				return nil, fmt.Errorf("failed to read annotation %s: %w", k, err)
			}
		}
	}

	s.Phase = Phase(ann[PhaseAnnotation])
	switch {
	case s.Phase == "" && s.Next != nil:
		s.Phase = PhaseDistributing
	case s.Phase == "" && len(s.Previous) > 0:
		s.Phase = PhaseDraining
	case s.Phase == "":
		s.Phase = PhaseStable
	}
	switch {
	case s.Phase == PhaseDistributing && s.Next == nil:
		return nil, errors.New("the rotation is Distributing but there is no incoming CA")
	case s.Phase == PhaseDraining && len(s.Previous) == 0:
		return nil, errors.New("the rotation is Draining but there is no previous CA")
	case s.Phase == PhaseStable && (s.Next != nil || len(s.Previous) > 0):
		return nil, errors.New("the rotation is Stable but more than one CA is held")
	case s.Phase != PhaseStable && s.Phase != PhaseDistributing && s.Phase != PhaseDraining:
		return nil, fmt.Errorf("unknown rotation phase %q", s.Phase)
	}
	return s, nil
}

func second(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Second)
}
