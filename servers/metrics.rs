//! Server-wide counters for `ringmaster http`: every shard's runtime and HTTP counters
//! and its request-latency histogram, gathered with one cross-shard call per shard and
//! rendered as JSON (`/stats`) or in the Prometheus text exposition format, version
//! 0.0.4 (`/metrics`).
//!
//! This module owns the snapshot a shard sends back ([`Snapshot`]), the histogram
//! ([`Latency`]) and both renderings. It starts no call itself (the app does) and never
//! blocks.

use std::fmt::Write as _;
use std::time::Duration;

use ringmaster_protocols::http1::TargetShard;

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` follows.
pub const BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// One shard's request latencies: from the loop turn a request was parsed in to the
/// turn its response was complete, on the shard's clock (read once per turn). A request
/// answered in the callback that received it counts as 0, so the histogram costs two
/// additions per request and no clock read.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    /// Observations per bucket (not cumulative), the last one past every bound.
    buckets: [u64; BOUNDS.len() + 1],
    /// The sum of every observation, in nanoseconds.
    sum_ns: u64,
    count: u64,
}

impl Latency {
    /// Counts one request that took `d`.
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i] += 1;
        self.sum_ns = self
            .sum_ns
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.count += 1;
    }
}

/// What one shard reports: its index, its counters by name, its latencies.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The shard's index.
    pub shard: usize,
    runtime: Vec<(&'static str, u64)>,
    http: Vec<(&'static str, u64)>,
    latency: Latency,
}

/// Takes the snapshot of the shard a call runs on (the call's closure).
pub fn snapshot(latency: &Latency, shard: &TargetShard<'_, '_>) -> Snapshot {
    Snapshot {
        shard: shard.shard_id(),
        runtime: shard.runtime_counters().fields().to_vec(),
        http: shard.http_counters().fields().to_vec(),
        latency: latency.clone(),
    }
}

/// `"name":value` pairs, comma-separated.
fn json_pairs(s: &mut String, pairs: &[(&'static str, u64)]) {
    for (i, (name, v)) in pairs.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}\"{name}\":{v}");
    }
}

/// Adds `from` into `into`, counter by counter (the same names in the same order).
fn add(into: &mut Vec<(&'static str, u64)>, from: &[(&'static str, u64)]) {
    if into.is_empty() {
        *into = from.to_vec();
        return;
    }
    for (a, b) in into.iter_mut().zip(from) {
        a.1 += b.1;
    }
}

/// `/stats`: `{"shards":N,"total":{"runtime":{..},"http":{..},"requests_timed":N},
/// "per_shard":[{"shard":0,"runtime":{..},"http":{..},"requests_timed":N},..]}`. The
/// totals come first, so a reader looking for the first `"runtime"` section gets them.
pub fn json(parts: &[Snapshot]) -> String {
    let (mut runtime, mut http, mut timed) = (Vec::new(), Vec::new(), 0);
    for p in parts {
        add(&mut runtime, &p.runtime);
        add(&mut http, &p.http);
        timed += p.latency.count;
    }
    let mut s = String::with_capacity(2048 * (parts.len() + 1));
    let _ = write!(s, "{{\"shards\":{},\"total\":{{\"runtime\":{{", parts.len());
    json_pairs(&mut s, &runtime);
    s.push_str("},\"http\":{");
    json_pairs(&mut s, &http);
    let _ = write!(s, "}},\"requests_timed\":{timed}}},\"per_shard\":[");
    for (i, p) in parts.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}{{\"shard\":{},\"runtime\":{{", p.shard);
        json_pairs(&mut s, &p.runtime);
        s.push_str("},\"http\":{");
        json_pairs(&mut s, &p.http);
        let _ = write!(s, "}},\"requests_timed\":{}}}", p.latency.count);
    }
    s.push_str("]}");
    s
}

/// Picks one set of counters out of a snapshot.
type Pick = fn(&Snapshot) -> &[(&'static str, u64)];

/// A bound as Prometheus writes it (`0.005`, `1.0`).
fn le(b: f64) -> String {
    let s = format!("{b}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// `/metrics`: every counter as `ringmaster_<name>_total{shard="N"}` (runtime) or
/// `ringmaster_http_<name>_total{shard="N"}` (HTTP; the prefix keeps the two sets apart
/// where a name is in both), and the latency histogram
/// `ringmaster_http_request_duration_seconds`, each family with `# HELP` and `# TYPE`.
pub fn prometheus(parts: &[Snapshot]) -> String {
    let mut s = String::with_capacity(8192 * (parts.len() + 1));
    let families: [(&str, &str, Pick); 2] = [
        ("ringmaster_", "runtime counter", |p| &p.runtime),
        ("ringmaster_http_", "HTTP counter", |p| &p.http),
    ];
    for (prefix, kind, pick) in families {
        let Some(first) = parts.first() else { break };
        for (i, (name, _)) in pick(first).iter().enumerate() {
            let family = format!("{prefix}{name}_total");
            let _ = writeln!(s, "# HELP {family} The {kind} {name} of each shard.");
            let _ = writeln!(s, "# TYPE {family} counter");
            for p in parts {
                let v = pick(p).get(i).map_or(0, |c| c.1);
                let _ = writeln!(s, "{family}{{shard=\"{}\"}} {v}", p.shard);
            }
        }
    }
    let h = "ringmaster_http_request_duration_seconds";
    let _ = writeln!(
        s,
        "# HELP {h} Time from the event-loop turn a request was parsed in to the turn its \
         response was complete (0 when answered at once)."
    );
    let _ = writeln!(s, "# TYPE {h} histogram");
    for p in parts {
        let l = &p.latency;
        let mut cumulative = 0;
        for (i, b) in BOUNDS.iter().enumerate() {
            cumulative += l.buckets[i];
            let _ = writeln!(
                s,
                "{h}_bucket{{shard=\"{}\",le=\"{}\"}} {cumulative}",
                p.shard,
                le(*b)
            );
        }
        let _ = writeln!(
            s,
            "{h}_bucket{{shard=\"{}\",le=\"+Inf\"}} {}",
            p.shard, l.count
        );
        let sum = l.sum_ns as f64 / 1e9;
        let _ = writeln!(s, "{h}_sum{{shard=\"{}\"}} {sum}", p.shard);
        let _ = writeln!(s, "{h}_count{{shard=\"{}\"}} {}", p.shard, l.count);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(shard: usize, requests: u64, latencies_ms: &[u64]) -> Snapshot {
        let mut latency = Latency::default();
        for &ms in latencies_ms {
            latency.observe(Duration::from_millis(ms));
        }
        Snapshot {
            shard,
            runtime: vec![("accepted", requests), ("closed", 1)],
            http: vec![("requests", requests)],
            latency,
        }
    }

    #[test]
    fn json_has_totals_first_then_each_shard() {
        let j = json(&[part(0, 2, &[0]), part(1, 3, &[])]);
        assert_eq!(
            j,
            "{\"shards\":2,\"total\":{\"runtime\":{\"accepted\":5,\"closed\":2},\
             \"http\":{\"requests\":5},\"requests_timed\":1},\"per_shard\":[\
             {\"shard\":0,\"runtime\":{\"accepted\":2,\"closed\":1},\"http\":{\"requests\":2},\
             \"requests_timed\":1},\
             {\"shard\":1,\"runtime\":{\"accepted\":3,\"closed\":1},\"http\":{\"requests\":3},\
             \"requests_timed\":0}]}"
        );
    }

    #[test]
    fn prometheus_counters_and_a_cumulative_histogram() {
        let t = prometheus(&[part(0, 2, &[0, 3, 7000])]);
        assert!(
            t.contains("# TYPE ringmaster_accepted_total counter\n"),
            "{t}"
        );
        assert!(
            t.contains("ringmaster_accepted_total{shard=\"0\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("ringmaster_http_requests_total{shard=\"0\"} 2\n"),
            "{t}"
        );
        let h = "ringmaster_http_request_duration_seconds";
        assert!(t.contains(&format!("{h}_bucket{{shard=\"0\",le=\"0.0005\"}} 1\n")));
        assert!(t.contains(&format!("{h}_bucket{{shard=\"0\",le=\"0.005\"}} 2\n")));
        assert!(t.contains(&format!("{h}_bucket{{shard=\"0\",le=\"5.0\"}} 2\n")));
        assert!(t.contains(&format!("{h}_bucket{{shard=\"0\",le=\"+Inf\"}} 3\n")));
        assert!(
            t.contains(&format!("{h}_sum{{shard=\"0\"}} 7.003\n")),
            "{t}"
        );
        assert!(t.contains(&format!("{h}_count{{shard=\"0\"}} 3\n")));
    }
}
