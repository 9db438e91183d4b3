// Package version tells which smtpbench this is, for `smtpbench version` and result files.
package version

import (
	"runtime"
	"runtime/debug"
)

// Override is set at link time by release builds:
//
//	go build -ldflags "-X github.com/smtpbench/smtpbench/internal/version.Override=v1.2.3"
var Override string

// Version is the module version the binary was built from ("(devel)" from a checkout, with the VCS
// revision when the build recorded one).
func Version() string {
	if Override != "" {
		return Override
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

// Go is the Go release and platform the binary was built for.
func Go() string { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH }
