package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The CLI, run in-process through run(ctx, env, args) with fake signals and buffered output.

// clDeadline bounds every wait of these tests.
const clDeadline = 5 * time.Second

// clBuffer is an io.Writer that the test reads while the command writes to it.
type clBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *clBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *clBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// clEnv is an env with buffers for output and channels the test sends fake signals on.
type clEnv struct {
	env
	out, err     *clBuffer
	sigs, stalls chan os.Signal
}

func newCLEnv() *clEnv {
	e := &clEnv{out: &clBuffer{}, err: &clBuffer{}, sigs: make(chan os.Signal, 2), stalls: make(chan os.Signal, 1)}
	e.env = env{
		stdout: e.out, stderr: e.err,
		signals:      func() (<-chan os.Signal, func()) { return e.sigs, func() {} },
		stallSignals: func() (<-chan os.Signal, func()) { return e.stalls, func() {} },
	}
	return e
}

// clRun runs a command line that must end by itself.
func clRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	e := newCLEnv()
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), &e.env, args) }()
	select {
	case code = <-done:
	case <-time.After(clDeadline):
		t.Fatalf("%q did not return", args)
	}
	return code, e.out.String(), e.err.String()
}

func TestCLIServeHelp(t *testing.T) {
	flags := []string{"listen", "hostname", "disable", "expn", "max-line", "max-local-part", "max-domain", "max-path",
		"max-rcpts", "max-size", "max-errors", "max-conns", "timeout", "data-timeout", "mode", "dump-dir", "stats-every",
		"grace", "delay", "reply", "disconnect", "greylist", "bandwidth", "stall-at", "stall-for",
		"stop-after-messages", "stop-after-sessions", "seed", "event-loops"}
	for _, args := range [][]string{{"serve", "--help"}, {"serve", "-h"}, {"help", "serve"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := clRun(t, args...)
			if code != exitOK {
				t.Errorf("exit %d, want 0 (stderr %q)", code, stderr)
			}
			if !strings.HasPrefix(stdout, "Usage: smtpbench serve") {
				t.Errorf("help starts with %.60q", stdout)
			}
			_, list, ok := strings.Cut(stdout, "\nFlags:\n")
			if !ok {
				t.Fatalf("no Flags: section in %q", stdout)
			}
			listed := map[string]bool{}
			for _, l := range strings.Split(strings.TrimRight(list, "\n"), "\n") {
				trimmed := strings.TrimLeft(l, " ")
				if !strings.HasPrefix(trimmed, "-") {
					continue // a wrapped description
				}
				if !strings.HasPrefix(l, "  --") {
					t.Errorf("flag line %q does not start with two dashes", l)
					continue
				}
				name, _, _ := strings.Cut(strings.TrimPrefix(l, "  --"), " ")
				listed[name] = true
			}
			for _, f := range flags {
				if !listed[f] {
					t.Errorf("--%s is not in the help", f)
				}
			}
			if regexp.MustCompile(`(^|[\s(])-[a-z]{2,}`).MatchString(list) {
				t.Errorf("the help names a long flag with one dash: %q", regexp.MustCompile(`(^|[\s(])-[a-z]{2,}`).FindString(list))
			}
		})
	}
}

func TestCLIServeBadValues(t *testing.T) {
	tests := []struct {
		args []string
		flag string // the flag the error must name, with two dashes
	}{
		{[]string{"--max-size", "abc"}, "max-size"},
		{[]string{"--max-size", "-1"}, "max-size"},
		{[]string{"--max-rcpts", "0"}, "max-rcpts"},
		{[]string{"--max-rcpts", "x"}, "max-rcpts"},
		{[]string{"--mode", "x"}, "mode"},
		{[]string{"--disable", "FOO"}, "disable"},
		{[]string{"--disable", "SIZE,FOO"}, "disable"},
		{[]string{"--delay", "rcpt=abc"}, "delay"},
		{[]string{"--delay", "nowhere=5ms"}, "delay"},
		{[]string{"--delay", "rcpt"}, "delay"},
		{[]string{"--reply", "rcpt=5%:250 ok"}, "reply"},
		{[]string{"--reply", "rcpt=150%:450 busy"}, "reply"},
		{[]string{"--disconnect", "mail=5%:450"}, "disconnect"},
		{[]string{"--disconnect", "mail=lots"}, "disconnect"},
		{[]string{"--timeout", "soon"}, "timeout"},
		{[]string{"--stats-every", "-1s"}, "stats-every"},
		{[]string{"--max-line", "10"}, "max-line"},
		{[]string{"--hostname", "not a name"}, "hostname"},
		{[]string{"--mode", "dump"}, "dump-dir"},
		{[]string{"--event-loops", "-5"}, "event-loops"},
		{[]string{"--stop-after-messages", "-1"}, "stop-after-messages"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--no-such-flag=1"}, "no-such-flag"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"serve", "--listen", "127.0.0.1:0"}, tc.args...)
			code, stdout, stderr := clRun(t, args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, exitUsage, stdout, stderr)
			}
			if !strings.Contains(stderr, "--"+tc.flag) {
				t.Errorf("stderr %q does not name --%s", stderr, tc.flag)
			}
			if regexp.MustCompile(`(^|[^-])-` + regexp.QuoteMeta(tc.flag) + `\b`).MatchString(stderr) {
				t.Errorf("stderr %q names the flag with one dash", stderr)
			}
			if strings.Contains(stdout, "listening") {
				t.Errorf("the sink started: %q", stdout)
			}
		})
	}
	t.Run("an argument", func(t *testing.T) {
		code, _, stderr := clRun(t, "serve", "extra")
		if code != exitUsage || !strings.Contains(stderr, `"extra"`) {
			t.Errorf("exit %d, stderr %q; want %d and the argument named", code, stderr, exitUsage)
		}
	})
}

func TestCLIVersionAndUsage(t *testing.T) {
	code, stdout, stderr := clRun(t, "version")
	if code != exitOK || !strings.HasPrefix(stdout, "smtpbench ") || stderr != "" {
		t.Errorf("version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := clRun(t, "help"); code != exitOK || !strings.Contains(stdout, "serve") {
		t.Errorf("help: exit %d, stdout %q", code, stdout)
	}
	if code, _, _ := clRun(t); code != exitUsage {
		t.Errorf("no command: exit %d, want %d", code, exitUsage)
	}
	if code, _, stderr := clRun(t, "frobnicate"); code != exitUsage || !strings.Contains(stderr, "frobnicate") {
		t.Errorf("an unknown command: exit %d, stderr %q", code, stderr)
	}
}

var clListening = regexp.MustCompile(`listening on (\S+) \(discard mode\)`)

// clWaitOutput waits until b holds a match of re.
func clWaitOutput(t *testing.T, b *clBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(clDeadline)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output %q", re, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serve prints stats lines while it runs and, on SIGINT or SIGTERM, stops gracefully, prints a
// summary and exits 0. Both drivers.
func TestCLIServeRunsUntilSignalled(t *testing.T) {
	for _, loops := range []string{"0", "-1"} {
		t.Run("event-loops="+loops, func(t *testing.T) {
			e := newCLEnv()
			done := make(chan int, 1)
			args := []string{"serve", "--listen", "127.0.0.1:0", "--stats-every", "50ms", "--event-loops", loops}
			go func() { done <- run(context.Background(), &e.env, args) }()
			addr := clWaitOutput(t, e.out, clListening)[1]

			conn, err := net.DialTimeout("tcp", addr, clDeadline)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(clDeadline))
			r := bufio.NewReader(conn)
			expect := func(code string) {
				t.Helper()
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						t.Fatalf("waiting for %s: %v", code, err)
					}
					if !strings.HasPrefix(l, code) {
						t.Fatalf("got %q, want %s", l, code)
					}
					if l[3] == ' ' {
						return
					}
				}
			}
			expect("220")
			for _, step := range []struct{ send, code string }{
				{"EHLO client.example\r\n", "250"}, {"MAIL FROM:<a@example.com>\r\n", "250"},
				{"RCPT TO:<b@example.org>\r\n", "250"}, {"DATA\r\n", "354"}, {"Subject: x\r\n\r\nhi\r\n.\r\n", "250"},
			} {
				conn.Write([]byte(step.send))
				expect(step.code)
			}
			clWaitOutput(t, e.out, regexp.MustCompile(`sessions 1 \(active 1\)\s+messages 1 `))

			e.sigs <- os.Interrupt
			expect("421") // the idle session is told
			select {
			case code := <-done:
				if code != exitOK {
					t.Errorf("exit %d, want 0 (stderr %q)", code, e.err.String())
				}
			case <-time.After(clDeadline):
				t.Fatal("serve did not stop on the signal")
			}
			out := e.out.String()
			for _, want := range []string{"stopping", "summary after", "sessions 1, messages 1"} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in the output:\n%s", want, out)
				}
			}
			if m := regexp.MustCompile(`replies: (.*)`).FindStringSubmatch(out); m == nil ||
				!strings.Contains(m[1], "220: 1") || !strings.Contains(m[1], "354: 1") || !strings.Contains(m[1], "421: 1") {
				t.Errorf("the summary's replies by code: %q", m)
			}
			if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				t.Error("still listening after the summary")
			}
		})
	}
}
