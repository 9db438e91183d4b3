package server

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// drResult is what a dotReader made of some message data.
type drResult struct {
	content string
	size    int64
	bare    bool
	used    int // bytes of the data consumed
	done    bool
}

func (r drResult) String() string {
	return fmt.Sprintf("{content %q, size %d, bare %v, used %d, done %v}", r.content, r.size, r.bare, r.used, r.done)
}

// drFeed feeds data to a fresh dotReader in the chunks given by their lengths (the last chunk
// takes what is left), stopping at the end of data as a session does.
func drFeed(data []byte, lengths ...int) drResult {
	var d dotReader
	d.reset(true, 1<<30)
	off := 0
	for i := 0; off < len(data) || i == 0; i++ {
		n := len(data) - off
		if i < len(lengths) {
			n = min(lengths[i], n)
		}
		used, done := d.feed(data[off : off+n])
		if used > n {
			panic("feed used more than it was given")
		}
		off += used
		if done {
			return drResult{string(d.keep), d.size, d.bare, off, true}
		}
		if used != n {
			return drResult{string(d.keep), d.size, d.bare, -1, false} // feed must take all it is given until done
		}
	}
	return drResult{string(d.keep), d.size, d.bare, off, false}
}

func TestDotReader(t *testing.T) {
	tests := []struct {
		name        string
		input       string
		wantContent string
		wantSize    int64 // -1: len(wantContent)
		wantBare    bool
		wantUsed    int // -1: len(input)
		wantDone    bool
	}{
		{"empty message", ".\r\n", "", -1, false, -1, true},
		{"one line", "hello\r\n.\r\n", "hello\r\n", -1, false, -1, true},
		{"lines", "From: a\r\nSubject: b\r\n\r\nbody\r\n.\r\n", "From: a\r\nSubject: b\r\n\r\nbody\r\n", -1, false, -1, true},
		{"empty lines before the end", "a\r\n\r\n\r\n.\r\n", "a\r\n\r\n\r\n", -1, false, -1, true},
		{"bytes after the terminator are not consumed", "a\r\n.\r\nMAIL FROM:<b@c>\r\n", "a\r\n", -1, false, 6, true},
		{"terminator at the very start, more after it", ".\r\nQUIT\r\n", "", -1, false, 3, true},
		{"a second terminator is not consumed", "x\r\n.\r\n.\r\n", "x\r\n", -1, false, 6, true},

		// Dot-stuffing: the first dot of a line that starts with one is removed.
		{"stuffed dot", "..x\r\n.\r\n", ".x\r\n", -1, false, -1, true},
		{"stuffed dot line", "..\r\n.\r\n", ".\r\n", -1, false, -1, true},
		{"three dots", "...\r\n.\r\n", "..\r\n", -1, false, -1, true},
		{"leading dot of the first line", ".hidden\r\n.\r\n", "hidden\r\n", -1, false, -1, true},
		{"stuffed dot after another line", "a\r\n..b\r\n.\r\n", "a\r\n.b\r\n", -1, false, -1, true},
		{"dots inside lines stay", "a.b\r\nx..y\r\nz.\r\n.\r\n", "a.b\r\nx..y\r\nz.\r\n", -1, false, -1, true},
		{"a dot before text is not an end", ".x\r\n.\r\n", "x\r\n", -1, false, -1, true},
		{"dot space", ". \r\n.\r\n", " \r\n", -1, false, -1, true},

		// Smuggling: only CRLF "." CRLF ends the data; a bare CR or LF is content and marks it.
		{`\n.\r\n is not an end`, "a\n.\r\nMAIL FROM:<evil>\r\n.\r\n", "a\n.\r\nMAIL FROM:<evil>\r\n", -1, true, -1, true},
		{`\r.\r\n is not an end`, "a\r.\r\nMAIL FROM:<evil>\r\n.\r\n", "a\r.\r\nMAIL FROM:<evil>\r\n", -1, true, -1, true},
		{`\r\n.\n is not an end`, "a\r\n.\nMAIL FROM:<evil>\r\n.\r\n", "a\r\n\nMAIL FROM:<evil>\r\n", -1, true, -1, true},
		{`\n.\n is not an end`, "a\n.\nMAIL FROM:<evil>\r\n.\r\n", "a\n.\nMAIL FROM:<evil>\r\n", -1, true, -1, true},
		{`.\r\r\n is not an end`, "a\r\n.\r\r\nMAIL FROM:<evil>\r\n.\r\n", "a\r\n\r\r\nMAIL FROM:<evil>\r\n", -1, true, -1, true},
		{`\r\n.\r\r\n is not an end at the start`, ".\r\r\n.\r\n", "\r\r\n", -1, true, -1, true},
		{`.\n at the start`, ".\n.\r\n", "\n.\r\n", -1, true, -1, false},
		{`.\rX`, ".\rX\r\n.\r\n", "\rX\r\n", -1, true, -1, true},
		{`.\r.`, ".\r.\r\n.\r\n", "\r.\r\n", -1, true, -1, true},
		{"bare LF in a line", "a\nb\r\n.\r\n", "a\nb\r\n", -1, true, -1, true},
		{"bare CR in a line", "a\rb\r\n.\r\n", "a\rb\r\n", -1, true, -1, true},
		{"CR CR LF", "a\r\r\n.\r\n", "a\r\r\n", -1, true, -1, true},
		{"LF LF", "\n\n.\r\n", "\n\n.\r\n", -1, true, -1, false},
		{"a bare LF ends no line: no unstuffing after it", "a\n..\r\n.\r\n", "a\n..\r\n", -1, true, -1, true},

		// Not at the end yet: everything is consumed.
		{"no terminator", "abc\r\n", "abc\r\n", -1, false, -1, false},
		{"terminator cut after the dot", "abc\r\n.", "abc\r\n", -1, false, -1, false},
		{"terminator cut after the CR", "abc\r\n.\r", "abc\r\n", -1, false, -1, false},
		{"line cut after a CR", "abc\r", "abc\r", -1, false, -1, false},
		{"nothing", "", "", -1, false, 0, false},
		{"a lone dot", ".", "", -1, false, -1, false},

		{"binary octets", "\x00\xff\x80\r\n.\r\n", "\x00\xff\x80\r\n", -1, false, -1, true},
		{"a long line", strings.Repeat("x", 5000) + "\r\n.\r\n", strings.Repeat("x", 5000) + "\r\n", -1, false, -1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := drResult{tc.wantContent, tc.wantSize, tc.wantBare, tc.wantUsed, tc.wantDone}
			if want.size < 0 {
				want.size = int64(len(want.content))
			}
			if want.used < 0 {
				want.used = len(tc.input)
			}
			in := []byte(tc.input)
			if got := drFeed(in); got != want {
				t.Fatalf("fed whole: got %v, want %v", got, want)
			}
			// A byte at a time.
			ones := make([]int, len(in))
			for i := range ones {
				ones[i] = 1
			}
			if got := drFeed(in, ones...); got != want {
				t.Errorf("fed a byte at a time: got %v, want %v", got, want)
			}
			// Every split in two, including empty halves.
			for k := 0; k <= len(in); k++ {
				if got := drFeed(in, k); got != want {
					t.Errorf("split at %d: got %v, want %v", k, got, want)
				}
			}
		})
	}
}

// Without keeping, nothing is kept but everything is counted; past keepLimit the kept content
// stops growing; reset starts a new message from a clean state.
func TestDotReaderKeepAndReset(t *testing.T) {
	var d dotReader
	d.reset(false, 1<<20)
	if n, done := d.feed([]byte("abc\r\n..d\r\n.\r\n")); !done || n != 13 || d.size != 9 || len(d.keep) != 0 {
		t.Fatalf("not keeping: n %d, done %v, size %d, kept %q", n, done, d.size, d.keep)
	}

	d.reset(true, 8)
	body := []byte("0123456789\r\n.\r\n")
	if _, done := d.feed(body); !done || d.size != 12 {
		t.Fatalf("keepLimit: done %v, size %d", done, d.size)
	}
	if len(d.keep) > 8 {
		t.Errorf("kept %d octets past a keepLimit of 8", len(d.keep))
	}

	// A message cut in the middle of a stuffed dot and a bare CR leaves nothing behind.
	d.reset(true, 1<<20)
	d.feed([]byte("x\r\n.\r"))
	d.feed([]byte("y\n"))
	if !d.bare {
		t.Fatalf("the bare CR went unnoticed")
	}
	d.reset(true, 1<<20)
	n, done := d.feed([]byte(".\r\n"))
	if !done || n != 3 || d.size != 0 || d.bare || len(d.keep) != 0 {
		t.Errorf("after reset: n %d, done %v, size %d, bare %v, kept %q", n, done, d.size, d.bare, d.keep)
	}
}

// The dot reader keeps nothing of what it is given: the caller may reuse its buffer.
func TestDotReaderCopiesWhatItKeeps(t *testing.T) {
	var d dotReader
	d.reset(true, 1<<20)
	buf := []byte("hello\r\n")
	d.feed(buf)
	copy(buf, "XXXXXXX")
	d.feed([]byte(".\r\n"))
	if !bytes.Equal(d.keep, []byte("hello\r\n")) {
		t.Errorf("kept %q, want %q", d.keep, "hello\r\n")
	}
}
