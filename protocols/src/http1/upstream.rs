//! Calling other HTTP services from an [`App`](super::App): an HTTP/1.1 client over the
//! shard's own outbound connections, pooled per shard and per upstream.
//!
//! An application names a backend with an [`Upstream`] (its address, limits, optional
//! TLS) and starts a request from any callback that has an exchange with
//! [`Exchange::fetch`](super::Exchange::fetch). The response comes back to that exchange
//! as [`UpstreamEvent`]s in [`App::on_upstream`](super::App::on_upstream): the head, the
//! body in pieces as they arrive, then the end or a typed [`UpstreamError`].
//!
//! This module owns the pool and the upstream connections' protocol (the client role of
//! the codec in [`client`](super::client)); the server connections never touch an
//! upstream socket. Everything stays on the shard that asked: a pool is per shard, an
//! upstream connection belongs to the shard that opened it, and a response reaches its
//! exchange by the runtime's `post` to the server connection's token (generation
//! checked, so a response for a connection that closed meanwhile is dropped, never
//! delivered to the connection that took its slot).
//!
//! Parts: `spec` (what an application configures), `error`, `reply` (what travels from
//! an upstream connection to its exchange), `pool` (choosing, queueing and opening
//! connections), `link` (one upstream connection's bytes), `forward` (what a proxy
//! changes in the fields it passes on).

mod error;
pub mod forward;
mod link;
mod pool;
mod reply;
mod spec;

pub use error::UpstreamError;
pub use spec::{Upstream, UpstreamBuilder, UpstreamTls};

pub(crate) use link::tunnel_event;
pub(crate) use pool::TunnelBytes;
pub(crate) use pool::{BodyPace, Pools};
pub(crate) use reply::Reply;

use super::client::{FieldsView, ResponseHead};

/// A request's header fields, borrowed: values as text or as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFields<'a> {
    Text(&'a [(&'a str, &'a str)]),
    Bytes(&'a [(&'a str, &'a [u8])]),
}

impl RequestFields<'_> {
    /// The bytes the fields take on the wire (`Name: value` and CRLF each).
    pub(crate) fn wire_len(&self) -> usize {
        match self {
            RequestFields::Text(l) => l.iter().map(|(n, v)| n.len() + v.len() + 4).sum(),
            RequestFields::Bytes(l) => l.iter().map(|(n, v)| n.len() + v.len() + 4).sum(),
        }
    }
}

/// Names one request made with [`Exchange::fetch`](super::Exchange::fetch), for an
/// exchange that makes several: each [`UpstreamEvent`] comes with the `Fetch` it
/// belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fetch(pub(crate) u32);

/// A request to an upstream, borrowed: building one costs nothing, and it is encoded
/// when [`Exchange::fetch`](super::Exchange::fetch) takes it.
///
/// `Host` is the upstream's ([`UpstreamBuilder::host`]) unless `headers` name one;
/// `Content-Length` is written from the body, which goes whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    pub(crate) headers: RequestFields<'a>,
    pub(crate) body: &'a [u8],
    /// The body follows in pieces ([`Exchange::fetch_body`](super::Exchange::fetch_body)):
    /// `Some(Some(n))` of `n` bytes, `Some(None)` chunked.
    pub(crate) streamed: Option<Option<u64>>,
}

impl<'a> UpstreamRequest<'a> {
    /// A request with this method and target (origin-form, e.g. `/path?q`), no fields,
    /// no body.
    pub fn new(method: &'a str, target: &'a str) -> Self {
        UpstreamRequest {
            method,
            target,
            headers: RequestFields::Text(&[]),
            body: &[],
            streamed: None,
        }
    }

    /// `GET target`.
    pub fn get(target: &'a str) -> Self {
        Self::new("GET", target)
    }

    /// Sets the header fields (besides `Host`, which defaults to the upstream's, and
    /// the framing fields, which are the codec's).
    pub fn headers(mut self, headers: &'a [(&'a str, &'a str)]) -> Self {
        self.headers = RequestFields::Text(headers);
        self
    }

    /// Sets the header fields with values as bytes (instead of
    /// [`UpstreamRequest::headers`]): a proxy passes a client's field values on as they
    /// came, obs-text (0x80-0xFF) included (RFC 9110 section 5.5), borrowed, with no
    /// copy. A value holding CR, LF, NUL or another control byte is refused
    /// ([`UpstreamError::InvalidRequest`]).
    pub fn header_bytes(mut self, headers: &'a [(&'a str, &'a [u8])]) -> Self {
        self.headers = RequestFields::Bytes(headers);
        self
    }

    /// Sets the body, sent whole with `Content-Length`.
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// The body follows in pieces, given to [`Exchange::fetch_body`](
    /// super::Exchange::fetch_body) as they come (a proxy streaming a client's upload):
    /// `Some(n)` bytes with `Content-Length`, or `None` for chunked. Such a request is
    /// never sent twice (its body is not kept).
    pub fn body_stream(mut self, len: Option<u64>) -> Self {
        self.streamed = Some(len);
        self.body = &[];
        self
    }

    /// The bytes this request goes upstream as (what [`Exchange::fetch`](
    /// super::Exchange::fetch) sends), with `host` as its `Host` unless it names one:
    /// one request, framed by `Content-Length` from the body, CRLF line ends only.
    /// Refused, with nothing written, as `fetch` refuses it.
    pub fn encode(&self, host: &str, out: &mut Vec<u8>) -> Result<(), UpstreamError> {
        pool::encode(self, host, out).map(|_| ())
    }

    /// Whether the method is idempotent (RFC 9110 9.2.2): only such a request is sent
    /// again on a fresh connection when a pooled one turned out closed before it
    /// answered.
    pub fn is_idempotent(&self) -> bool {
        self.streamed.is_none()
            && matches!(
                self.method,
                "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
            )
    }
}

/// What happened to a request made with [`Exchange::fetch`](super::Exchange::fetch),
/// in order: any `Informational` heads, one `Head`, any number of `Body` pieces, then
/// `End`; or `Failed` at any point (after a `Head`, the body is truncated: never pass
/// it off as complete).
#[derive(Debug)]
pub enum UpstreamEvent<'a> {
    /// An interim (1xx) response head other than 101, such as 103 Early Hints; the
    /// final head follows. A proxy forwards these (RFC 9110 section 15.2) with
    /// [`Exchange::send_informational_bytes`](super::Exchange::send_informational_bytes);
    /// anything else may ignore them.
    Informational(ResponseHead<'a>),
    /// The final response head.
    Head(ResponseHead<'a>),
    /// A piece of the body, decoded (chunk framing removed).
    Body(&'a [u8]),
    /// The response is complete; with the trailer fields that ended its chunked body
    /// (RFC 9112 section 7.1.2), empty when there were none. They are as the upstream
    /// sent them: pass on only those [`encode::trailer_allowed`](super::encode::trailer_allowed)
    /// accepts (what [`Exchange::finish_with_trailers`](super::Exchange::finish_with_trailers)
    /// does), and only to a client that takes them
    /// ([`Exchange::accepts_trailers`](super::Exchange::accepts_trailers)).
    End(FieldsView<'a>),
    /// The request failed; see [`UpstreamError::status`] for the status to answer with.
    Failed(UpstreamError),
}

/// One shard's counters for one upstream ([`Exchange::upstream_stats`](
/// super::Exchange::upstream_stats)).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpstreamStats {
    /// Requests sent (a retried request counts once per send).
    pub requests: u64,
    /// Of those, sent on a connection that had carried a request before.
    pub reused: u64,
    /// Connections opened (attempts).
    pub connects: u64,
    /// Connect attempts that failed (refused, unreachable, timed out...).
    pub connect_failures: u64,
    /// Of those, a source address out of ports (`EADDRNOTAVAIL`).
    pub source_exhausted: u64,
    /// Total time from connect to established over successful connects, in µs.
    pub connect_time_us: u64,
    /// Requests that got no response head within the response timeout.
    pub timeouts: u64,
    /// Requests that failed otherwise (closed, malformed response, TLS...).
    pub failures: u64,
    /// Requests sent again on a fresh connection after a pooled one was found closed.
    pub retries: u64,
    /// Requests refused because the queue for connections was full.
    pub queue_full: u64,
    /// Idle pooled connections the upstream closed (never handed out).
    pub idle_closed: u64,
    /// Responses completed.
    pub completed: u64,
    /// Connections idle in the pool now.
    pub idle: u64,
    /// Connections open now (idle, busy or connecting).
    pub open: u64,
    /// Requests waiting for a connection now.
    pub queued: u64,
}

impl UpstreamStats {
    /// The counters as (name, value) pairs, for a stats endpoint.
    pub fn fields(&self) -> [(&'static str, u64); 15] {
        [
            ("requests", self.requests),
            ("reused", self.reused),
            ("connects", self.connects),
            ("connect_failures", self.connect_failures),
            ("source_exhausted", self.source_exhausted),
            ("connect_time_us", self.connect_time_us),
            ("timeouts", self.timeouts),
            ("failures", self.failures),
            ("retries", self.retries),
            ("queue_full", self.queue_full),
            ("idle_closed", self.idle_closed),
            ("completed", self.completed),
            ("idle", self.idle),
            ("open", self.open),
            ("queued", self.queued),
        ]
    }
}
