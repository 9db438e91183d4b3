package main

import (
	"context"
	"fmt"

	"github.com/smtpbench/smtpbench/results"
)

const mergeHelp = `
Add the result files of the shards of one distributed run into one result: histograms, replies,
errors and counters are added exactly (percentiles are never averaged) and the timelines are
aligned by wall clock. Shards of different configurations are refused unless --force.
`

func runMerge(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "merge", "merge -o ALL.json SHARD.json...", mergeHelp)
	out := fs.String("o", "", "write the merged result to `FILE` (atomically)")
	force := fs.Bool("force", false, "merge shards even when their configurations differ")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return usageError{fmt.Errorf("-o FILE is required")}
	}
	if len(files) == 0 {
		return usageError{fmt.Errorf("no shard files given")}
	}
	var shards []*results.Result
	for _, f := range files {
		res, err := results.ReadFile(f)
		if err != nil {
			return err
		}
		shards = append(shards, res)
	}
	merged, err := results.Merge(shards, *force)
	if err != nil {
		return err
	}
	if err := results.WriteFile(*out, merged); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	fmt.Fprintf(e.stdout, "merged %d shards into %s: %d messages delivered\n", len(shards), *out, merged.Totals.Delivered)
	return nil
}
