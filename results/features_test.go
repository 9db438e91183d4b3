package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// ---- Merge ----

// shardSpec describes one shard of a test run: when it started, and when each of its intervals
// ended (seconds from its start).
type shardSpec struct {
	name    string
	start   time.Time
	offsets []float64
	config  string
}

// builtShard is a shard's result (after an Encode/Decode round trip, as merge reads it from a
// file) and what was recorded into it, kept apart from the recorder.
type builtShard struct {
	res      *Result
	samples  map[Phase][]int64
	ivTxn    [][]int64 // txn samples of each interval
	ivCounts []Counts
	replies  map[Phase]map[ReplyKey]int64
	errs     map[Phase]map[string]int64
}

var mergePhases = []Phase{Connect, Mail, Rcpt, Body, Txn}

func buildShard(t *testing.T, rng *rand.Rand, spec shardSpec) builtShard {
	t.Helper()
	b := builtShard{samples: map[Phase][]int64{}, replies: map[Phase]map[ReplyKey]int64{}, errs: map[Phase]map[string]int64{}}
	rec := NewRecorder()
	for range spec.offsets {
		var txn []int64
		var c Counts
		ivRec := NewRecorder()
		for range 50 + rng.IntN(100) {
			for _, p := range mergePhases {
				v := int64(1e3 * (1 + rng.ExpFloat64()*300))
				rec.Record(p, v)
				b.samples[p] = append(b.samples[p], v)
				k := testKeys[rng.IntN(len(testKeys))]
				rec.Reply(p, k)
				if b.replies[p] == nil {
					b.replies[p] = map[ReplyKey]int64{}
				}
				b.replies[p][k]++
				if p == Txn {
					ivRec.Record(Txn, v)
					txn = append(txn, v)
				}
			}
			c.Messages++
			if rng.IntN(8) == 0 {
				reason := testReasons[rng.IntN(len(testReasons))]
				rec.Error(Body, reason)
				if b.errs[Body] == nil {
					b.errs[Body] = map[string]int64{}
				}
				b.errs[Body][reason]++
				c.Failed++
				c.Errors++
			} else {
				c.Delivered++
				c.Recipients++
				c.Bytes += 2000
			}
		}
		b.ivTxn = append(b.ivTxn, txn)
		b.ivCounts = append(b.ivCounts, c)
		rec.Counts.Messages += c.Messages
		rec.Counts.Delivered += c.Delivered
		rec.Counts.Failed += c.Failed
		rec.Counts.Recipients += c.Recipients
		rec.Counts.Bytes += c.Bytes
	}
	rec.Counts.Sessions = 4
	last := spec.offsets[len(spec.offsets)-1]
	res := &Result{
		Kind: Kind, Schema: SchemaVersion, Tool: "smtpbench test", RunID: spec.name,
		Start: spec.start, End: spec.start.Add(time.Duration(last * float64(time.Second))),
		Target: "127.0.0.1:2525", Description: "4 sessions", Config: json.RawMessage(spec.config),
		Host:       Host{Hostname: "host-" + spec.name, CPUs: 2, GOMAXPROCS: 2, Go: "go1.26", OS: "linux", Arch: "amd64"},
		StopReason: "message count reached", Notes: []string{"note of " + spec.name, "shared note"},
	}
	if err := res.Fill(rec); err != nil {
		t.Fatal(err)
	}
	for i, off := range spec.offsets {
		c := b.ivCounts[i]
		iv := Interval{Offset: off, Messages: c.Messages, Delivered: c.Delivered, Failed: c.Failed, Errors: c.Errors}
		h := exactHist(t, b.ivTxn[i])
		iv.TxnP50, iv.TxnP99 = h.ValueAtPercentile(50), h.ValueAtPercentile(99)
		enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			t.Fatal(err)
		}
		iv.TxnHist = string(enc)
		res.Timeline = append(res.Timeline, iv)
	}
	b.res = roundTrip(t, res)
	return b
}

// roundTrip encodes and decodes a result, as a file would.
func roundTrip(t *testing.T, res *Result) *Result {
	t.Helper()
	var buf bytes.Buffer
	if err := res.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// Merging two shards gives what one run of all their samples gives: histograms, counters, replies
// and errors added exactly, and timelines aligned by wall clock.
func TestMergeShardsEqualsCombinedSamples(t *testing.T) {
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	rng := rand.New(rand.NewPCG(7, 8))
	// a's intervals end at t0+1.3, 2.3, 3.1 s; b's at t0+1.8, 2.8, 3.8, 4.2 s: the wall-clock
	// seconds they end in are t0+2, 3, 4 for a and t0+2, 3, 4, 5 for b.
	a := buildShard(t, rng, shardSpec{"a", t0.Add(300 * time.Millisecond), []float64{1, 2, 2.8},
		`{"sessions":4,"size":1024,"seed":1,"run_id":"a","shard":1}`})
	b := buildShard(t, rng, shardSpec{"b", t0.Add(800 * time.Millisecond), []float64{1, 2, 3, 3.4},
		`{"size":1024,"sessions":4,"seed":2,"run_id":"b","shard":2}`})
	b.res.StopReason = "duration elapsed"

	merged, err := Merge([]*Result{a.res, b.res}, false)
	if err != nil {
		t.Fatalf("shards differing only in run_id, seed and shard: %v", err)
	}
	merged = roundTrip(t, merged) // what merge -o writes is a valid result file

	// Histograms: equal to one histogram of all samples, built straight from them.
	for _, p := range mergePhases {
		all := append(slices.Clone(a.samples[p]), b.samples[p]...)
		want := exactHist(t, all)
		pr := merged.Phase(p.String())
		if pr == nil {
			t.Fatalf("no %v in the merged result", p)
		}
		h, err := pr.Histogram()
		if err != nil {
			t.Fatal(err)
		}
		if !h.Equals(want) {
			t.Errorf("%v: the merged histogram differs from the histogram of all samples", p)
		}
		pcts := []float64{50, 90, 99, 99.9, 99.99}
		got := []int64{pr.P50, pr.P90, pr.P99, pr.P999, pr.P9999}
		if !slices.Equal(got, want.ValueAtPercentilesSlice(pcts)) || pr.Count != int64(len(all)) ||
			pr.Min != want.Min() || pr.Max != want.Max() || pr.Mean != want.Mean() {
			t.Errorf("%v: summary %+v, want count %d min %d max %d percentiles %v", p, pr, len(all), want.Min(),
				want.Max(), want.ValueAtPercentilesSlice(pcts))
		}
		// Replies and errors add up.
		wantReplies := map[ReplyKey]int64{}
		for _, m := range []map[ReplyKey]int64{a.replies[p], b.replies[p]} {
			for k, n := range m {
				wantReplies[k] += n
			}
		}
		gotReplies := map[ReplyKey]int64{}
		rec, err := merged.Recorder()
		if err != nil {
			t.Fatal(err)
		}
		rec.Replies(p, func(k ReplyKey, n int64) { gotReplies[k] += n })
		if !reflect.DeepEqual(gotReplies, wantReplies) {
			t.Errorf("%v replies %v, want %v", p, gotReplies, wantReplies)
		}
	}
	wantErrs := map[string]int64{}
	for _, m := range []map[string]int64{a.errs[Body], b.errs[Body]} {
		for k, n := range m {
			wantErrs[k] += n
		}
	}
	var wantErrList []ErrorCount
	for k, n := range wantErrs {
		wantErrList = append(wantErrList, ErrorCount{k, n})
	}
	slices.SortFunc(wantErrList, func(x, y ErrorCount) int { return strings.Compare(x.Reason, y.Reason) })
	if got := merged.Phase("body").Errors; !slices.Equal(got, wantErrList) {
		t.Errorf("body errors %v, want %v", got, wantErrList)
	}

	// Counters.
	ta, tb := a.res.Totals, b.res.Totals
	want := Counts{Messages: ta.Messages + tb.Messages, Delivered: ta.Delivered + tb.Delivered, Failed: ta.Failed + tb.Failed,
		Recipients: ta.Recipients + tb.Recipients, Bytes: ta.Bytes + tb.Bytes, Sessions: 8, Errors: ta.Errors + tb.Errors}
	if merged.Totals != want {
		t.Errorf("totals %+v, want %+v", merged.Totals, want)
	}
	// The run spans both shards; throughput is over that span.
	if !merged.Start.Equal(a.res.Start) || !merged.End.Equal(b.res.End) {
		t.Errorf("span %v - %v, want %v - %v", merged.Start, merged.End, a.res.Start, b.res.End)
	}
	secs := b.res.End.Sub(a.res.Start).Seconds() // 4.2 - 0.3
	if math.Abs(merged.Throughput.Seconds-3.9) > 1e-9 || math.Abs(merged.Throughput.MessagesPerS-float64(want.Delivered)/secs) > 1e-9 {
		t.Errorf("throughput %+v over %gs", merged.Throughput, secs)
	}
	if merged.StopReason != "duration elapsed; message count reached" {
		t.Errorf("stop reason %q", merged.StopReason)
	}
	wantNotes := []string{"note of a", "shared note", "note of b", "merged from 2 shards (hosts: host-a, host-b)"}
	if !slices.Equal(merged.Notes, wantNotes) {
		t.Errorf("notes %q, want %q", merged.Notes, wantNotes)
	}
	if !merged.MeasuredFrom.IsZero() {
		t.Errorf("shards without a warm-up merge into one measured from %v", merged.MeasuredFrom)
	}
	if merged.Kind != Kind || merged.Schema != SchemaVersion || merged.Target != "127.0.0.1:2525" {
		t.Errorf("kind %q schema %d target %q", merged.Kind, merged.Schema, merged.Target)
	}

	// Timeline: intervals ending in the same wall-clock second are added; offsets are from the
	// merged start (t0+0.3s) to the end of that second.
	type bucket struct {
		offset float64
		parts  [][2]int // (shard, interval)
	}
	buckets := []bucket{
		{1.7, [][2]int{{0, 0}, {1, 0}}},
		{2.7, [][2]int{{0, 1}, {1, 1}}},
		{3.7, [][2]int{{0, 2}, {1, 2}}},
		{4.7, [][2]int{{1, 3}}},
	}
	shards := []builtShard{a, b}
	if len(merged.Timeline) != len(buckets) {
		t.Fatalf("merged timeline has %d intervals, want %d: %+v", len(merged.Timeline), len(buckets), merged.Timeline)
	}
	for i, bk := range buckets {
		iv := merged.Timeline[i]
		var txn []int64
		var c Counts
		for _, part := range bk.parts {
			s := shards[part[0]]
			txn = append(txn, s.ivTxn[part[1]]...)
			c.add(&s.ivCounts[part[1]])
		}
		h := exactHist(t, txn)
		if math.Abs(iv.Offset-bk.offset) > 1e-9 {
			t.Errorf("interval %d ends at %gs, want %gs", i, iv.Offset, bk.offset)
		}
		if iv.Messages != c.Messages || iv.Delivered != c.Delivered || iv.Failed != c.Failed || iv.Errors != c.Errors {
			t.Errorf("interval %d: %+v, want counts %+v", i, iv, c)
		}
		if iv.TxnP50 != h.ValueAtPercentile(50) || iv.TxnP99 != h.ValueAtPercentile(99) {
			t.Errorf("interval %d: txn p50 %d p99 %d, want %d %d (recomputed from the added histograms)",
				i, iv.TxnP50, iv.TxnP99, h.ValueAtPercentile(50), h.ValueAtPercentile(99))
		}
		got, err := hdrhistogram.Decode([]byte(iv.TxnHist))
		if err != nil || !got.Equals(h) {
			t.Errorf("interval %d: the txn histogram is not the sum of the shards' (%v)", i, err)
		}
	}
}

// Intervals of shards that start in the same second but end a second apart stay apart, and a
// shard's late partial interval that ends in the same second as its previous one is added to it.
func TestMergeTimelineSameShardSameSecond(t *testing.T) {
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	a := &Result{Kind: Kind, Schema: SchemaVersion, Start: t0.Add(100 * time.Millisecond), End: t0.Add(2 * time.Second),
		Timeline: []Interval{{Offset: 1, Messages: 1}, {Offset: 1.5, Messages: 2}, {Offset: 1.9, Messages: 4}}}
	merged, err := Merge([]*Result{a}, false)
	if err != nil {
		t.Fatal(err)
	}
	// Ends at t0+1.1 (second t0+2), t0+1.6 and t0+2.0 (both second t0+2: 2.0 is the end of it).
	if len(merged.Timeline) != 1 || merged.Timeline[0].Messages != 7 || math.Abs(merged.Timeline[0].Offset-1.9) > 1e-9 {
		t.Errorf("timeline %+v, want one interval of 7 messages ending at 1.9s", merged.Timeline)
	}
}

// Shards of one open-model run with a warm-up merge into a result that keeps the measured window,
// the target rate (the shards' rates add up) and each interval's late and dropped messages and
// warm-up marking.
func TestMergeOpenModelShards(t *testing.T) {
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	shard := func(name string, target float64, late, dropped int64) *Result {
		rec := NewRecorder()
		for i := range 100 {
			rec.Record(Response, int64(1000+i))
		}
		rec.Counts = Counts{Messages: 100, Delivered: 100, Recipients: 100, Bytes: 100_000, Scheduled: 110, Late: late, Dropped: dropped}
		res := &Result{Kind: Kind, Schema: SchemaVersion, RunID: name, Start: t0, End: t0.Add(4 * time.Second),
			MeasuredFrom: t0.Add(time.Second), Config: json.RawMessage(`{"rate":100,"warmup":1000000000}`),
			Timeline: []Interval{
				{Offset: 1, Messages: 30, Delivered: 30, Late: 1, Dropped: 1, Warmup: true},
				{Offset: 2, Messages: 30, Delivered: 30, Late: late - 1, Dropped: dropped - 1},
				{Offset: 3, Messages: 30, Delivered: 30},
				{Offset: 4, Messages: 40, Delivered: 40},
			}}
		res.Throughput.TargetPerS = target
		if err := res.Fill(rec); err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := shard("a", 100, 5, 3), shard("b", 150, 7, 2)
	if a.Throughput.Seconds != 3 || a.Throughput.MessagesPerS != 100.0/3 {
		t.Fatalf("a shard's throughput %+v is not over its measured 3s", a.Throughput)
	}
	merged, err := Merge([]*Result{a, b}, false)
	if err != nil {
		t.Fatal(err)
	}
	merged = roundTrip(t, merged)
	if c := merged.Totals; c.Late != 12 || c.Dropped != 5 || c.Scheduled != 220 || c.Delivered != 200 {
		t.Errorf("totals %+v", c)
	}
	if !merged.MeasuredFrom.Equal(t0.Add(time.Second)) {
		t.Errorf("measured from %v, want the shards' %v", merged.MeasuredFrom, t0.Add(time.Second))
	}
	tp := merged.Throughput
	if tp.TargetPerS != 250 || tp.Seconds != 3 || math.Abs(tp.MessagesPerS-200.0/3) > 1e-9 {
		t.Errorf("throughput %+v, want target 250 msgs/s and 200 messages over the measured 3s", tp)
	}
	if len(merged.Timeline) != 4 {
		t.Fatalf("timeline %+v", merged.Timeline)
	}
	if iv := merged.Timeline[0]; !iv.Warmup || iv.Late != 2 || iv.Dropped != 2 || iv.Messages != 60 {
		t.Errorf("first interval %+v, want warm-up with 2 late and 2 dropped", iv)
	}
	if iv := merged.Timeline[1]; iv.Warmup || iv.Late != 10 || iv.Dropped != 3 {
		t.Errorf("second interval %+v, want 10 late and 3 dropped, measured", iv)
	}
	var text bytes.Buffer
	if err := RenderText(&text, merged, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "target msgs/s") {
		t.Errorf("the merged open-model summary has no target column:\n%s", text.String())
	}
}

// A merged second is of the warm-up only when every interval added into it was: one that holds
// measured messages is measured.
func TestMergeWarmupMarking(t *testing.T) {
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	mk := func(warm ...bool) *Result {
		res := &Result{Kind: Kind, Schema: SchemaVersion, Start: t0, End: t0.Add(time.Duration(len(warm)) * time.Second)}
		for i, w := range warm {
			res.Timeline = append(res.Timeline, Interval{Offset: float64(i + 1), Messages: 1, Warmup: w})
		}
		return res
	}
	merged, err := Merge([]*Result{mk(true, true, false), mk(true, false, false)}, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, iv := range merged.Timeline {
		got = append(got, iv.Warmup)
	}
	if !slices.Equal(got, []bool{true, false, false}) {
		t.Errorf("warm-up marks %v, want [true false false]", got)
	}
}

// Shards of different configurations are refused with the differing fields named, run_id, seed
// and shard aside; force merges them anyway.
func TestMergeRefusesOtherConfigs(t *testing.T) {
	mk := func(config string) *Result {
		rec := NewRecorder()
		rec.Record(Mail, 1000)
		rec.Counts.Messages, rec.Counts.Delivered = 1, 1
		res := &Result{Kind: Kind, Schema: SchemaVersion, Start: time.Unix(1e9, 0), End: time.Unix(1e9+1, 0),
			Config: json.RawMessage(config)}
		if err := res.Fill(rec); err != nil {
			t.Fatal(err)
		}
		return res
	}
	base := `{"target":{"Network":"tcp","Address":"127.0.0.1:25"},"sessions":4,"size":1024,"seed":1,"run_id":"x"}`
	for _, tc := range []struct {
		name    string
		configs []string
		want    string // the error's list of fields, "" for a merge
	}{
		{"run_id, seed and shard differ", []string{base, `{"target":{"Network":"tcp","Address":"127.0.0.1:25"},"sessions":4,"size":1024,"seed":99,"run_id":"y","shard":3}`}, ""},
		{"the same", []string{base, base, base}, ""},
		{"no configs", []string{"", ""}, ""},
		{"sessions and size", []string{base, `{"target":{"Network":"tcp","Address":"127.0.0.1:25"},"sessions":8,"size":2048,"seed":1,"run_id":"x"}`},
			"shard 2 differs from shard 1 in sessions, size"},
		{"nested target", []string{base, `{"target":{"Network":"tcp","Address":"127.0.0.2:25"},"sessions":4,"size":1024,"seed":1,"run_id":"x"}`},
			"shard 2 differs from shard 1 in target"},
		{"a field only in the second", []string{base, `{"target":{"Network":"tcp","Address":"127.0.0.1:25"},"sessions":4,"size":1024,"rate":50}`},
			"shard 2 differs from shard 1 in rate"},
		{"a field only in the first", []string{`{"sessions":4,"bdat":true}`, `{"sessions":4}`}, "shard 2 differs from shard 1 in bdat"},
		{"the third", []string{base, base, `{"sessions":4}`}, "shard 3 differs from shard 1 in size, target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var shards []*Result
			for _, c := range tc.configs {
				shards = append(shards, mk(c))
			}
			merged, err := Merge(shards, false)
			if tc.want == "" {
				if err != nil || merged.Totals.Messages != int64(len(shards)) {
					t.Fatalf("Merge: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("merged shards of different configurations")
			}
			if !errors.Is(err, ErrConfigMismatch) || !strings.Contains(err.Error(), tc.want+" ") ||
				!strings.Contains(err.Error(), "--force") {
				t.Errorf("error %q, want ErrConfigMismatch saying %q and --force", err, tc.want)
			}
			for _, ignored := range []string{"run_id", "seed"} {
				if strings.Contains(err.Error(), ignored) {
					t.Errorf("error %q names %s, which shards may differ in", err, ignored)
				}
			}
			merged, err = Merge(shards, true)
			if err != nil || merged.Totals.Messages != int64(len(shards)) || merged.Phase("mail").Count != int64(len(shards)) {
				t.Errorf("forced merge: %v", err)
			}
		})
	}
	if _, err := Merge(nil, true); err == nil {
		t.Error("merging nothing succeeded")
	}
	if _, err := Merge([]*Result{mk(base), mk(`{"sessions":`)}, false); err == nil || !strings.Contains(err.Error(), "shard 2") {
		t.Errorf("a shard with a broken config: %v", err)
	}
}

// A forced merge of shards against different targets names every target once, even when one's
// name is part of another's.
func TestMergeTargets(t *testing.T) {
	mk := func(target string) *Result {
		return &Result{Kind: Kind, Schema: SchemaVersion, Target: target, Start: time.Unix(1e9, 0), End: time.Unix(1e9+1, 0)}
	}
	for _, tc := range []struct {
		targets []string
		want    string
	}{
		{[]string{"10.0.0.1:25", "10.0.0.1:25"}, "10.0.0.1:25"},
		{[]string{"10.0.0.1:25", "10.0.0.2:25", "10.0.0.1:25"}, "10.0.0.1:25, 10.0.0.2:25"},
		{[]string{"10.0.0.1:2525", "10.0.0.1:25"}, "10.0.0.1:2525, 10.0.0.1:25"},
		{[]string{"mx1.example:25", "x1.example:25"}, "mx1.example:25, x1.example:25"},
	} {
		var shards []*Result
		for _, tg := range tc.targets {
			shards = append(shards, mk(tg))
		}
		merged, err := Merge(shards, true)
		if err != nil || merged.Target != tc.want {
			t.Errorf("targets %q merge to %q (%v), want %q", tc.targets, merged.Target, err, tc.want)
		}
	}
}

// ---- .hgrm ----

// hdrhistogram-go has no reader for the .hgrm percentile distribution (only for interval logs), so
// the output is checked against PercentilesPrint itself and parsed here by its documented columns.
func TestWriteHgrm(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var samples []int64
	for range 5000 {
		samples = append(samples, int64(2e5+rng.ExpFloat64()*3e6)) // 0.2 ms and up, in ns
	}
	h := exactHist(t, samples)

	var got, want bytes.Buffer
	if err := WriteHgrm(&got, h); err != nil {
		t.Fatal(err)
	}
	if _, err := h.PercentilesPrint(&want, 5, 1e6); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("WriteHgrm differs from PercentilesPrint(5, 1e6):\n%s\n---\n%s", got.Bytes(), want.Bytes())
	}

	rows, footer := parseHgrm(t, got.String())
	if len(rows) < 20 {
		t.Fatalf("%d rows", len(rows))
	}
	for i := 1; i < len(rows); i++ {
		p, q := rows[i-1], rows[i]
		if q.value < p.value || q.percentile < p.percentile || q.total < p.total {
			t.Errorf("row %d (%+v) goes back from row %d (%+v)", i, q, i-1, p)
		}
	}
	last := rows[len(rows)-1]
	if last.total != h.TotalCount() || last.percentile != 1 {
		t.Errorf("last row %+v, want total count %d at percentile 1", last, h.TotalCount())
	}
	if want := fmt.Sprintf("%.3f", float64(h.Max())/1e6); fmt.Sprintf("%.3f", last.value) != want {
		t.Errorf("last value %.3f ms, want the max %s ms", last.value, want)
	}
	// Values are in milliseconds: the median row says the histogram's median in ms.
	for _, r := range rows {
		if r.percentile == 0.5 {
			if got, want := fmt.Sprintf("%.3f", r.value), fmt.Sprintf("%.3f", float64(h.ValueAtPercentile(50))/1e6); got != want {
				t.Errorf("median row %s ms, want %s ms", got, want)
			}
		}
	}
	if !strings.Contains(footer, fmt.Sprintf("Total count    = %12d", h.TotalCount())) ||
		!strings.Contains(footer, fmt.Sprintf("Max     = %12.3f", float64(h.Max())/1e6)) {
		t.Errorf("footer %q", footer)
	}

	// One value of 1 ms shows as 1.000 (ms), not 1000 (µs) or 1000000 (ns).
	one := exactHist(t, []int64{1e6})
	got.Reset()
	if err := WriteHgrm(&got, one); err != nil {
		t.Fatal(err)
	}
	if rows, _ := parseHgrm(t, got.String()); rows[0].value != 1 || rows[len(rows)-1].total != 1 {
		t.Errorf("a 1 ms sample reads %+v", rows)
	}
}

type hgrmRow struct {
	value, percentile float64
	total             int64
}

// parseHgrm reads the .hgrm columns Value, Percentile, TotalCount (and 1/(1-Percentile)), and
// returns the "#[" footer lines.
func parseHgrm(t *testing.T, s string) ([]hgrmRow, string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(s))
	if !sc.Scan() || strings.Fields(sc.Text())[0] != "Value" || !slices.Equal(strings.Split(strings.TrimSpace(sc.Text()), "\t"),
		[]string{"Value", "Percentile", "TotalCount", "1/(1-Percentile)"}) {
		t.Fatalf("header %q", sc.Text())
	}
	var rows []hgrmRow
	var footer strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "#[") {
			footer.WriteString(line + "\n")
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("line %q: %d columns", line, len(f))
		}
		v, err1 := strconv.ParseFloat(f[0], 64)
		p, err2 := strconv.ParseFloat(f[1], 64)
		n, err3 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		rows = append(rows, hgrmRow{v, p, n})
	}
	return rows, footer.String()
}

// ---- .hlog ----

// An interval log is read back by hdrhistogram-go's own HistogramLogReader: one histogram per phase
// per interval, tagged with the phase, holding what was recorded, stamped with the interval's times.
func TestHlogReadBack(t *testing.T) {
	// A start in the middle of a second: the log's times must still be the intervals' own.
	start := time.Date(2026, 5, 6, 7, 8, 9, 734_000_000, time.UTC)
	var buf bytes.Buffer
	l, err := NewHlog(&buf, start)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		tag      string
		samples  []int64
		from, to time.Time
	}
	var want []entry
	rng := rand.New(rand.NewPCG(1, 1))
	rec := NewRecorder() // reused from interval to interval, as the run does
	for i, phases := range [][]Phase{{Connect, Rcpt, Txn}, {}, {Rcpt}, {Mail, Txn, Session}} {
		from := start.Add(time.Duration(i) * time.Second)
		to := from.Add(time.Second)
		for _, p := range phases {
			e := entry{tag: p.String(), from: from, to: to}
			for range 10 + rng.IntN(200) {
				v := int64(1e3 + rng.ExpFloat64()*1e6)
				rec.Record(p, v)
				e.samples = append(e.samples, v)
			}
			want = append(want, e)
		}
		rec.Counts.Messages++ // counts alone write nothing
		if err := l.WriteInterval(rec, from, to); err != nil {
			t.Fatal(err)
		}
		rec.Reset()
	}
	text := buf.String()
	if !strings.HasPrefix(text, "#[Histogram log format version 1.3]\n") || !strings.Contains(text, "#[StartTime: ") {
		t.Errorf("log header:\n%s", text)
	}

	r := hdrhistogram.NewHistogramLogReader(strings.NewReader(text))
	for i := 0; ; i++ {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			t.Fatal(err)
		}
		if h == nil {
			if i != len(want) {
				t.Errorf("read %d interval histograms, want %d", i, len(want))
			}
			break
		}
		if i >= len(want) {
			t.Fatalf("more histograms than written: %s", h.Tag())
		}
		w := want[i]
		if h.Tag() != w.tag {
			t.Errorf("histogram %d tagged %q, want %q", i, h.Tag(), w.tag)
		}
		if !h.Equals(exactHist(t, w.samples)) || h.TotalCount() != int64(len(w.samples)) {
			t.Errorf("histogram %d (%s): %d samples, not what was recorded (%d)", i, w.tag, h.TotalCount(), len(w.samples))
		}
		// The reader computes times in float seconds and truncates to ms: allow 1 ms.
		if d := h.StartTimeMs() - w.from.UnixMilli(); d < -1 || d > 1 {
			t.Errorf("histogram %d starts at %d ms, want %d (off by %d ms)", i, h.StartTimeMs(), w.from.UnixMilli(), d)
		}
		if d := h.EndTimeMs() - w.to.UnixMilli(); d < -1 || d > 1 {
			t.Errorf("histogram %d ends at %d ms, want %d (off by %d ms)", i, h.EndTimeMs(), w.to.UnixMilli(), d)
		}
	}
}

// ---- Thresholds ----

func TestParseThreshold(t *testing.T) {
	for _, tc := range []struct {
		in                string
		metric, phase, op string
		pct, value        float64
	}{
		{"p99(rcpt)<20ms", "pct", "rcpt", "<", 99, 20e6},
		{"p99.9(txn)<=1s", "pct", "txn", "<=", 99.9, 1e9},
		{"p100(txn)<=1s", "pct", "txn", "<=", 100, 1e9},
		{"P50(mail)<1.5ms", "pct", "mail", "<", 50, 1.5e6},
		{"max(body)<100ms", "max", "body", "<", 0, 100e6},
		{"mean(mail)<2ms", "mean", "mail", "<", 0, 2e6},
		{"min(connect)>0s", "min", "connect", ">", 0, 0},
		{"min(connect)>=250us", "min", "connect", ">=", 0, 250e3},
		{"min(connect)>=250µs", "min", "connect", ">=", 0, 250e3},
		{"max(session)<1m", "max", "session", "<", 0, 60e9},
		{"max(quit)<500ns", "max", "quit", "<", 0, 500},
		{"errors<0.1%", "errors%", "", "<", 0, 0.1},
		{"errors<=5", "errors", "", "<=", 0, 5},
		{"failed<1", "errors", "", "<", 0, 1},
		{"failed<=2%", "errors%", "", "<=", 0, 2},
		{"msgs/s>5000", "msgs/s", "", ">", 0, 5000},
		{"MB/s>=10", "MB/s", "", ">=", 0, 10},
		{"mb/s>=10.5", "MB/s", "", ">=", 0, 10.5},
		{"delivered>=10000", "delivered", "", ">=", 0, 10000},
		{" p99 (rcpt) < 20 ms ", "pct", "rcpt", "<", 99, 20e6},
		{"msgs/s > 5000", "msgs/s", "", ">", 0, 5000},
		{"errors <= 0.5 %", "errors%", "", "<=", 0, 0.5},
	} {
		th, err := ParseThreshold(tc.in)
		if err != nil {
			t.Errorf("ParseThreshold(%q): %v", tc.in, err)
			continue
		}
		if th.Source != tc.in || th.metric != tc.metric || th.phase != tc.phase || th.op != tc.op || th.pct != tc.pct || th.value != tc.value {
			t.Errorf("ParseThreshold(%q) = %+v", tc.in, th)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"latency<20ms", `unknown metric "latency"`},
		{"p99(teardown)<20ms", `unknown phase "teardown"`},
		{"p99()<20ms", `unknown phase ""`},
		{"p0(rcpt)<20ms", "not a percentile"},
		{"p101(rcpt)<20ms", "not a percentile"},
		{"pxx(rcpt)<20ms", "not a percentile"},
		{"p(rcpt)<20ms", "not a percentile"},
		{"p-5(rcpt)<20ms", "not a percentile"},
		{"pNaN(rcpt)<20ms", "not a percentile"},
		{"pinf(rcpt)<20ms", "not a percentile"},
		{"median(rcpt)<20ms", "not pNN, min, max or mean"},
		{"p99(rcpt)<", "no value after <"},
		{"p99(rcpt)<=", "no value after <="},
		{"errors>", "no value after >"},
		{"p99(rcpt)<20", "not a duration"},
		{"p99(rcpt)<20 parsecs", "not a duration"},
		{"p99(rcpt)<fast", "not a duration"},
		{"p99(rcpt)<<20ms", "not a duration"},
		{"errors<-1", "not a number"},
		{"msgs/s>-5", "not a number"},
		{"delivered>=lots", "not a number"},
		{"msgs/s>NaN", "not a number"},
		{"errors<%", "not a number"},
		{"p99(rcpt)", "want METRIC<VALUE"},
		{"p99(rcpt)=20ms", "want METRIC<VALUE"},
		{"<20ms", "want METRIC<VALUE"},
		{"", "want METRIC<VALUE"},
	} {
		_, err := ParseThreshold(tc.in)
		if err == nil {
			t.Errorf("ParseThreshold(%q) accepted", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
			t.Errorf("ParseThreshold(%q): %q, want it to quote the input and say %q", tc.in, err, tc.want)
		}
	}
}

// thresholdResult is a result with known figures: mail 100 samples of exactly 1µs, rcpt 1..100 µs,
// connect from 65536 ns, the start of a bucket, up in steps of 640 ns, 1000 messages of which 10 failed, 990 delivered of 10000 octets over 2 s.
func thresholdResult(t *testing.T) (*Result, map[Phase][]int64) {
	t.Helper()
	rec := NewRecorder()
	samples := map[Phase][]int64{}
	for i := range int64(100) {
		for p, v := range map[Phase]int64{Mail: 1000, Rcpt: (i + 1) * 1000, Connect: 65536 + i*640} {
			rec.Record(p, v)
			samples[p] = append(samples[p], v)
		}
	}
	rec.Counts = Counts{Messages: 1000, Delivered: 990, Failed: 10, Recipients: 990, Bytes: 990 * 10000, Errors: 3}
	res := &Result{Kind: Kind, Schema: SchemaVersion, Start: time.Unix(1e9, 0), End: time.Unix(1e9+2, 0)}
	if err := res.Fill(rec); err != nil {
		t.Fatal(err)
	}
	return res, samples
}

func TestEvaluateThresholds(t *testing.T) {
	res, samples := thresholdResult(t)
	rcpt := exactHist(t, samples[Rcpt])
	connect := exactHist(t, samples[Connect])
	for _, tc := range []struct {
		expr    string
		pass    bool
		actual  float64
		problem string
	}{
		// Exactly representable latencies: the boundary is where < and <= differ.
		{"p99(mail)<1000ns", false, 1000, ""},
		{"p99(mail)<=1000ns", true, 1000, ""},
		{"p99(mail)<=1us", true, 1000, ""},
		{"p50(mail)<1.001us", true, 1000, ""},
		{"max(mail)<1us", false, 1000, ""},
		{"max(mail)<=1µs", true, 1000, ""},
		{"min(mail)>1us", false, 1000, ""},
		{"min(mail)>=1us", true, 1000, ""},
		{"mean(mail)<=1us", true, 1000, ""},
		{"mean(mail)<1us", false, 1000, ""},
		{"mean(mail)>999ns", true, 1000, ""},
		// rcpt is 1µs..100µs: p99 is the 99th sample, within the histogram's resolution.
		{"p99(rcpt)<100us", true, float64(rcpt.ValueAtPercentile(99)), ""},
		{"p99(rcpt)<98us", false, float64(rcpt.ValueAtPercentile(99)), ""},
		{"p50(rcpt)<=51us", true, float64(rcpt.ValueAtPercentile(50)), ""},
		{"p50(rcpt)<49us", false, float64(rcpt.ValueAtPercentile(50)), ""},
		{"max(rcpt)>=100us", true, float64(rcpt.Max()), ""},
		{"max(rcpt)<100us", false, float64(rcpt.Max()), ""},
		{"min(connect)>0s", true, float64(connect.Min()), ""},
		{"min(connect)>65536ns", false, float64(connect.Min()), ""},
		{"min(connect)>=65536ns", true, float64(connect.Min()), ""},
		// 10 of 1000 messages failed: 1%.
		{"errors<1%", false, 1, ""},
		{"errors<=1%", true, 1, ""},
		{"errors<0.1%", false, 1, ""},
		{"errors>0.5%", true, 1, ""},
		{"errors<10", false, 10, ""},
		{"errors<=10", true, 10, ""},
		{"failed<11", true, 10, ""},
		{"failed<1", false, 10, ""},
		// 990 delivered over 2 s: 495 msgs/s and 4.95 MB/s.
		{"msgs/s>495", false, 495, ""},
		{"msgs/s>=495", true, 495, ""},
		{"msgs/s>5000", false, 495, ""},
		{"MB/s>=4.95", true, 4.95, ""},
		{"MB/s>4.95", false, 4.95, ""},
		{"MB/s>=10", false, 4.95, ""},
		{"delivered>=990", true, 990, ""},
		{"delivered>990", false, 990, ""},
		{"delivered>=10000", false, 990, ""},
		// No samples fails, whatever the comparison.
		{"p99(bdat)<1h", false, 0, "no bdat samples"},
		{"max(txn)>=0s", false, 0, "no txn samples"},
	} {
		th, err := ParseThreshold(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		r := Evaluate(res, []Threshold{th})[0]
		if r.Pass != tc.pass || r.Actual != tc.actual || r.Problem != tc.problem || r.Threshold.Source != tc.expr {
			t.Errorf("%s: pass %v actual %v problem %q, want %v %v %q", tc.expr, r.Pass, r.Actual, r.Problem, tc.pass, tc.actual, tc.problem)
		}
		if Breached([]ThresholdResult{r}) == tc.pass {
			t.Errorf("%s: Breached is %v", tc.expr, !tc.pass)
		}
	}
	// Thresholds on messages with no messages sent fail, rather than pass on 0%.
	empty := &Result{Kind: Kind, Schema: SchemaVersion}
	for _, expr := range []string{"errors<1%", "p99(rcpt)<1s"} {
		r := Evaluate(empty, parseThresholds(t, expr))[0]
		if r.Pass || r.Problem == "" {
			t.Errorf("%s on an empty result: %+v", expr, r)
		}
	}
	if r := Evaluate(empty, parseThresholds(t, "errors<=0"))[0]; !r.Pass {
		t.Errorf("errors<=0 on an empty result: %+v", r)
	}
	// Several at once keep their order, and one failure breaches.
	rs := Evaluate(res, parseThresholds(t, "msgs/s>=495", "errors<1%", "delivered>=990"))
	if len(rs) != 3 || !rs[0].Pass || rs[1].Pass || !rs[2].Pass || !Breached(rs) {
		t.Errorf("%+v", rs)
	}
	if Breached(Evaluate(res, parseThresholds(t, "msgs/s>=495", "delivered>=990"))) || Breached(nil) {
		t.Error("passing thresholds breached")
	}
	// The rendering shows each with its figure in the threshold's unit.
	var buf bytes.Buffer
	if err := RenderText(&buf, res, RenderOptions{Thresholds: parseThresholds(t, "errors<1%", "msgs/s>=495", "p99(mail)<=1us", "p99(bdat)<1s")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"errors<1% │ 1.000% │ FAIL", "msgs/s>=495 │ 495.00 │ pass", "p99(mail)<=1us │ 1.00µs │ pass",
		"p99(bdat)<1s │ no bdat samples │ FAIL"} {
		if !strings.Contains(squeeze(buf.String()), want) {
			t.Errorf("the threshold table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestParsePercentiles(t *testing.T) {
	for in, want := range map[string][]float64{
		"50,90,99,99.9": {50, 90, 99, 99.9},
		"p50, p99.99":   {50, 99.99},
		"100":           {100},
		"99,,":          {99},
		" 0.1 ":         {0.1},
	} {
		got, err := ParsePercentiles(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParsePercentiles(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", ",", "0", "101", "-1", "abc", "50,x", "NaN", "inf", "p"} {
		if got, err := ParsePercentiles(in); err == nil {
			t.Errorf("ParsePercentiles(%q) = %v, want an error", in, got)
		}
	}
}

// ---- Compare ----

// cmpResult is a result with the given throughput, failures and rcpt samples.
func cmpResult(t *testing.T, msgsPerS, mbPerS float64, failed int64, rcpt ...int64) *Result {
	t.Helper()
	rec := NewRecorder()
	for _, v := range rcpt {
		rec.Record(Rcpt, v)
	}
	rec.Counts = Counts{Messages: 1000, Failed: failed, Delivered: 1000 - failed}
	res := &Result{Kind: Kind, Schema: SchemaVersion}
	if err := res.Fill(rec); err != nil {
		t.Fatal(err)
	}
	res.Throughput.MessagesPerS, res.Throughput.BytesPerS = msgsPerS, mbPerS*1e6
	return res
}

func cmpRow(t *testing.T, c *Comparison, metric string) ComparisonRow {
	t.Helper()
	for _, r := range c.Rows {
		if r.Metric == metric {
			return r
		}
	}
	t.Fatalf("no %q row", metric)
	return ComparisonRow{}
}

// renderedRow returns the table line of a metric, spaces squeezed.
func renderedRow(t *testing.T, table, metric string) string {
	t.Helper()
	for _, line := range strings.Split(squeeze(table), "\n") {
		if strings.HasPrefix(line, "│ "+metric+" │") {
			return line
		}
	}
	t.Fatalf("no %q line in:\n%s", metric, table)
	return ""
}

// With one run per side, the change is the percent difference, and better or worse follows the
// metric's direction: more msgs/s is better, more latency or failure is worse.
func TestCompareOneRunPerSide(t *testing.T) {
	base := cmpResult(t, 1000, 2, 10, 1000, 1000, 1000, 2000)
	newer := cmpResult(t, 1100, 1.5, 10, 1500, 1500, 1500, 1000)
	c, err := Compare([]string{"before", "after"}, [][]*Result{{base}, {newer}}, []float64{50})
	if err != nil {
		t.Fatal(err)
	}
	var metrics []string
	for _, r := range c.Rows {
		metrics = append(metrics, r.Metric)
	}
	if !slices.Equal(metrics, []string{"msgs/s", "MB/s", "failed", "rcpt p50", "rcpt max"}) {
		t.Errorf("rows %v", metrics)
	}
	for _, tc := range []struct {
		metric   string
		change   float64
		rendered string
	}{
		{"msgs/s", 10, "│ msgs/s │ 1000 │ 1100 │ +10.0% better │"},
		{"MB/s", -25, "│ MB/s │ 2 │ 1.50 │ -25.0% worse │"},
		{"failed", 0, "│ failed │ 1.000% │ 1.000% │ +0.0% │"},
		{"rcpt p50", 50, "│ rcpt p50 │ 1.00µs │ 1.50µs │ +50.0% worse │"},
		{"rcpt max", -25, "│ rcpt max │ 2.00µs │ 1.50µs │ -25.0% better │"},
	} {
		r := cmpRow(t, c, tc.metric)
		if math.Abs(r.Changes[1]-tc.change) > 1e-9 || r.Changes[0] != 0 || !r.Supported[1] {
			t.Errorf("%s: change %v supported %v, want %+.1f%%", tc.metric, r.Changes, r.Supported, tc.change)
		}
		var buf bytes.Buffer
		if err := RenderComparison(&buf, c, RenderOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := renderedRow(t, buf.String(), tc.metric); got != tc.rendered {
			t.Errorf("%s: rendered %q, want %q", tc.metric, got, tc.rendered)
		}
		if strings.Contains(buf.String(), "medians of the repeated runs") {
			t.Error("single runs are explained as medians")
		}
	}
	// Three sides: each is compared with the first.
	third := cmpResult(t, 900, 2, 10, 500)
	c, err = Compare([]string{"a", "b", "c"}, [][]*Result{{base}, {newer}, {third}}, []float64{50})
	if err != nil {
		t.Fatal(err)
	}
	if r := cmpRow(t, c, "msgs/s"); r.Changes[1] != 10 || r.Changes[2] != -10 {
		t.Errorf("three sides: %v", r.Changes)
	}
	var buf bytes.Buffer
	if err := RenderComparison(&buf, c, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := renderedRow(t, buf.String(), "rcpt p50"), "│ rcpt p50 │ 1.00µs │ 1.50µs │ +50.0% worse │ 500ns │ -50.0% better │"; got != want {
		t.Errorf("three sides: %q, want %q", got, want)
	}
	// A phase missing on the new side shows "-".
	noRcpt := cmpResult(t, 1000, 2, 10)
	c, err = Compare([]string{"a", "b"}, [][]*Result{{base}, {noRcpt}}, []float64{50})
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	RenderComparison(&buf, c, RenderOptions{})
	if got := renderedRow(t, buf.String(), "rcpt p50"); got != "│ rcpt p50 │ 1.00µs │ - │ - │" {
		t.Errorf("missing phase: %q", got)
	}
	// A change from nothing is no "+0.0%": failures appearing are worse, disappearing better.
	none, some := cmpResult(t, 1000, 2, 0, 1000), cmpResult(t, 1000, 2, 50, 1000)
	for _, tc := range []struct {
		sides [][]*Result
		want  string
	}{
		{[][]*Result{{none}, {some}}, "│ failed │ 0.000% │ 5.000% │ +Inf% worse │"},
		{[][]*Result{{some}, {none}}, "│ failed │ 5.000% │ 0.000% │ -100.0% better │"},
		{[][]*Result{{none}, {none}}, "│ failed │ 0.000% │ 0.000% │ +0.0% │"},
	} {
		c, err := Compare([]string{"a", "b"}, tc.sides, nil)
		if err != nil {
			t.Fatal(err)
		}
		buf.Reset()
		RenderComparison(&buf, c, RenderOptions{})
		if got := renderedRow(t, buf.String(), "failed"); got != tc.want {
			t.Errorf("failures: %q, want %q", got, tc.want)
		}
	}
	if _, err := Compare([]string{"a"}, [][]*Result{{base}}, nil); err == nil {
		t.Error("one side compared")
	}
}

// With several runs per side, the medians are compared, and a change is marked "~" exactly when
// the two sides' ranges overlap.
func TestCompareRepeatedRuns(t *testing.T) {
	side := func(rates ...float64) []*Result {
		var rs []*Result
		for _, r := range rates {
			rs = append(rs, cmpResult(t, r, 1, 0, 1000))
		}
		return rs
	}
	for _, tc := range []struct {
		name       string
		base, new  []float64
		median     [2]float64
		supported  bool
		renderedAs string
	}{
		{"overlap", []float64{1000, 1200, 1100}, []float64{1150, 1300, 1250}, [2]float64{1100, 1250}, false, "~ (+13.6%)"},
		{"apart, better", []float64{1000, 1200, 1100}, []float64{1300, 1400, 1350}, [2]float64{1100, 1350}, true, "+22.7% better"},
		{"apart, worse", []float64{1000, 1200, 1100}, []float64{800, 900, 990}, [2]float64{1100, 900}, true, "-18.2% worse"},
		{"touching ranges overlap", []float64{1000, 1200}, []float64{1200, 1400}, [2]float64{1100, 1300}, false, "~ (+18.2%)"},
		{"even counts: the middle two's mean", []float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}, [2]float64{2.5, 25}, true, "+900.0% better"},
		{"one baseline run inside the new range", []float64{1000}, []float64{900, 1300}, [2]float64{1000, 1100}, false, "~ (+10.0%)"},
		{"one baseline run outside it", []float64{1000}, []float64{1100, 1300}, [2]float64{1000, 1200}, true, "+20.0% better"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compare([]string{"base", "new"}, [][]*Result{side(tc.base...), side(tc.new...)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := cmpRow(t, c, "msgs/s")
			if r.Medians[0] != tc.median[0] || r.Medians[1] != tc.median[1] || r.Supported[1] != tc.supported {
				t.Errorf("medians %v supported %v, want %v %v", r.Medians, r.Supported[1], tc.median, tc.supported)
			}
			if !slices.Equal(r.Samples[0], tc.base) || !slices.Equal(r.Samples[1], tc.new) {
				t.Errorf("samples %v", r.Samples)
			}
			var buf bytes.Buffer
			if err := RenderComparison(&buf, c, RenderOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := renderedRow(t, buf.String(), "msgs/s"); !strings.HasSuffix(got, "│ "+tc.renderedAs+" │") {
				t.Errorf("rendered %q, want the change %q", got, tc.renderedAs)
			}
			if !strings.Contains(buf.String(), `medians of the repeated runs; "~": the runs' ranges overlap`) {
				t.Errorf("no explanation of the medians and \"~\":\n%s", buf.String())
			}
			// The same latency on every run: no change, and identical ranges overlap.
			if r := cmpRow(t, c, "rcpt p50"); r.Changes[1] != 0 || r.Supported[1] {
				t.Errorf("rcpt p50: %+v", r)
			}
		})
	}
}

// A Markdown comparison is a Markdown table.
func TestCompareMarkdown(t *testing.T) {
	c, err := Compare([]string{"a", "b"}, [][]*Result{{cmpResult(t, 100, 1, 0, 1000)}, {cmpResult(t, 200, 1, 0, 1000)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := RenderComparison(&buf, c, RenderOptions{Markdown: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(squeeze(buf.String()), "| msgs/s | 100 | 200 | +100.0% better |") || strings.Contains(buf.String(), "│") {
		t.Errorf("markdown comparison:\n%s", buf.String())
	}
}

// ---- Decode refusals not covered by results_test.go ----

func TestDecodeRefusesTruncatedAndTrailing(t *testing.T) {
	res := buildGolden(t, false).res
	var buf bytes.Buffer
	if err := res.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	for _, n := range []int{1, len(full) / 3, len(full) / 2, len(full) - 3} {
		got, err := Decode(bytes.NewReader(full[:n]))
		if err == nil || got != nil {
			t.Errorf("a file cut to %d of %d bytes decoded", n, len(full))
			continue
		}
		if !strings.Contains(err.Error(), "unexpected end of JSON input") {
			t.Errorf("cut to %d bytes: %q does not say the file ends early", n, err)
		}
	}
	// A result followed by anything else, or by a second result, is not one result file.
	for _, tail := range []string{"garbage", string(full)} {
		if _, err := Decode(io.MultiReader(bytes.NewReader(full), strings.NewReader(tail))); err == nil {
			t.Errorf("a result followed by %.10q decoded", tail)
		}
	}
	// Kind and schema are checked before anything else: a foreign file with a huge unrelated body
	// is refused by its kind.
	if _, err := Decode(strings.NewReader(`{"kind":"vegeta-report","schema":1,"phases":"nonsense"}`)); err == nil ||
		!strings.Contains(err.Error(), `"vegeta-report"`) {
		t.Errorf("foreign kind: %v", err)
	}
}

// Thresholds take phase names in any case, and refuse what can never be meant: a negative
// latency, an infinite number.
func TestThresholdEdges(t *testing.T) {
	for _, s := range []string{"p99(RCPT)<20ms", "Max(Body)<1s"} {
		if _, err := ParseThreshold(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"p99(rcpt)>-1s", "errors<inf", "msgs/s>+Inf", "max(txn)<-5ms"} {
		if _, err := ParseThreshold(s); err == nil {
			t.Errorf("%s was accepted", s)
		}
	}
}

// A result file cut short is called damaged, not foreign.
func TestDecodeDamaged(t *testing.T) {
	var buf bytes.Buffer
	res := &Result{Kind: Kind, Schema: SchemaVersion, RunID: "r"}
	if err := res.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	_, err := Decode(bytes.NewReader(buf.Bytes()[:buf.Len()/2]))
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a truncated file: %v, want an error saying it is damaged", err)
	}
	_, err = Decode(strings.NewReader(`{"some": "other JSON"`))
	if err == nil || !strings.Contains(err.Error(), "not a smtpbench result file") {
		t.Errorf("foreign JSON: %v", err)
	}
}

// Several results make one CSV table: one header, each row naming its run.
func TestCSVSeveralResults(t *testing.T) {
	mk := func(id string) *Result {
		rec := NewRecorder()
		for i := range 10 {
			rec.Record(Mail, int64(1000+i))
		}
		res := &Result{Kind: Kind, Schema: SchemaVersion, RunID: id, Start: time.Unix(0, 0), End: time.Unix(1, 0)}
		if err := res.Fill(rec); err != nil {
			t.Fatal(err)
		}
		return res
	}
	var buf bytes.Buffer
	if err := RenderCSV(&buf, []*Result{mk("a"), mk("b")}, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "run,phase,") ||
		!strings.HasPrefix(lines[1], "a,mail,10,") || !strings.HasPrefix(lines[2], "b,mail,10,") {
		t.Errorf("CSV of two results:\n%s", buf.String())
	}
}
