package loadgen

import (
	"time"

	"github.com/smtpbench/smtpbench/internal/mono"
	"github.com/smtpbench/smtpbench/results"
)

// StopSchedule is the stop reason of an open-model run that sent its whole schedule.
const StopSchedule = "schedule complete"

// dispatch runs the open model's schedule: at each message's slot it hands the message to the
// sessions' queue without waiting. When every session is busy the message waits in the queue
// (late) and the pool grows, up to MaxSessions; a full queue drops it. The lag between a slot and
// the hand-off is the generator's own, recorded as sched. dispatch closes the queue at the end of
// the schedule, or when the run stops.
func (r *runner) dispatch() {
	defer close(r.jobs)
	defer preciseThread()()
	sl := newSlots(r.plan, r.cfg.Arrival, r.cfg.Seed)
	sh := r.shards[0]
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := int64(0); k < r.limit; k++ {
		t, ok := sl.next()
		if !ok {
			r.scheduleOut.Store(true)
			return
		}
		slot := r.startMon + int64(t*1e9)
		if !r.sleepUntil(slot, timer) {
			return
		}
		j := job{n: k, slot: slot}
		if r.idle.Load() <= 0 {
			if r.pool.Load() < int32(r.cfg.MaxSessions) {
				r.spawn(false) // its connect is part of this message's path
			} else {
				j.late = true // it waits for a busy session
			}
		}
		queued := true
		select {
		case r.jobs <- j:
		default:
			queued = false
		}
		handed := mono.Now()
		sh.mu.Lock()
		sh.rec.Counts.Scheduled++
		sh.rec.Record(results.Sched, handed-slot)
		switch {
		case !queued:
			sh.rec.Counts.Dropped++
		case j.late:
			sh.rec.Counts.Late++
		}
		sh.mu.Unlock()
	}
}

// sleepUntil waits for the mono time t: on the interruptible runtime timer while far from it,
// with nanosleep for the last two milliseconds. It reports false when the run stopped. Gaps under
// 20µs are not slept: those slots go out in a burst, each still timed from its own slot.
func (r *runner) sleepUntil(t int64, timer *time.Timer) bool {
	for {
		wait := t - mono.Now()
		switch {
		case !r.running():
			return false
		case wait < 20_000:
			return true
		case wait <= 2_000_000:
			nanosleep(wait)
			return r.running()
		}
		timer.Reset(time.Duration(wait - 2_000_000))
		select {
		case <-timer.C:
		case <-r.stopNew.Done():
			return false
		}
	}
}

// spawn starts one more session worker: warm for the initial pool (see worker).
func (r *runner) spawn(warm bool) {
	id := int(r.pool.Add(1)) - 1
	r.wg.Go(func() { r.worker(id, warm) })
}
