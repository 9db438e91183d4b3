package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/smtpbench/smtpbench/results"
)

// rfExec runs the smtpbench command line in-process, without signals, bounded in time.
func rfExec(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	noSignals := func() (<-chan os.Signal, func()) { return make(chan os.Signal), func() {} }
	e := &env{stdout: &out, stderr: &errOut, signals: noSignals, stallSignals: noSignals}
	code = run(ctx, e, args)
	return code, out.String(), errOut.String()
}

// rfMust runs a command that must exit with code.
func rfMust(t *testing.T, code int, args ...string) (stdout, stderr string) {
	t.Helper()
	got, stdout, stderr := rfExec(t, args...)
	if got != code {
		t.Fatalf("smtpbench %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, stdout, stderr)
	}
	return stdout, stderr
}

// rfRead reads a result file the test expects to be valid.
func rfRead(t *testing.T, path string) *results.Result {
	t.Helper()
	res, err := results.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// rfPhasesWithSamples lists the names of the result's phases that have samples.
func rfPhasesWithSamples(res *results.Result) []string {
	var names []string
	for _, p := range res.Phases {
		if p.Count > 0 {
			names = append(names, p.Name)
		}
	}
	return names
}

// rfSqueeze collapses runs of spaces, to match table rows regardless of column widths.
func rfSqueeze(s string) string {
	for strings.Contains(s, "  ") {
		s = strings.ReplaceAll(s, "  ", " ")
	}
	return s
}

// A run against the in-process sink writes a result file and an interval log; report of the file
// prints exactly what run printed, and the log holds, interval by interval, what the file holds.
func TestResultsCLIRunThenReport(t *testing.T) {
	dir := t.TempDir()
	file, hlog := filepath.Join(dir, "run.json"), filepath.Join(dir, "run.hlog")
	out, errOut := rfMust(t, exitOK, "run", "-n", "300", "-c", "4", "--out", file, "--hlog", hlog, "--progress", "off")
	for _, want := range []string{"result written to " + file, "interval log written to " + hlog} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.HasPrefix(out, "smtpbench run against 127.0.0.1:") {
		t.Errorf("run printed:\n%s", out)
	}
	report, _ := rfMust(t, exitOK, "report", file)
	if report != out {
		t.Errorf("report differs from what run printed:\n--- run\n%s\n--- report\n%s", out, report)
	}
	res := rfRead(t, file)
	if res.Totals.Messages != 300 || res.Totals.Delivered != 300 || res.StopReason != "message count reached" {
		t.Errorf("totals %+v, stopped by %q", res.Totals, res.StopReason)
	}
	if names := rfDirEntries(t, dir); !slices.Equal(names, []string{"run.hlog", "run.json"}) {
		t.Errorf("the directory holds %v: a temporary file was left", names)
	}

	// The interval log, read by hdrhistogram-go's own reader: each histogram is tagged with a
	// phase, and each phase's intervals add up to the file's histogram of it.
	f, err := os.Open(hlog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]*hdrhistogram.Histogram{}
	r := hdrhistogram.NewHistogramLogReader(f)
	intervals := 0
	var firstStart, lastEnd int64 = 1 << 62, 0
	for {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			t.Fatal(err)
		}
		if h == nil {
			break
		}
		intervals++
		if _, err := results.ParsePhase(h.Tag()); err != nil {
			t.Errorf("interval histogram tagged %q: %v", h.Tag(), err)
		}
		if h.StartTimeMs() > h.EndTimeMs() || h.StartTimeMs() < res.Start.Add(-2*time.Second).UnixMilli() ||
			h.EndTimeMs() > res.End.Add(2*time.Second).UnixMilli() {
			t.Errorf("%s interval %d-%d ms outside the run %v-%v", h.Tag(), h.StartTimeMs(), h.EndTimeMs(), res.Start, res.End)
		}
		if d := h.EndTimeMs() - h.StartTimeMs(); d > 1100 {
			t.Errorf("%s interval %d-%d ms lasts %d ms, not about a second", h.Tag(), h.StartTimeMs(), h.EndTimeMs(), d)
		}
		firstStart, lastEnd = min(firstStart, h.StartTimeMs()), max(lastEnd, h.EndTimeMs())
		if sums[h.Tag()] == nil {
			sums[h.Tag()] = results.NewHistogram()
		}
		sums[h.Tag()].Merge(h)
	}
	if intervals == 0 {
		t.Fatal("the interval log holds no histogram")
	}
	// The intervals cover the run: from its start to its end (the final harvest comes just after
	// it). Compared as spans, since the log's times come from the monotonic clock.
	span, runMs := lastEnd-firstStart, res.End.Sub(res.Start).Milliseconds()
	if span < runMs-2 || span > runMs+1000 {
		t.Errorf("the log's intervals span %d ms, the run lasted %d ms", span, runMs)
	}
	var tags []string
	for tag := range sums {
		tags = append(tags, tag)
	}
	want := rfPhasesWithSamples(res)
	slices.Sort(tags)
	slices.Sort(want)
	if !slices.Equal(tags, want) {
		t.Errorf("the log has phases %v, the file %v", tags, want)
	}
	for _, p := range res.Phases {
		if p.Count == 0 {
			continue
		}
		h, err := p.Histogram()
		if err != nil {
			t.Fatal(err)
		}
		if s := sums[p.Name]; s == nil || !s.Equals(h) {
			t.Errorf("%s: the log's intervals do not add up to the file's histogram", p.Name)
		}
	}
}

func rfDirEntries(t *testing.T, dir string) []string {
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

// Thresholds and percentile columns render the same on run and report; a breached threshold exits
// 3 on both, a passing one 0.
func TestResultsCLIThresholds(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "run.json")
	flags := []string{"--percentiles", "50,99.99", "--threshold", "delivered>=200", "--threshold", "p99(txn)<1h"}
	out, _ := rfMust(t, exitOK, append([]string{"run", "-n", "200", "-c", "2", "--out", file, "--progress", "off"}, flags...)...)
	if !strings.Contains(out, "p99.99") || strings.Contains(out, "p90") {
		t.Errorf("the percentile columns are not the ones asked for:\n%s", out)
	}
	if s := rfSqueeze(out); !strings.Contains(s, "delivered>=200 │ 200 │ pass") || !strings.Contains(s, "p99(txn)<1h │") {
		t.Errorf("no threshold table:\n%s", out)
	}
	report, _ := rfMust(t, exitOK, append([]string{"report", file}, flags...)...)
	if report != out {
		t.Errorf("report differs from run:\n--- run\n%s\n--- report\n%s", out, report)
	}

	// Breached on report: exactly 200 were delivered, so delivered>200 fails at the boundary.
	report, errOut := rfMust(t, exitThresholds, "report", file, "--threshold", "delivered>200", "--threshold", "delivered>=200")
	if !strings.Contains(report, "\n1 of 2 thresholds breached\n") || !strings.Contains(rfSqueeze(report), "delivered>200 │ 200 │ FAIL") {
		t.Errorf("report of a breached threshold:\n%s", report)
	}
	if !strings.Contains(errOut, "threshold(s) breached") {
		t.Errorf("stderr %q", errOut)
	}
	// Other formats check the thresholds too.
	rfMust(t, exitThresholds, "report", "--format", "csv", "--threshold", "msgs/s>1e12", file)
	rfMust(t, exitThresholds, "report", "--format", "json", "--threshold", "errors>0", file)
	rfMust(t, exitOK, "report", "--format", "benchstat", "--threshold", "errors<=0", file)

	// Breached on run: exit 3, and report of its file prints the same, with the same code.
	file2 := filepath.Join(dir, "breach.json")
	breach := []string{"--threshold", "msgs/s>0", "--threshold", "p50(bdat)<1s", "--threshold", "max(txn)<1ns"}
	out, errOut = rfMust(t, exitThresholds, append([]string{"run", "-n", "200", "-c", "2", "--out", file2, "--progress", "off"}, breach...)...)
	if !strings.Contains(out, "\n2 of 3 thresholds breached\n") || !strings.Contains(out, "no bdat samples") {
		t.Errorf("run with breached thresholds printed:\n%s", out)
	}
	if !strings.HasSuffix(errOut, "smtpbench run: 2 threshold(s) breached\n") {
		t.Errorf("run's stderr %q", errOut)
	}
	report, errOut = rfMust(t, exitThresholds, append([]string{"report", file2}, breach...)...)
	if report != out {
		t.Errorf("report differs from run:\n--- run\n%s\n--- report\n%s", out, report)
	}
	if errOut != "smtpbench report: 2 threshold(s) breached\n" {
		t.Errorf("report's stderr %q, want the count run gives", errOut)
	}
	// With several files, the breaches of all count, in every format.
	for _, format := range []string{"text", "csv"} {
		_, errOut = rfMust(t, exitThresholds, "report", "--format", format, "--threshold", "delivered>=1000",
			"--threshold", "msgs/s>1e12", "--threshold", "errors<=0", file, file2)
		if errOut != "smtpbench report: 4 threshold(s) breached\n" {
			t.Errorf("--format %s, two files breaching two thresholds each: stderr %q", format, errOut)
		}
	}
}

// Every format of report works on a run's file.
func TestResultsCLIReportFormats(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "run.json")
	rfMust(t, exitOK, "run", "-n", "200", "-c", "2", "--out", file, "--progress", "off")
	res := rfRead(t, file)
	phases := rfPhasesWithSamples(res)

	t.Run("json", func(t *testing.T) {
		out, _ := rfMust(t, exitOK, "report", "--format", "json", file)
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if out != string(raw) {
			t.Errorf("--format json differs from the file")
		}
		back, err := results.Decode(strings.NewReader(out))
		if err != nil || back.Totals != res.Totals {
			t.Errorf("the JSON does not decode to the result: %v", err)
		}
	})
	t.Run("csv", func(t *testing.T) {
		out, _ := rfMust(t, exitOK, "report", "--format", "csv", "--percentiles", "50,99", file)
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(recs[0], []string{"run", "phase", "count", "min_ns", "p50_ns", "p99_ns", "max_ns", "mean_ns"}) {
			t.Errorf("header %v", recs[0])
		}
		var names []string
		for _, r := range recs[1:] {
			if r[0] != res.RunID {
				t.Errorf("row %v names run %q, want %q", r, r[0], res.RunID)
			}
			r = r[1:]
			names = append(names, r[0])
			if p := res.Phase(r[0]); p == nil || r[1] != strconv.FormatInt(p.Count, 10) || r[3] != strconv.FormatInt(p.P50, 10) || r[4] != strconv.FormatInt(p.P99, 10) {
				t.Errorf("row %v does not match the file's %+v", r, p)
			}
		}
		if !slices.Equal(names, phases) {
			t.Errorf("rows %v, want %v", names, phases)
		}
	})
	t.Run("markdown", func(t *testing.T) {
		out, _ := rfMust(t, exitOK, "report", "--format", "markdown", file)
		flag, _ := rfMust(t, exitOK, "report", "--markdown", file)
		if out != flag {
			t.Errorf("--format markdown and --markdown differ")
		}
		if strings.Contains(out, "│") || !strings.Contains(out, "|---") || !strings.Contains(rfSqueeze(out), "| phase | count | min | p50 | p90 | p99 | p99.9 | max | mean |") {
			t.Errorf("not a Markdown table:\n%s", out)
		}
	})
	t.Run("benchstat", func(t *testing.T) {
		out, _ := rfMust(t, exitOK, "report", "--format", "benchstat", file)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) < 4 || lines[0] != "goos: "+res.Host.OS || lines[1] != "goarch: "+res.Host.Arch || lines[2] != "pkg: smtpbench" {
			t.Fatalf("benchstat header:\n%s", out)
		}
		var names []string
		for _, l := range lines[3 : len(lines)-1] {
			name, rest, _ := strings.Cut(l, " ")
			names = append(names, strings.TrimPrefix(name, "BenchmarkSMTP/phase="))
			if f := strings.Fields(rest); len(f)%2 != 1 || !strings.HasSuffix(f[len(f)-1], "-ns") {
				t.Errorf("line %q is not N then value-unit pairs", l)
			}
		}
		if !slices.Equal(names, phases) {
			t.Errorf("benchmarks %v, want %v", names, phases)
		}
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "BenchmarkSMTP/throughput 200 ") || !strings.HasSuffix(last, " failed-%") {
			t.Errorf("throughput line %q", last)
		}
		// Two files are two samples of the same benchmarks, one after the other.
		two, _ := rfMust(t, exitOK, "report", "--format", "benchstat", file, file)
		if two != out+out {
			t.Errorf("two files:\n%s", two)
		}
	})
	t.Run("several files", func(t *testing.T) {
		one, _ := rfMust(t, exitOK, "report", file)
		two, _ := rfMust(t, exitOK, "report", file, file)
		if two != one+"\n"+one {
			t.Errorf("two files are not rendered in turn, a blank line apart")
		}
	})
	t.Run("hgrm", func(t *testing.T) {
		hdir := filepath.Join(dir, "hgrm")
		out, _ := rfMust(t, exitOK, "report", "--hgrm", hdir, file)
		var wrote []string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			wrote = append(wrote, sc.Text())
		}
		var want, files []string
		for _, name := range phases {
			want = append(want, "wrote "+filepath.Join(hdir, name+".hgrm"))
			files = append(files, name+".hgrm")
		}
		if !slices.Equal(wrote, want) {
			t.Errorf("report --hgrm printed %q, want %q", wrote, want)
		}
		slices.Sort(files)
		if got := rfDirEntries(t, hdir); !slices.Equal(got, files) {
			t.Errorf("the directory holds %v, want %v", got, files)
		}
		// Each file is HdrHistogram's percentile distribution of the phase, in milliseconds.
		for _, name := range phases {
			got, err := os.ReadFile(filepath.Join(hdir, name+".hgrm"))
			if err != nil {
				t.Fatal(err)
			}
			h, err := res.Phase(name).Histogram()
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if _, err := h.PercentilesPrint(&want, 5, 1e6); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("%s.hgrm is not PercentilesPrint(5, 1e6) of the phase", name)
			}
		}
		// A phase with replies but no samples has no distribution to write.
		quiet := filepath.Join(dir, "quiet.json")
		rec := results.NewRecorder()
		rec.Record(results.Mail, 1000)
		rec.Reply(results.Quit, results.ReplyKey{Code: 221})
		qres := &results.Result{Kind: results.Kind, Schema: results.SchemaVersion}
		if err := qres.Fill(rec); err != nil || qres.Phase("quit") == nil {
			t.Fatalf("fill: %v", err)
		}
		if err := results.WriteFile(quiet, qres); err != nil {
			t.Fatal(err)
		}
		qdir := filepath.Join(dir, "quiet-hgrm")
		rfMust(t, exitOK, "report", "--hgrm", qdir, quiet)
		if got := rfDirEntries(t, qdir); !slices.Equal(got, []string{"mail.hgrm"}) {
			t.Errorf("a result with mail samples and quit replies wrote %v", got)
		}

		_, errOut := rfMust(t, exitUsage, "report", "--hgrm", hdir, file, file)
		if !strings.Contains(errOut, "--hgrm") {
			t.Errorf("--hgrm with two files: %q", errOut)
		}
		_, errOut = rfMust(t, exitUsage, "report", "--hgrm", file, file) // a file, not a directory
		if !strings.Contains(errOut, "--hgrm") {
			t.Errorf("--hgrm into a file: %q", errOut)
		}
	})
}

// A bad --threshold, --percentiles or --format exits 2 and names the flag, before any load.
func TestResultsCLIBadFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "r.json")
	rfWriteResult(t, file, 1000, 1000)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "-n", "10", "--threshold", "p99(nonesuch)<1ms"}, []string{"invalid value for --threshold", "nonesuch"}},
		{[]string{"run", "-n", "10", "--threshold", "p99(rcpt)<fast"}, []string{"--threshold", `"fast" is not a duration`}},
		{[]string{"run", "-n", "10", "--threshold", "errors"}, []string{"--threshold", "want METRIC<VALUE"}},
		{[]string{"run", "-n", "10", "--percentiles", "0"}, []string{"invalid value for --percentiles", `"0"`}},
		{[]string{"run", "-n", "10", "--percentiles", "NaN"}, []string{"--percentiles"}},
		{[]string{"report", "--format", "xml", file}, []string{"invalid value for --format", `"xml"`}},
		{[]string{"report", "--percentiles", "50,abc", file}, []string{"--percentiles", `"abc"`}},
		{[]string{"report", "--threshold", "p101(rcpt)<1s", file}, []string{"--threshold", "p101"}},
		{[]string{"compare", "--percentiles", "101", file, file}, []string{"--percentiles", `"101"`}},
		{[]string{"report"}, []string{"no result FILE"}},
		{[]string{"compare", file}, []string{"at least two"}},
		{[]string{"compare", "--base", file}, []string{"--base and --new go together"}},
		{[]string{"compare", "--base", file, "--new", file, file}, []string{"not both"}},
		{[]string{"merge", file}, []string{"-o FILE is required"}},
		{[]string{"merge", "-o", filepath.Join(dir, "m.json")}, []string{"no shard files"}},
	} {
		code, out, errOut := rfExec(t, tc.args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s%s", tc.args, code, exitUsage, out, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%q: stderr %q does not say %q", tc.args, errOut, w)
			}
		}
		if strings.Contains(errOut, "running against") || out != "" {
			t.Errorf("%q: something ran: %s%s", tc.args, out, errOut)
		}
	}
}

// rfWriteResult writes a small result with the given throughput and rcpt latency (ns).
func rfWriteResult(t *testing.T, path string, msgsPerS float64, rcptNs int64) {
	t.Helper()
	rec := results.NewRecorder()
	for range 10 {
		rec.Record(results.Rcpt, rcptNs)
	}
	rec.Counts = results.Counts{Messages: 10, Delivered: 10}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	res := &results.Result{Kind: results.Kind, Schema: results.SchemaVersion, Start: start, End: start.Add(time.Second),
		Target: "127.0.0.1:25", Config: json.RawMessage(`{"sessions":1}`)}
	if err := res.Fill(rec); err != nil {
		t.Fatal(err)
	}
	res.Throughput.MessagesPerS = msgsPerS
	if err := results.WriteFile(path, res); err != nil {
		t.Fatal(err)
	}
}

// compare prints a table of two files, or of the medians of repeated runs.
func TestResultsCLICompare(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	rfWriteResult(t, p("before.json"), 1000, 1000)
	rfWriteResult(t, p("after.json"), 1100, 1500)
	out, _ := rfMust(t, exitOK, "compare", p("before.json"), p("after.json"))
	s := rfSqueeze(out)
	for _, want := range []string{"│ metric │ before │ after │ change │", "│ msgs/s │ 1000 │ 1100 │ +10.0% better │",
		"│ rcpt p50 │ 1.00µs │ 1.50µs │ +50.0% worse │", "│ rcpt p99 │"} {
		if !strings.Contains(s, want) {
			t.Errorf("compare lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "medians") {
		t.Errorf("single runs explained as medians:\n%s", out)
	}
	out, _ = rfMust(t, exitOK, "compare", "--markdown", "--percentiles", "99.9", p("before.json"), p("after.json"))
	if !strings.Contains(rfSqueeze(out), "| rcpt p99.9 | 1.00µs | 1.50µs | +50.0% worse |") || strings.Contains(out, "rcpt p50") {
		t.Errorf("compare --markdown --percentiles 99.9:\n%s", out)
	}

	// Repeated runs: overlapping ranges are marked "~".
	for name, rate := range map[string]float64{"a1": 1000, "a2": 1200, "b1": 1150, "b2": 1300, "c1": 1300, "c2": 1400} {
		rfWriteResult(t, p(name+".json"), rate, 1000)
	}
	out, _ = rfMust(t, exitOK, "compare", "--base", p("a1.json")+","+p("a2.json"), "--new", p("b1.json")+", "+p("b2.json"))
	s = rfSqueeze(out)
	if !strings.Contains(s, "│ metric │ base │ new │ change │") || !strings.Contains(s, "│ msgs/s │ 1100 │ 1225 │ ~ (+11.4%) │") ||
		!strings.Contains(out, "medians of the repeated runs") {
		t.Errorf("overlapping repeated runs:\n%s", out)
	}
	out, _ = rfMust(t, exitOK, "compare", "--base", p("a1.json")+","+p("a2.json"), "--new", p("c1.json")+","+p("c2.json"))
	if !strings.Contains(rfSqueeze(out), "│ msgs/s │ 1100 │ 1350 │ +22.7% better │") {
		t.Errorf("separate repeated runs:\n%s", out)
	}
}

// merge adds two runs of the same flags into a file report reads; runs of different flags are
// refused, naming what differs, unless --force.
func TestResultsCLIMerge(t *testing.T) {
	sink, addr, err := startEmbeddedSink(4)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, name := range []string{"s1", "s2"} {
		rfMust(t, exitOK, "run", "-n", "200", "-c", "2", "--progress", "off", "--out", p(name+".json"), addr)
	}
	rfMust(t, exitOK, "run", "-n", "100", "-c", "3", "--size", "2KiB", "--progress", "off", "--out", p("s3.json"), addr)

	out, _ := rfMust(t, exitOK, "merge", "-o", p("all.json"), p("s1.json"), p("s2.json"))
	if out != "merged 2 shards into "+p("all.json")+": 400 messages delivered\n" {
		t.Errorf("merge printed %q", out)
	}
	report, _ := rfMust(t, exitOK, "report", p("all.json"))
	if !strings.Contains(report, "note: merged from 2 shards") || !strings.Contains(rfSqueeze(report), "│ 400 │ 400 │ 0 │") {
		t.Errorf("report of the merged file:\n%s", report)
	}
	merged, s1, s2 := rfRead(t, p("all.json")), rfRead(t, p("s1.json")), rfRead(t, p("s2.json"))
	if merged.Totals.Messages != 400 || merged.Totals.Sessions != s1.Totals.Sessions+s2.Totals.Sessions {
		t.Errorf("merged totals %+v", merged.Totals)
	}
	for _, pr := range merged.Phases {
		want := results.NewHistogram()
		for _, s := range []*results.Result{s1, s2} {
			if sp := s.Phase(pr.Name); sp != nil {
				h, err := sp.Histogram()
				if err != nil {
					t.Fatal(err)
				}
				want.Merge(h)
			}
		}
		got, err := pr.Histogram()
		if err != nil || !got.Equals(want) {
			t.Errorf("%s: the merged histogram is not the shards' added (%v)", pr.Name, err)
		}
	}

	// Different flags: refused with exit 1, the fields named, nothing written.
	_, errOut := rfMust(t, exitError, "merge", "-o", p("mixed.json"), p("s1.json"), p("s3.json"))
	for _, want := range []string{"shard 2 differs from shard 1 in", "messages", "sessions", "size", "--force"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("refusal %q does not say %q", errOut, want)
		}
	}
	if strings.Contains(errOut, "run_id") {
		t.Errorf("refusal %q names run_id, which runs always differ in", errOut)
	}
	if _, err := os.Stat(p("mixed.json")); !os.IsNotExist(err) {
		t.Errorf("a refused merge wrote its output: %v", err)
	}
	out, _ = rfMust(t, exitOK, "merge", "--force", "-o", p("mixed.json"), p("s1.json"), p("s3.json"))
	if !strings.Contains(out, "300 messages delivered") || rfRead(t, p("mixed.json")).Totals.Messages != 300 {
		t.Errorf("forced merge: %q", out)
	}
}

// Files that are not result files, or are damaged, are refused with exit 1 and a message that
// names the file and what is wrong with it, by report, compare and merge alike.
func TestResultsCLIRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	good := p("good.json")
	rfWriteResult(t, good, 1000, 1000)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["phases"].([]any)[0].(map[string]any)["histogram"] = "SElTVEZBQUFBQ"
	corrupt, _ := json.Marshal(m)
	m["schema"] = 2
	newer, _ := json.Marshal(m)
	files := map[string]struct {
		content string
		want    string
	}{
		"foreign.json":   {`{"hello": "world"}`, `not a smtpbench result file (kind "", want "smtpbench-result")`},
		"k6.json":        {`{"kind": "k6-summary", "metrics": {}}`, `not a smtpbench result file (kind "k6-summary"`},
		"array.json":     {`[1, 2, 3]`, "not a smtpbench result file"},
		"binary.json":    {"\x00\x01\x02\xff", "not a smtpbench result file"},
		"empty.json":     {"", "not a smtpbench result file"},
		"truncated.json": {string(raw[:len(raw)/2]), "unexpected end of JSON input"},
		"corrupt.json":   {string(corrupt), "phase rcpt: corrupt histogram"},
		"newer.json":     {string(newer), "schema version 2; this smtpbench reads version 1"},
	}
	for name, f := range files {
		if err := os.WriteFile(p(name), []byte(f.content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files["missing.json"] = struct{ content, want string }{"", "no such file or directory"}
	files["."] = struct{ content, want string }{"", "is a directory"}
	for name, f := range files {
		path := p(name)
		for _, args := range [][]string{
			{"report", path},
			{"report", "--format", "json", good, path},
			{"report", "--hgrm", p("hgrm-" + name), path},
			{"compare", good, path},
			{"compare", "--base", good, "--new", good + "," + path},
			{"merge", "-o", p("out.json"), good, path},
		} {
			code, out, errOut := rfExec(t, args...)
			if code != exitError {
				t.Errorf("%q: exit %d, want %d\n%s", args, code, exitError, errOut)
				continue
			}
			if !strings.Contains(errOut, path) || !strings.Contains(errOut, f.want) {
				t.Errorf("%q: stderr %q, want it to name the file and say %q", args, errOut, f.want)
			}
			if strings.Count(errOut, "\n") != 1 {
				t.Errorf("%q: the message is not one line: %q", args, errOut)
			}
			if args[0] == "report" && len(args) == 2 && out != "" {
				t.Errorf("%q printed %q", args, out)
			}
		}
	}
	if _, err := os.Stat(p("out.json")); !os.IsNotExist(err) {
		t.Error("merge wrote its output despite a bad shard")
	}
}
