package server_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/server"
)

// serveOn serves srv on l in the background; the channel gets what Serve returned.
func serveOn(srv *server.Server, l net.Listener) <-chan error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	return served
}

// newListening starts a server on a loopback port, without the cleanup of startServer: the test
// stops it itself.
func newListening(t *testing.T, cfg server.Config) (*server.Server, string, <-chan error) {
	t.Helper()
	srv, l := newServerListener(t, cfg)
	t.Cleanup(func() { srv.Close() })
	return srv, l.Addr().String(), serveOn(srv, l)
}

func expectServed(t *testing.T, served <-chan error) {
	t.Helper()
	select {
	case err := <-served:
		if !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(testDeadline):
		t.Errorf("Serve did not return")
	}
}

// inData opens a session and leaves it in the middle of a message: after 354 and part of the body.
func inData(t *testing.T, addr string) *smtpClient {
	t.Helper()
	c := dialSMTP(t, "tcp", addr)
	c.expect(220, "")
	c.cmd("EHLO client.example", 250, "")
	c.cmd("MAIL FROM:<a@example.com>", 250, "")
	c.cmd("RCPT TO:<b@example.org>", 250, "")
	c.cmd("DATA", 354, "")
	c.send("Subject: in flight\r\n\r\nthe first part\r\n")
	return c
}

// Shutdown tells idle sessions 421 4.3.2 at once; a session in a transaction finishes it (its
// message is accepted) and is told 421 after; Shutdown returns nil once they all ended, and
// Serve ErrServerClosed; nothing is accepted any more.
func TestShutdownGraceful(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			srv, addr, served := newListening(t, server.Config{EventLoops: d.loops})

			greeted := dialSMTP(t, "tcp", addr) // idle before EHLO
			greeted.expect(220, "")
			idle := dialSMTP(t, "tcp", addr) // idle between transactions
			idle.expect(220, "")
			idle.cmd("EHLO client.example", 250, "")
			mail := dialSMTP(t, "tcp", addr) // in a transaction, between commands
			mail.expect(220, "")
			mail.cmd("EHLO client.example", 250, "")
			mail.cmd("MAIL FROM:<a@example.com>", 250, "")
			data := inData(t, addr) // in the middle of a message
			waitFor(t, "4 sessions", func() bool { return srv.Stats().ActiveSessions == 4 })

			shut := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
				defer cancel()
				shut <- srv.Shutdown(ctx)
			}()

			for _, c := range []*smtpClient{greeted, idle} {
				c.expect(421, "4.3.2 smtpbench.localhost Service shutting down")
				c.expectClosed()
			}
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned %v while two sessions are in a transaction", err)
			default:
			}
			if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				// The listener may close a moment after the idle sessions are told; give it that.
				waitFor(t, "the listener to close", func() bool {
					c, err := net.DialTimeout("tcp", addr, time.Second)
					if err == nil {
						c.Close()
					}
					return err != nil
				})
			}

			data.send("the rest\r\n.\r\n")
			data.expect(250, "2.0.0 Ok: queued as")
			data.expect(421, "4.3.2")
			data.expectClosed()

			mail.cmd("RCPT TO:<b@example.org>", 250, "2.1.5")
			mail.cmd("DATA", 354, "")
			mail.send("short\r\n.\r\n")
			mail.expect(250, "2.0.0 Ok: queued as")
			mail.expect(421, "4.3.2")
			mail.expectClosed()

			select {
			case err := <-shut:
				if err != nil {
					t.Errorf("Shutdown returned %v, want nil", err)
				}
			case <-time.After(testDeadline):
				t.Fatal("Shutdown did not return after the sessions ended")
			}
			expectServed(t, served)
			st := srv.Stats()
			if st.Messages != 2 || st.ActiveSessions != 0 || st.Replies[421] != 4 {
				t.Errorf("messages %d, active %d, 421s %d; want 2, 0, 4", st.Messages, st.ActiveSessions, st.Replies[421])
			}
		})
	}
}

// A session that does not finish its transaction in time: Shutdown returns the context's error
// once it expires, and the connection is closed.
func TestShutdownContextExpires(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			srv, addr, served := newListening(t, server.Config{EventLoops: d.loops})
			data := inData(t, addr)
			idle := dialSMTP(t, "tcp", addr)
			idle.expect(220, "")
			waitFor(t, "2 sessions", func() bool { return srv.Stats().ActiveSessions == 2 })

			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err := srv.Shutdown(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown returned %v, want context.DeadlineExceeded", err)
			}
			idle.expect(421, "4.3.2")
			idle.expectClosed()
			data.expectClosed() // no reply: the message was never finished
			expectServed(t, served)
			waitFor(t, "no sessions", func() bool { return srv.Stats().ActiveSessions == 0 })
			if st := srv.Stats(); st.Messages != 0 {
				t.Errorf("%d messages accepted", st.Messages)
			}
		})
	}
}

// A context that is already cancelled: Shutdown closes everything and says so.
func TestShutdownCancelled(t *testing.T) {
	srv, addr, served := newListening(t, server.Config{})
	data := inData(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown returned %v, want context.Canceled", err)
	}
	data.expectClosed()
	expectServed(t, served)
}

// Close drops every connection at once, idle or not, with no reply, and Serve returns.
func TestCloseDropsConnections(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			srv, addr, served := newListening(t, server.Config{EventLoops: d.loops})
			idle := dialSMTP(t, "tcp", addr)
			idle.expect(220, "")
			data := inData(t, addr)
			waitFor(t, "2 sessions", func() bool { return srv.Stats().ActiveSessions == 2 })

			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			idle.expectClosed()
			data.expectClosed()
			expectServed(t, served)
			waitFor(t, "no sessions", func() bool { return srv.Stats().ActiveSessions == 0 })
			if st := srv.Stats(); st.Replies[421] != 0 {
				t.Errorf("Close sent %d 421 replies; it should just close", st.Replies[421])
			}
			if err := srv.Close(); err != nil {
				t.Errorf("a second Close: %v", err)
			}
		})
	}
}

// After Shutdown or Close, Serve refuses at once with ErrServerClosed and closes the listener it
// was given.
func TestServeAfterShutdown(t *testing.T) {
	for _, stop := range []struct {
		name string
		f    func(*server.Server) error
	}{
		{"Shutdown", func(s *server.Server) error { return s.Shutdown(context.Background()) }},
		{"Close", func(s *server.Server) error { return s.Close() }},
	} {
		t.Run(stop.name, func(t *testing.T) {
			srv, err := server.New(server.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := stop.f(srv); err != nil {
				t.Fatalf("%s with no sessions: %v", stop.name, err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Serve(l); !errors.Is(err, server.ErrServerClosed) {
				t.Errorf("Serve after %s returned %v, want ErrServerClosed", stop.name, err)
			}
			if _, err := l.Accept(); err == nil {
				t.Errorf("Serve after %s left its listener open", stop.name)
			}
			if err := srv.ListenAndServe(); !errors.Is(err, server.ErrServerClosed) {
				// ListenAndServe listens on 127.0.0.1:2525 first; another process may hold it.
				var op *net.OpError
				if !errors.As(err, &op) {
					t.Errorf("ListenAndServe after %s returned %v, want ErrServerClosed", stop.name, err)
				}
			}
		})
	}
}

// server.Listen("unix:/path") serves a unix socket, with either driver; a stale socket file is
// replaced; the socket file is gone once the server stopped.
func TestUnixSocket(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("/tmp", "smtpbench-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			path := filepath.Join(dir, "smtp.sock")

			// A stale socket file, as a crashed sink leaves behind.
			stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			stale.SetUnlinkOnClose(false)
			stale.Close()
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("the stale socket: %v", err)
			}

			l, err := server.Listen("unix:" + path)
			if err != nil {
				t.Fatalf("Listen over a stale socket: %v", err)
			}
			srv, err := server.New(server.Config{EventLoops: d.loops})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			served := serveOn(srv, l)

			c := dialSMTP(t, "unix", path)
			c.expect(220, "smtpbench.localhost ESMTP")
			c.cmd("EHLO client.example", 250, "smtpbench.localhost")
			c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 5 LAST\r\nhello")
			c.expect(250, "2.1.0")
			c.expect(250, "2.1.5")
			c.expect(250, "2.0.0 Ok: queued as")
			c.cmd("QUIT", 221, "")
			c.expectClosed()

			ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			expectServed(t, served)
			if st := srv.Stats(); st.Messages != 1 || st.Bytes != 5 {
				t.Errorf("messages %d, bytes %d; want 1, 5", st.Messages, st.Bytes)
			}
			waitFor(t, "the socket file to go", func() bool {
				_, err := os.Stat(path)
				return errors.Is(err, os.ErrNotExist)
			})
		})
	}
}

// Dump mode writes each accepted message, and only those, as one .eml file: a Received trace
// header, the envelope in X-Smtpbench- headers, then the message unstuffed, with no temporary
// file left behind.
func TestDumpMode(t *testing.T) {
	dir := t.TempDir()
	_, addr := startServer(t, server.Config{Mode: server.Dump, DumpDir: dir, MaxMessageSize: 1000})
	c := dialSMTP(t, "tcp", addr)
	c.expect(220, "")
	c.cmd("EHLO client.example", 250, "")

	// 1: DATA, two recipients, stuffed dots.
	c.cmd("MAIL FROM:<sender@example.com> BODY=8BITMIME", 250, "")
	c.cmd("RCPT TO:<a@example.org>", 250, "")
	c.cmd("RCPT TO:<b@example.org>", 250, "")
	c.cmd("DATA", 354, "")
	body1 := "Subject: one\r\n\r\n..leading dot\r\nmiddle\r\n...\r\nend\r\n"
	want1 := "Subject: one\r\n\r\n.leading dot\r\nmiddle\r\n..\r\nend\r\n"
	c.send(body1 + ".\r\n")
	id1 := queueID(t, c.expect(250, "2.0.0 Ok: queued as"))

	// Refused (too big): no file.
	c.cmd("MAIL FROM:<sender@example.com>", 250, "")
	c.cmd("RCPT TO:<a@example.org>", 250, "")
	c.cmd("DATA", 354, "")
	c.send(strings.Repeat("x", 1200) + "\r\n.\r\n")
	c.expect(552, "5.3.4")

	// 2: BDAT in two chunks, one recipient, SMTPUTF8; the octets are kept as sent.
	c.cmd("MAIL FROM:<>  SMTPUTF8", 250, "")
	c.cmd("RCPT TO:<ü@example.org>", 250, "")
	want2 := "Subject: two\r\n\r\n..not unstuffed\r\n\x00binary"
	c.send("BDAT 10\r\n" + want2[:10])
	c.expect(250, "2.0.0 Ok: received 10 octets")
	c.send("BDAT " + strconv.Itoa(len(want2)-10) + " LAST\r\n" + want2[10:])
	id2 := queueID(t, c.expect(250, "2.0.0 Ok: queued as"))
	c.cmd("QUIT", 221, "")

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".eml") {
			t.Errorf("a file that is not a message: %s", e.Name())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	if len(files) != 2 {
		t.Fatalf("%d .eml files, want 2: %v", len(entries), entries)
	}
	check := func(id, from string, rcpts []string, proto, content string) {
		t.Helper()
		var name, got string
		for n, b := range files {
			if strings.HasSuffix(n, "-"+id+".eml") {
				name, got = n, b
			}
		}
		if name == "" {
			t.Fatalf("no file for queue id %s among %v", id, entries)
		}
		header, msg, ok := strings.Cut(got, "\r\nX-Smtpbench-Mail-From: ")
		if !ok {
			t.Fatalf("%s: no X-Smtpbench-Mail-From header:\n%s", name, got)
		}
		forClause := ""
		if len(rcpts) == 1 {
			forClause = `\r\n\tfor ` + regexp.QuoteMeta(rcpts[0])
		}
		received := regexp.MustCompile(`^Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n\tby smtpbench\.localhost \(smtpbench\) with ` +
			proto + ` id ` + regexp.QuoteMeta(id) + forClause + `;\r\n\t[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$`)
		if !received.MatchString(header) {
			t.Errorf("%s: Received header %q does not match %s", name, header, received)
		}
		env := from + "\r\n"
		for _, r := range rcpts {
			env += "X-Smtpbench-Rcpt-To: " + r + "\r\n"
		}
		if !strings.HasPrefix(msg, env) {
			t.Errorf("%s: envelope headers %q, want %q", name, msg[:min(len(msg), len(env))], env)
		}
		if rest := strings.TrimPrefix(msg, env); rest != content {
			t.Errorf("%s: content %q, want %q", name, rest, content)
		}
	}
	check(id1, "<sender@example.com>", []string{"<a@example.org>", "<b@example.org>"}, "ESMTP", want1)
	check(id2, "<>", []string{"<ü@example.org>"}, "UTF8SMTP", want2)
}

var queuedAs = regexp.MustCompile(`^2\.0\.0 Ok: queued as ([0-9a-z]+\.[0-9a-z]+)$`)

// queueID is the id a "250 … queued as ID" reply gives.
func queueID(t *testing.T, r smtpReply) string {
	t.Helper()
	m := queuedAs.FindStringSubmatch(r.text())
	if m == nil {
		t.Fatalf("no queue id in %s", r)
	}
	return m[1]
}

// A message the dump cannot store is answered 451 4.3.0, not accepted, and the session goes on.
func TestDumpFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	srv, addr := startServer(t, server.Config{Mode: server.Dump, DumpDir: dir})
	c := dialSMTP(t, "tcp", addr)
	c.expect(220, "")
	c.cmd("HELO client.example", 250, "")
	c.cmd("MAIL FROM:<a@example.com>", 250, "")
	c.cmd("RCPT TO:<b@example.org>", 250, "")
	c.cmd("DATA", 354, "")
	c.send("x\r\n.\r\n")
	c.expect(451, "4.3.0 Error: could not store the message")
	c.cmd("RCPT TO:<b@example.org>", 503, "5.5.1") // the transaction ended
	c.cmd("QUIT", 221, "")
	if st := srv.Stats(); st.Messages != 0 || st.Replies[451] != 1 {
		t.Errorf("messages %d, 451 replies %d; want 0, 1", st.Messages, st.Replies[451])
	}
}

// Validate names the field of a setting that cannot work, as a *FieldError; New refuses it too.
func TestConfigValidate(t *testing.T) {
	var badFault server.Faults
	badFault.Points[server.AtRcpt].Reply = 1.5
	tests := []struct {
		name  string
		cfg   server.Config
		field string // "" for a valid config
	}{
		{"zero value", server.Config{}, ""},
		{"everything set", server.Config{Hostname: "mx-1.example", MaxLineLength: 1000, MaxLocalPart: 10,
			MaxDomain: 10, MaxPath: 30, MaxRecipients: 1, MaxMessageSize: 1, MaxErrors: 1, MaxConns: 1,
			CommandTimeout: time.Millisecond, DataTimeout: time.Millisecond, ReadBuffer: 2048, BodyBuffer: -1,
			EventLoops: -1, Mode: server.Dump, DumpDir: "/tmp"}, ""},
		{"hostname with a space", server.Config{Hostname: "bad host"}, "Hostname"},
		{"hostname with CRLF", server.Config{Hostname: "a\r\nb"}, "Hostname"},
		{"hostname too long", server.Config{Hostname: strings.Repeat("h", 256)}, "Hostname"},
		{"line length under 64", server.Config{MaxLineLength: 63, MaxPath: 20}, "MaxLineLength"},
		{"negative local part", server.Config{MaxLocalPart: -1}, "MaxLocalPart"},
		{"negative domain", server.Config{MaxDomain: -1}, "MaxDomain"},
		{"path under 3", server.Config{MaxPath: 2}, "MaxPath"},
		{"path over the line length", server.Config{MaxPath: 600}, "MaxPath"},
		{"negative recipients", server.Config{MaxRecipients: -1}, "MaxRecipients"},
		{"negative size", server.Config{MaxMessageSize: -1}, "MaxMessageSize"},
		{"negative errors", server.Config{MaxErrors: -5}, "MaxErrors"},
		{"negative conns", server.Config{MaxConns: -1}, "MaxConns"},
		{"negative command timeout", server.Config{CommandTimeout: -time.Second}, "CommandTimeout"},
		{"negative data timeout", server.Config{DataTimeout: -time.Second}, "DataTimeout"},
		{"huge read buffer", server.Config{ReadBuffer: 17 << 20}, "ReadBuffer"},
		{"body buffer under the read buffer", server.Config{BodyBuffer: 100}, "BodyBuffer"},
		{"body buffer -2", server.Config{BodyBuffer: -2}, "BodyBuffer"},
		{"huge body buffer", server.Config{BodyBuffer: 17 << 20}, "BodyBuffer"},
		{"unknown mode", server.Config{Mode: 7}, "Mode"},
		{"dump without a directory", server.Config{Mode: server.Dump}, "DumpDir"},
		{"unknown extension bits", server.Config{Disable: 1 << 12}, "Disable"},
		{"event loops -2", server.Config{EventLoops: -2}, "EventLoops"},
		{"event loops 1025", server.Config{EventLoops: 1025}, "EventLoops"},
		{"a fault probability over 1", server.Config{Faults: badFault}, "Faults"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			srv, newErr := server.New(tc.cfg)
			if tc.field == "" {
				if err != nil || newErr != nil || srv == nil {
					t.Fatalf("Validate: %v; New: %v", err, newErr)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted it; want an error about %s", tc.field)
			}
			if newErr == nil || srv != nil || newErr.Error() != err.Error() {
				t.Errorf("New returned %v, %v; want nil and %v", srv, newErr, err)
			}
			var fields []string
			for _, e := range flatten(err) {
				var fe *server.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("%v is not a *FieldError", e)
					continue
				}
				if !strings.HasPrefix(fe.Error(), "server: "+fe.Field+" ") || fe.Msg == "" {
					t.Errorf("FieldError text %q does not start with the field's name", fe.Error())
				}
				fields = append(fields, fe.Field)
			}
			var first *server.FieldError
			if !errors.As(err, &first) || first.Field != tc.field {
				t.Errorf("the first field named is %v (all: %v), want %s", first, fields, tc.field)
			}
		})
	}
}

// flatten lists the errors joined in err.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
