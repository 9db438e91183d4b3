package server

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/smtpbench/smtpbench/internal/mono"
	"github.com/smtpbench/smtpbench/internal/wire"
)

// goConn drives a session on a net.Conn from one goroutine, with blocking reads and writes. It
// serves any net.Conn (in-memory ones in tests, TLS later), other systems than Linux, and dump
// mode, whose file writes would stall an event loop.
type goConn struct {
	ss       session
	conn     net.Conn
	r        wire.Reader
	small    []byte  // the session's own input buffer
	big      *[]byte // a larger pooled buffer, borrowed while a body streams in
	deadline time.Time
	rateIn   rateLimit // Faults.Bandwidth, for what is read
	rateOut  rateLimit // and for what is written
	timer    *time.Timer
}

// serveConn runs one session. A panic ends that session only: it is logged and the connection
// closed.
func (s *Server) serveConn(c net.Conn) {
	active := s.stats.active.Add(1)
	s.stats.sessions.Add(1)
	g := s.goConns.Get().(*goConn)
	defer func() {
		if p := recover(); p != nil {
			s.stats.panics.Add(1)
			s.cfg.Logger.Error("session panicked", "panic", p, "remote", c.RemoteAddr())
			g = nil // its state is suspect: do not reuse it
		}
		c.Close()
		s.stats.active.Add(^uint64(0))
		s.untrack(c)
		s.sessionEnded()
		if g != nil {
			g.release(s)
			s.goConns.Put(g)
		}
	}()
	remote := ""
	if s.cfg.Mode == Dump {
		remote = remoteIP(c.RemoteAddr())
	}
	now := mono.Now()
	g.ss.reset(s, s.nextID.Add(1), remote, now)
	g.conn = c
	if len(g.small) != s.cfg.ReadBuffer {
		g.small = make([]byte, s.cfg.ReadBuffer)
	}
	g.r.Reset(c, g.small)
	g.deadline = time.Time{}
	g.rateIn = rateLimit{start: now, perSec: s.cfg.Faults.Bandwidth}
	g.rateOut = g.rateIn
	g.run(active > uint64(s.cfg.MaxConns))
}

func (g *goConn) release(s *Server) {
	g.releaseBig(s)
	g.conn = nil
	g.r.Reset(nil, g.small)
	g.ss.release()
}

func (g *goConn) run(tooMany bool) {
	ss, s := &g.ss, g.ss.srv
	ss.start(tooMany)
	g.arm(ss.timeout())
	for {
		if ss.holdUntil != 0 {
			// An injected delay: write what came before it, wait, then go on.
			if !g.flush() || !g.sleepUntil(ss.holdUntil) {
				return
			}
			ss.resume() // ss.now still says when the held input arrived
			g.arm(ss.timeout())
			continue
		}
		if ss.closing {
			g.flush()
			return
		}
		if p := g.r.Bytes(); len(p) > 0 {
			n := ss.consume(p)
			g.r.Discard(n)
			if ss.flushNow {
				if !g.flush() {
					return
				}
				continue // a flush point, not a lack of input
			}
			if n > 0 || ss.closing || ss.holdUntil != 0 {
				continue
			}
		}
		// consume needs more input: this is where the session would block. The shutdown flag
		// is read after arming the deadline: Shutdown sets the flag, then moves every deadline to
		// now, so either this sees the flag or the read below sees that deadline.
		g.releaseBig(s)
		g.arm(ss.timeout())
		if s.shuttingDown.Load() && ss.idle(g.r.Buffered()) {
			ss.shutdown()
			continue
		}
		if !g.flush() {
			return
		}
		before := g.r.Buffered()
		err := g.r.Fill()
		ss.now = mono.Now()
		switch {
		case err == nil:
			if !g.sleepUntil(g.rateIn.after(int64(g.r.Buffered()-before), ss.now)) {
				return
			}
			if g.r.Buffered() == g.r.Size() {
				g.borrowBig(s) // a large body is streaming in: read it in larger reads
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			if s.shuttingDown.Load() && time.Now().Before(g.deadline) {
				// Woken by Shutdown: an idle session gets 421 above; one in a
				// transaction may finish it.
				g.deadline = time.Time{}
				continue
			}
			ss.timedOut()
			g.arm(10 * time.Second) // room to write the 421
		default:
			return // EOF, reset: the client is gone
		}
	}
}

// sleepUntil waits until the mono time t, or until the server is closed (false).
func (g *goConn) sleepUntil(t int64) bool {
	d := time.Duration(t - mono.Now())
	if d <= 0 {
		return true
	}
	if g.timer == nil {
		g.timer = time.NewTimer(d)
	} else {
		g.timer.Reset(d)
	}
	select {
	case <-g.timer.C:
		return true
	case <-g.ss.srv.closedCh:
		g.timer.Stop()
		return false
	}
}

// arm sets the connection's deadline to now+d. Setting a deadline updates a runtime timer, so it is
// skipped while the armed one is within d/16 of the wanted one.
func (g *goConn) arm(d time.Duration) {
	want := time.Now().Add(d)
	if diff := want.Sub(g.deadline); diff > d/16 || diff < -d/16 {
		g.deadline = want
		g.conn.SetDeadline(want)
	}
}

// flush writes the pending replies, after a stall if one is on and within the bandwidth limit.
// It reports false when the connection is gone.
func (g *goConn) flush() bool {
	ss := &g.ss
	s := ss.srv
	ss.flushNow = false
	if len(ss.out) == 0 {
		return true
	}
	if !g.sleepUntil(s.stallUntil.Load()) {
		return false
	}
	out := ss.out
	for len(out) > 0 {
		chunk := out
		if g.rateOut.perSec > 0 {
			chunk = out[:min(len(out), int(max(g.rateOut.perSec/10, 1)))]
		}
		if g.rateOut.perSec > 0 && !g.sleepUntil(g.rateOut.after(int64(len(chunk)), mono.Now())) {
			return false
		}
		s.stats.writes.Add(1)
		if _, err := g.conn.Write(chunk); err != nil {
			ss.out = ss.out[:0]
			return false
		}
		out = out[len(chunk):]
	}
	ss.out = ss.out[:0]
	ss.written(mono.Now())
	return true
}

// borrowBig swaps the input buffer for a larger pooled one while a body streams in.
func (g *goConn) borrowBig(s *Server) {
	if g.big != nil || s.cfg.BodyBuffer <= s.cfg.ReadBuffer {
		return
	}
	g.big = s.bodyBufs.Get().(*[]byte)
	g.r.SwapBuffer(*g.big)
}

// releaseBig gives the body buffer back once what is buffered fits in the session's own.
func (g *goConn) releaseBig(s *Server) {
	if g.big == nil || g.r.Buffered() > len(g.small) {
		return
	}
	g.r.SwapBuffer(g.small)
	s.bodyBufs.Put(g.big)
	g.big = nil
}

// remoteIP is the client's address as a Received header's from clause gives it (RFC 5321
// §4.4): "[192.0.2.1]", "[IPv6:2001:db8::1]", or what else the connection is ("unix socket").
func remoteIP(a net.Addr) string {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UnixAddr:
		return "unix socket"
	case nil:
		return "unknown"
	default:
		host, _, err := net.SplitHostPort(a.String())
		if ip = net.ParseIP(host); err != nil || ip == nil {
			return a.Network()
		}
	}
	if ip.To4() != nil {
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}
