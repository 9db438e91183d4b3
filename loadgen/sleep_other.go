//go:build !linux

package loadgen

import "time"

func preciseThread() (release func()) { return func() {} }

func nanosleep(d int64) { time.Sleep(time.Duration(d)) }
