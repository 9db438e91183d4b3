package loadgen

import (
	"errors"
	"time"

	"github.com/smtpbench/smtpbench/internal/mono"
	"github.com/smtpbench/smtpbench/pipeline"
	"github.com/smtpbench/smtpbench/results"
)

// stepPhase maps the client engine's steps to the phases results records.
var stepPhase = [...]results.Phase{
	pipeline.StepConnect:  results.Connect,
	pipeline.StepGreeting: results.Greeting,
	pipeline.StepEHLO:     results.EHLO,
	pipeline.StepHELO:     results.EHLO,
	pipeline.StepMail:     results.Mail,
	pipeline.StepRcpt:     results.Rcpt,
	pipeline.StepData:     results.Data,
	pipeline.StepBody:     results.Body,
	pipeline.StepBdat:     results.Bdat,
	pipeline.StepRset:     results.Rset,
	pipeline.StepNoop:     results.Rset,
	pipeline.StepQuit:     results.Quit,
}

func replyKey(r pipeline.Reply) results.ReplyKey {
	return results.ReplyKey{Code: r.Code, Enhanced: [3]uint16{r.Enhanced.Class, r.Enhanced.Subject, r.Enhanced.Detail}}
}

// worker is one session of the closed model: it connects, sends messages back to back (PerConn on
// each connection, or all of them), and reconnects after QUIT, a 421 or a failure, until the run
// stops.
func (r *runner) worker(id int) {
	sh := r.shards[id%len(r.shards)]
	comp := newComposer(&r.cfg, &r.fixed)
	var tr pipeline.Trace
	failures := 0
	for r.running() {
		c, sessStart, ok := r.connect(sh, id)
		if !ok {
			failures++
			r.backoff(failures)
			continue
		}
		failures = 0
		for sent := 0; r.running() && c.Usable() && (r.cfg.PerConn == 0 || sent < r.cfg.PerConn); sent++ {
			n, ok := r.claim()
			if !ok {
				break
			}
			m := comp.compose(n)
			err := c.Send(m, &tr)
			r.recordTxn(sh, &tr, err, m.Size())
			if tr.NeedsReset {
				r.timed(sh, c, pipeline.StepRset, c.Reset)
			}
		}
		if c.Usable() {
			r.timed(sh, c, pipeline.StepQuit, c.Quit)
		}
		c.Close()
		r.conns[id].Store(nil)
		end := mono.Now()
		sh.mu.Lock()
		sh.rec.Record(results.Session, end-sessStart)
		sh.mu.Unlock()
	}
}

// connect dials, reads the greeting and says EHLO, timing each. It returns ok=false (with the
// failure recorded) when the session could not start.
func (r *runner) connect(sh *shard, id int) (*pipeline.Conn, int64, bool) {
	start := mono.Now()
	// Not r.stopNew: a connection being opened when the run stops is counted and ends with QUIT
	// like the others, instead of being dropped unseen; only an abort cuts the dial short.
	c, err := pipeline.Dial(r.dialCtx, r.cfg.Target, r.opts)
	connected := mono.Now()
	if err != nil {
		if r.running() {
			r.recordError(sh, pipeline.StepConnect, err)
		}
		return nil, 0, false
	}
	r.conns[id].Store(c) // from now on a stop past the grace period can close it
	if r.aborted() {     // ... unless it came just after that stop looked
		c.Close()
		r.conns[id].Store(nil)
		return nil, 0, false
	}
	sh.mu.Lock()
	sh.rec.Record(results.Connect, connected-start)
	sh.rec.Counts.Sessions++
	sh.mu.Unlock()
	g, err := c.Greeting()
	if !r.stepDone(sh, pipeline.StepGreeting, connected, g, err) || g.Code != 220 {
		c.Close()
		r.conns[id].Store(nil)
		return nil, 0, false
	}
	h, err := c.Hello()
	if !r.stepDone(sh, pipeline.StepEHLO, c.Sent(), h, err) || !h.OK() {
		c.Close()
		r.conns[id].Store(nil)
		return nil, 0, false
	}
	return c, start, true
}

// timed runs a one-command step (RSET, QUIT) on c and records it from when the command was written.
func (r *runner) timed(sh *shard, c *pipeline.Conn, step pipeline.Step, f func() (pipeline.Reply, error)) {
	rep, err := f()
	r.stepDone(sh, step, c.Sent(), rep, err)
}

// stepDone records a step that started at t: its latency and reply, or its failure. It reports
// whether a reply came.
func (r *runner) stepDone(sh *shard, step pipeline.Step, t int64, rep pipeline.Reply, err error) bool {
	if err != nil {
		r.recordError(sh, step, err)
		return false
	}
	done := mono.Now()
	p := stepPhase[step]
	sh.mu.Lock()
	sh.rec.Record(p, done-t)
	sh.rec.Reply(p, replyKey(rep))
	sh.mu.Unlock()
	return true
}

func (r *runner) recordError(sh *shard, step pipeline.Step, err error) {
	reason := pipeline.KindOf(err).String()
	if r.aborted() {
		reason = "aborted at stop"
	}
	sh.mu.Lock()
	sh.rec.Error(stepPhase[step], reason)
	sh.mu.Unlock()
}

func (r *runner) aborted() bool {
	select {
	case <-r.abort:
		return true
	default:
		return false
	}
}

// recordTxn records one transaction from its trace, under the shard's lock once.
func (r *runner) recordTxn(sh *shard, tr *pipeline.Trace, err error, size int) {
	sh.mu.Lock()
	rec := sh.rec
	rec.Counts.Messages++
	step := func(p results.Phase, t *pipeline.Timing) {
		if t.Done != 0 {
			rec.Record(p, t.Done-t.Sent)
			rec.Reply(p, replyKey(t.Reply))
		}
	}
	step(results.Mail, &tr.Mail)
	for i := range tr.Rcpt {
		step(results.Rcpt, &tr.Rcpt[i])
	}
	step(results.Data, &tr.Data)
	step(results.Body, &tr.Body)
	step(results.Bdat, &tr.Bdat)
	if err == nil && !tr.Final.IsZero() {
		rec.Record(results.Txn, tr.End-tr.Start)
	}
	if tr.Delivered {
		rec.Counts.Delivered++
		rec.Counts.Recipients += int64(tr.Accepted)
		rec.Counts.Bytes += int64(size)
	} else {
		rec.Counts.Failed++
	}
	sh.mu.Unlock()
	if err != nil {
		var e *pipeline.Error
		st := pipeline.StepMail
		if errors.As(err, &e) {
			st = e.Step
		}
		r.recordError(sh, st, err)
	}
}

// backoff waits before reconnecting after a failed connection: 10ms doubling to 1s, cut short
// when the run stops.
func (r *runner) backoff(failures int) {
	d := min(time.Duration(10<<min(failures-1, 7))*time.Millisecond, time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.stopNew.Done():
	}
}
