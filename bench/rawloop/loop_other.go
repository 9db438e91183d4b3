//go:build !linux

package main

import (
	"errors"
	"time"
)

var errLinux = errors.New("rawloop needs Linux (epoll)")

type result struct {
	done    int
	elapsed time.Duration
}

func serve(string) error { return errLinux }

func run(string, int, int, []step) (result, error) { return result{}, errLinux }
