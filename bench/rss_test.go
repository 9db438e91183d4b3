//go:build linux

package bench

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/loadgen"
	"github.com/smtpbench/smtpbench/pipeline"
	"github.com/smtpbench/smtpbench/server"
)

var (
	rssSessions = flag.Int("rss-sessions", 0, "run TestRSS with this many concurrent sessions (e.g. 10000)")
	rssLimitMiB = flag.Int("rss-limit", 400, "the RSS TestRSS allows, in MiB")
)

// TestRSS holds -rss-sessions sessions open at once, client and sink in this one process, with
// messages flowing, and checks that the process's peak RSS stays within -rss-limit MiB:
//
//	go test ./bench -run TestRSS -rss-sessions 10000 -v
//
// It needs two file descriptors per session and raises the limit when it may (as root).
func TestRSS(t *testing.T) {
	n := *rssSessions
	if n == 0 {
		t.Skip("set -rss-sessions N to run (go test ./bench -run TestRSS -rss-sessions 10000)")
	}
	need := uint64(2*n + 64) // a socket on each side, the listener, stdio, the runtime
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < need {
		lim.Cur = need
		lim.Max = max(lim.Max, need)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("%d sessions need %d file descriptors, and raising the limit failed: %v (run as root, or raise ulimit -n)", n, need, err)
		}
	}
	before := rssKiB(t, "VmRSS")

	srv, err := server.New(server.Config{MaxConns: 2 * n})
	if err != nil {
		t.Fatal(err)
	}
	l, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	// Watch the sink's open sessions while the load runs.
	var peakActive atomic.Uint64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if a := srv.Stats().ActiveSessions; a > peakActive.Load() {
					peakActive.Store(a)
				}
			case <-stop:
				return
			}
		}
	}()

	// An open-model load: every session is connected from the start and sends now and then, so
	// all of them are open at once for the whole run.
	cfg := loadgen.Config{
		Target:      pipeline.Target{Network: "tcp", Address: l.Addr().String()},
		Sessions:    n,
		MaxSessions: n,
		Rate:        2000,
		Duration:    12 * time.Second,
		Warmup:      5 * time.Second, // connecting 10000 sessions takes a few seconds
	}
	cfg.Timeouts.All(60 * time.Second)
	res, err := loadgen.Run(context.Background(), cfg)
	close(stop)
	<-watched
	if err != nil {
		t.Fatal(err)
	}
	peak := rssKiB(t, "VmHWM")
	t.Logf("%d sessions: peak RSS %d MiB (%d MiB before), %.1f KiB per session (client and sink); "+
		"the sink saw %d sessions open at once; %d messages delivered, %d failed",
		n, peak>>10, before>>10, float64(peak-before)/float64(n), peakActive.Load(),
		res.Totals.Delivered, res.Totals.Failed)
	if got := peakActive.Load(); got < uint64(n) {
		t.Errorf("the sink saw at most %d sessions open at once, want %d", got, n)
	}
	if res.Totals.Delivered == 0 || res.Totals.Failed > 0 {
		t.Errorf("delivered %d, failed %d", res.Totals.Delivered, res.Totals.Failed)
	}
	if peak > uint64(*rssLimitMiB)<<10 {
		t.Errorf("peak RSS %d MiB is over %d MiB", peak>>10, *rssLimitMiB)
	}
}

// rssKiB reads a field of /proc/self/status in KiB: VmRSS (now) or VmHWM (the peak).
func rssKiB(t *testing.T, field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			v, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
