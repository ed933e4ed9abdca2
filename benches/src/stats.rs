//! Counters, errors by kind and the latency histogram of one engine thread, and their
//! summary.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Why a message or a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The server refused the connection (ECONNREFUSED).
    ConnectRefused,
    /// Any other failure to connect (no route, no ports left, too many open files, ...).
    ConnectError,
    /// The connection was reset (ECONNRESET, EPIPE, ECONNABORTED).
    Reset,
    /// The server closed the connection (EOF) where it should not have.
    Closed,
    /// No response byte within `--timeout` while a request was outstanding, or a connect
    /// that did not complete in time.
    Timeout,
    /// The response failed validation (wrong bytes, extra bytes).
    BadResponse,
    /// Any other I/O error.
    Io,
    /// TLS failed: the handshake (an untrusted certificate, no common protocol) or a
    /// record that does not decrypt.
    Tls,
}

/// Errors counted by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorCounts {
    pub connect_refused: u64,
    pub connect_error: u64,
    pub reset: u64,
    pub closed: u64,
    pub timeout: u64,
    pub bad_response: u64,
    pub io: u64,
    pub tls: u64,
}

impl ErrorCounts {
    /// Counts one error of `kind`.
    pub(crate) fn add(&mut self, kind: ErrorKind) {
        let c = match kind {
            ErrorKind::ConnectRefused => &mut self.connect_refused,
            ErrorKind::ConnectError => &mut self.connect_error,
            ErrorKind::Reset => &mut self.reset,
            ErrorKind::Closed => &mut self.closed,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::BadResponse => &mut self.bad_response,
            ErrorKind::Io => &mut self.io,
            ErrorKind::Tls => &mut self.tls,
        };
        *c += 1;
    }

    /// All errors.
    pub(crate) fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }

    /// (name, count) for every kind, in a stable order.
    pub(crate) fn by_kind(&self) -> [(&'static str, u64); 8] {
        [
            ("connect_refused", self.connect_refused),
            ("connect_error", self.connect_error),
            ("reset", self.reset),
            ("closed", self.closed),
            ("timeout", self.timeout),
            ("bad_response", self.bad_response),
            ("io", self.io),
            ("tls", self.tls),
        ]
    }

    fn merge(&mut self, o: &ErrorCounts) {
        self.connect_refused += o.connect_refused;
        self.connect_error += o.connect_error;
        self.reset += o.reset;
        self.closed += o.closed;
        self.timeout += o.timeout;
        self.bad_response += o.bad_response;
        self.io += o.io;
        self.tls += o.tls;
    }
}

/// Highest latency the histogram tracks, in ns (one hour); larger values saturate.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// What one engine thread measured during the measured window.
pub(crate) struct Recorder {
    /// Latency of every completed message, in nanoseconds.
    pub hist: Histogram<u64>,
    /// Messages completed (fully received and valid).
    pub messages: u64,
    /// Request bytes written.
    pub bytes_sent: u64,
    /// Response bytes read.
    pub bytes_received: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Recorder {
            // 3 significant digits from 1 ns to one hour.
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("static histogram bounds are valid"),
            messages: 0,
            bytes_sent: 0,
            bytes_received: 0,
            errors: ErrorCounts::default(),
        }
    }

    /// Forgets everything (the warmup is over).
    pub(crate) fn reset(&mut self) {
        self.hist.reset();
        self.messages = 0;
        self.bytes_sent = 0;
        self.bytes_received = 0;
        self.errors = ErrorCounts::default();
    }

    /// Records one completed message that took `ns` nanoseconds.
    #[inline]
    pub(crate) fn message(&mut self, ns: u64) {
        self.messages += 1;
        self.hist.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// Adds another thread's figures to these.
    pub(crate) fn merge(&mut self, o: &Recorder) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&o.hist);
        self.messages += o.messages;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.errors.merge(&o.errors);
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct LatencySummary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencySummary {
    /// Summarises a histogram of nanoseconds (all zero when it is empty).
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Percentiles at which the report samples the latency CDF: coarse in the body, dense in
/// the tail, where servers differ most.
pub(crate) const CDF_PERCENTILES: [f64; 23] = [
    0.0, 1.0, 5.0, 10.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0, 95.0, 97.5,
    99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// The latency CDF of a histogram of nanoseconds: `[percentile, µs]` at every
/// [`CDF_PERCENTILES`], with 0 the minimum and 100 the maximum; empty when it is empty.
pub(crate) fn latency_cdf(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    CDF_PERCENTILES
        .iter()
        .map(|&p| {
            // The ends are taken as min/max themselves so that they match `LatencySummary`
            // and no rounding of the quantile walk moves them.
            let ns = if p == 0.0 {
                h.min()
            } else if p == 100.0 {
                h.max()
            } else {
                h.value_at_quantile(p / 100.0)
            };
            [p, ns as f64 / 1000.0]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.002 + 1e-9
    }

    #[test]
    fn summary_of_uniform_latencies() {
        let mut r = Recorder::new();
        for us in 1..=10_000u64 {
            r.message(us * 1000);
        }
        let s = LatencySummary::of(&r.hist);
        assert!(close(s.p50, 5000.0), "{s:?}");
        assert!(close(s.p90, 9000.0), "{s:?}");
        assert!(close(s.p99, 9900.0), "{s:?}");
        assert!(close(s.p999, 9990.0), "{s:?}");
        assert!(close(s.max, 10_000.0), "{s:?}");
        assert!(close(s.mean, 5000.5), "{s:?}");
        assert_eq!(r.messages, 10_000);
    }

    #[test]
    fn cdf_is_monotonic_and_ends_at_min_and_max() {
        let mut r = Recorder::new();
        // A skewed spread with a long tail: 1..=1000 µs, then rare 20 ms stalls.
        for us in 1..=1000u64 {
            for _ in 0..(1001 - us) {
                r.message(us * 1000);
            }
        }
        for _ in 0..7 {
            r.message(20_000_000);
        }
        let cdf = latency_cdf(&r.hist);
        assert_eq!(cdf.len(), CDF_PERCENTILES.len());
        let ps: Vec<f64> = cdf.iter().map(|&[p, _]| p).collect();
        assert_eq!(ps, CDF_PERCENTILES);
        assert!(cdf.windows(2).all(|w| w[0][1] <= w[1][1]), "{cdf:?}");
        let s = LatencySummary::of(&r.hist);
        assert!(close(cdf[0][1], 1.0), "{cdf:?}");
        assert_eq!(cdf[cdf.len() - 1][1], s.max);
        assert!(close(s.max, 20_000.0), "{s:?}");
        let p50 = cdf.iter().find(|&&[p, _]| p == 50.0).unwrap()[1];
        assert_eq!(p50, s.p50);
    }

    #[test]
    fn cdf_of_empty_histogram_is_empty() {
        assert!(latency_cdf(&Recorder::new().hist).is_empty());
    }

    #[test]
    fn summary_of_empty_histogram_is_zero() {
        let r = Recorder::new();
        assert_eq!(LatencySummary::of(&r.hist), LatencySummary::default());
    }

    #[test]
    fn tail_is_not_averaged_away() {
        let mut r = Recorder::new();
        for _ in 0..9_980 {
            r.message(10_000); // 10 µs
        }
        for _ in 0..20 {
            r.message(50_000_000); // 50 ms stalls: 0.2%
        }
        let s = LatencySummary::of(&r.hist);
        assert!(close(s.p99, 10.0), "{s:?}");
        assert!(s.p999 >= 49_900.0, "{s:?}");
        assert!(close(s.max, 50_000.0), "{s:?}");
    }

    #[test]
    fn merge_adds_everything_and_zero_and_huge_values_saturate() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.message(0);
        b.message(u64::MAX);
        b.bytes_sent = 64;
        b.errors.add(ErrorKind::Reset);
        b.errors.add(ErrorKind::BadResponse);
        a.merge(&b);
        assert_eq!(a.messages, 2);
        assert_eq!(a.bytes_sent, 64);
        assert_eq!(a.errors.total(), 2);
        assert_eq!(a.errors.reset, 1);
        assert_eq!(a.hist.len(), 2);
        a.reset();
        assert_eq!((a.messages, a.hist.len(), a.errors.total()), (0, 0, 0));
    }
}
