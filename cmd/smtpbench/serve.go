package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/smtpbench/smtpbench/server"
)

const serveHelp = `
Run the bundled SMTP sink. It accepts mail as fast as the machine allows and discards it (or, with
--mode dump, writes each message to --dump-dir as an .eml file). It prints its counters every
--stats-every and a summary when it stops. SIGINT or SIGTERM stops it gracefully: idle sessions are
told 421, sessions in a transaction may finish within --grace; a second signal stops it at once.

ADDR is host:port for TCP (IPv6 as [::1]:2525) or unix:/path for a unix socket.
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
	fs.IntVar(&cfg.EventLoops, "event-loops", 0, "serve with `N` epoll event loops (Linux; 0: one per two CPUs, -1: a goroutine per connection)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the sink to `FILE` (for go tool pprof)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
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
	"Disable": "disable", "EventLoops": "event-loops",
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
}
