package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Mode says whether to use an ESMTP extension: Auto uses it when the server offers it, On requires
// it (a session whose server does not offer it fails), Off never uses it.
type Mode uint8

const (
	Auto Mode = iota
	On
	Off
)

func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case On:
		return "on"
	case Off:
		return "off"
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// ParseMode parses "auto", "on" or "off".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "auto", "":
		return Auto, nil
	case "on", "true", "yes":
		return On, nil
	case "off", "false", "no":
		return Off, nil
	}
	return 0, fmt.Errorf("%q is not auto, on or off", s)
}

// Timeouts bound each wait for the server, with RFC 5321 §4.5.3.2's client defaults.
type Timeouts struct {
	Connect   time.Duration // the TCP or unix connect; default 30s
	Greeting  time.Duration // the 220 greeting; default 5m (§4.5.3.2.1)
	Command   time.Duration // EHLO, MAIL, RCPT, RSET, NOOP, QUIT replies; default 5m (§4.5.3.2.2, .3)
	DataInit  time.Duration // the 354 after DATA; default 2m (§4.5.3.2.4)
	DataBlock time.Duration // each write of message data; default 3m (§4.5.3.2.5)
	DataTerm  time.Duration // the reply after the end of data or a BDAT chunk; default 10m (§4.5.3.2.6)
}

// DefaultTimeouts are RFC 5321's.
var DefaultTimeouts = Timeouts{
	Connect:   30 * time.Second,
	Greeting:  5 * time.Minute,
	Command:   5 * time.Minute,
	DataInit:  2 * time.Minute,
	DataBlock: 3 * time.Minute,
	DataTerm:  10 * time.Minute,
}

// All sets every timeout to d.
func (t *Timeouts) All(d time.Duration) {
	*t = Timeouts{d, d, d, d, d, d}
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	return Timeouts{pick(t.Connect, d.Connect), pick(t.Greeting, d.Greeting), pick(t.Command, d.Command),
		pick(t.DataInit, d.DataInit), pick(t.DataBlock, d.DataBlock), pick(t.DataTerm, d.DataTerm)}
}

// Options configure a Conn. The zero value is usable.
type Options struct {
	// LocalName is the name sent with EHLO/HELO. Default "smtpbench.localhost".
	LocalName string
	// Pipelining: Auto uses RFC 2920 command groups when the server offers PIPELINING.
	Pipelining Mode
	// BDAT sends messages with BDAT (RFC 3030) instead of DATA; the server must offer CHUNKING.
	BDAT bool
	// Timeouts; zero fields take DefaultTimeouts.
	Timeouts Timeouts
	// ReadBuffer is the reply buffer's initial size; default 1 KiB. It grows when a reply line
	// needs it, up to 4 KiB: a longer line is a protocol error.
	ReadBuffer int
	// Dialer dials; nil means a net.Dialer with Timeouts.Connect.
	Dialer Dialer
}

// Dialer is what Dial uses to connect; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

const defaultLocalName = "smtpbench.localhost"

func (o Options) withDefaults() Options {
	if o.LocalName == "" {
		o.LocalName = defaultLocalName
	}
	o.Timeouts = o.Timeouts.withDefaults()
	if o.ReadBuffer <= 0 {
		o.ReadBuffer = 1 << 10
	}
	o.ReadBuffer = max(o.ReadBuffer, 256)
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{Timeout: o.Timeouts.Connect}
	}
	return o
}

// Target is where to connect: a network ("tcp" or "unix") and an address.
type Target struct {
	Network, Address string
}

func (t Target) String() string {
	if t.Network == "unix" {
		return "unix:" + t.Address
	}
	return t.Address
}

// ParseTarget parses "host:port", "[v6]:port" or "unix:/path".
func ParseTarget(s string) (Target, error) {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if p == "" {
			return Target{}, errors.New("unix: needs a socket path")
		}
		return Target{"unix", p}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Target{}, fmt.Errorf("%q is not host:port, [v6]:port or unix:/path", s)
	}
	if host == "" {
		return Target{}, fmt.Errorf("%q has no host", s)
	}
	if port == "" {
		return Target{}, fmt.Errorf("%q has no port", s)
	}
	return Target{"tcp", s}, nil
}
