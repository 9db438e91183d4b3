// Package server is smtpbench's bundled SMTP sink: an RFC 5321 server that accepts mail as fast as
// the machine allows and throws it away, or writes it to a directory.
//
// It speaks EHLO/HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, QUIT, VRFY, EXPN and HELP with
// PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES and CHUNKING, enforces RFC 5321's
// limits and timeouts, and answers every bad input with the RFC's reply. An established session
// allocates nothing per transaction.
//
//	srv, err := server.New(server.Config{})
//	if err != nil { ... }
//	go srv.ListenAndServe()            // 127.0.0.1:2525
//	...
//	srv.Shutdown(ctx)
package server

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smtpbench/smtpbench/internal/mono"
	"github.com/smtpbench/smtpbench/results"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or Close.
var ErrServerClosed = errors.New("server: closed")

// Server is an SMTP sink. Create it with New.
type Server struct {
	cfg     Config
	replies [numReplies][]byte
	ehlo    []byte
	queued  []byte // "250 2.0.0 Ok: queued as " — the id follows
	chunkOK []byte // "250 2.0.0 Ok: " — the chunk size follows

	stats    counters
	goConns  sync.Pool // *goConn
	bodyBufs sync.Pool // *[]byte of cfg.BodyBuffer bytes
	nextID   atomic.Uint64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	addr      net.Addr
	done      chan struct{} // closed by Shutdown and Close
	wg        sync.WaitGroup

	shuttingDown atomic.Bool
	closed       atomic.Bool
	closedCh     chan struct{} // closed by Close: sleeping sessions wake and end

	faultsOn     bool
	faultReplies [numFaultPoints][]byte
	greylist     greylist
	stallUntil   atomic.Int64 // mono time until which no reply is written
	stallOnce    sync.Once
	stopOnce     sync.Once
	stopped      chan struct{}
	latency      []latencyShard

	loopsOnce sync.Once
	loops     []*eloop
	loopsErr  error
}

// New validates cfg and returns a Server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	enhanced := cfg.Disable&ExtEnhancedStatusCodes == 0
	s := &Server{
		cfg:       cfg,
		replies:   renderReplies(cfg.Hostname, enhanced),
		ehlo:      renderEHLO(cfg.Hostname, cfg.Disable, cfg.MaxMessageSize),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
		done:      make(chan struct{}),
		closedCh:  make(chan struct{}),
		stopped:   make(chan struct{}),
		faultsOn:  cfg.Faults.Active(),
		latency:   make([]latencyShard, max(1, runtime.GOMAXPROCS(0))),
	}
	for i := range s.latency {
		s.latency[i].rec = results.NewRecorder()
	}
	for p, f := range cfg.Faults.Points {
		if f.Reply > 0 {
			s.faultReplies[p] = []byte(strconv.Itoa(f.ReplyCode) + " " + f.ReplyText + "\r\n")
		}
	}
	prefix := "250 "
	if enhanced {
		prefix += "2.0.0 "
	}
	s.queued = []byte(prefix + "Ok: queued as ")
	s.chunkOK = []byte(prefix + "Ok: received ")
	s.goConns.New = func() any { return new(goConn) }
	s.bodyBufs.New = func() any { b := make([]byte, s.cfg.BodyBuffer); return &b }
	return s, nil
}

// Config returns the configuration in effect, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Listen opens a listener for an address in the form serve --listen takes: "host:port" for TCP,
// "unix:/path" for a unix socket (a stale socket file is removed first).
func Listen(addr string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(p)
		}
		return net.Listen("unix", p)
	}
	return net.Listen("tcp", addr)
}

// ListenAndServe listens on Config.Addr and serves until Shutdown or Close.
func (s *Server) ListenAndServe() error {
	l, err := Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Addr is the address of the most recent listener, or nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Serve accepts connections on l until Shutdown or Close, and closes l. It returns ErrServerClosed
// then, or the error that stopped accepting.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	default:
	}
	s.listeners[l] = struct{}{}
	s.addr = l.Addr()
	s.mu.Unlock()
	s.scheduleStall()
	if s.loopsFor(l) {
		defer func() {
			s.mu.Lock()
			delete(s.listeners, l)
			s.mu.Unlock()
		}()
		return s.serveLoops(l)
	}
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait and try again, like net/http.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.cfg.Logger.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		go s.serveConn(c)
	}
}

// Stall pauses every reply for d: sessions go on reading, but write nothing until it ends. It is
// the server side of Gil Tene's ^Z test of latency measurement.
func (s *Server) Stall(d time.Duration) {
	until := mono.Now() + int64(d)
	for {
		cur := s.stallUntil.Load()
		if cur >= until || s.stallUntil.CompareAndSwap(cur, until) {
			break
		}
	}
	s.wakeLoops()
}

// Stopped is closed once a Faults.StopAfterMessages or StopAfterSessions limit is reached; the
// owner then shuts the server down (serve does it gracefully).
func (s *Server) Stopped() <-chan struct{} { return s.stopped }

func (s *Server) requestStop() { s.stopOnce.Do(func() { close(s.stopped) }) }

// sessionEnded counts an ended session for StopAfterSessions.
func (s *Server) sessionEnded() {
	n := s.stats.ended.Add(1)
	if limit := s.cfg.Faults.StopAfterSessions; limit > 0 && int64(n) == limit {
		s.requestStop()
	}
}

// scheduleStall arms Faults.StallAt once serving starts.
func (s *Server) scheduleStall() {
	f := s.cfg.Faults
	if f.StallFor <= 0 || f.StallAt <= 0 {
		return
	}
	s.stallOnce.Do(func() { time.AfterFunc(f.StallAt, func() { s.Stall(f.StallFor) }) })
}

// ServeConn serves one connection that did not come from a listener of the Server, such as an
// in-memory one, and returns when its session ends. Tests and benchmarks drive the sink with it.
func (s *Server) ServeConn(c net.Conn) {
	if !s.track(c) {
		c.Close()
		return
	}
	s.serveConn(c)
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track registers a connection; it reports false once the server is closing.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting, tells idle sessions 421 and lets sessions in a transaction finish it,
// then waits for every session to end or ctx to be done. When ctx ends first it closes the
// remaining connections and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	s.closeListeners()
	// Wake sessions blocked in a read; each sees shuttingDown and says 421 or finishes its
	// transaction first.
	s.mu.Lock()
	now := time.Now()
	for c := range s.conns {
		c.SetReadDeadline(now)
	}
	s.mu.Unlock()
	s.wakeLoops()

	finished := make(chan struct{})
	go func() { s.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		s.Close()
		<-finished
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, without waiting.
func (s *Server) Close() error {
	s.shuttingDown.Store(true)
	if !s.closed.Swap(true) {
		close(s.closedCh)
	}
	s.closeListeners()
	s.closeConns()
	s.wakeLoops()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	for l := range s.listeners {
		l.Close()
	}
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}
