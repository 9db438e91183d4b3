package peertest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// skipRecorder is a testing.TB whose Skipf only records its message, so a test can see what a
// helper would have told the user.
type skipRecorder struct {
	testing.TB
	skipped string
	failed  string
}

func (r *skipRecorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *skipRecorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestRequireFindsInPath(t *testing.T) {
	if got := Require(t, "sh"); got == "" || !strings.HasSuffix(got, "/sh") {
		t.Errorf("Require(sh) = %q", got)
	}
}

func TestRequireLooksInSbin(t *testing.T) {
	if _, err := lookPath("smtp-sink"); err != nil {
		t.Skip("smtp-sink is not installed here; run bench/peers/install.sh as root")
	}
	t.Setenv("PATH", "/usr/bin:/bin") // as for a user whose PATH has no sbin
	got := Require(t, "smtp-sink")
	if got != "/usr/sbin/smtp-sink" && got != "/usr/lib/postfix/sbin/smtp-sink" {
		t.Errorf("Require(smtp-sink) with no sbin in PATH = %q", got)
	}
}

func TestRequireSkipsClearly(t *testing.T) {
	t.Setenv(RequireEnv, "") // this test is about the skip
	r := &skipRecorder{TB: t}
	if got := Require(r, "no-such-peer-3141"); got != "" {
		t.Errorf("Require of a missing peer = %q", got)
	}
	for _, want := range []string{"no-such-peer-3141", "/usr/sbin", "run bench/peers/install.sh as root"} {
		if !strings.Contains(r.skipped, want) {
			t.Errorf("skip message %q does not say %q", r.skipped, want)
		}
	}
	if _, err := os.Stat("/usr/sbin/swaks"); err == nil {
		t.Skip("swaks is in /usr/sbin here")
	}
	r = &skipRecorder{TB: t}
	t.Setenv("PATH", "/nonexistent")
	Require(r, "swaks")
	if !strings.Contains(r.skipped, "swaks") || !strings.Contains(r.skipped, "Debian package swaks") {
		t.Errorf("skip message %q does not name swaks and its package", r.skipped)
	}
}

func TestRequirePython(t *testing.T) {
	t.Setenv(RequireEnv, "") // a missing module below must skip, not fail
	if got := RequirePython(t, "smtplib"); got != "/usr/bin/python3" {
		t.Errorf("RequirePython(smtplib) = %q", got)
	}
	r := &skipRecorder{TB: t}
	RequirePython(r, "no_such_module_3141")
	for _, want := range []string{"no_such_module_3141", "/usr/bin/python3", "install.sh as root"} {
		if !strings.Contains(r.skipped, want) {
			t.Errorf("skip message %q does not say %q", r.skipped, want)
		}
	}
}

func TestFreePort(t *testing.T) {
	port := FreePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("FreePort gave %d, which cannot be bound: %v", port, err)
	}
	l.Close()
}

func TestRun(t *testing.T) {
	sh := Require(t, "sh")
	out, code := Run(t, []byte("hello\n"), sh, "-c", `read -r line; echo "$line"`)
	if code != 0 || string(out) != "hello\n" {
		t.Errorf("echoing stdin: %q, exit %d", out, code)
	}
	out, code = Run(t, nil, sh, "-c", "echo oops >&2; exit 3")
	if code != 3 || string(out) != "oops\n" {
		t.Errorf("sh: %q, exit %d; want oops and 3", out, code)
	}
}

// greetAndQuit reads a server's greeting, says QUIT and reads the reply, and returns both lines.
func greetAndQuit(t *testing.T, addr string) (greeting, bye string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	greeting, err = r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the greeting from %s: %v", addr, err)
	}
	if _, err := c.Write([]byte("QUIT\r\n")); err != nil {
		t.Fatal(err)
	}
	bye, err = r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the reply to QUIT from %s: %v", addr, err)
	}
	return greeting, bye
}

func TestStartSmtpSink(t *testing.T) {
	var addr string
	var pid int
	t.Run("serve", func(t *testing.T) {
		addr = StartSmtpSink(t, "-m", "16")
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("address %q is not loopback", addr)
		}
		pid = listenerPid(t, addr)
		for range 2 { // the helper's own readiness check used no session: it works every time
			greeting, bye := greetAndQuit(t, addr)
			if !strings.HasPrefix(greeting, "220 ") || !strings.HasPrefix(bye, "221 ") {
				t.Errorf("greeting %q, reply to QUIT %q", greeting, bye)
			}
		}
	})
	checkGone(t, "smtp-sink", addr, pid)
}

func TestStartAiosmtpd(t *testing.T) {
	var addr string
	var pid int
	t.Run("serve", func(t *testing.T) {
		addr = StartAiosmtpd(t, "-c", "aiosmtpd.handlers.Sink")
		pid = listenerPid(t, addr)
		greeting, bye := greetAndQuit(t, addr)
		if !strings.HasPrefix(greeting, "220 ") || !strings.Contains(greeting, "Python SMTP") || !strings.HasPrefix(bye, "221 ") {
			t.Errorf("greeting %q, reply to QUIT %q", greeting, bye)
		}
	})
	checkGone(t, "aiosmtpd", addr, pid)
}

// listenerPid finds the process that listens on addr, from /proc (0 where there is no /proc).
func listenerPid(t *testing.T, addr string) int {
	t.Helper()
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		return 0
	}
	port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	inodes := listenInodes(port)
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		socks := socketInodes(pid)
		for _, inode := range inodes {
			if socks[inode] {
				return pid
			}
		}
	}
	t.Fatalf("no process listens on %s", addr)
	return 0
}

// checkGone checks that a peer started in a finished subtest was killed by its cleanup.
func checkGone(t *testing.T, peer, addr string, pid int) {
	t.Helper()
	if addr == "" {
		return // the subtest skipped
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts on %s after its test ended", peer, addr)
	}
	if pid == 0 {
		return
	}
	p, err := os.FindProcess(pid)
	if err == nil {
		err = p.Signal(syscall.Signal(0))
	}
	if !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("%s (pid %d) still exists after its test ended: signal 0 says %v", peer, pid, err)
	}
}

// A peer that cannot bind its port is told apart from one that fails otherwise, so the Start
// functions can retry on another port; and a port that another process holds is never taken for
// the peer's own.
func TestStartOnTakenPort(t *testing.T) {
	bin := Require(t, "smtp-sink")
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	argv := []string{bin, addr, "16"}
	if os.Geteuid() == 0 {
		argv = []string{bin, "-u", "nobody", addr, "16"}
	}
	err = startOn(t, "smtp-sink", addr, argv)
	if !errors.Is(err, errAddrInUse) {
		t.Errorf("starting smtp-sink on a taken port: %v; want %v", err, errAddrInUse)
	}
	err = startOn(t, "smtp-sink", "127.0.0.1:1", []string{bin, "-no-such-option"})
	if err == nil || errors.Is(err, errAddrInUse) {
		t.Errorf("starting smtp-sink with a bad option: %v", err)
	}
}

// When the port a start picked is taken before the peer binds it, the start tries another port.
func TestStartServerRetries(t *testing.T) {
	bin := Require(t, "smtp-sink")
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var tried []string
	addr := startServer(t, "smtp-sink", func(addr string) []string {
		tried = append(tried, addr)
		if len(tried) == 1 {
			addr = taken.Addr().String() // as if another process had taken the port meanwhile
		}
		argv := []string{bin}
		if os.Geteuid() == 0 {
			argv = append(argv, "-u", "nobody")
		}
		return append(argv, addr, "16")
	})
	if len(tried) != 2 || addr != tried[1] {
		t.Errorf("started on %s after trying %v; want the second port", addr, tried)
	}
	if greeting, _ := greetAndQuit(t, addr); !strings.HasPrefix(greeting, "220 ") {
		t.Errorf("greeting %q", greeting)
	}
}

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"one", 1, "one"},
	} {
		if got := string(lastLines([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	b := &tailBuffer{max: 4}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if got := string(b.Bytes()); got != "defg" {
		t.Errorf("tailBuffer kept %q, want the last 4 bytes", got)
	}
}

// With RequireEnv set, a missing peer fails the test instead of skipping it.
func TestRequireEnvFails(t *testing.T) {
	t.Setenv(RequireEnv, "1")
	r := &skipRecorder{TB: t}
	Require(r, "no-such-peer-3141")
	if r.failed == "" || r.skipped != "" || !strings.Contains(r.failed, RequireEnv) {
		t.Errorf("with %s set: failed %q, skipped %q; want a failure naming the variable", RequireEnv, r.failed, r.skipped)
	}
}
