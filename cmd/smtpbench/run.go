package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/smtpbench/smtpbench/loadgen"
	"github.com/smtpbench/smtpbench/pipeline"
	"github.com/smtpbench/smtpbench/results"
	"github.com/smtpbench/smtpbench/server"
)

const runHelp = `
Benchmark an SMTP server: run concurrent SMTP sessions that send generated messages, and print the
latency of every phase (connect, greeting, ehlo, mail, rcpt, data, body, bdat, rset, quit, txn,
response, session, sched) with a summary.

Closed model (the default): -c sessions send messages back to back. Open model (--rate or
--stages): message k is due at its slot, start + k/rate, whatever the server's pace; a slot that
finds every session busy waits (late) while the pool grows up to --max-sessions, and a full
--max-backlog drops it. txn is timed from when a message started, response from its slot: the gap
between them is the coordinated omission a closed-loop tool hides.

TARGET is host:port, [v6]:port or unix:/path. Without a TARGET, the bundled sink starts in this
process on a loopback port and is benchmarked.

The run stops after -n messages or -d duration, whichever comes first (neither: 10s), or on
Ctrl-C: messages in flight get --grace to finish (a second Ctrl-C stops them at once), and the
result is printed and written to --out all the same.
`

// runFlags are run's flags, parsed into a loadgen.Config.
type runFlags struct {
	cfg          loadgen.Config
	sessions     positive
	messages     int64
	duration     duration
	perConn      int
	size         byteSize
	rcpts        positive
	pipelining   string
	timeout      duration
	retryBackoff duration
	grace        duration
	rate         float64
	stages       string
	arrival      string
	warmup       duration
	progress     string
	out          string
	hlog         string
	cpuProfile   string
	procs        *int
	output       outputFlags
}

func (f *runFlags) register(fs *flag.FlagSet) {
	f.sessions = loadgen.DefaultSessions
	fs.Var(&f.sessions, "c", "run `N` concurrent sessions")
	fs.Var(&f.sessions, "sessions", "`N`: same as -c")
	fs.Int64Var(&f.messages, "n", 0, "stop after `N` messages")
	fs.Int64Var(&f.messages, "messages", 0, "`N`: same as -n")
	fs.Var(&f.duration, "d", "stop after `D` (like 30s)")
	fs.Var(&f.duration, "duration", "`D`: same as -d")
	fs.IntVar(&f.perConn, "per-conn", 0, "send `K` messages per connection, then QUIT and reconnect (0: keep it; 1: one per message)")
	f.size = loadgen.DefaultSize
	fs.Var(&f.size, "size", "body of each message: `SIZE` octets of text (like 1024, 64KiB)")
	f.rcpts = loadgen.DefaultRecipients
	fs.Var(&f.rcpts, "rcpts", "`N` recipients per message")
	fs.StringVar(&f.cfg.From, "from", loadgen.DefaultFrom, "sender `TEMPLATE`; {n} is the message number; '<>' is the null reverse-path")
	fs.StringVar(&f.cfg.To, "to", loadgen.DefaultTo, "recipient `TEMPLATE`; {n} is the recipient number, unique in the run")
	fs.StringVar(&f.cfg.LocalName, "helo", "smtpbench.localhost", "`NAME` to send with EHLO")
	fs.StringVar(&f.pipelining, "pipelining", "auto", "`MODE`: auto (when offered), on (required), off")
	fs.BoolVar(&f.cfg.BDAT, "bdat", false, "send messages with BDAT (CHUNKING) instead of DATA")
	fs.BoolVar(&f.cfg.Chain, "chain", true, "with PIPELINING and DATA, send a message's data with the next message's commands (RFC 2920 §3.1): one round trip per message")
	fs.Float64Var(&f.rate, "rate", 0, "open model: `R` messages a second, whatever the server's pace")
	fs.StringVar(&f.stages, "stages", "", "open model with ramps: `LIST` of DURATION:RATE or DURATION:FROM-TO, like 30s:0-2000,60s:2000,10s:2000-0")
	fs.StringVar(&f.arrival, "arrival", "uniform", "open model: `KIND` of arrivals, uniform (evenly spaced) or poisson")
	fs.IntVar(&f.cfg.MaxSessions, "max-sessions", 0, "open model: grow the pool up to `N` sessions (default max(100, -c))")
	fs.IntVar(&f.cfg.MaxBacklog, "max-backlog", 0, "open model: at most `N` messages wait for a session; more are dropped (default: a second of the peak rate)")
	fs.Var(&f.warmup, "warmup", "leave the first `D` out of the histograms and totals (the timeline keeps it)")
	fs.StringVar(&f.progress, "progress", "auto", "live progress on stderr every second: `MODE` auto, tty, lines, json or off")
	fs.IntVar(&f.cfg.Retries, "retry", 0, "retry a temporary failure (4xx) up to `N` times, for the recipients it deferred")
	f.retryBackoff = duration(loadgen.DefaultRetryBackoff)
	fs.Var(&f.retryBackoff, "retry-backoff", "wait `D` before a first retry, doubling each time, with jitter")
	fs.Var(&f.timeout, "timeout", "bound every wait for the server by `D` (default: RFC 5321's, 2 to 10 minutes)")
	f.grace = duration(loadgen.DefaultGrace)
	fs.Var(&f.grace, "grace", "at a stop, messages in flight get `D` to finish")
	fs.StringVar(&f.out, "out", "", "write the result as JSON to `FILE` (atomically)")
	f.procs = procsFlag(fs, "the load (default: half of them, all of them with the in-process sink)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (for go tool pprof)")
	fs.StringVar(&f.hlog, "hlog", "", "write an HdrHistogram interval log (per-second histograms tagged by phase) to `FILE`")
	f.output.register(fs)
}

// config turns the flags into a loadgen.Config, naming the flag of anything wrong.
func (f *runFlags) config(target pipeline.Target) (loadgen.Config, error) {
	cfg := f.cfg
	cfg.Target = target
	cfg.Sessions, cfg.Messages, cfg.Duration = int(f.sessions), f.messages, time.Duration(f.duration)
	cfg.PerConn, cfg.Size, cfg.Recipients = f.perConn, int(f.size), int(f.rcpts)
	cfg.Grace = time.Duration(f.grace)
	cfg.RetryBackoff = time.Duration(f.retryBackoff)
	cfg.Rate, cfg.Warmup = f.rate, time.Duration(f.warmup)
	if f.stages != "" {
		st, err := loadgen.ParseStages(f.stages)
		if err != nil {
			return cfg, flagErrorf("stages", "%v", err)
		}
		cfg.Stages = st
	}
	var err error
	if cfg.Arrival, err = loadgen.ParseArrival(f.arrival); err != nil {
		return cfg, flagErrorf("arrival", "%v", err)
	}
	if f.rate < 0 {
		return cfg, flagErrorf("rate", "must not be negative")
	}
	if cfg.Pipelining, err = pipeline.ParseMode(f.pipelining); err != nil {
		return cfg, flagErrorf("pipelining", "%v", err)
	}
	if f.timeout > 0 {
		cfg.Timeouts.All(time.Duration(f.timeout))
	}
	if f.messages < 0 {
		return cfg, flagErrorf("n", "must not be negative")
	}
	if f.perConn < 0 {
		return cfg, flagErrorf("per-conn", "must not be negative")
	}
	if err := cfg.Validate(); err != nil {
		var fe *loadgen.FieldError
		if errors.As(err, &fe) {
			if name, ok := runFlagNames[fe.Field]; ok {
				return cfg, flagErrorf(name, "%s", fe.Msg)
			}
		}
		return cfg, usageError{err}
	}
	return cfg, nil
}

var runFlagNames = map[string]string{
	"Sessions": "c", "Messages": "n", "Duration": "d", "PerConn": "per-conn", "Size": "size",
	"Recipients": "rcpts", "From": "from", "To": "to", "LocalName": "helo", "Grace": "grace",
	"Retries": "retry", "RetryBackoff": "retry-backoff", "Rate": "rate", "Stages": "stages",
	"MaxSessions": "max-sessions", "MaxBacklog": "max-backlog", "Warmup": "warmup",
}

func runRun(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "run", "run [flags] [TARGET]", runHelp)
	var f runFlags
	f.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{fmt.Errorf("one TARGET at most, got %q", pos)}
	}
	var target pipeline.Target
	if len(pos) == 1 {
		if target, err = pipeline.ParseTarget(pos[0]); err != nil {
			return usageError{fmt.Errorf("TARGET: %v", err)}
		}
	}
	// Check the flags before starting anything, with a placeholder target if none was given.
	check := target
	if check.Address == "" {
		check = pipeline.Target{Network: "tcp", Address: "127.0.0.1:1"}
	}
	if _, err := f.config(check); err != nil {
		return err
	}
	ro, err := f.output.options()
	if err != nil {
		return err
	}
	progress, err := newProgress(e.stderr, f.progress)
	if err != nil {
		return flagErrorf("progress", "%v", err)
	}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return flagErrorf("cpuprofile", "%v", err)
		}
		defer stop()
	}

	procsDefault := defaultProcs()
	if target.Address == "" {
		procsDefault = runtime.NumCPU() // the sink shares the process
	}
	restore, err := setProcs(*f.procs, procsDefault)
	if err != nil {
		return err
	}
	defer restore()
	if target.Address == "" {
		sink, addr, err := startEmbeddedSink(int(f.sessions))
		if err != nil {
			return err
		}
		defer sink.Close()
		target = pipeline.Target{Network: "tcp", Address: addr}
		fmt.Fprintf(e.stderr, "No TARGET: benchmarking the bundled sink on %s, in this process.\n", addr)
	}
	cfg, _ := f.config(target)

	sigs, stopSignals := e.signals()
	defer stopSignals()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	abort := make(chan struct{})
	cfg.Abort = abort
	go func() {
		n := 0
		for {
			select {
			case sig := <-sigs:
				n++
				if n == 1 {
					fmt.Fprintf(e.stderr, "%v: stopping; messages in flight get %s (again to stop at once)\n", sig, cfg.Grace)
					cancel()
				} else {
					close(abort)
					return
				}
			case <-runCtx.Done():
				if n == 0 {
					return // the run ended by itself, or the caller's context did it
				}
			}
		}
	}()

	var hlog *hlogFile
	if f.hlog != "" {
		if hlog, err = createHlog(f.hlog, time.Now()); err != nil {
			return flagErrorf("hlog", "%v", err)
		}
		defer hlog.abandon()
		cfg.OnInterval = hlog.write
	}
	if progress != nil {
		cfg.Progress = progress.show
	}
	fmt.Fprintf(e.stderr, "running against %s: %s\n", target, cfg.Describe(cfg.Pipelining != pipeline.Off, cfg.BDAT))
	res, err := loadgen.Run(runCtx, cfg)
	progress.done()
	if err != nil {
		return err
	}
	if f.out != "" {
		if err := results.WriteFile(f.out, res); err != nil {
			return fmt.Errorf("writing %s: %w", f.out, err)
		}
		fmt.Fprintf(e.stderr, "result written to %s\n", f.out)
	}
	if hlog != nil {
		if err := hlog.finish(); err != nil {
			return fmt.Errorf("writing %s: %w", f.hlog, err)
		}
		fmt.Fprintf(e.stderr, "interval log written to %s\n", f.hlog)
	}
	if err := results.RenderText(e.stdout, res, ro); err != nil {
		return err
	}
	return checkThresholds(e.stdout, res, ro)
}

// startEmbeddedSink starts the bundled sink on a loopback port for a run with no target.
func startEmbeddedSink(sessions int) (*server.Server, string, error) {
	srv, err := server.New(server.Config{MaxConns: max(server.DefaultMaxConns, 2*sessions)})
	if err != nil {
		return nil, "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("starting the bundled sink: %w", err)
	}
	go srv.Serve(l)
	return srv, l.Addr().String(), nil
}

// parseInterspersed parses flags that may come before or after positional arguments
// ("run 127.0.0.1:25 -c 10" as well as "run -c 10 127.0.0.1:25").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		if strings.HasPrefix(args[0], "-") && args[0] != "-" {
			continue
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
