// Package pipeline is smtpbench's SMTP client wire engine: one connection with fixed buffers that
// reads multi-line replies with enhanced status codes, renders commands by append, sends RFC 2920
// command groups and reads their replies strictly in order, and writes message bodies with DATA
// (dot-stuffed) or BDAT (RFC 3030). It records when each command was handed to the kernel and when
// its reply was parsed, and allocates nothing per transaction on an established connection.
//
//	c, err := pipeline.Dial(ctx, target, pipeline.Options{})
//	_, err = c.Greeting()
//	_, err = c.Hello()
//	var tr pipeline.Trace
//	err = c.Send(&msg, &tr)    // tr holds every reply and its timing
//	c.Quit()
package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/smtpbench/smtpbench/internal/mono"
	"github.com/smtpbench/smtpbench/internal/wire"
)

// Extensions is the set of ESMTP extensions a server offered in its EHLO reply.
type Extensions uint16

const (
	ExtPipelining Extensions = 1 << iota
	ExtSize
	Ext8BitMIME
	ExtSMTPUTF8
	ExtEnhancedStatusCodes
	ExtChunking
	ExtBinaryMIME
	ExtStartTLS
	ExtAuth
)

// Has reports whether every extension in e is offered.
func (x Extensions) Has(e Extensions) bool { return x&e == e }

var extKeywords = [...]struct {
	ext Extensions
	kw  string // upper case
}{
	{ExtPipelining, "PIPELINING"}, {ExtSize, "SIZE"}, {Ext8BitMIME, "8BITMIME"}, {ExtSMTPUTF8, "SMTPUTF8"},
	{ExtEnhancedStatusCodes, "ENHANCEDSTATUSCODES"}, {ExtChunking, "CHUNKING"}, {ExtBinaryMIME, "BINARYMIME"},
	{ExtStartTLS, "STARTTLS"}, {ExtAuth, "AUTH"},
}

// Step names the command a reply or failure belongs to.
type Step uint8

const (
	StepConnect Step = iota
	StepGreeting
	StepEHLO
	StepHELO
	StepMail
	StepRcpt
	StepData
	StepBody
	StepBdat
	StepRset
	StepNoop
	StepQuit
	numSteps
)

var stepNames = [numSteps]string{"connect", "greeting", "ehlo", "helo", "mail", "rcpt", "data", "body", "bdat", "rset", "noop", "quit"}

func (s Step) String() string {
	if s < numSteps {
		return stepNames[s]
	}
	return "step" + strconv.Itoa(int(s))
}

// maxReplyLine bounds a reply line. RFC 5321 §4.5.3.1.5 says 512; servers write longer ones.
const maxReplyLine = 4096

// Conn is one SMTP client connection. It is not safe for concurrent use.
type Conn struct {
	nc   net.Conn
	opts Options
	r    wire.Reader
	out  []byte
	iov  [3][]byte
	bufs net.Buffers

	ext        Extensions
	maxSize    int64
	esmtp      bool
	pipelining bool
	chunking   bool
	broken     bool   // the server said 421 or the connection failed
	deadline   int64  // the armed I/O deadline (internal/mono; 0: none)
	now        int64  // when the last write or reply completed (internal/mono): "now" for a read's deadline
	sent       int64  // when the last command was handed to the kernel (internal/mono)
	cmds       []byte // a second command buffer, for a group that follows pending data
	pending    *Trace // the message whose data waits for Begin or End
	pendBody   []byte // its stuffed body; its stuffed header is in out
	text       []byte // text of the most recent reply's first line
	closing    Reply  // the 421 that made the connection unusable
}

// Dial connects to target. It does not read the greeting: call Greeting next.
func Dial(ctx context.Context, target Target, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	nc, err := opts.Dialer.DialContext(ctx, target.Network, target.Address)
	if err != nil {
		kind := classify(err)
		if kind == KindOther || kind == KindClosed || kind == KindProtocol {
			kind = KindDial
		}
		if ctx.Err() != nil {
			kind = KindCanceled
		}
		return nil, &Error{Step: StepConnect, Kind: kind, Err: err}
	}
	return NewConn(nc, opts), nil
}

// NewConn wraps a connection that is already established (its greeting not yet read).
func NewConn(nc net.Conn, opts Options) *Conn {
	opts = opts.withDefaults()
	// Small buffers that grow as the messages need: a load generator holds thousands of these.
	c := &Conn{nc: nc, opts: opts, out: make([]byte, 0, 256), cmds: make([]byte, 0, 256)}
	c.r.Reset(nc, make([]byte, opts.ReadBuffer))
	return c
}

// NetConn is the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Extensions are what the server offered in its EHLO reply.
func (c *Conn) Extensions() Extensions { return c.ext }

// MaxSize is the server's SIZE limit, 0 when it gave none.
func (c *Conn) MaxSize() int64 { return c.maxSize }

// Pipelining and Chunking report whether Send uses command groups and BDAT on this connection.
func (c *Conn) Pipelining() bool { return c.pipelining }
func (c *Conn) Chunking() bool   { return c.chunking }

// Usable reports whether the connection can still carry commands: false after a 421 or an I/O
// error. A load generator reconnects then.
func (c *Conn) Usable() bool { return !c.broken }

// LastText is the text of the most recent reply's first line (after the code and any enhanced
// code), valid until the next command.
func (c *Conn) LastText() []byte { return c.text }

// Close closes the connection without QUIT. A pending message is failed.
func (c *Conn) Close() error {
	if c.pending != nil {
		tr := c.pending
		c.pending = nil
		c.finish(tr, &Error{Step: StepBody, Kind: KindClosed, Err: errNotUsable})
	}
	c.broken = true
	return c.nc.Close()
}

// arm sets the deadline to now+d (now: an internal/mono time), skipping the timer update while
// the armed one is within d/16 of it. Reads arm from c.now, the end of the I/O just before them, so
// a reply costs no clock reading of its own.
func (c *Conn) arm(now int64, d time.Duration) {
	want := now + int64(d)
	if diff := want - c.deadline; diff > int64(d/16) || diff < -int64(d/16) {
		c.deadline = want
		c.nc.SetDeadline(mono.Time(want))
	}
}

// fail records an I/O or protocol failure: the connection is not usable after it.
func (c *Conn) fail(step Step, err error) error {
	c.broken = true
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Step: step, Kind: classify(err), Err: err}
}

// classify maps a raw error to a kind.
func classify(err error) ErrorKind {
	switch {
	case err == nil:
		return KindOther
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case isTimeout(err):
		return KindTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return KindClosed
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return KindReset
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, errMalformed), errors.Is(err, wire.ErrLineTooLong), errors.Is(err, errProtocol),
		errors.Is(err, errNoPipelining), errors.Is(err, errNoChunking):
		return KindProtocol
	}
	return KindOther
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var errProtocol = errors.New("protocol violation")

// write sends c.out followed by up to two payloads in one writev, and returns when the last byte
// was handed to the kernel.
func (c *Conn) write(step Step, timeout time.Duration, p1, p2 []byte) (int64, error) {
	c.arm(mono.Now(), timeout)
	var err error
	if len(p1) == 0 && len(p2) == 0 {
		_, err = c.nc.Write(c.out)
	} else {
		c.iov[0], c.iov[1], c.iov[2] = c.out, p1, p2
		n := 3
		if len(p2) == 0 {
			n = 2
		}
		c.bufs = c.iov[:n]
		_, err = c.bufs.WriteTo(c.nc)
		c.iov = [3][]byte{}
	}
	c.out = c.out[:0]
	if err != nil {
		return 0, c.fail(step, err)
	}
	c.sent = mono.Now()
	c.now = c.sent
	return c.sent, nil
}

// Sent is when the most recent command was handed to the kernel (an internal/mono timestamp): the
// start of its latency, as DESIGN.md's phases define it.
func (c *Conn) Sent() int64 { return c.sent }

// readReply reads one whole reply, multi-line or not. A 421 marks the connection unusable.
func (c *Conn) readReply(step Step, timeout time.Duration) (Reply, error) {
	return c.readReplyLines(step, timeout, false)
}

func (c *Conn) readReplyLines(step Step, timeout time.Duration, ehlo bool) (Reply, error) {
	c.arm(c.now, timeout)
	var r Reply
	for first := true; ; first = false {
		line, err := c.r.ReadLine(maxReplyLine)
		if err != nil {
			return r, c.fail(step, err)
		}
		code, more, text, err := parseReplyLine(line)
		if err != nil {
			return r, c.fail(step, err)
		}
		if first {
			r.Code = code
			r.Enhanced = parseEnhanced(code, text)
			if !r.Enhanced.IsZero() { // LastText starts after the enhanced code
				if i := bytes.IndexByte(text, ' '); i >= 0 {
					text = text[i+1:]
				} else {
					text = text[len(text):]
				}
			}
			c.text = append(c.text[:0], text[:min(len(text), 256)]...)
		} else if code != r.Code {
			return r, c.fail(step, errMalformed)
		} else if ehlo {
			c.addExtension(text)
		}
		if !more {
			break
		}
	}
	if r.Code == 421 {
		c.broken, c.closing = true, r
	}
	return r, nil
}

// addExtension records one EHLO keyword line.
func (c *Conn) addExtension(line []byte) {
	kw, param := line, []byte(nil)
	for i, b := range line {
		if b == ' ' || b == '=' {
			kw, param = line[:i], line[i+1:]
			break
		}
	}
	for _, e := range extKeywords {
		if !equalFoldUpper(kw, e.kw) {
			continue
		}
		c.ext |= e.ext
		if e.ext == ExtSize {
			n, err := strconv.ParseInt(string(trimSpace(param)), 10, 64)
			if err == nil && n > 0 {
				c.maxSize = n
			}
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func equalFoldUpper(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i := range len(b) {
		x := b[i]
		if x >= 'a' && x <= 'z' {
			x -= 'a' - 'A'
		}
		if x != upper[i] {
			return false
		}
	}
	return true
}

// Greeting reads the server's greeting.
func (c *Conn) Greeting() (Reply, error) {
	c.now = mono.Now() // no write came before it
	return c.readReply(StepGreeting, c.opts.Timeouts.Greeting)
}

// Hello sends EHLO, and HELO when the server refuses EHLO with 500, 502, 504 or 550, then decides
// from the offered extensions and the Options whether to pipeline and whether to use BDAT. It
// fails when an extension the Options require (Mode On) is not offered.
func (c *Conn) Hello() (Reply, error) {
	if c.broken {
		return Reply{}, &Error{Step: StepEHLO, Kind: KindClosed, Err: errNotUsable}
	}
	c.ext, c.maxSize, c.esmtp = 0, 0, false
	c.out = append(append(append(c.out[:0], "EHLO "...), c.opts.LocalName...), '\r', '\n')
	if _, err := c.write(StepEHLO, c.opts.Timeouts.Command, nil, nil); err != nil {
		return Reply{}, err
	}
	r, err := c.readReplyLines(StepEHLO, c.opts.Timeouts.Command, true)
	if !r.OK() {
		c.ext, c.maxSize = 0, 0 // keywords only count in a positive reply
	}
	if err != nil {
		return r, err
	}
	switch {
	case r.OK():
		c.esmtp = true
	case r.Code == 500 || r.Code == 502 || r.Code == 504 || r.Code == 550:
		c.ext = 0
		c.out = append(append(append(c.out[:0], "HELO "...), c.opts.LocalName...), '\r', '\n')
		if _, err := c.write(StepHELO, c.opts.Timeouts.Command, nil, nil); err != nil {
			return Reply{}, err
		}
		if r, err = c.readReply(StepHELO, c.opts.Timeouts.Command); err != nil || !r.OK() {
			return r, err
		}
	default:
		return r, nil
	}
	c.pipelining = c.opts.Pipelining != Off && c.ext.Has(ExtPipelining)
	c.chunking = c.opts.BDAT && c.ext.Has(ExtChunking)
	if c.opts.Pipelining == On && !c.pipelining {
		return r, c.fail(StepEHLO, errNoPipelining)
	}
	if c.opts.BDAT && !c.chunking {
		return r, c.fail(StepEHLO, errNoChunking)
	}
	return r, nil
}

var (
	errNoPipelining = errors.New("the server does not offer PIPELINING, which was required")
	errNoChunking   = errors.New("the server does not offer CHUNKING, which BDAT needs")
)

// simple sends a command with no argument and reads its reply, after finishing a pending message.
func (c *Conn) simple(step Step, cmd string) (Reply, error) {
	c.End()
	if c.broken {
		return Reply{}, &Error{Step: step, Kind: KindClosed, Err: errNotUsable}
	}
	c.out = append(c.out[:0], cmd...)
	if _, err := c.write(step, c.opts.Timeouts.Command, nil, nil); err != nil {
		return Reply{}, err
	}
	return c.readReply(step, c.opts.Timeouts.Command)
}

var errNotUsable = errors.New("connection not usable after 421 or an I/O error")

// Reset sends RSET.
func (c *Conn) Reset() (Reply, error) { return c.simple(StepRset, "RSET\r\n") }

// Noop sends NOOP.
func (c *Conn) Noop() (Reply, error) { return c.simple(StepNoop, "NOOP\r\n") }

// Quit sends QUIT, reads the reply and closes the connection.
func (c *Conn) Quit() (Reply, error) {
	r, err := c.simple(StepQuit, "QUIT\r\n")
	c.Close()
	return r, err
}
