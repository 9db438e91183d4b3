package server

import "sync/atomic"

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
	replies    [600]atomic.Uint64 // by reply code
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
	}
	for code := range c.replies {
		if n := c.replies[code].Load(); n > 0 {
			st.Replies[code] = n
		}
	}
	return st
}
