package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/pipeline"
	"github.com/smtpbench/smtpbench/results"
	"github.com/smtpbench/smtpbench/server"
)

// startSink serves the bundled sink on a loopback port for one test.
func startSink(tb testing.TB, cfg server.Config) (*server.Server, pipeline.Target) {
	tb.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	return srv, pipeline.Target{Network: "tcp", Address: l.Addr().String()}
}

// testConfig is a small run with every wait bounded.
func testConfig(target pipeline.Target) Config {
	cfg := Config{Target: target, Sessions: 4, Messages: 100, Size: 512, Grace: 2 * time.Second}
	cfg.Timeouts.All(5 * time.Second)
	return cfg
}

// mustRun runs cfg, which must succeed well within a generous deadline.
func mustRun(tb testing.TB, cfg Config) *results.Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if res == nil {
		tb.Fatal("no result and no error")
	}
	if d := time.Since(start); d > 20*time.Second {
		tb.Fatalf("the run took %v", d)
	}
	return res
}

type runOut struct {
	res *results.Result
	err error
}

// runAsync starts Run; the result comes on the channel.
func runAsync(ctx context.Context, cfg Config) <-chan runOut {
	done := make(chan runOut, 1)
	go func() {
		res, err := Run(ctx, cfg)
		done <- runOut{res, err}
	}()
	return done
}

// wait returns the run's result, which must come before the deadline.
func wait(tb testing.TB, done <-chan runOut, deadline time.Duration) *results.Result {
	tb.Helper()
	select {
	case o := <-done:
		if o.err != nil {
			tb.Fatal(o.err)
		}
		return o.res
	case <-time.After(deadline):
		tb.Fatalf("Run did not return within %v", deadline)
	}
	return nil
}

// waitUntil polls cond until it holds; what says what it waits for, should it not come.
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// count is a phase's sample count, 0 when the result has no such phase.
func count(res *results.Result, phase string) int64 {
	if p := res.Phase(phase); p != nil {
		return p.Count
	}
	return 0
}

// replies are a phase's reply counts by "code[ enhanced]".
func replies(res *results.Result, phase string) map[string]int64 {
	m := map[string]int64{}
	if p := res.Phase(phase); p != nil {
		for _, r := range p.Replies {
			k := strconv.Itoa(int(r.Code))
			if r.Enhanced != "" {
				k += " " + r.Enhanced
			}
			m[k] += r.Count
		}
	}
	return m
}

func errorCounts(res *results.Result, phase string) map[string]int64 {
	m := map[string]int64{}
	if p := res.Phase(phase); p != nil {
		for _, e := range p.Errors {
			m[e.Reason] += e.Count
		}
	}
	return m
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func wantCounts(tb testing.TB, what string, got, want map[string]int64) {
	tb.Helper()
	for k, v := range want {
		if v == 0 {
			delete(want, k)
		}
	}
	if len(got) != len(want) {
		tb.Errorf("%s: %v, want %v", what, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			tb.Errorf("%s: %v, want %v", what, got, want)
			return
		}
	}
}

// phaseErrors adds up the errors of every phase.
func phaseErrors(res *results.Result) int64 {
	var n int64
	for _, p := range res.Phases {
		for _, e := range p.Errors {
			n += e.Count
		}
	}
	return n
}

var replyPhases = []string{"greeting", "ehlo", "mail", "rcpt", "data", "body", "bdat", "rset", "quit"}

// checkAccounting checks what holds for every run: totals add up, every phase's replies add up to
// its count, errors add up to the total, and the timeline adds up to the totals.
func checkAccounting(tb testing.TB, res *results.Result) {
	tb.Helper()
	if res.Kind != results.Kind || res.Schema != results.SchemaVersion {
		tb.Errorf("kind %q schema %d", res.Kind, res.Schema)
	}
	tot := res.Totals
	if tot.Delivered+tot.Failed != tot.Messages {
		tb.Errorf("delivered %d + failed %d != messages %d", tot.Delivered, tot.Failed, tot.Messages)
	}
	for _, ph := range replyPhases {
		if p := res.Phase(ph); p != nil && sum(replies(res, ph)) != p.Count {
			tb.Errorf("%s: replies %v add up to %d, count %d", ph, replies(res, ph), sum(replies(res, ph)), p.Count)
		}
	}
	if n := count(res, "connect"); n != tot.Sessions {
		tb.Errorf("connect count %d, sessions %d", n, tot.Sessions)
	}
	if n := count(res, "txn"); n > tot.Messages {
		tb.Errorf("txn count %d > messages %d", n, tot.Messages)
	}
	if errs := phaseErrors(res); errs != tot.Errors {
		tb.Errorf("phase errors add up to %d, totals say %d", errs, tot.Errors)
	}
	var iv results.Interval
	for _, t := range res.Timeline {
		iv.Messages += t.Messages
		iv.Delivered += t.Delivered
		iv.Failed += t.Failed
		iv.Errors += t.Errors
	}
	if len(res.Timeline) == 0 || iv.Messages != tot.Messages || iv.Delivered != tot.Delivered || iv.Failed != tot.Failed || iv.Errors != tot.Errors {
		tb.Errorf("timeline %+v adds up to %+v, totals %+v", res.Timeline, iv, tot)
	}
	if !res.End.After(res.Start) || res.Throughput.Seconds <= 0 {
		tb.Errorf("start %v end %v throughput %+v", res.Start, res.End, res.Throughput)
	} else if want := float64(tot.Delivered) / res.Throughput.Seconds; math.Abs(res.Throughput.MessagesPerS-want) > 1e-6*want+1e-9 {
		tb.Errorf("messages/s %v, want %v", res.Throughput.MessagesPerS, want)
	}
	var cfg map[string]any
	if err := json.Unmarshal(res.Config, &cfg); err != nil || cfg["target"] == nil || cfg["sessions"] == nil {
		tb.Errorf("config %s: %v", res.Config, err)
	}
}

// sinkRun is what a run against the bundled sink, which accepts everything, should show.
type sinkRun struct {
	messages   int64 // -1: not known in advance
	recipients int64
	bdat       bool
	perConn    int
	sessions   int // Config.Sessions
}

func checkSinkRun(tb testing.TB, res *results.Result, srv *server.Server, w sinkRun) {
	tb.Helper()
	checkAccounting(tb, res)
	tot := res.Totals
	m := tot.Messages
	if w.messages >= 0 && m != w.messages {
		tb.Errorf("%d messages, want exactly %d", m, w.messages)
	}
	if m <= 0 {
		tb.Fatalf("no messages: %+v", tot)
	}
	if tot.Delivered != m || tot.Failed != 0 || tot.Errors != 0 {
		tb.Errorf("totals %+v: the sink accepts everything", tot)
	}
	if tot.Recipients != m*w.recipients {
		tb.Errorf("%d recipients delivered, want %d", tot.Recipients, m*w.recipients)
	}
	// Histogram counts are the numbers of commands sent, and every reply is the sink's.
	wantCounts(tb, "mail replies", replies(res, "mail"), map[string]int64{"250 2.1.0": m})
	wantCounts(tb, "rcpt replies", replies(res, "rcpt"), map[string]int64{"250 2.1.5": m * w.recipients})
	if count(res, "mail") != m || count(res, "rcpt") != m*w.recipients || count(res, "txn") != m {
		tb.Errorf("mail %d rcpt %d txn %d for %d messages of %d recipients", count(res, "mail"), count(res, "rcpt"),
			count(res, "txn"), m, w.recipients)
	}
	if w.bdat {
		wantCounts(tb, "bdat replies", replies(res, "bdat"), map[string]int64{"250 2.0.0": m})
		if res.Phase("data") != nil || res.Phase("body") != nil || count(res, "bdat") != m {
			tb.Errorf("BDAT run: data %d body %d bdat %d", count(res, "data"), count(res, "body"), count(res, "bdat"))
		}
	} else {
		wantCounts(tb, "data replies", replies(res, "data"), map[string]int64{"354": m})
		wantCounts(tb, "body replies", replies(res, "body"), map[string]int64{"250 2.0.0": m})
		if res.Phase("bdat") != nil || count(res, "data") != m || count(res, "body") != m {
			tb.Errorf("DATA run: data %d body %d bdat %d", count(res, "data"), count(res, "body"), count(res, "bdat"))
		}
	}
	if res.Phase("rset") != nil {
		tb.Errorf("RSET sent to a sink that refused nothing: %+v", res.Phase("rset"))
	}
	s := tot.Sessions
	for _, ph := range []string{"connect", "greeting", "ehlo", "quit", "session"} {
		if count(res, ph) != s {
			tb.Errorf("%s count %d, %d sessions", ph, count(res, ph), s)
		}
	}
	wantCounts(tb, "greeting replies", replies(res, "greeting"), map[string]int64{"220": s})
	wantCounts(tb, "ehlo replies", replies(res, "ehlo"), map[string]int64{"250": s})
	wantCounts(tb, "quit replies", replies(res, "quit"), map[string]int64{"221 2.0.0": s})
	switch {
	case w.perConn == 0:
		if s < 1 || s > int64(w.sessions) {
			tb.Errorf("%d sessions with %d workers keeping their connections", s, w.sessions)
		}
	default:
		// Every connection but each worker's last carries PerConn messages.
		k := int64(w.perConn)
		if lo, hi := (m+k-1)/k, m/k+int64(w.sessions); s < lo || s > hi {
			tb.Errorf("%d sessions for %d messages at %d per connection, want %d to %d", s, m, k, lo, hi)
		}
	}
	// The sink's own counts agree (it also saw the probe connection).
	st := srv.Stats()
	if int64(st.Messages) != m || int64(st.Recipients) != tot.Recipients || int64(st.Bytes) != tot.Bytes {
		tb.Errorf("sink counted %d messages, %d recipients, %d octets; the run %d, %d, %d",
			st.Messages, st.Recipients, st.Bytes, m, tot.Recipients, tot.Bytes)
	}
	if int64(st.Sessions) != s+1 || int64(st.Replies[220]) != s+1 || int64(st.Replies[221]) != s+1 {
		tb.Errorf("sink: %d sessions, %d greetings, %d QUIT replies; the run opened %d (+1 probe)",
			st.Sessions, st.Replies[220], st.Replies[221], s)
	}
	if int64(st.Replies[354]) != count(res, "data") {
		tb.Errorf("sink sent %d 354s, the run counted %d", st.Replies[354], count(res, "data"))
	}
	if st.Rejected != 0 || st.Timeouts != 0 || st.Panics != 0 {
		tb.Errorf("sink stats %+v", st)
	}
}

func TestRunAgainstSink(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"pipelined DATA", func(c *Config) {}},
		{"lockstep DATA", func(c *Config) { c.Pipelining = pipeline.Off }},
		{"pipelining required", func(c *Config) { c.Pipelining = pipeline.On }},
		{"pipelined BDAT", func(c *Config) { c.BDAT = true }},
		{"lockstep BDAT", func(c *Config) { c.BDAT, c.Pipelining = true, pipeline.Off }},
		{"5 recipients", func(c *Config) { c.Recipients = 5 }},
		{"5 recipients BDAT", func(c *Config) { c.Recipients, c.BDAT = 5, true }},
		{"50 sessions", func(c *Config) { c.Sessions, c.Messages = 50, 300 }},
		{"more sessions than messages", func(c *Config) { c.Sessions, c.Messages = 20, 5 }},
		{"one message", func(c *Config) { c.Sessions, c.Messages = 10, 1 }},
		{"PerConn 1", func(c *Config) { c.PerConn, c.Messages = 1, 60 }},
		{"PerConn 3", func(c *Config) { c.PerConn, c.Messages = 3, 100 }},
		{"PerConn 3 lockstep", func(c *Config) { c.PerConn, c.Messages, c.Pipelining = 3, 31, pipeline.Off }},
		{"large body", func(c *Config) { c.Size, c.Messages = 200<<10, 30 }},
		{"smallest body", func(c *Config) { c.Size = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, target := startSink(t, server.Config{})
			cfg := testConfig(target)
			tc.mod(&cfg)
			res := mustRun(t, cfg)
			if res.StopReason != StopMessages {
				t.Errorf("stop reason %q", res.StopReason)
			}
			d := cfg.WithDefaults()
			checkSinkRun(t, res, srv, sinkRun{messages: cfg.Messages, recipients: int64(d.Recipients), bdat: cfg.BDAT,
				perConn: cfg.PerConn, sessions: d.Sessions})
			pipelined := cfg.Pipelining != pipeline.Off
			hasNote := slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "PIPELINING") })
			if hasNote != pipelined {
				t.Errorf("notes %q with pipelining %v", res.Notes, pipelined)
			}
			if res.Target != target.String() || res.RunID == "" || res.Host.GOMAXPROCS == 0 || res.Description == "" {
				t.Errorf("result header: target %q run id %q host %+v description %q", res.Target, res.RunID, res.Host, res.Description)
			}
		})
	}
}

func TestRunUnixSocket(t *testing.T) {
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
	t.Cleanup(func() { srv.Close() })
	cfg := testConfig(pipeline.Target{Network: "unix", Address: path})
	cfg.Messages = 50
	res := mustRun(t, cfg)
	checkSinkRun(t, res, srv, sinkRun{messages: 50, recipients: 1, sessions: cfg.Sessions})
	if res.Target != "unix:"+path {
		t.Errorf("target %q", res.Target)
	}
}

func TestRunDuration(t *testing.T) {
	for _, tc := range []struct {
		name     string
		messages int64
	}{{"duration only", 0}, {"duration before the count", 1 << 40}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, target := startSink(t, server.Config{})
			cfg := testConfig(target)
			cfg.Messages, cfg.Duration, cfg.Sessions = tc.messages, 300*time.Millisecond, 3
			start := time.Now()
			res := mustRun(t, cfg)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("a 300ms run took %v", d)
			}
			if res.StopReason != StopDuration {
				t.Errorf("stop reason %q, want %q", res.StopReason, StopDuration)
			}
			checkSinkRun(t, res, srv, sinkRun{messages: -1, recipients: 1, sessions: 3})
		})
	}
}

// When ctx ends, new messages stop, those in flight finish, and the result is complete.
func TestRunCanceled(t *testing.T) {
	srv, target := startSink(t, server.Config{})
	cfg := testConfig(target)
	cfg.Messages, cfg.Duration = 0, 0 // the default duration, 10s: the cancel comes first
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run returned %v after start, the cancel came at 300ms", d)
	}
	if res.StopReason != StopInterrupted {
		t.Errorf("stop reason %q, want %q", res.StopReason, StopInterrupted)
	}
	checkSinkRun(t, res, srv, sinkRun{messages: -1, recipients: 1, sessions: cfg.Sessions})
}

// The first connection checks the target: an unreachable one fails at once, with no result.
func TestRunUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := pipeline.Target{Network: "tcp", Address: l.Addr().String()}
	l.Close()
	cfg := Config{Target: target, Messages: 10} // the default connect timeout, 30s
	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("failing took %v", d)
	}
	if err == nil || res != nil {
		t.Fatalf("result %v, error %v", res, err)
	}
	if !strings.Contains(err.Error(), target.Address) || pipeline.KindOf(err) != pipeline.KindRefused {
		t.Errorf("error %q (kind %v)", err, pipeline.KindOf(err))
	}
	var pe *pipeline.Error
	if !errors.As(err, &pe) || pe.Step != pipeline.StepConnect {
		t.Errorf("error %v does not carry the connect step", err)
	}
}

// serveOnce answers every connection with raw bytes and closes it.
func serveOnce(tb testing.TB, raw string) pipeline.Target {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(raw))
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				if err != nil {
					break
				}
				if bytes.HasPrefix(buf[:n], []byte("EHLO")) || bytes.HasPrefix(buf[:n], []byte("HELO")) {
					c.Write([]byte("502 5.5.2 no\r\n"))
				}
			}
			c.Close()
		}
	}()
	return pipeline.Target{Network: "tcp", Address: l.Addr().String()}
}

func TestRunProbeFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		target  func(t *testing.T) pipeline.Target
		mod     func(*Config)
		want    string
		notWant string
	}{
		{"greeting refused", func(t *testing.T) pipeline.Target { return serveOnce(t, "554 5.7.1 go away\r\n") }, nil,
			"greets with 554 5.7.1 go away", "5.7.1 5.7.1"},
		{"greeting malformed", func(t *testing.T) pipeline.Target { return serveOnce(t, "hello\r\n") }, nil,
			"sent no greeting", ""},
		{"EHLO and HELO refused", func(t *testing.T) pipeline.Target { return serveOnce(t, "220 fake\r\n") }, nil,
			"refuses EHLO and HELO: 502 5.5.2 no", ""},
		{"no PIPELINING", func(t *testing.T) pipeline.Target {
			_, target := startSink(t, server.Config{Disable: server.ExtPipelining})
			return target
		}, func(c *Config) { c.Pipelining = pipeline.On }, "PIPELINING", ""},
		{"no CHUNKING", func(t *testing.T) pipeline.Target {
			_, target := startSink(t, server.Config{Disable: server.ExtChunking})
			return target
		}, func(c *Config) { c.BDAT = true }, "CHUNKING", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.target(t))
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			start := time.Now()
			res, err := Run(context.Background(), cfg)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("failing took %v", d)
			}
			if err == nil || res != nil {
				t.Fatalf("result %v, error %v", res, err)
			}
			if !strings.Contains(err.Error(), tc.want) || tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// A sink that takes one recipient per message refuses the second with 452 4.5.3; the message
// is delivered to the first.
func TestRunTooManyRecipients(t *testing.T) {
	for _, bdat := range []bool{false, true} {
		t.Run(fmt.Sprint("bdat=", bdat), func(t *testing.T) {
			srv, target := startSink(t, server.Config{MaxRecipients: 1})
			cfg := testConfig(target)
			cfg.Recipients, cfg.Messages, cfg.BDAT = 2, 80, bdat
			res := mustRun(t, cfg)
			checkAccounting(t, res)
			tot := res.Totals
			if tot.Messages != 80 || tot.Delivered != 80 || tot.Failed != 0 || tot.Recipients != 80 {
				t.Errorf("totals %+v", tot)
			}
			wantCounts(t, "rcpt replies", replies(res, "rcpt"), map[string]int64{"250 2.1.5": 80, "452 4.5.3": 80})
			if st := srv.Stats(); st.Messages != 80 || st.Recipients != 80 || st.Replies[452] != 80 {
				t.Errorf("sink stats %+v", st)
			}
		})
	}
}

// A server that refuses every recipient: every message fails, each needs an RSET, and nothing
// is counted as delivered.
func TestRunAllRecipientsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"pipelined", func(*Config) {}},
		{"lockstep", func(c *Config) { c.Pipelining = pipeline.Off }},
		{"pipelined BDAT", func(c *Config) { c.BDAT = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePeer{onRcpt: func(*peerSession) string { return "550 5.1.1 no such user" }}
			cfg := testConfig(startPeer(t, p))
			cfg.Recipients, cfg.Messages, cfg.Sessions = 2, 40, 3
			tc.mod(&cfg)
			res := mustRun(t, cfg)
			checkAccounting(t, res)
			tot := res.Totals
			if tot.Messages != 40 || tot.Delivered != 0 || tot.Failed != 40 || tot.Recipients != 0 || tot.Bytes != 0 || tot.Errors != 0 {
				t.Errorf("totals %+v", tot)
			}
			wantCounts(t, "mail replies", replies(res, "mail"), map[string]int64{"250 2.1.0": 40})
			wantCounts(t, "rcpt replies", replies(res, "rcpt"), map[string]int64{"550 5.1.1": 80})
			wantCounts(t, "rset replies", replies(res, "rset"), map[string]int64{"250 2.0.0": 40})
			switch {
			case cfg.Pipelining == pipeline.Off:
				if res.Phase("data") != nil || res.Phase("bdat") != nil {
					t.Error("DATA or BDAT sent with no recipient accepted")
				}
			case cfg.BDAT:
				wantCounts(t, "bdat replies", replies(res, "bdat"), map[string]int64{"554 5.5.1": 40})
			default:
				wantCounts(t, "data replies", replies(res, "data"), map[string]int64{"554 5.5.1": 40})
			}
			if res.Phase("body") != nil || p.delivered.Load() != 0 {
				t.Errorf("a message body was sent: body phase %+v", res.Phase("body"))
			}
			if count(res, "txn") != 40 {
				t.Errorf("txn count %d: refused transactions end with a reply too", count(res, "txn"))
			}
		})
	}
}

// A server that says 421 to the third MAIL of every connection: the session reconnects, the
// message counts as failed, and no QUIT goes to a closing server.
func TestRun421Reconnects(t *testing.T) {
	p := &fakePeer{onMail: func(s *peerSession) string {
		if s.mails == 3 {
			return "421 4.3.2 closing"
		}
		return ""
	}}
	cfg := testConfig(startPeer(t, p))
	cfg.Messages, cfg.Sessions = 60, 3
	res := mustRun(t, cfg)
	checkAccounting(t, res)
	tot := res.Totals
	mail := replies(res, "mail")
	closing := mail["421 4.3.2"]
	if tot.Messages != 60 || closing < 15 || tot.Failed != closing || tot.Delivered != mail["250 2.1.0"] || tot.Errors != 0 {
		t.Errorf("totals %+v, mail replies %v", tot, mail)
	}
	if count(res, "rcpt") != tot.Delivered || count(res, "body") != tot.Delivered {
		t.Errorf("rcpt %d body %d for %d delivered: nothing after a 421 is counted", count(res, "rcpt"), count(res, "body"), tot.Delivered)
	}
	if tot.Sessions < closing || count(res, "quit") != tot.Sessions-closing || count(res, "session") != tot.Sessions {
		t.Errorf("%d sessions, %d QUITs, %d session samples, %d closed by 421", tot.Sessions, count(res, "quit"),
			count(res, "session"), closing)
	}
	if p.delivered.Load() != tot.Delivered {
		t.Errorf("the server took %d messages, the run says %d", p.delivered.Load(), tot.Delivered)
	}
}

// A server that drops the connection instead of answering some messages: each is a failure
// with an error at its step, and the session reconnects.
func TestRunConnectionDropped(t *testing.T) {
	for _, tc := range []struct {
		name, step string
		bdat       bool
	}{{"DATA", "body", false}, {"BDAT", "bdat", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePeer{onData: func(s *peerSession) string {
				if s.messages%4 == 0 {
					return hookClose
				}
				return ""
			}}
			cfg := testConfig(startPeer(t, p))
			cfg.Messages, cfg.Sessions, cfg.BDAT = 60, 3, tc.bdat
			res := mustRun(t, cfg)
			checkAccounting(t, res)
			tot := res.Totals
			dropped := errorCounts(res, tc.step)["closed"]
			if dropped < 10 || tot.Failed != dropped || tot.Errors != dropped || tot.Delivered != 60-dropped {
				t.Errorf("totals %+v, %s errors %v", tot, tc.step, errorCounts(res, tc.step))
			}
			if len(errorCounts(res, tc.step)) != 1 {
				t.Errorf("%s errors %v", tc.step, errorCounts(res, tc.step))
			}
			if count(res, tc.step) != tot.Delivered || count(res, "txn") != tot.Delivered {
				t.Errorf("%s count %d, txn count %d: only answered messages are timed", tc.step, count(res, tc.step), count(res, "txn"))
			}
			if p.delivered.Load() != tot.Delivered || count(res, "quit") != tot.Sessions-dropped {
				t.Errorf("server delivered %d; %d sessions, %d QUITs", p.delivered.Load(), tot.Sessions, count(res, "quit"))
			}
		})
	}
}

// From "<>" sends the null reverse-path.
func TestRunNullSender(t *testing.T) {
	srv, target := startSink(t, server.Config{})
	cfg := testConfig(target)
	cfg.From, cfg.Messages = "<>", 30
	res := mustRun(t, cfg)
	checkSinkRun(t, res, srv, sinkRun{messages: 30, recipients: 1, sessions: cfg.Sessions})

	p := &fakePeer{}
	cfg = testConfig(startPeer(t, p))
	cfg.From, cfg.Messages = "<>", 10
	mustRun(t, cfg)
	lines := p.mailLines()
	if len(lines) != 10 {
		t.Fatalf("%d MAIL commands", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "MAIL FROM:<> SIZE=") {
			t.Errorf("MAIL line %q", l)
		}
	}
}

// Every message number is used once: From carries it, recipients are numbered across the run,
// and the trace header says it.
func TestRunNumbering(t *testing.T) {
	p := &fakePeer{}
	cfg := testConfig(startPeer(t, p))
	cfg.Messages, cfg.Sessions, cfg.Recipients, cfg.BDAT = 50, 5, 1, true // BDAT: the first data line is the header
	cfg.From, cfg.RunID = "bounce-{n}@example.com", "testrun"
	res := mustRun(t, cfg)
	if res.Totals.Delivered != 50 || res.RunID != "testrun" {
		t.Fatalf("totals %+v run id %q", res.Totals, res.RunID)
	}
	re := regexp.MustCompile(`^MAIL FROM:<bounce-(\d+)@example\.com> SIZE=\d+$`)
	seen := map[int]bool{}
	for _, l := range p.mailLines() {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("MAIL line %q", l)
		}
		n, _ := strconv.Atoi(m[1])
		if seen[n] || n < 0 || n >= 50 {
			t.Errorf("message number %d twice or out of range", n)
		}
		seen[n] = true
	}
	if len(seen) != 50 {
		t.Errorf("%d distinct message numbers, want 50", len(seen))
	}
	p.mu.Lock()
	heads := append([]string(nil), p.heads...)
	p.mu.Unlock()
	re = regexp.MustCompile(`^Message-ID: <(\d+)\.testrun@smtpbench\.localhost>$`)
	ids := map[string]bool{}
	for _, h := range heads {
		m := re.FindStringSubmatch(h)
		if m == nil || ids[m[1]] {
			t.Errorf("first header line %q", h)
			continue
		}
		ids[m[1]] = true
	}
	if len(ids) != 50 {
		t.Errorf("%d distinct Message-IDs", len(ids))
	}
}

// Abort ends the grace period at once: the messages in flight fail with "aborted at stop".
func TestRunAbort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration
		abort bool
	}{{"abort", 20 * time.Second, true}, {"grace expires", 300 * time.Millisecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePeer{onMail: func(*peerSession) string { return hookHang }}
			cfg := testConfig(startPeer(t, p))
			cfg.Messages, cfg.Sessions, cfg.Grace = 0, 2, tc.grace
			cfg.Timeouts.All(20 * time.Second) // only the stop can end these transactions
			abort := make(chan struct{})
			cfg.Abort = abort
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := runAsync(ctx, cfg)
			waitUntil(t, "both sessions in a transaction that will never be answered", func() bool {
				return len(p.mailLines()) >= 2
			})
			cancel()
			if tc.abort {
				select {
				case <-done:
					t.Fatal("Run returned before the grace period or the abort")
				case <-time.After(100 * time.Millisecond):
				}
				close(abort)
			}
			res := wait(t, done, 5*time.Second)
			checkAccounting(t, res)
			if res.StopReason != StopInterrupted {
				t.Errorf("stop reason %q", res.StopReason)
			}
			tot := res.Totals
			if tot.Messages != 2 || tot.Failed != 2 || tot.Delivered != 0 || tot.Sessions != 2 {
				t.Errorf("totals %+v", tot)
			}
			wantCounts(t, "mail errors", errorCounts(res, "mail"), map[string]int64{"aborted at stop": 2})
			if res.Phase("quit") != nil {
				t.Error("QUIT on an aborted connection")
			}
		})
	}
}

// OnInterval sees every interval's recorder; together they are the run.
func TestRunOnInterval(t *testing.T) {
	srv, target := startSink(t, server.Config{})
	cfg := testConfig(target)
	var mu sync.Mutex
	var calls int
	var seen results.Counts
	var last time.Time
	cfg.OnInterval = func(rec *results.Recorder, from, to time.Time) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		seen.Messages += rec.Counts.Messages
		seen.Delivered += rec.Counts.Delivered
		seen.Sessions += rec.Counts.Sessions
		if to.Before(from) || from.Before(last) {
			t.Errorf("interval %v to %v after one that ended %v", from, to, last)
		}
		last = to
	}
	res := mustRun(t, cfg)
	checkSinkRun(t, res, srv, sinkRun{messages: 100, recipients: 1, sessions: cfg.Sessions})
	mu.Lock()
	defer mu.Unlock()
	if calls != len(res.Timeline) || seen.Messages != res.Totals.Messages || seen.Delivered != res.Totals.Delivered ||
		seen.Sessions != res.Totals.Sessions {
		t.Errorf("%d calls for %d intervals; they saw %+v, the run %+v", calls, len(res.Timeline), seen, res.Totals)
	}
}

func TestValidate(t *testing.T) {
	good := Config{Target: pipeline.Target{Network: "tcp", Address: "127.0.0.1:25"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("the zero config with a target: %v", err)
	}
	for _, tc := range []struct {
		field string
		mod   func(*Config)
	}{
		{"Target", func(c *Config) { c.Target = pipeline.Target{} }},
		{"Target", func(c *Config) { c.Target.Network = "udp" }},
		{"Sessions", func(c *Config) { c.Sessions = -1 }},
		{"Sessions", func(c *Config) { c.Sessions = 1_000_001 }},
		{"Messages", func(c *Config) { c.Messages = -1 }},
		{"Duration", func(c *Config) { c.Duration = -time.Second }},
		{"PerConn", func(c *Config) { c.PerConn = -1 }},
		{"Size", func(c *Config) { c.Size = 1 }},
		{"Size", func(c *Config) { c.Size = -5 }},
		{"Size", func(c *Config) { c.Size = 1<<30 + 1 }},
		{"Recipients", func(c *Config) { c.Recipients = -1 }},
		{"Recipients", func(c *Config) { c.Recipients = 100_001 }},
		{"Grace", func(c *Config) { c.Grace = -time.Second }},
		{"From", func(c *Config) { c.From = "no-at-sign" }},
		{"From", func(c *Config) { c.From = "<a@example.com>" }},
		{"From", func(c *Config) { c.From = "a b@example.com" }},
		{"From", func(c *Config) { c.From = "a@" }},
		{"From", func(c *Config) { c.From = "@example.com" }},
		{"From", func(c *Config) { c.From = "a{m}@example.com" }},
		{"To", func(c *Config) { c.To = "<>" }},
		{"To", func(c *Config) { c.To = "rcpt{n@example.org" }},
		{"To", func(c *Config) { c.To = "rcpt\r\n@example.org" }},
		{"LocalName", func(c *Config) { c.LocalName = "bad name" }},
		{"LocalName", func(c *Config) { c.LocalName = strings.Repeat("a", 256) }},
		{"LocalName", func(c *Config) { c.LocalName = "caf\xc3\xa9" }},
	} {
		c := good
		tc.mod(&c)
		err := c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: error %v, want one naming %s", c, err, tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("error %q does not name %s", err, tc.field)
		}
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("Run accepted %+v", c)
		}
	}
	// Every bad field is named, not just the first.
	c := good
	c.Sessions, c.Size, c.To = -1, 1, "<>"
	err := c.Validate()
	var named []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if errors.As(e, &fe) {
			named = append(named, fe.Field)
		}
	}
	if !slices.Equal(named, []string{"Sessions", "Size", "To"}) {
		t.Errorf("fields named %v in %v", named, err)
	}
	// Valid edge values.
	for _, mod := range []func(*Config){
		func(c *Config) { c.Size = 2 },
		func(c *Config) { c.Size = 1 << 30 },
		func(c *Config) { c.Recipients = 100_000 },
		func(c *Config) { c.Sessions = 1_000_000 },
		func(c *Config) { c.From = "<>" },
		func(c *Config) { c.From = "{n}@{n}.example" },
		func(c *Config) { c.Target = pipeline.Target{Network: "unix", Address: "/run/s.sock"} },
	} {
		c := good
		mod(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	d := Config{}.WithDefaults()
	if d.Sessions != DefaultSessions || d.Duration != DefaultDuration || d.Size != DefaultSize ||
		d.Recipients != DefaultRecipients || d.From != DefaultFrom || d.To != DefaultTo ||
		d.LocalName != "smtpbench.localhost" || d.Grace != DefaultGrace || d.Seed != 1 || d.Messages != 0 || d.PerConn != 0 {
		t.Errorf("defaults %+v", d)
	}
	if d := (Config{Messages: 5}).WithDefaults(); d.Duration != 0 {
		t.Errorf("a message count must not get the default duration: %v", d.Duration)
	}
	set := Config{Sessions: 3, Size: 10, Recipients: 2, From: "a@b", To: "c@d", LocalName: "x", Grace: time.Second, Seed: 9, Duration: time.Minute}
	if got := set.WithDefaults(); got.Sessions != 3 || got.Size != 10 || got.Recipients != 2 || got.From != "a@b" ||
		got.To != "c@d" || got.LocalName != "x" || got.Grace != time.Second || got.Seed != 9 || got.Duration != time.Minute {
		t.Errorf("set fields changed: %+v", got)
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		cfg             Config
		pipelined, bdat bool
		want            string
	}{
		{Config{}, true, false, "10 sessions, 1 KiB body, 1 recipient, PIPELINING+DATA"},
		{Config{Sessions: 3, Size: 100, Recipients: 2}, false, false, "3 sessions, 100 B body, 2 recipients, DATA"},
		{Config{Size: 2 << 20}, true, true, "10 sessions, 2 MiB body, 1 recipient, PIPELINING+BDAT"},
		{Config{PerConn: 5, Size: 1500}, false, true, "10 sessions, 1500 B body, 1 recipient, BDAT, 5 per connection"},
	} {
		if got := tc.cfg.Describe(tc.pipelined, tc.bdat); got != tc.want {
			t.Errorf("Describe = %q, want %q", got, tc.want)
		}
	}
}

func TestCompose(t *testing.T) {
	cfg := Config{From: "s{n}@example.com", To: "r{n}@example.org", Recipients: 3, RunID: "R1"}.WithDefaults()
	var fixed pipeline.Message
	fixed.SetBody(fixedPart(cfg.From, 100, 1, time.Unix(0, 0), cfg.RunID))
	c := newComposer(&cfg, &fixed)
	m := c.compose(7)
	if string(m.From) != "s7@example.com" {
		t.Errorf("From %q", m.From)
	}
	var to []string
	for _, r := range m.To {
		to = append(to, string(r))
	}
	if !slices.Equal(to, []string{"r21@example.org", "r22@example.org", "r23@example.org"}) {
		t.Errorf("To %q", to)
	}
	wantHeader := "Message-ID: <7.R1@smtpbench.localhost>\r\nX-Smtpbench-Trace: run=R1 seq=7\r\nTo: <r21@example.org>\r\n"
	if string(m.Header) != wantHeader {
		t.Errorf("header %q, want %q", m.Header, wantHeader)
	}
	if !bytes.Equal(m.Body(), fixed.Body()) || m.Size() != len(wantHeader)+len(fixed.Body()) {
		t.Errorf("body not shared: size %d", m.Size())
	}
	// A later message with more digits does not disturb the recipients.
	m = c.compose(123456789)
	if string(m.From) != "s123456789@example.com" || string(m.To[0]) != "r370370367@example.org" ||
		string(m.To[2]) != "r370370369@example.org" {
		t.Errorf("From %q To %q", m.From, m.To)
	}
	if c := newComposer(&Config{From: "<>", To: "x@y", Recipients: 1}, &fixed); len(c.compose(0).From) != 0 {
		t.Error("the null sender has an address")
	}
	if got := string(newComposer(&Config{From: "a@b", To: "x@y", Recipients: 1}, &fixed).compose(0).To[0]); got != "x@y" {
		t.Errorf("a template without {n}: %q", got)
	}
}

func TestBuildBody(t *testing.T) {
	for _, size := range []int{2, 3, 4, 10, 79, 80, 81, 100, 1024, 4096, 100_000} {
		b := buildBody(size, 1)
		if len(b) != size {
			t.Errorf("size %d: got %d octets", size, len(b))
			continue
		}
		if !bytes.HasSuffix(b, []byte("\r\n")) {
			t.Errorf("size %d: does not end with CRLF: %q", size, b[max(0, size-10):])
		}
		lines := 0
		for line := range bytes.Lines(b) {
			lines++
			body, ok := bytes.CutSuffix(line, []byte("\r\n"))
			if !ok || bytes.ContainsAny(body, "\r\n") {
				t.Errorf("size %d: line %q is not a CRLF line", size, line)
				break
			}
			if len(body) > 78 {
				t.Errorf("size %d: line of %d octets, more than 78: %q", size, len(body), body)
				break
			}
		}
		if size >= 4096 && !bytes.Contains(b, []byte("\r\n.")) {
			t.Errorf("size %d: no line starts with a dot", size)
		}
	}
	if !bytes.Equal(buildBody(5000, 7), buildBody(5000, 7)) {
		t.Error("the body is not reproducible from its seed")
	}
	if bytes.Equal(buildBody(5000, 7), buildBody(5000, 8)) {
		t.Error("different seeds give the same body")
	}
}

func TestFixedPart(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := string(fixedPart("<>", 100, 1, start, "RUN"))
	for _, want := range []string{"From: <MAILER-DAEMON@example.com>\r\n", "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n",
		"Subject: smtpbench run RUN\r\n", "MIME-Version: 1.0\r\n"} {
		if !strings.Contains(p, want) {
			t.Errorf("fixed part lacks %q:\n%s", want, p)
		}
	}
	head, body, ok := strings.Cut(p, "\r\n\r\n")
	if !ok || len(body) != 100 || strings.Contains(head, "\n\n") {
		t.Errorf("headers %q, body of %d octets", head, len(body))
	}
	if p := string(fixedPart("a@example.com", 10, 1, start, "R")); !strings.HasPrefix(p, "From: <a@example.com>\r\n") {
		t.Errorf("fixed part %q", p)
	}
}
