package pipeline

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseReplyLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		code uint16
		more bool
		text string
		bad  bool
	}{
		{line: "250 Ok\r\n", code: 250, text: "Ok"},
		{line: "250-Ok\r\n", code: 250, more: true, text: "Ok"},
		{line: "250 Ok\n", code: 250, text: "Ok"},
		{line: "250 Ok", code: 250, text: "Ok"},
		{line: "250\r\n", code: 250},
		{line: "250", code: 250},
		{line: "250-\r\n", code: 250, more: true},
		{line: "250 \r\n", code: 250},
		{line: "250  two spaces\r\n", code: 250, text: " two spaces"},
		{line: "354 End data with <CR><LF>.<CR><LF>\r\n", code: 354, text: "End data with <CR><LF>.<CR><LF>"},
		{line: "200 lowest\r\n", code: 200, text: "lowest"},
		{line: "599 highest\r\n", code: 599, text: "highest"},
		{line: "421-4.3.2 a\r\n", code: 421, more: true, text: "4.3.2 a"},
		{line: "250 text\rwith CR\r\n", code: 250, text: "text\rwith CR"},
		{line: "", bad: true},
		{line: "\r\n", bad: true},
		{line: "\n", bad: true},
		{line: "25\r\n", bad: true},
		{line: "2\r\n", bad: true},
		{line: "abc def\r\n", bad: true},
		{line: "2a0 x\r\n", bad: true},
		{line: " 250 x\r\n", bad: true},
		{line: "250_x\r\n", bad: true},
		{line: "250\tx\r\n", bad: true},
		{line: "250:x\r\n", bad: true},
		{line: "2500 x\r\n", bad: true},
		{line: "199 x\r\n", bad: true},
		{line: "100 x\r\n", bad: true},
		{line: "000 x\r\n", bad: true},
		{line: "600 x\r\n", bad: true},
		{line: "999 x\r\n", bad: true},
	} {
		code, more, text, err := parseReplyLine([]byte(tc.line))
		if tc.bad {
			if err == nil {
				t.Errorf("%q: parsed as %d %v %q, want an error", tc.line, code, more, text)
			} else if KindOf(err) != KindProtocol {
				t.Errorf("%q: error %v is not a protocol error", tc.line, err)
			}
			continue
		}
		if err != nil || code != tc.code || more != tc.more || string(text) != tc.text {
			t.Errorf("%q: got %d %v %q %v, want %d %v %q", tc.line, code, more, text, err, tc.code, tc.more, tc.text)
		}
	}
}

func TestParseEnhanced(t *testing.T) {
	for _, tc := range []struct {
		code uint16
		text string
		want EnhancedCode
	}{
		{250, "2.1.0 Ok", EnhancedCode{2, 1, 0}},
		{250, "2.1.0", EnhancedCode{2, 1, 0}},
		{250, "2.0.0 Ok: queued as 12AB", EnhancedCode{2, 0, 0}},
		{550, "5.1.1 <a@b>: user unknown", EnhancedCode{5, 1, 1}},
		{452, "4.5.3 Too many recipients", EnhancedCode{4, 5, 3}},
		{421, "4.3.2 Service shutting down", EnhancedCode{4, 3, 2}},
		{250, "2.100.999 three-digit parts", EnhancedCode{2, 100, 999}},
		{554, "5.7.1  two spaces", EnhancedCode{5, 7, 1}},
		// The class must be the reply's first digit.
		{250, "5.1.1 odd", EnhancedCode{}},
		{550, "2.1.0 odd", EnhancedCode{}},
		{450, "5.1.1 odd", EnhancedCode{}},
		{250, "22.1.0 two-digit class", EnhancedCode{}},
		// Missing or malformed parts.
		{250, "", EnhancedCode{}},
		{250, "Ok", EnhancedCode{}},
		{250, "2", EnhancedCode{}},
		{250, "2.", EnhancedCode{}},
		{250, "2.1", EnhancedCode{}},
		{250, "2.1 Ok", EnhancedCode{}},
		{250, "2.1.", EnhancedCode{}},
		{250, "2.1. Ok", EnhancedCode{}},
		{250, "2..0 Ok", EnhancedCode{}},
		{250, ".1.0 Ok", EnhancedCode{}},
		{250, "2.1.x Ok", EnhancedCode{}},
		{250, " 2.1.0 Ok", EnhancedCode{}},
		{250, "2-1-0 Ok", EnhancedCode{}},
		// Parts of more than three digits.
		{250, "2.1000.0 Ok", EnhancedCode{}},
		{250, "2.1.1000 Ok", EnhancedCode{}},
		{250, "2222.1.0 Ok", EnhancedCode{}},
		// Trailing text not separated by a space.
		{250, "2.1.0Ok", EnhancedCode{}},
		{250, "2.1.0.5 Ok", EnhancedCode{}},
		{250, "2.1.0\tOk", EnhancedCode{}},
		{250, "2.1.0-Ok", EnhancedCode{}},
	} {
		if got := parseEnhanced(tc.code, []byte(tc.text)); got != tc.want {
			t.Errorf("parseEnhanced(%d, %q) = %v, want %v", tc.code, tc.text, got, tc.want)
		}
	}
}

func TestReplyMethods(t *testing.T) {
	for _, tc := range []struct {
		r                                         Reply
		ok, intermediate, temporary, permanent, z bool
		s                                         string
	}{
		{Reply{}, false, false, false, false, true, "0"},
		{reply(220), true, false, false, false, false, "220"},
		{reply(250, 2, 1, 0), true, false, false, false, false, "250 2.1.0"},
		{reply(299), true, false, false, false, false, "299"},
		{reply(354), false, true, false, false, false, "354"},
		{reply(421, 4, 3, 2), false, false, true, false, false, "421 4.3.2"},
		{reply(452, 4, 5, 3), false, false, true, false, false, "452 4.5.3"},
		{reply(499), false, false, true, false, false, "499"},
		{reply(500), false, false, false, true, false, "500"},
		{reply(554, 5, 100, 999), false, false, false, true, false, "554 5.100.999"},
		{reply(599), false, false, false, true, false, "599"},
	} {
		r := tc.r
		if r.OK() != tc.ok || r.Intermediate() != tc.intermediate || r.Temporary() != tc.temporary ||
			r.Permanent() != tc.permanent || r.IsZero() != tc.z {
			t.Errorf("%v: OK %v Intermediate %v Temporary %v Permanent %v IsZero %v", r, r.OK(), r.Intermediate(),
				r.Temporary(), r.Permanent(), r.IsZero())
		}
		if r.String() != tc.s {
			t.Errorf("String() = %q, want %q", r.String(), tc.s)
		}
		if r.Enhanced.IsZero() != (r.Enhanced == EnhancedCode{}) {
			t.Errorf("%v: Enhanced.IsZero %v", r, r.Enhanced.IsZero())
		}
	}
	if s := (EnhancedCode{}).String(); s != "" {
		t.Errorf("zero enhanced code prints %q", s)
	}
	if s := (EnhancedCode{5, 7, 1}).String(); s != "5.7.1" {
		t.Errorf("enhanced code prints %q", s)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Target
		wantErr string // a part of the error
	}{
		{in: "127.0.0.1:25", want: Target{"tcp", "127.0.0.1:25"}},
		{in: "localhost:2525", want: Target{"tcp", "localhost:2525"}},
		{in: "mx.example.com:587", want: Target{"tcp", "mx.example.com:587"}},
		{in: "[::1]:25", want: Target{"tcp", "[::1]:25"}},
		{in: "[fe80::1%lo]:25", want: Target{"tcp", "[fe80::1%lo]:25"}},
		{in: "unix:/run/smtp.sock", want: Target{"unix", "/run/smtp.sock"}},
		{in: "unix:relative.sock", want: Target{"unix", "relative.sock"}},
		{in: "unix:", wantErr: "socket path"},
		{in: "", wantErr: "host:port"},
		{in: "127.0.0.1", wantErr: "host:port"},
		{in: "::1:25", wantErr: "host:port"},
		{in: "[::1]", wantErr: "host:port"},
		{in: "a:b:c", wantErr: "host:port"},
		{in: ":25", wantErr: "no host"},
		{in: "[]:25", wantErr: "no host"},
		{in: "localhost:", wantErr: "no port"},
	} {
		got, err := ParseTarget(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseTarget(%q) = %v, %v; want an error about %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseTarget(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.in {
			t.Errorf("%q: String() = %q", tc.in, got.String())
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		bad  bool
	}{
		{in: "auto", want: Auto}, {in: "AUTO", want: Auto}, {in: "", want: Auto},
		{in: "on", want: On}, {in: "On", want: On}, {in: "true", want: On}, {in: "yes", want: On},
		{in: "off", want: Off}, {in: "OFF", want: Off}, {in: "false", want: Off}, {in: "no", want: Off},
		{in: "maybe", bad: true}, {in: "1", bad: true}, {in: " on", bad: true}, {in: "onn", bad: true},
	} {
		got, err := ParseMode(tc.in)
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "auto, on or off") {
				t.Errorf("ParseMode(%q) = %v, %v; want an error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for m, s := range map[Mode]string{Auto: "auto", On: "on", Off: "off", Mode(7): "Mode(7)"} {
		if m.String() != s {
			t.Errorf("%d prints %q, want %q", m, m.String(), s)
		}
		if m <= Off {
			if back, err := ParseMode(m.String()); err != nil || back != m {
				t.Errorf("%v does not round-trip: %v %v", m, back, err)
			}
		}
	}
}

func TestStuff(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{".", ".."},
		{"..", "..."},
		{".\r\n", "..\r\n"},
		{"a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n"},
		{"a.b\r\n", "a.b\r\n"},
		{"a\r\n.b\r\n..c\r\n", "a\r\n..b\r\n...c\r\n"},
		{"\r\n.\r\n.\r\n", "\r\n..\r\n..\r\n"},
		{"x\n.y", "x\n..y"}, // a bare LF still starts a line for stuffing
	} {
		if got := string(Stuff([]byte(tc.in))); got != tc.want {
			t.Errorf("Stuff(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMessageSetBody(t *testing.T) {
	var m Message
	m.SetBody([]byte("a\r\n.b"))
	if got := string(m.Body()); got != "a\r\n.b\r\n" {
		t.Errorf("Body %q: a final CRLF must be added", got)
	}
	raw := []byte("line\r\n")
	m.SetBody(raw)
	if &m.Body()[0] != &raw[0] {
		t.Error("a body that ends with CRLF should not be copied")
	}
	// Adding the CRLF must not write into the caller's array.
	buf := make([]byte, 3, 10)
	copy(buf, "abc")
	m.SetBody(buf)
	if got := buf[:5]; !bytes.Equal(got[3:], []byte{0, 0}) {
		t.Errorf("SetBody wrote past the caller's slice: %q", got)
	}
	m.Header = []byte("H: 1\r\n")
	if m.Size() != len("H: 1\r\n")+len("abc\r\n") {
		t.Errorf("Size %d", m.Size())
	}
	m.SetBody(nil)
	if len(m.Body()) != 0 || m.Size() != len(m.Header) {
		t.Errorf("empty body: %q, size %d", m.Body(), m.Size())
	}
}
