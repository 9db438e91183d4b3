// Command gosmtp is github.com/emersion/go-smtp's SMTP server with a null backend: it accepts
// every sender and recipient and discards the data. bench/peercmp benchmarks it as a peer of
// `smtpbench serve`. It is a module of its own so that smtpbench's go.mod does not depend on
// go-smtp.
//
// usage: gosmtp [-listen 127.0.0.1:2526]
package main

import (
	"flag"
	"io"
	"log"
	"net"

	"github.com/emersion/go-smtp"
)

// session accepts everything and keeps nothing.
type session struct{}

func (session) Mail(string, *smtp.MailOptions) error { return nil }
func (session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (session) Reset()                               {}
func (session) Logout() error                        { return nil }

func (session) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func main() {
	listen := flag.String("listen", "127.0.0.1:2526", "listen on `ADDR` (host:port)")
	flag.Parse()

	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return session{}, nil
	}))
	s.Domain = "localhost"
	s.MaxMessageBytes = 1 << 30 // advertised with SIZE
	// The defaults otherwise: PIPELINING and CHUNKING offered, no AUTH (no TLS), no timeouts,
	// any number of recipients.

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("go-smtp null server listening on %s", l.Addr())
	log.Fatal(s.Serve(l))
}
