package advisory

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("failed to read testdata: %v", err)
	}
	return data
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{name: "truncated JSON", data: readTestdata(t, "broken/truncated.json"),
			wantErr: "failed to decode CSAF document"},
		{name: "CVE id that breaks the CSAF pattern", data: readTestdata(t, "broken/bad-cve.json"),
			wantErr: "CVE-20-1"},
		{name: "document without tracking id", data: readTestdata(t, "broken/no-tracking-id.json"),
			wantErr: "no document.tracking.id"},
		{name: "JSON that is not a CSAF document", data: readTestdata(t, "broken/not-csaf.json"),
			wantErr: "no document section"},
		{name: "JSON array", data: []byte(`[]`), wantErr: "failed to decode CSAF document"},
		{name: "unknown branch category", data: []byte(`{"document": {"tracking": {"id": "X"}},
			"product_tree": {"branches": [{"category": "brand", "name": "x"}]}}`),
			wantErr: "failed to decode CSAF document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse(tt.data)
			if err == nil {
				t.Fatalf("Parse succeeded with %d products, want an error", len(doc.Products))
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseProductTree(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		id      string
		want    Product
		isRange bool
		// problem is a part of the constraint's problem; empty when the
		// version must parse cleanly.
		problem string
	}{
		{name: "vendor with trailing space is trimmed", file: "icsma-23-061-01.json",
			id: "CSAFPID-0001", want: Product{Vendor: "Medtronic", Name: "Micro Clinician",
				Version: "A51200"}},
		{name: "version range with bars", file: "icsma-20-343-01.json", id: "CSAFPID-00013",
			want:    Product{Vendor: "GE Healthcare", Name: "Vivid 7", Version: ">=BT02 | <= BT06"},
			isRange: true},
		{name: "vers all under product_version", file: "icsma-19-022-01.json", id: "CSAFPID-0003",
			want: Product{Vendor: "Dräger", Name: "Infinity Delta", Version: "vers:all/*"}},
		{name: "date as version keeps its problem", file: "icsma-24-249-01.json",
			id: "CSAFPID-0001", want: Product{Vendor: "Baxter", Name: "Baxter Connex Health Portal",
				Version: "<8/30/2024"}, isRange: true, problem: "<8/30/2024"},
		{name: "product without version branch covers all versions",
			file: "crafted/statuses.json", id: "VV",
			want: Product{Vendor: "Example Medical GmbH", Name: "VitalView Monitor"}},
		{name: "top-level full product name has no separate version",
			file: "crafted/statuses.json", id: "GW12",
			want: Product{Name: "Example Medical Gateway GW-12 firmware 4.1",
				ModelNumbers: []string{"GW-12"}},
			problem: "without a separate version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			p := doc.Product(tt.id)
			if p == nil {
				t.Fatalf("no product %q", tt.id)
			}
			if p.Vendor != tt.want.Vendor || p.Name != tt.want.Name || p.Version != tt.want.Version {
				t.Errorf("got vendor %q, name %q, version %q; want %q, %q, %q",
					p.Vendor, p.Name, p.Version, tt.want.Vendor, tt.want.Name, tt.want.Version)
			}
			if p.VersionRange != tt.isRange {
				t.Errorf("VersionRange = %v, want %v", p.VersionRange, tt.isRange)
			}
			if !slices.Equal(p.ModelNumbers, tt.want.ModelNumbers) {
				t.Errorf("ModelNumbers = %q, want %q", p.ModelNumbers, tt.want.ModelNumbers)
			}
			got := p.Constraint.Problem()
			if (tt.problem == "") != (got == "") || !strings.Contains(got, tt.problem) {
				t.Errorf("constraint problem = %q, want one mentioning %q", got, tt.problem)
			}
		})
	}
}

func TestParseRelationshipsAndStatuses(t *testing.T) {
	doc, err := Parse(readTestdata(t, "crafted/statuses.json"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if doc.ID != "EXAMPLE-2025-0001" {
		t.Errorf("ID = %q", doc.ID)
	}
	if len(doc.Problems) != 0 {
		t.Errorf("Problems = %q, want none", doc.Problems)
	}
	rel := doc.Product("NS52-ON-P9000")
	if rel == nil || rel.Relationship == nil {
		t.Fatalf("relationship product missing: %+v", rel)
	}
	want := Relationship{Category: "installed_on", Component: "NS52", Platform: "P9000"}
	if *rel.Relationship != want {
		t.Errorf("Relationship = %+v, want %+v", *rel.Relationship, want)
	}
	if len(doc.Vulnerabilities) != 3 {
		t.Fatalf("got %d vulnerabilities, want 3", len(doc.Vulnerabilities))
	}
	v := doc.Vulnerabilities[0]
	for cat, ids := range map[string][]string{
		statusKnownAffected:      {"P3000-AFF"},
		statusFixed:              {"P3000-FIX"},
		statusRecommended:        {"P3000-REC"},
		statusKnownNotAffected:   {"P3000L"},
		statusUnderInvestigation: {"VV"},
	} {
		if !slices.Equal(v.Status[cat], ids) {
			t.Errorf("%s = %q, want %q", cat, v.Status[cat], ids)
		}
	}
	if len(v.Scores) != 2 || v.Scores[0].Base != 8.1 {
		t.Errorf("Scores = %+v", v.Scores)
	}
}

func TestParseRecordsUnknownProductIDs(t *testing.T) {
	doc, err := Parse([]byte(`{"document": {"tracking": {"id": "X-1"}},
		"vulnerabilities": [{"cve": "CVE-2025-0009",
			"product_status": {"known_affected": ["NOPE"]}}]}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(doc.Problems) != 1 || !strings.Contains(doc.Problems[0], `"NOPE"`) {
		t.Errorf("Problems = %q, want one naming NOPE", doc.Problems)
	}
}

func TestLoadDir(t *testing.T) {
	docs, errs := LoadDir("testdata")

	real, _ := filepath.Glob("testdata/*.json")
	crafted, _ := filepath.Glob("testdata/crafted/*.json")
	if len(docs) != len(real)+len(crafted) {
		t.Errorf("got %d documents, want %d", len(docs), len(real)+len(crafted))
	}
	byPath := func(a, b *Document) int { return strings.Compare(a.Path, b.Path) }
	if !slices.IsSortedFunc(docs, byPath) {
		t.Error("documents are not sorted by path")
	}
	for _, d := range docs {
		if d.Path == "" || d.ID == "" {
			t.Errorf("document without path or id: %+v", d)
		}
	}

	broken, _ := filepath.Glob("testdata/broken/*.json")
	var failed []string
	for _, err := range errs {
		var le *LoadError
		if !errors.As(err, &le) {
			t.Fatalf("error %v is not a *LoadError", err)
		}
		failed = append(failed, le.Path)
	}
	slices.Sort(failed)
	if !slices.Equal(failed, broken) {
		t.Errorf("failed files = %q, want exactly the broken ones %q", failed, broken)
	}
}

func TestLoadDirMissingFolder(t *testing.T) {
	docs, errs := LoadDir(filepath.Join(t.TempDir(), "absent"))
	if len(docs) != 0 || len(errs) != 1 {
		t.Fatalf("got %d documents and errors %v, want one error", len(docs), errs)
	}
	if !errors.Is(errs[0], os.ErrNotExist) {
		t.Errorf("error %v does not wrap os.ErrNotExist", errs[0])
	}
}
