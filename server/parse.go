package server

import "math"

// The command parser works on the bytes in the read buffer: nothing here allocates.

// splitCommand splits a command line (LF included) into its verb, packed as four lower-case
// letters, and its argument with the line ending and surrounding spaces removed. ok is false when
// the line does not start with a four-letter verb followed by a space or the end of the line.
func splitCommand(line []byte) (verb uint32, arg []byte, ok bool) {
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
		if n > 0 && line[n-1] == '\r' {
			n--
		}
	}
	line = line[:n]
	if len(line) < 4 {
		return 0, nil, false
	}
	for i := range 4 {
		c := line[i] | 0x20
		if c < 'a' || c > 'z' {
			return 0, nil, false
		}
		verb = verb<<8 | uint32(c)
	}
	if len(line) > 4 && line[4] != ' ' {
		return 0, nil, false
	}
	return verb, trimSpaces(line[4:]), true
}

// knownUnimplemented reports commands of RFC 5321 and its common extensions that the sink does not
// offer, so they get 502 rather than 500.
func knownUnimplemented(verb uint32, arg []byte) bool {
	switch verb {
	case 's'<<24 | 'e'<<16 | 'n'<<8 | 'd', 's'<<24 | 'o'<<16 | 'm'<<8 | 'l',
		's'<<24 | 'a'<<16 | 'm'<<8 | 'l', 't'<<24 | 'u'<<16 | 'r'<<8 | 'n',
		'a'<<24 | 'u'<<16 | 't'<<8 | 'h', 'e'<<24 | 't'<<16 | 'r'<<8 | 'n',
		'a'<<24 | 't'<<16 | 'r'<<8 | 'n':
		return true
	}
	return false
}

// isStartTLS reports whether a command line (LF included) is STARTTLS (RFC 3207): a common
// extension the sink does not offer, so it gets 502 like the others, though its verb is not four
// letters long.
func isStartTLS(line []byte) bool {
	n := len(line)
	for n > 0 && (line[n-1] == '\n' || line[n-1] == '\r' || line[n-1] == ' ' || line[n-1] == '\t') {
		n--
	}
	return equalFold(line[:n], "starttls")
}

func trimSpaces(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with a lower-case ASCII word, ignoring ASCII case in b.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c |= 0x20
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// cutPrefixFold removes a lower-case ASCII prefix from b, ignoring ASCII case in b.
func cutPrefixFold(b []byte, lower string) ([]byte, bool) {
	if len(b) < len(lower) || !equalFold(b[:len(lower)], lower) {
		return b, false
	}
	return b[len(lower):], true
}

// printableASCII reports whether b is visible ASCII and spaces, as a HELO argument must be.
func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// parseDecimal parses a non-negative decimal of at most 20 digits (RFC 1870 allows SIZE that
// long). A value past what an int64 holds saturates at math.MaxInt64: larger than any limit.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-9)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseBdat parses the argument of BDAT: "size" or "size LAST".
func parseBdat(arg []byte) (size int64, last bool, ok bool) {
	num := arg
	for i, c := range arg {
		if c == ' ' {
			num = arg[:i]
			rest := trimSpaces(arg[i:])
			if !equalFold(rest, "last") {
				return 0, false, false
			}
			last = true
			break
		}
	}
	if len(num) > 18 { // no chunk that long can be read to stay in step
		return 0, false, false
	}
	size, ok = parseDecimal(num)
	return size, last, ok
}

// nextParam splits the first "KEY[=VALUE]" off a space-separated parameter list. val is nil when
// there is no '='.
func nextParam(params []byte) (key, val, rest []byte) {
	end := len(params)
	for i, c := range params {
		if c == ' ' {
			end = i
			break
		}
	}
	kv := params[:end]
	rest = trimSpaces(params[end:])
	for i, c := range kv {
		if c == '=' {
			return kv[:i], kv[i+1:], rest
		}
	}
	return kv, nil, rest
}

// path is a parsed reverse-path or forward-path.
type path struct {
	path     []byte // from '<' to '>' inclusive, with any source route
	route    int    // the octets of a source route after '<' (RFC 5321 §3.3 says to ignore it)
	params   []byte // what follows the path, spaces trimmed
	nonASCII bool   // the mailbox has octets above 0x7f (needs SMTPUTF8)
}

// mailbox is the path without its source route and without the leading '<': "user@domain>",
// or ">" for the null path.
func (p *path) mailbox() []byte { return p.path[1+p.route:] }

// appendPath appends the path without its source route: "<user@domain>".
func (p *path) appendPath(b []byte) []byte { return append(append(b, '<'), p.mailbox()...) }

// parsePath parses a path at the start of s (RFC 5321 §4.1.2): "<>" (MAIL only), or "<" with an
// optional source route (accepted and ignored, §3.3), a mailbox and ">". A RCPT may also name the
// bare "<Postmaster>". It checks the lengths of §4.5.3.1 and returns the reply for a bad path.
func parsePath(s []byte, rcpt bool, cfg *Config) (p path, bad reply) {
	badSyntax := rBadSender
	if rcpt {
		badSyntax = rBadRcpt
	}
	if len(s) < 2 || s[0] != '<' {
		return p, badSyntax
	}
	i := 1
	if s[i] == '>' {
		if rcpt {
			return p, badSyntax
		}
		p.path, p.params = s[:2], trimSpaces(s[2:])
		if len(p.params) > 0 && s[2] != ' ' {
			return p, badSyntax
		}
		return p, 0
	}
	// A source route: "@one,@two:" before the mailbox.
	if s[i] == '@' {
		for i < len(s) && s[i] != ':' {
			if s[i] == '>' || s[i] == ' ' {
				return p, badSyntax
			}
			i++
		}
		if i == len(s) {
			return p, badSyntax
		}
		i++
	}
	start := i
	// The local part: a quoted string or a dot-string.
	if i < len(s) && s[i] == '"' {
		i++
		for {
			if i >= len(s) {
				return p, badSyntax
			}
			c := s[i]
			if c == '"' {
				i++
				break
			}
			if c == '\\' {
				i++
				if i >= len(s) || s[i] < ' ' || s[i] == 0x7f {
					return p, badSyntax
				}
			} else if c < ' ' || c == 0x7f {
				return p, badSyntax
			}
			if s[i] >= 0x80 {
				p.nonASCII = true
			}
			i++
		}
	} else {
		for i < len(s) && s[i] != '@' && s[i] != '>' {
			c := s[i]
			if c >= 0x80 {
				p.nonASCII = true
			} else if !atext(c) && c != '.' {
				return p, badSyntax
			}
			i++
		}
	}
	local := s[start:i]
	if len(local) == 0 || i >= len(s) {
		return p, badSyntax
	}
	if s[i] == '>' {
		// No domain: only <Postmaster> (§4.1.1.3), any case.
		if !rcpt || !equalFold(local, "postmaster") {
			return p, badSyntax
		}
	} else {
		i++ // '@'
		dstart := i
		if i < len(s) && s[i] == '[' {
			for i < len(s) && s[i] != ']' {
				c := s[i]
				if c < '!' || c > '~' || c == '\\' || (c == '[' && i != dstart) {
					return p, badSyntax
				}
				i++
			}
			if i >= len(s) {
				return p, badSyntax
			}
			i++ // ']'
		} else {
			prev := byte('.')
			for i < len(s) && s[i] != '>' {
				c := s[i]
				switch {
				case c >= 0x80:
					p.nonASCII = true
				case c == '.':
					if prev == '.' {
						return p, badSyntax
					}
				case c == '-' || c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z':
				default:
					return p, badSyntax
				}
				prev = c
				i++
			}
			if prev == '.' {
				return p, badSyntax
			}
		}
		if i >= len(s) || s[i] != '>' {
			return p, badSyntax
		}
		if i-dstart > cfg.MaxDomain {
			return p, rDomainTooLong
		}
	}
	if len(local) > cfg.MaxLocalPart {
		return p, rLocalPartTooLong
	}
	// i is at '>'. The path's length counts the brackets and any source route.
	if i+1 > cfg.MaxPath {
		return p, rPathTooLong
	}
	if i+1 < len(s) && s[i+1] != ' ' {
		return p, badSyntax
	}
	p.path, p.route = s[:i+1], start-1
	p.params = trimSpaces(s[i+1:])
	return p, 0
}

// atext reports the characters RFC 5322 allows in an atom.
func atext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '/', '=', '?', '^', '_', '`', '{', '|', '}', '~':
		return true
	}
	return false
}
