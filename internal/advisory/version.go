package advisory

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Verdict says whether a version falls inside a constraint.
type Verdict int

const (
	// Excluded means the version is certainly outside the constraint.
	Excluded Verdict = iota
	// Included means the version is certainly inside the constraint.
	Included
	// Unknown means the matcher cannot tell; the accompanying reason says
	// why.
	Unknown
)

// String returns the verdict's name.
func (v Verdict) String() string {
	switch v {
	case Excluded:
		return "Excluded"
	case Included:
		return "Included"
	default:
		return "Unknown"
	}
}

// version is one version string split into comparable segments.
type version struct {
	// text is the version as written, trimmed.
	text string
	// segs are the numeric and alphabetic runs of the version, in order.
	segs []segment
	// lettered is set when the version starts with letters ("BT06",
	// "C.02"); such versions are only compared with other lettered ones.
	lettered bool
	// dotted is set when the version contains a dot. A dotless version
	// ("8", "3120", "HD23") is only compared with another dotless one,
	// because it is as often a model number or a whole product line as a
	// release.
	dotted bool
	// wildcard is set for "9.x" and the like: only the leading segments
	// are compared.
	wildcard bool
}

// segment is one run of digits or one run of letters.
type segment struct {
	// num holds the digits without leading zeros ("0" for zero); empty
	// for an alphabetic run.
	num string
	// alpha holds the letters in lower case; empty for a numeric run.
	alpha string
}

// versionPattern is what a single version may look like: letters and
// digits, joined by dots, dashes, underscores or plus signs.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._+-][A-Za-z0-9]+)*$`)

// wildcardSuffix matches the wildcard segments that may end a version
// (".x", ".X", ".*"); "9.x" is the whole 9 line.
var wildcardSuffix = regexp.MustCompile(`(?:\.[xX*])+$`)

// preRelease matches a version with a pre-release part: a dash followed
// by letters, as in 9.33.1-rc1, 2.0-beta, 1.0-alpha.2.
var preRelease = regexp.MustCompile(`^[^-]+-[A-Za-z]`)

// markerPattern matches a leading "v" or "r" written directly before a
// digit ("v22D28", "R2.1.3"): it marks a version and carries no order.
var markerPattern = regexp.MustCompile(`^[vVrR](\d)`)

// parseVersion reads one version. It refuses whitespace, slashes,
// parentheses and anything else that is not plainly a version.
func parseVersion(text string) (version, error) {
	t := strings.TrimSpace(text)
	if t == "" {
		return version{}, errors.New("empty version")
	}
	body := wildcardSuffix.ReplaceAllString(t, "")
	if !versionPattern.MatchString(body) {
		return version{}, fmt.Errorf("%q is not a version", t)
	}
	v := version{text: t, wildcard: body != t}
	v.dotted = strings.Contains(body, ".") || v.wildcard
	body = markerPattern.ReplaceAllString(body, "$1")
	v.segs = splitSegments(body)
	if len(v.segs) == 0 {
		return version{}, fmt.Errorf("%q is not a version", t)
	}
	v.lettered = v.segs[0].alpha != ""
	return v, nil
}

// splitSegments cuts s into runs of digits and runs of letters; every
// other character only separates runs.
func splitSegments(s string) []segment {
	var segs []segment
	var cur []rune
	digits := false
	flush := func() {
		if len(cur) == 0 {
			return
		}
		if digits {
			n := strings.TrimLeft(string(cur), "0")
			if n == "" {
				n = "0"
			}
			segs = append(segs, segment{num: n})
		} else {
			segs = append(segs, segment{alpha: strings.ToLower(string(cur))})
		}
		cur = cur[:0]
	}
	for _, r := range s {
		switch {
		case unicode.IsDigit(r):
			if !digits {
				flush()
			}
			digits = true
			cur = append(cur, r)
		case unicode.IsLetter(r):
			if digits {
				flush()
			}
			digits = false
			cur = append(cur, r)
		default:
			flush()
		}
	}
	flush()
	return segs
}

// compareSegment orders two present segments: numbers by value, letters
// alphabetically, and letters before numbers ("1.0.beta" < "1.0.1").
func compareSegment(a, b segment) int {
	switch {
	case a.num != "" && b.num != "":
		if len(a.num) != len(b.num) {
			return cmp.Compare(len(a.num), len(b.num))
		}
		return strings.Compare(a.num, b.num)
	case a.alpha != "" && b.alpha != "":
		return strings.Compare(a.alpha, b.alpha)
	case a.alpha != "":
		return -1
	default:
		return 1
	}
}

// compareVersions orders a and b segment by segment. A missing segment
// equals a numeric zero ("1.0" = "1.0.0") and sorts before any other
// segment, so a letter suffix counts as a later revision ("05b" > "05").
// When b is a wildcard only b's own segments are compared.
func compareVersions(a, b version) int {
	n := max(len(a.segs), len(b.segs))
	if b.wildcard {
		n = len(b.segs)
	}
	for i := range n {
		var sa, sb *segment
		if i < len(a.segs) {
			sa = &a.segs[i]
		}
		if i < len(b.segs) {
			sb = &b.segs[i]
		}
		switch {
		case sa == nil && sb == nil:
			return 0
		case sa == nil:
			if sb.num == "0" {
				continue
			}
			return -1
		case sb == nil:
			if sa.num == "0" {
				continue
			}
			return 1
		}
		if c := compareSegment(*sa, *sb); c != 0 {
			return c
		}
	}
	return 0
}

// comparable reports whether a device version and an advisory version
// are written in the same scheme, so that ordering them means something.
func comparable(device, bound version) bool {
	if device.lettered != bound.lettered {
		return false
	}
	return bound.wildcard || device.dotted == bound.dotted
}

// op is a comparison operator of a version term.
type op int

const (
	opEQ op = iota
	opNE
	opLT
	opLE
	opGT
	opGE
)

// term is one operator and version, such as "<= 2.3.6".
type term struct {
	op op
	v  version
}

// lower reports whether the term is a lower bound.
func (t term) lower() bool { return t.op == opGT || t.op == opGE }

// upper reports whether the term is an upper bound.
func (t term) upper() bool { return t.op == opLT || t.op == opLE }

// holds reports whether the device version satisfies the term; the
// caller has checked that the two are comparable.
func (t term) holds(d version) bool {
	c := compareVersions(d, t.v)
	switch t.op {
	case opEQ:
		return c == 0
	case opNE:
		return c != 0
	case opLT:
		return c < 0
	case opLE:
		return c <= 0
	case opGT:
		return c > 0
	default:
		return c >= 0
	}
}

// span is one alternative of a constraint: every term in it must hold.
type span []term

// opPattern splits a term into its operator and version.
var opPattern = regexp.MustCompile(`^(>=|<=|==|!=|=|<|>)?\s*(.*)$`)

// parseTerm reads one operator and version, such as ">= v20D29".
func parseTerm(text string) (term, error) {
	m := opPattern.FindStringSubmatch(strings.TrimSpace(text))
	var t term
	switch m[1] {
	case "", "=", "==":
		t.op = opEQ
	case "!=":
		t.op = opNE
	case "<":
		t.op = opLT
	case "<=":
		t.op = opLE
	case ">":
		t.op = opGT
	case ">=":
		t.op = opGE
	}
	v, err := parseVersion(m[2])
	if err != nil {
		return term{}, err
	}
	t.v = v
	return t, nil
}

// Constraint is the version text of one advisory product, parsed.
//
// The zero value matches nothing and says so; use ParseConstraint.
type Constraint struct {
	text string
	// all is set for "vers:all/*", "*" and "all versions", and for
	// products whose tree gives no version at all.
	all bool
	// spans are the alternatives; a version inside any of them is
	// inside the constraint.
	spans []span
	// excluded are the "!=" terms of a vers expression.
	excluded []term
	// problem says what could not be read; empty when everything was.
	problem string
	// partial is set when some alternatives could not be read but the
	// rest are plain versions, which may still prove a match.
	partial bool
}

// AllVersions is the constraint that every version satisfies.
func AllVersions() Constraint {
	return Constraint{text: "vers:all/*", all: true}
}

// unknownConstraint is the constraint of a product whose version the
// advisory does not state separately.
func unknownConstraint(reason string) Constraint {
	return Constraint{problem: reason}
}

// Text returns the version text as the advisory wrote it.
func (c Constraint) Text() string { return c.text }

// All reports whether every version satisfies the constraint.
func (c Constraint) All() bool { return c.all }

// Problem returns what the matcher could not read in the text, or "" when
// it understood all of it.
func (c Constraint) Problem() string { return c.problem }

// phrases that some advisories use instead of operators.
var (
	atOrBelow = regexp.MustCompile(`(?i)^(.+?)\s+(?:and|or)\s+` +
		`(?:below|prior|earlier|lower|older|before)$`)
	atOrAbove = regexp.MustCompile(`(?i)^(.+?)\s+(?:and|or)\s+` +
		`(?:above|later|newer|higher)$`)
	before = regexp.MustCompile(`(?i)^(?:prior to|before|earlier than)\s+(.+)$`)
)

// ParseConstraint reads the version text of a product_version or
// product_version_range branch.
//
// It understands vers expressions ("vers:generic/>=1.0|<2.0",
// "vers:all/*"), operators (<, <=, >, >=, =), alternatives joined by "|",
// where a lower bound directly followed by an upper bound forms one range
// (">= 1.1 | <= 1.3.2") and everything else is a list ("5.0|5.1"),
// wildcards ("9.x", "<= 11.x"), "*", "all versions", and the phrases
// "X and below", "X and later" and "prior to X". Anything else is kept as
// a problem that makes every comparison Unknown.
func ParseConstraint(text string) Constraint {
	t := strings.Join(strings.Fields(text), " ")
	c := Constraint{text: t}
	lower := strings.ToLower(t)
	switch {
	case t == "":
		c.problem = "the advisory gives an empty version"
		return c
	case strings.HasPrefix(lower, "vers:"):
		return parseVers(c)
	case t == "*" || lower == "all" || lower == "all versions":
		c.all = true
		return c
	case strings.ContainsAny(t, "()[]{}"):
		c.problem = fmt.Sprintf(
			"version %q carries a qualifier in brackets that the matcher cannot evaluate", t)
		return c
	}
	if m := atOrBelow.FindStringSubmatch(t); m != nil && !strings.Contains(t, "|") {
		t = "<= " + m[1]
	} else if m := atOrAbove.FindStringSubmatch(t); m != nil && !strings.Contains(t, "|") {
		t = ">= " + m[1]
	} else if m := before.FindStringSubmatch(t); m != nil && !strings.Contains(t, "|") {
		t = "< " + m[1]
	}

	var terms []term
	var bad []string
	for part := range strings.SplitSeq(t, "|") {
		tm, err := parseTerm(part)
		if err != nil || tm.op == opNE {
			bad = append(bad, strings.TrimSpace(part))
			continue
		}
		terms = append(terms, tm)
	}
	c.spans, c.problem = pairTerms(terms)
	if len(bad) > 0 {
		if t != c.text || bad[0] == c.text {
			c.problem = fmt.Sprintf("cannot read version %q", c.text)
		} else {
			c.problem = fmt.Sprintf("cannot read %q in version %q", bad[0], c.text)
		}
		// A list of plain versions with one unreadable member can still
		// prove a match; bounds or an empty member (a stray bar) cannot.
		c.partial = c.spans != nil && !slices.Contains(bad, "") &&
			!slices.ContainsFunc(terms, func(tm term) bool { return tm.op != opEQ })
	}
	return c
}

// pairTerms turns a list of terms into alternatives: a lower bound
// directly followed by an upper bound is one range, every other term
// stands alone. A range whose lower bound lies above its upper bound is a
// problem, since the text then means something other than it says.
func pairTerms(terms []term) ([]span, string) {
	var spans []span
	for i := 0; i < len(terms); i++ {
		t := terms[i]
		if t.lower() && i+1 < len(terms) && terms[i+1].upper() {
			hi := terms[i+1]
			if comparable(t.v, hi.v) && compareVersions(t.v, hi.v) > 0 {
				return nil, fmt.Sprintf("lower bound %q lies above upper bound %q",
					t.v.text, hi.v.text)
			}
			spans = append(spans, span{t, hi})
			i++
			continue
		}
		spans = append(spans, span{t})
	}
	return spans, ""
}

// versPattern splits a vers expression into its scheme and constraints.
var versPattern = regexp.MustCompile(`^(?i)vers:([a-z0-9.+-]+)/(.*)$`)

// parseVers reads a vers expression (the version range specifier that
// CSAF product_version_range branches may carry). Every scheme is
// compared with the same segment rules.
func parseVers(c Constraint) Constraint {
	m := versPattern.FindStringSubmatch(strings.ReplaceAll(c.text, " ", ""))
	if m == nil {
		c.problem = fmt.Sprintf("cannot read vers expression %q", c.text)
		return c
	}
	if m[2] == "*" {
		c.all = true
		return c
	}
	var cmp []term
	for part := range strings.SplitSeq(m[2], "|") {
		t, err := parseTerm(part)
		if err != nil || t.v.wildcard {
			c.problem = fmt.Sprintf("cannot read %q in vers expression %q", part, c.text)
			return c
		}
		switch t.op {
		case opNE:
			c.excluded = append(c.excluded, t)
		case opEQ:
			c.spans = append(c.spans, span{t})
		default:
			cmp = append(cmp, t)
		}
	}
	slices.SortStableFunc(cmp, func(a, b term) int { return compareVersions(a.v, b.v) })
	spans, problem := pairTerms(cmp)
	if problem != "" {
		c.problem = problem
		return c
	}
	c.spans = append(c.spans, spans...)
	return c
}

// Contains decides whether the device firmware version lies inside the
// constraint. The reason is set whenever the verdict is Unknown.
func (c Constraint) Contains(firmware string) (Verdict, string) {
	if c.all {
		return Included, ""
	}
	if c.problem != "" && !c.partial {
		return Unknown, c.problem
	}
	if strings.TrimSpace(firmware) == "" {
		return Unknown, fmt.Sprintf(
			"the device's firmware version is unknown and the advisory names %q", c.text)
	}
	// Build metadata ("+build5") names the same version; a pre-release
	// ("-rc1", "-beta") sorts before its release in some schemes and not in
	// others, so it is never decided.
	if base, _, ok := strings.Cut(firmware, "+"); ok {
		firmware = base
	}
	if preRelease.MatchString(firmware) {
		return Unknown, fmt.Sprintf("the device's firmware %q is a pre-release; whether it lies in %q "+
			"depends on the maker's numbering", firmware, c.text)
	}
	d, err := parseVersion(firmware)
	if err != nil || d.wildcard {
		return Unknown, fmt.Sprintf("cannot read the device's firmware version %q", firmware)
	}

	var unsure string
	for _, t := range c.excluded {
		if !comparable(d, t.v) {
			unsure = mismatch(d, t.v)
			continue
		}
		if !t.holds(d) {
			return Excluded, ""
		}
	}
	for _, s := range c.spans {
		in := true
		for _, t := range s {
			if !comparable(d, t.v) {
				if unsure == "" {
					unsure = mismatch(d, t.v)
				}
				in = false
				break
			}
			if !t.holds(d) {
				in = false
				break
			}
		}
		if in {
			return Included, ""
		}
	}
	if c.problem != "" {
		return Unknown, c.problem
	}
	if unsure != "" {
		return Unknown, unsure
	}
	return Excluded, ""
}

// mismatch explains why two versions could not be ordered.
func mismatch(d, bound version) string {
	return fmt.Sprintf("cannot compare the device's firmware version %q with %q: "+
		"they are written differently (it may be a model or part number)", d.text, bound.text)
}
