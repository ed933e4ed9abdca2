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
        };
        *c += 1;
    }

    /// All errors.
    pub(crate) fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }

    /// (name, count) for every kind, in a stable order.
    pub(crate) fn by_kind(&self) -> [(&'static str, u64); 7] {
        [
            ("connect_refused", self.connect_refused),
            ("connect_error", self.connect_error),
            ("reset", self.reset),
            ("closed", self.closed),
            ("timeout", self.timeout),
            ("bad_response", self.bad_response),
            ("io", self.io),
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
