package results

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// FormatNs formats nanoseconds with three significant digits and a unit: 850ns, 45.2µs, 12.3ms, 1.23s.
func FormatNs(ns int64) string {
	// The bounds are where rounding to three digits reaches the next unit (999.5µs is 1.00ms).
	switch v := float64(ns); {
	case ns < 1000:
		return strconv.FormatInt(ns, 10) + "ns"
	case v < 999.5e3:
		return sig3(v/1e3) + "µs"
	case v < 999.5e6:
		return sig3(v/1e6) + "ms"
	default:
		return sig3(v/1e9) + "s"
	}
}

// sig3 formats v (at least 0.9995) with three significant digits, choosing the decimals by what v
// rounds to: 9.996 is "10.0", not "10.00".
func sig3(v float64) string {
	switch {
	case v >= 99.95:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 9.995:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// DefaultPercentiles are the percentile columns of the phase table.
var DefaultPercentiles = []float64{50, 90, 99, 99.9}

// RenderOptions choose what a rendering shows.
type RenderOptions struct {
	// Markdown renders the text tables as Markdown instead of box drawing.
	Markdown bool
	// Percentiles are the phase table's percentile columns; nil means DefaultPercentiles.
	Percentiles []float64
	// Thresholds, when set, are evaluated and shown after the summary.
	Thresholds []Threshold
}

func (o RenderOptions) percentiles() []float64 {
	if len(o.Percentiles) == 0 {
		return DefaultPercentiles
	}
	return o.Percentiles
}

// ParsePercentiles parses a comma-separated list such as "50,90,99,99.9,99.99".
func ParsePercentiles(s string) ([]float64, error) {
	var ps []float64
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(f), "p"))
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !(v > 0 && v <= 100) { // NaN too
			return nil, fmt.Errorf("%q is not a percentile between 0 and 100", f)
		}
		ps = append(ps, v)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("no percentiles in %q", s)
	}
	return ps, nil
}

// PercentileLabel is a column name: "p50", "p99.9".
func PercentileLabel(p float64) string { return "p" + strconv.FormatFloat(p, 'f', -1, 64) }

func newTable(w io.Writer, o RenderOptions) *tablewriter.Table {
	var r tw.Renderer = renderer.NewBlueprint()
	if o.Markdown {
		r = renderer.NewMarkdown()
	}
	return tablewriter.NewTable(w,
		tablewriter.WithRenderer(r),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignment(tw.AlignRight),
		tablewriter.WithHeaderAlignment(tw.AlignRight),
	)
}

// phaseRow is one phase's values for the tables and CSV.
type phaseRow struct {
	name   string
	count  int64
	min    int64
	pcts   []int64
	max    int64
	mean   float64
	hasHis bool
}

// rows decodes each phase's histogram and reads the chosen percentiles from it.
func rows(res *Result, pcts []float64) ([]phaseRow, error) {
	var out []phaseRow
	for i := range res.Phases {
		p := &res.Phases[i]
		if p.Count == 0 {
			continue
		}
		row := phaseRow{name: p.Name, count: p.Count, min: p.Min, max: p.Max, mean: p.Mean}
		if p.Hist == "" { // a summary without its histogram: only the stored percentiles exist
			row.pcts = storedPercentiles(p, pcts)
			out = append(out, row)
			continue
		}
		h, err := p.Histogram()
		if err != nil {
			return nil, err
		}
		if h.TotalCount() > 0 {
			row.pcts = h.ValueAtPercentilesSlice(pcts)
			row.hasHis = true
		} else {
			row.pcts = make([]int64, len(pcts))
		}
		out = append(out, row)
	}
	return out, nil
}

// storedPercentiles reads the chosen percentiles from a phase's summary fields; one it does not
// store reads as 0.
func storedPercentiles(p *PhaseResult, pcts []float64) []int64 {
	out := make([]int64, len(pcts))
	for i, q := range pcts {
		switch q {
		case 50:
			out[i] = p.P50
		case 90:
			out[i] = p.P90
		case 99:
			out[i] = p.P99
		case 99.9:
			out[i] = p.P999
		case 99.99:
			out[i] = p.P9999
		}
	}
	return out
}

// Describe is the one-line description of a run that heads its rendering.
func Describe(res *Result) string {
	s := "smtpbench run against " + res.Target
	if res.Description != "" {
		s += ": " + res.Description
	}
	return s
}

// RenderText writes the result as run prints it: a description line, the phase table, notes, the
// summary, thresholds when asked for, and replies and errors by phase.
func RenderText(w io.Writer, res *Result, o RenderOptions) error {
	fmt.Fprintf(w, "%s\n\n", Describe(res))
	if err := renderPhases(w, res, o); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := renderSummary(w, res, o); err != nil {
		return err
	}
	if len(o.Thresholds) > 0 {
		fmt.Fprintln(w)
		if err := renderThresholds(w, Evaluate(res, o.Thresholds), o); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	return renderCodes(w, res, o)
}

// RenderPhases writes only the phase table (with res's notes).
func RenderPhases(w io.Writer, res *Result, o RenderOptions) error { return renderPhases(w, res, o) }

func renderPhases(w io.Writer, res *Result, o RenderOptions) error {
	pcts := o.percentiles()
	rs, err := rows(res, pcts)
	if err != nil {
		return err
	}
	t := newTable(w, o)
	header := []any{"phase", "count", "min"}
	for _, p := range pcts {
		header = append(header, PercentileLabel(p))
	}
	t.Header(append(header, "max", "mean")...)
	for _, r := range rs {
		cells := []any{r.name, strconv.FormatInt(r.count, 10), FormatNs(r.min)}
		for _, v := range r.pcts {
			cells = append(cells, FormatNs(v))
		}
		if err := t.Append(append(cells, FormatNs(r.max), FormatNs(int64(r.mean)))...); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func renderSummary(w io.Writer, res *Result, o RenderOptions) error {
	c := res.Totals
	tp := res.Throughput
	t := newTable(w, o)
	header := []any{"messages", "delivered", "failed"}
	row := []any{strconv.FormatInt(c.Messages, 10), strconv.FormatInt(c.Delivered, 10), strconv.FormatInt(c.Failed, 10)}
	if c.Retries > 0 || c.Deferred > 0 { // only runs with --retry have these
		header = append(header, "retries", "deferred")
		row = append(row, strconv.FormatInt(c.Retries, 10), strconv.FormatInt(c.Deferred, 10))
	}
	header = append(header, "recipients")
	row = append(row, strconv.FormatInt(c.Recipients, 10))
	if tp.TargetPerS > 0 { // the open model: what was asked against what was achieved
		header = append(header, "late", "dropped", "target msgs/s")
		row = append(row, strconv.FormatInt(c.Late, 10), strconv.FormatInt(c.Dropped, 10),
			strconv.FormatFloat(tp.TargetPerS, 'f', 0, 64))
	}
	t.Header(append(header, "msgs/s", "MB/s", "duration", "stopped by")...)
	row = append(row, strconv.FormatFloat(tp.MessagesPerS, 'f', 0, 64), strconv.FormatFloat(tp.BytesPerS/1e6, 'f', 2, 64),
		time.Duration(tp.Seconds*float64(time.Second)).Round(time.Millisecond).String(), res.StopReason)
	if err := t.Append(row...); err != nil {
		return err
	}
	return t.Render()
}

// renderCodes lists the replies and errors of each phase on one line each.
func renderCodes(w io.Writer, res *Result, o RenderOptions) error {
	t := newTable(w, o)
	t.Header("phase", "replies", "errors")
	for _, p := range res.Phases {
		if len(p.Replies) == 0 && len(p.Errors) == 0 {
			continue
		}
		var rs, es []string
		for _, r := range p.Replies {
			code := strconv.Itoa(int(r.Code))
			if r.Enhanced != "" {
				code += " " + r.Enhanced
			}
			rs = append(rs, code+": "+strconv.FormatInt(r.Count, 10))
		}
		for _, e := range p.Errors {
			es = append(es, e.Reason+": "+strconv.FormatInt(e.Count, 10))
		}
		if err := t.Append(p.Name, strings.Join(rs, ", "), strings.Join(es, ", ")); err != nil {
			return err
		}
	}
	return t.Render()
}

// RenderCSV writes one table for one or more results: a header row, then one row per phase per
// result — the run's id, the phase, its count, min, the percentiles, max and mean, in nanoseconds.
func RenderCSV(w io.Writer, all []*Result, o RenderOptions) error {
	pcts := o.percentiles()
	cw := csv.NewWriter(w)
	header := []string{"run", "phase", "count", "min_ns"}
	for _, p := range pcts {
		header = append(header, PercentileLabel(p)+"_ns")
	}
	cw.Write(append(header, "max_ns", "mean_ns"))
	for _, res := range all {
		rs, err := rows(res, pcts)
		if err != nil {
			return err
		}
		for _, r := range rs {
			rec := []string{res.RunID, r.name, strconv.FormatInt(r.count, 10), strconv.FormatInt(r.min, 10)}
			for _, v := range r.pcts {
				rec = append(rec, strconv.FormatInt(v, 10))
			}
			cw.Write(append(rec, strconv.FormatInt(r.max, 10), strconv.FormatFloat(r.mean, 'f', 0, 64)))
		}
	}
	cw.Flush()
	return cw.Error()
}

// RenderBenchstat writes Go benchmark lines, one benchmark per phase plus one for throughput, so
// `benchstat old.txt new.txt` compares runs with its statistics. Several results written one after
// the other are several samples of the same benchmarks.
func RenderBenchstat(w io.Writer, res *Result, o RenderOptions) error {
	pcts := o.percentiles()
	rs, err := rows(res, pcts)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "goos: %s\ngoarch: %s\npkg: smtpbench\n", res.Host.OS, res.Host.Arch)
	for _, r := range rs {
		fmt.Fprintf(w, "BenchmarkSMTP/phase=%s %d", r.name, r.count)
		for i, v := range r.pcts {
			fmt.Fprintf(w, " %d %s-ns", v, PercentileLabel(pcts[i]))
		}
		fmt.Fprintf(w, " %d max-ns %.0f mean-ns\n", r.max, r.mean)
	}
	tp := res.Throughput
	fmt.Fprintf(w, "BenchmarkSMTP/throughput %d %.2f msgs/s %.4f MB/s %.4f failed-%%\n",
		max(res.Totals.Messages, 1), tp.MessagesPerS, tp.BytesPerS/1e6, failedPercent(res))
	return nil
}

func failedPercent(res *Result) float64 {
	if res.Totals.Messages == 0 {
		return 0
	}
	return 100 * float64(res.Totals.Failed) / float64(res.Totals.Messages)
}

// WriteHgrm writes a histogram's percentile distribution in the .hgrm format of HdrHistogram's
// PercentilesPrint, with values in milliseconds, as the HdrHistogram plotter reads it.
func WriteHgrm(w io.Writer, h *hdrhistogram.Histogram) error {
	_, err := h.PercentilesPrint(w, 5, 1e6)
	return err
}
