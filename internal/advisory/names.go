package advisory

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// fold lowercases s and strips diacritics ("Dräger" becomes "drager").
func fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// transliterate spells German umlauts out ("Dräger" becomes "Draeger"),
// the other way vendors' names are commonly written in ASCII.
var transliterate = strings.NewReplacer(
	"ä", "ae", "ö", "oe", "ü", "ue", "Ä", "Ae", "Ö", "Oe", "Ü", "Ue", "ß", "ss")

// wordBreak separates words: anything that is neither a letter nor a digit.
var wordBreak = regexp.MustCompile(`[^\pL\pN]+`)

// words returns the folded words of s. Ampersands and plus signs become
// words of their own ("XR656+" is "xr656 plus") and apostrophes join
// ("N'Vision" is "nvision").
func words(s string) []string {
	s = fold(s)
	s = strings.NewReplacer("&", " and ", "+", " plus ", "'", "", "’", "").Replace(s)
	return strings.Fields(wordBreak.ReplaceAllString(s, " "))
}

// compact joins words without spaces, to compare "i-SENS" with "iSENS".
func compact(ws []string) string { return strings.Join(ws, "") }

// Vendor names.

// legalForms are company-form words that never tell two vendors apart.
var legalForms = setOf("inc", "incorporated", "corp", "corporation", "co", "company",
	"cos", "ltd", "limited", "llc", "llp", "lp", "plc", "gmbh", "mbh", "ag", "kg",
	"kgaa", "se", "sa", "sas", "sarl", "sl", "nv", "bv", "spa", "srl", "oy", "oyj",
	"ab", "as", "asa", "aps", "pty", "pvt", "kk", "bhd", "sdn")

// sectorWords describe a line of business. They are dropped from the end
// of a vendor name when another word remains, so "GE Healthcare",
// "B. Braun Medical" and "Abbott Laboratories" match "GE", "B. Braun" and
// "Abbott", while a vendor called just "Medical" stays "medical".
var sectorWords = setOf("medical", "healthcare", "health", "technologies", "technology",
	"international", "laboratories", "labs", "diagnostics", "systems", "solutions",
	"group", "holding", "holdings", "industries")

// connectors are left over when a suffix follows "and" ("Becton,
// Dickinson and Company").
var connectors = setOf("and", "the", "of")

// setOf makes a set of words.
func setOf(ws ...string) map[string]bool {
	m := make(map[string]bool, len(ws))
	for _, w := range ws {
		m[w] = true
	}
	return m
}

// initialism matches dotted initials such as "S.A." or "N.V.".
var initialism = regexp.MustCompile(`\b(?:\pL\.){2,}`)

// parenthesised finds bracketed abbreviations such as "(BD)".
var parenthesised = regexp.MustCompile(`\(([^()]*)\)`)

// partySplit separates the vendors of an advisory that names several
// ("Silex Technology and GE Healthcare").
var partySplit = regexp.MustCompile(`(?i)\s*(?:,|;|/|&|\band\b)\s*`)

// vendorWords returns the words of a vendor name with dotted initials
// joined ("S.A." is "sa").
func vendorWords(s string) []string {
	s = initialism.ReplaceAllStringFunc(fold(s), func(m string) string {
		return strings.ReplaceAll(m, ".", "")
	})
	return words(s)
}

// trimVendor drops legal forms, sector words and connectors from the end
// of a vendor name, never dropping its last word unless that word is
// only a legal form or connector.
func trimVendor(ws []string) []string {
	if len(ws) > 0 && ws[0] == "the" {
		ws = ws[1:]
	}
	for len(ws) > 1 {
		last := ws[len(ws)-1]
		if !legalForms[last] && !sectorWords[last] && !connectors[last] {
			break
		}
		ws = ws[:len(ws)-1]
	}
	if len(ws) == 1 && (legalForms[ws[0]] || connectors[ws[0]]) {
		return nil
	}
	return ws
}

// vendorAliases returns the names a vendor goes by: the whole name
// without its suffixes, each bracketed abbreviation, and each party of a
// list of vendors. "Becton, Dickinson and Company (BD)" gives
// "becton dickinson", "bd", "becton" and "dickinson".
func vendorAliases(name string) [][]string {
	variants := []string{name}
	if t := transliterate.Replace(name); t != name {
		variants = append(variants, t)
	}
	var out [][]string
	add := func(ws []string) {
		if len(compact(ws)) < 2 {
			return
		}
		for _, o := range out {
			if slices.Equal(o, ws) {
				return
			}
		}
		out = append(out, ws)
	}
	for _, v := range variants {
		outer := parenthesised.ReplaceAllString(v, " ")
		add(trimVendor(vendorWords(outer)))
		for _, m := range parenthesised.FindAllStringSubmatch(v, -1) {
			add(trimVendor(vendorWords(m[1])))
		}
		for _, party := range partySplit.Split(outer, -1) {
			add(trimVendor(vendorWords(party)))
		}
	}
	return out
}

// vendorMatch says how a device's manufacturer relates to an advisory's
// vendor.
type vendorMatch int

const (
	vendorNone vendorMatch = iota
	// vendorSame: one name, or a leading part of it, equals the other.
	vendorSame
	// vendorNear: the names differ by one letter ("Phillips" for
	// "Philips"); good enough to raise a review, not to decide.
	vendorNear
)

// matchVendor compares the aliases of a manufacturer and a vendor. Two
// aliases match when they are equal, equal without spaces, or when one is
// the leading words of the other ("GE" and "GE Healthcare").
func matchVendor(device, vendor [][]string) vendorMatch {
	for _, d := range device {
		for _, v := range vendor {
			if hasPrefix(d, v) || hasPrefix(v, d) || compact(d) == compact(v) {
				return vendorSame
			}
		}
	}
	for _, d := range device {
		for _, v := range vendor {
			cd, cv := compact(d), compact(v)
			if len(cd) >= 5 && len(cv) >= 5 && oneEditApart(cd, cv) {
				return vendorNear
			}
		}
	}
	return vendorNone
}

// hasPrefix reports whether ws starts with all of prefix.
func hasPrefix(ws, prefix []string) bool {
	return len(prefix) > 0 && len(prefix) <= len(ws) && slices.Equal(ws[:len(prefix)], prefix)
}

// indexOf returns where sub starts inside ws, or -1.
func indexOf(ws, sub []string) int {
	for i := 0; i+len(sub) <= len(ws) && len(sub) > 0; i++ {
		if slices.Equal(ws[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// oneEditApart reports whether a and b differ by exactly one inserted,
// deleted or changed letter.
func oneEditApart(a, b string) bool {
	if a == b {
		return false
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > 1 {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if len(a) == len(b) {
		return a[i+1:] == b[i+1:]
	}
	return a[i:] == b[i+1:]
}

// Product and model names.

// stopWords carry no model information.
var stopWords = setOf("model", "models", "series", "family", "version", "versions",
	"the", "and", "of", "for", "with")

// exclusionSplit finds where an advisory's product name starts listing
// what it does not cover ("LOGIQ, not including LOGIQ 100 Pro").
var exclusionSplit = regexp.MustCompile(`(?i),?\s*\b(?:not including|excluding|except(?: for)?)\b`)

// numberRange finds model ranges in product names ("MX400-MX850",
// "MP20-MP90", "MX400-550").
var numberRange = regexp.MustCompile(`\b([a-z]*)(\d+)\s*-\s*([a-z]*)(\d+)\b`)

// slashList finds model lists that write the prefix once ("MX800/700/600").
var slashList = regexp.MustCompile(`\b([a-z]+)(\d+[a-z]*)((?:/\d+[a-z]*)+)\b`)

// modelNumber splits a word into its letters and number ("mx450").
var modelNumber = regexp.MustCompile(`^([a-z]*)(\d+)$`)

// numRange is one model range found in a product name.
type numRange struct {
	prefix string
	lo, hi int
}

// nameIndex holds the words of a name in the forms model words are looked
// up in.
type nameIndex struct {
	// words are the name's words without stop words.
	words []string
	// set holds every word and every run of two or three adjacent words
	// written together, so "EC 40" also holds "ec40".
	set map[string]bool
	// ranges are the model ranges the name spells out.
	ranges []numRange
}

// newNameIndex indexes the name after dropping any leading words in
// strip (vendor and brand names).
func newNameIndex(name string, strip [][]string) nameIndex {
	return indexWords(nameWords(name, strip), name)
}

// nameWords returns the words of a product or model name without its
// leading vendor or brand words and without stop words.
func nameWords(name string, strip [][]string) []string {
	ws := dropLeading(words(name), strip)
	return slices.DeleteFunc(ws, func(w string) bool { return stopWords[w] })
}

// indexWords indexes ws; name is the text they came from, searched for
// model ranges and lists.
func indexWords(ws []string, name string) nameIndex {
	ix := nameIndex{words: ws, set: map[string]bool{}}
	for i := range ws {
		for n := 1; n <= 3 && i+n <= len(ws); n++ {
			ix.set[compact(ws[i:i+n])] = true
		}
	}
	folded := fold(name)
	for _, m := range numberRange.FindAllStringSubmatch(folded, -1) {
		if m[3] != "" && m[3] != m[1] {
			continue
		}
		lo, err1 := strconv.Atoi(m[2])
		hi, err2 := strconv.Atoi(m[4])
		if err1 == nil && err2 == nil && lo < hi {
			ix.ranges = append(ix.ranges, numRange{prefix: m[1], lo: lo, hi: hi})
		}
	}
	for _, m := range slashList.FindAllStringSubmatch(folded, -1) {
		for _, n := range strings.Split(m[3], "/")[1:] {
			ix.set[m[1]+n] = true
		}
	}
	return ix
}

// dropLeading removes the longest leading run of ws that equals one of
// the candidates, repeatedly ("BD Alaris" loses "bd").
func dropLeading(ws []string, candidates [][]string) []string {
	for {
		best := 0
		for _, c := range candidates {
			if hasPrefix(ws, c) && len(c) > best && len(c) < len(ws) {
				best = len(c)
			}
		}
		if best == 0 {
			return ws
		}
		ws = ws[best:]
	}
}

// has reports whether a single model word appears in the index, either
// as a word, a run of words, or inside a model range.
func (ix nameIndex) has(w string) bool {
	if ix.set[w] {
		return true
	}
	m := modelNumber.FindStringSubmatch(w)
	if m == nil {
		return false
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return false
	}
	for _, r := range ix.ranges {
		if r.prefix == m[1] && r.lo <= n && n <= r.hi {
			return true
		}
	}
	return false
}

// covers reports whether every word of ws appears in the index. Runs of
// up to three adjacent words may match one indexed word ("EC 40" against
// "EC40"). An empty list covers nothing.
func (ix nameIndex) covers(ws []string) bool {
	if len(ws) == 0 {
		return false
	}
	for i := 0; i < len(ws); {
		n := 0
		for k := min(3, len(ws)-i); k >= 1; k-- {
			if ix.has(compact(ws[i : i+k])) {
				n = k
				break
			}
		}
		if n == 0 {
			return false
		}
		i += n
	}
	return true
}
