package server

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/smtpbench/smtpbench/results"
)

// body is the BODY= parameter of a transaction (RFC 6152, RFC 3030).
type body uint8

const (
	body7Bit body = iota
	body8BitMIME
	bodyBinaryMIME
)

// inputMode says how the session reads what arrives next.
type inputMode uint8

const (
	modeCommand   inputMode = iota // command lines
	modeDrainLine                  // an over-long command line, dropped up to its LF
	modeData                       // message data after 354, up to CRLF.CRLF
	modeBdat                       // the octets of a BDAT chunk
)

// session is the SMTP protocol of one connection, with no I/O of its own: a driver hands it the
// bytes that arrived (consume) and writes the replies it appends to out. Sessions come from a
// pool and are reset on reuse, so an established session allocates nothing per transaction.
//
// Drivers keep three rules: write out whenever consume needs more input (RFC 2920 §3.2: replies
// are flushed only when no input is waiting), also when flushNow is set, and close the connection
// once out is written after closing is set.
type session struct {
	srv *Server
	cfg *Config
	id  uint64

	out      []byte // replies not yet written
	closing  bool   // a closing reply (221, 421) was queued: close after writing out
	flushNow bool   // write out before consuming more (the end of a BDAT LAST)
	remote   string // the client's address, for Received headers (dump mode only)

	// now is when the input being consumed arrived (internal/mono), set by the driver.
	now int64
	// holdUntil, when set, stops the session until then: the driver writes out, reads and
	// consumes nothing more, and calls resume at that time (an injected delay).
	holdUntil int64
	held      heldAction

	// Faults: a per-connection random source, and the fault drawn for the next reply.
	faultsOn   bool
	rng        rand.PCG
	act        faultAct
	actPending bool
	refused    bool   // the greeting was a fault reply: only QUIT is served
	fromKey    uint64 // the reverse-path's hash, for greylisting

	// Server-side latency: the replies in out not yet written, with when their command arrived.
	lat     *latencyShard
	phase   results.Phase // of the command being answered
	samples []sample

	// Session state.
	mode    inputMode
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
	bdatLeft      int64 // octets of the current chunk still to come
	bdatKeep      bool  // the chunk belongs to the message (else it is read and dropped)
	bdatLast      bool
	bdatRefusal   reply // the reply for a chunk that is read but refused
	from          []byte
	to            []byte // the accepted paths, each ended by '\n' (dump mode)
	data          dotReader
}

// reset prepares a pooled session for a new connection.
func (ss *session) reset(srv *Server, id uint64, remote string, now int64) {
	ss.srv, ss.cfg, ss.id, ss.remote, ss.now = srv, &srv.cfg, id, remote, now
	ss.lat = &srv.latency[id%uint64(len(srv.latency))]
	ss.samples = ss.samples[:0]
	ss.holdUntil, ss.held, ss.actPending, ss.refused = 0, heldNone, false, false
	ss.faultsOn = srv.faultsOn
	if ss.faultsOn {
		ss.rng.Seed(srv.cfg.Faults.Seed, id)
	}
	ss.out = ss.out[:0]
	ss.closing, ss.flushNow = false, false
	ss.mode = modeCommand
	ss.greeted, ss.esmtp, ss.errors, ss.msgSeq = false, false, 0, 0
	ss.helo = ss.helo[:0]
	ss.resetTxn()
}

// release caps what a session keeps before it goes back to the pool.
func (ss *session) release() {
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

// start queues the greeting, or 421 when the server has too many sessions. An injected delay
// holds the greeting until resume.
func (ss *session) start(tooMany bool) {
	ss.phase = results.Greeting
	if tooMany {
		ss.reply(rTooManyConns)
		return
	}
	if ss.faultsOn && ss.draw(AtConnect, heldGreeting) {
		return
	}
	ss.greet()
}

func (ss *session) greet() {
	ss.phase = results.Greeting
	if ss.applyFault(AtConnect) {
		ss.refused = !ss.closing
		return
	}
	ss.reply(rGreeting)
}

// timeout is how long the session may wait for input now.
func (ss *session) timeout() time.Duration {
	if ss.mode == modeData || ss.mode == modeBdat {
		return ss.cfg.DataTimeout
	}
	return ss.cfg.CommandTimeout
}

// idle reports whether the session is between transactions, with no partial input: a graceful
// shutdown may end it now.
func (ss *session) idle(partial int) bool {
	return ss.mode == modeCommand && !ss.inTxn && partial == 0
}

// timedOut ends the session after its timeout passed.
func (ss *session) timedOut() {
	ss.srv.stats.timeouts.Add(1)
	ss.reply(rTimeout)
	ss.closing = true
}

// shutdown ends an idle session during a graceful shutdown.
func (ss *session) shutdown() {
	ss.reply(rShuttingDown)
	ss.closing = true
}

// consume handles as much of in as it can and returns how many bytes it used. It stops early at
// a partial command line (the driver keeps it and reads more), when closing is set, and when
// flushNow is set.
func (ss *session) consume(in []byte) int {
	n := 0
	for n < len(in) && !ss.closing && !ss.flushNow && ss.holdUntil == 0 {
		switch ss.mode {
		case modeCommand:
			rest := in[n:]
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				if len(rest) >= ss.cfg.MaxLineLength {
					ss.mode = modeDrainLine // too long already: drop it and answer at its LF
					return len(in)
				}
				return n
			}
			if i+1 > ss.cfg.MaxLineLength {
				n += i + 1
				ss.reply(rLineTooLong)
				continue
			}
			if ss.faultsOn && !ss.actPending && ss.drawCommand(rest[:i+1]) {
				return n // delayed: the line is consumed when the hold ends
			}
			n += i + 1
			ss.command(rest[:i+1])
		case modeDrainLine:
			i := bytes.IndexByte(in[n:], '\n')
			if i < 0 {
				return len(in)
			}
			n += i + 1
			ss.mode = modeCommand
			ss.reply(rLineTooLong)
		case modeData:
			used, done := ss.data.feed(in[n:])
			n += used
			if done {
				ss.mode = modeCommand
				if ss.faultsOn && ss.draw(AtDot, heldEndData) {
					return n
				}
				ss.endData()
			}
		case modeBdat:
			take := min(int64(len(in)-n), ss.bdatLeft)
			if ss.bdatKeep {
				ss.data.content(in[n : n+int(take)])
			}
			n += int(take)
			ss.bdatLeft -= take
			if ss.bdatLeft == 0 {
				ss.mode = modeCommand
				if ss.faultsOn && ss.bdatRefusal == 0 && ss.draw(ss.chunkPoint(), heldEndChunk) {
					return n
				}
				ss.endChunk()
			}
		}
	}
	return n
}

// reply queues a reply, counts it, and counts protocol errors: a session that makes more than
// MaxErrors of them is told 421 and closed. A 421 sets closing.
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
	ss.sample()
	if code == 421 {
		ss.closing = true
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
	ss.phase = verbPhase(verb)
	if !ok {
		if isStartTLS(line) {
			ss.reply(rNotImplemented) // known, but not a four-letter verb
			return
		}
		ss.reply(rUnknownCommand)
		return
	}
	if ss.actPending {
		if verb == verbRCPT && ss.inTxn {
			ss.rcptAttempted = true // a recipient refused by a fault is still a refused recipient
		}
		if ss.applyFault(verbPoint(verb)) {
			return
		}
	}
	if ss.refused && verb != verbQUIT {
		ss.reply(rNoService)
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
		ss.closing = true
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
		ss.sample()
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
		ss.from = p.appendPath(ss.from[:0])
	}
	if ss.cfg.Faults.Greylist > 0 {
		ss.fromKey = pathKey(p.mailbox())
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
	case ss.cfg.Faults.Greylist > 0 && !ss.srv.greylist.pass(ss.fromKey, pathKey(p.mailbox()), ss.now, int64(ss.cfg.Faults.Greylist)):
		ss.srv.stats.greylisted.Add(1)
		ss.reply(rGreylisted)
		return
	}
	ss.rcpts++
	if ss.cfg.Mode == Dump {
		ss.to = p.appendPath(ss.to)
		ss.to = append(ss.to, '\n')
	}
	ss.reply(rRcptOK)
}

// notReady returns the reply for a DATA or BDAT that cannot start a message, or 0 when it can.
func (ss *session) notReady() reply {
	switch {
	case !ss.inTxn:
		return rNeedMail
	case ss.rcpts == 0 && ss.rcptAttempted:
		return rNoValidRcpts
	case ss.rcpts == 0:
		return rNeedRcpt
	}
	return 0
}

func (ss *session) dataCmd(arg []byte) {
	if len(arg) > 0 {
		ss.reply(rNoArgs)
		return
	}
	if r := ss.notReady(); r != 0 {
		ss.reply(r)
		return
	}
	switch {
	case ss.bdatStarted:
		ss.reply(rDataAfterBdat)
		return
	case ss.bodyType == bodyBinaryMIME:
		ss.reply(rBinaryNeedsBdat)
		return
	}
	ss.reply(rStartData)
	ss.data.reset(ss.cfg.Mode == Dump, ss.cfg.MaxMessageSize)
	ss.mode = modeData
}

// endData answers the message once its end-of-data line arrived.
func (ss *session) endData() {
	ss.phase = results.Body
	if ss.applyFault(AtDot) {
		ss.srv.stats.rejected.Add(1)
		ss.resetTxn()
		return
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

// bdat handles "BDAT size [LAST]" (RFC 3030). A chunk is always read, even when it is refused,
// so the session stays in step with the client.
func (ss *session) bdat(arg []byte) {
	size, last, ok := parseBdat(arg)
	if !ok {
		ss.reply(rBdatSyntax) // the chunk's length is unknown: what follows is read as commands
		return
	}
	ss.bdatLeft, ss.bdatLast, ss.bdatKeep, ss.bdatRefusal = size, last, false, 0
	switch {
	case !ss.ext(ExtChunking):
		ss.bdatRefusal = rNotImplemented
	default:
		ss.bdatRefusal = ss.notReady()
	}
	if ss.bdatRefusal == 0 {
		ss.bdatKeep = true
		if !ss.bdatStarted {
			ss.bdatStarted = true
			ss.data.reset(ss.cfg.Mode == Dump, ss.cfg.MaxMessageSize)
		}
	}
	if size == 0 {
		ss.endChunk()
		return
	}
	ss.mode = modeBdat
}

// endChunk answers a BDAT chunk once all its octets arrived.
func (ss *session) endChunk() {
	ss.phase = results.Bdat
	if ss.bdatRefusal != 0 {
		ss.reply(ss.bdatRefusal)
		return
	}
	if ss.applyFault(ss.chunkPoint()) {
		ss.srv.stats.rejected.Add(1) // the message fails with its chunk
		ss.resetTxn()
		return
	}
	switch {
	case ss.data.size > ss.cfg.MaxMessageSize:
		// Refused at the chunk that crosses the limit; later chunks find no transaction.
		ss.reply(rTooBig)
		ss.srv.stats.rejected.Add(1)
		ss.resetTxn()
	case ss.bdatLast:
		ss.accept(ss.data.size, ss.data.keep)
		ss.resetTxn()
		ss.flushNow = true // the client waits for this reply
	default:
		ss.srv.stats.replies[250].Add(1)
		ss.out = append(ss.out, ss.srv.chunkOK...)
		ss.out = strconv.AppendInt(ss.out, ss.data.size, 10)
		ss.out = append(ss.out, " octets\r\n"...)
		ss.sample()
	}
}

// accept counts an accepted message, hands it to the dump when there is one, and answers it.
func (ss *session) accept(size int64, content []byte) {
	ss.msgSeq++
	st := &ss.srv.stats
	if ss.cfg.Mode == Dump {
		if err := ss.srv.dump(ss, content); err != nil {
			ss.srv.cfg.Logger.Error("dump failed", "err", err)
			ss.reply(rDumpFailed)
			return
		}
	}
	n := st.messages.Add(1)
	st.recipients.Add(uint64(ss.rcpts))
	st.bytes.Add(uint64(size))
	st.replies[250].Add(1)
	ss.out = append(ss.out, ss.srv.queued...)
	ss.out = strconv.AppendUint(ss.out, ss.id, 36)
	ss.out = append(ss.out, '.')
	ss.out = strconv.AppendUint(ss.out, ss.msgSeq, 36)
	ss.out = append(ss.out, '\r', '\n')
	ss.sample()
	if limit := ss.cfg.Faults.StopAfterMessages; limit > 0 && int64(n) == limit {
		ss.srv.requestStop()
	}
}

// queueID is the id "250 … queued as" gives, also used in dump file names.
func (ss *session) queueID() string {
	return strconv.FormatUint(ss.id, 36) + "." + strconv.FormatUint(ss.msgSeq, 36)
}
