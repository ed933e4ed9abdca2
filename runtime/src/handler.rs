//! The handler API: what a protocol implements.
//!
//! A protocol implements [`Handler`]; the shard calls it back with the kernel-filled
//! bytes ([`Input`]) and an [`Io`] through which it queues output, sets timers and
//! steers reading. Nothing here exposes io_uring: a handler can be driven by a test
//! harness as easily as by a shard.
//!
//! Callbacks come in two groups. Connection callbacks name one connection: `on_open`,
//! `on_data` and `on_close`, which every protocol writes, and [`Handler::on_event`] for
//! everything else that happens to a connection ([`Event`]). Shard callbacks name none:
//! [`Handler::on_shard`] gets every [`ShardEvent`]. A protocol that wraps another (TLS
//! around HTTP, an HTTP connection that upgrades to WebSocket) handles the events it
//! changes and passes the rest on with one catch-all arm, so an event added to the
//! runtime later reaches the inner protocol without the wrapper being touched.

use std::any::{Any, TypeId};
use std::net::SocketAddr;

use crate::call::{CallDone, Notification, Posted};
use crate::close::Close;
use crate::find::FindHandler;
use crate::io::{Input, Io, ShardIo};
use crate::job::OffloadDone;
use crate::mailbox::Broadcast;
use crate::token::ConnToken;

/// A protocol: one value per shard, called back for every connection of that shard.
///
/// All callbacks run on the shard's thread; none may block. Per-connection state lives
/// in [`Handler::Conn`], which the shard stores beside its own bookkeeping.
pub trait Handler: 'static {
    /// Per-connection state.
    type Conn;

    /// A connection was accepted on the shard's listener. Returns its state; may
    /// already queue output.
    fn on_open(&mut self, peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn;

    /// An outbound connection this shard opened with `connect(addr, tag)` is
    /// established: the client role, kept apart from [`Handler::on_open`] so that a
    /// server protocol that also opens connections (an upstream pool) never mistakes
    /// one for an accepted client. `peer` is the address connected to.
    ///
    /// The default hands it to `on_open`, for a handler whose connections are all
    /// outbound (a load generator) or all alike. A wrapping protocol forwards it to its
    /// inner protocol, as it does `on_open`.
    fn on_connected(&mut self, tag: u64, peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn {
        let _ = tag;
        self.on_open(peer, io)
    }

    /// Bytes arrived. `input` holds them in place (the kernel-filled buffer, or the
    /// connection's carry-over when an earlier call left bytes unconsumed). Consume
    /// what was handled; the rest is kept and shown again, with more, next time.
    fn on_data(&mut self, conn: &mut Self::Conn, input: &mut Input<'_>, io: &mut Io<'_>);

    /// Something other than data happened to this connection. The default does what
    /// [`Event::default_action`] says (close on end of input and on shutdown); a wrapping
    /// protocol passes every event it does not handle to its inner protocol.
    fn on_event(&mut self, _conn: &mut Self::Conn, event: Event<'_>, io: &mut Io<'_>) {
        event.default_action(io);
    }

    /// The connection is gone (after this, no callback names it again).
    fn on_close(&mut self, conn: Self::Conn, why: Close);

    /// What the shard calls when a connection ends, with the shard's vocabulary: a
    /// protocol whose connections' ends concern other connections (an upstream pool
    /// that must tell the exchange waiting on a connection that died, or open a
    /// replacement) implements this. The default calls [`Handler::on_close`], which
    /// is all most protocols need; a wrapping protocol forwards this one too.
    fn on_closed(&mut self, conn: Self::Conn, why: Close, shard: &mut ShardIo<'_>) {
        let _ = shard;
        self.on_close(conn, why);
    }

    /// Something happened to the shard rather than to one connection. Default: nothing.
    /// A wrapping protocol passes these straight to its inner protocol.
    fn on_shard(&mut self, _event: ShardEvent<'_>, _shard: &mut ShardIo<'_>) {}

    /// The handler of type `ty` nested inside this one, if there is one: what a
    /// cross-shard call ([`Io::call`], [`ShardIo::call`]) that names a wrapped handler
    /// reaches. The shard tries its handler itself first, then this. A wrapping protocol
    /// (TLS around HTTP) answers with [`find_in`] on each handler it wraps, so the
    /// search goes down any depth of wrappers; the default (a protocol that wraps none)
    /// finds nothing.
    fn find(&mut self, _ty: TypeId) -> Option<&mut dyn Any> {
        None
    }
}

/// `handler` itself if it is of type `ty`, else what its [`Handler::find`] finds: the
/// one line a wrapping protocol's `find` needs for each handler it wraps.
pub fn find_in<P: Handler>(handler: &mut P, ty: TypeId) -> Option<&mut dyn Any> {
    if ty == TypeId::of::<P>() {
        Some(handler)
    } else {
        handler.find(ty)
    }
}

impl<H: Handler> FindHandler for H {
    fn find_handler(&mut self, ty: TypeId) -> Option<&mut dyn Any> {
        find_in(self, ty)
    }
}

/// What can happen to a connection besides data arriving ([`Handler::on_event`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The peer shut down its write side. Default: close once queued output is sent.
    Eof,
    /// Output drained below the low-water mark after [`Io::want_writable`] was called or
    /// after the write backlog had paused reading.
    Writable,
    /// A timer set with [`Io::set_timer`] fired; the value is the tag given then.
    Timer(u64),
    /// The server is draining. Default: close once queued output is sent. A protocol
    /// with work in progress may keep the connection until it is done; the shard closes
    /// whatever is left at the drain deadline.
    Shutdown,
    /// A job this connection gave [`Io::offload`] finished on the worker pool (or
    /// panicked there); read it with the [`Offloaded`](crate::Offloaded) handle the
    /// submission returned. Not delivered if the connection closed in the meantime.
    Offloaded(OffloadDone),
    /// A message sent with [`Io::broadcast`] (from this shard or another), shown to
    /// every open connection of the shard after [`ShardEvent::Broadcast`].
    Broadcast(&'a Broadcast),
    /// The descriptor asked for with [`Io::request_fd`], or why there is none. Default:
    /// dropped (closed).
    Fd(std::io::Result<std::os::fd::OwnedFd>),
    /// A value sent with a [`Notifier`](crate::Notifier) of this connection (from any
    /// thread); read it with [`Notification::take`].
    Notified(Notification),
    /// Every clone of the notifier with this id was dropped without a value sent: what
    /// waited for it will not come.
    NotifierDropped(u64),
    /// A cross-shard call this connection made ([`Io::call`]) finished; read it with the
    /// [`Called`](crate::Called) handle the call returned.
    CallDone(CallDone),
    /// A value another connection of this shard (or the shard's handler) gave this one
    /// with `post`; read it with [`Posted::take`].
    Posted(Posted),
    /// An action this connection asked for on another one by token (`write_to`,
    /// `post`, ...) found it gone: closed or closing, its slot maybe reused, or the
    /// token of another shard. Nothing was done to it.
    ConnGone(ConnToken),
}

impl Event<'_> {
    /// What a handler that ignores this event should do: close after the flush on
    /// [`Event::Eof`] and [`Event::Shutdown`], nothing otherwise.
    pub fn default_action(self, io: &mut Io<'_>) {
        if matches!(self, Event::Eof | Event::Shutdown) {
            io.close();
        }
    }
}

/// What can happen to a shard ([`Handler::on_shard`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum ShardEvent<'a> {
    /// The shard is up, before its first turn: a client (a load generator) opens its
    /// outbound connections and sets its shard timers here.
    Start,
    /// A timer set with [`ShardIo::set_timer`] fired; the value is its tag.
    Timer(u64),
    /// An outbound connection requested with `connect(addr, tag)` failed; no `on_connected`
    /// follows for it.
    ConnectFailed {
        /// The tag given to `connect`.
        tag: u64,
        /// The address it was to reach.
        addr: SocketAddr,
        /// Why it failed.
        error: std::io::Error,
    },
    /// A datagram arrived on the shard's UDP socket (servers built with UDP enabled);
    /// reply with [`ShardIo::send_to`]. See also [`DatagramHandler`](crate::DatagramHandler).
    Datagram {
        /// Who sent it.
        peer: SocketAddr,
        /// Its payload, in place in the kernel-filled buffer.
        payload: &'a [u8],
    },
    /// A message sent with [`Io::broadcast`] or [`ShardIo::broadcast`] arrived, once per
    /// shard; each open connection then gets [`Event::Broadcast`].
    Broadcast(&'a Broadcast),
    /// A cross-shard call made with [`ShardIo::call`] finished; read it with the
    /// [`Called`](crate::Called) handle the call returned.
    CallDone {
        /// The tag given to the call.
        tag: u64,
        /// Its outcome.
        done: CallDone,
    },
    /// An action a shard callback asked for on a connection by token found it gone
    /// (see [`Event::ConnGone`]).
    ConnGone(ConnToken),
}
