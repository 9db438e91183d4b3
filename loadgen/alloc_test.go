//go:build !race

package loadgen

import (
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/pipeline"
)

// Composing a message reuses the composer's buffers: after the first call (with numbers of the
// same width) it allocates nothing.
func TestComposeAllocatesNothing(t *testing.T) {
	cfg := Config{From: "sender{n}@example.com", To: "rcpt{n}@example.org", Recipients: 5, RunID: "20260101T000000.000"}.WithDefaults()
	var fixed pipeline.Message
	fixed.SetBody(fixedPart(cfg.From, 1024, 1, time.Now(), cfg.RunID))
	c := newComposer(&cfg, &fixed)
	n := int64(1_000_000)
	m := c.compose(n)
	allocs := testing.AllocsPerRun(1000, func() {
		n++
		m = c.compose(n)
	})
	if allocs != 0 {
		t.Errorf("%.2f allocations per message, want 0", allocs)
	}
	if string(m.From) != "sender1001001@example.com" || len(m.To) != 5 || string(m.To[4]) != "rcpt5005009@example.org" {
		t.Errorf("composed From %q To %q", m.From, m.To)
	}
}
