//! One request's answer in progress, as the application writes it: [`Exchange`].
//!
//! This module owns the rules of answering: once and only once, a complete response or
//! a head followed by body pieces and a finish, framed for the request's version (chunked
//! for HTTP/1.1, close-delimited for HTTP/1.0, `Content-Length` for a sized stream). It
//! also arms and cancels the application's timers ([`AppTimer`]), hands jobs to the
//! offload pool for it, makes its notifiers and starts its cross-shard calls. It never
//! decides when output leaves: an exchange whose turn has not come writes into its held
//! buffer, and the connection releases it in order.

use std::any::Any;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmaster_runtime::{
    CallError, Called, Counters, Notifier, OffloadError, Offloaded, Segment, ShardIo,
};

use super::app::{App, Body, Response};
use super::compose::{start_call, TargetShard};
use super::encode::{self, ConnField, Fields, Framing};
use super::exchange_state::{ExchangeState, Phase};
use super::held::Held;
use super::limits::HttpCounters;
use super::offload::wrap_job;
use super::port::{Port, PortTimer};
use super::stream_out::StreamOut;
use super::timer_tag::app_timer_tag;
use super::upstream::{Fetch, Upstream, UpstreamError, UpstreamRequest, UpstreamStats};

/// Names an application timer armed with [`Exchange::set_timer`], so that it can be
/// cancelled with [`Exchange::cancel_timer`].
///
/// A small `Copy` value, meaningful only on the connection whose exchange armed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppTimer(PortTimer);

/// One piece of a streamed body, in the form the application handed it over.
enum BodyPiece<'a> {
    /// Copied into the output.
    Copied(&'a [u8]),
    /// A buffer handed over whole.
    Owned(Vec<u8>),
    /// Program-lifetime bytes, sent without a copy.
    Static(&'static [u8]),
}

impl BodyPiece<'_> {
    fn len(&self) -> usize {
        match self {
            BodyPiece::Copied(d) | BodyPiece::Static(d) => d.len(),
            BodyPiece::Owned(v) => v.len(),
        }
    }
}

/// A response head's application fields, with values as text or as bytes.
#[derive(Clone, Copy)]
enum HeadFields<'a> {
    Text(&'a [(&'a str, &'a str)]),
    Bytes(&'a [(&'a str, &'a [u8])]),
}

/// Where an exchange's output goes.
enum Out<'x> {
    /// HTTP/1.1 bytes straight to the port: the exchange's turn has come.
    Port,
    /// HTTP/1.1 bytes held until the exchange's turn comes.
    Held(&'x mut Held),
    /// An HTTP/2 stream, which frames the response itself.
    Stream(&'x mut dyn StreamOut),
}

/// One request's answer in progress: the application writes its response through this.
///
/// Writes made before the exchange's turn (an earlier pipelined response still open) are
/// held and released in order; the application does not need to know. On an HTTP/2
/// connection the same calls write to the request's stream.
pub struct Exchange<'x> {
    port: &'x mut dyn Port,
    out: Out<'x>,
    state: &'x mut ExchangeState,
}

impl std::fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("seq", &self.state.seq)
            .field("phase", &self.state.phase)
            .field("held", &matches!(self.out, Out::Held(_)))
            .field("stream", &matches!(self.out, Out::Stream(_)))
            .finish()
    }
}

impl<'x> Exchange<'x> {
    pub(crate) fn new(
        port: &'x mut dyn Port,
        held: Option<&'x mut Held>,
        state: &'x mut ExchangeState,
    ) -> Self {
        let out = match held {
            Some(h) => Out::Held(h),
            None => Out::Port,
        };
        Exchange { port, out, state }
    }

    /// An exchange answering on a multiplexed (HTTP/2) stream.
    pub(crate) fn for_stream(
        port: &'x mut dyn Port,
        stream: &'x mut dyn StreamOut,
        state: &'x mut ExchangeState,
    ) -> Self {
        Exchange {
            port,
            out: Out::Stream(stream),
            state,
        }
    }

    /// The HTTP/1.1 output (never called for a stream, whose output is framed by it).
    fn out(&mut self) -> &mut Vec<u8> {
        match &mut self.out {
            Out::Held(h) => h.buf(),
            Out::Port | Out::Stream(_) => self.port.buf(),
        }
    }

    /// Writes a piece in order after everything written so far: into the held buffer
    /// before this exchange's turn, to the stream for HTTP/2, else to the port.
    fn put(&mut self, piece: BodyPiece<'_>) {
        match (piece, &mut self.out) {
            (BodyPiece::Copied(d), Out::Stream(s)) => s.copy(d),
            (BodyPiece::Owned(v), Out::Stream(s)) => s.segment(Segment::Owned(v)),
            (BodyPiece::Static(d), Out::Stream(s)) => s.segment(Segment::Static(d)),
            (BodyPiece::Copied(d), _) => self.out().extend_from_slice(d),
            (BodyPiece::Owned(v), Out::Held(h)) => h.push(Segment::Owned(v)),
            (BodyPiece::Owned(v), Out::Port) => self.port.push(Segment::Owned(v)),
            (BodyPiece::Static(d), Out::Held(h)) => h.push(Segment::Static(d)),
            (BodyPiece::Static(d), Out::Port) => self.port.push(Segment::Static(d)),
        }
    }

    /// Sends a head on the HTTP/2 stream, if this exchange answers on one; false for
    /// HTTP/1.1 (the caller encodes it).
    fn stream_head(
        &mut self,
        status: u16,
        fields: Fields<'_>,
        len: Option<u64>,
        end: bool,
    ) -> bool {
        let Out::Stream(s) = &mut self.out else {
            return false;
        };
        let dropped = s.head(self.port, status, fields, len, end);
        self.note_dropped(dropped);
        true
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
        if self.state.phase != Phase::Waiting {
            return self.misuse();
        }
        self.state.phase = Phase::Done;
        if matches!(self.out, Out::Stream(_)) {
            return self.respond_stream(res);
        }
        let date = *self.port.date();
        let conn = self.state.conn_field();
        let head_only = self.state.head_only;
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
                    self.put(BodyPiece::Owned(v));
                }
            }
        }
    }

    /// [`Exchange::respond`] on an HTTP/2 stream: HEADERS, then the body as DATA.
    fn respond_stream(&mut self, res: Response<'_>) {
        let no_body = encode::status_has_no_body(res.status);
        let len = match &res.body {
            Body::Bytes(b) => b.len(),
            Body::Owned(v) => v.len(),
        };
        let skip_body = no_body || self.state.head_only || len == 0;
        let announced = (!no_body).then_some(len as u64);
        self.stream_head(res.status, res.fields, announced, skip_body);
        if skip_body {
            return;
        }
        match res.body {
            Body::Bytes(b) => self.put(BodyPiece::Copied(b)),
            Body::Owned(v) => self.put(BodyPiece::Owned(v)),
        }
        if let Out::Stream(s) = &mut self.out {
            s.end();
        }
    }

    /// Sends the head of a response whose body follows in pieces
    /// ([`Exchange::send_chunk`]) and ends with [`Exchange::finish`]. Chunked for
    /// HTTP/1.1; for HTTP/1.0 the body is delimited by closing the connection.
    pub fn start_stream(&mut self, status: u16, fields: &[(&str, &str)]) {
        self.start_stream_with(status, HeadFields::Text(fields));
    }

    /// [`Exchange::start_stream`] with field values as bytes: obs-text (0x80-0xFF)
    /// passes as it came (RFC 9110 section 5.5 has a recipient treat it as opaque
    /// data), which is how a proxy relays an upstream's fields. On HTTP/2 a value that
    /// is not UTF-8 is dropped (and counted as an application error).
    pub fn start_stream_bytes(&mut self, status: u16, fields: &[(&str, &[u8])]) {
        self.start_stream_with(status, HeadFields::Bytes(fields));
    }

    fn start_stream_with(&mut self, status: u16, fields: HeadFields<'_>) {
        if self.state.phase != Phase::Waiting {
            return self.misuse();
        }
        let framing = if encode::status_has_no_body(status) {
            Framing::None
        } else if matches!(self.out, Out::Stream(_)) {
            // HTTP/2 frames the body itself; no chunked coding.
            Framing::UntilClose
        } else if self.state.http10 {
            // No chunked coding in 1.0: the end of the body is the end of the connection.
            self.state.close = true;
            Framing::UntilClose
        } else {
            Framing::Chunked
        };
        self.state.framing = framing;
        self.state.phase = if framing == Framing::None {
            Phase::Done
        } else {
            Phase::Streaming
        };
        self.head_with(status, fields, framing, None, framing == Framing::None);
    }

    /// Sends an interim (1xx) response ahead of the final one, such as 103 Early Hints,
    /// with `fields` as they came (obs-text included; framing and `Connection` fields
    /// are dropped, and on HTTP/2 values that are not UTF-8). Nothing is sent, and it is
    /// not an error, when the client speaks HTTP/1.0 (which knows no 1xx, RFC 9110
    /// section 15.2), when the final head has gone, or for 100 and 101 (the server
    /// answers `Expect: 100-continue` itself, and an upgrade is its own exchange).
    /// Before this exchange's turn on a pipelined connection it waits, in order, like
    /// everything else it writes.
    pub fn send_informational_bytes(&mut self, status: u16, fields: &[(&str, &[u8])]) {
        if !(102..=199).contains(&status) || self.state.phase != Phase::Waiting {
            return;
        }
        let dropped = match &mut self.out {
            Out::Stream(s) => {
                let (text, lost) = text_fields(fields);
                s.interim(self.port, status, &text) + lost
            }
            _ if self.state.http10 => return,
            _ => encode::write_interim_bytes(self.out(), status, fields),
        };
        self.note_dropped(dropped);
    }

    /// Sends a response head, framed by `framing` on HTTP/1.1, or as a stream's
    /// HEADERS (with `announced` as its length, ending it if `end`) on HTTP/2.
    fn head_with(
        &mut self,
        status: u16,
        fields: HeadFields<'_>,
        framing: Framing,
        announced: Option<u64>,
        end: bool,
    ) {
        if matches!(self.out, Out::Stream(_)) {
            match fields {
                HeadFields::Text(list) => {
                    self.stream_head(status, Fields::List(list), announced, end);
                }
                HeadFields::Bytes(list) => {
                    let (text, lost) = text_fields(list);
                    self.stream_head(status, Fields::List(&text), announced, end);
                    self.note_dropped(lost);
                }
            }
            return;
        }
        let date = *self.port.date();
        let conn = self.state.conn_field();
        let dropped = match fields {
            HeadFields::Text(list) => {
                encode::write_head(self.out(), status, &date, framing, conn, list)
            }
            HeadFields::Bytes(list) => {
                encode::write_head_bytes(self.out(), status, &date, framing, conn, list)
            }
        };
        self.note_dropped(dropped);
    }

    /// Sends the head of a response whose body of exactly `len` bytes follows in pieces
    /// ([`Exchange::send_chunk`], [`Exchange::send_chunk_owned`]) and ends with
    /// [`Exchange::finish`]: `Content-Length` framing, for large bodies of known size
    /// that should not be held in memory at once. For HEAD only the head is sent.
    pub fn start_sized(&mut self, status: u16, fields: &[(&str, &str)], len: u64) {
        self.start_sized_with(status, HeadFields::Text(fields), len);
    }

    /// [`Exchange::start_sized`] with field values as bytes, passed as they came
    /// (obs-text included; see [`Exchange::start_stream_bytes`]).
    pub fn start_sized_bytes(&mut self, status: u16, fields: &[(&str, &[u8])], len: u64) {
        self.start_sized_with(status, HeadFields::Bytes(fields), len);
    }

    fn start_sized_with(&mut self, status: u16, fields: HeadFields<'_>, len: u64) {
        if self.state.phase != Phase::Waiting {
            return self.misuse();
        }
        let framing = if encode::status_has_no_body(status) {
            Framing::None
        } else {
            Framing::Length(len)
        };
        self.state.framing = framing;
        self.state.remaining = if self.state.head_only { 0 } else { len };
        self.state.phase = Phase::Streaming;
        let announced = (framing != Framing::None).then_some(len);
        self.head_with(status, fields, framing, announced, false);
    }

    /// Checks a piece against the bytes a sized stream still owes; false (and counted as
    /// an application error) if it would overrun the announced length.
    fn fits(&mut self, len: usize) -> bool {
        if !matches!(self.state.framing, Framing::Length(_)) {
            return true;
        }
        match self.state.remaining.checked_sub(len as u64) {
            Some(left) => {
                self.state.remaining = left;
                true
            }
            None => {
                self.misuse();
                false
            }
        }
    }

    /// Frames and writes the next piece of a streamed body: the one place the three
    /// `send_chunk` forms share.
    fn send_piece(&mut self, piece: BodyPiece<'_>) {
        if self.state.phase != Phase::Streaming {
            return self.misuse();
        }
        let len = piece.len();
        if self.state.head_only || len == 0 || !self.fits(len) {
            return;
        }
        let chunked = self.state.framing == Framing::Chunked;
        if chunked {
            encode::write_chunk_start(self.out(), len);
        }
        self.put(piece);
        if chunked {
            self.out().extend_from_slice(encode::CHUNK_END);
        }
    }

    /// Sends the next piece of a streamed body (copied). Empty pieces are skipped.
    pub fn send_chunk(&mut self, data: &[u8]) {
        self.send_piece(BodyPiece::Copied(data));
    }

    /// Sends the next piece of a streamed body without copying it (zero-copy when large).
    pub fn send_chunk_owned(&mut self, data: Vec<u8>) {
        self.send_piece(BodyPiece::Owned(data));
    }

    /// Like [`Exchange::send_chunk_owned`], for bytes that live for the whole program
    /// (a static asset, a body built once): sent without a copy and without an
    /// allocation per response.
    pub fn send_chunk_static(&mut self, data: &'static [u8]) {
        self.send_piece(BodyPiece::Static(data));
    }

    /// Ends a streamed body. A sized stream ended short of its length cannot be
    /// repaired: the connection closes after it, so the client sees the truncation.
    pub fn finish(&mut self) {
        if self.state.phase != Phase::Streaming {
            return self.misuse();
        }
        self.state.phase = Phase::Done;
        if let Out::Stream(s) = &mut self.out {
            if matches!(self.state.framing, Framing::Length(_)) && self.state.remaining != 0 {
                self.port.counters().app_errors += 1;
                s.reset();
            } else {
                s.end();
            }
            return;
        }
        match self.state.framing {
            Framing::Chunked if !self.state.head_only => {
                self.out().extend_from_slice(encode::LAST_CHUNK);
            }
            Framing::Length(_) if self.state.remaining != 0 => {
                self.misuse();
                self.state.close = true;
            }
            _ => {}
        }
    }

    /// Ends a streamed body with a trailer section: fields that could only be known
    /// once the body was made (a checksum, a final status of the work the body reports,
    /// timing). Sent when the response can carry them: on HTTP/2 as a HEADERS frame
    /// ending the stream after the DATA (RFC 9113 section 8.1); on HTTP/1.1 when the
    /// body is chunked (after [`Exchange::start_stream`]), in the last chunk (RFC 9112
    /// section 7.1.2). Otherwise (a `Content-Length` body from [`Exchange::start_sized`],
    /// an HTTP/1.0 client, a HEAD request) the trailers are dropped, as RFC 9110
    /// section 6.5.1 allows, and this is [`Exchange::finish`].
    ///
    /// Fields not allowed in trailers ([`encode::trailer_allowed`]: framing, routing,
    /// authentication, controls, content format, hop-by-hop) are dropped and counted as
    /// application errors. Recipients may discard trailers: put nothing there that the
    /// client needs to read the response. An intermediary passes trailers on only when
    /// [`Exchange::accepts_trailers`] says the client takes them; an origin whose
    /// trailers are optional metadata may send them regardless.
    pub fn finish_with_trailers(&mut self, trailers: &[(&str, &str)]) {
        let chunked = self.state.framing == Framing::Chunked && !self.state.head_only;
        let stream = matches!(self.out, Out::Stream(_)) && !self.state.head_only;
        let sized_ok = match self.state.framing {
            Framing::Length(_) => self.state.remaining == 0,
            _ => true,
        };
        if self.state.phase != Phase::Streaming || trailers.is_empty() || !sized_ok {
            return self.finish();
        }
        if let Out::Stream(s) = &mut self.out {
            if stream {
                self.state.phase = Phase::Done;
                let dropped = s.end_with_trailers(trailers);
                return self.note_dropped(dropped);
            }
        }
        if !chunked {
            return self.finish();
        }
        self.state.phase = Phase::Done;
        let dropped = encode::write_last_chunk(self.out(), trailers);
        self.note_dropped(dropped);
    }

    /// Whether the client takes trailer fields: it sent `TE: trailers` over HTTP/1.1
    /// (RFC 9110 section 10.1.4), or it speaks HTTP/2, where every response may end
    /// with a trailer section and the framing carries it whatever the client asked
    /// for. A proxy passes an upstream's trailers on only then, and drops them
    /// otherwise ([`relay`](super::app::relay) does).
    pub fn accepts_trailers(&self) -> bool {
        matches!(self.out, Out::Stream(_)) || self.state.te_trailers
    }

    /// True once the response is complete.
    pub fn is_done(&self) -> bool {
        self.state.phase == Phase::Done
    }

    /// True once anything of the response was written: [`Exchange::respond`], or the
    /// head of a stream.
    pub fn is_started(&self) -> bool {
        self.state.phase != Phase::Waiting
    }

    /// True if the request was HEAD (bodies written here are dropped).
    pub fn is_head(&self) -> bool {
        self.state.head_only
    }

    /// Arms a one-shot timer; [`App::on_timer`] gets this exchange's task and `tag`.
    /// A timer that fires after the exchange finished is ignored. The returned key
    /// cancels it ([`Exchange::cancel_timer`]); it may be dropped if that is not needed.
    pub fn set_timer(&mut self, after: Duration, tag: u32) -> AppTimer {
        let tag = app_timer_tag(self.state.seq, tag);
        AppTimer(self.port.set_timer(after, tag))
    }

    /// Cancels a timer armed with [`Exchange::set_timer`] on this connection: it will not
    /// reach [`App::on_timer`]. Returns false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: AppTimer) -> bool {
        self.port.cancel_timer(timer.0)
    }

    /// Runs `job` on the runtime's worker pool (CPU-bound work that must not hold up the
    /// shard); [`App::on_offload_done`] gets this exchange's task and the outcome, on
    /// this shard, and the returned handle reads the job's `R` (or its panic) out of it:
    /// keep the handle in the task. Responses to later pipelined requests wait for this
    /// one, as always.
    ///
    /// Never blocks: when the pool's queue is full it fails at once with
    /// [`OffloadError::QueueFull`] (answer 503 with `Retry-After`), and without a pool
    /// with [`OffloadError::NoPool`]; the job is then dropped unrun. The application must
    /// return a task from [`App::on_request`] for the result to be delivered.
    pub fn offload<F, R>(&mut self, job: F) -> Result<Offloaded<R>, OffloadError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Any + Send,
    {
        let r = self.port.offload(wrap_job(self.state.seq, job));
        if r.is_ok() {
            self.port.counters().offload_submitted += 1;
        } else {
            self.port.counters().offload_refused += 1;
        }
        r.map(|()| Offloaded::new())
    }

    /// A handle through which any thread can send this exchange values of type `V`
    /// (`Send + Clone`; see [`Notifier`]): each [`Notifier::notify`] reaches
    /// [`App::on_notify`] with this exchange's task, on this shard, with no polling. The
    /// way to let any existing client or library on another thread (a database driver, a
    /// tokio runtime on a side thread) complete a request. Keep a task: return it from
    /// [`App::on_request`].
    ///
    /// A value for an exchange that has finished meanwhile is counted (`notify_stale`)
    /// and dropped, never delivered to another exchange; one for a closed connection is
    /// dropped by the runtime. If every clone is dropped with no value sent,
    /// [`App::on_notifier_dropped`] is called (by default a 502): no request waits for
    /// ever on a handle that is gone.
    ///
    /// `None` only when the protocol is driven without the runtime (e.g. by
    /// [`SimConn`](super::sim::SimConn)).
    pub fn notifier<V: Send + 'static>(&mut self) -> Option<Notifier<V>> {
        let mut made = None;
        self.port.with_io(&mut |io| made = Some(io.notifier::<V>()));
        let notifier = made?;
        self.state.notifiers.push(notifier.id());
        self.port.counters().notifiers += 1;
        Some(notifier)
    }

    /// Runs `f` on shard `shard` with that shard's application (of type `A`, this
    /// application's type) and a view of that shard ([`TargetShard`]), on that shard's
    /// thread, as Seastar's `submit_to` does: the way to reach state a shard owns (e.g.
    /// the keys that hash to it). The value `f` returns comes back to this exchange, on
    /// this shard, as [`App::on_call_done`]; the returned handle reads it there: keep it
    /// in the task, and return the task from [`App::on_request`]. `shard` may be this
    /// shard (the call runs on a later turn).
    ///
    /// Never blocks: refused at once with [`CallError::MailboxFull`] when the target's
    /// mailbox holds its most calls (the runtime's `mailbox_calls`): answer `503` with
    /// `Retry-After`, as for a full offload queue. Also refused at once for a shard
    /// index out of range ([`CallError::NoShard`], also what a driver without the
    /// runtime answers) or a stopped shard. Works the same whether the server runs
    /// [`Http`](super::Http) plain, under [`Tls`](crate::tls::Tls) or inside
    /// [`HttpWs`](crate::websocket::HttpWs): the runtime finds the `Http<A>` inside
    /// whatever wraps it.
    pub fn call<A, R, F>(&mut self, shard: usize, f: F) -> Result<Called<R>, CallError>
    where
        A: App,
        R: Send + 'static,
        F: FnOnce(&mut A, &mut TargetShard<'_, '_>) -> R + Send + 'static,
    {
        self.call_handler(shard, move |http: &mut super::Http<A>, on| {
            http.run_call(f, on)
        })
    }

    /// Like [`Exchange::call`], but `f` gets the target shard's protocol handler of
    /// type `H` (the server's handler, or one nested in it, e.g. the
    /// [`HttpWs`](crate::websocket::HttpWs) inside a `Tls<HttpWs<..>>`) and the
    /// runtime's [`ShardIo`] there: for state outside the application, such as a
    /// WebSocket side's counters. A type the target has nowhere comes back to
    /// [`App::on_call_done`] as [`CallError::WrongHandler`].
    pub fn call_handler<H, R, F>(&mut self, shard: usize, f: F) -> Result<Called<R>, CallError>
    where
        H: 'static,
        R: Send + 'static,
        F: FnOnce(&mut H, &mut ShardIo<'_>) -> R + Send + 'static,
    {
        let seq = self.state.seq;
        let mut work = Some(f);
        let mut sent = Err(CallError::NoShard(shard));
        self.port.with_io(&mut |io| {
            if let Some(f) = work.take() {
                sent = start_call::<H, R, F>(io, shard, seq, f);
            }
        });
        match sent {
            Ok(()) => {
                self.state.calls += 1;
                self.port.counters().calls += 1;
                Ok(Called::new())
            }
            Err(e) => {
                self.port.counters().calls_refused += 1;
                Err(e)
            }
        }
    }

    /// Sends `req` to `upstream` over one of this shard's pooled connections to it (a
    /// new one if none is idle, or after a wait in its bounded queue); the response
    /// comes back to this exchange's task in [`App::on_upstream`]: the head, the body
    /// in pieces as they arrive, then the end, or a typed failure (connect error or
    /// timeout, no response in time, malformed response, closed mid-body). Never
    /// blocks. The application must return a task from [`App::on_request`] for the
    /// response to be delivered.
    ///
    /// Refused at once with [`UpstreamError::QueueFull`] when the upstream's
    /// connections and queue are all taken (answer 503), with
    /// [`UpstreamError::ShuttingDown`] while the server drains, with
    /// [`UpstreamError::InvalidRequest`] for a request HTTP cannot carry, and with
    /// [`UpstreamError::Unavailable`] when driven without the runtime.
    ///
    /// An idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) sent on a reused
    /// connection that the upstream turns out to have closed before answering is sent
    /// once more on a fresh connection; any other failure is reported.
    pub fn fetch(
        &mut self,
        upstream: &Upstream,
        req: UpstreamRequest<'_>,
    ) -> Result<Fetch, UpstreamError> {
        self.port.fetch(upstream, &req, self.state.seq)
    }

    /// Answers `101 Switching Protocols` with `Connection: Upgrade` and `fields` (the
    /// `Upgrade` field and whatever the new protocol's handshake needs): once it is on
    /// the wire the connection stops speaking HTTP/1.1. Only a protocol driver that
    /// takes the connection over can carry on from there: the proxy's tunnel to an
    /// upstream that switched (the upstream pool does it when the upstream's own 101
    /// came, see [`App::on_upstream`]); elsewhere the connection then closes.
    pub fn switch_protocols(&mut self, fields: &[(&str, &str)]) {
        if self.state.phase != Phase::Waiting {
            return self.misuse();
        }
        self.state.phase = Phase::Done;
        self.state.upgrade = true;
        let date = *self.port.date();
        let dropped = encode::write_head_fields(
            self.out(),
            101,
            &date,
            Framing::None,
            ConnField::Upgrade,
            Fields::List(fields),
        );
        self.note_dropped(dropped);
    }

    /// Gives the next piece of the body of `fetch`, a request made with
    /// [`UpstreamRequest::body_stream`](super::UpstreamRequest::body_stream); `last` ends
    /// it (an empty last piece is fine). Pieces are framed as the request said
    /// (`Content-Length` or chunked) and sent as the upstream connection can take them:
    /// while the request waits for a connection, or the upstream reads slower than this
    /// client sends, the body is held: on HTTP/1.1 by pausing this connection's reading,
    /// on HTTP/2 by holding back only this stream's flow-control credit (the
    /// connection's other streams go on). `Err` once the request is gone (it
    /// failed or was answered; [`App::on_upstream`] says which): drop the rest.
    pub fn fetch_body(
        &mut self,
        fetch: Fetch,
        piece: &[u8],
        last: bool,
    ) -> Result<(), UpstreamError> {
        let hold = self.port.fetch_body(fetch, piece, last, &[])?;
        self.hold_body_if(hold);
        Ok(())
    }

    /// The pool asked for the streamed body to be held: on HTTP/2 this stream's credit
    /// (its other streams go on), on HTTP/1.1 the connection's reading.
    fn hold_body_if(&mut self, hold: bool) {
        if !hold {
            return;
        }
        match self.out {
            Out::Stream(_) => self.state.body_paused = true,
            Out::Port | Out::Held(_) => self.port.hold_reading(),
        }
    }

    /// Like [`Exchange::fetch_body`] with `last`, ending the body with a trailer
    /// section: `trailers`, those [`encode::trailer_allowed`] accepts (the others are
    /// dropped). They go when the request's body is chunked
    /// ([`UpstreamRequest::body_stream`](super::UpstreamRequest::body_stream) with no
    /// length); a `Content-Length` body cannot carry them, and they are dropped (RFC
    /// 9110 section 6.5.1). The way a proxy passes on a client's request trailers
    /// ([`App::on_trailers`]).
    pub fn fetch_body_with_trailers(
        &mut self,
        fetch: Fetch,
        piece: &[u8],
        trailers: &[(&str, &str)],
    ) -> Result<(), UpstreamError> {
        let hold = self.port.fetch_body(fetch, piece, true, trailers)?;
        self.hold_body_if(hold);
        Ok(())
    }

    /// This shard's counters for `upstream` (requests, reuse, connect time, failures,
    /// idle and open connections now); `None` before this shard first called it.
    pub fn upstream_stats(&self, upstream: &Upstream) -> Option<UpstreamStats> {
        self.port.upstream_stats(upstream)
    }

    /// Whether `upstream`'s last health check on this shard failed (see
    /// [`UpstreamBuilder::health_check`](super::upstream::UpstreamBuilder::health_check));
    /// false without checks. A balancer skips such an upstream.
    pub fn upstream_down(&self, upstream: &Upstream) -> bool {
        self.port.upstream_down(upstream)
    }

    /// Ends the response unfinished: for a stream (after [`Exchange::start_stream`] or
    /// [`Exchange::start_sized`]) whose source failed midway, the connection is closed
    /// once what was sent is flushed, without the end of the body, so the client sees a
    /// truncated response and never mistakes it for a complete one. Before anything was
    /// sent, answers `502 Bad Gateway` instead.
    pub fn abort(&mut self) {
        match self.state.phase {
            Phase::Waiting => self.respond(Response::text(502, "Bad Gateway\n")),
            Phase::Streaming => {
                self.state.phase = Phase::Done;
                match &mut self.out {
                    Out::Stream(s) => s.reset(),
                    Out::Port | Out::Held(_) => self.state.close = true,
                }
            }
            Phase::Done => {}
        }
    }

    /// Asks for no more of this request's streamed body for now (see
    /// [`App::stream_body`]): on HTTP/2 the stream's flow-control window is not opened
    /// again, so the client stops once it has sent what it already had credit for (at
    /// most the window, SETTINGS_INITIAL_WINDOW_SIZE), and [`App::on_body`] may still get
    /// that much. [`Exchange::resume_body`] gives the credit back. On HTTP/1.1 it has no
    /// effect: there the body is paced by the connection's reading, which the runtime
    /// pauses past its write backlog and an upstream's.
    pub fn pause_body(&mut self) {
        self.state.body_paused = true;
    }

    /// Takes a body paused with [`Exchange::pause_body`] again: the credit held back is
    /// given to the client.
    pub fn resume_body(&mut self) {
        self.state.body_paused = false;
    }

    /// Asks for one [`App::on_writable`] call once queued output has drained.
    pub fn want_writable(&mut self) {
        self.state.wants_writable = true;
        self.port.want_writable();
    }

    /// Bytes queued on the connection and not yet sent (to pace a stream).
    pub fn backlog(&self) -> usize {
        match &self.out {
            Out::Stream(s) => self.port.backlog() + s.queued(),
            Out::Port | Out::Held(_) => self.port.backlog(),
        }
    }

    /// The shard's clock as the driver reads it (the simulated clock under
    /// [`SimConn`](super::sim::SimConn)).
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

/// The fields whose values are text, for HTTP/2's encoder, which takes text; and how
/// many were left out (to be counted as dropped).
fn text_fields<'f>(list: &[(&'f str, &'f [u8])]) -> (Vec<(&'f str, &'f str)>, usize) {
    let text: Vec<(&str, &str)> = list
        .iter()
        .filter_map(|&(n, v)| Some((n, std::str::from_utf8(v).ok()?)))
        .collect();
    let lost = list.len() - text.len();
    (text, lost)
}
