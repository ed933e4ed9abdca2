#!/usr/bin/env bash
# Every script answers --help with exit 0 and a usage text.
set -euo pipefail
# shellcheck source=tests/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for s in tune-kernel queue-stats load profile bench-compare test; do
    [[ -x "$scripts/$s" ]] || fail "scripts/$s is missing or not executable"
    out=$("$scripts/$s" --help) || fail "scripts/$s --help exited $?"
    grep -qi 'usage' <<<"$out" || fail "scripts/$s --help printed no usage: $out"
    note "scripts/$s --help: ok ($(wc -l <<<"$out") lines)"
done
# A wrong flag is a usage error (exit 2), not a crash.
for s in tune-kernel queue-stats load profile bench-compare test; do
    rc=0
    "$scripts/$s" --no-such-flag >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 2 ]] || fail "scripts/$s --no-such-flag: exit $rc, want 2"
done
