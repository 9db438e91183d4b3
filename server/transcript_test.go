package server_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/server"
)

// The protocol tables: each case is a transcript played against a sink on a loopback port, once
// per I/O driver, one command and one reply at a time.

// testDeadline bounds every connection of a test: reads, writes and the wait for a close.
const testDeadline = 5 * time.Second

// drivers are the ways Serve drives a TCP connection: event loops (on Linux; elsewhere this is a
// goroutine too) and a goroutine per connection. Every transcript runs on both.
var drivers = []struct {
	name  string
	loops int
}{{"loops", 0}, {"goroutines", -1}}

// startServer serves cfg on 127.0.0.1:0 until the test ends, and checks that Serve returns
// server.ErrServerClosed then.
func startServer(tb testing.TB, cfg server.Config) (*server.Server, string) {
	tb.Helper()
	srv, l := newServerListener(tb, cfg)
	served := serveOn(srv, l)
	tb.Cleanup(func() {
		srv.Close()
		select {
		case err := <-served:
			if !errors.Is(err, server.ErrServerClosed) {
				tb.Errorf("Serve returned %v, want server.ErrServerClosed", err)
			}
		case <-time.After(testDeadline):
			tb.Errorf("Serve did not return after Close")
		}
	})
	return srv, l.Addr().String()
}

// newServerListener makes a server for cfg and a listener on a loopback port for it.
func newServerListener(tb testing.TB, cfg server.Config) (*server.Server, net.Listener) {
	tb.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return srv, l
}

// smtpReply is a reply as read off the wire.
type smtpReply struct {
	code  int
	lines []string // the text of each line, after "250-" or "250 "
}

func (r smtpReply) String() string {
	var b strings.Builder
	for i, l := range r.lines {
		sep := "-"
		if i == len(r.lines)-1 {
			sep = " "
		}
		b.WriteString(strconv.Itoa(r.code) + sep + l + `\r\n`)
	}
	return b.String()
}

// text is the first line's text: the only line of most replies, the hostname of EHLO's.
func (r smtpReply) text() string { return r.lines[0] }

// smtpClient is a test's side of one SMTP connection.
type smtpClient struct {
	tb   testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialSMTP(tb testing.TB, network, addr string) *smtpClient {
	tb.Helper()
	c, err := net.DialTimeout(network, addr, testDeadline)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return newSMTPClient(tb, c)
}

func newSMTPClient(tb testing.TB, c net.Conn) *smtpClient {
	c.SetDeadline(time.Now().Add(testDeadline))
	return &smtpClient{tb: tb, conn: c, r: bufio.NewReader(c)}
}

// readReply reads one whole reply, checking that every line is well formed: three digits, the
// same on every line, '-' on all lines but the last and ' ' on it, printable ASCII, CRLF.
func (c *smtpClient) readReply() (smtpReply, error) {
	var r smtpReply
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			if line != "" {
				return r, errors.New("partial reply line " + strconv.Quote(line) + ": " + err.Error())
			}
			return r, err
		}
		if err := checkReplyLine(line); err != nil {
			return r, err
		}
		code, _ := strconv.Atoi(line[:3])
		if len(r.lines) > 0 && code != r.code {
			return r, errors.New("code changes within a multi-line reply: " + strconv.Quote(line))
		}
		r.code = code
		r.lines = append(r.lines, line[4:len(line)-2])
		if line[3] == ' ' {
			return r, nil
		}
	}
}

// checkReplyLine checks one reply line, CRLF included.
func checkReplyLine(line string) error {
	bad := func(why string) error { return errors.New(why + ": " + strconv.Quote(line)) }
	if len(line) < 6 || !strings.HasSuffix(line, "\r\n") {
		return bad("reply line too short or not ended by CRLF")
	}
	if line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' {
		return bad("reply line without a 3-digit code")
	}
	if line[3] != ' ' && line[3] != '-' {
		return bad("reply code not followed by ' ' or '-'")
	}
	for i := 4; i < len(line)-2; i++ {
		if line[i] < ' ' || line[i] > '~' {
			return bad("reply text not printable ASCII")
		}
	}
	return nil
}

// expect reads a reply and fails the test unless it has code and its first line starts with text.
func (c *smtpClient) expect(code int, text string) smtpReply {
	c.tb.Helper()
	r, err := c.readReply()
	if err != nil {
		c.tb.Fatalf("reading a reply (want %d %s): %v", code, text, err)
	}
	if r.code != code || !strings.HasPrefix(r.text(), text) {
		c.tb.Fatalf("got reply %s, want %d %s…", r, code, text)
	}
	return r
}

func (c *smtpClient) send(s string) {
	c.tb.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.tb.Fatalf("writing %.40q: %v", s, err)
	}
}

// cmd sends a command line and expects its reply.
func (c *smtpClient) cmd(line string, code int, text string) smtpReply {
	c.tb.Helper()
	c.send(line + "\r\n")
	return c.expect(code, text)
}

// expectClosed reads until the server closes the connection and fails if anything more arrives.
func (c *smtpClient) expectClosed() {
	c.tb.Helper()
	b, err := c.r.ReadByte()
	if err == nil {
		rest, _ := c.r.Peek(c.r.Buffered())
		c.tb.Fatalf("expected the connection to close, got more: %q", append([]byte{b}, rest...))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.tb.Fatalf("the connection stayed open: %v", err)
	}
}

// step is one exchange of a transcript.
type step struct {
	send  string   // written as is
	code  int      // the reply then read; 0 reads none
	text  string   // the reply's first line must start with this, after the code and a space
	lines []string // when set, the reply's lines must be exactly these
	close bool     // the server closes the connection after the reply
}

// cmd is a command line and its reply.
func cmd(line string, code int, text string) step {
	return step{send: line + "\r\n", code: code, text: text}
}

// raw sends data and reads no reply.
func raw(data string) step { return step{send: data} }

// wait reads a reply without sending anything.
func wait(code int, text string) step { return step{code: code, text: text} }

// closing is a command whose reply ends the session.
func closing(line string, code int, text string) step {
	s := cmd(line, code, text)
	s.close = true
	return s
}

// steps concatenates parts of a transcript.
func steps(parts ...[]step) []step { return slices.Concat(parts...) }

// ehlo and helo open a session; mailTxn is MAIL and RCPTs that all succeed.
var (
	ehlo = []step{cmd("EHLO client.example", 250, "")}
	helo = []step{cmd("HELO client.example", 250, "smtpbench.localhost")}
)

func mailTxn(rcpts ...string) []step {
	s := []step{cmd("MAIL FROM:<sender@example.com>", 250, "2.1.0 Ok")}
	for _, r := range rcpts {
		s = append(s, cmd("RCPT TO:<"+r+">", 250, "2.1.5 Ok"))
	}
	return s
}

// dataMsg is a whole DATA exchange whose body is accepted.
func dataMsg(body string) []step {
	return []step{cmd("DATA", 354, "End data with"), {send: body + ".\r\n", code: 250, text: "2.0.0 Ok: queued as "}}
}

// messageBody is a body of exactly n octets (n >= 2) as a client sends it: CRLF lines of at most
// 1001 octets, none starting with a dot.
func messageBody(n int) string {
	if n < 2 {
		panic("messageBody: n < 2")
	}
	full := (n - 2) / 1000
	var b strings.Builder
	b.Grow(n)
	line := strings.Repeat("x", 998) + "\r\n"
	for range full {
		b.WriteString(line)
	}
	b.WriteString(strings.Repeat("y", n-full*1000-2) + "\r\n")
	return b.String()
}

// domainOf is a syntactically valid domain of exactly n octets: labels of 50 and a last one of
// 1 to 51.
func domainOf(n int) string {
	k := (n - 1) / 51
	return strings.Repeat(strings.Repeat("d", 50)+".", k) + strings.Repeat("e", n-51*k)
}

// runTranscript dials the server, expects the greeting and plays the steps.
func runTranscript(t *testing.T, addr string, greeting string, ss []step) {
	t.Helper()
	c := dialSMTP(t, "tcp", addr)
	if greeting != "" {
		c.expect(220, greeting)
	}
	for i, s := range ss {
		if s.send != "" {
			c.send(s.send)
		}
		if s.code == 0 {
			continue
		}
		r, err := c.readReply()
		if err != nil {
			t.Fatalf("step %d (%.60q): reading the reply: %v", i, s.send, err)
		}
		if r.code != s.code || !strings.HasPrefix(r.text(), s.text) {
			t.Fatalf("step %d (%.60q): got %s, want %d %s…", i, s.send, r, s.code, s.text)
		}
		if s.lines != nil && !slices.Equal(r.lines, s.lines) {
			t.Fatalf("step %d (%.60q): got lines %q, want %q", i, s.send, r.lines, s.lines)
		}
		if s.close {
			c.expectClosed()
			return
		}
	}
	// The session is still usable and ends cleanly.
	c.cmd("QUIT", 221, "")
	c.expectClosed()
}

type transcript struct {
	name     string
	cfg      server.Config
	greeting string // what the 220 must start with; default "smtpbench.localhost ESMTP"
	steps    []step
}

// defaultEHLO is the EHLO reply with every extension on and the default size.
var defaultEHLO = []string{"smtpbench.localhost", "PIPELINING", "SIZE 33554432", "VRFY", "8BITMIME",
	"SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME"}

func without(lines []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return slices.Contains(drop, l) })
}

func commandTranscripts() []transcript {
	return []transcript{
		{name: "ehlo lists every extension", steps: []step{
			{send: "EHLO client.example\r\n", code: 250, lines: defaultEHLO},
		}},
		{name: "ehlo with its own hostname and size", cfg: server.Config{Hostname: "mx.test.example", MaxMessageSize: 1000},
			greeting: "mx.test.example ESMTP smtpbench", steps: []step{
				{send: "EHLO client.example\r\n", code: 250, lines: append([]string{"mx.test.example", "PIPELINING", "SIZE 1000"}, defaultEHLO[3:]...)},
				cmd("HELO client.example", 250, "mx.test.example"),
			}},
		{name: "ehlo syntax", steps: []step{
			cmd("EHLO", 501, "5.5.4 Syntax: EHLO hostname"),
			cmd("HELO", 501, "5.5.4 Syntax: EHLO hostname"),
			cmd("EHLO "+strings.Repeat("h", 256), 501, "5.5.4"),
			cmd("EHLO bad\x01host", 501, "5.5.4"),
			cmd("EHLO [127.0.0.1]", 250, "smtpbench.localhost"),
		}},
		{name: "helo then a message", steps: steps(helo, mailTxn("rcpt@example.org"), dataMsg("Subject: hi\r\n\r\nhello\r\n"))},
		{name: "ehlo then a message", steps: steps(ehlo, mailTxn("a@example.org", "b@example.org"), dataMsg("hello\r\n"))},
		{name: "lower and mixed case verbs", steps: []step{
			cmd("ehlo client.example", 250, "smtpbench.localhost"),
			cmd("mail from:<a@example.com>", 250, "2.1.0"),
			cmd("RcPt To:<b@example.com>", 250, "2.1.5"),
			cmd("rset", 250, "2.0.0 Ok"),
			cmd("MaIl FrOm:<a@example.com> size=10 body=8bitmime", 250, "2.1.0"),
			cmd("rcpt to:<b@example.com>", 250, "2.1.5"),
			cmd("data", 354, ""),
			{send: "x\r\n.\r\n", code: 250, text: "2.0.0 Ok: queued as"},
			cmd("noop", 250, "2.0.0"),
			cmd("vrfy someone", 252, "2.0.0"),
			cmd("hElP", 214, "2.0.0"),
			closing("quit", 221, "2.0.0 Bye"),
		}},
		{name: "rset", steps: steps(ehlo, mailTxn("a@example.org"), []step{
			cmd("RSET", 250, "2.0.0 Ok"),
			cmd("RCPT TO:<a@example.org>", 503, "5.5.1 Error: need MAIL command"),
			cmd("RSET now", 501, "5.5.4"),
			cmd("MAIL FROM:<a@example.com>", 250, "2.1.0"),
		})},
		{name: "rset and noop before helo", steps: []step{
			cmd("RSET", 250, "2.0.0"),
			cmd("NOOP", 250, "2.0.0 Ok"),
			cmd("NOOP with an argument", 250, "2.0.0 Ok"),
		}},
		{name: "ehlo resets the transaction", steps: steps(ehlo, mailTxn("a@example.org"), ehlo, []step{
			cmd("RCPT TO:<a@example.org>", 503, "5.5.1"),
			cmd("DATA", 503, "5.5.1 Error: need MAIL command"),
		})},
		{name: "quit", steps: []step{closing("QUIT", 221, "2.0.0 Bye")}},
		{name: "quit with an argument", steps: []step{cmd("QUIT now", 501, "5.5.4"), closing("QUIT", 221, "2.0.0")}},
		{name: "vrfy", steps: []step{
			cmd("VRFY postmaster", 252, "2.0.0 Cannot VRFY user"),
			cmd("VRFY", 501, "5.5.4 Syntax: VRFY address"),
		}},
		{name: "expn refused by default", steps: []step{
			cmd("EXPN list", 502, "5.5.1 Error: EXPN not available"),
			cmd("EXPN", 501, "5.5.4"),
		}},
		{name: "expn allowed", cfg: server.Config{ExpnAllowed: true}, steps: []step{
			cmd("EXPN list", 252, "2.0.0"),
		}},
		{name: "help", steps: []step{
			cmd("HELP", 214, "2.0.0 Commands:"),
			cmd("HELP MAIL", 214, "2.0.0"),
		}},
		{name: "unknown commands", steps: []step{
			cmd("FOOB", 500, "5.5.2 Error: command not recognized"),
			cmd("XYZ", 500, "5.5.2"),
			cmd("", 500, "5.5.2"),
			cmd("MAILFROM:<a@example.com>", 500, "5.5.2"),
			cmd("\x00\x01\x02\x03", 500, "5.5.2"),
		}},
		{name: "known but not implemented", steps: steps(ehlo, []step{
			cmd("AUTH PLAIN AGJvYgBzZWNyZXQ=", 502, "5.5.1 Error: command not implemented"),
			cmd("STARTTLS", 502, "5.5.1 Error: command not implemented"),
			cmd("starttls", 502, "5.5.1"),
			cmd("ETRN example.com", 502, "5.5.1"),
			cmd("TURN", 502, "5.5.1"),
			cmd("SEND FROM:<a@example.com>", 502, "5.5.1"),
			// The session goes on normally afterwards.
		}, mailTxn("a@example.org"), dataMsg("x\r\n"))},
		{name: "bare LF ends a command line", steps: steps([]step{
			{send: "EHLO client.example\n", code: 250},
			{send: "NOOP\n", code: 250, text: "2.0.0"},
		})},
	}
}

func sequenceTranscripts() []transcript {
	return []transcript{
		{name: "503 mail before helo", steps: []step{
			cmd("MAIL FROM:<a@example.com>", 503, "5.5.1 Error: send HELO/EHLO first"),
		}},
		{name: "503 nested mail", steps: steps(ehlo, mailTxn(), []step{
			cmd("MAIL FROM:<b@example.com>", 503, "5.5.1 Error: nested MAIL command"),
		})},
		{name: "503 rcpt before mail", steps: steps(ehlo, []step{
			cmd("RCPT TO:<a@example.org>", 503, "5.5.1 Error: need MAIL command"),
		})},
		{name: "503 data before mail", steps: steps(ehlo, []step{
			cmd("DATA", 503, "5.5.1 Error: need MAIL command"),
		})},
		{name: "503 data before helo", steps: []step{
			cmd("DATA", 503, "5.5.1"),
		}},
		{name: "503 data before rcpt", steps: steps(ehlo, mailTxn(), []step{
			cmd("DATA", 503, "5.5.1 Error: need RCPT command"),
		})},
		{name: "554 data with only refused recipients", steps: steps(ehlo, mailTxn(), []step{
			cmd("RCPT TO:<bad address>", 501, "5.1.3"),
			cmd("RCPT TO:<ü@example.org>", 553, "5.6.7"),
			cmd("DATA", 554, "5.5.1 Error: no valid recipients"),
			cmd("BDAT 3 LAST", 0, ""),
			{send: "abc", code: 554, text: "5.5.1"},
			// One good recipient makes the message go.
			cmd("RCPT TO:<good@example.org>", 250, "2.1.5"),
		}, dataMsg("x\r\n"))},
		{name: "503 bdat before mail", steps: steps(ehlo, []step{
			{send: "BDAT 5 LAST\r\nhello", code: 503, text: "5.5.1 Error: need MAIL command"},
			cmd("NOOP", 250, "2.0.0"), // the chunk was read, not taken as commands
		})},
		{name: "502 bdat before ehlo", steps: []step{ // CHUNKING is offered only after EHLO
			{send: "BDAT 4\r\nNOOP", code: 502, text: "5.5.1"},
			cmd("NOOP", 250, "2.0.0"),
		}},
		{name: "503 bdat before rcpt", steps: steps(ehlo, mailTxn(), []step{
			{send: "BDAT 5 LAST\r\nhello", code: 503, text: "5.5.1 Error: need RCPT command"},
			cmd("RCPT TO:<a@example.org>", 250, "2.1.5"),
			{send: "BDAT 5 LAST\r\nhello", code: 250, text: "2.0.0 Ok: queued as"},
		})},
		{name: "503 data after a bdat chunk", steps: steps(ehlo, mailTxn("a@example.org"), []step{
			{send: "BDAT 5\r\nhello", code: 250, text: "2.0.0 Ok: received 5 octets"},
			cmd("DATA", 503, "5.5.1 Error: DATA and BDAT cannot be mixed"),
			{send: "BDAT 6 LAST\r\n world", code: 250, text: "2.0.0 Ok: queued as"},
			// The transaction is over: a new one needs MAIL.
			{send: "BDAT 1 LAST\r\nx", code: 503, text: "5.5.1 Error: need MAIL command"},
		})},
	}
}

func pathTranscripts() []transcript {
	return []transcript{
		{name: "null reverse-path", steps: steps(ehlo, []step{
			cmd("MAIL FROM:<>", 250, "2.1.0"),
			cmd("RCPT TO:<a@example.org>", 250, "2.1.5"),
		}, dataMsg("bounce\r\n"), []step{
			cmd("MAIL FROM:<> SIZE=100 BODY=8BITMIME", 250, "2.1.0"),
			cmd("RSET", 250, "2.0.0"),
			cmd("MAIL FROM:<>SIZE=100", 501, "5.1.7"),
		})},
		{name: "postmaster", steps: steps(ehlo, mailTxn(), []step{
			cmd("RCPT TO:<Postmaster>", 250, "2.1.5"),
			cmd("RCPT TO:<postMASTER>", 250, "2.1.5"),
			cmd("RCPT TO:<root>", 501, "5.1.3"),
			cmd("RSET", 250, "2.0.0"),
			cmd("MAIL FROM:<Postmaster>", 501, "5.1.7"),
		})},
		{name: "source routes", steps: steps(ehlo, []step{
			cmd("MAIL FROM:<@relay.example:sender@example.com>", 250, "2.1.0"),
			cmd("RCPT TO:<@one.example,@two.example:user@example.org>", 250, "2.1.5"),
		}, dataMsg("x\r\n"))},
		{name: "good paths", steps: steps(ehlo, mailTxn(), []step{
			cmd(`RCPT TO:<"quoted local"@example.org>`, 250, "2.1.5"),
			cmd("RCPT TO:<user@[192.0.2.1]>", 250, "2.1.5"),
			cmd("RCPT TO:<user@[IPv6:2001:db8::1]>", 250, "2.1.5"),
			cmd("RCPT TO:<first.last+tag@sub-domain.example.org>", 250, "2.1.5"),
			cmd("RCPT TO: <spaced@example.org>", 250, "2.1.5"),
			cmd("rcpt to:<lower@example.org>", 250, "2.1.5"),
		})},
		{name: "bad sender paths", steps: steps(ehlo, []step{
			cmd("MAIL FROM:sender@example.com", 501, "5.1.7 Bad sender address syntax"),
			cmd("MAIL FROM:<sender@example.com", 501, "5.1.7"),
			cmd("MAIL FROM:<a b@example.com>", 501, "5.1.7"),
			cmd("MAIL FROM:<a@>", 501, "5.1.7"),
			cmd("MAIL FROM:<@example.com>", 501, "5.1.7"),
			cmd("MAIL FROM:<a@b..c>", 501, "5.1.7"),
			cmd("MAIL FROM:<a@example.com.>", 501, "5.1.7"),
			cmd("MAIL FROM:<@relay.example>", 501, "5.1.7"),
			cmd("MAIL FROM:", 501, "5.1.7"),
			cmd("MAIL FROM:<a@example.com>x", 501, "5.1.7"),
			cmd("MAIL TO:<a@example.com>", 501, "5.5.4 Syntax: MAIL FROM:<address>"),
			cmd("MAIL", 501, "5.5.4"),
			// None of these started a transaction.
			cmd("MAIL FROM:<a@example.com>", 250, "2.1.0"),
		})},
		{name: "bad recipient paths", steps: steps(ehlo, mailTxn(), []step{
			cmd("RCPT TO:<>", 501, "5.1.3 Bad recipient address syntax"),
			cmd("RCPT TO:user@example.org", 501, "5.1.3"),
			cmd("RCPT TO:<user@example.org", 501, "5.1.3"),
			cmd("RCPT TO:<us(er@example.org>", 501, "5.1.3"),
			cmd("RCPT TO:<user@exa_mple.org>", 501, "5.1.3"),
			cmd(`RCPT TO:<"unterminated@example.org>`, 501, "5.1.3"),
			cmd("RCPT TO:<user@[192.0.2.1>", 501, "5.1.3"),
			cmd("RCPT FROM:<user@example.org>", 501, "5.5.4 Syntax: RCPT TO:<address>"),
			cmd("RCPT TO:<user@example.org> NOTIFY=NEVER", 555, "5.5.4"),
		})},
		{name: "local part default 64", steps: steps(ehlo, mailTxn(), []step{
			cmd("RCPT TO:<"+long(64)+"@example.org>", 250, "2.1.5"),
			cmd("RCPT TO:<"+long(65)+"@example.org>", 553, "5.1.0 Error: local part too long"),
			cmd("RSET", 250, ""),
			cmd("MAIL FROM:<"+long(65)+"@example.org>", 553, "5.1.0"),
		})},
		{name: "local part configured 8", cfg: server.Config{MaxLocalPart: 8}, steps: steps(ehlo, mailTxn(), []step{
			cmd("RCPT TO:<"+long(8)+"@example.org>", 250, "2.1.5"),
			cmd("RCPT TO:<"+long(9)+"@example.org>", 553, "5.1.0"),
			cmd(`RCPT TO:<"`+long(7)+`"@example.org>`, 553, "5.1.0"), // the quotes count
		})},
		{name: "domain default 255", cfg: server.Config{MaxPath: 300}, steps: steps(ehlo, mailTxn(), []step{
			cmd("RCPT TO:<a@"+domainOf(255)+">", 250, "2.1.5"),
			cmd("RCPT TO:<a@"+domainOf(256)+">", 553, "5.1.2 Error: domain too long"),
		})},
		{name: "domain default 256 with default path", steps: steps(ehlo, mailTxn(), []step{
			cmd("RCPT TO:<a@"+domainOf(256)+">", 553, "5.1.2"),
		})},
		{name: "domain configured 20", cfg: server.Config{MaxDomain: 20}, steps: steps(ehlo, []step{
			cmd("MAIL FROM:<a@"+domainOf(20)+">", 250, "2.1.0"),
			cmd("RCPT TO:<a@"+domainOf(21)+">", 553, "5.1.2"),
			cmd("RCPT TO:<a@["+strings.Repeat("1", 19)+"]>", 553, "5.1.2"), // 21 with the brackets
		})},
		{name: "path default 256", steps: steps(ehlo, mailTxn(), []step{
			// "<" + 64 + "@" + 189 + ">" is 256 octets.
			cmd("RCPT TO:<"+long(64)+"@"+domainOf(189)+">", 250, "2.1.5"),
			cmd("RCPT TO:<"+long(64)+"@"+domainOf(190)+">", 501, "5.5.4 Error: path too long"),
			cmd("RCPT TO:<@"+domainOf(60)+":"+long(60)+"@"+domainOf(140)+">", 501, "5.5.4 Error: path too long"), // a source route counts
		})},
		{name: "path configured 20", cfg: server.Config{MaxPath: 20}, steps: steps(ehlo, []step{
			cmd("MAIL FROM:<"+long(5)+"@"+domainOf(12)+">", 250, "2.1.0"),                    // 20
			cmd("RCPT TO:<"+long(5)+"@"+domainOf(13)+">", 501, "5.5.4 Error: path too long"), // 21
		})},
	}
}

func limitTranscripts() []transcript {
	rcpts := func(n int) []step {
		var s []step
		for i := range n {
			s = append(s, cmd("RCPT TO:<r"+strconv.Itoa(i)+"@example.org>", 250, "2.1.5"))
		}
		return s
	}
	big := messageBody(server.DefaultMaxMessageSize + 1)
	return []transcript{
		{name: "line length default 512", steps: steps(ehlo, []step{
			cmd("NOOP "+strings.Repeat("a", 505), 250, "2.0.0"), // 512 with CRLF
			cmd("NOOP "+strings.Repeat("a", 506), 500, "5.5.2 Error: line too long"),
			cmd("NOOP "+strings.Repeat("a", 100_000), 500, "5.5.2 Error: line too long"),
			cmd("NOOP", 250, "2.0.0"),
			// A long line in the middle of a pipelined group costs only itself.
			{send: "MAIL FROM:<a@example.com>\r\n" + strings.Repeat("R", 600) + "\r\nRCPT TO:<b@example.org>\r\n", code: 250, text: "2.1.0"},
			wait(500, "5.5.2"),
			wait(250, "2.1.5"),
		}, dataMsg("x\r\n"))},
		{name: "line length configured 64", cfg: server.Config{MaxLineLength: 64, MaxPath: 60}, steps: steps(ehlo, []step{
			cmd("NOOP "+strings.Repeat("a", 57), 250, "2.0.0"), // 64 with CRLF
			cmd("NOOP "+strings.Repeat("a", 58), 500, "5.5.2"),
			{send: "NOOP " + strings.Repeat("a", 58) + "\n", code: 250, text: "2.0.0"}, // 64 with a bare LF
			{send: "NOOP " + strings.Repeat("a", 59) + "\n", code: 500, text: "5.5.2"},
		})},
		{name: "recipients default 100", steps: steps(ehlo, mailTxn(), rcpts(100), []step{
			cmd("RCPT TO:<one-more@example.org>", 452, "4.5.3 Error: too many recipients"),
			cmd("RCPT TO:<and-another@example.org>", 452, "4.5.3"),
		}, dataMsg("x\r\n"), mailTxn("after@example.org"))},
		{name: "recipients configured 2", cfg: server.Config{MaxRecipients: 2}, steps: steps(ehlo, mailTxn(), rcpts(2), []step{
			cmd("RCPT TO:<third@example.org>", 452, "4.5.3"),
		}, dataMsg("x\r\n"), mailTxn(), rcpts(2))},
		{name: "size at mail default", steps: steps(ehlo, []step{
			cmd("MAIL FROM:<a@example.com> SIZE=33554433", 552, "5.3.4 Error: message size exceeds fixed limit"),
			cmd("MAIL FROM:<a@example.com> SIZE=999999999999999999", 552, "5.3.4"),
			cmd("MAIL FROM:<a@example.com> SIZE=33554432", 250, "2.1.0"),
		})},
		{name: "size at mail configured 1000", cfg: server.Config{MaxMessageSize: 1000}, steps: steps(ehlo, []step{
			cmd("MAIL FROM:<a@example.com> SIZE=1001", 552, "5.3.4"),
			cmd("MAIL FROM:<a@example.com> SIZE=1000", 250, "2.1.0"),
		})},
		{name: "body size default", steps: steps(ehlo, mailTxn("a@example.org"), []step{
			cmd("DATA", 354, ""),
			{send: big + ".\r\n", code: 552, text: "5.3.4 Error: message too big"},
			cmd("NOOP", 250, "2.0.0"),
			cmd("RCPT TO:<a@example.org>", 503, "5.5.1"), // the transaction ended
		}, mailTxn("a@example.org"), dataMsg("x\r\n"))},
		{name: "body size configured 1000", cfg: server.Config{MaxMessageSize: 1000}, steps: steps(ehlo, mailTxn("a@example.org"),
			dataMsg(messageBody(1000)), mailTxn("a@example.org"), []step{
				cmd("DATA", 354, ""),
				{send: messageBody(1001) + ".\r\n", code: 552, text: "5.3.4"},
				cmd("NOOP", 250, "2.0.0"),
				cmd("MAIL FROM:<a@example.com>", 250, "2.1.0"),
				cmd("RCPT TO:<a@example.org>", 250, "2.1.5"),
				cmd("DATA", 354, ""),
				// Stuffed dots do not count: 999 octets sent as 1000 is still 999.
				{send: ".." + messageBody(998) + ".\r\n", code: 250, text: "2.0.0 Ok: queued"},
			})},
		{name: "bdat size default", steps: steps(ehlo, mailTxn("a@example.org"), []step{
			{send: "BDAT 33554433 LAST\r\n" + big[:server.DefaultMaxMessageSize+1], code: 552, text: "5.3.4 Error: message too big"},
			cmd("NOOP", 250, "2.0.0"),
		}, mailTxn("a@example.org"), []step{
			{send: "BDAT 5 LAST\r\nsmall", code: 250, text: "2.0.0 Ok: queued as"},
		})},
		{name: "bdat size configured 1000", cfg: server.Config{MaxMessageSize: 1000}, steps: steps(ehlo, mailTxn("a@example.org"), []step{
			{send: "BDAT 1000 LAST\r\n" + strings.Repeat("b", 1000), code: 250, text: "2.0.0 Ok: queued as"},
		}, mailTxn("a@example.org"), []step{
			{send: "BDAT 1001 LAST\r\n" + strings.Repeat("b", 1001), code: 552, text: "5.3.4"},
			cmd("NOOP", 250, "2.0.0"),
		}, mailTxn("a@example.org"), []step{
			{send: "BDAT 600\r\n" + strings.Repeat("c", 600), code: 250, text: "2.0.0 Ok: received 600 octets"},
			{send: "BDAT 401\r\n" + strings.Repeat("c", 401), code: 552, text: "5.3.4"},
			// The message failed with that chunk: the next one has no transaction, and is
			// still read to its end.
			{send: "BDAT 10 LAST\r\nNOOP\r\nNOOP", code: 503, text: "5.5.1 Error: need MAIL command"},
			cmd("NOOP", 250, "2.0.0"),
		}, mailTxn("a@example.org"), []step{
			{send: "BDAT 0 LAST\r\n", code: 250, text: "2.0.0 Ok: queued as"},
		})},
		{name: "max errors default 20", steps: steps(
			slices.Repeat([]step{cmd("FOOB", 500, "5.5.2")}, 10),
			slices.Repeat([]step{cmd("MAIL FROM:<a@example.com>", 503, "5.5.1")}, 5),
			slices.Repeat([]step{cmd("EXPN x", 502, "5.5.1")}, 3),
			ehlo,
			[]step{
				cmd("MAIL FROM:<a@example.com> FOO=1", 555, "5.5.4"),
				cmd("RCPT TO:<a@example.org>", 503, "5.5.1"), // the 20th
				// Replies that are not protocol errors do not count.
				cmd("MAIL FROM:<a@example.com> SIZE=33554433", 552, "5.3.4"),
				cmd("MAIL FROM:<a@example.com>", 250, "2.1.0"),
				cmd("RCPT TO:<"+long(65)+"@example.org>", 553, "5.1.0"),
				cmd("RCPT TO:<a@example.org>", 250, "2.1.5"),
				closing("DATA now", 421, "4.7.0 smtpbench.localhost Error: too many errors"),
			})},
		{name: "max errors configured 2", cfg: server.Config{MaxErrors: 2}, steps: []step{
			cmd("FOOB", 500, "5.5.2"),
			cmd("HELO", 501, "5.5.4"),
			closing("FOOB", 421, "4.7.0"),
		}},
	}
}

func long(n int) string { return strings.Repeat("l", n) }

func paramTranscripts() []transcript {
	return []transcript{
		{name: "size param", steps: steps(ehlo, []step{
			cmd("MAIL FROM:<a@example.com> SIZE=abc", 501, "5.5.4 Error: bad parameter value"),
			cmd("MAIL FROM:<a@example.com> SIZE", 501, "5.5.4"),
			cmd("MAIL FROM:<a@example.com> SIZE=", 501, "5.5.4"),
			cmd("MAIL FROM:<a@example.com> SIZE=-1", 501, "5.5.4"),
			cmd("MAIL FROM:<a@example.com> size=0", 250, "2.1.0"),
		})},
		{name: "body params", steps: steps(ehlo, []step{
			cmd("MAIL FROM:<a@example.com> BODY=7BIT", 250, "2.1.0"),
			cmd("RSET", 250, ""),
			cmd("MAIL FROM:<a@example.com> BODY=8BITMIME", 250, "2.1.0"),
			cmd("RCPT TO:<b@example.org>", 250, ""),
		}, dataMsg("caf\xc3\xa9\r\n"), []step{
			cmd("MAIL FROM:<a@example.com> BODY=9BIT", 501, "5.5.4"),
			cmd("MAIL FROM:<a@example.com> BODY", 501, "5.5.4"),
			cmd("MAIL FROM:<a@example.com> BODY=BINARYMIME SIZE=100", 250, "2.1.0"),
			cmd("RCPT TO:<b@example.org>", 250, ""),
			cmd("DATA", 503, "5.5.1 Error: BODY=BINARYMIME needs BDAT"),
			{send: "BDAT 4 LAST\r\n\x00\r\n\xff", code: 250, text: "2.0.0 Ok: queued as"},
		})},
		{name: "smtputf8", steps: steps(ehlo, []step{
			cmd("MAIL FROM:<jös@example.com>", 553, "5.6.7 Error: non-ASCII address needs SMTPUTF8"),
			cmd("MAIL FROM:<a@exämple.com>", 553, "5.6.7"),
			cmd("MAIL FROM:<a@example.com>", 250, "2.1.0"),
			cmd("RCPT TO:<ü@example.org>", 553, "5.6.7"),
			cmd("RSET", 250, ""),
			cmd("MAIL FROM:<jös@example.com> SMTPUTF8", 250, "2.1.0"),
			cmd("RCPT TO:<ü@exämple.org>", 250, "2.1.5"),
			cmd(`RCPT TO:<"ü"@example.org>`, 250, "2.1.5"),
		}, dataMsg("x\r\n"), []step{
			cmd("MAIL FROM:<a@example.com> SMTPUTF8=yes", 501, "5.5.4"),
			cmd("MAIL FROM:<a@example.com> smtputf8 BODY=8BITMIME", 250, "2.1.0"),
		})},
		{name: "unknown params", steps: steps(ehlo, []step{
			cmd("MAIL FROM:<a@example.com> FOO=BAR", 555, "5.5.4 Error: parameter not recognized"),
			cmd("MAIL FROM:<a@example.com> SIZE=10 AUTH=<>", 555, "5.5.4"),
			cmd("MAIL FROM:<a@example.com> RET=HDRS", 555, "5.5.4"),
			cmd("MAIL FROM:<a@example.com>  SIZE=10  ", 250, "2.1.0"),
		})},
		{name: "params after helo", steps: steps(helo, []step{
			cmd("MAIL FROM:<a@example.com> SIZE=10", 555, "5.5.4"),
			cmd("MAIL FROM:<a@example.com> BODY=8BITMIME", 555, "5.5.4"),
			cmd("MAIL FROM:<jös@example.com> SMTPUTF8", 555, "5.5.4"),
			cmd("MAIL FROM:<a@example.com>", 250, "2.1.0"),
			cmd("RCPT TO:<b@example.org>", 250, "2.1.5"),
			// Not offered to a HELO client, so BDAT is not either: the chunk is still read.
			{send: "BDAT 4 LAST\r\nNOOP", code: 502, text: "5.5.1"},
		}, dataMsg("x\r\n"))},
		{name: "bdat syntax", steps: steps(ehlo, mailTxn("a@example.org"), []step{
			cmd("BDAT", 501, "5.5.4 Syntax: BDAT size [LAST]"),
			cmd("BDAT x", 501, "5.5.4"),
			cmd("BDAT -1", 501, "5.5.4"),
			cmd("BDAT 5 MORE", 501, "5.5.4"),
			cmd("BDAT 5 LAST x", 501, "5.5.4"),
			cmd("BDAT 1234567890123456789", 501, "5.5.4"),
			{send: "bdat 3 last\r\nabc", code: 250, text: "2.0.0 Ok: queued as"},
		})},
		{name: "data with an argument", steps: steps(ehlo, mailTxn("a@example.org"), []step{
			cmd("DATA now", 501, "5.5.4"),
		}, dataMsg("x\r\n"))},
	}
}

// disableTranscripts: each extension Config.Disable switches off is neither advertised nor accepted.
func disableTranscripts() []transcript {
	return []transcript{
		{name: "disable PIPELINING", cfg: server.Config{Disable: server.ExtPipelining}, steps: []step{
			{send: "EHLO client.example\r\n", code: 250, lines: without(defaultEHLO, "PIPELINING")},
		}},
		{name: "disable SIZE", cfg: server.Config{Disable: server.ExtSize}, steps: []step{
			{send: "EHLO client.example\r\n", code: 250, lines: without(defaultEHLO, "SIZE 33554432")},
			cmd("MAIL FROM:<a@example.com> SIZE=10", 555, "5.5.4"),
		}},
		{name: "disable 8BITMIME", cfg: server.Config{Disable: server.Ext8BitMIME}, steps: []step{
			{send: "EHLO client.example\r\n", code: 250, lines: without(defaultEHLO, "8BITMIME", "BINARYMIME")},
			cmd("MAIL FROM:<a@example.com> BODY=8BITMIME", 555, "5.5.4"),
			cmd("MAIL FROM:<a@example.com> BODY=BINARYMIME", 555, "5.5.4"),
		}},
		{name: "disable SMTPUTF8", cfg: server.Config{Disable: server.ExtSMTPUTF8}, steps: []step{
			{send: "EHLO client.example\r\n", code: 250, lines: without(defaultEHLO, "SMTPUTF8")},
			cmd("MAIL FROM:<jös@example.com> SMTPUTF8", 555, "5.5.4"),
			cmd("MAIL FROM:<jös@example.com>", 553, "5.6.7"),
		}},
		{name: "disable CHUNKING", cfg: server.Config{Disable: server.ExtChunking}, steps: steps([]step{
			{send: "EHLO client.example\r\n", code: 250, lines: without(defaultEHLO, "CHUNKING", "BINARYMIME")},
			cmd("MAIL FROM:<a@example.com> BODY=BINARYMIME", 501, "5.5.4"),
		}, mailTxn("a@example.org"), []step{
			{send: "BDAT 4 LAST\r\nRSET", code: 502, text: "5.5.1 Error: command not implemented"},
		}, dataMsg("x\r\n"))},
		{name: "disable ENHANCEDSTATUSCODES", cfg: server.Config{Disable: server.ExtEnhancedStatusCodes}, steps: []step{
			{send: "EHLO client.example\r\n", code: 250, lines: without(defaultEHLO, "ENHANCEDSTATUSCODES")},
			cmd("MAIL FROM:<a@example.com>", 250, "Ok"),
			cmd("RCPT TO:<b@example.org>", 250, "Ok"),
			cmd("RCPT TO:<bad>", 501, "Bad recipient address syntax"),
			cmd("DATA", 354, "End data with"),
			{send: "x\r\n.\r\n", code: 250, text: "Ok: queued as "},
			cmd("FOOB", 500, "Error: command not recognized"),
			cmd("RCPT TO:<b@example.org>", 503, "Error: need MAIL command"),
			cmd("MAIL FROM:<a@example.com>", 250, "Ok"),
			cmd("RCPT TO:<b@example.org>", 250, "Ok"),
			{send: "BDAT 1\r\nx", code: 250, text: "Ok: received 1 octets"},
			{send: "BDAT 1 LAST\r\ny", code: 250, text: "Ok: queued as "},
			cmd("NOOP", 250, "Ok"),
			cmd("VRFY x", 252, "Cannot VRFY"),
			cmd("HELP", 214, "Commands:"),
			closing("QUIT", 221, "Bye"),
		}},
		{name: "disable everything", cfg: server.Config{Disable: server.ExtPipelining | server.ExtSize | server.Ext8BitMIME | server.ExtSMTPUTF8 | server.ExtEnhancedStatusCodes | server.ExtChunking}, steps: []step{
			{send: "EHLO client.example\r\n", code: 250, lines: []string{"smtpbench.localhost", "VRFY"}},
		}},
	}
}

func timeoutTranscripts() []transcript {
	const short = 200 * time.Millisecond
	return []transcript{
		{name: "command timeout at the greeting", cfg: server.Config{CommandTimeout: short}, steps: []step{
			{code: 421, text: "4.4.2 smtpbench.localhost Error: timeout exceeded", close: true},
		}},
		{name: "command timeout in a transaction", cfg: server.Config{CommandTimeout: short}, steps: steps(ehlo, mailTxn("a@example.org"), []step{
			raw("RCPT TO:<partial"), // a partial line is not a command
			{code: 421, text: "4.4.2", close: true},
		})},
		{name: "command timeout after a message", cfg: server.Config{CommandTimeout: short}, steps: steps(ehlo, mailTxn("a@example.org"), []step{
			cmd("DATA", 354, ""),
			raw("Subject: x\r\n\r\n"),
			{send: "body\r\n.\r\n", code: 250, text: "2.0.0 Ok: queued"},
			{code: 421, text: "4.4.2", close: true},
		})},
		{name: "data timeout after 354", cfg: server.Config{DataTimeout: short}, steps: steps(ehlo, mailTxn("a@example.org"), []step{
			cmd("DATA", 354, ""),
			{code: 421, text: "4.4.2", close: true},
		})},
		{name: "data timeout in the body", cfg: server.Config{DataTimeout: short}, steps: steps(ehlo, mailTxn("a@example.org"), []step{
			cmd("DATA", 354, ""),
			raw("Subject: x\r\n\r\nsome of the body"),
			{code: 421, text: "4.4.2", close: true},
		})},
		{name: "data timeout in a bdat chunk", cfg: server.Config{DataTimeout: short}, steps: steps(ehlo, mailTxn("a@example.org"), []step{
			raw("BDAT 100 LAST\r\nonly part of it"),
			{code: 421, text: "4.4.2", close: true},
		})},
	}
}

func TestTranscripts(t *testing.T) {
	groups := []struct {
		name  string
		cases []transcript
	}{
		{"commands", commandTranscripts()},
		{"sequence", sequenceTranscripts()},
		{"paths", pathTranscripts()},
		{"limits", limitTranscripts()},
		{"params", paramTranscripts()},
		{"disable", disableTranscripts()},
		{"timeouts", timeoutTranscripts()},
	}
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			for _, g := range groups {
				t.Run(g.name, func(t *testing.T) {
					for _, tc := range g.cases {
						t.Run(tc.name, func(t *testing.T) {
							t.Parallel()
							cfg := tc.cfg
							cfg.EventLoops = d.loops
							_, addr := startServer(t, cfg)
							greeting := tc.greeting
							if greeting == "" {
								greeting = "smtpbench.localhost ESMTP smtpbench"
							}
							runTranscript(t, addr, greeting, tc.steps)
						})
					}
				})
			}
		})
	}
}

// The defaults that the transcripts cannot reach in a test's time: 10000 sessions and 5-minute
// timeouts.
func TestDefaultLimits(t *testing.T) {
	srv, err := server.New(server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"MaxConns", cfg.MaxConns, 10000},
		{"CommandTimeout", cfg.CommandTimeout, 5 * time.Minute},
		{"DataTimeout", cfg.DataTimeout, 5 * time.Minute},
		{"MaxLineLength", cfg.MaxLineLength, 512},
		{"MaxLocalPart", cfg.MaxLocalPart, 64},
		{"MaxDomain", cfg.MaxDomain, 255},
		{"MaxPath", cfg.MaxPath, 256},
		{"MaxRecipients", cfg.MaxRecipients, 100},
		{"MaxMessageSize", cfg.MaxMessageSize, int64(32 << 20)},
		{"MaxErrors", cfg.MaxErrors, 20},
		{"Hostname", cfg.Hostname, "smtpbench.localhost"},
		{"Addr", cfg.Addr, "127.0.0.1:2525"},
	} {
		if c.got != c.want {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// A session beyond MaxConns is told 421 4.3.2 at the greeting and closed; once a session ends
// there is room again.
func TestMaxConnsAtGreeting(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			srv, addr := startServer(t, server.Config{MaxConns: 2, EventLoops: d.loops})
			a := dialSMTP(t, "tcp", addr)
			a.expect(220, "smtpbench.localhost ESMTP")
			b := dialSMTP(t, "tcp", addr)
			b.expect(220, "smtpbench.localhost ESMTP")
			over := dialSMTP(t, "tcp", addr)
			over.expect(421, "4.3.2 smtpbench.localhost Error: too many connections")
			over.expectClosed()

			// The first two are unaffected.
			a.cmd("EHLO a.example", 250, "smtpbench.localhost")
			b.cmd("NOOP", 250, "2.0.0")
			a.cmd("QUIT", 221, "2.0.0")
			a.expectClosed()
			waitFor(t, "the sessions to end", func() bool { return srv.Stats().ActiveSessions == 1 })
			c := dialSMTP(t, "tcp", addr)
			c.expect(220, "smtpbench.localhost ESMTP")
			c.cmd("QUIT", 221, "2.0.0")
			st := srv.Stats()
			if st.Replies[421] != 1 || st.Sessions != 4 {
				t.Errorf("stats: %d 421 replies, %d sessions; want 1 and 4", st.Replies[421], st.Sessions)
			}
		})
	}
}

// waitFor polls cond until it holds, and fails the test if it does not within testDeadline.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(testDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A session must not time out while its client is within the timeout of the moment: a long
// command timeout is not cut short by a short data timeout, and a long data timeout does not
// stretch a short command timeout (the other way round is in the transcripts).
func TestTimeoutsFollowTheMode(t *testing.T) {
	const short = 150 * time.Millisecond
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			_, addr := startServer(t, server.Config{DataTimeout: short, EventLoops: d.loops})
			c := dialSMTP(t, "tcp", addr)
			c.expect(220, "")
			c.cmd("EHLO client.example", 250, "")
			c.cmd("MAIL FROM:<a@example.com>", 250, "")
			c.cmd("RCPT TO:<b@example.org>", 250, "")
			c.cmd("DATA", 354, "")
			c.send("x\r\n")
			c.send(".\r\n")
			c.expect(250, "2.0.0 Ok: queued")
			time.Sleep(3 * short) // idle between commands: the (long) command timeout applies
			c.cmd("NOOP", 250, "2.0.0")
			c.cmd("QUIT", 221, "")
		})
	}
}

// Server.Stats counts what a known transcript did.
func TestStatsCountTheTranscript(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			srv, addr := startServer(t, server.Config{MaxMessageSize: 100, EventLoops: d.loops})
			body := "Subject: stats\r\n\r\n..dot\r\nline\r\n" // 30 octets after unstuffing
			runTranscript(t, addr, "smtpbench", steps(ehlo,
				mailTxn("a@example.org", "b@example.org"), dataMsg(body), // message 1: 2 rcpts, 30 octets
				mailTxn("c@example.org"), []step{ // message 2 by BDAT: 1 rcpt, 10 octets
					{send: "BDAT 4\r\n0123", code: 250, text: "2.0.0 Ok: received 4 octets"},
					{send: "BDAT 6 LAST\r\n456789", code: 250, text: "2.0.0 Ok: queued"},
				},
				mailTxn("d@example.org"), []step{ // refused: too big
					cmd("DATA", 354, ""),
					{send: messageBody(101) + ".\r\n", code: 552, text: "5.3.4"},
					cmd("FOOB", 500, ""),
					cmd("RCPT TO:<x@example.org>", 503, ""),
				},
				mailTxn(), []step{ // refused: bare LF
					cmd("RCPT TO:<e@example.org>", 250, ""),
					cmd("DATA", 354, ""),
					{send: "a\nb\r\n.\r\n", code: 550, text: "5.6.0 Error: bare CR or LF"},
				},
			))
			// runTranscript also sent QUIT.
			waitFor(t, "the session to end", func() bool { return srv.Stats().ActiveSessions == 0 })
			st := srv.Stats()
			wantReplies := map[int]uint64{
				220: 1,
				250: 1 + (1 + 2 + 1) + (1 + 1 + 2) + (1 + 1) + (1 + 1), // EHLO, two messages, two refused MAIL+RCPT
				354: 3,
				552: 1,
				550: 1,
				500: 1,
				503: 1,
				221: 1,
			}
			if !mapsEqual(st.Replies, wantReplies) {
				t.Errorf("replies by code %v, want %v", st.Replies, wantReplies)
			}
			if st.Messages != 2 || st.Recipients != 3 || st.Bytes != 30+10 || st.Rejected != 2 {
				t.Errorf("messages %d, recipients %d, bytes %d, rejected %d; want 2, 3, 40, 2",
					st.Messages, st.Recipients, st.Bytes, st.Rejected)
			}
			if st.Sessions != 1 || st.ActiveSessions != 0 || st.Timeouts != 0 || st.Panics != 0 {
				t.Errorf("sessions %d, active %d, timeouts %d, panics %d; want 1, 0, 0, 0",
					st.Sessions, st.ActiveSessions, st.Timeouts, st.Panics)
			}
			// In lockstep every reply is a write of its own.
			if st.Writes != 22 {
				t.Errorf("%d writes, want one for each of the 22 replies", st.Writes)
			}
		})
	}
}

func mapsEqual(a, b map[int]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A timed-out session is counted.
func TestStatsCountTimeouts(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			srv, addr := startServer(t, server.Config{CommandTimeout: 100 * time.Millisecond, EventLoops: d.loops})
			c := dialSMTP(t, "tcp", addr)
			c.expect(220, "")
			c.expect(421, "4.4.2")
			c.expectClosed()
			if st := srv.Stats(); st.Timeouts != 1 || st.Replies[421] != 1 {
				t.Errorf("timeouts %d, 421 replies %d; want 1, 1", st.Timeouts, st.Replies[421])
			}
		})
	}
}
