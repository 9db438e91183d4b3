package server_test

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/server"
)

// RFC 2920 §3.2: the sink writes its replies when no more input is waiting (or before it would
// block: 354, BDAT LAST, QUIT, a closing 421), so a pipelined group sent in one write is answered
// in one write, and a lockstep client gets one write per command.

// recordingListener hands out connections that record every Write the server makes. Serving it
// (it is not a *net.TCPListener) uses the goroutine driver.
type recordingListener struct {
	net.Listener
	conns chan *recordingConn
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recordingConn{Conn: c}
	l.conns <- rc
	return rc, nil
}

type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []string
}

// Write records p before writing it, so a write is on record by the time its bytes arrive.
func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, string(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recordingConn) recorded() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.writes...)
}

// wireText is a reply as it was on the wire.
func wireText(r smtpReply) string {
	var b strings.Builder
	for i, l := range r.lines {
		sep := "-"
		if i == len(r.lines)-1 {
			sep = " "
		}
		b.WriteString(strconv.Itoa(r.code) + sep + l + "\r\n")
	}
	return b.String()
}

// exchange is one client write and the replies it must get.
type exchange struct {
	send    string
	replies []int
	close   bool // the server closes the connection after them
}

// pipeliningCases each start after the greeting and EHLO.
var pipeliningCases = []struct {
	name      string
	cfg       server.Config
	exchanges []exchange
	writes    []int // server writes per exchange
}{
	{
		name: "MAIL RCPT RCPT DATA in one write",
		exchanges: []exchange{
			{send: "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n", replies: []int{250, 250, 250, 354}},
			{send: "Subject: x\r\n\r\nbody\r\n.\r\n", replies: []int{250}},
		},
		writes: []int{1, 1},
	},
	{
		name: "MAIL RCPT BDAT LAST and the body in one write",
		exchanges: []exchange{
			{send: "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 20 LAST\r\n" + strings.Repeat("z", 20), replies: []int{250, 250, 250}},
		},
		writes: []int{1},
	},
	{
		name: "a whole transaction of BDAT chunks in one write",
		exchanges: []exchange{
			{send: "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 3\r\nabcBDAT 4\r\ndefgBDAT 3 LAST\r\nhij", replies: []int{250, 250, 250, 250, 250}},
		},
		writes: []int{1},
	},
	{
		name: "RSET MAIL RCPT with an error in the group",
		exchanges: []exchange{
			{send: "RSET\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<bad>\r\nRCPT TO:<b@example.org>\r\nNOOP\r\n", replies: []int{250, 250, 501, 250, 250}},
		},
		writes: []int{1},
	},
	{
		name: "the end of data and QUIT in one write",
		exchanges: []exchange{
			{send: "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", replies: []int{250, 250, 354}},
			{send: "body\r\n.\r\nQUIT\r\n", replies: []int{250, 221}, close: true},
		},
		writes: []int{1, 1},
	},
	{
		name: "lockstep",
		exchanges: []exchange{
			{send: "MAIL FROM:<a@example.com>\r\n", replies: []int{250}},
			{send: "RCPT TO:<b@example.org>\r\n", replies: []int{250}},
			{send: "RCPT TO:<c@example.org>\r\n", replies: []int{250}},
			{send: "DATA\r\n", replies: []int{354}},
			{send: "body\r\n.\r\n", replies: []int{250}},
			{send: "NOOP\r\n", replies: []int{250}},
		},
		writes: []int{1, 1, 1, 1, 1, 1},
	},
	{
		// BDAT LAST is a flush point: its reply goes out at once, and what was pipelined after it
		// is answered without waiting for more input.
		name: "commands pipelined after BDAT LAST",
		exchanges: []exchange{
			{send: "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 5 LAST\r\nhelloNOOP\r\nNOOP\r\n", replies: []int{250, 250, 250, 250, 250}},
		},
		writes: []int{2},
	},
	{
		name: "QUIT in the middle of a group: the rest is not answered",
		exchanges: []exchange{
			{send: "NOOP\r\nQUIT\r\nNOOP\r\n", replies: []int{250, 221}, close: true},
		},
		writes: []int{1},
	},
	{
		name: "too many errors in a group",
		cfg:  server.Config{MaxErrors: 2},
		exchanges: []exchange{
			{send: "FOOB\r\nFOOB\r\nFOOB\r\nNOOP\r\n", replies: []int{500, 500, 421}, close: true},
		},
		writes: []int{1},
	},
}

// playExchanges plays the exchanges on c after the greeting and EHLO, and calls after with each
// exchange's replies once they all arrived.
func playExchanges(t *testing.T, c *smtpClient, exs []exchange, after func(i int, got []smtpReply)) {
	t.Helper()
	for i, ex := range exs {
		c.send(ex.send)
		var got []smtpReply
		for _, code := range ex.replies {
			got = append(got, c.expect(code, ""))
		}
		after(i, got)
		if ex.close {
			c.expectClosed()
			return
		}
	}
}

// With the goroutine driver: the replies to each exchange arrive in exactly the writes expected,
// and a single write holds exactly those replies.
func TestPipeliningWritesGoroutine(t *testing.T) {
	for _, tc := range pipeliningCases {
		t.Run(tc.name, func(t *testing.T) {
			srv, l := newServerListener(t, tc.cfg)
			rl := &recordingListener{Listener: l, conns: make(chan *recordingConn, 4)}
			go srv.Serve(rl)
			t.Cleanup(func() { srv.Close() })

			c := dialSMTP(t, "tcp", l.Addr().String())
			var rc *recordingConn
			select {
			case rc = <-rl.conns:
			case <-time.After(testDeadline):
				t.Fatal("no connection accepted")
			}
			c.expect(220, "")
			c.cmd("EHLO client.example", 250, "")
			if w := rc.recorded(); len(w) != 2 {
				t.Fatalf("%d writes for the greeting and EHLO: %q", len(w), w)
			}
			playExchanges(t, c, tc.exchanges, func(i int, got []smtpReply) {
				all := rc.recorded()
				before := 2
				for _, n := range tc.writes[:i] {
					before += n
				}
				w := all[before:]
				if len(w) != tc.writes[i] {
					t.Fatalf("exchange %d (%.50q): %d writes %q, want %d", i, tc.exchanges[i].send, len(w), w, tc.writes[i])
				}
				var want strings.Builder
				for _, r := range got {
					want.WriteString(wireText(r))
				}
				if strings.Join(w, "") != want.String() {
					t.Fatalf("exchange %d: the writes %q are not the replies %q", i, w, want.String())
				}
			})
		})
	}
}

// With either driver, Server.Stats counts the writes: the event loops are checked this way.
func TestPipeliningWritesStats(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			for _, tc := range pipeliningCases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					cfg := tc.cfg
					cfg.EventLoops = d.loops
					srv, addr := startServer(t, cfg)
					c := dialSMTP(t, "tcp", addr)
					c.expect(220, "")
					c.cmd("EHLO client.example", 250, "")
					// The event loops count a write once it returned, which may be just after
					// its bytes arrived: wait until the count reaches what is expected, then
					// check that it is not over.
					want := uint64(2)
					settle := func() {
						t.Helper()
						waitFor(t, "the writes to be counted", func() bool { return srv.Stats().Writes >= want })
						if got := srv.Stats().Writes; got != want {
							t.Fatalf("%d writes so far, want %d", got, want)
						}
					}
					settle()
					playExchanges(t, c, tc.exchanges, func(i int, got []smtpReply) {
						want += uint64(tc.writes[i])
						settle()
					})
				})
			}
		})
	}
}

// QUIT's 221 is written before the connection closes, also when nothing else is pending, and
// also when the client has stopped sending (a half-closed connection).
func TestQuitReplyIsFlushedBeforeClose(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			_, addr := startServer(t, server.Config{EventLoops: d.loops})

			c := dialSMTP(t, "tcp", addr)
			c.expect(220, "")
			c.cmd("QUIT", 221, "2.0.0 Bye")
			c.expectClosed()

			c = dialSMTP(t, "tcp", addr)
			c.expect(220, "")
			c.send("EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nQUIT\r\n")
			if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c.expect(250, "smtpbench.localhost")
			c.expect(250, "2.1.0")
			c.expect(250, "2.1.5")
			c.expect(221, "2.0.0 Bye")
			c.expectClosed()
		})
	}
}
