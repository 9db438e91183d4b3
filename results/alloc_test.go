//go:build !race

package results

import "testing"

// Recording into a Recorder whose phases already have histograms and whose reply codes and
// error reasons were already seen allocates nothing, so a worker can record every transaction.
func TestRecordAllocatesNothing(t *testing.T) {
	r := NewRecorder()
	for p := range NumPhases {
		r.Record(p, 1)
		for _, k := range testKeys {
			r.Reply(p, k)
		}
		for _, reason := range testReasons {
			r.Error(p, reason)
		}
	}
	i := 0
	record := func() {
		i++
		for p := range NumPhases {
			r.Record(p, int64(1000*i))
			r.Record(p, histHighest+int64(i)) // clamped
			r.Record(p, -1)
			r.Reply(p, testKeys[i%len(testKeys)])
			r.Error(p, testReasons[i%len(testReasons)])
		}
		r.Counts.Messages++
	}
	if allocs := testing.AllocsPerRun(1000, record); allocs != 0 {
		t.Errorf("%.2f allocations per round of recording, want 0", allocs)
	}
	// Reset keeps the storage: recording the same again allocates nothing either.
	r.Reset()
	if allocs := testing.AllocsPerRun(1000, record); allocs != 0 {
		t.Errorf("%.2f allocations per round after Reset, want 0", allocs)
	}
	if r.Histogram(Mail).TotalCount() != 3*1001 {
		t.Errorf("mail count %d: the recording did not happen", r.Histogram(Mail).TotalCount())
	}
}

// Encoding a histogram allocates a few buffers, not one per bucket: a run encodes one a second
// while it sends.
func TestEncodeHistAllocations(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v < histHighest; v = v*11/10 + 1 {
		h.RecordValue(v) // every bucket range, ~300 distinct values
	}
	if _, err := EncodeHist(h); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := EncodeHist(h); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 6 {
		t.Errorf("%.0f allocations per encoding, want at most 6 (the counts' copy and the output)", allocs)
	}
}
