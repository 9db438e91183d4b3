package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// svDeadline bounds every wait in these tests.
const svDeadline = 10 * time.Second

// svBuffer is an io.Writer that a test may read while a command writes to it.
type svBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *svBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *svBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// svSignals is a fake signal source: the test sends on ch.
type svSignals struct{ ch chan os.Signal }

func newSVSignals() *svSignals { return &svSignals{ch: make(chan os.Signal, 2)} }

func (s *svSignals) notify() (<-chan os.Signal, func()) { return s.ch, func() {} }

// svEnv is an env writing to buffers, with fake signals.
func svEnv(sigs *svSignals) (*env, *svBuffer, *svBuffer) {
	stdout, stderr := &svBuffer{}, &svBuffer{}
	never := func() (<-chan os.Signal, func()) { return make(chan os.Signal), func() {} }
	e := &env{stdout: stdout, stderr: stderr, signals: never, stallSignals: never}
	if sigs != nil {
		e.signals = sigs.notify
	}
	return e, stdout, stderr
}

// svRun runs a command line that must end by itself.
func svRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	e, out, errOut := svEnv(nil)
	ctx, cancel := context.WithTimeout(context.Background(), svDeadline)
	defer cancel()
	code = run(ctx, e, args)
	return code, out.String(), errOut.String()
}

func TestServeHelp(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"serve", "-h"}, {"help", "serve"}} {
		code, stdout, stderr := svRun(t, args...)
		if code != exitOK {
			t.Errorf("%v: exit %d, want 0; stderr %q", args, code, stderr)
		}
		if !strings.HasPrefix(stdout, "Usage: smtpbench serve") {
			t.Errorf("%v: help starts %.60q", args, stdout)
		}
		for _, flag := range []string{"listen", "hostname", "disable", "expn", "max-line", "max-local-part",
			"max-domain", "max-path", "max-rcpts", "max-size", "max-errors", "max-conns", "timeout",
			"data-timeout", "mode", "dump-dir", "stats-every", "grace", "delay", "reply", "disconnect",
			"greylist", "bandwidth", "stall-at", "stall-for", "seed", "event-loops"} {
			if !regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(flag) + `\b`).MatchString(stdout) {
				t.Errorf("%v: the help does not list --%s", args, flag)
			}
		}
		for _, def := range []string{"(default 127.0.0.1:2525)", "(default 32MiB)", "(default 100)", "(default 5m0s)"} {
			if !strings.Contains(stdout, def) {
				t.Errorf("%v: the help does not give the default %s", args, def)
			}
		}
	}
}

// A bad command line exits 2 with a message naming the flag as the user typed it (two dashes),
// and a pointer to --help rather than the whole manual.
func TestServeBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"--max-size", "abc"}, "--max-size"},
		{[]string{"--max-size", "-1"}, "--max-size"},
		{[]string{"--max-rcpts", "0"}, "--max-rcpts"},
		{[]string{"--max-errors", "x"}, "--max-errors"},
		{[]string{"--max-conns", "-3"}, "--max-conns"},
		{[]string{"--mode", "x"}, "--mode"},
		{[]string{"--disable", "FOO"}, "--disable"},
		{[]string{"--disable", "SIZE,NOPE"}, "--disable"},
		{[]string{"--bogus"}, "--bogus"},
		{[]string{"--timeout", "-1s"}, "--timeout"},
		{[]string{"--data-timeout", "soon"}, "--data-timeout"},
		{[]string{"--max-line", "10"}, "--max-line"},
		{[]string{"--max-path", "600"}, "--max-path"},
		{[]string{"--hostname", "bad host"}, "--hostname"},
		{[]string{"--mode", "dump"}, "--dump-dir"},
		{[]string{"--delay", "rcpt=abc"}, "--delay"},
		{[]string{"--delay", "nowhere=10ms"}, "--delay"},
		{[]string{"--reply", "rcpt=5%:250 fine"}, "--reply"},
		{[]string{"--disconnect", "mail=2"}, "--disconnect"},
		{[]string{"--event-loops", "-2"}, "--event-loops"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tc := range tests {
		args := append([]string{"serve", "--listen", "127.0.0.1:0"}, tc.args...)
		code, stdout, stderr := svRun(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2; stderr %q", tc.args, code, stderr)
			continue
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: stderr %q does not name %s", tc.args, stderr, tc.want)
		}
		if !strings.Contains(stderr, "Run 'smtpbench serve --help' for usage.") {
			t.Errorf("%v: stderr %q does not point to --help", tc.args, stderr)
		}
		if strings.Contains(stdout, "listening") || strings.Contains(stdout, "Usage:") {
			t.Errorf("%v: stdout %q: it should not start, nor print the manual", tc.args, stdout)
		}
		if strings.Contains(stderr, " -"+strings.TrimPrefix(tc.want, "--")+":") {
			t.Errorf("%v: stderr %q names the flag with one dash", tc.args, stderr)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	code, stdout, _ := svRun(t, "version")
	if code != exitOK || !strings.HasPrefix(stdout, "smtpbench ") {
		t.Errorf("version: exit %d, output %q", code, stdout)
	}
}

// svStart runs f (a serve) in the background; the channel gets its exit code. If the test ends
// with it still running, two signals stop it.
func svStart(t *testing.T, sigs *svSignals, f func() int) <-chan int {
	done := make(chan int, 1)
	finished := make(chan struct{})
	go func() {
		done <- f()
		close(finished)
	}()
	t.Cleanup(func() {
		select {
		case <-finished:
			return
		default:
		}
		sigs.ch <- syscall.SIGTERM
		sigs.ch <- syscall.SIGTERM
		select {
		case <-finished:
		case <-time.After(svDeadline):
			t.Errorf("serve did not stop after the test")
		}
	})
	return done
}

// svWaitOutput waits until the output matches re and returns the submatches.
func svWaitOutput(t *testing.T, b *svBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(svDeadline)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the output never matched %s:\n%s", re, b.String())
	return nil
}

// svClient is a minimal SMTP client for these tests: it sends a line and checks the reply code.
type svClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func svDial(t *testing.T, network, addr string) *svClient {
	t.Helper()
	c, err := net.DialTimeout(network, addr, svDeadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(svDeadline))
	cl := &svClient{t: t, c: c, r: bufio.NewReader(c)}
	cl.expect("220")
	return cl
}

func (c *svClient) expect(code string) {
	c.t.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("want %s: %v", code, err)
		}
		if !strings.HasPrefix(line, code) {
			c.t.Fatalf("got %q, want %s", line, code)
		}
		if len(line) > 3 && line[3] == ' ' {
			return
		}
	}
}

func (c *svClient) cmd(line, code string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
	c.expect(code)
}

// svSendMessage sends one message and QUIT.
func svSendMessage(t *testing.T, network, addr string) {
	c := svDial(t, network, addr)
	c.cmd("EHLO client.example", "250")
	c.cmd("MAIL FROM:<a@example.com>", "250")
	c.cmd("RCPT TO:<b@example.org>", "250")
	c.cmd("DATA", "354")
	c.cmd("Subject: cli\r\n\r\nhello\r\n.", "250")
	c.cmd("QUIT", "221")
}

var svListening = regexp.MustCompile(`smtpbench sink listening on (\S+) \((\w+) mode\)`)

// serve runs in-process: it prints where it listens and its stats every --stats-every, serves
// mail, and on SIGTERM stops gracefully, prints a summary and exits 0.
func TestServeRunsUntilSignalled(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "smtpbench-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, tc := range []struct {
		name    string
		network string
		args    []string
		mode    string
	}{
		{"tcp", "tcp", []string{"--listen", "127.0.0.1:0"}, "discard"},
		{"unix dump", "unix", []string{"--listen", "unix:" + filepath.Join(dir, "s.sock"), "--mode", "dump",
			"--dump-dir", filepath.Join(dir, "mail", "new")}, "dump"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sigs := newSVSignals()
			e, stdout, stderr := svEnv(sigs)
			args := append([]string{"serve", "--stats-every", "50ms"}, tc.args...)
			done := svStart(t, sigs, func() int { return run(context.Background(), e, args) })

			m := svWaitOutput(t, stdout, svListening)
			if m[2] != tc.mode {
				t.Errorf("listening in %s mode, want %s", m[2], tc.mode)
			}
			svSendMessage(t, tc.network, m[1])
			svWaitOutput(t, stdout, regexp.MustCompile(`(?m)^ *\S+  sessions 1 \(active \d\)  messages 1 \(`))

			sigs.ch <- syscall.SIGTERM
			select {
			case code := <-done:
				if code != exitOK {
					t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
				}
			case <-time.After(svDeadline):
				t.Fatal("serve did not stop on SIGTERM")
			}
			out := stdout.String()
			for _, want := range []string{
				"terminated: stopping",
				"summary after ",
				"sessions 1, messages 1 (",
				"replies: 220: 1, 221: 1, 250: 4, 354: 1\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if tc.mode == "dump" {
				files, _ := filepath.Glob(filepath.Join(dir, "mail", "new", "*.eml"))
				if len(files) != 1 {
					t.Errorf("%d .eml files in the dump directory, want 1", len(files))
				}
			}
		})
	}
}

// Cancelling serve's context stops it gracefully too.
func TestServeStopsWithItsContext(t *testing.T) {
	sigs := newSVSignals()
	e, stdout, stderr := svEnv(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := svStart(t, sigs, func() int {
		return run(ctx, e, []string{"serve", "--listen", "127.0.0.1:0", "--stats-every", "0"})
	})
	m := svWaitOutput(t, stdout, svListening)
	c := svDial(t, "tcp", m[1])
	c.cmd("EHLO client.example", "250")
	cancel()
	c.expect("421") // idle: told the sink is shutting down
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
		}
	case <-time.After(svDeadline):
		t.Fatal("serve did not stop when its context was cancelled")
	}
	if !strings.Contains(stdout.String(), "summary after ") {
		t.Errorf("no summary:\n%s", stdout)
	}
}

// A second signal stops serve at once, even while a session is in a transaction and --grace
// is long.
func TestServeSecondSignalStopsAtOnce(t *testing.T) {
	sigs := newSVSignals()
	e, stdout, stderr := svEnv(sigs)
	done := svStart(t, sigs, func() int {
		return run(context.Background(), e, []string{"serve", "--listen", "127.0.0.1:0", "--grace", "1h"})
	})
	m := svWaitOutput(t, stdout, svListening)
	c := svDial(t, "tcp", m[1])
	c.cmd("EHLO client.example", "250")
	c.cmd("MAIL FROM:<a@example.com>", "250")
	c.cmd("RCPT TO:<b@example.org>", "250")
	c.cmd("DATA", "354")

	sigs.ch <- syscall.SIGINT
	svWaitOutput(t, stdout, regexp.MustCompile(`interrupt: stopping \(another signal stops at once\)`))
	select {
	case code := <-done:
		t.Fatalf("serve stopped (exit %d) with a session in a transaction and an hour of grace", code)
	case <-time.After(50 * time.Millisecond):
	}
	sigs.ch <- syscall.SIGINT
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
		}
	case <-time.After(svDeadline):
		t.Fatal("a second signal did not stop serve")
	}
	if !strings.Contains(stdout.String(), "summary after ") {
		t.Errorf("no summary:\n%s", stdout)
	}
}
