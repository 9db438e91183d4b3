package server_test

// Interoperability: the sink against SMTP clients that no one here wrote — Go's net/smtp, Python's
// smtplib, swaks and Postfix's smtp-source — over loopback TCP, with both I/O drivers. Each test
// checks what the sink says it received (Stats: sessions, messages, recipients, octets, replies
// by code), and in dump mode the message itself, not only that the client was content.
//
// A test skips when its peer is missing; bench/peers/install.sh (as root) installs them all.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/internal/peertest"
	"github.com/smtpbench/smtpbench/server"
)

// interopConfigs are the sinks each client is tried against: the two I/O drivers, discarding
// mail, and dump mode (which always runs a goroutine per connection), where the test also reads
// back every message.
var interopConfigs = []struct {
	name string
	dump bool
	cfg  server.Config
}{
	{"eventloop", false, server.Config{}},
	{"goroutine", false, server.Config{EventLoops: -1}},
	{"dump", true, server.Config{Mode: server.Dump}},
}

// forInteropConfigs runs f as a subtest against a fresh sink of each of interopConfigs.
func forInteropConfigs(t *testing.T, f func(t *testing.T, s *interopSink)) {
	for _, c := range interopConfigs {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			if c.dump {
				cfg.DumpDir = t.TempDir()
			}
			f(t, startInteropSink(t, cfg))
		})
	}
}

// interopSink is a Server on a loopback port.
type interopSink struct {
	srv  *server.Server
	addr string // 127.0.0.1:port
	port string
	dump string // the dump directory, or "" when mail is discarded
}

// startInteropSink serves cfg on 127.0.0.1. The cleanup shuts it down, checks that Serve ended
// as it should, and that no session panicked.
func startInteropSink(t *testing.T, cfg server.Config) *interopSink {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, server.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
		if st := srv.Stats(); st.Panics != 0 {
			t.Errorf("%d sessions panicked", st.Panics)
		}
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	dump := ""
	if cfg.Mode == server.Dump {
		dump = cfg.DumpDir
	}
	return &interopSink{srv: srv, addr: l.Addr().String(), port: port, dump: dump}
}

// settled returns the sink's stats once every session has ended: counters are bumped before the
// reply that a client waits for is written, but a session ends a little after its client does.
func (s *interopSink) settled(t *testing.T) server.Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.srv.Stats()
		if st.ActiveSessions == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still open 10s after the client finished", st.ActiveSessions)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// interopWant is what a test expects the sink to have counted.
type interopWant struct {
	sessions   uint64
	messages   uint64
	recipients uint64
	bytes      uint64 // message octets after unstuffing; 0: not computable, not checked
	replies    map[int]uint64
}

func checkInteropStats(t *testing.T, st server.Stats, w interopWant) {
	t.Helper()
	if st.Sessions != w.sessions || st.Messages != w.messages || st.Recipients != w.recipients {
		t.Errorf("sessions %d, messages %d, recipients %d; want %d, %d, %d",
			st.Sessions, st.Messages, st.Recipients, w.sessions, w.messages, w.recipients)
	}
	if w.bytes != 0 && st.Bytes != w.bytes {
		t.Errorf("bytes %d, want %d", st.Bytes, w.bytes)
	}
	if st.Rejected != 0 || st.Timeouts != 0 || st.Panics != 0 {
		t.Errorf("rejected %d, timeouts %d, panics %d; want none", st.Rejected, st.Timeouts, st.Panics)
	}
	if !maps.Equal(st.Replies, w.replies) {
		t.Errorf("replies by code %v, want %v", st.Replies, w.replies)
	}
}

// interopDump is one message the sink wrote in dump mode.
type interopDump struct {
	file    string
	from    string   // X-Smtpbench-Mail-From
	rcpts   []string // X-Smtpbench-Rcpt-To, in order
	content []byte   // the message as received, after the sink's own header fields
}

// readDumps reads every message in the dump directory, in the order the sink accepted them when
// its sessions ran one after another (by queue id: session, then message). It takes the sink's trace
// and envelope header fields off the front of each (a Received field with its continuation
// lines, then X-Smtpbench-Mail-From and X-Smtpbench-Rcpt-To) and fails on any other layout.
func (s *interopSink) readDumps(t *testing.T) []interopDump {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.dump, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	// Names are <unix nanoseconds>-<session>.<message>.eml, the queue id's numbers in base 36.
	queueID := func(name string) (session, message uint64) {
		_, id, _ := strings.Cut(strings.TrimSuffix(filepath.Base(name), ".eml"), "-")
		a, b, _ := strings.Cut(id, ".")
		session, _ = strconv.ParseUint(a, 36, 64)
		message, _ = strconv.ParseUint(b, 36, 64)
		return session, message
	}
	slices.SortFunc(names, func(a, b string) int {
		as, am := queueID(a)
		bs, bm := queueID(b)
		return cmp.Or(cmp.Compare(as, bs), cmp.Compare(am, bm))
	})
	var out []interopDump
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		d := interopDump{file: filepath.Base(name)}
		line := func() string {
			i := bytes.Index(data, []byte("\r\n"))
			if i < 0 {
				t.Fatalf("%s: a header line with no CRLF", d.file)
			}
			l := string(data[:i])
			data = data[i+2:]
			return l
		}
		if l := line(); !strings.HasPrefix(l, "Received: from ") {
			t.Fatalf("%s starts with %q, not the sink's Received field", d.file, l)
		}
		for len(data) > 0 && data[0] == '\t' {
			line()
		}
		var ok bool
		if d.from, ok = strings.CutPrefix(line(), "X-Smtpbench-Mail-From: "); !ok {
			t.Fatalf("%s: no X-Smtpbench-Mail-From after Received", d.file)
		}
		for bytes.HasPrefix(data, []byte("X-Smtpbench-Rcpt-To: ")) {
			d.rcpts = append(d.rcpts, strings.TrimPrefix(line(), "X-Smtpbench-Rcpt-To: "))
		}
		d.content = data
		out = append(out, d)
	}
	return out
}

// dumpCount is the number of messages interopDump so far (0 when mail is discarded).
func (s *interopSink) dumpCount(t *testing.T) int {
	t.Helper()
	if s.dump == "" {
		return 0
	}
	return len(s.readDumps(t))
}

// checkDumps checks that, after the first skip messages, the sink interopDump exactly these messages,
// in this order, each from sender to rcpts (paths with their angle brackets) and with content
// exactly as given.
func (s *interopSink) checkDumps(t *testing.T, skip int, sender string, rcpts []string, contents ...[]byte) {
	t.Helper()
	got := s.readDumps(t)
	if len(got) != skip+len(contents) {
		t.Fatalf("%d messages interopDump, want %d", len(got)-skip, len(contents))
	}
	got = got[skip:]
	for i, d := range got {
		if d.from != sender || !slices.Equal(d.rcpts, rcpts) {
			t.Errorf("%s: envelope from %s to %v, want from %s to %v", d.file, d.from, d.rcpts, sender, rcpts)
		}
		if !bytes.Equal(d.content, contents[i]) {
			t.Errorf("%s: content differs from what the client sent:\n%s", d.file, interopFirstDiff(d.content, contents[i]))
		}
	}
}

// interopFirstDiff describes where got first differs from want.
func interopFirstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-40)
	return fmt.Sprintf("%d octets, want %d; from octet %d got %q, want %q", len(got), len(want), lo,
		got[lo:min(len(got), i+40)], want[lo:min(len(want), i+40)])
}

// interopCRLF turns LF line ends into CRLF, as every client here does with a message it is given.
func interopCRLF(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// interopDottyBody is a message whose lines start with dots in every way that matters: one dot and text,
// two dots, a line that is only a dot (which a client must stuff, or it would end the message),
// and a dot and a space. Lines end with LF; clients send CRLF.
func interopDottyBody(subject string) string {
	return "From: <sender@example.com>\n" +
		"To: <a@example.org>\n" +
		"Subject: " + subject + "\n" +
		"\n" +
		".a line that starts with a dot\n" +
		"..two dots\n" +
		".\n" +
		"the line above is a lone dot, the next one a dot and a space\n" +
		". \n" +
		"...\n" +
		"end\n"
}

// interopLongBody is a message of about size octets with lines of many lengths up to the 998 octets
// RFC 5321 allows, a dot at the start of every seventh line and a lone dot now and then, so stuffed
// dots fall on every side of the sink's read boundaries.
func interopLongBody(size int) string {
	var b strings.Builder
	b.WriteString("From: <sender@example.com>\nTo: <a@example.org>\nSubject: a long one\n\n")
	for i := 0; b.Len() < size; i++ {
		switch {
		case i%50 == 49:
			b.WriteString(".\n")
		case i%7 == 3:
			b.WriteString(".")
			fallthrough
		default:
			n := (i * 131) % 998
			for j := range n {
				b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789 "[(i+j)%37])
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

var interopRcpts = []string{"a@example.org", "b@example.org", "c@example.net"}

// interopPaths returns the paths as the sink's envelope headers show them.
func interopPaths(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = "<" + a + ">"
	}
	return out
}

// Go's net/smtp: three messages on one connection (EHLO, then MAIL, RCPT ×3, DATA each time,
// then QUIT), and smtp.SendMail.
func TestInteropNetSMTP(t *testing.T) {
	forInteropConfigs(t, func(t *testing.T, s *interopSink) {
		t.Run("one connection", func(t *testing.T) {
			before, dumpsBefore := s.settled(t), s.dumpCount(t)
			conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second)) // net/smtp has no timeouts of its own
			c, err := smtp.NewClient(conn, "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Hello("client.example"); err != nil {
				t.Fatal(err)
			}
			// net/smtp parsed the EHLO reply: the extensions and SIZE's parameter.
			for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"} {
				if ok, _ := c.Extension(ext); !ok {
					t.Errorf("net/smtp does not see %s in the EHLO reply", ext)
				}
			}
			if ok, param := c.Extension("SIZE"); !ok || param != "33554432" {
				t.Errorf("net/smtp sees SIZE %v with %q, want 33554432", ok, param)
			}
			var sent [][]byte
			var octets uint64
			for i := range 3 {
				if err := c.Mail("sender@example.com"); err != nil {
					t.Fatalf("message %d: MAIL: %v", i, err)
				}
				for _, r := range interopRcpts {
					if err := c.Rcpt(r); err != nil {
						t.Fatalf("message %d: RCPT %s: %v", i, r, err)
					}
				}
				w, err := c.Data()
				if err != nil {
					t.Fatalf("message %d: DATA: %v", i, err)
				}
				body := interopCRLF(interopDottyBody("net/smtp " + strconv.Itoa(i)))
				if _, err := w.Write(body); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil { // sends the final dot and reads the reply
					t.Fatalf("message %d: end of data: %v", i, err)
				}
				sent = append(sent, body)
				octets += uint64(len(body))
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
			checkInteropStats(t, interopDiff(s.settled(t), before), interopWant{
				sessions: 1, messages: 3, recipients: 9, bytes: octets,
				replies: map[int]uint64{220: 1, 250: 1 + 3*(1+3+1), 354: 3, 221: 1},
			})
			if s.dump != "" {
				s.checkDumps(t, dumpsBefore, "<sender@example.com>", interopPaths(interopRcpts), sent...)
			}
		})
		t.Run("SendMail", func(t *testing.T) {
			before, dumpsBefore := s.settled(t), s.dumpCount(t)
			msg := interopDottyBody("smtp.SendMail") // LF line ends: SendMail's dot writer makes them CRLF
			done := make(chan error, 1)
			go func() { done <- smtp.SendMail(s.addr, nil, "sender@example.com", interopRcpts, []byte(msg)) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("smtp.SendMail did not return within 30s")
			}
			st := interopDiff(s.settled(t), before)
			checkInteropStats(t, st, interopWant{
				sessions: 1, messages: 1, recipients: 3, bytes: uint64(len(interopCRLF(msg))),
				replies: map[int]uint64{220: 1, 250: 1 + 1 + 3 + 1, 354: 1, 221: 1},
			})
			if s.dump != "" {
				s.checkDumps(t, dumpsBefore, "<sender@example.com>", interopPaths(interopRcpts), interopCRLF(msg))
			}
		})
	})
}

// smtplibScript sends each file named on its command line as one message with smtplib, all on one
// connection, and prints the server's EHLO keywords and how many recipients each message had
// refused. argv: port, sender, comma-separated recipients, files.
const smtplibScript = `
import json, smtplib, sys
port, sender, rcpts, files = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(','), sys.argv[4:]
s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.example', timeout=20)
code, _ = s.ehlo()
refused = []
for name in files:
    with open(name, 'rb') as f:
        refused.append(len(s.sendmail(sender, rcpts, f.read())))
features = s.esmtp_features
s.quit()
print(json.dumps({'ehlo': code, 'features': features, 'refused': refused}))
`

// Python's smtplib: sendmail to three recipients, twice on one connection; one message has lines
// starting with dots and a lone dot, the other is long.
func TestInteropPythonSmtplib(t *testing.T) {
	python := peertest.RequirePython(t, "smtplib")
	forInteropConfigs(t, func(t *testing.T, s *interopSink) {
		msgs := [][]byte{interopCRLF(interopDottyBody("smtplib")), interopCRLF(interopLongBody(300 << 10))}
		args := []string{"-c", smtplibScript, s.port, "sender@example.com", strings.Join(interopRcpts, ",")}
		var octets uint64
		dir := t.TempDir()
		for i, m := range msgs {
			name := filepath.Join(dir, "msg"+strconv.Itoa(i))
			if err := os.WriteFile(name, m, 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, name)
			octets += uint64(len(m))
		}
		out, code := peertest.Run(t, nil, python, args...)
		if code != 0 {
			t.Fatalf("smtplib failed (exit %d):\n%s", code, out)
		}
		var res struct {
			EHLO     int               `json:"ehlo"`
			Features map[string]string `json:"features"`
			Refused  []int             `json:"refused"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("smtplib's report %q: %v", out, err)
		}
		if res.EHLO != 250 || !slices.Equal(res.Refused, []int{0, 0}) {
			t.Errorf("smtplib: EHLO %d, refused recipients %v", res.EHLO, res.Refused)
		}
		for _, ext := range []string{"pipelining", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking"} {
			if _, ok := res.Features[ext]; !ok {
				t.Errorf("smtplib does not see %s in the EHLO reply %v", ext, res.Features)
			}
		}
		if res.Features["size"] != "33554432" {
			t.Errorf("smtplib sees SIZE %q", res.Features["size"])
		}
		checkInteropStats(t, s.settled(t), interopWant{
			sessions: 1, messages: 2, recipients: 6, bytes: octets,
			replies: map[int]uint64{220: 1, 250: 1 + 2*(1+3+1), 354: 2, 221: 1},
		})
		if s.dump != "" {
			s.checkDumps(t, 0, "<sender@example.com>", interopPaths(interopRcpts), msgs...)
		}
	})
}

// swaks, with --pipeline and without, to three recipients; its data has a lone dot line.
func TestInteropSwaks(t *testing.T) {
	swaks := peertest.Require(t, "swaks")
	data := "Subject: swaks\n\nfirst line\n.\n..two dots\n.one dot\nlast line" // no final LF: swaks adds CRLF
	// What the message is once swaks has sent it and the sink has unstuffed it.
	content := append(interopCRLF(data), "\r\n"...)
	run := func(t *testing.T, s *interopSink, pipeline bool) []byte {
		t.Helper()
		file := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"--server", s.addr, "--helo", "client.example", "--from", "sender@example.com",
			"--to", strings.Join(interopRcpts, ","), "--data", "@" + file, "--timeout", "20"}
		if pipeline {
			args = append(args, "--pipeline")
		}
		out, code := peertest.Run(t, nil, swaks, args...)
		if code != 0 {
			t.Fatalf("swaks exited %d:\n%s", code, out)
		}
		return out
	}
	forInteropConfigs(t, func(t *testing.T, s *interopSink) {
		for _, pipeline := range []bool{true, false} {
			name := map[bool]string{true: "pipeline", false: "lock-step"}[pipeline]
			t.Run(name, func(t *testing.T) {
				before, dumpsBefore := s.settled(t), s.dumpCount(t)
				out := run(t, s, pipeline)
				if got := swaksPipelined(t, out); got != pipeline {
					t.Errorf("swaks pipelined: %v, want %v; its transcript:\n%s", got, pipeline, out)
				}
				st := s.settled(t)
				checkInteropStats(t, interopDiff(st, before), interopWant{
					sessions: 1, messages: 1, recipients: 3, bytes: uint64(len(content)),
					replies: map[int]uint64{220: 1, 250: 1 + 1 + 3 + 1, 354: 1, 221: 1},
				})
				if s.dump != "" {
					s.checkDumps(t, dumpsBefore, "<sender@example.com>", interopPaths(interopRcpts), content)
				}
			})
		}
	})
	// A sink that does not offer PIPELINING: swaks --pipeline falls back to one command at a time.
	t.Run("not offered", func(t *testing.T) {
		s := startInteropSink(t, server.Config{Disable: server.ExtPipelining})
		out := run(t, s, true)
		if swaksPipelined(t, out) {
			t.Errorf("swaks pipelined with a sink that does not offer it:\n%s", out)
		}
		checkInteropStats(t, s.settled(t), interopWant{
			sessions: 1, messages: 1, recipients: 3, bytes: uint64(len(content)),
			replies: map[int]uint64{220: 1, 250: 6, 354: 1, 221: 1},
		})
	})
}

// swaksPipelined reads swaks' transcript: did it send MAIL, the RCPTs and DATA before reading a
// reply (" -> " lines are what it sent, "<-  " what it read)?
func swaksPipelined(t *testing.T, transcript []byte) bool {
	t.Helper()
	lines := strings.Split(string(transcript), "\n")
	mail := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, " -> MAIL FROM:") })
	data := slices.IndexFunc(lines, func(l string) bool { return l == " -> DATA" })
	if mail < 0 || data < mail {
		t.Fatalf("no MAIL ... DATA in swaks' transcript:\n%s", transcript)
	}
	for _, l := range lines[mail:data] {
		if strings.HasPrefix(l, "<-") {
			return false
		}
	}
	return true
}

// interopDiff returns the counts of st that came after before.
func interopDiff(st, before server.Stats) server.Stats {
	st.Sessions -= before.Sessions
	st.Messages -= before.Messages
	st.Recipients -= before.Recipients
	st.Bytes -= before.Bytes
	st.Rejected -= before.Rejected
	st.Timeouts -= before.Timeouts
	replies := maps.Clone(st.Replies)
	for code, n := range before.Replies {
		if replies[code] -= n; replies[code] == 0 {
			delete(replies, code)
		}
	}
	st.Replies = replies
	return st
}

// smtpSourcePayload is the message body smtp-source sends for -l length: length octets of X,
// CRLF-broken every 80 with each line numbered by a digit, then CRLF (smtp-source.c, main and
// data_done).
func smtpSourcePayload(length int) []byte {
	b := bytes.Repeat([]byte{'X'}, length)
	for i := 80; i < length; i += 80 {
		b[i-80] = "0123456789"[(i/80)%10]
		b[i-2], b[i-1] = '\r', '\n'
	}
	return append(b, '\r', '\n')
}

// smtpSourceHeader matches the header smtp-source puts before its payload, with -M
// client.example: From, To, Date, Message-Id <pid.fd.count@host> (in hex), and the empty line.
var smtpSourceHeader = regexp.MustCompile(`^From: <foo@client\.example>\r\nTo: <foo@client\.example>\r\n` +
	`Date: [A-Z][a-z]{2}, [ 0-9]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [-+]\d{4}(?: \([^)\r\n]*\))?\r\n` +
	`Message-Id: <[0-9a-f]{4,8}\.[0-9a-f]{4,8}\.[0-9a-f]{4,8}@client\.example>\r\n\r\n`)

// Postfix's smtp-source: many sessions in parallel, one command at a time (it cannot pipeline),
// HELO rather than EHLO.
func TestInteropSmtpSource(t *testing.T) {
	bin := peertest.Require(t, "smtp-source")
	for _, c := range interopConfigs[:2] { // the two drivers, discarding mail
		t.Run(c.name, func(t *testing.T) {
			for _, tc := range []struct {
				name            string
				args            []string
				messages, rcpts uint64
				sessions        uint64
				length          int
			}{
				// -d: each of the 20 sessions keeps its connection for its next message.
				{name: "s20 m2000 d", args: []string{"-s", "20", "-m", "2000", "-l", "1024", "-d"},
					messages: 2000, rcpts: 1, sessions: 20, length: 1024},
				// -r 5 -N: five recipients a message, numbered so that none repeats.
				{name: "s10 m500 r5 N d", args: []string{"-s", "10", "-m", "500", "-l", "512", "-r", "5", "-N", "-d"},
					messages: 500, rcpts: 5, sessions: 10, length: 512},
				// No -d: a connection per message.
				{name: "s20 m500", args: []string{"-s", "20", "-m", "500", "-l", "512"},
					messages: 500, rcpts: 1, sessions: 500, length: 512},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg := c.cfg
					s := startInteropSink(t, cfg)
					args := append([]string{"-c", "-M", "client.example"}, tc.args...)
					out, code := peertest.Run(t, nil, bin, append(args, s.addr)...)
					if code != 0 {
						t.Fatalf("smtp-source %s exited %d:\n%s", strings.Join(tc.args, " "), code, out)
					}
					// -c prints a counter of messages sent, "1\r2\r...N\r\n".
					counts := strings.Fields(strings.ReplaceAll(string(out), "\r", " "))
					if len(counts) == 0 || counts[len(counts)-1] != strconv.FormatUint(tc.messages, 10) {
						t.Errorf("smtp-source counted %q at the end, want %d", counts[max(0, len(counts)-1):], tc.messages)
					}
					st := s.settled(t)
					n := tc.messages
					checkInteropStats(t, st, interopWant{
						sessions: tc.sessions, messages: n, recipients: n * tc.rcpts,
						replies: map[int]uint64{
							220: tc.sessions,
							250: tc.sessions + n*(1+tc.rcpts+1), // HELO; MAIL, RCPTs, end of data
							354: n,
							221: tc.sessions,
						},
					})
					// Each message is smtp-source's header (about 150 octets here), then the
					// payload. (The header is not the same size for all: the last field of the
					// Message-Id counts the messages left, in hex, and a session that finds none
					// left after it started writes -1, "ffffffff". The dump test below accounts
					// for every octet.)
					payload := uint64(len(smtpSourcePayload(tc.length)))
					if lo, hi := n*(payload+100), n*(payload+200); st.Bytes < lo || st.Bytes > hi {
						t.Errorf("bytes %d: %.1f a message, want %d of payload and 100 to 200 of header",
							st.Bytes, float64(st.Bytes)/float64(n), payload)
					}
				})
			}
		})
	}
	// Dump mode: every octet accounted for.
	t.Run("dump", func(t *testing.T) {
		s := startInteropSink(t, server.Config{Mode: server.Dump, DumpDir: t.TempDir()})
		out, code := peertest.Run(t, nil, bin, "-M", "client.example", "-s", "2", "-m", "6", "-r", "3", "-N",
			"-l", "300", "-d", s.addr)
		if code != 0 {
			t.Fatalf("smtp-source exited %d:\n%s", code, out)
		}
		st := s.settled(t)
		checkInteropStats(t, st, interopWant{sessions: 2, messages: 6, recipients: 18,
			replies: map[int]uint64{220: 2, 250: 2 + 6*5, 354: 6, 221: 2}})
		payload := smtpSourcePayload(300)
		var octets uint64
		seen := map[string]bool{}
		for _, d := range s.readDumps(t) {
			octets += uint64(len(d.content))
			h := smtpSourceHeader.Find(d.content)
			if h == nil {
				t.Errorf("%s: not smtp-source's header:\n%q", d.file, d.content[:min(len(d.content), 300)])
				continue
			}
			if body := d.content[len(h):]; !bytes.Equal(body, payload) {
				t.Errorf("%s: payload differs:\n%s", d.file, interopFirstDiff(body, payload))
			}
			if d.from != "<foo@client.example>" || len(d.rcpts) != 3 {
				t.Errorf("%s: envelope from %s to %v", d.file, d.from, d.rcpts)
			}
			for _, r := range d.rcpts {
				seen[r] = true
			}
		}
		if octets != st.Bytes {
			t.Errorf("the sink counted %d octets, interopDump %d", st.Bytes, octets)
		}
		for i := 1; i <= 18; i++ { // -N: recipients 1foo to 18foo, each once
			if r := "<" + strconv.Itoa(i) + "foo@client.example>"; !seen[r] {
				t.Errorf("recipient %s was not interopDump (got %v)", r, slices.Sorted(maps.Keys(seen)))
			}
		}
	})
}
