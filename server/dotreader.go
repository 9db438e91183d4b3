package server

import "bytes"

// dotReader follows message data after DATA as it streams in, chunk by chunk: it finds the end of
// data (CRLF "." CRLF, where the first CRLF may be the one that ended the DATA command), removes
// the dot that stuffs a line starting with ".", counts the message octets and notes any CR or LF
// that is not part of a CRLF pair.
//
// Only CRLF ends a line. A bare LF or CR never ends one, so "\n.\r\n", "\r.\r\n" and "\r\n.\n" are
// all message content and the message goes on (RFC 5321 §2.3.8 and §4.1.1.4; the SMTP smuggling
// attack relies on a server that thinks otherwise). A message with a bare CR or LF is read to its
// real end and then refused.
//
// It keeps no reference to the chunks it is given and never allocates unless it keeps the content.
type dotReader struct {
	state dotState
	size  int64 // message octets after unstuffing, the end-of-data line excluded
	bare  bool  // a CR or LF outside a CRLF pair was seen

	// keep, when keeping is set, receives the unstuffed content up to keepLimit octets; past the
	// limit it stops growing (the message will be refused anyway).
	keeping   bool
	keepLimit int64
	keep      []byte
}

type dotState uint8

const (
	dotLineStart dotState = iota // at the start of a line: after a CRLF, or the start of the data
	dotInLine                    // inside a line
	dotCR                        // inside a line, right after a CR
	dotDot                       // after a "." at the start of a line
	dotDotCR                     // after "." CR at the start of a line
)

// reset prepares d for a new message.
func (d *dotReader) reset(keeping bool, keepLimit int64) {
	d.state, d.size, d.bare = dotLineStart, 0, false
	d.keeping, d.keepLimit, d.keep = keeping, keepLimit, d.keep[:0]
}

// content accounts for message octets.
func (d *dotReader) content(p []byte) {
	d.size += int64(len(p))
	if d.keeping && int64(len(d.keep)+len(p)) <= d.keepLimit {
		d.keep = append(d.keep, p...)
	}
}

// feed consumes message data from p. It returns the number of bytes of p that belong to the
// message, the end-of-data line included, and whether that line was reached; bytes after it are
// not consumed.
func (d *dotReader) feed(p []byte) (n int, done bool) {
	i := 0
	for i < len(p) {
		switch d.state {
		case dotLineStart:
			if p[i] == '.' {
				d.state = dotDot
				i++
				continue
			}
			d.state = dotInLine
		case dotDot:
			if p[i] == '\r' {
				d.state = dotDotCR
				i++
				continue
			}
			// A stuffed dot: it is dropped and the rest of the line is content.
			d.state = dotInLine
		case dotDotCR:
			if p[i] == '\n' {
				return i + 1, true
			}
			// "." CR and no LF: the CR is bare; the byte after it is read as line content.
			d.bare = true
			d.content(crByte[:])
			d.state = dotInLine
		case dotCR:
			if p[i] == '\n' {
				d.content(p[i : i+1])
				d.state = dotLineStart
				i++
				continue
			}
			d.bare = true
			d.state = dotInLine
		case dotInLine:
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				seg := p[i:]
				inner := seg
				if seg[len(seg)-1] == '\r' {
					inner = seg[:len(seg)-1]
					d.state = dotCR
				}
				if bytes.IndexByte(inner, '\r') >= 0 {
					d.bare = true
				}
				d.content(seg)
				return len(p), false
			}
			seg := p[i : i+j+1]
			inner := seg[:j]
			if j > 0 && seg[j-1] == '\r' {
				inner = seg[:j-1]
				d.state = dotLineStart
			} else {
				d.bare = true // an LF with no CR before it
			}
			if bytes.IndexByte(inner, '\r') >= 0 {
				d.bare = true
			}
			d.content(seg)
			i += j + 1
		}
	}
	return len(p), false
}

var crByte = [1]byte{'\r'}
