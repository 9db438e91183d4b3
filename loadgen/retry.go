package loadgen

import (
	"math/rand/v2"
	"time"

	"github.com/smtpbench/smtpbench/pipeline"
)

// job is one message to send: a new one, or a retry of the recipients a temporary failure
// deferred, as an MTA would retry them (RFC 5321 §4.5.4), scaled down.
type job struct {
	n         int64 // the message number: a retry sends the same message
	attempt   int   // 0 for the first try
	rcpts     []int // nil: every recipient; else the indexes still to deliver
	delivered bool  // an earlier attempt delivered it to some recipients
	due       int64 // internal/mono time a retry may go
	slot      int64 // open model: when the schedule said it was due (0 in the closed model)
	late      bool  // open model: its slot found every session busy
}

// retryQueue holds a worker's deferred messages.
type retryQueue struct {
	jobs []job
	rng  rand.PCG
}

// popDue takes a retry that is due at now.
func (q *retryQueue) popDue(now int64) (job, bool) {
	for i, j := range q.jobs {
		if j.due <= now {
			q.jobs = append(q.jobs[:i], q.jobs[i+1:]...)
			return j, true
		}
	}
	return job{}, false
}

// nextDue is when the earliest retry is due, or 0 when there is none.
func (q *retryQueue) nextDue() int64 {
	var t int64
	for _, j := range q.jobs {
		if t == 0 || j.due < t {
			t = j.due
		}
	}
	return t
}

// backoff is the wait before retry number attempt (1 for the first): base·2^(attempt-1), times a
// jitter between 0.5 and 1.5 so that retries of many messages spread out.
func (q *retryQueue) backoff(base time.Duration, attempt int) int64 {
	d := float64(base) * float64(uint64(1)<<min(attempt-1, 30))
	jitter := 0.5 + float64(q.rng.Uint64()>>11)*0x1p-53
	return int64(d * jitter)
}

// deferred lists the recipients of an attempt that a temporary failure left undelivered, as
// indexes of the message's recipients. attemptRcpts maps the attempt's recipients to those
// (nil: all of them, in order). A permanent refusal defers nothing; an I/O failure neither (the
// message may have been accepted, so it is counted failed rather than sent twice).
func deferred(tr *pipeline.Trace, err error, attemptRcpts []int, all int) []int {
	if err != nil {
		return nil
	}
	index := func(i int) int {
		if attemptRcpts == nil {
			return i
		}
		return attemptRcpts[i]
	}
	tried := all
	if attemptRcpts != nil {
		tried = len(attemptRcpts)
	}
	var out []int
	if tr.Delivered {
		for i, rt := range tr.Rcpt {
			if rt.Reply.Temporary() {
				out = append(out, index(i))
			}
		}
		return out
	}
	if !tr.Final.Temporary() {
		return nil
	}
	// The transaction failed temporarily: every recipient not refused for good goes again,
	// including those no reply came for (after a 421).
	for i := range tried {
		if i < len(tr.Rcpt) && tr.Rcpt[i].Reply.Permanent() {
			continue
		}
		out = append(out, index(i))
	}
	return out
}
