package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The loopback harness: every protocol test runs against both I/O drivers, the epoll event loops
// (the default for a TCP listener) and a goroutine per connection (Config.EventLoops -1).

// lbDriver is one of the I/O drivers Serve can use.
type lbDriver struct {
	name  string
	loops int // Config.EventLoops
}

var lbDrivers = []lbDriver{{"eventloop", 0}, {"goroutine", -1}}

// lbForDrivers runs f once per driver, as subtests.
func lbForDrivers(t *testing.T, f func(t *testing.T, d lbDriver)) {
	t.Helper()
	for _, d := range lbDrivers {
		t.Run(d.name, func(t *testing.T) { f(t, d) })
	}
}

// lbDeadline bounds every wait of a test client (each read and write): nothing in these tests
// should take longer.
const lbDeadline = 5 * time.Second

// lbSink is a Server serving a loopback TCP listener.
type lbSink struct {
	srv  *Server
	addr string
	// served returns what Serve returned, waiting for it up to lbDeadline.
	served func() error
}

// lbStart serves cfg on 127.0.0.1:0 with driver d. The cleanup closes the server and checks that
// every session and Serve end.
func lbStart(t testing.TB, d lbDriver, cfg Config) *lbSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lbServe(t, d, cfg, l)
}

// lbServe serves cfg on l with driver d, like lbStart.
func lbServe(t testing.TB, d lbDriver, cfg Config, l net.Listener) *lbSink {
	t.Helper()
	cfg.EventLoops = d.loops
	srv, err := New(cfg)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() { ch <- srv.Serve(l) }()
	s := &lbSink{srv: srv, addr: l.Addr().String(), served: sync.OnceValue(func() error {
		select {
		case err := <-ch:
			return err
		case <-time.After(lbDeadline):
			return errors.New("Serve did not return")
		}
	})}
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), lbDeadline)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("sessions still running after Close: %v", err)
		}
		if err := s.served(); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s
}

// lbReply is one whole reply, possibly multi-line.
type lbReply struct {
	code  int
	lines []string // the text of each line, after "NNN-" or "NNN "
}

var lbEnhancedRe = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}$`)

// enh is the reply's RFC 3463 enhanced code, or "".
func (r lbReply) enh() string {
	if len(r.lines) == 0 {
		return ""
	}
	first, _, _ := strings.Cut(r.lines[0], " ")
	if lbEnhancedRe.MatchString(first) {
		return first
	}
	return ""
}

func (r lbReply) String() string {
	var b strings.Builder
	for i, l := range r.lines {
		sep := "-"
		if i == len(r.lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "%d%s%s\\r\\n", r.code, sep, l)
	}
	return b.String()
}

// lbClient is a raw SMTP client for tests: it writes what it is told and reads whole replies.
type lbClient struct {
	t     testing.TB
	conn  net.Conn
	r     *bufio.Reader
	codes map[int]uint64 // replies read, by code
}

func lbDial(t testing.TB, addr string) *lbClient {
	t.Helper()
	return lbDialNet(t, "tcp", addr)
}

func lbDialNet(t testing.TB, network, addr string) *lbClient {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, lbDeadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &lbClient{t: t, conn: conn, r: bufio.NewReader(conn), codes: make(map[int]uint64)}
}

// send writes s in one write.
func (c *lbClient) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(lbDeadline))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %q: %v", lbAbbrev(s), err)
	}
}

// readReply reads one whole reply, checking its syntax: every line a three-digit code, then '-'
// on all but the last line and ' ' on the last, the same code on every line, CRLF endings.
func (c *lbClient) readReply() (lbReply, error) {
	c.conn.SetReadDeadline(time.Now().Add(lbDeadline))
	var r lbReply
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			if len(r.lines) > 0 || line != "" {
				return r, fmt.Errorf("reply cut short after %q%q: %w", r, line, err)
			}
			return r, err
		}
		if !strings.HasSuffix(line, "\r\n") || len(line) < 5 {
			return r, fmt.Errorf("malformed reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 || line[0] == '0' {
			return r, fmt.Errorf("malformed reply code in %q", line)
		}
		if len(r.lines) > 0 && code != r.code {
			return r, fmt.Errorf("multi-line reply changes code: %q after %v", line, r)
		}
		r.code = code
		r.lines = append(r.lines, line[4:len(line)-2])
		switch line[3] {
		case ' ':
			c.codes[code]++
			return r, nil
		case '-':
		default:
			return r, fmt.Errorf("malformed reply line %q", line)
		}
	}
}

// read reads one reply and fails the test when there is none.
func (c *lbClient) read() lbReply {
	c.t.Helper()
	r, err := c.readReply()
	if err != nil {
		c.t.Fatalf("reading a reply: %v", err)
	}
	return r
}

// expect reads one reply and checks its code and, unless enh is "", its enhanced code; enh "-"
// means the reply must carry none.
func (c *lbClient) expect(what string, code int, enh string) lbReply {
	c.t.Helper()
	r := c.read()
	lbCheck(c.t, what, r, code, enh)
	return r
}

func lbCheck(t testing.TB, what string, r lbReply, code int, enh string) {
	t.Helper()
	switch {
	case r.code != code:
		t.Fatalf("%s: got %v, want code %d", what, r, code)
	case enh == "-" && r.enh() != "":
		t.Fatalf("%s: got %v, want no enhanced code", what, r)
	case enh != "" && enh != "-" && r.enh() != enh:
		t.Fatalf("%s: got %v, want enhanced code %s", what, r, enh)
	}
}

// cmd sends one command line and checks its reply.
func (c *lbClient) cmd(line string, code int, enh string) lbReply {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(lbAbbrev(line), code, enh)
}

// greet reads the greeting and says EHLO.
func (c *lbClient) greet() lbReply {
	c.t.Helper()
	c.expect("greeting", 220, "-")
	return c.cmd("EHLO client.example", 250, "-")
}

// expectClosed checks that the server closed the connection with nothing more to say.
func (c *lbClient) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(lbDeadline))
	b, err := c.r.ReadByte()
	switch {
	case err == nil:
		rest, _ := c.r.Peek(c.r.Buffered())
		c.t.Fatalf("connection still open, got %q", append([]byte{b}, rest...))
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatalf("connection not closed within %v", lbDeadline)
	}
	// io.EOF, or a reset when the server closed with input unread: closed either way.
}

// lbAbbrev shortens long strings in messages.
func lbAbbrev(s string) string {
	if len(s) > 80 {
		return s[:60] + fmt.Sprintf("...(%d octets)", len(s))
	}
	return s
}

// lbStep is one exchange of a transcript: send (as is), then read len(want) replies.
type lbStep struct {
	send   string
	want   []lbWant
	closed bool // the server closes the connection after the replies
}

// lbWant is an expected reply.
type lbWant struct {
	code int
	enh  string // "" = not checked, "-" = none
}

// lbLine is a step that sends one command line and expects one reply.
func lbLine(cmd string, code int, enh string) lbStep {
	return lbStep{send: cmd + "\r\n", want: []lbWant{{code, enh}}}
}

// lbRaw is a step that sends s as is and expects the given replies (code, enh pairs).
func lbRaw(s string, replies ...lbWant) lbStep { return lbStep{send: s, want: replies} }

// lbCloses marks a step after which the server must close the connection.
func lbCloses(s lbStep) lbStep { s.closed = true; return s }

var (
	lbEHLO   = lbLine("EHLO client.example", 250, "-")
	lbMail   = lbLine("MAIL FROM:<sender@example.com>", 250, "2.1.0")
	lbRcpt   = lbLine("RCPT TO:<rcpt@example.org>", 250, "2.1.5")
	lbData   = lbLine("DATA", 354, "-")
	lbQuit   = lbCloses(lbLine("QUIT", 221, "2.0.0"))
	lbNoop   = lbLine("NOOP", 250, "2.0.0")
	lbQueued = lbWant{250, "2.0.0"}
)

// lbMessage is a short message body as sent after 354, with its end-of-data line.
const lbMessage = "From: <sender@example.com>\r\nSubject: test\r\n\r\nHello.\r\n.\r\n"

// run plays a transcript on a new connection: the greeting, then every step.
func (c *lbClient) run(steps []lbStep) {
	c.t.Helper()
	c.expect("greeting", 220, "-")
	for i, s := range steps {
		c.send(s.send)
		for j, w := range s.want {
			what := fmt.Sprintf("step %d (%q) reply %d", i, lbAbbrev(s.send), j)
			lbCheck(c.t, what, c.read(), w.code, w.enh)
		}
		if s.closed {
			c.expectClosed()
		}
	}
}

// lbRcptLines is n RCPT commands, each for another recipient.
func lbRcptLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "RCPT TO:<r%d@example.org>\r\n", i)
	}
	return b.String()
}

// lbWants is n expected replies, all alike.
func lbWants(n, code int, enh string) []lbWant {
	w := make([]lbWant, n)
	for i := range w {
		w[i] = lbWant{code, enh}
	}
	return w
}

// lbRcptGroup is a step that pipelines n RCPTs and expects the first ok ones to be accepted and the
// rest refused with 452 4.5.3.
func lbRcptGroup(n, ok int) lbStep {
	w := append(lbWants(ok, 250, "2.1.5"), lbWants(n-ok, 452, "4.5.3")...)
	return lbStep{send: lbRcptLines(n), want: w}
}

// lbDomain is a valid domain of exactly n octets: labels of 62 letters and dots.
func lbDomain(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'd'
		if (i+1)%63 == 0 && i != n-1 {
			b[i] = '.'
		}
	}
	return string(b)
}

// lbNoopOf is a NOOP command line of exactly n octets, CRLF included.
func lbNoopOf(n int) string {
	return "NOOP " + strings.Repeat("x", n-len("NOOP \r\n")) + "\r\n"
}

// lbBody is a message of exactly n content octets (after unstuffing, CRLFs included) followed by
// the end-of-data line.
func lbBody(n int) string {
	if n == 1 {
		panic("bodyOf(1): no message of one octet ends with CRLF")
	}
	var b strings.Builder
	b.Grow(n + 3)
	full := strings.Repeat("x", 996) + "\r\n"
	for n-b.Len() > 1000 {
		b.WriteString(full)
	}
	if rem := n - b.Len(); rem >= 2 {
		b.WriteString(strings.Repeat("y", rem-2) + "\r\n")
	}
	return b.String() + ".\r\n"
}

func TestProtocolHelpers(t *testing.T) {
	for _, n := range []int{1, 2, 63, 64, 65, 127, 252, 253, 255, 256} {
		d := lbDomain(n)
		if len(d) != n || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
			t.Errorf("domainOf(%d) = %q", n, d)
		}
		for l := range strings.SplitSeq(d, ".") {
			if len(l) > 63 {
				t.Errorf("domainOf(%d) has a label of %d", n, len(l))
			}
		}
	}
	for _, n := range []int{2, 3, 79, 80, 81, 1000, 1001} {
		var d dotReader
		d.reset(true, 1<<30)
		b := lbBody(n)
		used, done := d.feed([]byte(b))
		if !done || used != len(b) || d.size != int64(n) || d.bare {
			t.Errorf("bodyOf(%d): used %d of %d, done %v, size %d, bare %v", n, used, len(b), done, d.size, d.bare)
		}
	}
	if l := lbNoopOf(512); len(l) != 512 {
		t.Errorf("noopOf(512) is %d long", len(l))
	}
}

// lbTranscript is a table test of the protocol over loopback.
type lbTranscript struct {
	name  string
	cfg   Config
	steps []lbStep
}

func lbRunTranscripts(t *testing.T, tests []lbTranscript) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				s := lbStart(t, d, tc.cfg)
				lbDial(t, s.addr).run(tc.steps)
			})
		}
	})
}

func TestProtocolCommands(t *testing.T) {
	lbRunTranscripts(t, []lbTranscript{
		{"a message with DATA", Config{}, []lbStep{lbEHLO, lbMail, lbRcpt, lbData, lbRaw(lbMessage, lbQueued), lbQuit}},
		{"HELO", Config{}, []lbStep{lbLine("HELO client.example", 250, "-"), lbMail, lbRcpt, lbData, lbRaw(lbMessage, lbQueued), lbQuit}},
		{"HELO without a name", Config{}, []lbStep{lbLine("HELO", 501, "5.5.4"), lbLine("EHLO", 501, "5.5.4"), lbEHLO}},
		{"EHLO again resets the transaction", Config{}, []lbStep{lbEHLO, lbMail, lbRcpt, lbEHLO,
			lbLine("RCPT TO:<rcpt@example.org>", 503, "5.5.1"), lbLine("DATA", 503, "5.5.1"), lbMail}},
		{"BDAT chunks", Config{}, []lbStep{lbEHLO, lbMail, lbRcpt,
			lbRaw("BDAT 5\r\nhello", lbWant{250, "2.0.0"}), lbRaw("BDAT 6 LAST\r\n world", lbQueued), lbQuit}},
		{"BDAT 0 LAST", Config{}, []lbStep{lbEHLO, lbMail, lbRcpt, lbRaw("BDAT 3\r\nabc", lbWant{250, "2.0.0"}),
			lbLine("BDAT 0 LAST", 250, "2.0.0"), lbMail}},
		{"BDAT syntax", Config{}, []lbStep{lbEHLO, lbMail, lbRcpt, lbLine("BDAT", 501, "5.5.4"),
			lbLine("BDAT x", 501, "5.5.4"), lbLine("BDAT 3 FIRST", 501, "5.5.4"), lbRaw("BDAT 3 last\r\nabc", lbQueued)}},
		{"RSET", Config{}, []lbStep{lbEHLO, lbMail, lbRcpt, lbLine("RSET", 250, "2.0.0"),
			lbLine("RCPT TO:<rcpt@example.org>", 503, "5.5.1"), lbMail, lbLine("RSET now", 501, "5.5.4")}},
		{"NOOP", Config{}, []lbStep{lbNoop, lbLine("NOOP with an argument", 250, "2.0.0"), lbEHLO, lbNoop}},
		{"QUIT with an argument", Config{}, []lbStep{lbLine("QUIT now", 501, "5.5.4"), lbQuit}},
		{"VRFY", Config{}, []lbStep{lbLine("VRFY someone", 252, "2.0.0"), lbLine("VRFY", 501, "5.5.4")}},
		{"EXPN refused", Config{}, []lbStep{lbLine("EXPN list", 502, "5.5.1"), lbLine("EXPN", 501, "5.5.4")}},
		{"EXPN allowed", Config{ExpnAllowed: true}, []lbStep{lbLine("EXPN list", 252, "2.0.0")}},
		{"HELP", Config{}, []lbStep{lbLine("HELP", 214, "2.0.0"), lbLine("HELP MAIL", 214, "2.0.0")}},
		{"unknown commands", Config{}, []lbStep{lbLine("FOOB", 500, "5.5.2"), lbLine("XY", 500, "5.5.2"),
			lbLine("", 500, "5.5.2"), lbLine("MAILFROM:<a@b.c>", 500, "5.5.2"), lbLine("HELLO there", 500, "5.5.2"), lbNoop}},
		{"AUTH and STARTTLS not implemented", Config{}, []lbStep{lbEHLO, lbLine("AUTH PLAIN AGFAAGI=", 502, "5.5.1"),
			lbLine("STARTTLS", 502, "5.5.1"), lbLine("starttls", 502, "5.5.1"), lbLine("TURN", 502, "5.5.1"),
			lbLine("ETRN example.org", 502, "5.5.1"), lbNoop}},
		{"mixed-case verbs", Config{}, []lbStep{lbLine("eHlO client.example", 250, "-"),
			lbLine("mAiL fRoM:<sender@example.com>", 250, "2.1.0"), lbLine("rcpt TO:<rcpt@example.org>", 250, "2.1.5"),
			lbLine("DaTa", 354, "-"), lbRaw(lbMessage, lbQueued), lbLine("NoOp", 250, "2.0.0"), lbLine("rSeT", 250, "2.0.0"),
			lbLine("vrfy x", 252, "2.0.0"), lbLine("Help", 214, "2.0.0"), lbCloses(lbLine("qUiT", 221, "2.0.0"))}},
		{"pipelined commands after BDAT LAST", Config{}, []lbStep{lbEHLO,
			lbRaw("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 5 LAST\r\nhelloNOOP\r\nQUIT\r\n",
				lbWant{250, "2.1.0"}, lbWant{250, "2.1.5"}, lbQueued, lbWant{250, "2.0.0"}, lbWant{221, "2.0.0"})}},
		{"pipelined transactions after the end of data", Config{}, []lbStep{lbEHLO,
			lbRaw("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"+lbMessage+
				"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 2 LAST\r\nhi"+
				"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"+lbMessage+"QUIT\r\n",
				lbWant{250, "2.1.0"}, lbWant{250, "2.1.5"}, lbWant{354, "-"}, lbQueued,
				lbWant{250, "2.1.0"}, lbWant{250, "2.1.5"}, lbQueued,
				lbWant{250, "2.1.0"}, lbWant{250, "2.1.5"}, lbWant{354, "-"}, lbQueued, lbWant{221, "2.0.0"})}},
	})
}

func TestProtocolSequencing(t *testing.T) {
	lbRunTranscripts(t, []lbTranscript{
		{"MAIL before EHLO", Config{}, []lbStep{lbLine("MAIL FROM:<a@example.com>", 503, "5.5.1"), lbEHLO, lbMail}},
		{"nested MAIL", Config{}, []lbStep{lbEHLO, lbMail, lbLine("MAIL FROM:<b@example.com>", 503, "5.5.1"), lbRcpt}},
		{"RCPT before MAIL", Config{}, []lbStep{lbEHLO, lbLine("RCPT TO:<rcpt@example.org>", 503, "5.5.1")}},
		{"RCPT before EHLO", Config{}, []lbStep{lbLine("RCPT TO:<rcpt@example.org>", 503, "5.5.1")}},
		{"DATA before MAIL", Config{}, []lbStep{lbEHLO, lbLine("DATA", 503, "5.5.1"), lbNoop}},
		{"DATA before RCPT", Config{}, []lbStep{lbEHLO, lbMail, lbLine("DATA", 503, "5.5.1"), lbRcpt, lbData, lbRaw(lbMessage, lbQueued)}},
		{"DATA with an argument", Config{}, []lbStep{lbEHLO, lbMail, lbRcpt, lbLine("DATA now", 501, "5.5.4"), lbData}},
		{"BDAT before MAIL", Config{}, []lbStep{lbEHLO,
			// The chunk is read, not taken for commands: "NOOP\r\n" inside it gets no reply.
			lbRaw("BDAT 6 LAST\r\nNOOP\r\n", lbWant{503, "5.5.1"}), lbNoop}},
		{"BDAT before RCPT", Config{}, []lbStep{lbEHLO, lbMail, lbRaw("BDAT 6\r\nRSET\r\n", lbWant{503, "5.5.1"}),
			lbRcpt, lbRaw("BDAT 2 LAST\r\nok", lbQueued)}},
		{"DATA after a BDAT chunk", Config{}, []lbStep{lbEHLO, lbMail, lbRcpt, lbRaw("BDAT 3\r\nabc", lbWant{250, "2.0.0"}),
			lbLine("DATA", 503, "5.5.1"), lbRaw("BDAT 3 LAST\r\ndef", lbQueued)}},
		{"DATA when every RCPT was refused", Config{}, []lbStep{lbEHLO, lbMail,
			lbLine("RCPT TO:<no good>", 501, "5.1.3"), lbLine("RCPT TO:<>", 501, "5.1.3"), lbLine("DATA", 554, "5.5.1"),
			lbRaw("BDAT 2 LAST\r\nno", lbWant{554, "5.5.1"}), lbRcpt, lbData, lbRaw(lbMessage, lbQueued)}},
		{"BDAT LAST after refused recipients", Config{}, []lbStep{lbEHLO, lbMail,
			lbLine("RCPT TO:<a@b@c>", 501, "5.1.3"), lbRaw("BDAT 2 LAST\r\nno", lbWant{554, "5.5.1"})}},
	})
}

func TestProtocolPaths(t *testing.T) {
	lbRunTranscripts(t, []lbTranscript{
		{"null reverse-path", Config{}, []lbStep{lbEHLO, lbLine("MAIL FROM:<>", 250, "2.1.0"), lbRcpt, lbData, lbRaw(lbMessage, lbQueued),
			lbLine("MAIL FROM:<> SIZE=10", 250, "2.1.0"), lbLine("RCPT TO:<>", 501, "5.1.3")}},
		{"Postmaster", Config{}, []lbStep{lbEHLO, lbLine("MAIL FROM:<Postmaster>", 501, "5.1.7"), lbMail,
			lbLine("RCPT TO:<Postmaster>", 250, "2.1.5"), lbLine("RCPT TO:<postMASTER>", 250, "2.1.5"),
			lbLine("RCPT TO:<webmaster>", 501, "5.1.3")}},
		{"source routes", Config{}, []lbStep{lbEHLO, lbLine("MAIL FROM:<@relay.example:sender@example.com>", 250, "2.1.0"),
			lbLine("RCPT TO:<@one.example,@two.example:rcpt@example.org>", 250, "2.1.5"),
			lbLine("RCPT TO:<@one.example rcpt@example.org>", 501, "5.1.3"), lbData, lbRaw(lbMessage, lbQueued)}},
		{"other good paths", Config{}, []lbStep{lbEHLO, lbLine("MAIL FROM: <sender@example.com>", 250, "2.1.0"),
			lbLine(`RCPT TO:<"john doe"@example.org>`, 250, "2.1.5"), lbLine("RCPT TO:<user@[192.0.2.1]>", 250, "2.1.5"),
			lbLine("RCPT TO:<first.last+tag@sub-domain.example.org>", 250, "2.1.5"),
			lbLine("rcpt to:<x@example.org>", 250, "2.1.5")}},
		{"bad reverse-paths", Config{}, []lbStep{lbEHLO,
			lbLine("MAIL FROM:sender@example.com", 501, "5.1.7"), lbLine("MAIL FROM:<sender@example.com", 501, "5.1.7"),
			lbLine("MAIL FROM:<sender@>", 501, "5.1.7"), lbLine("MAIL FROM:<@example.com>", 501, "5.1.7"),
			lbLine("MAIL FROM:<sender@exa..mple.com>", 501, "5.1.7"), lbLine("MAIL FROM:<sender@example.com.>", 501, "5.1.7"),
			lbLine("MAIL FROM:<send er@example.com>", 501, "5.1.7"), lbLine("MAIL FROM:<sender@exa_mple.com>", 501, "5.1.7"),
			lbLine("MAIL FROM:<sender@example.com>x", 501, "5.1.7"), lbLine("MAIL FROM:<>x", 501, "5.1.7"),
			lbLine("MAIL FROM:<\"unterminated@example.com>", 501, "5.1.7"), lbLine("MAIL FROM:<", 501, "5.1.7"),
			lbLine("MAIL FROM:", 501, "5.1.7"), lbLine("MAIL TO:<sender@example.com>", 501, "5.5.4"),
			lbLine("MAIL", 501, "5.5.4"), lbMail}},
		{"bad forward-paths", Config{}, []lbStep{lbEHLO, lbMail,
			lbLine("RCPT TO:rcpt@example.org", 501, "5.1.3"), lbLine("RCPT TO:<rcpt@>", 501, "5.1.3"),
			lbLine("RCPT TO:<rcpt>", 501, "5.1.3"), lbLine("RCPT TO:<rcpt@[192.0.2.1>", 501, "5.1.3"),
			lbLine("RCPT TO:<@x.example:>", 501, "5.1.3"), lbLine("RCPT FROM:<rcpt@example.org>", 501, "5.5.4"),
			lbLine("RCPT", 501, "5.5.4"), lbRcpt}},
	})
}

func TestProtocolLimits(t *testing.T) {
	dflt := Config{}
	lineCfg := Config{MaxLineLength: 100, MaxPath: 90}
	localCfg := Config{MaxLocalPart: 8}
	domainCfg := Config{MaxDomain: 12}
	pathCfg := Config{MaxPath: 20}
	rcptCfg := Config{MaxRecipients: 2}
	sizeCfg := Config{MaxMessageSize: 1000}
	longLine := func(n int) lbStep { return lbRaw(lbNoopOf(n), lbWant{500, "5.5.2"}) }
	okLine := func(n int) lbStep { return lbRaw(lbNoopOf(n), lbWant{250, "2.0.0"}) }
	rcptAt := func(local, domain string) string { return "RCPT TO:<" + local + "@" + domain + ">" }
	l := strings.Repeat
	lbRunTranscripts(t, []lbTranscript{
		{"line length default", dflt, []lbStep{okLine(512), longLine(513), lbNoop, longLine(4096), longLine(10000),
			longLine(100000), lbNoop, lbEHLO, lbMail}},
		{"line length small", lineCfg, []lbStep{okLine(100), longLine(101), lbNoop,
			// An over-long line in a pipelined group: the commands around it are answered.
			lbRaw("NOOP\r\n"+lbNoopOf(200)+"NOOP\r\n", lbWant{250, "2.0.0"}, lbWant{500, "5.5.2"}, lbWant{250, "2.0.0"})}},
		{"local part default", dflt, []lbStep{lbEHLO, lbMail,
			lbLine(rcptAt(l("l", 64), "example.org"), 250, "2.1.5"),
			lbLine(rcptAt(l("l", 65), "example.org"), 553, "5.1.0"), lbLine("RSET", 250, "2.0.0"),
			lbLine("MAIL FROM:<"+l("l", 65)+"@example.com>", 553, "5.1.0")}},
		{"local part small", localCfg, []lbStep{lbEHLO, lbLine("MAIL FROM:<123456789@example.com>", 553, "5.1.0"),
			lbLine("MAIL FROM:<12345678@example.com>", 250, "2.1.0"),
			lbLine(rcptAt("12345678", "example.org"), 250, "2.1.5"), lbLine(rcptAt("123456789", "example.org"), 553, "5.1.0"),
			// The quotes are part of a quoted local part.
			lbLine(`RCPT TO:<"1234 6"@example.org>`, 250, "2.1.5"), lbLine(`RCPT TO:<"1234 67"@example.org>`, 553, "5.1.0")}},
		{"domain default", dflt, []lbStep{lbEHLO, lbMail,
			lbLine(rcptAt("a", lbDomain(256)), 553, "5.1.2"),
			lbLine(rcptAt("a", lbDomain(252)), 250, "2.1.5")}},
		{"domain small", domainCfg, []lbStep{lbLine("EHLO c.example", 250, "-"), lbLine("MAIL FROM:<a@"+lbDomain(13)+">", 553, "5.1.2"),
			lbLine("MAIL FROM:<a@"+lbDomain(12)+">", 250, "2.1.0"),
			lbLine(rcptAt("b", lbDomain(12)), 250, "2.1.5"), lbLine(rcptAt("b", lbDomain(13)), 553, "5.1.2"),
			lbLine(rcptAt("b", "[192.0.2.1]"), 250, "2.1.5"), lbLine(rcptAt("b", "[IPv6:2001:db8::1]"), 553, "5.1.2")}},
		{"path default", dflt, []lbStep{lbEHLO,
			// "<" + 64 + "@" + 189 + ">" is 256 octets; one more is too long.
			lbLine("MAIL FROM:<"+l("l", 64)+"@"+lbDomain(190)+">", 501, "5.5.4"),
			lbLine("MAIL FROM:<"+l("l", 64)+"@"+lbDomain(189)+">", 250, "2.1.0"),
			lbLine(rcptAt(l("l", 64), lbDomain(189)), 250, "2.1.5"),
			lbLine(rcptAt(l("l", 64), lbDomain(190)), 501, "5.5.4")}},
		{"path small", pathCfg, []lbStep{lbEHLO,
			lbLine("MAIL FROM:<abcdef@"+lbDomain(12)+">", 501, "5.5.4"), // 21 octets
			lbLine("MAIL FROM:<abcde@"+lbDomain(12)+">", 250, "2.1.0"),  // 20
			lbLine(rcptAt("abcde", lbDomain(12)), 250, "2.1.5"),
			lbLine(rcptAt("abcdef", lbDomain(12)), 501, "5.5.4"),
			// A source route counts: "<@r.example:" + "ab@cd.example" + ">" is 26 octets.
			lbLine("RCPT TO:<@r.example:ab@cd.example>", 501, "5.5.4"),
			lbLine("RCPT TO:<@r.ex:ab@cd.ex>", 250, "2.1.5")}}, // 20
		{"recipients default", dflt, []lbStep{lbEHLO, lbMail, lbRcptGroup(101, 100), lbData, lbRaw(lbMessage, lbQueued),
			lbMail, lbRcptGroup(100, 100)}},
		{"recipients small", rcptCfg, []lbStep{lbEHLO, lbMail, lbRcptGroup(3, 2), lbLine("RCPT TO:<c@example.org>", 452, "4.5.3"),
			lbData, lbRaw(lbMessage, lbQueued), lbMail, lbRcptGroup(2, 2)}},
		{"SIZE at MAIL default", dflt, []lbStep{lbEHLO, lbLine("MAIL FROM:<a@example.com> SIZE=33554433", 552, "5.3.4"),
			lbLine("MAIL FROM:<a@example.com> SIZE=33554432", 250, "2.1.0")}},
		{"SIZE at MAIL small", sizeCfg, []lbStep{lbEHLO, lbLine("MAIL FROM:<a@example.com> SIZE=1001", 552, "5.3.4"),
			lbLine("MAIL FROM:<a@example.com> SIZE=1000", 250, "2.1.0")}},
		{"DATA body small", sizeCfg, []lbStep{lbEHLO, lbMail, lbRcpt, lbData, lbRaw(lbBody(1001), lbWant{552, "5.3.4"}),
			lbNoop, lbMail, lbRcpt, lbData, lbRaw(lbBody(1000), lbQueued)}},
		{"DATA body far over the limit", sizeCfg, []lbStep{lbEHLO, lbMail, lbRcpt, lbData,
			lbRaw(lbBody(300000), lbWant{552, "5.3.4"}), lbMail, lbRcpt, lbData, lbRaw(lbMessage, lbQueued)}},
		{"DATA body default", dflt, []lbStep{lbEHLO, lbMail, lbRcpt, lbData, lbRaw(lbBody(32<<20+1), lbWant{552, "5.3.4"}),
			lbNoop, lbMail, lbRcpt, lbData, lbRaw(lbBody(32<<20), lbQueued)}},
		{"BDAT body small", sizeCfg, []lbStep{lbEHLO, lbMail, lbRcpt,
			lbRaw("BDAT 1001 LAST\r\n"+l("b", 1001), lbWant{552, "5.3.4"}), lbNoop,
			lbMail, lbRcpt, lbRaw("BDAT 600\r\n"+l("b", 600), lbWant{250, "2.0.0"}),
			lbRaw("BDAT 401 LAST\r\n"+l("b", 401), lbWant{552, "5.3.4"}),
			// The transaction ended at the chunk that crossed the limit.
			lbRaw("BDAT 4 LAST\r\nmore", lbWant{503, "5.5.1"}),
			lbMail, lbRcpt, lbRaw("BDAT 1000 LAST\r\n"+l("b", 1000), lbQueued)}},
		{"BDAT body default", dflt, []lbStep{lbEHLO, lbMail, lbRcpt,
			lbRaw("BDAT 33554433 LAST\r\n"+l("b", 32<<20+1), lbWant{552, "5.3.4"}), lbNoop,
			lbMail, lbRcpt, lbRaw("BDAT 33554432 LAST\r\n"+l("b", 32<<20), lbQueued)}},
		{"MaxErrors default", dflt, append(lbRepeat(20, lbLine("FOOB", 500, "5.5.2")),
			lbCloses(lbLine("FOOB", 421, "4.7.0")))},
		{"MaxErrors small", Config{MaxErrors: 3}, []lbStep{lbLine("FOOB", 500, "5.5.2"), lbLine("MAIL FROM:<a@b.c>", 503, "5.5.1"),
			lbNoop, lbLine("VRFY", 501, "5.5.4"), lbCloses(lbLine("EXPN x", 421, "4.7.0"))}},
		{"MaxErrors in a pipelined group", Config{MaxErrors: 1}, []lbStep{
			lbCloses(lbRaw("FOOB\r\nFOOB\r\nNOOP\r\nNOOP\r\n", lbWant{500, "5.5.2"}, lbWant{421, "4.7.0"}))}},
	})
}

func lbRepeat(n int, s lbStep) []lbStep {
	out := make([]lbStep, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestProtocolParameters(t *testing.T) {
	lbRunTranscripts(t, []lbTranscript{
		{"SIZE", Config{}, []lbStep{lbEHLO, lbLine("MAIL FROM:<a@example.com> SIZE=100", 250, "2.1.0"), lbLine("RSET", 250, "2.0.0"),
			lbLine("MAIL FROM:<a@example.com> SIZE=abc", 501, "5.5.4"), lbLine("MAIL FROM:<a@example.com> SIZE=", 501, "5.5.4"),
			lbLine("MAIL FROM:<a@example.com> size=1", 250, "2.1.0")}},
		{"BODY", Config{}, []lbStep{lbEHLO,
			lbLine("MAIL FROM:<a@example.com> BODY=7BIT", 250, "2.1.0"), lbRcpt, lbData, lbRaw(lbMessage, lbQueued),
			lbLine("MAIL FROM:<a@example.com> BODY=8BITMIME", 250, "2.1.0"), lbRcpt, lbData, lbRaw("caf\xc3\xa9\r\n.\r\n", lbQueued),
			lbLine("MAIL FROM:<a@example.com> BODY=BINARYMIME", 250, "2.1.0"), lbRcpt, lbLine("DATA", 503, "5.5.1"),
			lbRaw("BDAT 4 LAST\r\n\x00\x01\r\x02", lbQueued),
			lbLine("MAIL FROM:<a@example.com> BODY=9BIT", 501, "5.5.4"),
			lbLine("MAIL FROM:<a@example.com> BODY=8bitmime SIZE=10", 250, "2.1.0")}},
		{"BINARYMIME needs CHUNKING", Config{Disable: ExtChunking}, []lbStep{lbEHLO,
			lbLine("MAIL FROM:<a@example.com> BODY=BINARYMIME", 501, "5.5.4"),
			lbLine("MAIL FROM:<a@example.com> BODY=8BITMIME", 250, "2.1.0")}},
		{"SMTPUTF8", Config{}, []lbStep{lbEHLO,
			lbLine("MAIL FROM:<jos\xc3\xa9@example.com>", 553, "5.6.7"),
			lbLine("MAIL FROM:<a@\xe4\xbe\x8b\xe3\x81\x88.jp>", 553, "5.6.7"),
			lbLine("MAIL FROM:<a@example.com>", 250, "2.1.0"),
			lbLine("RCPT TO:<jos\xc3\xa9@example.org>", 553, "5.6.7"), lbLine("RSET", 250, "2.0.0"),
			lbLine("MAIL FROM:<jos\xc3\xa9@example.com> SMTPUTF8", 250, "2.1.0"),
			lbLine("RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe3\x81\x88.jp>", 250, "2.1.5"),
			lbData, lbRaw(lbMessage, lbQueued),
			lbLine("MAIL FROM:<a@example.com> SMTPUTF8=yes", 501, "5.5.4")}},
		{"unknown parameters", Config{}, []lbStep{lbEHLO, lbLine("MAIL FROM:<a@example.com> FOO=bar", 555, "5.5.4"),
			lbLine("MAIL FROM:<a@example.com> SIZE=10 RET=HDRS", 555, "5.5.4"), lbMail,
			lbLine("RCPT TO:<b@example.org> NOTIFY=NEVER", 555, "5.5.4"), lbRcpt}},
		{"parameters after HELO", Config{}, []lbStep{lbLine("HELO client.example", 250, "-"),
			lbLine("MAIL FROM:<a@example.com> SIZE=10", 555, "5.5.4"), lbLine("MAIL FROM:<a@example.com> BODY=8BITMIME", 555, "5.5.4"),
			lbLine("MAIL FROM:<a@example.com> SMTPUTF8", 555, "5.5.4"), lbMail, lbRcpt,
			// No CHUNKING after HELO: the chunk is read and refused.
			lbRaw("BDAT 4 LAST\r\nabcd", lbWant{502, "5.5.1"}), lbData, lbRaw(lbMessage, lbQueued)}},
		{"SIZE disabled", Config{Disable: ExtSize}, []lbStep{lbEHLO, lbLine("MAIL FROM:<a@example.com> SIZE=10", 555, "5.5.4"), lbMail}},
		{"8BITMIME disabled", Config{Disable: Ext8BitMIME}, []lbStep{lbEHLO,
			lbLine("MAIL FROM:<a@example.com> BODY=8BITMIME", 555, "5.5.4"), lbMail}},
		{"SMTPUTF8 disabled", Config{Disable: ExtSMTPUTF8}, []lbStep{lbEHLO,
			lbLine("MAIL FROM:<jos\xc3\xa9@example.com> SMTPUTF8", 555, "5.5.4"),
			lbLine("MAIL FROM:<jos\xc3\xa9@example.com>", 553, "5.6.7"), lbMail}},
		{"CHUNKING disabled", Config{Disable: ExtChunking}, []lbStep{lbEHLO, lbMail, lbRcpt,
			lbRaw("BDAT 4 LAST\r\nabcd", lbWant{502, "5.5.1"}), lbData, lbRaw(lbMessage, lbQueued)}},
		{"PIPELINING disabled", Config{Disable: ExtPipelining}, []lbStep{lbEHLO, lbMail, lbRcpt, lbData, lbRaw(lbMessage, lbQueued)}},
		{"ENHANCEDSTATUSCODES disabled", Config{Disable: ExtEnhancedStatusCodes}, []lbStep{lbEHLO,
			lbLine("MAIL FROM:<a@example.com>", 250, "-"), lbLine("RCPT TO:<b@example.org>", 250, "-"),
			lbLine("RCPT TO:<bad>", 501, "-"), lbLine("MAIL FROM:<a@example.com>", 503, "-"), lbLine("DATA", 354, "-"),
			lbRaw(lbMessage, lbWant{250, "-"}), lbRaw("BDAT 3 LAST\r\nabc", lbWant{503, "-"}), lbLine("FOOB", 500, "-"),
			lbLine("VRFY x", 252, "-"), lbLine("HELP", 214, "-"), lbLine("NOOP", 250, "-"), lbLine("RSET", 250, "-"),
			lbLine("MAIL FROM:<a@example.com> FOO=1", 555, "-"), lbCloses(lbLine("QUIT", 221, "-"))}},
	})
}

// TestNoEnhancedCodes checks every reply text when ENHANCEDSTATUSCODES is off: none carries an
// enhanced code, and every reply still has its text.
func TestProtocolNoEnhancedCodes(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{Disable: ExtEnhancedStatusCodes})
		c := lbDial(t, s.addr)
		c.expect("greeting", 220, "-")
		c.cmd("EHLO client.example", 250, "-")
		c.cmd("MAIL FROM:<a@example.com>", 250, "-")
		c.cmd("RCPT TO:<b@example.org>", 250, "-")
		c.send("BDAT 3\r\nabc")
		if r := c.expect("BDAT", 250, "-"); r.lines[0] != "Ok: received 3 octets" {
			t.Errorf("BDAT reply %v", r)
		}
		c.send("BDAT 1 LAST\r\nd")
		if r := c.expect("BDAT LAST", 250, "-"); !strings.HasPrefix(r.lines[0], "Ok: queued as ") {
			t.Errorf("BDAT LAST reply %v", r)
		}
	})
}

func TestProtocolEHLOExtensions(t *testing.T) {
	all := []string{"PIPELINING", "SIZE 33554432", "VRFY", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME"}
	tests := []struct {
		disable Extension
		gone    []string
	}{
		{0, nil},
		{ExtPipelining, []string{"PIPELINING"}},
		{ExtSize, []string{"SIZE 33554432"}},
		{Ext8BitMIME, []string{"8BITMIME", "BINARYMIME"}},
		{ExtSMTPUTF8, []string{"SMTPUTF8"}},
		{ExtEnhancedStatusCodes, []string{"ENHANCEDSTATUSCODES"}},
		{ExtChunking, []string{"CHUNKING", "BINARYMIME"}},
		{ExtPipelining | ExtSize | Ext8BitMIME | ExtSMTPUTF8 | ExtEnhancedStatusCodes | ExtChunking,
			[]string{"PIPELINING", "SIZE 33554432", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME"}},
	}
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("disable=%#x", tc.disable), func(t *testing.T) {
				t.Parallel()
				s := lbStart(t, d, Config{Disable: tc.disable, Hostname: "mx.test.example"})
				c := lbDial(t, s.addr)
				c.expect("greeting", 220, "-")
				r := c.cmd("EHLO client.example", 250, "-")
				var want []string
				for _, k := range all {
					if !lbContains(tc.gone, k) {
						want = append(want, k)
					}
				}
				got := r.lines[1:]
				if r.lines[0] != "mx.test.example" || strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("EHLO reply %v, want mx.test.example then %v", r, want)
				}
			})
		}
		t.Run("SIZE follows MaxMessageSize", func(t *testing.T) {
			s := lbStart(t, d, Config{MaxMessageSize: 1000})
			c := lbDial(t, s.addr)
			r := c.greet()
			if !lbContains(r.lines, "SIZE 1000") {
				t.Errorf("EHLO reply %v, want SIZE 1000", r)
			}
		})
	})
}

func lbContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestSmuggling sends messages containing the line endings of the SMTP smuggling attack: none of
// them ends the message, so what follows is not taken for commands, and the message is refused
// with 550 5.6.0 at its real end.
func TestProtocolSmuggling(t *testing.T) {
	smuggled := "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSpoofed\r\n"
	endings := []string{"\n.\r\n", "\r.\r\n", "\r\n.\n", "\n.\n", "\r\n.\r\r\n", "\r\n.\r"}
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		for _, ending := range endings {
			t.Run(strconv.Quote(ending), func(t *testing.T) {
				t.Parallel()
				s := lbStart(t, d, Config{})
				c := lbDial(t, s.addr)
				c.greet()
				c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
				c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
				c.cmd("DATA", 354, "-")
				// One write, so a server that ended the message early would answer the smuggled
				// commands before the real end.
				c.send("Subject: hi\r\n\r\nbody" + ending + smuggled + ".\r\n")
				c.expect("the message's real end", 550, "5.6.0")
				c.cmd("NOOP", 250, "2.0.0")
				if st := s.srv.Stats(); st.Messages != 0 || st.Rejected != 1 || st.Replies[354] != 1 {
					t.Errorf("messages %d, rejected %d, 354s %d; want 0, 1, 1", st.Messages, st.Rejected, st.Replies[354])
				}
				// The same with every octet in a write of its own.
				c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
				c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
				c.cmd("DATA", 354, "-")
				for _, b := range []byte("body" + ending + smuggled + ".\r\n") {
					c.send(string(b))
				}
				c.expect("the message's real end, octet by octet", 550, "5.6.0")
				c.cmd("QUIT", 221, "2.0.0")
			})
		}
	})
}

// TestStats checks the counters against what a client saw: the replies it read by code, and the
// messages, recipients and octets it had accepted.
func TestProtocolStats(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{MaxMessageSize: 1000})
		c := lbDial(t, s.addr)
		c.greet()
		var messages, recipients, octets uint64
		// A DATA message with dot-stuffing and two recipients.
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		c.cmd("RCPT TO:<c@example.org>", 250, "2.1.5")
		c.cmd("RCPT TO:<bad>", 501, "5.1.3")
		c.cmd("DATA", 354, "-")
		c.send("Subject: s\r\n\r\n..stuffed\r\n.\r\n")
		c.expect("DATA message", 250, "2.0.0")
		messages, recipients, octets = messages+1, recipients+2, octets+uint64(len("Subject: s\r\n\r\n.stuffed\r\n"))
		// A BDAT message of two chunks and one recipient.
		c.cmd("MAIL FROM:<> BODY=BINARYMIME", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		c.send("BDAT 10\r\n0123456789")
		c.expect("BDAT", 250, "2.0.0")
		c.send("BDAT 5 LAST\r\n..\r\n.")
		c.expect("BDAT LAST", 250, "2.0.0")
		messages, recipients, octets = messages+1, recipients+1, octets+15
		// A refused message, and a few errors.
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		c.cmd("DATA", 354, "-")
		c.send(lbBody(1001))
		c.expect("too big", 552, "5.3.4")
		c.cmd("FOOB", 500, "5.5.2")
		c.cmd("VRFY x", 252, "2.0.0")
		c.cmd("HELP", 214, "2.0.0")
		c.cmd("QUIT", 221, "2.0.0")
		c.expectClosed()
		lbWaitFor(t, "the session to end", func() bool { return s.srv.Stats().ActiveSessions == 0 })

		st := s.srv.Stats()
		if st.Messages != messages || st.Recipients != recipients || st.Bytes != octets || st.Rejected != 1 {
			t.Errorf("messages %d, recipients %d, bytes %d, rejected %d; want %d, %d, %d, 1",
				st.Messages, st.Recipients, st.Bytes, st.Rejected, messages, recipients, octets)
		}
		if st.Sessions != 1 || st.Timeouts != 0 || st.Panics != 0 {
			t.Errorf("sessions %d, timeouts %d, panics %d; want 1, 0, 0", st.Sessions, st.Timeouts, st.Panics)
		}
		if fmt.Sprint(st.Replies) != fmt.Sprint(c.codes) {
			t.Errorf("replies by code %v, the client read %v", st.Replies, c.codes)
		}
		var total uint64
		for _, n := range c.codes {
			total += n
		}
		if st.Writes == 0 || st.Writes > total {
			t.Errorf("%d writes for %d replies", st.Writes, total)
		}
	})
}

// lbWaitFor polls cond until it holds, failing the test after testDeadline.
func lbWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(lbDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestProtocolMaxConns(t *testing.T) {
	for _, limit := range []int{1, 3} {
		lbForDrivers(t, func(t *testing.T, d lbDriver) {
			t.Run(strconv.Itoa(limit), func(t *testing.T) {
				s := lbStart(t, d, Config{MaxConns: limit})
				var open []*lbClient
				for range limit {
					c := lbDial(t, s.addr)
					c.greet()
					open = append(open, c)
				}
				extra := lbDial(t, s.addr)
				extra.expect("greeting beyond MaxConns", 421, "4.3.2")
				extra.expectClosed()
				// The sessions already open go on.
				for _, c := range open {
					c.cmd("NOOP", 250, "2.0.0")
				}
				open[0].cmd("QUIT", 221, "2.0.0")
				open[0].expectClosed()
				lbWaitFor(t, "the sessions to end", func() bool { return s.srv.Stats().ActiveSessions == uint64(limit-1) })
				c := lbDial(t, s.addr)
				c.greet()
				if st := s.srv.Stats(); st.Replies[421] != 1 {
					t.Errorf("%d replies 421, want 1", st.Replies[421])
				}
			})
		})
	}
}

// lbNotBefore checks that a session timed out no earlier than its timeout after its last input.
// The goroutine driver re-arms a connection's deadline only when it moves by more than a 16th of
// the timeout (conn_goroutine.go, arm), so a timeout may come that much early.
func lbNotBefore(t *testing.T, el, timeout time.Duration) {
	t.Helper()
	if el < timeout-timeout/16 {
		t.Errorf("timed out %v after the last input, before the %v timeout", el, timeout)
	}
}

func TestProtocolCommandTimeout(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{CommandTimeout: 200 * time.Millisecond})
		t.Run("idle after the greeting", func(t *testing.T) {
			start := time.Now() // the session starts after this
			c := lbDial(t, s.addr)
			c.expect("greeting", 220, "-")
			c.expect("timeout", 421, "4.4.2")
			if el := time.Since(start); el < 200*time.Millisecond {
				t.Errorf("timed out after %v, before the 200ms timeout", el)
			}
			c.expectClosed()
		})
		t.Run("within a transaction", func(t *testing.T) {
			c := lbDial(t, s.addr)
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			// Activity keeps the session alive past the timeout.
			for range 4 {
				time.Sleep(80 * time.Millisecond)
				c.cmd("NOOP", 250, "2.0.0")
			}
			// A partial command line is no command.
			c.send("RCPT TO:<b@exa")
			start := time.Now()
			c.expect("timeout", 421, "4.4.2")
			lbNotBefore(t, time.Since(start), 200*time.Millisecond)
			c.expectClosed()
		})
		if st := s.srv.Stats(); st.Timeouts != 2 {
			t.Errorf("%d timeouts, want 2", st.Timeouts)
		}
	})
}

func TestProtocolDataTimeout(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		// The command timeout is long: only the data timeout can end these sessions in time.
		s := lbStart(t, d, Config{DataTimeout: 200 * time.Millisecond})
		t.Run("DATA", func(t *testing.T) {
			c := lbDial(t, s.addr)
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.cmd("DATA", 354, "-")
			c.send("Subject: stalls\r\n\r\npart of a body")
			start := time.Now()
			c.expect("data timeout", 421, "4.4.2")
			lbNotBefore(t, time.Since(start), 200*time.Millisecond)
			c.expectClosed()
		})
		t.Run("DATA with nothing sent", func(t *testing.T) {
			c := lbDial(t, s.addr)
			c.greet()
			c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
			c.expect("MAIL", 250, "2.1.0")
			c.expect("RCPT", 250, "2.1.5")
			c.expect("DATA", 354, "-")
			c.expect("data timeout", 421, "4.4.2")
			c.expectClosed()
		})
		t.Run("BDAT", func(t *testing.T) {
			c := lbDial(t, s.addr)
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.send("BDAT 100 LAST\r\nonly part of the chunk")
			c.expect("data timeout", 421, "4.4.2")
			c.expectClosed()
		})
	})
	// And the other way round: a short command timeout does not cut a slow body short.
	t.Run("slow body", func(t *testing.T) {
		lbForDrivers(t, func(t *testing.T, d lbDriver) {
			s := lbStart(t, d, Config{CommandTimeout: 150 * time.Millisecond, DataTimeout: 5 * time.Second})
			c := lbDial(t, s.addr)
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.cmd("DATA", 354, "-")
			c.send("Subject: slow\r\n\r\n")
			time.Sleep(300 * time.Millisecond)
			c.send("still here\r\n.\r\n")
			c.expect("end of data", 250, "2.0.0")
			// Back to commands: the command timeout applies again.
			start := time.Now()
			c.expect("command timeout", 421, "4.4.2")
			lbNotBefore(t, time.Since(start), 150*time.Millisecond)
		})
	})
}

// The defaults are RFC 5321's minimums (§4.5.3.1) and the documented sizes, and EHLO advertises
// the default message size.
func TestProtocolDefaultLimits(t *testing.T) {
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Config()
	got := []any{c.MaxLineLength, c.MaxLocalPart, c.MaxDomain, c.MaxPath, c.MaxRecipients, c.MaxMessageSize,
		c.MaxErrors, c.MaxConns, c.CommandTimeout, c.DataTimeout, c.Hostname, c.Addr}
	want := []any{512, 64, 255, 256, 100, int64(32 << 20), 20, 10000, 5 * time.Minute, 5 * time.Minute,
		"smtpbench.localhost", "127.0.0.1:2525"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("defaults %v, want %v", got, want)
	}
	if !strings.Contains(string(srv.ehlo), "250-SIZE 33554432\r\n") {
		t.Errorf("EHLO reply %q does not advertise SIZE 33554432", srv.ehlo)
	}
}
