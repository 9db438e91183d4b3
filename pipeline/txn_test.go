package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wantTrace is what a test expects of a Trace.
type wantTrace struct {
	mail      Reply
	rcpt      []Reply // one per recipient tried; a zero Reply is one that never came
	data      Reply
	body      Reply
	bdat      Reply
	accepted  int
	final     Reply
	delivered bool
	reset     bool // NeedsReset
	pipelined bool
	bdatUsed  bool
}

func checkTrace(tb testing.TB, tr *Trace, w wantTrace) {
	tb.Helper()
	if tr.Mail.Reply != w.mail {
		tb.Errorf("MAIL reply %v, want %v", tr.Mail.Reply, w.mail)
	}
	if len(tr.Rcpt) != len(w.rcpt) {
		tb.Errorf("%d RCPT timings, want %d", len(tr.Rcpt), len(w.rcpt))
	} else {
		for i := range w.rcpt {
			if tr.Rcpt[i].Reply != w.rcpt[i] {
				tb.Errorf("RCPT %d reply %v, want %v", i, tr.Rcpt[i].Reply, w.rcpt[i])
			}
			if (tr.Rcpt[i].Done == 0) != w.rcpt[i].IsZero() {
				tb.Errorf("RCPT %d: Done %d with reply %v", i, tr.Rcpt[i].Done, w.rcpt[i])
			}
		}
	}
	if tr.Data.Reply != w.data {
		tb.Errorf("DATA reply %v, want %v", tr.Data.Reply, w.data)
	}
	if tr.Body.Reply != w.body {
		tb.Errorf("end-of-data reply %v, want %v", tr.Body.Reply, w.body)
	}
	if tr.Bdat.Reply != w.bdat {
		tb.Errorf("BDAT reply %v, want %v", tr.Bdat.Reply, w.bdat)
	}
	for name, tm := range map[string]Timing{"mail": tr.Mail, "data": tr.Data, "body": tr.Body, "bdat": tr.Bdat} {
		if tm.Reply.IsZero() != (tm.Done == 0) {
			tb.Errorf("%s: reply %v with Done %d", name, tm.Reply, tm.Done)
		}
		if tm.Done != 0 && tm.Done < tm.Sent {
			tb.Errorf("%s: Done %d before Sent %d", name, tm.Done, tm.Sent)
		}
	}
	if tr.Accepted != w.accepted {
		tb.Errorf("Accepted %d, want %d", tr.Accepted, w.accepted)
	}
	if tr.Final != w.final {
		tb.Errorf("Final %v, want %v", tr.Final, w.final)
	}
	if tr.Delivered != w.delivered {
		tb.Errorf("Delivered %v, want %v", tr.Delivered, w.delivered)
	}
	if tr.NeedsReset != w.reset {
		tb.Errorf("NeedsReset %v, want %v", tr.NeedsReset, w.reset)
	}
	if tr.Pipelined != w.pipelined {
		tb.Errorf("Pipelined %v, want %v", tr.Pipelined, w.pipelined)
	}
	if tr.BDAT != w.bdatUsed {
		tb.Errorf("BDAT %v, want %v", tr.BDAT, w.bdatUsed)
	}
	if tr.Start == 0 || tr.End < tr.Start {
		tb.Errorf("Start %d End %d", tr.Start, tr.End)
	}
}

var (
	r250mail = reply(250, 2, 1, 0)
	r250rcpt = reply(250, 2, 1, 5)
	r250ok   = reply(250, 2, 0, 0)
	r354     = reply(354)
)

const (
	mailOK   = "250 2.1.0 Ok\r\n"
	rcptOK   = "250 2.1.5 Ok\r\n"
	startOK  = "354 End data with <CR><LF>.<CR><LF>\r\n"
	queuedOK = "250 2.0.0 Ok: queued as 1\r\n"
	noopOK   = "250 2.0.0 noop-marker\r\n"
)

// noopInStep checks that the connection is in step with the server after a transaction: NOOP
// gets the reply the script gives it, not one left over from the transaction.
func noopInStep(tb testing.TB, c *Conn) {
	tb.Helper()
	r, err := c.Noop()
	if err != nil || r != r250ok || string(c.LastText()) != "noop-marker" {
		tb.Errorf("NOOP after the transaction: %v %v %q (the client is out of step)", r, err, c.LastText())
	}
}

// With PIPELINING, MAIL, every RCPT and DATA go in one write, before any reply; the body follows
// only after 354.
func TestPipelinedSend(t *testing.T) {
	m := msg(3)
	f := startFake(t, greet(ehloPipe),
		pipelinedGroup(3), quiet(50*time.Millisecond),
		send(mailOK+rcptOK+rcptOK+rcptOK+startOK), readData(), quiet(20*time.Millisecond), send(queuedOK),
		lockstep("NOOP\r\n", noopOK), clientCloses())
	c := openFake(t, f, Options{})
	if !c.Pipelining() {
		t.Fatal("not pipelining")
	}
	var tr Trace
	if err := c.Send(m, &tr); err != nil {
		t.Fatal(err)
	}
	checkTrace(t, &tr, wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, r250rcpt, r250rcpt}, data: r354,
		body: r250ok, accepted: 3, final: r250ok, delivered: true, pipelined: true})
	noopInStep(t, c)
	f.finish(c)

	group := fmt.Sprintf("MAIL FROM:<s@example.com> SIZE=%d\r\nRCPT TO:<r1@example.org>\r\nRCPT TO:<r2@example.org>\r\n"+
		"RCPT TO:<r3@example.org>\r\nDATA\r\n", m.Size())
	if got := f.readWith("MAIL FROM"); string(got) != group {
		t.Errorf("the read that carried MAIL held %q, want the whole group %q", got, group)
	}
	if data := f.gotData(); len(data) != 1 || string(data[0]) != "X-Seq: 1\r\nSubject: t\r\n\r\nhello\r\n" {
		t.Errorf("message data %q", data)
	}

	// Every command of the group was written at one instant; replies came in order.
	if tr.Start != tr.Mail.Sent || tr.Data.Sent != tr.Mail.Sent {
		t.Errorf("Start %d, MAIL sent %d, DATA sent %d: one write", tr.Start, tr.Mail.Sent, tr.Data.Sent)
	}
	prev := tr.Mail.Done
	for i, rt := range tr.Rcpt {
		if rt.Sent != tr.Mail.Sent || rt.Done < prev || rt.Duration() <= 0 {
			t.Errorf("RCPT %d timing %+v (MAIL %+v)", i, rt, tr.Mail)
		}
		prev = rt.Done
	}
	if tr.Data.Done < prev || tr.Body.Sent < tr.Data.Done || tr.Body.Done < tr.Body.Sent || tr.End < tr.Body.Done {
		t.Errorf("timings out of order: %+v", tr)
	}
	if tr.Mail.Duration() <= 0 || tr.Body.Duration() <= 0 {
		t.Errorf("durations %d %d", tr.Mail.Duration(), tr.Body.Duration())
	}
}

// Without PIPELINING (or with it off) each command waits for the reply to the one before.
func TestLockstepSend(t *testing.T) {
	for _, tc := range []struct {
		name string
		ehlo string
		opts Options
	}{
		{"not offered", ehloPlain, Options{}},
		{"off", ehloPipe, Options{Pipelining: Off}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := msg(2)
			f := startFake(t, greet(tc.ehlo),
				lockstep(fmt.Sprintf("MAIL FROM:<s@example.com> SIZE=%d\r\n", m.Size()), mailOK),
				lockstep("RCPT TO:<r1@example.org>\r\n", rcptOK),
				lockstep("RCPT TO:<r2@example.org>\r\n", rcptOK),
				lockstep("DATA\r\n", startOK), readData(), send(queuedOK),
				lockstep("NOOP\r\n", noopOK), clientCloses())
			c := openFake(t, f, tc.opts)
			var tr Trace
			if err := c.Send(m, &tr); err != nil {
				t.Fatal(err)
			}
			checkTrace(t, &tr, wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, r250rcpt}, data: r354,
				body: r250ok, accepted: 2, final: r250ok, delivered: true})
			if tr.Start != tr.Mail.Sent || tr.Rcpt[0].Sent < tr.Mail.Done || tr.Rcpt[1].Sent < tr.Rcpt[0].Done ||
				tr.Data.Sent < tr.Rcpt[1].Done || tr.Body.Sent < tr.Data.Done || tr.End < tr.Body.Done {
				t.Errorf("each command must be sent after the reply before it: %+v", tr)
			}
			noopInStep(t, c)
			f.finish(c)
		})
	}
}

// A pipelined group's replies are all read, in order, whatever fails first; the body goes only
// after 354 and only when a recipient was accepted; the connection stays in step.
func TestPipelinedRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rcpts    int
		replies  string     // to MAIL, every RCPT and DATA
		after354 []fakeStep // when DATA gets 354
		want     wantTrace
	}{
		{name: "MAIL refused", rcpts: 2,
			replies: "550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n",
			want: wantTrace{mail: reply(550, 5, 7, 1), rcpt: []Reply{reply(503, 5, 5, 1), reply(503, 5, 5, 1)},
				data: reply(503, 5, 5, 1), final: reply(550, 5, 7, 1)}},
		{name: "MAIL 4xx", rcpts: 1,
			replies: "451 4.3.0 try later\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n",
			want: wantTrace{mail: reply(451, 4, 3, 0), rcpt: []Reply{reply(503, 5, 5, 1)},
				data: reply(503, 5, 5, 1), final: reply(451, 4, 3, 0)}},
		{name: "one RCPT of three refused", rcpts: 3,
			replies:  mailOK + rcptOK + "550 5.1.1 no such user\r\n" + rcptOK + startOK,
			after354: []fakeStep{readData(), send(queuedOK)},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, reply(550, 5, 1, 1), r250rcpt}, data: r354,
				body: r250ok, accepted: 2, final: r250ok, delivered: true}},
		{name: "every RCPT refused", rcpts: 3,
			replies: mailOK + "550 5.1.1 a\r\n450 4.2.1 b\r\n" + "452 4.5.3 c\r\n" + "554 5.5.1 no valid recipients\r\n",
			want: wantTrace{mail: r250mail, rcpt: []Reply{reply(550, 5, 1, 1), reply(450, 4, 2, 1), reply(452, 4, 5, 3)},
				data: reply(554, 5, 5, 1), final: reply(452, 4, 5, 3), reset: true}},
		{name: "354 with no recipient accepted", rcpts: 2,
			replies:  mailOK + "550 5.1.1 a\r\n550 5.1.1 b\r\n" + startOK,
			after354: []fakeStep{readData(), send("554 5.5.1 no valid recipients\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{reply(550, 5, 1, 1), reply(550, 5, 1, 1)}, data: r354,
				body: reply(554, 5, 5, 1), final: reply(550, 5, 1, 1)}},
		{name: "354 with no recipient accepted, then 250", rcpts: 1,
			replies:  mailOK + "550 5.1.1 a\r\n" + startOK,
			after354: []fakeStep{readData(), send(queuedOK)},
			want: wantTrace{mail: r250mail, rcpt: []Reply{reply(550, 5, 1, 1)}, data: r354, body: r250ok,
				final: reply(550, 5, 1, 1)}},
		{name: "354 after MAIL refused", rcpts: 1,
			replies:  "550 5.7.1 no\r\n" + rcptOK + startOK,
			after354: []fakeStep{readData(), send("554 5.5.1 no\r\n")},
			want: wantTrace{mail: reply(550, 5, 7, 1), rcpt: []Reply{r250rcpt}, data: r354, accepted: 1,
				body: reply(554, 5, 5, 1), final: reply(550, 5, 7, 1)}},
		{name: "DATA refused", rcpts: 1,
			replies: mailOK + rcptOK + "451 4.3.0 not now\r\n",
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt}, data: reply(451, 4, 3, 0), accepted: 1,
				final: reply(451, 4, 3, 0), reset: true}},
		{name: "message refused, 4xx", rcpts: 1,
			replies:  mailOK + rcptOK + startOK,
			after354: []fakeStep{readData(), send("452 4.3.1 insufficient storage\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt}, data: r354, body: reply(452, 4, 3, 1),
				accepted: 1, final: reply(452, 4, 3, 1)}},
		{name: "message refused, 5xx", rcpts: 1,
			replies:  mailOK + rcptOK + startOK,
			after354: []fakeStep{readData(), send("554 5.6.0 bad content\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt}, data: r354, body: reply(554, 5, 6, 0),
				accepted: 1, final: reply(554, 5, 6, 0)}},
		{name: "no enhanced codes", rcpts: 2,
			replies:  "250 sender ok\r\n250 rcpt ok\r\n250 rcpt ok\r\n354 go\r\n",
			after354: []fakeStep{readData(), send("250 queued\r\n")},
			want: wantTrace{mail: reply(250), rcpt: []Reply{reply(250), reply(250)}, data: r354, body: reply(250),
				accepted: 2, final: reply(250), delivered: true}},
		{name: "enhanced class mismatch", rcpts: 1,
			replies:  "250 5.1.1 odd\r\n250 2.1.5 ok\r\n354 3.0.0 go\r\n",
			after354: []fakeStep{readData(), send("250 4.0.0 odd\r\n")},
			want: wantTrace{mail: reply(250), rcpt: []Reply{r250rcpt}, data: reply(354, 3, 0, 0), body: reply(250),
				accepted: 1, final: reply(250), delivered: true}},
		{name: "multi-line replies", rcpts: 2,
			replies: "250-2.1.0 first\r\n250-2.1.0 second\r\n250 2.1.0 third\r\n" + "250-2.1.5 a\r\n250 2.1.5 b\r\n" +
				"550-5.1.1 no\r\n550 5.1.1 such user\r\n" + "354-go\r\n354 ahead\r\n",
			after354: []fakeStep{readData(), send("250-2.0.0 queued\r\n250 2.0.0 as 2\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, reply(550, 5, 1, 1)}, data: r354, body: r250ok,
				accepted: 1, final: r250ok, delivered: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := msg(tc.rcpts)
			script := []any{greet(ehloPipe), pipelinedGroup(tc.rcpts), quiet(30 * time.Millisecond), send(tc.replies)}
			// Without 354, the next line must be RSET or NOOP: no body, no end of data.
			script = append(script, tc.after354)
			if tc.want.reset {
				script = append(script, lockstep("RSET\r\n", "250 2.0.0 Ok\r\n"))
			}
			script = append(script, lockstep("NOOP\r\n", noopOK), clientCloses())
			f := startFake(t, script...)
			c := openFake(t, f, Options{})
			var tr Trace
			if err := c.Send(m, &tr); err != nil {
				t.Fatal(err)
			}
			tc.want.pipelined = true
			checkTrace(t, &tr, tc.want)
			if !c.Usable() {
				t.Error("not usable after refusals")
			}
			if tr.NeedsReset {
				if r, err := c.Reset(); err != nil || !r.OK() {
					t.Fatal(r, err)
				}
			}
			noopInStep(t, c)
			f.finish(c)

			if got := f.readWith("MAIL FROM"); !bytes.HasSuffix(got, []byte("DATA\r\n")) ||
				bytes.Count(got, []byte("RCPT TO:")) != tc.rcpts {
				t.Errorf("the group did not arrive in one read: %q", got)
			}
			data := f.gotData()
			switch {
			case tc.after354 == nil:
				if len(data) != 0 {
					t.Errorf("message data sent without 354: %q", data)
				}
			case tc.want.accepted == 0 || !tc.want.mail.OK():
				// RFC 2920 §3.1: nothing to deliver, so the data is empty: just ".\r\n".
				if len(data) != 1 || len(data[0]) != 0 {
					t.Errorf("after 354 with nothing accepted the client sent %q, want only \".\\r\\n\"", data)
				}
				// Its reply is kept in Body, so every reply the server gave is counted, but
				// it carries no message: Final stays the refusal and nothing is delivered.
				if tr.Body.Done == 0 || tr.Delivered {
					t.Errorf("the reply to the empty message: body %+v, delivered %v", tr.Body, tr.Delivered)
				}
			default:
				want := string(m.Header) + string(m.Body())
				if len(data) != 1 || string(data[0]) != want {
					t.Errorf("message data %q, want %q", data, want)
				}
			}
		})
	}
}

// The body goes only after 354, even when 354 is slow to come.
func TestBodyWaitsFor354(t *testing.T) {
	for _, pipelining := range []Mode{Auto, Off} {
		t.Run(pipelining.String(), func(t *testing.T) {
			var script []any
			script = append(script, greet(ehloPipe))
			if pipelining == Auto {
				script = append(script, pipelinedGroup(1), send(mailOK+rcptOK))
			} else {
				script = append(script, lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK), alone("DATA\r\n"))
			}
			script = append(script, quiet(150*time.Millisecond), send(startOK), readData(), send(queuedOK), clientCloses())
			f := startFake(t, script...)
			c := openFake(t, f, Options{Pipelining: pipelining})
			var tr Trace
			if err := c.Send(msg(1), &tr); err != nil || !tr.Delivered {
				t.Fatalf("%v %+v", err, tr)
			}
			f.finish(c)
		})
	}
}

func TestLockstepRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rcpts  int
		script []any // after EHLO
		want   wantTrace
	}{
		{name: "MAIL refused", rcpts: 2, script: []any{lockstep("MAIL ", "550 5.7.1 no\r\n")},
			want: wantTrace{mail: reply(550, 5, 7, 1), final: reply(550, 5, 7, 1)}},
		{name: "MAIL 421", rcpts: 2, script: []any{lockstep("MAIL ", "421 4.3.2 bye\r\n")},
			want: wantTrace{mail: reply(421, 4, 3, 2), final: reply(421, 4, 3, 2)}},
		{name: "one RCPT refused", rcpts: 2, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT TO:<r1@", "550 5.1.1 no\r\n"),
			lockstep("RCPT TO:<r2@", rcptOK), lockstep("DATA\r\n", startOK), readData(), send(queuedOK)},
			want: wantTrace{mail: r250mail, rcpt: []Reply{reply(550, 5, 1, 1), r250rcpt}, data: r354, body: r250ok,
				accepted: 1, final: r250ok, delivered: true}},
		{name: "every RCPT refused", rcpts: 2, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT TO:<r1@", "550 5.1.1 no\r\n"),
			lockstep("RCPT TO:<r2@", "452 4.5.3 too many\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{reply(550, 5, 1, 1), reply(452, 4, 5, 3)},
				final: reply(452, 4, 5, 3), reset: true}},
		{name: "RCPT 421 after one accepted", rcpts: 3, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT TO:<r1@", rcptOK),
			lockstep("RCPT TO:<r2@", "421 4.3.2 closing\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, reply(421, 4, 3, 2)}, accepted: 1,
				final: reply(421, 4, 3, 2)}},
		{name: "RCPT 421 first", rcpts: 2, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT TO:<r1@", "421 4.3.2 closing\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{reply(421, 4, 3, 2)}, final: reply(421, 4, 3, 2)}},
		{name: "DATA refused", rcpts: 1, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK),
			lockstep("DATA\r\n", "554 5.5.1 no\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt}, data: reply(554, 5, 5, 1), accepted: 1,
				final: reply(554, 5, 5, 1), reset: true}},
		{name: "DATA 421", rcpts: 1, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK),
			lockstep("DATA\r\n", "421 4.3.2 bye\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt}, data: reply(421, 4, 3, 2), accepted: 1,
				final: reply(421, 4, 3, 2)}},
		{name: "message refused", rcpts: 1, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK),
			lockstep("DATA\r\n", startOK), readData(), send("451 4.3.0 later\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt}, data: r354, body: reply(451, 4, 3, 0), accepted: 1,
				final: reply(451, 4, 3, 0)}},
		{name: "message 421", rcpts: 1, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK),
			lockstep("DATA\r\n", startOK), readData(), send("421 4.3.2 bye\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt}, data: r354, body: reply(421, 4, 3, 2), accepted: 1,
				final: reply(421, 4, 3, 2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closing := tc.want.final.Code == 421
			script := append([]any{greet(ehloPlain)}, tc.script...)
			if tc.want.reset {
				script = append(script, lockstep("RSET\r\n", "250 2.0.0 Ok\r\n"))
			}
			if !closing {
				script = append(script, lockstep("NOOP\r\n", noopOK))
			}
			f := startFake(t, append(script, clientCloses())...) // and nothing else
			c := openFake(t, f, Options{})
			var tr Trace
			if err := c.Send(msg(tc.rcpts), &tr); err != nil {
				t.Fatal(err)
			}
			checkTrace(t, &tr, tc.want)
			if c.Usable() == closing {
				t.Errorf("Usable %v after %v", c.Usable(), tr.Final)
			}
			if tr.NeedsReset {
				if r, err := c.Reset(); err != nil || !r.OK() {
					t.Fatal(r, err)
				}
			}
			if !closing {
				noopInStep(t, c)
			}
			f.finish(c)
		})
	}
}

// A 421 in the middle of a pipelined group: the server is closing, so the client stops reading
// (the rest will never come), reports the 421 as the transaction's end, and sends nothing more.
func TestPipelined421(t *testing.T) {
	closing := reply(421, 4, 3, 2)
	for _, tc := range []struct {
		name    string
		replies string
		after   []fakeStep // the server does not close: the client must not wait for more
		want    wantTrace
	}{
		{name: "at MAIL", replies: "421 4.3.2 closing\r\n",
			want: wantTrace{mail: closing, final: closing}},
		{name: "at the second RCPT", replies: mailOK + rcptOK + "421 4.3.2 closing\r\n",
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, closing}, accepted: 1, final: closing}},
		{name: "multi-line at the last RCPT", replies: mailOK + rcptOK + rcptOK + "421-4.3.2 closing\r\n421 4.3.2 now\r\n",
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, r250rcpt, closing}, accepted: 2, final: closing}},
		{name: "at DATA", replies: mailOK + rcptOK + rcptOK + rcptOK + "421 4.3.2 closing\r\n",
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, r250rcpt, r250rcpt}, data: closing, accepted: 3, final: closing}},
		{name: "at the end of data", replies: mailOK + rcptOK + rcptOK + rcptOK + startOK,
			after: []fakeStep{readData(), send("421 4.3.2 closing\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, r250rcpt, r250rcpt}, data: r354, body: closing,
				accepted: 3, final: closing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := []any{greet(ehloPipe), pipelinedGroup(3), send(tc.replies), tc.after, hang()}
			f := startFake(t, script...)
			c := openFake(t, f, Options{})
			var tr Trace
			start := time.Now()
			if err := c.Send(msg(3), &tr); err != nil {
				t.Fatalf("Send waited for replies after the 421: %v", err)
			}
			deadlineCheck(t, start)
			// RCPTs after the 421 were sent but never answered: they may be in the trace
			// with no reply; compare the answered ones.
			if len(tr.Rcpt) > 3 {
				t.Errorf("%d RCPT timings for 3 recipients", len(tr.Rcpt))
			}
			for i := len(tc.want.rcpt); i < len(tr.Rcpt); i++ {
				if tr.Rcpt[i].Done != 0 || !tr.Rcpt[i].Reply.IsZero() || tr.Rcpt[i].Duration() != 0 {
					t.Errorf("RCPT %d after the 421 has a reply: %+v", i, tr.Rcpt[i])
				}
			}
			tr.Rcpt = tr.Rcpt[:min(len(tr.Rcpt), len(tc.want.rcpt))]
			tc.want.pipelined = true
			checkTrace(t, &tr, tc.want)
			if c.Usable() {
				t.Error("usable after 421")
			}
			wantErr(t, c.Send(msg(1), &tr), StepMail, KindClosed)
			if _, err := c.Reset(); KindOf(err) != KindClosed {
				t.Errorf("RSET after 421: %v", err)
			}
			if _, err := c.Quit(); KindOf(err) != KindClosed {
				t.Errorf("QUIT after 421: %v", err)
			}
			f.wait() // hang returns when the client closes
			got := f.received()
			for _, s := range []string{"RSET", "QUIT", "NOOP"} {
				if bytes.Contains(got, []byte(s)) {
					t.Errorf("the client sent %s after 421: %q", s, got)
				}
			}
			if n := bytes.Count(got, []byte("MAIL FROM")); n != 1 {
				t.Errorf("%d MAIL commands, want 1", n)
			}
		})
	}
}

// A server that stops answering: the client's timeout fires at the step it waits in, the
// connection is not usable after, and the trace has no final reply.
func TestSendTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   Options
		ehlo   string
		script []any
		step   Step
		mail   Reply
	}{
		{name: "pipelined, no reply", ehlo: ehloPipe, script: []any{pipelinedGroup(2)}, step: StepMail},
		{name: "pipelined, after MAIL", ehlo: ehloPipe, script: []any{pipelinedGroup(2), send(mailOK)},
			step: StepRcpt, mail: r250mail},
		{name: "pipelined, mid-reply", ehlo: ehloPipe, script: []any{pipelinedGroup(2), send(mailOK + "250-2.1.5 a\r\n")},
			step: StepRcpt, mail: r250mail},
		{name: "pipelined, no 354", ehlo: ehloPipe, script: []any{pipelinedGroup(2), send(mailOK + rcptOK + rcptOK)},
			step: StepData, mail: r250mail},
		{name: "pipelined, end of data", ehlo: ehloPipe, script: []any{pipelinedGroup(2), send(mailOK + rcptOK + rcptOK + startOK), readData()},
			step: StepBody, mail: r250mail},
		{name: "lockstep, MAIL", ehlo: ehloPlain, script: []any{alone("MAIL ")}, step: StepMail},
		{name: "lockstep, RCPT", ehlo: ehloPlain, script: []any{lockstep("MAIL ", mailOK), alone("RCPT ")},
			step: StepRcpt, mail: r250mail},
		{name: "lockstep, DATA", ehlo: ehloPlain, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK),
			lockstep("RCPT ", rcptOK), alone("DATA\r\n")}, step: StepData, mail: r250mail},
		{name: "lockstep, end of data", ehlo: ehloPlain, script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK),
			lockstep("RCPT ", rcptOK), lockstep("DATA\r\n", startOK), readData()}, step: StepBody, mail: r250mail},
		{name: "pipelined BDAT", ehlo: ehloChunking, opts: Options{BDAT: true},
			script: []any{expect("MAIL "), expect("RCPT "), expect("RCPT "), expect("BDAT ")}, step: StepMail},
		{name: "pipelined BDAT, no chunk reply", ehlo: ehloChunking, opts: Options{BDAT: true},
			script: []any{expect("MAIL "), expect("RCPT "), expect("RCPT "), expect("BDAT "), send(mailOK + rcptOK + rcptOK)},
			step:   StepBdat, mail: r250mail},
		{name: "lockstep BDAT", ehlo: ehloChunking, opts: Options{BDAT: true, Pipelining: Off},
			script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK), lockstep("RCPT ", rcptOK), expect("BDAT ")},
			step:   StepBdat, mail: r250mail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := startFake(t, greet(tc.ehlo), tc.script, hang())
			tc.opts.Timeouts = timeoutTimeouts()
			c := openFake(t, f, tc.opts)
			var tr Trace
			start := time.Now()
			err := c.Send(msg(2), &tr)
			deadlineCheck(t, start)
			wantErr(t, err, tc.step, KindTimeout)
			if c.Usable() {
				t.Error("usable after a timeout")
			}
			if tr.Mail.Reply != tc.mail || !tr.Final.IsZero() || tr.Delivered || tr.NeedsReset {
				t.Errorf("trace after a timeout: %+v", tr)
			}
			if tr.End < tr.Start {
				t.Errorf("End %d before Start %d", tr.End, tr.Start)
			}
		})
	}
}

// The server closes the connection at various points.
func TestSendServerCloses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ehlo   string
		opts   Options
		script []any
		step   Step
		kinds  []ErrorKind // acceptable kinds
	}{
		{name: "after the group", ehlo: ehloPipe, script: []any{pipelinedGroup(1)}, step: StepMail, kinds: []ErrorKind{KindClosed}},
		{name: "mid-reply", ehlo: ehloPipe, script: []any{pipelinedGroup(1), send("250-2.1.0 a\r\n")},
			step: StepMail, kinds: []ErrorKind{KindClosed}},
		{name: "mid-line", ehlo: ehloPipe, script: []any{pipelinedGroup(1), send(mailOK + "250 2.1")},
			step: StepRcpt, kinds: []ErrorKind{KindClosed}},
		{name: "after 354", ehlo: ehloPipe, script: []any{pipelinedGroup(1), send(mailOK + rcptOK + startOK)},
			step: StepBody, kinds: []ErrorKind{KindClosed, KindReset}},
		{name: "mid-DATA", ehlo: ehloPipe, script: []any{pipelinedGroup(1), send(mailOK + rcptOK + startOK), expect("X-Seq: 1\r\n")},
			step: StepBody, kinds: []ErrorKind{KindClosed, KindReset}},
		{name: "after the data, no reply", ehlo: ehloPipe, script: []any{pipelinedGroup(1), send(mailOK + rcptOK + startOK), readData()},
			step: StepBody, kinds: []ErrorKind{KindClosed}},
		{name: "lockstep, after RCPT", ehlo: ehloPlain, script: []any{lockstep("MAIL ", mailOK), alone("RCPT ")},
			step: StepRcpt, kinds: []ErrorKind{KindClosed}},
		{name: "BDAT, after the chunk", ehlo: ehloChunking, opts: Options{BDAT: true},
			script: []any{expect("MAIL "), expect("RCPT "), expect("BDAT "), send(mailOK + rcptOK)},
			step:   StepBdat, kinds: []ErrorKind{KindClosed, KindReset}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, greet(tc.ehlo), tc.script, closeConn())
			c := openFake(t, f, tc.opts)
			var tr Trace
			start := time.Now()
			err := c.Send(msg(1), &tr)
			deadlineCheck(t, start)
			var e *Error
			if !errors.As(err, &e) || e.Step != tc.step {
				t.Fatalf("error %v, want one at step %v", err, tc.step)
			}
			ok := false
			for _, k := range tc.kinds {
				ok = ok || e.Kind == k
			}
			if !ok {
				t.Errorf("kind %v, want one of %v", e.Kind, tc.kinds)
			}
			if c.Usable() || tr.Delivered || !tr.Final.IsZero() || tr.NeedsReset {
				t.Errorf("usable %v, trace %+v", c.Usable(), tr)
			}
			f.wait()
		})
	}
}

// Malformed replies inside a transaction are protocol errors at their step.
func TestSendMalformedReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replies string
		after   []fakeStep
		step    Step
	}{
		{"no code", "sender ok\r\n", nil, StepMail},
		{"bad separator", mailOK + "250+ok\r\n", nil, StepRcpt},
		{"mismatched codes", mailOK + "250-2.1.5 a\r\n251 2.1.5 b\r\n", nil, StepRcpt},
		{"over-long", mailOK + rcptOK + "354 " + strings.Repeat("z", 5000) + "\r\n", nil, StepData},
		{"bad end-of-data reply", mailOK + rcptOK + startOK, []fakeStep{readData(), send("2x0 ok\r\n")}, StepBody},
		{"code out of range", "700 what\r\n", nil, StepMail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, greet(ehloPipe), pipelinedGroup(1), send(tc.replies), tc.after, hang())
			c := openFake(t, f, Options{})
			var tr Trace
			wantErr(t, c.Send(msg(1), &tr), tc.step, KindProtocol)
			if c.Usable() || tr.Delivered || !tr.Final.IsZero() {
				t.Errorf("usable %v, trace %+v", c.Usable(), tr)
			}
		})
	}
}

// BDAT: the whole message goes as one chunk, counted exactly and not dot-stuffed; with
// PIPELINING the whole transaction is one write.
func TestBDAT(t *testing.T) {
	m := dotMessage()
	raw := string(m.Header) + string(m.Body())
	for _, tc := range []struct {
		name      string
		opts      Options
		pipelined bool
	}{
		{"pipelined", Options{BDAT: true}, true},
		{"lockstep", Options{BDAT: true, Pipelining: Off}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bdatLine := fmt.Sprintf("BDAT %d LAST\r\n", len(raw))
			var script []any
			if tc.pipelined {
				script = []any{expect(fmt.Sprintf("MAIL FROM:<s@example.com> SIZE=%d\r\n", len(raw))),
					expect("RCPT TO:<a@example.org>\r\n"), expect("RCPT TO:<b@example.org>\r\n"), expect(bdatLine),
					readN(len(raw)), quiet(30 * time.Millisecond), send(mailOK + rcptOK + rcptOK + "250 2.0.0 Ok: 88 octets\r\n")}
			} else {
				script = []any{lockstep(fmt.Sprintf("MAIL FROM:<s@example.com> SIZE=%d\r\n", len(raw)), mailOK),
					lockstep("RCPT TO:<a@example.org>\r\n", rcptOK), lockstep("RCPT TO:<b@example.org>\r\n", rcptOK),
					expect(bdatLine), readN(len(raw)), quiet(30 * time.Millisecond), send("250 2.0.0 Ok: 88 octets\r\n")}
			}
			f := startFake(t, greet(ehloChunking), script, lockstep("NOOP\r\n", noopOK), clientCloses())
			c := openFake(t, f, tc.opts)
			if !c.Chunking() || c.Pipelining() != tc.pipelined {
				t.Fatalf("chunking %v pipelining %v", c.Chunking(), c.Pipelining())
			}
			var tr Trace
			if err := c.Send(m, &tr); err != nil {
				t.Fatal(err)
			}
			checkTrace(t, &tr, wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, r250rcpt}, bdat: r250ok, accepted: 2,
				final: r250ok, delivered: true, pipelined: tc.pipelined, bdatUsed: true})
			noopInStep(t, c)
			f.finish(c)
			if data := f.gotData(); len(data) != 1 || string(data[0]) != raw {
				t.Errorf("chunk %q, want the message unstuffed %q", data, raw)
			}
			if tc.pipelined {
				if tr.Bdat.Sent != tr.Mail.Sent {
					t.Errorf("BDAT sent %d, MAIL sent %d: one write", tr.Bdat.Sent, tr.Mail.Sent)
				}
				want := fmt.Sprintf("MAIL FROM:<s@example.com> SIZE=%d\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n%s%s",
					len(raw), bdatLine, raw)
				if got := f.readWith("MAIL FROM"); string(got) != want {
					t.Errorf("the read that carried MAIL held %q, want the whole transaction %q", got, want)
				}
			} else if tr.Bdat.Sent < tr.Rcpt[1].Done {
				t.Errorf("BDAT sent before the last RCPT reply: %+v", tr)
			}
		})
	}
}

func TestBDATRefusals(t *testing.T) {
	n := msg(2).Size()
	bdatLine := fmt.Sprintf("BDAT %d LAST\r\n", n)
	for _, tc := range []struct {
		name   string
		opts   Options
		script []any // after EHLO, for msg(2)
		want   wantTrace
	}{
		{name: "pipelined, MAIL refused", opts: Options{BDAT: true},
			script: []any{expect("MAIL "), expect("RCPT "), expect("RCPT "), expect(bdatLine), readN(n),
				send("550 5.7.1 no\r\n503 5.5.1 a\r\n503 5.5.1 b\r\n503 5.5.1 c\r\n")},
			want: wantTrace{mail: reply(550, 5, 7, 1), rcpt: []Reply{reply(503, 5, 5, 1), reply(503, 5, 5, 1)},
				bdat: reply(503, 5, 5, 1), final: reply(550, 5, 7, 1)}},
		{name: "pipelined, every RCPT refused", opts: Options{BDAT: true},
			script: []any{expect("MAIL "), expect("RCPT "), expect("RCPT "), expect(bdatLine), readN(n),
				send(mailOK + "550 5.1.1 a\r\n550 5.1.1 b\r\n554 5.5.1 no valid recipients\r\n"), lockstep("RSET\r\n", "250 2.0.0 ok\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{reply(550, 5, 1, 1), reply(550, 5, 1, 1)},
				bdat: reply(554, 5, 5, 1), final: reply(550, 5, 1, 1), reset: true}},
		{name: "pipelined, chunk refused", opts: Options{BDAT: true},
			script: []any{expect("MAIL "), expect("RCPT "), expect("RCPT "), expect(bdatLine), readN(n),
				send(mailOK + rcptOK + rcptOK + "552 5.3.4 too big\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, r250rcpt}, bdat: reply(552, 5, 3, 4), accepted: 2,
				final: reply(552, 5, 3, 4)}},
		{name: "lockstep, every RCPT refused", opts: Options{BDAT: true, Pipelining: Off},
			script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", "550 5.1.1 a\r\n"), lockstep("RCPT ", "550 5.1.1 b\r\n"),
				lockstep("RSET\r\n", "250 2.0.0 ok\r\n")}, // no BDAT
			want: wantTrace{mail: r250mail, rcpt: []Reply{reply(550, 5, 1, 1), reply(550, 5, 1, 1)},
				final: reply(550, 5, 1, 1), reset: true}},
		{name: "lockstep, chunk refused", opts: Options{BDAT: true, Pipelining: Off},
			script: []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK), lockstep("RCPT ", rcptOK),
				expect(bdatLine), readN(n), send("451 4.3.0 later\r\n")},
			want: wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt, r250rcpt}, bdat: reply(451, 4, 3, 0), accepted: 2,
				final: reply(451, 4, 3, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, greet(ehloChunking), tc.script, lockstep("NOOP\r\n", noopOK), clientCloses())
			c := openFake(t, f, tc.opts)
			var tr Trace
			m := msg(2)
			if err := c.Send(m, &tr); err != nil {
				t.Fatal(err)
			}
			tc.want.bdatUsed, tc.want.pipelined = true, tc.opts.Pipelining != Off
			checkTrace(t, &tr, tc.want)
			if tr.NeedsReset {
				if r, err := c.Reset(); err != nil || !r.OK() {
					t.Fatal(r, err)
				}
			}
			noopInStep(t, c)
			f.finish(c)
		})
	}
}

// MAIL FROM carries SIZE=, BODY=8BITMIME and SMTPUTF8 only when the server offers them.
func TestMailParameters(t *testing.T) {
	all := "250-fake\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
	for _, tc := range []struct {
		name     string
		ehlo     string
		from     string
		eight    bool
		utf8     bool
		wantLine string // %d is the size
	}{
		{"SIZE offered", "250-fake\r\n250 SIZE 1000\r\n", "s@example.com", false, false, "MAIL FROM:<s@example.com> SIZE=%d\r\n"},
		{"SIZE offered without a limit", "250-fake\r\n250 SIZE\r\n", "s@example.com", false, false, "MAIL FROM:<s@example.com> SIZE=%d\r\n"},
		{"nothing offered", ehloBare, "s@example.com", true, true, "MAIL FROM:<s@example.com>\r\n"},
		{"null sender", all, "", false, false, "MAIL FROM:<> SIZE=%d\r\n"},
		{"8BITMIME", all, "s@example.com", true, false, "MAIL FROM:<s@example.com> SIZE=%d BODY=8BITMIME\r\n"},
		{"SMTPUTF8", all, "ü@example.com", false, true, "MAIL FROM:<ü@example.com> SIZE=%d SMTPUTF8\r\n"},
		{"both", all, "s@example.com", true, true, "MAIL FROM:<s@example.com> SIZE=%d BODY=8BITMIME SMTPUTF8\r\n"},
		{"8BITMIME not offered", "250-fake\r\n250 SMTPUTF8\r\n", "s@example.com", true, true, "MAIL FROM:<s@example.com> SMTPUTF8\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := msg(1)
			m.From, m.EightBit, m.UTF8 = []byte(tc.from), tc.eight, tc.utf8
			want := tc.wantLine
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, m.Size())
			}
			f := startFake(t, greet(tc.ehlo), lockstep(want, mailOK), lockstep("RCPT TO:<r1@example.org>\r\n", rcptOK),
				lockstep("DATA\r\n", startOK), readData(), send(queuedOK), clientCloses())
			c := openFake(t, f, Options{})
			var tr Trace
			if err := c.Send(m, &tr); err != nil || !tr.Delivered {
				t.Fatalf("%v %+v", err, tr)
			}
			f.finish(c)
			if lines := f.gotLines(); len(lines) < 2 || lines[1]+"\r\n" != want {
				t.Errorf("lines %q, want MAIL as %q", lines, want)
			}
		})
	}
}

// dotMessage has lines that need dot-stuffing in its header and its body.
func dotMessage() *Message {
	m := &Message{From: []byte("s@example.com"), To: [][]byte{[]byte("a@example.org"), []byte("b@example.org")}}
	m.Header = []byte(".X-Dot: 1\r\n")
	m.SetBody([]byte(".\r\n..\r\n.x\r\na.b\r\n\r\n. \r\nend"))
	return m
}

// DATA dot-stuffs the header and the body on the wire; the server gets back exactly the message.
func TestDotStuffingOnTheWire(t *testing.T) {
	m := dotMessage()
	if got := string(m.Body()); got != ".\r\n..\r\n.x\r\na.b\r\n\r\n. \r\nend\r\n" {
		t.Fatalf("SetBody did not end the body with CRLF: %q", got)
	}
	wantWire := "..X-Dot: 1\r\n..\r\n...\r\n..x\r\na.b\r\n\r\n.. \r\nend\r\n"
	for _, mode := range []Mode{Auto, Off} {
		t.Run(mode.String(), func(t *testing.T) {
			var script []any
			if mode == Auto {
				script = []any{expect("MAIL "), expect("RCPT "), expect("RCPT "), alone("DATA\r\n"), send(mailOK + rcptOK + rcptOK + startOK)}
			} else {
				script = []any{lockstep("MAIL ", mailOK), lockstep("RCPT ", rcptOK), lockstep("RCPT ", rcptOK), lockstep("DATA\r\n", startOK)}
			}
			f := startFake(t, greet(ehloPipe), script, readData(), quiet(20*time.Millisecond), send(queuedOK), clientCloses())
			c := openFake(t, f, Options{Pipelining: mode})
			var tr Trace
			if err := c.Send(m, &tr); err != nil || !tr.Delivered {
				t.Fatalf("%v %+v", err, tr)
			}
			f.finish(c)
			data := f.gotData()
			if len(data) != 1 || string(data[0]) != wantWire {
				t.Fatalf("data on the wire %q, want %q", data, wantWire)
			}
			if got := string(unstuff(data[0])); got != string(m.Header)+string(m.Body()) || len(got) != m.Size() {
				t.Errorf("unstuffed %q (%d octets), want the message (%d octets)", got, len(got), m.Size())
			}
			if !bytes.HasSuffix(f.received(), []byte("\r\nend\r\n.\r\n")) {
				t.Errorf("the data did not end with the end-of-data line: %q", f.received())
			}
		})
	}
}

// unstuff removes one leading dot from every line, as a server does.
func unstuff(p []byte) []byte {
	var out []byte
	for line := range bytes.Lines(p) {
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		out = append(out, line...)
	}
	return out
}

// An empty message: DATA sends just the end-of-data line; BDAT sends a chunk of 0 octets.
func TestEmptyMessage(t *testing.T) {
	m := &Message{From: []byte("s@example.com"), To: [][]byte{[]byte("a@example.org")}}
	m.SetBody(nil)
	if m.Size() != 0 {
		t.Fatalf("size %d", m.Size())
	}
	t.Run("DATA", func(t *testing.T) {
		f := startFake(t, greet(ehloPipe), expect("MAIL FROM:<s@example.com> SIZE=0\r\n"), expect("RCPT "), alone("DATA\r\n"),
			send(mailOK+rcptOK+startOK), readData(), send(queuedOK), clientCloses())
		c := openFake(t, f, Options{})
		var tr Trace
		if err := c.Send(m, &tr); err != nil || !tr.Delivered {
			t.Fatalf("%v %+v", err, tr)
		}
		f.finish(c)
		if data := f.gotData(); len(data) != 1 || len(data[0]) != 0 {
			t.Errorf("data %q", data)
		}
	})
	t.Run("BDAT", func(t *testing.T) {
		f := startFake(t, greet(ehloChunking), expect("MAIL "), expect("RCPT "), expect("BDAT 0 LAST\r\n"), quiet(20*time.Millisecond),
			send(mailOK+rcptOK+"250 2.0.0 ok\r\n"), clientCloses())
		c := openFake(t, f, Options{BDAT: true})
		var tr Trace
		if err := c.Send(m, &tr); err != nil || !tr.Delivered {
			t.Fatalf("%v %+v", err, tr)
		}
		f.finish(c)
	})
}

// A Trace reused for another transaction keeps nothing of the previous one.
func TestTraceReuse(t *testing.T) {
	f := startFake(t, greet(ehloPipe),
		pipelinedGroup(3), send(mailOK+"550 5.1.1 a\r\n550 5.1.1 b\r\n550 5.1.1 c\r\n554 5.5.1 none\r\n"),
		lockstep("RSET\r\n", "250 2.0.0 ok\r\n"),
		pipelinedGroup(1), send(mailOK+rcptOK+startOK), readData(), send(queuedOK), clientCloses())
	c := openFake(t, f, Options{})
	var tr Trace
	if err := c.Send(msg(3), &tr); err != nil || !tr.NeedsReset {
		t.Fatalf("%v %+v", err, tr)
	}
	if _, err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(msg(1), &tr); err != nil {
		t.Fatal(err)
	}
	checkTrace(t, &tr, wantTrace{mail: r250mail, rcpt: []Reply{r250rcpt}, data: r354, body: r250ok, accepted: 1,
		final: r250ok, delivered: true, pipelined: true})
	f.finish(c)
}

// Many transactions on one connection, the server answering each group in one write.
func TestManyPipelinedTransactions(t *testing.T) {
	const n = 50
	var script []any
	script = append(script, greet(ehloPipe))
	for range n {
		script = append(script, pipelinedGroup(2), send(mailOK+rcptOK+rcptOK+startOK), readData(), send(queuedOK))
	}
	f := startFake(t, append(script, lockstep("QUIT\r\n", "221 2.0.0 bye\r\n"), clientCloses())...)
	c := openFake(t, f, Options{})
	var tr Trace
	m := msg(2)
	for i := range n {
		m.Header = []byte("X-Seq: " + strconv.Itoa(i) + "\r\n")
		if err := c.Send(m, &tr); err != nil || !tr.Delivered || tr.Accepted != 2 {
			t.Fatalf("message %d: %v %+v", i, err, tr)
		}
	}
	if r, err := c.Quit(); err != nil || r.Code != 221 {
		t.Fatal(r, err)
	}
	f.wait()
	data := f.gotData()
	if len(data) != n {
		t.Fatalf("%d messages arrived, want %d", len(data), n)
	}
	for i, d := range data {
		if !bytes.HasPrefix(d, []byte("X-Seq: "+strconv.Itoa(i)+"\r\n")) {
			t.Errorf("message %d begins %q", i, d[:min(len(d), 20)])
		}
	}
}
