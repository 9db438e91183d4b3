package server

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The server's life on both drivers: graceful shutdown, Close, Serve after either, unix sockets,
// dump mode and Config.Validate.

// lcShutdown starts a graceful shutdown and returns what it will return.
func lcShutdown(srv *Server, timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	return done
}

// lcWait waits for ch, failing the test after a generous deadline.
func lcWait(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(lbDeadline):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// lcRefused checks that nothing answers on addr any more.
func lcRefused(t *testing.T, network, addr string) {
	t.Helper()
	c, err := net.DialTimeout(network, addr, time.Second)
	if err == nil {
		c.SetReadDeadline(time.Now().Add(time.Second))
		var b [64]byte
		n, _ := c.Read(b[:])
		c.Close()
		if n > 0 {
			t.Errorf("a connection to %s after the shutdown was answered %q", addr, b[:n])
		}
	}
}

// Shutdown tells idle sessions 421 4.3.2, lets a session in a transaction finish it (its final
// reply is 250), then tells it 421 too, and returns nil once every session ended.
func TestLifecycleShutdownGraceful(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{})
		idle := lbDial(t, s.addr)
		idle.greet()
		fresh := lbDial(t, s.addr) // greeted, no EHLO yet
		fresh.expect("greeting", 220, "-")
		busy := lbDial(t, s.addr)
		busy.greet()
		busy.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		busy.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		bdat := lbDial(t, s.addr)
		bdat.greet()
		bdat.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		bdat.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		bdat.send("BDAT 4\r\nabcd")
		bdat.expect("first chunk", 250, "2.0.0")

		done := lcShutdown(s.srv, lbDeadline)
		idle.expect("idle session", 421, "4.3.2")
		idle.expectClosed()
		fresh.expect("session before EHLO", 421, "4.3.2")
		fresh.expectClosed()
		// The shutdown is under way (the idle sessions were told): the others finish.
		busy.cmd("DATA", 354, "-")
		busy.send(lbMessage)
		busy.expect("the message", 250, "2.0.0")
		busy.expect("after the transaction", 421, "4.3.2")
		busy.expectClosed()
		bdat.send("BDAT 3 LAST\r\nefg")
		bdat.expect("the last chunk", 250, "2.0.0")
		bdat.expect("after the transaction", 421, "4.3.2")
		bdat.expectClosed()

		if err := lcWait(t, "Shutdown", done); err != nil {
			t.Errorf("Shutdown returned %v, want nil", err)
		}
		if err := s.served(); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		st := s.srv.Stats()
		if st.Messages != 2 || st.Replies[421] != 4 || st.ActiveSessions != 0 {
			t.Errorf("messages %d, 421s %d, active %d; want 2, 4, 0", st.Messages, st.Replies[421], st.ActiveSessions)
		}
		lcRefused(t, "tcp", s.addr)
	})
}

// When ctx ends before a session finishes its transaction, Shutdown closes it and returns ctx's
// error.
func TestLifecycleShutdownDeadline(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{})
		idle := lbDial(t, s.addr)
		idle.greet()
		busy := lbDial(t, s.addr)
		busy.greet()
		busy.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		busy.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		busy.cmd("DATA", 354, "-")
		busy.send("Subject: never finished\r\n")

		start := time.Now()
		done := lcShutdown(s.srv, 200*time.Millisecond)
		idle.expect("idle session", 421, "4.3.2")
		idle.expectClosed()
		err := lcWait(t, "Shutdown", done)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown returned %v, want context.DeadlineExceeded", err)
		}
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Errorf("Shutdown gave up after %v, before its 200ms", el)
		}
		busy.expectClosed()
		if st := s.srv.Stats(); st.Messages != 0 || st.ActiveSessions != 0 {
			t.Errorf("messages %d, active %d; want 0, 0", st.Messages, st.ActiveSessions)
		}
	})
}

// Close drops every connection at once: no 421, no waiting for transactions.
func TestLifecycleClose(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		s := lbStart(t, d, Config{})
		idle := lbDial(t, s.addr)
		idle.greet()
		txn := lbDial(t, s.addr)
		txn.greet()
		txn.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		body := lbDial(t, s.addr)
		body.greet()
		body.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		body.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		body.cmd("DATA", 354, "-")
		body.send("Subject: cut\r\n")

		if err := s.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, c := range []*lbClient{idle, txn, body} {
			c.expectClosed()
		}
		if err := s.served(); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		lbWaitFor(t, "the sessions to end", func() bool { return s.srv.Stats().ActiveSessions == 0 })
		if st := s.srv.Stats(); st.Replies[421] != 0 {
			t.Errorf("%d replies 421 after Close, want none", st.Replies[421])
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown after Close returned %v", err)
		}
		lcRefused(t, "tcp", s.addr)
	})
}

// Serve after Shutdown or Close returns ErrServerClosed and closes its listener.
func TestLifecycleServeAfterShutdown(t *testing.T) {
	stops := map[string]func(*Server) error{
		"Shutdown": func(s *Server) error { return s.Shutdown(context.Background()) },
		"Close":    func(s *Server) error { return s.Close() },
	}
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		for name, stop := range stops {
			t.Run(name, func(t *testing.T) {
				s := lbStart(t, d, Config{Addr: "127.0.0.1:0"})
				c := lbDial(t, s.addr)
				c.greet()
				c.cmd("QUIT", 221, "2.0.0")
				if err := stop(s.srv); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				served := make(chan error, 1)
				go func() { served <- s.srv.Serve(l) }()
				if err := lcWait(t, "Serve", served); !errors.Is(err, ErrServerClosed) {
					t.Errorf("Serve after %s returned %v, want ErrServerClosed", name, err)
				}
				lcRefused(t, "tcp", l.Addr().String())
				if err := s.srv.ListenAndServe(); !errors.Is(err, ErrServerClosed) {
					t.Errorf("ListenAndServe after %s returned %v, want ErrServerClosed", name, err)
				}
			})
		}
	})
}

// A unix socket from Listen("unix:/path") is served by either driver, and its file is removed when
// the server stops. A stale socket file is replaced; a file that is no socket is left alone.
func TestLifecycleUnixSocket(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		dir, err := os.MkdirTemp("", "sbunix") // short: socket paths are limited to ~100 octets
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "smtp.sock")

		stale, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		stale.(*net.UnixListener).SetUnlinkOnClose(false)
		stale.Close()
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("no stale socket file: %v", err)
		}
		l, err := Listen("unix:" + path)
		if err != nil {
			t.Fatalf("Listen over a stale socket: %v", err)
		}
		s := lbServe(t, d, Config{}, l)
		c := lbDialNet(t, "unix", path)
		c.greet()
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		c.cmd("DATA", 354, "-")
		c.send(lbMessage)
		c.expect("the message", 250, "2.0.0")
		idle := lbDialNet(t, "unix", path)
		idle.greet()

		done := lcShutdown(s.srv, lbDeadline)
		idle.expect("idle session", 421, "4.3.2")
		c.expect("idle session", 421, "4.3.2")
		if err := lcWait(t, "Shutdown", done); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := s.served(); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the socket file is still there after the shutdown: %v", err)
		}
		if st := s.srv.Stats(); st.Messages != 1 {
			t.Errorf("%d messages, want 1", st.Messages)
		}

		// A regular file is not a stale socket: Listen fails and leaves it.
		plain := filepath.Join(dir, "plain")
		if err := os.WriteFile(plain, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		if l, err := Listen("unix:" + plain); err == nil {
			l.Close()
			t.Error("Listen over a regular file succeeded")
		}
		if b, err := os.ReadFile(plain); err != nil || string(b) != "keep me" {
			t.Errorf("the regular file was touched: %q, %v", b, err)
		}
	})
}

var lcReceived = regexp.MustCompile(`^Received: from ([^ ]+) \(\[([^\]]+)\]\)\r\n\tby ([^ ]+) \(smtpbench\) with ([A-Z0-9]+) id ([^\r\n;]+)(\r\n\tfor (<[^>]*>))?;\r\n\t([^\r\n]+)\r\n`)

// lcDumped is a message as dump mode wrote it.
type lcDumped struct {
	helo, ip, host, with, id string
	forRcpt                  string
	date                     time.Time
	from                     string
	to                       []string
	body                     string
}

func lcParseDump(t *testing.T, file string, b []byte) lcDumped {
	t.Helper()
	m := lcReceived.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no Received header at the top: %q", file, b)
	}
	d := lcDumped{helo: string(m[1]), ip: string(m[2]), host: string(m[3]), with: string(m[4]),
		id: string(m[5]), forRcpt: string(m[7])}
	var err error
	if d.date, err = time.Parse(time.RFC1123Z, string(m[8])); err != nil {
		t.Errorf("%s: Received date: %v", file, err)
	}
	rest := string(b[len(m[0]):])
	from, rest, _ := strings.Cut(rest, "\r\n")
	var ok bool
	if d.from, ok = strings.CutPrefix(from, "X-Smtpbench-Mail-From: "); !ok {
		t.Fatalf("%s: no X-Smtpbench-Mail-From after Received: %q", file, from)
	}
	for {
		h, r, _ := strings.Cut(rest, "\r\n")
		to, ok := strings.CutPrefix(h, "X-Smtpbench-Rcpt-To: ")
		if !ok {
			break
		}
		d.to, rest = append(d.to, to), r
	}
	d.body = rest
	return d
}

// Dump mode writes one .eml per accepted message: a Received header, the envelope in
// X-Smtpbench- headers (source routes ignored, RFC 5321 §3.3), then the message as it arrived,
// unstuffed. Nothing is left for refused messages, and no temporary file remains. (Dump mode
// always runs a goroutine per connection; it is tried with both settings of EventLoops.)
func TestLifecycleDump(t *testing.T) {
	lbForDrivers(t, func(t *testing.T, d lbDriver) {
		dir := t.TempDir()
		s := lbStart(t, d, Config{Mode: Dump, DumpDir: dir, MaxMessageSize: 200})
		start := time.Now()
		queued := func(r lbReply) string {
			t.Helper()
			_, id, ok := strings.Cut(r.lines[0], "queued as ")
			if !ok || id == "" {
				t.Fatalf("no queue id in %v", r)
			}
			return id
		}
		want := map[string]lcDumped{} // by queue id

		c := lbDial(t, s.addr)
		c.greet()
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		c.cmd("DATA", 354, "-")
		c.send("Subject: one\r\n\r\n..dot\r\nline\r\n...\r\n.\r\n")
		id := queued(c.expect("message 1", 250, "2.0.0"))
		want[id] = lcDumped{helo: "client.example", ip: "127.0.0.1", host: "smtpbench.localhost", with: "ESMTP", id: id,
			forRcpt: "<b@example.org>", from: "<a@example.com>", to: []string{"<b@example.org>"},
			body: "Subject: one\r\n\r\n.dot\r\nline\r\n..\r\n"}

		c.cmd("MAIL FROM:<> SMTPUTF8", 250, "2.1.0")
		c.cmd("RCPT TO:<c@example.org>", 250, "2.1.5")
		c.cmd("RCPT TO:<bad>", 501, "5.1.3")
		c.cmd("RCPT TO:<@relay.example:d@example.org>", 250, "2.1.5")
		c.send("BDAT 4\r\n0123")
		c.expect("chunk", 250, "2.0.0")
		c.send("BDAT 8 LAST\r\n..4567\r\n")
		id = queued(c.expect("message 2", 250, "2.0.0"))
		want[id] = lcDumped{helo: "client.example", ip: "127.0.0.1", host: "smtpbench.localhost", with: "UTF8SMTP", id: id,
			from: "<>", to: []string{"<c@example.org>", "<d@example.org>"}, body: "0123..4567\r\n"}

		// Refused messages leave nothing.
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		c.cmd("DATA", 354, "-")
		c.send("bare\nLF\r\n.\r\n")
		c.expect("bare LF", 550, "5.6.0")
		c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
		c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
		c.cmd("DATA", 354, "-")
		c.send(lbBody(201))
		c.expect("too big", 552, "5.3.4")
		c.cmd("QUIT", 221, "2.0.0")

		h := lbDial(t, s.addr)
		h.expect("greeting", 220, "-")
		h.cmd("HELO old.example", 250, "-")
		h.cmd("MAIL FROM:<@relay.example,@other.example:Postmaster@example.com>", 250, "2.1.0")
		h.cmd("RCPT TO:<Postmaster>", 250, "2.1.5")
		h.cmd("DATA", 354, "-")
		h.send(".\r\n")
		id = queued(h.expect("an empty message", 250, "2.0.0"))
		want[id] = lcDumped{helo: "old.example", ip: "127.0.0.1", host: "smtpbench.localhost", with: "SMTP", id: id,
			forRcpt: "<Postmaster>", from: "<Postmaster@example.com>", to: []string{"<Postmaster>"}, body: ""}
		end := time.Now()

		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(want) {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("files in the dump directory: %v; want %d .eml files", names, len(want))
		}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || !strings.HasSuffix(name, ".eml") || strings.HasPrefix(name, ".") {
				t.Errorf("unexpected file %q in the dump directory", name)
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			got := lcParseDump(t, name, b)
			w, ok := want[got.id]
			if !ok {
				t.Errorf("%s: queue id %q is none of the accepted messages'", name, got.id)
				continue
			}
			delete(want, got.id)
			if !strings.HasSuffix(name, "-"+got.id+".eml") {
				t.Errorf("%s: the name does not end with its queue id %s", name, got.id)
			}
			if got.date.Before(start.Add(-time.Second)) || got.date.After(end.Add(time.Second)) {
				t.Errorf("%s: Received date %v, outside the test's %v..%v", name, got.date, start, end)
			}
			got.date = time.Time{}
			if got.helo != w.helo || got.ip != w.ip || got.host != w.host || got.with != w.with ||
				got.forRcpt != w.forRcpt || got.from != w.from || !slices.Equal(got.to, w.to) || got.body != w.body {
				t.Errorf("%s:\n got %+v\nwant %+v", name, got, w)
			}
		}
		if st := s.srv.Stats(); st.Messages != 3 || st.Rejected != 2 {
			t.Errorf("messages %d, rejected %d; want 3, 2", st.Messages, st.Rejected)
		}
	})
}

// A dump directory that cannot be written to: the message is answered 451 4.3.0 and not counted.
func TestLifecycleDumpFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	s := lbStart(t, lbDrivers[1], Config{Mode: Dump, DumpDir: dir})
	c := lbDial(t, s.addr)
	c.greet()
	c.cmd("MAIL FROM:<a@example.com>", 250, "2.1.0")
	c.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
	c.cmd("DATA", 354, "-")
	c.send(lbMessage)
	c.expect("the message", 451, "4.3.0")
	c.cmd("NOOP", 250, "2.0.0")
	if st := s.srv.Stats(); st.Messages != 0 {
		t.Errorf("%d messages counted, want 0", st.Messages)
	}
}

// Config.Validate names the field of every setting that cannot work, as a *FieldError.
func TestLifecycleValidate(t *testing.T) {
	var replyProb, replyCode, negDelay Faults
	replyProb.Points[AtRcpt].Reply, replyProb.Points[AtRcpt].ReplyCode = 1.5, 450
	replyCode.Points[AtMail].Reply, replyCode.Points[AtMail].ReplyCode = 0.5, 250
	negDelay.Points[AtDot].Delay = Dist{Kind: DistFixed, A: -time.Second}
	tests := []struct {
		cfg   Config
		field string
	}{
		{Config{Hostname: "bad host"}, "Hostname"},
		{Config{Hostname: "under_score.example"}, "Hostname"},
		{Config{MaxLineLength: 63, MaxPath: 60}, "MaxLineLength"},
		{Config{MaxLineLength: 100}, "MaxPath"}, // the default path does not fit in the line
		{Config{MaxLocalPart: -1}, "MaxLocalPart"},
		{Config{MaxDomain: -1}, "MaxDomain"},
		{Config{MaxPath: 2}, "MaxPath"},
		{Config{MaxRecipients: -1}, "MaxRecipients"},
		{Config{MaxMessageSize: -1}, "MaxMessageSize"},
		{Config{MaxErrors: -1}, "MaxErrors"},
		{Config{MaxConns: -1}, "MaxConns"},
		{Config{CommandTimeout: -time.Second}, "CommandTimeout"},
		{Config{DataTimeout: -time.Second}, "DataTimeout"},
		{Config{ReadBuffer: 17 << 20, BodyBuffer: -1}, "ReadBuffer"},
		{Config{BodyBuffer: 1000}, "BodyBuffer"},
		{Config{BodyBuffer: 17 << 20}, "BodyBuffer"},
		{Config{Mode: 7}, "Mode"},
		{Config{Mode: Dump}, "DumpDir"},
		{Config{EventLoops: -2}, "EventLoops"},
		{Config{EventLoops: 1025}, "EventLoops"},
		{Config{Disable: 1 << 12}, "Disable"},
		{Config{Faults: replyProb}, "Faults"},
		{Config{Faults: replyCode}, "Faults"},
		{Config{Faults: negDelay}, "Faults"},
		{Config{Faults: Faults{Greylist: -time.Second}}, "Faults"},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			err := tc.cfg.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate(%+v) = %v, want a *FieldError", tc.cfg, err)
			}
			if fields := lcFields(err); len(fields) != 1 || fields[0] != tc.field {
				t.Errorf("Validate named %v, want only %s (%v)", fields, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("the error %q does not name %s", err, tc.field)
			}
			if srv, err := New(tc.cfg); srv != nil || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("New returned %v, %v; want nil and the error about %s", srv, err, tc.field)
			}
		})
	}
	t.Run("several", func(t *testing.T) {
		err := Config{MaxRecipients: -1, MaxErrors: -1, Hostname: "x y"}.Validate()
		if got := lcFields(err); !slices.Equal(got, []string{"Hostname", "MaxRecipients", "MaxErrors"}) {
			t.Errorf("Validate named %v (%v)", got, err)
		}
	})
	for _, cfg := range []Config{{}, {BodyBuffer: -1}, {EventLoops: -1}, {EventLoops: 1024}, {Mode: Dump, DumpDir: "d"},
		{MaxLineLength: 64, MaxPath: 64}, {Hostname: "mx-1.example"}, {Faults: Faults{Seed: 7, Greylist: time.Second}}} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", cfg, err)
		}
	}
}

// lcFields lists the fields of every *FieldError in err.
func lcFields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		var fe *FieldError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		default:
			if errors.As(err, &fe) {
				out = append(out, fe.Field)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}
