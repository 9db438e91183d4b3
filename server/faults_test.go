package server

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The sink's injected faults, seen from a raw client on loopback.

// ftLatency returns the sink's own latency summary of a phase.
func ftLatency(srv *Server, phase string) (count, maxNs int64) {
	for _, p := range srv.Stats().Latency {
		if p.Name == phase {
			return p.Count, p.Max
		}
	}
	return 0, 0
}

func TestFaultDelays(t *testing.T) {
	const delay = 100 * time.Millisecond
	var (
		ehlo = lbLine("EHLO client.example", 250, "-")
		mail = lbLine("MAIL FROM:<a@example.com>", 250, "2.1.0")
		rcpt = lbLine("RCPT TO:<b@example.org>", 250, "2.1.5")
		data = lbLine("DATA", 354, "-")
	)
	tests := []struct {
		name  string
		point FaultPoint
		phase string // of the sink's own latency
		pre   []lbStep
		send  string // "" for the greeting
		code  int
	}{
		{"connect", AtConnect, "greeting", nil, "", 220},
		{"ehlo", AtEHLO, "ehlo", nil, "EHLO client.example\r\n", 250},
		{"helo", AtHELO, "ehlo", nil, "HELO client.example\r\n", 250},
		{"mail", AtMail, "mail", []lbStep{ehlo}, "MAIL FROM:<a@example.com>\r\n", 250},
		{"rcpt", AtRcpt, "rcpt", []lbStep{ehlo, mail}, "RCPT TO:<b@example.org>\r\n", 250},
		{"data", AtData, "data", []lbStep{ehlo, mail, rcpt}, "DATA\r\n", 354},
		{"dot", AtDot, "body", []lbStep{ehlo, mail, rcpt, data}, lbMessage, 250},
		{"dot after BDAT LAST", AtDot, "bdat", []lbStep{ehlo, mail, rcpt}, "BDAT 5 LAST\r\nhello", 250},
		{"bdat", AtBdat, "bdat", []lbStep{ehlo, mail, rcpt}, "BDAT 5\r\nhello", 250},
		{"rset", AtRset, "rset", []lbStep{ehlo, mail}, "RSET\r\n", 250},
		{"quit", AtQuit, "quit", []lbStep{ehlo}, "QUIT\r\n", 221},
	}
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				var cfg Config
				cfg.Faults.Points[tc.point].Delay = Dist{Kind: DistFixed, A: delay}
				s := lbStart(t, d, cfg)
				var start time.Time
				var c *lbClient
				if tc.send == "" {
					start = time.Now()
					c = lbDial(t, s.addr)
				} else {
					c = lbDial(t, s.addr)
					c.run(tc.pre)
					start = time.Now()
					c.send(tc.send)
				}
				r := c.read()
				el := time.Since(start)
				lbCheck(t, "the delayed reply", r, tc.code, "")
				if el < delay {
					t.Errorf("the reply came after %v, before the %v delay", el, delay)
				}
				// The session goes on.
				switch tc.point {
				case AtQuit:
				case AtData:
					c.send(lbMessage)
					c.expect("the message", 250, "2.0.0")
				default:
					c.cmd("NOOP", 250, "2.0.0")
				}
				if st := s.srv.Stats(); st.Faults[tc.point.String()].Delayed != 1 || len(st.Faults) != 1 {
					t.Errorf("faults %+v; want one delay at %s", st.Faults, tc.point)
				}
				lbWaitFor(t, "the latency of the reply", func() bool { n, _ := ftLatency(s.srv, tc.phase); return n > 0 })
				if _, m := ftLatency(s.srv, tc.phase); m < int64(delay) {
					t.Errorf("the sink's own %s latency is at most %v, less than the %v delay", tc.phase, time.Duration(m), delay)
				}
			})
		}
	})
}

// A delay holds replies in order: the replies to pipelined commands after a delayed one wait for
// it. (A delay counts from when its command arrived, so two RCPTs that arrive together are both
// answered one delay after they arrived.)
func TestFaultDelayKeepsOrder(t *testing.T) {
	const delay = 100 * time.Millisecond
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		var cfg Config
		cfg.Faults.Points[AtRcpt].Delay = Dist{Kind: DistFixed, A: delay}
		s := lbStart(t, d, cfg)
		c := lbDial(t, s.addr)
		c.greet()
		start := time.Now()
		c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n" + lbMessage)
		c.expect("MAIL", 250, "2.1.0")
		c.expect("RCPT", 250, "2.1.5")
		c.expect("RCPT", 250, "2.1.5")
		c.expect("DATA", 354, "-")
		c.expect("message", 250, "2.0.0")
		if el := time.Since(start); el < delay {
			t.Errorf("delayed RCPTs answered after %v, before the %v delay", el, delay)
		}
		if st := s.srv.Stats(); st.Faults["rcpt"].Delayed != 2 || st.Messages != 1 || st.Recipients != 2 {
			t.Errorf("delayed %d, messages %d, recipients %d; want 2, 1, 2", st.Faults["rcpt"].Delayed, st.Messages, st.Recipients)
		}
	})
}

func TestFaultReplies(t *testing.T) {
	fault := func(p FaultPoint, code int, text string) Config {
		var cfg Config
		cfg.Faults.Points[p] = PointFault{Reply: 1, ReplyCode: code, ReplyText: text}
		return cfg
	}
	tests := []struct {
		name    string
		cfg     Config
		point   string
		replied uint64
		run     func(t *testing.T, c *lbClient)
	}{
		{"rcpt", fault(AtRcpt, 450, "4.2.1 Mailbox busy"), "rcpt", 2, func(t *testing.T, c *lbClient) {
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			ftExact(t, c.cmd("RCPT TO:<b@example.org>", 450, "4.2.1"), "450 4.2.1 Mailbox busy")
			c.cmd("RCPT TO:<c@example.org>", 450, "4.2.1")
			c.cmd("DATA", 554, "5.5.1") // every recipient was refused
		}},
		{"mail", fault(AtMail, 451, "4.3.0 Try again later"), "mail", 1, func(t *testing.T, c *lbClient) {
			c.greet()
			ftExact(t, c.cmd("MAIL FROM:<a@example.com>", 451, "4.3.0"), "451 4.3.0 Try again later")
			c.cmd("RCPT TO:<b@example.org>", 503, "5.5.1") // no transaction
		}},
		{"dot", fault(AtDot, 554, "5.7.1 Rejected"), "dot", 2, func(t *testing.T, c *lbClient) {
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.cmd("DATA", 354, "-")
			c.send(lbMessage)
			ftExact(t, c.expect("end of data", 554, "5.7.1"), "554 5.7.1 Rejected")
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0") // the transaction ended
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.send("BDAT 3\r\nabc")
			c.expect("a chunk", 250, "2.0.0")
			c.send("BDAT 3 LAST\r\ndef")
			c.expect("BDAT LAST", 554, "5.7.1")
		}},
		{"bdat", fault(AtBdat, 452, "4.3.1 Full"), "bdat", 1, func(t *testing.T, c *lbClient) {
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.send("BDAT 3\r\nabc")
			c.expect("a chunk", 452, "4.3.1")
			c.send("BDAT 3 LAST\r\ndef") // the message failed with its chunk
			c.expect("BDAT LAST", 503, "5.5.1")
		}},
		{"connect", fault(AtConnect, 554, "5.3.2 Not now"), "connect", 1, func(t *testing.T, c *lbClient) {
			ftExact(t, c.expect("greeting", 554, "5.3.2"), "554 5.3.2 Not now")
			c.cmd("EHLO client.example", 503, "5.5.1") // only QUIT is served
			c.cmd("NOOP", 503, "5.5.1")
			c.cmd("QUIT", 221, "2.0.0")
			c.expectClosed()
		}},
		{"ehlo 421", fault(AtEHLO, 421, "4.3.2 Bye"), "ehlo", 1, func(t *testing.T, c *lbClient) {
			c.expect("greeting", 220, "-")
			c.cmd("EHLO client.example", 421, "4.3.2")
			c.expectClosed()
		}},
	}
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				s := lbStart(t, d, tc.cfg)
				tc.run(t, lbDial(t, s.addr))
				st := s.srv.Stats()
				if fc := st.Faults[tc.point]; fc.Replied != tc.replied || fc.Delayed != 0 || fc.Disconnected != 0 || len(st.Faults) != 1 {
					t.Errorf("faults %+v; want %d replies at %s", st.Faults, tc.replied, tc.point)
				}
				if st.Messages != 0 {
					t.Errorf("%d messages accepted", st.Messages)
				}
			})
		}
	})
}

// ftExact checks a one-line reply's whole text.
func ftExact(t *testing.T, r lbReply, want string) {
	t.Helper()
	if len(r.lines) != 1 || fmt.Sprintf("%d %s", r.code, r.lines[0]) != want {
		t.Errorf("reply %v, want %q", r, want)
	}
}

func TestFaultDisconnects(t *testing.T) {
	tests := []struct {
		name  string
		point FaultPoint
		with  bool // Disconnect421
		run   func(c *lbClient)
	}{
		{"connect", AtConnect, false, func(c *lbClient) {}},
		{"connect 421", AtConnect, true, func(c *lbClient) { c.expect("greeting", 421, "4.4.2") }},
		{"mail", AtMail, false, func(c *lbClient) {
			c.greet()
			c.send("MAIL FROM:<a@example.com>\r\n")
		}},
		{"mail 421", AtMail, true, func(c *lbClient) {
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 421, "4.4.2")
		}},
		{"rcpt in a pipelined group", AtRcpt, true, func(c *lbClient) {
			c.greet()
			c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n")
			c.expect("MAIL", 250, "2.1.0")
			c.expect("RCPT", 421, "4.4.2")
		}},
		{"dot", AtDot, false, func(c *lbClient) {
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.cmd("DATA", 354, "-")
			c.send(lbMessage)
		}},
	}
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				var cfg Config
				cfg.Faults.Points[tc.point] = PointFault{Disconnect: 1, Disconnect421: tc.with}
				s := lbStart(t, d, cfg)
				c := lbDial(t, s.addr)
				tc.run(c)
				c.expectClosed() // with nothing more said
				lbWaitFor(t, "the session to end", func() bool { return s.srv.Stats().ActiveSessions == 0 })
				st := s.srv.Stats()
				if fc := st.Faults[tc.point.String()]; fc.Disconnected != 1 || fc.Replied != 0 || len(st.Faults) != 1 {
					t.Errorf("faults %+v; want one disconnect at %s", st.Faults, tc.point)
				}
				if want := map[bool]uint64{false: 0, true: 1}[tc.with]; st.Replies[421] != want {
					t.Errorf("%d replies 421, want %d", st.Replies[421], want)
				}
				if st.Messages != 0 {
					t.Errorf("%d messages accepted", st.Messages)
				}
			})
		}
	})
}

func TestFaultGreylist(t *testing.T) {
	const delay = 200 * time.Millisecond
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{Faults: Faults{Greylist: delay}})
		c := lbDial(t, s.addr)
		c.greet()
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 450, "4.7.1")
		seen := time.Now()                             // the sink saw the pair before this
		c.cmd("RCPT TO:<b@example.org>", 450, "4.7.1") // too soon
		c.cmd("RCPT TO:<c@example.org>", 450, "4.7.1") // another pair
		c.cmd("RCPT TO:<Postmaster>", 450, "4.7.1")
		c.cmd("DATA", 554, "5.5.1")
		c.cmd("RSET", 250, "2.0.0")
		// Another connection with another sender is another pair.
		o := lbDial(t, s.addr)
		o.greet()
		o.cmd("MAIL FROM:<other@example.com>", 250, "2.1.0")
		o.cmd("RCPT TO:<b@example.org>", 450, "4.7.1")

		time.Sleep(delay - time.Since(seen) + 10*time.Millisecond)
		c.cmd("MAIL FROM:<A@EXAMPLE.COM>", 250, "2.1.0")              // the same sender, in another case
		c.cmd("RCPT TO:<@relay.example:b@example.org>", 250, "2.1.5") // the same recipient, routed
		c.cmd("RCPT TO:<postmaster>", 250, "2.1.5")
		c.cmd("DATA", 354, "-")
		c.send(lbMessage)
		c.expect("the message", 250, "2.0.0")
		if st := s.srv.Stats(); st.Greylisted != 5 || st.Replies[450] != 5 || st.Messages != 1 {
			t.Errorf("greylisted %d, 450s %d, messages %d; want 5, 5, 1", st.Greylisted, st.Replies[450], st.Messages)
		}
	})
}

// ftCountingConn counts what a client writes and reads.
type ftCountingConn struct {
	net.Conn
	in, out *atomic.Int64 // octets written to the sink, read from it
}

func (c ftCountingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.in.Add(int64(n))
	return n, err
}

func (c ftCountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.out.Add(int64(n))
	return n, err
}

// The tarpit: each connection reads and writes at most Bandwidth octets a second in each
// direction, after a burst of a tenth of a second. So the last octet of n cannot pass before
// (n - burst) / Bandwidth seconds after the connection started.
func TestFaultBandwidth(t *testing.T) {
	const rate = 16 << 10
	const burst = rate / 10
	least := func(n int64) time.Duration { return time.Duration(float64(n-burst) / rate * float64(time.Second)) }
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{Faults: Faults{Bandwidth: rate}})
		dial := func() (*lbClient, *atomic.Int64, *atomic.Int64) {
			conn, err := net.DialTimeout("tcp", s.addr, lbDeadline)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(lbDeadline))
			t.Cleanup(func() { conn.Close() })
			in, out := new(atomic.Int64), new(atomic.Int64)
			cc := ftCountingConn{conn, in, out}
			return &lbClient{t: t, conn: cc, r: bufio.NewReader(cc), codes: map[int]uint64{}}, in, out
		}
		t.Run("in", func(t *testing.T) {
			start := time.Now()
			c, in, _ := dial()
			c.greet()
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.cmd("DATA", 354, "-")
			c.send(lbBody(4 << 10))
			c.expect("a 4 KiB message", 250, "2.0.0")
			if el, min := time.Since(start), least(in.Load()); el < min {
				t.Errorf("%d octets sent in %v, faster than %d octets/s allow (%v)", in.Load(), el, rate, min)
			}
		})
		t.Run("out", func(t *testing.T) {
			start := time.Now()
			c, _, out := dial()
			c.greet()
			c.send(strings.Repeat("HELP\r\n", 40))
			for range 40 {
				c.expect("HELP", 214, "2.0.0")
			}
			if el, min := time.Since(start), least(out.Load()); el < min {
				t.Errorf("%d octets received in %v, faster than %d octets/s allow (%v)", out.Load(), el, rate, min)
			}
		})
	})
}

// Stall(d) holds every reply for d; input that arrives meanwhile is answered when it ends.
func TestFaultStall(t *testing.T) {
	const stall = 200 * time.Millisecond
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{})
		c := lbDial(t, s.addr)
		c.greet()
		start := time.Now()
		s.srv.Stall(stall)
		c.send("NOOP\r\nMAIL FROM:<a@example.com>\r\n")
		c.expect("NOOP", 250, "2.0.0")
		if el := time.Since(start); el < stall {
			t.Errorf("a reply came %v into a %v stall", el, stall)
		}
		c.expect("MAIL", 250, "2.1.0")
		// Another Stall holds a new session's greeting too.
		start = time.Now()
		s.srv.Stall(stall)
		o := lbDial(t, s.addr)
		o.expect("greeting", 220, "-")
		if el := time.Since(start); el < stall {
			t.Errorf("a greeting came %v into a %v stall", el, stall)
		}
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5") // and it ended
	})
}

func TestFaultStopAfterMessages(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{Faults: Faults{StopAfterMessages: 3}})
		c := lbDial(t, s.addr)
		c.greet()
		for i := range 3 {
			if ftStopped(s.srv) {
				t.Fatalf("stopped after %d messages", i)
			}
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.cmd("DATA", 354, "-")
			c.send("Subject: " + fmt.Sprint(i) + "\r\n\r\nx\r\n.\r\n")
			c.expect("message", 250, "2.0.0")
			// A refused message does not count.
			c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
			c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			c.cmd("DATA", 354, "-")
			c.send("bare\n\r\n.\r\n")
			c.expect("refused", 550, "5.6.0")
		}
		select {
		case <-s.srv.Stopped():
		case <-time.After(lbDeadline):
			t.Fatal("not stopped after 3 messages")
		}
		// Stopped only tells: the server goes on until its owner stops it.
		c.cmd("NOOP", 250, "2.0.0")
	})
}

func TestFaultStopAfterSessions(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{Faults: Faults{StopAfterSessions: 2}})
		open := lbDial(t, s.addr) // open all along: only ended sessions count
		open.greet()
		for i := range 2 {
			c := lbDial(t, s.addr)
			c.greet()
			c.cmd("QUIT", 221, "2.0.0")
			c.expectClosed()
			if i == 0 {
				lbWaitFor(t, "the session to end", func() bool { return s.srv.Stats().ActiveSessions == 1 })
				time.Sleep(20 * time.Millisecond)
				if ftStopped(s.srv) {
					t.Fatal("stopped after one session")
				}
			}
		}
		select {
		case <-s.srv.Stopped():
		case <-time.After(lbDeadline):
			t.Fatal("not stopped after 2 sessions")
		}
		open.cmd("NOOP", 250, "2.0.0")
	})
}

func ftStopped(srv *Server) bool {
	select {
	case <-srv.Stopped():
		return true
	default:
		return false
	}
}

// Seed makes the draws reproducible: the same seed refuses the same RCPTs of a connection, on
// either driver; another seed refuses others.
func TestFaultSeed(t *testing.T) {
	refusals := func(d lbDriver, seed uint64) string {
		var cfg Config
		cfg.Faults.Seed = seed
		cfg.Faults.Points[AtRcpt] = PointFault{Reply: 0.5, ReplyCode: 450, ReplyText: "4.2.1 Try later"}
		cfg.MaxRecipients = 1000
		s := lbStart(t, d, cfg)
		c := lbDial(t, s.addr)
		c.greet()
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.send(lbRcptLines(64))
		var b strings.Builder
		for range 64 {
			r := c.read()
			switch r.code {
			case 250:
				b.WriteByte('.')
			case 450:
				b.WriteByte('x')
			default:
				t.Fatalf("reply %v to a RCPT", r)
			}
		}
		return b.String()
	}
	var seqs []string
	for _, d := range lbDrivers {
		seqs = append(seqs, refusals(d, 42), refusals(d, 42))
	}
	for _, s := range seqs[1:] {
		if s != seqs[0] {
			t.Errorf("the same seed refused other RCPTs:\n%s\n%s", seqs[0], s)
		}
	}
	if !strings.Contains(seqs[0], ".") || !strings.Contains(seqs[0], "x") {
		t.Errorf("with probability 0.5, %s", seqs[0])
	}
	if other := refusals(lbDrivers[0], 43); other == seqs[0] {
		t.Errorf("seeds 42 and 43 refused the same RCPTs: %s", other)
	}
}

// Stats().Latency has the sink's own latency of each phase it answered, one sample per reply.
func TestFaultLatencyPhases(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{})
		c := lbDial(t, s.addr)
		c.greet()
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		c.cmd("RCPT TO:<c@example.org>", 250, "2.1.5")
		c.cmd("DATA", 354, "-")
		c.send(lbMessage)
		c.expect("message", 250, "2.0.0")
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		c.send("BDAT 1\r\nx")
		c.expect("chunk", 250, "2.0.0")
		c.send("BDAT 1 LAST\r\ny")
		c.expect("chunk", 250, "2.0.0")
		c.cmd("RSET", 250, "2.0.0")
		c.cmd("NOOP", 250, "2.0.0") // not a phase
		c.cmd("QUIT", 221, "2.0.0")
		c.expectClosed()
		lbWaitFor(t, "the session to end", func() bool { return s.srv.Stats().ActiveSessions == 0 })
		want := map[string]int64{"greeting": 1, "ehlo": 1, "mail": 2, "rcpt": 3, "data": 1, "body": 1, "bdat": 2, "rset": 1, "quit": 1}
		got := map[string]int64{}
		for _, p := range s.srv.Stats().Latency {
			got[p.Name] = p.Count
			if p.Count > 0 && (p.Min < 0 || p.Max < p.Min || p.P50 < p.Min || p.P50 > p.Max) {
				t.Errorf("%s: min %d, p50 %d, max %d", p.Name, p.Min, p.P50, p.Max)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("latency samples by phase %v, want %v", got, want)
		}
	})
}
