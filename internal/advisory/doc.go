// Package advisory matches medical devices against CSAF 2.0 security
// advisories.
//
// For a device described by manufacturer, model and firmware version it
// answers, per advisory and overall, one of four statuses: KnownAffected,
// Fixed, NotAffected, or Undecidable, which means a person has to review
// the advisory. The package never reads the network or the cluster; it
// turns documents and a device into findings.
//
// # Reading advisories
//
// Parse and LoadDir decode documents with the CSAF model of
// github.com/gocsaf/csaf/v3. That model already rejects values that break
// the schema's patterns (a malformed CVE id, an unknown branch category);
// beyond that only document.tracking.id is required, because an
// incomplete publisher block should not hide an affected pump. A file that
// cannot be read is reported as a *LoadError, never skipped.
//
// The product tree is walked down its branches: the nearest vendor branch
// gives the vendor, product_name (or product_family) the product, and
// product_version or product_version_range the version text; service_pack
// and patch_level branches are appended to that text. A product under a
// product_name with no version branch covers every version. Products listed
// only in full_product_names have no separate version, so a match on them
// is held for review. A product defined by a relationship (a component
// installed on a platform, say) is matched through its platform or its
// component; a manifest describes only one of the two, so the match is
// held for review unless the other half covers every version.
//
// # Matching names
//
// Names are compared as words: case, diacritics and punctuation are
// ignored, "&" reads "and", "+" reads "plus", and apostrophes join.
//
// A manufacturer matches an advisory vendor when one of their aliases
// equals the other, equals it without spaces, or is its leading words
// ("GE" and "GE Healthcare"). A vendor's aliases are its whole name, each
// bracketed abbreviation ("BD" in "Becton, Dickinson and Company (BD)"),
// and each party of a list ("Silex Technology and GE Healthcare"), all
// without trailing legal forms (Inc, Corp, Ltd, LLC, GmbH, AG, Co, Company,
// plc, S.A., N.V., Oy and the like). Words that describe a sector (Medical,
// Healthcare, Health, Technologies, International, Laboratories,
// Diagnostics, Systems and a few more) are also dropped from the end, but
// never the last remaining word: "GE Healthcare" matches "GE", "Change
// Healthcare" needs "Change", and "Smiths Medical" does not match "St. Jude
// Medical". German umlauts may be written out ("Draeger" is "Dräger"). A
// manufacturer that is a brand written at the start of the product name
// ("Welch Allyn Connex Spot Monitor" under the vendor "Hillrom") matches
// too. Names one letter apart ("Phillips" for "Philips") match only well
// enough to raise a review.
//
// A model matches a product name by containment of words, after leading
// vendor and brand words and the words model, series, family, version,
// the, and, of, for and with are set aside. A run of up to three words may
// match one word written together ("EC 40" and "EC40"), and a model number
// may fall inside a range or a slash list of the product name
// ("MX400-MX850", "MX800/700/600"). Five outcomes follow:
//
//   - exact: model and product name have the same words. The advisory
//     decides.
//   - within: every model word is in the product name, which adds words
//     but no number ("Spectrum IQ" in "Baxter Spectrum IQ LVP"). The
//     advisory decides, unless another product of it matches exactly.
//   - narrower: the product name adds a model number the model lacks
//     ("Alaris PC Unit Model 8015" for a device "Alaris PC Unit"), or adds
//     words while another product matches exactly. Only a review can
//     follow.
//   - family: every word of the product name is in the model, which says
//     more ("Alaris PC Unit" for "Alaris PC Unit 8015"). Only a review can
//     follow, and only when the advisory has no exact or within match.
//   - product line: neither holds the other, but the product name contains
//     the model's first word ("Alaris PC Unit" for "Alaris 8015"). Only a
//     review can follow, only when the advisory has no closer match, and
//     only when the firmware lies in versions the advisory states (not in
//     "all versions"), since a shared line word alone says little.
//
// A product name that lists exclusions ("LOGIQ, not including LOGIQ 100
// Pro") raises a review for a model that may be the excluded one. A device
// without a model matches nothing decisively: every product of its vendor
// is held for review. A device without a manufacturer matches nothing and
// is Undecidable as a whole.
//
// # Reading versions
//
// ParseConstraint reads vers expressions ("vers:generic/>=1.0|<2.0",
// "vers:all/*", with != and sorted bounds as the vers specification
// describes), the operators <, <=, >, >= and =, alternatives joined by "|",
// wildcards ("9.x", "<= 12.2.x.x"), "*", "all versions", and the phrases
// "X and below", "X and later" and "prior to X". In a "|" list a lower
// bound directly followed by an upper bound forms one range, so
// ">= 1.1 | <= 1.3.2" is a range and "5.0|5.1" a list.
//
// Versions are compared segment by segment: runs of digits as numbers,
// runs of letters alphabetically, letters before digits; a missing
// segment equals zero and comes before letters, so "1.0" = "1.0.0" and
// "05b" follows "05". A leading "v" or "r" before a digit is ignored
// ("v22D28", "R2.1.3"). Two versions are ordered only when they are
// written alike: both start with letters or both with a digit, and both
// contain a dot or neither does. A dotless "3120" or "MMT-1710" is as
// likely a model or part number as a release, so firmware "3.1" against it
// is Unknown rather than a mismatch.
//
// Everything else is kept as a problem that names the exact text: dates
// ("<8/30/2024", "< august 28"), prose, words after a version ("1.3.1
// Build 13"), and any text with brackets, since a bracket usually
// constrains something other than the firmware ("9.x (with Wireless
// Battery Modules >= 22D19 | <= v22D28)"). A problem makes the verdict
// Unknown, never a mismatch. The one exception is a list of plain versions
// with an unreadable member ("HD 16 | HD23"): its readable members can
// still prove a match, but nothing else.
//
// # Deciding
//
// known_affected, first_affected and last_affected lead to KnownAffected;
// fixed, first_fixed and recommended to Fixed; known_not_affected to
// NotAffected; under_investigation to a review. A first_affected version
// reaches up to the next first_fixed version of the same product in the
// same vulnerability, a last_affected one down to its first_affected
// version, and a first_fixed version covers everything after it.
//
// An Unknown version verdict, a near vendor, or a narrower, family,
// product-line or excluded match turns KnownAffected and
// under-investigation entries into Undecidable with the reasons, and
// drops Fixed and NotAffected entries, which cannot hide a risk. A
// firmware version the device does not give is Undecidable, except
// against a constraint that covers every version.
//
// Per advisory the finding takes the most serious status among its
// vulnerabilities (KnownAffected, then Undecidable, Fixed, NotAffected),
// with the CVEs of the vulnerabilities at that status and their highest
// CVSS v3 base score for the matched products (or for the vulnerability,
// when no score names them and the finding is KnownAffected or
// Undecidable). The device's status is the most serious of its findings,
// NotAffected when there are none.
//
// # Limits
//
// The matcher knows no corporate history: a device listed under a former
// owner's name matches only where a name or brand says so, and nothing is
// matched across unrelated vendors (an advisory that files a product under
// the wrong vendor is missed). Product names that share no words with the
// model, or only a first word together with "all versions", are missed
// too. Words are compared as sets, so word order is ignored and a model
// can match a product whose name holds the same words for another reason. Version
// schemes are not known per vendor; every scheme, vers ones included, is
// compared with the same segment rules. CVSS v2 and v4 scores are ignored.
// CPE and PURL identifiers are not used; only model_numbers of the
// product identification helper are.
package advisory
