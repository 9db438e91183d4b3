package results

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"math"
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The V2 format's cookies, as HdrHistogram writes them (the base with 0x10 for the word size).
const (
	v2Cookie           = hdrhistogram.V2EncodingCookieBase | 0x10
	v2CompressedCookie = hdrhistogram.V2CompressedEncodingCookieBase | 0x10
)

// histEncoder holds what one encoding needs, reused from one to the next: hdrhistogram-go's
// Encode allocates a compressor (about a megabyte at its level) and a slice per bucket each time,
// and a run encodes a histogram per second while it sends.
type histEncoder struct {
	raw, packed bytes.Buffer
	zw          *zlib.Writer
}

var histEncoders = sync.Pool{New: func() any {
	e := &histEncoder{}
	e.zw, _ = zlib.NewWriterLevel(&e.packed, zlib.BestCompression) // a valid level: no error
	return e
}}

// EncodeHist encodes h in HdrHistogram's compressed V2 format, base64: byte for byte what
// h.Encode(hdrhistogram.V2CompressedEncodingCookieBase) gives, which hdrhistogram.Decode and the
// other HdrHistogram implementations read.
func EncodeHist(h *hdrhistogram.Histogram) (string, error) {
	s := h.Export()
	e := histEncoders.Get().(*histEncoder)
	defer histEncoders.Put(e)

	// The counts up to the highest non-zero one (at least one), as ZigZag LEB128 varints, a run of
	// zeros as its negated length.
	limit := len(s.Counts)
	for limit > 1 && s.Counts[limit-1] == 0 {
		limit--
	}
	e.raw.Reset()
	var hdr [40]byte
	e.raw.Write(hdr[:]) // the header, filled in below once the payload's length is known
	for i := 0; i < limit; {
		c := s.Counts[i]
		i++
		if c == 0 {
			zeros := int64(1)
			for i < limit && s.Counts[i] == 0 {
				zeros++
				i++
			}
			if zeros > 1 {
				c = -zeros
			}
		}
		putZigZag(&e.raw, c)
	}
	ratio := s.IntegerToDoubleConversionRatio
	if ratio == 0 {
		ratio = 1
	}
	b := e.raw.Bytes()
	binary.BigEndian.PutUint32(b[0:], uint32(v2Cookie))
	binary.BigEndian.PutUint32(b[4:], uint32(len(b)-40))
	binary.BigEndian.PutUint32(b[8:], 0) // normalizing index offset: counts are written unrotated
	binary.BigEndian.PutUint32(b[12:], uint32(s.SignificantFigures))
	binary.BigEndian.PutUint64(b[16:], uint64(s.LowestTrackableValue))
	binary.BigEndian.PutUint64(b[24:], uint64(s.HighestTrackableValue))
	binary.BigEndian.PutUint64(b[32:], math.Float64bits(ratio))

	e.packed.Reset()
	var pre [8]byte
	e.packed.Write(pre[:]) // cookie and compressed length, filled in below
	e.zw.Reset(&e.packed)
	if _, err := e.zw.Write(b); err != nil {
		return "", err
	}
	if err := e.zw.Close(); err != nil {
		return "", err
	}
	out := e.packed.Bytes()
	binary.BigEndian.PutUint32(out[0:], uint32(v2CompressedCookie))
	binary.BigEndian.PutUint32(out[4:], uint32(len(out)-8))
	return base64.StdEncoding.EncodeToString(out), nil
}

// putZigZag appends v in the ZigZag LEB128-64b9B form of HdrHistogram: 7 bits a byte, low bits
// first, and a ninth byte, if any, with all its 8 bits.
func putZigZag(b *bytes.Buffer, v int64) {
	u := uint64(v<<1) ^ uint64(v>>63)
	for n := 0; n < 8; n++ {
		if u < 0x80 {
			b.WriteByte(byte(u))
			return
		}
		b.WriteByte(byte(u) | 0x80)
		u >>= 7
	}
	b.WriteByte(byte(u))
}
