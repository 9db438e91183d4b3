package main

import (
	"bufio"
	"os"
	"path/filepath"
	"time"

	"github.com/smtpbench/smtpbench/results"
)

// hlogFile streams an interval log into a temporary file and renames it into place at the end, so
// the log at the path is always whole.
type hlogFile struct {
	path string
	tmp  *os.File
	bw   *bufio.Writer
	log  *results.Hlog
	err  error
}

func createHlog(path string, start time.Time) (*hlogFile, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, err
	}
	h := &hlogFile{path: path, tmp: tmp, bw: bufio.NewWriter(tmp)}
	if h.log, err = results.NewHlog(h.bw, start); err != nil {
		h.abandon()
		return nil, err
	}
	return h, nil
}

// write is the run's OnInterval hook.
func (h *hlogFile) write(rec *results.Recorder, from, to time.Time) {
	if h.err == nil {
		h.err = h.log.WriteInterval(rec, from, to)
	}
}

func (h *hlogFile) finish() error {
	if h.err != nil {
		return h.err
	}
	if err := h.bw.Flush(); err != nil {
		return err
	}
	if err := h.tmp.Sync(); err != nil {
		return err
	}
	if err := h.tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(h.tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(h.tmp.Name(), h.path); err != nil {
		return err
	}
	h.tmp = nil
	return nil
}

// abandon removes the temporary file unless finish renamed it.
func (h *hlogFile) abandon() {
	if h.tmp != nil {
		h.tmp.Close()
		os.Remove(h.tmp.Name())
	}
}
