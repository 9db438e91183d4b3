package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/smtpbench/smtpbench/loadgen"
	"github.com/smtpbench/smtpbench/results"
)

// progressPrinter shows a run's live figures on stderr: one line that updates in place on a
// terminal, one line per interval otherwise, JSON lines, or nothing.
type progressPrinter struct {
	w    io.Writer
	mode string // tty, lines, json
	last int    // length of the line on screen (tty)
}

// newProgress resolves --progress: auto picks tty when w is a terminal, lines otherwise.
func newProgress(w io.Writer, mode string) (*progressPrinter, error) {
	switch mode {
	case "off":
		return nil, nil
	case "auto":
		mode = "lines"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "tty"
		}
	case "tty", "lines", "json":
	default:
		return nil, fmt.Errorf("%q is not auto, tty, lines, json or off", mode)
	}
	return &progressPrinter{w: w, mode: mode}, nil
}

func (pp *progressPrinter) show(p loadgen.Progress) {
	if pp.mode == "json" {
		b, _ := json.Marshal(p)
		fmt.Fprintf(pp.w, "%s\n", b)
		return
	}
	line := formatProgress(p)
	if pp.mode == "tty" {
		pad := max(pp.last-len(line), 0)
		fmt.Fprintf(pp.w, "\r%s%s", line, strings.Repeat(" ", pad))
		pp.last = len(line)
		return
	}
	fmt.Fprintln(pp.w, line)
}

// done ends the updating line so what follows starts on a line of its own.
func (pp *progressPrinter) done() {
	if pp != nil && pp.mode == "tty" && pp.last > 0 {
		fmt.Fprintln(pp.w)
	}
}

func formatProgress(p loadgen.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6s", p.Elapsed.Round(time.Second))
	if eta := p.ETA(); eta > 0 {
		fmt.Fprintf(&b, " (%s left)", eta.Round(time.Second))
	}
	if p.Warmup {
		b.WriteString(" warm-up")
	}
	fmt.Fprintf(&b, "  %.0f msgs/s", p.Rate)
	if p.TargetRate > 0 {
		fmt.Fprintf(&b, " of %.0f", p.TargetRate)
	}
	fmt.Fprintf(&b, "  sent %d  sessions %d", p.Sent, p.Sessions)
	if p.TxnP50 > 0 {
		fmt.Fprintf(&b, "  txn p50 %s p99 %s", results.FormatNs(p.TxnP50), results.FormatNs(p.TxnP99))
	}
	fmt.Fprintf(&b, "  errors %d", p.Errors)
	if p.TargetRate > 0 || p.Late > 0 || p.Dropped > 0 {
		fmt.Fprintf(&b, "  late %d  dropped %d", p.Late, p.Dropped)
	}
	return b.String()
}
