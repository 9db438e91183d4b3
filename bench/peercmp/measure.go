package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/smtpbench/smtpbench/results"
)

// A sample is one run of a row.
type sample struct {
	rep    int // 0 for the warm-up
	pos    int // its place in the repetition's order, from 1
	n      int
	wall   time.Duration // the client process, from start to exit
	own    float64       // the client's own msgs/s figure, 0 if it gives none
	client time.Duration // user+system CPU of the client process
	server time.Duration // user+system CPU the server spent meanwhile, -1 if unknown
	err    string        // why the run failed, "" if it delivered every message
	note   string        // what the client said of the run (its mode, its shape)
}

func (s sample) rate() float64         { return float64(s.n) / s.wall.Seconds() }
func (s sample) clientPerMsg() float64 { return float64(s.client.Microseconds()) / float64(s.n) }
func (s sample) serverPerMsg() float64 {
	if s.server < 0 {
		return math.NaN()
	}
	return float64(s.server.Microseconds()) / float64(s.n)
}

// settle is how long a run's server CPU keeps being counted after the client exits: the server
// closes the client's connections then.
const settle = 50 * time.Millisecond

// measure runs the row's client once for n messages and checks that it delivered them all.
func (h *harness) measure(ctx context.Context, r row, rep, n int) sample {
	s := sample{rep: rep, n: n, server: -1}
	srv := h.servers[r.server]
	select {
	case <-srv.done:
		s.err = fmt.Sprintf("%s has exited: %s", srv.name, tail(srv.log.Name()))
		return s
	default:
	}
	out := filepath.Join(h.dir, r.key+".json")
	os.Remove(out)
	argv := h.clientArgs(r, srv.addr, n, out)
	rctx, cancel := context.WithTimeout(ctx, h.opts.timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second

	pid := srv.cmd.Process.Pid
	before, errBefore := cpuTicks(pid)
	t0 := time.Now()
	err := cmd.Run()
	s.wall = time.Since(t0)
	time.Sleep(settle)
	after, errAfter := cpuTicks(pid)
	if errBefore == nil && errAfter == nil {
		s.server = time.Duration(after-before) * time.Second / clkTck
	}
	if cmd.ProcessState != nil {
		s.client = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	switch {
	case errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		s.err = fmt.Sprintf("timed out after %s (-timeout)", h.opts.timeout)
	case ctx.Err() != nil:
		s.err = "interrupted"
	case err != nil:
		s.err = fmt.Sprintf("%s: %v: %s", r.client, err, lastLine(stderr.String()))
	default:
		s.err = h.check(r, n, out, stdout.String(), &s)
	}
	return s
}

// clientArgs is the command line of the row's client.
func (h *harness) clientArgs(r row, addr string, n int, out string) []string {
	c, size, ns := strconv.Itoa(h.opts.c), strconv.Itoa(h.opts.size), strconv.Itoa(n)
	var argv []string
	switch r.client {
	case smtpSource:
		// -d: keep the sessions open, one message after the other (lock-step: smtp-source does
		// not pipeline). -l: a body of that many octets, under about 110 of headers (smtpbench
		// puts about 310 above its --size octets).
		argv = []string{h.source, "-d", "-s", c, "-m", ns, "-l", size, addr}
	case smtpbench:
		argv = []string{h.bin("smtpbench"), "run", addr, "-c", c, "-n", ns, "--size", size,
			"--rcpts", "1", "--progress", "off", "--out", out}
	case rawloop:
		argv = []string{h.bin("rawloop"), "run", addr, "-c", c, "-n", ns, "-size", size}
	}
	return append(argv, r.args...)
}

var rawDelivered = regexp.MustCompile(`^delivered (\d+) messages in [0-9.]+s: ([0-9.]+) msgs/s \((.*)\)`)

// check reads what a client that exited 0 says it delivered: an error if not every message.
func (h *harness) check(r row, n int, out, stdout string, s *sample) string {
	switch r.client {
	case smtpSource:
		return "" // it exits 1 at the first reply it did not expect
	case smtpbench:
		res, err := results.ReadFile(out)
		if err != nil {
			return err.Error()
		}
		s.own, s.note = res.Throughput.MessagesPerS, res.Description
		if t := res.Totals; t.Delivered != int64(n) {
			return fmt.Sprintf("delivered %d of %d messages (failed %d, errors %d)", t.Delivered, n, t.Failed, t.Errors)
		}
	case rawloop:
		m := rawDelivered.FindStringSubmatch(strings.TrimSpace(stdout))
		if m == nil {
			return fmt.Sprintf("unexpected output %q", lastLine(stdout))
		}
		s.own, _ = strconv.ParseFloat(m[2], 64)
		s.note = m[3]
		if m[1] != strconv.Itoa(n) {
			return fmt.Sprintf("delivered %s of %d messages", m[1], n)
		}
	}
	return ""
}

// clkTck is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux.
const clkTck = 100

// cpuTicks returns the user+system time process pid has used (all its threads), in ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...: utime and stime are fields 14 and 15, counting from 1; comm may
	// hold spaces, so count from its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return u + st, nil
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitPort waits until addr accepts connections, the server exits (done) or the time is up.
func waitPort(addr string, done <-chan struct{}, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return errors.New("it exited")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
