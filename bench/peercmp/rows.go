package main

// The clients and servers peercmp runs.
const (
	smtpSource = "smtp-source" // Postfix's load generator: lock-step, no PIPELINING
	smtpbench  = "smtpbench"   // smtpbench run
	rawloop    = "rawloop"     // bench/rawloop run: the same bytes, no SMTP

	smtpSink = "smtp-sink" // Postfix's test sink
	serve    = "serve"     // smtpbench serve
	gosmtp   = "go-smtp"   // bench/gosmtp: go-smtp's server with a null backend
	rawServe = "rawloop"   // bench/rawloop serve
)

// The shapes of bench/rawloop, each the limit for the rows that exchange the same round trips.
const (
	lockstep = "lockstep"
	chained  = "pipelined-data-chained"
	bdat     = "pipelined-bdat"
)

// A row is one client against one server.
type row struct {
	key    string   // its name for -only
	title  string   // its name in the table
	client string   // smtpSource, smtpbench or rawloop
	server string   // smtpSink, serve, gosmtp or rawServe
	shape  string   // the rawloop shape with the same round trips: its limit
	args   []string // the client's flags beyond the common ones
}

var rows = []row{
	{"source-sink", "smtp-source → smtp-sink", smtpSource, smtpSink, lockstep, nil},
	{"source-serve", "smtp-source → smtpbench serve", smtpSource, serve, lockstep, nil},
	{"source-gosmtp", "smtp-source → go-smtp", smtpSource, gosmtp, lockstep, nil},
	{"bench-sink", "smtpbench → smtp-sink, PIPELINING+DATA", smtpbench, smtpSink, chained, nil},
	{"bench-data", "smtpbench → smtpbench serve, DATA", smtpbench, serve, lockstep, []string{"--pipelining", "off"}},
	{"bench-pipe", "smtpbench → smtpbench serve, PIPELINING+DATA", smtpbench, serve, chained, nil},
	{"bench-bdat", "smtpbench → smtpbench serve, PIPELINING+BDAT", smtpbench, serve, bdat, []string{"--bdat"}},
	{"raw-lockstep", "raw loopback, lock-step (4 round trips)", rawloop, rawServe, lockstep, []string{"-shape", lockstep}},
	{"raw-chained", "raw loopback, PIPELINING+DATA chained", rawloop, rawServe, chained, []string{"-shape", chained}},
	{"raw-bdat", "raw loopback, PIPELINING+BDAT", rawloop, rawServe, bdat, []string{"-shape", bdat}},
}

// The row every ratio is taken against.
const baseline = "source-sink"

// rawRow is the key of the rawloop row of a shape.
func rawRow(shape string) string {
	switch shape {
	case lockstep:
		return "raw-lockstep"
	case chained:
		return "raw-chained"
	}
	return "raw-bdat"
}

// A target is one of the goals the issue sets, checked against the medians.
type target struct {
	text  string
	row   string  // the row checked
	base  string  // the row it is compared with
	what  string  // "rate" (msgs/s, at least factor × base) or "client"/"server" (CPU µs/msg, at most factor × base)
	ratio float64 // the factor
}

var targets = []target{
	{"sink CPU/msg ≤ 0.8× smtp-sink's under the same smtp-source load", "source-serve", "source-sink", "server", 0.8},
	{"client CPU/msg ≤ 0.5× smtp-source's against smtp-sink", "bench-sink", "source-sink", "client", 0.5},
	{"smtpbench → smtpbench PIPELINING+DATA ≥ 2× the msgs/s of smtp-source → smtp-sink", "bench-pipe", "source-sink", "rate", 2},
	{"smtpbench → smtpbench PIPELINING+BDAT ≥ 3.5× the msgs/s of smtp-source → smtp-sink", "bench-bdat", "source-sink", "rate", 3.5},
	{"smtpbench → smtpbench DATA ≥ 90% of the raw lock-step limit", "bench-data", "raw-lockstep", "rate", 0.9},
	{"smtpbench → smtpbench PIPELINING+DATA ≥ 90% of the raw chained limit", "bench-pipe", "raw-chained", "rate", 0.9},
	{"smtpbench → smtpbench PIPELINING+BDAT ≥ 90% of the raw BDAT limit", "bench-bdat", "raw-bdat", "rate", 0.9},
}
