package server

import (
	"errors"
	"net"
	"os"
	"time"

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
		if g != nil {
			g.release(s)
			s.goConns.Put(g)
		}
	}()
	remote := ""
	if s.cfg.Mode == Dump {
		remote = remoteIP(c.RemoteAddr())
	}
	g.ss.reset(s, s.nextID.Add(1), remote)
	g.conn = c
	if len(g.small) != s.cfg.ReadBuffer {
		g.small = make([]byte, s.cfg.ReadBuffer)
	}
	g.r.Reset(c, g.small)
	g.deadline = time.Time{}
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
		if ss.closing {
			g.flush()
			return
		}
		if p := g.r.Bytes(); len(p) > 0 {
			n := ss.consume(p)
			g.r.Discard(n)
			if ss.flushNow {
				ss.flushNow = false
				if !g.flush() {
					return
				}
			}
			if n == len(p) || ss.closing || n > 0 {
				continue
			}
		}
		// consume needs more input: this is where the session would block.
		if s.shuttingDown.Load() && ss.idle(g.r.Buffered()) {
			ss.shutdown()
			continue
		}
		g.releaseBig(s)
		g.arm(ss.timeout())
		if !g.flush() {
			return
		}
		err := g.r.Fill()
		switch {
		case err == nil:
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

// arm sets the connection's deadline to now+d. Setting a deadline updates a runtime timer, so it is
// skipped while the armed one is within d/16 of the wanted one.
func (g *goConn) arm(d time.Duration) {
	want := time.Now().Add(d)
	if diff := want.Sub(g.deadline); diff > d/16 || diff < -d/16 {
		g.deadline = want
		g.conn.SetDeadline(want)
	}
}

// flush writes the pending replies. It reports false when the connection is gone.
func (g *goConn) flush() bool {
	ss := &g.ss
	if len(ss.out) == 0 {
		return true
	}
	ss.srv.stats.writes.Add(1)
	_, err := g.conn.Write(ss.out)
	ss.out = ss.out[:0]
	return err == nil
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

// remoteIP is the client's address for Received headers: an IP, or the network's name.
func remoteIP(a net.Addr) string {
	switch a := a.(type) {
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
