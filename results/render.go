package results

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// FormatNs formats nanoseconds with three significant digits and a unit: 850ns, 45.2µs, 12.3ms, 1.23s.
func FormatNs(ns int64) string {
	switch v := float64(ns); {
	case ns < 1000:
		return strconv.FormatInt(ns, 10) + "ns"
	case ns < 1e6:
		return sig3(v/1e3) + "µs"
	case ns < 1e9:
		return sig3(v/1e6) + "ms"
	default:
		return sig3(v/1e9) + "s"
	}
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// RenderOptions choose what a text rendering shows.
type RenderOptions struct {
	// Markdown renders tables as Markdown instead of box drawing.
	Markdown bool
}

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

// RenderText writes the result as run prints it: the phase table, then the summary, then replies
// and errors by phase.
func RenderText(w io.Writer, res *Result, o RenderOptions) error {
	if err := renderPhases(w, res, o); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := renderSummary(w, res, o); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return renderCodes(w, res, o)
}

func renderPhases(w io.Writer, res *Result, o RenderOptions) error {
	t := newTable(w, o)
	t.Header("phase", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean")
	for _, p := range res.Phases {
		if p.Count == 0 {
			continue
		}
		if err := t.Append(p.Name, strconv.FormatInt(p.Count, 10), FormatNs(p.Min), FormatNs(p.P50),
			FormatNs(p.P90), FormatNs(p.P99), FormatNs(p.P999), FormatNs(p.Max), FormatNs(int64(p.Mean))); err != nil {
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
	t.Header("messages", "delivered", "failed", "recipients", "msgs/s", "MB/s", "duration", "stopped by")
	if err := t.Append(strconv.FormatInt(c.Messages, 10), strconv.FormatInt(c.Delivered, 10),
		strconv.FormatInt(c.Failed, 10), strconv.FormatInt(c.Recipients, 10),
		strconv.FormatFloat(tp.MessagesPerS, 'f', 0, 64), strconv.FormatFloat(tp.BytesPerS/1e6, 'f', 2, 64),
		time.Duration(tp.Seconds*float64(time.Second)).Round(time.Millisecond).String(), res.StopReason); err != nil {
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
