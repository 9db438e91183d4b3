//go:build !linux

package server

import (
	"errors"
	"net"
)

// eloop is the Linux event loop; elsewhere every connection gets a goroutine.
type eloop struct{}

func (s *Server) loopsFor(net.Listener) bool    { return false }
func (s *Server) serveLoops(net.Listener) error { return errors.New("event loops need Linux") }
func (s *Server) wakeLoops()                    {}
