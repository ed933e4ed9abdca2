//! [`Tls`]: any protocol handler, under TLS.
//!
//! The inner handler runs unchanged: it sees plaintext in [`Input`] and writes plaintext
//! through an [`Io`] whose output is captured ([`Io::capture`]), encrypted here and
//! queued on the socket. Timers, close, pause and everything else pass straight through.
//!
//! This module owns the rustls connection, the handshake deadline and the plaintext the
//! inner handler left unconsumed. It must never let a TLS error escape as a panic: every
//! failure writes the alert rustls queued, flushes it and closes, counted.

use std::any::{Any, TypeId};
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;

use ringmaster_runtime::{
    find_in, Close, Event, Handler, Input, Io, ShardEvent, ShardIo, TimerKey,
};
use rustls::ServerConnection;

use super::config::TlsConfig;

/// The tag of the handshake timer. While the handshake runs, a timer with this tag is the
/// TLS layer's; every other tag (and this one once the handshake is done) is forwarded.
pub const TLS_TIMER: u64 = 0x544C_5300_0000_0001;

/// Scratch buffers above this capacity are given back after use.
const SCRATCH_KEEP: usize = 256 * 1024;

/// Plaintext the inner handler may leave unconsumed before the connection is closed
/// (the same bound the runtime puts on its own carry-over).
const MAX_PENDING: usize = 1024 * 1024;

/// How often each TLS event happened on one shard.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TlsCounters {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of those, resumed sessions (tickets or session IDs).
    pub resumed: u64,
    /// Handshakes that failed (garbage, no common cipher or version, bad ALPN...); the
    /// alert rustls chose was sent.
    pub handshake_errors: u64,
    /// Handshakes closed at the deadline.
    pub handshake_timeouts: u64,
    /// Connections failed after the handshake (bad record, decryption failure...).
    pub record_errors: u64,
    /// Connections closed because the inner handler left too much plaintext unconsumed.
    pub pending_overflow: u64,
}

/// A protocol under TLS: one per shard.
pub struct Tls<P> {
    inner: P,
    config: TlsConfig,
    counters: TlsCounters,
    /// The inner handler's captured plaintext output.
    cap: Vec<u8>,
    /// Plaintext read from rustls, before the inner handler sees it.
    plain: Vec<u8>,
}

impl<P: std::fmt::Debug> std::fmt::Debug for Tls<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("inner", &self.inner)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Per-connection state of [`Tls`]: an accepted connection under TLS, or an outbound
/// one the inner protocol opened (its client role), passed through untouched: the
/// inner protocol decides what an outbound connection speaks.
pub enum TlsConn<C> {
    /// Accepted: the server side of a TLS session around the inner protocol.
    Server(Secured<C>),
    /// Opened by the inner protocol with `connect`: bytes pass through as they are.
    Outbound(C),
}

impl<C> std::fmt::Debug for TlsConn<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsConn::Server(s) => s.fmt(f),
            TlsConn::Outbound(_) => f.write_str("TlsConn::Outbound"),
        }
    }
}

impl<C> TlsConn<C> {
    /// The inner protocol's state.
    pub fn inner(&self) -> &C {
        match self {
            TlsConn::Server(s) => &s.inner,
            TlsConn::Outbound(c) => c,
        }
    }

    /// The rustls connection (ALPN, version, SNI...) of an accepted connection.
    pub fn tls(&self) -> Option<&ServerConnection> {
        match self {
            TlsConn::Server(s) => Some(&s.tls),
            TlsConn::Outbound(_) => None,
        }
    }
}

/// An accepted connection's TLS session and the inner protocol's state inside it.
pub struct Secured<C> {
    tls: Box<ServerConnection>,
    inner: C,
    /// Plaintext the inner handler has not consumed yet.
    pending: Vec<u8>,
    timer: Option<TimerKey>,
    /// The connection failed or closed; nothing more is read or written.
    dead: bool,
    /// The peer's close_notify was passed on as an end of input.
    eof_seen: bool,
}

impl<C> std::fmt::Debug for Secured<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("handshaking", &self.tls.is_handshaking())
            .field("pending", &self.pending.len())
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

impl<P: Handler> Tls<P> {
    /// Wraps `inner` with TLS configured by `config`.
    pub fn new(inner: P, config: TlsConfig) -> Self {
        Tls {
            inner,
            config,
            counters: TlsCounters::default(),
            cap: Vec::new(),
            plain: Vec::new(),
        }
    }

    /// The inner handler.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The inner handler, mutably.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// This shard's TLS counters.
    pub fn counters(&self) -> &TlsCounters {
        &self.counters
    }

    /// Encrypts what the inner handler wrote and queues every pending TLS record.
    fn flush(&mut self, conn: &mut Secured<P::Conn>, io: &mut Io<'_>) {
        flush_parts(conn, &mut self.cap, io);
    }

    /// Fails the connection: sends the alert rustls queued, then closes. For the few
    /// errors rustls refuses without queuing an alert (e.g. a handshake message longer
    /// than it accepts), a fatal alert is sent here: `decode_error` for malformed input,
    /// `internal_error` otherwise. Before the handshake completes alerts go in plaintext,
    /// so the record is written directly.
    fn fail(&mut self, conn: &mut Secured<P::Conn>, err: Option<&rustls::Error>, io: &mut Io<'_>) {
        conn.dead = true;
        conn.pending = Vec::new();
        let queued = conn.tls.wants_write();
        self.flush(conn, io);
        if !queued && conn.tls.is_handshaking() {
            let desc = match err {
                Some(rustls::Error::InvalidMessage(_)) => 50, // decode_error
                _ => 80,                                      // internal_error
            };
            io.write(&[21, 3, 3, 0, 2, 2, desc]);
        }
        io.close();
    }

    /// Shows the inner handler the pending plaintext (`self.plain` first moved behind
    /// `conn.pending` if that is not empty); keeps what it leaves.
    fn deliver(&mut self, conn: &mut Secured<P::Conn>, io: &mut Io<'_>) {
        let from_pending = !conn.pending.is_empty();
        if from_pending {
            conn.pending.extend_from_slice(&self.plain);
            self.plain.clear();
        }
        let Tls {
            inner, cap, plain, ..
        } = self;
        let bytes: &[u8] = if from_pending { &conn.pending } else { plain };
        if bytes.is_empty() {
            return;
        }
        let mut input = Input::new(bytes);
        let inner_conn = &mut conn.inner;
        io.capture(cap, |cio| inner.on_data(inner_conn, &mut input, cio));
        let used = input.consumed();
        if from_pending {
            conn.pending.drain(..used.min(conn.pending.len()));
            if conn.pending.is_empty() && conn.pending.capacity() > 4096 {
                conn.pending = Vec::new();
            }
        } else {
            let rest = plain.get(used..).unwrap_or_default();
            conn.pending.extend_from_slice(rest);
            plain.clear();
            if plain.capacity() > SCRATCH_KEEP {
                *plain = Vec::new();
            }
        }
        if conn.pending.len() > MAX_PENDING {
            self.counters.pending_overflow += 1;
            conn.dead = true;
            conn.pending = Vec::new();
            io.abort();
        }
    }

    /// Runs an inner callback with captured output, then encrypts and flushes, and gives
    /// the inner handler any plaintext it left (it may have resumed reading).
    fn around(
        &mut self,
        conn: &mut Secured<P::Conn>,
        io: &mut Io<'_>,
        f: impl FnOnce(&mut P, &mut P::Conn, &mut Io<'_>),
    ) {
        let inner_conn = &mut conn.inner;
        let inner = &mut self.inner;
        io.capture(&mut self.cap, |cio| f(inner, inner_conn, cio));
        if !conn.pending.is_empty() && !conn.dead {
            self.deliver(conn, io);
        }
        self.flush(conn, io);
    }

    /// Marks the handshake done: cancels its timer, counts it.
    fn handshake_done(&mut self, conn: &mut Secured<P::Conn>, io: &mut Io<'_>) {
        if let Some(key) = conn.timer.take() {
            io.cancel_timer(key);
            self.counters.handshakes += 1;
            if conn.tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                self.counters.resumed += 1;
            }
        }
    }
}

impl<P: Handler> Handler for Tls<P> {
    type Conn = TlsConn<P::Conn>;

    fn on_open(&mut self, peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn {
        // Creating a server connection fails only on a configuration rustls itself
        // rejects, which `TlsConfig` never builds.
        let tls = ServerConnection::new(self.config.server.clone());
        let (tls, dead) = match tls {
            Ok(t) => (t, false),
            Err(_) => {
                io.abort();
                let t = ServerConnection::new(self.config.server.clone());
                match t {
                    Ok(t) => (t, true),
                    Err(_) => unreachable_config(),
                }
            }
        };
        let mut conn = Secured {
            tls: Box::new(tls),
            inner: {
                let inner = &mut self.inner;
                io.capture(&mut self.cap, |cio| inner.on_open(peer, cio))
            },
            pending: Vec::new(),
            timer: None,
            dead,
            eof_seen: false,
        };
        // The inner handler's backlog accounting bounds what it writes; rustls must
        // take all of it.
        conn.tls.set_buffer_limit(None);
        conn.timer = Some(io.set_timer(self.config.handshake_timeout, TLS_TIMER));
        self.flush(&mut conn, io);
        TlsConn::Server(conn)
    }

    fn on_connected(&mut self, tag: u64, peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn {
        TlsConn::Outbound(self.inner.on_connected(tag, peer, io))
    }

    fn on_data(&mut self, conn: &mut Self::Conn, input: &mut Input<'_>, io: &mut Io<'_>) {
        let conn = match conn {
            TlsConn::Server(s) => s,
            TlsConn::Outbound(c) => return self.inner.on_data(c, input, io),
        };
        let mut rd = input.bytes();
        input.consume_all();
        if conn.dead {
            return;
        }
        loop {
            if !rd.is_empty() && conn.tls.read_tls(&mut rd).is_err() {
                // Only when rustls' buffers are full, which the drain below prevents.
                self.counters.record_errors += 1;
                return self.fail(conn, None, io);
            }
            let state = match conn.tls.process_new_packets() {
                Ok(s) => s,
                Err(e) => {
                    if conn.timer.is_some() {
                        self.counters.handshake_errors += 1;
                    } else {
                        self.counters.record_errors += 1;
                    }
                    return self.fail(conn, Some(&e), io);
                }
            };
            let n = state.plaintext_bytes_to_read();
            let peer_closed = state.peer_has_closed();
            if !conn.tls.is_handshaking() {
                self.handshake_done(conn, io);
            }
            if n > 0 {
                let start = self.plain.len();
                self.plain.resize(start + n, 0);
                let got = conn
                    .tls
                    .reader()
                    .read(self.plain.get_mut(start..).unwrap_or_default())
                    .unwrap_or(0);
                self.plain.truncate(start + got);
            }
            if rd.is_empty() || self.plain.len() >= 64 * 1024 {
                self.deliver(conn, io);
                self.flush(conn, io);
                if conn.dead {
                    return;
                }
            }
            if peer_closed && !conn.eof_seen {
                conn.eof_seen = true;
                self.deliver(conn, io);
                self.around(conn, io, |p, c, cio| p.on_event(c, Event::Eof, cio));
                return;
            }
            if rd.is_empty() {
                break;
            }
        }
        self.flush(conn, io);
    }

    fn on_event(&mut self, conn: &mut Self::Conn, event: Event<'_>, io: &mut Io<'_>) {
        let conn = match conn {
            TlsConn::Server(s) => s,
            TlsConn::Outbound(c) => return self.inner.on_event(c, event, io),
        };
        match event {
            Event::Timer(TLS_TIMER) if conn.timer.is_some() => {
                conn.timer = None;
                if conn.tls.is_handshaking() {
                    self.counters.handshake_timeouts += 1;
                    conn.dead = true;
                    io.close();
                }
            }
            Event::Eof if conn.dead || conn.eof_seen => io.close(),
            Event::Eof => {
                conn.eof_seen = true;
                self.around(conn, io, |p, c, cio| p.on_event(c, Event::Eof, cio));
            }
            Event::Shutdown if conn.dead || conn.tls.is_handshaking() => io.close(),
            // Nothing reaches the inner protocol before the handshake or after a failure.
            Event::Broadcast(_) if conn.tls.is_handshaking() => {}
            _ if conn.dead => {}
            // Everything else passes through with the inner protocol's output encrypted.
            other => self.around(conn, io, |p, c, cio| p.on_event(c, other, cio)),
        }
    }

    fn on_close(&mut self, conn: Self::Conn, why: Close) {
        match conn {
            TlsConn::Server(s) => self.inner.on_close(s.inner, why),
            TlsConn::Outbound(c) => self.inner.on_close(c, why),
        }
    }

    fn on_closed(&mut self, conn: Self::Conn, why: Close, shard: &mut ShardIo<'_>) {
        match conn {
            TlsConn::Server(s) => self.inner.on_closed(s.inner, why, shard),
            TlsConn::Outbound(c) => self.inner.on_closed(c, why, shard),
        }
    }

    // Shard-level events name no connection and carry no TLS: straight through.
    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        self.inner.on_shard(event, shard);
    }

    // A cross-shard call naming the inner protocol (or one inside it) reaches it.
    fn find(&mut self, ty: TypeId) -> Option<&mut dyn Any> {
        find_in(&mut self.inner, ty)
    }
}

/// Encrypts `cap` (the inner handler's plaintext output) on `conn` and writes every
/// pending TLS record straight into the connection's send queue. Empties `cap`.
fn flush_parts<C>(conn: &mut Secured<C>, cap: &mut Vec<u8>, io: &mut Io<'_>) {
    if !cap.is_empty() {
        if !conn.dead {
            // The buffer limit is lifted (see `on_open`): this takes everything.
            let _ = conn.tls.writer().write_all(cap);
        }
        cap.clear();
        if cap.capacity() > SCRATCH_KEEP {
            *cap = Vec::new();
        }
    }
    while conn.tls.wants_write() {
        match conn.tls.write_tls(io.out_buf()) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
/// A configuration accepted by `ServerConfig`'s builder always makes connections.
#[cold]
fn unreachable_config() -> ! {
    panic!("rustls refused a configuration it built (ServerConnection::new failed twice)")
}
