package pipeline

import (
	"errors"
	"fmt"
	"strconv"
)

// EnhancedCode is an RFC 3463 enhanced status code, class.subject.detail; the zero value means the
// reply had none.
type EnhancedCode struct {
	Class, Subject, Detail uint16
}

// IsZero reports whether the reply carried no enhanced code.
func (e EnhancedCode) IsZero() bool { return e.Class == 0 }

func (e EnhancedCode) String() string {
	if e.IsZero() {
		return ""
	}
	return strconv.Itoa(int(e.Class)) + "." + strconv.Itoa(int(e.Subject)) + "." + strconv.Itoa(int(e.Detail))
}

// Reply is a server's reply: its code and enhanced code. The text is not kept, so reading a reply
// allocates nothing; Conn.LastText has the text of the most recent one.
type Reply struct {
	Code     uint16
	Enhanced EnhancedCode
}

// OK reports a 2xx reply; Intermediate a 3xx one.
func (r Reply) OK() bool           { return r.Code >= 200 && r.Code < 300 }
func (r Reply) Intermediate() bool { return r.Code >= 300 && r.Code < 400 }

// Temporary reports a 4xx reply: the command may succeed if tried again later.
func (r Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// Permanent reports a 5xx reply.
func (r Reply) Permanent() bool { return r.Code >= 500 && r.Code < 600 }

// IsZero reports a reply that was never received.
func (r Reply) IsZero() bool { return r.Code == 0 }

func (r Reply) String() string {
	if r.Enhanced.IsZero() {
		return strconv.Itoa(int(r.Code))
	}
	return strconv.Itoa(int(r.Code)) + " " + r.Enhanced.String()
}

// ReplyError is a negative reply as an error value, for callers that want one.
type ReplyError struct {
	Reply
	Command string // the command it answered, like "RCPT"
	Text    string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("%s: %s %s", e.Command, e.Reply, e.Text)
}

// ErrorKind classifies a failure that is not a reply, so it can be counted without its text.
type ErrorKind uint8

const (
	KindOther    ErrorKind = iota
	KindTimeout            // a read or write deadline passed
	KindClosed             // the server closed the connection (EOF)
	KindReset              // connection reset or broken pipe
	KindRefused            // the connection was refused
	KindProtocol           // a malformed reply, or one that makes no sense here
	KindDial               // the dial failed another way (no route, DNS…)
	KindCanceled           // the caller's context ended
	numKinds
)

var kindNames = [numKinds]string{"other", "timeout", "closed", "reset", "refused", "protocol", "dial", "canceled"}

func (k ErrorKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "kind" + strconv.Itoa(int(k))
}

// Error is a failure of the connection or of the protocol, with the step it happened in.
type Error struct {
	Step Step
	Kind ErrorKind
	Err  error
}

func (e *Error) Error() string {
	return e.Step.String() + ": " + e.Kind.String() + ": " + e.Err.Error()
}
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of err: an *Error's own kind, or a classification of a raw error.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return classify(err)
}

// errMalformed is a reply that does not follow RFC 5321 §4.2.
var errMalformed = errors.New("malformed reply")

// parseReplyLine parses one reply line (its CRLF or LF included). It returns the code, whether
// more lines follow ("250-"), and the text after the code.
func parseReplyLine(line []byte) (code uint16, more bool, text []byte, err error) {
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
		if n > 0 && line[n-1] == '\r' {
			n--
		}
	}
	line = line[:n]
	if len(line) < 3 {
		return 0, false, nil, errMalformed
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, nil, errMalformed
		}
	}
	code = uint16(line[0]-'0')*100 + uint16(line[1]-'0')*10 + uint16(line[2]-'0')
	if code < 200 || code > 599 {
		return 0, false, nil, errMalformed
	}
	if len(line) == 3 {
		return code, false, nil, nil
	}
	switch line[3] {
	case ' ':
	case '-':
		more = true
	default:
		return 0, false, nil, errMalformed
	}
	return code, more, line[4:], nil
}

// parseEnhanced parses an RFC 3463 code at the start of text when its class matches the reply's
// first digit ("2.1.0 Ok" for a 250).
func parseEnhanced(code uint16, text []byte) EnhancedCode {
	var parts [3]uint16
	i := 0
	for p := range 3 {
		start := i
		for i < len(text) && text[i] >= '0' && text[i] <= '9' && i-start < 3 {
			parts[p] = parts[p]*10 + uint16(text[i]-'0')
			i++
		}
		if i == start {
			return EnhancedCode{}
		}
		if p < 2 {
			if i >= len(text) || text[i] != '.' {
				return EnhancedCode{}
			}
			i++
		}
	}
	if i < len(text) && text[i] != ' ' {
		return EnhancedCode{}
	}
	if parts[0] != code/100 {
		return EnhancedCode{}
	}
	return EnhancedCode{parts[0], parts[1], parts[2]}
}
