//go:build linux

package server

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/smtpbench/smtpbench/internal/mono"
)

// The Linux driver: a few event loops, each a goroutine on its own thread that waits in
// epoll_wait and reads, parses and writes for the connections it accepted. A session costs no
// goroutine and no buffer while idle, and a busy loop answers many connections per wake-up with
// no scheduler hand-offs: on loopback that is most of the cost of a message (see README,
// "Performance").

// Event tags, kept in EpollEvent.Pad.
const (
	tagConn int32 = iota
	tagListener
	tagWake
)

// loopListener is a listening socket shared by every loop (EPOLLEXCLUSIVE wakes one of them).
type loopListener struct {
	fd       int
	tcp      bool
	unixPath string
	refs     atomic.Int32 // loops still using it; the last closes it
}

type eloop struct {
	srv       *Server
	epfd      int
	wakefd    int
	events    []unix.EpollEvent
	buf       []byte
	conns     []*econn // by fd
	nconns    int
	free      []*econn
	listeners []*loopListener
	draining  bool
	timers    timerHeap
	sweepNs   int64
	nextSweep int64
	mu        sync.Mutex // guards added, exited and the eventfd
	added     []*loopListener
	exited    bool
}

// econn is one connection of a loop.
type econn struct {
	fd       int
	ss       session
	pending  []byte // input not consumed yet: a partial command line, or what follows a hold
	arrived  int64  // when pending was read
	written  int    // bytes of ss.out already written when a write was partial
	deadline int64  // mono time after which the session times out
	blocked  bool   // the socket is full: wait for EPOLLOUT
	interest uint32 // the epoll events asked for now
	wakeAt   int64  // when a timer of the loop wakes it (0: none)
	heapIdx  int    // its place in the loop's timer heap, -1 when not in it
	rateIn   rateLimit
	rateOut  rateLimit
}

// DefaultEventLoops is the number of event loops when Config.EventLoops is 0: one per two CPUs
// (GOMAXPROCS), at least one. A sink usually shares its machine with a load generator, and on
// loopback a loop that stays busy costs less per message than two that keep waking each other.
func DefaultEventLoops() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// loopsFor reports whether Serve(l) should use event loops: on Linux, for TCP and unix listeners,
// unless Config.EventLoops is -1 or the mode is Dump.
func (s *Server) loopsFor(l net.Listener) bool {
	if s.cfg.EventLoops < 0 || s.cfg.Mode == Dump {
		return false
	}
	switch l.(type) {
	case *net.TCPListener, *net.UnixListener:
		return true
	}
	return false
}

// startLoops starts the event loops once.
func (s *Server) startLoops() error {
	s.loopsOnce.Do(func() {
		n := s.cfg.EventLoops
		if n == 0 {
			n = DefaultEventLoops()
		}
		var loops []*eloop
		for range n {
			lp, err := newLoop(s)
			if err != nil {
				for _, made := range loops {
					made.closeAll()
				}
				s.loopsErr = err
				return
			}
			loops = append(loops, lp)
		}
		// Under s.mu, like track: once Shutdown or Close has closed done, no loop starts (and
		// the WaitGroup they wait on gets no late Add).
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-s.done:
			for _, lp := range loops {
				lp.closeAll()
			}
			s.loopsErr = ErrServerClosed
			return
		default:
		}
		s.loops = loops // wakeLoops reads it from other goroutines (Stall, Shutdown, Close)
		for _, lp := range loops {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				lp.run()
			}()
		}
	})
	return s.loopsErr
}

func newLoop(s *Server) (*eloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd,
		&unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd), Pad: tagWake}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	sweep := min(s.cfg.CommandTimeout, s.cfg.DataTimeout).Nanoseconds() / 8
	sweep = min(max(sweep, 5e6), 1e9)
	return &eloop{
		srv: s, epfd: epfd, wakefd: wakefd,
		events:  make([]unix.EpollEvent, 256),
		buf:     make([]byte, max(s.cfg.BodyBuffer, s.cfg.ReadBuffer, 64<<10)),
		sweepNs: sweep, nextSweep: mono.Now() + sweep,
	}, nil
}

// serveLoops hands a listener to the event loops and waits until the server stops.
func (s *Server) serveLoops(l net.Listener) error {
	if err := s.startLoops(); err != nil {
		return err
	}
	fd, err := dupListener(l)
	if err != nil {
		select {
		case <-s.done: // Shutdown or Close closed the listener before it was duplicated
			return ErrServerClosed
		default:
			return err
		}
	}
	ll := &loopListener{fd: fd}
	switch l := l.(type) {
	case *net.TCPListener:
		ll.tcp = true
	case *net.UnixListener:
		ll.unixPath = l.Addr().String()
	}
	l.Close() // the loops accept on the duplicate
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	ll.refs.Store(int32(len(loops)))
	for _, lp := range loops {
		lp.mu.Lock()
		if lp.exited { // it will never take the listener: let go of its share now
			lp.mu.Unlock()
			lp.dropListener(ll)
			continue
		}
		lp.added = append(lp.added, ll)
		lp.mu.Unlock()
		lp.wake()
	}
	<-s.done
	return ErrServerClosed
}

// dupListener duplicates a listener's socket so the loops own a descriptor that Go's poller does
// not watch. A unix listener is told not to remove its socket file when the original closes.
func dupListener(l net.Listener) (int, error) {
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	sc, ok := l.(syscall.Conn)
	if !ok {
		return -1, errors.New("listener has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(f uintptr) {
		fd, dupErr = unix.Dup(int(f))
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, os.NewSyscallError("dup", dupErr)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
}

// wake interrupts the loop's epoll_wait; it does nothing once the loop has exited (its eventfd
// is closed then, and the number may belong to another file).
func (lp *eloop) wake() {
	var one = [8]byte{1}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if !lp.exited {
		unix.Write(lp.wakefd, one[:])
	}
}

// wakeLoops tells every loop to look at the server's state (shutdown, close).
func (s *Server) wakeLoops() {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, lp := range loops {
		lp.wake()
	}
}

func (lp *eloop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer lp.closeAll()
	s := lp.srv
	for {
		if s.closed.Load() {
			return
		}
		if s.shuttingDown.Load() && !lp.draining {
			lp.startDrain()
		}
		if lp.draining && lp.nconns == 0 {
			return
		}
		next := lp.nextSweep
		if t := lp.timers.peek(); t != nil {
			next = min(next, t.wakeAt)
		}
		wait := int((next - mono.Now() + 999_999) / 1_000_000)
		n, err := unix.EpollWait(lp.epfd, lp.events, max(wait, 0))
		if err != nil && !errors.Is(err, unix.EINTR) {
			s.cfg.Logger.Error("epoll_wait failed; the loop stops", "err", err)
			return
		}
		now := mono.Now()
		for i := range max(n, 0) {
			ev := lp.events[i]
			switch ev.Pad {
			case tagWake:
				var b [8]byte
				unix.Read(lp.wakefd, b[:])
				lp.takeListeners()
			case tagListener:
				lp.accept(lp.listenerByFd(int(ev.Fd)), now)
			default:
				if fd := int(ev.Fd); fd < len(lp.conns) && lp.conns[fd] != nil {
					lp.event(lp.conns[fd], ev.Events, now)
				}
			}
		}
		lp.fireTimers(now)
		if now >= lp.nextSweep {
			lp.sweep(now)
			lp.nextSweep = now + lp.sweepNs
		}
	}
}

// takeListeners registers listeners Serve added since the last wake.
func (lp *eloop) takeListeners() {
	lp.mu.Lock()
	added := lp.added
	lp.added = nil
	lp.mu.Unlock()
	for _, ll := range added {
		if lp.draining || lp.srv.shuttingDown.Load() {
			lp.dropListener(ll)
			continue
		}
		err := unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, ll.fd,
			&unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(ll.fd), Pad: tagListener})
		if err != nil {
			lp.srv.cfg.Logger.Error("cannot watch a listener", "err", err)
			lp.dropListener(ll)
			continue
		}
		lp.listeners = append(lp.listeners, ll)
	}
}

func (lp *eloop) listenerByFd(fd int) *loopListener {
	for _, ll := range lp.listeners {
		if ll.fd == fd {
			return ll
		}
	}
	return nil
}

// dropListener stops watching a listener; the last loop to let go closes it.
func (lp *eloop) dropListener(ll *loopListener) {
	unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, ll.fd, nil)
	if ll.refs.Add(-1) == 0 {
		unix.Close(ll.fd)
		if ll.unixPath != "" {
			os.Remove(ll.unixPath)
		}
	}
}

// accept takes the connections waiting on a listener (a bounded batch, so one busy listener does
// not starve the loop's sessions).
func (lp *eloop) accept(ll *loopListener, now int64) {
	if ll == nil || lp.draining {
		return
	}
	s := lp.srv
	for range 64 {
		fd, _, err := unix.Accept4(ll.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			switch {
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			default:
				s.cfg.Logger.Warn("accept failed", "err", err)
			}
			return
		}
		if ll.tcp {
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
		active := s.stats.active.Add(1)
		s.stats.sessions.Add(1)
		c := lp.newConn(fd, now)
		if err := unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, fd,
			&unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd), Pad: tagConn}); err != nil {
			lp.closeConn(c)
			continue
		}
		c.interest = unix.EPOLLIN | unix.EPOLLRDHUP
		c.ss.reset(s, s.nextID.Add(1), "", now)
		c.ss.start(active > uint64(s.cfg.MaxConns))
		lp.service(c, now, false)
	}
}

func (lp *eloop) newConn(fd int, now int64) *econn {
	var c *econn
	if n := len(lp.free); n > 0 {
		c, lp.free = lp.free[n-1], lp.free[:n-1]
	} else {
		c = &econn{heapIdx: -1}
	}
	c.fd, c.written, c.blocked, c.wakeAt = fd, 0, false, 0
	c.pending = c.pending[:0]
	c.deadline = now + int64(lp.srv.cfg.CommandTimeout)
	c.rateIn = rateLimit{start: now, perSec: lp.srv.cfg.Faults.Bandwidth}
	c.rateOut = c.rateIn
	for fd >= len(lp.conns) {
		lp.conns = append(lp.conns, make([]*econn, len(lp.conns)+64)...)
	}
	lp.conns[fd] = c
	lp.nconns++
	return c
}

func (lp *eloop) closeConn(c *econn) {
	if c.fd < 0 {
		return
	}
	unix.Close(c.fd) // also removes it from the epoll set
	lp.conns[c.fd] = nil
	c.fd = -1
	lp.nconns--
	lp.timers.remove(c)
	lp.srv.stats.active.Add(^uint64(0))
	lp.srv.sessionEnded()
	c.ss.release()
	if cap(c.pending) > 4<<10 {
		c.pending = nil
	}
	lp.free = append(lp.free, c)
}

// event handles readiness of one connection. A panic ends that session only.
func (lp *eloop) event(c *econn, events uint32, now int64) {
	defer lp.recoverConn(c)
	if events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 && c.waiting() {
		lp.closeConn(c) // the client is gone while the session waits on a timer
		return
	}
	if events&unix.EPOLLOUT != 0 {
		c.blocked = false
	}
	if c.waiting() {
		return // its timer will service it
	}
	lp.service(c, now, events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
}

func (lp *eloop) recoverConn(c *econn) {
	if p := recover(); p != nil {
		lp.srv.stats.panics.Add(1)
		lp.srv.cfg.Logger.Error("session panicked", "panic", p)
		lp.closeConn(c)
	}
}

// waiting reports whether the connection waits on a timer (a hold, a stall, the tarpit).
func (c *econn) waiting() bool { return c.wakeAt != 0 }

// service does everything the connection can do now, in this order: end an injected hold,
// consume input already read, write the replies, read more. It stops at the first thing it must
// wait for (a timer, a full socket, more input) and leaves the epoll interest and timer set for it.
func (lp *eloop) service(c *econn, now int64, readable bool) {
	ss := &c.ss
	for c.fd >= 0 {
		// 1. An injected delay: write what came before it, then wait for its end.
		if ss.holdUntil != 0 {
			if now < ss.holdUntil {
				if lp.write(c, now) {
					lp.wait(c, ss.holdUntil)
				}
				return
			}
			ss.resume() // ss.now still says when the held input arrived
			c.deadline = now + ss.timeout().Nanoseconds()
		}
		// 2. Input left over: after a hold, a flush point, or a partial line.
		progress := false
		if len(c.pending) > 0 && !ss.closing {
			ss.now = c.arrived
			n := ss.consume(c.pending)
			c.pending = c.pending[:copy(c.pending, c.pending[n:])]
			progress = n > 0
			if progress {
				c.deadline = now + ss.timeout().Nanoseconds() // the mode may have changed
			}
			if ss.holdUntil != 0 {
				continue
			}
		}
		// 3. A graceful shutdown ends the session once it is idle.
		if lp.draining && !ss.closing && ss.idle(len(c.pending)) {
			ss.shutdown()
		}
		// 4. Write the replies (RFC 2920: all input consumed, or a flush point).
		flushPoint := ss.flushNow
		ss.flushNow = false
		if !lp.write(c, now) {
			return
		}
		if ss.closing {
			lp.closeConn(c)
			return
		}
		// Input that waited behind a flush point (say, commands pipelined after BDAT LAST) is
		// consumed now, without waiting for more to arrive.
		if (progress || flushPoint) && len(c.pending) > 0 {
			continue
		}
		// 5. Read, within the tarpit's allowance.
		if !readable {
			lp.interest(c, unix.EPOLLIN|unix.EPOLLRDHUP)
			return
		}
		if due := c.rateIn.after(0, now); due > now {
			lp.wait(c, due)
			return
		}
		k := copy(lp.buf, c.pending)
		room := len(lp.buf) - k
		if c.rateIn.perSec > 0 {
			room = min(room, int(max(c.rateIn.perSec/10, 1)))
		}
		if room == 0 {
			return // unreachable: the session always uses a full buffer
		}
		m, err := readNB(c.fd, lp.buf[k:k+room])
		if m <= 0 {
			if err == nil || !(errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) {
				lp.closeConn(c) // EOF or a reset: the client is gone
				return
			}
			readable = errors.Is(err, unix.EINTR)
			continue
		}
		due := c.rateIn.after(int64(m), now)
		readable = m == room // a full read: there may be more
		// Consume straight from the loop's buffer; keep only what is left.
		in := lp.buf[:k+m]
		ss.now, c.arrived = now, now
		if due > now {
			// Over the tarpit's allowance: what was read waits until it is paid for, as in the
			// goroutine driver (else every read would come a burst early).
			c.pending = append(c.pending[:0], in...)
			lp.wait(c, due)
			return
		}
		n := ss.consume(in)
		c.pending = append(c.pending[:0], in[n:]...)
		// The timeout of the mode consume left the session in: DATA's 354 starts the data
		// timeout, the end of the data the command timeout.
		c.deadline = now + ss.timeout().Nanoseconds()
	}
}

// interest sets the epoll events the connection waits for.
func (lp *eloop) interest(c *econn, ev uint32) {
	if c.interest == ev {
		return
	}
	c.interest = ev
	unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd), Pad: tagConn})
}

// wait parks the connection until the mono time t: it reads nothing meanwhile (a hung-up client is
// still noticed: epoll always reports that).
func (lp *eloop) wait(c *econn, t int64) {
	lp.interest(c, 0)
	lp.timers.set(c, t)
	c.deadline = max(c.deadline, t+c.ss.timeout().Nanoseconds())
}

// write writes the session's replies, unless a stall or the tarpit holds them. It reports true
// once everything is written; false when the connection was closed or must wait (the epoll
// interest or timer is then set).
func (lp *eloop) write(c *econn, now int64) bool {
	ss := &c.ss
	s := lp.srv
	if c.written == len(ss.out) {
		return true
	}
	if until := s.stallUntil.Load(); until > now {
		lp.wait(c, until)
		return false
	}
	for c.written < len(ss.out) {
		chunk := ss.out[c.written:]
		if c.rateOut.perSec > 0 {
			chunk = chunk[:min(len(chunk), int(max(c.rateOut.perSec/10, 1)))]
			// A chunk is written once the allowance covers it, as in the goroutine driver.
			probe := c.rateOut // accounts for the chunk when it is written
			if due := probe.after(int64(len(chunk)), now); due > now {
				lp.wait(c, due)
				return false
			}
		}
		w, err := writeNB(c.fd, chunk)
		if w > 0 {
			c.written += w
			c.rateOut.after(int64(w), now)
			s.stats.writes.Add(1)
			continue
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			c.blocked = true
			lp.interest(c, unix.EPOLLOUT)
			return false
		default:
			lp.closeConn(c)
			return false
		}
	}
	ss.out = ss.out[:0]
	c.written = 0
	ss.written(mono.Now())
	return true
}

// sweep ends the sessions whose timeout passed.
func (lp *eloop) sweep(now int64) {
	for _, c := range lp.conns {
		if c == nil || now < c.deadline {
			continue
		}
		if c.blocked || c.written > 0 { // the client stopped reading its replies
			lp.closeConn(c)
			continue
		}
		c.ss.timedOut()
		lp.service(c, now, false)
	}
}

// fireTimers services the connections whose timer is due.
func (lp *eloop) fireTimers(now int64) {
	for {
		c := lp.timers.peek()
		if c == nil || c.wakeAt > now {
			return
		}
		lp.timers.remove(c)
		func() {
			defer lp.recoverConn(c)
			lp.service(c, now, true)
		}()
	}
}

// startDrain begins a graceful shutdown: stop accepting, tell idle sessions 421; the others finish
// their transaction and are told at its end.
func (lp *eloop) startDrain() {
	lp.draining = true
	lp.takeListeners()
	for _, ll := range lp.listeners {
		lp.dropListener(ll)
	}
	lp.listeners = nil
	now := mono.Now()
	for _, c := range lp.conns {
		if c != nil && c.ss.idle(len(c.pending)) && c.ss.holdUntil == 0 {
			lp.service(c, now, false)
		}
	}
}

// closeAll closes everything when the loop ends.
func (lp *eloop) closeAll() {
	if !lp.draining {
		lp.takeListeners()
		for _, ll := range lp.listeners {
			lp.dropListener(ll)
		}
	}
	for _, c := range lp.conns {
		if c != nil {
			lp.closeConn(c)
		}
	}
	lp.mu.Lock()
	lp.exited = true
	added := lp.added
	lp.added = nil
	unix.Close(lp.wakefd)
	lp.mu.Unlock()
	for _, ll := range added { // handed over after the loop last looked
		lp.dropListener(ll)
	}
	unix.Close(lp.epfd)
}

// timerHeap orders connections by wakeAt.
type timerHeap []*econn

func (h *timerHeap) peek() *econn {
	if len(*h) == 0 {
		return nil
	}
	return (*h)[0]
}

func (h *timerHeap) set(c *econn, t int64) {
	c.wakeAt = t
	if c.heapIdx >= 0 {
		h.fix(c.heapIdx)
		return
	}
	c.heapIdx = len(*h)
	*h = append(*h, c)
	h.up(c.heapIdx)
}

func (h *timerHeap) remove(c *econn) {
	i := c.heapIdx
	if i < 0 {
		return
	}
	last := len(*h) - 1
	h.swap(i, last)
	*h = (*h)[:last]
	c.heapIdx, c.wakeAt = -1, 0
	if i < last {
		h.fix(i)
	}
}

func (h *timerHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].wakeAt <= h[i].wakeAt {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].wakeAt < h[l].wakeAt {
			m = r
		}
		if h[i].wakeAt <= h[m].wakeAt {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}
