//! The embedder's API: an [`App`] gets a [`Request`] and answers with a [`Response`]
//! through an [`Exchange`].
//!
//! This module owns the shape of a request and a response as the application sees them,
//! and the callbacks an application implements: answer at once, stream a chunked body,
//! or keep a task and answer later (from a timer, an offloaded job's result, a value
//! another thread sent, a cross-shard call's result or a writable-again callback). It
//! knows nothing of sockets, of the runtime or of the order of pipelined responses: the
//! exchange and the connection state machine see to those.

use ringmaster_runtime::{CallDone, Notification, OffloadDone, ShardEvent, ShardIo};

use super::client::FieldsView;
#[cfg(doc)]
use super::encode;
use super::encode::{trailer_allowed, FieldSet, Fields};
use super::exchange::Exchange;
use super::head::{absolute_parts, RawHeader, Version};
use super::upstream::{Fetch, UpstreamEvent};

/// An HTTP application: one value per shard, called on that shard's thread.
///
/// Every request must be answered exactly once through its [`Exchange`]:
/// [`Exchange::respond`], or [`Exchange::start_stream`] followed eventually by
/// [`Exchange::finish`]. An exchange not finished when [`App::on_request`] returns needs a
/// [`App::Task`]: the state with which the protocol calls the application back
/// ([`App::on_timer`], [`App::on_offload_done`], [`App::on_notify`],
/// [`App::on_call_done`], [`App::on_writable`]) until it finishes. Responses leave in request order whatever order the application finishes
/// them in.
///
/// No callback may block: this runs on a shard's event loop.
pub trait App: 'static {
    /// What the application keeps for a request it answers later or streams.
    type Task: 'static;

    /// A request arrived (head and whole body). Answer now through `ex` and return
    /// `None`, or return `Some(task)` to answer later. Returning `None` without
    /// answering is an application error: the client gets a 500.
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Self::Task>;

    /// A timer set with [`Exchange::set_timer`] for this task fired with `tag`. Not called
    /// for a timer cancelled with [`Exchange::cancel_timer`], nor once the exchange has
    /// finished.
    fn on_timer(&mut self, _task: &mut Self::Task, _tag: u32, _ex: &mut Exchange<'_>) {}

    /// A job given to [`Exchange::offload`] for this task finished on the worker pool:
    /// read its value (or the panic that stopped it) from `done` with the
    /// [`Offloaded`](ringmaster_runtime::Offloaded) handle `offload` returned, e.g.
    /// `task.job.result(done)`. Runs on the connection's shard. Not called if
    /// the connection closed in the meantime ([`App::on_cancel`] gets the task instead)
    /// or if the exchange had already finished. An application that offloads must
    /// implement this: the default does nothing, which leaves the exchange unanswered.
    fn on_offload_done(
        &mut self,
        _task: &mut Self::Task,
        _done: OffloadDone,
        _ex: &mut Exchange<'_>,
    ) {
    }

    /// A value sent with a notifier this exchange made ([`Exchange::notifier`]) arrived,
    /// from whichever thread sent it; read it with [`Notification::take`] as the type the
    /// notifier was made for, e.g. `n.take::<String>()`. Runs on the connection's shard,
    /// in the order one thread sent the values. Not called once the exchange has
    /// finished (the value is counted as `notify_stale` and dropped, never given to
    /// another exchange) nor if the connection closed ([`App::on_cancel`] gets the task).
    ///
    /// The default, for an application that makes notifiers and forgot this callback,
    /// answers `500 Internal Server Error` if nothing was sent yet, so that no request
    /// waits for ever; every application that makes notifiers should implement it.
    fn on_notify(&mut self, _task: &mut Self::Task, _n: Notification, ex: &mut Exchange<'_>) {
        if !ex.is_started() {
            ex.respond(Response::text(500, "Internal Server Error\n"));
        }
    }

    /// Every clone of the notifier with this id (see
    /// [`Notifier::id`](ringmaster_runtime::Notifier::id)), made for this exchange, was
    /// dropped without a value sent: what the exchange waited for will not come (the
    /// thread holding it gave up, failed or panicked).
    ///
    /// The default answers `502 Bad Gateway` if nothing was sent yet (and does nothing
    /// to a response already started): no request waits for ever.
    fn on_notifier_dropped(&mut self, _task: &mut Self::Task, _id: u64, ex: &mut Exchange<'_>) {
        if !ex.is_started() {
            ex.respond(Response::text(502, "Bad Gateway\n"));
        }
    }

    /// A cross-shard call this exchange made ([`Exchange::call`]) finished: read its
    /// value (or why there is none) from `done` with the
    /// [`Called`](ringmaster_runtime::Called) handle `call` returned, e.g.
    /// `task.call.result(done)`. Runs on the connection's shard. Not called once the
    /// exchange has finished (counted as `calls_stale`) nor if the connection closed.
    /// The only failure that arrives here rather than from `call` itself is
    /// [`CallError::ShardGone`](ringmaster_runtime::CallError::ShardGone), when the
    /// target shard stops with the call still queued (the server is shutting down).
    ///
    /// The default, for an application that calls and forgot this callback, answers
    /// `500 Internal Server Error` if nothing was sent yet; every application that makes
    /// calls should implement it.
    fn on_call_done(&mut self, _task: &mut Self::Task, _done: CallDone, ex: &mut Exchange<'_>) {
        if !ex.is_started() {
            ex.respond(Response::text(500, "Internal Server Error\n"));
        }
    }

    /// Whether to take this request's body in pieces as it arrives ([`App::on_body`])
    /// rather than whole: asked once its head is complete and its body did not all
    /// arrive with it. When true, [`App::on_request`] runs at once with an empty body
    /// ([`Request::is_body_streamed`] says so) and must return a task; the body's
    /// length limit still applies. For a proxy or an upload that must not be held in
    /// memory whole. Default: false.
    fn stream_body(&mut self, _req: &Request<'_>) -> bool {
        false
    }

    /// A piece of a body taken in pieces (see [`App::stream_body`]), decoded (chunk
    /// framing removed); `last` marks the end (its piece may be empty). Not called once
    /// the exchange has finished.
    fn on_body(
        &mut self,
        _task: &mut Self::Task,
        _piece: &[u8],
        _last: bool,
        _ex: &mut Exchange<'_>,
    ) {
    }

    /// The trailer section that ended a chunked request body taken in pieces (see
    /// [`App::stream_body`]), when it had fields: called after the body's last data and
    /// before the [`App::on_body`] call that ends it (whose piece is then empty). The
    /// fields are as the client sent them: pass on only those
    /// [`encode::trailer_allowed`] accepts (framing, routing and authentication fields
    /// are not allowed in trailers, RFC 9110 section 6.5.1); a proxy gives them to
    /// [`Exchange::fetch_body_with_trailers`]. A body taken whole has its trailers
    /// dropped. Default: nothing (they are dropped).
    fn on_trailers(
        &mut self,
        _task: &mut Self::Task,
        _trailers: FieldsView<'_>,
        _ex: &mut Exchange<'_>,
    ) {
    }

    /// A request this exchange made with [`Exchange::fetch`] progressed: its response
    /// head, a piece of its body, its end, or its failure (see [`UpstreamEvent`]). Runs on
    /// the connection's shard. Not called once the exchange has finished, nor if the
    /// connection closed ([`App::on_cancel`] gets the task).
    ///
    /// The default relays the response: its status and `Content-Type`, then its body
    /// as it arrives (with `Content-Length` when the upstream gave one), its trailer
    /// fields when the client takes them ([`Exchange::accepts_trailers`]), or a 101 with
    /// its handshake fields (the connection then tunnels to the upstream); a failure
    /// before the head is answered with [`UpstreamError::status`](super::UpstreamError::status) (502, 503 or 504),
    /// after it the response is cut short (the client sees the truncation). An
    /// application that transforms responses implements this.
    fn on_upstream(
        &mut self,
        _task: &mut Self::Task,
        _fetch: Fetch,
        event: UpstreamEvent<'_>,
        ex: &mut Exchange<'_>,
    ) {
        relay(event, ex);
    }

    /// The connection's output drained after [`Exchange::want_writable`]; the place to
    /// produce the next part of a large streamed body. Only the exchange whose response
    /// is on the wire (the oldest unfinished one) is called.
    fn on_writable(&mut self, _task: &mut Self::Task, _ex: &mut Exchange<'_>) {}

    /// The connection closed before this task finished; release what it holds.
    fn on_cancel(&mut self, _task: Self::Task) {}

    /// Something happened to the shard rather than to one request: its start, a shard
    /// timer, a failed outbound connect, a datagram, a broadcast (see [`ShardEvent`]).
    /// [`Http`](super::Http) passes every one of them here. Default: nothing.
    fn on_shard(&mut self, _event: ShardEvent<'_>, _shard: &mut ShardIo<'_>) {}
}

/// What [`App::on_upstream`] does by default: relays the upstream's response as it
/// comes (status, `Content-Type`, body), and answers a failure with its status.
pub fn relay(event: UpstreamEvent<'_>, ex: &mut Exchange<'_>) {
    match event {
        // The relay passes on only what it names; an interim head is not forwarded.
        UpstreamEvent::Informational(_) => {}
        UpstreamEvent::Head(head) if head.status() == 101 => {
            // The upstream switched protocols: pass its handshake fields on; the bytes
            // that follow travel raw both ways.
            let fields: Vec<(&str, &str)> = head
                .headers()
                .iter()
                .filter_map(|(n, v)| Some((n, std::str::from_utf8(v).ok()?)))
                .collect();
            ex.switch_protocols(&fields);
        }
        UpstreamEvent::Head(head) => {
            // As bytes: a value with obs-text passes as it came (RFC 9110 section 5.5).
            let ct = head.headers().get("content-type");
            let one = [("Content-Type", ct.unwrap_or_default())];
            let fields: &[(&str, &[u8])] = if ct.is_some() { &one } else { &[] };
            match head.headers().get("content-length").and_then(parse_len) {
                Some(n) => ex.start_sized_bytes(head.status(), fields, n),
                None => ex.start_stream_bytes(head.status(), fields),
            }
        }
        UpstreamEvent::Body(b) => ex.send_chunk(b),
        UpstreamEvent::End(trailers) if !trailers.is_empty() && ex.accepts_trailers() => {
            let fields: Vec<(&str, &str)> = trailers
                .iter()
                .filter_map(|(n, v)| Some((n, std::str::from_utf8(v).ok()?)))
                .filter(|&(n, v)| trailer_allowed(n, v))
                .collect();
            ex.finish_with_trailers(&fields);
        }
        UpstreamEvent::End(_) => ex.finish(),
        UpstreamEvent::Failed(e) if !ex.is_started() => {
            ex.respond(Response::text(e.status(), "upstream failed\n"));
        }
        UpstreamEvent::Failed(_) => ex.abort(),
    }
}

/// A `Content-Length` value, if it is one.
fn parse_len(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// A request as the application sees it: head fields and the whole body, borrowed from
/// the receive buffer when it arrived in one piece.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    pub(crate) version: Version,
    pub(crate) headers: &'a [RawHeader<'a>],
    pub(crate) body: &'a [u8],
    pub(crate) keep_alive: bool,
    /// The body comes later, in pieces ([`App::on_body`]).
    pub(crate) streamed: bool,
}

impl<'a> Request<'a> {
    /// The method token, e.g. `GET`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target exactly as sent: `/p?q`, `http://host/p?q` or `*`.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The path, without the query; for an absolute-form target, its path part.
    pub fn path(&self) -> &'a str {
        let t = if self.target.starts_with('/') {
            self.target
        } else {
            absolute_parts(self.target).unwrap_or(self.target)
        };
        // A byte scan: cheaper than `split_once` for the short paths of most requests.
        match t.bytes().position(|b| b == b'?') {
            Some(i) => t.get(..i).unwrap_or(t),
            None => t,
        }
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The first field with this name (case-insensitive), as raw bytes.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// All header fields in order, as (name, raw value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.headers.iter().map(|h| (h.name, h.value))
    }

    /// The body, decoded (chunk framing removed); empty when there is none.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// True for `HEAD`: the response's body is dropped, its length kept.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether the body comes in pieces through [`App::on_body`] (see
    /// [`App::stream_body`]); [`Request::body`] is then empty.
    pub fn is_body_streamed(&self) -> bool {
        self.streamed
    }

    /// Whether the connection stays open after this request.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }
}

/// A response body: borrowed bytes copied into the output, or a buffer handed over whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// Bytes copied into the connection's output (small bodies).
    Bytes(&'a [u8]),
    /// A buffer handed over whole; large ones go out with zero-copy send.
    Owned(Vec<u8>),
}

/// A complete response: status, application fields, body.
///
/// The protocol adds `Server`, `Date`, `Content-Length` and `Connection` itself and drops
/// application fields with those names (see [`encode::field_allowed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    pub(crate) status: u16,
    pub(crate) fields: Fields<'a>,
    pub(crate) body: Body<'a>,
}

impl<'a> Response<'a> {
    /// An empty response with this status.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            fields: Fields::List(&[]),
            body: Body::Bytes(&[]),
        }
    }

    /// A `text/plain` response with this status and `text` as its body.
    pub fn text(status: u16, text: &'a str) -> Self {
        Response::new(status)
            .fields(&[("Content-Type", "text/plain")])
            .body(text.as_bytes())
    }

    /// Sets the application's header fields (checked as they are written; see
    /// [`Response::field_set`] for fields sent with many responses).
    pub fn fields(mut self, fields: &'a [(&'a str, &'a str)]) -> Self {
        self.fields = Fields::List(fields);
        self
    }

    /// Sets the application's header fields from a [`FieldSet`], checked and encoded
    /// once when it was made: the cheap way for fields that many responses share.
    pub fn field_set(mut self, set: &'a FieldSet) -> Self {
        self.fields = Fields::Set(set);
        self
    }

    /// Sets a borrowed body (copied into the output).
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = Body::Bytes(body);
        self
    }

    /// Sets an owned body (sent without a copy when large).
    pub fn owned_body(mut self, body: Vec<u8>) -> Self {
        self.body = Body::Owned(body);
        self
    }

    /// The status code this response is sent with.
    pub fn status(&self) -> u16 {
        self.status
    }
}
