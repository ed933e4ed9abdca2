#!/usr/bin/env bash
# queue-stats against a running `ringmaster echo --shards 2` finds one listener per shard.
set -euo pipefail
# shellcheck source=tests/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd python3 ss
need_bin

start_server echo --listen 127.0.0.1:0 --shards 2 --backlog 64
"$scripts/queue-stats" --port "$SERVER_PORT" | tee "$TEST_TMP/qs.txt" | sed 's/^/  /'
n=$(grep -cE "^  127\.0\.0\.1:$SERVER_PORT " "$TEST_TMP/qs.txt" || true)
[[ "$n" -eq 2 ]] || fail "queue-stats shows $n listeners on port $SERVER_PORT, want 2 (one per shard)"
ss_n=$(ss -Hlnt "sport = :$SERVER_PORT" | wc -l)
[[ "$ss_n" -eq 2 ]] || fail "ss itself shows $ss_n listeners"
grep -q 'ListenOverflows' "$TEST_TMP/qs.txt" || fail "no ListenOverflows counter in the output"

"$scripts/queue-stats" --port "$SERVER_PORT" --json --watch 0.2 --count 2 >"$TEST_TMP/qs.json"
[[ $(wc -l <"$TEST_TMP/qs.json") -eq 2 ]] || fail "--count 2 did not give 2 samples"
python3 - "$TEST_TMP/qs.json" <<'PY' || fail "JSON output check"
import json, sys
a, b = (json.loads(l) for l in open(sys.argv[1]))
assert len(b["listeners"]) == 2, b
assert all(l["limit"] == 64 for l in b["listeners"]), b["listeners"]
assert a["deltas"] is None and set(b["deltas"]) >= {"ListenOverflows", "ListenDrops"}, b
PY
note "--json: 2 samples, 2 listeners with limit 64, deltas present"
stop_server || fail "server exit status $? after SIGTERM, want 0"
