// Command rawloop moves exactly the bytes of an SMTP exchange over a socket, with no SMTP at all:
// the server reads until it has a whole request (it knows the lengths, it never looks at the
// bytes) and writes a reply of the right length. Both sides are single-threaded epoll loops on
// non-blocking sockets that keep Go's runtime out of their system calls (raw_linux.go), so what
// they measure is the limit of the machine and its kernel for a shape of exchange: the ceiling an
// SMTP client and server pair could reach with the same round trips and the same bytes.
// bench/peercmp compares smtpbench with it.
//
//	rawloop serve ADDR [-go-syscalls]
//	rawloop run ADDR [-c 10] [-n 20000] [-shape lockstep] [-size 1024] [-go-syscalls]
//
// A shape is the round trips of one message, each a request and its reply, built from the
// commands `smtpbench run` sends and the replies `smtpbench serve` gives (see shapes.go). Only
// the steady state is moved: the greeting and EHLO exchange of each connection, the chained
// shape's first command group and last message data, and QUIT are skipped. Each connection
// starts with one line naming the round trips' lengths, "rawloop REQ:REPLY ...\n", so that one
// server serves every shape. The client keeps each of its -c connections in lock-step, one
// message in flight, and prints "delivered N messages in T: R msgs/s".
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ExitOnError)
		fs.BoolVar(&goSyscalls, "go-syscalls", false, "make system calls through Go's runtime, as Go programs do")
		fs.Parse(os.Args[3:])
		err = serve(os.Args[2])
	case "run":
		err = runCmd(os.Args[2], os.Args[3:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawloop:", err)
		os.Exit(1)
	}
}

// goSyscalls makes the loops' system calls go through Go's runtime (see raw_linux.go).
var goSyscalls bool

func usage() {
	fmt.Fprintf(os.Stderr, "usage:\n  rawloop serve ADDR [-go-syscalls]\n  rawloop run ADDR [-c N] [-n MESSAGES] [-shape %s] [-size OCTETS] [-go-syscalls]\n",
		strings.Join(shapeNames, "|"))
	os.Exit(2)
}

func runCmd(addr string, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	conns := fs.Int("c", 10, "`N` connections, one message in flight on each")
	n := fs.Int("n", 20000, "send `MESSAGES` messages in all")
	shapeName := fs.String("shape", "lockstep", "`SHAPE` of each message: "+strings.Join(shapeNames, ", "))
	size := fs.Int("size", 1024, "body of each message: `OCTETS` (as smtpbench run --size)")
	fs.BoolVar(&goSyscalls, "go-syscalls", false, "make system calls through Go's runtime, as Go programs do")
	fs.Parse(args)
	if *conns < 1 || *n < 1 || *size < 2 {
		return fmt.Errorf("-c and -n must be at least 1, -size at least 2")
	}
	steps, err := shape(*shapeName, *size)
	if err != nil {
		return err
	}
	res, err := run(addr, *conns, *n, steps)
	if err != nil {
		return err
	}
	var req, rep int
	for _, s := range steps {
		req += len(s.req)
		rep += s.reply
	}
	fmt.Printf("delivered %d messages in %.3fs: %.0f msgs/s (%s: %d round trip(s), %d octets out and %d back per message, %d connections)\n",
		res.done, res.elapsed.Seconds(), float64(res.done)/res.elapsed.Seconds(), *shapeName, len(steps), req, rep, *conns)
	return nil
}
