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

	ended bool // a reply to the end of the message data was read
}

func (tr *Trace) reset() {
	rcpt := tr.Rcpt[:0]
	*tr = Trace{Rcpt: rcpt}
}

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
// connection failed (an *Error with the step), after which Usable is false.
func (c *Conn) Send(m *Message, tr *Trace) error {
	tr.reset()
	if c.broken {
		return &Error{Step: StepMail, Kind: KindClosed, Err: errNotUsable}
	}
	tr.BDAT, tr.Pipelined = c.chunking, c.pipelining
	var err error
	if c.pipelining {
		err = c.sendPipelined(m, tr)
	} else {
		err = c.sendLockstep(m, tr)
	}
	if errors.Is(err, errClosing) {
		// A 421 in the middle of a pipelined group: the server is closing; the rest is unread.
		tr.Final, err = c.closing, nil
	}
	tr.End = mono.Now()
	tr.NeedsReset = tr.Mail.Reply.OK() && !tr.ended && !c.broken
	return err
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
	tr.Start = sent
	if err := c.readInto(&tr.Mail, StepMail, sent, t.Command); err != nil {
		return err
	}
	for range m.To {
		var rt Timing
		if err := c.readInto(&rt, StepRcpt, sent, t.Command); err != nil {
			return err
		}
		tr.Rcpt = append(tr.Rcpt, rt) // only replies that came: none past a 421
		if rt.Reply.OK() {
			tr.Accepted++
		}
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
		// 354 although nothing was accepted (RFC 2920 §3.1): end the data at once; the reply
		// to the empty message is the server's to give, but it carries no message.
		c.out = append(c.out[:0], endOfData...)
		sent, err := c.write(StepBody, t.DataBlock, nil, nil)
		if err != nil {
			return err
		}
		if err := c.readInto(&tr.Body, StepBody, sent, t.DataTerm); err != nil {
			return err
		}
		tr.Final, tr.ended = c.refusal(tr), true // the empty message carried nothing
		return nil
	}
	return c.sendBody(m, tr)
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
	t.Reply, t.Done = r, mono.Now()
	return nil
}
