package server

import (
	"bytes"
	"testing"

	"github.com/smtpbench/smtpbench/internal/memconn"
)

// stuffedBody is a message of about size octets as a client sends it after DATA: CRLF lines, some
// starting with a stuffed dot, and the end-of-data line. want is what the sink should count.
func stuffedBody(size int) (wire []byte, want int64) {
	var b bytes.Buffer
	b.WriteString("From: <a@example.com>\r\nTo: <b@example.com>\r\nSubject: bench\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		if i%4 == 0 {
			b.WriteString("..a line that starts with a dot, stuffed by the client\r\n")
			want-- // the sink removes the stuffed dot
		} else {
			b.WriteString("some text of a message line, about sixty octets long......\r\n")
		}
	}
	want += int64(b.Len())
	b.WriteString(".\r\n")
	return b.Bytes(), want
}

// txnScript is one whole transaction as a pipelining client sends it, with DATA or with BDAT, and
// the message octets the sink should count for it.
func txnScript(data bool) (script []byte, want int64) {
	b := []byte("MAIL FROM:<sender@example.com> SIZE=1024\r\nRCPT TO:<rcpt@example.org>\r\n")
	if data {
		body, n := stuffedBody(1024)
		b = append(b, "DATA\r\n"...)
		return append(b, body...), n
	}
	b = append(b, "BDAT 1024 LAST\r\n"...)
	return append(b, bytes.Repeat([]byte("x"), 1024)...), 1024
}

// txnSession starts a sink session on an in-memory connection that has sent EHLO; each Release
// sends one more transaction, and Done fires when its final reply is written.
func txnSession(tb testing.TB, data bool) (*Server, *memconn.Conn, int64) {
	tb.Helper()
	return txnSessionWith(tb, data, Config{})
}

func txnSessionWith(tb testing.TB, data bool, cfg Config) (*Server, *memconn.Conn, int64) {
	tb.Helper()
	srv, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	script, want := txnScript(data)
	c := memconn.New(script, true, []byte("queued as"))
	c.Prologue = []byte("EHLO client.example\r\n")
	go srv.ServeConn(c)
	tb.Cleanup(func() { c.Close() })
	return srv, c, want
}

func TestTransactionInMemory(t *testing.T) {
	for _, data := range []bool{true, false} {
		srv, c, want := txnSession(t, data)
		for range 3 {
			c.Release()
			<-c.Done()
		}
		st := srv.Stats()
		if st.Messages != 3 || st.Recipients != 3 || st.Bytes != uint64(3*want) {
			t.Errorf("data=%v: messages %d, recipients %d, bytes %d; want 3, 3, %d",
				data, st.Messages, st.Recipients, st.Bytes, 3*want)
		}
	}
}

func BenchmarkTransaction(b *testing.B) {
	for _, tc := range []struct {
		name string
		data bool
	}{{"DATA", true}, {"BDAT", false}} {
		b.Run(tc.name, func(b *testing.B) {
			_, c, _ := txnSession(b, tc.data)
			c.Release() // the first transaction fills the pools
			<-c.Done()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.Release()
				<-c.Done()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
