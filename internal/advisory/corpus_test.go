package advisory

import (
	"cmp"
	"maps"
	"os"
	"slices"
	"testing"
)

// corpusDir holds the CISA medical advisories shared with the project,
// when they are present.
const corpusDir = "../../../shared/data/csaf-icsma"

// TestCorpus reads every advisory of the shared folder, shows that each
// one parses, and reports how many product entries have a version the
// matcher understands.
func TestCorpus(t *testing.T) {
	if _, err := os.Stat(corpusDir); err != nil {
		t.Skipf("advisory folder not available: %v", err)
	}
	docs, errs := LoadDir(corpusDir)
	for _, err := range errs {
		t.Errorf("load error: %v", err)
	}
	if len(docs) != 144 {
		t.Errorf("got %d documents, want 144", len(docs))
	}

	var decidable, undecidable, products, all, picky int
	problems := map[string]int{}
	for _, d := range docs {
		if len(d.Products) == 0 {
			t.Errorf("%s: no products", d.ID)
		}
		for _, p := range d.Problems {
			t.Errorf("%s: %s", d.ID, p)
		}
		for _, p := range d.Products {
			products++
			if msg := p.Constraint.Problem(); msg != "" {
				undecidable++
				problems[msg]++
				continue
			}
			decidable++
			switch {
			case p.Constraint.All():
				all++
			case p.Constraint.picky():
				picky++
			}
		}
	}
	t.Logf("%d documents, %d product entries: %d decidable, %d undecidable",
		len(docs), products, decidable, undecidable)
	t.Logf("of the decidable: %d cover all versions; %d are written without a dot or start "+
		"with letters, so only firmware written the same way is compared with them",
		all, picky)

	texts := slices.SortedFunc(maps.Keys(problems), func(a, b string) int {
		return cmp.Or(cmp.Compare(problems[b], problems[a]), cmp.Compare(a, b))
	})
	for _, msg := range texts[:min(10, len(texts))] {
		t.Logf("%3d × %s", problems[msg], msg)
	}
}

// picky reports whether some version of the constraint is dotless or
// starts with letters, so that only firmware written the same way can be
// compared with it.
func (c Constraint) picky() bool {
	for _, s := range c.spans {
		for _, t := range s {
			if t.v.lettered || (!t.v.dotted && !t.v.wildcard) {
				return true
			}
		}
	}
	return false
}
