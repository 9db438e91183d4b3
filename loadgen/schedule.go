package loadgen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Stage is a part of an open-model run: the arrival rate goes linearly from From to To messages
// per second over Duration.
type Stage struct {
	Duration time.Duration `json:"duration"`
	From     float64       `json:"from"`
	To       float64       `json:"to"`
}

// ParseStages parses "30s:0-2000,60s:2000,10s:2000-0": each stage is DURATION:RATE (constant) or
// DURATION:FROM-TO (a linear ramp), in messages per second.
func ParseStages(s string) ([]Stage, error) {
	var out []Stage
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		ds, rs, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("stage %q: want DURATION:RATE or DURATION:FROM-TO", part)
		}
		d, err := time.ParseDuration(strings.TrimSpace(ds))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("stage %q: %q is not a positive duration", part, ds)
		}
		st := Stage{Duration: d}
		from, to, ramp := strings.Cut(rs, "-")
		if st.From, err = parseRate(from); err != nil {
			return nil, fmt.Errorf("stage %q: %v", part, err)
		}
		st.To = st.From
		if ramp {
			if st.To, err = parseRate(to); err != nil {
				return nil, fmt.Errorf("stage %q: %v", part, err)
			}
		}
		out = append(out, st)
	}
	if len(out) == 0 {
		return nil, errors.New("no stages")
	}
	return out, nil
}

func parseRate(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a rate in messages per second", s)
	}
	return v, nil
}

// plan is the arrival schedule of an open-model run: the rate r(t) as stages, and the expected
// count N(t) = ∫r. Message k is due at N⁻¹(s_k): s_k = k+1/2 for evenly spaced arrivals, a running
// sum of Exp(1) draws for Poisson ones (a unit-rate Poisson process mapped through N⁻¹, so ramps
// stay Poisson at every rate).
type plan struct {
	stages []Stage
	starts []float64 // cumulative start of each stage, seconds
	counts []float64 // N at the start of each stage
	total  float64   // N at the end
	end    float64   // seconds
}

func newPlan(stages []Stage) *plan {
	p := &plan{stages: stages}
	var t, n float64
	for _, st := range stages {
		p.starts = append(p.starts, t)
		p.counts = append(p.counts, n)
		d := st.Duration.Seconds()
		n += (st.From + st.To) / 2 * d
		t += d
	}
	p.total, p.end = n, t
	return p
}

// rate is r(t) in messages per second.
func (p *plan) rate(t float64) float64 {
	for i, st := range p.stages {
		d := st.Duration.Seconds()
		if t < p.starts[i]+d {
			x := (t - p.starts[i]) / d
			return st.From + (st.To-st.From)*max(x, 0)
		}
	}
	return 0
}

// expected is N(t): how many messages are due by t seconds.
func (p *plan) expected(t float64) float64 {
	for i, st := range p.stages {
		d := st.Duration.Seconds()
		if t < p.starts[i]+d {
			x := max(t-p.starts[i], 0)
			return p.counts[i] + st.From*x + (st.To-st.From)*x*x/(2*d)
		}
	}
	return p.total
}

// at is N⁻¹(s): the time in seconds at which s messages are due, or false when s is beyond the
// plan.
func (p *plan) at(s float64) (float64, bool) {
	if s > p.total || s < 0 {
		return 0, false
	}
	for i, st := range p.stages {
		d := st.Duration.Seconds()
		n0 := p.counts[i]
		n1 := n0 + (st.From+st.To)/2*d
		if s > n1 && i < len(p.stages)-1 {
			continue
		}
		// Solve n0 + a·x + b·x² = s for x in [0, d], with a = From, b = (To-From)/(2d).
		a, b, c := st.From, (st.To-st.From)/(2*d), n0-s
		var x float64
		switch {
		case math.Abs(b) < 1e-12:
			if a == 0 {
				continue // a stage at rate 0 holds no message
			}
			x = -c / a
		default:
			disc := a*a - 4*b*c
			if disc < 0 {
				disc = 0
			}
			// The numerically stable root: 2c / (-a - sqrt(disc)) avoids cancellation.
			den := -a - math.Sqrt(disc)
			if den == 0 {
				x = 0
			} else {
				x = 2 * c / den
			}
		}
		return p.starts[i] + min(max(x, 0), d), true
	}
	return 0, false
}

// Arrival is how the slots of an open-model run are spaced.
type Arrival uint8

const (
	ArrivalUniform Arrival = iota // evenly: at the rate's own pace
	ArrivalPoisson                // independent arrivals, exponential gaps at the rate
)

// ParseArrival parses "uniform" (or "constant") and "poisson".
func ParseArrival(s string) (Arrival, error) {
	switch strings.ToLower(s) {
	case "", "uniform", "constant":
		return ArrivalUniform, nil
	case "poisson":
		return ArrivalPoisson, nil
	}
	return 0, fmt.Errorf("%q is not uniform or poisson", s)
}

func (a Arrival) String() string {
	if a == ArrivalPoisson {
		return "poisson"
	}
	return "uniform"
}

// slots yields the due times of an open-model run's messages, in seconds from its start.
type slots struct {
	plan    *plan
	arrival Arrival
	rng     rand.PCG
	k       int64   // slots given so far
	s       float64 // the running Poisson sum
}

func newSlots(p *plan, a Arrival, seed uint64) *slots {
	sl := &slots{plan: p, arrival: a}
	sl.rng.Seed(seed, 0x5eed)
	return sl
}

// next returns the due time of the next message, or false when the plan has no more.
func (sl *slots) next() (float64, bool) {
	var s float64
	if sl.arrival == ArrivalPoisson {
		u := float64(sl.rng.Uint64()>>11) * 0x1p-53
		sl.s += -math.Log(1 - u)
		s = sl.s
	} else {
		s = float64(sl.k) + 0.5
	}
	t, ok := sl.plan.at(s)
	if ok {
		sl.k++
	}
	return t, ok
}
