//go:build !race

package server

import (
	"testing"
	"time"
)

// An established session allocates nothing per transaction: MAIL, RCPT, DATA with a 1 KiB
// dot-stuffed body (or BDAT LAST), and the final reply. AllocsPerRun counts the allocations of every
// goroutine, so this covers the session goroutine too.
func TestTransactionAllocatesNothing(t *testing.T) {
	for _, data := range []bool{true, false} {
		_, c, _ := txnSession(t, data)
		allocs := testing.AllocsPerRun(200, func() {
			c.Release()
			<-c.Done()
		})
		if allocs != 0 {
			t.Errorf("data=%v: %.2f allocations per transaction, want 0", data, allocs)
		}
	}
}

// Faults do not change that: drawing them, holding a reply for a delay, the tarpit's accounting
// and the latency samples allocate nothing per transaction either.
func TestTransactionWithFaultsAllocatesNothing(t *testing.T) {
	var f Faults
	f.Points[AtMail].Delay = Dist{Kind: DistFixed, A: time.Microsecond}
	f.Points[AtRcpt].Delay = Dist{Kind: DistExponential, A: time.Microsecond}
	f.Points[AtDot].Delay = Dist{Kind: DistUniform, A: 0, B: 2 * time.Microsecond}
	f.Points[AtQuit].Reply, f.Points[AtQuit].ReplyCode, f.Points[AtQuit].ReplyText = 1, 421, "4.3.2 Bye"
	f.Bandwidth = 1 << 30
	for _, data := range []bool{true, false} {
		srv, c, _ := txnSessionWith(t, data, Config{Faults: f})
		allocs := testing.AllocsPerRun(200, func() {
			c.Release()
			<-c.Done()
		})
		if allocs != 0 {
			t.Errorf("data=%v: %.2f allocations per transaction with faults, want 0", data, allocs)
		}
		if st := srv.Stats(); st.Faults["mail"].Delayed < 200 {
			t.Errorf("data=%v: %d MAIL replies delayed, want every one of at least 200", data, st.Faults["mail"].Delayed)
		}
	}
}
