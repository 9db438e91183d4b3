package loadgen

import "time"

// Progress is a run's live figures, given once per interval to Config.Progress.
type Progress struct {
	Elapsed time.Duration `json:"elapsed_ns"`
	// Total is how long the run lasts when its duration bounds it (0 otherwise); Messages is its
	// message count when that bounds it.
	Total    time.Duration `json:"total_ns,omitempty"`
	Messages int64         `json:"messages_limit,omitempty"`
	// Sent and Delivered count messages so far.
	Sent      int64 `json:"sent"`
	Delivered int64 `json:"delivered"`
	// Rate is what the last interval delivered per second; TargetRate what the schedule asked
	// for in it (open model).
	Rate       float64 `json:"rate"`
	TargetRate float64 `json:"target_rate,omitempty"`
	// Sessions are connected now.
	Sessions int `json:"sessions"`
	// TxnP50 and TxnP99 are the last interval's txn latencies, in nanoseconds.
	TxnP50 int64 `json:"txn_p50_ns"`
	TxnP99 int64 `json:"txn_p99_ns"`
	// Errors, Late and Dropped count so far.
	Errors  int64 `json:"errors"`
	Late    int64 `json:"late"`
	Dropped int64 `json:"dropped"`
	// Warmup says the interval is still in the warm-up.
	Warmup bool `json:"warmup,omitempty"`
}

// ETA estimates the time left, or 0 when it cannot tell.
func (p Progress) ETA() time.Duration {
	if p.Total > 0 {
		return max(p.Total-p.Elapsed, 0)
	}
	if p.Messages > 0 && p.Rate > 0 {
		return time.Duration(float64(p.Messages-p.Sent) / p.Rate * float64(time.Second))
	}
	return 0
}
