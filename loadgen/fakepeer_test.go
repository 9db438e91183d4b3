package loadgen

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/pipeline"
)

// fakePeer is a rule-driven SMTP server on a loopback port for load tests that need replies the
// bundled sink never gives (refusals, 421, dropped connections, silence). Each hook returns the
// reply line without CRLF; "" means the default, hookHang answers nothing and waits for the client
// to go away, and hookClose closes the connection without a reply.
type fakePeer struct {
	ln   net.Listener
	ehlo string

	onMail func(s *peerSession) string
	onRcpt func(s *peerSession) string
	onData func(s *peerSession) string // the reply to the end of data (or to BDAT LAST)

	mu    sync.Mutex
	mails []string // every MAIL line, CRLF stripped
	heads []string // the first line of every message's data
	conns sync.WaitGroup

	sessions  atomic.Int64
	delivered atomic.Int64
}

// peerSession is one connection's state, for the hooks.
type peerSession struct {
	conn     int // connection number, from 1
	mails    int // MAIL commands on this connection, this one included
	rcpts    int // RCPTs in this transaction, this one included
	accepted int
	messages int // messages whose data was read on this connection, this one included
}

const (
	hookHang  = "hang"
	hookClose = "close"
)

const peerEHLO = "250-fake.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n"

func startPeer(tb testing.TB, p *fakePeer) pipeline.Target {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.ln = ln
	if p.ehlo == "" {
		p.ehlo = peerEHLO
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			go func() {
				defer p.conns.Done()
				p.serve(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		p.conns.Wait()
	})
	return pipeline.Target{Network: "tcp", Address: ln.Addr().String()}
}

func (p *fakePeer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	s := &peerSession{conn: int(p.sessions.Add(1))}
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	say := func(line string) bool {
		switch line {
		case hookHang:
			w.Flush()
			io.Copy(io.Discard, r)
			return false
		case hookClose:
			return false
		}
		w.WriteString(line + "\r\n")
		if r.Buffered() == 0 { // RFC 2920: flush only when the input is empty
			if w.Flush() != nil {
				return false
			}
		}
		return !strings.HasPrefix(line, "421")
	}
	hook := func(f func(*peerSession) string, def string) string {
		if f != nil {
			if reply := f(s); reply != "" {
				return reply
			}
		}
		return def
	}
	if !say("220 fake.example ESMTP") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(line[:min(4, len(line))])
		ok := true
		switch verb {
		case "EHLO":
			w.WriteString(p.ehlo)
			ok = w.Flush() == nil
		case "MAIL":
			p.mu.Lock()
			p.mails = append(p.mails, line)
			p.mu.Unlock()
			s.mails++
			s.rcpts, s.accepted = 0, 0
			ok = say(hook(p.onMail, "250 2.1.0 Ok"))
		case "RCPT":
			s.rcpts++
			reply := hook(p.onRcpt, "250 2.1.5 Ok")
			if strings.HasPrefix(reply, "2") {
				s.accepted++
			}
			ok = say(reply)
		case "DATA":
			if s.accepted == 0 {
				ok = say("554 5.5.1 Error: no valid recipients")
				break
			}
			if !say("354 go ahead") || w.Flush() != nil {
				return
			}
			first := ""
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				if first == "" {
					first = strings.TrimRight(l, "\r\n")
				}
			}
			ok = p.endMessage(s, first, say)
		case "BDAT":
			f := strings.Fields(line)
			n, err := strconv.Atoi(f[1])
			if err != nil {
				return
			}
			data := make([]byte, n)
			if _, err := io.ReadFull(r, data); err != nil {
				return
			}
			if s.accepted == 0 {
				ok = say("554 5.5.1 Error: no valid recipients")
				break
			}
			first, _, _ := strings.Cut(string(data), "\r\n")
			ok = p.endMessage(s, first, say)
		case "RSET", "NOOP":
			ok = say("250 2.0.0 Ok")
		case "QUIT":
			say("221 2.0.0 Bye")
			w.Flush()
			return
		default:
			ok = say("500 5.5.2 Error: command not recognized")
		}
		if !ok {
			w.Flush()
			return
		}
	}
}

func (p *fakePeer) endMessage(s *peerSession, first string, say func(string) bool) bool {
	s.messages++
	p.mu.Lock()
	p.heads = append(p.heads, first)
	p.mu.Unlock()
	reply := "250 2.0.0 Ok: queued"
	if p.onData != nil {
		if r := p.onData(s); r != "" {
			reply = r
		}
	}
	if strings.HasPrefix(reply, "2") {
		p.delivered.Add(1)
	}
	return say(reply)
}

func (p *fakePeer) mailLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.mails...)
}
