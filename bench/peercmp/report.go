package main

import (
	"debug/buildinfo"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// environment describes the machine and the peers' versions, for the report.
type environment []string

func describeEnvironment(gosmtpBin string) environment {
	var env environment
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	env = append(env, fmt.Sprintf("%d CPUs (%s), %s %s, kernel %s, %s", runtime.NumCPU(), cpu,
		runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(kernel)), runtime.Version()))
	postfix := "?"
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "postfix").Output(); err == nil {
		postfix = string(out)
	}
	gosmtpVersion := "?"
	if bi, err := buildinfo.ReadFile(gosmtpBin); err == nil {
		for _, d := range bi.Deps {
			if d.Path == "github.com/emersion/go-smtp" {
				gosmtpVersion = d.Version
			}
		}
	}
	return append(env, fmt.Sprintf("Postfix (smtp-source, smtp-sink) %s; go-smtp %s", postfix, gosmtpVersion))
}

// summary is the medians of a row's successful runs.
type summary struct {
	ok, failed           int
	rate, client, server float64 // msgs/s, µs/msg, µs/msg (NaN: unknown)
	own                  float64 // the client's own msgs/s (NaN: it gives none)
}

func summarize(ss []sample) summary {
	var sum summary
	var rate, client, server, own []float64
	for _, s := range ss {
		if s.err != "" {
			sum.failed++
			continue
		}
		sum.ok++
		rate = append(rate, s.rate())
		client = append(client, s.clientPerMsg())
		if s.own > 0 {
			own = append(own, s.own)
		}
		if !math.IsNaN(s.serverPerMsg()) {
			server = append(server, s.serverPerMsg())
		}
	}
	sum.rate, sum.client, sum.server, sum.own = median(rate), median(client), median(server), median(own)
	return sum
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func num(format string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf(format, v)
}

func ratio(a, b float64) string { return num("%.2f×", a/b) }

// writeReport writes the Markdown report: the medians, the targets, then every run.
func (h *harness) writeReport(w *strings.Builder, run []row, samples map[string][]sample) {
	o := h.opts
	sums := map[string]summary{}
	for _, r := range run {
		sums[r.key] = summarize(samples[r.key])
	}
	fmt.Fprintf(w, "\n## smtpbench and its peers over loopback\n\n")
	fmt.Fprintf(w, "%d messages a run, %d-octet body, 1 recipient, %d sessions kept open; %d repetitions, "+
		"interleaved (order rotated each time), after a warm-up run of each row; medians. %s.\n\n",
		o.n, o.size, o.c, o.reps, time.Now().Format("2006-01-02 15:04"))
	for _, e := range h.env {
		fmt.Fprintf(w, "- %s\n", e)
	}
	fmt.Fprintf(w, "- msgs/s: messages ÷ the client's wall time, process start to exit. CPU: user+system, the client's "+
		"from its rusage, the server's from /proc/PID/stat over the run (10 ms ticks, all threads). "+
		"Ratios against smtp-source → smtp-sink; %% of raw: msgs/s ÷ the raw loopback row with the same round trips. "+
		"The client's own msgs/s (smtpbench's and rawloop's; smtp-source gives none) leaves out its start, "+
		"its exit and, for smtpbench, the first connection that probes the server and the result it "+
		"computes and writes at the end: about 30–60 ms a run here.\n\n")

	fmt.Fprintln(w, "| row | msgs/s | client's own msgs/s | client µs/msg | server µs/msg | msgs/s vs source→sink | client CPU vs source→sink | server CPU vs source→sink | % of raw limit |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	base, haveBase := sums[baseline]
	for _, r := range run {
		s := sums[r.key]
		title := r.title
		if s.failed > 0 {
			title += fmt.Sprintf(" (**%d of %d runs failed**)", s.failed, s.failed+s.ok)
		}
		vsRate, vsClient, vsServer := "—", "—", "—"
		if haveBase {
			vsRate, vsClient = ratio(s.rate, base.rate), ratio(s.client, base.client)
			if r.client == smtpSource {
				vsServer = ratio(s.server, base.server)
			}
		}
		raw := "—"
		if r.client == rawloop {
			raw = "limit"
		} else if lim, ok := sums[rawRow(r.shape)]; ok {
			raw = num("%.0f%%", 100*s.rate/lim.rate) + " of " + rawRow(r.shape)
			if !math.IsNaN(s.own) {
				raw += num(" (own: %.0f%%)", 100*s.own/lim.own)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", title, num("%.0f", s.rate),
			num("%.0f", s.own), num("%.1f", s.client), num("%.1f", s.server), vsRate, vsClient, vsServer, raw)
	}

	fmt.Fprintf(w, "\n### Targets\n\n")
	for _, t := range targets {
		a, okA := sums[t.row]
		b, okB := sums[t.base]
		if !okA || !okB {
			fmt.Fprintf(w, "- n/a: %s (needs rows %s and %s)\n", t.text, t.row, t.base)
			continue
		}
		var got, want float64
		var pass bool
		switch t.what {
		case "rate":
			got, want = a.rate/b.rate, t.ratio
			pass = got >= want
		case "client":
			got, want = a.client/b.client, t.ratio
			pass = got <= want
		case "server":
			got, want = a.server/b.server, t.ratio
			pass = got <= want
		}
		verdict := "FAIL"
		if pass {
			verdict = "PASS"
		}
		if math.IsNaN(got) {
			verdict = "n/a"
		}
		also := ""
		if own := a.own / b.own; t.what == "rate" && !math.IsNaN(own) {
			also = fmt.Sprintf("; by the clients' own figures %.2f×", own)
		}
		fmt.Fprintf(w, "- **%s**: %s — measured %s (%s vs %s%s)\n", verdict, t.text, num("%.2f×", got), t.row, t.base, also)
	}

	fmt.Fprintf(w, "\n### Every run\n\n")
	fmt.Fprintln(w, "| rep | order | row | msgs/s | client's own msgs/s | client µs/msg | server µs/msg | wall | result |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---|")
	for _, r := range run {
		for _, s := range samples[r.key] {
			result := "ok"
			if s.err != "" {
				result = "FAILED: " + strings.ReplaceAll(s.err, "|", "\\|")
			}
			own := "—"
			if s.own > 0 {
				own = num("%.0f", s.own)
			}
			fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", s.rep, s.pos, r.key, num("%.0f", s.rate()), own,
				num("%.1f", s.clientPerMsg()), num("%.1f", s.serverPerMsg()), s.wall.Round(time.Millisecond), result)
		}
	}

	fmt.Fprintf(w, "\n### Notes\n\n")
	for _, r := range run {
		if ss := samples[r.key]; len(ss) > 0 && ss[0].note != "" {
			fmt.Fprintf(w, "- %s: the client said \"%s\"\n", r.key, ss[0].note)
		}
	}
	fmt.Fprintln(w, "- smtp-source says HELO and sends per message MAIL FROM:<foo@HOST>, RCPT TO:<foo@HOST>, DATA and "+
		"a -l body under about 110 octets of headers: about 1180 octets out and 80 back (smtp-sink) or 95 "+
		"(smtpbench serve); smtpbench sends 1429 and gets 96 back in lock-step. The raw lock-step row, its limit, "+
		"moves smtpbench's bytes.")
	fmt.Fprintln(w, "- Threads: smtpbench run and serve use half the CPUs by default (GOMAXPROCS; serve one epoll loop "+
		"per proc); go-smtp all of them; rawloop, smtp-source and smtp-sink one thread each.")
	for _, s := range h.skipped {
		fmt.Fprintf(w, "- skipped %s\n", s)
	}
}
