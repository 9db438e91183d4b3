//go:build !unix

package loadgen

import "time"

// cpuTime is not measured here: the CPU warning stays silent.
func cpuTime() time.Duration { return 0 }
