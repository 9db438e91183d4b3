// Package loadgen is smtpbench's workload: a pool of SMTP sessions that sends generated messages to
// a server and times every phase into per-shard results.Recorders, until a message count, a
// duration or the caller's context stops it.
package loadgen

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/smtpbench/smtpbench/pipeline"
	"github.com/smtpbench/smtpbench/results"
)

// Config describes a run. Zero fields take the defaults their comments give.
type Config struct {
	// Target is the server. It must be set (the CLI starts the bundled sink when none is given).
	Target pipeline.Target `json:"target"`
	// Sessions is the number of concurrent sessions (closed model). Default 10.
	Sessions int `json:"sessions"`
	// Messages stops the run after this many messages (0: no count limit).
	Messages int64 `json:"messages,omitempty"`
	// Duration stops the run after this long (0: no time limit). With neither Messages nor
	// Duration, the run lasts DefaultDuration.
	Duration time.Duration `json:"duration,omitempty"`
	// PerConn is the number of messages a session sends on one connection before QUIT and a new
	// connection. 0 keeps the connection for the whole run; 1 is a new connection per message.
	PerConn int `json:"per_conn,omitempty"`

	// Size is the number of body octets after the headers. Default 1024.
	Size int `json:"size"`
	// Recipients per message. Default 1.
	Recipients int `json:"recipients"`
	// From and To are address templates: "{n}" in From is the message number, in To the
	// recipient number (every recipient of the run gets a new one, like smtp-source -N).
	// Defaults "sender@example.com" and "rcpt{n}@example.org". From "<>" sends the null
	// reverse-path.
	From string `json:"from"`
	To   string `json:"to"`
	// LocalName is the EHLO name. Default "smtpbench.localhost".
	LocalName string `json:"ehlo_name"`
	// Pipelining and BDAT choose how messages are sent (see pipeline.Options).
	Pipelining pipeline.Mode `json:"pipelining"`
	BDAT       bool          `json:"bdat"`
	// Chain, with PIPELINING and DATA, sends a message's data and end in the same write as the
	// next message's MAIL, RCPT and DATA (RFC 2920 §3.1): one round trip per message instead of
	// two when messages follow each other. Run's CLI turns it on; off, each message ends alone.
	Chain bool `json:"chain"`
	// Timeouts bound every wait; zero fields take RFC 5321's.
	Timeouts pipeline.Timeouts `json:"timeouts"`
	// Retries is how often a temporary failure (a 4xx) is retried, for the recipients it
	// deferred, after RetryBackoff·2^(k-1) (with jitter) for retry k. Default 0: no retries.
	Retries      int           `json:"retries,omitempty"`
	RetryBackoff time.Duration `json:"retry_backoff,omitempty"`

	// Rate, when positive, makes the run open: message k is due at its slot, start + k/Rate (or
	// Poisson arrivals at that rate), whatever the server's pace. Stages ramp the rate instead
	// (they override Rate and Duration). Sessions then is the pool's initial size, and it grows
	// up to MaxSessions; a message whose slot finds every session busy waits in a backlog of at
	// most MaxBacklog (late), beyond which it is dropped.
	Rate        float64 `json:"rate,omitempty"`
	Stages      []Stage `json:"stages,omitempty"`
	Arrival     Arrival `json:"arrival,omitempty"`
	MaxSessions int     `json:"max_sessions,omitempty"` // default max(100, Sessions)
	MaxBacklog  int     `json:"max_backlog,omitempty"`  // default one second of the peak rate, at least 100
	// Warmup leaves the first part of the run out of the histograms and totals (the timeline
	// still shows it).
	Warmup time.Duration `json:"warmup,omitempty"`

	// Grace is how long messages in flight may take to finish once the run is told to stop;
	// after it their connections are closed. Default 5s.
	Grace time.Duration `json:"grace"`
	// Seed makes generated content reproducible. Default 1.
	Seed uint64 `json:"seed"`
	// RunID tags every message's trace header. Default: derived from the start time.
	RunID string `json:"run_id"`

	// Abort, when closed after the run was told to stop, ends the grace period at once: the
	// connections still in a transaction are closed (a second Ctrl-C).
	Abort <-chan struct{} `json:"-"`
	// OnInterval, when set, is called once per interval (a second) from one goroutine with what
	// the interval recorded; rec is reused afterwards and must not be kept.
	OnInterval func(rec *results.Recorder, from, to time.Time) `json:"-"`
	// Progress, when set, is called once per interval with the live figures.
	Progress func(Progress) `json:"-"`
}

// Open reports whether the run follows an arrival schedule (the open model).
func (c Config) Open() bool { return c.Rate > 0 || len(c.Stages) > 0 }

// stages returns the schedule of an open run: the configured stages, or one stage at Rate for
// the duration (or for as long as Messages take at Rate).
func (c Config) stages() []Stage {
	if len(c.Stages) > 0 {
		return c.Stages
	}
	d := c.Duration
	if c.Messages > 0 {
		// As long as the messages take at Rate, with room for the last slot: one more for evenly
		// spaced arrivals; for Poisson ones, whose Nth arrival is itself random (N ± √N expected
		// arrivals), 10√N + 10 more, so that the count, not the schedule, ends the run.
		room := 1.0
		if c.Arrival == ArrivalPoisson {
			room = 10*math.Sqrt(float64(c.Messages)) + 10
		}
		byCount := time.Duration((float64(c.Messages) + room) / c.Rate * float64(time.Second))
		if d == 0 || byCount < d {
			d = byCount
		}
	}
	return []Stage{{Duration: d, From: c.Rate, To: c.Rate}}
}

// peakRate is the highest rate of the schedule.
func (c Config) peakRate() float64 {
	peak := c.Rate
	for _, st := range c.Stages {
		peak = max(peak, st.From, st.To)
	}
	return peak
}

// Describe says in a line what the load is.
func (c Config) Describe(pipelined, bdat bool) string {
	d := c.WithDefaults()
	s := fmt.Sprintf("%d sessions, %s body, %d recipient", d.Sessions, sizeString(d.Size), d.Recipients)
	if d.Recipients != 1 {
		s += "s"
	}
	switch {
	case pipelined && bdat:
		s += ", PIPELINING+BDAT"
	case pipelined && d.Chain:
		s += ", PIPELINING+DATA chained"
	case pipelined:
		s += ", PIPELINING+DATA"
	case bdat:
		s += ", BDAT"
	default:
		s += ", DATA"
	}
	if d.PerConn > 0 {
		s += fmt.Sprintf(", %d per connection", d.PerConn)
	}
	return s
}

func sizeString(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// Defaults.
const (
	DefaultSessions   = 10
	DefaultSize       = 1024
	DefaultRecipients = 1
	DefaultFrom       = "sender@example.com"
	DefaultTo         = "rcpt{n}@example.org"
	DefaultDuration   = 10 * time.Second
	DefaultGrace      = 5 * time.Second
	// DefaultRetryBackoff is the wait before a first retry: RFC 5321 §4.5.4's 30 minutes, scaled
	// down to benchmark time.
	DefaultRetryBackoff = time.Second
)

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Sessions == 0 {
		c.Sessions = DefaultSessions
	}
	if c.Messages == 0 && c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Recipients == 0 {
		c.Recipients = DefaultRecipients
	}
	if c.From == "" {
		c.From = DefaultFrom
	}
	if c.To == "" {
		c.To = DefaultTo
	}
	if c.LocalName == "" {
		c.LocalName = "smtpbench.localhost"
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Retries > 0 && c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if len(c.Stages) > 0 {
		c.Duration = 0
		for _, st := range c.Stages {
			c.Duration += st.Duration
		}
	}
	if c.Open() {
		if c.MaxSessions == 0 {
			c.MaxSessions = max(100, c.Sessions)
		}
		if c.MaxBacklog == 0 {
			c.MaxBacklog = max(100, int(c.peakRate()))
		}
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// FieldError names the Config field that cannot work.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return "loadgen: " + e.Field + " " + e.Msg }

// Validate reports every setting that cannot work, each naming its field.
func (c Config) Validate() error {
	d := c.WithDefaults()
	var errs []error
	check := func(ok bool, field, format string, args ...any) {
		if !ok {
			errs = append(errs, &FieldError{field, fmt.Sprintf(format, args...)})
		}
	}
	check(d.Target.Address != "", "Target", "is required")
	check(d.Target.Network == "tcp" || d.Target.Network == "unix", "Target", "network %q is not tcp or unix", d.Target.Network)
	check(d.Sessions >= 1 && d.Sessions <= 1_000_000, "Sessions", "must be 1 to 1000000, got %d", d.Sessions)
	check(d.Messages >= 0, "Messages", "must not be negative, got %d", d.Messages)
	check(d.Duration >= 0, "Duration", "must not be negative, got %v", d.Duration)
	check(d.PerConn >= 0, "PerConn", "must not be negative, got %d", d.PerConn)
	check(d.Size >= 2 && d.Size <= 1<<30, "Size", "must be 2 octets (one empty line) to 1 GiB, got %d", d.Size)
	check(d.Recipients >= 1 && d.Recipients <= 100_000, "Recipients", "must be 1 to 100000, got %d", d.Recipients)
	check(d.Grace >= 0, "Grace", "must not be negative, got %v", d.Grace)
	check(d.Retries >= 0 && d.Retries <= 100, "Retries", "must be 0 to 100, got %d", d.Retries)
	check(d.Rate >= 0 && d.Rate <= 10_000_000, "Rate", "must be 0 to 10000000 messages per second, got %g", d.Rate)
	for i, st := range d.Stages {
		check(st.Duration > 0 && st.From >= 0 && st.To >= 0, "Stages", "stage %d needs a positive duration and rates of at least 0", i+1)
	}
	check(d.Warmup >= 0, "Warmup", "must not be negative, got %v", d.Warmup)
	if d.Open() {
		check(d.MaxSessions >= d.Sessions && d.MaxSessions <= 1_000_000, "MaxSessions",
			"must be at least Sessions (%d) and at most 1000000, got %d", d.Sessions, d.MaxSessions)
		check(d.MaxBacklog >= 1 && d.MaxBacklog <= 10_000_000, "MaxBacklog", "must be 1 to 10000000, got %d", d.MaxBacklog)
		check(d.Warmup < d.Duration || d.Duration == 0, "Warmup", "%v is not shorter than the run (%v)", d.Warmup, d.Duration)
	}
	check(d.RetryBackoff >= 0, "RetryBackoff", "must not be negative, got %v", d.RetryBackoff)
	if _, err := parseTemplate(d.From, true); err != nil {
		check(false, "From", "%v", err)
	}
	if _, err := parseTemplate(d.To, false); err != nil {
		check(false, "To", "%v", err)
	}
	check(validLocalName(d.LocalName), "LocalName", "%q is not a host name", d.LocalName)
	return errors.Join(errs...)
}

func validLocalName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// template is an address with "{n}" placeholders, split around them.
type template struct {
	parts []string // literal parts; a number goes between consecutive parts
}

// parseTemplate checks an address template: a mailbox (local@domain) with no brackets or spaces,
// or "<>" for the null reverse-path when allowed.
func parseTemplate(s string, allowNull bool) (template, error) {
	if s == "<>" {
		if !allowNull {
			return template{}, errors.New("the null path <> is only for the sender")
		}
		return template{parts: []string{""}}, nil
	}
	if strings.ContainsAny(s, "<> \t\r\n") {
		return template{}, fmt.Errorf("%q: give the address without brackets or spaces", s)
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return template{}, fmt.Errorf("%q is not local@domain", s)
	}
	rest := strings.ReplaceAll(s, "{n}", "")
	if strings.ContainsAny(rest, "{}") {
		return template{}, fmt.Errorf("%q: the only placeholder is {n}", s)
	}
	return template{parts: strings.Split(s, "{n}")}, nil
}

// appendTo renders the template with n into b.
func (t template) appendTo(b []byte, n int64) []byte {
	for i, p := range t.parts {
		if i > 0 {
			b = appendInt(b, n)
		}
		b = append(b, p...)
	}
	return b
}

func appendInt(b []byte, n int64) []byte {
	if n == 0 {
		return append(b, '0')
	}
	var tmp [20]byte
	i := len(tmp)
	for n > 0 {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, tmp[i:]...)
}
