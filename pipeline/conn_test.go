package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/internal/wire"
	"github.com/smtpbench/smtpbench/server"
)

// deadlineCheck fails the test when a call that should have failed or returned at once took
// longer than a generous bound.
func deadlineCheck(tb testing.TB, start time.Time) {
	tb.Helper()
	if d := time.Since(start); d > 2500*time.Millisecond {
		tb.Fatalf("took %v", d)
	}
}

func TestGreeting(t *testing.T) {
	long := "220 " + strings.Repeat("x", 5000) + "\r\n"
	for _, tc := range []struct {
		name     string
		script   []fakeStep
		want     Reply
		text     string
		usable   bool
		errKind  ErrorKind
		wantErr  bool
		timeouts bool // use the 200ms timeouts
	}{
		{name: "one line", script: []fakeStep{send("220 fake.example ESMTP ready\r\n")},
			want: reply(220), text: "fake.example ESMTP ready", usable: true},
		{name: "multi-line", script: []fakeStep{send("220-fake.example ESMTP\r\n220-second line\r\n220 third line\r\n")},
			want: reply(220), text: "fake.example ESMTP", usable: true},
		{name: "multi-line in pieces", script: []fakeStep{send("220-fake.exa"), pause(20 * time.Millisecond),
			send("mple\r\n22"), pause(20 * time.Millisecond), send("0 end\r\n")},
			want: reply(220), text: "fake.example", usable: true},
		{name: "enhanced", script: []fakeStep{send("220 2.0.0 ready\r\n")},
			want: reply(220, 2, 0, 0), text: "ready", usable: true},
		{name: "bare code", script: []fakeStep{send("220\r\n")}, want: reply(220), usable: true},
		{name: "LF only", script: []fakeStep{send("220 fake\n")}, want: reply(220), text: "fake", usable: true},
		{name: "554 refusal", script: []fakeStep{send("554 5.7.1 no service for you\r\n")},
			want: reply(554, 5, 7, 1), text: "no service for you", usable: true},
		{name: "451", script: []fakeStep{send("451 4.3.0 try later\r\n")},
			want: reply(451, 4, 3, 0), text: "try later", usable: true},
		{name: "421", script: []fakeStep{send("421 4.3.2 busy\r\n")},
			want: reply(421, 4, 3, 2), text: "busy", usable: false},
		{name: "no code", script: []fakeStep{send("hello there\r\n")}, wantErr: true, errKind: KindProtocol},
		{name: "short", script: []fakeStep{send("22\r\n")}, wantErr: true, errKind: KindProtocol},
		{name: "bad separator", script: []fakeStep{send("220_fake\r\n")}, wantErr: true, errKind: KindProtocol},
		{name: "code out of range", script: []fakeStep{send("199 fake\r\n")}, wantErr: true, errKind: KindProtocol},
		{name: "mismatched codes", script: []fakeStep{send("220-fake\r\n250 fake\r\n")}, wantErr: true, errKind: KindProtocol},
		{name: "over-long line", script: []fakeStep{send(long)}, wantErr: true, errKind: KindProtocol},
		{name: "closed", script: []fakeStep{closeConn()}, wantErr: true, errKind: KindClosed},
		{name: "closed mid-line", script: []fakeStep{send("220 fa"), closeConn()}, wantErr: true, errKind: KindClosed},
		{name: "closed mid-reply", script: []fakeStep{send("220-fake\r\n"), closeConn()}, wantErr: true, errKind: KindClosed},
		{name: "silent", script: []fakeStep{hang()}, wantErr: true, errKind: KindTimeout, timeouts: true},
		{name: "silent mid-reply", script: []fakeStep{send("220-fake\r\n"), hang()}, wantErr: true, errKind: KindTimeout, timeouts: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := startFake(t, tc.script)
			opts := Options{}
			if tc.timeouts {
				opts.Timeouts = timeoutTimeouts()
			}
			c := dialFake(t, f, opts)
			start := time.Now()
			r, err := c.Greeting()
			deadlineCheck(t, start)
			if tc.wantErr {
				wantErr(t, err, StepGreeting, tc.errKind)
				if c.Usable() {
					t.Error("usable after a failed greeting")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if r != tc.want {
					t.Errorf("reply %v, want %v", r, tc.want)
				}
				if got := string(c.LastText()); got != tc.text {
					t.Errorf("LastText %q, want %q", got, tc.text)
				}
				if c.Usable() != tc.usable {
					t.Errorf("Usable %v, want %v", c.Usable(), tc.usable)
				}
			}
			f.finish(c)
		})
	}
}

// A reply line may be as long as the read buffer, CRLF included, and no longer.
func TestReplyLineLimit(t *testing.T) {
	for _, tc := range []struct {
		n       int // line length with CRLF
		wantErr bool
	}{{512, false}, {maxReplyLine - 1, false}, {maxReplyLine, false}, {maxReplyLine + 1, true}, {3 * maxReplyLine, true}} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			line := "220 " + strings.Repeat("y", tc.n-6) + "\r\n"
			f := startFake(t, send(line))
			c := dialFake(t, f, Options{})
			r, err := c.Greeting()
			if tc.wantErr {
				e := wantErr(t, err, StepGreeting, KindProtocol)
				if !errors.Is(e, wire.ErrLineTooLong) {
					t.Errorf("error %v, want ErrLineTooLong", e)
				}
			} else if err != nil || r.Code != 220 || len(c.LastText()) != min(tc.n-6, 256) {
				t.Errorf("%v %v, LastText of %d octets", r, err, len(c.LastText()))
			}
			f.finish(c)
		})
	}
}

func TestEHLOExtensions(t *testing.T) {
	all := ExtPipelining | ExtSize | Ext8BitMIME | ExtSMTPUTF8 | ExtEnhancedStatusCodes | ExtChunking |
		ExtBinaryMIME | ExtStartTLS | ExtAuth
	for _, tc := range []struct {
		name    string
		ehlo    string
		want    Extensions
		maxSize int64
	}{
		{"everything, mixed case", "250-fake.example Hello there\r\n250-pipelining\r\n250-Size 10240000\r\n" +
			"250-AUTH=LOGIN PLAIN\r\n250-8bitmime\r\n250-SMTPUTF8\r\n250-EnhancedStatusCodes\r\n250-CHUNKING\r\n" +
			"250-BINARYMIME\r\n250 STARTTLS\r\n", all, 10240000},
		{"AUTH with space", "250-fake\r\n250 AUTH LOGIN PLAIN\r\n", ExtAuth, 0},
		{"AUTH= style only", "250-fake\r\n250 AUTH=LOGIN\r\n", ExtAuth, 0},
		{"SIZE without value", "250-fake\r\n250 SIZE\r\n", ExtSize, 0},
		{"SIZE 0", "250-fake\r\n250 SIZE 0\r\n", ExtSize, 0},
		{"SIZE not a number", "250-fake\r\n250 SIZE lots\r\n", ExtSize, 0},
		{"SIZE negative", "250-fake\r\n250 SIZE -5\r\n", ExtSize, 0},
		{"SIZE with spaces", "250-fake\r\n250 SIZE  2048 \r\n", ExtSize, 2048},
		{"SIZE=", "250-fake\r\n250 SIZE=5000\r\n", ExtSize, 5000},
		{"LF only", "250-fake\n250-PIPELINING\n250 SIZE 77\n", ExtPipelining | ExtSize, 77},
		{"one line is the domain", "250 PIPELINING\r\n", 0, 0},
		{"first line is the domain", "250-PIPELINING\r\n250 SIZE 100\r\n", ExtSize, 100},
		{"no extensions", "250 fake.example\r\n", 0, 0},
		{"look-alikes", "250-fake\r\n250-PIPELININGX\r\n250-XPIPELINING\r\n250-SIZ 5\r\n250 X-EXPS GSSAPI\r\n", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, greet(tc.ehlo))
			c := openFake(t, f, Options{})
			if c.Extensions() != tc.want {
				t.Errorf("extensions %b, want %b", c.Extensions(), tc.want)
			}
			if c.MaxSize() != tc.maxSize {
				t.Errorf("MaxSize %d, want %d", c.MaxSize(), tc.maxSize)
			}
			if c.Pipelining() != tc.want.Has(ExtPipelining) {
				t.Errorf("Pipelining %v with extensions %b", c.Pipelining(), tc.want)
			}
			if c.Chunking() {
				t.Error("Chunking without Options.BDAT")
			}
			f.finish(c)
		})
	}
}

func TestExtensionsHas(t *testing.T) {
	x := ExtPipelining | ExtSize
	if !x.Has(ExtPipelining) || !x.Has(ExtPipelining|ExtSize) || x.Has(ExtChunking) || x.Has(ExtPipelining|ExtChunking) {
		t.Errorf("Has is wrong for %b", x)
	}
	if !x.Has(0) {
		t.Error("every set has the empty set")
	}
}

// A second EHLO forgets what the first one offered.
func TestHelloAgainResetsExtensions(t *testing.T) {
	f := startFake(t, greet(ehloChunking), lockstep("EHLO ", ehloBare), clientCloses())
	c := openFake(t, f, Options{})
	if !c.Pipelining() || c.MaxSize() != 10240000 {
		t.Fatalf("first EHLO: pipelining %v, max size %d", c.Pipelining(), c.MaxSize())
	}
	if r, err := c.Hello(); err != nil || r.Code != 250 {
		t.Fatal(r, err)
	}
	if c.Extensions() != 0 || c.MaxSize() != 0 || c.Pipelining() || c.Chunking() {
		t.Errorf("after the second EHLO: extensions %b, max size %d, pipelining %v", c.Extensions(), c.MaxSize(), c.Pipelining())
	}
	f.finish(c)
}

func TestHelloModes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ehlo       string
		opts       Options
		pipelining bool
		chunking   bool
		wantErr    error
	}{
		{"offered, auto", ehloPipe, Options{}, true, false, nil},
		{"offered, on", ehloPipe, Options{Pipelining: On}, true, false, nil},
		{"offered, off", ehloPipe, Options{Pipelining: Off}, false, false, nil},
		{"not offered, auto", ehloPlain, Options{}, false, false, nil},
		{"not offered, off", ehloPlain, Options{Pipelining: Off}, false, false, nil},
		{"not offered, on", ehloPlain, Options{Pipelining: On}, false, false, errNoPipelining},
		{"chunking offered, bdat", ehloChunking, Options{BDAT: true}, true, true, nil},
		{"chunking offered, bdat, pipelining off", ehloChunking, Options{BDAT: true, Pipelining: Off}, false, true, nil},
		{"chunking offered, no bdat", ehloChunking, Options{}, true, false, nil},
		{"chunking not offered, bdat", ehloPipe, Options{BDAT: true}, true, false, errNoChunking},
		{"nothing offered, bdat", ehloBare, Options{BDAT: true}, false, false, errNoChunking},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := []any{greet(tc.ehlo)}
			if tc.wantErr != nil {
				script = append(script, clientCloses()) // and nothing else: no MAIL after the failure
			}
			f := startFake(t, script...)
			c := dialFake(t, f, tc.opts)
			if _, err := c.Greeting(); err != nil {
				t.Fatal(err)
			}
			r, err := c.Hello()
			if tc.wantErr != nil {
				wantErr(t, err, StepEHLO, KindProtocol)
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want %v", err, tc.wantErr)
				}
				if r.Code != 250 {
					t.Errorf("reply %v, want the 250 that came", r)
				}
				if c.Usable() {
					t.Error("usable after the required extension was missing")
				}
				var tr Trace
				wantErr(t, c.Send(msg(1), &tr), StepMail, KindClosed)
			} else {
				if err != nil || r.Code != 250 {
					t.Fatal(r, err)
				}
				if c.Pipelining() != tc.pipelining || c.Chunking() != tc.chunking {
					t.Errorf("pipelining %v chunking %v, want %v %v", c.Pipelining(), c.Chunking(), tc.pipelining, tc.chunking)
				}
			}
			f.finish(c)
		})
	}
}

// EHLO refused with 500, 502, 504 or 550 falls back to HELO; a session after HELO has no
// extensions and sends one command per round trip.
func TestHELOFallback(t *testing.T) {
	for _, code := range []string{"500 5.5.1 what", "502 5.5.2 not implemented", "504 5.5.4 no", "550 5.7.1 no EHLO"} {
		t.Run(code[:3], func(t *testing.T) {
			m := msg(1)
			f := startFake(t, send("220 fake.example\r\n"), alone("EHLO client.example\r\n"), send(code+"\r\n"),
				lockstep("HELO client.example\r\n", "250 fake.example\r\n"),
				lockstep("MAIL FROM:<s@example.com>\r\n", "250 ok\r\n"), // no SIZE: not offered
				lockstep("RCPT TO:<r1@example.org>\r\n", "250 ok\r\n"),
				lockstep("DATA\r\n", "354 go\r\n"), readData(), send("250 queued\r\n"),
				lockstep("QUIT\r\n", "221 bye\r\n"), clientCloses())
			c := dialFake(t, f, Options{LocalName: "client.example"})
			if _, err := c.Greeting(); err != nil {
				t.Fatal(err)
			}
			r, err := c.Hello()
			if err != nil || r != reply(250) {
				t.Fatalf("hello: %v %v", r, err)
			}
			if c.Extensions() != 0 || c.Pipelining() || c.Chunking() || c.MaxSize() != 0 {
				t.Errorf("after HELO: extensions %b pipelining %v", c.Extensions(), c.Pipelining())
			}
			var tr Trace
			if err := c.Send(m, &tr); err != nil || !tr.Delivered || tr.Pipelined {
				t.Fatalf("%v %+v", err, tr)
			}
			if r, err := c.Quit(); err != nil || r.Code != 221 {
				t.Fatal(r, err)
			}
			f.wait()
		})
	}
}

func TestHelloRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  []any
		opts    Options
		want    Reply
		usable  bool
		errStep Step
		errKind ErrorKind
		wantErr bool
	}{
		// Codes that do not mean "EHLO not understood": no HELO.
		{name: "EHLO 421", script: []any{cmd("EHLO ", "421 4.3.2 going away\r\n"), clientCloses()},
			want: reply(421, 4, 3, 2)},
		{name: "EHLO 451", script: []any{cmd("EHLO ", "451 4.3.0 try later\r\n"), clientCloses()},
			want: reply(451, 4, 3, 0), usable: true},
		{name: "EHLO 554", script: []any{cmd("EHLO ", "554 5.7.1 go away\r\n"), clientCloses()},
			want: reply(554, 5, 7, 1), usable: true},
		{name: "EHLO 500 multi-line", script: []any{cmd("EHLO ", "500-5.5.1 no\r\n500 5.5.1 really\r\n"),
			lockstep("HELO ", "250 fake\r\n"), clientCloses()}, want: reply(250), usable: true},
		{name: "HELO refused too", script: []any{cmd("EHLO ", "502 5.5.2 no\r\n"), lockstep("HELO ", "501 5.5.4 no\r\n"), clientCloses()},
			want: reply(501, 5, 5, 4), usable: true},
		{name: "HELO 421", script: []any{cmd("EHLO ", "502 5.5.2 no\r\n"), lockstep("HELO ", "421 4.3.2 bye\r\n"), clientCloses()},
			want: reply(421, 4, 3, 2)},
		{name: "HELO, pipelining required", script: []any{cmd("EHLO ", "502 no\r\n"), lockstep("HELO ", "250 fake\r\n"), clientCloses()},
			opts: Options{Pipelining: On}, wantErr: true, errStep: StepEHLO, errKind: KindProtocol},
		{name: "HELO, bdat", script: []any{cmd("EHLO ", "502 no\r\n"), lockstep("HELO ", "250 fake\r\n"), clientCloses()},
			opts: Options{BDAT: true}, wantErr: true, errStep: StepEHLO, errKind: KindProtocol},
		{name: "EHLO silent", script: []any{expect("EHLO "), hang()},
			opts: Options{Timeouts: timeoutTimeouts()}, wantErr: true, errStep: StepEHLO, errKind: KindTimeout},
		{name: "EHLO silent mid-reply", script: []any{expect("EHLO "), send("250-fake\r\n250-PIPELINING\r\n"), hang()},
			opts: Options{Timeouts: timeoutTimeouts()}, wantErr: true, errStep: StepEHLO, errKind: KindTimeout},
		{name: "HELO silent", script: []any{cmd("EHLO ", "500 no\r\n"), expect("HELO "), hang()},
			opts: Options{Timeouts: timeoutTimeouts()}, wantErr: true, errStep: StepHELO, errKind: KindTimeout},
		{name: "EHLO closed", script: []any{expect("EHLO "), closeConn()},
			wantErr: true, errStep: StepEHLO, errKind: KindClosed},
		{name: "HELO closed", script: []any{cmd("EHLO ", "500 no\r\n"), expect("HELO "), closeConn()},
			wantErr: true, errStep: StepHELO, errKind: KindClosed},
		{name: "EHLO mismatched codes", script: []any{cmd("EHLO ", "250-fake\r\n251 PIPELINING\r\n"), clientCloses()},
			wantErr: true, errStep: StepEHLO, errKind: KindProtocol},
		{name: "EHLO bad continuation", script: []any{cmd("EHLO ", "250-fake\r\nPIPELINING\r\n"), clientCloses()},
			wantErr: true, errStep: StepEHLO, errKind: KindProtocol},
		{name: "EHLO over-long line", script: []any{cmd("EHLO ", "250-fake\r\n250-"+strings.Repeat("X", 5000)+"\r\n250 SIZE 1\r\n"), clientCloses()},
			wantErr: true, errStep: StepEHLO, errKind: KindProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := startFake(t, append([]any{send("220 fake\r\n")}, tc.script...)...)
			c := dialFake(t, f, tc.opts)
			if _, err := c.Greeting(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r, err := c.Hello()
			deadlineCheck(t, start)
			if tc.wantErr {
				wantErr(t, err, tc.errStep, tc.errKind)
				if c.Usable() {
					t.Error("usable after the failure")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if r != tc.want {
					t.Errorf("reply %v, want %v", r, tc.want)
				}
				if c.Usable() != tc.usable {
					t.Errorf("Usable %v, want %v", c.Usable(), tc.usable)
				}
			}
			f.finish(c)
		})
	}
}

func TestResetNoopQuit(t *testing.T) {
	f := startFake(t, greet(ehloPipe),
		lockstep("RSET\r\n", "250 2.0.0 flushed\r\n"),
		lockstep("NOOP\r\n", "250-2.0.0 one\r\n250 2.0.0 two\r\n"),
		lockstep("QUIT\r\n", "221 2.0.0 bye\r\n"), clientCloses())
	c := openFake(t, f, Options{})
	if r, err := c.Reset(); err != nil || r != reply(250, 2, 0, 0) || string(c.LastText()) != "flushed" {
		t.Errorf("RSET: %v %v %q", r, err, c.LastText())
	}
	if r, err := c.Noop(); err != nil || r != reply(250, 2, 0, 0) || string(c.LastText()) != "one" {
		t.Errorf("NOOP: %v %v %q", r, err, c.LastText())
	}
	if r, err := c.Quit(); err != nil || r != reply(221, 2, 0, 0) {
		t.Errorf("QUIT: %v %v", r, err)
	}
	if c.Usable() {
		t.Error("usable after QUIT")
	}
	if _, err := c.Noop(); KindOf(err) != KindClosed {
		t.Errorf("NOOP after QUIT: %v", err)
	}
	f.wait()
}

func TestSimpleCommandFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		step Step
		do   func(*Conn) (Reply, error)
	}{
		{"RSET", StepRset, (*Conn).Reset},
		{"NOOP", StepNoop, (*Conn).Noop},
		{"QUIT", StepQuit, (*Conn).Quit},
	} {
		t.Run(tc.name+" silent", func(t *testing.T) {
			t.Parallel()
			f := startFake(t, greet(ehloPipe), expect(tc.name+"\r\n"), hang())
			c := openFake(t, f, Options{Timeouts: timeoutTimeouts()})
			start := time.Now()
			_, err := tc.do(c)
			deadlineCheck(t, start)
			wantErr(t, err, tc.step, KindTimeout)
			if c.Usable() {
				t.Error("usable after a timeout")
			}
		})
		t.Run(tc.name+" closed", func(t *testing.T) {
			f := startFake(t, greet(ehloPipe), expect(tc.name+"\r\n"), closeConn())
			c := openFake(t, f, Options{})
			_, err := tc.do(c)
			wantErr(t, err, tc.step, KindClosed)
			f.wait()
		})
		t.Run(tc.name+" malformed", func(t *testing.T) {
			f := startFake(t, greet(ehloPipe), cmd(tc.name+"\r\n", "2500 ok\r\n"), clientCloses())
			c := openFake(t, f, Options{})
			_, err := tc.do(c)
			wantErr(t, err, tc.step, KindProtocol)
			f.finish(c)
		})
	}
}

// After a 421 the connection is not usable, and no command is sent on it.
func TestNothingSentAfter421(t *testing.T) {
	f := startFake(t, send("421 4.3.2 too busy\r\n"), clientCloses())
	c := dialFake(t, f, Options{})
	if r, err := c.Greeting(); err != nil || r.Code != 421 {
		t.Fatal(r, err)
	}
	if c.Usable() {
		t.Fatal("usable after 421")
	}
	var tr Trace
	e := wantErr(t, c.Send(msg(2), &tr), StepMail, KindClosed)
	if !errors.Is(e, errNotUsable) {
		t.Errorf("Send: %v", e)
	}
	if tr.Final != (Reply{}) || tr.Delivered || tr.NeedsReset || len(tr.Rcpt) != 0 {
		t.Errorf("trace %+v", tr)
	}
	for _, sc := range []struct {
		step Step
		do   func() (Reply, error)
	}{{StepRset, c.Reset}, {StepNoop, c.Noop}, {StepQuit, c.Quit}} {
		_, err := sc.do()
		if !errors.Is(wantErr(t, err, sc.step, KindClosed), errNotUsable) {
			t.Errorf("%v: %v", sc.step, err)
		}
	}
	f.wait() // clientCloses: nothing was written
	if got := f.received(); len(got) != 0 {
		t.Errorf("the client sent %q after 421", got)
	}
}

func TestDial(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	t.Run("refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		start := time.Now()
		c, err := Dial(ctx, Target{"tcp", addr}, Options{})
		deadlineCheck(t, start)
		if c != nil {
			t.Error("a Conn with the error")
		}
		e := wantErr(t, err, StepConnect, KindRefused)
		if !errors.Is(e, syscall.ECONNREFUSED) {
			t.Errorf("%v does not wrap ECONNREFUSED", e)
		}
	})
	t.Run("no socket", func(t *testing.T) {
		_, err := Dial(ctx, Target{"unix", filepath.Join(t.TempDir(), "none.sock")}, Options{})
		wantErr(t, err, StepConnect, KindDial)
	})
	t.Run("canceled", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, err = Dial(cctx, Target{"tcp", l.Addr().String()}, Options{})
		wantErr(t, err, StepConnect, KindCanceled)
	})
	t.Run("custom dialer", func(t *testing.T) {
		f := startFake(t, send("220 fake\r\n"), clientCloses())
		d := &countingDialer{}
		c, err := Dial(ctx, f.target(), Options{Dialer: d, Timeouts: testTimeouts()})
		if err != nil {
			t.Fatal(err)
		}
		if d.n != 1 || d.network != "tcp" || d.address != f.target().Address {
			t.Errorf("dialer called %d times with %s %s", d.n, d.network, d.address)
		}
		if c.NetConn() == nil {
			t.Error("no NetConn")
		}
		if r, err := c.Greeting(); err != nil || r.Code != 220 {
			t.Fatal(r, err)
		}
		f.finish(c)
	})
	t.Run("unix", func(t *testing.T) {
		srv, err := server.New(server.Config{})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "sink.sock")
		l, err := server.Listen("unix:" + path)
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		defer srv.Close()
		target, err := ParseTarget("unix:" + path)
		if err != nil {
			t.Fatal(err)
		}
		c := dialHello(t, target, Options{})
		var tr Trace
		if err := c.Send(testMessage(2), &tr); err != nil || !tr.Delivered {
			t.Fatalf("%v %+v", err, tr)
		}
		if _, err := c.Quit(); err != nil {
			t.Fatal(err)
		}
	})
}

type countingDialer struct {
	n                int
	network, address string
}

func (d *countingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.n++
	d.network, d.address = network, address
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

func TestKindOf(t *testing.T) {
	timeoutErr := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		err  error
		want ErrorKind
	}{
		{nil, KindOther},
		{errors.New("something"), KindOther},
		{io.EOF, KindClosed},
		{io.ErrUnexpectedEOF, KindClosed},
		{net.ErrClosed, KindClosed},
		{fmt.Errorf("wrapped: %w", io.EOF), KindClosed},
		{os.ErrDeadlineExceeded, KindTimeout},
		{timeoutErr, KindTimeout},
		{context.Canceled, KindCanceled},
		{syscall.ECONNRESET, KindReset},
		{&net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, KindReset},
		{syscall.ECONNABORTED, KindReset},
		{syscall.ECONNREFUSED, KindRefused},
		{errMalformed, KindProtocol},
		{wire.ErrLineTooLong, KindProtocol},
		{errNoPipelining, KindProtocol},
		{errNoChunking, KindProtocol},
		{&Error{Step: StepRcpt, Kind: KindReset, Err: io.EOF}, KindReset}, // an *Error's own kind wins
		{fmt.Errorf("ctx: %w", &Error{Step: StepData, Kind: KindTimeout, Err: io.EOF}), KindTimeout},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	e := &Error{Step: StepRcpt, Kind: KindTimeout, Err: os.ErrDeadlineExceeded}
	if got, want := e.Error(), "rcpt: timeout: "+os.ErrDeadlineExceeded.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, os.ErrDeadlineExceeded) {
		t.Error("Unwrap does not reach the cause")
	}
	for s, want := range []string{"connect", "greeting", "ehlo", "helo", "mail", "rcpt", "data", "body", "bdat", "rset", "noop", "quit"} {
		if got := Step(s).String(); got != want {
			t.Errorf("Step(%d) = %q, want %q", s, got, want)
		}
	}
	if got := Step(99).String(); got != "step99" {
		t.Errorf("Step(99) = %q", got)
	}
	for k, want := range []string{"other", "timeout", "closed", "reset", "refused", "protocol", "dial", "canceled"} {
		if got := ErrorKind(k).String(); got != want {
			t.Errorf("ErrorKind(%d) = %q, want %q", k, got, want)
		}
	}
	if got := ErrorKind(42).String(); got != "kind42" {
		t.Errorf("ErrorKind(42) = %q", got)
	}
	re := &ReplyError{Reply: reply(550, 5, 1, 1), Command: "RCPT", Text: "no such user"}
	if got := re.Error(); got != "RCPT: 550 5.1.1 no such user" {
		t.Errorf("ReplyError = %q", got)
	}
	if !re.Permanent() || re.Temporary() {
		t.Error("ReplyError does not carry its reply's class")
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.LocalName != defaultLocalName || o.Timeouts != DefaultTimeouts || o.ReadBuffer != 1<<10 || o.Dialer == nil {
		t.Errorf("defaults: %+v", o)
	}
	if d, ok := o.Dialer.(*net.Dialer); !ok || d.Timeout != DefaultTimeouts.Connect {
		t.Errorf("default dialer %#v", o.Dialer)
	}
	o = Options{ReadBuffer: 10, Timeouts: Timeouts{Command: time.Second}}.withDefaults()
	if o.ReadBuffer != 256 {
		t.Errorf("ReadBuffer %d, want the 256-octet minimum", o.ReadBuffer)
	}
	want := DefaultTimeouts
	want.Command = time.Second
	if o.Timeouts != want {
		t.Errorf("timeouts %+v, want %+v", o.Timeouts, want)
	}
	var all Timeouts
	all.All(3 * time.Second)
	if all != (Timeouts{3 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}) {
		t.Errorf("All: %+v", all)
	}
}
