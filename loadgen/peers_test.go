package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/internal/peertest"
	"github.com/smtpbench/smtpbench/pipeline"
)

// Runs against other SMTP servers: Postfix's smtp-sink and Python's aiosmtpd, started by
// internal/peertest. Each test skips when its peer is not installed.

func TestRunAgainstPeers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) string // the peer's address
	}{
		// PIPELINING on, mail discarded, up to 1024 sessions at once.
		{"smtp-sink", func(tb testing.TB) string { return peertest.StartSmtpSink(tb, "-m", "1024") }},
		// The Sink handler discards mail (the default one prints every message).
		{"aiosmtpd", func(tb testing.TB) string { return peertest.StartAiosmtpd(tb, "-c", "aiosmtpd.handlers.Sink") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := pipeline.Target{Network: "tcp", Address: tc.start(t)}
			cfg := testConfig(target)
			cfg.Messages, cfg.Sessions, cfg.Recipients = 500, 8, 2
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, res)
			tot := res.Totals
			if tot.Messages != 500 || tot.Delivered != 500 || tot.Failed != 0 || tot.Errors != 0 || tot.Recipients != 1000 {
				t.Errorf("totals %+v", tot)
			}
			if res.StopReason != StopMessages {
				t.Errorf("stop reason %q", res.StopReason)
			}
			codes := func(phase string) map[string]int64 {
				m := map[string]int64{}
				for k, v := range replies(res, phase) {
					m[strings.Fields(k)[0]] += v
				}
				return m
			}
			s := tot.Sessions
			if s < 1 || s > 8 {
				t.Errorf("%d sessions for 8 workers keeping their connections", s)
			}
			wantCounts(t, "greeting", codes("greeting"), map[string]int64{"220": s})
			wantCounts(t, "ehlo", codes("ehlo"), map[string]int64{"250": s})
			wantCounts(t, "mail", codes("mail"), map[string]int64{"250": 500})
			wantCounts(t, "rcpt", codes("rcpt"), map[string]int64{"250": 1000})
			wantCounts(t, "data", codes("data"), map[string]int64{"354": 500})
			wantCounts(t, "body", codes("body"), map[string]int64{"250": 500})
			wantCounts(t, "quit", codes("quit"), map[string]int64{"221": s})
			if count(res, "txn") != 500 || count(res, "session") != s || res.Phase("rset") != nil || res.Phase("bdat") != nil {
				t.Errorf("txn %d session %d rset %v bdat %v", count(res, "txn"), count(res, "session"), res.Phase("rset"), res.Phase("bdat"))
			}
			t.Logf("%s: %s; %d sessions, %.0f messages/s", tc.name, res.Description, s, res.Throughput.MessagesPerS)
		})
	}
}
