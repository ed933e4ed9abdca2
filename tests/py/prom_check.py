"""Parses Prometheus text (stdin) with prometheus_client's own parser and checks the
families `ringmaster http` exposes. Usage: prom_check.py SHARDS MIN_REQUESTS.
Prints one `ok` line on success; any failed check raises (exit status 1)."""
import sys

from prometheus_client.parser import text_string_to_metric_families

shards, min_requests = int(sys.argv[1]), int(sys.argv[2])
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
want_shards = {str(i) for i in range(shards)}


def per_shard(family, suffix=""):
    return {s.labels["shard"]: s.value for s in family.samples if s.name == family.name + suffix}


for name in ("ringmaster_accepted", "ringmaster_closed", "ringmaster_http_requests",
             "ringmaster_http_calls", "ringmaster_calls_served"):
    f = families[name]
    assert f.type == "counter", (name, f.type)
    assert f.documentation, name
    values = per_shard(f, "_total")
    assert set(values) == want_shards, (name, values)

requests = per_shard(families["ringmaster_http_requests"], "_total")
assert sum(requests.values()) >= min_requests, requests
accepted = per_shard(families["ringmaster_accepted"], "_total")
assert all(v > 0 for v in accepted.values()), ("a shard accepted nothing", accepted)

h = families["ringmaster_http_request_duration_seconds"]
assert h.type == "histogram", h.type
for shard in want_shards:
    buckets = [(s.labels["le"], s.value) for s in h.samples
               if s.name.endswith("_bucket") and s.labels["shard"] == shard]
    count = [s.value for s in h.samples if s.name.endswith("_count") and s.labels["shard"] == shard]
    total = [s.value for s in h.samples if s.name.endswith("_sum") and s.labels["shard"] == shard]
    assert buckets[-1][0] == "+Inf", buckets
    values = [v for _, v in buckets]
    assert values == sorted(values), ("buckets are cumulative", buckets)
    assert count == [buckets[-1][1]] and len(total) == 1 and total[0] >= 0, (count, total)
    assert count[0] > 0, ("no request timed on shard", shard)
print("ok", len(families), "families")
