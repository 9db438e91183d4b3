package server

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// FaultPoint is a moment of a session where a fault can be injected.
type FaultPoint uint8

const (
	AtConnect FaultPoint = iota // before the greeting
	AtEHLO
	AtHELO
	AtMail
	AtRcpt
	AtData // the reply to DATA (354)
	AtDot  // the reply that ends a message: after the end of DATA, or to BDAT LAST
	AtBdat // the reply to a BDAT chunk that does not end the message
	AtRset
	AtQuit
	numFaultPoints
)

var faultPointNames = [numFaultPoints]string{"connect", "ehlo", "helo", "mail", "rcpt", "data", "dot", "bdat", "rset", "quit"}

func (p FaultPoint) String() string {
	if p < numFaultPoints {
		return faultPointNames[p]
	}
	return "point" + strconv.Itoa(int(p))
}

// ParseFaultPoint parses a point's name: connect, ehlo, helo, mail, rcpt, data, dot, bdat, rset,
// quit.
func ParseFaultPoint(s string) (FaultPoint, error) {
	for i, n := range faultPointNames {
		if strings.EqualFold(s, n) {
			return FaultPoint(i), nil
		}
	}
	return 0, fmt.Errorf("unknown point %q (want one of %s)", s, strings.Join(faultPointNames[:], ", "))
}

// DistKind is the shape of a delay distribution.
type DistKind uint8

const (
	DistNone        DistKind = iota
	DistFixed                // always A
	DistUniform              // uniform in [A, B]
	DistExponential          // exponential with mean A
)

// Dist is a delay distribution.
type Dist struct {
	Kind DistKind
	A, B time.Duration
}

// ParseDist parses "50ms" (fixed), "10ms..100ms" (uniform) or "exp:50ms" (exponential, mean 50ms).
func ParseDist(s string) (Dist, error) {
	s = strings.TrimSpace(s)
	if mean, ok := strings.CutPrefix(s, "exp:"); ok {
		d, err := time.ParseDuration(mean)
		if err != nil || d <= 0 {
			return Dist{}, fmt.Errorf("%q: exp: takes a positive mean like exp:50ms", s)
		}
		return Dist{DistExponential, d, 0}, nil
	}
	if lo, hi, ok := strings.Cut(s, ".."); ok {
		a, err1 := time.ParseDuration(lo)
		b, err2 := time.ParseDuration(hi)
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return Dist{}, fmt.Errorf("%q: a uniform range is MIN..MAX like 10ms..100ms", s)
		}
		return Dist{DistUniform, a, b}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return Dist{}, fmt.Errorf("%q is not a delay: 50ms, 10ms..100ms or exp:50ms", s)
	}
	return Dist{DistFixed, d, 0}, nil
}

func (d Dist) String() string {
	switch d.Kind {
	case DistFixed:
		return d.A.String()
	case DistUniform:
		return d.A.String() + ".." + d.B.String()
	case DistExponential:
		return "exp:" + d.A.String()
	}
	return "none"
}

// sample draws a delay in nanoseconds.
func (d Dist) sample(rng *rand.PCG) int64 {
	switch d.Kind {
	case DistFixed:
		return int64(d.A)
	case DistUniform:
		return int64(d.A) + int64(unitFloat(rng)*float64(d.B-d.A))
	case DistExponential:
		return int64(-math.Log(1-unitFloat(rng)) * float64(d.A))
	}
	return 0
}

// unitFloat is uniform in [0, 1).
func unitFloat(rng *rand.PCG) float64 { return float64(rng.Uint64()>>11) * 0x1p-53 }

// PointFault is what is injected at one point. For each command at that point the sink draws once:
// with probability Disconnect it closes the connection (after a 421 when Disconnect421), else with
// probability Reply it answers ReplyCode/ReplyText instead; then it waits Delay before answering.
type PointFault struct {
	Delay         Dist
	Reply         float64 // probability
	ReplyCode     int     // 4xx or 5xx
	ReplyText     string  // after the code, e.g. "4.3.0 Try again later"
	Disconnect    float64 // probability
	Disconnect421 bool
}

func (f PointFault) active() bool {
	return f.Delay.Kind != DistNone || f.Reply > 0 || f.Disconnect > 0
}

// Faults make the sink misbehave on purpose. The zero value injects nothing.
type Faults struct {
	Points [numFaultPoints]PointFault
	// Greylist, when positive, answers the first RCPT of each (sender, recipient) pair with
	// 450 4.7.1 and accepts it once it is retried at least this long after.
	Greylist time.Duration
	// Bandwidth, when positive, limits each connection to this many octets per second in each
	// direction: a tarpit.
	Bandwidth int64
	// StallAt and StallFor pause every reply for StallFor, StallAt after the server starts
	// serving. Server.Stall does the same on demand (serve does it on SIGUSR1).
	StallAt, StallFor time.Duration
	// StopAfterMessages and StopAfterSessions make the server stop (gracefully) once it accepted
	// that many messages or sessions, like smtp-sink -M and -n. Server.Stopped tells.
	StopAfterMessages, StopAfterSessions int64
	// Seed makes each connection's random draws reproducible: connection n uses Seed and n.
	Seed uint64
}

// Active reports whether any fault is configured.
func (f *Faults) Active() bool {
	for _, p := range f.Points {
		if p.active() {
			return true
		}
	}
	return f.Greylist > 0 || f.Bandwidth > 0 || f.StallFor > 0 || f.StopAfterMessages > 0 || f.StopAfterSessions > 0
}

func (f *Faults) validate() error {
	var errs []error
	for i, p := range f.Points {
		pt := FaultPoint(i)
		if p.Reply < 0 || p.Reply > 1 || p.Disconnect < 0 || p.Disconnect > 1 || p.Reply+p.Disconnect > 1 {
			errs = append(errs, fmt.Errorf("%s: probabilities must be within 0..1 and add up to at most 1", pt))
		}
		if p.Reply > 0 && (p.ReplyCode < 400 || p.ReplyCode > 599) {
			errs = append(errs, fmt.Errorf("%s: a fault reply must be 4xx or 5xx, got %d", pt, p.ReplyCode))
		}
		if p.Delay.Kind != DistNone && (p.Delay.A < 0 || p.Delay.B < 0) {
			errs = append(errs, fmt.Errorf("%s: negative delay", pt))
		}
	}
	if f.Greylist < 0 || f.Bandwidth < 0 || f.StallAt < 0 || f.StallFor < 0 || f.StopAfterMessages < 0 || f.StopAfterSessions < 0 {
		errs = append(errs, errors.New("greylist, bandwidth, stall and stop-after settings must not be negative"))
	}
	return errors.Join(errs...)
}

// ParseProbability parses "0.05", "5%" or "1/20".
func ParseProbability(s string) (float64, error) {
	s = strings.TrimSpace(s)
	var p float64
	var err error
	switch {
	case strings.HasSuffix(s, "%"):
		p, err = strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		p /= 100
	case strings.Contains(s, "/"):
		num, den, _ := strings.Cut(s, "/")
		var a, b float64
		a, err = strconv.ParseFloat(num, 64)
		if err == nil {
			b, err = strconv.ParseFloat(den, 64)
		}
		if err == nil && b == 0 {
			err = errors.New("division by zero")
		}
		p = a / b
	default:
		p, err = strconv.ParseFloat(s, 64)
	}
	if err != nil || p < 0 || p > 1 || math.IsNaN(p) {
		return 0, fmt.Errorf("%q is not a probability (0.05, 5%% or 1/20)", s)
	}
	return p, nil
}

// ParseFaultReply parses "PROBABILITY:CODE [TEXT]" as serve --reply takes it after "POINT=",
// e.g. "5%:451 4.3.0 Try again later".
func ParseFaultReply(s string) (prob float64, code int, text string, err error) {
	ps, rest, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, "", fmt.Errorf("%q: want PROBABILITY:CODE [TEXT], like 5%%:451 4.3.0 Try again later", s)
	}
	if prob, err = ParseProbability(ps); err != nil {
		return 0, 0, "", err
	}
	rest = strings.TrimSpace(rest)
	cs, text, _ := strings.Cut(rest, " ")
	code, err = strconv.Atoi(cs)
	if err != nil || code < 400 || code > 599 {
		return 0, 0, "", fmt.Errorf("%q: the reply code must be 4xx or 5xx", s)
	}
	if strings.ContainsAny(text, "\r\n") {
		return 0, 0, "", fmt.Errorf("%q: the reply text must be one line", s)
	}
	if text == "" {
		text = "Error: injected fault"
	}
	return prob, code, text, nil
}
