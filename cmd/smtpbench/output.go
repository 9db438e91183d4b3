package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/smtpbench/smtpbench/results"
)

// outputFlags are the rendering flags run and report share.
type outputFlags struct {
	percentiles string
	thresholds  stringList
	markdown    bool
}

func (o *outputFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.percentiles, "percentiles", "50,90,99,99.9", "percentile columns: a comma-separated `LIST`")
	fs.Var(&o.thresholds, "threshold", "fail (exit 3) unless `EXPR` holds, like 'p99(rcpt)<20ms', 'errors<0.1%', 'msgs/s>5000' (repeatable)")
	fs.BoolVar(&o.markdown, "markdown", false, "print the tables as Markdown")
}

// options parses the flags into render options, naming the flag of anything wrong.
func (o *outputFlags) options() (results.RenderOptions, error) {
	ro := results.RenderOptions{Markdown: o.markdown}
	ps, err := results.ParsePercentiles(o.percentiles)
	if err != nil {
		return ro, flagErrorf("percentiles", "%v", err)
	}
	ro.Percentiles = ps
	for _, s := range o.thresholds {
		t, err := results.ParseThreshold(s)
		if err != nil {
			return ro, flagErrorf("threshold", "%v", err)
		}
		ro.Thresholds = append(ro.Thresholds, t)
	}
	return ro, nil
}

// checkThresholds returns a thresholdsError when res breaches any.
func checkThresholds(w io.Writer, res *results.Result, ro results.RenderOptions) error {
	if len(ro.Thresholds) == 0 {
		return nil
	}
	n := 0
	for _, r := range results.Evaluate(res, ro.Thresholds) {
		if !r.Pass {
			n++
		}
	}
	if n > 0 {
		fmt.Fprintf(w, "\n%d of %d thresholds breached\n", n, len(ro.Thresholds))
		return thresholdsError{n}
	}
	return nil
}
