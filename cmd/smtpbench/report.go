package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/smtpbench/smtpbench/results"
)

const reportHelp = `
Re-render saved result files (run --out). The text format is exactly what run printed. With
several files, each is rendered in turn; --format benchstat writes them as repeated samples of
the same benchmarks, for benchstat old.txt new.txt. --hgrm DIR writes each phase's percentile
distribution as DIR/<phase>.hgrm (HdrHistogram's format, milliseconds) for the HdrHistogram plotter.
--threshold checks the results and exits 3 when one is breached.
`

func runReport(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "report", "report [flags] FILE...", reportHelp)
	var out outputFlags
	out.register(fs)
	format := fs.String("format", "text", "`FORMAT`: text, markdown, csv, json or benchstat")
	hgrm := fs.String("hgrm", "", "write one .hgrm file per phase into `DIR` (one FILE only)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError{fmt.Errorf("no result FILE given")}
	}
	ro, err := out.options()
	if err != nil {
		return err
	}
	switch *format {
	case "text", "markdown", "csv", "json", "benchstat":
	default:
		return flagErrorf("format", "%q is not text, markdown, csv, json or benchstat", *format)
	}
	if *format == "markdown" {
		ro.Markdown = true
	}
	if *hgrm != "" && len(files) != 1 {
		return flagErrorf("hgrm", "give exactly one FILE with --hgrm, got %d", len(files))
	}
	var all []*results.Result
	for _, f := range files {
		res, err := results.ReadFile(f)
		if err != nil {
			return err
		}
		all = append(all, res)
	}
	if *hgrm != "" {
		return writeHgrms(e, *hgrm, all[0])
	}
	if *format == "csv" { // one table for every file
		if err := results.RenderCSV(e.stdout, all, ro); err != nil {
			return err
		}
	}
	breached := 0
	for i, res := range all {
		if i > 0 && *format != "benchstat" && *format != "csv" {
			fmt.Fprintln(e.stdout)
		}
		switch *format {
		case "text", "markdown":
			err = results.RenderText(e.stdout, res, ro)
		case "json":
			err = res.Encode(e.stdout)
		case "benchstat":
			err = results.RenderBenchstat(e.stdout, res, ro)
		}
		if err != nil {
			return err
		}
		// Count the thresholds breached, as run does, not the files that breach them.
		if *format == "text" || *format == "markdown" {
			var te thresholdsError
			if errors.As(checkThresholds(e.stdout, res, ro), &te) {
				breached += te.n
			}
		} else {
			for _, r := range results.Evaluate(res, ro.Thresholds) {
				if !r.Pass {
					breached++
				}
			}
		}
	}
	if breached > 0 {
		return thresholdsError{breached}
	}
	return nil
}

// writeHgrms writes DIR/<phase>.hgrm for every phase with samples, each atomically.
func writeHgrms(e *env, dir string, res *results.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return flagErrorf("hgrm", "%v", err)
	}
	for i := range res.Phases {
		p := &res.Phases[i]
		if p.Count == 0 {
			continue
		}
		h, err := p.Histogram()
		if err != nil {
			return err
		}
		path := filepath.Join(dir, p.Name+".hgrm")
		if err := results.WriteFileAtomic(path, func(w io.Writer) error { return results.WriteHgrm(w, h) }); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s\n", path)
	}
	return nil
}
