//go:build linux

package server

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// Shutdown racing the first Serve: Serve returns ErrServerClosed, nothing hangs, and no
// descriptor (listener, epoll, eventfd) is left open.
func TestShutdownRacesFirstServe(t *testing.T) {
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	// The runtime's own poller opens its descriptors on first use: make that happen first.
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
	before := fds()
	for i := range 50 {
		srv, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		if i%2 == 0 {
			time.Sleep(time.Duration(i) * 20 * time.Microsecond) // vary who comes first
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("round %d: Shutdown: %v", i, err)
		}
		cancel()
		select {
		case err := <-served:
			if !errors.Is(err, ErrServerClosed) {
				t.Fatalf("round %d: Serve returned %v, want ErrServerClosed", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Serve did not return after Shutdown", i)
		}
	}
	// Descriptors are closed by the loops on their way out; give the last ones a moment.
	deadline := time.Now().Add(2 * time.Second)
	for fds() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := fds(); after > before {
		t.Errorf("%d descriptors open after 50 start-stop rounds, %d before", after, before)
	}
}
