package pipeline

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/server"
)

// startSink serves the bundled sink on a loopback port for one test.
func startSink(tb testing.TB, cfg server.Config) (*server.Server, Target) {
	tb.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	return srv, Target{"tcp", l.Addr().String()}
}

func dialHello(tb testing.TB, target Target, opts Options) *Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts.Timeouts.All(5 * time.Second)
	c, err := Dial(ctx, target, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if r, err := c.Greeting(); err != nil || r.Code != 220 {
		tb.Fatalf("greeting: %v %v", r, err)
	}
	if r, err := c.Hello(); err != nil || r.Code != 250 {
		tb.Fatalf("hello: %v %v", r, err)
	}
	return c
}

func testMessage(rcpts int) *Message {
	m := &Message{From: []byte("sender@example.com")}
	for i := range rcpts {
		m.To = append(m.To, []byte("rcpt"+string(rune('a'+i%26))+"@example.org"))
	}
	m.Header = []byte("Message-ID: <1@example.com>\r\n")
	m.SetBody([]byte("Subject: test\r\n\r\n.leading dot\r\nbody\r\n..two dots\r\n"))
	return m
}

func TestSendAgainstSink(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		pipe bool
	}{
		{"lockstep", Options{Pipelining: Off}, false},
		{"pipelined", Options{}, true},
		{"bdat", Options{Pipelining: Off, BDAT: true}, false},
		{"pipelined-bdat", Options{BDAT: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, target := startSink(t, server.Config{})
			c := dialHello(t, target, tc.opts)
			if c.Pipelining() != tc.pipe {
				t.Fatalf("pipelining %v, want %v", c.Pipelining(), tc.pipe)
			}
			m := testMessage(3)
			var tr Trace
			for range 5 {
				if err := c.Send(m, &tr); err != nil {
					t.Fatal(err)
				}
				if !tr.Delivered || tr.Accepted != 3 || tr.Final.Code != 250 || tr.NeedsReset {
					t.Fatalf("trace %+v", tr)
				}
				if tr.Mail.Duration() <= 0 || tr.End < tr.Start {
					t.Fatalf("timing %+v", tr)
				}
			}
			if _, err := c.Quit(); err != nil {
				t.Fatal(err)
			}
			st := srv.Stats()
			if st.Messages != 5 || st.Recipients != 15 || st.Bytes != uint64(5*m.Size()) {
				t.Errorf("sink counted %d messages, %d recipients, %d bytes; want 5, 15, %d",
					st.Messages, st.Recipients, st.Bytes, 5*m.Size())
			}
		})
	}
}
