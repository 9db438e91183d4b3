package loadgen

import (
	"math/rand/v2"
	"time"

	"github.com/smtpbench/smtpbench/pipeline"
)

// words are the vocabulary of generated bodies: ordinary text, so compression and content
// filters on the server see something like mail.
var words = []string{
	"the", "message", "server", "queue", "delivery", "of", "and", "to", "a", "in", "is", "that", "for",
	"it", "with", "as", "was", "on", "be", "at", "by", "this", "had", "not", "are", "but", "from", "or",
	"have", "an", "they", "which", "one", "you", "were", "all", "we", "her", "she", "there", "would",
	"their", "will", "when", "who", "him", "been", "has", "more", "if", "no", "out", "do", "so", "can",
	"what", "up", "said", "about", "other", "into", "than", "its", "time", "only", "could", "new",
	"them", "man", "some", "these", "then", "two", "first", "may", "any", "like", "now", "my", "such",
	"make", "over", "our", "even", "most", "me", "state", "after", "also", "made", "many", "did",
	"must", "before", "back", "see", "through", "way", "where", "get", "much", "go", "well", "your",
	"know", "should", "down", "work", "year", "because", "come", "people", "just", "say", "each",
	"those", "take", "day", "good", "how", "long", "Mr", "own", "too", "little", "use", "US", "very",
	"great", "still", "men", "here", "life", "both", "between", "old", "under", "last", "never",
	"place", "same", "another", "think", "house", "while", "high", "right", "might", "came", "off",
	"find", "states", "since", "used", "give", "against", "three", "himself", "look", "few",
	"general", "hand", "school", "part", "small", "American", "home", "during", "number", "again",
}

// buildBody returns size octets of text in CRLF lines of at most 78 octets (well under the 998 of
// RFC 5322), every tenth line starting with "." so dot-stuffing is exercised. It is generated once
// per run from seed.
func buildBody(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, 0, size)
	for line := 0; len(b) < size; line++ {
		start := len(b)
		if line%10 == 9 {
			b = append(b, '.')
		}
		width := 50 + rng.IntN(28)
		for len(b)-start < width {
			w := words[rng.IntN(len(words))]
			if len(b) > start && b[len(b)-1] != '.' {
				if len(b)-start+1+len(w) > 78 {
					break // the line is full
				}
				b = append(b, ' ')
			}
			b = append(b, w...)
		}
		b = append(b, '\r', '\n')
	}
	// Cut to size, ending with CRLF so the message ends at a line boundary (size is at least 2).
	b = b[:size]
	b[size-2], b[size-1] = '\r', '\n'
	if size >= 3 && b[size-3] == '\r' {
		b[size-3] = 'x' // no lone CR before the final CRLF
	}
	return b
}

// fixedPart is what every message of a run shares after its per-message header: From, Date,
// Subject and MIME headers, the blank line, and the body.
func fixedPart(from string, size int, seed uint64, start time.Time, runID string) []byte {
	var b []byte
	fromHdr := from
	if from == "<>" {
		fromHdr = "MAILER-DAEMON@example.com"
	}
	b = append(b, "From: <"...)
	b = append(b, fromHdr...)
	b = append(b, ">\r\nDate: "...)
	b = append(b, start.Format(time.RFC1123Z)...)
	b = append(b, "\r\nSubject: smtpbench run "...)
	b = append(b, runID...)
	b = append(b, "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"...)
	return append(b, buildBody(size, seed)...)
}

// composer renders a worker's messages: envelope and per-message headers from the templates and
// the message number, into buffers it reuses, so composing allocates nothing.
type composer struct {
	from, to template
	nullFrom bool
	rcpts    int
	runID    string
	msg      pipeline.Message
	fromBuf  []byte
	toBuf    []byte
	ends     []int // where each recipient ends in toBuf
	header   []byte
}

func newComposer(cfg *Config, fixed *pipeline.Message) *composer {
	from, _ := parseTemplate(cfg.From, true)
	to, _ := parseTemplate(cfg.To, false)
	c := &composer{from: from, to: to, nullFrom: cfg.From == "<>", rcpts: cfg.Recipients, runID: cfg.RunID}
	c.msg = *fixed // shares the prepared body
	c.msg.To = make([][]byte, cfg.Recipients)
	c.ends = make([]int, cfg.Recipients)
	return c
}

// only keeps the recipients at the given indexes (ascending) of the message just composed.
func (c *composer) only(idx []int) {
	for j, i := range idx {
		c.msg.To[j] = c.msg.To[i]
	}
	c.msg.To = c.msg.To[:len(idx)]
}

// compose prepares message number n (counting from 0).
func (c *composer) compose(n int64) *pipeline.Message {
	c.msg.To = c.msg.To[:c.rcpts]
	c.fromBuf = c.fromBuf[:0]
	if !c.nullFrom {
		c.fromBuf = c.from.appendTo(c.fromBuf, n)
	}
	c.msg.From = c.fromBuf
	c.toBuf = c.toBuf[:0]
	for i := range c.rcpts {
		c.toBuf = c.to.appendTo(c.toBuf, n*int64(c.rcpts)+int64(i))
		c.ends[i] = len(c.toBuf)
	}
	prev := 0
	for i, end := range c.ends { // toBuf may have moved while it grew: slice it only now
		c.msg.To[i] = c.toBuf[prev:end:end]
		prev = end
	}
	h := c.header[:0]
	h = append(h, "Message-ID: <"...)
	h = appendInt(h, n)
	h = append(h, '.')
	h = append(h, c.runID...)
	h = append(h, "@smtpbench.localhost>\r\nX-Smtpbench-Trace: run="...)
	h = append(h, c.runID...)
	h = append(h, " seq="...)
	h = appendInt(h, n)
	h = append(h, "\r\nTo: <"...)
	h = append(h, c.msg.To[0]...)
	h = append(h, ">\r\n"...)
	c.header = h
	c.msg.Header = h
	return &c.msg
}
