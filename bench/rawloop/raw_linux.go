package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loops make their hot system calls raw, without telling Go's scheduler: otherwise a Go
// program pays for the runtime's bookkeeping around every call, and for sysmon retaking the
// processor of a thread that blocks in epoll_wait, costs a C program does not have. Nothing
// else runs in the process and the loops do not allocate, so nothing waits for them; sysmon's
// preemption signal (every 10 ms of one goroutine running) ends a wait with EINTR, which the
// loops take as "nothing yet". With -go-syscalls they go through the runtime like any Go program,
// to see what that costs.

func errno(err error) unix.Errno {
	e, _ := err.(unix.Errno)
	return e
}

func rawRead(fd int, p []byte) (int, unix.Errno) {
	if goSyscalls {
		n, err := unix.Read(fd, p)
		return n, errno(err)
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd int, p []byte) (int, unix.Errno) {
	if goSyscalls {
		n, err := unix.Write(fd, p)
		return n, errno(err)
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), e
}

func rawEpollWait(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	if goSyscalls {
		n, err := unix.EpollWait(epfd, events, -1)
		return n, errno(err)
	}
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))),
		uintptr(len(events)), ^uintptr(0) /* -1: no timeout */, 0, 0)
	return int(n), e
}
