//! The handler API: what a protocol sees of the runtime.
//!
//! A protocol implements [`Handler`]; the shard calls it back with the kernel-filled
//! bytes ([`Input`]) and an [`Io`] through which it queues output, sets timers and
//! steers reading. Nothing here exposes io_uring: a handler can be driven by a test
//! harness as easily as by a shard.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::ConnIo;
use crate::counters::Counters;
use crate::offload::{OffloadError, OffloadResult};
use crate::shard::ShardCtx;
use crate::timer::TimerKey;
use crate::token::ConnToken;
use crate::udp::DatagramIo;

/// Why a connection was closed, as told to [`Handler::on_close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The handler asked for it (`Io::close` after the flush, or `Io::abort`).
    Local,
    /// The peer closed its side and everything queued was sent.
    PeerClosed,
    /// The peer reset the connection or a socket error occurred (the errno).
    Error(i32),
    /// No input within the idle timeout.
    Idle,
    /// The handler left more unconsumed input than the carry-over limit allows.
    InputOverflow,
    /// The server is shutting down and the drain deadline passed.
    Shutdown,
}

/// A protocol: one value per shard, called back for every connection of that shard.
///
/// All callbacks run on the shard's thread; none may block. Per-connection state lives
/// in [`Handler::Conn`], which the shard stores beside its own bookkeeping.
pub trait Handler: 'static {
    /// Per-connection state.
    type Conn;

    /// A connection was accepted. Returns its state; may already queue output.
    fn on_open(&mut self, peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn;

    /// Bytes arrived. `input` holds them in place (the kernel-filled buffer, or the
    /// connection's carry-over when an earlier call left bytes unconsumed). Consume
    /// what was handled; the rest is kept and shown again, with more, next time.
    fn on_data(&mut self, conn: &mut Self::Conn, input: &mut Input<'_>, io: &mut Io<'_>);

    /// The peer shut down its write side. Default: close once queued output is sent.
    fn on_eof(&mut self, _conn: &mut Self::Conn, io: &mut Io<'_>) {
        io.close();
    }

    /// Output drained below the low-water mark after [`Io::want_writable`] was called
    /// or after the write backlog had paused reading.
    fn on_writable(&mut self, _conn: &mut Self::Conn, _io: &mut Io<'_>) {}

    /// A timer set with [`Io::set_timer`] fired; `tag` is the value given then.
    fn on_timer(&mut self, _conn: &mut Self::Conn, _tag: u64, _io: &mut Io<'_>) {}

    /// The server is draining. Default: close once queued output is sent. A protocol
    /// with work in progress may keep the connection until it is done; the shard
    /// closes whatever is left at the drain deadline.
    fn on_shutdown(&mut self, _conn: &mut Self::Conn, io: &mut Io<'_>) {
        io.close();
    }

    /// The connection is gone (after this, no callback names it again).
    fn on_close(&mut self, conn: Self::Conn, why: Close);

    /// A job this connection gave [`Io::offload`] finished on the worker pool (or
    /// panicked there). Not called if the connection closed in the meantime.
    fn on_offload_done(
        &mut self,
        _conn: &mut Self::Conn,
        _result: OffloadResult,
        _io: &mut Io<'_>,
    ) {
    }

    /// A message sent with [`Io::broadcast`] (from this shard or another) arrived;
    /// `conns` reaches every open connection of this shard.
    fn on_message(&mut self, _msg: &Message, _conns: &mut Conns<'_, Self::Conn>) {}

    /// The shard is up, before its first turn: a client (a load generator) opens its
    /// outbound connections and sets its shard timers here.
    fn on_start(&mut self, _shard: &mut ShardIo<'_>) {}

    /// A timer set with [`ShardIo::set_timer`] fired.
    fn on_shard_timer(&mut self, _tag: u64, _shard: &mut ShardIo<'_>) {}

    /// An outbound connection requested with `connect(addr, tag)` failed; no
    /// `on_open` follows for it.
    fn on_connect_failed(
        &mut self,
        _tag: u64,
        _addr: SocketAddr,
        _err: std::io::Error,
        _shard: &mut ShardIo<'_>,
    ) {
    }

    /// A datagram arrived on the shard's UDP socket (servers built with UDP enabled).
    /// Default: dropped. See also [`crate::DatagramHandler`].
    fn on_datagram(&mut self, _peer: SocketAddr, _payload: &[u8], _io: &mut DatagramIo<'_>) {}
}

/// How a connection came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Accepted on the shard's listener.
    Accepted,
    /// Opened by this shard with `connect(addr, tag)`.
    Connected {
        /// The tag given to `connect`.
        tag: u64,
    },
}

/// The shard-level vocabulary: outbound connections, datagrams, shard timers, stopping
/// the server.
pub struct ShardIo<'a> {
    pub(crate) shard: &'a mut ShardCtx,
}

impl ShardIo<'_> {
    /// Opens a TCP connection to `addr` from this shard. On success the handler's
    /// `on_open` runs with [`Io::origin`] = `Connected { tag }`; on failure
    /// `on_connect_failed` gets `tag`.
    pub fn connect(&mut self, addr: SocketAddr, tag: u64) {
        self.shard.pending_connects.push((addr, tag));
    }

    /// Arms a shard-level timer; [`Handler::on_shard_timer`] gets `tag`.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerKey {
        self.shard.shard_timer(after, tag)
    }

    /// Cancels a shard-level timer.
    pub fn cancel_timer(&mut self, key: TimerKey) -> bool {
        self.shard.timers_cancel(key)
    }

    /// Starts a graceful shutdown of the whole server (every shard).
    pub fn shutdown_all(&mut self) {
        self.shard.shutdown_all();
    }

    /// Queues a copy of `payload` for `peer` on this shard's UDP socket, as
    /// [`DatagramIo::send_to`] does, but from outside [`Handler::on_datagram`] (a
    /// client's first datagrams from `on_start`, a resend from a shard timer). It goes
    /// out at the end of the turn, through the same bounded send table. Returns false,
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

    /// Sends `msg` to every shard, this one included.
    pub fn broadcast(&mut self, msg: Message) {
        self.shard.broadcast(msg);
    }

    /// This shard's index.
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
}

/// A message between shards: shared, immutable, of any type the protocol chooses.
pub type Message = Arc<dyn Any + Send + Sync>;

/// A callback run for one connection (see [`Conns`]).
pub type ConnFn<'f, C> = dyn FnMut(&mut C, &mut Io<'_>) + 'f;

/// Every open connection of a shard, for [`Handler::on_message`].
pub struct Conns<'a, C> {
    pub(crate) visit: &'a mut dyn for<'f> FnMut(&mut ConnFn<'f, C>),
}

impl<'a, C> Conns<'a, C> {
    /// Wraps a visitor that calls the callback it is given once for every open
    /// connection, with that connection's state and `Io`. For wrapping protocols (TLS)
    /// that forward [`Handler::on_message`] to their inner protocol's connections.
    pub fn new(visit: &'a mut dyn for<'f> FnMut(&mut ConnFn<'f, C>)) -> Self {
        Conns { visit }
    }

    /// Calls `f` for every open connection of this shard.
    pub fn for_each(&mut self, mut f: impl FnMut(&mut C, &mut Io<'_>)) {
        (self.visit)(&mut f)
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
        self.shard.note_output(self.conn);
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
        self.shard.note_output(self.conn);
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
        self.shard.note_output(self.conn);
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
        self.shard.note_output(self.conn);
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
        self.shard.note_output(self.conn);
    }

    /// Stops delivering input (the shard cancels its receive) until
    /// [`Io::resume_reading`]. Bytes already received wait in the carry-over.
    pub fn pause_reading(&mut self) {
        self.conn.user_paused = true;
        self.shard.note_output(self.conn);
    }

    /// Undoes [`Io::pause_reading`]; `on_data` runs again at once with the bytes left
    /// unconsumed (possibly none).
    pub fn resume_reading(&mut self) {
        if self.conn.user_paused {
            self.conn.user_paused = false;
            self.conn.redeliver = true;
            self.shard.note_output(self.conn);
        }
    }

    /// Asks for one [`Handler::on_writable`] call once queued output has drained below
    /// the low-water mark (at once, on the shard's next turn, if it already has).
    pub fn want_writable(&mut self) {
        self.conn.want_writable = true;
        self.shard.note_output(self.conn);
    }

    /// Arms a one-shot timer; [`Handler::on_timer`] gets `tag` when it fires.
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

    /// Opens another outbound connection from this shard (see [`ShardIo::connect`]).
    pub fn connect(&mut self, addr: SocketAddr, tag: u64) {
        self.shard.pending_connects.push((addr, tag));
    }

    /// Starts a graceful shutdown of the whole server (every shard).
    pub fn shutdown_all(&mut self) {
        self.shard.shutdown_all();
    }

    /// The index of the shard running this connection.
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

    /// Runs `job` on the worker pool; its result comes back to this connection, on this
    /// shard, through [`Handler::on_offload_done`]. Never blocks: with the pool's queue
    /// full (or no pool configured) it fails at once and the job is not run.
    pub fn offload<F>(&mut self, job: F) -> Result<(), OffloadError>
    where
        F: FnOnce() -> Box<dyn Any + Send> + Send + 'static,
    {
        let token = self.conn.token;
        self.shard.offload(token, Box::new(job))
    }

    /// Sends `msg` to every shard, this one included; each calls
    /// [`Handler::on_message`] on its next turn.
    pub fn broadcast(&mut self, msg: Message) {
        self.shard.broadcast(msg);
    }
}
