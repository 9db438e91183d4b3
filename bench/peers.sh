#!/usr/bin/env bash
# Compares smtpbench with its peers over loopback (Postfix's smtp-source and smtp-sink, go-smtp's
# server, and a raw loopback program that moves the same bytes with no SMTP) and prints a Markdown
# table of medians with the issue's targets: see bench/peercmp.
#
# usage: bench/peers.sh [-reps 5] [-n 20000] [-c 10] [-size 1024] [-only ROWS] [-out FILE]
# The peers come from bench/peers/install.sh (it needs root to install them; without root and
# without them, the rows that need them are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
bench/peers/install.sh || echo "peers.sh: bench/peers/install.sh failed; running with the peers there are" >&2
exec go run ./bench/peercmp "$@"
