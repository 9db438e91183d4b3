package results

import (
	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: 1 ns to 1 hour with 3 significant digits. Values above the range are
// recorded as the highest value and counted in Clamped.
const (
	histLowest  = 1
	histHighest = int64(3600e9)
	histDigits  = 3
)

// NewHistogram returns an empty histogram with smtpbench's geometry.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

// ReplyKey is a reply code with its RFC 3463 enhanced code ({0,0,0} when there was none).
type ReplyKey struct {
	Code     uint16
	Enhanced [3]uint16
}

// Counts are a run's totals.
type Counts struct {
	Messages   int64 `json:"messages"`           // messages sent (first attempts)
	Retries    int64 `json:"retries,omitempty"`  // further attempts after temporary failures
	Delivered  int64 `json:"delivered"`          // messages the server accepted (for some recipient)
	Failed     int64 `json:"failed"`             // messages refused for good, or lost with their connection
	Deferred   int64 `json:"deferred,omitempty"` // messages still waiting for a retry when the run stopped
	Recipients int64 `json:"recipients"`         // recipients accepted in delivered messages
	Bytes      int64 `json:"bytes"`              // octets of delivered messages
	Sessions   int64 `json:"sessions"`           // connections opened
	Errors     int64 `json:"errors"`             // failures that were not replies: timeouts, resets, ...
	// Open model.
	Scheduled int64 `json:"scheduled,omitempty"` // slots the schedule handed out
	Late      int64 `json:"late,omitempty"`      // messages that found every session busy at their slot
	Dropped   int64 `json:"dropped,omitempty"`   // messages refused by a full backlog, never sent
}

func (c *Counts) add(o *Counts) {
	c.Messages += o.Messages
	c.Retries += o.Retries
	c.Delivered += o.Delivered
	c.Failed += o.Failed
	c.Deferred += o.Deferred
	c.Recipients += o.Recipients
	c.Bytes += o.Bytes
	c.Sessions += o.Sessions
	c.Errors += o.Errors
	c.Scheduled += o.Scheduled
	c.Late += o.Late
	c.Dropped += o.Dropped
}

type replyCount struct {
	key   ReplyKey
	count int64
}

type errorCount struct {
	reason string
	count  int64
}

// Recorder collects latencies per phase, replies and errors per phase, and counts. Recording
// allocates nothing once a phase has its histogram and a reply code or error reason has been seen.
// A Recorder is not safe for concurrent use: give each worker (or shard) its own and Merge them.
type Recorder struct {
	hist    [NumPhases]*hdrhistogram.Histogram
	replies [NumPhases][]replyCount
	errors  [NumPhases][]errorCount
	Counts  Counts
	// Clamped counts latencies above the histogram's range (1 hour), recorded as 1 hour.
	Clamped int64
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Record adds one latency sample in nanoseconds. Negative values are recorded as 0.
func (r *Recorder) Record(p Phase, ns int64) {
	h := r.hist[p]
	if h == nil {
		h = NewHistogram()
		r.hist[p] = h
	}
	if ns < 0 {
		ns = 0
	}
	if ns > histHighest {
		ns = histHighest
		r.Clamped++
	}
	h.RecordValue(ns)
}

// Reply counts one reply in phase p.
func (r *Recorder) Reply(p Phase, k ReplyKey) {
	s := r.replies[p]
	for i := range s {
		if s[i].key == k {
			s[i].count++
			return
		}
	}
	r.replies[p] = append(s, replyCount{k, 1})
}

// Error counts one failure in phase p. reason is a short constant such as "timeout"; distinct
// reasons should be few.
func (r *Recorder) Error(p Phase, reason string) {
	r.Counts.Errors++
	s := r.errors[p]
	for i := range s {
		if s[i].reason == reason {
			s[i].count++
			return
		}
	}
	r.errors[p] = append(s, errorCount{reason, 1})
}

// Histogram returns the phase's histogram, or nil when nothing was recorded in it.
func (r *Recorder) Histogram(p Phase) *hdrhistogram.Histogram { return r.hist[p] }

// Merge adds everything o recorded to r; histograms are added exactly.
func (r *Recorder) Merge(o *Recorder) {
	for p := range NumPhases {
		if h := o.hist[p]; h != nil && h.TotalCount() > 0 {
			if r.hist[p] == nil {
				r.hist[p] = NewHistogram()
			}
			// Values outside the range cannot happen with one geometry; count them if they do.
			r.Clamped += r.hist[p].Merge(h)
		}
		for _, rc := range o.replies[p] {
			r.addReplies(p, rc.key, rc.count)
		}
		for _, ec := range o.errors[p] {
			r.addErrors(p, ec.reason, ec.count)
		}
	}
	r.Counts.add(&o.Counts)
	r.Clamped += o.Clamped
}

func (r *Recorder) addReplies(p Phase, k ReplyKey, n int64) {
	for i := range r.replies[p] {
		if r.replies[p][i].key == k {
			r.replies[p][i].count += n
			return
		}
	}
	r.replies[p] = append(r.replies[p], replyCount{k, n})
}

func (r *Recorder) addErrors(p Phase, reason string, n int64) {
	for i := range r.errors[p] {
		if r.errors[p][i].reason == reason {
			r.errors[p][i].count += n
			return
		}
	}
	r.errors[p] = append(r.errors[p], errorCount{reason, n})
}

// Reset empties r and keeps its storage.
func (r *Recorder) Reset() {
	for p := range NumPhases {
		if r.hist[p] != nil {
			r.hist[p].Reset()
		}
		r.replies[p] = r.replies[p][:0]
		r.errors[p] = r.errors[p][:0]
	}
	r.Counts = Counts{}
	r.Clamped = 0
}

// Replies calls fn for each reply code counted in phase p.
func (r *Recorder) Replies(p Phase, fn func(ReplyKey, int64)) {
	for _, rc := range r.replies[p] {
		fn(rc.key, rc.count)
	}
}

// Errors calls fn for each error reason counted in phase p.
func (r *Recorder) Errors(p Phase, fn func(string, int64)) {
	for _, ec := range r.errors[p] {
		fn(ec.reason, ec.count)
	}
}
