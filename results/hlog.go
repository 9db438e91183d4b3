package results

import (
	"fmt"
	"io"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Hlog writes an HdrHistogram interval log (format 1.3): one histogram per phase per interval,
// tagged with the phase's name ("Tag=rcpt"), readable by HdrHistogram's log tools and by
// hdrhistogram-go's HistogramLogReader. Values are in nanoseconds.
type Hlog struct {
	out   io.Writer
	base  int64 // the BaseTime, in Unix milliseconds
	start time.Time
}

// NewHlog starts a log for a run that started at start, writing its header.
func NewHlog(w io.Writer, start time.Time) (*Hlog, error) {
	lw := hdrhistogram.NewHistogramLogWriter(w)
	l := &Hlog{out: w, start: start}
	if err := lw.OutputLogFormatVersion(); err != nil {
		return nil, err
	}
	if err := lw.OutputComment("smtpbench interval log: per-phase latencies in nanoseconds, tagged by phase"); err != nil {
		return nil, err
	}
	if err := lw.OutputStartTime(start.UnixMilli()); err != nil {
		return nil, err
	}
	// The BaseTime line holds whole seconds only: a base with milliseconds would shift every
	// interval, as a reader sees it, by up to a second. Intervals are stamped from the whole second.
	base := start.UnixMilli() / 1000 * 1000
	l.base = base
	if err := lw.OutputBaseTime(base); err != nil {
		return nil, err
	}
	if err := lw.OutputLegend(); err != nil {
		return nil, err
	}
	return l, nil
}

// WriteInterval writes every phase of rec that has samples, for the interval [from, to).
func (l *Hlog) WriteInterval(rec *Recorder, from, to time.Time) error {
	for p := range NumPhases {
		h := rec.hist[p]
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		// An interval line as hdrhistogram-go's HistogramLogWriter writes it (the maximum in
		// milliseconds), with our encoder: the writer's allocates per bucket, and this runs every
		// second of a run.
		enc, err := EncodeHist(h)
		if err != nil {
			return err
		}
		start := float64(from.UnixMilli()-l.base) / 1000
		length := float64(to.UnixMilli()-from.UnixMilli()) / 1000
		if _, err := fmt.Fprintf(l.out, "Tag=%s,%f,%f,%f,%s\n", p, start, length, float64(h.Max())/1e6, enc); err != nil {
			return err
		}
	}
	return nil
}
