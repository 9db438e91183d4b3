package main

import (
	"flag"
	"runtime"
)

// defaultProcs is how many CPUs (GOMAXPROCS) a command uses unless told: half the machine, at
// least one. A load generator and the server under test usually share a machine, and on this kind
// of I/O-bound work one busy thread costs less per message than two that keep waking each other
// (see README, "Performance").
func defaultProcs() int { return max(1, runtime.NumCPU()/2) }

// procsFlag registers --procs; usage ends the sentence "use N CPUs (GOMAXPROCS) for".
func procsFlag(fs *flag.FlagSet, usage string) *int {
	return fs.Int("procs", 0, "use `N` CPUs (GOMAXPROCS) for "+usage)
}

// setProcs applies --procs: n, or def when n is 0. It names the flag when n is negative. The
// returned function restores the previous setting (commands also run in-process, in tests).
func setProcs(n, def int) (restore func(), err error) {
	if n < 0 {
		return nil, flagErrorf("procs", "must not be negative")
	}
	if n == 0 {
		n = def
	}
	prev := runtime.GOMAXPROCS(n)
	return func() { runtime.GOMAXPROCS(prev) }, nil
}
