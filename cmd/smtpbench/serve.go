package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/smtpbench/smtpbench/results"
	"github.com/smtpbench/smtpbench/server"
)

const serveHelp = `
Run the bundled SMTP sink. It accepts mail as fast as the machine allows and discards it (or, with
--mode dump, writes each message to --dump-dir as an .eml file). It prints its counters every
--stats-every and a summary when it stops. SIGINT or SIGTERM stops it gracefully: idle sessions are
told 421, sessions in a transaction may finish within --grace; a second signal stops it at once.

ADDR is host:port for TCP (IPv6 as [::1]:2525) or unix:/path for a unix socket.

Faults (all off by default) make the sink misbehave on purpose. POINT is one of connect, ehlo,
helo, mail, rcpt, data, dot (the reply that ends a message), bdat, rset, quit:

  --delay rcpt=20ms            --delay dot=10ms..200ms        --delay mail=exp:5ms
  --reply rcpt=5%:450 4.2.1 Mailbox busy                      --reply dot=1/100:554 5.7.1 Rejected
  --disconnect data=1%         --disconnect mail=0.5%:421     (silently, or with 421)
  --greylist 2s   --bandwidth 10KiB   --stall-at 10s --stall-for 2s   (SIGUSR1 stalls on demand)

Each fault is drawn from a per-connection random source seeded with --seed, so runs repeat.
`

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "serve", "serve [flags]", serveHelp)
	cfg := server.Config{}
	listen := fs.String("listen", server.DefaultAddr, "listen on `ADDR`")
	fs.StringVar(&cfg.Hostname, "hostname", server.DefaultHostname, "the sink's `NAME` in its greeting and Received headers")
	disable := fs.String("disable", "", "ESMTP extensions not to offer: a comma-separated `LIST` of "+server.ExtensionNames())
	fs.BoolVar(&cfg.ExpnAllowed, "expn", false, "answer EXPN with 252 instead of 502")
	maxLine := positive(server.DefaultMaxLineLength)
	fs.Var(&maxLine, "max-line", "longest command line: `N` octets, CRLF included (longer: 500 5.5.2)")
	maxLocal := positive(server.DefaultMaxLocalPart)
	fs.Var(&maxLocal, "max-local-part", "longest local part of an address: `N` octets (longer: 553)")
	maxDomain := positive(server.DefaultMaxDomain)
	fs.Var(&maxDomain, "max-domain", "longest domain of an address: `N` octets (longer: 553)")
	maxPath := positive(server.DefaultMaxPath)
	fs.Var(&maxPath, "max-path", "longest path: `N` octets, brackets included (longer: 501)")
	maxRcpts := positive(server.DefaultMaxRecipients)
	fs.Var(&maxRcpts, "max-rcpts", "accept `N` recipients per message (more: 452 4.5.3)")
	maxSize := byteSize(server.DefaultMaxMessageSize)
	fs.Var(&maxSize, "max-size", "largest message, `SIZE` octets like 10MiB, advertised with SIZE (larger: 552 5.3.4)")
	maxErrors := positive(server.DefaultMaxErrors)
	fs.Var(&maxErrors, "max-errors", "a session may make `N` protocol errors; the next gets 421")
	maxConns := positive(server.DefaultMaxConns)
	fs.Var(&maxConns, "max-conns", "accept `N` concurrent sessions (more: 421 4.3.2)")
	cmdTimeout := duration(server.DefaultCommandTimeout)
	fs.Var(&cmdTimeout, "timeout", "end a session idle for `D` with 421 4.4.2")
	dataTimeout := duration(server.DefaultDataTimeout)
	fs.Var(&dataTimeout, "data-timeout", "end a session whose message data stalls for `D`")
	mode := fs.String("mode", "discard", "`MODE` for accepted mail: discard or dump")
	fs.StringVar(&cfg.DumpDir, "dump-dir", "", "`DIR` for --mode dump (created if missing)")
	statsEvery := duration(10 * time.Second)
	fs.Var(&statsEvery, "stats-every", "print the counters every `D` (0: only at the end)")
	grace := duration(10 * time.Second)
	fs.Var(&grace, "grace", "a graceful stop waits `D` for sessions in a transaction")
	var delays, replies, disconnects stringList
	fs.Var(&delays, "delay", "delay replies at a point: `POINT=DELAY`, DELAY 20ms, 10ms..200ms or exp:20ms (repeatable)")
	fs.Var(&replies, "reply", "answer with an error instead: `POINT=P:CODE TEXT`, like rcpt=5%:450 4.2.1 Busy (repeatable)")
	fs.Var(&disconnects, "disconnect", "close the connection instead of answering: `POINT=P[:421]` (repeatable)")
	greylist := duration(0)
	fs.Var(&greylist, "greylist", "answer a new (sender, recipient) pair 450 4.7.1 until it is retried `D` later")
	bandwidth := byteSize(0)
	fs.Var(&bandwidth, "bandwidth", "tarpit: each connection reads and writes at most `SIZE` octets a second")
	stallAt, stallFor := duration(0), duration(time.Second)
	fs.Var(&stallAt, "stall-at", "pause every reply `D` after starting (for --stall-for)")
	fs.Var(&stallFor, "stall-for", "how long a stall lasts, at --stall-at or on SIGUSR1: `D`")
	fs.Int64Var(&cfg.Faults.StopAfterMessages, "stop-after-messages", 0, "stop after accepting `N` messages (like smtp-sink -M)")
	fs.Int64Var(&cfg.Faults.StopAfterSessions, "stop-after-sessions", 0, "stop after `N` sessions ended (like smtp-sink -n)")
	fs.Uint64Var(&cfg.Faults.Seed, "seed", 1, "seed of the faults' random draws: `N`")
	fs.IntVar(&cfg.EventLoops, "event-loops", 0, "serve with `N` epoll event loops (Linux; default: half the CPUs, at least 1; -1: a goroutine per connection)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the sink to `FILE` (for go tool pprof)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if cfg.EventLoops == 0 {
		cfg.EventLoops = defaultProcs()
	}
	if cfg.EventLoops > 0 {
		// One P more than there are loops: a loop waiting in epoll_wait then keeps its P (the
		// runtime hands a P away from a thread in a system call only when none is idle), and
		// the rest of the process has one to run on.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cfg.EventLoops + 1))
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return flagErrorf("cpuprofile", "%v", err)
		}
		defer stop()
	}
	var err error
	if cfg.Disable, err = server.ParseExtensions(*disable); err != nil {
		return flagErrorf("disable", "%v", err)
	}
	if cfg.Mode, err = server.ParseMode(*mode); err != nil {
		return flagErrorf("mode", "%v", err)
	}
	cfg.MaxLineLength, cfg.MaxLocalPart, cfg.MaxDomain = int(maxLine), int(maxLocal), int(maxDomain)
	cfg.MaxPath, cfg.MaxRecipients, cfg.MaxMessageSize = int(maxPath), int(maxRcpts), int64(maxSize)
	cfg.MaxErrors, cfg.MaxConns = int(maxErrors), int(maxConns)
	cfg.CommandTimeout, cfg.DataTimeout = time.Duration(cmdTimeout), time.Duration(dataTimeout)
	if err := parseFaults(&cfg.Faults, delays, replies, disconnects); err != nil {
		return err
	}
	cfg.Faults.Greylist, cfg.Faults.Bandwidth = time.Duration(greylist), int64(bandwidth)
	if stallAt > 0 {
		cfg.Faults.StallAt, cfg.Faults.StallFor = time.Duration(stallAt), time.Duration(stallFor)
	}
	if cfg.Faults.StopAfterMessages < 0 {
		return flagErrorf("stop-after-messages", "must not be negative")
	}
	if cfg.Faults.StopAfterSessions < 0 {
		return flagErrorf("stop-after-sessions", "must not be negative")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	if err := configFlagError(cfg.Validate()); err != nil {
		return err
	}
	if cfg.Mode == server.Dump {
		if err := mkdirAll(cfg.DumpDir); err != nil {
			return flagErrorf("dump-dir", "%v", err)
		}
	}

	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	l, err := server.Listen(*listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	fmt.Fprintf(e.stdout, "smtpbench sink listening on %s (%s mode)\n", l.Addr(), cfg.Mode)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	sigs, stop := e.signals()
	defer stop()
	stalls, stopStalls := e.stallSignals()
	defer stopStalls()

	start := time.Now()
	var tick <-chan time.Time
	if statsEvery > 0 {
		t := time.NewTicker(time.Duration(statsEvery))
		defer t.Stop()
		tick = t.C
	}
	prev := srv.Stats()
	for {
		select {
		case <-tick:
			st := srv.Stats()
			printStatsLine(e.stdout, time.Since(start), st, prev, time.Duration(statsEvery))
			prev = st
		case err := <-served:
			return fmt.Errorf("serving: %w", err)
		case <-ctx.Done():
			return shutdown(e, srv, time.Duration(grace), nil, start)
		case <-stalls:
			fmt.Fprintf(e.stdout, "stalling every reply for %s\n", time.Duration(stallFor))
			srv.Stall(time.Duration(stallFor))
		case <-srv.Stopped():
			fmt.Fprintln(e.stdout, "stop-after limit reached: stopping")
			return shutdown(e, srv, time.Duration(grace), sigs, start)
		case sig := <-sigs:
			fmt.Fprintf(e.stdout, "%v: stopping (another signal stops at once)\n", sig)
			return shutdown(e, srv, time.Duration(grace), sigs, start)
		}
	}
}

// shutdown stops the sink gracefully within grace (or at once on a second signal) and prints the
// summary.
func shutdown(e *env, srv *server.Server, grace time.Duration, sigs <-chan os.Signal, start time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if sigs != nil {
		go func() {
			select {
			case <-sigs:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	err := srv.Shutdown(ctx)
	printSummary(e.stdout, time.Since(start), srv.Stats())
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// serveFlags names the flag behind each server.Config field, for errors.
var serveFlags = map[string]string{
	"Hostname": "hostname", "MaxLineLength": "max-line", "MaxLocalPart": "max-local-part",
	"MaxDomain": "max-domain", "MaxPath": "max-path", "MaxRecipients": "max-rcpts",
	"MaxMessageSize": "max-size", "MaxErrors": "max-errors", "MaxConns": "max-conns",
	"CommandTimeout": "timeout", "DataTimeout": "data-timeout", "Mode": "mode", "DumpDir": "dump-dir",
	"Disable": "disable", "EventLoops": "event-loops", "Faults": "delay/--reply/--disconnect",
}

// configFlagError turns a server.Config validation error into a usage error naming the flag.
func configFlagError(err error) error {
	if err == nil {
		return nil
	}
	var fe *server.FieldError
	if errors.As(err, &fe) {
		if name, ok := serveFlags[fe.Field]; ok {
			return flagErrorf(name, "%s", fe.Msg)
		}
	}
	return usageError{err}
}

func mkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// printStatsLine prints one line of counters with the message rate since the previous line.
func printStatsLine(w io.Writer, elapsed time.Duration, st, prev server.Stats, every time.Duration) {
	rate := float64(st.Messages-prev.Messages) / every.Seconds()
	fmt.Fprintf(w, "%8s  sessions %d (active %d)  messages %d (%.0f/s)  rejected %d  recipients %d  bytes %d\n",
		elapsed.Round(time.Second), st.Sessions, st.ActiveSessions, st.Messages, rate, st.Rejected,
		st.Recipients, st.Bytes)
}

// printSummary prints the final counters and the replies by code.
func printSummary(w io.Writer, elapsed time.Duration, st server.Stats) {
	secs := elapsed.Seconds()
	fmt.Fprintf(w, "summary after %s: sessions %d, messages %d (%.0f/s), rejected %d, recipients %d, bytes %d, timeouts %d\n",
		elapsed.Round(time.Millisecond), st.Sessions, st.Messages, float64(st.Messages)/secs, st.Rejected,
		st.Recipients, st.Bytes, st.Timeouts)
	codes := make([]int, 0, len(st.Replies))
	for c := range st.Replies {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = strconv.Itoa(c) + ": " + strconv.FormatUint(st.Replies[c], 10)
	}
	fmt.Fprintf(w, "replies: %s\n", strings.Join(parts, ", "))
	if len(st.Faults) > 0 || st.Greylisted > 0 {
		var fs []string
		for p, fc := range st.Faults {
			fs = append(fs, fmt.Sprintf("%s: delayed %d, replied %d, disconnected %d", p, fc.Delayed, fc.Replied, fc.Disconnected))
		}
		sort.Strings(fs)
		if st.Greylisted > 0 {
			fs = append(fs, fmt.Sprintf("greylisted: %d", st.Greylisted))
		}
		fmt.Fprintf(w, "faults injected: %s\n", strings.Join(fs, "; "))
	}
	if len(st.Latency) > 0 {
		fmt.Fprintln(w, "the sink's own latency, from a command's arrival to its reply written:")
		res := &results.Result{Phases: st.Latency}
		results.RenderPhases(w, res, results.RenderOptions{})
	}
}

// parseFaults reads --delay, --reply and --disconnect, each POINT=SPEC.
func parseFaults(f *server.Faults, delays, replies, disconnects []string) error {
	point := func(flag, v string) (*server.PointFault, string, error) {
		name, spec, ok := strings.Cut(v, "=")
		if !ok {
			return nil, "", flagErrorf(flag, "%q: want POINT=...", v)
		}
		p, err := server.ParseFaultPoint(strings.TrimSpace(name))
		if err != nil {
			return nil, "", flagErrorf(flag, "%v", err)
		}
		return &f.Points[p], spec, nil
	}
	for _, v := range delays {
		pf, spec, err := point("delay", v)
		if err != nil {
			return err
		}
		if pf.Delay, err = server.ParseDist(spec); err != nil {
			return flagErrorf("delay", "%v", err)
		}
	}
	for _, v := range replies {
		pf, spec, err := point("reply", v)
		if err != nil {
			return err
		}
		if pf.Reply, pf.ReplyCode, pf.ReplyText, err = server.ParseFaultReply(spec); err != nil {
			return flagErrorf("reply", "%v", err)
		}
	}
	for _, v := range disconnects {
		pf, spec, err := point("disconnect", v)
		if err != nil {
			return err
		}
		ps, code, with421 := strings.Cut(spec, ":")
		if with421 && strings.TrimSpace(code) != "421" {
			return flagErrorf("disconnect", "%q: only :421 may follow the probability", v)
		}
		if pf.Disconnect, err = server.ParseProbability(ps); err != nil {
			return flagErrorf("disconnect", "%v", err)
		}
		pf.Disconnect421 = with421
	}
	return nil
}
