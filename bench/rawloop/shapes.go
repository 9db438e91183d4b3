package main

import (
	"fmt"
	"strconv"
	"strings"
)

// A step is one round trip: the client writes req, the server answers reply octets.
type step struct {
	req   []byte
	reply int
}

var shapeNames = []string{"lockstep", "pipelined-data-chained", "pipelined-bdat"}

// What `smtpbench run --size SIZE --rcpts 1` sends and `smtpbench serve` answers, taken from a
// capture of the two talking. Numbers that grow during a run are given a typical width: message
// 12345 (5 digits, as most of a 20000-message run), queue id "a.1jk" (session, then message in
// base 36).
const (
	runID     = "20261123T090310.998"
	msgNumber = "12345"
	rcpt      = "RCPT TO:<rcpt" + msgNumber + "@example.org>\r\n"
	data      = "DATA\r\n"
	header    = "Message-ID: <" + msgNumber + "." + runID + "@smtpbench.localhost>\r\n" +
		"X-Smtpbench-Trace: run=" + runID + " seq=" + msgNumber + "\r\n" +
		"To: <rcpt" + msgNumber + "@example.org>\r\n" +
		"From: <sender@example.com>\r\n" +
		"Date: Mon, 23 Nov 2026 09:03:10 +0000\r\n" +
		"Subject: smtpbench run " + runID + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"

	mailOK    = "250 2.1.0 Ok\r\n"
	rcptOK    = "250 2.1.5 Ok\r\n"
	startData = "354 End data with <CR><LF>.<CR><LF>\r\n"
	queued    = "250 2.0.0 Ok: queued as a.1jk\r\n"
)

// body returns size octets of 64-octet CRLF lines, every tenth starting with "." as smtpbench's
// do (so DATA stuffs a dot there).
func body(size int) string {
	var b strings.Builder
	for line := 0; b.Len() < size; line++ {
		l := strings.Repeat("x", 62) + "\r\n"
		if line%10 == 9 {
			l = "." + l[1:]
		}
		b.WriteString(l)
	}
	s := b.String()[:size]
	return s[:size-2] + "\r\n"
}

// shape returns the round trips of one message of the named shape.
func shape(name string, size int) ([]step, error) {
	msg := header + body(size)
	mail := "MAIL FROM:<sender@example.com> SIZE=" + strconv.Itoa(len(msg)) + "\r\n"
	dotted := strings.ReplaceAll(msg, "\r\n.", "\r\n..") + ".\r\n" // RFC 5321 §4.5.2
	switch name {
	case "lockstep": // no PIPELINING, as smtp-source or smtpbench run --pipelining off
		return []step{
			{[]byte(mail), len(mailOK)},
			{[]byte(rcpt), len(rcptOK)},
			{[]byte(data), len(startData)},
			{[]byte(dotted), len(queued)},
		}, nil
	case "pipelined-data-chained": // smtpbench run's default: the data opens the next command group
		return []step{
			{[]byte(dotted + mail + rcpt + data), len(queued + mailOK + rcptOK + startData)},
		}, nil
	case "pipelined-bdat": // smtpbench run --bdat
		bdat := "BDAT " + strconv.Itoa(len(msg)) + " LAST\r\n"
		return []step{
			{[]byte(mail + rcpt + bdat + msg), len(mailOK + rcptOK + queued)},
		}, nil
	}
	return nil, fmt.Errorf("unknown shape %q (want %s)", name, strings.Join(shapeNames, ", "))
}

// preamble is the line that opens a connection: the lengths of the shape's round trips.
func preamble(steps []step) []byte {
	b := []byte("rawloop")
	for _, s := range steps {
		b = fmt.Appendf(b, " %d:%d", len(s.req), s.reply)
	}
	return append(b, '\n')
}

// parsePreamble reads a preamble line (without its newline) into lengths.
func parsePreamble(line string) (req, reply []int, err error) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "rawloop" {
		return nil, nil, fmt.Errorf("bad preamble %q", line)
	}
	for _, rt := range f[1:] {
		a, b, ok := strings.Cut(rt, ":")
		q, err1 := strconv.Atoi(a)
		p, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || q < 1 || p < 1 {
			return nil, nil, fmt.Errorf("bad round trip %q in preamble", rt)
		}
		req, reply = append(req, q), append(reply, p)
	}
	return req, reply, nil
}
