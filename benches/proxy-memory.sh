#!/usr/bin/env bash
# Memory per idle client connection through `ringmaster proxy`, with its share of the
# pooled upstream connections: RSS before and after benches/peers/conn-holder opens N
# keep-alive connections through the proxy, each served once.
#
# usage: benches/proxy-memory.sh [N] [IN_FLIGHT]
#   IN_FLIGHT = N: every client's request in flight at once (one upstream connection each)
#   IN_FLIGHT = 256 (conn-holder's default): the pool stays at its usual size
set -euo pipefail
n=${1:-5000}
in_flight=${2:-256}
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
bin=${RINGMASTER_BIN:-${CARGO_TARGET_DIR:-target}/release/ringmaster}
tmp=$(mktemp -d)
trap 'kill "${px:-}" "${be:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
addr_of() { grep -o "listening on [0-9.:]*" "$1" | awk '{print $3}'; }
wait_addr() { for _ in $(seq 1 50); do [[ -n "$(addr_of "$1")" ]] && return; sleep 0.1; done; }

"$bin" http --listen 127.0.0.1:0 --shards 1 --cpus 1 --idle-timeout 0 2>"$tmp/be" &
be=$!
wait_addr "$tmp/be"
"$bin" proxy --listen 127.0.0.1:0 --shards 1 --cpus 0 --idle-timeout 0 \
    --upstream "$(addr_of "$tmp/be")" --upstream-idle 100000 --upstream-conns 100000 \
    --stats 2>"$tmp/px" &
px=$!
wait_addr "$tmp/px"
pa=$(addr_of "$tmp/px")
curl -s "http://$pa/plaintext" >/dev/null
before=$(awk '/VmRSS/{print $2}' "/proc/$px/status")
mkfifo "$tmp/hold"
python3 benches/peers/conn-holder/conn_holder.py --addr "$pa" --connections "$n" \
    --in-flight "$in_flight" --hold 60 <"$tmp/hold" >"$tmp/holder" &
exec 3>"$tmp/hold"
for _ in $(seq 1 120); do grep -q ready "$tmp/holder" && break; sleep 0.5; done
sleep 3
after=$(awk '/VmRSS/{print $2}' "/proc/$px/status")
open=$(curl -s "http://$pa/.ringmaster/stats" | python3 -c \
    "import json,sys; print(json.load(sys.stdin)['shards'][0]['upstreams'][0]['pool']['open'])")
exec 3>&-
echo "$(cat "$tmp/holder"); RSS ${before} -> ${after} KiB; upstream connections: $open"
echo "bytes per client connection: $(( (after - before) * 1024 / n ))"
