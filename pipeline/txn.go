package pipeline

import (
	"errors"
	"strconv"
	"time"

	"github.com/smtpbench/smtpbench/internal/mono"
)

// Timing is one command's timing and reply. Sent is when the command's last byte was handed to the
// kernel; Done is when its reply's last line was parsed; both are internal/mono timestamps. In a
// pipelined group every command has the Sent of the group's write.
type Timing struct {
	Sent, Done int64
	Reply      Reply
}

// Duration is Done-Sent in nanoseconds, or 0 when the reply never came.
func (t Timing) Duration() int64 {
	if t.Done == 0 {
		return 0
	}
	return t.Done - t.Sent
}

// Trace is what one transaction did: every reply with its timing. Reuse a Trace across
// transactions; Send resets it and keeps its capacity, so it allocates nothing.
type Trace struct {
	Mail Timing
	Rcpt []Timing // one per recipient tried
	Data Timing   // DATA → 354 (DATA only)
	Body Timing   // end of data sent → final reply (DATA only)
	Bdat Timing   // BDAT LAST with the message → its reply (BDAT only)

	// Start is when MAIL was written, End when the final reply was parsed (or the transaction
	// ended without one).
	Start, End int64
	// Accepted counts the recipients the server accepted.
	Accepted int
	// Final is the reply that ended the transaction: the one after the message on success, else
	// the reply that refused it (MAIL, the last RCPT, DATA...). Zero when the connection failed.
	Final Reply
	// Delivered is true when the message was accepted (Final is 2xx after the data).
	Delivered bool
	// NeedsReset is true when MAIL was accepted but the transaction did not reach its end: the
	// client must send RSET before the next MAIL.
	NeedsReset bool
	// BDAT is true when the message went with BDAT.
	BDAT bool
	// Pipelined is true when the commands went as one RFC 2920 group.
	Pipelined bool
	// Err is the connection failure that ended the transaction, if any (what Send returns).
	Err error

	ended bool // a reply to the end of the message data was read
}

func (tr *Trace) reset() {
	rcpt := tr.Rcpt[:0]
	*tr = Trace{Rcpt: rcpt}
}

// Complete reports whether the transaction is over: its final reply came, or it failed. A message
// left pending by Begin is not complete until the next Begin or End.
func (tr *Trace) Complete() bool { return tr.End != 0 }

// appendMail renders MAIL FROM with SIZE=, BODY= and SMTPUTF8 as the server allows.
func (c *Conn) appendMail(b []byte, m *Message) []byte {
	b = append(b, "MAIL FROM:<"...)
	b = append(b, m.From...)
	b = append(b, '>')
	if c.ext.Has(ExtSize) {
		b = append(b, " SIZE="...)
		b = strconv.AppendInt(b, int64(m.Size()), 10)
	}
	if m.EightBit && c.ext.Has(Ext8BitMIME) {
		b = append(b, " BODY=8BITMIME"...)
	}
	if m.UTF8 && c.ext.Has(ExtSMTPUTF8) {
		b = append(b, " SMTPUTF8"...)
	}
	return append(b, '\r', '\n')
}

func appendRcpt(b, to []byte) []byte {
	b = append(b, "RCPT TO:<"...)
	b = append(b, to...)
	return append(b, '>', '\r', '\n')
}

func (c *Conn) appendBdat(b []byte, m *Message) []byte {
	b = append(b, "BDAT "...)
	b = strconv.AppendInt(b, int64(m.Size()), 10)
	b = append(b, " LAST\r\n"...)
	return append(b, m.Header...)
}

// Send runs one mail transaction. With pipelining, MAIL, every RCPT and DATA (or BDAT LAST with
// the whole message) go in one write and the replies are read strictly in order, all of them even
// after a failure; the message body follows DATA only after 354. Without it, each command waits
// for its reply. Replies, refusals included, are in tr; Send returns an error only when the
// connection failed (an *Error with the step, also in tr.Err), after which Usable is false.
// A message left pending by Begin is finished first.
func (c *Conn) Send(m *Message, tr *Trace) error {
	if err := c.Begin(m, tr); err != nil || c.pending != tr {
		return err
	}
	return c.End()
}

// Begin starts transaction m like Send, but when the server pipelines and the message goes with
// DATA, it returns after the 354 and leaves the message's data pending (Pending returns tr): the
// data and its end go out in the same write as the next transaction's commands, with the next
// Begin, or alone with End. RFC 2920 §3.1 lets message content open a command group, so a stream
// of messages takes one write and one read each instead of two. The pending trace is completed
// (its final reply and timing filled in, or its Err) by that next call.
func (c *Conn) Begin(m *Message, tr *Trace) error {
	tr.reset()
	prev := c.pending
	if c.broken {
		err := &Error{Step: StepMail, Kind: KindClosed, Err: errNotUsable}
		if prev != nil {
			c.pending = nil
			c.finish(prev, err)
		}
		return c.finish(tr, err)
	}
	tr.BDAT, tr.Pipelined = c.chunking, c.pipelining
	var err error
	switch {
	case c.pipelining && !c.chunking:
		err = c.beginPipelined(m, tr, prev)
	case prev != nil: // cannot happen: only the pipelined DATA path leaves data pending
		panic("pipeline: a pending message without pipelining")
	case c.pipelining:
		err = c.sendPipelined(m, tr)
	default:
		err = c.sendLockstep(m, tr)
	}
	if c.pending == tr && err == nil {
		return nil
	}
	return c.finish(tr, err)
}

// End writes the pending message's data, if any, and reads its final reply.
func (c *Conn) End() error {
	prev := c.pending
	if prev == nil {
		return nil
	}
	c.pending = nil
	if c.broken {
		return c.finish(prev, &Error{Step: StepBody, Kind: KindClosed, Err: errNotUsable})
	}
	sent, err := c.write(StepBody, c.opts.Timeouts.DataBlock, c.pendBody, endOfData)
	if err == nil {
		err = c.endInto(prev, sent)
	}
	return c.finish(prev, err)
}

// Pending is the trace of the message whose data waits for the next Begin or End, or nil.
func (c *Conn) Pending() *Trace { return c.pending }

// finish closes a transaction's trace.
func (c *Conn) finish(tr *Trace, err error) error {
	if errors.Is(err, errClosing) {
		// A 421 in the middle of a pipelined group: the server is closing; the rest is unread.
		tr.Final, err = c.closing, nil
	}
	tr.Err = err
	tr.End = mono.Now()
	tr.NeedsReset = tr.Mail.Reply.OK() && !tr.ended && !c.broken
	return err
}

// endInto reads the final reply to a message whose end of data went out at sent.
func (c *Conn) endInto(tr *Trace, sent int64) error {
	if err := c.readInto(&tr.Body, StepBody, sent, c.opts.Timeouts.DataTerm); err != nil {
		return err
	}
	tr.Final, tr.Delivered, tr.ended = tr.Body.Reply, tr.Body.Reply.OK(), true
	return nil
}

// beginPipelined sends MAIL, RCPT… and DATA as one group, after the data of the pending message
// prev when there is one, reads prev's final reply and then the group's replies, and leaves m's
// data pending after a 354.
func (c *Conn) beginPipelined(m *Message, tr *Trace, prev *Trace) error {
	t := &c.opts.Timeouts
	cmds := c.cmds[:0]
	if prev != nil {
		cmds = append(cmds, endOfData...)
	}
	cmds = c.appendMail(cmds, m)
	for _, to := range m.To {
		cmds = appendRcpt(cmds, to)
	}
	cmds = append(cmds, "DATA\r\n"...)
	c.cmds = cmds
	var sent int64
	var err error
	if prev != nil {
		// c.out holds prev's stuffed header: header, body, then "." and the new group.
		c.pending = nil
		sent, err = c.write(StepBody, t.DataBlock, c.pendBody, cmds)
		if err == nil {
			err = c.endInto(prev, sent)
		}
		c.finish(prev, err)
	} else {
		c.out, c.cmds = cmds, c.out[:0]
		sent, err = c.write(StepMail, t.DataBlock, nil, nil)
	}
	if err != nil {
		return err
	}
	if err := c.readEnvelope(m, tr, sent); err != nil {
		return err
	}
	if err := c.readInto(&tr.Data, StepData, sent, t.DataInit); err != nil {
		return err
	}
	if tr.Data.Reply.Code != 354 {
		tr.Final = c.refusal(tr)
		return nil
	}
	if tr.Accepted == 0 || !tr.Mail.Reply.OK() {
		return c.endEmpty(tr)
	}
	// The data waits: its stuffed header in c.out, its body by reference.
	c.out = appendStuffed(c.out[:0], m.Header, true)
	c.pendBody = m.stuffed
	if len(m.body) == 0 {
		c.pendBody = emptyStuff
	}
	c.pending = tr
	return nil
}

// errClosing stops reading a pipelined group after a 421.
var errClosing = errors.New("server closing (421)")

func (c *Conn) sendPipelined(m *Message, tr *Trace) error {
	t := &c.opts.Timeouts
	c.out = c.appendMail(c.out[:0], m)
	for _, to := range m.To {
		c.out = appendRcpt(c.out, to)
	}
	var payload []byte
	if c.chunking {
		c.out = c.appendBdat(c.out, m)
		payload = m.body
	} else {
		c.out = append(c.out, "DATA\r\n"...)
	}
	sent, err := c.write(StepMail, t.DataBlock, payload, nil)
	if err != nil {
		return err
	}
	if err := c.readEnvelope(m, tr, sent); err != nil {
		return err
	}
	if c.chunking {
		if err := c.readInto(&tr.Bdat, StepBdat, sent, t.DataTerm); err != nil {
			return err
		}
		if !tr.Mail.Reply.OK() || tr.Accepted == 0 {
			tr.Final = c.refusal(tr) // the chunk was refused with the transaction
			return nil
		}
		tr.Final, tr.Delivered, tr.ended = tr.Bdat.Reply, tr.Bdat.Reply.OK(), true
		return nil
	}
	if err := c.readInto(&tr.Data, StepData, sent, t.DataInit); err != nil {
		return err
	}
	if tr.Data.Reply.Code != 354 {
		tr.Final = c.refusal(tr)
		return nil
	}
	if tr.Accepted == 0 || !tr.Mail.Reply.OK() {
		return c.endEmpty(tr)
	}
	return c.sendBody(m, tr)
}

// readEnvelope reads the replies to a pipelined group's MAIL and RCPTs, written at sent.
func (c *Conn) readEnvelope(m *Message, tr *Trace, sent int64) error {
	tr.Start = sent
	if err := c.readInto(&tr.Mail, StepMail, sent, c.opts.Timeouts.Command); err != nil {
		return err
	}
	for range m.To {
		var rt Timing
		if err := c.readInto(&rt, StepRcpt, sent, c.opts.Timeouts.Command); err != nil {
			return err
		}
		tr.Rcpt = append(tr.Rcpt, rt) // only replies that came: none past a 421
		if rt.Reply.OK() {
			tr.Accepted++
		}
	}
	return nil
}

// endEmpty answers a 354 that came although nothing was accepted (RFC 2920 §3.1): it ends the
// data at once; the reply to the empty message is the server's to give, but it carries no message.
func (c *Conn) endEmpty(tr *Trace) error {
	c.out = append(c.out[:0], endOfData...)
	sent, err := c.write(StepBody, c.opts.Timeouts.DataBlock, nil, nil)
	if err != nil {
		return err
	}
	if err := c.readInto(&tr.Body, StepBody, sent, c.opts.Timeouts.DataTerm); err != nil {
		return err
	}
	tr.Final, tr.ended = c.refusal(tr), true // the empty message carried nothing
	return nil
}

// refusal is the reply that refused a transaction: MAIL's, else the last refused RCPT's, else DATA's.
func (c *Conn) refusal(tr *Trace) Reply {
	if !tr.Mail.Reply.OK() {
		return tr.Mail.Reply
	}
	if tr.Accepted == 0 && len(tr.Rcpt) > 0 {
		return tr.Rcpt[len(tr.Rcpt)-1].Reply
	}
	if tr.BDAT {
		return tr.Bdat.Reply
	}
	return tr.Data.Reply
}

// sendBody writes the message after 354 (Header stuffed into the buffer, the pre-stuffed body and
// the end-of-data line in one writev) and reads the final reply.
func (c *Conn) sendBody(m *Message, tr *Trace) error {
	t := &c.opts.Timeouts
	c.out = appendStuffed(c.out[:0], m.Header, true)
	body := m.stuffed
	if len(m.body) == 0 {
		body = emptyStuff
	}
	sent, err := c.write(StepBody, t.DataBlock, body, endOfData)
	if err != nil {
		return err
	}
	if err := c.readInto(&tr.Body, StepBody, sent, t.DataTerm); err != nil {
		return err
	}
	tr.Final, tr.Delivered, tr.ended = tr.Body.Reply, tr.Body.Reply.OK(), true
	return nil
}

func (c *Conn) sendLockstep(m *Message, tr *Trace) error {
	t := &c.opts.Timeouts
	c.out = c.appendMail(c.out[:0], m)
	sent, err := c.write(StepMail, t.Command, nil, nil)
	if err != nil {
		return err
	}
	tr.Start = sent
	if err := c.readInto(&tr.Mail, StepMail, sent, t.Command); err != nil {
		return err
	}
	if !tr.Mail.Reply.OK() {
		tr.Final = tr.Mail.Reply
		return nil
	}
	for _, to := range m.To {
		c.out = appendRcpt(c.out[:0], to)
		sent, err := c.write(StepRcpt, t.Command, nil, nil)
		if err != nil {
			return err
		}
		var rt Timing
		if err := c.readInto(&rt, StepRcpt, sent, t.Command); err != nil {
			return err
		}
		tr.Rcpt = append(tr.Rcpt, rt) // only replies that came: none past a 421
		if rt.Reply.OK() {
			tr.Accepted++
		}
		if rt.Reply.Code == 421 {
			break
		}
	}
	if c.broken { // a 421 to a RCPT: the server is closing
		tr.Final = c.closing
		return nil
	}
	if tr.Accepted == 0 {
		tr.Final = c.refusal(tr)
		return nil
	}
	if c.chunking {
		c.out = c.appendBdat(c.out[:0], m)
		sent, err := c.write(StepBdat, t.DataBlock, m.body, nil)
		if err != nil {
			return err
		}
		if err := c.readInto(&tr.Bdat, StepBdat, sent, t.DataTerm); err != nil {
			return err
		}
		tr.Final, tr.Delivered, tr.ended = tr.Bdat.Reply, tr.Bdat.Reply.OK(), true
		return nil
	}
	c.out = append(c.out[:0], "DATA\r\n"...)
	if sent, err = c.write(StepData, t.Command, nil, nil); err != nil {
		return err
	}
	if err := c.readInto(&tr.Data, StepData, sent, t.DataInit); err != nil {
		return err
	}
	if tr.Data.Reply.Code != 354 {
		tr.Final = tr.Data.Reply
		return nil
	}
	return c.sendBody(m, tr)
}

// readInto reads the reply to a command sent at sent into t. After a 421 the server is closing:
// the rest of a pipelined group is not read.
func (c *Conn) readInto(t *Timing, step Step, sent int64, timeout time.Duration) error {
	t.Sent = sent
	if c.broken {
		return errClosing
	}
	r, err := c.readReply(step, timeout)
	if err != nil {
		return err
	}
	t.Done = mono.Now()
	t.Reply, c.now = r, t.Done
	return nil
}
