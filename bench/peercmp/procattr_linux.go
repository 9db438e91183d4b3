package main

import "syscall"

// childAttr puts a child in a process group of its own, so that a Ctrl-C reaches only peercmp
// (which then stops it), and kills it if peercmp dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
