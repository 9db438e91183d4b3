package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// SchemaVersion is the version of the result file format this package writes and reads.
const SchemaVersion = 1

// Kind identifies a smtpbench result file.
const Kind = "smtpbench-result"

// Result is one run, as written to a result file and rendered by run and report.
type Result struct {
	Kind   string    `json:"kind"`
	Schema int       `json:"schema"`
	Tool   string    `json:"tool"`
	RunID  string    `json:"run_id"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// MeasuredFrom is when the histograms and totals start: after the warm-up, if any.
	MeasuredFrom time.Time `json:"measured_from,omitzero"`
	Target       string    `json:"target"`
	// Description says in a line what the load was ("10 sessions, 1 KiB body, PIPELINING+DATA").
	Description string          `json:"description,omitempty"`
	Config      json.RawMessage `json:"config,omitempty"` // the effective load configuration
	Host        Host            `json:"host"`
	StopReason  string          `json:"stop_reason"`
	Notes       []string        `json:"notes,omitempty"`
	Totals      Counts          `json:"totals"`
	Throughput  Throughput      `json:"throughput"`
	Phases      []PhaseResult   `json:"phases"`
	Timeline    []Interval      `json:"timeline,omitempty"`
	// Clamped counts latencies above one hour, recorded as one hour.
	Clamped int64 `json:"clamped,omitempty"`
}

// Host describes the machine that ran the load.
type Host struct {
	Hostname   string `json:"hostname,omitempty"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

// Throughput is what the run achieved over its measured duration.
type Throughput struct {
	// TargetPerS is the open model's target rate (scheduled messages over the schedule).
	TargetPerS    float64 `json:"target_per_s,omitempty"`
	Seconds       float64 `json:"seconds"`
	MessagesPerS  float64 `json:"messages_per_s"`
	RecipientsPer float64 `json:"recipients_per_s"`
	BytesPerS     float64 `json:"bytes_per_s"`
}

// PhaseResult is one phase: a readable summary and the histogram, losslessly encoded.
type PhaseResult struct {
	Name    string       `json:"name"`
	Count   int64        `json:"count"`
	Min     int64        `json:"min_ns"`
	P50     int64        `json:"p50_ns"`
	P90     int64        `json:"p90_ns"`
	P99     int64        `json:"p99_ns"`
	P999    int64        `json:"p99_9_ns"`
	P9999   int64        `json:"p99_99_ns"`
	Max     int64        `json:"max_ns"`
	Mean    float64      `json:"mean_ns"`
	Hist    string       `json:"histogram,omitempty"` // HdrHistogram V2 compressed, base64
	Replies []ReplyCount `json:"replies,omitempty"`
	Errors  []ErrorCount `json:"errors,omitempty"`
}

// ReplyCount is how often a reply came in a phase.
type ReplyCount struct {
	Code     uint16 `json:"code"`
	Enhanced string `json:"enhanced,omitempty"`
	Count    int64  `json:"count"`
}

// ErrorCount is how often a failure happened in a phase.
type ErrorCount struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// Interval is one second (or other interval) of the run's timeline.
type Interval struct {
	Offset    float64 `json:"t"` // seconds from the start to the interval's end
	Messages  int64   `json:"messages"`
	Delivered int64   `json:"delivered"`
	Failed    int64   `json:"failed"`
	Errors    int64   `json:"errors"`
	TxnP50    int64   `json:"txn_p50_ns"`
	TxnP99    int64   `json:"txn_p99_ns"`
	// TxnHist is the interval's txn histogram (V2 compressed, base64), so that merge can
	// combine timelines exactly.
	TxnHist string `json:"txn_histogram,omitempty"`
	// Warmup marks an interval of the warm-up, left out of the totals and histograms.
	Warmup bool `json:"warmup,omitempty"`
	// Late and Dropped count the open model's messages of the interval.
	Late    int64 `json:"late,omitempty"`
	Dropped int64 `json:"dropped,omitempty"`
}

var summaryPercentiles = []float64{50, 90, 99, 99.9, 99.99}

// SummarizePhase builds a PhaseResult from a histogram (nil or empty gives a zero summary).
func SummarizePhase(name string, h *hdrhistogram.Histogram) (PhaseResult, error) {
	pr := PhaseResult{Name: name}
	if h == nil || h.TotalCount() == 0 {
		return pr, nil
	}
	q := h.ValueAtPercentilesSlice(summaryPercentiles)
	pr.Count, pr.Min, pr.Max, pr.Mean = h.TotalCount(), h.Min(), h.Max(), h.Mean()
	pr.P50, pr.P90, pr.P99, pr.P999, pr.P9999 = q[0], q[1], q[2], q[3], q[4]
	enc, err := EncodeHist(h)
	if err != nil {
		return pr, fmt.Errorf("encoding the %s histogram: %w", name, err)
	}
	pr.Hist = enc
	return pr, nil
}

// Fill sets the phases, totals and throughput of res from a recorder. Phases with no samples,
// replies or errors are left out.
func (res *Result) Fill(rec *Recorder) error {
	res.Phases = res.Phases[:0]
	for p := range NumPhases {
		h := rec.hist[p]
		if (h == nil || h.TotalCount() == 0) && len(rec.replies[p]) == 0 && len(rec.errors[p]) == 0 {
			continue
		}
		pr, err := SummarizePhase(p.String(), h)
		if err != nil {
			return err
		}
		for _, rc := range rec.replies[p] {
			pr.Replies = append(pr.Replies, ReplyCount{rc.key.Code, enhancedString(rc.key.Enhanced), rc.count})
		}
		sort.Slice(pr.Replies, func(i, j int) bool {
			a, b := pr.Replies[i], pr.Replies[j]
			return a.Code < b.Code || a.Code == b.Code && a.Enhanced < b.Enhanced
		})
		for _, ec := range rec.errors[p] {
			pr.Errors = append(pr.Errors, ErrorCount{ec.reason, ec.count})
		}
		sort.Slice(pr.Errors, func(i, j int) bool { return pr.Errors[i].Reason < pr.Errors[j].Reason })
		res.Phases = append(res.Phases, pr)
	}
	res.Totals = rec.Counts
	res.Clamped = rec.Clamped
	res.computeThroughput()
	return nil
}

func (res *Result) computeThroughput() {
	from := res.Start
	if !res.MeasuredFrom.IsZero() {
		from = res.MeasuredFrom
	}
	secs := res.End.Sub(from).Seconds()
	res.Throughput = Throughput{Seconds: secs, TargetPerS: res.Throughput.TargetPerS}
	if secs > 0 {
		res.Throughput.MessagesPerS = float64(res.Totals.Delivered) / secs
		res.Throughput.RecipientsPer = float64(res.Totals.Recipients) / secs
		res.Throughput.BytesPerS = float64(res.Totals.Bytes) / secs
	}
}

func enhancedString(e [3]uint16) string {
	if e[0] == 0 {
		return ""
	}
	return strconv.Itoa(int(e[0])) + "." + strconv.Itoa(int(e[1])) + "." + strconv.Itoa(int(e[2]))
}

// Phase returns the named phase's result, or nil.
func (res *Result) Phase(name string) *PhaseResult {
	for i := range res.Phases {
		if res.Phases[i].Name == name {
			return &res.Phases[i]
		}
	}
	return nil
}

// Histogram decodes the phase's histogram.
func (pr *PhaseResult) Histogram() (*hdrhistogram.Histogram, error) {
	if pr.Hist == "" {
		return NewHistogram(), nil
	}
	h, err := hdrhistogram.Decode([]byte(pr.Hist))
	if err != nil {
		return nil, fmt.Errorf("phase %s: corrupt histogram: %w", pr.Name, err)
	}
	return h, nil
}

// Encode writes res as indented JSON.
func (res *Result) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// Decode reads a result file, refusing other kinds of JSON, other schema versions and corrupt
// histograms with an error that says which.
func Decode(r io.Reader) (*Result, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Kind   string `json:"kind"`
		Schema *int   `json:"schema"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		if bytes.Contains(data[:min(len(data), 64)], []byte(`"kind": "`+Kind+`"`)) {
			return nil, fmt.Errorf("damaged smtpbench result file (truncated or edited?): %v", err)
		}
		return nil, fmt.Errorf("not a smtpbench result file: %v", err)
	}
	if probe.Kind != Kind {
		return nil, fmt.Errorf("not a smtpbench result file (kind %q, want %q)", probe.Kind, Kind)
	}
	if probe.Schema == nil || *probe.Schema != SchemaVersion {
		v := "none"
		if probe.Schema != nil {
			v = strconv.Itoa(*probe.Schema)
		}
		return nil, fmt.Errorf("result file schema version %s; this smtpbench reads version %d", v, SchemaVersion)
	}
	var res Result
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("corrupt result file: %v", err)
	}
	for i := range res.Phases {
		if _, err := res.Phases[i].Histogram(); err != nil {
			return nil, err
		}
	}
	for i, iv := range res.Timeline {
		if iv.TxnHist == "" {
			continue
		}
		if _, err := hdrhistogram.Decode([]byte(iv.TxnHist)); err != nil {
			return nil, fmt.Errorf("timeline interval %d (t=%gs): corrupt histogram: %w", i, iv.Offset, err)
		}
	}
	return &res, nil
}

// ReadFile reads and decodes a result file.
func ReadFile(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}

// WriteFile writes res to path atomically: a temporary file in the same directory, synced, then
// renamed over path. A reader never sees a partial file, and an existing file is replaced only
// by a complete one.
func WriteFile(path string, res *Result) error {
	return WriteFileAtomic(path, res.Encode)
}

// WriteFileAtomic writes what fill writes to path atomically (temporary file, sync, rename).
func WriteFileAtomic(path string, fill func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+strings.TrimPrefix(base, ".")+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ErrNoPhase is returned when a result has no data for a phase asked for.
var ErrNoPhase = errors.New("no such phase in the result")
