// Package results is smtpbench's result model: per-phase HdrHistogram recorders, the result file
// (JSON, written atomically, with losslessly encoded histograms), and its renderings.
package results

import "fmt"

// Phase is a part of an SMTP session whose latency is recorded (see DESIGN.md "Phases"). All
// latencies are in nanoseconds.
type Phase uint8

const (
	Connect  Phase = iota // dial start → connected
	Greeting              // connected → 220 parsed
	EHLO                  // EHLO (or HELO) → its reply
	Mail                  // MAIL → reply
	Rcpt                  // RCPT → reply, one sample per recipient
	Data                  // DATA → 354
	Body                  // end of data sent → final reply
	Bdat                  // BDAT chunk → reply
	Rset                  // RSET → reply
	Quit                  // QUIT → reply
	Txn                   // MAIL written → final reply of the message (service time)
	Response              // open model: the message's slot → its final reply (response time)
	Session               // dial start → connection closed
	Sched                 // the generator's own lag: slot → hand-off (open), or between messages (closed)
	NumPhases
)

var phaseNames = [NumPhases]string{
	"connect", "greeting", "ehlo", "mail", "rcpt", "data", "body", "bdat", "rset", "quit", "txn", "response",
	"session", "sched",
}

func (p Phase) String() string {
	if p < NumPhases {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase%d", p)
}

// ParsePhase returns the phase with the given name.
func ParsePhase(name string) (Phase, error) {
	for p, n := range phaseNames {
		if n == name {
			return Phase(p), nil
		}
	}
	return 0, fmt.Errorf("unknown phase %q", name)
}
