//go:build linux

package loadgen

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// preciseThread readies the calling goroutine for precise sleeps: it keeps its thread, and the
// thread's timer slack (50µs by default) drops to 1µs. The Go runtime's timers wake through epoll
// with millisecond resolution, which would add up to a millisecond to every slot's hand-off.
func preciseThread() (release func()) {
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	return runtime.UnlockOSThread
}

// nanosleep blocks the thread for d nanoseconds.
func nanosleep(d int64) {
	ts := unix.NsecToTimespec(d)
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}
