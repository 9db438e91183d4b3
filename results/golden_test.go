package results

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// update rewrites the golden files: go test ./results -run Golden -update. Review the diff of
// testdata/ before committing it: the goldens are what the renderings are held to.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/ instead of comparing with them")

// goldenStart is the fixed start of the golden run.
var goldenStart = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)

// goldenRun is a deterministic result and the raw samples it was built from, so that tests can
// check the renderings against histograms built independently of Recorder and Fill.
type goldenRun struct {
	res     *Result
	samples map[Phase][]int64
}

// goldenRNG draws only from the PCG source's Uint64, whose output is fixed by its algorithm, so
// the samples (and the goldens) do not depend on how a Go release derives other distributions.
type goldenRNG struct{ src *rand.PCG }

// between returns a value in [lo, hi).
func (g goldenRNG) between(lo, hi int64) int64 { return lo + int64(g.src.Uint64()%uint64(hi-lo)) }

// chance reports true once in n.
func (g goldenRNG) chance(n uint64) bool { return g.src.Uint64()%n == 0 }

// buildGolden records a small closed-model run (400 messages, 2 recipients each, 4 sessions and
// one reconnect) into a recorder seeded with fixed values, and builds its Result with fixed times,
// host, config, notes and a three-interval timeline. open turns it into an open-model run with
// retries and a warm-up, so the summary shows its extra columns.
func buildGolden(t *testing.T, open bool) goldenRun {
	t.Helper()
	goldenMu.Lock()
	defer goldenMu.Unlock()
	if r, ok := goldenCache[open]; ok {
		return r
	}
	r := buildGoldenRun(t, open)
	goldenCache[open] = r
	return r
}

// The golden runs are built once: no test changes them.
var (
	goldenMu    sync.Mutex
	goldenCache = map[bool]goldenRun{}
)

func buildGoldenRun(t *testing.T, open bool) goldenRun {
	t.Helper()
	g := goldenRNG{rand.NewPCG(2026, 11)}
	rec := NewRecorder()
	samples := map[Phase][]int64{}
	record := func(r *Recorder, p Phase, ns int64) {
		r.Record(p, ns)
		samples[p] = append(samples[p], ns)
	}
	reply := func(p Phase, code uint16, enh ...uint16) {
		k := ReplyKey{Code: code}
		copy(k.Enhanced[:], enh)
		rec.Reply(p, k)
	}
	// Per-interval recorders for the timeline's txn histograms: messages 0-159, 160-319, 320-399.
	intervals := []*Recorder{NewRecorder(), NewRecorder(), NewRecorder()}
	ivCounts := make([]Counts, 3)

	for range 5 { // 4 sessions and one that reconnected
		record(rec, Connect, g.between(80_000, 400_000))
		record(rec, Greeting, g.between(20_000, 90_000))
		record(rec, EHLO, g.between(30_000, 120_000))
		record(rec, Quit, g.between(15_000, 60_000))
		record(rec, Session, g.between(400_000_000, 2_400_000_000))
		reply(Greeting, 220)
		reply(EHLO, 250)
		reply(Quit, 221, 2, 0, 0)
		rec.Counts.Sessions++
	}
	rec.Error(Connect, "refused") // one dial failed before the reconnect
	for m := range 400 {
		iv := min(m/160, 2)
		record(rec, Mail, g.between(40_000, 900_000))
		reply(Mail, 250, 2, 1, 0)
		accepted := int64(0)
		for range 2 {
			record(rec, Rcpt, g.between(50_000, 1_800_000))
			switch {
			case g.chance(40):
				reply(Rcpt, 550, 5, 1, 1)
			case g.chance(60):
				reply(Rcpt, 452, 4, 5, 3)
			default:
				reply(Rcpt, 250, 2, 1, 5)
				accepted++
			}
		}
		rec.Counts.Messages++
		ivCounts[iv].Messages++
		if accepted == 0 {
			rec.Counts.Failed++
			ivCounts[iv].Failed++
			continue
		}
		record(rec, Data, g.between(30_000, 700_000))
		reply(Data, 354)
		body := g.between(200_000, 6_000_000)
		if g.chance(50) {
			body = g.between(20_000_000, 250_000_000) // a slow tail
		}
		record(rec, Body, body)
		txn := body + g.between(300_000, 3_000_000)
		record(rec, Txn, txn)
		intervals[iv].Record(Txn, txn)
		if m == 77 || m == 311 {
			rec.Error(Body, "timeout")
			rec.Counts.Failed++
			ivCounts[iv].Failed++
			ivCounts[iv].Errors++
			continue
		}
		reply(Body, 250, 2, 0, 0)
		rec.Counts.Delivered++
		rec.Counts.Recipients += accepted
		rec.Counts.Bytes += 1400
		ivCounts[iv].Delivered++
	}
	ivCounts[0].Errors++ // the refused dial
	if open {
		for range 400 {
			record(rec, Response, g.between(500_000, 9_000_000))
			record(rec, Sched, g.between(1_000, 90_000))
		}
		rec.Counts.Retries, rec.Counts.Deferred = 7, 2
		rec.Counts.Scheduled, rec.Counts.Late, rec.Counts.Dropped = 450, 31, 3
	}

	res := &Result{
		Kind: Kind, Schema: SchemaVersion, Tool: "smtpbench v0.0.0-golden", RunID: "20260203T040506.000",
		Start: goldenStart, End: goldenStart.Add(2500 * time.Millisecond), Target: "127.0.0.1:2525",
		Description: "4 sessions, 1 KiB body, 2 recipients, PIPELINING+DATA",
		Config:      json.RawMessage(`{"target":{"Network":"tcp","Address":"127.0.0.1:2525"},"sessions":4,"messages":400,"size":1024,"recipients":2,"seed":1,"run_id":"20260203T040506.000"}`),
		Host:        Host{Hostname: "golden-host", CPUs: 8, GOMAXPROCS: 8, Go: "go1.26.0", OS: "linux", Arch: "amd64"},
		StopReason:  "message count reached",
		Notes:       []string{"PIPELINING: mail, rcpt and data replies are timed from the single write of their command group"},
	}
	if open {
		res.Description = "4 sessions, 1 KiB body, 2 recipients, PIPELINING+DATA, 180 msgs/s"
		res.MeasuredFrom = goldenStart.Add(500 * time.Millisecond)
		res.Throughput.TargetPerS = 180
		res.StopReason = "schedule done"
	}
	for i, off := range []float64{1, 2, 2.5} {
		iv := Interval{Offset: off, Messages: ivCounts[i].Messages, Delivered: ivCounts[i].Delivered,
			Failed: ivCounts[i].Failed, Errors: ivCounts[i].Errors}
		if h := intervals[i].Histogram(Txn); h != nil {
			iv.TxnP50, iv.TxnP99 = h.ValueAtPercentile(50), h.ValueAtPercentile(99)
			enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
			if err != nil {
				t.Fatal(err)
			}
			iv.TxnHist = string(enc)
		}
		res.Timeline = append(res.Timeline, iv)
	}
	if err := res.Fill(rec); err != nil {
		t.Fatal(err)
	}
	return goldenRun{res: res, samples: samples}
}

// goldenThresholds are a mix that pass and fail, including one on a phase with no samples.
var goldenThresholds = []string{
	"p99(rcpt)<2ms", "p99.9(body)<=100ms", "mean(mail)<2ms", "min(connect)>0s", "errors<0.1%",
	"msgs/s>100", "MB/s>=1", "delivered>=10000", "p50(bdat)<1ms",
}

func parseThresholds(t *testing.T, exprs ...string) []Threshold {
	t.Helper()
	var ts []Threshold
	for _, s := range exprs {
		th, err := ParseThreshold(s)
		if err != nil {
			t.Fatalf("ParseThreshold(%q): %v", s, err)
		}
		ts = append(ts, th)
	}
	return ts
}

// goldenCase is one rendering held to a golden file.
type goldenCase struct {
	file   string
	open   bool
	render func(*bytes.Buffer, *Result) error
}

func goldenCases(t *testing.T) []goldenCase {
	ts := parseThresholds(t, goldenThresholds...)
	text := func(o RenderOptions) func(*bytes.Buffer, *Result) error {
		return func(b *bytes.Buffer, r *Result) error { return RenderText(b, r, o) }
	}
	return []goldenCase{
		{"closed.txt.golden", false, text(RenderOptions{Thresholds: ts})},
		{"closed.md.golden", false, text(RenderOptions{Markdown: true, Thresholds: ts})},
		{"closed.csv.golden", false, func(b *bytes.Buffer, r *Result) error { return RenderCSV(b, []*Result{r}, RenderOptions{}) }},
		{"closed.benchstat.golden", false, func(b *bytes.Buffer, r *Result) error { return RenderBenchstat(b, r, RenderOptions{}) }},
		{"open.txt.golden", true, text(RenderOptions{Percentiles: []float64{50, 99, 99.99}})},
		{"open.csv.golden", true, func(b *bytes.Buffer, r *Result) error {
			return RenderCSV(b, []*Result{r}, RenderOptions{Percentiles: []float64{50, 99, 99.99}})
		}},
	}
}

// checkGolden compares got with testdata/name, or rewrites the file under -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./results -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./results -run Golden -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// Each rendering of the golden result matches its golden file, and so does the rendering of the
// result after Encode and Decode: report prints what run printed.
func TestGoldenRenderings(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.file, func(t *testing.T) {
			res := buildGolden(t, tc.open).res
			var first bytes.Buffer
			if err := tc.render(&first, res); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.file, first.Bytes())

			var file bytes.Buffer
			if err := res.Encode(&file); err != nil {
				t.Fatal(err)
			}
			back, err := Decode(&file)
			if err != nil {
				t.Fatal(err)
			}
			var again bytes.Buffer
			if err := tc.render(&again, back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), again.Bytes()) {
				t.Errorf("rendering after Encode/Decode differs:\n--- before\n%s\n--- after\n%s", first.Bytes(), again.Bytes())
			}
		})
	}
}

// The JSON round trip keeps every field of the golden results.
func TestGoldenRoundTrip(t *testing.T) {
	for _, open := range []bool{false, true} {
		res := buildGolden(t, open).res
		var buf bytes.Buffer
		if err := res.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		equalResults(t, back, res)
		if open && (!back.MeasuredFrom.Equal(res.MeasuredFrom) || back.Throughput.TargetPerS != 180) {
			t.Errorf("open-model fields lost: measured from %v, target %v", back.MeasuredFrom, back.Throughput.TargetPerS)
		}
	}
}

// redactHistograms replaces the compressed histograms of an encoded result with a marker, so the
// layout of the file can be held to a golden without depending on zlib's exact output.
func redactHistograms(encoded []byte) []byte {
	return histField.ReplaceAll(encoded, []byte(`$1"(redacted)"`))
}

var histField = regexp.MustCompile(`("(?:txn_)?histogram": )"[^"]*"`)

// The result file's layout (field names, kind, schema version) is held to a golden, and a file
// written by this version and kept in testdata still decodes to the same result and renders the
// same text: result files of schema 1 stay readable.
func TestGoldenResultFile(t *testing.T) {
	res := buildGolden(t, false).res
	var buf bytes.Buffer
	if err := res.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "closed.layout.json.golden", redactHistograms(buf.Bytes()))
	if !strings.Contains(buf.String(), `"kind": "smtpbench-result"`) || !strings.Contains(buf.String(), `"schema": 1`) {
		t.Errorf("the file does not start with its kind and schema:\n%.200s", buf.String())
	}

	path := filepath.Join("testdata", "closed.result.json.golden")
	if *update {
		if err := WriteFile(path, res); err != nil {
			t.Fatal(err)
		}
	}
	old, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Histograms by their contents (the compressed bytes may change with zlib), the rest exactly.
	old2, res2 := *old, *res
	old2.Phases, res2.Phases = slices.Clone(old.Phases), slices.Clone(res.Phases)
	old2.Timeline, res2.Timeline = slices.Clone(old.Timeline), slices.Clone(res.Timeline)
	if len(old2.Phases) != len(res2.Phases) || len(old2.Timeline) != len(res2.Timeline) {
		t.Fatalf("the kept file has %d phases and %d intervals, the result %d and %d",
			len(old2.Phases), len(old2.Timeline), len(res2.Phases), len(res2.Timeline))
	}
	for i := range old2.Phases {
		ho, err1 := old2.Phases[i].Histogram()
		hr, err2 := res2.Phases[i].Histogram()
		if err1 != nil || err2 != nil || !ho.Equals(hr) {
			t.Errorf("phase %s: the kept histogram differs (%v, %v)", res2.Phases[i].Name, err1, err2)
		}
		old2.Phases[i].Hist, res2.Phases[i].Hist = "", ""
	}
	for i := range old2.Timeline {
		ho, err1 := hdrhistogram.Decode([]byte(old2.Timeline[i].TxnHist))
		hr, err2 := hdrhistogram.Decode([]byte(res2.Timeline[i].TxnHist))
		if err1 != nil || err2 != nil || !ho.Equals(hr) {
			t.Errorf("interval %d: the kept histogram differs (%v, %v)", i, err1, err2)
		}
		old2.Timeline[i].TxnHist, res2.Timeline[i].TxnHist = "", ""
	}
	equalResults(t, &old2, &res2)

	var text bytes.Buffer
	if err := RenderText(&text, old, RenderOptions{Thresholds: parseThresholds(t, goldenThresholds...)}); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "closed.txt.golden", text.Bytes())
}

// exactHist builds a histogram of the samples directly with hdrhistogram-go, independently of
// Recorder, Fill and the result file: the geometry the package documents (1 ns to 1 hour, 3
// significant digits).
func exactHist(t *testing.T, samples []int64) *hdrhistogram.Histogram {
	t.Helper()
	h := hdrhistogram.New(1, 3600e9, 3)
	for _, v := range samples {
		if err := h.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// The golden CSV holds the figures of the raw samples: counts, min, percentiles, max and mean read
// from histograms built straight from them, and the counts of the raw lists.
func TestGoldenCSVMatchesSamples(t *testing.T) {
	for _, tc := range []struct {
		open bool
		pcts []float64
	}{
		{false, []float64{50, 90, 99, 99.9}},
		{true, []float64{50, 99, 99.99}},
		{false, []float64{25, 75, 99.999}}, // not among the result's stored summary
	} {
		open, pcts := tc.open, tc.pcts
		run := buildGolden(t, open)
		var buf bytes.Buffer
		if err := RenderCSV(&buf, []*Result{run.res}, RenderOptions{Percentiles: pcts}); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs { // the first column names the run; the rest is per phase
			if i > 0 && r[0] != run.res.RunID {
				t.Fatalf("row %d names run %q, want %q", i, r[0], run.res.RunID)
			}
			recs[i] = r[1:]
		}
		header := []string{"phase", "count", "min_ns"}
		for _, p := range pcts {
			header = append(header, "p"+strconv.FormatFloat(p, 'f', -1, 64)+"_ns")
		}
		header = append(header, "max_ns", "mean_ns")
		if !slices.Equal(recs[0], header) {
			t.Fatalf("header %v, want %v", recs[0], header)
		}
		var phases []string
		for p := range NumPhases {
			if len(run.samples[p]) > 0 {
				phases = append(phases, p.String())
			}
		}
		var got []string
		for _, r := range recs[1:] {
			got = append(got, r[0])
		}
		if !slices.Equal(got, phases) {
			t.Fatalf("rows %v, want the phases with samples in order %v", got, phases)
		}
		for _, r := range recs[1:] {
			p, _ := ParsePhase(r[0])
			s := run.samples[p]
			h := exactHist(t, s)
			want := []string{r[0], strconv.Itoa(len(s)), strconv.FormatInt(h.Min(), 10)}
			for _, q := range pcts {
				want = append(want, strconv.FormatInt(h.ValueAtPercentile(q), 10))
			}
			want = append(want, strconv.FormatInt(h.Max(), 10), strconv.FormatFloat(h.Mean(), 'f', 0, 64))
			if !slices.Equal(r, want) {
				t.Errorf("open=%v row %v, want %v", open, r, want)
			}
			// The histogram's min and max are the samples' within its resolution.
			if !h.ValuesAreEquivalent(h.Min(), slices.Min(s)) || !h.ValuesAreEquivalent(h.Max(), slices.Max(s)) {
				t.Errorf("%s: min/max %d/%d, samples %d/%d", r[0], h.Min(), h.Max(), slices.Min(s), slices.Max(s))
			}
		}
	}
}

// The golden text says what was recorded: the summary's totals, the throughput and the replies
// come from the recorded counts, and each threshold's verdict is what its figure says.
func TestGoldenTextMatchesCounts(t *testing.T) {
	run := buildGolden(t, false)
	res := run.res
	var buf bytes.Buffer
	if err := RenderText(&buf, res, RenderOptions{Thresholds: parseThresholds(t, goldenThresholds...)}); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	c := res.Totals
	if c.Messages != 400 || c.Delivered+c.Failed != 400 || c.Sessions != 5 || c.Errors != 3 {
		t.Fatalf("totals %+v", c)
	}
	msgsPerS := float64(c.Delivered) / 2.5
	mbPerS := float64(c.Delivered) * 1400 / 2.5 / 1e6
	summary := fmt.Sprintf("│ %d │ %d │ %d │ %d │ %.0f │ %.2f │ 2.5s │ message count reached │",
		c.Messages, c.Delivered, c.Failed, c.Recipients, msgsPerS, mbPerS)
	if !strings.Contains(squeeze(text), summary) {
		t.Errorf("the summary row %q is not in:\n%s", summary, text)
	}
	if !strings.HasPrefix(text, "smtpbench run against 127.0.0.1:2525: 4 sessions, 1 KiB body, 2 recipients, PIPELINING+DATA\n\n") {
		t.Errorf("text starts %q", text[:80])
	}
	if !strings.Contains(text, "note: PIPELINING: mail, rcpt and data") {
		t.Error("the note is missing")
	}
	// The rcpt replies, counted independently of the recorder: every rcpt sample had one reply.
	var rc *PhaseResult = res.Phase("rcpt")
	total := int64(0)
	for _, r := range rc.Replies {
		total += r.Count
	}
	if total != int64(len(run.samples[Rcpt])) || total != 800 {
		t.Errorf("rcpt replies add up to %d, want 800", total)
	}
	// Every threshold appears with the verdict its figure gives.
	failedPct := 100 * float64(c.Failed) / 400
	want := map[string]bool{
		"p99(rcpt)<2ms":      exactHist(t, run.samples[Rcpt]).ValueAtPercentile(99) < 2e6,
		"p99.9(body)<=100ms": exactHist(t, run.samples[Body]).ValueAtPercentile(99.9) <= 100e6,
		"mean(mail)<2ms":     exactHist(t, run.samples[Mail]).Mean() < 2e6,
		"min(connect)>0s":    true,
		"errors<0.1%":        failedPct < 0.1,
		"msgs/s>100":         msgsPerS > 100,
		"MB/s>=1":            mbPerS >= 1,
		"delivered>=10000":   false,
		"p50(bdat)<1ms":      false,
	}
	for _, line := range strings.Split(text, "\n") {
		for expr, pass := range want {
			if strings.Contains(line, " "+expr+" │") {
				verdict := map[bool]string{true: "pass", false: "FAIL"}[pass]
				if !strings.Contains(line, verdict) {
					t.Errorf("threshold line %q, want %s", line, verdict)
				}
				delete(want, expr)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("thresholds not shown: %v", want)
	}
	if !strings.Contains(text, "no bdat samples") {
		t.Error("the threshold on a phase without samples does not say why it failed")
	}
}

// squeeze collapses runs of spaces, so table rows can be matched regardless of column widths.
func squeeze(s string) string {
	for strings.Contains(s, "  ") {
		s = strings.ReplaceAll(s, "  ", " ")
	}
	return s
}
