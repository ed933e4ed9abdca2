#!/usr/bin/env bash
# scripts/load maps each preset to a `ringmaster load` command and passes extra args
# through, replacing the preset's value of a flag given again.
set -euo pipefail
# shellcheck source=tests/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd=$("$scripts/load" --dry-run echo 127.0.0.1:7000 2>&1)
note "$cmd"
grep -qE ' load tcp-echo --addr 127\.0\.0\.1:7000 ' <<<"$cmd" || fail "echo preset: $cmd"
cmd=$("$scripts/load" -n pipelined '[::1]:8080' --duration 2 --json 2>&1)
note "$cmd"
grep -q -- '--pipeline 16' <<<"$cmd" || fail "pipelined preset lacks --pipeline 16: $cmd"
[[ $(grep -o -- '--duration' <<<"$cmd" | wc -l) -eq 1 ]] || fail "--duration given twice: $cmd"
grep -q -- '--duration 2 --json' <<<"$cmd" || fail "extra args not passed through: $cmd"
cmd=$("$scripts/load" -n churn 127.0.0.1:8080 --requests 500 2>&1)
grep -q -- '--connect-per-request' <<<"$cmd" || fail "churn preset lacks --connect-per-request: $cmd"
grep -q -- '--duration' <<<"$cmd" && fail "--requests should replace the preset's --duration: $cmd"
cmd=$("$scripts/load" -n echo 127.0.0.1:7000 -c 8 -s 1024 2>&1)
grep -q -- '--connections' <<<"$cmd" && fail "-c should replace the preset's --connections: $cmd"
grep -q -- '--size' <<<"$cmd" && fail "-s should replace the preset's --size: $cmd"
for p in echo udp plaintext pipelined churn ws tls; do
    "$scripts/load" -n "$p" 127.0.0.1:1 >/dev/null 2>&1 || fail "preset $p"
done
rc=0
"$scripts/load" -n nosuch 127.0.0.1:1 >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "unknown preset: exit $rc, want 2"

# Against the real binary, when it has the load generator: a one-second echo run.
if [[ -x "$RINGMASTER_BIN" ]] && "$RINGMASTER_BIN" load --help 2>&1 | grep -q -e '--addr'; then
    start_server echo --listen 127.0.0.1:0 --shards 1
    "$scripts/load" echo "$SERVER_ADDR" --duration 1 --connections 4 >"$TEST_TMP/load.out" 2>&1 \
        || { cat "$TEST_TMP/load.out"; fail "scripts/load echo against a live server failed"; }
    sed 's/^/  /' "$TEST_TMP/load.out"
    stop_server || fail "server exit status $?"
else
    note "ringmaster load not available yet: dry-run checks only"
fi
