//! The vocabulary a handler speaks to the runtime: [`Io`] for one connection,
//! [`ShardIo`] for the shard, and [`Input`], the bytes shown in place.

use std::any::{Any, TypeId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::call::{CallError, Called, ReplyTo};
use crate::close::{Close, Origin};
use crate::conn::ConnIo;
use crate::conn::HalfClose;
use crate::counters::Counters;
use crate::ctx::{ConnAction, ConnectRequest, ShardCtx};
use crate::find::FindHandler;
use crate::job::{OffloadError, Offloaded};
use crate::mailbox::Broadcast;
use crate::notifier::Notifier;
use crate::send_queue::Segment;
use crate::timer::TimerKey;
use crate::token::ConnToken;

/// A cross-shard call's work as it travels (type-erased in the mailbox, which sits
/// below this layer): run on the target shard with its handler and its `ShardIo`.
pub(crate) type CallWork = Box<
    dyn FnOnce(&mut dyn FindHandler, &mut ShardIo<'_>) -> Result<Box<dyn Any + Send>, CallError>
        + Send,
>;

/// Wraps a typed call closure as a [`CallWork`], boxed again as the mailbox carries it.
/// On the target it runs with the handler of type `H`: the shard's handler itself, or
/// one nested in it ([`Handler::find`](crate::Handler::find)); found nowhere, the call
/// answers [`CallError::WrongHandler`].
pub(crate) fn call_work<H, R, F>(f: F) -> Box<dyn Any + Send>
where
    H: 'static,
    R: Send + 'static,
    F: FnOnce(&mut H, &mut ShardIo<'_>) -> R + Send + 'static,
{
    let work: CallWork = Box::new(
        move |handler: &mut dyn FindHandler, shard: &mut ShardIo<'_>| match handler
            .find_handler(TypeId::of::<H>())
            .and_then(|h| h.downcast_mut::<H>())
        {
            Some(h) => Ok(Box::new(f(h, shard)) as Box<dyn Any + Send>),
            None => Err(CallError::WrongHandler(std::any::type_name::<H>())),
        },
    );
    Box::new(work)
}

/// The shard-level vocabulary: outbound connections, datagrams, shard timers, stopping
/// the server.
pub struct ShardIo<'a> {
    pub(crate) shard: &'a mut ShardCtx,
}

/// What both vocabularies say of the shard itself (each holds `shard: &mut ShardCtx`).
macro_rules! shard_vocabulary {
    () => {
        /// Opens a TCP connection to `addr` from this shard. On success the handler's
        /// `on_connected` runs with `tag` (and [`Io::origin`] = `Connected { tag }`); on failure
        /// [`ShardEvent::ConnectFailed`](crate::ShardEvent::ConnectFailed) gets `tag`.
        pub fn connect(&mut self, addr: SocketAddr, tag: u64) {
            self.shard.pending_connects.push(ConnectRequest {
                addr,
                tag,
                timeout: None,
                source: None,
            });
        }

        /// Like `connect`, but a connect still pending after `timeout` is cancelled and
        /// reported as [`ShardEvent::ConnectFailed`](crate::ShardEvent::ConnectFailed)
        /// with an error of kind `TimedOut` (counted as `connect_timeouts`).
        pub fn connect_timeout(&mut self, addr: SocketAddr, tag: u64, timeout: Duration) {
            self.shard.pending_connects.push(ConnectRequest {
                addr,
                tag,
                timeout: Some(timeout),
                source: None,
            });
        }

        /// Like `connect_timeout`, from local address `source` (its port chosen by the
        /// kernel at connect time, `IP_BIND_ADDRESS_NO_PORT`, so that one source can
        /// reach many destinations): a proxy spreads its upstream connections over
        /// several sources to get past the ephemeral ports of one. A source whose ports
        /// are exhausted fails the connect with `EADDRNOTAVAIL`, reported as
        /// [`ShardEvent::ConnectFailed`](crate::ShardEvent::ConnectFailed).
        pub fn connect_from(
            &mut self,
            addr: SocketAddr,
            source: std::net::IpAddr,
            tag: u64,
            timeout: Duration,
        ) {
            self.shard.pending_connects.push(ConnectRequest {
                addr,
                tag,
                timeout: Some(timeout),
                source: Some(source),
            });
        }

        /// Queues a copy of `bytes` for another connection of this shard, named by its
        /// token. Applied once this callback returns; if that connection is gone (closed
        /// or closing, its slot maybe reused, or a token of another shard), nothing is
        /// written and the caller gets `ConnGone(target)` (counted as `stale_tokens`).
        /// The bytes go to the socket as they are, below any wrapping protocol of the
        /// target (TLS would not encrypt them): through a wrapper, `post` a value and let
        /// the target write it.
        pub fn write_to(&mut self, target: ConnToken, bytes: &[u8]) {
            let from = self.op_origin();
            self.shard
                .conn_op(from, target, ConnAction::Write(bytes.to_vec()));
        }

        /// Stops reading from another connection of this shard (as its own
        /// `Io::hold_reading` would: backpressure, not the target's doing), once this
        /// callback returns. A gone target is reported as for `write_to`.
        pub fn pause_reading_of(&mut self, target: ConnToken) {
            let from = self.op_origin();
            self.shard.conn_op(from, target, ConnAction::PauseReading);
        }

        /// Undoes `pause_reading_of` (or the target's own pause), once this callback
        /// returns. A gone target is reported as for `write_to`.
        pub fn resume_reading_of(&mut self, target: ConnToken) {
            let from = self.op_origin();
            self.shard.conn_op(from, target, ConnAction::ResumeReading);
        }

        /// Closes another connection of this shard once its queued output is sent (as
        /// its own `Io::close` would), once this callback returns. A gone target is
        /// reported as for `write_to`.
        pub fn close_conn(&mut self, target: ConnToken) {
            let from = self.op_origin();
            self.shard.conn_op(from, target, ConnAction::Close);
        }

        /// Gives `value` to another connection of this shard: it gets
        /// [`Event::Posted`](crate::Event::Posted) once this callback returns (in the
        /// same loop turn). The value never leaves the shard's thread, so it need not be
        /// `Send`. A gone target is reported as for `write_to`, and the value dropped.
        pub fn post<T: 'static>(&mut self, target: ConnToken, value: T) {
            let from = self.op_origin();
            self.shard
                .conn_op(from, target, ConnAction::Post(Box::new(value)));
        }

        /// Starts a graceful shutdown of the whole server (every shard).
        pub fn shutdown_all(&mut self) {
            self.shard.shutdown_all();
        }

        /// Sends `msg` to every shard, this one included; each gets
        /// [`ShardEvent::Broadcast`](crate::ShardEvent::Broadcast) and then every open
        /// connection [`Event::Broadcast`](crate::Event::Broadcast), on its next turn.
        pub fn broadcast(&mut self, msg: Broadcast) {
            self.shard.broadcast(msg);
        }

        /// The index of this shard.
        pub fn shard_id(&self) -> usize {
            self.shard.id
        }

        /// The shard's clock, read once per loop turn.
        pub fn now(&self) -> Instant {
            self.shard.now
        }

        /// The shard's counters.
        pub fn counters(&self) -> &Counters {
            &self.shard.counters
        }

        /// True once the server has started draining.
        pub fn is_draining(&self) -> bool {
            self.shard.draining
        }
    };
}

impl ShardIo<'_> {
    shard_vocabulary!();

    /// Who asks, for actions by token: the shard's handler.
    fn op_origin(&self) -> Option<ConnToken> {
        None
    }

    /// Runs `f` on shard `shard` with that shard's handler of type `H` (the handler
    /// type the server was started with, or one nested in it: see
    /// [`Handler::find`](crate::Handler::find)) and its `ShardIo`, on that shard's
    /// thread; its value comes back here as
    /// [`ShardEvent::CallDone`](crate::ShardEvent::CallDone) with `tag`, read through
    /// the returned handle. Refused at once (never blocking) for a shard index out of
    /// range, a full mailbox (see `mailbox_calls`; counted as `calls_rejected`) or a
    /// stopped shard; a handler type found nowhere on the target comes back as
    /// [`CallError::WrongHandler`]. A panic in `f` is a panic of the target shard, as
    /// for any handler callback.
    pub fn call<H: 'static, R: Send + 'static>(
        &mut self,
        shard: usize,
        tag: u64,
        f: impl FnOnce(&mut H, &mut ShardIo<'_>) -> R + Send + 'static,
    ) -> Result<Called<R>, CallError> {
        self.shard.call(shard, ReplyTo::Shard(tag), call_work(f))?;
        Ok(Called::new())
    }

    /// Arms a shard-level timer; [`ShardEvent::Timer`](crate::ShardEvent::Timer) gets `tag`.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerKey {
        self.shard.shard_timer(after, tag)
    }

    /// Cancels a shard-level timer.
    pub fn cancel_timer(&mut self, key: TimerKey) -> bool {
        self.shard.timers_cancel(key)
    }

    /// Queues a copy of `payload` for `peer` on this shard's UDP socket: a reply to a
    /// [`ShardEvent::Datagram`](crate::ShardEvent::Datagram), or a client's datagrams
    /// (from [`ShardEvent::Start`](crate::ShardEvent::Start), a resend from a shard
    /// timer). It goes out at the end of the turn, through a bounded send table. Returns false,
    /// and the datagram is dropped and counted as `udp_send_dropped`, when the table is
    /// full or the shard has no UDP socket (the server was built without `udp(true)`).
    pub fn send_to(&mut self, peer: SocketAddr, payload: &[u8]) -> bool {
        let zc_threshold = self.shard.zero_copy_threshold();
        let ShardCtx {
            udp_sends,
            counters,
            ..
        } = &mut *self.shard;
        match udp_sends {
            Some(sends) => sends.send_copy(peer, payload, zc_threshold, counters),
            None => {
                counters.udp_send_dropped += 1;
                false
            }
        }
    }
}

/// Bytes received on a connection, shown in place.
///
/// The handler consumes a prefix; whatever it leaves is copied into the connection's
/// carry-over buffer by the shard and shown again, followed by new bytes, next time.
#[derive(Debug)]
pub struct Input<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// Wraps `buf` with nothing consumed yet.
    pub fn new(buf: &'a [u8]) -> Self {
        Input { buf, pos: 0 }
    }

    /// The bytes not consumed yet.
    pub fn bytes(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Marks the first `n` of [`Input::bytes`] as handled. `n` is clamped to what is there.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Marks everything as handled.
    pub fn consume_all(&mut self) {
        self.pos = self.buf.len();
    }

    /// How many bytes have been consumed in this call.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// How many bytes are left unconsumed.
    pub fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when nothing is left unconsumed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A handler's whole vocabulary towards the runtime, for one connection.
pub struct Io<'a> {
    conn: &'a mut ConnIo,
    shard: &'a mut ShardCtx,
    /// When set, output goes here instead of the socket (see [`Io::capture`]).
    capture: Option<&'a mut Vec<u8>>,
}

impl<'a> Io<'a> {
    shard_vocabulary!();

    /// Who asks, for actions by token: this connection.
    fn op_origin(&self) -> Option<ConnToken> {
        Some(self.conn.token)
    }

    /// A handle through which any thread can send this connection values of type `T`
    /// (see [`Notifier`]): each arrives as [`Event::Notified`](crate::Event::Notified)
    /// on this shard; if every clone is dropped with none sent,
    /// [`Event::NotifierDropped`](crate::Event::NotifierDropped) arrives instead.
    pub fn notifier<T: Send + 'static>(&mut self) -> Notifier<T> {
        let id = self.shard.next_notifier;
        self.shard.next_notifier += 1;
        let mailbox = self.shard.mailboxes[self.shard.id].clone();
        Notifier::new(mailbox, self.conn.token, id)
    }

    /// Runs `f` on shard `shard` with that shard's handler of type `H` (the handler
    /// type the server was started with, or one nested in it, e.g. the `Http<A>` inside
    /// a `Tls<Http<A>>`: see [`Handler::find`](crate::Handler::find)) and its
    /// `ShardIo`, on that shard's thread (this shard included, on a later turn); its
    /// value comes back to this connection as [`Event::CallDone`](crate::Event::CallDone),
    /// read through the returned handle. Not delivered if this connection has closed by
    /// then (counted as `call_replies_dropped`). Refused at once (never blocking) for a
    /// shard index out of range, a full mailbox (see `mailbox_calls`; counted as
    /// `calls_rejected`) or a stopped shard; a handler type found nowhere on the target
    /// answers [`CallError::WrongHandler`], and a target that stops with the call still
    /// queued [`CallError::ShardGone`], both as the call's outcome. A panic in `f` is a
    /// panic of the target shard, as for any handler callback.
    pub fn call<H: 'static, R: Send + 'static>(
        &mut self,
        shard: usize,
        f: impl FnOnce(&mut H, &mut ShardIo<'_>) -> R + Send + 'static,
    ) -> Result<Called<R>, CallError> {
        let to = ReplyTo::Conn(self.conn.token);
        self.shard.call(shard, to, call_work(f))?;
        Ok(Called::new())
    }

    /// Links this connection with another of this shard (by token), both ways, for a
    /// relay: while either one's unsent backlog is past the write-backlog bound
    /// (`write_backlog_limit`), reading from the other pauses, and resumes once the
    /// backlog has drained to half (or the connection is gone). So a fast sender on one
    /// side and a slow reader on the other keep the relay's memory bounded. Applied once
    /// this callback returns; a gone target is reported as for `write_to`. A connection
    /// has one link: linking again replaces it.
    pub fn link(&mut self, target: ConnToken) {
        let from = self.op_origin();
        self.shard.conn_op(from, target, ConnAction::Link);
    }

    /// From now on, this connection's input goes to another connection of this shard
    /// (by token) inside the kernel: `IORING_OP_SPLICE` from the socket into a pipe of
    /// its own and from the pipe into the target's socket, never through user space.
    /// `on_data` is no longer called; [`Event::Eof`](crate::Event::Eof) still comes once
    /// the input has ended and everything read was passed on. Input already received
    /// (the carry-over) goes first. Both sockets must be plain descriptors (run with
    /// `direct_descriptors(false)`), and nothing else may write to the target while
    /// this runs (its send queue would interleave). A splice that fails aborts this
    /// connection. For relays of large transfers: each splice is a hand-off to a
    /// kernel worker thread, which costs more than a receive and a send for small
    /// messages (docs/BENCHMARKS.md has the figures). Applied once this callback
    /// returns; a gone target is reported as for `write_to`; a connection already
    /// spliced stays spliced to its first target.
    pub fn splice_to(&mut self, target: ConnToken) {
        let from = self.op_origin();
        self.shard.conn_op(from, target, ConnAction::Splice);
    }

    pub(crate) fn new(conn: &'a mut ConnIo, shard: &'a mut ShardCtx) -> Self {
        Io {
            conn,
            shard,
            capture: None,
        }
    }

    /// Runs `f` with an `Io` whose [`Io::write`] and [`Io::send_owned`] append to `out`
    /// instead of the socket; everything else (timers, close, reading) passes through.
    /// This is how a wrapping protocol (TLS) sees its inner protocol's output before it
    /// goes out.
    pub fn capture<R>(&mut self, out: &mut Vec<u8>, f: impl FnOnce(&mut Io<'_>) -> R) -> R {
        let mut inner = Io {
            conn: &mut *self.conn,
            shard: &mut *self.shard,
            capture: Some(out),
        };
        f(&mut inner)
    }

    /// Queues a copy of `bytes` for sending. Writes made while a send is in flight are
    /// coalesced into the next send.
    pub fn write(&mut self, bytes: &[u8]) {
        if let Some(out) = self.capture.as_deref_mut() {
            out.extend_from_slice(bytes);
            return;
        }
        if self.conn.closing_now() {
            return;
        }
        self.conn.send.write(bytes);
        self.shard.mark_dirty(self.conn);
    }

    /// The end of the connection's send queue, to encode output into in place (no
    /// staging buffer, no copy): **append only**, since the bytes already there are
    /// queued output. Whatever is appended leaves with the next send. While output is
    /// captured ([`Io::capture`]), this is the capture buffer.
    pub fn out_buf(&mut self) -> &mut Vec<u8> {
        if let Some(out) = self.capture.as_deref_mut() {
            return out;
        }
        if self.conn.closing_now() {
            // Nothing more may be queued: hand out a buffer that is thrown away.
            return self.shard.discard_buf();
        }
        self.shard.mark_dirty(self.conn);
        self.conn.send.tail()
    }

    /// Queues a segment as it is: bytes moved in (not copied), an owned buffer (zero-copy
    /// at or above the threshold) or `'static` memory. The way to release output held
    /// back for a while (a pipelined response waiting its turn) without copying it again.
    pub fn push(&mut self, segment: Segment) {
        if let Some(out) = self.capture.as_deref_mut() {
            out.extend_from_slice(segment.bytes());
            return;
        }
        match segment {
            Segment::Bytes(v) => {
                if self.conn.closing_now() || v.is_empty() {
                    return;
                }
                self.conn.send.push_bytes(v);
                self.shard.mark_dirty(self.conn);
            }
            Segment::Owned(v) => self.send_owned(v),
            Segment::Static(s) => self.send_static(s),
        }
    }

    /// Queues an owned buffer. At or above the zero-copy threshold it goes out with
    /// SEND_ZC and is dropped only after the kernel's notification; below it, it is
    /// sent like any other write.
    pub fn send_owned(&mut self, buf: Vec<u8>) {
        if let Some(out) = self.capture.as_deref_mut() {
            out.extend_from_slice(&buf);
            return;
        }
        if self.conn.closing_now() || buf.is_empty() {
            return;
        }
        let zc = buf.len() >= self.shard.zero_copy_threshold();
        self.conn.send.push_owned(buf, zc);
        self.shard.mark_dirty(self.conn);
    }

    /// Queues memory that lives for the whole program (a static asset, a body built once
    /// and leaked) without copying it: the cheapest way to send the same large body on
    /// many connections. Past the zero-copy threshold it goes out with SEND_ZC, as
    /// [`Io::send_owned`] does, with nothing to keep alive for the notification.
    pub fn send_static(&mut self, buf: &'static [u8]) {
        if let Some(out) = self.capture.as_deref_mut() {
            out.extend_from_slice(buf);
            return;
        }
        if self.conn.closing_now() || buf.is_empty() {
            return;
        }
        let zc = buf.len() >= self.shard.zero_copy_threshold();
        self.conn.send.push_static(buf, zc);
        self.shard.mark_dirty(self.conn);
    }

    /// Owned buffers at least this long go out zero-copy (see [`Io::send_owned`]).
    pub fn zero_copy_threshold(&self) -> usize {
        self.shard.zero_copy_threshold()
    }

    /// Bytes queued and not yet acknowledged by the kernel (plus any captured output).
    pub fn backlog(&self) -> usize {
        self.conn.send.backlog() + self.capture.as_deref().map_or(0, Vec::len)
    }

    /// Closes the connection once everything queued has been sent. Input arriving
    /// after this is discarded.
    pub fn close(&mut self) {
        self.conn.close_after_flush(Close::Local);
        self.shard.mark_dirty(self.conn);
    }

    /// Ends this side's output once what is queued is sent (TCP half-close: the peer
    /// reads an end of stream), while reading goes on: for a relay passing on one
    /// side's end of input to the other. Nothing may be written after it (it would be
    /// dropped by the kernel with an error that resets the connection). Close as usual
    /// once the peer's end of input has come too.
    pub fn shutdown_write(&mut self) {
        if self.conn.half == HalfClose::No {
            self.conn.half = HalfClose::Asked;
        }
        self.shard.mark_dirty(self.conn);
    }

    /// Like [`Io::close`], but once the output is flushed the socket is closed at once
    /// instead of lingering (shutting the write side and reading until the peer's FIN).
    /// For when the peer has said it sends nothing more, e.g. an HTTP/1.1 request with
    /// `Connection: close` read in full: closing then costs one system call and no
    /// extra wake-up. If unread input is waiting in the kernel when the output is
    /// flushed, the shard lingers anyway, since closing over unread input sends a reset
    /// that can destroy output the peer has not read yet.
    pub fn close_without_linger(&mut self) {
        self.conn.no_linger = true;
        self.close();
    }

    /// Closes the connection now, dropping queued output, with a TCP reset.
    pub fn abort(&mut self) {
        self.conn.abort(Close::Local);
        self.shard.mark_dirty(self.conn);
    }

    /// Stops delivering input (the shard cancels its receive) until
    /// [`Io::resume_reading`]. Bytes already received wait in the carry-over.
    pub fn pause_reading(&mut self) {
        self.conn.user_paused = true;
        self.conn.held = false;
        self.shard.mark_dirty(self.conn);
    }

    /// Like [`Io::pause_reading`], for backpressure the peer did not cause (what this
    /// connection reads has nowhere to go yet, e.g. an upload waiting for an upstream
    /// connection): input the receive still brings before it stops is kept whole,
    /// bounded by the socket's receive buffer, rather than held against the
    /// connection's carry-over bound. Undone by [`Io::resume_reading`].
    pub fn hold_reading(&mut self) {
        self.conn.user_paused = true;
        self.conn.held = true;
        self.shard.mark_dirty(self.conn);
    }

    /// Undoes [`Io::pause_reading`]; `on_data` runs again at once with the bytes left
    /// unconsumed (possibly none).
    pub fn resume_reading(&mut self) {
        if self.conn.user_paused {
            self.conn.user_paused = false;
            self.conn.redeliver = true;
            self.shard.mark_dirty(self.conn);
        }
    }

    /// Asks for one [`Event::Writable`](crate::Event::Writable) call once queued output has drained below
    /// the low-water mark (at once, on the shard's next turn, if it already has).
    pub fn want_writable(&mut self) {
        self.conn.want_writable = true;
        self.shard.mark_dirty(self.conn);
    }

    /// Asks for a plain descriptor of this connection's socket, for code that needs one
    /// (to pass it to another library, to set an option the runtime does not): it
    /// arrives as [`Event::Fd`](crate::Event::Fd) on a later turn. The descriptor is the
    /// handler's (closing it does not close the connection); with direct descriptors
    /// the kernel installs one for the socket (Linux 6.8), else it is a duplicate. Do
    /// not read from or write to it while the runtime does.
    pub fn request_fd(&mut self) {
        self.conn.fd_requested = true;
        self.shard.mark_dirty(self.conn);
    }

    /// Arms a one-shot timer; [`Event::Timer`](crate::Event::Timer) gets `tag` when it fires.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerKey {
        let token = self.conn.token;
        self.shard.timers_set(after, token, tag)
    }

    /// Cancels a timer; returns false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, key: TimerKey) -> bool {
        self.shard.timers_cancel(key)
    }

    /// This connection's token (slot and generation): stable for its lifetime, never
    /// reused for another connection while a stale copy could still matter.
    pub fn token(&self) -> ConnToken {
        self.conn.token
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.conn.peer
    }

    /// Whether this connection was accepted or opened by this shard.
    pub fn origin(&self) -> Origin {
        self.conn.origin
    }

    /// Runs `job` on the worker pool; its outcome comes back to this connection, on this
    /// shard, as [`Event::Offloaded`](crate::Event::Offloaded), and the returned handle
    /// reads the value out of it. Never blocks: with the pool's queue full (or no pool
    /// configured) it fails at once and the job is not run.
    pub fn offload<F, R>(&mut self, job: F) -> Result<Offloaded<R>, OffloadError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let token = self.conn.token;
        self.shard
            .offload(token, Box::new(move || Box::new(job()) as _))?;
        Ok(Offloaded::new())
    }
}
