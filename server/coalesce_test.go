package server

import (
	"strings"
	"testing"
	"time"
)

// RFC 2920 §3.2: a server answers a pipelined group in as few writes as it can, flushing only when
// no more input is waiting. Stats().Writes counts the sink's write calls; these tests read it
// before and after one exchange, with one client write per group, and expect exactly one server
// write per group (a loopback write of a few hundred octets arrives in one piece).

// coWrites runs exchange and returns how many writes the sink made meanwhile. exchange must read
// every reply it causes, so the writes are done when it returns.
func coWrites(s *lbSink, exchange func()) uint64 {
	before := coSettledWrites(s)
	exchange()
	return coSettledWrites(s) - before
}

// coSettledWrites reads Stats().Writes once it has stopped changing. The event loops count a
// write when the write call returns, so a client may read a reply a moment before its write is
// counted.
// It reads the counter behind Stats().Writes: a whole Stats snapshot merges the latency
// histograms, which takes long under the race detector.
func coSettledWrites(s *lbSink) uint64 {
	n, same := s.srv.stats.writes.Load(), 0
	for same < 4 {
		time.Sleep(5 * time.Millisecond)
		if m := s.srv.stats.writes.Load(); m != n {
			n, same = m, 0
			continue
		}
		same++
	}
	return n
}

func TestCoalescePipelinedGroups(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{})
		var c *lbClient
		if n := coWrites(s, func() { c = lbDial(t, s.addr); c.greet() }); n != 2 {
			t.Errorf("greeting and EHLO: %d writes, want 2", n)
		}

		{ // MAIL RCPT RCPT DATA
			n := coWrites(s, func() {
				c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n")
				c.expect("MAIL", 250, "2.1.0")
				c.expect("RCPT b", 250, "2.1.5")
				c.expect("RCPT c", 250, "2.1.5")
				c.expect("DATA", 354, "-")
			})
			if n != 1 {
				t.Errorf("the group's four replies came in %d writes, want 1", n)
			}
			if n := coWrites(s, func() { c.send(lbMessage); c.expect("end of data", 250, "2.0.0") }); n != 1 {
				t.Errorf("the message's reply: %d writes, want 1", n)
			}
		}

		{ // MAIL RCPT BDAT LAST
			n := coWrites(s, func() {
				c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 11 LAST\r\nHello world")
				c.expect("MAIL", 250, "2.1.0")
				c.expect("RCPT", 250, "2.1.5")
				c.expect("BDAT LAST", 250, "2.0.0")
			})
			if n != 1 {
				t.Errorf("the group's three replies came in %d writes, want 1", n)
			}
		}

		{ // BDAT chunks
			n := coWrites(s, func() {
				c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 3\r\nabcBDAT 3\r\ndefBDAT 1 LAST\r\ng")
				c.expect("MAIL", 250, "2.1.0")
				c.expect("RCPT", 250, "2.1.5")
				c.expect("BDAT", 250, "2.0.0")
				c.expect("BDAT", 250, "2.0.0")
				c.expect("BDAT LAST", 250, "2.0.0")
			})
			if n != 1 {
				t.Errorf("the group's five replies came in %d writes, want 1", n)
			}
		}

		{ // many recipients
			n := coWrites(s, func() {
				c.send("MAIL FROM:<a@example.com>\r\n" + lbRcptLines(50) + "RSET\r\n")
				c.expect("MAIL", 250, "2.1.0")
				for range 50 {
					c.expect("RCPT", 250, "2.1.5")
				}
				c.expect("RSET", 250, "2.0.0")
			})
			if n != 1 {
				t.Errorf("52 replies came in %d writes, want 1", n)
			}
		}

		{ // errors in a group
			n := coWrites(s, func() {
				c.send("RCPT TO:<b@example.org>\r\nFOOB\r\nMAIL FROM:<bad\r\nNOOP\r\n")
				c.expect("RCPT", 503, "5.5.1")
				c.expect("FOOB", 500, "5.5.2")
				c.expect("MAIL", 501, "5.1.7")
				c.expect("NOOP", 250, "2.0.0")
			})
			if n != 1 {
				t.Errorf("four replies came in %d writes, want 1", n)
			}
		}

		{ // lock-step
			steps := []struct {
				send string
				code int
			}{
				{"MAIL FROM:<a@example.com>\r\n", 250}, {"RCPT TO:<b@example.org>\r\n", 250}, {"DATA\r\n", 354},
				{lbMessage, 250}, {"NOOP\r\n", 250}, {"VRFY x\r\n", 252}, {"RSET\r\n", 250},
			}
			for _, st := range steps {
				if n := coWrites(s, func() { c.send(st.send); c.expect(strings.TrimSpace(st.send), st.code, "") }); n != 1 {
					t.Errorf("%q: %d writes, want 1", st.send, n)
				}
			}
		}

		{ // QUIT
			n := coWrites(s, func() {
				c.send("NOOP\r\nQUIT\r\n")
				c.expect("NOOP", 250, "2.0.0")
				c.expect("QUIT", 221, "2.0.0") // the 221 arrives before the close
				c.expectClosed()
			})
			if n != 1 {
				t.Errorf("NOOP and QUIT: %d writes, want 1", n)
			}
		}
		if n := coSettledWrites(s); s.srv.Stats().Writes != n {
			t.Errorf("Stats().Writes %d, the counter %d", s.srv.Stats().Writes, n)
		}
	})
}

// Replies to a group that arrives octet by octet are not held back waiting for the rest of a
// group the sink cannot know is coming: each complete command is answered once no input waits.
func TestCoalesceNoInputWaiting(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{})
		c := lbDial(t, s.addr)
		c.greet()
		c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@exa")
		c.expect("MAIL, before the rest of the RCPT line arrives", 250, "2.1.0")
		c.send("mple.org>\r\n")
		c.expect("RCPT", 250, "2.1.5")
	})
}
