// Package segment computes which MedicalDevices belong to which
// SegmentPolicy and the NetworkPolicies that enforce each segment. It reads
// nothing and writes nothing: controllers hand it what the cache holds and
// write what it returns.
package segment

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// World is everything membership depends on: the SegmentPolicies and
// MedicalDevices of the namespaces in question.
type World struct {
	Segments []iomtv1.SegmentPolicy
	Devices  []iomtv1.MedicalDevice
}

// Assignment is where a device stands.
type Assignment struct {
	// Segment is the one segment that selects the device, empty when none
	// or several do.
	Segment string
	// Enforced is true when Segment writes a policy for the device's pods.
	Enforced bool
	// Reason is one of the v1alpha1 reasons for the Segmented condition.
	Reason string
	// Message explains Reason to a person.
	Message string
}

// Members is the membership of one segment.
type Members struct {
	// segment is the segment these are the members of.
	segment *iomtv1.SegmentPolicy
	// Devices are the member devices, sorted by name.
	Devices []*iomtv1.MedicalDevice
	// Conflicts are the names of devices this segment selects that another
	// segment selects too, sorted.
	Conflicts []string
	// Invalid says why the segment's spec cannot be used; empty when it can.
	Invalid string
}

// Names returns the member device names.
func (m *Members) Names() []string { return names(m.Devices) }

// InState returns the members whose quarantine state is s.
func (m *Members) InState(s iomtv1.QuarantineState) []*iomtv1.MedicalDevice {
	var out []*iomtv1.MedicalDevice
	for _, d := range m.Devices {
		if QuarantineOf(d, m.segment).State == s {
			out = append(out, d)
		}
	}
	return out
}

// upTo returns the members that keep flows of tier t: those whose
// quarantine leaves t open.
func (m *Members) upTo(t tier) []*iomtv1.MedicalDevice {
	var out []*iomtv1.MedicalDevice
	for _, d := range m.Devices {
		if threshold(QuarantineOf(d, m.segment).State) <= t {
			out = append(out, d)
		}
	}
	return out
}

func names(devs []*iomtv1.MedicalDevice) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.Name
	}
	return out
}

// Membership is the outcome of resolving a World.
type Membership struct {
	segments map[types.NamespacedName]*iomtv1.SegmentPolicy
	members  map[types.NamespacedName]*Members
	devices  map[types.NamespacedName]Assignment
}

// Resolve decides for every device which segment holds it. A device that
// two or more segments select belongs to none of them: its pods stay under
// the namespace baseline, which allows nothing.
func Resolve(w World) *Membership {
	m := &Membership{
		segments: map[types.NamespacedName]*iomtv1.SegmentPolicy{},
		members:  map[types.NamespacedName]*Members{},
		devices:  map[types.NamespacedName]Assignment{},
	}

	selectors := map[types.NamespacedName]labels.Selector{}
	for i := range w.Segments {
		s := &w.Segments[i]
		key := keyOf(s)
		m.segments[key] = s
		m.members[key] = &Members{segment: s}
		sel, err := deviceSelector(s.Spec.DeviceSelector)
		if err != nil {
			m.members[key].Invalid = fmt.Sprintf("spec.deviceSelector.labels: %v", err)
			continue
		}
		selectors[key] = sel
	}

	// Visit segments in a fixed order so messages do not flap.
	keys := make([]types.NamespacedName, 0, len(selectors))
	for k := range selectors {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })

	for i := range w.Devices {
		d := &w.Devices[i]
		var picked []types.NamespacedName
		for _, k := range keys {
			if k.Namespace == d.Namespace && selects(m.segments[k], selectors[k], d) {
				picked = append(picked, k)
			}
		}
		m.devices[keyOf(d)] = m.assign(d, picked)
	}

	for _, ms := range m.members {
		sort.Slice(ms.Devices, func(i, j int) bool { return ms.Devices[i].Name < ms.Devices[j].Name })
		sort.Strings(ms.Conflicts)
	}
	return m
}

func (m *Membership) assign(d *iomtv1.MedicalDevice, picked []types.NamespacedName) Assignment {
	switch len(picked) {
	case 0:
		return Assignment{
			Reason:  iomtv1.ReasonNoSegment,
			Message: "no SegmentPolicy selects this device; its pods are denied all traffic",
		}
	case 1:
		s := m.segments[picked[0]]
		m.members[picked[0]].Devices = append(m.members[picked[0]].Devices, d)
		if EnforcementOf(s) == iomtv1.EnforcementObserve {
			return Assignment{
				Segment: s.Name,
				Reason:  iomtv1.ReasonObserving,
				Message: fmt.Sprintf("segment %s is in Observe mode; this device's pods are "+
					"denied all traffic until it enforces", s.Name),
			}
		}
		return Assignment{
			Segment:  s.Name,
			Enforced: true,
			Reason:   iomtv1.ReasonSegmented,
			Message:  fmt.Sprintf("member of segment %s", s.Name),
		}
	default:
		names := make([]string, len(picked))
		for i, k := range picked {
			names[i] = k.Name
			m.members[k].Conflicts = append(m.members[k].Conflicts, d.Name)
		}
		return Assignment{
			Reason: iomtv1.ReasonSegmentConflict,
			Message: fmt.Sprintf("selected by segments %s; its pods are denied all traffic "+
				"until only one selects it", strings.Join(names, ", ")),
		}
	}
}

// Device returns where a device stands. Devices that were not in the World
// have no segment.
func (m *Membership) Device(key types.NamespacedName) Assignment {
	if a, ok := m.devices[key]; ok {
		return a
	}
	return Assignment{Reason: iomtv1.ReasonNoSegment}
}

// Segment returns a segment and its members, or nil when it is not known.
func (m *Membership) Segment(key types.NamespacedName) (*iomtv1.SegmentPolicy, *Members) {
	return m.segments[key], m.members[key]
}

// segmentKeys returns every known segment key, sorted.
func (m *Membership) segmentKeys() []types.NamespacedName {
	keys := make([]types.NamespacedName, 0, len(m.segments))
	for k := range m.segments {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}

// EnforcementOf returns the segment's enforcement mode, Enforce when unset.
func EnforcementOf(s *iomtv1.SegmentPolicy) iomtv1.EnforcementMode {
	if s.Spec.Enforcement == "" {
		return iomtv1.EnforcementEnforce
	}
	return s.Spec.Enforcement
}

// DNSOf returns the segment's DNS mode, Allow when unset.
func DNSOf(s *iomtv1.SegmentPolicy) iomtv1.DNSMode {
	if s.Spec.DNS == "" {
		return iomtv1.DNSAllow
	}
	return s.Spec.DNS
}

func deviceSelector(ds iomtv1.DeviceSelector) (labels.Selector, error) {
	if ds.Labels == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(ds.Labels.Kubernetes())
}

func selects(s *iomtv1.SegmentPolicy, sel labels.Selector, d *iomtv1.MedicalDevice) bool {
	if len(s.Spec.DeviceSelector.Classes) > 0 &&
		!slices.Contains(s.Spec.DeviceSelector.Classes, d.Spec.Class) {
		return false
	}
	return sel.Matches(labels.Set(d.Labels))
}

type namespacedObject interface {
	GetNamespace() string
	GetName() string
}

func keyOf(o namespacedObject) types.NamespacedName {
	return types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
}
