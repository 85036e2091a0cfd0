package advisory

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// loadTestdata reads the real and crafted advisories of testdata, leaving
// out the broken ones.
func loadTestdata(t *testing.T) []*Document {
	t.Helper()
	docs, errs := LoadDir("testdata")
	for _, err := range errs {
		if !strings.Contains(err.Error(), filepath.Join("testdata", "broken")) {
			t.Fatalf("unexpected load error: %v", err)
		}
	}
	return docs
}

func TestMatch(t *testing.T) {
	docs := loadTestdata(t)
	tests := []struct {
		name   string
		device Device
		// overall is the result's status; empty to leave it unchecked.
		overall Status
		// advisory is the finding to check; empty when none may exist.
		advisory string
		status   Status
		cves     []string
		score    float64
		// reason must appear among the finding's reasons.
		reason string
		// product must appear among the finding's products.
		product string
		// absent lists advisories that must not appear.
		absent []string
	}{
		{name: "firmware inside the range is known affected",
			device:   Device{"BD", "Alaris 8015", "9.19"},
			overall:  StatusKnownAffected,
			advisory: "ICSMA-20-317-01", status: StatusKnownAffected,
			cves: []string{"CVE-2020-25165"}, score: 6.5,
			product: "Alaris PC Unit Model 8015 <= 9.33.1"},
		{name: "firmware above every range is not affected",
			device:  Device{"Becton Dickinson", "Alaris 8015", "12.1.4"},
			overall: StatusNotAffected,
			absent:  []string{"ICSMA-20-317-01", "ICSMA-23-194-01"}},
		{name: "unknown firmware needs review",
			device:   Device{"BD", "Alaris 8015", ""},
			overall:  StatusUndecidable,
			advisory: "ICSMA-20-317-01", status: StatusUndecidable,
			reason: "firmware version is unknown"},
		{name: "all-versions advisory decides without firmware",
			device:   Device{"Draeger", "Infinity Delta", ""},
			advisory: "ICSMA-19-022-01", status: StatusKnownAffected, score: 8.4},
		{name: "date in the version field needs review",
			device:   Device{"Baxter International", "Connex Health Portal", "1.0"},
			advisory: "ICSMA-24-249-01", status: StatusUndecidable, score: 10,
			reason: `"<8/30/2024"`},
		{name: "qualifier about another component needs review",
			device:   Device{"Baxter", "Spectrum IQ", "9.1"},
			advisory: "ICSMA-22-251-01", status: StatusUndecidable,
			reason: "9.x (with Wireless Battery Modules >= 22D19 | <= v22D28)"},
		{name: "misspelt vendor needs review instead of affected",
			device:   Device{"Philips", "IntelliSpace Cardiovascular", "2.2"},
			advisory: "ICSMA-18-025-01", status: StatusUndecidable,
			reason: `"Phillips" only nearly matches`},
		{name: "part numbers in the version field need review",
			device:   Device{"Medtronic", "MiniMed 670G", "4.1"},
			advisory: "ICSMA-22-263-01", status: StatusUndecidable,
			reason: "may be a model or part number"},
		{name: "model number in the version field needs review",
			device:   Device{"Boston Scientific", "ZOOM LATITUDE PRM", "3.1"},
			advisory: "ICSMA-21-273-01", status: StatusUndecidable, reason: `"3120"`},
		{name: "unknown model needs review for the vendor's advisories",
			device:   Device{"Medtronic", "", "1.0"},
			advisory: "ICSMA-23-061-01", status: StatusUndecidable,
			reason: "model is unknown", product: "Micro Clinician A51200"},
		{name: "brand named in the product name of another vendor",
			device:   Device{"Welch Allyn", "Connex Spot Monitor", "1.2"},
			advisory: "ICSMA-21-152-01", status: StatusKnownAffected,
			cves: []string{"CVE-2021-27408", "CVE-2021-27410"}},
		{name: "readable member of a version list matches",
			device:   Device{"GE Healthcare", "3.0T Signa HDXx", "HD23"},
			advisory: "ICSMA-20-343-01", status: StatusKnownAffected, score: 9.8},
		{name: "unreadable member of a version list needs review for other versions",
			device:   Device{"GE Healthcare", "3.0T Signa HDXx", "HD20"},
			advisory: "ICSMA-20-343-01", status: StatusUndecidable, reason: `"HD 16"`},
		{name: "version between two lists is not affected",
			device: Device{"BD", "FACSChorus", "4.0"},
			absent: []string{"ICSMA-23-331-01"}},
		{name: "product with a model number the device lacks needs review",
			device:   Device{"BD", "FACSChorus", "5.1"},
			advisory: "ICSMA-23-331-01", status: StatusUndecidable,
			reason: "more specific than the device's model"},
		{name: "model that names the product variant is affected",
			device:   Device{"BD", "FACSChorus HP Z2 G9", "5.1"},
			advisory: "ICSMA-23-331-01", status: StatusKnownAffected, score: 5.4},
		{name: "wildcard upper bound covers the whole line",
			device:   Device{"Philips", "Vue PACS", "12.2.5.1"},
			advisory: "ICSMA-21-187-01", status: StatusKnownAffected, score: 9.8},
		{name: "wildcard upper bound excludes the next line",
			device: Device{"Philips", "Vue PACS", "12.3"},
			absent: []string{"ICSMA-21-187-01"}},
		{name: "below a wildcard excludes the line",
			device: Device{"Baxter", "PrisMax", "3.1"},
			absent: []string{"ICSMA-20-170-02"}},
		{name: "below a wildcard includes earlier lines",
			device:   Device{"Baxter", "PrisMax", "2.9"},
			advisory: "ICSMA-20-170-02", status: StatusKnownAffected, score: 7.6},
		{name: "range written as two bounds",
			device:   Device{"BD", "Alaris Infusion Central", "1.3"},
			advisory: "ICSMA-23-047-01", status: StatusKnownAffected, score: 7.3},
		{name: "below the range written as two bounds",
			device: Device{"BD", "Alaris Infusion Central", "1.0"},
			absent: []string{"ICSMA-23-047-01"}},
		{name: "two upper bounds for two regions",
			device:   Device{"B. Braun", "SpaceCom", "L70"},
			advisory: "ICSMA-20-296-02", status: StatusKnownAffected},
		{name: "model inside a range of models in the product name",
			device:   Device{"Philips", "IntelliVue MX450", "L"},
			advisory: "ICSMA-20-254-01", status: StatusKnownAffected,
			product: "IntelliVue patient monitor MX400-MX850 <=N"},
		{name: "model excluded by the product name needs review",
			device:   Device{"GE Healthcare", "LOGIQ 100 Pro", "1.0"},
			advisory: "ICSMA-20-049-02", status: StatusUndecidable, reason: "excludes"},
		{name: "shared product line and stated firmware version need review",
			device:   Device{"GE Healthcare", "Vivid E95", "BT05"},
			advisory: "ICSMA-20-343-01", status: StatusUndecidable,
			reason: `shares the product line "vivid"`},
		{name: "shared product line without a stated firmware version is ignored",
			device: Device{"GE Healthcare", "Vivid E95", "204"},
			absent: []string{"ICSMA-20-343-01"}},
		{name: "shared product line is ignored when another product names the device",
			device: Device{"BD", "Alaris 8015", "12.2"},
			absent: []string{"ICSMA-23-194-01"}},
		{name: "and below phrase covers earlier versions",
			device:   Device{"BD", "Alaris Gateway Workstation Alaris GS", "2.0"},
			advisory: "ICSMA-19-164-01", status: StatusKnownAffected, score: 10,
			product: "Alaris Gateway Workstation Alaris GS 2.3.6 and  below"},
		{name: "listed exact version is affected",
			device:   Device{"BD", "Alaris Gateway Workstation", "1.1.6"},
			advisory: "ICSMA-19-164-01", status: StatusKnownAffected},
		{name: "version with build words needs review for unlisted versions",
			device:   Device{"BD", "Alaris Gateway Workstation", "1.1.4"},
			advisory: "ICSMA-19-164-01", status: StatusUndecidable,
			reason: `cannot read version "1.3.1 Build 13"`},
		{name: "advisory of another vendor is ignored",
			device:  Device{"Baxter", "Alaris 8015", "9.19"},
			overall: StatusNotAffected},
		{name: "device without manufacturer needs review",
			device:  Device{"", "Alaris 8015", "9.19"},
			overall: StatusUndecidable},

		// The crafted advisory covers the statuses the real ones lack.
		{name: "vers range of known_affected",
			device:   Device{"Example Medical", "InfuPump 3000", "2.3"},
			advisory: "EXAMPLE-2025-0001", status: StatusKnownAffected, score: 8.1,
			cves: []string{"CVE-2025-0001"}},
		{name: "fixed version",
			device:   Device{"Example Medical", "InfuPump 3000", "2.4.1"},
			advisory: "EXAMPLE-2025-0001", status: StatusFixed},
		{name: "recommended version counts as fixed",
			device:   Device{"Example Medical", "InfuPump 3000", "2.5.0"},
			advisory: "EXAMPLE-2025-0001", status: StatusFixed},
		{name: "known_not_affected product",
			device:   Device{"Example Medical", "InfuPump 3000 Lite", "1.0"},
			advisory: "EXAMPLE-2025-0001", status: StatusNotAffected},
		{name: "not-affected claim about a longer product name is not applied",
			device: Device{"Example Medical", "InfuPump 3000", "1.0"},
			absent: []string{"EXAMPLE-2025-0001"}},
		{name: "first_affected up to first_fixed is affected",
			device:   Device{"Example Medical", "InfuPump 5000", "3.1"},
			advisory: "EXAMPLE-2025-0001", status: StatusKnownAffected, score: 6.5,
			cves: []string{"CVE-2025-0002"}},
		{name: "from first_fixed on is fixed",
			device:   Device{"Example Medical", "InfuPump 5000", "3.4"},
			advisory: "EXAMPLE-2025-0001", status: StatusFixed},
		{name: "before first_affected is not affected",
			device: Device{"Example Medical", "InfuPump 5000", "2.9"},
			absent: []string{"EXAMPLE-2025-0001"}},
		{name: "up to last_affected is affected",
			device:   Device{"Example Medical", "InfuPump 7000", "1.8"},
			advisory: "EXAMPLE-2025-0001", status: StatusKnownAffected},
		{name: "after last_affected is not affected",
			device: Device{"Example Medical", "InfuPump 7000", "2.0"},
			absent: []string{"EXAMPLE-2025-0001"}},
		{name: "under investigation needs review",
			device:   Device{"Example Medical", "VitalView Monitor", "1.0"},
			advisory: "EXAMPLE-2025-0001", status: StatusUndecidable, score: 5,
			reason: "under investigation"},
		{name: "platform of a relationship needs review for its component",
			device:   Device{"Example Medical", "InfuPump 9000", "3.0"},
			advisory: "EXAMPLE-2025-0001", status: StatusUndecidable, score: 9.8,
			reason: `only with "NetStack 5.2" (installed on)`},
		{name: "platform version outside the relationship is not affected",
			device: Device{"Example Medical", "InfuPump 9000", "4.0"},
			absent: []string{"EXAMPLE-2025-0001"}},
		{name: "component of a relationship needs review for its platform",
			device:   Device{"StackSoft", "NetStack", "5.2"},
			advisory: "EXAMPLE-2025-0001", status: StatusUndecidable,
			reason: `only when installed on "InfuPump 9000`},
		{name: "model number of a full product name needs review for its version",
			device:   Device{"Example Medical", "GW-12", "4.1"},
			advisory: "EXAMPLE-2025-0001", status: StatusUndecidable,
			reason: "without a separate version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Match(docs, tt.device)
			if tt.overall != "" && res.Status != tt.overall {
				t.Errorf("overall status = %s, want %s (findings %+v, reasons %q)",
					res.Status, tt.overall, res.Findings, res.Reasons)
			}
			for _, f := range res.Findings {
				if slices.Contains(tt.absent, f.AdvisoryID) {
					t.Errorf("unexpected finding %+v", f)
				}
			}
			if tt.advisory == "" {
				return
			}
			i := slices.IndexFunc(res.Findings, func(f Finding) bool {
				return f.AdvisoryID == tt.advisory
			})
			if i < 0 {
				t.Fatalf("no finding for %s; findings %+v", tt.advisory, res.Findings)
			}
			f := res.Findings[i]
			if f.Status != tt.status {
				t.Errorf("status = %s, want %s (reasons %q)", f.Status, tt.status, f.Reasons)
			}
			if tt.cves != nil && !slices.Equal(f.CVEs, tt.cves) {
				t.Errorf("CVEs = %q, want %q", f.CVEs, tt.cves)
			}
			if tt.score != 0 && f.MaxCVSS != tt.score {
				t.Errorf("MaxCVSS = %v, want %v", f.MaxCVSS, tt.score)
			}
			if r := strings.Join(f.Reasons, "\n"); !strings.Contains(r, tt.reason) {
				t.Errorf("reasons %q do not mention %q", f.Reasons, tt.reason)
			}
			if f.Status == StatusUndecidable && len(f.Reasons) == 0 {
				t.Error("undecidable finding without a reason")
			}
			if tt.product != "" && !slices.ContainsFunc(f.Products, func(p MatchedProduct) bool {
				return p.String() == tt.product
			}) {
				t.Errorf("products %q do not include %q", f.Products, tt.product)
			}
			if f.Title == "" || f.Path == "" {
				t.Errorf("finding lacks title or path: %+v", f)
			}
		})
	}
}

func TestMatchOrdersFindings(t *testing.T) {
	res := Match(loadTestdata(t), Device{"Medtronic", "", ""})
	if len(res.Findings) < 2 {
		t.Fatalf("want several findings, got %+v", res.Findings)
	}
	ok := slices.IsSortedFunc(res.Findings, func(a, b Finding) int {
		if a.Status.rank() != b.Status.rank() {
			return b.Status.rank() - a.Status.rank()
		}
		switch {
		case a.MaxCVSS > b.MaxCVSS:
			return -1
		case a.MaxCVSS < b.MaxCVSS:
			return 1
		}
		return strings.Compare(a.AdvisoryID, b.AdvisoryID)
	})
	if !ok {
		t.Errorf("findings are not ordered by status, score and id: %+v", res.Findings)
	}
}

func TestDocumentMatchWithoutManufacturer(t *testing.T) {
	doc, err := Parse(readTestdata(t, "crafted/statuses.json"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if f, ok := doc.Match(Device{Model: "InfuPump 3000", FirmwareVersion: "2.3"}); ok {
		t.Errorf("matched a device without manufacturer: %+v", f)
	}
}
