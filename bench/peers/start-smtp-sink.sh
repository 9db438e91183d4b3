#!/usr/bin/env bash
# Starts Postfix's smtp-sink on 127.0.0.1:PORT (PIPELINING on, mail discarded, up to 1024
# sessions) in the background and prints its PID. Stop it with: kill PID
# usage: bench/peers/start-smtp-sink.sh PORT [more smtp-sink options]
set -euo pipefail
port=${1:?usage: start-smtp-sink.sh PORT [options]}; shift
smtp-sink -u nobody -m 1024 "$@" "127.0.0.1:$port" 1024 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && { echo "$pid"; exit 0; }
  sleep 0.1
done
echo "smtp-sink did not start on 127.0.0.1:$port" >&2; kill "$pid" 2>/dev/null; exit 1
