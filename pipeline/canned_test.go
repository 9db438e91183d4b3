package pipeline

import (
	"testing"

	"github.com/smtpbench/smtpbench/internal/memconn"
)

// cannedConn is a Conn past EHLO whose server answers every transaction from a script.
func cannedConn(tb testing.TB, ehlo string, opts Options, replies string) *Conn {
	tb.Helper()
	mc := memconn.New([]byte(replies), false, nil)
	mc.Prologue = []byte("220 canned ESMTP\r\n" + ehlo)
	c := NewConn(mc, opts)
	if _, err := c.Greeting(); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Hello(); err != nil {
		tb.Fatal(err)
	}
	return c
}

var cannedCases = []struct {
	name, ehlo string
	opts       Options
	replies    string
}{
	{"DATA", "250-canned\r\n250 SIZE 1000000\r\n", Options{},
		"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n250 2.0.0 Ok: queued\r\n"},
	{"PIPELINING+DATA", "250-canned\r\n250-SIZE 1000000\r\n250 PIPELINING\r\n", Options{},
		"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n250 2.0.0 Ok: queued\r\n"},
	{"PIPELINING+BDAT", "250-canned\r\n250-PIPELINING\r\n250 CHUNKING\r\n", Options{BDAT: true},
		"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: queued\r\n"},
}

func BenchmarkSendCanned(b *testing.B) {
	m := testMessage(1)
	m.SetBody(make1KiBBody())
	for _, tc := range cannedCases {
		b.Run(tc.name, func(b *testing.B) {
			c := cannedConn(b, tc.ehlo, tc.opts, tc.replies)
			var tr Trace
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Send(m, &tr); err != nil || !tr.Delivered {
					b.Fatalf("%v %+v", err, tr)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func make1KiBBody() []byte {
	var b []byte
	for len(b) < 1024 {
		b = append(b, "a line of text in a message body, with some words in it....\r\n"...)
		b = append(b, ".a line that starts with a dot\r\n"...)
	}
	return b[: 1024-2 : 1024-2]
}
