package bench_test

import (
	"context"
	"fmt"

	"github.com/smtpbench/smtpbench/bench"
	"github.com/smtpbench/smtpbench/loadgen"
	"github.com/smtpbench/smtpbench/server"
)

// Start the bundled sink, send it 1000 messages from 4 sessions, and read the result.
func Example() {
	addr, stop, err := bench.StartSink(server.Config{})
	if err != nil {
		panic(err)
	}
	defer stop()

	res, err := bench.Run(context.Background(), addr, loadgen.Config{Sessions: 4, Messages: 1000, Recipients: 2})
	if err != nil {
		panic(err)
	}
	fmt.Println("delivered:", res.Totals.Delivered, "recipients:", res.Totals.Recipients)
	fmt.Println("rcpt replies timed:", res.Phase("rcpt").Count)
	// Output:
	// delivered: 1000 recipients: 2000
	// rcpt replies timed: 2000
}
