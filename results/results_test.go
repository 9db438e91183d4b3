package results

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// replyMap and errorMap read a recorder's counts for comparison.
func replyMap(r *Recorder, p Phase) map[ReplyKey]int64 {
	m := map[ReplyKey]int64{}
	r.Replies(p, func(k ReplyKey, n int64) { m[k] += n })
	return m
}

func errorMap(r *Recorder, p Phase) map[string]int64 {
	m := map[string]int64{}
	r.Errors(p, func(s string, n int64) { m[s] += n })
	return m
}

// sameRecorders reports how a and b differ, or "" when they hold the same data.
func sameRecorders(a, b *Recorder) string {
	var diffs []string
	for p := range NumPhases {
		ha, hb := a.Histogram(p), b.Histogram(p)
		ca, cb := int64(0), int64(0)
		if ha != nil {
			ca = ha.TotalCount()
		}
		if hb != nil {
			cb = hb.TotalCount()
		}
		switch {
		case ca != cb:
			diffs = append(diffs, p.String()+": counts differ")
		case ca > 0 && !ha.Equals(hb):
			diffs = append(diffs, p.String()+": histograms differ")
		}
		if !reflect.DeepEqual(replyMap(a, p), replyMap(b, p)) {
			diffs = append(diffs, p.String()+": replies differ")
		}
		if !reflect.DeepEqual(errorMap(a, p), errorMap(b, p)) {
			diffs = append(diffs, p.String()+": errors differ")
		}
	}
	if a.Counts != b.Counts {
		diffs = append(diffs, "counts differ")
	}
	if a.Clamped != b.Clamped {
		diffs = append(diffs, "clamped differ")
	}
	return strings.Join(diffs, "; ")
}

var testKeys = []ReplyKey{
	{Code: 250, Enhanced: [3]uint16{2, 1, 0}}, {Code: 250, Enhanced: [3]uint16{2, 0, 0}}, {Code: 250},
	{Code: 354}, {Code: 452, Enhanced: [3]uint16{4, 5, 3}}, {Code: 550, Enhanced: [3]uint16{5, 1, 1}},
	{Code: 421, Enhanced: [3]uint16{4, 3, 2}},
}
var testReasons = []string{"timeout", "closed", "reset", "protocol"}

// fill records n random samples, replies and errors into the recorders, spreading them with pick.
func fillRandom(rng *rand.Rand, n int, pick func(i int) *Recorder) {
	for i := range n {
		r := pick(i)
		p := Phase(rng.IntN(int(NumPhases)))
		// Latencies from 1µs to hours, and now and then out of range or negative.
		var ns int64
		switch rng.IntN(50) {
		case 0:
			ns = histHighest + rng.Int64N(1e12)
		case 1:
			ns = -rng.Int64N(1000)
		default:
			ns = int64(1e3 * (1 + rng.ExpFloat64()*1e3))
		}
		r.Record(p, ns)
		r.Reply(p, testKeys[rng.IntN(len(testKeys))])
		if rng.IntN(10) == 0 {
			r.Error(p, testReasons[rng.IntN(len(testReasons))])
		}
		r.Counts.Messages++
		r.Counts.Bytes += int64(rng.IntN(5000))
		if rng.IntN(3) > 0 {
			r.Counts.Delivered++
		} else {
			r.Counts.Failed++
		}
	}
}

func TestRecorderRecord(t *testing.T) {
	r := NewRecorder()
	for p := range NumPhases {
		if r.Histogram(p) != nil {
			t.Fatalf("%v has a histogram before any sample", p)
		}
	}
	r.Record(Mail, 1000)
	r.Record(Mail, 2000)
	r.Record(Mail, -5) // recorded as 0
	h := r.Histogram(Mail)
	if h == nil || h.TotalCount() != 3 || h.Min() != 0 || !h.ValuesAreEquivalent(h.Max(), 2000) {
		t.Fatalf("mail histogram: count %d min %d max %d", h.TotalCount(), h.Min(), h.Max())
	}
	if r.Histogram(Rcpt) != nil {
		t.Error("recording in mail made a rcpt histogram")
	}
	r.Record(Body, histHighest)
	if r.Clamped != 0 {
		t.Errorf("one hour exactly was clamped")
	}
	r.Record(Body, histHighest+1)
	r.Record(Body, 1<<62)
	if hb := r.Histogram(Body); r.Clamped != 2 || hb.TotalCount() != 3 || !hb.ValuesAreEquivalent(hb.Max(), histHighest) {
		t.Errorf("clamped %d, body count %d max %d", r.Clamped, hb.TotalCount(), hb.Max())
	}
}

func TestRecorderRepliesAndErrors(t *testing.T) {
	r := NewRecorder()
	k1, k2 := testKeys[0], testKeys[5]
	r.Reply(Rcpt, k1)
	r.Reply(Rcpt, k2)
	r.Reply(Rcpt, k1)
	r.Reply(Mail, k1)
	if got := replyMap(r, Rcpt); !reflect.DeepEqual(got, map[ReplyKey]int64{k1: 2, k2: 1}) {
		t.Errorf("rcpt replies %v", got)
	}
	var order []ReplyKey
	r.Replies(Rcpt, func(k ReplyKey, _ int64) { order = append(order, k) })
	if !slices.Equal(order, []ReplyKey{k1, k2}) {
		t.Errorf("replies in order %v, want first seen first", order)
	}
	if got := replyMap(r, Mail); !reflect.DeepEqual(got, map[ReplyKey]int64{k1: 1}) {
		t.Errorf("mail replies %v", got)
	}
	if len(replyMap(r, Data)) != 0 {
		t.Error("data has replies")
	}
	r.Error(Connect, "refused")
	r.Error(Connect, "refused")
	r.Error(Body, "timeout")
	if r.Counts.Errors != 3 {
		t.Errorf("Counts.Errors %d, want 3", r.Counts.Errors)
	}
	if got := errorMap(r, Connect); !reflect.DeepEqual(got, map[string]int64{"refused": 2}) {
		t.Errorf("connect errors %v", got)
	}
	if got := errorMap(r, Body); !reflect.DeepEqual(got, map[string]int64{"timeout": 1}) {
		t.Errorf("body errors %v", got)
	}
}

// Recording into two recorders and merging them gives what recording everything into one gives.
func TestRecorderMergeEqualsOne(t *testing.T) {
	for seed := range uint64(2) {
		all, a, b := NewRecorder(), NewRecorder(), NewRecorder()
		// The same random stream twice: once split between a and b, once all into one.
		fillRandom(rand.New(rand.NewPCG(seed, 1)), 3000, func(i int) *Recorder {
			if i%3 == 0 {
				return a
			}
			return b
		})
		fillRandom(rand.New(rand.NewPCG(seed, 1)), 3000, func(int) *Recorder { return all })

		merged := NewRecorder()
		merged.Merge(a)
		merged.Merge(b)
		if d := sameRecorders(merged, all); d != "" {
			t.Errorf("seed %d: merge of two differs from one: %s", seed, d)
		}
		// Merging into a recorder that already holds data.
		a.Merge(b)
		if d := sameRecorders(a, all); d != "" {
			t.Errorf("seed %d: a.Merge(b) differs from one: %s", seed, d)
		}
		// Percentiles and counts agree as well.
		for p := range NumPhases {
			hm, ha := merged.Histogram(p), all.Histogram(p)
			if hm == nil || ha == nil {
				continue
			}
			pcts := []float64{50, 90, 99, 99.9, 100}
			if !slices.Equal(hm.ValueAtPercentilesSlice(pcts), ha.ValueAtPercentilesSlice(pcts)) || hm.Mean() != ha.Mean() {
				t.Errorf("seed %d, %v: percentiles differ", seed, p)
			}
		}
		// Merging an empty recorder changes nothing.
		merged.Merge(NewRecorder())
		if d := sameRecorders(merged, all); d != "" {
			t.Errorf("seed %d: merging an empty recorder: %s", seed, d)
		}
	}
}

func TestRecorderMergeSkipsEmptyHistograms(t *testing.T) {
	o := NewRecorder()
	o.Record(Quit, 5)
	o.Reset() // a histogram with no samples
	r := NewRecorder()
	r.Merge(o)
	if r.Histogram(Quit) != nil {
		t.Error("merging an empty histogram made one")
	}
	res := &Result{}
	if err := res.Fill(r); err != nil || len(res.Phases) != 0 {
		t.Errorf("phases %+v, %v", res.Phases, err)
	}
}

func TestRecorderReset(t *testing.T) {
	r := NewRecorder()
	fillRandom(rand.New(rand.NewPCG(9, 9)), 500, func(int) *Recorder { return r })
	r.Clamped = 3
	hists := map[Phase]*hdrhistogram.Histogram{}
	for p := range NumPhases {
		hists[p] = r.Histogram(p)
	}
	r.Reset()
	if d := sameRecorders(r, NewRecorder()); d != "" {
		t.Errorf("after Reset: %s", d)
	}
	for p := range NumPhases {
		if h := r.Histogram(p); h != hists[p] || h != nil && h.TotalCount() != 0 {
			t.Errorf("%v: Reset did not keep its histogram empty and in place", p)
		}
	}
	res := &Result{}
	if err := res.Fill(r); err != nil || len(res.Phases) != 0 || res.Totals != (Counts{}) {
		t.Errorf("a reset recorder fills %+v, %v", res, err)
	}
	// It records again like a new one.
	r.Record(Mail, 42)
	r.Reply(Mail, testKeys[0])
	if r.Histogram(Mail).TotalCount() != 1 || replyMap(r, Mail)[testKeys[0]] != 1 {
		t.Error("recording after Reset")
	}
}

func TestFill(t *testing.T) {
	r := NewRecorder()
	for i := range 100 {
		r.Record(Rcpt, int64(1000*(i+1)))
	}
	r.Reply(Rcpt, ReplyKey{Code: 550, Enhanced: [3]uint16{5, 1, 1}})
	r.Reply(Rcpt, ReplyKey{Code: 250, Enhanced: [3]uint16{2, 1, 5}})
	r.Reply(Rcpt, ReplyKey{Code: 250})
	r.Reply(Rcpt, ReplyKey{Code: 452, Enhanced: [3]uint16{4, 5, 3}})
	r.Record(Connect, 7)
	r.Error(Connect, "timeout")
	r.Error(Connect, "refused")
	r.Reply(Quit, ReplyKey{Code: 221}) // replies but no samples
	r.Counts = Counts{Messages: 10, Delivered: 8, Failed: 2, Recipients: 16, Bytes: 8000, Sessions: 3, Errors: 2}
	r.Clamped = 1
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res := &Result{Start: start, End: start.Add(2 * time.Second)}
	if err := res.Fill(r); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range res.Phases {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"connect", "rcpt", "quit"}) {
		t.Fatalf("phases %v", names)
	}
	rc := res.Phase("rcpt")
	if rc.Count != 100 || !r.Histogram(Rcpt).ValuesAreEquivalent(rc.Min, 1000) || !r.Histogram(Rcpt).ValuesAreEquivalent(rc.Max, 100000) ||
		rc.P50 != r.Histogram(Rcpt).ValueAtPercentile(50) || rc.P99 != r.Histogram(Rcpt).ValueAtPercentile(99) || rc.Hist == "" {
		t.Errorf("rcpt summary %+v", rc)
	}
	wantReplies := []ReplyCount{{250, "", 1}, {250, "2.1.5", 1}, {452, "4.5.3", 1}, {550, "5.1.1", 1}}
	if !slices.Equal(rc.Replies, wantReplies) {
		t.Errorf("rcpt replies %v, want %v (sorted by code, then enhanced code)", rc.Replies, wantReplies)
	}
	if ce := res.Phase("connect").Errors; !slices.Equal(ce, []ErrorCount{{"refused", 1}, {"timeout", 1}}) {
		t.Errorf("connect errors %v", ce)
	}
	if q := res.Phase("quit"); q.Count != 0 || q.Hist != "" || len(q.Replies) != 1 {
		t.Errorf("quit %+v", q)
	}
	if res.Totals != r.Counts || res.Clamped != 1 {
		t.Errorf("totals %+v clamped %d", res.Totals, res.Clamped)
	}
	if tp := res.Throughput; tp.Seconds != 2 || tp.MessagesPerS != 4 || tp.RecipientsPer != 8 || tp.BytesPerS != 4000 {
		t.Errorf("throughput %+v", tp)
	}
	// A zero-length run has no rates rather than infinite ones.
	res = &Result{Start: start, End: start}
	if err := res.Fill(r); err != nil || res.Throughput != (Throughput{}) {
		t.Errorf("throughput of an empty interval %+v", res.Throughput)
	}
	if res.Phase("nonesuch") != nil {
		t.Error("Phase of an unknown name")
	}
}

func TestSummarizePhase(t *testing.T) {
	pr, err := SummarizePhase("mail", nil)
	if err != nil || !reflect.DeepEqual(pr, PhaseResult{Name: "mail"}) {
		t.Errorf("nil histogram: %+v %v", pr, err)
	}
	pr, err = SummarizePhase("mail", NewHistogram())
	if err != nil || !reflect.DeepEqual(pr, PhaseResult{Name: "mail"}) {
		t.Errorf("empty histogram: %+v %v", pr, err)
	}
	h := NewHistogram()
	for v := int64(1); v <= 10000; v++ {
		h.RecordValue(v * 1000)
	}
	pr, err = SummarizePhase("body", h)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Count != 10000 || pr.P50 != h.ValueAtPercentile(50) || pr.P90 != h.ValueAtPercentile(90) ||
		pr.P999 != h.ValueAtPercentile(99.9) || pr.P9999 != h.ValueAtPercentile(99.99) || pr.Mean != h.Mean() {
		t.Errorf("summary %+v", pr)
	}
	back, err := pr.Histogram()
	if err != nil || !back.Equals(h) {
		t.Errorf("the encoded histogram does not decode to the original: %v", err)
	}
	if empty, err := (&PhaseResult{Name: "x"}).Histogram(); err != nil || empty.TotalCount() != 0 {
		t.Errorf("a phase without a histogram: %v %v", empty, err)
	}
}

func TestPhaseNames(t *testing.T) {
	for p := range NumPhases {
		back, err := ParsePhase(p.String())
		if err != nil || back != p {
			t.Errorf("%v does not round-trip: %v %v", p, back, err)
		}
	}
	if Phase(99).String() != "phase99" {
		t.Errorf("Phase(99) = %q", Phase(99).String())
	}
	if _, err := ParsePhase("teardown"); err == nil || !strings.Contains(err.Error(), "teardown") {
		t.Errorf("ParsePhase(teardown): %v", err)
	}
}

// testResult is a result with every field set.
func testResult(t *testing.T) (*Result, *Recorder) {
	t.Helper()
	rec := NewRecorder()
	fillRandom(rand.New(rand.NewPCG(3, 4)), 2000, func(int) *Recorder { return rec })
	start := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	h := NewHistogram()
	h.RecordValue(12345)
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatal(err)
	}
	res := &Result{
		Kind: Kind, Schema: SchemaVersion, Tool: "smtpbench test", RunID: "20260304T050607.891",
		Start: start, End: start.Add(1500 * time.Millisecond), Target: "127.0.0.1:2525",
		Description: "4 sessions, 1 KiB body, 1 recipient, PIPELINING+DATA",
		Config:      json.RawMessage(`{"target":{"Network":"tcp","Address":"127.0.0.1:2525"},"sessions":4,"nested":{"a":[1,2,3]}}`),
		Host:        Host{Hostname: "bench1", CPUs: 8, GOMAXPROCS: 8, Go: "go1.26", OS: "linux", Arch: "amd64"},
		StopReason:  "message count reached",
		Notes:       []string{"a note", "another"},
		Timeline: []Interval{{Offset: 1, Messages: 10, Delivered: 9, Failed: 1, Errors: 1, TxnP50: 100, TxnP99: 200, TxnHist: string(enc)},
			{Offset: 1.5, Messages: 5, Delivered: 5}},
	}
	if err := res.Fill(rec); err != nil {
		t.Fatal(err)
	}
	return res, rec
}

// equalResults compares two results, the config by its JSON meaning and times by instant.
func equalResults(t *testing.T, got, want *Result) {
	t.Helper()
	var gc, wc any
	if err := json.Unmarshal(got.Config, &gc); err != nil {
		t.Fatalf("config %s: %v", got.Config, err)
	}
	json.Unmarshal(want.Config, &wc)
	if !reflect.DeepEqual(gc, wc) {
		t.Errorf("config %s, want %s", got.Config, want.Config)
	}
	if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
		t.Errorf("times %v %v, want %v %v", got.Start, got.End, want.Start, want.End)
	}
	g, w := *got, *want
	g.Config, w.Config = nil, nil
	g.Start, g.End = w.Start, w.End
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		t.Errorf("results differ:\n got %s\nwant %s", gj, wj)
	}
}

func TestResultRoundTrip(t *testing.T) {
	res, rec := testResult(t)
	var buf bytes.Buffer
	if err := res.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	equalResults(t, back, res)
	// The histograms are lossless: each phase decodes to what was recorded.
	for _, pr := range back.Phases {
		p, err := ParsePhase(pr.Name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := pr.Histogram()
		if err != nil {
			t.Fatal(err)
		}
		if want := rec.Histogram(p); want != nil && !h.Equals(want) {
			t.Errorf("%s: the decoded histogram differs from the recorded one", pr.Name)
		}
	}
	// And a recorder rebuilt from the file holds what was recorded.
	again, err := back.Recorder()
	if err != nil {
		t.Fatal(err)
	}
	if d := sameRecorders(again, rec); d != "" {
		t.Errorf("recorder rebuilt from the file: %s", d)
	}
	// Encoding the decoded result gives the same bytes.
	var buf2 bytes.Buffer
	if err := back.Encode(&buf2); err != nil || !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
		t.Errorf("re-encoding differs (%v):\n%s\n%s", err, buf.Bytes(), buf2.Bytes())
	}
}

func TestDecodeRefuses(t *testing.T) {
	res, _ := testResult(t)
	valid := func(mod func(m map[string]any)) string {
		var buf bytes.Buffer
		res.Encode(&buf)
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		mod(m)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	hist := res.Phases[0].Hist
	raw, err := base64.StdEncoding.DecodeString(hist)
	if err != nil {
		t.Fatal(err)
	}
	setHist := func(s string) func(m map[string]any) {
		return func(m map[string]any) { m["phases"].([]any)[1].(map[string]any)["histogram"] = s }
	}
	secondPhase := res.Phases[1].Name
	for _, tc := range []struct {
		name, in string
		want     []string // parts of the error
	}{
		{"not JSON", "hello", []string{"not a smtpbench result file"}},
		{"empty", "", []string{"not a smtpbench result file"}},
		{"a JSON array", "[1,2,3]", []string{"not a smtpbench result file"}},
		{"another kind", `{"kind":"k6-summary","schema":1}`, []string{"not a smtpbench result file", `"k6-summary"`}},
		{"no kind", `{"schema":1,"phases":[]}`, []string{"not a smtpbench result file", `kind ""`}},
		{"newer schema", `{"kind":"smtpbench-result","schema":2}`, []string{"schema version 2", "reads version 1"}},
		{"older schema", `{"kind":"smtpbench-result","schema":0}`, []string{"schema version 0", "reads version 1"}},
		{"no schema", `{"kind":"smtpbench-result"}`, []string{"schema version none"}},
		{"schema not a number", `{"kind":"smtpbench-result","schema":"1"}`, []string{"not a smtpbench result file"}},
		{"phases not a list", valid(func(m map[string]any) { m["phases"] = "many" }), []string{"corrupt result file"}},
		{"totals not an object", valid(func(m map[string]any) { m["totals"] = 3 }), []string{"corrupt result file"}},
		{"histogram not base64", valid(setHist("!!! not base64 !!!")), []string{"corrupt histogram", secondPhase}},
		{"histogram too short", valid(setHist(base64.StdEncoding.EncodeToString(raw[:5]))), []string{"corrupt histogram", secondPhase}},
		{"histogram truncated", valid(setHist(base64.StdEncoding.EncodeToString(raw[:len(raw)/2]))), []string{"corrupt histogram", secondPhase}},
		{"histogram of another format", valid(setHist(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")))), []string{"corrupt histogram", secondPhase}},
		{"timeline histogram corrupt", valid(func(m map[string]any) {
			m["timeline"].([]any)[0].(map[string]any)["txn_histogram"] = "AAAA"
		}), []string{"corrupt histogram", "timeline"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(strings.NewReader(tc.in))
			if err == nil {
				t.Fatal("decoded without an error")
			}
			if got != nil {
				t.Error("a result with the error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// No damage to a histogram makes Decode panic: it returns an error or a histogram.
func TestDecodeDamagedHistogramsDoesNotPanic(t *testing.T) {
	res, _ := testResult(t)
	raw, err := base64.StdEncoding.DecodeString(res.Phases[0].Hist)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		b := bytes.Clone(raw)
		switch i % 3 {
		case 0:
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		case 1:
			b = b[:rng.IntN(len(b))]
		case 2:
			for range 1 + rng.IntN(4) {
				b[rng.IntN(min(len(b), 40))] = byte(rng.IntN(256))
			}
		}
		c := Result{Kind: Kind, Schema: SchemaVersion, Phases: []PhaseResult{{Name: "mail", Count: 1,
			Hist: base64.StdEncoding.EncodeToString(b)}}}
		var buf bytes.Buffer
		c.Encode(&buf)
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("damage %d (% x): Decode panicked: %v", i, b[:min(len(b), 24)], p)
				}
			}()
			Decode(&buf)
		}()
	}
}

func TestReadFileErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.json")
	os.WriteFile(path, []byte(`{"kind":"other"}`), 0o644)
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "other") {
		t.Errorf("ReadFile: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.json")
	res, _ := testResult(t)
	if err := WriteFile(path, res); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"run.json"}) {
		t.Errorf("directory holds %v: a temporary file was left", names)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v %v", fi.Mode(), err)
	}
	back, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	equalResults(t, back, res)

	// An existing file is replaced.
	res2, _ := testResult(t)
	res2.RunID, res2.Notes = "second", nil
	if err := WriteFile(path, res2); err != nil {
		t.Fatal(err)
	}
	back, err = ReadFile(path)
	if err != nil || back.RunID != "second" || back.Notes != nil {
		t.Errorf("after the second write: %v %v", back.RunID, err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"run.json"}) {
		t.Errorf("directory holds %v", names)
	}

	// A write that fails half-way leaves the old file and no temporary one.
	before, _ := os.ReadFile(path)
	err = WriteFileAtomic(path, func(w io.Writer) error {
		w.Write([]byte(`{"kind": "smtpbench-res`))
		return errors.New("disk on fire")
	})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("failed write: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("a failed write changed the file")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"run.json"}) {
		t.Errorf("directory holds %v after a failed write", names)
	}

	// A directory that does not exist.
	if err := WriteFile(filepath.Join(dir, "no", "such", "dir.json"), res); err == nil {
		t.Error("writing into a missing directory succeeded")
	}

	// A bare file name goes in the current directory.
	sub := t.TempDir()
	t.Chdir(sub)
	if err := WriteFile("bare.json", res); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, sub); !slices.Equal(names, []string{"bare.json"}) {
		t.Errorf("directory holds %v", names)
	}
}

func TestFormatNs(t *testing.T) {
	for _, tc := range []struct {
		ns   int64
		want string
	}{
		{0, "0ns"},
		{1, "1ns"},
		{850, "850ns"},
		{999, "999ns"},
		{1000, "1.00µs"},
		{1234, "1.23µs"},
		{9_990, "9.99µs"},
		{9_999, "10.0µs"},
		{10_000, "10.0µs"},
		{45_200, "45.2µs"},
		{99_940, "99.9µs"},
		{99_999, "100µs"},
		{123_456, "123µs"},
		{999_400, "999µs"},
		{999_999, "1.00ms"},
		{1_000_000, "1.00ms"},
		{12_300_000, "12.3ms"},
		{999_999_999, "1.00s"},
		{1_230_000_000, "1.23s"},
		{59_990_000_000, "60.0s"},
		{3600e9, "3600s"},
	} {
		if got := FormatNs(tc.ns); got != tc.want {
			t.Errorf("FormatNs(%d) = %q, want %q", tc.ns, got, tc.want)
		}
	}
}
