// Package bench is smtpbench's benchmark suite, and a small harness for the benchmarks of people
// who write MTAs and SMTP libraries: start the bundled sink, run a load against any address, read
// the result, report it to the testing package.
//
//	func BenchmarkMyRelay(b *testing.B) {
//		sink := bench.Sink(b, server.Config{})             // where my relay delivers
//		relay := startMyRelay(b, sink)                      // the thing being measured
//		res := bench.Load(b, relay, loadgen.Config{Sessions: 10, Messages: int64(b.N)})
//		bench.Report(b, res)                                // msgs/s, txn p50/p99, failures
//	}
//
// The suite itself (go test -bench . ./bench) measures the sink on an in-memory connection, the
// client against canned replies, both ends over loopback for every send mode, message size and
// session count, and the cost of recording and merging results.
package bench

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/smtpbench/smtpbench/loadgen"
	"github.com/smtpbench/smtpbench/pipeline"
	"github.com/smtpbench/smtpbench/results"
	"github.com/smtpbench/smtpbench/server"
)

// StartSink starts the bundled sink on a free loopback port and returns its address and a function
// that stops it (at once, like server.Close).
func StartSink(cfg server.Config) (addr string, stop func(), err error) {
	srv, err := server.New(cfg)
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	return l.Addr().String(), func() { srv.Close(); <-done }, nil
}

// Sink starts the bundled sink for the test or benchmark tb and stops it when tb ends. It returns
// the sink's address (host:port).
func Sink(tb testing.TB, cfg server.Config) string {
	tb.Helper()
	addr, stop, err := StartSink(cfg)
	if err != nil {
		tb.Fatalf("bench: starting the sink: %v", err)
	}
	tb.Cleanup(stop)
	return addr
}

// Run sends a load to addr ("host:port", "[v6]:port" or "unix:/path") and returns its result.
// cfg.Target is set from addr.
func Run(ctx context.Context, addr string, cfg loadgen.Config) (*results.Result, error) {
	target, err := pipeline.ParseTarget(addr)
	if err != nil {
		return nil, err
	}
	cfg.Target = target
	return loadgen.Run(ctx, cfg)
}

// Load runs Run for tb, failing it on an error or when a message was not delivered.
func Load(tb testing.TB, addr string, cfg loadgen.Config) *results.Result {
	tb.Helper()
	res, err := Run(context.Background(), addr, cfg)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	if c := res.Totals; c.Failed > 0 || c.Errors > 0 {
		tb.Fatalf("bench: %d of %d messages failed, %d errors (%s)", c.Failed, c.Messages, c.Errors, failures(res))
	}
	return res
}

// failures summarizes a result's errors by phase, for a failure message.
func failures(res *results.Result) string {
	s := ""
	for _, p := range res.Phases {
		for _, e := range p.Errors {
			s += fmt.Sprintf("%s %s: %d; ", p.Name, e.Reason, e.Count)
		}
	}
	return s
}

// Report adds a result to a benchmark's output: msgs/s, and the txn phase's p50 and p99 in
// nanoseconds (names benchstat compares).
func Report(b *testing.B, res *results.Result) {
	b.ReportMetric(res.Throughput.MessagesPerS, "msgs/s")
	if p := res.Phase(results.Txn.String()); p != nil && p.Count > 0 {
		b.ReportMetric(float64(p.P50), "txn-p50-ns")
		b.ReportMetric(float64(p.P99), "txn-p99-ns")
	}
}
