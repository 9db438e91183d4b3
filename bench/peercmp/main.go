// Command peercmp compares smtpbench with its peers on one machine, over loopback: Postfix's
// smtp-source and smtp-sink, go-smtp's server (bench/gosmtp) and a raw loopback program that moves
// the same bytes with no SMTP at all (bench/rawloop, the limit of each shape of exchange). Every
// row sends the same messages (-size octets of body, one recipient, -c sessions kept open); the
// rows run in turn, -reps times, in an order rotated each repetition, so that a noisy machine
// hurts them alike, and the medians are printed as a Markdown table with the targets.
//
// usage: go run ./bench/peercmp [-reps 5] [-n 20000] [-c 10] [-size 1024] [-only ROWS] [-out FILE]
//
// bench/peers.sh installs the peers first (bench/peers/install.sh) and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	reps, n, c, size int
	only             string
	out              string
	timeout          time.Duration
	warmup           bool
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	flag.IntVar(&o.reps, "reps", 5, "run every row `R` times, interleaved")
	flag.IntVar(&o.n, "n", 20000, "`N` messages a run")
	flag.IntVar(&o.c, "c", 10, "`N` sessions (connections, kept open)")
	flag.IntVar(&o.size, "size", 1024, "`OCTETS` of body a message")
	flag.StringVar(&o.only, "only", "", "run only these `ROWS` (comma-separated keys: "+rowKeys()+")")
	flag.StringVar(&o.out, "out", "", "also write the Markdown report to `FILE`")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Minute, "stop a run that takes longer than `D`, as failed")
	flag.BoolVar(&o.warmup, "warmup", true, "run every row once with n/10 messages, unmeasured, first")
	flag.Parse()
	if o.reps < 1 || o.n < 1 || o.c < 1 || o.size < 2 || flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	selected, err := selectRows(o.only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peercmp:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := &harness{opts: o, servers: map[string]*server{}}
	defer h.cleanup() // every process we started, whatever happens
	if err := h.setup(ctx, selected); err != nil {
		fmt.Fprintln(os.Stderr, "peercmp:", err)
		return 1
	}
	var runnable []row
	for _, r := range selected {
		if why := h.missing(r); why != "" {
			h.skipped = append(h.skipped, fmt.Sprintf("%s: %s", r.key, why))
			fmt.Fprintf(os.Stderr, "skipping %s: %s\n", r.key, why)
			continue
		}
		runnable = append(runnable, r)
	}
	if len(runnable) == 0 {
		fmt.Fprintln(os.Stderr, "peercmp: nothing to run")
		return 1
	}

	if o.warmup {
		fmt.Fprintf(os.Stderr, "warm-up: every row once with %d messages\n", max(1, o.n/10))
		for _, r := range runnable {
			if ctx.Err() != nil {
				break
			}
			if s := h.measure(ctx, r, 0, max(1, o.n/10)); s.err != "" {
				fmt.Fprintf(os.Stderr, "  warm-up %s failed: %s\n", r.key, s.err)
			}
		}
	}
	samples := map[string][]sample{}
	for rep := 1; rep <= o.reps && ctx.Err() == nil; rep++ {
		k := (rep - 1) % len(runnable) // rotate the order each repetition
		order := append(append([]row(nil), runnable[k:]...), runnable[:k]...)
		for i, r := range order {
			if ctx.Err() != nil {
				break
			}
			s := h.measure(ctx, r, rep, o.n)
			if ctx.Err() != nil {
				break // interrupted: not a failure of the row
			}
			s.pos = i + 1
			samples[r.key] = append(samples[r.key], s)
			status := "ok"
			if s.err != "" {
				status = "FAILED: " + s.err
			}
			fmt.Fprintf(os.Stderr, "rep %d/%d  %-14s %8.0f msgs/s  client %6.1f µs/msg  server %6.1f µs/msg  %s\n",
				rep, o.reps, r.key, s.rate(), s.clientPerMsg(), s.serverPerMsg(), status)
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "peercmp: interrupted; the report covers the runs done")
	}

	var report strings.Builder
	h.writeReport(&report, runnable, samples)
	fmt.Print(report.String())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "peercmp:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "report written to %s\n", o.out)
	}
	if ctx.Err() != nil {
		return 130
	}
	return 0
}

func rowKeys() string {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.key
	}
	return strings.Join(keys, ",")
}

// selectRows returns the rows -only names, in the table's order (all of them for "").
func selectRows(only string) ([]row, error) {
	if only == "" {
		return rows, nil
	}
	want := map[string]bool{}
	for k := range strings.SplitSeq(only, ",") {
		k = strings.TrimSpace(k)
		found := false
		for _, r := range rows {
			found = found || r.key == k
		}
		if !found {
			return nil, fmt.Errorf("-only: unknown row %q (rows: %s)", k, rowKeys())
		}
		want[k] = true
	}
	var sel []row
	for _, r := range rows {
		if want[r.key] {
			sel = append(sel, r)
		}
	}
	return sel, nil
}

// harness holds the binaries and the servers.
type harness struct {
	opts    options
	dir     string // temporary: the binaries and the clients' output
	root    string // the smtpbench module
	source  string // smtp-source, or "" if not installed
	servers map[string]*server
	skipped []string
	env     environment
}

// setup builds the binaries and starts the servers the rows need.
func (h *harness) setup(ctx context.Context, sel []row) error {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("finding the smtpbench module (run from inside it): %v", err)
	}
	h.root = strings.TrimSpace(string(out))
	if h.dir, err = os.MkdirTemp("", "peercmp-"); err != nil {
		return err
	}
	os.Setenv("PATH", os.Getenv("PATH")+string(os.PathListSeparator)+"/usr/sbin:/usr/local/sbin")
	h.source, _ = exec.LookPath("smtp-source")
	sink, _ := exec.LookPath("smtp-sink")

	fmt.Fprintf(os.Stderr, "building smtpbench, rawloop and the go-smtp server into %s\n", h.dir)
	builds := []struct{ dir, pkg, out string }{
		{h.root, "./cmd/smtpbench", "smtpbench"},
		{h.root, "./bench/rawloop", "rawloop"},
		{filepath.Join(h.root, "bench", "gosmtp"), ".", "gosmtp"},
	}
	for _, b := range builds {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", h.bin(b.out), b.pkg)
		cmd.Dir, cmd.Stdout, cmd.Stderr = b.dir, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %v", b.pkg, err)
		}
	}
	h.env = describeEnvironment(h.bin("gosmtp"))

	need := map[string]bool{}
	for _, r := range sel {
		need[r.server] = true
	}
	starts := []struct {
		name string
		argv func(addr string) []string
	}{
		{smtpSink, func(addr string) []string {
			// As bench/peers/start-smtp-sink.sh: discard, up to 1024 sessions, backlog 1024.
			// It must drop root privileges (-u) when it has them.
			argv := []string{sink, "-m", "1024", addr, "1024"}
			if os.Geteuid() == 0 {
				argv = append([]string{sink, "-u", "nobody"}, argv[1:]...)
			}
			return argv
		}},
		{serve, func(addr string) []string {
			return []string{h.bin("smtpbench"), "serve", "--listen", addr, "--stats-every", "0"}
		}},
		{gosmtp, func(addr string) []string { return []string{h.bin("gosmtp"), "-listen", addr} }},
		{rawServe, func(addr string) []string { return []string{h.bin("rawloop"), "serve", addr} }},
	}
	for _, s := range starts {
		if !need[s.name] || (s.name == smtpSink && sink == "") {
			continue
		}
		srv, err := h.startServer(s.name, s.argv)
		if err != nil {
			return err
		}
		h.servers[s.name] = srv
	}
	return nil
}

func (h *harness) bin(name string) string { return filepath.Join(h.dir, name) }

// missing says why a row cannot run, or "".
func (h *harness) missing(r row) string {
	if r.client == smtpSource && h.source == "" {
		return "smtp-source is not installed (bench/peers/install.sh, as root)"
	}
	if h.servers[r.server] == nil {
		return r.server + " is not installed (bench/peers/install.sh, as root)"
	}
	return ""
}

// server is a server process on a loopback port.
type server struct {
	name string
	addr string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when it exits
}

func (h *harness) startServer(name string, argv func(string) []string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(h.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	args := argv(addr)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %v", name, err)
	}
	s := &server{name: name, addr: addr, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	fmt.Fprintf(os.Stderr, "started %s on %s (pid %d): %s\n", name, addr, cmd.Process.Pid, strings.Join(args, " "))
	if err := waitPort(addr, s.done, 5*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s did not start on %s: %v (log: %s)", name, addr, err, tail(log.Name()))
	}
	return s, nil
}

// stop kills the server and waits for it.
func (s *server) stop() {
	s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		fmt.Fprintf(os.Stderr, "peercmp: %s (pid %d) did not exit\n", s.name, s.cmd.Process.Pid)
	}
	s.log.Close()
}

// cleanup stops every server and removes the temporary directory.
func (h *harness) cleanup() {
	for _, s := range h.servers {
		s.stop()
	}
	if h.dir != "" {
		os.RemoveAll(h.dir)
	}
}

// tail returns the last line of a file, for an error message.
func tail(name string) string {
	b, _ := os.ReadFile(name)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
