package server

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// dump writes an accepted message to DumpDir as <time>-<queue id>.eml: a Received trace header
// (RFC 5321 §4.4), the envelope in X-Smtpbench- headers, then the message as received. It writes
// a temporary file and renames it, so a reader never sees a partial message.
func (s *Server) dump(ss *session, content []byte) error {
	now := time.Now()
	id := ss.queueID()
	var h bytes.Buffer
	proto := "SMTP"
	if ss.esmtp {
		proto = "ESMTP"
	}
	if ss.smtputf8 {
		proto = "UTF8SMTP" // RFC 6531 §3.7.3 (SMTPUTF8 comes only with EHLO)
	}
	fmt.Fprintf(&h, "Received: from %s (%s)\r\n\tby %s (smtpbench) with %s id %s", ss.helo, ss.remote,
		s.cfg.Hostname, proto, id)
	if ss.rcpts == 1 {
		fmt.Fprintf(&h, "\r\n\tfor %s", bytes.TrimSuffix(ss.to, []byte("\n")))
	}
	fmt.Fprintf(&h, ";\r\n\t%s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&h, "X-Smtpbench-Mail-From: %s\r\n", ss.from)
	for rcpt := range bytes.SplitSeq(bytes.TrimSuffix(ss.to, []byte("\n")), []byte("\n")) {
		fmt.Fprintf(&h, "X-Smtpbench-Rcpt-To: %s\r\n", rcpt)
	}

	name := strconv.FormatInt(now.UnixNano(), 10) + "-" + id + ".eml"
	tmp, err := os.CreateTemp(s.cfg.DumpDir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(h.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(s.cfg.DumpDir, name))
}
