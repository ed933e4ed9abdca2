"""Parses Prometheus text (stdin) with prometheus_client's own parser and checks the
families a ringmaster server exposes. Usage: prom_check.py SHARDS MIN [KIND], KIND one of
http (the default), ws, echo, udp-echo; MIN is the least total of the kind's main counter:
HTTP requests (http, ws), bytes received (echo), datagrams received (udp-echo).
Prints one `ok` line on success; any failed check raises (exit status 1)."""
import sys

from prometheus_client.parser import text_string_to_metric_families

shards, minimum = int(sys.argv[1]), int(sys.argv[2])
kind = sys.argv[3] if len(sys.argv) > 3 else "http"
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
want_shards = {str(i) for i in range(shards)}


def per_shard(family, suffix=""):
    return {s.labels["shard"]: s.value for s in family.samples if s.name == family.name + suffix}


counters = ["ringmaster_accepted", "ringmaster_closed", "ringmaster_calls_served",
            "ringmaster_bytes_in", "ringmaster_datagrams_in"]
if kind in ("http", "ws"):
    counters += ["ringmaster_http_requests", "ringmaster_http_calls"]
if kind == "ws":
    counters += ["ringmaster_ws_opened", "ringmaster_ws_messages_in"]
for name in counters:
    f = families[name]
    assert f.type == "counter", (name, f.type)
    assert f.documentation, name
    values = per_shard(f, "_total")
    assert set(values) == want_shards, (name, values)

main = {"http": "ringmaster_http_requests", "ws": "ringmaster_http_requests",
        "echo": "ringmaster_bytes_in", "udp-echo": "ringmaster_datagrams_in"}[kind]
totals = per_shard(families[main], "_total")
assert sum(totals.values()) >= minimum, (main, totals)
busy = "ringmaster_datagrams_in" if kind == "udp-echo" else "ringmaster_accepted"
spread = per_shard(families[busy], "_total")
assert all(v > 0 for v in spread.values()), ("a shard served nothing", busy, spread)

h = families.get("ringmaster_http_request_duration_seconds")
if kind in ("echo", "udp-echo"):
    assert h is None, "a server that times no requests has no latency histogram"
else:
    assert h.type == "histogram", h.type
    for shard in want_shards:
        buckets = [(s.labels["le"], s.value) for s in h.samples
                   if s.name.endswith("_bucket") and s.labels["shard"] == shard]
        count = [s.value for s in h.samples
                 if s.name.endswith("_count") and s.labels["shard"] == shard]
        total = [s.value for s in h.samples
                 if s.name.endswith("_sum") and s.labels["shard"] == shard]
        assert buckets[-1][0] == "+Inf", buckets
        values = [v for _, v in buckets]
        assert values == sorted(values), ("buckets are cumulative", buckets)
        assert count == [buckets[-1][1]] and len(total) == 1 and total[0] >= 0, (count, total)
        assert count[0] > 0, ("no request timed on shard", shard)
print("ok", kind, len(families), "families")
