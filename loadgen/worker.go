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

// worker is one session of the closed model: it sends messages back to back over one connection
// (PerConn on each, or all of them), reconnects after QUIT, a 421 or a failure, and retries what a
// temporary failure deferred, until the run stops or it has nothing left to send.
// A worker of the initial pool (warm) connects before it waits for its first message; one the open
// model adds later connects for the message it was added for, so that connect is measured as part
// of that message's path.
func (r *runner) worker(id int, warm bool) {
	w := &workerState{r: r, id: id, sh: r.shards[id%len(r.shards)], comp: newComposer(&r.cfg, &r.fixed)}
	w.retries.rng.Seed(r.cfg.Seed, uint64(id))
	defer w.finish()
	failures := 0
	if warm && r.jobs != nil {
		w.connect() // a failure is recorded; the first message tries again
	}
	for r.running() {
		j, ok := w.nextJob()
		if !ok {
			return
		}
		if w.c == nil {
			if !w.connect() {
				w.retries.jobs = append(w.retries.jobs, j) // it goes when a connection does
				failures++
				r.backoff(failures)
				continue
			}
			failures = 0
		}
		w.send(&j)
		if !w.c.Usable() || r.cfg.PerConn > 0 && w.sent >= r.cfg.PerConn {
			w.hangUp()
		}
	}
}

// workerState is what one worker keeps between messages.
type workerState struct {
	r         *runner
	id        int
	sh        *shard
	comp      *composer
	traces    [2]pipeline.Trace // alternate: one may be pending while the next is sent
	cur       int
	pend      pendingMsg
	c         *pipeline.Conn
	start     int64 // when the current connection's dial started
	sent      int   // messages sent on it
	retries   retryQueue
	claimed   bool  // no new message is left to claim
	lastBegin int64 // when the previous message's Begin (unchained: End) returned; 0: none, or a wait since
	timer     *time.Timer
}

// nextJob returns a retry that is due, else a new message (the next slot's, in the open model),
// else waits for the next retry. It reports false when there is nothing left, or the run stopped
// while it waited.
func (w *workerState) nextJob() (job, bool) {
	r := w.r
	for {
		now := mono.Now()
		if j, ok := w.retries.popDue(now); ok {
			return j, true
		}
		var retryC <-chan time.Time
		if due := w.retries.nextDue(); due != 0 {
			retryC = w.wake(due - now)
		}
		if r.jobs != nil && !w.claimed {
			select { // a message already waiting goes out chained to the pending one
			case j, ok := <-r.jobs:
				if ok {
					return j, true
				}
				w.claimed = true
				continue
			default:
			}
			w.flush() // about to wait
			r.idle.Add(1)
			select {
			case j, ok := <-r.jobs:
				r.idle.Add(-1)
				if ok {
					return j, true
				}
				w.claimed = true // the schedule is over
			case <-retryC:
				r.idle.Add(-1)
			case <-r.stopNew.Done():
				r.idle.Add(-1)
				return job{}, false
			}
			continue
		}
		if !w.claimed {
			if n, ok := r.claim(); ok {
				return job{n: n}, true
			}
			w.claimed = true
		}
		if retryC == nil {
			return job{}, false
		}
		w.flush()       // about to wait
		w.lastBegin = 0 // after a wait, the next message is not back to back
		select {
		case <-retryC:
		case <-r.stopNew.Done():
			return job{}, false
		}
	}
}

// wake returns a channel that fires after d, from a timer the worker reuses.
func (w *workerState) wake(d int64) <-chan time.Time {
	if w.timer == nil {
		w.timer = time.NewTimer(time.Duration(d))
	} else {
		w.timer.Stop()
		select { // drop a stale tick
		case <-w.timer.C:
		default:
		}
		w.timer.Reset(time.Duration(d))
	}
	return w.timer.C
}

func (w *workerState) connect() bool {
	c, start, ok := w.r.connect(w.sh, w.id)
	if ok {
		w.c, w.start, w.sent, w.lastBegin = c, start, 0, 0
		w.r.active.Add(1)
	}
	return ok
}

// send sends one job and records it; what a temporary failure deferred is queued for a retry.
func (w *workerState) send(j *job) {
	r, c := w.r, w.c
	tr := &w.traces[w.cur]
	w.cur ^= 1 // a pending trace is only completed by the next Begin: use the other one
	m := w.comp.compose(j.n)
	if j.rcpts != nil {
		w.comp.only(j.rcpts)
	}
	prev, prevInfo := c.Pending(), w.pend
	w.pend = pendingMsg{}
	if now := mono.Now(); r.jobs == nil && w.lastBegin != 0 {
		// Closed model: the generator's own time between two messages of a session (the open
		// model's sched is the dispatcher's; a retry there has no slot).
		w.sh.mu.Lock()
		w.sh.rec.Record(results.Sched, now-w.lastBegin)
		w.sh.mu.Unlock()
	}
	c.Begin(m, tr)
	w.lastBegin = mono.Now()
	w.sent++
	if prev != nil {
		w.complete(prev, prevInfo)
	}
	info := pendingMsg{j: *j, size: m.Size(), active: true}
	if c.Pending() == tr {
		if r.cfg.Chain {
			w.pend = info // its data goes out with the next message's commands
			return
		}
		c.End()
		w.lastBegin = mono.Now() // the server's time for the data is not the generator's
	}
	w.complete(tr, info)
}

// pendingMsg is the job of the message whose data waits for the next Begin.
type pendingMsg struct {
	j      job
	size   int
	active bool
}

// complete records a finished transaction and queues what it deferred for a retry.
func (w *workerState) complete(tr *pipeline.Trace, info pendingMsg) {
	r, c, j := w.r, w.c, &info.j
	again := deferred(tr, tr.Err, j.rcpts, r.cfg.Recipients)
	retry := len(again) > 0 && j.attempt < r.cfg.Retries
	o := outcome{
		slot:      j.slot,
		retry:     j.attempt > 0,
		delivered: tr.Delivered && !j.delivered,
		failed:    !tr.Delivered && !j.delivered && !retry,
	}
	r.recordTxn(w.sh, tr, tr.Err, info.size, o)
	if retry {
		next := job{n: j.n, attempt: j.attempt + 1, rcpts: again, delivered: j.delivered || tr.Delivered}
		next.due = mono.Now() + w.retries.backoff(r.cfg.RetryBackoff, next.attempt)
		w.retries.jobs = append(w.retries.jobs, next)
	}
	if tr.NeedsReset && c.Pending() == nil {
		r.timed(w.sh, c, pipeline.StepRset, c.Reset)
		w.lastBegin = 0
	}
}

// flush sends the pending message's data on its own and records it: before the worker waits,
// hangs up or stops.
func (w *workerState) flush() {
	if !w.pend.active || w.c == nil {
		return
	}
	tr, info := w.c.Pending(), w.pend
	w.pend = pendingMsg{}
	w.c.End()
	w.complete(tr, info)
}

// hangUp ends the current connection (with QUIT when it still can) and records the session.
func (w *workerState) hangUp() {
	if w.c == nil {
		return
	}
	w.flush()
	if w.c.Usable() {
		w.r.timed(w.sh, w.c, pipeline.StepQuit, w.c.Quit)
	}
	w.c.Close()
	w.r.active.Add(-1)
	w.r.conns[w.id].Store(nil)
	end := mono.Now()
	w.sh.mu.Lock()
	w.sh.rec.Record(results.Session, end-w.start)
	w.sh.mu.Unlock()
	w.c = nil
}

// finish hangs up and counts the messages still waiting for a retry when the run ended. A new
// message that waited for a connection which never came was not sent: it is not deferred (it has
// no first attempt among the messages), and in the open model it is dropped, like those left in
// the queue.
func (w *workerState) finish() {
	w.hangUp()
	var n, unsent int64
	for _, j := range w.retries.jobs {
		switch {
		case j.attempt == 0:
			if j.slot != 0 {
				unsent++
			}
		case !j.delivered:
			n++
		}
	}
	if n > 0 || unsent > 0 {
		w.sh.mu.Lock()
		w.sh.rec.Counts.Deferred += n
		w.sh.rec.Counts.Dropped += unsent
		w.sh.mu.Unlock()
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

// outcome is what a transaction means for its message's counts.
type outcome struct {
	slot      int64 // open model: the message's slot, for its response time
	retry     bool  // a retry, not the message's first try
	delivered bool  // the message is delivered now, for the first time
	failed    bool  // the message failed for good now
}

// recordTxn records one transaction from its trace, under the shard's lock once.
func (r *runner) recordTxn(sh *shard, tr *pipeline.Trace, err error, size int, o outcome) {
	sh.mu.Lock()
	rec := sh.rec
	if o.retry {
		rec.Counts.Retries++
	} else {
		rec.Counts.Messages++
	}
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
		if o.slot != 0 && !o.retry {
			rec.Record(results.Response, tr.End-o.slot)
		}
	}
	if tr.Delivered {
		rec.Counts.Recipients += int64(tr.Accepted)
		rec.Counts.Bytes += int64(size)
	}
	if o.delivered {
		rec.Counts.Delivered++
	}
	if o.failed {
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
