#!/usr/bin/env bash
# Accept-queue overflow at small scale: a frozen server with --backlog 4 gets 64
# connection attempts; queue-stats must show its queue full and ListenOverflows rising.
set -euo pipefail
# shellcheck source=tests/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd python3 ss
need_bin

start_server echo --listen 127.0.0.1:0 --shards 1 --backlog 4
kill -STOP "$SERVER_PID"
"$scripts/queue-stats" --port "$SERVER_PORT" --json >"$TEST_TMP/before.json"

# 64 non-blocking connects, held open for at most 10 s (ended earlier by the test).
python3 - "$SERVER_PORT" >"$TEST_TMP/clients.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
socks = []
for _ in range(64):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    socks.append(s)
time.sleep(1.0)
print("opened", flush=True)
time.sleep(9.0)
PY
clients=$!
track "$clients"
for ((i = 0; i < 100; i++)); do
    grep -q opened "$TEST_TMP/clients.out" && break
    sleep 0.1
done
grep -q opened "$TEST_TMP/clients.out" || fail "client did not get going: $(cat "$TEST_TMP/clients.out")"
"$scripts/queue-stats" --port "$SERVER_PORT" | sed 's/^/  /'
"$scripts/queue-stats" --port "$SERVER_PORT" --json >"$TEST_TMP/after.json"
kill "$clients" 2>/dev/null || true
wait "$clients" 2>/dev/null || true

python3 - "$TEST_TMP/before.json" "$TEST_TMP/after.json" <<'PY' || fail "overflow not observed"
import json, sys
b, a = (json.load(open(p)) for p in sys.argv[1:3])
d = a["counters"]["ListenOverflows"] - b["counters"]["ListenOverflows"]
print("  ListenOverflows: %d -> %d (+%d)" % (b["counters"]["ListenOverflows"],
                                           a["counters"]["ListenOverflows"], d))
[l] = a["listeners"]
print("  accept queue while frozen: %d, limit %d" % (l["depth"], l["limit"]))
assert l["limit"] == 4, "limit %r, want 4 (--backlog 4)" % l["limit"]
assert l["depth"] >= l["limit"], "queue not full: %r" % l
assert d > 0, "ListenOverflows did not rise"
PY
kill -CONT "$SERVER_PID"
stop_server || fail "server exit status $? after SIGTERM, want 0"
