#!/usr/bin/env bash
# Memory per idle HTTP/2 connection on `ringmaster http` (h2c): RSS before and after
# h2_holder.py opens N connections, each served one request.
#
# usage: benches/h2-memory/run.sh [N]   (RINGMASTER_BIN picks the binary)
set -euo pipefail
n=${1:-2000}
cd "$(dirname "$0")/../.."
ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
trap 'kill "${srv:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
"${RINGMASTER_BIN:-${CARGO_TARGET_DIR:-target}/release/ringmaster}" http --listen 127.0.0.1:0 --shards 1 --idle-timeout 0 \
    --keepalive-timeout 600 2>"$tmp/srv" &
srv=$!
for _ in $(seq 1 50); do grep -q "listening on" "$tmp/srv" && break; sleep 0.1; done
addr=$(grep -o "listening on [0-9.:]*" "$tmp/srv" | awk '{print $3}')
python3 benches/h2-memory/h2_holder.py --addr "$addr" --connections 50 --hold 0 </dev/null >/dev/null
sleep 0.5
before=$(awk '/VmRSS/{print $2}' "/proc/$srv/status")
mkfifo "$tmp/hold"
python3 benches/h2-memory/h2_holder.py --addr "$addr" --connections "$n" --hold 120 \
    <"$tmp/hold" >"$tmp/holder" &
exec 3>"$tmp/hold"
for _ in $(seq 1 240); do grep -q ready "$tmp/holder" && break; sleep 0.5; done
sleep 1
after=$(awk '/VmRSS/{print $2}' "/proc/$srv/status")
exec 3>&-
echo "$(cat "$tmp/holder"); RSS ${before} -> ${after} KiB"
echo "bytes per idle h2 connection: $(( (after - before) * 1024 / n ))"
