package server

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/internal/mono"
)

// fzServers are the configurations FuzzCommandLine drives a session with: the defaults, small
// limits that the fuzzer reaches easily, and faults (error replies, disconnects and delays, whose
// holds the harness ends at once, as a driver would once their time came).
var fzServers = sync.OnceValue(func() []*Server {
	var f Faults
	f.Points[AtConnect].Reply, f.Points[AtConnect].ReplyCode, f.Points[AtConnect].ReplyText = 0.1, 554, "5.3.2 Not now"
	f.Points[AtMail].Reply, f.Points[AtMail].ReplyCode, f.Points[AtMail].ReplyText = 0.3, 451, "4.3.0 Try later"
	f.Points[AtRcpt].Reply, f.Points[AtRcpt].ReplyCode, f.Points[AtRcpt].ReplyText = 0.3, 450, "4.2.1 Busy"
	f.Points[AtRcpt].Delay = Dist{Kind: DistUniform, A: 0, B: time.Millisecond}
	f.Points[AtDot].Reply, f.Points[AtDot].ReplyCode, f.Points[AtDot].ReplyText = 0.3, 554, "5.7.1 No"
	f.Points[AtDot].Delay = Dist{Kind: DistFixed, A: time.Millisecond}
	f.Points[AtBdat].Disconnect, f.Points[AtBdat].Disconnect421 = 0.1, true
	f.Points[AtData].Delay = Dist{Kind: DistExponential, A: time.Millisecond}
	f.Points[AtData].Reply, f.Points[AtData].ReplyCode, f.Points[AtData].ReplyText = 0.1, 421, "4.3.2 Bye"
	f.Points[AtEHLO].Disconnect = 0.05
	f.Points[AtConnect].Delay = Dist{Kind: DistFixed, A: time.Millisecond}
	f.Greylist = time.Hour
	cfgs := []Config{
		{},
		{MaxLineLength: 64, MaxLocalPart: 4, MaxDomain: 8, MaxPath: 20, MaxRecipients: 2, MaxMessageSize: 16,
			MaxErrors: 4, ExpnAllowed: true, Disable: ExtEnhancedStatusCodes | ExtChunking},
		{MaxRecipients: 3, MaxMessageSize: 64, Faults: f},
	}
	srvs := make([]*Server, len(cfgs))
	for i, c := range cfgs {
		s, err := New(c)
		if err != nil {
			panic(err)
		}
		srvs[i] = s
	}
	return srvs
})

// fzSession is a session driven the way the drivers drive one, without I/O.
type fzSession struct {
	ss      session
	pending []byte // a partial command line the session did not consume
	out     []byte // every reply so far
}

// feed hands in (after what is pending) to the session, ending holds and flush points as the
// drivers do, and returns the octets of new replies.
func (f *fzSession) feed(in []byte) int {
	ss := &f.ss
	buf := append(f.pending, in...)
	before := len(f.out)
	n := 0
	for !ss.closing {
		k := ss.consume(buf[n:])
		n += k
		f.flush()
		if ss.holdUntil != 0 {
			ss.now = ss.holdUntil
			ss.resume()
			continue
		}
		if ss.flushNow {
			ss.flushNow = false
			continue
		}
		if k == 0 {
			break
		}
	}
	f.flush()
	f.pending = append(f.pending[:0:0], buf[n:]...)
	return len(f.out) - before
}

func (f *fzSession) flush() {
	f.out = append(f.out, f.ss.out...)
	f.ss.out = f.ss.out[:0]
	f.ss.written(mono.Now())
}

// fzCheckReplies checks that out is a sequence of whole replies: lines of a three-digit code, then
// '-' (more lines follow, with the same code) or ' ' (the last line), then text and CRLF.
func fzCheckReplies(t *testing.T, out []byte) {
	t.Helper()
	code := ""
	for len(out) > 0 {
		i := bytes.Index(out, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("a reply line without CRLF: %q", out)
		}
		l := out[:i]
		out = out[i+2:]
		if len(l) < 4 || bytes.ContainsAny(l, "\r\n") {
			t.Fatalf("malformed reply line %q", l)
		}
		n, err := strconv.Atoi(string(l[:3]))
		if err != nil || n < 200 || n > 599 || l[0] == '+' || l[0] == '-' {
			t.Fatalf("reply line %q does not start with a code", l)
		}
		if code != "" && string(l[:3]) != code {
			t.Fatalf("multi-line reply changes its code at %q", l)
		}
		switch l[3] {
		case '-':
			code = string(l[:3])
		case ' ':
			code = ""
		default:
			t.Fatalf("reply line %q: no space or hyphen after the code", l)
		}
	}
	if code != "" {
		t.Fatalf("the last reply is not finished (a line %s- ends it)", code)
	}
}

// FuzzCommandLine feeds arbitrary input, line by line, to a session and checks that it never
// panics, that everything it writes is well-formed replies, and that it keeps answering: every
// complete command line gets a reply (unless it starts a BDAT chunk), no input is left
// unconsumed but a partial command line, and once the session said 221 or 421 it reads nothing
// more. At the end it must still answer a NOOP unless it closed.
func FuzzCommandLine(f *testing.F) {
	seeds := []string{
		"EHLO client.example\r\nMAIL FROM:<a@example.com> SIZE=10\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
		"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nBDAT 3\r\nabcBDAT 2 LAST\r\nde",
		"EHLO x\r\nMAIL FROM:<a@b.c> BODY=BINARYMIME SMTPUTF8\r\nRCPT TO:<\xc3\xa9@b.c>\r\nDATA\r\nBDAT 0 LAST\r\n",
		"ehlo x\nmail from:<a@b.c>\nrcpt to:<@r.x:b@c.d>\ndata\nx\n.\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<b@c.d>\r\nDATA\r\na\n.\r\nMAIL FROM:<e@f.g>\r\n.\r\n",
		"NOOP\r\nRSET\r\nVRFY x\r\nEXPN y\r\nHELP\r\nSTARTTLS\r\nAUTH PLAIN\r\nFOO\r\n\r\n\r\nQUIT x\r\n",
		"MAIL FROM:<a@b.c>\r\nRCPT TO:<a@b.c>\r\nDATA\r\nBDAT 1 LAST\r\n",
		"EHLO x\r\nMAIL FROM:<" + string(bytes.Repeat([]byte("a"), 70)) + "@b.c>\r\n" + string(bytes.Repeat([]byte("z"), 600)) + "\r\nNOOP\r\n",
		"EHLO x\r\nBDAT 999999999999999999 LAST\r\nabc",
		"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<b@c.d>\r\nDATA\r\n.",
		"EHLO x\r\nMAIL FROM:<a@[1.2.3.4]>\r\nRCPT TO:<\"q\\\"x\"@d.e>\r\nDATA\r\n\r.\r\r\n.\r\n",
		"QUIT\r\nNOOP\r\n",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, input []byte, which uint8) {
		srvs := fzServers()
		srv := srvs[int(which)%len(srvs)]
		fs := &fzSession{}
		ss := &fs.ss
		ss.reset(srv, uint64(which)+1, "", mono.Now())
		ss.start(false)
		if ss.holdUntil != 0 {
			ss.resume()
		}
		fs.flush()
		if len(fs.out) == 0 {
			t.Fatal("no greeting")
		}
		maxLine := srv.cfg.MaxLineLength
		for len(input) > 0 {
			i := bytes.IndexByte(input, '\n')
			seg := input
			if i >= 0 {
				seg = input[:i+1]
			}
			input = input[len(seg):]
			if ss.closing {
				before := len(fs.out)
				if n := ss.consume(seg); n != 0 || len(ss.out) != 0 || len(fs.out) != before {
					t.Fatalf("the session read %d octets and wrote %q after it closed", n, ss.out)
				}
				break
			}
			prevMode := ss.mode
			wrote := fs.feed(seg)
			if ss.closing {
				continue
			}
			// What is left is a partial command line, shorter than the limit.
			if p := fs.pending; len(p) > 0 {
				if ss.mode != modeCommand || bytes.IndexByte(p, '\n') >= 0 || len(p) >= maxLine {
					t.Fatalf("the session left %q unconsumed in mode %d", p, ss.mode)
				}
			}
			// A whole command line was answered, unless it started a BDAT chunk.
			wholeLine := seg[len(seg)-1] == '\n'
			if (prevMode == modeCommand || prevMode == modeDrainLine) && wholeLine && ss.mode != modeBdat && wrote == 0 {
				t.Fatalf("no reply to the command line %q", append(fs.pending[:0:0], seg...))
			}
		}
		// Bring the session back to commands, and check that it still answers.
		if !ss.closing {
			switch ss.mode {
			case modeData:
				// CRLF "." CRLF ends the data whatever state the dot reader is in (a "." CRLF
				// left over is then a command, and answered).
				fs.feed([]byte("\r\n.\r\n"))
			case modeBdat:
				if ss.bdatLeft > 1<<16 {
					return // too long a chunk to send here
				}
				fs.feed(bytes.Repeat([]byte{'x'}, int(ss.bdatLeft)))
			case modeDrainLine:
				fs.feed([]byte("\n"))
			}
		}
		if !ss.closing {
			if ss.mode != modeCommand {
				t.Fatalf("mode %d after ending the data or chunk", ss.mode)
			}
			// (A partial line left pending makes this another command; it is answered all the same.)
			if fs.feed([]byte("NOOP\r\n")) == 0 && !(ss.closing && fzSilentDisconnects(&srv.cfg)) {
				t.Fatalf("no reply to NOOP after %q", fs.out)
			}
		}
		fzCheckReplies(t, fs.out)
		if ss.closing && !fzSilentDisconnects(&srv.cfg) {
			// The last reply said goodbye.
			body := fs.out[:len(fs.out)-2]
			last := body[bytes.LastIndex(body, []byte("\r\n"))+2:]
			if !bytes.HasPrefix(last, []byte("221 ")) && !bytes.HasPrefix(last, []byte("421 ")) {
				t.Fatalf("the session closed after %q", last)
			}
		}
	})
}

// fzSilentDisconnects reports whether cfg may close a connection with no reply.
func fzSilentDisconnects(cfg *Config) bool {
	for _, p := range cfg.Faults.Points {
		if p.Disconnect > 0 && !p.Disconnect421 {
			return true
		}
	}
	return false
}

// fzRefDot is an independent reading of message data: the end is the first line, starting the data
// or after a CRLF, that is "." CRLF; the content is every line before it with a leading dot
// removed; a CR not before an LF or an LF not after a CR is bare.
func fzRefDot(p []byte) (content []byte, end int, bare, done bool) {
	start := 0
	for {
		if bytes.HasPrefix(p[start:], []byte(".\r\n")) {
			end, done = start+3, true
			break
		}
		i := bytes.Index(p[start:], []byte("\r\n"))
		if i < 0 {
			break
		}
		l := p[start : start+i+2]
		if l[0] == '.' {
			l = l[1:]
		}
		content = append(content, l...)
		start += i + 2
	}
	if done {
		region := p[:start]
		for k, c := range region {
			if c == '\r' && (k+1 == len(region) || region[k+1] != '\n') || c == '\n' && (k == 0 || region[k-1] != '\r') {
				bare = true
			}
		}
	}
	return content, end, bare, done
}

// FuzzDotReader checks the dot reader against fzRefDot, and that its result does not depend on how
// the data is split into reads.
func FuzzDotReader(f *testing.F) {
	for _, tc := range dtCases {
		f.Add([]byte(tc.input), uint16(len(tc.input)/2))
	}
	for _, s := range []string{"\n.\r\n", "\r.\r\n", "\r\n.\n", "\n.\n", ".\r\r\n", "..x\r\n.\r\n", "..\r\n.\r\n",
		"a\r\n.\r\nb", "\r\n.\r", ".\r", "x\r\n..\r\r\n.\r\n"} {
		f.Add([]byte(s), uint16(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		whole := dtFeed(in, max(len(in), 1))
		at := int(split) % (len(in) + 1)
		for how, r := range map[string]dtResult{
			"one octet at a time":             dtFeed(in, 1),
			fmt.Sprintf("split at %d", at):    dtFeedSplit(in, at),
			"in pieces of 3":                  dtFeed(in, 3),
			fmt.Sprintf("pieces of %d", at+1): dtFeed(in, at+1),
		} {
			if r != whole {
				t.Fatalf("%s: %+v; whole: %+v", how, r, whole)
			}
		}
		content, end, bare, done := fzRefDot(in)
		if whole.done != done {
			t.Fatalf("done %v, the reference says %v (%+v)", whole.done, done, whole)
		}
		if !done {
			if whole.consumed != len(in) {
				t.Fatalf("not done, but consumed %d of %d octets", whole.consumed, len(in))
			}
			return
		}
		if whole.consumed != end || whole.content != string(content) || whole.size != int64(len(content)) || whole.bare != bare {
			t.Fatalf("consumed %d, content %q, size %d, bare %v; the reference: %d, %q, %d, %v",
				whole.consumed, whole.content, whole.size, whole.bare, end, content, len(content), bare)
		}
	})
}
