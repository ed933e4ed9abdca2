#!/usr/bin/env bash
# scripts/bench-compare end to end on a small set: ringmaster's own servers (no peer to
# build), short runs, into a scratch markdown file that already has other text. The
# block and the plots appear, the memory workload (50 idle connections) has its table,
# --baseline (the same binary) adds the current ÷ baseline table, the text around the
# block survives, a re-render replaces the block instead of adding a second one, and bad
# flags are usage errors.
# timeout: 240
set -euo pipefail
# shellcheck source=tests/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin
need_cmd python3 taskset
# bench-compare looks for rm-plot beside the ringmaster binary, then in the target dir.
plot=$(dirname "$RINGMASTER_BIN")/rm-plot
[[ -x $plot ]] || plot=$_target/release/rm-plot
[[ -x $plot ]] || skip "rm-plot not built at $plot (cargo build --release --workspace)"

md=$TEST_TMP/BENCH.md
img=$TEST_TMP/img
printf '# Title\n\nkept before\n' >"$md"
"$scripts/bench-compare" --only echo-64,http-ka-16,memory-idle,proxy-http,proxy-tcp-echo \
    --servers ringmaster-echo,ringmaster-http,ringmaster-idle,ringmaster-proxy,ringmaster-proxy-tcp \
    --memory-connections 50 \
    --bin "$RINGMASTER_BIN" --baseline "$RINGMASTER_BIN" \
    --duration 0.5 --warmup 0 --quiet-wait 0 --nice 0 --no-build --no-install \
    --no-crosscheck --no-open-loop \
    --out "$md" --img-dir "$img" --save "$TEST_TMP/results.json" 2>"$TEST_TMP/log" ||
    fail "bench-compare failed: $(tail -5 "$TEST_TMP/log")"

grep -q 'kept before' "$md" || fail "the text outside the block was lost"
[[ $(grep -c 'compare:begin' "$md") -eq 1 ]] || fail "no (or more than one) compare block"
row=$(grep -m1 '^| ringmaster echo |' "$md") || fail "no ringmaster echo row: $(cat "$md")"
# msg/s must be a positive number, errors 0.
python3 - "$row" <<'PY' || fail "bad echo row: $row"
import sys
cells = [c.strip() for c in sys.argv[1].strip("|").split("|")]
assert float(cells[1].replace(",", "")) > 0, cells
assert cells[11] == "0", cells
PY
grep -q '^| ringmaster http |' "$md" || fail "no ringmaster http row"
grep -q '^| ringmaster-baseline echo |' "$md" || fail "no baseline echo row"
grep -q '^### ringmaster ÷ ringmaster-baseline' "$md" || fail "no current ÷ baseline table"
mem=$(grep -m1 '^| ringmaster http (idle timeouts off) |' "$md") || fail "no memory row: $(cat "$md")"
# connections held: all 50; bytes per connection: a number.
python3 - "$mem" <<'PY' || fail "bad memory row: $mem"
import sys
cells = [c.strip() for c in sys.argv[1].strip("|").split("|")]
assert cells[1] == "50", cells
int(cells[5].strip("*").replace(",", "").lstrip("-"))
PY
# The proxy workloads: each proxy in front of its fresh backend, the HTTP one's pool
# reuse read from the backend's /stats, and a ratio line that says no peer ran.
grep -q '^| ringmaster proxy |' "$md" || fail "no ringmaster proxy row"
grep -q '^| ringmaster proxy --mode tcp |' "$md" || fail "no ringmaster proxy --mode tcp row"
grep -Eq '^\| ringmaster proxy \| [0-9,]+ \| [0-9,]+ \| [0-9,]+ \| [0-9.]+%' "$md" ||
    fail "no pool reuse row for ringmaster proxy: $(grep -A8 'reverse proxy' "$md")"
grep -q 'ratio vs peer.*not measured' "$md" || fail "no ratio vs peer line for the proxies"
for f in compare-throughput.svg compare-cpu.svg compare-latency-echo-64.svg compare-latency-http-ka-16.svg; do
    grep -q '<svg' "$img/$f" 2>/dev/null || fail "plot $f missing or not SVG"
    grep -q "img/$f\|$f" "$md" || fail "plot $f not linked from the markdown"
done
note "block, tables and plots written"

# Render again from the saved results: the block is replaced, not repeated.
echo 'kept after' >>"$md"
"$scripts/bench-compare" --render "$TEST_TMP/results.json" --out "$md" --img-dir "$img" 2>>"$TEST_TMP/log" ||
    fail "--render failed: $(tail -3 "$TEST_TMP/log")"
[[ $(grep -c 'compare:begin' "$md") -eq 1 ]] || fail "re-render duplicated the block"
grep -q 'kept after' "$md" || fail "re-render lost the text after the block"
note "re-render replaces the block"

for bad in "--only no-such-workload" "--servers nobody" "--duration 0" "--no-such-flag" \
    "--baseline /no/such/binary" "--memory-connections 0"; do
    rc=0
    # shellcheck disable=SC2086  # split on purpose
    "$scripts/bench-compare" $bad --out "$md" >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 2 ]] || fail "bench-compare $bad: exit $rc, want 2"
done
note "bad flags exit 2"
