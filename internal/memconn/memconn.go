// Package memconn is an in-memory net.Conn for benchmarks and allocation tests of the sink and the
// client: its reads replay a script, its writes are counted and scanned for a marker. It allocates
// nothing per read or write, so it adds nothing to the allocations it helps measure.
package memconn

import (
	"bytes"
	"io"
	"net"
	"sync"
	"time"
)

// Conn replays Script to its reader. With Gated set, each copy of the script must be released with
// Release, and Read blocks in between; otherwise the script repeats forever. Every Write that
// contains Marker signals Done.
type Conn struct {
	// Prologue, when set before the first Read, is read once before the script: the greeting or
	// EHLO that precede the transactions a benchmark repeats.
	Prologue []byte

	script []byte
	gated  bool
	marker []byte

	pos   int           // read position in the current copy; len(script) when it is used up
	gate  chan struct{} // one token per released copy
	done  chan struct{} // one token per marker seen
	close chan struct{}
	once  sync.Once

	// Writes and Written count Write calls and bytes, for tests of write coalescing.
	Writes  int
	Written int64
}

// New returns a Conn that replays script. When gated, no copy is readable before Release; the
// marker may be nil.
func New(script []byte, gated bool, marker []byte) *Conn {
	c := &Conn{script: script, gated: gated, marker: marker,
		gate: make(chan struct{}, 1), done: make(chan struct{}, 1024), close: make(chan struct{})}
	if gated {
		c.pos = len(script)
	}
	return c
}

// Release makes one more copy of the script readable.
func (c *Conn) Release() { c.gate <- struct{}{} }

// Done receives once per write that contained the marker.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Read copies from the script, blocking on a gated Conn until a copy is released.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.Prologue) > 0 {
		n := copy(p, c.Prologue)
		c.Prologue = c.Prologue[n:]
		return n, nil
	}
	if c.pos == len(c.script) {
		if c.gated {
			select {
			case <-c.gate:
			case <-c.close:
				return 0, io.EOF
			}
		}
		c.pos = 0
	}
	select {
	case <-c.close:
		return 0, io.EOF
	default:
	}
	n := copy(p, c.script[c.pos:])
	c.pos += n
	return n, nil
}

// Write counts p and signals Done when p holds the marker.
func (c *Conn) Write(p []byte) (int, error) {
	select {
	case <-c.close:
		return 0, net.ErrClosed
	default:
	}
	c.Writes++
	c.Written += int64(len(p))
	if c.marker != nil && bytes.Contains(p, c.marker) {
		select {
		case c.done <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Close makes reads return EOF and writes fail.
func (c *Conn) Close() error {
	c.once.Do(func() { close(c.close) })
	return nil
}

func (c *Conn) LocalAddr() net.Addr              { return addr{} }
func (c *Conn) RemoteAddr() net.Addr             { return addr{} }
func (c *Conn) SetDeadline(time.Time) error      { return nil }
func (c *Conn) SetReadDeadline(time.Time) error  { return nil }
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }
func (addr) Network() string                     { return "memconn" }
func (addr) String() string                      { return "memconn" }

var _ net.Conn = (*Conn)(nil)

type addr struct{}
