package main

import (
	"context"
	"fmt"

	"github.com/smtpbench/smtpbench/internal/version"
)

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "version", "version", "Print smtpbench's version and the Go release it was built with.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "smtpbench %s (%s)\n", version.Version(), version.Go())
	return nil
}
