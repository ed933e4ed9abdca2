//! Every bound the HTTP/1.1 protocol enforces, and the counters of how often each was hit.
//!
//! This module owns the numbers only; the parser and the connection state machine
//! enforce them. Each limit has a default safe for a server facing the open internet:
//! an attacker can make a connection hold at most about `max_header_bytes` of carried-over
//! head plus `max_body` of request body, and never more than `max_pipelined` requests
//! waiting for their responses.

use std::time::Duration;

/// The largest header count a [`Limits`] may ask for.
///
/// Headers are parsed into an array on the stack (no allocation per request); this is its
/// length. A larger `max_headers` is clamped to it.
pub const HEADER_CAP: usize = 256;

/// The longest chunk-size line (size, extensions and CRLF) accepted in a chunked body.
///
/// Extensions carry nothing the server uses, so a long line is only ever a way to make
/// the decoder spin; past this length the request is rejected with 400.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Configurable bounds for one HTTP/1.1 server. See each field for the status sent when
/// it is exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target, version), in bytes. Exceeded: 414.
    pub max_request_line: usize,
    /// Largest request head (request line and all header lines), in bytes. Exceeded: 431.
    /// Also bounds the trailer section of a chunked body (exceeded there: 431).
    pub max_header_bytes: usize,
    /// Most header fields in one request (clamped to [`HEADER_CAP`]). Exceeded: 431.
    pub max_headers: usize,
    /// Largest request body, in bytes, after chunked decoding. Exceeded: 413.
    pub max_body: u64,
    /// Longest time a request head may take to arrive once its first byte is here.
    /// Exceeded: 408, then the connection closes. Guards against slow-header clients.
    pub header_read_timeout: Duration,
    /// Longest time a keep-alive connection may sit with no request in progress.
    /// Exceeded: the connection is closed without a response.
    pub idle_timeout: Duration,
    /// Most requests parsed and waiting for their responses on one connection. Past it
    /// the connection stops reading until responses have been sent.
    pub max_pipelined: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_pipelined: 32,
        }
    }
}

impl Limits {
    /// The header count actually enforced: `max_headers` clamped to `1..=HEADER_CAP`.
    pub fn header_count(&self) -> usize {
        self.max_headers.clamp(1, HEADER_CAP)
    }

    /// The pipelining bound actually enforced (at least 1, so a connection always makes
    /// progress).
    pub fn pipelined(&self) -> usize {
        self.max_pipelined.max(1)
    }
}

/// How often each protocol event and limit was hit, per shard.
///
/// Plain integers: a shard is one thread, so nothing here is shared or atomic. The
/// `http` server's `/stats` route reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCounters {
    /// Requests parsed and handed to the application.
    pub requests: u64,
    /// Malformed requests answered with 400 (includes `smuggling`).
    pub bad_request: u64,
    /// Requests rejected for ambiguous message framing (RFC 9112 section 6.3): both
    /// Transfer-Encoding and Content-Length, differing or invalid Content-Length values,
    /// a Transfer-Encoding not ending in chunked, a bad chunk size.
    pub smuggling: u64,
    /// Request lines over `max_request_line` (414).
    pub uri_too_long: u64,
    /// Heads or trailers over `max_header_bytes` or `max_headers` (431).
    pub header_too_large: u64,
    /// Bodies over `max_body` (413).
    pub body_too_large: u64,
    /// Heads that did not arrive within `header_read_timeout` (408).
    pub header_timeout: u64,
    /// Keep-alive connections closed after `idle_timeout`.
    pub idle_closed: u64,
    /// Times a connection stopped reading because `max_pipelined` requests were waiting.
    pub pipeline_paused: u64,
    /// Requests with an HTTP version other than 1.0 and 1.1 (505).
    pub version_unsupported: u64,
    /// Requests with a transfer coding other than chunked, or a method we do not
    /// implement (501).
    pub not_implemented: u64,
    /// `100 Continue` interim responses sent.
    pub continue_sent: u64,
    /// Application mistakes repaired by the protocol: no answer (500 sent), answering
    /// twice, invalid response header fields dropped.
    pub app_errors: u64,
    /// Jobs handed to the worker pool with `Exchange::offload`.
    pub offload_submitted: u64,
    /// Offloads refused at once (queue full or no pool); the application answers them,
    /// typically 503.
    pub offload_refused: u64,
    /// Offload results handed to `App::on_offload_done` (panics included).
    pub offload_delivered: u64,
    /// Offloaded jobs that panicked (caught on the worker; the exchange was told).
    pub offload_panicked: u64,
    /// Offload results that came back for an exchange already finished, and were dropped.
    /// (Results for a closed connection never reach the protocol: the runtime drops them.)
    pub offload_stale: u64,
    /// Notifiers made with `Exchange::notifier`.
    pub notifiers: u64,
    /// Notifier values handed to `App::on_notify`.
    pub notify_delivered: u64,
    /// Notifier values (and dropped-notifier reports) for an exchange already finished,
    /// dropped. (Values for a closed connection never reach the protocol: the runtime
    /// counts them as `notify_dropped`.)
    pub notify_stale: u64,
    /// Notifiers dropped without a value, reported to `App::on_notifier_dropped`.
    pub notifier_dropped: u64,
    /// Cross-shard calls started with `Exchange::call`.
    pub calls: u64,
    /// Cross-shard calls refused at once (full mailbox, no such shard...); the
    /// application answers them, typically 503.
    pub calls_refused: u64,
    /// Call outcomes handed to `App::on_call_done`.
    pub calls_delivered: u64,
    /// Call outcomes that came back for an exchange already finished, and were dropped.
    pub calls_stale: u64,
    /// The HTTP/2 connections' counters (their requests are counted in `requests`).
    pub h2: crate::http2::H2Counters,
}

impl HttpCounters {
    /// Every counter with its name, for reports (e.g. the `/stats` route).
    pub fn fields(&self) -> [(&'static str, u64); 26] {
        [
            ("requests", self.requests),
            ("bad_request", self.bad_request),
            ("smuggling", self.smuggling),
            ("uri_too_long", self.uri_too_long),
            ("header_too_large", self.header_too_large),
            ("body_too_large", self.body_too_large),
            ("header_timeout", self.header_timeout),
            ("idle_closed", self.idle_closed),
            ("pipeline_paused", self.pipeline_paused),
            ("version_unsupported", self.version_unsupported),
            ("not_implemented", self.not_implemented),
            ("continue_sent", self.continue_sent),
            ("app_errors", self.app_errors),
            ("offload_submitted", self.offload_submitted),
            ("offload_refused", self.offload_refused),
            ("offload_delivered", self.offload_delivered),
            ("offload_panicked", self.offload_panicked),
            ("offload_stale", self.offload_stale),
            ("notifiers", self.notifiers),
            ("notify_delivered", self.notify_delivered),
            ("notify_stale", self.notify_stale),
            ("notifier_dropped", self.notifier_dropped),
            ("calls", self.calls),
            ("calls_refused", self.calls_refused),
            ("calls_delivered", self.calls_delivered),
            ("calls_stale", self.calls_stale),
        ]
    }
}
