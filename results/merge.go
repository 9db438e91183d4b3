package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Recorder rebuilds a Recorder from a result: histograms decoded, replies, errors and counts
// restored, so results can be added exactly.
func (res *Result) Recorder() (*Recorder, error) {
	rec := NewRecorder()
	for i := range res.Phases {
		pr := &res.Phases[i]
		p, err := ParsePhase(pr.Name)
		if err != nil {
			return nil, fmt.Errorf("result %s: %w", res.RunID, err)
		}
		if pr.Hist != "" {
			h, err := pr.Histogram()
			if err != nil {
				return nil, err
			}
			rec.hist[p] = h
		}
		for _, rc := range pr.Replies {
			k := ReplyKey{Code: rc.Code}
			if rc.Enhanced != "" {
				parts := strings.Split(rc.Enhanced, ".")
				if len(parts) != 3 {
					return nil, fmt.Errorf("phase %s: bad enhanced code %q", pr.Name, rc.Enhanced)
				}
				for j, s := range parts {
					v, err := strconv.ParseUint(s, 10, 16)
					if err != nil {
						return nil, fmt.Errorf("phase %s: bad enhanced code %q", pr.Name, rc.Enhanced)
					}
					k.Enhanced[j] = uint16(v)
				}
			}
			rec.addReplies(p, k, rc.Count)
		}
		for _, ec := range pr.Errors {
			rec.addErrors(p, ec.Reason, ec.Count)
		}
	}
	rec.Counts = res.Totals
	rec.Clamped = res.Clamped
	return rec, nil
}

// ErrConfigMismatch is returned by Merge for shards of different configurations.
var ErrConfigMismatch = errors.New("shards have different configurations")

// configIgnored are the config fields shards of one run may differ in.
var configIgnored = []string{"run_id", "seed", "shard"}

// Merge adds shards of one distributed run into one result: histograms and counters are added
// exactly (percentiles are never averaged), and timelines are aligned by wall clock. Shards whose
// configurations differ (other than run id, seed and shard) are refused unless force is set.
func Merge(shards []*Result, force bool) (*Result, error) {
	if len(shards) == 0 {
		return nil, errors.New("nothing to merge")
	}
	if !force {
		if err := sameConfig(shards); err != nil {
			return nil, err
		}
	}
	first := shards[0]
	out := &Result{
		Kind: Kind, Schema: SchemaVersion, Tool: first.Tool, RunID: first.RunID,
		Start: first.Start, End: first.End, Target: first.Target, Description: first.Description,
		Config: first.Config, Host: first.Host,
	}
	total := NewRecorder()
	reasons := map[string]bool{}
	var hosts []string
	for _, s := range shards {
		rec, err := s.Recorder()
		if err != nil {
			return nil, err
		}
		total.Merge(rec)
		if s.Start.Before(out.Start) {
			out.Start = s.Start
		}
		if s.End.After(out.End) {
			out.End = s.End
		}
		// The measured window starts where the first shard's does (after its warm-up, if any), and
		// the shards' target rates add up, as they ran at once.
		if from := s.measuredFrom(); out.MeasuredFrom.IsZero() || from.Before(out.MeasuredFrom) {
			out.MeasuredFrom = from
		}
		out.Throughput.TargetPerS += s.Throughput.TargetPerS
		reasons[s.StopReason] = true
		hosts = append(hosts, s.Host.Hostname)
		for _, n := range s.Notes {
			if !slices.Contains(out.Notes, n) {
				out.Notes = append(out.Notes, n)
			}
		}
		if !slices.Contains(strings.Split(out.Target, ", "), s.Target) {
			out.Target += ", " + s.Target
		}
	}
	if out.MeasuredFrom.Equal(out.Start) {
		out.MeasuredFrom = time.Time{} // no warm-up
	}
	if err := out.Fill(total); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(reasons))
	for r := range reasons {
		keys = append(keys, r)
	}
	sort.Strings(keys)
	out.StopReason = strings.Join(keys, "; ")
	out.Notes = append(out.Notes, fmt.Sprintf("merged from %d shards (hosts: %s)", len(shards), strings.Join(hosts, ", ")))
	tl, err := mergeTimelines(shards, out.Start)
	if err != nil {
		return nil, err
	}
	out.Timeline = tl
	return out, nil
}

// measuredFrom is when the result's histograms and totals start.
func (res *Result) measuredFrom() time.Time {
	if res.MeasuredFrom.IsZero() {
		return res.Start
	}
	return res.MeasuredFrom
}

// sameConfig compares the shards' configs, ignoring the fields shards may differ in.
func sameConfig(shards []*Result) error {
	norm := func(raw json.RawMessage) (map[string]any, error) {
		m := map[string]any{}
		if len(bytes.TrimSpace(raw)) == 0 {
			return m, nil
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		for _, k := range configIgnored {
			delete(m, k)
		}
		return m, nil
	}
	base, err := norm(shards[0].Config)
	if err != nil {
		return fmt.Errorf("shard 1: config: %w", err)
	}
	for i, s := range shards[1:] {
		m, err := norm(s.Config)
		if err != nil {
			return fmt.Errorf("shard %d: config: %w", i+2, err)
		}
		var diff []string
		for k := range base {
			if !jsonEqual(base[k], m[k]) {
				diff = append(diff, k)
			}
		}
		for k := range m {
			if _, ok := base[k]; !ok {
				diff = append(diff, k)
			}
		}
		if len(diff) > 0 {
			sort.Strings(diff)
			return fmt.Errorf("%w: shard %d differs from shard 1 in %s (use --force to merge anyway)",
				ErrConfigMismatch, i+2, strings.Join(diff, ", "))
		}
	}
	return nil
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// mergeTimelines adds the shards' intervals that end in the same wall-clock second.
func mergeTimelines(shards []*Result, start time.Time) ([]Interval, error) {
	type acc struct {
		iv      Interval
		hist    *hdrhistogram.Histogram
		n, warm int // intervals added, and how many of them were of the warm-up
	}
	bySecond := map[int64]*acc{}
	for _, s := range shards {
		for _, iv := range s.Timeline {
			end := s.Start.Add(time.Duration(iv.Offset * float64(time.Second)))
			sec := int64(math.Ceil(float64(end.UnixNano()) / 1e9))
			a := bySecond[sec]
			if a == nil {
				a = &acc{hist: NewHistogram()}
				bySecond[sec] = a
			}
			a.iv.Messages += iv.Messages
			a.iv.Delivered += iv.Delivered
			a.iv.Failed += iv.Failed
			a.iv.Errors += iv.Errors
			a.iv.Late += iv.Late
			a.iv.Dropped += iv.Dropped
			a.n++
			if iv.Warmup {
				a.warm++
			}
			if iv.TxnHist != "" {
				h, err := hdrhistogram.Decode([]byte(iv.TxnHist))
				if err != nil {
					return nil, fmt.Errorf("timeline of %s: corrupt histogram: %w", s.RunID, err)
				}
				a.hist.Merge(h)
			}
		}
	}
	secs := make([]int64, 0, len(bySecond))
	for s := range bySecond {
		secs = append(secs, s)
	}
	slices.Sort(secs)
	out := make([]Interval, 0, len(secs))
	for _, sec := range secs {
		a := bySecond[sec]
		iv := a.iv
		iv.Offset = time.Unix(sec, 0).Sub(start).Seconds()
		iv.Warmup = a.warm == a.n // a second that holds measured messages is measured
		if a.hist.TotalCount() > 0 {
			iv.TxnP50, iv.TxnP99 = a.hist.ValueAtPercentile(50), a.hist.ValueAtPercentile(99)
			enc, err := EncodeHist(a.hist)
			if err != nil {
				return nil, err
			}
			iv.TxnHist = enc
		}
		out = append(out, iv)
	}
	return out, nil
}
