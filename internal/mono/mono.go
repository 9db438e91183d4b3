// Package mono is the monotonic clock every timing in smtpbench is taken from: nanoseconds since
// the process started, so timestamps from the client engine, the load generator and the
// scheduler compare directly.
package mono

import "time"

var epoch = time.Now()

// Now is the monotonic time in nanoseconds since the process started.
func Now() int64 { return int64(time.Since(epoch)) }

// Time converts a monotonic timestamp to wall-clock time.
func Time(t int64) time.Time { return epoch.Add(time.Duration(t)) }

// Of converts a wall-clock time (with a monotonic reading) to a monotonic timestamp.
func Of(t time.Time) int64 { return int64(t.Sub(epoch)) }
