package server

import (
	"sync/atomic"

	"github.com/smtpbench/smtpbench/results"
)

// counters are the live statistics, updated by sessions with atomic adds.
type counters struct {
	sessions   atomic.Uint64
	active     atomic.Uint64
	messages   atomic.Uint64
	rejected   atomic.Uint64
	recipients atomic.Uint64
	bytes      atomic.Uint64
	timeouts   atomic.Uint64
	panics     atomic.Uint64
	writes     atomic.Uint64
	ended      atomic.Uint64 // sessions that ended
	greylisted atomic.Uint64
	faults     [numFaultPoints]struct{ delayed, replied, disconnected atomic.Uint64 }
	replies    [600]atomic.Uint64 // by reply code
}

// FaultCounts are the faults injected at one point.
type FaultCounts struct {
	Delayed      uint64 `json:"delayed,omitempty"`
	Replied      uint64 `json:"replied,omitempty"`      // error replies given instead of the normal one
	Disconnected uint64 `json:"disconnected,omitempty"` // connections closed instead of answering
}

// Stats is a snapshot of a Server's counters.
type Stats struct {
	Sessions       uint64         `json:"sessions"`        // sessions accepted since start
	ActiveSessions uint64         `json:"active_sessions"` // sessions open now
	Messages       uint64         `json:"messages"`        // messages accepted
	Rejected       uint64         `json:"rejected"`        // messages read to the end and refused
	Recipients     uint64         `json:"recipients"`      // recipients of accepted messages
	Bytes          uint64         `json:"bytes"`           // octets of accepted messages
	Timeouts       uint64         `json:"timeouts"`        // sessions ended by a timeout
	Panics         uint64         `json:"panics"`          // sessions ended by a bug (should stay 0)
	Writes         uint64         `json:"writes"`          // writes of replies: fewer than replies when pipelined replies are coalesced
	Replies        map[int]uint64 `json:"replies"`         // replies sent, by code
	Greylisted     uint64         `json:"greylisted,omitempty"`
	// Faults are the injected faults, by point name (connect, mail, rcpt, dot, ...).
	Faults map[string]FaultCounts `json:"faults,omitempty"`
	// Latency is the sink's own view, per phase: from a command's arrival (when it was read) to its
	// reply written.
	Latency []results.PhaseResult `json:"latency,omitempty"`
}

// Stats returns a snapshot of the counters. The fields are read one by one, so a snapshot taken
// under load is consistent only to within the messages in flight.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Sessions:       c.sessions.Load(),
		ActiveSessions: c.active.Load(),
		Messages:       c.messages.Load(),
		Rejected:       c.rejected.Load(),
		Recipients:     c.recipients.Load(),
		Bytes:          c.bytes.Load(),
		Timeouts:       c.timeouts.Load(),
		Panics:         c.panics.Load(),
		Writes:         c.writes.Load(),
		Replies:        make(map[int]uint64),
		Greylisted:     c.greylisted.Load(),
	}
	for code := range c.replies {
		if n := c.replies[code].Load(); n > 0 {
			st.Replies[code] = n
		}
	}
	for p := range c.faults {
		f := &c.faults[p]
		fc := FaultCounts{f.delayed.Load(), f.replied.Load(), f.disconnected.Load()}
		if fc != (FaultCounts{}) {
			if st.Faults == nil {
				st.Faults = make(map[string]FaultCounts)
			}
			st.Faults[FaultPoint(p).String()] = fc
		}
	}
	st.Latency = s.latencySummary()
	return st
}

// Latencies returns the sink's own latency histograms, merged from its shards.
func (s *Server) Latencies() *results.Recorder {
	total := results.NewRecorder()
	for i := range s.latency {
		l := &s.latency[i]
		l.mu.Lock()
		total.Merge(l.rec)
		l.mu.Unlock()
	}
	return total
}

func (s *Server) latencySummary() []results.PhaseResult {
	total := s.Latencies()
	var out []results.PhaseResult
	for p := range results.NumPhases {
		h := total.Histogram(p)
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		pr, err := results.SummarizePhase(p.String(), h)
		if err != nil {
			continue
		}
		pr.Hist = "" // the summary is enough here
		out = append(out, pr)
	}
	return out
}
