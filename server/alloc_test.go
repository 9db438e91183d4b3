//go:build !race

package server

import "testing"

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
