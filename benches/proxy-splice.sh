#!/usr/bin/env bash
# The TCP proxy's two relays side by side: copy (a receive and a send per read) and
# --splice (io_uring SPLICE through a pipe per direction), alternated twice, the proxy
# pinned to CPU 0, the echo backend and the load to CPU 1. Prints, per run: messages/s,
# the proxy's CPU µs per message (every thread, io-wq workers included), p50/p99 µs.
#
# usage: benches/proxy-splice.sh SIZE CONNECTIONS SECONDS
#   e.g. benches/proxy-splice.sh 64 100 10; benches/proxy-splice.sh 1048576 4 10
set -euo pipefail
size=${1:?size}; conns=${2:?connections}; secs=${3:?seconds}
bin=${RINGMASTER_BIN:-${CARGO_TARGET_DIR:-target}/release/ringmaster}
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

addr_of() { # waits for the "listening on ADDR" line in file $1
    for _ in $(seq 100); do
        a=$(grep -ao 'listening on [0-9.:]*' "$1" | awk '{print $3}') && [[ -n $a ]] && { echo "$a"; return; }
        sleep 0.05
    done
    echo "no listening line in $1" >&2; exit 1
}

taskset -c 1 "$bin" echo --listen 127.0.0.1:0 --shards 1 2>"$dir/be" &
be=$(addr_of "$dir/be")
for mode in copy splice copy splice; do
    extra=(); [[ $mode == splice ]] && extra=(--splice)
    taskset -c 0 "$bin" proxy --mode tcp "${extra[@]}" --listen 127.0.0.1:0 --shards 1 \
        --upstream "$be" 2>"$dir/px" &
    px=$!
    pa=$(addr_of "$dir/px")
    taskset -c 1 "$bin" load tcp-echo --addr "$pa" -c "$conns" -s "$size" -d "$secs" \
        --warmup 1 --server-pid "$px" --json 2>/dev/null >"$dir/out"
    python3 - "$mode" "$dir/out" <<'PY'
import json, sys
j = json.load(open(sys.argv[2]))
l = j["latency_us"]
print(f'{sys.argv[1]:>6}: {j["messages_per_s"]:>9.0f} msg/s  {j["server"]["cpu_us_per_message"]:7.2f} µs/msg  '
      f'p50 {l["p50"]:.0f} µs  p99 {l["p99"]:.0f} µs  errors {j["errors_total"]}')
PY
    kill "$px"; wait "$px" 2>/dev/null || true
done
