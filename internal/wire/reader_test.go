package wire

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		buf   int
		max   int
		want  []string // lines, "!" for ErrLineTooLong
		err   error    // after the lines
	}{
		{"lines", "a\r\nbb\r\nccc\n", 8, 8, []string{"a\r\n", "bb\r\n", "ccc\n"}, io.EOF},
		{"exact max", "1234567\n89\n", 8, 8, []string{"1234567\n", "89\n"}, io.EOF},
		{"too long, drained", "123456789\nok\n", 8, 8, []string{"!", "ok\n"}, io.EOF},
		{"much too long", strings.Repeat("x", 100) + "\nok\n", 8, 8, []string{"!", "ok\n"}, io.EOF},
		{"grows to max", strings.Repeat("x", 30) + "\nok\n", 8, 64, []string{strings.Repeat("x", 30) + "\n", "ok\n"}, io.EOF},
		{"grows, still too long", strings.Repeat("x", 80) + "\nok\n", 8, 64, []string{"!", "ok\n"}, io.EOF},
		{"partial at EOF", "a\nbc", 8, 8, []string{"a\n"}, io.ErrUnexpectedEOF},
		{"empty", "", 8, 8, nil, io.EOF},
	} {
		for _, oneByte := range []bool{false, true} {
			var rd io.Reader = strings.NewReader(tc.input)
			if oneByte {
				rd = iotest.OneByteReader(rd)
			}
			r := NewReader(rd, make([]byte, tc.buf))
			for i, want := range tc.want {
				line, err := r.ReadLine(tc.max)
				if want == "!" {
					if !errors.Is(err, ErrLineTooLong) {
						t.Errorf("%s (one byte %v): line %d: %q, %v; want ErrLineTooLong", tc.name, oneByte, i, line, err)
					}
					continue
				}
				if err != nil || string(line) != want {
					t.Errorf("%s (one byte %v): line %d: %q, %v; want %q", tc.name, oneByte, i, line, err, want)
				}
			}
			if _, err := r.ReadLine(tc.max); !errors.Is(err, tc.err) {
				t.Errorf("%s (one byte %v): at the end: %v, want %v", tc.name, oneByte, err, tc.err)
			}
		}
	}
}

func TestFillPeekDiscardSwap(t *testing.T) {
	r := NewReader(iotest.HalfReader(strings.NewReader("hello world, this is a test")), make([]byte, 8))
	p, err := r.Peek()
	if err != nil || len(p) == 0 {
		t.Fatalf("Peek: %q %v", p, err)
	}
	first := len(p)
	if err := r.Fill(); err != nil || r.Buffered() <= first {
		t.Fatalf("Fill kept %d of %d buffered, err %v", r.Buffered(), first, err)
	}
	r.Discard(2)
	if got := string(r.Bytes()); !strings.HasPrefix("llo world", got) {
		t.Fatalf("after Discard(2): %q", got)
	}
	old := r.SwapBuffer(make([]byte, 64))
	if len(old) != 8 || r.Size() != 64 {
		t.Fatalf("SwapBuffer: old %d, size %d", len(old), r.Size())
	}
	var all []byte
	for {
		p, err := r.Peek()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p...)
		r.Discard(len(p))
	}
	if string(all) != "llo world, this is a test" {
		t.Fatalf("read %q", all)
	}
	full := NewReader(strings.NewReader("12345678"), make([]byte, 4))
	if _, err := full.Peek(); err != nil {
		t.Fatal(err)
	}
	if err := full.Fill(); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("Fill on a full buffer: %v, want ErrBufferFull", err)
	}
}
