// Package wire holds the buffered reader that the sink and the client share: a fixed buffer over a
// connection, read a line or a run of bytes at a time, with no allocation after it is set up.
//
// It exists instead of bufio.Reader because both sides need three things bufio does not give
// together: a line read with a length limit that drains an over-long line to its LF, direct access to
// everything buffered (the DATA and BDAT readers scan whole chunks, not lines), and a buffer that can
// be swapped for a larger one while a message body streams in and handed back afterwards.
package wire

import (
	"bytes"
	"errors"
	"io"
)

// ErrLineTooLong is returned by ReadLine when a line is longer than the limit. The line has been
// read and dropped up to and including its LF, so the next read starts at the next line.
var ErrLineTooLong = errors.New("line too long")

// Reader is a buffered reader over an io.Reader with a caller-supplied buffer.
// It is not safe for concurrent use.
type Reader struct {
	rd   io.Reader
	buf  []byte
	r, w int // buf[r:w] is buffered and unread
	err  error
}

// NewReader returns a Reader that reads from rd into buf.
func NewReader(rd io.Reader, buf []byte) *Reader {
	b := &Reader{}
	b.Reset(rd, buf)
	return b
}

// Reset makes b read from rd into buf, dropping anything buffered and any sticky error.
func (b *Reader) Reset(rd io.Reader, buf []byte) {
	b.rd, b.buf, b.r, b.w, b.err = rd, buf, 0, 0, nil
}

// Buffered is the number of bytes that can be read without reading from the underlying reader.
func (b *Reader) Buffered() int { return b.w - b.r }

// Size is the length of the buffer: the longest line ReadLine can return.
func (b *Reader) Size() int { return len(b.buf) }

// Buffer returns the buffer in use.
func (b *Reader) Buffer() []byte { return b.buf }

// SwapBuffer moves what is buffered into buf, which must be large enough to hold it, makes buf the
// buffer, and returns the old one. The sink uses it to read a large body with a large buffer and
// to go back to a small one when it waits for commands.
func (b *Reader) SwapBuffer(buf []byte) []byte {
	n := copy(buf, b.buf[b.r:b.w])
	if n < b.w-b.r {
		panic("wire: SwapBuffer: new buffer cannot hold what is buffered")
	}
	old := b.buf
	b.buf, b.r, b.w = buf, 0, n
	return old
}

// fill reads once from the underlying reader, after moving what is buffered to the front.
// It returns an error only when the read returned no bytes; an error that came with bytes is
// returned by the next call.
func (b *Reader) fill() error {
	if b.err != nil {
		err := b.err
		b.err = nil
		return err
	}
	if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	if b.w == len(b.buf) {
		return nil // full: the caller decides what that means
	}
	// An io.Reader may return 0, nil; retry a bounded number of times like bufio.
	for range 100 {
		n, err := b.rd.Read(b.buf[b.w:])
		if n < 0 {
			panic("wire: reader returned a negative count")
		}
		b.w += n
		if err != nil {
			if n > 0 {
				b.err = err
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// ReadLine returns the next line including its LF. The slice points into the buffer and is valid
// until the next call on b. A line longer than max bytes (LF included) is read to its LF and
// dropped, and ReadLine returns ErrLineTooLong. When max is larger than the buffer, the buffer
// grows as a line needs it (a connection can start small); max <= 0 means the buffer's size.
// At end of input with a partial line buffered, ReadLine returns io.ErrUnexpectedEOF.
func (b *Reader) ReadLine(max int) ([]byte, error) {
	if max <= 0 {
		max = len(b.buf)
	}
	scanned := 0 // bytes of buf[b.r:] known to hold no LF
	for {
		if i := bytes.IndexByte(b.buf[b.r+scanned:b.w], '\n'); i >= 0 {
			end := b.r + scanned + i + 1
			if end-b.r > max {
				b.r = end
				return nil, ErrLineTooLong
			}
			line := b.buf[b.r:end]
			b.r = end
			return line, nil
		}
		scanned = b.w - b.r
		if scanned >= max {
			return nil, b.drainLine()
		}
		if scanned == len(b.buf) { // full, and the line may be longer than the buffer: grow it
			grown := make([]byte, min(2*len(b.buf), max+1))
			b.w = copy(grown, b.buf[b.r:b.w])
			b.buf, b.r = grown, 0
		}
		if err := b.fill(); err != nil {
			if b.w > b.r && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// drainLine drops bytes up to and including the next LF.
func (b *Reader) drainLine() error {
	for {
		if i := bytes.IndexByte(b.buf[b.r:b.w], '\n'); i >= 0 {
			b.r += i + 1
			return ErrLineTooLong
		}
		b.r, b.w = 0, 0
		if err := b.fill(); err != nil {
			return err
		}
	}
}

// Peek returns everything buffered, reading once from the underlying reader first when nothing is.
// The slice is valid until the next call on b; consume bytes from it with Discard.
func (b *Reader) Peek() ([]byte, error) {
	if b.r == b.w {
		if err := b.fill(); err != nil {
			return nil, err
		}
	}
	return b.buf[b.r:b.w], nil
}

// Bytes returns what is buffered, without reading. The slice is valid until the next call on b.
func (b *Reader) Bytes() []byte { return b.buf[b.r:b.w] }

// ErrBufferFull is returned by Fill when the buffer has no room left.
var ErrBufferFull = errors.New("buffer full")

// Fill reads once from the underlying reader, keeping what is buffered.
func (b *Reader) Fill() error {
	if b.r == 0 && b.w == len(b.buf) {
		return ErrBufferFull
	}
	before := b.w - b.r
	if err := b.fill(); err != nil {
		return err
	}
	if b.w-b.r == before {
		return ErrBufferFull
	}
	return nil
}

// Discard drops n buffered bytes. n must not exceed Buffered().
func (b *Reader) Discard(n int) {
	if n > b.w-b.r {
		panic("wire: Discard beyond the buffered bytes")
	}
	b.r += n
}
