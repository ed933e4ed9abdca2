#!/usr/bin/env bash
# tune-kernel without --apply lists somaxconn with its live value and changes nothing;
# --json agrees; --apply/--revert round-trip on a fake /proc/sys tree (never the real one).
set -euo pipefail
# shellcheck source=tests/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd python3

if command -v sysctl >/dev/null 2>&1; then
    live=$(sysctl -n net.core.somaxconn)
else
    live=$(cat /proc/sys/net/core/somaxconn)
fi
before=$(cat /proc/sys/net/core/somaxconn)

out=$("$scripts/tune-kernel")
line=$(grep -E '^net\.core\.somaxconn ' <<<"$out") || fail "no somaxconn line in: $out"
note "$line"
read -r _ current _ <<<"$line"
[[ "$current" == "$live" ]] || fail "tune-kernel shows somaxconn=$current, sysctl says $live"
for k in net.ipv4.tcp_max_syn_backlog net.core.netdev_max_backlog net.ipv4.ip_local_port_range \
         net.ipv4.tcp_tw_reuse net.ipv4.tcp_syncookies net.ipv4.tcp_abort_on_overflow fs.file-max \
         fs.nr_open 'ulimit -n' kernel.io_uring_disabled net.core.rmem_max net.core.wmem_max \
         vm.max_map_count; do
    grep -qF "$k " <<<"$out" || fail "tune-kernel does not list $k"
done
[[ "$(cat /proc/sys/net/core/somaxconn)" == "$before" ]] || fail "tune-kernel without --apply changed somaxconn"

"$scripts/tune-kernel" --json >"$TEST_TMP/tk.json"
js=$(json_get "$TEST_TMP/tk.json" '[s["current"] for s in j["settings"] if s["name"]=="net.core.somaxconn"][0]')
[[ "$js" == "$live" ]] || fail "--json somaxconn=$js, live $live"
nofile=$(json_get "$TEST_TMP/tk.json" '[s["current"] for s in j["settings"] if s["name"]=="ulimit -n"][0]')
[[ "$nofile" == "$(ulimit -n)" ]] || fail "--json ulimit -n=$nofile, shell says $(ulimit -n)"
note "--json: somaxconn=$js, ulimit -n=$nofile"

# --apply / --revert against a fake tree. Missing files must show as unavailable.
fake=$TEST_TMP/sys
mkdir -p "$fake/net/core" "$fake/net/ipv4" "$fake/fs" "$fake/vm" "$fake/kernel"
echo 128 >"$fake/net/core/somaxconn"
printf '32768\t60999\n' >"$fake/net/ipv4/ip_local_port_range"
echo 0 >"$fake/net/ipv4/tcp_abort_on_overflow"
echo 9999999 >"$fake/fs/file-max"
export TUNE_KERNEL_PROC_SYS=$fake
"$scripts/tune-kernel" --json >"$TEST_TMP/fake.json"
st=$(json_get "$TEST_TMP/fake.json" '{s["name"]: s["status"] for s in j["settings"]}')
note "fake tree statuses: $st"
[[ $(json_get "$TEST_TMP/fake.json" '[s["status"] for s in j["settings"] if s["name"]=="net.core.netdev_max_backlog"][0]') == unavailable ]] \
    || fail "a missing sysctl is not shown as unavailable"
"$scripts/tune-kernel" --apply --save "$TEST_TMP/saved.conf" >"$TEST_TMP/apply.out"
cat "$TEST_TMP/apply.out"
[[ "$(cat "$fake/net/core/somaxconn")" == 65535 ]] || fail "--apply did not raise somaxconn"
[[ "$(tr -s '\t ' ' ' <"$fake/net/ipv4/ip_local_port_range")" == "10000 65535" ]] || fail "--apply did not widen the port range"
[[ "$(cat "$fake/fs/file-max")" == 9999999 ]] || fail "--apply lowered fs.file-max"
grep -q '^net.core.somaxconn = 128$' "$TEST_TMP/saved.conf" || fail "old somaxconn not saved"
grep -q 'file-max' "$TEST_TMP/saved.conf" && fail "saved a setting that was not changed"
"$scripts/tune-kernel" --revert "$TEST_TMP/saved.conf"
[[ "$(cat "$fake/net/core/somaxconn")" == 128 ]] || fail "--revert did not restore somaxconn"
[[ "$(tr -s '\t ' ' ' <"$fake/net/ipv4/ip_local_port_range")" == "32768 60999" ]] || fail "--revert did not restore the port range"
unset TUNE_KERNEL_PROC_SYS

# --apply as a non-root user: a clear message, exit 2, nothing changed.
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null 2>&1; then
    rc=0
    msg=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$scripts/tune-kernel" --apply 2>&1) || rc=$?
    [[ $rc -eq 2 ]] || fail "non-root --apply: exit $rc, want 2 ($msg)"
    grep -q 'needs root' <<<"$msg" || fail "non-root --apply message unclear: $msg"
    note "non-root: $msg"
    [[ "$(cat /proc/sys/net/core/somaxconn)" == "$before" ]] || fail "non-root --apply changed somaxconn"
fi
