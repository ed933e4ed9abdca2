//! [`Ws`]: WebSocket on the runtime, and the embedder's side of it, [`WsApp`].
//!
//! This module owns what is per shard (the application, the limits, the counters, one
//! output scratch buffer) and the connection's single protocol timer: idle ping, pong
//! wait, and the wait for the peer's close after ours. Every framing decision lives in
//! `session`; this is glue.
//!
//! Output batching: everything one callback produces (pongs, echoes, a close) goes to
//! the shard's scratch buffer and then to the runtime in one write; at or above the
//! zero-copy threshold the buffer is handed over whole instead of copied.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmaster_runtime::{Close, Event, Handler, Input, Io, TimerKey};

use super::frame::{encode_close, encode_frame, encode_header, OpCode};
use super::session::{code, Failure, Flow, Message, Session, State};

/// The tag of the WebSocket protocol timer. Other tags (left by the HTTP layer before
/// an upgrade) are ignored.
pub const WS_TIMER: u64 = 0x5753_0000_0000_0001;

/// Above this capacity the scratch buffer is given back after a flush.
const SCRATCH_KEEP: usize = 256 * 1024;

/// Bounds and timeouts of the WebSocket protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsLimits {
    /// Largest message (all fragments together), in bytes. Exceeded: close 1009.
    pub max_message: usize,
    /// A connection silent this long is pinged; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// After an idle ping, how long to wait for any frame before closing with 1001.
    pub ping_timeout: Duration,
    /// After our close frame, how long to wait for the peer's before closing the socket.
    pub close_timeout: Duration,
    /// Unsent bytes past which a broadcast is not queued on a connection: that client
    /// reads slower than the others write, and is reset (counted in
    /// [`WsCounters::slow_consumers`]) rather than allowed to hold unbounded memory.
    /// (Echo needs no such bound: the runtime stops reading a connection whose own
    /// output backs up.)
    pub max_backlog: usize,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            // Autobahn's largest cases send 16 MiB messages.
            max_message: 16 * 1024 * 1024,
            idle_timeout: Some(Duration::from_secs(60)),
            ping_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            max_backlog: 16 * 1024 * 1024,
        }
    }
}

/// How often each WebSocket event happened on one shard.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WsCounters {
    /// Connections that reached the WebSocket protocol.
    pub opened: u64,
    /// Handshakes refused (400 or 426).
    pub handshakes_refused: u64,
    /// Messages received whole.
    pub messages_in: u64,
    /// Connections failed for a framing error (close 1002).
    pub protocol_errors: u64,
    /// Connections failed for invalid UTF-8 (close 1007).
    pub invalid_utf8: u64,
    /// Connections failed for a message over the limit (close 1009).
    pub too_big: u64,
    /// Idle pings sent.
    pub idle_pings: u64,
    /// Connections closed because an idle ping got no answer.
    pub idle_closed: u64,
    /// Connections reset because broadcasts backed up past `max_backlog`.
    pub slow_consumers: u64,
}

impl WsCounters {
    /// Every counter with its name, for reports (e.g. the `/stats` route).
    pub fn fields(&self) -> [(&'static str, u64); 9] {
        [
            ("opened", self.opened),
            ("handshakes_refused", self.handshakes_refused),
            ("messages_in", self.messages_in),
            ("protocol_errors", self.protocol_errors),
            ("invalid_utf8", self.invalid_utf8),
            ("too_big", self.too_big),
            ("idle_pings", self.idle_pings),
            ("idle_closed", self.idle_closed),
            ("slow_consumers", self.slow_consumers),
        ]
    }
}

/// A WebSocket application: one value per shard, called on that shard's thread.
pub trait WsApp: 'static {
    /// What the application keeps per connection.
    type Conn: 'static;

    /// Whether to accept an upgrade to this request target (used by `HttpWs`);
    /// refused ones get 404. Default: every target.
    fn accept(&mut self, _target: &str) -> bool {
        true
    }

    /// A connection became a WebSocket connection. May already send.
    fn on_open(&mut self, ws: &mut WsIo<'_, '_>) -> Self::Conn;

    /// A whole message arrived.
    fn on_message(&mut self, conn: &mut Self::Conn, msg: Message<'_>, ws: &mut WsIo<'_, '_>);

    /// A message sent with [`WsIo::broadcast`] (by any connection on any shard) arrived;
    /// called once for every WebSocket connection of this shard.
    fn on_broadcast(
        &mut self,
        _conn: &mut Self::Conn,
        _msg: &ringmaster_runtime::Broadcast,
        _ws: &mut WsIo<'_, '_>,
    ) {
    }

    /// The connection is gone; `code` is the status the peer closed with, if any.
    fn on_close(&mut self, _conn: Self::Conn, _code: Option<u16>) {}
}

/// What a [`WsApp`] can do to its connection: send, close, broadcast.
pub struct WsIo<'w, 'io> {
    io: &'w mut Io<'io>,
    out: &'w mut Vec<u8>,
    /// A close frame went out (by the application or the protocol): send nothing more.
    closed: bool,
}

impl std::fmt::Debug for WsIo<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsIo")
            .field("queued", &self.out.len())
            .field("closed", &self.closed)
            .finish()
    }
}

impl<'w, 'io> WsIo<'w, 'io> {
    fn new(io: &'w mut Io<'io>, out: &'w mut Vec<u8>, closed: bool) -> Self {
        WsIo { io, out, closed }
    }

    /// Sends a text message (one frame).
    pub fn send_text(&mut self, text: &str) {
        self.send(OpCode::Text, text.as_bytes());
    }

    /// Sends a binary message (one frame).
    pub fn send_binary(&mut self, data: &[u8]) {
        self.send(OpCode::Binary, data);
    }

    /// Sends a message of either kind (one frame).
    pub fn send_message(&mut self, msg: Message<'_>) {
        match msg {
            Message::Text(t) => self.send_text(t),
            Message::Binary(b) => self.send_binary(b),
        }
    }

    /// Sends a ping (payload cut to 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) {
        let p = payload.get(..125).unwrap_or(payload);
        self.send(OpCode::Ping, p);
    }

    fn send(&mut self, op: OpCode, payload: &[u8]) {
        if self.closed {
            return;
        }
        if payload.len() >= self.io.zero_copy_threshold() {
            // A large payload leaves as its own owned buffer, after what is queued.
            encode_header(self.out, true, op, payload.len());
            self.flush();
            self.io.send_owned(payload.to_vec());
        } else {
            encode_frame(self.out, op, payload);
        }
    }

    /// Starts the close handshake with `code` and `reason` (cut to fit a control
    /// frame). Nothing can be sent after it; the socket closes once the peer answers.
    pub fn close(&mut self, code: u16, reason: &str) {
        if !self.closed {
            encode_close(self.out, Some(code), reason);
            self.closed = true;
        }
    }

    /// Sends `msg` to every shard; each calls [`WsApp::on_broadcast`] for each of its
    /// WebSocket connections (this one included).
    pub fn broadcast(&mut self, msg: ringmaster_runtime::Broadcast) {
        self.io.broadcast(msg);
    }

    /// Bytes queued for this connection and not yet sent.
    pub fn backlog(&self) -> usize {
        self.io.backlog() + self.out.len()
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.io.peer()
    }

    /// The index of the shard running this connection.
    pub fn shard_id(&self) -> usize {
        self.io.shard_id()
    }

    /// The shard's clock.
    pub fn now(&self) -> Instant {
        self.io.now()
    }

    /// Hands what is queued to the runtime.
    fn flush(&mut self) {
        flush(self.io, self.out);
    }
}

/// Writes `out` to `io` (handing large buffers over whole) and empties it.
fn flush(io: &mut Io<'_>, out: &mut Vec<u8>) {
    if out.is_empty() {
        return;
    }
    if out.len() >= io.zero_copy_threshold() {
        io.send_owned(std::mem::take(out));
    } else {
        io.write(out);
        out.clear();
        if out.capacity() > SCRATCH_KEEP {
            *out = Vec::new();
        }
    }
}

/// Per-connection state of [`Ws`].
pub struct WsConn<C> {
    session: Session,
    app: Option<C>,
    /// Last time a frame (or any byte) arrived.
    last_active: Instant,
    /// When an idle ping went out and no byte has arrived since.
    ping_sent: Option<Instant>,
    /// When our close frame went out.
    close_sent: Option<Instant>,
    timer: Option<(TimerKey, Instant)>,
}

impl<C> std::fmt::Debug for WsConn<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConn")
            .field("state", &self.session.state())
            .field("last_active", &self.last_active)
            .finish_non_exhaustive()
    }
}

impl<C> WsConn<C> {
    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.session.state()
    }
}

/// WebSocket on the runtime: one per shard, wrapping the embedder's [`WsApp`].
///
/// As a [`Handler`] it serves connections that are WebSocket from their first byte;
/// behind an HTTP upgrade use [`super::HttpWs`], which hands upgraded connections here.
#[derive(Debug)]
pub struct Ws<A> {
    app: A,
    limits: WsLimits,
    counters: WsCounters,
    out: Vec<u8>,
}

impl<A: WsApp> Ws<A> {
    /// Serves `app` with these limits.
    pub fn new(app: A, limits: WsLimits) -> Self {
        Ws {
            app,
            limits,
            counters: WsCounters::default(),
            out: Vec::new(),
        }
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The application, mutably.
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The limits in force.
    pub fn limits(&self) -> &WsLimits {
        &self.limits
    }

    /// This shard's WebSocket counters.
    pub fn counters(&self) -> &WsCounters {
        &self.counters
    }

    pub(crate) fn counters_mut(&mut self) -> &mut WsCounters {
        &mut self.counters
    }

    /// Starts the WebSocket protocol on a connection (after a 101 was queued, or at
    /// once for a connection that is WebSocket from the start).
    pub fn open(&mut self, io: &mut Io<'_>) -> WsConn<A::Conn> {
        self.counters.opened += 1;
        let mut conn = WsConn {
            session: Session::new(self.limits.max_message),
            app: None,
            last_active: io.now(),
            ping_sent: None,
            close_sent: None,
            timer: None,
        };
        let mut ws = WsIo::new(io, &mut self.out, false);
        let app_conn = self.app.on_open(&mut ws);
        let closed = ws.closed;
        conn.app = Some(app_conn);
        self.after(&mut conn, closed, io);
        conn
    }

    /// Applies what a callback left: a close by the application, the session's end,
    /// output to flush, the timer to arm.
    fn after(&mut self, conn: &mut WsConn<A::Conn>, app_closed: bool, io: &mut Io<'_>) {
        if app_closed {
            conn.session.close_sent();
        }
        if conn.session.state() == State::CloseSent && conn.close_sent.is_none() {
            conn.close_sent = Some(io.now());
        }
        flush(io, &mut self.out);
        if conn.session.state() == State::Done {
            io.close();
            return;
        }
        self.arm(conn, io);
    }

    /// When the protocol timer should next fire.
    fn deadline(&self, conn: &WsConn<A::Conn>) -> Option<Instant> {
        match conn.session.state() {
            State::Done => None,
            State::CloseSent => conn.close_sent.map(|t| t + self.limits.close_timeout),
            State::Open => match conn.ping_sent {
                Some(t) => Some(t + self.limits.ping_timeout),
                None => self.limits.idle_timeout.map(|d| conn.last_active + d),
            },
        }
    }

    /// Makes sure the protocol timer fires no later than the deadline (lazily: a timer
    /// that fires early finds the deadline moved and sleeps again).
    fn arm(&self, conn: &mut WsConn<A::Conn>, io: &mut Io<'_>) {
        let Some(due) = self.deadline(conn) else {
            return;
        };
        if let Some((key, armed)) = conn.timer {
            if armed <= due {
                return;
            }
            io.cancel_timer(key);
        }
        let key = io.set_timer(due.saturating_duration_since(io.now()), WS_TIMER);
        conn.timer = Some((key, due));
    }

    /// Bytes arrived; returns how many were consumed.
    pub fn data(&mut self, conn: &mut WsConn<A::Conn>, bytes: &[u8], io: &mut Io<'_>) -> usize {
        conn.last_active = io.now();
        conn.ping_sent = None;
        let Ws {
            app, out, counters, ..
        } = self;
        let Some(app_conn) = conn.app.as_mut() else {
            return bytes.len();
        };
        let mut app_closed = false;
        let rep = conn.session.feed(bytes, out, &mut |msg, out| {
            let mut ws = WsIo::new(io, out, false);
            app.on_message(app_conn, msg, &mut ws);
            if ws.closed {
                app_closed = true;
                Flow::CloseSent
            } else {
                Flow::Continue
            }
        });
        counters.messages_in += rep.messages;
        match rep.failure {
            Some(Failure::Protocol) => counters.protocol_errors += 1,
            Some(Failure::Utf8) => counters.invalid_utf8 += 1,
            Some(Failure::TooBig) => counters.too_big += 1,
            None => {}
        }
        self.after(conn, app_closed, io);
        rep.consumed
    }

    /// The protocol timer fired.
    pub fn timer(&mut self, conn: &mut WsConn<A::Conn>, tag: u64, io: &mut Io<'_>) {
        if tag != WS_TIMER {
            return;
        }
        conn.timer = None;
        let now = io.now();
        match self.deadline(conn) {
            Some(due) if now >= due => {}
            _ => return self.arm(conn, io),
        }
        match conn.session.state() {
            State::Open if conn.ping_sent.is_none() => {
                self.counters.idle_pings += 1;
                encode_frame(&mut self.out, OpCode::Ping, b"idle");
                conn.ping_sent = Some(now);
            }
            State::Open => {
                self.counters.idle_closed += 1;
                conn.session.fail(code::GOING_AWAY, "idle", &mut self.out);
            }
            // The peer never answered our close: stop waiting.
            _ => conn.session.fail(code::GOING_AWAY, "", &mut self.out),
        }
        self.after(conn, false, io);
    }

    /// The server is draining: an open connection starts the close handshake with 1001
    /// (going away) and gets until the close timeout or the drain deadline for the
    /// client's answer; one already waiting for that answer is closed now.
    pub fn shutdown(&mut self, conn: &mut WsConn<A::Conn>, io: &mut Io<'_>) {
        if conn.session.state() == State::Open {
            conn.session
                .close(code::GOING_AWAY, "server shutting down", &mut self.out);
        } else {
            conn.session.fail(code::GOING_AWAY, "", &mut self.out);
        }
        self.after(conn, false, io);
    }

    /// The peer shut down its write side: nothing more can arrive, so finish.
    pub fn eof(&mut self, conn: &mut WsConn<A::Conn>, io: &mut Io<'_>) {
        conn.session.fail(code::GOING_AWAY, "", &mut self.out);
        self.after(conn, false, io);
    }

    /// A broadcast reached this connection.
    pub fn message(
        &mut self,
        conn: &mut WsConn<A::Conn>,
        msg: &ringmaster_runtime::Broadcast,
        io: &mut Io<'_>,
    ) {
        if conn.session.state() != State::Open {
            return;
        }
        if io.backlog() > self.limits.max_backlog {
            self.counters.slow_consumers += 1;
            conn.session.fail(code::GOING_AWAY, "", &mut Vec::new());
            io.abort();
            return;
        }
        let Some(app_conn) = conn.app.as_mut() else {
            return;
        };
        let mut ws = WsIo::new(io, &mut self.out, false);
        self.app.on_broadcast(app_conn, msg, &mut ws);
        let closed = ws.closed;
        self.after(conn, closed, io);
    }

    /// The connection is gone.
    pub fn closed(&mut self, conn: WsConn<A::Conn>) {
        let code = conn.session.peer_code();
        if let Some(c) = conn.app {
            self.app.on_close(c, code);
        }
    }
}

impl<A: WsApp> Handler for Ws<A> {
    type Conn = WsConn<A::Conn>;

    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn {
        self.open(io)
    }

    fn on_data(&mut self, conn: &mut Self::Conn, input: &mut Input<'_>, io: &mut Io<'_>) {
        let used = self.data(conn, input.bytes(), io);
        input.consume(used);
    }

    fn on_event(&mut self, conn: &mut Self::Conn, event: Event<'_>, io: &mut Io<'_>) {
        match event {
            Event::Eof => self.eof(conn, io),
            Event::Timer(tag) => self.timer(conn, tag, io),
            Event::Shutdown => self.shutdown(conn, io),
            Event::Broadcast(msg) => self.message(conn, msg, io),
            other => other.default_action(io),
        }
    }

    fn on_close(&mut self, conn: Self::Conn, _why: Close) {
        self.closed(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connection_state_is_small() {
        let size = std::mem::size_of::<WsConn<()>>();
        eprintln!("WsConn: {size} bytes");
        assert!(size <= 192, "WsConn grew to {size} bytes");
    }
}
