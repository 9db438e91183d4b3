package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// sockaddr resolves a TCP host:port.
func sockaddr(addr string) (unix.Sockaddr, int, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	if ip4 := ta.IP.To4(); ip4 != nil || ta.IP == nil {
		sa := &unix.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ip4)
		return sa, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To16())
	return sa, unix.AF_INET6, nil
}

// poller is a level-triggered epoll set.
type poller struct {
	fd     int
	events []unix.EpollEvent
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	return &poller{fd: fd, events: make([]unix.EpollEvent, 128)}, err
}

func (p *poller) ctl(op, fd int, events uint32) error {
	return unix.EpollCtl(p.fd, op, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)})
}

// wait returns the ready events (none after an EINTR).
func (p *poller) wait() ([]unix.EpollEvent, error) {
	n, errno := rawEpollWait(p.fd, p.events)
	switch errno {
	case 0:
		return p.events[:n], nil
	case unix.EINTR:
		return nil, nil
	}
	return nil, errno
}

// setOut asks for EPOLLOUT (a write would have blocked) or stops asking.
func (p *poller) setOut(fd int, on *bool, want bool) error {
	if *on == want {
		return nil
	}
	*on = want
	ev := uint32(unix.EPOLLIN)
	if want {
		ev |= unix.EPOLLOUT
	}
	return p.ctl(unix.EPOLL_CTL_MOD, fd, ev)
}

// sconn is a server connection.
type sconn struct {
	fd      int
	line    []byte // the preamble, until its newline
	req     []int  // request octets of each round trip
	reply   []int  // reply octets of each round trip
	step    int    // the round trip under way
	have    int    // octets of its request received
	owed    int    // reply octets not yet written
	wantOut bool
}

// serve answers every connection's requests, forever.
func serve(addr string) error {
	sa, family, err := sockaddr(addr)
	if err != nil {
		return err
	}
	lfd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if err := unix.Bind(lfd, sa); err != nil {
		return fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := unix.Listen(lfd, 1024); err != nil {
		return err
	}
	p, err := newPoller()
	if err != nil {
		return err
	}
	if err := p.ctl(unix.EPOLL_CTL_ADD, lfd, unix.EPOLLIN); err != nil {
		return err
	}
	fmt.Printf("rawloop listening on %s\n", addr)

	conns := map[int32]*sconn{}
	buf := make([]byte, 256<<10)
	filler := bytes.Repeat([]byte("x"), 64<<10) // what replies are made of: only their length matters
	for {
		evs, err := p.wait()
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if int(ev.Fd) == lfd {
				for {
					fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
					if err != nil {
						break // EAGAIN: no more for now
					}
					unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
					if p.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN) != nil {
						unix.Close(fd)
						continue
					}
					conns[int32(fd)] = &sconn{fd: fd}
				}
				continue
			}
			c := conns[ev.Fd]
			ok := true
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				ok = c.read(buf)
			}
			if ok {
				ok = c.flush(p, filler)
			}
			if !ok {
				unix.Close(c.fd)
				delete(conns, ev.Fd)
			}
		}
	}
}

// read takes what has arrived (one read: the epoll set is level-triggered) and owes a reply for
// every whole request. It reports false when the connection is over.
func (c *sconn) read(buf []byte) bool {
	n, errno := rawRead(c.fd, buf)
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return true // level-triggered: epoll says so again
	}
	if errno != 0 || n == 0 {
		return false
	}
	in := buf[:n]
	if c.req == nil {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			c.line = append(c.line, in...)
			return len(c.line) < 4096
		}
		c.line = append(c.line, in[:i]...)
		var err error
		if c.req, c.reply, err = parsePreamble(string(c.line)); err != nil {
			return false
		}
		in = in[i+1:]
	}
	c.have += len(in)
	for c.have >= c.req[c.step] {
		c.have -= c.req[c.step]
		c.owed += c.reply[c.step]
		c.step = (c.step + 1) % len(c.req)
	}
	return true
}

// flush writes the replies owed, as far as the socket takes them.
func (c *sconn) flush(p *poller, filler []byte) bool {
	for c.owed > 0 {
		n, errno := rawWrite(c.fd, filler[:min(c.owed, len(filler))])
		if errno == unix.EINTR {
			continue
		}
		if errno == unix.EAGAIN {
			return p.setOut(c.fd, &c.wantOut, true) == nil
		}
		if errno != 0 {
			return false
		}
		c.owed -= n
	}
	return p.setOut(c.fd, &c.wantOut, false) == nil
}

// cconn is a client connection.
type cconn struct {
	fd      int
	step    int // the round trip under way
	sent    int // octets of its request written
	got     int // octets of its reply received
	wantOut bool
}

type result struct {
	done    int
	elapsed time.Duration
}

// run sends n messages of the given shape over conns connections, each in lock-step.
func run(addr string, conns, n int, steps []step) (result, error) {
	sa, family, err := sockaddr(addr)
	if err != nil {
		return result{}, err
	}
	p, err := newPoller()
	if err != nil {
		return result{}, err
	}
	pre := preamble(steps)
	cs := map[int32]*cconn{}
	defer func() {
		for _, c := range cs {
			unix.Close(c.fd)
		}
	}()

	start := time.Now()
	started := 0
	for range min(conns, n) {
		fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return result{}, err
		}
		cs[int32(fd)] = &cconn{fd: fd}
		if err := unix.Connect(fd, sa); err != nil {
			return result{}, fmt.Errorf("connect %s: %w", addr, err)
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if _, err := unix.Write(fd, pre); err != nil { // blocking: it is short
			return result{}, err
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			return result{}, err
		}
		if err := p.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN); err != nil {
			return result{}, err
		}
		started++
		if err := cs[int32(fd)].send(p, steps); err != nil {
			return result{}, err
		}
	}

	buf := make([]byte, 256<<10)
	done := 0
	for done < n {
		evs, err := p.wait()
		if err != nil {
			return result{}, err
		}
		for _, ev := range evs {
			c := cs[ev.Fd]
			if ev.Events&unix.EPOLLOUT != 0 {
				if err := c.send(p, steps); err != nil {
					return result{}, err
				}
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
				continue
			}
			m, errno := rawRead(c.fd, buf)
			if errno == unix.EAGAIN || errno == unix.EINTR {
				continue
			}
			if errno != 0 || m == 0 {
				return result{done, time.Since(start)}, fmt.Errorf("the server closed a connection (%v) after %d messages", errno, done)
			}
			c.got += m
			want := steps[c.step].reply
			if c.got < want {
				continue
			}
			if c.got > want {
				return result{}, errors.New("the server sent more than the reply")
			}
			c.got, c.sent = 0, 0
			if c.step++; c.step == len(steps) {
				c.step = 0
				done++
				if started == n {
					unix.Close(c.fd)
					delete(cs, ev.Fd)
					continue
				}
				started++
			}
			if err := c.send(p, steps); err != nil {
				return result{}, err
			}
		}
	}
	return result{done, time.Since(start)}, nil
}

// send writes the current request, as far as the socket takes it.
func (c *cconn) send(p *poller, steps []step) error {
	req := steps[c.step].req
	for c.sent < len(req) {
		n, errno := rawWrite(c.fd, req[c.sent:])
		if errno == unix.EINTR {
			continue
		}
		if errno == unix.EAGAIN {
			return p.setOut(c.fd, &c.wantOut, true)
		}
		if errno != 0 {
			return errno
		}
		c.sent += n
	}
	return p.setOut(c.fd, &c.wantOut, false)
}
