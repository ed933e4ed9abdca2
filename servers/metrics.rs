//! Server-wide counters for every server: each shard's runtime counters, its protocol
//! counters (HTTP, WebSocket) and its request-latency histogram where it has them,
//! gathered with one cross-shard call per shard and rendered as JSON (`/stats`) or in
//! the Prometheus text exposition format, version 0.0.4 (`/metrics`).
//!
//! This module owns the snapshot a shard sends back ([`Snapshot`]), the histogram
//! ([`Latency`]), both renderings, and the gathering of one `/stats` or `/metrics`
//! request inside an HTTP application ([`Gather`]); the HTTP listener of the servers
//! that are not HTTP is `crate::metrics_listen`. It never blocks.

use std::fmt::Write as _;
use std::time::Duration;

use ringmaster_protocols::http1::{Exchange, HttpCounters, Response, TargetShard};
use ringmaster_protocols::websocket::WsCounters;
use ringmaster_runtime::{CallDone, CallError, Called, Counters};
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

/// One named set of a shard's counters.
#[derive(Debug, Clone)]
struct CounterSet {
    /// Its key in `/stats`: `runtime`, `http`, `websocket`.
    key: &'static str,
    /// The prefix of its families in `/metrics`.
    prefix: &'static str,
    /// What it counts, for `# HELP`.
    kind: &'static str,
    counters: Vec<(&'static str, u64)>,
}

/// What one shard reports: its index, its counters by set and name, its latencies (for
/// a server that times requests).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The shard's index.
    pub shard: usize,
    sets: Vec<CounterSet>,
    latency: Option<Latency>,
}

impl Snapshot {
    /// A shard's runtime counters, the set every server has.
    pub fn runtime(shard: usize, counters: &Counters) -> Self {
        let mut s = Snapshot {
            shard,
            sets: Vec::new(),
            latency: None,
        };
        s.add_set(
            "runtime",
            "ringmaster_",
            "runtime counter",
            &counters.fields(),
        );
        s
    }

    fn add_set(
        &mut self,
        key: &'static str,
        prefix: &'static str,
        kind: &'static str,
        counters: &[(&'static str, u64)],
    ) {
        self.sets.push(CounterSet {
            key,
            prefix,
            kind,
            counters: counters.to_vec(),
        });
    }

    /// Adds the shard's HTTP counters (`ringmaster_http_*`, HTTP/2's as
    /// `ringmaster_http_h2_*`).
    pub fn http(mut self, counters: &HttpCounters) -> Self {
        let mut all = counters.fields().to_vec();
        all.extend(counters.h2.fields());
        self.add_set("http", "ringmaster_http_", "HTTP counter", &all);
        self
    }

    /// Adds the shard's WebSocket counters (`ringmaster_ws_*`).
    pub fn websocket(mut self, counters: &WsCounters) -> Self {
        let fields = counters.fields();
        self.add_set("websocket", "ringmaster_ws_", "WebSocket counter", &fields);
        self
    }

    /// Adds the shard's request latencies.
    pub fn latency(mut self, latency: &Latency) -> Self {
        self.latency = Some(latency.clone());
        self
    }
}

/// Takes the snapshot of the shard an `Exchange::call` runs on (runtime and HTTP
/// counters, and the application's `latency`).
pub fn snapshot(latency: &Latency, shard: &TargetShard<'_, '_>) -> Snapshot {
    Snapshot::runtime(shard.shard_id(), shard.runtime_counters())
        .http(shard.http_counters())
        .latency(latency)
}

/// `"name":value` pairs, comma-separated.
fn json_pairs(s: &mut String, pairs: &[(&'static str, u64)]) {
    for (i, (name, v)) in pairs.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}\"{name}\":{v}");
    }
}

/// `"runtime":{..},"http":{..}` and, with latencies, `,"requests_timed":N`.
fn json_sets(s: &mut String, sets: &[CounterSet], timed: Option<u64>) {
    for (i, set) in sets.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}\"{}\":{{", set.key);
        json_pairs(s, &set.counters);
        s.push('}');
    }
    if let Some(timed) = timed {
        let _ = write!(s, ",\"requests_timed\":{timed}");
    }
}

/// Every shard's sets added up, counter by counter (each shard has the same sets, the
/// same names in the same order).
fn totals(parts: &[Snapshot]) -> Vec<CounterSet> {
    let mut total: Vec<CounterSet> = parts.first().map(|p| p.sets.clone()).unwrap_or_default();
    for p in parts.iter().skip(1) {
        for (into, from) in total.iter_mut().zip(&p.sets) {
            for (a, b) in into.counters.iter_mut().zip(&from.counters) {
                a.1 += b.1;
            }
        }
    }
    total
}

/// `/stats`: `{"shards":N,"total":{"runtime":{..},"http":{..},"requests_timed":N},
/// "per_shard":[{"shard":0,"runtime":{..},"http":{..},"requests_timed":N},..]}`, with
/// the sets the server has (`websocket` too for `ringmaster ws`, only `runtime` for the
/// echo servers, which time no requests). The totals come first, so a reader looking
/// for the first `"runtime"` section gets them.
pub fn json(parts: &[Snapshot]) -> String {
    let timed = |p: &Snapshot| p.latency.as_ref().map(|l| l.count);
    let total_timed = parts.iter().map(timed).sum::<Option<u64>>();
    let mut s = String::with_capacity(2048 * (parts.len() + 1));
    let _ = write!(s, "{{\"shards\":{},\"total\":{{", parts.len());
    json_sets(&mut s, &totals(parts), total_timed);
    s.push_str("},\"per_shard\":[");
    for (i, p) in parts.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}{{\"shard\":{},", p.shard);
        json_sets(&mut s, &p.sets, timed(p));
        s.push('}');
    }
    s.push_str("]}");
    s
}

/// A bound as Prometheus writes it (`0.005`, `1.0`).
fn le(b: f64) -> String {
    let s = format!("{b}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// `/metrics`: every counter as `<prefix><name>_total{shard="N"}`, the prefix naming
/// its set (`ringmaster_` runtime, `ringmaster_http_` HTTP, `ringmaster_ws_` WebSocket;
/// it keeps the sets apart where a name is in two), and, for a server that times
/// requests, the latency histogram `ringmaster_http_request_duration_seconds`; each
/// family with `# HELP` and `# TYPE`.
pub fn prometheus(parts: &[Snapshot]) -> String {
    let mut s = String::with_capacity(8192 * (parts.len() + 1));
    let Some(first) = parts.first() else {
        return s;
    };
    for (k, set) in first.sets.iter().enumerate() {
        for (i, (name, _)) in set.counters.iter().enumerate() {
            let family = format!("{}{name}_total", set.prefix);
            let _ = writeln!(s, "# HELP {family} The {} {name} of each shard.", set.kind);
            let _ = writeln!(s, "# TYPE {family} counter");
            for p in parts {
                let v = p
                    .sets
                    .get(k)
                    .and_then(|c| c.counters.get(i))
                    .map_or(0, |c| c.1);
                let _ = writeln!(s, "{family}{{shard=\"{}\"}} {v}", p.shard);
            }
        }
    }
    if parts.iter().all(|p| p.latency.is_none()) {
        return s;
    }
    let h = "ringmaster_http_request_duration_seconds";
    let _ = writeln!(
        s,
        "# HELP {h} Time from the event-loop turn a request was parsed in to the turn its \
         response was complete (0 when answered at once)."
    );
    let _ = writeln!(s, "# TYPE {h} histogram");
    for p in parts {
        let l = p.latency.clone().unwrap_or_default();
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

/// The content type of `/metrics`.
pub const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4";

/// Which rendering a path asks for: `/stats` JSON (false), `/metrics` Prometheus (true).
pub fn route(path: &str) -> Option<bool> {
    match path {
        "/stats" => Some(false),
        "/metrics" => Some(true),
        _ => None,
    }
}

/// The response body and its content type: every shard's snapshot (in any order)
/// rendered as `/metrics` (`prometheus`) or `/stats`.
pub fn render(prometheus: bool, parts: &mut [Snapshot]) -> (&'static str, String) {
    parts.sort_by_key(|p| p.shard);
    if prometheus {
        (PROMETHEUS_TYPE, self::prometheus(parts))
    } else {
        ("application/json", json(parts))
    }
}

/// 503 for a cross-shard call refused (a full mailbox) or failed.
pub fn busy(ex: &mut Exchange<'_>, e: CallError) {
    let body = format!("Service Unavailable: {e}, retry\n");
    let fields = [("Retry-After", "1"), ("Content-Type", "text/plain")];
    ex.respond(Response::new(503).fields(&fields).body(body.as_bytes()));
}

/// A `/stats` or `/metrics` request in progress in an HTTP application: one snapshot
/// per shard asked for, `left` still to come. Keep it in the exchange's task and pass
/// it every call outcome ([`Gather::on_done`]).
#[derive(Debug)]
pub struct Gather {
    prometheus: bool,
    parts: Vec<Snapshot>,
    left: usize,
}

impl Gather {
    /// Asks each of `shards` shards (this one included) for its snapshot, `ask` making
    /// one call. If one is refused, answers 503 and returns `None` (snapshots already
    /// asked for come back to a finished exchange and are dropped).
    pub fn start(
        ex: &mut Exchange<'_>,
        shards: usize,
        prometheus: bool,
        ask: impl Fn(&mut Exchange<'_>, usize) -> Result<Called<Snapshot>, CallError>,
    ) -> Option<Gather> {
        for shard in 0..shards {
            if let Err(e) = ask(ex, shard) {
                busy(ex, e);
                return None;
            }
        }
        Some(Gather {
            prometheus,
            parts: Vec::with_capacity(shards),
            left: shards,
        })
    }

    /// One shard's snapshot (or why there is none: 503) came back; answers once the
    /// last has.
    pub fn on_done(&mut self, done: CallDone, ex: &mut Exchange<'_>) {
        match Called::<Snapshot>::new().result(done) {
            Ok(snapshot) => {
                self.parts.push(snapshot);
                self.left -= 1;
                if self.left == 0 {
                    let (ty, body) = render(self.prometheus, &mut self.parts);
                    let fields = [("Content-Type", ty)];
                    ex.respond(Response::new(200).fields(&fields).body(body.as_bytes()));
                }
            }
            Err(e) => busy(ex, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(shard: usize, requests: u64, latencies_ms: &[u64]) -> Snapshot {
        let mut latency = Latency::default();
        for &ms in latencies_ms {
            latency.observe(Duration::from_millis(ms));
        }
        let mut s = Snapshot {
            shard,
            sets: Vec::new(),
            latency: Some(latency),
        };
        s.add_set(
            "runtime",
            "ringmaster_",
            "runtime counter",
            &[("accepted", requests), ("closed", 1)],
        );
        s.add_set(
            "http",
            "ringmaster_http_",
            "HTTP counter",
            &[("requests", requests)],
        );
        s
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
