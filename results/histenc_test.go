package results

import (
	"math/rand/v2"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// EncodeHist writes what hdrhistogram-go's own encoder writes, byte for byte, and its reader
// gives back the same histogram.
func TestEncodeHistMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	spread := NewHistogram()
	for range 100_000 {
		spread.RecordValue(int64(rng.ExpFloat64() * 2e5))
	}
	merged := NewHistogram()
	merged.Merge(spread)
	merged.RecordValues(histHighest, 3)
	huge := NewHistogram() // counts of 2^57 take the 9-byte varint form
	huge.RecordValues(1000, 1<<57)
	huge.RecordValues(5000, 1<<40)
	small := hdrhistogram.New(1, 1000, 2) // another geometry
	small.RecordValue(7)
	small.RecordValue(999)
	for _, tc := range []struct {
		name string
		h    *hdrhistogram.Histogram
	}{
		{"empty", NewHistogram()},
		{"one value", func() *hdrhistogram.Histogram { h := NewHistogram(); h.RecordValue(1); return h }()},
		{"highest", func() *hdrhistogram.Histogram { h := NewHistogram(); h.RecordValue(histHighest); return h }()},
		{"spread", spread},
		{"merged", merged},
		{"huge counts", huge},
		{"other geometry", small},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := tc.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
			if err != nil {
				t.Fatal(err)
			}
			got, err := EncodeHist(tc.h)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("EncodeHist differs from the library's encoding:\n got %.120s\nwant %.120s", got, want)
			}
			back, err := hdrhistogram.Decode([]byte(got))
			if err != nil {
				t.Fatalf("the library cannot read it: %v", err)
			}
			if !back.Equals(tc.h) {
				t.Errorf("decoded: %d samples, max %d; want %d, max %d", back.TotalCount(), back.Max(), tc.h.TotalCount(), tc.h.Max())
			}
		})
	}
}

func BenchmarkEncodeHist(b *testing.B) {
	h := NewHistogram()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		h.RecordValue(int64(rng.ExpFloat64() * 2e5))
	}
	b.Run("impl=smtpbench", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeHist(h); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=hdrhistogram-go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err != nil {
				b.Fatal(err)
			}
		}
	})
}
