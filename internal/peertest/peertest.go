// Package peertest finds and starts the third-party SMTP peers that smtpbench's interoperability
// tests talk to: Postfix's smtp-sink and smtp-source, swaks, and Python's smtplib and aiosmtpd.
//
// A test that needs a peer asks for it first and is skipped, with a message that names the peer
// and how to install it, when the peer is missing:
//
//	swaks := peertest.Require(t, "swaks")
//	out, code := peertest.Run(t, nil, swaks, "--server", addr, "--to", "a@example.com")
//
//	addr := peertest.StartSmtpSink(t, "-m", "1024") // killed when the test ends
//
// bench/peers/install.sh installs every peer from Debian packages (as root). Everything here
// listens and connects on 127.0.0.1 only, and every wait is bounded: a peer that does not start
// within StartTimeout fails the test, a command that does not end within Timeout is killed and
// fails it. Peer servers are killed by t.Cleanup, so also when the test fails or skips (but not
// when the test binary itself is killed, as by go test -timeout: then they outlive it).
//
// Python peers always run under /usr/bin/python3 (Python), never the first python3 in PATH: a
// pyenv or virtualenv python3 there lacks Debian's python3-aiosmtpd. PYTHONPATH and PYTHONHOME
// are dropped from every peer's environment for the same reason.
package peertest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Python is the interpreter that runs Python peers: Debian's, where install.sh puts aiosmtpd.
const Python = "/usr/bin/python3"

const (
	// Timeout bounds a peer command run with Run.
	Timeout = 30 * time.Second
	// StartTimeout bounds the wait for a peer server to listen.
	StartTimeout = 20 * time.Second
	// stopTimeout bounds the wait for a killed peer server to exit.
	stopTimeout = 5 * time.Second
	// startAttempts is how many ports a server start tries when the one it picked was taken.
	startAttempts = 5
)

// installHint is the Debian package that brings each peer, as install.sh installs it.
var installHint = map[string]string{
	"smtp-sink":   "postfix",
	"smtp-source": "postfix",
	"postfix":     "postfix",
	"swaks":       "swaks",
	"aiosmtpd":    "python3-aiosmtpd",
}

// sbinDirs are searched after PATH: Postfix's test programs live in /usr/sbin, which is often not
// in a user's PATH, and some packagings keep them in Postfix's daemon directory.
var sbinDirs = []string{"/usr/sbin", "/usr/lib/postfix/sbin"}

func hint(peer string) string {
	pkg := installHint[peer]
	if pkg == "" {
		return "run bench/peers/install.sh as root"
	}
	return "run bench/peers/install.sh as root (it installs the Debian package " + pkg + ")"
}

// Require returns the path of the peer program name, found in PATH, /usr/sbin or
// /usr/lib/postfix/sbin, or skips the test, naming the peer and how to install it.
// RequireEnv names the environment variable that turns a missing peer from a skip into a
// failure. CI sets it, after installing the peers, so that a test cannot pass by skipping.
const RequireEnv = "SMTPBENCH_REQUIRE_PEERS"

// skip skips the test, or fails it when RequireEnv is set.
func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf(format+" ("+RequireEnv+" is set: peers are required)", args...)
		return
	}
	t.Skipf(format, args...)
}

func Require(t testing.TB, name string) string {
	t.Helper()
	if path, err := lookPath(name); err == nil {
		return path
	}
	skip(t, "peer %s is not installed (looked in PATH, %s): %s", name, strings.Join(sbinDirs, ", "), hint(name))
	return ""
}

func lookPath(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, dir := range sbinDirs {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", exec.ErrNotFound
}

// RequirePython checks that Python (/usr/bin/python3) can import module, and returns Python's
// path; otherwise it skips the test, naming the module and how to install it.
func RequirePython(t testing.TB, module string) string {
	t.Helper()
	if _, err := os.Stat(Python); err != nil {
		skip(t, "peer python3 is not installed at %s (needed for the module %s): %s", Python, module, hint(module))
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := command(ctx, Python, "-c", "import "+module)
	if out, err := cmd.CombinedOutput(); err != nil {
		why := err.Error()
		if out = bytes.TrimSpace(lastLines(out, 1)); len(out) > 0 {
			why = string(out) // "ModuleNotFoundError: No module named 'aiosmtpd'"
		}
		skip(t, "peer %s: %s cannot import it (%s): %s", module, Python, why, hint(module))
	}
	return Python
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another process may take
// it before the caller binds it; the Start functions retry with another port when that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("peertest: no free loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Run runs a peer command to its end, with stdin (nil for none) as its input, and returns its
// combined stdout and stderr and its exit code. It fails the test when the command cannot start
// or does not end within Timeout (it is killed then). A non-zero exit code is the caller's to
// judge: swaks, for one, says which step failed with it.
func Run(t testing.TB, stdin []byte, name string, args ...string) (out []byte, exitCode int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := command(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("peertest: %s did not finish within %v and was killed; its output ends:\n%s",
			commandLine(name, args), Timeout, lastLines(buf.Bytes(), 20))
	case errors.As(err, &exit):
		return buf.Bytes(), exit.ExitCode()
	case err != nil:
		t.Fatalf("peertest: running %s: %v", commandLine(name, args), err)
	}
	if d := time.Since(start); d > Timeout/2 {
		t.Logf("peertest: %s took %v, more than half its time limit", filepath.Base(name), d.Round(time.Millisecond))
	}
	return buf.Bytes(), 0
}

// command is exec.CommandContext for a peer: killed with the context, at most stopTimeout more
// to close its output, and an environment that cannot point Python at another installation.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = stopTimeout
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHONPATH=") && !strings.HasPrefix(kv, "PYTHONHOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	return cmd
}

func commandLine(name string, args []string) string {
	return strings.Join(append([]string{filepath.Base(name)}, args...), " ")
}

// StartSmtpSink starts Postfix's smtp-sink on 127.0.0.1 and returns its address, "127.0.0.1:PORT";
// it skips the test when smtp-sink is not installed. args are smtp-sink options (see man
// smtp-sink), given before the address and a listen backlog of 1024. Useful ones:
//
//	-m N   serve up to N sessions at once (default 256; more wait in the backlog)
//	-p     do not offer PIPELINING        -e  do not offer ESMTP at all
//	-c     print counters to its output   -d/-D TEMPLATE  dump messages to files
//	-n N, -M N   exit after N sessions, N messages
//
// As root, smtp-sink refuses to run without -u; "-u nobody" is added unless args have a -u (a
// dump directory must then be writable by nobody). On Linux, waiting for it to listen makes no
// connection, so -n and -c count only the test's own sessions. smtp-sink is killed when the test
// ends; if it exits by itself before (-n, -M), it must exit with status 0.
func StartSmtpSink(t testing.TB, args ...string) string {
	t.Helper()
	bin := Require(t, "smtp-sink")
	opts := append([]string(nil), args...)
	if os.Geteuid() == 0 && !hasFlag(args, "-u") {
		opts = append([]string{"-u", "nobody"}, opts...)
	}
	return startServer(t, "smtp-sink", func(addr string) []string {
		return append(append([]string{bin}, opts...), addr, "1024")
	})
}

// StartAiosmtpd starts Python's aiosmtpd (/usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:PORT) and
// returns its address; it skips the test when aiosmtpd is not installed. args are more aiosmtpd
// options, given before -l: "-c", "aiosmtpd.handlers.Sink" discards mail instead of printing it
// (the default handler, Debugging, prints each message to its output, which a failing test
// logs); "-u" offers SMTPUTF8; "-s", "N" sets the SIZE limit. aiosmtpd is killed when the test
// ends.
func StartAiosmtpd(t testing.TB, args ...string) string {
	t.Helper()
	python := RequirePython(t, "aiosmtpd")
	return startServer(t, "aiosmtpd", func(addr string) []string {
		return append(append([]string{python, "-m", "aiosmtpd", "-n"}, args...), "-l", addr)
	})
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag {
			return true
		}
	}
	return false
}

// startServer starts a peer server on a free loopback port and waits until it listens there.
// When the port was taken meanwhile (the peer exits saying so), it tries another.
func startServer(t testing.TB, peer string, argv func(addr string) []string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
		err := startOn(t, peer, addr, argv(addr))
		if err == nil {
			return addr
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			t.Fatalf("peertest: %v", err)
		}
		t.Logf("peertest: %s could not bind %s, trying another port", peer, addr)
	}
}

var errAddrInUse = errors.New("address already in use")

// startOn starts one peer server process and waits until it listens on addr. On success the
// process is killed by t.Cleanup; on failure it is already gone.
func startOn(t testing.TB, peer, addr string, argv []string) error {
	t.Helper()
	port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	cmd := command(context.Background(), argv[0], argv[1:]...)
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", peer, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		cmd.Process.Kill()
		select {
		case err := <-exited:
			return err
		case <-time.After(stopTimeout):
			return fmt.Errorf("%s (pid %d) did not exit within %v of SIGKILL", peer, cmd.Process.Pid, stopTimeout)
		}
	}

	deadline := time.Now().Add(StartTimeout)
	for {
		select {
		case err := <-exited:
			msg := bytes.TrimSpace(lastLines(out.Bytes(), 5))
			if bytes.Contains(bytes.ToLower(msg), []byte("address already in use")) {
				return fmt.Errorf("%s on %s: %w", peer, addr, errAddrInUse)
			}
			return fmt.Errorf("%s exited before listening on %s (%v); its output ends:\n%s", peer, addr, err, msg)
		default:
		}
		if listening(cmd.Process.Pid, port, addr) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("%s did not listen on %s within %v; its output ends:\n%s",
				peer, addr, StartTimeout, lastLines(out.Bytes(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Cleanup(func() {
		select {
		case err := <-exited:
			// Exiting by itself with status 0 is what smtp-sink -n and -M do; anything else is
			// a crash the test should hear of.
			if err != nil {
				t.Errorf("peertest: %s on %s died during the test (%v); its output ends:\n%s",
					peer, addr, err, lastLines(out.Bytes(), 20))
			}
			return
		default:
		}
		if err := stop(); err != nil && !killed(err) {
			t.Errorf("peertest: stopping %s: %v", peer, err)
		}
		if t.Failed() {
			t.Logf("peertest: %s on %s said:\n%s", peer, addr, lastLines(out.Bytes(), 40))
		}
	})
	return nil
}

// killed reports whether a process's Wait error says what stop did to it: ended by a signal.
func killed(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.ExitCode() == -1
}

// listening reports whether process pid listens on the TCP port. On Linux it looks the listening
// socket up in /proc, so it knows the socket is the peer's and not another process's that took
// the port meanwhile, and it makes no connection (smtp-sink's -n and -c would count one).
// Elsewhere it falls back to connecting to addr.
func listening(pid, port int, addr string) bool {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	// The process's sockets first: that is cheap, while /proc/net/tcp lists every socket of the
	// machine (tens of thousands on a busy benchmark host), so it is read only once the peer
	// has a socket to look for.
	socks := socketInodes(pid)
	if len(socks) == 0 {
		return false
	}
	for _, inode := range listenInodes(port) {
		if socks[inode] {
			return true
		}
	}
	return false
}

// socketInodes returns the inodes of the sockets process pid has open.
func socketInodes(pid int) map[string]bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	socks := make(map[string]bool)
	for _, fd := range fds {
		link, err := os.Readlink(dir + fd.Name())
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			socks[strings.TrimSuffix(inode, "]")] = true
		}
	}
	return socks
}

// listenInodes returns the inodes of the IPv4 TCP sockets listening on port, from /proc/net/tcp.
func listenInodes(port int) []string {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil
	}
	defer f.Close()
	var inodes []string
	want := fmt.Sprintf(":%04X", port)
	// "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 10 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" { // 0A: TCP_LISTEN
			inodes = append(inodes, fields[9])
		}
	}
	return inodes
}

// tailBuffer keeps the last max bytes written to it; a peer's output is only read when something
// went wrong, and a chatty peer (aiosmtpd's Debugging handler) must not grow it without bound.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// lastLines returns the last n lines of out, for error messages.
func lastLines(out []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	return bytes.Join(lines[max(0, len(lines)-n):], []byte("\n"))
}
