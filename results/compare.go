package results

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Comparison puts runs side by side: sides[0] is the baseline; each side holds one or more
// repeated runs of the same setup.
type Comparison struct {
	Labels []string
	Rows   []ComparisonRow
}

// ComparisonRow is one metric across the sides.
type ComparisonRow struct {
	Metric    string
	Unit      string      // "ns", "msgs/s", "MB/s", "%"
	Samples   [][]float64 // per side
	Medians   []float64   // per side
	Changes   []float64   // per side, percent change of the median vs the baseline's (0 for it)
	Supported []bool      // per side: the change is beyond the spread of both sides (always true with one run per side)
	Higher    bool        // higher is better (throughput)
}

// Compare builds a comparison of sides (each one or more results) for throughput and, for every
// phase present in the baseline, the given percentiles and max.
func Compare(labels []string, sides [][]*Result, pcts []float64) (*Comparison, error) {
	if len(sides) < 2 {
		return nil, fmt.Errorf("compare needs at least two sides")
	}
	if len(pcts) == 0 {
		pcts = []float64{50, 99}
	}
	c := &Comparison{Labels: labels}
	metric := func(name, unit string, higher bool, get func(*Result) (float64, bool)) error {
		row := ComparisonRow{Metric: name, Unit: unit, Higher: higher}
		for _, side := range sides {
			var vs []float64
			for _, r := range side {
				if v, ok := get(r); ok {
					vs = append(vs, v)
				}
			}
			row.Samples = append(row.Samples, vs)
		}
		if len(row.Samples[0]) == 0 {
			return nil // nothing in the baseline to compare with
		}
		c.Rows = append(c.Rows, row.finish())
		return nil
	}
	metric("msgs/s", "msgs/s", true, func(r *Result) (float64, bool) { return r.Throughput.MessagesPerS, true })
	metric("MB/s", "MB/s", true, func(r *Result) (float64, bool) { return r.Throughput.BytesPerS / 1e6, true })
	metric("failed", "%", false, func(r *Result) (float64, bool) { return failedPercent(r), true })
	for _, pr := range sides[0][0].Phases {
		if pr.Count == 0 {
			continue
		}
		name := pr.Name
		for _, p := range pcts {
			var ferr error
			metric(name+" "+PercentileLabel(p), "ns", false, func(r *Result) (float64, bool) {
				ph := r.Phase(name)
				if ph == nil || ph.Count == 0 {
					return 0, false
				}
				h, err := ph.Histogram()
				if err != nil {
					ferr = err
					return 0, false
				}
				return float64(h.ValueAtPercentile(p)), true
			})
			if ferr != nil {
				return nil, ferr
			}
		}
		metric(name+" max", "ns", false, func(r *Result) (float64, bool) {
			ph := r.Phase(name)
			if ph == nil || ph.Count == 0 {
				return 0, false
			}
			return float64(ph.Max), true
		})
	}
	return c, nil
}

func (row ComparisonRow) finish() ComparisonRow {
	n := len(row.Samples)
	row.Medians, row.Changes, row.Supported = make([]float64, n), make([]float64, n), make([]bool, n)
	for i, s := range row.Samples {
		row.Medians[i] = median(s)
	}
	base := row.Samples[0]
	for i := 1; i < n; i++ {
		if len(row.Samples[i]) == 0 {
			row.Medians[i] = math.NaN()
			continue
		}
		if row.Medians[0] != 0 {
			row.Changes[i] = 100 * (row.Medians[i] - row.Medians[0]) / row.Medians[0]
		} else if row.Medians[i] != 0 { // from nothing: an infinite change, not none
			row.Changes[i] = math.Inf(int(math.Copysign(1, row.Medians[i])))
		}
		row.Supported[i] = beyondSpread(base, row.Samples[i])
	}
	return row
}

func median(s []float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	t := slices.Clone(s)
	slices.Sort(t)
	if len(t)%2 == 1 {
		return t[len(t)/2]
	}
	return (t[len(t)/2-1] + t[len(t)/2]) / 2
}

// beyondSpread reports whether the samples of two sides do not overlap: every sample of one is
// beyond every sample of the other. With one sample per side it is true (nothing to judge by).
func beyondSpread(a, b []float64) bool {
	if len(a) < 2 && len(b) < 2 {
		return true
	}
	amin, amax := slices.Min(a), slices.Max(a)
	bmin, bmax := slices.Min(b), slices.Max(b)
	return bmin > amax || bmax < amin
}

// RenderComparison writes the comparison as a table: the baseline's median, then each other
// side's median with its change; a change within the spread of the repeated runs is marked "~".
func RenderComparison(w io.Writer, c *Comparison, o RenderOptions) error {
	t := newTable(w, o)
	header := []any{"metric", c.Labels[0]}
	for _, l := range c.Labels[1:] {
		header = append(header, l, "change")
	}
	t.Header(header...)
	repeated := false
	for _, row := range c.Rows {
		cells := []any{row.Metric, formatUnit(row.Medians[0], row.Unit)}
		for i := 1; i < len(row.Medians); i++ {
			if math.IsNaN(row.Medians[i]) {
				cells = append(cells, "-", "-")
				continue
			}
			change := fmt.Sprintf("%+.1f%%", row.Changes[i])
			if !row.Supported[i] {
				change = "~ (" + change + ")"
			} else if better(row, i) {
				change += " better"
			} else if row.Changes[i] != 0 {
				change += " worse"
			}
			cells = append(cells, formatUnit(row.Medians[i], row.Unit), change)
			if len(row.Samples[i]) > 1 || len(row.Samples[0]) > 1 {
				repeated = true
			}
		}
		if err := t.Append(cells...); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if repeated {
		fmt.Fprintln(w, "medians of the repeated runs; \"~\": the runs' ranges overlap, so the spread does not support the change")
	}
	return nil
}

func better(row ComparisonRow, i int) bool {
	if row.Higher {
		return row.Changes[i] > 0
	}
	return row.Changes[i] < 0
}

func formatUnit(v float64, unit string) string {
	switch unit {
	case "ns":
		return FormatNs(int64(v))
	case "%":
		return strconv.FormatFloat(v, 'f', 3, 64) + "%"
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 2, 64), ".00")
}
