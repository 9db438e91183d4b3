package bench

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/internal/memconn"
	"github.com/smtpbench/smtpbench/loadgen"
	"github.com/smtpbench/smtpbench/pipeline"
	"github.com/smtpbench/smtpbench/results"
	"github.com/smtpbench/smtpbench/server"
)

// body returns size octets of CRLF text lines, every fourth starting with a dot.
func body(size int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		if i%4 == 0 {
			b.WriteString(".a line that starts with a dot\r\n")
		} else {
			b.WriteString("a line of text in a message body, with some words in it..........\r\n")
		}
	}
	out := b.Bytes()[:size]
	out[size-2], out[size-1] = '\r', '\n'
	return out
}

// BenchmarkSink measures the sink's cost per transaction (MAIL, RCPT, DATA or BDAT with a 1 KiB
// body, the final reply) on an established session over an in-memory connection: the protocol
// work, with no kernel in the way.
func BenchmarkSink(b *testing.B) {
	raw := body(1024)
	for _, mode := range []string{"DATA", "BDAT"} {
		b.Run("mode="+mode, func(b *testing.B) {
			script := []byte("MAIL FROM:<sender@example.com> SIZE=1024\r\nRCPT TO:<rcpt@example.org>\r\n")
			if mode == "DATA" {
				script = append(script, "DATA\r\n"...)
				script = append(script, pipeline.Stuff(raw)...)
				script = append(script, ".\r\n"...)
			} else {
				script = append(script, "BDAT 1024 LAST\r\n"...)
				script = append(script, raw...)
			}
			srv, err := server.New(server.Config{})
			if err != nil {
				b.Fatal(err)
			}
			c := memconn.New(script, true, []byte("queued as"))
			c.Prologue = []byte("EHLO bench.example\r\n")
			go srv.ServeConn(c)
			defer c.Close()
			c.Release() // the first transaction fills the pools
			<-c.Done()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.Release()
				<-c.Done()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if got := srv.Stats().Messages; got != uint64(b.N)+1 {
				b.Fatalf("the sink accepted %d messages, want %d", got, b.N+1)
			}
		})
	}
}

// BenchmarkClient measures the client's cost per transaction against canned replies: rendering
// the commands, writing them and the body, reading and parsing every reply.
func BenchmarkClient(b *testing.B) {
	for _, tc := range []struct {
		mode, ehlo, replies string
		opts                pipeline.Options
		chain               bool
	}{
		{"DATA", "250-canned\r\n250 SIZE 100000000\r\n", "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go\r\n250 2.0.0 Ok: queued\r\n",
			pipeline.Options{Pipelining: pipeline.Off}, false},
		{"PIPELINING+DATA", "250-canned\r\n250-SIZE 100000000\r\n250 PIPELINING\r\n",
			"250 2.0.0 Ok: queued\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go\r\n", pipeline.Options{}, true},
		{"PIPELINING+BDAT", "250-canned\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
			"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: queued\r\n", pipeline.Options{BDAT: true}, false},
	} {
		b.Run("mode="+tc.mode, func(b *testing.B) {
			mc := memconn.New([]byte(tc.replies), false, nil)
			prologue := "220 canned\r\n" + tc.ehlo
			if tc.chain { // the first message's MAIL, RCPT and DATA are answered before the stream
				prologue += "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go\r\n"
			}
			mc.Prologue = []byte(prologue)
			c := pipeline.NewConn(mc, tc.opts)
			if _, err := c.Greeting(); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Hello(); err != nil {
				b.Fatal(err)
			}
			m := &pipeline.Message{From: []byte("sender@example.com"), To: [][]byte{[]byte("rcpt@example.org")}}
			m.SetBody(body(1024))
			var traces [2]pipeline.Trace
			if tc.chain {
				if err := c.Begin(m, &traces[1]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				tr := &traces[i%2]
				var err error
				if tc.chain {
					prev := c.Pending()
					err = c.Begin(m, tr) // the previous message ends in this write
					if err == nil && !prev.Delivered {
						err = fmt.Errorf("message not delivered: %+v", prev)
					}
				} else if err = c.Send(m, tr); err == nil && !tr.Delivered {
					err = fmt.Errorf("message not delivered: %+v", tr)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkEndToEnd runs the client and the sink over loopback in one process, b.N messages per
// run, for each send mode, body size and number of sessions. The setup (connecting every session)
// is part of each run; with enough messages it is small. CPU is shared by both ends, so msgs/s is
// what this machine does with both on it.
func BenchmarkEndToEnd(b *testing.B) {
	modes := []struct {
		name string
		cfg  loadgen.Config
	}{
		{"DATA", loadgen.Config{Pipelining: pipeline.Off}},
		{"PIPELINING+DATA", loadgen.Config{Chain: true}},
		{"PIPELINING+BDAT", loadgen.Config{BDAT: true}},
	}
	for _, mode := range modes {
		for _, size := range []int{1 << 10, 64 << 10} {
			for _, sessions := range []int{1, 10, 100} {
				name := fmt.Sprintf("mode=%s/size=%dKiB/sessions=%d", mode.name, size>>10, sessions)
				b.Run(name, func(b *testing.B) {
					addr := Sink(b, server.Config{})
					cfg := mode.cfg
					cfg.Sessions, cfg.Size, cfg.Messages = sessions, size, int64(b.N)
					cfg.Timeouts.All(30 * time.Second)
					b.ReportAllocs()
					b.ResetTimer()
					res := Load(b, addr, cfg)
					b.StopTimer()
					if res.Totals.Delivered != int64(b.N) {
						b.Fatalf("delivered %d of %d", res.Totals.Delivered, b.N)
					}
					Report(b, res)
					b.ReportMetric(float64(size)*res.Throughput.MessagesPerS/1e6, "MB/s")
				})
			}
		}
	}
}

// BenchmarkRecord is the cost of recording one latency sample.
func BenchmarkRecord(b *testing.B) {
	rec := results.NewRecorder()
	rec.Record(results.Txn, 1) // the histogram exists from here
	b.ReportAllocs()
	v := int64(12345)
	for b.Loop() {
		rec.Record(results.Txn, v)
		v = v*1103515245 + 12345&(1<<30-1) // spread the values over the buckets
		v &= 1<<32 - 1
	}
}

// BenchmarkMerge is the cost of merging the results of two shards, every phase populated, per
// merge and per sample merged.
func BenchmarkMerge(b *testing.B) {
	shard := func(seed int64) *results.Result {
		rec := results.NewRecorder()
		v := seed
		for range 100_000 {
			for p := range results.NumPhases {
				rec.Record(p, 1000+v%10_000_000)
				v = v*6364136223846793005 + 1442695040888963407
				if v < 0 {
					v = -v
				}
			}
		}
		rec.Counts.Messages, rec.Counts.Delivered = 100_000, 100_000
		res := &results.Result{Kind: results.Kind, Schema: results.SchemaVersion,
			Start: time.Unix(0, 0), End: time.Unix(10, 0), Config: []byte(`{"sessions":10}`)}
		if err := res.Fill(rec); err != nil {
			b.Fatal(err)
		}
		return res
	}
	a, c := shard(1), shard(2)
	samples := 2 * 100_000 * int(results.NumPhases)
	b.ReportAllocs()
	for b.Loop() {
		m, err := results.Merge([]*results.Result{a, c}, false)
		if err != nil {
			b.Fatal(err)
		}
		if m.Totals.Messages != 200_000 {
			b.Fatalf("merged %d messages", m.Totals.Messages)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(samples), "ns/sample")
}
