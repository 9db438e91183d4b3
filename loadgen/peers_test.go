package loadgen

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/smtpbench/smtpbench/pipeline"
)

// Runs against other SMTP servers: Postfix's smtp-sink and Python's aiosmtpd. Each test skips
// when its peer is not installed.
//
// These use local helpers (startSmtpSink, startAiosmtpd below) because internal/peertest did not
// exist when they were written; they start the peers the way /work/shared/peers/start-*.sh do.

// freePort returns a loopback port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPeerProcess runs a server process and waits until it accepts connections on addr.
func startPeerProcess(tb testing.TB, addr string, name string, args ...string) pipeline.Target {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			tb.Errorf("%s (pid %d) did not exit", name, cmd.Process.Pid)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			tb.Fatalf("%s exited before accepting connections: %v", name, err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return pipeline.Target{Network: "tcp", Address: addr}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s does not accept connections on %s: %v", name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startSmtpSink starts Postfix's smtp-sink (PIPELINING on, mail discarded) or skips.
func startSmtpSink(tb testing.TB) pipeline.Target {
	tb.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		tb.Skip("smtp-sink is not installed (bench/peers/install.sh installs it)")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(tb))
	args := []string{"-m", "1024", addr, "1024"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...) // smtp-sink refuses to run as root without -u
	}
	return startPeerProcess(tb, addr, bin, args...)
}

// startAiosmtpd starts Python's aiosmtpd (its default Sink handler discards mail) or skips.
func startAiosmtpd(tb testing.TB) pipeline.Target {
	tb.Helper()
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import aiosmtpd").Run() == nil {
			python = path
			break
		}
	}
	if python == "" {
		tb.Skip("no python3 with aiosmtpd")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(tb))
	return startPeerProcess(tb, addr, python, "-m", "aiosmtpd", "-n", "-l", addr)
}

func TestRunAgainstPeers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) pipeline.Target
	}{
		{"smtp-sink", startSmtpSink},
		{"aiosmtpd", startAiosmtpd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.start(t)
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
