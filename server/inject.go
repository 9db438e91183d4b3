package server

import (
	"sync"

	"github.com/smtpbench/smtpbench/results"
)

// heldAction is what a session does when an injected delay ends.
type heldAction uint8

const (
	heldNone     heldAction = iota
	heldCommand             // the delayed command is still in the input: consume it
	heldGreeting            // send the greeting
	heldEndData             // answer the message that ended
	heldEndChunk            // answer the BDAT chunk that ended
)

// faultAct is what a fault does to a reply.
type faultAct uint8

const (
	actNone       faultAct = iota
	actReply               // answer the configured 4xx/5xx instead
	actDisconnect          // close the connection (with 421 or silently) instead of answering
)

// draw decides the fault at point p for the reply about to be given. It reports true when the reply
// is delayed: the session holds, and resume does held later.
func (ss *session) draw(p FaultPoint, held heldAction) bool {
	f := &ss.cfg.Faults.Points[p]
	if !f.active() {
		return false
	}
	ss.act, ss.actPending = actNone, true
	if f.Disconnect > 0 || f.Reply > 0 {
		switch r := unitFloat(&ss.rng); {
		case r < f.Disconnect:
			ss.act = actDisconnect
		case r < f.Disconnect+f.Reply:
			ss.act = actReply
		}
	}
	if d := f.Delay.sample(&ss.rng); d > 0 {
		ss.srv.stats.faults[p].delayed.Add(1)
		ss.holdUntil, ss.held = ss.now+d, held
		return true
	}
	return false
}

// drawCommand draws the fault for the command line at the head of the input.
func (ss *session) drawCommand(line []byte) bool {
	verb, _, ok := splitCommand(line)
	if !ok {
		return false
	}
	p := verbPoint(verb)
	if p == numFaultPoints {
		return false
	}
	return ss.draw(p, heldCommand)
}

// applyFault carries out the fault drawn for p, if any, and reports whether it replaced the reply.
func (ss *session) applyFault(p FaultPoint) bool {
	if !ss.actPending {
		return false
	}
	act := ss.act
	ss.act, ss.actPending = actNone, false
	if p == numFaultPoints {
		return false
	}
	st := &ss.srv.stats.faults[p]
	switch act {
	case actReply:
		st.replied.Add(1)
		code := ss.cfg.Faults.Points[p].ReplyCode
		ss.srv.stats.replies[code].Add(1)
		ss.out = append(ss.out, ss.srv.faultReplies[p]...)
		ss.sample()
		if code == 421 {
			ss.closing = true
		}
		return true
	case actDisconnect:
		st.disconnected.Add(1)
		if ss.cfg.Faults.Points[p].Disconnect421 {
			ss.reply(rFaultDisconnect)
		}
		ss.closing = true
		return true
	}
	return false
}

// resume ends a hold: the held reply is given now (the driver set now).
func (ss *session) resume() {
	held := ss.held
	ss.holdUntil, ss.held = 0, heldNone
	switch held {
	case heldGreeting:
		ss.greet()
	case heldEndData:
		ss.endData()
	case heldEndChunk:
		ss.endChunk()
	}
}

// chunkPoint is the fault point of the reply to the current BDAT chunk.
func (ss *session) chunkPoint() FaultPoint {
	if ss.bdatLast {
		return AtDot
	}
	return AtBdat
}

func verbPoint(verb uint32) FaultPoint {
	switch verb {
	case verbEHLO:
		return AtEHLO
	case verbHELO:
		return AtHELO
	case verbMAIL:
		return AtMail
	case verbRCPT:
		return AtRcpt
	case verbDATA:
		return AtData
	case verbBDAT:
		// A BDAT's reply comes after its chunk: the fault is drawn then (AtBdat or AtDot).
		return numFaultPoints
	case verbRSET:
		return AtRset
	case verbQUIT:
		return AtQuit
	}
	return numFaultPoints
}

// verbPhase is the phase whose server-side latency a command's reply counts in.
func verbPhase(verb uint32) results.Phase {
	switch verb {
	case verbEHLO, verbHELO:
		return results.EHLO
	case verbMAIL:
		return results.Mail
	case verbRCPT:
		return results.Rcpt
	case verbDATA:
		return results.Data
	case verbBDAT:
		return results.Bdat
	case verbRSET:
		return results.Rset
	case verbQUIT:
		return results.Quit
	}
	return results.NumPhases // not measured
}

// sample is a reply waiting to be written, with when its command arrived.
type sample struct {
	phase   results.Phase
	arrived int64
}

// sample notes that a reply for the current phase was queued.
func (ss *session) sample() {
	if ss.phase < results.NumPhases && len(ss.samples) < 1024 {
		ss.samples = append(ss.samples, sample{ss.phase, ss.now})
	}
}

// written records the server-side latency of every reply in out, which the driver has just
// written at now.
func (ss *session) written(now int64) {
	if len(ss.samples) == 0 {
		return
	}
	l := ss.lat
	l.mu.Lock()
	for _, s := range ss.samples {
		l.rec.Record(s.phase, now-s.arrived)
	}
	l.mu.Unlock()
	ss.samples = ss.samples[:0]
}

// latencyShard is one of the server's latency recorders; sessions share them, a few per CPU.
type latencyShard struct {
	mu  sync.Mutex
	rec *results.Recorder
	_   [48]byte // separate cache lines
}

// greylist remembers when each (sender, recipient) pair was first seen.
type greylist struct {
	mu    sync.Mutex
	first map[[2]uint64]int64
}

// pass reports whether a pair may pass: it was first seen at least the greylisting delay ago.
// The first attempt records it.
func (g *greylist) pass(from, to uint64, now int64, delay int64) bool {
	k := [2]uint64{from, to}
	g.mu.Lock()
	defer g.mu.Unlock()
	t, seen := g.first[k]
	if !seen {
		if g.first == nil {
			g.first = make(map[[2]uint64]int64)
		}
		g.first[k] = now
		return false
	}
	return now-t >= delay
}

// pathKey hashes a path, ignoring ASCII case (FNV-1a).
func pathKey(p []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range p {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// rateLimit is the tarpit of Faults.Bandwidth: octets per second in one direction of a
// connection, with a burst of a tenth of a second.
type rateLimit struct {
	start  int64 // mono time the connection started
	perSec int64 // 0: no limit
	used   int64 // octets so far
}

// after accounts for n more octets at now and returns when the connection may go on: now, or
// later when it is over its allowance.
func (r *rateLimit) after(n, now int64) int64 {
	if r.perSec <= 0 {
		return now
	}
	r.used += n
	burst := max(r.perSec/10, 1)
	due := r.start + (r.used-burst)*1e9/r.perSec
	return max(due, now)
}
