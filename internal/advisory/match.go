package advisory

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Status is what an advisory, or all advisories together, say about a
// device.
type Status string

// The statuses, from the one that needs the most attention down.
const (
	// StatusKnownAffected: the advisory lists the device's product and its
	// firmware version as affected.
	StatusKnownAffected Status = "KnownAffected"
	// StatusUndecidable: the advisory may concern the device, but the
	// matcher cannot tell; a person needs to review it. Reasons say why.
	StatusUndecidable Status = "Undecidable"
	// StatusFixed: the advisory lists the device's firmware as fixed.
	StatusFixed Status = "Fixed"
	// StatusNotAffected: no advisory says the device is affected.
	StatusNotAffected Status = "NotAffected"
)

// rank orders statuses by the attention they need.
func (s Status) rank() int {
	switch s {
	case StatusKnownAffected:
		return 3
	case StatusUndecidable:
		return 2
	case StatusFixed:
		return 1
	default:
		return 0
	}
}

// Device is what the matcher knows about one device.
type Device struct {
	// Manufacturer is the maker's name as the device's owner wrote it.
	Manufacturer string
	// Model is the model name or number.
	Model string
	// FirmwareVersion is the version the device runs; empty when unknown.
	FirmwareVersion string
}

// MatchedProduct is an advisory product that a finding rests on.
type MatchedProduct struct {
	// ID is the product_id.
	ID string
	// Vendor, Name and Version are the texts of the product tree.
	Vendor, Name, Version string
}

// String writes the product as "Name Version".
func (p MatchedProduct) String() string {
	return strings.TrimSpace(p.Name + " " + p.Version)
}

// Finding is what one advisory says about one device.
type Finding struct {
	// AdvisoryID is document.tracking.id.
	AdvisoryID string
	// Title is document.title.
	Title string
	// Path is the file the advisory came from.
	Path string
	// Status is the advisory's verdict on the device.
	Status Status
	// CVEs are the vulnerabilities that lead to Status, sorted.
	CVEs []string
	// MaxCVSS is the highest CVSS v3 base score among those
	// vulnerabilities for the matched products; 0 when none is given.
	MaxCVSS float64
	// Products are the advisory products the device matched.
	Products []MatchedProduct
	// Reasons say why a finding is Undecidable.
	Reasons []string
}

// Result is what all advisories together say about one device.
type Result struct {
	// Device is the device that was matched.
	Device Device
	// Status is the most serious status among the findings, or
	// NotAffected when there are none.
	Status Status
	// Findings are sorted by status, then score (highest first), then
	// advisory id.
	Findings []Finding
	// Reasons say why the device as a whole is Undecidable, for instance
	// when it has no manufacturer.
	Reasons []string
}

// Match checks one device against every advisory.
func Match(docs []*Document, dev Device) Result {
	res := Result{Device: dev, Status: StatusNotAffected}
	if len(words(dev.Manufacturer)) == 0 {
		res.Status = StatusUndecidable
		res.Reasons = []string{"the device has no manufacturer, so no advisory can be matched to it"}
		return res
	}
	dk := newDeviceKey(dev)
	for _, doc := range docs {
		if f, ok := doc.match(dk); ok {
			res.Findings = append(res.Findings, f)
			if f.Status.rank() > res.Status.rank() {
				res.Status = f.Status
			}
		}
	}
	slices.SortStableFunc(res.Findings, func(a, b Finding) int {
		if c := cmp.Compare(b.Status.rank(), a.Status.rank()); c != 0 {
			return c
		}
		if c := cmp.Compare(b.MaxCVSS, a.MaxCVSS); c != 0 {
			return c
		}
		return strings.Compare(a.AdvisoryID, b.AdvisoryID)
	})
	return res
}

// Match checks one device against this advisory. It returns false when
// the advisory says nothing about the device.
func (d *Document) Match(dev Device) (Finding, bool) {
	if len(words(dev.Manufacturer)) == 0 {
		return Finding{}, false
	}
	return d.match(newDeviceKey(dev))
}

// deviceKey holds a device's names in matching form.
type deviceKey struct {
	dev    Device
	vendor [][]string
}

// newDeviceKey prepares a device for matching.
func newDeviceKey(dev Device) deviceKey {
	return deviceKey{dev: dev, vendor: vendorAliases(dev.Manufacturer)}
}

// productMatch is how one advisory product relates to the device.
type productMatch struct {
	p *Product
	// kind says how the product name relates to the device's model.
	kind matchKind
	// line is the shared product-line word of a matchLine.
	line string
	// doubts are reasons to hold any "affected" verdict for review.
	doubts []string
	// verdict decides the device's firmware against a constraint; it
	// differs from Constraint.Contains for unknown models and for
	// relationships.
	verdict func(Constraint) (Verdict, string)
}

// matchKind says how an advisory product name relates to a device model.
type matchKind int

const (
	// matchExact: the model and the product name have the same words.
	matchExact matchKind = iota
	// matchWithin: every model word appears in the product name, which
	// adds words but no model number ("Spectrum IQ" in "Spectrum IQ LVP").
	matchWithin
	// matchNarrower: the product name adds a model number the device's
	// model lacks ("Alaris PC Unit Model 8015" for "Alaris PC Unit"), or
	// adds words while another product of the advisory matches exactly.
	matchNarrower
	// matchFamily: the product name's words all appear in the model, which
	// says more ("Alaris PC Unit" for "Alaris PC Unit 8015").
	matchFamily
	// matchLine: neither name holds the other, but the product name has
	// the model's first word, its product line ("Alaris PC Unit" for
	// "Alaris 8015"). It raises a review only when the advisory names no
	// other product for the device and its stated versions, not merely
	// "all versions", include the firmware.
	matchLine
)

// outcome is what one status entry of one vulnerability says.
type outcome struct {
	status Status
	id     string
	reason string
}

// match is Match with the device already prepared.
func (d *Document) match(dk deviceKey) (Finding, bool) {
	matches := map[string]*productMatch{}
	exact, within, closer := false, false, false
	for _, p := range d.Products {
		if m := d.matchProduct(dk, p); m != nil {
			matches[p.ID] = m
			exact = exact || m.kind == matchExact
			within = within || m.kind == matchWithin
			closer = closer || m.kind != matchLine
		}
	}
	// A product that names the device's model outright outweighs one that
	// names only its family or line; once one names it exactly, products
	// that add words to the model are other products and can at most
	// raise a review.
	for id, m := range matches {
		switch {
		case m.kind == matchFamily && (exact || within), m.kind == matchLine && closer:
			delete(matches, id)
		case m.kind == matchWithin && exact:
			m.kind = matchNarrower
		}
	}
	if len(matches) == 0 {
		return Finding{}, false
	}

	type vulnResult struct {
		v        *Vulnerability
		status   Status
		outcomes []outcome
	}
	var results []vulnResult
	best := StatusNotAffected
	for i := range d.Vulnerabilities {
		v := &d.Vulnerabilities[i]
		var outs []outcome
		for _, cat := range statusOrder {
			for _, id := range v.Status[cat] {
				m := matches[id]
				if m == nil {
					continue
				}
				if o, ok := d.judge(m, v, cat); ok {
					outs = append(outs, o)
				}
			}
		}
		if len(outs) == 0 {
			continue
		}
		st := StatusNotAffected
		for _, o := range outs {
			if o.status.rank() > st.rank() {
				st = o.status
			}
		}
		results = append(results, vulnResult{v: v, status: st, outcomes: outs})
		if st.rank() > best.rank() {
			best = st
		}
	}
	if len(results) == 0 {
		return Finding{}, false
	}

	f := Finding{AdvisoryID: d.ID, Title: d.Title, Path: d.Path, Status: best}
	seenProduct := map[string]bool{}
	for _, r := range results {
		if r.status != best {
			continue
		}
		if r.v.CVE != "" && !slices.Contains(f.CVEs, r.v.CVE) {
			f.CVEs = append(f.CVEs, r.v.CVE)
		}
		var ids []string
		for _, o := range r.outcomes {
			if o.status != best {
				continue
			}
			ids = append(ids, o.id)
			if !seenProduct[o.id] {
				seenProduct[o.id] = true
				p := d.byID[o.id]
				f.Products = append(f.Products, MatchedProduct{
					ID: p.ID, Vendor: p.Vendor, Name: p.Name, Version: p.Version,
				})
			}
			if o.reason != "" && !slices.Contains(f.Reasons, o.reason) {
				f.Reasons = append(f.Reasons, o.reason)
			}
		}
		f.MaxCVSS = max(f.MaxCVSS, maxScore(r.v, ids, best.rank() >= StatusUndecidable.rank()))
	}
	slices.Sort(f.CVEs)
	return f, true
}

// unknownModel is the reason given when the manufacturer matches but the
// device has no model to tell the advisory's products apart.
const unknownModel = "the device's model is unknown, so the matcher cannot tell which of " +
	"the manufacturer's products listed in the advisory it is"

// statusOrder is the order in which product_status lists are read.
var statusOrder = []string{
	statusKnownAffected, statusFirstAffected, statusLastAffected,
	statusUnderInvestigation, statusFixed, statusFirstFixed,
	statusRecommended, statusKnownNotAffected,
}

// maxScore returns the highest base score given for any of the products.
// With fallback set it returns the highest score of the vulnerability
// when no score names them.
func maxScore(v *Vulnerability, ids []string, fallback bool) float64 {
	var named, whole float64
	for _, s := range v.Scores {
		whole = max(whole, s.Base)
		for _, id := range ids {
			if slices.Contains(s.Products, id) {
				named = max(named, s.Base)
			}
		}
	}
	if named > 0 || !fallback {
		return named
	}
	return whole
}

// judge decides one status entry.
//
// An "affected" or "under investigation" entry is held for review when
// the version cannot be decided, or when the product matched only as a
// narrower product, a family or a product line, through a near vendor
// name, or despite an exclusion. A "fixed" or "not affected" entry in
// those cases is dropped, since it cannot hide a risk. A product-line
// match counts only when the firmware lies in versions the advisory
// states, not in "all versions".
func (d *Document) judge(m *productMatch, v *Vulnerability, cat string) (outcome, bool) {
	var status Status
	switch cat {
	case statusKnownAffected, statusFirstAffected, statusLastAffected:
		status = StatusKnownAffected
	case statusFixed, statusFirstFixed, statusRecommended:
		status = StatusFixed
	case statusKnownNotAffected:
		status = StatusNotAffected
	default:
		status = StatusUndecidable
	}
	risky := status == StatusKnownAffected || status == StatusUndecidable

	c := d.statusConstraint(m.p, v, cat)
	verdict, reason := m.verdict(c)
	if verdict == Excluded {
		return outcome{}, false
	}
	if m.kind == matchLine && (verdict != Included || c.All()) {
		// A shared product line alone is too weak a sign; only a
		// firmware version the advisory states explicitly makes it one.
		return outcome{}, false
	}
	doubts := slices.Clone(m.doubts)
	switch m.kind {
	case matchLine:
		doubts = append(doubts, fmt.Sprintf("the advisory names the product %q, which shares "+
			"the product line %q and the firmware version with the device; check whether it "+
			"is the device under another name", m.p.Name, m.line))
	case matchFamily:
		doubts = append(doubts, fmt.Sprintf("the advisory names the product %q, which is "+
			"broader than the device's model; check whether the model belongs to it", m.p.Name))
	case matchNarrower:
		doubts = append(doubts, fmt.Sprintf("the advisory names the product %q, which is more "+
			"specific than the device's model; check whether the device is that product", m.p.Name))
	}
	switch {
	case verdict == Unknown:
		doubts = append([]string{reason}, doubts...)
	case status == StatusUndecidable:
		doubts = append([]string{fmt.Sprintf("%s lists %s as under investigation",
			vulnName(*v), describe(m.p))}, doubts...)
	case len(doubts) == 0:
		return outcome{status: status, id: m.p.ID}, true
	}
	if !risky {
		return outcome{}, false
	}
	return outcome{status: StatusUndecidable, id: m.p.ID, reason: strings.Join(doubts, "; ")}, true
}

// describe names a product in messages.
func describe(p *Product) string {
	return fmt.Sprintf("%q", MatchedProduct{Name: p.Name, Version: p.Version}.String())
}

// statusConstraint returns the constraint a status entry means. The
// first_affected, last_affected and first_fixed categories name one
// version that starts or ends a range; the range is rebuilt from the
// other entries of the same vulnerability for the same vendor and
// product. Every other entry means the product's own constraint.
func (d *Document) statusConstraint(p *Product, v *Vulnerability, cat string) Constraint {
	if cat != statusFirstAffected && cat != statusLastAffected && cat != statusFirstFixed {
		return p.Constraint
	}
	x, ok := p.Constraint.single()
	if !ok {
		return p.Constraint
	}
	// sibling finds the version of the same product under another
	// category that lies beyond x in the given direction.
	sibling := func(other string, above bool) (version, bool) {
		var best version
		found := false
		for _, id := range v.Status[other] {
			q := d.byID[id]
			if q == nil || q.Vendor != p.Vendor || q.Name != p.Name {
				continue
			}
			y, ok := q.Constraint.single()
			if !ok || !comparable(x, y) {
				continue
			}
			c := compareVersions(y, x)
			if (above && c <= 0) || (!above && c > 0) {
				continue
			}
			if !found || (above && compareVersions(y, best) < 0) ||
				(!above && compareVersions(y, best) > 0) {
				best, found = y, true
			}
		}
		return best, found
	}
	c := Constraint{text: p.Constraint.text}
	switch cat {
	case statusFirstAffected:
		s := span{{op: opGE, v: x}}
		if y, ok := sibling(statusFirstFixed, true); ok {
			s = append(s, term{op: opLT, v: y})
		}
		c.spans = []span{s}
	case statusLastAffected:
		s := span{{op: opLE, v: x}}
		if w, ok := sibling(statusFirstAffected, false); ok {
			s = span{{op: opGE, v: w}, {op: opLE, v: x}}
		}
		c.spans = []span{s}
	default:
		c.spans = []span{{{op: opGE, v: x}}}
	}
	return c
}

// single returns the version of a constraint that names exactly one
// plain version.
func (c Constraint) single() (version, bool) {
	if c.all || c.problem != "" || len(c.spans) != 1 || len(c.spans[0]) != 1 {
		return version{}, false
	}
	t := c.spans[0][0]
	if t.op != opEQ || t.v.wildcard {
		return version{}, false
	}
	return t.v, true
}

// matchProduct decides whether an advisory product names the device, and
// returns nil when it does not.
func (d *Document) matchProduct(dk deviceKey, p *Product) *productMatch {
	if rel := p.Relationship; rel != nil {
		comp, plat := d.byID[rel.Component], d.byID[rel.Platform]
		if comp != nil && plat != nil && comp.Relationship == nil && plat.Relationship == nil {
			return d.matchRelationship(dk, p, comp, plat)
		}
	}
	m := matchName(dk, p)
	if m == nil {
		return nil
	}
	fw := dk.dev.FirmwareVersion
	if len(modelWords(dk, p)) == 0 {
		m.verdict = func(Constraint) (Verdict, string) { return Unknown, unknownModel }
		return m
	}
	m.verdict = func(c Constraint) (Verdict, string) { return c.Contains(fw) }
	return m
}

// matchRelationship matches a product that a relationship defines
// ("component installed_on platform"). The device is taken to be the
// platform when its names match the platform, else the component. The
// other half of the pair is something the device manifest does not
// describe, so a match is held for review unless that half covers every
// version.
func (d *Document) matchRelationship(dk deviceKey, p, comp, plat *Product) *productMatch {
	self, other := plat, comp
	m := matchName(dk, plat)
	if m == nil {
		self, other = comp, plat
		m = matchName(dk, comp)
	}
	if m == nil || (m.kind == matchLine && self.Constraint.All()) {
		return nil
	}
	m.p = p
	fw := dk.dev.FirmwareVersion
	noModel := len(modelWords(dk, self)) == 0
	cat := strings.ReplaceAll(p.Relationship.Category, "_", " ")
	m.verdict = func(Constraint) (Verdict, string) {
		if noModel {
			return Unknown, unknownModel
		}
		v, reason := self.Constraint.Contains(fw)
		if v != Included || other.Constraint.All() {
			return v, reason
		}
		if self == plat {
			return Unknown, fmt.Sprintf("the advisory concerns %s only with %s (%s), "+
				"which the device manifest does not describe", describe(plat), describe(comp), cat)
		}
		return Unknown, fmt.Sprintf("the advisory concerns %s only when %s %s, "+
			"which the device manifest does not describe", describe(comp), cat, describe(plat))
	}
	return m
}

// modelWords returns the device's model words without vendor and brand
// words and stop words.
func modelWords(dk deviceKey, p *Product) []string {
	strip := append(slices.Clone(dk.vendor), p.vendor...)
	return nameWords(dk.dev.Model, strip)
}

// matchName compares the device's manufacturer and model with a
// product's vendor and name. It leaves verdict unset.
func matchName(dk deviceKey, p *Product) *productMatch {
	m := &productMatch{p: p}
	nameWs := words(p.Name)
	switch {
	case p.Vendor == "":
		// No vendor branch: the manufacturer must appear in the name.
		found := false
		for _, a := range dk.vendor {
			found = found || indexOf(nameWs, a) >= 0
		}
		if !found {
			return nil
		}
	default:
		switch matchVendor(dk.vendor, p.vendor) {
		case vendorNear:
			m.doubts = append(m.doubts, fmt.Sprintf(
				"the advisory's vendor %q only nearly matches the manufacturer %q",
				p.Vendor, dk.dev.Manufacturer))
		case vendorNone:
			// The manufacturer may be a brand written into the product
			// name ("Welch Allyn Connex Spot Monitor" under "Hillrom").
			brand := false
			for _, a := range dk.vendor {
				brand = brand || hasPrefix(nameWs, a)
			}
			if !brand {
				return nil
			}
		}
	}

	mw := modelWords(dk, p)
	if len(mw) == 0 {
		return m
	}
	if modelNumberMatch(p.ModelNumbers, mw) {
		return m
	}
	pw := dropLeading(p.index.words, dk.vendor)
	broader := indexWords(mw, dk.dev.Model).covers(pw)
	if p.index.covers(mw) {
		switch {
		case broader:
			m.kind = matchExact
		case hasNumber(pw) && !hasNumber(mw):
			m.kind = matchNarrower
		default:
			m.kind = matchWithin
		}
		m.doubts = append(m.doubts, exclusionDoubt(dk, p, mw)...)
		return m
	}
	if broader {
		m.kind = matchFamily
		m.doubts = append(m.doubts, exclusionDoubt(dk, p, mw)...)
		return m
	}
	if line := mw[0]; len(line) >= 3 && !hasNumber(mw[:1]) && slices.Contains(pw, line) {
		m.kind = matchLine
		m.line = line
		return m
	}
	return nil
}

// exclusionDoubt returns a reason when the product name's "not
// including ..." part may name the device's model: an excluded item whose
// words all appear in the model, or one that holds all the model's words
// including a model number.
func exclusionDoubt(dk deviceKey, p *Product, mw []string) []string {
	if p.exclude == "" {
		return nil
	}
	strip := append(slices.Clone(dk.vendor), p.vendor...)
	modelIx := indexWords(mw, dk.dev.Model)
	for _, item := range partySplit.Split(p.exclude, -1) {
		ix := newNameIndex(item, strip)
		if modelIx.covers(ix.words) || (ix.covers(mw) && hasNumber(mw)) {
			return []string{fmt.Sprintf(
				"the advisory's product %q excludes %q, which may be the device's model",
				p.Name, strings.TrimSpace(item))}
		}
	}
	return nil
}

// modelNumberMatch reports whether the model is one of the product's
// model_numbers.
func modelNumberMatch(numbers []string, mw []string) bool {
	for _, n := range numbers {
		if c := compact(words(n)); c != "" && c == compact(mw) {
			return true
		}
	}
	return false
}

// hasNumber reports whether any word contains a digit.
func hasNumber(ws []string) bool {
	for _, w := range ws {
		if strings.ContainsAny(w, "0123456789") {
			return true
		}
	}
	return false
}
