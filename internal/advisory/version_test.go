package advisory

import (
	"strings"
	"testing"
)

func TestConstraintContains(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		firmware string
		want     Verdict
		// reason must appear in the reason of an Unknown verdict.
		reason string
	}{
		// Operators.
		{name: "at or below includes the bound", text: "<=12.1.3", firmware: "12.1.3", want: Included},
		{name: "at or below excludes a later patch", text: "<=12.1.3", firmware: "12.1.4",
			want: Excluded},
		{name: "below excludes the bound", text: "< 1.52", firmware: "1.52", want: Excluded},
		{name: "segments compare as whole numbers so 1.6 precedes 1.52", text: "< 1.52",
			firmware: "1.6", want: Included},
		{name: "at or above includes the bound", text: ">= 4.0.1", firmware: "4.0.1", want: Included},
		{name: "above excludes the bound", text: "> 2.0", firmware: "2.0.0", want: Excluded},
		{name: "equals ignores trailing zeros", text: "= 4.0", firmware: "4.0.0", want: Included},
		{name: "plain version is an exact match", text: "1.6.1", firmware: "1.6.1", want: Included},
		{name: "plain version excludes others", text: "1.6.1", firmware: "1.6.2", want: Excluded},

		// Pre-releases and builds of the device's firmware.
		{name: "build metadata is the same version", text: "<= 9.33.1", firmware: "9.33.1+build5",
			want: Included},
		{name: "a release candidate of the last affected version needs review", text: "<= 9.33.1",
			firmware: "9.33.1-rc1", want: Unknown, reason: "pre-release"},
		{name: "a dotted pre-release needs review", text: "<= 9.33.1", firmware: "9.33.1-alpha.2",
			want: Unknown, reason: "pre-release"},
		{name: "a pre-release is decided when every version is affected", text: "vers:all/*",
			firmware: "9.33.1-beta", want: Included},

		// Alternatives joined by "|".
		{name: "lower then upper bound is a range inside", text: ">= 1.1 | <= 1.3.2",
			firmware: "1.2", want: Included},
		{name: "lower then upper bound is a range, not a list", text: ">= 1.1 | <= 1.3.2",
			firmware: "2.0", want: Excluded},
		{name: "range excludes below its lower bound", text: ">= 1.1 | <= 1.3.2",
			firmware: "1.0.9", want: Excluded},
		{name: "range with doubled spaces", text: ">= 1.0.0  | <= 1.3.1", firmware: "1.3.1",
			want: Included},
		{name: "half-open range", text: ">= 1.3.4 | < 1.5.3", firmware: "1.5.3", want: Excluded},
		{name: "plain versions form a list", text: "5.0|5.1", firmware: "5.1", want: Included},
		{name: "list excludes versions between its members", text: "5.0|5.1", firmware: "5.0.5",
			want: Excluded},
		{name: "two ranges joined by bars", text: ">= v20D29 | <= v20D32 | >= v22D24 | <= v22D28",
			firmware: "v22D25", want: Included},
		{name: "gap between two ranges is excluded",
			text: ">= v20D29 | <= v20D32 | >= v22D24 | <= v22D28", firmware: "21D01", want: Excluded},
		{name: "two upper bounds are alternatives", text: "<= U61 |<= L81", firmware: "L70",
			want: Included},
		{name: "lettered revisions compare by letter", text: ">=BT02 | <= BT06", firmware: "BT05",
			want: Included},
		{name: "lettered revision above the range", text: ">=BT02 | <= BT06", firmware: "BT08",
			want: Excluded},
		{name: "lower bound above upper bound is undecidable", text: ">= 5.0 | <= 3.0",
			firmware: "4.0", want: Unknown, reason: "lies above upper bound"},

		// vers expressions.
		{name: "vers all covers every version", text: "vers:all/*", firmware: "0.0.1",
			want: Included},
		{name: "vers all covers an unknown version", text: "vers:all/*", firmware: "",
			want: Included},
		{name: "vers generic range inside", text: "vers:generic/>=1.0|<2.0", firmware: "1.9.9",
			want: Included},
		{name: "vers generic range excludes its upper bound", text: "vers:generic/>=1.0|<2.0",
			firmware: "2.0", want: Excluded},
		{name: "vers constraints are sorted before pairing", text: "vers:generic/<2.0|>=1.0",
			firmware: "1.5", want: Included},
		{name: "vers exact version beside a range", text: "vers:semver/1.2.3|>=2.0.0|<5.0.0",
			firmware: "1.2.3", want: Included},
		{name: "vers not-equal removes one version", text: "vers:generic/!=1.5|>=1.0|<2.0",
			firmware: "1.5", want: Excluded},
		{name: "vers with spaces", text: "vers:generic/ >= 1.0 | < 2.0", firmware: "1.1",
			want: Included},
		{name: "broken vers expression is undecidable", text: "vers:generic/>=|<2.0",
			firmware: "1.0", want: Unknown, reason: "vers expression"},
		{name: "vers without scheme is undecidable", text: "vers:>=1.0", firmware: "1.0",
			want: Unknown, reason: "cannot read vers expression"},

		// Wildcards.
		{name: "wildcard matches its line", text: "9.x", firmware: "9.1.4", want: Included},
		{name: "wildcard matches the bare major", text: "9.x", firmware: "9", want: Included},
		{name: "wildcard excludes other lines", text: "9.x", firmware: "10.0", want: Excluded},
		{name: "upper-case wildcard", text: "2.X", firmware: "2.7", want: Included},
		{name: "deep wildcard", text: "12.2.x.x", firmware: "12.2.7.1", want: Included},
		{name: "at or below a wildcard includes the whole line", text: "<= 12.2.x.x",
			firmware: "12.2.9.9", want: Included},
		{name: "at or below a wildcard excludes the next line", text: "<= 11.x",
			firmware: "12.0", want: Excluded},
		{name: "below a wildcard excludes the line itself", text: "< 3.x", firmware: "3.0.1",
			want: Excluded},
		{name: "below a wildcard includes earlier lines", text: "< 3.x", firmware: "2.9",
			want: Included},
		{name: "list of wildcards", text: "4.X | 5.X", firmware: "5.2", want: Included},

		// Alphanumeric versions.
		{name: "release marker is ignored", text: "<= R8.0.3", firmware: "8.0.2",
			want: Included},
		{name: "release marker on both sides", text: "<= R4.1L1", firmware: "R4.1", want: Included},
		{name: "letter suffix is a later revision", text: "<= 2.4A", firmware: "2.4B",
			want: Excluded},
		{name: "build suffix after underscores", text: "<=2023.3_Build_9342", firmware: "2023.3",
			want: Included},
		{name: "long numeric segments", text: "<= 4107600010.23", firmware: "4107600010.3",
			want: Included},
		{name: "hash suffix must match exactly", text: "1.4.2.0-9d9eff4",
			firmware: "1.4.2.0-9d9eff4", want: Included},

		// Phrases.
		{name: "and below means at or below", text: "2.3.6 and  below", firmware: "2.3.6",
			want: Included},
		{name: "and later means at or above", text: "4.2 and later", firmware: "4.1",
			want: Excluded},
		{name: "prior to means below", text: "prior to 3.0", firmware: "2.9", want: Included},
		{name: "all versions in words", text: "All versions", firmware: "1.0", want: Included},
		{name: "a lone star means every version", text: "*", firmware: "7", want: Included},

		// Texts that must stay undecidable.
		{name: "date is undecidable", text: "<8/30/2024", firmware: "1.0", want: Unknown,
			reason: `"<8/30/2024"`},
		{name: "month name is undecidable", text: "<May 2018", firmware: "1.0", want: Unknown,
			reason: `"<May 2018"`},
		{name: "prose date is undecidable", text: "distributed  < april 1, 2018", firmware: "1.0",
			want: Unknown, reason: "distributed < april 1, 2018"},
		{name: "qualifier about another component is undecidable",
			text:     "9.x (with Wireless Battery Modules >= 22D19 | <= v22D28)",
			firmware: "9.1", want: Unknown, reason: "qualifier in brackets"},
		{name: "qualifier never lets a bar-joined part decide",
			text:     "v6.x (with Wireless Battery Modules v9 | v11 | v13)",
			firmware: "v11", want: Unknown, reason: "qualifier in brackets"},
		{name: "qualifier after a bound is undecidable", text: "<= 1.54 (integrated into GE MobileLink)",
			firmware: "1.0", want: Unknown, reason: "qualifier in brackets"},
		{name: "model number written as version is undecidable", text: "v8.x model 35700BAX2",
			firmware: "8.1", want: Unknown, reason: `"v8.x model 35700BAX2"`},
		{name: "words after an operator are undecidable", text: "<=11.2 on Windows 8.1 with IIS 7.5",
			firmware: "11.0", want: Unknown, reason: "cannot read version"},
		{name: "service pack text is undecidable", text: "< 1.8.4 Service Pack 01",
			firmware: "1.8.3", want: Unknown, reason: "Service Pack"},
		{name: "operator between versions is undecidable", text: "A10 < A11", firmware: "A10",
			want: Unknown, reason: `"A10 < A11"`},
		{name: "empty text is undecidable", text: "  ", firmware: "1.0", want: Unknown,
			reason: "empty version"},

		// Lists with an unreadable member.
		{name: "readable member of a list still proves a match", text: "HD 16 | HD23",
			firmware: "HD23", want: Included},
		{name: "unreadable member of a list keeps other versions undecidable",
			text: "HD 16 | HD23", firmware: "HD20", want: Unknown, reason: `"HD 16"`},
		{name: "unreadable member next to a bound decides nothing",
			text: ">= 1.0 | junk here | <= 2.0", firmware: "1.5", want: Unknown,
			reason: `"junk here"`},

		// Versions written in another scheme than the device's.
		{name: "model number in a version field is undecidable", text: "3120", firmware: "3.1",
			want: Unknown, reason: "may be a model or part number"},
		{name: "part numbers in a version list are undecidable",
			text: "MMT-1715 | MMT-1754 | MMT-1755", firmware: "4.1", want: Unknown,
			reason: "MMT-1715"},
		{name: "dotless major is not compared with a dotted version", text: "8", firmware: "8.2",
			want: Unknown, reason: "written differently"},
		{name: "lettered bound is not compared with a numeric version", text: "<= K",
			firmware: "4.1", want: Unknown, reason: `"K"`},
		{name: "lettered bound is compared with a lettered version", text: "<= K",
			firmware: "J", want: Included},
		{name: "year range is not compared with a dotted version", text: ">= 2003 | <= 2006",
			firmware: "5.2", want: Unknown, reason: "written differently"},
		{name: "numbered bound is not compared with a revision code", text: "< 012U000040",
			firmware: "U50", want: Unknown, reason: "written differently"},

		// What the device says.
		{name: "unknown firmware is undecidable", text: "<= 2.3.6", firmware: "", want: Unknown,
			reason: "firmware version is unknown"},
		{name: "unreadable firmware is undecidable", text: "<= 2.3.6", firmware: "2.3 beta",
			want: Unknown, reason: "cannot read the device's firmware version"},
		{name: "firmware pattern is undecidable", text: "<= 2.3.6", firmware: "2.x",
			want: Unknown, reason: "cannot read the device's firmware version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := ParseConstraint(tt.text).Contains(tt.firmware)
			if got != tt.want {
				t.Fatalf("ParseConstraint(%q).Contains(%q) = %v (%s), want %v",
					tt.text, tt.firmware, got, reason, tt.want)
			}
			if got == Unknown && !strings.Contains(reason, tt.reason) {
				t.Errorf("reason %q does not mention %q", reason, tt.reason)
			}
			if got != Unknown && reason != "" {
				t.Errorf("decided verdict %v carries reason %q", got, reason)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want int
	}{
		{name: "missing segments equal zero", a: "1.0", b: "1.0.0", want: 0},
		{name: "segments compare as numbers", a: "1.10", b: "1.9", want: 1},
		{name: "leading zeros do not count", a: "5.09.02", b: "5.9.2", want: 0},
		{name: "letter suffix follows the bare version", a: "5.89.05b", b: "5.89.05", want: 1},
		{name: "letters sort before numbers", a: "1.0.beta", b: "1.0.1", want: -1},
		{name: "version marker is ignored", a: "v22D28", b: "22D19", want: 1},
		{name: "release marker is ignored", a: "R2.1.3", b: "2.1.10", want: -1},
		{name: "letters compare without case", a: "C.00.04", b: "c.0.4", want: 0},
		{name: "numbers longer than an int compare", a: "99999999999999999999999.1",
			b: "99999999999999999999998.9", want: 1},
		{name: "dashes underscores and dots all separate", a: "2023-3_build.9342",
			b: "2023.3.build.9342", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := parseVersion(tt.a)
			if err != nil {
				t.Fatalf("parseVersion(%q): %v", tt.a, err)
			}
			b, err := parseVersion(tt.b)
			if err != nil {
				t.Fatalf("parseVersion(%q): %v", tt.b, err)
			}
			if got := compareVersions(a, b); got != tt.want {
				t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := compareVersions(b, a); got != -tt.want {
				t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
		})
	}
}

// TestParseConstraintAdversarial feeds the parser hostile text. None of it
// may panic, and none of it may ever exclude a device: text that is not
// understood must come out Unknown with a problem that names it.
func TestParseConstraintAdversarial(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{name: "only a bar", text: "|"},
		{name: "empty alternatives", text: "1.0||2.0"},
		{name: "leading bar", text: "| 1.0"},
		{name: "trailing bar", text: "1.0 |"},
		{name: "operator without version", text: ">="},
		{name: "doubled operator", text: ">= >= 1.0"},
		{name: "operator run", text: "<<1.0"},
		{name: "trailing equals", text: "=1.0="},
		{name: "double dot", text: "1..2"},
		{name: "leading dot", text: ".1"},
		{name: "trailing dot", text: "1."},
		{name: "wildcard in the middle", text: "1.*.2"},
		{name: "bare x wildcard", text: ".x"},
		{name: "not-equal outside vers", text: "!= 1.0"},
		{name: "slash date", text: "8/30/2024"},
		{name: "unbalanced bracket", text: "6.x (Wireless Battery Modules (16 | 17)"},
		{name: "closing bracket only", text: "1.0)"},
		{name: "square brackets", text: "[1.0, 2.0)"},
		{name: "shell metacharacters", text: "1.0;rm -rf /"},
		{name: "full-width digits", text: "１.２"},
		{name: "emoji", text: "1.0 🙂"},
		{name: "right-to-left mark", text: "1.0\u200f"},
		{name: "NUL byte", text: "1.0\x00"},
		{name: "invalid UTF-8", text: "1.0\xff"},
		{name: "comma list", text: "1.0, 1.1"},
		{name: "prose", text: "all versions running on old, unsupported operating systems"},
		{name: "vers without constraints", text: "vers:generic/"},
		{name: "vers with a trailing bar", text: "vers:generic/>=1.0|"},
		{name: "vers star beside a version", text: "vers:all/*|1.0"},
		{name: "vers wildcard version", text: "vers:generic/>=1.x"},
		{name: "vers prefix only", text: "vers:"},
		{name: "very long garbage", text: strings.Repeat("<=(", 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ParseConstraint(tt.text)
			if c.Problem() == "" {
				t.Fatalf("ParseConstraint(%q) found no problem", tt.text)
			}
			for _, fw := range []string{"", "1.0", "1.5", "2.0", "x"} {
				if got, reason := c.Contains(fw); got != Unknown || reason == "" {
					t.Errorf("Contains(%q) = %v (%q), want Unknown with a reason", fw, got, reason)
				}
			}
		})
	}
}

// TestParseConstraintLongInput shows that enormous but well-formed input
// is handled without trouble.
func TestParseConstraintLongInput(t *testing.T) {
	long := strings.Repeat("9", 10000)
	c := ParseConstraint("<= " + long + ".1")
	if c.Problem() != "" {
		t.Fatalf("unexpected problem: %s", c.Problem())
	}
	if got, _ := c.Contains(long + ".0"); got != Included {
		t.Errorf("Contains(long) = %v, want Included", got)
	}
	many := strings.TrimSuffix(strings.Repeat("1.0|", 2000), "|")
	if got, _ := ParseConstraint(many).Contains("1.0"); got != Included {
		t.Errorf("Contains on a 2000-member list = %v, want Included", got)
	}
}
