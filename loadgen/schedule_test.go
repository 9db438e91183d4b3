package loadgen

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Pure tests of the open model's schedule: no clock, no network.

func TestParseStages(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Stage // nil: an error
	}{
		{"30s:0-2000,60s:2000,10s:2000-0", []Stage{{30 * time.Second, 0, 2000}, {time.Minute, 2000, 2000}, {10 * time.Second, 2000, 0}}},
		{"1s:100", []Stage{{time.Second, 100, 100}}},
		{"1s:0", []Stage{{time.Second, 0, 0}}},
		{"500ms:100/s", []Stage{{500 * time.Millisecond, 100, 100}}},
		{"2s:10/s-20/s", []Stage{{2 * time.Second, 10, 20}}},
		{"1.5s:2.5-0.5", []Stage{{1500 * time.Millisecond, 2.5, 0.5}}},
		{"1m:1e3", []Stage{{time.Minute, 1000, 1000}}},
		{" 1s : 5 , 2s : 5 - 10 ", []Stage{{time.Second, 5, 5}, {2 * time.Second, 5, 10}}},
		{"1s:5,", []Stage{{time.Second, 5, 5}}}, // an empty part is skipped
		{",1s:5", []Stage{{time.Second, 5, 5}}}, // an empty part is skipped
		{"1h:0-0", []Stage{{time.Hour, 0, 0}}},  // a pause
		{"1s:1000000", []Stage{{time.Second, 1e6, 1e6}}},
		{"", nil},
		{",", nil},
		{" , ", nil},
		{"1s", nil},         // no rate
		{"100", nil},        // no duration
		{"1s:", nil},        // empty rate
		{":100", nil},       // empty duration
		{"0s:100", nil},     // zero duration
		{"-1s:100", nil},    // negative duration
		{"1x:100", nil},     // not a duration
		{"1:100", nil},      // a duration needs its unit
		{"1s:-5", nil},      // negative rate (read as an empty FROM)
		{"1s:5-", nil},      // empty TO
		{"1s:-", nil},       // empty FROM and TO
		{"1s:abc", nil},     // not a number
		{"1s:5-x", nil},     // TO not a number
		{"1s:5--3", nil},    // negative TO
		{"1s:5-10-20", nil}, // three rates
		{"1s:NaN", nil},     // not a rate
		{"1s:Inf", nil},     // not a rate
		{"1s:1e400", nil},   // overflows to +Inf
		{"1s:5/min", nil},   // only /s is a unit
		{"1s:5,2s", nil},    // one bad stage spoils the list
		{"1s:5;2s:5", nil},  // the separator is a comma
		{"1s:5 2s:5", nil},  // the separator is a comma
	} {
		got, err := ParseStages(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("ParseStages(%q) = %+v, want an error", tc.in, got)
			} else if strings.TrimSpace(tc.in) != "" && strings.Trim(tc.in, " ,") != "" && !strings.Contains(err.Error(), "stage") {
				t.Errorf("ParseStages(%q): error %q does not name the stage", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseStages(%q): %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("ParseStages(%q) = %+v, want %+v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ParseStages(%q) = %+v, want %+v", tc.in, got, tc.want)
				break
			}
		}
	}
}

func TestParseArrival(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Arrival
		ok   bool
	}{
		{"", ArrivalUniform, true},
		{"uniform", ArrivalUniform, true},
		{"Uniform", ArrivalUniform, true},
		{"constant", ArrivalUniform, true},
		{"CONSTANT", ArrivalUniform, true},
		{"poisson", ArrivalPoisson, true},
		{"Poisson", ArrivalPoisson, true},
		{"exponential", 0, false},
		{"poisson ", 0, false},
		{"random", 0, false},
	} {
		got, err := ParseArrival(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("ParseArrival(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if ArrivalUniform.String() != "uniform" || ArrivalPoisson.String() != "poisson" {
		t.Errorf("String: %q %q", ArrivalUniform, ArrivalPoisson)
	}
	// String and ParseArrival round-trip.
	for _, a := range []Arrival{ArrivalUniform, ArrivalPoisson} {
		if got, err := ParseArrival(a.String()); err != nil || got != a {
			t.Errorf("ParseArrival(%q) = %v, %v", a, got, err)
		}
	}
}

func mustStages(tb testing.TB, s string) []Stage {
	tb.Helper()
	st, err := ParseStages(s)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// The schedules the tests below go through: constant, ramps up and down, pauses at the start,
// in the middle and at the end, fractional rates.
var testSchedules = []string{
	"5s:100",
	"5s:0-1000",
	"4s:800-0",
	"2s:0-200,3s:200,2s:200-50",
	"1s:0,2s:100",
	"1s:10,1s:0,1s:10",
	"2s:50,1s:0",
	"2s:50-50.5,500ms:3.3,1s:0-0,1500ms:7-1",
	"3s:0.7",
}

// rate, expected and the plan's totals agree with the stages: N is the integral of r.
func TestPlanRateExpected(t *testing.T) {
	p := newPlan(mustStages(t, "2s:0-200,3s:200,2s:200-50,1s:0"))
	if p.end != 8 || p.total != 200+600+250 {
		t.Fatalf("end %v total %v", p.end, p.total)
	}
	for _, tc := range []struct{ t, rate, n float64 }{
		{0, 0, 0},
		{1, 100, 50},
		{2, 200, 200},
		{3.5, 200, 500},
		{5, 200, 800},
		{6, 125, 800 + 162.5},
		{7, 0, 1050}, // the last stage is a pause
		{7.5, 0, 1050},
		{8, 0, 1050},   // the end
		{100, 0, 1050}, // beyond it
		{-1, 0, 0},
	} {
		if got := p.rate(tc.t); math.Abs(got-tc.rate) > 1e-9 {
			t.Errorf("rate(%v) = %v, want %v", tc.t, got, tc.rate)
		}
		if got := p.expected(tc.t); math.Abs(got-tc.n) > 1e-9 {
			t.Errorf("expected(%v) = %v, want %v", tc.t, got, tc.n)
		}
	}
	// N' = r, numerically, everywhere inside a stage.
	for _, s := range testSchedules {
		p := newPlan(mustStages(t, s))
		for x := 0.013; x < p.end; x += 0.0971 {
			h := 1e-6
			d := (p.expected(x+h) - p.expected(x-h)) / (2 * h)
			if math.Abs(d-p.rate(x)) > 1e-3*(1+p.rate(x)) {
				t.Errorf("%s: dN/dt(%v) = %v, r = %v", s, x, d, p.rate(x))
			}
		}
	}
}

// at is N⁻¹: expected(at(s)) = s for every s of the plan, and at(expected(t)) = t wherever the rate
// is positive (in a pause N is flat, and at gives the end of the pause's last arrival).
func TestPlanInverse(t *testing.T) {
	for _, s := range testSchedules {
		p := newPlan(mustStages(t, s))
		tol := 1e-9 * (1 + p.total)
		for i := 0; i <= 2000; i++ {
			n := p.total * float64(i) / 2000
			x, ok := p.at(n)
			if !ok {
				t.Errorf("%s: at(%v) not in the plan (total %v)", s, n, p.total)
				continue
			}
			if x < 0 || x > p.end {
				t.Errorf("%s: at(%v) = %v, outside [0, %v]", s, n, x, p.end)
			}
			if got := p.expected(x); math.Abs(got-n) > tol {
				t.Errorf("%s: expected(at(%v)) = expected(%v) = %v", s, n, x, got)
			}
		}
		for x := 0.0; x <= p.end; x += p.end / 1777 {
			if p.rate(x) <= 0 {
				continue
			}
			got, ok := p.at(p.expected(x))
			if !ok || math.Abs(got-x) > 1e-6 {
				t.Errorf("%s: at(expected(%v)) = %v, %v", s, x, got, ok)
			}
		}
		for _, n := range []float64{-1e-9, -1, p.total + 1e-6, p.total + 1, math.Inf(1)} {
			if x, ok := p.at(n); ok {
				t.Errorf("%s: at(%v) = %v, want beyond the plan (total %v)", s, n, x, p.total)
			}
		}
	}
}

// allSlots runs a schedule's slots to their end.
func allSlots(tb testing.TB, p *plan, a Arrival, seed uint64) []float64 {
	tb.Helper()
	sl := newSlots(p, a, seed)
	var out []float64
	for {
		t, ok := sl.next()
		if !ok {
			break
		}
		out = append(out, t)
		if len(out) > 10*int(p.total)+1000 {
			tb.Fatalf("more than %d slots for a plan of %v", len(out), p.total)
		}
	}
	// Once over, it stays over.
	if t, ok := sl.next(); ok {
		tb.Errorf("a slot at %v after the plan ended", t)
	}
	return out
}

// perSecond counts slots in each second [i, i+1) of the plan.
func perSecond(slots []float64, end float64) []int {
	n := make([]int, int(math.Ceil(end)))
	for _, t := range slots {
		i := int(t)
		if i >= len(n) { // t == end
			i = len(n) - 1
		}
		n[i]++
	}
	return n
}

// Slots never go back, stay within the plan, and are reproducible from the seed.
func TestSlotsMonotonic(t *testing.T) {
	for _, s := range testSchedules {
		p := newPlan(mustStages(t, s))
		for _, a := range []Arrival{ArrivalUniform, ArrivalPoisson} {
			slots := allSlots(t, p, a, 7)
			if len(slots) == 0 {
				t.Errorf("%s %v: no slots", s, a)
				continue
			}
			for i, x := range slots {
				if x < 0 || x > p.end {
					t.Errorf("%s %v: slot %d at %v, outside [0, %v]", s, a, i, x, p.end)
				}
				if i > 0 && x < slots[i-1] {
					t.Errorf("%s %v: slot %d at %v before slot %d at %v", s, a, i, x, i-1, slots[i-1])
				}
			}
			again := allSlots(t, p, a, 7)
			if len(again) != len(slots) {
				t.Errorf("%s %v: %d slots, then %d with the same seed", s, a, len(slots), len(again))
			} else {
				for i := range slots {
					if slots[i] != again[i] {
						t.Errorf("%s %v: slot %d at %v, then %v with the same seed", s, a, i, slots[i], again[i])
						break
					}
				}
			}
		}
	}
	// Another seed, other Poisson slots; uniform ones do not depend on it.
	p := newPlan(mustStages(t, "2s:100"))
	p1, p2 := allSlots(t, p, ArrivalPoisson, 1), allSlots(t, p, ArrivalPoisson, 2)
	if len(p1) == len(p2) && p1[0] == p2[0] && p1[len(p1)-1] == p2[len(p2)-1] {
		t.Error("seeds 1 and 2 give the same Poisson slots")
	}
	u1, u2 := allSlots(t, p, ArrivalUniform, 1), allSlots(t, p, ArrivalUniform, 2)
	if len(u1) != len(u2) || u1[0] != u2[0] || u1[len(u1)-1] != u2[len(u2)-1] {
		t.Error("uniform slots depend on the seed")
	}
}

// Evenly spaced arrivals at a constant rate: exactly the rate in every second, message k at
// (k+1/2)/rate.
func TestSlotsUniformConstant(t *testing.T) {
	for _, rate := range []float64{1, 7, 100, 1000, 25000} {
		const secs = 5
		p := newPlan([]Stage{{secs * time.Second, rate, rate}})
		slots := allSlots(t, p, ArrivalUniform, 1)
		if len(slots) != int(rate)*secs {
			t.Errorf("rate %v: %d slots in %ds", rate, len(slots), secs)
		}
		for i, n := range perSecond(slots, p.end) {
			if n != int(rate) {
				t.Errorf("rate %v: %d slots in second %d", rate, n, i)
			}
		}
		for k, x := range slots {
			if want := (float64(k) + 0.5) / rate; math.Abs(x-want) > 1e-9 {
				t.Errorf("rate %v: slot %d at %v, want %v", rate, k, x, want)
				break
			}
		}
	}
	// A fractional rate: 0.7/s for 10s holds 7 messages, 1/0.7 s apart.
	p := newPlan([]Stage{{10 * time.Second, 0.7, 0.7}})
	slots := allSlots(t, p, ArrivalUniform, 1)
	if len(slots) != 7 {
		t.Fatalf("%d slots", len(slots))
	}
	for k := 1; k < len(slots); k++ {
		if gap := slots[k] - slots[k-1]; math.Abs(gap-1/0.7) > 1e-9 {
			t.Errorf("gap %d: %v", k, gap)
		}
	}
}

// Evenly spaced arrivals on ramps: each second holds ∫r over it, to within the one message that
// straddles a boundary.
func TestSlotsUniformRamps(t *testing.T) {
	for _, s := range testSchedules {
		p := newPlan(mustStages(t, s))
		slots := allSlots(t, p, ArrivalUniform, 1)
		if want := math.Floor(p.total + 0.5); float64(len(slots)) != want {
			t.Errorf("%s: %d slots, want %v (N = %v)", s, len(slots), want, p.total)
		}
		for i, n := range perSecond(slots, p.end) {
			want := p.expected(float64(i+1)) - p.expected(float64(i))
			if math.Abs(float64(n)-want) > 1 {
				t.Errorf("%s: %d slots in second %d, ∫r = %v", s, n, i, want)
			}
		}
	}
	// 0 to 1000/s over 5s: 100, 300, 500, 700, 900.
	slots := allSlots(t, newPlan(mustStages(t, "5s:0-1000")), ArrivalUniform, 1)
	for i, n := range perSecond(slots, 5) {
		if want := 100 * (2*i + 1); n != want {
			t.Errorf("ramp up: %d slots in second %d, want %d", n, i, want)
		}
	}
	slots = allSlots(t, newPlan(mustStages(t, "5s:1000-0")), ArrivalUniform, 1)
	for i, n := range perSecond(slots, 5) {
		if want := 100 * (9 - 2*i); n != want {
			t.Errorf("ramp down: %d slots in second %d, want %d", n, i, want)
		}
	}
}

// Poisson arrivals: each second's count is within 4σ (σ = √∫r) of ∫r, the total within 4√N of N,
// and at a constant rate the gaps are exponential (mean 1/rate, a share e⁻¹ of them longer).
func TestSlotsPoisson(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42} {
		for _, s := range []string{"10s:1000", "5s:0-1000", "4s:800-0", "2s:0-200,3s:200,2s:200-50", "1s:10,1s:0,1s:10"} {
			p := newPlan(mustStages(t, s))
			slots := allSlots(t, p, ArrivalPoisson, seed)
			if d := math.Abs(float64(len(slots)) - p.total); d > 4*math.Sqrt(p.total) {
				t.Errorf("seed %d %s: %d slots, N = %v", seed, s, len(slots), p.total)
			}
			for i, n := range perSecond(slots, p.end) {
				want := p.expected(float64(i+1)) - p.expected(float64(i))
				if d := math.Abs(float64(n) - want); d > 4*math.Sqrt(want)+1e-9 {
					t.Errorf("seed %d %s: %d slots in second %d, ∫r = %v", seed, s, n, i, want)
				}
			}
		}
		const rate = 1000.0
		slots := allSlots(t, newPlan([]Stage{{10 * time.Second, rate, rate}}), ArrivalPoisson, seed)
		var longer int
		for k := 1; k < len(slots); k++ {
			if slots[k]-slots[k-1] > 1/rate {
				longer++
			}
		}
		gaps := float64(len(slots) - 1)
		if mean := (slots[len(slots)-1] - slots[0]) / gaps; math.Abs(mean*rate-1) > 0.04 {
			t.Errorf("seed %d: mean gap %v, want %v", seed, mean, 1/rate)
		}
		// Binomial(n, e⁻¹): σ ≈ 0.0048 for 10000 gaps.
		if share := float64(longer) / gaps; math.Abs(share-math.Exp(-1)) > 0.02 {
			t.Errorf("seed %d: %.3f of the gaps are longer than 1/rate, want e⁻¹ = %.3f", seed, share, math.Exp(-1))
		}
	}
}

// A stage at rate 0 holds no slot: the schedule pauses.
func TestSlotsZeroRateStage(t *testing.T) {
	for _, a := range []Arrival{ArrivalUniform, ArrivalPoisson} {
		for _, tc := range []struct {
			stages     string
			from, to   float64 // the pause
			wantBefore bool    // slots before it
			wantAfter  bool    // slots after it
		}{
			{"1s:0,2s:100", 0, 1, false, true},
			{"1s:50,1s:0,1s:50", 1, 2, true, true},
			{"1s:50,1s:0-0,1s:50", 1, 2, true, true},
			{"2s:50,1s:0", 2, 3, true, false},
			{"1s:50-0,1s:0,1s:0-50", 1, 2, true, true},
		} {
			p := newPlan(mustStages(t, tc.stages))
			slots := allSlots(t, p, a, 3)
			var before, after int
			for _, x := range slots {
				switch {
				case x > tc.from && x < tc.to:
					t.Errorf("%v %s: a slot at %v, in the pause (%v, %v)", a, tc.stages, x, tc.from, tc.to)
				case x <= tc.from:
					before++
				default:
					after++
				}
			}
			if (before > 0) != tc.wantBefore || (after > 0) != tc.wantAfter {
				t.Errorf("%v %s: %d slots before the pause, %d after", a, tc.stages, before, after)
			}
		}
		// A schedule that is all pause holds nothing.
		if slots := allSlots(t, newPlan(mustStages(t, "1s:0,2s:0-0")), a, 1); len(slots) != 0 {
			t.Errorf("%v: %d slots in a schedule at rate 0", a, len(slots))
		}
	}
}

// The schedule of an open run: its stages, or one at Rate for the duration or for as long as
// the message count takes; it holds at least the message count, whatever the arrivals.
func TestConfigStages(t *testing.T) {
	one := func(d time.Duration, r float64) []Stage { return []Stage{{d, r, r}} }
	for _, tc := range []struct {
		name string
		cfg  Config
		want []Stage
	}{
		{"rate and duration", Config{Rate: 100, Duration: 2 * time.Second}, one(2*time.Second, 100)},
		{"stages", Config{Rate: 5, Duration: time.Hour, Stages: mustStages(t, "1s:0-10,1s:10")}, mustStages(t, "1s:0-10,1s:10")},
		{"duration before the count", Config{Rate: 100, Messages: 500, Duration: time.Second}, one(time.Second, 100)},
	} {
		got := tc.cfg.stages()
		if len(got) != len(tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
			}
		}
	}
	for _, a := range []Arrival{ArrivalUniform, ArrivalPoisson} {
		for _, n := range []int64{1, 2, 10, 50, 1000} {
			for _, dur := range []time.Duration{0, time.Hour} {
				cfg := Config{Rate: 100, Messages: n, Duration: dur, Arrival: a}
				st := cfg.stages()
				if len(st) != 1 || st[0].From != 100 || st[0].To != 100 {
					t.Fatalf("%+v: stages %+v", cfg, st)
				}
				if d := st[0].Duration; d < time.Duration(n)*10*time.Millisecond || dur > 0 && d > dur {
					t.Errorf("%+v: a stage of %v", cfg, d)
				}
				for seed := uint64(1); seed <= 30; seed++ {
					if got := len(allSlots(t, newPlan(st), a, seed)); int64(got) < n {
						t.Errorf("%v arrivals, %d messages at 100/s, seed %d: the %v schedule holds only %d",
							a, n, seed, st[0].Duration, got)
					}
				}
			}
		}
	}
}
