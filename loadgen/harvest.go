package loadgen

import (
	"time"

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
	last     int64          // when the previous interval ended
	seen     results.Counts // everything so far, warm-up included, for progress
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

// loop harvests every interval until done is closed, and once more exactly at the end of the
// warm-up, so that no interval straddles it.
func (h *harvester) loop(done <-chan struct{}) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	var warm <-chan time.Time
	if h.r.cfg.Warmup > 0 {
		wt := time.NewTimer(time.Until(mono.Time(h.warmupEnd())))
		defer wt.Stop()
		warm = wt.C
	}
	for {
		select {
		case <-t.C:
			if now := mono.Now(); warm == nil || now < h.warmupEnd() {
				h.harvest(now)
				continue
			}
			// The warm-up ended, and its timer fired too: select may pick the tick first.
			warm = nil
			h.harvest(h.warmupEnd())
			t.Reset(h.every)
		case <-warm:
			warm = nil
			h.harvest(h.warmupEnd())
			t.Reset(h.every) // intervals now start at the end of the warm-up
		case <-done:
			return
		}
	}
}

func (h *harvester) warmupEnd() int64 { return h.r.startMon + int64(h.r.cfg.Warmup) }

// harvest collects the interval that ends at now.
func (h *harvester) harvest(now int64) {
	for i, sh := range h.r.shards {
		sh.mu.Lock()
		sh.rec, h.spares[i] = h.spares[i], sh.rec
		sh.mu.Unlock()
		h.interval.Merge(h.spares[i])
		h.spares[i].Reset()
	}
	c := &h.interval.Counts
	iv := results.Interval{
		Offset:    float64(now-h.r.startMon) / 1e9,
		Messages:  c.Messages,
		Delivered: c.Delivered,
		Failed:    c.Failed,
		Errors:    c.Errors,
		Late:      c.Late,
		Dropped:   c.Dropped,
		Warmup:    h.r.cfg.Warmup > 0 && now <= h.warmupEnd(),
	}
	if th := h.interval.Histogram(results.Txn); th != nil && th.TotalCount() > 0 {
		iv.TxnP50, iv.TxnP99 = th.ValueAtPercentile(50), th.ValueAtPercentile(99)
		if enc, err := results.EncodeHist(th); err == nil {
			iv.TxnHist = enc
		}
	}
	h.timeline = append(h.timeline, iv)
	if f := h.r.cfg.OnInterval; f != nil {
		f(h.interval, mono.Time(h.last), mono.Time(now))
	}
	if !iv.Warmup { // the warm-up stays out of the totals and histograms
		h.total.Merge(h.interval)
	}
	h.seen.Messages += c.Messages
	h.seen.Delivered += c.Delivered
	h.seen.Errors += c.Errors
	h.seen.Late += c.Late
	h.seen.Dropped += c.Dropped
	if f := h.r.cfg.Progress; f != nil && h.last != now {
		f(h.progress(iv, now))
	}
	h.last = now
	h.interval.Reset()
}

// progress builds the live figures of the interval that ended at now.
func (h *harvester) progress(iv results.Interval, now int64) Progress {
	r := h.r
	secs := float64(now-h.last) / 1e9
	p := Progress{
		Elapsed:   time.Duration(now - r.startMon),
		Sent:      h.seen.Messages,
		Delivered: h.seen.Delivered,
		Rate:      float64(iv.Delivered) / secs,
		Sessions:  int(r.active.Load()),
		TxnP50:    iv.TxnP50,
		TxnP99:    iv.TxnP99,
		Errors:    h.seen.Errors,
		Late:      h.seen.Late,
		Dropped:   h.seen.Dropped,
		Warmup:    iv.Warmup,
	}
	if r.cfg.Duration > 0 {
		p.Total = r.cfg.Duration
	}
	if r.cfg.Messages > 0 {
		p.Messages = r.cfg.Messages
	}
	if r.plan != nil {
		t0, t1 := float64(h.last-r.startMon)/1e9, float64(now-r.startMon)/1e9
		p.TargetRate = (r.plan.expected(t1) - r.plan.expected(t0)) / secs
	}
	return p
}
