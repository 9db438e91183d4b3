package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/smtpbench/smtpbench/results"
)

const compareHelp = `
Compare saved results side by side, the first as the baseline: throughput, failures, and for each
phase the chosen percentiles and the max, with the change in percent.

  smtpbench compare before.json after.json [other.json...]
  smtpbench compare --base a1.json,a2.json,a3.json --new b1.json,b2.json,b3.json

With several runs per side, medians are compared and a change is marked "~" when the runs'
ranges overlap: the spread of the repeated runs does not support it. For benchstat's statistics,
use report --format benchstat.
`

func runCompare(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "compare", "compare [flags] BASE.json NEW.json... | --base LIST --new LIST", compareHelp)
	base := fs.String("base", "", "baseline runs: a comma-separated `LIST` of files")
	newer := fs.String("new", "", "new runs: a comma-separated `LIST` of files")
	pctList := fs.String("percentiles", "50,99", "percentiles to compare: a comma-separated `LIST`")
	markdown := fs.Bool("markdown", false, "print the table as Markdown")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	pcts, err := results.ParsePercentiles(*pctList)
	if err != nil {
		return flagErrorf("percentiles", "%v", err)
	}
	var labels []string
	var sides [][]string
	switch {
	case *base != "" || *newer != "":
		if *base == "" || *newer == "" {
			return usageError{fmt.Errorf("--base and --new go together")}
		}
		if len(files) > 0 {
			return usageError{fmt.Errorf("give files either with --base/--new or as arguments, not both")}
		}
		labels = []string{"base", "new"}
		sides = [][]string{splitList(*base), splitList(*newer)}
	case len(files) >= 2:
		for _, f := range files {
			labels = append(labels, strings.TrimSuffix(filepath.Base(f), ".json"))
			sides = append(sides, []string{f})
		}
	default:
		return usageError{fmt.Errorf("compare needs at least two result files")}
	}
	var loaded [][]*results.Result
	for _, side := range sides {
		var rs []*results.Result
		for _, f := range side {
			res, err := results.ReadFile(f)
			if err != nil {
				return err
			}
			rs = append(rs, res)
		}
		loaded = append(loaded, rs)
	}
	cmp, err := results.Compare(labels, loaded, pcts)
	if err != nil {
		return err
	}
	return results.RenderComparison(e.stdout, cmp, results.RenderOptions{Markdown: *markdown})
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
