#!/usr/bin/env bash
# scripts/profile on a short echo run: perf + inferno flame graph when perf works,
# callgrind when valgrind is present; the output must name a ringmaster function.
# timeout: 900
set -euo pipefail
# shellcheck source=tests/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin

# A Rust path in one of our crates: ringmaster::, ringmaster_runtime::, ...
ours='ringmaster(_[a-z]+)?::'
ran=0

if command -v perf >/dev/null 2>&1 && perf record -q -e cpu-clock -o "$TEST_TMP/probe.data" -- true >/dev/null 2>&1; then
    "$scripts/profile" --seconds 3 --tool perf --out "$TEST_TMP/perf" echo --shards 1 \
        >"$TEST_TMP/perf.out" 2>&1 || { cat "$TEST_TMP/perf.out"; fail "scripts/profile (perf) failed"; }
    result=$(tail -n 1 "$TEST_TMP/perf.out")
    note "perf: $result"
    [[ -s "$result" ]] || { cat "$TEST_TMP/perf.out"; fail "profile output $result missing or empty"; }
    grep -qE "$ours" "$result" || fail "$result names no ringmaster function"
    note "perf: names e.g. $(grep -oE "${ours}[A-Za-z0-9_:]+" "$result" | sort | uniq -c | sort -rn | head -n 1)"
    ran=1
else
    note "perf cannot record here: not testing the flame graph path"
fi

if command -v valgrind >/dev/null 2>&1 && command -v callgrind_annotate >/dev/null 2>&1; then
    "$scripts/profile" --seconds 3 --tool callgrind --out "$TEST_TMP/cg" echo --shards 1 \
        >"$TEST_TMP/cg.out" 2>&1 || { cat "$TEST_TMP/cg.out"; fail "scripts/profile (callgrind) failed"; }
    result=$(tail -n 1 "$TEST_TMP/cg.out")
    note "callgrind: $result"
    [[ -s "$result" ]] || { cat "$TEST_TMP/cg.out"; fail "profile output $result missing or empty"; }
    grep -qE "$ours" "$result" || { cat "$result"; fail "$result names no ringmaster function"; }
    ran=1
else
    note "valgrind not installed: not testing the callgrind path"
fi
[[ $ran -eq 1 ]] || skip "neither perf nor valgrind works here (apt-get install -y linux-perf valgrind)"
