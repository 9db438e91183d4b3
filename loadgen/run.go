package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smtpbench/smtpbench/internal/mono"
	"github.com/smtpbench/smtpbench/internal/version"
	"github.com/smtpbench/smtpbench/pipeline"
	"github.com/smtpbench/smtpbench/results"
)

// Stop reasons, as the result file and the summary give them.
const (
	StopMessages    = "message count reached"
	StopDuration    = "duration elapsed"
	StopInterrupted = "interrupted"
)

// Run sends the load cfg describes and returns its result. It first connects once to check that
// the target answers (an unreachable target fails fast). When ctx ends, new messages stop, the ones
// in flight get cfg.Grace to finish, and Run still returns a complete result with the stop reason
// StopInterrupted.
func Run(ctx context.Context, cfg Config) (*results.Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	start := time.Now()
	if cfg.RunID == "" {
		cfg.RunID = start.UTC().Format("20060102T150405.000")
	}
	r := newRunner(cfg)
	probe, err := r.probe(ctx)
	if err != nil {
		return nil, err
	}
	return r.run(ctx, probe)
}

// shard is a recorder that a group of workers shares: each records a whole transaction under the
// lock, and the harvester swaps the recorder out once per interval.
type shard struct {
	mu  sync.Mutex
	rec *results.Recorder
	_   [64]byte // keep shards' locks on separate cache lines
}

type runner struct {
	cfg   Config
	opts  pipeline.Options
	fixed pipeline.Message

	next  atomic.Int64 // next message number
	limit int64

	shards []*shard

	stopNew  context.Context // done: start nothing new
	stop     context.CancelCauseFunc
	abort    chan struct{}   // closed: close every connection now
	dialCtx  context.Context // canceled with abort: dials under way at a stop finish before it
	conns    []atomic.Pointer[pipeline.Conn]
	stopOnce sync.Once
	reason   atomic.Value // string

	start    time.Time
	startMon int64

	// The pool of session workers, and for the open model its schedule and queue.
	wg     sync.WaitGroup
	pool   atomic.Int32 // workers started
	idle   atomic.Int32 // workers waiting for a message
	active atomic.Int32 // connected sessions
	plan   *plan
	jobs   chan job
	// scheduleOut is set when the schedule ran out of slots before the message count (if any).
	scheduleOut atomic.Bool
}

func newRunner(cfg Config) *runner {
	r := &runner{cfg: cfg, abort: make(chan struct{}), limit: math.MaxInt64}
	if cfg.Messages > 0 {
		r.limit = cfg.Messages
	}
	r.opts = pipeline.Options{
		LocalName:  cfg.LocalName,
		Pipelining: cfg.Pipelining,
		BDAT:       cfg.BDAT,
		Timeouts:   cfg.Timeouts,
	}
	r.fixed.SetBody(fixedPart(cfg.From, cfg.Size, cfg.Seed, time.Now(), cfg.RunID))
	nShards := min(cfg.Sessions, 2*runtime.GOMAXPROCS(0))
	r.shards = make([]*shard, nShards)
	for i := range r.shards {
		r.shards[i] = &shard{rec: results.NewRecorder()}
	}
	sessions := cfg.Sessions
	if cfg.Open() {
		sessions = cfg.MaxSessions
		r.plan = newPlan(cfg.stages())
		r.jobs = make(chan job, cfg.MaxBacklog)
	}
	r.conns = make([]atomic.Pointer[pipeline.Conn], sessions)
	return r
}

// probeResult is what the first connection learned about the server.
type probeResult struct {
	pipelining, chunking bool
	ext                  pipeline.Extensions
}

// probe connects once, reads the greeting and says EHLO, so a wrong target or a server without an
// extension the run requires fails before the load starts.
func (r *runner) probe(ctx context.Context) (probeResult, error) {
	timeout := r.opts.Timeouts.Connect
	if timeout == 0 || timeout > 10*time.Second {
		timeout = 10 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := pipeline.Dial(pctx, r.cfg.Target, r.opts)
	if err != nil {
		return probeResult{}, fmt.Errorf("cannot connect to %s: %w", r.cfg.Target, err)
	}
	defer c.Close()
	stop := context.AfterFunc(pctx, func() { c.NetConn().Close() })
	defer stop()
	g, err := c.Greeting()
	if err != nil {
		return probeResult{}, fmt.Errorf("%s sent no greeting: %w", r.cfg.Target, err)
	}
	if g.Code != 220 {
		return probeResult{}, fmt.Errorf("%s greets with %s %s", r.cfg.Target, g, c.LastText())
	}
	h, err := c.Hello()
	if err != nil {
		return probeResult{}, fmt.Errorf("%s: %w", r.cfg.Target, err)
	}
	if !h.OK() {
		return probeResult{}, fmt.Errorf("%s refuses EHLO and HELO: %s %s", r.cfg.Target, h, c.LastText())
	}
	p := probeResult{pipelining: c.Pipelining(), chunking: c.Chunking(), ext: c.Extensions()}
	c.Quit()
	return p, nil
}

func (r *runner) run(ctx context.Context, probe probeResult) (*results.Result, error) {
	stopNew, stop := context.WithCancelCause(context.Background())
	r.stopNew, r.stop = stopNew, stop
	dialCtx, cancelDials := context.WithCancel(context.Background())
	defer cancelDials()
	r.dialCtx = dialCtx
	r.start, r.startMon = time.Now(), mono.Now()

	// Stop on the caller's context, or after the duration (the open model's schedule ends by
	// itself).
	unwatch := context.AfterFunc(ctx, func() { r.finish(StopInterrupted) })
	defer unwatch()
	if r.cfg.Duration > 0 && !r.cfg.Open() {
		t := time.AfterFunc(r.cfg.Duration, func() { r.finish(StopDuration) })
		defer t.Stop()
	}
	cpu0 := cpuTime()

	for range r.cfg.Sessions {
		r.spawn(true)
	}
	scheduleDone := make(chan struct{})
	if r.cfg.Open() {
		go func() { r.dispatch(); close(scheduleDone) }()
	}
	workersDone := make(chan struct{})
	go func() { r.wg.Wait(); close(workersDone) }()

	h := newHarvester(r)
	harvestDone := make(chan struct{})
	go func() { h.loop(workersDone); close(harvestDone) }()
	abort := r.cfg.Abort

	select {
	case <-workersDone:
	case <-scheduleDone:
		// The whole schedule was handed out: what is queued and in flight gets the grace period.
		select {
		case <-workersDone:
		case <-time.After(r.cfg.Grace):
			r.finish(StopSchedule)
			r.abortInFlight(workersDone, cancelDials)
		case <-stopNew.Done():
			r.graceThenAbort(workersDone, abort, cancelDials)
		}
	case <-stopNew.Done():
		r.graceThenAbort(workersDone, abort, cancelDials)
	}
	end := time.Now()
	cpu := cpuTime() - cpu0
	if r.cfg.Open() && r.scheduleOut.Load() {
		r.finish(StopSchedule)
	}
	r.finish(StopMessages) // no-op when something else stopped the run first
	<-harvestDone
	h.harvest(mono.Now())
	// Messages still queued when the run stopped were never sent: they are dropped.
	unsent := int64(0)
	if r.jobs != nil {
		for range r.jobs {
			unsent++
		}
	}
	h.total.Counts.Dropped += unsent

	res := &results.Result{
		Kind:        results.Kind,
		Schema:      results.SchemaVersion,
		Tool:        "smtpbench " + version.Version(),
		RunID:       r.cfg.RunID,
		Start:       r.start,
		End:         end,
		Target:      r.cfg.Target.String(),
		Description: r.cfg.Describe(probe.pipelining, probe.chunking),
		Host:        hostFacts(),
		StopReason:  r.reason.Load().(string),
		Timeline:    h.timeline,
	}
	if r.cfg.Warmup > 0 {
		res.MeasuredFrom = r.start.Add(r.cfg.Warmup)
	}
	if r.cfg.Open() {
		// Over the measured window: the schedule after the warm-up.
		w := min(r.cfg.Warmup.Seconds(), r.plan.end)
		if r.plan.end > w {
			res.Throughput.TargetPerS = (r.plan.total - r.plan.expected(w)) / (r.plan.end - w)
		}
	}
	cfgJSON, err := json.Marshal(r.cfg)
	if err != nil {
		return nil, err
	}
	res.Config = cfgJSON
	if probe.pipelining {
		res.Notes = append(res.Notes, "PIPELINING: mail, rcpt and "+map[bool]string{false: "data", true: "bdat"}[probe.chunking]+
			" replies are timed from the single write of their command group")
		if r.cfg.Chain && !probe.chunking {
			res.Notes = append(res.Notes, "chained: a message's data and end go out in the write that opens the next "+
				"transaction, and body is timed from that write")
		}
	}
	if err := res.Fill(h.total); err != nil {
		return nil, err
	}
	res.Notes = append(res.Notes, r.bottleneckNotes(res, cpu, end.Sub(r.start))...)
	return res, nil
}

// graceThenAbort gives the messages in flight the grace period after a stop (or until abort is
// closed), then closes what is still open.
func (r *runner) graceThenAbort(workersDone, abort <-chan struct{}, cancelDials func()) {
	select {
	case <-workersDone:
		return
	case <-time.After(r.cfg.Grace):
	case <-abort:
	}
	r.abortInFlight(workersDone, cancelDials)
}

// abortInFlight closes every connection still open and waits for the workers.
func (r *runner) abortInFlight(workersDone <-chan struct{}, cancelDials func()) {
	select {
	case <-workersDone:
		return
	default:
	}
	close(r.abort)
	cancelDials()
	for i := range r.conns {
		if c := r.conns[i].Load(); c != nil {
			c.NetConn().Close()
		}
	}
	<-workersDone
}

// bottleneckNotes warn when the generator, not the server, may have set the pace: its CPU was
// saturated, or it handed messages out late against its own schedule.
func (r *runner) bottleneckNotes(res *results.Result, cpu, wall time.Duration) []string {
	var notes []string
	procs := runtime.GOMAXPROCS(0)
	if wall > 0 && cpu > 0 {
		if share := cpu.Seconds() / (wall.Seconds() * float64(procs)); share > 0.9 {
			notes = append(notes, fmt.Sprintf("warning: smtpbench used %.0f%% of its %d CPUs: the generator itself may have "+
				"been the bottleneck (in-process sink included, when there is one)", 100*share, procs))
		}
	}
	if p := res.Phase(results.Sched.String()); p != nil && r.cfg.Open() && p.P99 > schedLagWarning {
		notes = append(notes, fmt.Sprintf("warning: the generator handed messages out up to %s late against its "+
			"schedule (sched p99): it, not the server, may have set the pace", results.FormatNs(p.P99)))
	}
	return notes
}

// schedLagWarning is the generator lag (sched p99) above which a run warns.
const schedLagWarning = int64(time.Millisecond)

// finish stops new work, recording why the run stopped (the first reason wins).
func (r *runner) finish(reason string) {
	r.stopOnce.Do(func() {
		r.reason.Store(reason)
		r.stop(nil)
	})
}

func (r *runner) running() bool { return r.stopNew.Err() == nil }

// claim takes the next message number, or reports that the count is reached.
func (r *runner) claim() (int64, bool) {
	n := r.next.Add(1) - 1
	if n >= r.limit {
		return 0, false // the run ends when the workers have nothing left, retries included
	}
	return n, true
}

func hostFacts() results.Host {
	name, _ := os.Hostname()
	return results.Host{
		Hostname:   name,
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go:         runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}
}
