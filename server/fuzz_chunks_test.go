package server

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/smtpbench/smtpbench/internal/mono"
)

// Fuzz targets that cut their input into arbitrary reads: a session and the dot reader must give
// the same result however their input arrives, as TCP may deliver it in any segments.

// fcConfigs are the configurations FuzzCommand drives a session with (chosen by a fuzzed byte):
// the defaults, small limits the fuzzer reaches, every extension off, and some off with errors
// allowed for long.
var fcConfigs = []Config{
	{},
	{MaxLineLength: 64, MaxPath: 60, MaxLocalPart: 8, MaxDomain: 20, MaxRecipients: 2, MaxMessageSize: 100,
		MaxErrors: 3, ExpnAllowed: true},
	{Disable: ExtPipelining | ExtSize | Ext8BitMIME | ExtSMTPUTF8 | ExtEnhancedStatusCodes | ExtChunking},
	{Disable: ExtEnhancedStatusCodes | ExtChunking, MaxErrors: 1 << 20, MaxMessageSize: 1000},
}

var fcServers = sync.OnceValue(func() []*Server {
	srvs := make([]*Server, len(fcConfigs))
	for i, c := range fcConfigs {
		s, err := New(c)
		if err != nil {
			panic(err)
		}
		srvs[i] = s
	}
	return srvs
})

// fcCodes is every reply code the sink can give.
var fcCodes = func() map[int]bool {
	m := map[int]bool{}
	for _, s := range replySpecs {
		m[s.code] = true
	}
	return m
}()

// fcOutcome is what a session did with some input.
type fcOutcome struct {
	out      string // every reply it wrote
	closed   bool   // it asked to close the connection
	leftover int    // input it did not consume (a partial command line, or what came after closing)
}

// fcRun drives a new session with input cut into reads of the given lengths (each a byte plus one,
// cycled; none: one read), the way a driver does: consume what arrived, go on at flush points,
// read more when the session needs it, stop when it closes.
func fcRun(t *testing.T, srv *Server, input, lengths []byte) fcOutcome {
	var ss session
	ss.reset(srv, 1, "", mono.Now())
	ss.start(false)
	var pending []byte
	off := 0
	for i := 0; off < len(input) && !ss.closing; i++ {
		n := len(input) - off
		if len(lengths) > 0 {
			n = min(n, int(lengths[i%len(lengths)])+1)
		}
		pending = append(pending, input[off:off+n]...)
		off += n
		for guard := 0; !ss.closing; guard++ {
			if guard > len(input)+4 {
				t.Fatalf("the session makes no progress on %q", pending)
			}
			k := ss.consume(pending)
			if k < 0 || k > len(pending) {
				t.Fatalf("consume used %d of %d octets", k, len(pending))
			}
			pending = pending[k:]
			if ss.holdUntil != 0 {
				t.Fatalf("a hold with no faults configured")
			}
			if ss.flushNow {
				ss.flushNow = false // a flush point: write, then go on with what is buffered
				continue
			}
			if k == 0 {
				break // it needs more input
			}
		}
	}
	return fcOutcome{string(ss.out), ss.closing, len(pending) + len(input) - off}
}

// fcCheckReplies checks that out is a sequence of whole, well-formed replies with codes the sink
// has, and returns how many there are.
func fcCheckReplies(t *testing.T, out string) int {
	t.Helper()
	n := 0
	multi := ""
	for out != "" {
		i := strings.Index(out, "\r\n")
		if i < 0 {
			t.Fatalf("a reply line without CRLF: %q", out)
		}
		line := out[:i+2]
		out = out[i+2:]
		if len(line) < 6 {
			t.Fatalf("reply line too short: %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || line[0] < '2' || line[0] > '5' || !fcCodes[code] {
			t.Fatalf("reply line without a known 3-digit code: %q", line)
		}
		for j := 4; j < len(line)-2; j++ {
			if line[j] < ' ' || line[j] > '~' {
				t.Fatalf("reply text not printable ASCII: %q", line)
			}
		}
		if multi != "" && line[:3] != multi {
			t.Fatalf("a multi-line reply changes its code: %q", line)
		}
		switch line[3] {
		case '-':
			multi = line[:3]
		case ' ':
			multi = ""
			n++
		default:
			t.Fatalf("no ' ' or '-' after the code: %q", line)
		}
	}
	if multi != "" {
		t.Fatalf("the last reply is unfinished")
	}
	return n
}

// fcCheckParsers runs the parsers on one command line and checks what they claim.
func fcCheckParsers(t *testing.T, line []byte, cfg *Config) {
	verb, arg, ok := splitCommand(line)
	if !ok {
		return
	}
	for i := range 4 {
		if c := byte(verb >> (8 * i)); c < 'a' || c > 'z' {
			t.Fatalf("splitCommand(%q): verb %#x is not four lower-case letters", line, verb)
		}
	}
	if len(arg) > 0 && (arg[0] == ' ' || arg[0] == '\t' || arg[len(arg)-1] == ' ' || arg[len(arg)-1] == '\t') {
		t.Fatalf("splitCommand(%q): argument %q not trimmed", line, arg)
	}
	if !bytes.Contains(line, arg) {
		t.Fatalf("splitCommand(%q): argument %q not from the line", line, arg)
	}

	for _, rcpt := range []bool{false, true} {
		p, bad := parsePath(arg, rcpt, cfg)
		if bad != 0 {
			switch bad {
			case rBadSender, rBadRcpt:
				if (bad == rBadRcpt) != rcpt {
					t.Fatalf("parsePath(%q, rcpt %v): reply %d is for the other command", arg, rcpt, bad)
				}
			case rPathTooLong, rLocalPartTooLong, rDomainTooLong:
			default:
				t.Fatalf("parsePath(%q): reply %d is not a path reply", arg, bad)
			}
			continue
		}
		n := len(p.path)
		if n < 2 || p.path[0] != '<' || p.path[n-1] != '>' || !bytes.HasPrefix(arg, p.path) {
			t.Fatalf("parsePath(%q, rcpt %v): path %q", arg, rcpt, p.path)
		}
		if n > cfg.MaxPath {
			t.Fatalf("parsePath(%q): path of %d octets over MaxPath %d", arg, n, cfg.MaxPath)
		}
		if rcpt && n == 2 {
			t.Fatalf("parsePath(%q): a null path for RCPT", arg)
		}
		if !bytes.HasSuffix(arg, p.params) || !bytes.Equal(p.params, trimSpaces(p.params)) {
			t.Fatalf("parsePath(%q): params %q", arg, p.params)
		}
		if len(p.params) > 0 && arg[n] != ' ' {
			t.Fatalf("parsePath(%q): params not separated by a space", arg)
		}
		// nonASCII tells of an octet above 0x7f in the mailbox (a source route is ignored).
		mailbox := p.path
		if mailbox[1] == '@' {
			mailbox = mailbox[bytes.IndexByte(mailbox, ':'):]
		}
		hi := false
		for _, c := range mailbox {
			hi = hi || c >= 0x80
		}
		if hi != p.nonASCII {
			t.Fatalf("parsePath(%q): nonASCII %v", arg, p.nonASCII)
		}
		// The parameters split into KEY[=VALUE] tokens, each step shorter.
		params := p.params
		for len(params) > 0 {
			key, val, rest := nextParam(params)
			if len(rest) >= len(params) {
				t.Fatalf("nextParam(%q): rest %q is not shorter", params, rest)
			}
			if bytes.ContainsAny(key, " =") {
				t.Fatalf("nextParam(%q): key %q", params, key)
			}
			tok := append([]byte(nil), key...)
			if val != nil {
				tok = append(append(tok, '='), val...)
			}
			if !bytes.HasPrefix(params, tok) {
				t.Fatalf("nextParam(%q): %q=%q is not its first token", params, key, val)
			}
			params = rest
		}
	}

	size, last, ok := parseBdat(arg)
	if ok {
		if size < 0 {
			t.Fatalf("parseBdat(%q): size %d", arg, size)
		}
		again := strconv.AppendInt(nil, size, 10)
		if last {
			again = append(again, " LAST"...)
		}
		if s2, l2, ok2 := parseBdat(again); !ok2 || s2 != size || l2 != last {
			t.Fatalf("parseBdat(%q) = %d, %v; %q parses as %d, %v, %v", arg, size, last, again, s2, l2, ok2)
		}
	}
}

// FuzzCommand feeds arbitrary input to a session, whole and cut into arbitrary reads, and checks
// that it never panics or stalls, that it writes only well-formed replies with codes it has, and
// that how the input was cut changes nothing it writes (RFC 2920 pipelining, and TCP, may cut it
// anywhere). Every command line also goes through the parsers, whose results are checked.
func FuzzCommand(f *testing.F) {
	seeds := []string{
		"EHLO client.example\r\nMAIL FROM:<a@example.com> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nBDAT 3\r\nabcBDAT 2 LAST\r\nde",
		"EHLO x\r\nMAIL FROM:<a@b.c> BODY=BINARYMIME SMTPUTF8\r\nRCPT TO:<\xc3\xa9@b.c>\r\nDATA\r\nBDAT 0 LAST\r\nNOOP\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<b@c.d>\r\nDATA\r\na\n.\r\nMAIL FROM:<e@f.g>\r\n.\r\nRSET\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<b@c.d>\r\nDATA\r\na\r\n.\nb\r.\r\n\n.\n.\r\r\n.\r\n",
		"NOOP\r\nRSET\r\nVRFY x\r\nEXPN y\r\nHELP\r\nSTARTTLS\r\nAUTH PLAIN\r\nFOO\r\n\r\nQUIT x\r\nQUIT\r\nNOOP\r\n",
		"HELO x\r\nMAIL FROM:<a@b.c> SIZE=1\r\nMAIL FROM:<@r1,@r2:a@[1.2.3.4]>\r\nRCPT TO:<\"q u\"@b.c>\r\nRCPT TO:<x@b..c>\r\nDATA x\r\n",
		"EHLO x\r\n" + string(bytes.Repeat([]byte("z"), 700)) + "\r\nNOOP\r\nMAIL FROM:<" + string(bytes.Repeat([]byte("a"), 70)) + "@b.c>\r\n",
		"ehlo x\nmail from:<a@b.c> smtputf8=1\nmail from:<a@b.c> size=99999999999999999999\nbdat 5 last\nhello",
		"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<b@c.d>\r\nBDAT 4\r\nabcdDATA\r\nBDAT 200 LAST\r\n" + string(bytes.Repeat([]byte("y"), 200)),
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i), []byte{0})
		f.Add([]byte(s), uint8(i+1), []byte{3, 17, 1, 250})
	}
	f.Fuzz(func(t *testing.T, input []byte, cfgSel uint8, lengths []byte) {
		if len(input) > 1<<16 {
			return
		}
		srv := fcServers()[int(cfgSel)%len(fcConfigs)]
		whole := fcRun(t, srv, input, nil)
		replies := fcCheckReplies(t, whole.out)
		if replies == 0 || whole.out[:4] != "220 " {
			t.Fatalf("no greeting: %q", whole.out)
		}
		if whole.closed {
			last := whole.out[strings.LastIndex(whole.out[:len(whole.out)-2], "\r\n")+2:]
			if !(last[:3] == "221" || last[:3] == "421") {
				t.Fatalf("closed after %q, not after 221 or 421", last)
			}
		}
		cut := fcRun(t, srv, input, lengths)
		if cut != whole {
			t.Fatalf("the replies depend on how the input is cut:\nwhole: %+v\ncut %v: %+v", whole, lengths, cut)
		}
		for line := range bytes.Lines(input) {
			fcCheckParsers(t, line, &srv.cfg)
		}
	})
}

// fcDotOutcome is what a dot reader made of some data.
type fcDotOutcome struct {
	content string
	size    int64
	bare    bool
	used    int
	done    bool
}

// fcDot feeds data to a new dot reader in reads of the given lengths (cycled; zero-length reads
// included; none: one read), stopping at the end of data as a session does.
func fcDot(t *testing.T, data, lengths []byte) fcDotOutcome {
	var d dotReader
	d.reset(true, 1<<30)
	off := 0
	zeros := 0
	for i := 0; ; i++ {
		n := len(data) - off
		if len(lengths) > 0 {
			n = min(n, int(lengths[i%len(lengths)]))
		}
		if n == 0 {
			if zeros++; zeros > len(lengths) { // only empty reads: take the rest
				n = len(data) - off
			}
		}
		used, done := d.feed(data[off : off+n])
		if used < 0 || used > n {
			t.Fatalf("feed used %d of %d", used, n)
		}
		off += used
		if done {
			return fcDotOutcome{string(d.keep), d.size, d.bare, off, true}
		}
		if used != n {
			t.Fatalf("feed stopped at %d of %d octets without reaching the end", used, n)
		}
		if off == len(data) && (n > 0 || zeros > len(lengths)) {
			return fcDotOutcome{string(d.keep), d.size, d.bare, off, false}
		}
	}
}

// fcRefDot is the dot reader's specification, applied to all of the data at once: lines end with
// CRLF only; the first line that is exactly "." ends the data; a leading "." is removed from any
// other line; a CR or LF left inside a line is bare.
func fcRefDot(data []byte) (content []byte, used int, bare, done bool) {
	content = []byte{}
	pos := 0
	for {
		k := bytes.Index(data[pos:], []byte("\r\n"))
		if k < 0 {
			return content, len(data), bare, false
		}
		line := data[pos : pos+k]
		pos += k + 2
		if bytes.Equal(line, []byte(".")) {
			return content, pos, bare, true
		}
		line = bytes.TrimPrefix(line, []byte("."))
		bare = bare || bytes.ContainsAny(line, "\r\n")
		content = append(append(content, line...), '\r', '\n')
	}
}

// FuzzDotReaderChunks feeds arbitrary message data to the dot reader whole and in arbitrary reads:
// the result does not depend on the reads, and once the end of data is found, what was consumed,
// the unstuffed content, its size and the bare flag are what the specification says; the reader
// never consumes past the end-of-data line.
func FuzzDotReaderChunks(f *testing.F) {
	for _, s := range []string{
		".\r\n", "a\r\n.\r\n", "..\r\n.\r\n", "..x\r\n.\r\nQUIT\r\n", "a\n.\r\nb\r\n.\r\n", "a\r.\r\n.\r\n",
		"a\r\n.\nb\r\n.\r\n", "a\n.\nb\r\n.\r\n", "a\r\n.\r\r\n.\r\n", ".\rX\r\n.\r\n", "x\r\n.\r", "abc\r",
		"\r\n.\r\n", "\r\r\n\n\n.\r\n.\r\n", "line\r\n..\r\n...\r\n.\r\n.\r\n",
	} {
		f.Add([]byte(s), []byte{1})
		f.Add([]byte(s), []byte{0, 2, 1})
	}
	f.Fuzz(func(t *testing.T, data, lengths []byte) {
		whole := fcDot(t, data, nil)
		cut := fcDot(t, data, lengths)
		if cut != whole {
			t.Fatalf("%q: depends on the reads %v:\nwhole %+v\ncut   %+v", data, lengths, whole, cut)
		}
		content, used, bare, done := fcRefDot(data)
		if whole.done != done {
			t.Fatalf("%q: done %v, the specification says %v", data, whole.done, done)
		}
		if !done {
			if whole.used != len(data) {
				t.Fatalf("%q: consumed %d of %d octets without an end of data", data, whole.used, len(data))
			}
			return
		}
		want := fcDotOutcome{string(content), int64(len(content)), bare, used, true}
		if whole != want {
			t.Fatalf("%q:\ngot  %+v\nwant %+v", data, whole, want)
		}
	})
}
