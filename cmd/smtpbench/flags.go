package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// usageError is a bad command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// flagErrorf is a usage error about one flag, named as the user typed it.
func flagErrorf(name, format string, args ...any) error {
	return usageError{fmt.Errorf("invalid value for --%s: %s", name, fmt.Sprintf(format, args...))}
}

// newFlagSet returns a FlagSet whose --help prints GNU-style flags after a description.
func newFlagSet(e *env, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by run, help by parseFlags
	fs.Usage = func() {}
	helps.Store(fs, func() { printHelp(e.stdout, fs, synopsis, description) })
	return fs
}

// helps prints each FlagSet's help; flag.FlagSet.Usage is silenced because the flag package calls
// it on every error, and an error should say what is wrong, not print the manual. Commands may
// run concurrently in-process (tests do), so it is a sync.Map.
var helps sync.Map // *flag.FlagSet → func()

// parseFlags parses args, turning flag errors into usage errors. It returns flag.ErrHelp after
// printing help for --help.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if h, ok := helps.Load(fs); ok {
				h.(func())()
			}
			return err
		}
		// The flag package spells flags with one dash; the help shows two.
		msg := strings.NewReplacer(" flag -", " flag --", "defined: -", "defined: --").Replace(err.Error())
		return usageError{errors.New(msg)}
	}
	return nil
}

func printHelp(w io.Writer, fs *flag.FlagSet, synopsis, description string) {
	fmt.Fprintf(w, "Usage: smtpbench %s\n\n%s\n\nFlags:\n", synopsis, strings.TrimSpace(description))
	fs.VisitAll(func(f *flag.Flag) {
		typ, text := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if len(f.Name) == 1 {
			head = "  -" + f.Name
		}
		if typ != "" {
			head += " " + typ
		}
		if def := f.DefValue; def != "" && def != "0" && def != "false" && def != "0s" && def != "[]" {
			text += " (default " + def + ")"
		}
		if len(head) <= 24 {
			fmt.Fprintf(w, "%-25s%s\n", head, text)
		} else {
			fmt.Fprintf(w, "%s\n%25s%s\n", head, "", text)
		}
	})
}

// byteSize is a flag holding a number of octets, written as 1024, 10k, 10KiB, 32M, 1GiB
// (k/K/KiB = 1024; M/MiB = 1024²; G/GiB = 1024³).
type byteSize int64

func (b *byteSize) String() string { return formatBytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	lower := strings.ToLower(t)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(lower, u.suffix) {
			t, mult = t[:len(t)-len(u.suffix)], u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (like 1024, 64KiB, 10M)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

// positive is an int flag that must be at least 1.
type positive int

func (p *positive) String() string { return strconv.Itoa(int(*p)) }

func (p *positive) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return fmt.Errorf("%q is not a positive integer", s)
	}
	*p = positive(n)
	return nil
}

// duration is a time.Duration flag that rejects negative values.
type duration time.Duration

func (d *duration) String() string { return time.Duration(*d).String() }

func (d *duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (like 500ms, 30s, 5m)", s)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*d = duration(v)
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// thresholdsError is returned when a result breaches a threshold: exit code 3, so CI can gate on
// it apart from other failures.
type thresholdsError struct{ n int }

func (e thresholdsError) Error() string {
	return fmt.Sprintf("%d threshold(s) breached", e.n)
}
func (e thresholdsError) ExitCode() int { return exitThresholds }
