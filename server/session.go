package server

import (
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/smtpbench/smtpbench/internal/wire"
)

// body is the BODY= parameter of a transaction (RFC 6152, RFC 3030).
type body uint8

const (
	body7Bit body = iota
	body8BitMIME
	bodyBinaryMIME
)

// session is one SMTP connection. Sessions come from a pool and are reset on reuse, so an
// established session allocates nothing per transaction.
type session struct {
	srv  *Server
	cfg  *Config
	conn net.Conn
	id   uint64

	r      wire.Reader
	small  []byte // the command buffer, owned by the session
	big    *[]byte
	out    []byte // replies not yet written
	closed bool   // a closing reply was sent: stop after flushing

	deadline time.Time // the read/write deadline armed on conn

	// Session state.
	greeted bool
	esmtp   bool
	helo    []byte // kept for Received headers in dump mode
	errors  int
	msgSeq  uint64

	// Transaction state, cleared by resetTxn.
	inTxn         bool
	rcpts         int
	rcptAttempted bool
	bodyType      body
	smtputf8      bool
	bdatStarted   bool
	from          []byte // dump mode only
	to            []byte // dump mode only: the accepted paths, each ended by '\n'
	data          dotReader
}

// reset prepares a pooled session for a new connection.
func (ss *session) reset(srv *Server, conn net.Conn, id uint64) {
	ss.srv, ss.cfg, ss.conn, ss.id = srv, &srv.cfg, conn, id
	if len(ss.small) != srv.cfg.ReadBuffer {
		ss.small = make([]byte, srv.cfg.ReadBuffer)
	}
	ss.r.Reset(conn, ss.small)
	ss.big = nil
	ss.out = ss.out[:0]
	ss.closed = false
	ss.deadline = time.Time{}
	ss.greeted, ss.esmtp, ss.errors, ss.msgSeq = false, false, 0, 0
	ss.helo = ss.helo[:0]
	ss.resetTxn()
}

// release drops references before the session goes back to the pool, and caps what it keeps.
func (ss *session) release() {
	ss.releaseBig()
	ss.conn = nil
	ss.r.Reset(nil, ss.small)
	if cap(ss.out) > 4<<10 {
		ss.out = nil
	}
	if cap(ss.data.keep) > 1<<20 {
		ss.data.keep = nil
	}
	if cap(ss.to) > 64<<10 {
		ss.to = nil
	}
}

func (ss *session) resetTxn() {
	ss.inTxn, ss.rcpts, ss.rcptAttempted = false, 0, false
	ss.bodyType, ss.smtputf8 = body7Bit, false
	ss.bdatStarted = false
	ss.from, ss.to = ss.from[:0], ss.to[:0]
}

// serve runs the session to its end. The caller closes the connection.
func (ss *session) serve(tooMany bool) {
	ss.arm(ss.cfg.CommandTimeout)
	if tooMany {
		ss.reply(rTooManyConns)
		ss.flush()
		return
	}
	ss.reply(rGreeting)
	for !ss.closed {
		if ss.r.Buffered() == 0 {
			// About to block: give back a borrowed body buffer, flush what is pending
			// (RFC 2920 §3.2: only now, never per reply), and arm the idle timeout.
			ss.releaseBig()
			ss.arm(ss.cfg.CommandTimeout)
			if !ss.flush() {
				return
			}
			if !ss.inTxn && ss.srv.shuttingDown.Load() {
				ss.reply(rShuttingDown)
				break
			}
		}
		line, err := ss.r.ReadLine(ss.cfg.MaxLineLength)
		if err != nil {
			if err == wire.ErrLineTooLong {
				ss.reply(rLineTooLong)
				continue
			}
			if ss.retryRead(err, ss.cfg.CommandTimeout) {
				continue
			}
			break
		}
		ss.command(line)
	}
	ss.flush()
}

// retryRead decides what a failed read means. A read woken by Shutdown in the middle of a
// transaction goes on (the transaction may finish); a timeout ends the session with 421; anything
// else (EOF, reset) ends it silently.
func (ss *session) retryRead(err error, timeout time.Duration) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	if ss.srv.shuttingDown.Load() {
		if ss.inTxn && time.Now().Before(ss.deadline) {
			ss.deadline = time.Time{} // Shutdown moved it: arm again for real
			ss.arm(timeout)
			return true
		}
		ss.reply(rShuttingDown)
		return false
	}
	ss.srv.stats.timeouts.Add(1)
	ss.arm(10 * time.Second) // room to write the 421
	ss.reply(rTimeout)
	return false
}

// arm sets the connection's deadline to now+d. Setting a deadline updates a runtime timer, so it is
// skipped while the armed one is within d/16 of the wanted one.
func (ss *session) arm(d time.Duration) {
	want := time.Now().Add(d)
	if diff := want.Sub(ss.deadline); diff > d/16 || diff < -d/16 {
		ss.deadline = want
		ss.conn.SetDeadline(want)
	}
}

// flush writes the pending replies. It reports false when the connection is gone.
func (ss *session) flush() bool {
	if len(ss.out) == 0 {
		return true
	}
	_, err := ss.conn.Write(ss.out)
	ss.out = ss.out[:0]
	if err != nil {
		ss.closed = true
		return false
	}
	return true
}

// reply queues a reply, counts it, and counts protocol errors: a session that makes more than
// MaxErrors of them is told 421 and closed. Closing replies (421) set closed.
func (ss *session) reply(r reply) {
	code := r.code()
	if isProtocolError(code) {
		ss.errors++
		if ss.errors > ss.cfg.MaxErrors {
			r, code = rTooManyErrors, rTooManyErrors.code()
		}
	}
	ss.srv.stats.replies[code].Add(1)
	ss.out = append(ss.out, ss.srv.replies[r]...)
	if code == 421 {
		ss.closed = true
	}
}

func isProtocolError(code int) bool {
	switch code {
	case 500, 501, 502, 503, 504, 555:
		return true
	}
	return false
}

// Verbs, as four lower-case ASCII letters packed into a uint32.
const (
	verbHELO = 'h'<<24 | 'e'<<16 | 'l'<<8 | 'o'
	verbEHLO = 'e'<<24 | 'h'<<16 | 'l'<<8 | 'o'
	verbMAIL = 'm'<<24 | 'a'<<16 | 'i'<<8 | 'l'
	verbRCPT = 'r'<<24 | 'c'<<16 | 'p'<<8 | 't'
	verbDATA = 'd'<<24 | 'a'<<16 | 't'<<8 | 'a'
	verbBDAT = 'b'<<24 | 'd'<<16 | 'a'<<8 | 't'
	verbRSET = 'r'<<24 | 's'<<16 | 'e'<<8 | 't'
	verbNOOP = 'n'<<24 | 'o'<<16 | 'o'<<8 | 'p'
	verbQUIT = 'q'<<24 | 'u'<<16 | 'i'<<8 | 't'
	verbVRFY = 'v'<<24 | 'r'<<16 | 'f'<<8 | 'y'
	verbEXPN = 'e'<<24 | 'x'<<16 | 'p'<<8 | 'n'
	verbHELP = 'h'<<24 | 'e'<<16 | 'l'<<8 | 'p'
)

// command handles one command line (its LF included).
func (ss *session) command(line []byte) {
	verb, arg, ok := splitCommand(line)
	if !ok {
		ss.reply(rUnknownCommand)
		return
	}
	switch verb {
	case verbEHLO, verbHELO:
		ss.hello(arg, verb == verbEHLO)
	case verbMAIL:
		ss.mail(arg)
	case verbRCPT:
		ss.rcpt(arg)
	case verbDATA:
		ss.dataCmd(arg)
	case verbBDAT:
		ss.bdat(arg)
	case verbRSET:
		if len(arg) > 0 {
			ss.reply(rNoArgs)
			return
		}
		ss.resetTxn()
		ss.reply(rOK)
	case verbNOOP:
		ss.reply(rOK)
	case verbQUIT:
		if len(arg) > 0 {
			ss.reply(rNoArgs)
			return
		}
		ss.reply(rBye)
		ss.closed = true
	case verbVRFY:
		if len(arg) == 0 {
			ss.reply(rVrfySyntax)
			return
		}
		ss.reply(rVrfy)
	case verbEXPN:
		if len(arg) == 0 {
			ss.reply(rVrfySyntax)
			return
		}
		if ss.cfg.ExpnAllowed {
			ss.reply(rVrfy)
		} else {
			ss.reply(rExpn)
		}
	case verbHELP:
		ss.reply(rHelp)
	default:
		if knownUnimplemented(verb, arg) {
			ss.reply(rNotImplemented)
			return
		}
		ss.reply(rUnknownCommand)
	}
}

func (ss *session) hello(arg []byte, ehlo bool) {
	if len(arg) == 0 || len(arg) > ss.cfg.MaxDomain || !printableASCII(arg) {
		ss.reply(rHeloSyntax)
		return
	}
	ss.resetTxn() // RFC 5321 §4.1.4: EHLO and HELO reset the state like RSET
	ss.greeted, ss.esmtp = true, ehlo
	if ss.cfg.Mode == Dump {
		ss.helo = append(ss.helo[:0], arg...)
	}
	if ehlo {
		ss.srv.stats.replies[250].Add(1)
		ss.out = append(ss.out, ss.srv.ehlo...)
		return
	}
	ss.reply(rHelo)
}

func (ss *session) ext(e Extension) bool { return ss.esmtp && ss.cfg.Disable&e == 0 }

func (ss *session) mail(arg []byte) {
	switch {
	case !ss.greeted:
		ss.reply(rNeedHelo)
		return
	case ss.inTxn:
		ss.reply(rNestedMail)
		return
	}
	rest, ok := cutPrefixFold(arg, "from:")
	if !ok {
		ss.reply(rMailSyntax)
		return
	}
	p, bad := parsePath(trimSpaces(rest), false, ss.cfg)
	if bad != 0 {
		ss.reply(bad)
		return
	}
	bodyType, utf8, params := body7Bit, false, p.params
	for len(params) > 0 {
		var key, val []byte
		key, val, params = nextParam(params)
		switch {
		case equalFold(key, "size") && ss.ext(ExtSize):
			n, ok := parseDecimal(val)
			if !ok {
				ss.reply(rParamSyntax)
				return
			}
			if n > ss.cfg.MaxMessageSize {
				ss.reply(rSizeAtMail)
				return
			}
		case equalFold(key, "body") && ss.ext(Ext8BitMIME):
			switch {
			case equalFold(val, "7bit"):
				bodyType = body7Bit
			case equalFold(val, "8bitmime"):
				bodyType = body8BitMIME
			case equalFold(val, "binarymime") && ss.ext(ExtChunking):
				bodyType = bodyBinaryMIME
			default:
				ss.reply(rParamSyntax)
				return
			}
		case equalFold(key, "smtputf8") && ss.ext(ExtSMTPUTF8):
			if val != nil {
				ss.reply(rParamSyntax)
				return
			}
			utf8 = true
		default:
			ss.reply(rParamUnknown)
			return
		}
	}
	if p.nonASCII && !utf8 {
		ss.reply(rNeedSMTPUTF8)
		return
	}
	ss.inTxn, ss.bodyType, ss.smtputf8 = true, bodyType, utf8
	if ss.cfg.Mode == Dump {
		ss.from = append(ss.from[:0], p.path...)
	}
	ss.reply(rMailOK)
}

func (ss *session) rcpt(arg []byte) {
	if !ss.inTxn {
		ss.reply(rNeedMail)
		return
	}
	rest, ok := cutPrefixFold(arg, "to:")
	if !ok {
		ss.reply(rRcptSyntax)
		return
	}
	ss.rcptAttempted = true
	p, bad := parsePath(trimSpaces(rest), true, ss.cfg)
	switch {
	case bad != 0:
		ss.reply(bad)
		return
	case len(p.params) > 0:
		ss.reply(rParamUnknown)
		return
	case p.nonASCII && !ss.smtputf8:
		ss.reply(rNeedSMTPUTF8)
		return
	case ss.rcpts >= ss.cfg.MaxRecipients:
		ss.reply(rTooManyRcpts)
		return
	}
	ss.rcpts++
	if ss.cfg.Mode == Dump {
		ss.to = append(ss.to, p.path...)
		ss.to = append(ss.to, '\n')
	}
	ss.reply(rRcptOK)
}

// checkReady answers a DATA or BDAT that cannot start a body, and reports whether it can.
func (ss *session) checkReady() bool {
	switch {
	case !ss.inTxn:
		ss.reply(rNeedMail)
	case ss.rcpts == 0 && ss.rcptAttempted:
		ss.reply(rNoValidRcpts)
	case ss.rcpts == 0:
		ss.reply(rNeedRcpt)
	default:
		return true
	}
	return false
}

func (ss *session) dataCmd(arg []byte) {
	switch {
	case len(arg) > 0:
		ss.reply(rNoArgs)
		return
	case !ss.checkReady():
		return
	case ss.bdatStarted:
		ss.reply(rDataAfterBdat)
		return
	case ss.bodyType == bodyBinaryMIME:
		ss.reply(rBinaryNeedsBdat)
		return
	}
	ss.reply(rStartData)
	if !ss.flush() { // the client waits for 354 before it sends the body
		return
	}
	ss.data.reset(ss.cfg.Mode == Dump, ss.cfg.MaxMessageSize)
	for {
		if ss.r.Buffered() == 0 {
			ss.arm(ss.cfg.DataTimeout)
		}
		p, err := ss.r.Peek()
		if err != nil {
			if ss.retryRead(err, ss.cfg.DataTimeout) {
				continue
			}
			ss.closed = true
			return
		}
		full := len(p) == ss.r.Size()
		n, done := ss.data.feed(p)
		ss.r.Discard(n)
		if done {
			break
		}
		if full {
			ss.borrowBig() // a body larger than the command buffer: read it in larger reads
		}
	}
	switch {
	case ss.data.bare:
		ss.reply(rBareLineEnding)
		ss.srv.stats.rejected.Add(1)
	case ss.data.size > ss.cfg.MaxMessageSize:
		ss.reply(rTooBig)
		ss.srv.stats.rejected.Add(1)
	default:
		ss.accept(ss.data.size, ss.data.keep)
	}
	ss.resetTxn()
}

// bdat handles "BDAT size [LAST]" (RFC 3030). A chunk is always read, even when it is refused, so
// the session stays in step with the client.
func (ss *session) bdat(arg []byte) {
	size, last, ok := parseBdat(arg)
	if !ok {
		ss.reply(rBdatSyntax) // the chunk's length is unknown: what follows is read as commands
		return
	}
	if !ss.ext(ExtChunking) || !ss.inTxn || ss.rcpts == 0 {
		if !ss.readChunk(size, false) {
			return
		}
		if !ss.ext(ExtChunking) {
			ss.reply(rNotImplemented)
		} else {
			ss.checkReady()
		}
		return
	}
	if !ss.bdatStarted {
		ss.bdatStarted = true
		ss.data.reset(ss.cfg.Mode == Dump, ss.cfg.MaxMessageSize)
	}
	if !ss.readChunk(size, true) {
		return
	}
	switch {
	case ss.data.size > ss.cfg.MaxMessageSize:
		// Refused at the chunk that crosses the limit; later chunks find no transaction.
		ss.reply(rTooBig)
		ss.srv.stats.rejected.Add(1)
		ss.resetTxn()
	case last:
		ss.accept(ss.data.size, ss.data.keep)
		ss.resetTxn()
		ss.flush() // the client waits for this reply
	default:
		ss.srv.stats.replies[250].Add(1)
		ss.out = append(ss.out, ss.srv.chunkOK...)
		ss.out = strconv.AppendInt(ss.out, size, 10)
		ss.out = append(ss.out, " octets\r\n"...)
	}
}

// readChunk reads size octets of a BDAT chunk, adding them to the message when keep is set.
func (ss *session) readChunk(size int64, keep bool) bool {
	if size > int64(ss.r.Size()) {
		ss.borrowBig()
	}
	for size > 0 {
		if ss.r.Buffered() == 0 {
			ss.arm(ss.cfg.DataTimeout)
		}
		p, err := ss.r.Peek()
		if err != nil {
			if ss.retryRead(err, ss.cfg.DataTimeout) {
				continue
			}
			ss.closed = true
			return false
		}
		if int64(len(p)) > size {
			p = p[:size]
		}
		if keep {
			ss.data.content(p)
		}
		ss.r.Discard(len(p))
		size -= int64(len(p))
	}
	return true
}

// accept counts an accepted message, hands it to the dump when there is one, and answers it.
func (ss *session) accept(size int64, content []byte) {
	ss.msgSeq++
	st := &ss.srv.stats
	st.messages.Add(1)
	st.recipients.Add(uint64(ss.rcpts))
	st.bytes.Add(uint64(size))
	if ss.cfg.Mode == Dump {
		if err := ss.srv.dump(ss, content); err != nil {
			ss.srv.cfg.Logger.Error("dump failed", "err", err)
			st.messages.Add(^uint64(0))
			ss.reply(rDumpFailed)
			return
		}
	}
	st.replies[250].Add(1)
	ss.out = append(ss.out, ss.srv.queued...)
	ss.out = strconv.AppendUint(ss.out, ss.id, 36)
	ss.out = append(ss.out, '.')
	ss.out = strconv.AppendUint(ss.out, ss.msgSeq, 36)
	ss.out = append(ss.out, '\r', '\n')
}

// queueID is the id "250 … queued as" gives, also used in dump file names.
func (ss *session) queueID() string {
	return strconv.FormatUint(ss.id, 36) + "." + strconv.FormatUint(ss.msgSeq, 36)
}

// borrowBig swaps the command buffer for a larger pooled one while a body streams in.
func (ss *session) borrowBig() {
	if ss.big != nil || ss.cfg.BodyBuffer <= ss.cfg.ReadBuffer {
		return
	}
	ss.big = ss.srv.bodyBufs.Get().(*[]byte)
	ss.r.SwapBuffer(*ss.big)
}

// releaseBig gives the body buffer back once what is buffered fits in the command buffer.
func (ss *session) releaseBig() {
	if ss.big == nil || ss.r.Buffered() > len(ss.small) {
		return
	}
	ss.r.SwapBuffer(ss.small)
	ss.srv.bodyBufs.Put(ss.big)
	ss.big = nil
}

// remoteIP is the client's address for Received headers: an IP, or "unix" on a unix socket.
func (ss *session) remoteIP() string {
	switch a := ss.conn.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return "unknown"
	default:
		if host, _, err := net.SplitHostPort(a.String()); err == nil {
			return host
		}
		return a.Network()
	}
}
