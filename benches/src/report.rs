//! The result of a run: human table or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::EngineKind;
use crate::stats::{ErrorCounts, LatencySummary};

/// The server's resource use over the measured window.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServerUsage {
    pub pid: u32,
    /// utime + stime used during the measured window, in seconds.
    pub cpu_s: f64,
    /// `cpu_s` per completed message, in microseconds.
    pub cpu_us_per_message: Option<f64>,
    /// VmRSS at the end of the window, in KiB.
    pub rss_kib: Option<u64>,
}

/// The load generator's own CPU use over the measured window.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClientUsage {
    pub cpu_s: f64,
    pub cpu_us_per_message: Option<f64>,
}

/// The whole machine over the measured window: is anything else competing?
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MachineUsage {
    /// CPU seconds all CPUs were busy (user, nice, system, irq, softirq).
    pub busy_cpu_s: f64,
    /// CPU seconds stolen by the hypervisor.
    pub steal_s: f64,
    /// Busy CPU seconds of everything but this load generator and (with
    /// `--server-pid`) the server: should be near 0, or the figures are disturbed.
    pub other_cpu_s: f64,
}

/// Everything a run measured (the `--json` output).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub target: &'static str,
    pub addr: String,
    pub connections: usize,
    pub threads: usize,
    /// Bytes of one request (tcp-echo: the message size).
    pub size: usize,
    /// The engine that moved the bytes.
    pub engine: EngineKind,
    /// Something the reader must know about how the run was made.
    pub note: Option<&'static str>,
    /// Messages in flight per connection (`--pipeline`, or `--streams` with `--h2`).
    pub pipeline: usize,
    /// HTTP/2 (`--h2`): `pipeline` is then concurrent streams per connection.
    pub h2: bool,
    /// "closed" or "open".
    pub mode: &'static str,
    /// Open loop: messages/s asked for.
    pub rate: Option<f64>,
    pub connect_per_request: bool,
    /// Spoken over TLS (`--tls`); byte counts are then on the wire (records).
    pub tls: bool,
    pub warmup_s: f64,
    /// Length of the measured window.
    pub elapsed_s: f64,
    pub messages: u64,
    pub messages_per_s: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Bytes received per second (the echoed payload).
    pub bytes_per_s: f64,
    pub errors_total: u64,
    pub errors: ErrorCounts,
    /// Microseconds: from send (closed loop) or from due time (open loop) to the last
    /// byte of the response.
    pub latency_us: LatencySummary,
    /// The latency CDF: `[percentile, µs]` pairs from 0 (the minimum) to 100 (the
    /// maximum), denser in the tail; empty when no message completed.
    pub latency_cdf_us: Vec<[f64; 2]>,
    pub server: Option<ServerUsage>,
    pub client: ClientUsage,
    pub machine: Option<MachineUsage>,
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn bytes_rate(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB/s", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB/s", b / 1e6)
    } else {
        format!("{:.1} kB/s", b / 1e3)
    }
}

fn per_message(us: Option<f64>) -> String {
    us.map_or_else(|| "-".into(), |v| format!("{v:.2} µs/message"))
}

impl Report {
    /// The human-readable table.
    pub(crate) fn human(&self) -> String {
        let mut s = String::new();
        let mode = match self.rate {
            Some(r) => format!("open loop at {r} msg/s (latency from due time)"),
            None => "closed loop".into(),
        };
        let _ = writeln!(
            s,
            "{}{}{} {}: {} connections{}, {} thread{}, {} B messages, {} {}, {}",
            self.target,
            if self.h2 { "/2" } else { "" },
            if self.tls { " over TLS" } else { "" },
            self.addr,
            self.connections,
            if self.connect_per_request {
                " (one per message)"
            } else {
                ""
            },
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.size,
            if self.h2 { "streams" } else { "pipeline" },
            self.pipeline,
            mode,
        );
        if let Some(note) = self.note {
            let _ = writeln!(s, "note: {note}");
        }
        let _ = writeln!(
            s,
            "measured {:.2} s after {:.2} s of warmup\n",
            self.elapsed_s, self.warmup_s
        );
        let _ = writeln!(
            s,
            "  messages   {:>14}   {:>12.1}/s",
            thousands(self.messages),
            self.messages_per_s
        );
        let _ = writeln!(
            s,
            "  bytes      {:>14}   {:>14}  (received; {} sent)",
            thousands(self.bytes_received),
            bytes_rate(self.bytes_per_s),
            thousands(self.bytes_sent)
        );
        let _ = write!(s, "  errors     {:>14}", thousands(self.errors_total));
        let kinds: Vec<String> = self
            .errors
            .by_kind()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !kinds.is_empty() {
            let _ = write!(s, "   ({})", kinds.join(", "));
        }
        s.push('\n');
        let l = &self.latency_us;
        let _ = writeln!(
            s,
            "  latency µs {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "p50", "p90", "p99", "p99.9", "max", "mean"
        );
        let _ = writeln!(
            s,
            "             {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        if let Some(sv) = &self.server {
            let rss = sv
                .rss_kib
                .map_or_else(|| "-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
            let _ = writeln!(
                s,
                "  server     CPU {:.2} s, {}, RSS {} (pid {})",
                sv.cpu_s,
                per_message(sv.cpu_us_per_message),
                rss,
                sv.pid
            );
        }
        let _ = writeln!(
            s,
            "  client     CPU {:.2} s, {}",
            self.client.cpu_s,
            per_message(self.client.cpu_us_per_message)
        );
        if let Some(m) = &self.machine {
            let _ = writeln!(
                s,
                "  machine    other processes {:.2} CPU s, steal {:.2} s{}",
                m.other_cpu_s,
                m.steal_s,
                if m.other_cpu_s > 0.05 * self.elapsed_s || m.steal_s > 0.05 * self.elapsed_s {
                    "  (the machine was not quiet: figures are disturbed)"
                } else {
                    ""
                }
            );
        }
        s
    }

    /// The JSON document (`--json`).
    pub(crate) fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            target: "tcp-echo",
            addr: "127.0.0.1:7000".into(),
            connections: 100,
            threads: 1,
            size: 64,
            engine: EngineKind::Uring,
            note: None,
            pipeline: 1,
            h2: false,
            mode: "closed",
            rate: None,
            connect_per_request: false,
            tls: true,
            warmup_s: 1.0,
            elapsed_s: 10.0,
            messages: 1_234_567,
            messages_per_s: 123_456.7,
            bytes_sent: 64 * 1_234_567,
            bytes_received: 64 * 1_234_567,
            bytes_per_s: 64.0 * 123_456.7,
            errors_total: 2,
            errors: ErrorCounts {
                reset: 2,
                ..ErrorCounts::default()
            },
            latency_us: LatencySummary {
                p50: 10.0,
                p90: 20.0,
                p99: 30.0,
                p999: 40.0,
                max: 50.0,
                mean: 12.0,
            },
            latency_cdf_us: vec![[0.0, 5.0], [50.0, 10.0], [100.0, 50.0]],
            server: Some(ServerUsage {
                pid: 42,
                cpu_s: 9.9,
                cpu_us_per_message: Some(8.02),
                rss_kib: Some(4096),
            }),
            client: ClientUsage {
                cpu_s: 10.0,
                cpu_us_per_message: Some(8.1),
            },
            machine: Some(MachineUsage {
                busy_cpu_s: 21.0,
                steal_s: 0.0,
                other_cpu_s: 1.1,
            }),
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn human_table_has_the_figures() {
        let h = sample().human();
        assert!(h.contains("1,234,567"), "{h}");
        assert!(h.starts_with("tcp-echo over TLS 127.0.0.1:7000"), "{h}");
        assert!(h.contains("8.02 µs/message"), "{h}");
        assert!(h.contains("reset 2"), "{h}");
        assert!(h.contains("RSS 4.0 MiB"), "{h}");
        assert!(h.contains("other processes 1.10 CPU s"), "{h}");
        assert!(h.contains("not quiet"), "{h}");
    }

    #[test]
    fn json_round_trips() {
        let v: serde_json::Value = serde_json::from_str(&sample().json()).unwrap();
        assert_eq!(v["messages"], 1_234_567);
        assert_eq!(v["tls"], true);
        assert_eq!(v["errors"]["reset"], 2);
        assert_eq!(v["latency_us"]["p99"], 30.0);
        assert_eq!(v["latency_cdf_us"][1], serde_json::json!([50.0, 10.0]));
        assert_eq!(v["server"]["cpu_us_per_message"], 8.02);
    }
}
