#!/usr/bin/env bash
# Measures `smtpbench serve` side by side with Postfix's smtp-sink under the same load from
# Postfix's smtp-source: messages per second and the server's CPU time per message. The runs are
# interleaved (sink A, sink B, sink A, ...) so a noisy machine hurts both alike; medians are printed.
#
# usage: bench/sink-vs-smtp-sink.sh [REPETITIONS] [MESSAGES] [SESSIONS] [SIZE]
#   defaults: 5 repetitions of smtp-source -d -s 10 -m 20000 -l 1024
#   SERVE_FLAGS adds flags to `smtpbench serve`; GOMAXPROCS applies to it as to any Go program.
# Needs smtp-sink and smtp-source: bench/peers/install.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5} msgs=${2:-20000} sessions=${3:-10} size=${4:-1024}
export PATH="$PATH:/usr/sbin"
for p in smtp-sink smtp-source; do
  command -v "$p" >/dev/null || { echo "$p not found: run bench/peers/install.sh (as root)" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/smtpbench" ./cmd/smtpbench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

sink_port=$(free_port)
sink_pid=$(bench/peers/start-smtp-sink.sh "$sink_port")
pids+=("$sink_pid")
sb_port=$(free_port)
"$work/smtpbench" serve --listen "127.0.0.1:$sb_port" --stats-every 0 ${SERVE_FLAGS:-} >/dev/null 2>&1 &
sb_pid=$!
pids+=("$sb_pid")
wait_port "$sb_port" || { echo "smtpbench serve did not start" >&2; exit 1; }

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# one NAME PID PORT: runs smtp-source once against PORT and appends "msgs/s cpu-µs/msg" to NAME's file.
one() {
  local name=$1 pid=$2 port=$3 before after t0 t1
  before=$(ticks "$pid")
  t0=$(date +%s.%N)
  smtp-source -d -s "$sessions" -m "$msgs" -l "$size" "127.0.0.1:$port"
  t1=$(date +%s.%N)
  after=$(ticks "$pid")
  awk -v m="$msgs" -v t0="$t0" -v t1="$t1" -v a="$after" -v b="$before" -v hz="$hz" \
    'BEGIN { printf "%.0f %.1f\n", m/(t1-t0), (a-b)/hz/m*1e6 }' >>"$work/res.$name"
}

for i in $(seq "$reps"); do
  one smtp-sink "$sink_pid" "$sink_port"
  one smtpbench "$sb_pid" "$sb_port"
  echo "repetition $i/$reps done" >&2
done

median() { sort -n | awk '{v[NR]=$1} END { if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'; }
echo
echo "smtp-source -d -s $sessions -m $msgs -l $size, $reps repetitions, medians"
echo
echo "| server | msgs/s | server CPU µs/msg | CPU vs smtp-sink |"
echo "|---|---:|---:|---:|"
base=$(cut -d' ' -f2 "$work/res.smtp-sink" | median)
for name in smtp-sink smtpbench; do
  rate=$(cut -d' ' -f1 "$work/res.$name" | median)
  cpu=$(cut -d' ' -f2 "$work/res.$name" | median)
  awk -v n="$name" -v r="$rate" -v c="$cpu" -v b="$base" 'BEGIN { printf "| %s | %.0f | %.1f | %.2f× |\n", n, r, c, c/b }'
done
