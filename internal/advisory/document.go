package advisory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gocsaf/csaf/v3/csaf"
)

// The product_status categories of CSAF 2.0.
const (
	statusKnownAffected      = "known_affected"
	statusFirstAffected      = "first_affected"
	statusLastAffected       = "last_affected"
	statusFixed              = "fixed"
	statusFirstFixed         = "first_fixed"
	statusRecommended        = "recommended"
	statusKnownNotAffected   = "known_not_affected"
	statusUnderInvestigation = "under_investigation"
)

// Document is one advisory, reduced to what matching needs.
type Document struct {
	// Path is the file the advisory was read from; empty for Parse.
	Path string
	// ID is document.tracking.id, such as "ICSMA-19-164-01".
	ID string
	// Title is document.title.
	Title string
	// Products holds one entry per product_id of the product tree.
	Products []*Product
	// Vulnerabilities are the advisory's vulnerabilities in order.
	Vulnerabilities []Vulnerability
	// Problems lists defects that do not stop matching, such as a
	// product_status naming a product_id the tree does not define.
	Problems []string

	byID map[string]*Product
}

// Product is one product_id of an advisory with its vendor, product name
// and version text, collected from the branches above it.
type Product struct {
	// ID is the product_id.
	ID string
	// FullName is full_product_name.name.
	FullName string
	// Vendor is the name of the nearest vendor branch, trimmed; empty when
	// the product is not under a vendor branch.
	Vendor string
	// Name is the product_name branch (or product_family, or the full
	// name when neither exists).
	Name string
	// Version is the product_version or product_version_range text, with
	// any service_pack or patch_level branch appended.
	Version string
	// VersionRange is set when Version came from a product_version_range.
	VersionRange bool
	// ModelNumbers are product_identification_helper.model_numbers.
	ModelNumbers []string
	// Relationship is set for products that a relationship defines.
	Relationship *Relationship
	// Constraint is Version, parsed.
	Constraint Constraint

	vendor  [][]string
	index   nameIndex
	exclude string
}

// Relationship ties a component to the product it belongs to.
type Relationship struct {
	// Category is the relationship category, such as "installed_on".
	Category string
	// Component is product_reference, Platform relates_to_product_reference.
	Component, Platform string
}

// Vulnerability is one entry of the vulnerabilities list.
type Vulnerability struct {
	// CVE is the CVE id; empty when the vulnerability has none.
	CVE string
	// Title is the vulnerability's title, if any.
	Title string
	// Status maps a product_status category (known_affected, fixed, ...)
	// to the product_ids listed under it.
	Status map[string][]string
	// Scores are the CVSS v3 base scores with the products they apply to.
	Scores []Score
}

// Score is one CVSS v3 base score and the products it is given for.
type Score struct {
	Base     float64
	Products []string
}

// Product returns the product with the given product_id, or nil.
func (d *Document) Product(id string) *Product { return d.byID[id] }

// LoadError reports an advisory file that could not be read.
type LoadError struct {
	Path string
	Err  error
}

// Error says which file failed and why.
func (e *LoadError) Error() string {
	return fmt.Sprintf("failed to load advisory %s: %v", e.Path, e.Err)
}

// Unwrap returns the underlying error.
func (e *LoadError) Unwrap() error { return e.Err }

// LoadDir reads every .json file under dir, recursively, as a CSAF 2.0
// advisory. Documents come back sorted by path. Every file that cannot be
// read or parsed is reported as a *LoadError; no file is skipped silently.
func LoadDir(dir string) ([]*Document, []error) {
	var docs []*Document
	var errs []error
	walkErr := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, &LoadError{Path: path, Err: err})
			if e != nil && e.IsDir() && path != dir {
				return fs.SkipDir
			}
			return nil
		}
		if e.IsDir() || !strings.EqualFold(filepath.Ext(path), ".json") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &LoadError{Path: path, Err: err})
			return nil
		}
		doc, err := Parse(data)
		if err != nil {
			errs = append(errs, &LoadError{Path: path, Err: err})
			return nil
		}
		doc.Path = path
		docs = append(docs, doc)
		return nil
	})
	if walkErr != nil {
		errs = append(errs, &LoadError{Path: dir, Err: walkErr})
	}
	slices.SortFunc(docs, func(a, b *Document) int { return strings.Compare(a.Path, b.Path) })
	return docs, errs
}

// Parse reads one CSAF 2.0 advisory. It fails when the JSON does not fit
// the CSAF model (the model rejects values that break the schema's
// patterns, such as a malformed CVE id) or when document.tracking.id is
// missing; it does not enforce the rest of the schema.
func Parse(data []byte) (*Document, error) {
	var adv csaf.Advisory
	if err := json.Unmarshal(data, &adv); err != nil {
		return nil, fmt.Errorf("failed to decode CSAF document: %w", err)
	}
	if adv.Document == nil {
		return nil, errors.New("failed to read CSAF document: no document section")
	}
	doc := &Document{byID: map[string]*Product{}}
	if t := adv.Document.Tracking; t != nil && t.ID != nil {
		doc.ID = strings.TrimSpace(string(*t.ID))
	}
	if doc.ID == "" {
		return nil, errors.New("failed to read CSAF document: no document.tracking.id")
	}
	doc.Title = deref(adv.Document.Title)

	if pt := adv.ProductTree; pt != nil {
		doc.walkBranches(pt.Branches, branchContext{})
		if pt.FullProductNames != nil {
			for _, fpn := range *pt.FullProductNames {
				doc.addProduct(fpn, branchContext{}, true)
			}
		}
		if pt.RelationShips != nil {
			for _, r := range *pt.RelationShips {
				doc.addRelationship(r)
			}
		}
	}
	for _, v := range adv.Vulnerabilities {
		if v != nil {
			doc.addVulnerability(v)
		}
	}
	return doc, nil
}

// branchContext carries the names collected on the way down the tree.
type branchContext struct {
	vendor, family, name, version string
	isRange                       bool
}

// walkBranches collects a product for every branch that carries one.
func (d *Document) walkBranches(bs csaf.Branches, ctx branchContext) {
	for _, b := range bs {
		if b == nil {
			continue
		}
		c := ctx
		name := strings.TrimSpace(deref(b.Name))
		cat := ""
		if b.Category != nil {
			cat = string(*b.Category)
		}
		switch cat {
		case "vendor":
			c.vendor = name
		case "product_family":
			c.family = strings.TrimSpace(c.family + " " + name)
		case "product_name":
			c.name = name
		case "product_version":
			c.version, c.isRange = name, false
		case "product_version_range":
			c.version, c.isRange = name, true
		case "service_pack", "patch_level":
			c.version = strings.TrimSpace(c.version + " " + name)
		}
		if b.Product != nil {
			d.addProduct(b.Product, c, false)
		}
		d.walkBranches(b.Branches, c)
	}
}

// addProduct records one full_product_name. Products from branches
// without a version branch cover every version; top-level
// full_product_names have no separate version, so their version is
// unknown.
func (d *Document) addProduct(fpn *csaf.FullProductName, c branchContext, topLevel bool) *Product {
	if fpn == nil || fpn.ProductID == nil {
		d.Problems = append(d.Problems, "a product has no product_id")
		return nil
	}
	p := &Product{
		ID:           string(*fpn.ProductID),
		FullName:     strings.TrimSpace(deref(fpn.Name)),
		Vendor:       c.vendor,
		Name:         c.name,
		Version:      c.version,
		VersionRange: c.isRange,
	}
	if p.Name == "" {
		p.Name = c.family
	}
	if p.Name == "" {
		p.Name = p.FullName
	}
	if h := fpn.ProductIdentificationHelper; h != nil {
		for _, m := range h.ModelNumbers {
			if m != nil && strings.TrimSpace(*m) != "" {
				p.ModelNumbers = append(p.ModelNumbers, strings.TrimSpace(*m))
			}
		}
	}
	switch {
	case topLevel:
		p.Constraint = unknownConstraint(fmt.Sprintf(
			"the advisory names %q without a separate version", p.FullName))
	case c.version == "":
		p.Constraint = AllVersions()
	default:
		p.Constraint = ParseConstraint(c.version)
	}
	p.prepare()
	if _, dup := d.byID[p.ID]; dup {
		d.Problems = append(d.Problems, fmt.Sprintf("product_id %q is defined twice", p.ID))
		return nil
	}
	d.byID[p.ID] = p
	d.Products = append(d.Products, p)
	return p
}

// prepare computes the normalised names used for matching.
func (p *Product) prepare() {
	if p.Vendor != "" {
		p.vendor = vendorAliases(p.Vendor)
	}
	name := p.Name
	if loc := exclusionSplit.FindStringIndex(name); loc != nil {
		name, p.exclude = name[:loc[0]], strings.TrimSpace(name[loc[1]:])
	}
	p.index = newNameIndex(name, p.vendor)
}

// addRelationship records the product a relationship defines.
func (d *Document) addRelationship(r *csaf.Relationship) {
	if r == nil || r.FullProductName == nil {
		d.Problems = append(d.Problems, "a relationship has no full_product_name")
		return
	}
	p := d.addProduct(r.FullProductName, branchContext{}, true)
	if p == nil {
		return
	}
	rel := &Relationship{}
	if r.Category != nil {
		rel.Category = string(*r.Category)
	}
	if r.ProductReference != nil {
		rel.Component = string(*r.ProductReference)
	}
	if r.RelatesToProductReference != nil {
		rel.Platform = string(*r.RelatesToProductReference)
	}
	p.Relationship = rel
}

// addVulnerability records one vulnerability's statuses and scores.
func (d *Document) addVulnerability(v *csaf.Vulnerability) {
	out := Vulnerability{Title: deref(v.Title), Status: map[string][]string{}}
	if v.CVE != nil {
		out.CVE = string(*v.CVE)
	}
	if ps := v.ProductStatus; ps != nil {
		lists := []struct {
			cat  string
			list *csaf.Products
		}{
			{statusKnownAffected, ps.KnownAffected},
			{statusFirstAffected, ps.FirstAffected},
			{statusLastAffected, ps.LastAffected},
			{statusFixed, ps.Fixed},
			{statusFirstFixed, ps.FirstFixed},
			{statusRecommended, ps.Recommended},
			{statusKnownNotAffected, ps.KnownNotAffected},
			{statusUnderInvestigation, ps.UnderInvestigation},
		}
		for _, l := range lists {
			ids := productIDs(l.list)
			for _, id := range ids {
				if d.byID[id] == nil {
					d.Problems = append(d.Problems, fmt.Sprintf(
						"%s of %s names unknown product_id %q", l.cat, vulnName(out), id))
				}
			}
			if len(ids) > 0 {
				out.Status[l.cat] = ids
			}
		}
	}
	for _, s := range v.Scores {
		if s == nil || s.CVSS3 == nil || s.CVSS3.BaseScore == nil {
			continue
		}
		out.Scores = append(out.Scores, Score{
			Base:     *s.CVSS3.BaseScore,
			Products: productIDs(s.Products),
		})
	}
	d.Vulnerabilities = append(d.Vulnerabilities, out)
}

// vulnName names a vulnerability in messages.
func vulnName(v Vulnerability) string {
	if v.CVE != "" {
		return v.CVE
	}
	if v.Title != "" {
		return fmt.Sprintf("vulnerability %q", v.Title)
	}
	return "a vulnerability"
}

// productIDs returns the ids of a product list.
func productIDs(list *csaf.Products) []string {
	if list == nil {
		return nil
	}
	var ids []string
	for _, id := range *list {
		if id != nil {
			ids = append(ids, string(*id))
		}
	}
	return ids
}

// deref returns the string s points to, or "" for nil.
func deref[T ~string](s *T) string {
	if s == nil {
		return ""
	}
	return string(*s)
}
