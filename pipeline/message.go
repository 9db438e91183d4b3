package pipeline

import "bytes"

// Message is one message to send, built once and sent as often as wanted. Its fixed body is kept in
// both wire forms, dot-stuffed for DATA and raw for BDAT, so sending it copies and allocates nothing.
// Fields may be changed between sends (a load generator changes From, To and Header per message).
type Message struct {
	// From is the reverse-path mailbox without brackets; empty sends the null reverse-path <>.
	From []byte
	// To holds the forward-path mailboxes, without brackets.
	To [][]byte
	// Header is sent before the body: whole lines ending in CRLF, typically the headers that change
	// per message. It may be empty.
	Header []byte
	// EightBit sends BODY=8BITMIME and UTF8 sends SMTPUTF8 when the server offers them.
	EightBit, UTF8 bool

	body    []byte // raw, ends with CRLF
	stuffed []byte // dot-stuffed, ends with CRLF, no end-of-data line
}

// SetBody sets the fixed part of the message (after Header): CRLF lines. A final CRLF is added
// when missing. It prepares the dot-stuffed form once.
func (m *Message) SetBody(raw []byte) {
	if len(raw) > 0 && !bytes.HasSuffix(raw, crlf) {
		raw = append(raw[:len(raw):len(raw)], crlf...)
	}
	m.body = raw
	m.stuffed = appendStuffed(make([]byte, 0, len(raw)+len(raw)/64+8), raw, true)
}

// Body returns the raw fixed part, as SetBody left it.
func (m *Message) Body() []byte { return m.body }

// Size is the message's size in octets: Header plus body, unstuffed, as SIZE= declares it.
func (m *Message) Size() int { return len(m.Header) + len(m.body) }

var (
	crlf       = []byte("\r\n")
	endOfData  = []byte(".\r\n")
	emptyStuff = []byte{}
)

// appendStuffed appends p to dst with every line that starts with '.' given one more '.'
// (RFC 5321 §4.5.2). atLineStart says whether p starts at the start of a line.
func appendStuffed(dst, p []byte, atLineStart bool) []byte {
	if atLineStart && len(p) > 0 && p[0] == '.' {
		dst = append(dst, '.')
	}
	for {
		i := bytes.Index(p, []byte("\n."))
		if i < 0 {
			return append(dst, p...)
		}
		dst = append(dst, p[:i+1]...)
		dst = append(dst, '.')
		p = p[i+1:]
	}
}

// Stuff returns raw dot-stuffed, for callers that write DATA themselves.
func Stuff(raw []byte) []byte { return appendStuffed(nil, raw, true) }
