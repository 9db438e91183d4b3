package loadgen

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/smtpbench/smtpbench/internal/mono"
	"github.com/smtpbench/smtpbench/results"
)

// harvester swaps every shard's recorder for an empty one once per interval, adds what it took to
// the run's total, and turns the interval into a timeline entry. Workers never wait for it longer
// than a pointer swap.
type harvester struct {
	r        *runner
	spares   []*results.Recorder
	interval *results.Recorder
	total    *results.Recorder
	timeline []results.Interval
	every    time.Duration
	last     int64 // when the previous interval ended
}

func newHarvester(r *runner) *harvester {
	h := &harvester{r: r, interval: results.NewRecorder(), total: results.NewRecorder(), every: time.Second,
		last: r.startMon}
	h.spares = make([]*results.Recorder, len(r.shards))
	for i := range h.spares {
		h.spares[i] = results.NewRecorder()
	}
	return h
}

// loop harvests every interval until done is closed.
func (h *harvester) loop(done <-chan struct{}) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			h.harvest(mono.Now())
		case <-done:
			return
		}
	}
}

// harvest collects the interval that ends at now.
func (h *harvester) harvest(now int64) {
	for i, sh := range h.r.shards {
		sh.mu.Lock()
		sh.rec, h.spares[i] = h.spares[i], sh.rec
		sh.mu.Unlock()
		h.interval.Merge(h.spares[i])
		h.spares[i].Reset()
	}
	iv := results.Interval{
		Offset:    float64(now-h.r.startMon) / 1e9,
		Messages:  h.interval.Counts.Messages,
		Delivered: h.interval.Counts.Delivered,
		Failed:    h.interval.Counts.Failed,
		Errors:    h.interval.Counts.Errors,
	}
	if th := h.interval.Histogram(results.Txn); th != nil && th.TotalCount() > 0 {
		iv.TxnP50, iv.TxnP99 = th.ValueAtPercentile(50), th.ValueAtPercentile(99)
		if enc, err := th.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err == nil {
			iv.TxnHist = string(enc)
		}
	}
	h.timeline = append(h.timeline, iv)
	if f := h.r.cfg.OnInterval; f != nil {
		f(h.interval, mono.Time(h.last), mono.Time(now))
	}
	h.last = now
	h.total.Merge(h.interval)
	h.interval.Reset()
}
