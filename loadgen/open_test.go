package loadgen

import (
	"bytes"
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/internal/mono"
	"github.com/smtpbench/smtpbench/results"
	"github.com/smtpbench/smtpbench/server"
)

// The open model against the bundled sink: the schedule is kept whatever the server does, and
// what it cannot take is counted (late, dropped), never hidden.

// openConfig is an open run at rate for d.
func openConfig(cfg Config, rate float64, d time.Duration) Config {
	cfg.Messages, cfg.Rate, cfg.Duration = 0, rate, d
	return cfg
}

// timelineSum adds up the timeline.
func timelineSum(res *results.Result, warmup bool) results.Interval {
	var s results.Interval
	for _, iv := range res.Timeline {
		if iv.Warmup && !warmup {
			continue
		}
		s.Messages += iv.Messages
		s.Delivered += iv.Delivered
		s.Failed += iv.Failed
		s.Errors += iv.Errors
		s.Late += iv.Late
		s.Dropped += iv.Dropped
	}
	return s
}

// checkOpen checks what holds for every open run: every slot was sent or dropped (the messages
// still queued when the run stopped are dropped too), every message is delivered, failed or
// deferred, and the generator timed every slot's hand-off.
func checkOpen(tb testing.TB, res *results.Result) {
	tb.Helper()
	tot := res.Totals
	if tot.Scheduled != tot.Messages+tot.Dropped {
		tb.Errorf("scheduled %d != messages %d + dropped %d", tot.Scheduled, tot.Messages, tot.Dropped)
	}
	if tot.Delivered+tot.Failed+tot.Deferred != tot.Messages {
		tb.Errorf("delivered %d + failed %d + deferred %d != messages %d", tot.Delivered, tot.Failed, tot.Deferred, tot.Messages)
	}
	if n := count(res, "sched"); n != tot.Scheduled {
		tb.Errorf("%d sched samples for %d slots: sched is the dispatcher's lag, one per slot", n, tot.Scheduled)
	}
	if tl := timelineSum(res, false); tl.Messages != tot.Messages || tl.Late != tot.Late || tl.Dropped > tot.Dropped {
		tb.Errorf("timeline adds up to %+v, totals %+v", tl, tot)
	}
	// Response time runs from the slot, service time from the start: never less. (A retry has
	// a service time, but no slot of its own.)
	resp, txn := res.Phase("response"), res.Phase("txn")
	if txn != nil && tot.Retries == 0 && (resp == nil || resp.Count != txn.Count || resp.P50 < txn.P50 || resp.P90 < txn.P90 || resp.Max < txn.Max) {
		tb.Errorf("response %+v\ntxn %+v", resp, txn)
	}
	if tot.Late > tot.Scheduled-tot.Dropped+unsent(res) {
		tb.Errorf("%d late of %d scheduled, %d dropped", tot.Late, tot.Scheduled, tot.Dropped)
	}
}

// unsent is the messages still queued when the run stopped: the dropped ones the dispatcher did
// not drop (the timeline only has the dispatcher's).
func unsent(res *results.Result) int64 {
	return res.Totals.Dropped - timelineSum(res, true).Dropped
}

// A constant rate is kept: the slots the schedule holds, the target reported, the achieved rate
// within 5% of it, and live progress about once a second.
func TestOpenRate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		arrival Arrival
	}{{"uniform", ArrivalUniform}, {"poisson", ArrivalPoisson}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, target := startSink(t, server.Config{})
			const rate, secs = 500.0, 2
			cfg := openConfig(testConfig(target), rate, secs*time.Second)
			cfg.Arrival = tc.arrival
			var mu sync.Mutex
			var prog []Progress
			cfg.Progress = func(p Progress) {
				mu.Lock()
				prog = append(prog, p)
				mu.Unlock()
			}
			start := time.Now()
			res := mustRun(t, cfg)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("a %ds run took %v", secs, d)
			}
			checkOpen(t, res)
			tot := res.Totals
			if res.StopReason != StopSchedule {
				t.Errorf("stop reason %q", res.StopReason)
			}
			if math.Abs(res.Throughput.TargetPerS-rate) > 1e-9 {
				t.Errorf("target %v/s, want %v", res.Throughput.TargetPerS, rate)
			}
			want := float64(rate * secs)
			switch tc.arrival {
			case ArrivalUniform:
				if tot.Scheduled != int64(want) {
					t.Errorf("%d slots, want %v", tot.Scheduled, want)
				}
			case ArrivalPoisson:
				if math.Abs(float64(tot.Scheduled)-want) > 4*math.Sqrt(want) {
					t.Errorf("%d slots, want %v ± 4σ", tot.Scheduled, want)
				}
			}
			if tot.Dropped != 0 || tot.Delivered != tot.Scheduled || tot.Failed != 0 || tot.Errors != 0 {
				t.Errorf("totals %+v", tot)
			}
			// Achieved: what was delivered over the run's measured time, within 5% of the slots
			// the schedule held per second (the target itself, for evenly spaced arrivals).
			achieved, held := res.Throughput.MessagesPerS, float64(tot.Scheduled)/secs
			if math.Abs(achieved-held) > 0.05*held {
				t.Errorf("achieved %.1f/s over %.3fs, the schedule held %.1f/s", achieved, res.Throughput.Seconds, held)
			}
			if st := srv.Stats(); int64(st.Messages) != tot.Delivered {
				t.Errorf("the sink took %d messages, the client says %d", st.Messages, tot.Delivered)
			}

			// Progress: once per interval (the ticks, and the end), in order, with the schedule's
			// rate as the target.
			mu.Lock()
			defer mu.Unlock()
			if len(prog) < secs || len(prog) > secs+1 || len(prog) != len(res.Timeline) {
				t.Fatalf("%d progress calls for a %ds run with %d intervals: %+v", len(prog), secs, len(res.Timeline), prog)
			}
			for i, p := range prog {
				if i > 0 && (p.Elapsed <= prog[i-1].Elapsed || p.Sent < prog[i-1].Sent || p.Delivered < prog[i-1].Delivered) {
					t.Errorf("progress %d %+v after %+v", i, p, prog[i-1])
				}
				if p.Total != secs*time.Second || p.Messages != 0 || p.Errors != 0 || p.Dropped != 0 || p.Warmup {
					t.Errorf("progress %d %+v", i, p)
				}
				full := p.Elapsed <= secs*time.Second && (i == 0 || p.Elapsed-prog[i-1].Elapsed > 900*time.Millisecond)
				if !full {
					continue // the last, short interval
				}
				if d := p.Elapsed - time.Duration(i+1)*time.Second; d < -50*time.Millisecond || d > 500*time.Millisecond {
					t.Errorf("progress %d at %v, want about %ds", i, p.Elapsed, i+1)
				}
				if math.Abs(p.TargetRate-rate) > 0.02*rate {
					t.Errorf("progress %d: target %.1f/s, want %v", i, p.TargetRate, rate)
				}
				if p.Sent < int64(float64(i+1)*rate/2) || p.Rate < rate/2 || p.Rate > 2*rate || p.TxnP50 <= 0 || p.TxnP99 < p.TxnP50 {
					t.Errorf("progress %d: %+v", i, p)
				}
				if i < len(prog)-1 && p.Sessions < 1 { // the last comes after the sessions ended
					t.Errorf("progress %d: %d sessions", i, p.Sessions)
				}
			}
			if last := prog[len(prog)-1]; last.Sent != tot.Messages || last.Delivered != tot.Delivered {
				t.Errorf("the last progress says %d sent, %d delivered; the run %d, %d", last.Sent, last.Delivered, tot.Messages, tot.Delivered)
			}
		})
	}
}

// A sink that cannot keep up: each of 2 sessions takes a message in 100ms (20/s together) while
// the schedule asks for 100/s. A slot that finds both busy waits in the backlog (late); beyond 5
// waiting it is dropped. Response time, from the slot, shows the wait that service time hides.
func TestOpenOverload(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration
	}{
		{"the grace period drains the backlog", 3 * time.Second},
		{"the grace period is too short", 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaults()
			f.Points[server.AtDot] = server.PointFault{Delay: server.Dist{Kind: server.DistFixed, A: 100 * time.Millisecond}}
			srv, target := startSink(t, server.Config{Faults: f})
			cfg := openConfig(testConfig(target), 100, time.Second)
			cfg.Sessions, cfg.MaxSessions, cfg.MaxBacklog, cfg.Grace = 2, 2, 5, tc.grace
			start := time.Now()
			res := mustRun(t, cfg)
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("the run took %v", d)
			}
			checkOpen(t, res)
			tot := res.Totals
			left := unsent(res)
			dropped := tot.Dropped - left // by the dispatcher, at their slot
			if tot.Scheduled != 100 || tot.Late == 0 || dropped == 0 {
				t.Fatalf("totals %+v", tot)
			}
			if dropped != tot.Scheduled-tot.Messages-left {
				t.Errorf("%d dropped at their slot, want scheduled %d - messages %d - left queued %d", dropped,
					tot.Scheduled, tot.Messages, left)
			}
			if res.StopReason != StopSchedule {
				t.Errorf("stop reason %q", res.StopReason)
			}
			// Every slot but the first two (the idle sessions') found both busy: queued late, or
			// dropped.
			if handed := tot.Scheduled - dropped; tot.Late > handed || tot.Late < handed-int64(cfg.MaxSessions) {
				t.Errorf("%d late of %d handed to the queue", tot.Late, handed)
			}
			// 2 sessions at 10/s for a second, and what the backlog held: far fewer than the 100.
			if sent := tot.Messages + left; sent < 15 || sent > 40 {
				t.Errorf("%d messages sent, %d left: want about 2·10 + 5", tot.Messages, left)
			}
			switch {
			case tc.grace > time.Second:
				if left != 0 || tot.Delivered != tot.Messages {
					t.Errorf("%d left queued, totals %+v", left, tot)
				}
			default:
				// The schedule's end found 5 queued and (most likely: on a loaded machine the
				// sessions may be between two) 2 in flight: the grace period ends them. Every
				// error is the abort's.
				var aborted int64
				for _, p := range res.Phases {
					for _, e := range p.Errors {
						if e.Reason == "aborted at stop" {
							aborted += e.Count
						}
					}
				}
				if left == 0 || tot.Failed > int64(cfg.MaxSessions) || errorCounts(res, "body")["aborted at stop"] != tot.Failed || aborted != tot.Errors {
					t.Errorf("%d left queued, body errors %v, totals %+v", left, errorCounts(res, "body"), tot)
					for _, p := range res.Phases {
						t.Logf("%s: %d samples, max %v, replies %v, errors %v", p.Name, p.Count, time.Duration(p.Max), p.Replies, p.Errors)
					}
					t.Logf("timeline %+v, end %v", res.Timeline, res.End.Sub(res.Start))
				}
			}
			resp, txn := res.Phase("response"), res.Phase("txn")
			if txn == nil || resp == nil || txn.P50 < int64(50*time.Millisecond) || resp.P50 < 2*txn.P50 {
				t.Errorf("response p50 %v, txn p50 %v: the wait in the backlog must show", time.Duration(resp.P50), time.Duration(txn.P50))
			}
			// A message aborted at the stop may still be taken by the sink, at the end of its delay.
			if st := srv.Stats(); int64(st.Messages) < tot.Delivered || int64(st.Messages) > tot.Delivered+tot.Failed {
				t.Errorf("the sink took %d messages, the client says %d delivered, %d failed", st.Messages, tot.Delivered, tot.Failed)
			}
		})
	}
}

// Gil Tene's ^Z test: the sink stops answering for S = 1s, at 1s into a T = 4s run at 200/s. The
// messages due during the stall (a share S/T of them) wait for its end, S/2 on average, from 0 to
// S; so response time's p99 is S·(1 − 0.01·T/S) and its p90 S·(1 − 0.1·T/S). Service time does
// not see it: only the messages in flight when it began (one per session) started before it.
func TestOpenStall(t *testing.T) {
	if testing.Short() {
		t.Skip("a 4s run")
	}
	const (
		rate = 200.0
		T    = 4 * time.Second
		S    = time.Second
	)
	f := newFaults()
	f.StallAt, f.StallFor = time.Second, S
	_, target := startSink(t, server.Config{Faults: f})
	cfg := openConfig(testConfig(target), rate, T)
	// Few sessions, so that few messages are in flight at the stall; a backlog that holds what
	// arrives during it.
	cfg.Sessions, cfg.MaxSessions, cfg.MaxBacklog = 10, 10, 2*int(rate*S.Seconds())
	res := mustRun(t, cfg)
	checkOpen(t, res)
	tot := res.Totals
	if tot.Scheduled != int64(rate*T.Seconds()) || tot.Dropped != 0 || tot.Delivered != tot.Scheduled || tot.Late == 0 {
		t.Fatalf("totals %+v", tot)
	}
	resp, txn := res.Phase("response"), res.Phase("txn")
	ratio := float64(T) / float64(S)
	within := func(name string, got int64, want float64) {
		if math.Abs(float64(got)-want) > 0.25*want {
			t.Errorf("%s %v, want %v ± 25%%", name, time.Duration(got), time.Duration(want))
		}
	}
	within("response p99", resp.P99, float64(S)*(1-0.01*ratio))
	within("response p90", resp.P90, float64(S)*(1-0.1*ratio))
	within("response max", resp.Max, float64(S))
	if txn.P90 > int64(S)/10 {
		t.Errorf("txn p90 %v: service time must not show the stall", time.Duration(txn.P90))
	}
	if resp.P50 > int64(S)/10 {
		t.Errorf("response p50 %v: three quarters of the messages were not held", time.Duration(resp.P50))
	}
}

// Ctrl-C during a ramp: the result is complete and consistent, and survives its file format.
func TestOpenInterruptedRamp(t *testing.T) {
	srv, target := startSink(t, server.Config{})
	cfg := testConfig(target)
	cfg.Messages = 0
	cfg.Stages = mustStages(t, "1s:0-400,2s:400")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, cfg)
	time.Sleep(1500 * time.Millisecond)
	stopped := time.Now()
	cancel()
	res := wait(t, done, 5*time.Second)
	if d := res.End.Sub(stopped); d > time.Second {
		t.Errorf("the run ended %v after the stop", d)
	}
	checkOpen(t, res)
	checkBothSides(t, res, srv)
	tot := res.Totals
	if res.StopReason != StopInterrupted {
		t.Errorf("stop reason %q", res.StopReason)
	}
	// The first second's ramp holds 200 slots, the whole schedule 1000.
	if tot.Scheduled < 200 || tot.Scheduled >= 1000 || tot.Delivered != tot.Messages || tot.Messages == 0 {
		t.Errorf("totals %+v", tot)
	}
	if want := 1000.0 / 3; math.Abs(res.Throughput.TargetPerS-want) > 1e-9 {
		t.Errorf("target %v/s, want %v", res.Throughput.TargetPerS, want)
	}
	for _, ph := range []string{"connect", "greeting", "ehlo", "mail", "rcpt", "data", "body", "quit", "txn", "response", "session", "sched"} {
		if p := res.Phase(ph); p == nil || p.Count == 0 || p.Hist == "" {
			t.Errorf("phase %s: %+v", ph, p)
		}
	}
	var buf bytes.Buffer
	if err := res.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	first := buf.String()
	back, err := results.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Totals != tot || back.StopReason != res.StopReason || len(back.Phases) != len(res.Phases) ||
		len(back.Timeline) != len(res.Timeline) || back.Throughput != res.Throughput {
		t.Errorf("decoded %+v\nfrom %+v", back, res)
	}
	buf.Reset()
	if err := back.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != first {
		t.Error("the result does not encode the same after a decode")
	}
}

// A warm-up stays out of the totals and histograms; the timeline shows it, marked.
func TestOpenWarmup(t *testing.T) {
	_, target := startSink(t, server.Config{})
	const rate = 200.0
	cfg := openConfig(testConfig(target), rate, 2500*time.Millisecond)
	cfg.Warmup = time.Second
	res := mustRun(t, cfg)
	tot := res.Totals
	if tot.Delivered+tot.Failed+tot.Deferred != tot.Messages || tot.Dropped != 0 {
		t.Errorf("totals %+v", tot)
	}
	if !res.MeasuredFrom.Equal(res.Start.Add(cfg.Warmup)) {
		t.Errorf("measured from %v, start %v", res.MeasuredFrom, res.Start)
	}
	var warm, measured int
	for i, iv := range res.Timeline {
		if i > 0 && iv.Offset <= res.Timeline[i-1].Offset {
			t.Errorf("interval %d ends at %vs, after one that ended at %vs", i, iv.Offset, res.Timeline[i-1].Offset)
		}
		if iv.Warmup != (iv.Offset <= cfg.Warmup.Seconds()) {
			t.Errorf("interval %d, ending at %vs: warmup %v", i, iv.Offset, iv.Warmup)
		}
		if iv.Warmup {
			warm++
		} else {
			measured++
		}
	}
	if warm == 0 || measured == 0 || res.Timeline[warm-1].Offset != cfg.Warmup.Seconds() {
		t.Errorf("%d warm-up intervals, %d measured: %+v", warm, measured, res.Timeline)
	}
	all, after := timelineSum(res, true), timelineSum(res, false)
	if tot.Messages != after.Messages || tot.Delivered != after.Delivered || all.Messages != int64(rate*2.5) {
		t.Errorf("totals %+v; the timeline has %d messages after the warm-up, %d in all", tot, after.Messages, all.Messages)
	}
	// 1.5s at 200/s, give or take the messages around the warm-up's end: the harvest that ends it
	// comes a little late, and takes the shards one after the other (slowly, under the race
	// detector: 11 messages early seen).
	if tot.Messages < 275 || tot.Messages > 310 || tot.Scheduled < 275 || tot.Scheduled > 300 {
		t.Errorf("totals %+v", tot)
	}
	if n := count(res, "txn"); n != tot.Messages || count(res, "sched") != tot.Scheduled || count(res, "response") != tot.Messages {
		t.Errorf("txn %d, response %d, sched %d samples: the histograms leave the warm-up out", n, count(res, "response"), count(res, "sched"))
	}
	if res.Throughput.TargetPerS != rate || math.Abs(res.Throughput.Seconds-1.5) > 0.5 {
		t.Errorf("throughput %+v", res.Throughput)
	}
}

// The harvest that ends the warm-up ends it exactly, even when the interval's tick comes at the
// same time and select takes the tick first: the first interval is the warm-up, marked, ending
// at its end, and the timeline goes forward.
func TestWarmupHarvestBoundary(t *testing.T) {
	const warmup = time.Millisecond
	for i := range 100 {
		r := &runner{cfg: Config{Warmup: warmup}, shards: []*shard{{rec: results.NewRecorder()}}}
		r.startMon = mono.Now() - int64(2*warmup) // the warm-up ended a millisecond ago
		h := newHarvester(r)
		h.every = time.Microsecond // and the first tick is due at once too
		done := make(chan struct{})
		time.AfterFunc(time.Millisecond, func() { close(done) })
		h.loop(done)
		tl := h.timeline
		if len(tl) == 0 || !tl[0].Warmup || tl[0].Offset != warmup.Seconds() {
			t.Fatalf("try %d: the first intervals %+v, want the warm-up, ending at %v", i, tl[:min(len(tl), 2)], warmup)
		}
		for k := 1; k < len(tl); k++ {
			if tl[k].Warmup || tl[k].Offset <= tl[k-1].Offset {
				t.Fatalf("try %d: interval %d %+v after %+v", i, k, tl[k], tl[k-1])
			}
		}
	}
}

// The closed model times the generator between a session's back-to-back messages as sched: one
// sample per message but each connection's first, none of the server's time in it.
func TestClosedSched(t *testing.T) {
	const delay = 20 * time.Millisecond
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"DATA", nil},
		{"lockstep", lockstep},
		{"BDAT", useBDAT},
		{"chained", chained},
		{"PerConn 5", func(c *Config) { c.PerConn = 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFaults()
			f.Points[server.AtDot] = server.PointFault{Delay: server.Dist{Kind: server.DistFixed, A: delay}}
			srv, target := startSink(t, server.Config{Faults: f})
			cfg := testConfig(target)
			cfg.Messages, cfg.Sessions = 60, 3
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			res := mustRun(t, cfg)
			checkBothSides(t, res, srv)
			tot := res.Totals
			if tot.Delivered != 60 {
				t.Fatalf("totals %+v", tot)
			}
			sched := res.Phase("sched")
			if sched == nil || sched.Count != tot.Messages-tot.Sessions {
				t.Fatalf("sched %+v for %d messages in %d sessions", sched, tot.Messages, tot.Sessions)
			}
			// The sink holds every message 20ms at its end: none of that is the generator's.
			if sched.P50 >= int64(delay)/4 {
				t.Errorf("sched p50 %v, p90 %v: the server's %v counted as the generator's", time.Duration(sched.P50),
					time.Duration(sched.P90), delay)
			}
			if res.Phase("response") != nil || tot.Scheduled != 0 {
				t.Errorf("response %+v, %d scheduled in the closed model", res.Phase("response"), tot.Scheduled)
			}
		})
	}
}

// An open run bounded by a message count sends that many, whatever the arrivals; one whose
// duration comes first ends with the schedule.
func TestOpenMessageCount(t *testing.T) {
	for _, tc := range []struct {
		name     string
		arrival  Arrival
		seed     uint64
		messages int64
		duration time.Duration
		want     int64
		reason   string
	}{
		{"uniform", ArrivalUniform, 1, 100, 0, 100, StopMessages},
		{"poisson", ArrivalPoisson, 1, 100, 0, 100, StopMessages},
		{"poisson seed 3", ArrivalPoisson, 3, 100, 0, 100, StopMessages},
		{"poisson seed 19", ArrivalPoisson, 19, 100, 0, 100, StopMessages},
		{"poisson, a longer duration", ArrivalPoisson, 19, 100, time.Hour, 100, StopMessages},
		{"the duration first", ArrivalUniform, 1, 1000, 300 * time.Millisecond, 60, StopSchedule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, target := startSink(t, server.Config{})
			cfg := openConfig(testConfig(target), 200, tc.duration)
			cfg.Messages, cfg.Arrival, cfg.Seed = tc.messages, tc.arrival, tc.seed
			res := mustRun(t, cfg)
			checkOpen(t, res)
			tot := res.Totals
			if tot.Messages != tc.want || tot.Scheduled != tc.want || tot.Delivered != tc.want || res.StopReason != tc.reason {
				t.Errorf("stop reason %q, totals %+v; want %d messages, %q", res.StopReason, tot, tc.want, tc.reason)
			}
		})
	}
}

// A sink that goes away during an open run: the slots keep coming, the sessions cannot connect,
// and every slot is still accounted for, sent or dropped.
func TestOpenSinkGoesAway(t *testing.T) {
	srv, target := startSink(t, server.Config{})
	cfg := openConfig(testConfig(target), 200, time.Second)
	cfg.Sessions, cfg.MaxSessions, cfg.MaxBacklog, cfg.Grace = 2, 4, 50, 300*time.Millisecond
	done := runAsync(context.Background(), cfg)
	time.Sleep(300 * time.Millisecond)
	srv.Close()
	res := wait(t, done, 5*time.Second)
	checkOpen(t, res)
	tot := res.Totals
	if tot.Scheduled != 200 || tot.Dropped == 0 || tot.Deferred != 0 || sum(errorCounts(res, "connect")) == 0 {
		t.Errorf("totals %+v, connect errors %v", tot, errorCounts(res, "connect"))
	}
}

// Greylisting in the open model: the retries go out of the sessions as they come due, and they
// are not slots: sched stays the dispatcher's, response the first attempt's.
func TestOpenRetries(t *testing.T) {
	f := newFaults()
	f.Greylist = 200 * time.Millisecond
	srv, target := startSink(t, server.Config{Faults: f})
	cfg := openConfig(testConfig(target), 100, 500*time.Millisecond)
	cfg.Retries, cfg.RetryBackoff = 3, 200*time.Millisecond
	res := mustRun(t, cfg)
	checkOpen(t, res)
	checkBothSides(t, res, srv)
	tot := res.Totals
	if tot.Scheduled != 50 || tot.Delivered != 50 || tot.Retries < 50 || tot.Deferred != 0 || res.StopReason != StopSchedule {
		t.Errorf("stop reason %q, totals %+v", res.StopReason, tot)
	}
	if n := count(res, "response"); n != tot.Messages {
		t.Errorf("%d response samples for %d messages", n, tot.Messages)
	}
}
