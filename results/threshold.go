package results

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Threshold is a pass/fail condition on a result, as written on the command line:
//
//	p99(rcpt)<20ms   p99.9(txn)<=1s   max(body)<100ms   mean(mail)<2ms   min(connect)>0s
//	errors<0.1%      errors<=5        msgs/s>5000       MB/s>=10         delivered>=10000
//
// Latencies take a Go duration (ns, us or µs, ms, s, m). errors is the share of messages that
// failed when written with %, their number otherwise.
type Threshold struct {
	Source string
	metric string  // "pct", "min", "max", "mean", "errors%", "errors", "msgs/s", "MB/s", "delivered"
	phase  string  // for latency metrics
	pct    float64 // for "pct"
	op     string  // "<", "<=", ">", ">="
	value  float64 // ns for latencies
}

// ParseThreshold parses one threshold expression.
func ParseThreshold(s string) (Threshold, error) {
	t := Threshold{Source: s}
	expr := strings.ReplaceAll(s, " ", "")
	i := strings.IndexAny(expr, "<>")
	if i <= 0 {
		return t, fmt.Errorf("threshold %q: want METRIC<VALUE or METRIC>VALUE, like p99(rcpt)<20ms", s)
	}
	lhs, rest := expr[:i], expr[i:]
	t.op = rest[:1]
	if strings.HasPrefix(rest, "<=") || strings.HasPrefix(rest, ">=") {
		t.op = rest[:2]
	}
	rhs := rest[len(t.op):]
	if rhs == "" {
		return t, fmt.Errorf("threshold %q: no value after %s", s, t.op)
	}
	if open := strings.IndexByte(lhs, '('); open > 0 && strings.HasSuffix(lhs, ")") {
		fn, phase := strings.ToLower(lhs[:open]), lhs[open+1:len(lhs)-1]
		phase = strings.ToLower(phase)
		if _, err := ParsePhase(phase); err != nil {
			return t, fmt.Errorf("threshold %q: %v", s, err)
		}
		t.phase = phase
		switch {
		case fn == "min" || fn == "max" || fn == "mean":
			t.metric = fn
		case strings.HasPrefix(fn, "p"):
			p, err := strconv.ParseFloat(fn[1:], 64)
			if err != nil || !(p > 0 && p <= 100) { // NaN too
				return t, fmt.Errorf("threshold %q: %q is not a percentile like p99 or p99.9", s, fn)
			}
			t.metric, t.pct = "pct", p
		default:
			return t, fmt.Errorf("threshold %q: %q is not pNN, min, max or mean", s, fn)
		}
		d, err := time.ParseDuration(rhs)
		if err != nil || d < 0 {
			return t, fmt.Errorf("threshold %q: %q is not a duration like 20ms", s, rhs)
		}
		t.value = float64(d.Nanoseconds())
		return t, nil
	}
	switch m := strings.ToLower(lhs); m {
	case "errors", "failed":
		t.metric = "errors"
		if strings.HasSuffix(rhs, "%") {
			t.metric, rhs = "errors%", strings.TrimSuffix(rhs, "%")
		}
	case "msgs/s", "mb/s", "delivered":
		t.metric = map[string]string{"msgs/s": "msgs/s", "mb/s": "MB/s", "delivered": "delivered"}[m]
	default:
		return t, fmt.Errorf("threshold %q: unknown metric %q (want pNN(phase), min/max/mean(phase), errors, msgs/s, MB/s or delivered)", s, lhs)
	}
	v, err := strconv.ParseFloat(rhs, 64)
	if err != nil || !(v >= 0) || math.IsInf(v, 0) { // NaN and infinity too
		return t, fmt.Errorf("threshold %q: %q is not a number", s, rhs)
	}
	t.value = v
	return t, nil
}

// ThresholdResult is a threshold checked against a result.
type ThresholdResult struct {
	Threshold Threshold
	Actual    float64 // in the threshold's unit (ns for latencies)
	Pass      bool
	Problem   string // why it could not be checked (no samples), which fails it
}

// Evaluate checks each threshold against res.
func Evaluate(res *Result, ts []Threshold) []ThresholdResult {
	out := make([]ThresholdResult, len(ts))
	for i, t := range ts {
		r := ThresholdResult{Threshold: t}
		actual, problem := t.actual(res)
		r.Actual, r.Problem = actual, problem
		if problem == "" {
			switch t.op {
			case "<":
				r.Pass = actual < t.value
			case "<=":
				r.Pass = actual <= t.value
			case ">":
				r.Pass = actual > t.value
			case ">=":
				r.Pass = actual >= t.value
			}
		}
		out[i] = r
	}
	return out
}

func (t Threshold) actual(res *Result) (float64, string) {
	switch t.metric {
	case "errors%":
		if res.Totals.Messages == 0 {
			return 0, "no messages were sent"
		}
		return failedPercent(res), ""
	case "errors":
		return float64(res.Totals.Failed), ""
	case "msgs/s":
		return res.Throughput.MessagesPerS, ""
	case "MB/s":
		return res.Throughput.BytesPerS / 1e6, ""
	case "delivered":
		return float64(res.Totals.Delivered), ""
	}
	p := res.Phase(t.phase)
	if p == nil || p.Count == 0 {
		return 0, "no " + t.phase + " samples"
	}
	switch t.metric {
	case "min":
		return float64(p.Min), ""
	case "max":
		return float64(p.Max), ""
	case "mean":
		return p.Mean, ""
	}
	h, err := p.Histogram()
	if err != nil {
		return 0, err.Error()
	}
	return float64(h.ValueAtPercentile(t.pct)), ""
}

// format shows a value in the threshold's unit.
func (t Threshold) format(v float64) string {
	switch t.metric {
	case "errors%":
		return strconv.FormatFloat(v, 'f', 3, 64) + "%"
	case "errors", "delivered":
		return strconv.FormatFloat(v, 'f', 0, 64)
	case "msgs/s", "MB/s":
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return FormatNs(int64(v))
}

// Breached reports whether any threshold failed.
func Breached(rs []ThresholdResult) bool {
	for _, r := range rs {
		if !r.Pass {
			return true
		}
	}
	return false
}

func renderThresholds(w io.Writer, rs []ThresholdResult, o RenderOptions) error {
	t := newTable(w, o)
	t.Header("threshold", "actual", "result")
	for _, r := range rs {
		actual, verdict := r.Threshold.format(r.Actual), "pass"
		if r.Problem != "" {
			actual = r.Problem
		}
		if !r.Pass {
			verdict = "FAIL"
		}
		if err := t.Append(r.Threshold.Source, actual, verdict); err != nil {
			return err
		}
	}
	return t.Render()
}
