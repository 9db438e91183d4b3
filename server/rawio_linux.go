//go:build linux

package server

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// readNB and writeNB read and write a non-blocking socket as raw system calls. They cannot block,
// so the runtime need not hear of them: telling it (entering and leaving a system call) costs more
// than the read of a short command.
func readNB(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func writeNB(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
