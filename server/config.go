package server

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Extension is one ESMTP extension the sink can advertise. Config.Disable switches them off.
type Extension uint16

const (
	ExtPipelining          Extension = 1 << iota // RFC 2920
	ExtSize                                      // RFC 1870
	Ext8BitMIME                                  // RFC 6152
	ExtSMTPUTF8                                  // RFC 6531
	ExtEnhancedStatusCodes                       // RFC 2034
	ExtChunking                                  // RFC 3030 (CHUNKING and BINARYMIME)
)

var extNames = [...]struct {
	ext  Extension
	name string
}{
	{ExtPipelining, "PIPELINING"},
	{ExtSize, "SIZE"},
	{Ext8BitMIME, "8BITMIME"},
	{ExtSMTPUTF8, "SMTPUTF8"},
	{ExtEnhancedStatusCodes, "ENHANCEDSTATUSCODES"},
	{ExtChunking, "CHUNKING"},
}

// ParseExtensions parses a comma-separated list of extension names (case-insensitive), as used by
// `serve --disable`.
func ParseExtensions(list string) (Extension, error) {
	var e Extension
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		found := false
		for _, n := range extNames {
			if strings.EqualFold(f, n.name) {
				e |= n.ext
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown extension %q (known: %s)", f, ExtensionNames())
		}
	}
	return e, nil
}

// ExtensionNames lists the extensions that can be switched off.
func ExtensionNames() string {
	names := make([]string, len(extNames))
	for i, n := range extNames {
		names[i] = n.name
	}
	return strings.Join(names, ", ")
}

// Mode says what the sink does with a message it accepts.
type Mode uint8

const (
	// Discard counts the message and throws it away. It is the default.
	Discard Mode = iota
	// Dump writes each accepted message to DumpDir as one .eml file, with a Received trace header
	// and the envelope in X-Smtpbench- headers.
	Dump
)

func (m Mode) String() string {
	switch m {
	case Discard:
		return "discard"
	case Dump:
		return "dump"
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// ParseMode parses "discard" or "dump".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "discard":
		return Discard, nil
	case "dump":
		return Dump, nil
	}
	return 0, fmt.Errorf("unknown mode %q (want discard or dump)", s)
}

// Defaults. The limits are RFC 5321 §4.5.3.1's minimums; the timeout is §4.5.3.2.7's.
const (
	DefaultAddr           = "127.0.0.1:2525"
	DefaultHostname       = "smtpbench.localhost"
	DefaultMaxLineLength  = 512 // §4.5.3.1.4, CRLF included
	DefaultMaxLocalPart   = 64  // §4.5.3.1.1
	DefaultMaxDomain      = 255 // §4.5.3.1.2
	DefaultMaxPath        = 256 // §4.5.3.1.3, brackets included
	DefaultMaxRecipients  = 100 // §4.5.3.1.8
	DefaultMaxMessageSize = 32 << 20
	DefaultMaxErrors      = 20
	DefaultMaxConns       = 10000
	DefaultCommandTimeout = 5 * time.Minute // §4.5.3.2.7
	DefaultDataTimeout    = 5 * time.Minute
	DefaultReadBuffer     = 4 << 10
	DefaultBodyBuffer     = 64 << 10
)

// Config configures a Server. The zero value is usable: every zero field takes the default its
// comment gives.
type Config struct {
	// Addr is where ListenAndServe listens: "host:port" for TCP or "unix:/path" for a unix socket.
	// Default DefaultAddr (loopback).
	Addr string
	// Hostname is the name the sink gives in its greeting, EHLO reply and Received headers.
	// Default DefaultHostname. The sink never looks names up.
	Hostname string
	// Disable lists the extensions not to advertise (and then not to accept).
	Disable Extension
	// ExpnAllowed makes EXPN answer 252 instead of 502.
	ExpnAllowed bool

	// MaxLineLength is the longest command line, CRLF included. Longer lines are read to their LF
	// and answered 500 5.5.2. Default 512.
	MaxLineLength int
	// MaxLocalPart, MaxDomain and MaxPath bound addresses in MAIL and RCPT (MaxDomain also the
	// EHLO/HELO name). Default 64, 255, 256.
	MaxLocalPart, MaxDomain, MaxPath int
	// MaxRecipients is the number of RCPTs accepted per message; more are answered 452 4.5.3.
	// Default 100.
	MaxRecipients int
	// MaxMessageSize is the largest message accepted, in octets after dot-unstuffing; it is
	// advertised with SIZE. A larger message is read to its end and answered 552 5.3.4.
	// Default 32 MiB.
	MaxMessageSize int64
	// MaxErrors is the number of protocol errors (500, 501, 502, 503, 504, 555 replies) a session
	// may make; the next one ends it with 421. Default 20.
	MaxErrors int
	// MaxConns bounds concurrent sessions; a connection beyond it is answered 421 4.3.2 at the
	// greeting and closed. Default 10000.
	MaxConns int

	// CommandTimeout ends a session that sends no complete command for this long with 421 4.4.2.
	// Default 5 minutes.
	CommandTimeout time.Duration
	// DataTimeout ends a session whose message data stalls for this long. Default 5 minutes.
	DataTimeout time.Duration

	// Mode says what happens to accepted mail. Default Discard.
	Mode Mode
	// DumpDir is the directory Dump writes to. Required with Dump.
	DumpDir string

	// ReadBuffer is the per-session buffer for commands, allocated from a pool; it is at least
	// MaxLineLength. Default 4 KiB.
	ReadBuffer int
	// BodyBuffer is the larger buffer a session borrows while a message body streams in, so a big
	// body takes few reads; 0 means the default, 64 KiB, and -1 means never borrow.
	BodyBuffer int

	// Faults make the sink misbehave on purpose: delays, error replies, disconnects,
	// greylisting, a bandwidth limit, stalls. The zero value injects nothing.
	Faults Faults

	// EventLoops chooses the I/O driver. On Linux, TCP and unix listeners are served by event
	// loops (epoll), this many of them; 0 means DefaultEventLoops(). -1 serves each connection
	// from a goroutine of its own, which is also what other systems, ServeConn and dump mode use.
	// Keep GOMAXPROCS above the number of loops: a loop that waits in epoll_wait keeps its P only
	// while another is idle, and handing it over and back costs more than a message's work.
	EventLoops int

	// Logger receives errors that are not a client's fault (accept failures, dump write errors).
	// Default: discard them.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	setDefault(&c.Addr, DefaultAddr)
	setDefault(&c.Hostname, DefaultHostname)
	setDefault(&c.MaxLineLength, DefaultMaxLineLength)
	setDefault(&c.MaxLocalPart, DefaultMaxLocalPart)
	setDefault(&c.MaxDomain, DefaultMaxDomain)
	setDefault(&c.MaxPath, DefaultMaxPath)
	setDefault(&c.MaxRecipients, DefaultMaxRecipients)
	setDefault(&c.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&c.MaxErrors, DefaultMaxErrors)
	setDefault(&c.MaxConns, DefaultMaxConns)
	setDefault(&c.CommandTimeout, DefaultCommandTimeout)
	setDefault(&c.DataTimeout, DefaultDataTimeout)
	setDefault(&c.ReadBuffer, DefaultReadBuffer)
	setDefault(&c.BodyBuffer, DefaultBodyBuffer)
	c.ReadBuffer = max(c.ReadBuffer, c.MaxLineLength)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Validate reports the first setting that cannot work, naming its field. Zero fields are valid:
// they take their defaults.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	check := func(ok bool, field, format string, args ...any) {
		if !ok {
			errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
		}
	}
	check(validHostname(d.Hostname), "Hostname", "%q is not a domain name", d.Hostname)
	check(d.MaxLineLength >= 64, "MaxLineLength", "must be at least 64, got %d", d.MaxLineLength)
	check(d.MaxLocalPart >= 1, "MaxLocalPart", "must be positive, got %d", d.MaxLocalPart)
	check(d.MaxDomain >= 1, "MaxDomain", "must be positive, got %d", d.MaxDomain)
	check(d.MaxPath >= 3, "MaxPath", "must be at least 3, got %d", d.MaxPath)
	check(d.MaxPath <= d.MaxLineLength, "MaxPath", "%d does not fit in a command line of %d", d.MaxPath, d.MaxLineLength)
	check(d.MaxRecipients >= 1, "MaxRecipients", "must be positive, got %d", d.MaxRecipients)
	check(d.MaxMessageSize >= 1, "MaxMessageSize", "must be positive, got %d", d.MaxMessageSize)
	check(d.MaxErrors >= 1, "MaxErrors", "must be positive, got %d", d.MaxErrors)
	check(d.MaxConns >= 1, "MaxConns", "must be positive, got %d", d.MaxConns)
	check(d.CommandTimeout > 0, "CommandTimeout", "must be positive, got %v", d.CommandTimeout)
	check(d.DataTimeout > 0, "DataTimeout", "must be positive, got %v", d.DataTimeout)
	check(d.ReadBuffer <= 16<<20, "ReadBuffer", "%d is over 16 MiB", d.ReadBuffer)
	check(d.BodyBuffer == -1 || d.BodyBuffer >= d.ReadBuffer, "BodyBuffer",
		"must be -1 or at least ReadBuffer (%d), got %d", d.ReadBuffer, d.BodyBuffer)
	check(d.BodyBuffer <= 16<<20, "BodyBuffer", "%d is over 16 MiB", d.BodyBuffer)
	check(d.Mode == Discard || d.Mode == Dump, "Mode", "unknown mode %d", d.Mode)
	check(d.EventLoops >= -1 && d.EventLoops <= 1024, "EventLoops", "must be -1 to 1024, got %d", d.EventLoops)
	check(d.Mode != Dump || d.DumpDir != "", "DumpDir", "is required in dump mode")
	check(d.Disable&^(ExtPipelining|ExtSize|Ext8BitMIME|ExtSMTPUTF8|ExtEnhancedStatusCodes|ExtChunking) == 0,
		"Disable", "unknown extension bits %#x", d.Disable)
	if err := d.Faults.validate(); err != nil {
		errs = append(errs, &FieldError{Field: "Faults", Msg: err.Error()})
	}
	return errors.Join(errs...)
}

// FieldError is a Config field with a value that cannot work.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return "server: " + e.Field + " " + e.Msg }

// validHostname accepts what can follow "220 " and appear in Received: letters, digits, '-', '.'.
func validHostname(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
