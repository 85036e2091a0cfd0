// Command advisories checks MedicalDevice manifests against a folder of
// CSAF 2.0 security advisories and prints the devices that are affected
// or need review.
//
//	go run ./cmd/advisories --advisories DIR --devices FILE_OR_DIR
//
// It exits 0 when everything could be read, 1 when an advisory or a
// manifest could not be read (the table still shows what was), and 2 on
// bad usage. It only reads and prints; package advisory decides.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/medinaii/iomt-operator/internal/advisory"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("advisories", flag.ContinueOnError)
	fs.SetOutput(stderr)
	advDir := fs.String("advisories", "",
		"folder of CSAF 2.0 advisories (*.json, searched recursively)")
	devPath := fs.String("devices", "", "MedicalDevice manifest, or folder of them (*.yaml, *.yml)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: advisories --advisories DIR --devices FILE_OR_DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *advDir == "" || *devPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}

	failed := false
	docs, errs := advisory.LoadDir(*advDir)
	for _, err := range errs {
		fmt.Fprintln(stderr, err)
		failed = true
	}
	devices, errs := loadDevices(*devPath)
	for _, err := range errs {
		fmt.Fprintln(stderr, err)
		failed = true
	}

	results := make([]deviceResult, 0, len(devices))
	for _, d := range devices {
		results = append(results, deviceResult{device: d, Result: advisory.Match(docs, d.Device)})
	}
	if err := report(stdout, results, len(docs)); err != nil {
		fmt.Fprintf(stderr, "failed to write the report: %v\n", err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

// deviceResult pairs a manifest with what the advisories say about it.
type deviceResult struct {
	device device
	advisory.Result
}

// report prints one row per affected or undecidable finding, the reasons
// for review, and a summary line.
func report(w io.Writer, results []deviceResult, advisories int) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tMANUFACTURER\tMODEL\tFIRMWARE\tSTATUS\tADVISORY\tSCORE\tCVES\tPRODUCT")
	var review []string
	affected, undecidable := 0, 0
	for _, r := range results {
		switch r.Status {
		case advisory.StatusKnownAffected:
			affected++
		case advisory.StatusUndecidable:
			undecidable++
		}
		d := r.device
		row := func(status advisory.Status, id, score, cves, product string) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.name(),
				orDash(d.Manufacturer), orDash(d.Model), orDash(d.FirmwareVersion),
				status, id, score, cves, product)
		}
		for _, reason := range r.Reasons {
			row(r.Status, "-", "-", "-", "-")
			review = append(review, fmt.Sprintf("%s: %s", d.name(), reason))
		}
		for _, f := range r.Findings {
			if f.Status != advisory.StatusKnownAffected && f.Status != advisory.StatusUndecidable {
				continue
			}
			row(f.Status, f.AdvisoryID, score(f.MaxCVSS), shorten(f.CVEs, 3), products(f.Products))
			for _, reason := range f.Reasons {
				review = append(review, fmt.Sprintf("%s %s: %s", d.name(), f.AdvisoryID, reason))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("failed to write the table: %w", err)
	}
	if len(review) > 0 {
		fmt.Fprintln(w, "\nNeeds review:")
		for _, line := range review {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	_, err := fmt.Fprintf(w, "\n%s checked against %s: %d affected, %d to review, "+
		"%d with no known affected advisory\n", plural(len(results), "device"),
		plural(advisories, "advisory"), affected, undecidable, len(results)-affected-undecidable)
	if err != nil {
		return fmt.Errorf("failed to write the summary: %w", err)
	}
	return nil
}

// plural writes a count with its noun.
func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "y"):
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// score writes a CVSS score, or a dash when there is none.
func score(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", s)
}

// shorten lists up to n items and counts the rest.
func shorten(items []string, n int) string {
	if len(items) == 0 {
		return "-"
	}
	if len(items) <= n {
		return strings.Join(items, ",")
	}
	return fmt.Sprintf("%s,+%d more", strings.Join(items[:n], ","), len(items)-n)
}

// products names the first matched product and counts the rest.
func products(ps []advisory.MatchedProduct) string {
	if len(ps) == 0 {
		return "-"
	}
	s := ps[0].String()
	if len(ps) > 1 {
		s += fmt.Sprintf(" (+%d more)", len(ps)-1)
	}
	return s
}

// orDash writes a dash for an empty value.
func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
