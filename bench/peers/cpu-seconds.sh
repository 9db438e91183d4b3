#!/usr/bin/env bash
# Runs a command and prints, after it, the CPU seconds (user+system) that process PID spent
# meanwhile: the cost a server paid for the load the command generated.
# usage: bench/peers/cpu-seconds.sh PID COMMAND [ARGS...]
set -euo pipefail
pid=${1:?usage: cpu-seconds.sh PID COMMAND [ARGS...]}; shift
ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
"$@"
after=$(ticks)
awk -v a="$after" -v b="$before" -v hz="$hz" 'BEGIN { printf "server_cpu_seconds %.3f\n", (a-b)/hz }'
