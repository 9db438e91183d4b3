// Command smtpbench benchmarks SMTP servers: it drives many concurrent SMTP sessions against a
// server, records the latency of every phase in HdrHistograms, and includes a fast SMTP sink to
// benchmark against or to test clients with.
//
// Run `smtpbench help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // bad command line
	// exitThresholds: the run or report worked but breached a --threshold.
	exitThresholds = 3
)

// command is one subcommand. run parses its own flags from args.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command reads and writes, so tests can run commands in-process.
type env struct {
	stdout, stderr io.Writer
	// signals delivers SIGINT/SIGTERM, stallSignals SIGUSR1; tests replace them.
	signals      func() (<-chan os.Signal, func())
	stallSignals func() (<-chan os.Signal, func())
}

func commands() []command {
	return []command{
		{"run", "benchmark an SMTP server (the bundled sink when no target is given)", runRun},
		{"serve", "run the bundled SMTP sink", runServe},
		{"report", "re-render saved results (text, markdown, csv, json, benchstat, .hgrm)", runReport},
		{"compare", "compare saved results side by side", runCompare},
		{"merge", "add the result files of shards into one", runMerge},
		{"version", "print the version", runVersion},
	}
}

func main() {
	e := &env{stdout: os.Stdout, stderr: os.Stderr, signals: osSignals, stallSignals: usr1Signals}
	os.Exit(run(context.Background(), e, os.Args[1:]))
}

func usr1Signals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	return ch, func() { signal.Stop(ch) }
}

func osSignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch, func() { signal.Stop(ch) }
}

// run dispatches to a subcommand and maps its error to an exit code.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 { // "help serve"
			return run(ctx, e, []string{args[1], "--help"})
		}
		usage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return exitOK
		case isUsage(err):
			fmt.Fprintf(e.stderr, "smtpbench %s: %v\nRun 'smtpbench %s --help' for usage.\n", c.name, err, c.name)
			return exitUsage
		default:
			var ec exitCoder
			if errors.As(err, &ec) {
				if msg := err.Error(); msg != "" {
					fmt.Fprintf(e.stderr, "smtpbench %s: %s\n", c.name, msg)
				}
				return ec.ExitCode()
			}
			fmt.Fprintf(e.stderr, "smtpbench %s: %v\n", c.name, err)
			return exitError
		}
	}
	fmt.Fprintf(e.stderr, "smtpbench: unknown command %q\n", args[0])
	usage(e.stderr)
	return exitUsage
}

// exitCoder is an error that chooses the exit code.
type exitCoder interface{ ExitCode() int }

func usage(w io.Writer) {
	fmt.Fprintf(w, "smtpbench benchmarks SMTP servers.\n\nUsage: smtpbench <command> [flags] [args]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'smtpbench <command> --help' for a command's flags.\n")
}
