# shellcheck shell=bash
# shellcheck disable=SC2034  # scripts, SERVER_PORT, ... are used by the tests
# Shared helpers for tests/scripts/NN-*.sh. Sourced, not run.
# A test exits 0 (pass), 77 (skip: prints "SKIP: reason") or anything else (fail).

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
scripts=$repo/scripts
_target=${CARGO_TARGET_DIR:-$repo/target}
[[ "$_target" = /* ]] || _target=$repo/$_target
RINGMASTER_BIN=${RINGMASTER_BIN:-$_target/release/ringmaster}
export RINGMASTER_BIN

TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ringmaster-script-test.XXXXXX")
SERVER_PID=
SERVER_ADDR=
SERVER_PORT=
_bg_pids=()

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
note() { echo "  $*"; }

need_bin() {
    [[ -x "$RINGMASTER_BIN" ]] \
        || skip "ringmaster binary not found at $RINGMASTER_BIN (cargo build --release, or set RINGMASTER_BIN)"
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "$c not installed"
    done
}

# Remember a background pid so that cleanup can stop it.
track() { _bg_pids+=("$1"); }

_cleanup() {
    local p
    for p in "${_bg_pids[@]}" "$SERVER_PID"; do
        [[ -n "$p" ]] || continue
        if kill -0 "$p" 2>/dev/null; then
            kill -CONT "$p" 2>/dev/null || true
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    rm -rf "$TEST_TMP"
}
trap _cleanup EXIT

# start_server ARGS...: run "$RINGMASTER_BIN" ARGS, wait (at most 15 s) for the
# "listening on ADDR" line on stderr; sets SERVER_PID, SERVER_ADDR, SERVER_PORT.
start_server() {
    local logf=$TEST_TMP/server.log i line
    "$RINGMASTER_BIN" "$@" 2>"$logf" >/dev/null &
    SERVER_PID=$!
    for ((i = 0; i < 150; i++)); do
        line=$(grep -m1 -o 'listening on [^ ,;)]*' "$logf" 2>/dev/null || true)
        if [[ -n "$line" ]]; then
            SERVER_ADDR=${line#listening on }
            SERVER_PORT=${SERVER_ADDR##*:}
            note "server pid $SERVER_PID: $(head -c 300 "$logf" | head -n 3)"
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$logf"
            fail "server exited before listening: $RINGMASTER_BIN $*"
        fi
        sleep 0.1
    done
    cat "$logf"
    fail "server did not print 'listening on ADDR' within 15 s"
}

# stop_server: SIGTERM, wait at most 15 s; returns the server's exit status.
stop_server() {
    local i rc=0
    [[ -n "$SERVER_PID" ]] || return 0
    kill -CONT "$SERVER_PID" 2>/dev/null || true
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
        echo "  server did not exit within 15 s of SIGTERM"
        return 124
    fi
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    return "$rc"
}

# json_get FILE EXPR: evaluate a Python expression on the JSON value `j` read from FILE.
json_get() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
