package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a scripted SMTP server on a loopback port for one connection. Its script says
// what it expects the client to send (command prefixes, message data) and the raw bytes it
// answers, so tests can give the client any reply, well-formed or not, at any point. It records
// what every read returned, so a test can tell which commands arrived together.
type fakeServer struct {
	tb    testing.TB
	ln    net.Listener
	steps []fakeStep
	done  chan struct{}

	mu    sync.Mutex
	conn  net.Conn
	reads [][]byte // what each Read returned, in order
	lines []string // the command lines the script consumed, CRLF stripped
	data  [][]byte // what each readData or readN step read, as it was on the wire
	errs  []string // where the client did not follow the script

	buf []byte // received and not yet consumed by the script
}

type fakeOp uint8

const (
	opSend     fakeOp = iota // write arg
	opExpect                 // read a line that must start with arg
	opAlone                  // like opExpect, and nothing may follow it in what was received
	opReadData               // read message data up to and including the ".\r\n" line
	opReadN                  // read n octets (a BDAT chunk)
	opQuiet                  // nothing may arrive for d
	opHang                   // answer nothing more; wait for the client to go away
	opClose                  // close the connection now
	opEOF                    // the client must close the connection without sending more
	opSleep                  // wait d
)

type fakeStep struct {
	op  fakeOp
	arg string
	n   int
	d   time.Duration
}

// Script steps.
func send(raw string) fakeStep            { return fakeStep{op: opSend, arg: raw} }
func expect(prefix string) fakeStep       { return fakeStep{op: opExpect, arg: prefix} }
func alone(prefix string) fakeStep        { return fakeStep{op: opAlone, arg: prefix} }
func readData() fakeStep                  { return fakeStep{op: opReadData} }
func readN(n int) fakeStep                { return fakeStep{op: opReadN, n: n} }
func quiet(d time.Duration) fakeStep      { return fakeStep{op: opQuiet, d: d} }
func hang() fakeStep                      { return fakeStep{op: opHang} }
func closeConn() fakeStep                 { return fakeStep{op: opClose} }
func clientCloses() fakeStep              { return fakeStep{op: opEOF} }
func pause(d time.Duration) fakeStep      { return fakeStep{op: opSleep, d: d} }
func cmd(prefix, reply string) []fakeStep { return []fakeStep{expect(prefix), send(reply)} }

// lockstep is cmd for a command that must arrive on its own: a client that waits for each reply
// cannot have sent anything after it.
func lockstep(prefix, reply string) []fakeStep { return []fakeStep{alone(prefix), send(reply)} }

// Common EHLO replies.
const (
	ehloPlain    = "250-fake.example\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
	ehloPipe     = "250-fake.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
	ehloChunking = "250-fake.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n"
	ehloBare     = "250 fake.example\r\n" // no extensions at all
)

// greet is the start of a session: the greeting and the EHLO exchange.
func greet(ehlo string) []fakeStep {
	return []fakeStep{send("220 fake.example ESMTP\r\n"), expect("EHLO "), send(ehlo)}
}

// fakeDeadline bounds every read and write of the fake server.
const fakeDeadline = 5 * time.Second

// startFake starts a fake server that runs script (fakeSteps, []fakeSteps and []anys of them) on the first
// connection it accepts, then closes it.
func startFake(tb testing.TB, script ...any) *fakeServer {
	tb.Helper()
	var steps []fakeStep
	var flatten func([]any)
	flatten = func(script []any) {
		for _, s := range script {
			switch s := s.(type) {
			case fakeStep:
				steps = append(steps, s)
			case []fakeStep:
				steps = append(steps, s...)
			case []any:
				flatten(s)
			default:
				tb.Fatalf("startFake: %T in the script", s)
			}
		}
	}
	flatten(script)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &fakeServer{tb: tb, ln: ln, steps: steps, done: make(chan struct{})}
	go f.serve()
	tb.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		if f.conn != nil {
			f.conn.Close()
		}
		f.mu.Unlock()
		<-f.done
		f.report()
	})
	return f
}

func (f *fakeServer) target() Target { return Target{"tcp", f.ln.Addr().String()} }

func (f *fakeServer) errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *fakeServer) serve() {
	defer close(f.done)
	c, err := f.ln.Accept()
	if err != nil {
		f.errorf("accept: %v", err)
		return
	}
	f.ln.Close() // one connection only
	f.mu.Lock()
	f.conn = c
	f.mu.Unlock()
	defer c.Close()
	c.SetDeadline(time.Now().Add(fakeDeadline))
	for i, s := range f.steps {
		if err := f.step(c, s); err != nil {
			f.errorf("step %d (%v %q): %v", i, s.op, s.arg, err)
			return
		}
		if s.op == opClose || s.op == opHang || s.op == opEOF {
			return
		}
	}
}

// fill reads once more from the client.
func (f *fakeServer) fill(c net.Conn) error {
	p := make([]byte, 64<<10)
	n, err := c.Read(p)
	if n > 0 {
		f.mu.Lock()
		f.reads = append(f.reads, p[:n:n])
		f.mu.Unlock()
		f.buf = append(f.buf, p[:n]...)
	}
	if n == 0 && err == nil {
		return io.ErrNoProgress
	}
	if n > 0 {
		return nil
	}
	return err
}

func (f *fakeServer) readLine(c net.Conn) (string, error) {
	for {
		if i := bytes.IndexByte(f.buf, '\n'); i >= 0 {
			line := string(f.buf[:i+1])
			f.buf = f.buf[i+1:]
			return line, nil
		}
		if err := f.fill(c); err != nil {
			return "", fmt.Errorf("reading a line (have %q): %w", f.buf, err)
		}
	}
}

func (f *fakeServer) step(c net.Conn, s fakeStep) error {
	switch s.op {
	case opSend:
		_, err := io.WriteString(c, s.arg)
		return err
	case opExpect, opAlone:
		line, err := f.readLine(c)
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.lines = append(f.lines, strings.TrimRight(line, "\r\n"))
		f.mu.Unlock()
		if !strings.HasPrefix(line, s.arg) {
			return fmt.Errorf("got %q, want a line starting with %q", line, s.arg)
		}
		if !strings.HasSuffix(line, "\r\n") {
			return fmt.Errorf("line %q does not end with CRLF", line)
		}
		if s.op == opAlone && len(f.buf) > 0 {
			return fmt.Errorf("%q arrived with %q after it, before its reply", line, f.buf)
		}
		return nil
	case opReadData:
		var data []byte
		for {
			line, err := f.readLine(c)
			if err != nil {
				return err
			}
			if line == ".\r\n" {
				break
			}
			data = append(data, line...)
		}
		f.mu.Lock()
		f.data = append(f.data, data)
		f.mu.Unlock()
		return nil
	case opReadN:
		for len(f.buf) < s.n {
			if err := f.fill(c); err != nil {
				return fmt.Errorf("reading %d octets (have %d): %w", s.n, len(f.buf), err)
			}
		}
		f.mu.Lock()
		f.data = append(f.data, bytes.Clone(f.buf[:s.n]))
		f.mu.Unlock()
		f.buf = f.buf[s.n:]
		return nil
	case opQuiet:
		if len(f.buf) > 0 {
			return fmt.Errorf("unexpected %q", f.buf)
		}
		c.SetReadDeadline(time.Now().Add(s.d))
		err := f.fill(c)
		c.SetDeadline(time.Now().Add(fakeDeadline))
		if err == nil {
			return fmt.Errorf("unexpected %q", f.buf)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		return nil
	case opHang:
		// Read (and record) until the client closes; answer nothing.
		for f.fill(c) == nil {
		}
		return nil
	case opClose:
		return c.Close()
	case opEOF:
		err := f.fill(c)
		if err == nil {
			return fmt.Errorf("got %q, want the connection closed", f.buf)
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("got %v, want EOF", err)
		}
		return nil
	case opSleep:
		time.Sleep(s.d)
		return nil
	}
	return fmt.Errorf("unknown op %d", s.op)
}

// wait waits for the script to end and reports where the client departed from it.
func (f *fakeServer) wait() {
	f.tb.Helper()
	select {
	case <-f.done:
	case <-time.After(2 * fakeDeadline):
		f.tb.Fatal("fake server: the script did not end")
	}
	f.report()
}

// report fails the test for every departure from the script not reported yet.
func (f *fakeServer) report() {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.errs {
		f.tb.Errorf("fake server: %s", e)
	}
	f.errs = nil
}

// finish closes the client's side and waits for the script.
func (f *fakeServer) finish(c *Conn) {
	f.tb.Helper()
	c.Close()
	f.wait()
}

// readWith returns the read that carried s, or nil.
func (f *fakeServer) readWith(s string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.reads {
		if bytes.Contains(r, []byte(s)) {
			return r
		}
	}
	return nil
}

// received is everything the client sent.
func (f *fakeServer) received() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Join(f.reads, nil)
}

func (f *fakeServer) gotLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

func (f *fakeServer) gotData() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.data...)
}

// testTimeouts are the client's timeouts against the fake server; timeoutTimeouts are for tests
// that wait for one to fire.
func testTimeouts() Timeouts    { var t Timeouts; t.All(3 * time.Second); return t }
func timeoutTimeouts() Timeouts { var t Timeouts; t.All(200 * time.Millisecond); return t }

// dialFake connects to f with opts (test timeouts unless opts sets some).
func dialFake(tb testing.TB, f *fakeServer, opts Options) *Conn {
	tb.Helper()
	if opts.Timeouts == (Timeouts{}) {
		opts.Timeouts = testTimeouts()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, f.target(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// openFake connects to f and goes through the greeting and EHLO, which must succeed.
func openFake(tb testing.TB, f *fakeServer, opts Options) *Conn {
	tb.Helper()
	c := dialFake(tb, f, opts)
	if r, err := c.Greeting(); err != nil || r.Code != 220 {
		tb.Fatalf("greeting: %v %v", r, err)
	}
	if r, err := c.Hello(); err != nil || !r.OK() {
		tb.Fatalf("hello: %v %v", r, err)
	}
	return c
}

// msg is a message for the fake server: n recipients r1@example.org..., a one-line header.
func msg(n int) *Message {
	m := &Message{From: []byte("s@example.com"), Header: []byte("X-Seq: 1\r\n")}
	for i := range n {
		m.To = append(m.To, fmt.Appendf(nil, "r%d@example.org", i+1))
	}
	m.SetBody([]byte("Subject: t\r\n\r\nhello\r\n"))
	return m
}

// pipelinedGroup is what a pipelining client sends for msg(n) with DATA, as expectations.
func pipelinedGroup(n int) []fakeStep {
	s := []fakeStep{expect("MAIL FROM:<s@example.com>")}
	for i := range n {
		s = append(s, expect(fmt.Sprintf("RCPT TO:<r%d@example.org>\r\n", i+1)))
	}
	return append(s, alone("DATA\r\n"))
}

func rcptReplies(codes ...string) string {
	var b strings.Builder
	for _, c := range codes {
		b.WriteString(c + "\r\n")
	}
	return b.String()
}

// wantErr checks that err is an *Error of the step and kind.
func wantErr(tb testing.TB, err error, step Step, kind ErrorKind) *Error {
	tb.Helper()
	var e *Error
	if !errors.As(err, &e) {
		tb.Fatalf("error %v (%T), want a *pipeline.Error %v/%v", err, err, step, kind)
	}
	if e.Step != step || e.Kind != kind {
		tb.Fatalf("error %v: step %v kind %v, want %v %v", err, e.Step, e.Kind, step, kind)
	}
	if KindOf(err) != kind {
		tb.Fatalf("KindOf(%v) = %v, want %v", err, KindOf(err), kind)
	}
	return e
}

func reply(code uint16, enh ...uint16) Reply {
	r := Reply{Code: code}
	if len(enh) == 3 {
		r.Enhanced = EnhancedCode{enh[0], enh[1], enh[2]}
	}
	return r
}
