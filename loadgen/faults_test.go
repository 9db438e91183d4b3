package loadgen

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/pipeline"
	"github.com/smtpbench/smtpbench/results"
	"github.com/smtpbench/smtpbench/server"
)

// The load generator against the bundled sink misbehaving on purpose (server.Faults). Both sides
// count: what the client says it saw must be what the sink says it injected.

// faultSeed makes the sink's draws reproducible. The probe is the sink's first connection, so
// with a fault at connect it must not draw one (it would fail the run): this seed gives it none.
const faultSeed = 11

func newFaults() server.Faults { return server.Faults{Seed: faultSeed} }

func replyAt(p server.FaultPoint, prob float64, code int, text string) server.PointFault {
	return server.PointFault{Reply: prob, ReplyCode: code, ReplyText: text}
}

// faultRun is a run of a few hundred messages, so that 10-30% faults are many.
func faultRun(target pipeline.Target) Config {
	cfg := testConfig(target)
	cfg.Messages, cfg.Sessions = 300, 4
	return cfg
}

// checkBothSides checks what holds for every run against a faulty sink: every message is
// delivered, failed or deferred; every phase's replies and errors add up; the timeline adds up;
// and the sink's own counts of sessions, messages, recipients and octets are the client's.
func checkBothSides(tb testing.TB, res *results.Result, srv *server.Server) {
	tb.Helper()
	tot := res.Totals
	if tot.Delivered+tot.Failed+tot.Deferred != tot.Messages {
		tb.Errorf("delivered %d + failed %d + deferred %d != messages %d", tot.Delivered, tot.Failed, tot.Deferred, tot.Messages)
	}
	for _, ph := range replyPhases {
		if p := res.Phase(ph); p != nil && sum(replies(res, ph)) != p.Count {
			tb.Errorf("%s: replies %v add up to %d, count %d", ph, replies(res, ph), sum(replies(res, ph)), p.Count)
		}
	}
	if errs := phaseErrors(res); errs != tot.Errors {
		tb.Errorf("phase errors add up to %d, totals say %d", errs, tot.Errors)
	}
	if n := count(res, "connect"); n != tot.Sessions {
		tb.Errorf("connect count %d, sessions %d", n, tot.Sessions)
	}
	if n := count(res, "txn"); n > tot.Messages+tot.Retries {
		tb.Errorf("txn count %d > %d messages + %d retries", n, tot.Messages, tot.Retries)
	}
	var iv results.Interval
	for _, t := range res.Timeline {
		iv.Messages += t.Messages
		iv.Delivered += t.Delivered
		iv.Failed += t.Failed
		iv.Errors += t.Errors
	}
	if iv.Messages != tot.Messages || iv.Delivered != tot.Delivered || iv.Failed != tot.Failed || iv.Errors != tot.Errors {
		tb.Errorf("timeline adds up to %+v, totals %+v", iv, tot)
	}
	// The sink accepted exactly the transactions the client saw accepted (a retry that delivers
	// to the rest of a message's recipients is a transaction of its own).
	accepted := replies(res, "body")["250 2.0.0"] + replies(res, "bdat")["250 2.0.0"]
	st := srv.Stats()
	if int64(st.Messages) != accepted || int64(st.Recipients) != tot.Recipients || int64(st.Bytes) != tot.Bytes {
		tb.Errorf("sink: %d messages, %d recipients, %d octets; the client: %d accepted, %d recipients, %d octets",
			st.Messages, st.Recipients, st.Bytes, accepted, tot.Recipients, tot.Bytes)
	}
	if tot.Delivered > accepted || tot.Delivered == 0 && accepted > 0 {
		tb.Errorf("%d delivered, %d transactions accepted", tot.Delivered, accepted)
	}
	if int64(st.Sessions) != tot.Sessions+1 {
		tb.Errorf("sink: %d sessions; the client opened %d (+1 probe)", st.Sessions, tot.Sessions)
	}
	if st.Panics != 0 {
		tb.Errorf("sink panicked %d times", st.Panics)
	}
}

// A reply fault at each point shows in the client's phase for it, with its code and enhanced
// code, exactly as often as the sink gave it; each costs its message (a refused RCPT only its
// recipient, while another is accepted).
func TestFaultReplies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		point  server.FaultPoint
		code   int
		text   string
		phase  string // where the client sees it
		rcpts  int
		mod    func(*Config)
		failed string // what a fault does to its message: "message", or "rcpt" (only when all are refused)
		rset   string // RSETs: "none", "faults" (one per fault), "failed" (one per failed message)
	}{
		{"mail 451", server.AtMail, 451, "4.3.0 Try again later", "mail", 1, nil, "message", "none"},
		{"mail 550", server.AtMail, 550, "5.7.1 Go away", "mail", 2, nil, "message", "none"},
		{"mail 451 lockstep", server.AtMail, 451, "4.3.0 Try again later", "mail", 2, lockstep, "message", "none"},
		{"mail 451 BDAT", server.AtMail, 451, "4.3.0 Try again later", "mail", 1, useBDAT, "message", "none"},
		{"rcpt 550", server.AtRcpt, 550, "5.1.1 No such user", "rcpt", 3, nil, "rcpt", "failed"},
		{"rcpt 451", server.AtRcpt, 451, "4.2.0 Mailbox busy", "rcpt", 3, nil, "rcpt", "failed"},
		{"rcpt 550 lockstep", server.AtRcpt, 550, "5.1.1 No such user", "rcpt", 3, lockstep, "rcpt", "failed"},
		{"rcpt 550 BDAT", server.AtRcpt, 550, "5.1.1 No such user", "rcpt", 3, useBDAT, "rcpt", "failed"},
		{"rcpt 550 chained", server.AtRcpt, 550, "5.1.1 No such user", "rcpt", 3, chained, "rcpt", "failed"},
		{"data 451", server.AtData, 451, "4.3.1 Out of memory", "data", 1, nil, "message", "faults"},
		{"data 554", server.AtData, 554, "5.3.0 No", "data", 2, nil, "message", "faults"},
		{"data 451 lockstep", server.AtData, 451, "4.3.1 Out of memory", "data", 1, lockstep, "message", "faults"},
		{"data 451 chained", server.AtData, 451, "4.3.1 Out of memory", "data", 1, chained, "message", "faults"},
		{"dot 451", server.AtDot, 451, "4.3.0 Queue trouble", "body", 1, nil, "message", "none"},
		{"dot 552", server.AtDot, 552, "5.3.4 Too big for me", "body", 2, nil, "message", "none"},
		{"dot 451 lockstep", server.AtDot, 451, "4.3.0 Queue trouble", "body", 1, lockstep, "message", "none"},
		{"dot 451 chained", server.AtDot, 451, "4.3.0 Queue trouble", "body", 1, chained, "message", "none"},
		// With BDAT the whole message is one BDAT LAST chunk: the reply that ends it is the dot point's.
		{"dot 451 BDAT", server.AtDot, 451, "4.3.0 Queue trouble", "bdat", 1, useBDAT, "message", "none"},
		{"dot 554 BDAT lockstep", server.AtDot, 554, "5.6.0 Bad content", "bdat", 2, func(c *Config) { useBDAT(c); lockstep(c) }, "message", "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFaults()
			f.Points[tc.point] = replyAt(tc.point, 0.25, tc.code, tc.text)
			srv, target := startSink(t, server.Config{Faults: f})
			cfg := faultRun(target)
			cfg.Recipients = tc.rcpts
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			res := mustRun(t, cfg)
			checkBothSides(t, res, srv)
			tot, st := res.Totals, srv.Stats()
			m, r := int64(300), int64(tc.rcpts)
			injected := int64(st.Faults[tc.point.String()].Replied)
			commands := m // of the faulty point
			if tc.point == server.AtRcpt {
				commands = m * r
			}
			// 25% of 300 (or 900): far from 0 and from all of them.
			if injected < commands/8 || injected > commands/2 {
				t.Fatalf("the sink injected %d faults at %s in %d commands; stats %+v", injected, tc.point, commands, st.Faults)
			}
			key := fmt.Sprintf("%d %s", tc.code, tc.text[:5])
			got := replies(res, tc.phase)
			if got[key] != injected {
				t.Errorf("%s replies %v: %d × %q, the sink injected %d", tc.phase, got, got[key], key, injected)
			}
			if n := count(res, tc.phase); n != commands {
				t.Errorf("%s count %d, want %d", tc.phase, n, commands)
			}
			if tot.Messages != m || tot.Retries != 0 || tot.Deferred != 0 || tot.Errors != 0 {
				t.Errorf("totals %+v", tot)
			}
			switch tc.failed {
			case "message":
				if tot.Failed != injected || tot.Recipients != (m-injected)*r {
					t.Errorf("%d failed, %d recipients; %d faults", tot.Failed, tot.Recipients, injected)
				}
			case "rcpt":
				// Only a message with every recipient refused fails; the others go to the rest.
				if tot.Recipients != m*r-injected {
					t.Errorf("%d recipients delivered of %d, %d refused", tot.Recipients, m*r, injected)
				}
				if refusedInDelivered := injected - r*tot.Failed; refusedInDelivered <= 0 || tot.Failed > injected/r {
					t.Errorf("%d failed for %d refused recipients: a refused RCPT must not cost the message", tot.Failed, injected)
				}
			}
			if tot.Delivered != m-tot.Failed {
				t.Errorf("%d delivered, %d failed", tot.Delivered, tot.Failed)
			}
			var wantRset int64
			switch tc.rset {
			case "faults":
				wantRset = injected
			case "failed":
				wantRset = tot.Failed
			}
			if n := count(res, "rset"); n != wantRset || sum(replies(res, "rset")) != wantRset {
				t.Errorf("%d RSETs (replies %v), want %d", n, replies(res, "rset"), wantRset)
			}
			if st.Faults["bdat"] != (server.FaultCounts{}) {
				t.Errorf("faults at bdat: %+v", st.Faults)
			}
		})
	}
}

func lockstep(c *Config) { c.Pipelining = pipeline.Off }
func perConn1(c *Config) { c.PerConn = 1 }
func useBDAT(c *Config)  { c.BDAT = true }
func chained(c *Config)  { c.Chain = true }

// The client sends a message as one BDAT LAST chunk, so a fault at the sink's bdat point (a
// chunk that does not end the message) is never drawn: both sides count none. The dot point's
// faults show in the client's bdat phase.
func TestFaultBdatPoint(t *testing.T) {
	f := newFaults()
	f.Points[server.AtBdat] = replyAt(server.AtBdat, 0.5, 452, "4.3.1 Chunk refused")
	f.Points[server.AtDot] = replyAt(server.AtDot, 0.2, 554, "5.6.0 Message refused")
	srv, target := startSink(t, server.Config{Faults: f})
	cfg := faultRun(target)
	cfg.BDAT = true
	res := mustRun(t, cfg)
	checkBothSides(t, res, srv)
	st := srv.Stats()
	dot, bdat := st.Faults["dot"], st.Faults["bdat"]
	got := replies(res, "bdat")
	if bdat != (server.FaultCounts{}) || got["452 4.3.1"] != 0 {
		t.Errorf("bdat point: the sink injected %+v, the client saw %d", bdat, got["452 4.3.1"])
	}
	if dot.Replied < 20 || got["554 5.6.0"] != int64(dot.Replied) || res.Totals.Failed != int64(dot.Replied) {
		t.Errorf("dot point: the sink injected %+v; the client saw bdat replies %v, totals %+v", dot, got, res.Totals)
	}
}

// A connection closed instead of a reply, silently or after 421 4.4.2: the client counts an
// error (or the 421) at the step for each, fails the message it carried, and reconnects.
func TestFaultDisconnects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		point server.FaultPoint
		with  bool   // 421 first
		phase string // where the client sees it
		rcpts int
		mod   func(*Config)
		// lost: what each disconnect costs: "message" (the one in flight), "chained" (it and
		// perhaps the next), "none" (between messages), "session" (at connect: the message
		// waits for the next connection)
		lost string
	}{
		{"mail silent", server.AtMail, false, "mail", 1, nil, "message"},
		{"mail 421", server.AtMail, true, "mail", 1, nil, "message"},
		{"mail silent lockstep", server.AtMail, false, "mail", 1, lockstep, "message"},
		{"rcpt silent", server.AtRcpt, false, "rcpt", 2, nil, "message"},
		{"rcpt 421", server.AtRcpt, true, "rcpt", 2, nil, "message"},
		{"rcpt 421 lockstep", server.AtRcpt, true, "rcpt", 2, lockstep, "message"},
		{"data silent", server.AtData, false, "data", 1, nil, "message"},
		{"data 421", server.AtData, true, "data", 1, nil, "message"},
		{"dot silent", server.AtDot, false, "body", 1, nil, "message"},
		{"dot 421", server.AtDot, true, "body", 1, nil, "message"},
		{"dot silent BDAT", server.AtDot, false, "bdat", 1, useBDAT, "message"},
		{"dot 421 BDAT", server.AtDot, true, "bdat", 1, useBDAT, "message"},
		{"dot 421 lockstep", server.AtDot, true, "body", 1, lockstep, "message"},
		// Chained, the next message's MAIL, RCPT and DATA went in the write that ended this one's
		// data: when there was a next one, it is lost with the connection too (its error, when
		// silent, counted at body: see the report).
		{"dot silent chained", server.AtDot, false, "body", 1, chained, "chained"},
		{"dot 421 chained", server.AtDot, true, "body", 1, chained, "chained"},
		{"mail silent chained", server.AtMail, false, "mail", 1, chained, "message"},
		// One message per connection, so that there are many connections to cut.
		{"connect silent", server.AtConnect, false, "greeting", 1, perConn1, "session"},
		{"connect 421", server.AtConnect, true, "greeting", 1, perConn1, "session"},
		{"ehlo silent", server.AtEHLO, false, "ehlo", 1, perConn1, "session"},
		{"ehlo 421", server.AtEHLO, true, "ehlo", 1, perConn1, "session"},
		{"quit silent", server.AtQuit, false, "quit", 1, func(c *Config) { c.PerConn = 3 }, "none"},
		{"quit 421", server.AtQuit, true, "quit", 1, func(c *Config) { c.PerConn = 3 }, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFaults()
			f.Points[tc.point] = server.PointFault{Disconnect: 0.15, Disconnect421: tc.with}
			srv, target := startSink(t, server.Config{Faults: f})
			cfg := faultRun(target)
			cfg.Recipients = tc.rcpts
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			res := mustRun(t, cfg)
			checkBothSides(t, res, srv)
			tot, st := res.Totals, srv.Stats()
			cut := int64(st.Faults[tc.point.String()].Disconnected)
			if cut < 10 {
				t.Fatalf("the sink disconnected %d times; stats %+v", cut, st.Faults)
			}
			if tot.Messages != 300 || tot.Retries != 0 || tot.Deferred != 0 {
				t.Errorf("totals %+v", tot)
			}
			errs := cut // errors when silent
			if tc.lost == "chained" {
				errs = tot.Failed
			}
			if tc.with {
				if got := replies(res, tc.phase)["421 4.4.2"]; got != cut || tot.Errors != 0 {
					t.Errorf("%s replies %v, %d errors; the sink said 421 %d times", tc.phase, replies(res, tc.phase), tot.Errors, cut)
				}
			} else if got := sum(errorCounts(res, tc.phase)); got != errs || tot.Errors != errs {
				t.Errorf("%s errors %v, %d in all; the sink disconnected %d times", tc.phase, errorCounts(res, tc.phase), tot.Errors, cut)
			}
			switch tc.lost {
			case "message":
				if tot.Failed != cut || tot.Delivered != 300-cut {
					t.Errorf("%d failed, %d delivered for %d disconnects", tot.Failed, tot.Delivered, cut)
				}
			case "chained":
				if tot.Failed < cut || tot.Failed > 2*cut || tot.Delivered != 300-tot.Failed {
					t.Errorf("%d failed, %d delivered for %d disconnects", tot.Failed, tot.Delivered, cut)
				}
			default:
				if tot.Failed != 0 || tot.Delivered != 300 {
					t.Errorf("%d failed, %d delivered: a disconnect between messages costs none", tot.Failed, tot.Delivered)
				}
			}
			// Every disconnect in a session made its worker reconnect (but after the last message);
			// one at connect costs a session of its own.
			switch tc.lost {
			case "message", "chained":
				if tot.Sessions < cut+1 || tot.Sessions > int64(cfg.Sessions)+cut {
					t.Errorf("%d sessions for %d workers and %d disconnects", tot.Sessions, cfg.Sessions, cut)
				}
			case "session":
				if tot.Sessions != 300+cut { // one message per connection that starts
					t.Errorf("%d sessions for %d workers and %d disconnects", tot.Sessions, cfg.Sessions, cut)
				}
			}
			// No QUIT on a connection that is gone; a QUIT answered by a 421 is answered.
			wantQuits := tot.Sessions - cut
			if tc.point == server.AtQuit && tc.with {
				wantQuits = tot.Sessions
			}
			if n := count(res, "quit"); n != wantQuits {
				t.Errorf("%d QUITs answered for %d sessions, %d cut", n, tot.Sessions, cut)
			}
			// A session is timed once it has started (greeting and EHLO answered).
			wantSessions := tot.Sessions
			if tc.lost == "session" {
				wantSessions -= cut
			}
			if n := count(res, "session"); n != wantSessions {
				t.Errorf("%d session samples, %d sessions, %d cut", n, tot.Sessions, cut)
			}
		})
	}
}

// A delayed reply: the client's latency for its phase is the delay or more, the sink's own is at
// least the delay, and the sink delayed exactly the commands the client sent at that point.
//
// The client's minimum is only checked against half the delay (its median against all of it):
// measured on a busy machine it can come out under the delay, by a few milliseconds, for two
// reasons outside loadgen. The client stamps a command when its write returns (pipeline
// Conn.write), which can be late when the goroutine waits for a P after the syscall; and the
// sink's event loop stamps input with the time its epoll_wait returned, also for input it reads
// later in the same round (after a write, or in a session woken by a timer), so a delay can start
// before the command arrived. Seen: 12.4ms for a 20ms delay at the dot with chaining, the sink
// saying 20.1ms, with ten such runs at once. The cases run two at a time to keep that small.
func TestFaultDelays(t *testing.T) {
	const delay = 40 * time.Millisecond
	slots := make(chan struct{}, 2)
	for _, tc := range []struct {
		name  string
		point server.FaultPoint
		phase string
		mod   func(*Config)
		per   func(res *results.Result) int64 // commands at the point, as the sink counts them
	}{
		{"connect", server.AtConnect, "greeting", nil, func(res *results.Result) int64 { return res.Totals.Sessions + 1 }},
		{"ehlo", server.AtEHLO, "ehlo", nil, func(res *results.Result) int64 { return res.Totals.Sessions + 1 }},
		{"mail", server.AtMail, "mail", nil, func(res *results.Result) int64 { return res.Totals.Messages }},
		{"mail lockstep", server.AtMail, "mail", lockstep, func(res *results.Result) int64 { return res.Totals.Messages }},
		{"rcpt", server.AtRcpt, "rcpt", nil, func(res *results.Result) int64 { return 2 * res.Totals.Messages }},
		{"data", server.AtData, "data", nil, func(res *results.Result) int64 { return res.Totals.Messages }},
		{"dot", server.AtDot, "body", nil, func(res *results.Result) int64 { return res.Totals.Messages }},
		{"dot chained", server.AtDot, "body", chained, func(res *results.Result) int64 { return res.Totals.Messages }},
		{"dot BDAT", server.AtDot, "bdat", useBDAT, func(res *results.Result) int64 { return res.Totals.Messages }},
		{"quit", server.AtQuit, "quit", func(c *Config) { c.PerConn = 3 }, func(res *results.Result) int64 { return res.Totals.Sessions + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			slots <- struct{}{}
			defer func() { <-slots }()
			f := newFaults()
			f.Points[tc.point] = server.PointFault{Delay: server.Dist{Kind: server.DistFixed, A: delay}}
			srv, target := startSink(t, server.Config{Faults: f})
			cfg := testConfig(target)
			cfg.Messages, cfg.Sessions, cfg.Recipients = 24, 4, 2
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			res := mustRun(t, cfg)
			checkBothSides(t, res, srv)
			tot := res.Totals
			if tot.Messages != 24 || tot.Delivered != 24 || tot.Failed != 0 || tot.Errors != 0 {
				t.Errorf("totals %+v", tot)
			}
			p := res.Phase(tc.phase)
			if p == nil || p.Min < int64(delay)/2 || p.P50 < int64(delay) {
				t.Fatalf("%s: %+v, want the delay (%v) in every sample", tc.phase, p, delay)
			}
			for _, sp := range srv.Stats().Latency {
				if sp.Name == tc.phase && sp.Min < int64(delay) {
					t.Errorf("the sink's own %s latency: min %v, below its delay %v", tc.phase, time.Duration(sp.Min), delay)
				}
			}
			if got, want := int64(srv.Stats().Faults[tc.point.String()].Delayed), tc.per(res); got != want {
				t.Errorf("the sink delayed %d commands at %s, want %d", got, tc.point, want)
			}
			if tc.phase != "greeting" && tc.phase != "ehlo" && tc.phase != "quit" {
				if txn := res.Phase("txn"); txn == nil || txn.Min < int64(delay)/2 || txn.P50 < int64(delay) {
					t.Errorf("txn %+v, want every transaction at least %v", txn, delay)
				}
				if tc.phase != "rcpt" && count(res, tc.phase) != tot.Messages {
					t.Errorf("%s count %d", tc.phase, count(res, tc.phase))
				}
			}
		})
	}
}

// Temporary failures are retried, permanent ones never; without retries a temporary failure
// fails its message.
func TestFaultRetries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		point   server.FaultPoint
		code    int
		text    string
		phase   string
		rcpts   int
		retries int
	}{
		{"tempfail without retries", server.AtDot, 451, "4.3.0 Queue trouble", "body", 1, 0},
		{"tempfail with retries", server.AtDot, 451, "4.3.0 Queue trouble", "body", 1, 3},
		{"tempfail with retries BDAT", server.AtDot, 451, "4.3.0 Queue trouble", "bdat", 1, 3},
		{"tempfail at MAIL with retries", server.AtMail, 421, "4.3.2 Not now", "mail", 2, 2},
		{"permanent failure with retries", server.AtDot, 554, "5.6.0 Bad content", "body", 1, 3},
		{"permanent RCPT refusal with retries", server.AtRcpt, 550, "5.1.1 No such user", "rcpt", 3, 3},
		{"temporary RCPT refusals with retries", server.AtRcpt, 451, "4.2.0 Mailbox busy", "rcpt", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFaults()
			f.Points[tc.point] = replyAt(tc.point, 0.25, tc.code, tc.text)
			srv, target := startSink(t, server.Config{Faults: f})
			cfg := faultRun(target)
			cfg.Messages, cfg.Recipients, cfg.Retries, cfg.RetryBackoff = 200, tc.rcpts, tc.retries, 5*time.Millisecond
			if tc.name == "tempfail with retries BDAT" {
				cfg.BDAT = true
			}
			res := mustRun(t, cfg)
			checkBothSides(t, res, srv)
			tot, st := res.Totals, srv.Stats()
			m, r := int64(200), int64(tc.rcpts)
			injected := int64(st.Faults[tc.point.String()].Replied)
			key := fmt.Sprintf("%d %s", tc.code, tc.text[:5])
			if injected < 20 || replies(res, tc.phase)[key] != injected {
				t.Fatalf("%s replies %v; the sink injected %d", tc.phase, replies(res, tc.phase), injected)
			}
			if tot.Messages != m || tot.Deferred != 0 {
				t.Errorf("totals %+v", tot)
			}
			// Every attempt starts with MAIL.
			if count(res, "mail") != tot.Messages+tot.Retries {
				t.Errorf("%d MAILs for %d messages and %d retries", count(res, "mail"), tot.Messages, tot.Retries)
			}
			temporary := tc.code < 500
			switch {
			case !temporary || tc.retries == 0:
				if tot.Retries != 0 {
					t.Errorf("%d retries of %d %s", tot.Retries, tc.code, tc.phase)
				}
				if tc.point != server.AtRcpt && tot.Failed != injected {
					t.Errorf("%d failed, %d faults", tot.Failed, injected)
				}
			case tc.point == server.AtRcpt:
				// A retry goes to the recipients still to deliver: each refusal is retried, up to
				// the last attempt, and nobody gets the message twice.
				if tot.Retries == 0 || tot.Recipients > m*r || count(res, "rcpt") != tot.Recipients+injected {
					t.Errorf("%d retries, %d recipients delivered of %d, %d RCPTs for %d refusals", tot.Retries,
						tot.Recipients, m*r, count(res, "rcpt"), injected)
				}
				if tot.Failed > m/20 {
					t.Errorf("%d failed, %d delivered: four attempts at 25%% each", tot.Failed, tot.Delivered)
				}
			default:
				// Each fault is retried, unless it came on the last attempt: then the message failed.
				if tot.Retries == 0 || tot.Retries+tot.Failed != injected {
					t.Errorf("%d retries and %d failed for %d temporary failures", tot.Retries, tot.Failed, injected)
				}
				if tot.Failed > m/20 {
					t.Errorf("%d failed after %d attempts at 25%%", tot.Failed, tc.retries+1)
				}
			}
			if tot.Delivered+tot.Failed != m {
				t.Errorf("%d delivered, %d failed", tot.Delivered, tot.Failed)
			}
		})
	}
}

// Greylisting (450 4.7.1 to a new sender-recipient pair, for 300ms) is what retries are for:
// every message ends delivered, after retries, and the client saw every 450 the sink gave.
func TestFaultGreylisting(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"DATA", nil},
		{"BDAT", useBDAT},
		{"lockstep", lockstep},
		{"chained", chained},
		{"null sender", func(c *Config) { c.From = "<>" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFaults()
			f.Greylist = 300 * time.Millisecond
			srv, target := startSink(t, server.Config{Faults: f})
			cfg := testConfig(target)
			cfg.Messages, cfg.Sessions, cfg.Recipients = 60, 4, 2
			cfg.Retries, cfg.RetryBackoff = 3, 300*time.Millisecond
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			start := time.Now()
			res := mustRun(t, cfg)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the run took %v", d)
			}
			checkBothSides(t, res, srv)
			tot, st := res.Totals, srv.Stats()
			if tot.Messages != 60 || tot.Delivered != 60 || tot.Failed != 0 || tot.Deferred != 0 || tot.Errors != 0 {
				t.Errorf("totals %+v", tot)
			}
			if tot.Recipients != 120 || st.Recipients != 120 {
				t.Errorf("%d recipients delivered, the sink took %d; want 120", tot.Recipients, st.Recipients)
			}
			// Every first attempt is greylisted; a retry after less than 300ms is again.
			if tot.Retries < 60 || tot.Retries > 180 {
				t.Errorf("%d retries for 60 greylisted messages", tot.Retries)
			}
			grey := replies(res, "rcpt")["450 4.7.1"]
			if grey < 120 || grey != int64(st.Greylisted) {
				t.Errorf("rcpt replies %v; the sink greylisted %d", replies(res, "rcpt"), st.Greylisted)
			}
			if count(res, "mail") != tot.Messages+tot.Retries {
				t.Errorf("%d MAILs for %d messages and %d retries", count(res, "mail"), tot.Messages, tot.Retries)
			}
			// sched is the generator's time between back-to-back messages: a session waiting for
			// a retry to come due is not that. (A refused transaction ends with RSET, so few
			// messages here follow another back to back; there may be none.)
			if p := res.Phase("sched"); p != nil && p.Max >= int64(cfg.RetryBackoff)/2 {
				t.Errorf("sched %+v: the waits for retries counted as the generator's", p)
			}
			if cfg.From == "<>" && replies(res, "mail")["250 2.1.0"] != count(res, "mail") {
				t.Errorf("mail replies %v for the null sender", replies(res, "mail"))
			}
		})
	}
}

// A run stopped while retries wait counts their messages as deferred: not delivered, not failed.
func TestFaultStopWithRetriesPending(t *testing.T) {
	for _, tc := range []struct {
		name    string
		faults  func(*server.Faults)
		partial bool // some recipients of a message may have been delivered before the stop
	}{
		{"greylisted", func(f *server.Faults) { f.Greylist = time.Hour }, false},
		{"some recipients refused", func(f *server.Faults) {
			f.Points[server.AtRcpt] = replyAt(server.AtRcpt, 0.5, 451, "4.2.0 Mailbox busy")
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFaults()
			tc.faults(&f)
			srv, target := startSink(t, server.Config{Faults: f})
			cfg := testConfig(target)
			cfg.Messages, cfg.Sessions, cfg.Recipients = 40, 4, 2
			cfg.Retries, cfg.RetryBackoff = 5, 10*time.Second // no retry comes before the stop
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := runAsync(ctx, cfg)
			waitUntil(t, "every first attempt (80 RCPTs answered)", func() bool {
				st := srv.Stats()
				return st.Greylisted+st.Faults["rcpt"].Replied+st.Recipients >= 80
			})
			time.Sleep(20 * time.Millisecond) // the last replies are read and recorded
			stopped := time.Now()
			cancel()
			res := wait(t, done, 5*time.Second)
			// The run ended (its sessions closed) at once; the result then takes its time to
			// build, a while under the race detector.
			if d := res.End.Sub(stopped); d > time.Second {
				t.Errorf("the run ended %v after the stop: it waited for the retries", d)
			}
			checkBothSides(t, res, srv)
			tot := res.Totals
			if res.StopReason != StopInterrupted {
				t.Errorf("stop reason %q", res.StopReason)
			}
			if tot.Messages != 40 || tot.Retries != 0 || tot.Failed != 0 || tot.Deferred == 0 {
				t.Errorf("totals %+v", tot)
			}
			if !tc.partial && (tot.Deferred != 40 || tot.Delivered != 0) {
				t.Errorf("totals %+v: every message waits for its retry", tot)
			}
			if tc.partial && tot.Delivered == 0 {
				t.Errorf("totals %+v: a message delivered to one of its recipients is delivered", tot)
			}
		})
	}
}

// A sink that goes away in the middle of a run: what was in flight fails, the workers cannot
// reconnect, and when the run is stopped every message is still accounted for once.
func TestFaultSinkGoesAway(t *testing.T) {
	srv, target := startSink(t, server.Config{})
	cfg := testConfig(target)
	cfg.Messages, cfg.Duration, cfg.Sessions = 0, 0, 4 // the default duration: the cancel comes first
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, cfg)
	waitUntil(t, "the first 50 messages", func() bool { return srv.Stats().Messages >= 50 })
	srv.Close()
	time.Sleep(200 * time.Millisecond) // the workers try to reconnect, and fail
	cancel()
	res := wait(t, done, 5*time.Second)
	tot := res.Totals
	if tot.Delivered+tot.Failed+tot.Deferred != tot.Messages {
		t.Errorf("delivered %d + failed %d + deferred %d != messages %d", tot.Delivered, tot.Failed, tot.Deferred, tot.Messages)
	}
	if tot.Deferred != 0 {
		t.Errorf("%d deferred: nothing was temporarily refused", tot.Deferred)
	}
	if n := count(res, "connect"); n != tot.Sessions || sum(errorCounts(res, "connect")) == 0 {
		t.Errorf("connect: %d samples, errors %v, %d sessions", n, errorCounts(res, "connect"), tot.Sessions)
	}
	// A message the sink took just before it closed may have lost its reply.
	if st := srv.Stats(); int64(st.Messages) < tot.Delivered || int64(st.Messages) > tot.Delivered+int64(cfg.Sessions) {
		t.Errorf("the sink took %d messages, the client says %d were delivered", st.Messages, tot.Delivered)
	}
}
