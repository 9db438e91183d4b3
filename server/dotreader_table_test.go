package server

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// dtCase is one input to the dot reader, as it arrives after the CRLF of DATA, and what the
// reader must make of it.
type dtCase struct {
	name         string
	input        string
	wantContent  string // the message after unstuffing, the end-of-data line excluded
	wantSize     int64
	wantBare     bool
	wantConsumed int // octets of input that belong to the message, the end-of-data line included
	wantDone     bool
}

var dtCases = []dtCase{
	{name: "terminator at the very start", input: ".\r\n",
		wantContent: "", wantConsumed: 3, wantDone: true},
	{name: "terminator at the start, then commands", input: ".\r\nQUIT\r\n",
		wantContent: "", wantConsumed: 3, wantDone: true},
	{name: "one line", input: "Hello\r\n.\r\n",
		wantContent: "Hello\r\n", wantConsumed: 10, wantDone: true},
	{name: "bytes after the terminator are not consumed", input: "a\r\n.\r\nMAIL FROM:<x@y.z>\r\n.\r\n",
		wantContent: "a\r\n", wantConsumed: 6, wantDone: true},
	{name: "empty lines", input: "\r\n\r\n.\r\n",
		wantContent: "\r\n\r\n", wantConsumed: 7, wantDone: true},
	{name: "headers and body", input: "Subject: s\r\n\r\nline one\r\nline two\r\n.\r\n",
		wantContent: "Subject: s\r\n\r\nline one\r\nline two\r\n", wantConsumed: 37, wantDone: true},
	{name: "stuffed dot", input: "..x\r\n.\r\n",
		wantContent: ".x\r\n", wantConsumed: 8, wantDone: true},
	{name: "a line that is one dot, stuffed", input: "a\r\n..\r\nb\r\n.\r\n",
		wantContent: "a\r\n.\r\nb\r\n", wantConsumed: 13, wantDone: true},
	{name: "a line of two dots, stuffed", input: "...\r\n.\r\n",
		wantContent: "..\r\n", wantConsumed: 8, wantDone: true},
	{name: "the terminator right after a stuffed line", input: "..\r\n.\r\nX",
		wantContent: ".\r\n", wantConsumed: 7, wantDone: true},
	{name: "a leading dot is removed even when not doubled", input: ".x\r\n.\r\n",
		wantContent: "x\r\n", wantConsumed: 7, wantDone: true},
	{name: "dots inside a line are content", input: "a.b.\r\n. \r\n.\r\n",
		wantContent: "a.b.\r\n \r\n", wantConsumed: 13, wantDone: true},
	{name: "binary octets", input: "\x00\xff\x7f\r\n.\r\n",
		wantContent: "\x00\xff\x7f\r\n", wantConsumed: 8, wantDone: true},

	// SMTP smuggling: only CRLF "." CRLF ends the data. Each of these is content, marked bare, and
	// the message goes on to its real end.
	{name: `LF "." CRLF`, input: "a\n.\r\nMAIL\r\n.\r\n",
		wantContent: "a\n.\r\nMAIL\r\n", wantBare: true, wantConsumed: 14, wantDone: true},
	{name: `CR "." CRLF`, input: "a\r.\r\nMAIL\r\n.\r\n",
		wantContent: "a\r.\r\nMAIL\r\n", wantBare: true, wantConsumed: 14, wantDone: true},
	{name: `CRLF "." LF`, input: "a\r\n.\nMAIL\r\n.\r\n",
		wantContent: "a\r\n\nMAIL\r\n", wantBare: true, wantConsumed: 14, wantDone: true},
	{name: `LF "." LF`, input: "a\n.\nMAIL\r\n.\r\n",
		wantContent: "a\n.\nMAIL\r\n", wantBare: true, wantConsumed: 13, wantDone: true},
	{name: `CRLF "." CR CR LF`, input: "a\r\n.\r\r\nMAIL\r\n.\r\n",
		wantContent: "a\r\n\r\r\nMAIL\r\n", wantBare: true, wantConsumed: 16, wantDone: true},
	{name: `"." CR then a letter`, input: ".\rx\r\n.\r\n",
		wantContent: "\rx\r\n", wantBare: true, wantConsumed: 8, wantDone: true},
	{name: "LF at the very start", input: "\n.\r\n.\r\n",
		wantContent: "\n.\r\n", wantBare: true, wantConsumed: 7, wantDone: true},
	{name: "a bare CR inside a line", input: "a\rb\r\n.\r\n",
		wantContent: "a\rb\r\n", wantBare: true, wantConsumed: 8, wantDone: true},
	{name: "CR CR LF", input: "a\r\r\n.\r\n",
		wantContent: "a\r\r\n", wantBare: true, wantConsumed: 7, wantDone: true},

	// Not ended yet: everything is consumed.
	{name: "no terminator", input: "Hello\r\n",
		wantContent: "Hello\r\n", wantConsumed: 7},
	{name: "smuggled terminators only", input: "a\n.\r\nb\r.\r\nc\r\n.\nd\n.\n",
		wantContent: "a\n.\r\nb\r.\r\nc\r\n\nd\n.\n", wantBare: true, wantConsumed: 19},
	{name: "a dot at a line start, no CRLF yet", input: "a\r\n.",
		wantContent: "a\r\n", wantConsumed: 4},
	{name: "a dot and CR at a line start, no LF yet", input: "a\r\n.\r",
		wantContent: "a\r\n", wantConsumed: 5},
	{name: "a trailing CR is not bare yet", input: "a\r",
		wantContent: "a\r", wantConsumed: 2},
	{name: "empty", input: "", wantContent: "", wantConsumed: 0},
}

func TestDotReaderTable(t *testing.T) {
	for _, tc := range dtCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantSize == 0 {
				tc.wantSize = int64(len(tc.wantContent))
			}
			if int64(len(tc.wantContent)) != tc.wantSize {
				t.Fatalf("bad case: content of %d octets, size %d", len(tc.wantContent), tc.wantSize)
			}
			in := []byte(tc.input)
			check := func(how string, got dtResult) {
				t.Helper()
				if got.content != tc.wantContent || got.size != tc.wantSize || got.bare != tc.wantBare ||
					got.consumed != tc.wantConsumed || got.done != tc.wantDone {
					t.Errorf("%s: content %q, size %d, bare %v, consumed %d, done %v; want %q, %d, %v, %d, %v",
						how, got.content, got.size, got.bare, got.consumed, got.done,
						tc.wantContent, tc.wantSize, tc.wantBare, tc.wantConsumed, tc.wantDone)
				}
			}
			check("whole", dtFeed(in, len(in)))
			check("one octet at a time", dtFeed(in, 1))
			for i := 0; i <= len(in); i++ {
				check(fmt.Sprintf("split at %d", i), dtFeedSplit(in, i))
			}
		})
	}
}

// dtResult is what a dot reader made of an input.
type dtResult struct {
	content  string
	size     int64
	bare     bool
	consumed int
	done     bool
}

// dtFeedPieces feeds pieces to a new dot reader, in order, until it is done, as a driver would:
// what a feed did not consume is never fed again (it belongs to the next command).
func dtFeedPieces(pieces [][]byte) dtResult {
	var d dotReader
	d.reset(true, 1<<30)
	var r dtResult
	for _, p := range pieces {
		// The reader must not keep a reference to p: scribble over it once it is fed.
		cp := bytes.Clone(p)
		n, done := d.feed(cp)
		if n < 0 || n > len(cp) {
			panic(fmt.Sprintf("feed consumed %d of %d octets", n, len(cp)))
		}
		if !done && n != len(cp) {
			panic(fmt.Sprintf("feed stopped at %d of %d octets without being done", n, len(cp)))
		}
		for i := range cp {
			cp[i] = '#'
		}
		r.consumed += n
		if done {
			r.done = true
			break
		}
	}
	r.content, r.size, r.bare = string(d.keep), d.size, d.bare
	return r
}

// dtFeed feeds in in pieces of size n.
func dtFeed(in []byte, n int) dtResult {
	var pieces [][]byte
	for len(in) > n {
		pieces = append(pieces, in[:n])
		in = in[n:]
	}
	return dtFeedPieces(append(pieces, in))
}

// dtFeedSplit feeds in in two pieces, split at i.
func dtFeedSplit(in []byte, i int) dtResult {
	return dtFeedPieces([][]byte{in[:i], in[i:]})
}

// The reader counts every octet but keeps only up to its limit; reset starts over.
func TestDotReaderTableKeepLimit(t *testing.T) {
	var d dotReader
	d.reset(true, 10)
	body := strings.Repeat("0123456789\r\n", 3) + ".\r\n"
	n, done := d.feed([]byte(body))
	if !done || n != len(body) || d.size != 36 || len(d.keep) > 10 {
		t.Fatalf("consumed %d, done %v, size %d, kept %d; want %d, true, 36, at most 10", n, done, d.size, len(d.keep), len(body))
	}
	d.reset(false, 1<<20)
	n, done = d.feed([]byte("x\n.\r\n"))
	if done || n != 5 || d.size != 5 || !d.bare || len(d.keep) != 0 {
		t.Fatalf("after reset: consumed %d, done %v, size %d, bare %v, kept %d", n, done, d.size, d.bare, len(d.keep))
	}
	d.reset(false, 1<<20)
	if n, done = d.feed([]byte(".\r\n")); !done || n != 3 || d.size != 0 || d.bare {
		t.Fatalf("a reset reader starts at a line start: consumed %d, done %v, size %d, bare %v", n, done, d.size, d.bare)
	}
}
