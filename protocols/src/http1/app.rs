//! The embedder's API: an [`App`] gets a [`Request`] and answers through an [`Exchange`].
//!
//! This module owns the shape of one request/response exchange as the application sees
//! it: answer at once, stream a chunked body, or keep a task and answer later (from a
//! timer, an offloaded job's result or a writable-again callback). It knows nothing of sockets or of the runtime:
//! output goes through the crate-private `Port`, which the runtime glue and the tests
//! each implement. Ordering of pipelined responses is not its concern either: an
//! exchange whose turn has not come writes into its own held buffer, and the connection
//! state machine releases it in order.

use std::any::Any;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmaster_runtime::{catch_panic, Counters, OffloadError, OffloadPanic};

/// What an offloaded job returns: its value, or the panic that stopped it.
pub type OffloadResult = Result<Box<dyn Any + Send>, OffloadPanic>;

use super::encode::{self, ConnField, FieldSet, Fields, Framing, DATE_LEN};
use super::head::{absolute_parts, RawHeader, Version};
use super::limits::HttpCounters;

/// An HTTP application: one value per shard, called on that shard's thread.
///
/// Every request must be answered exactly once through its [`Exchange`]:
/// [`Exchange::respond`], or [`Exchange::start_stream`] followed eventually by
/// [`Exchange::finish`]. An exchange not finished when [`App::on_request`] returns needs a
/// [`App::Task`]: the state with which the protocol calls the application back
/// ([`App::on_timer`], [`App::on_offload_done`], [`App::on_writable`]) until it finishes. Responses leave in
/// request order whatever order the application finishes them in.
///
/// No callback may block: this runs on a shard's event loop.
pub trait App: 'static {
    /// What the application keeps for a request it answers later or streams.
    type Task: 'static;

    /// A request arrived (head and whole body). Answer now through `ex` and return
    /// `None`, or return `Some(task)` to answer later. Returning `None` without
    /// answering is an application error: the client gets a 500.
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Self::Task>;

    /// A timer set with [`Exchange::set_timer`] for this task fired with `tag`.
    fn on_timer(&mut self, _task: &mut Self::Task, _tag: u32, _ex: &mut Exchange<'_>) {}

    /// A job given to [`Exchange::offload`] for this task finished on the worker pool:
    /// `result` holds the job's return value (downcast it to the type the job returned)
    /// or, if the job panicked, the panic. Runs on the connection's shard. Not called if
    /// the connection closed in the meantime ([`App::on_cancel`] gets the task instead)
    /// or if the exchange had already finished. An application that offloads must
    /// implement this: the default does nothing, which leaves the exchange unanswered.
    fn on_offload_done(
        &mut self,
        _task: &mut Self::Task,
        _result: OffloadResult,
        _ex: &mut Exchange<'_>,
    ) {
    }

    /// The connection's output drained after [`Exchange::want_writable`]; the place to
    /// produce the next part of a large streamed body. Only the exchange whose response
    /// is on the wire (the oldest unfinished one) is called.
    fn on_writable(&mut self, _task: &mut Self::Task, _ex: &mut Exchange<'_>) {}

    /// The connection closed before this task finished; release what it holds.
    fn on_cancel(&mut self, _task: Self::Task) {}
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

    /// Whether the connection stays open after this request.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }
}

/// A response body.
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
    status: u16,
    fields: Fields<'a>,
    body: Body<'a>,
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

    /// A `text/plain` response.
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

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }
}

/// Where an exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing sent yet.
    Waiting,
    /// Head sent, body chunks flowing.
    Streaming,
    /// The response is complete.
    Done,
}

/// The protocol's bookkeeping for one exchange (small: it lives in the connection's
/// queue while the response is outstanding).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExState {
    pub(crate) seq: u32,
    pub(crate) phase: Phase,
    pub(crate) head_only: bool,
    pub(crate) http10: bool,
    /// The connection closes after this response.
    pub(crate) close: bool,
    /// The framing chosen when the stream started.
    pub(crate) framing: Framing,
    /// [`App::on_writable`] was asked for.
    pub(crate) wants_writable: bool,
    /// Body bytes still owed by a stream started with [`Exchange::start_sized`].
    pub(crate) remaining: u64,
}

impl ExState {
    pub(crate) fn new(seq: u32, head_only: bool, http10: bool, keep_alive: bool) -> Self {
        ExState {
            seq,
            phase: Phase::Waiting,
            head_only,
            http10,
            close: !keep_alive,
            framing: Framing::None,
            wants_writable: false,
            remaining: 0,
        }
    }

    fn conn_field(&self) -> ConnField {
        if self.close {
            ConnField::Close
        } else if self.http10 {
            ConnField::KeepAlive
        } else {
            ConnField::Omit
        }
    }
}

/// What the protocol needs from whoever drives it: an output buffer, a clock, timers and
/// read control. The runtime glue implements it over `Io`; tests over plain vectors.
pub(crate) trait Port {
    /// The buffer responses are appended to; the driver hands it to the socket as one
    /// write when the callback returns.
    fn buf(&mut self) -> &mut Vec<u8>;
    /// Queues an owned buffer after everything in [`Port::buf`].
    fn send_owned(&mut self, bytes: Vec<u8>);
    /// Queues `'static` bytes after everything written so far, without copying them
    /// where the driver can (the runtime can; a test driver copies).
    fn send_static(&mut self, bytes: &'static [u8]) {
        self.send_owned(bytes.to_vec());
    }
    /// The cached `Date` value.
    fn date(&self) -> &[u8; DATE_LEN];
    /// Arms a one-shot timer reported back with `tag`.
    fn set_timer(&mut self, after: Duration, tag: u64);
    /// Asks for a writable-again callback.
    fn want_writable(&mut self);
    /// Bytes queued and not yet sent.
    fn backlog(&self) -> usize;
    /// The shard's clock.
    fn now(&self) -> Instant;
    /// The peer's address, if known.
    fn peer(&self) -> Option<SocketAddr>;
    /// The shard's index.
    fn shard_id(&self) -> usize;
    /// Closes the connection once queued output is sent.
    fn close(&mut self);
    /// Closes once queued output is sent, without lingering for the peer's FIN: the
    /// peer has said it sends nothing more (its last request asked to close).
    fn close_without_linger(&mut self) {
        self.close();
    }
    /// Stops delivering input.
    fn pause_reading(&mut self);
    /// Delivers input again (unconsumed bytes first).
    fn resume_reading(&mut self);
    /// The shard's HTTP counters.
    fn counters(&mut self) -> &mut HttpCounters;
    /// The runtime's counters for this shard, when driven by the runtime.
    fn runtime_counters(&self) -> Option<&Counters> {
        None
    }
    /// Hands a job to the worker pool; its result comes back through
    /// `Conn::offload_done`. Never blocks. Default: no pool.
    fn offload(&mut self, _job: OffloadJob) -> Result<(), OffloadError> {
        Err(OffloadError::NoPool)
    }
}

/// A job as the protocol hands it to the driver: already wrapped so that its result (or
/// its panic) comes back as a [`Routed`] naming its exchange.
pub(crate) type OffloadJob = Box<dyn FnOnce() -> Routed + Send>;

/// An offloaded job's outcome, labelled with the exchange it belongs to.
///
/// The runtime routes a result to its connection; the protocol routes it on to the
/// exchange by `seq`, as it does for timers. Panics are caught inside the job (not left
/// to the pool) so that a panic, too, knows its exchange.
pub(crate) struct Routed {
    pub(crate) seq: u32,
    pub(crate) result: OffloadResult,
}

/// Wraps an application job for the pool: runs it under `catch_unwind` and labels the
/// outcome with `seq`.
pub(crate) fn wrap_job<F, R>(seq: u32, job: F) -> OffloadJob
where
    F: FnOnce() -> R + Send + 'static,
    R: Any + Send,
{
    Box::new(move || Routed {
        seq,
        result: catch_panic(job).map(|v| Box::new(v) as Box<dyn Any + Send>),
    })
}

/// Output held back for an exchange whose turn has not come yet.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// Earlier pieces, in order.
    pieces: Vec<Piece>,
    /// Copied bytes after the last piece.
    tail: Vec<u8>,
}

#[derive(Debug)]
enum Piece {
    Copied(Vec<u8>),
    Owned(Vec<u8>),
    Static(&'static [u8]),
}

impl Held {
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.tail
    }

    fn push_owned(&mut self, v: Vec<u8>) {
        self.push_piece(Piece::Owned(v));
    }

    fn push_static(&mut self, v: &'static [u8]) {
        self.push_piece(Piece::Static(v));
    }

    fn push_piece(&mut self, piece: Piece) {
        if !self.tail.is_empty() {
            self.pieces
                .push(Piece::Copied(std::mem::take(&mut self.tail)));
        }
        self.pieces.push(piece);
    }

    /// Moves everything held to the port, in order.
    pub(crate) fn release(&mut self, port: &mut dyn Port) {
        for piece in self.pieces.drain(..) {
            match piece {
                Piece::Copied(v) => port.buf().extend_from_slice(&v),
                Piece::Owned(v) => port.send_owned(v),
                Piece::Static(v) => port.send_static(v),
            }
        }
        port.buf().extend_from_slice(&self.tail);
        self.tail = Vec::new();
    }
}

/// Tag bit marking a timer as the application's (the protocol's own timer has it clear).
pub(crate) const APP_TIMER: u64 = 1 << 63;
/// Exchange sequence numbers wrap within 31 bits so they fit in an application timer tag.
pub(crate) const SEQ_MASK: u32 = 0x7fff_ffff;

/// Packs an application timer tag: the flag, the exchange's sequence number, the app's tag.
pub(crate) fn app_timer_tag(seq: u32, tag: u32) -> u64 {
    APP_TIMER | (u64::from(seq & SEQ_MASK) << 32) | u64::from(tag)
}

/// Splits an application timer tag into (sequence number, app tag).
pub(crate) fn split_app_tag(tag: u64) -> Option<(u32, u32)> {
    if tag & APP_TIMER == 0 {
        return None;
    }
    Some((((tag >> 32) as u32) & SEQ_MASK, tag as u32))
}

/// One request's answer in progress: the application writes its response through this.
///
/// Writes made before the exchange's turn (an earlier pipelined response still open) are
/// held and released in order; the application does not need to know.
pub struct Exchange<'x> {
    port: &'x mut dyn Port,
    held: Option<&'x mut Held>,
    st: &'x mut ExState,
}

impl std::fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("seq", &self.st.seq)
            .field("phase", &self.st.phase)
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl<'x> Exchange<'x> {
    pub(crate) fn new(
        port: &'x mut dyn Port,
        held: Option<&'x mut Held>,
        st: &'x mut ExState,
    ) -> Self {
        Exchange { port, held, st }
    }

    fn out(&mut self) -> &mut Vec<u8> {
        match &mut self.held {
            Some(h) => h.buf(),
            None => self.port.buf(),
        }
    }

    fn owned(&mut self, v: Vec<u8>) {
        match &mut self.held {
            Some(h) => h.push_owned(v),
            None => self.port.send_owned(v),
        }
    }

    fn static_bytes(&mut self, v: &'static [u8]) {
        match &mut self.held {
            Some(h) => h.push_static(v),
            None => self.port.send_static(v),
        }
    }

    fn misuse(&mut self) {
        self.port.counters().app_errors += 1;
    }

    fn note_dropped(&mut self, dropped: usize) {
        if dropped > 0 {
            self.port.counters().app_errors += dropped as u64;
        }
    }

    /// Sends a complete response. Ignored (and counted as an application error) if this
    /// exchange already answered.
    pub fn respond(&mut self, res: Response<'_>) {
        if self.st.phase != Phase::Waiting {
            return self.misuse();
        }
        self.st.phase = Phase::Done;
        let date = *self.port.date();
        let conn = self.st.conn_field();
        let head_only = self.st.head_only;
        match res.body {
            Body::Bytes(b) => {
                let dropped = encode::write_simple(
                    self.out(),
                    res.status,
                    &date,
                    conn,
                    res.fields,
                    b,
                    head_only,
                );
                self.note_dropped(dropped);
            }
            Body::Owned(v) => {
                let no_body = encode::status_has_no_body(res.status);
                let framing = if no_body {
                    Framing::None
                } else {
                    Framing::Length(v.len() as u64)
                };
                let dropped = encode::write_head_fields(
                    self.out(),
                    res.status,
                    &date,
                    framing,
                    conn,
                    res.fields,
                );
                self.note_dropped(dropped);
                if !head_only && !no_body {
                    self.owned(v);
                }
            }
        }
    }

    /// Sends the head of a response whose body follows in pieces
    /// ([`Exchange::send_chunk`]) and ends with [`Exchange::finish`]. Chunked for
    /// HTTP/1.1; for HTTP/1.0 the body is delimited by closing the connection.
    pub fn start_stream(&mut self, status: u16, fields: &[(&str, &str)]) {
        if self.st.phase != Phase::Waiting {
            return self.misuse();
        }
        let framing = if encode::status_has_no_body(status) {
            Framing::None
        } else if self.st.http10 {
            // No chunked coding in 1.0: the end of the body is the end of the connection.
            self.st.close = true;
            Framing::UntilClose
        } else {
            Framing::Chunked
        };
        self.st.framing = framing;
        self.st.phase = if framing == Framing::None {
            Phase::Done
        } else {
            Phase::Streaming
        };
        let date = *self.port.date();
        let conn = self.st.conn_field();
        let dropped = encode::write_head(self.out(), status, &date, framing, conn, fields);
        self.note_dropped(dropped);
    }

    /// Sends the head of a response whose body of exactly `len` bytes follows in pieces
    /// ([`Exchange::send_chunk`], [`Exchange::send_chunk_owned`]) and ends with
    /// [`Exchange::finish`]: `Content-Length` framing, for large bodies of known size
    /// that should not be held in memory at once. For HEAD only the head is sent.
    pub fn start_sized(&mut self, status: u16, fields: &[(&str, &str)], len: u64) {
        if self.st.phase != Phase::Waiting {
            return self.misuse();
        }
        let framing = if encode::status_has_no_body(status) {
            Framing::None
        } else {
            Framing::Length(len)
        };
        self.st.framing = framing;
        self.st.remaining = if self.st.head_only { 0 } else { len };
        self.st.phase = Phase::Streaming;
        let date = *self.port.date();
        let conn = self.st.conn_field();
        let dropped = encode::write_head(self.out(), status, &date, framing, conn, fields);
        self.note_dropped(dropped);
    }

    /// Checks a piece against the bytes a sized stream still owes; false (and counted as
    /// an application error) if it would overrun the announced length.
    fn fits(&mut self, len: usize) -> bool {
        if !matches!(self.st.framing, Framing::Length(_)) {
            return true;
        }
        match self.st.remaining.checked_sub(len as u64) {
            Some(left) => {
                self.st.remaining = left;
                true
            }
            None => {
                self.misuse();
                false
            }
        }
    }

    /// Sends the next piece of a streamed body (copied). Empty pieces are skipped.
    pub fn send_chunk(&mut self, data: &[u8]) {
        if self.st.phase != Phase::Streaming {
            return self.misuse();
        }
        if self.st.head_only || data.is_empty() || !self.fits(data.len()) {
            return;
        }
        let chunked = self.st.framing == Framing::Chunked;
        let out = self.out();
        if chunked {
            encode::write_chunk_start(out, data.len());
            out.extend_from_slice(data);
            out.extend_from_slice(encode::CHUNK_END);
        } else {
            out.extend_from_slice(data);
        }
    }

    /// Sends the next piece of a streamed body without copying it (zero-copy when large).
    pub fn send_chunk_owned(&mut self, data: Vec<u8>) {
        if self.st.phase != Phase::Streaming {
            return self.misuse();
        }
        if self.st.head_only || data.is_empty() || !self.fits(data.len()) {
            return;
        }
        if self.st.framing == Framing::Chunked {
            encode::write_chunk_start(self.out(), data.len());
            self.owned(data);
            self.out().extend_from_slice(encode::CHUNK_END);
        } else {
            self.owned(data);
        }
    }

    /// Like [`Exchange::send_chunk_owned`], for bytes that live for the whole program
    /// (a static asset, a body built once): sent without a copy and without an
    /// allocation per response.
    pub fn send_chunk_static(&mut self, data: &'static [u8]) {
        if self.st.phase != Phase::Streaming {
            return self.misuse();
        }
        if self.st.head_only || data.is_empty() || !self.fits(data.len()) {
            return;
        }
        if self.st.framing == Framing::Chunked {
            encode::write_chunk_start(self.out(), data.len());
            self.static_bytes(data);
            self.out().extend_from_slice(encode::CHUNK_END);
        } else {
            self.static_bytes(data);
        }
    }

    /// Ends a streamed body. A sized stream ended short of its length cannot be
    /// repaired: the connection closes after it, so the client sees the truncation.
    pub fn finish(&mut self) {
        if self.st.phase != Phase::Streaming {
            return self.misuse();
        }
        self.st.phase = Phase::Done;
        match self.st.framing {
            Framing::Chunked if !self.st.head_only => {
                self.out().extend_from_slice(encode::LAST_CHUNK);
            }
            Framing::Length(_) if self.st.remaining != 0 => {
                self.misuse();
                self.st.close = true;
            }
            _ => {}
        }
    }

    /// True once the response is complete.
    pub fn is_done(&self) -> bool {
        self.st.phase == Phase::Done
    }

    /// True if the request was HEAD (bodies written here are dropped).
    pub fn is_head(&self) -> bool {
        self.st.head_only
    }

    /// Arms a one-shot timer; [`App::on_timer`] gets this exchange's task and `tag`.
    /// A timer that fires after the exchange finished is ignored.
    pub fn set_timer(&mut self, after: Duration, tag: u32) {
        let tag = app_timer_tag(self.st.seq, tag);
        self.port.set_timer(after, tag);
    }

    /// Runs `job` on the runtime's worker pool (CPU-bound work that must not hold up the
    /// shard); [`App::on_offload_done`] gets this exchange's task and the job's value
    /// (boxed; downcast it to `R`), or the panic if the job panicked, on this shard.
    /// Responses to later pipelined requests wait for this one, as always.
    ///
    /// Never blocks: when the pool's queue is full it fails at once with
    /// [`OffloadError::QueueFull`] (answer 503 with `Retry-After`), and without a pool
    /// with [`OffloadError::NoPool`]; the job is then dropped unrun. The application must
    /// return a task from [`App::on_request`] for the result to be delivered.
    pub fn offload<F, R>(&mut self, job: F) -> Result<(), OffloadError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Any + Send,
    {
        let r = self.port.offload(wrap_job(self.st.seq, job));
        if r.is_ok() {
            self.port.counters().offload_submitted += 1;
        } else {
            self.port.counters().offload_refused += 1;
        }
        r
    }

    /// Asks for one [`App::on_writable`] call once queued output has drained.
    pub fn want_writable(&mut self) {
        self.st.wants_writable = true;
        self.port.want_writable();
    }

    /// Bytes queued on the connection and not yet sent (to pace a stream).
    pub fn backlog(&self) -> usize {
        self.port.backlog()
    }

    /// The shard's clock.
    pub fn now(&self) -> Instant {
        self.port.now()
    }

    /// The client's address, when the driver knows it.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.port.peer()
    }

    /// The index of the shard running this connection.
    pub fn shard_id(&self) -> usize {
        self.port.shard_id()
    }

    /// The shard's HTTP counters (for a stats endpoint).
    pub fn http_counters(&mut self) -> &HttpCounters {
        self.port.counters()
    }

    /// The runtime's counters for this shard (for a stats endpoint); `None` when the
    /// protocol is driven by something other than the runtime, e.g. a test.
    pub fn runtime_counters(&self) -> Option<&Counters> {
        self.port.runtime_counters()
    }
}
