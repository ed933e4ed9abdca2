//! The glue between the sans-IO HTTP/1.1 state machine and the runtime: [`Http`]
//! implements the runtime's [`Handler`].
//!
//! This module owns what is per shard (the application, the limits, the counters, the
//! cached `Date`) and the protocol's single timer per
//! connection. It must stay thin: every protocol decision lives in `conn`, so that it
//! can be tested without a socket.
//!
//! Output: responses are encoded straight into the end of the connection's send queue
//! (`Io::out_buf`), with no staging buffer to copy from; everything a callback
//! produces (all the responses to one read of pipelined requests) leaves in one send.
//!
//! Offload: jobs go to the runtime's pool wrapped so that their result names the
//! exchange (see `offload::Routed`); the runtime brings the result back to this connection
//! on this shard and [`Http`] hands it to the state machine, which routes it to the
//! exchange the way it routes application timers.
//!
//! Notifiers and cross-shard calls: the runtime brings a notifier's value (named by the
//! notifier's id) or a call's outcome (a `compose::RoutedCall` naming its exchange) to
//! this connection, and the state machine routes it on to the exchange.
//!
//! Timers: a connection has at most one protocol timer, armed for its nearest deadline
//! (header read or keep-alive idle; on HTTP/2 also the SETTINGS acknowledgement and the
//! flow-control and write stalls). It is not re-armed per request: when it fires it
//! checks the deadline, which may have moved later, and sleeps again if so.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmaster_runtime::{
    CallDone, Called, Close, ConnToken, Counters, Event, Handler, Input, Io, OffloadDone,
    OffloadError, Offloaded, Segment, ShardEvent, ShardIo, TimerKey,
};

use super::app::App;
use super::compose::RoutedCall;
use super::conn::Conn;
use super::encode::{DateCache, DATE_LEN};
use super::limits::{HttpCounters, Limits};
use super::offload::{OffloadJob, Routed};
use super::port::{Port, PortTimer};
use super::timer_tag::split_app_tag;
use super::upstream::{
    tunnel_event, BodyPace, Fetch, Pools, Reply, TunnelBytes, Upstream, UpstreamError,
    UpstreamRequest, UpstreamStats,
};
use crate::http2::conn::H2Conn;
use crate::http2::preface::{check_preface, PrefaceCheck};
use crate::http2::H2Config;

/// The timer tag of the protocol's own timer (application tags have the top bit set).
const PROTO_TIMER: u64 = 0;

/// The shard timer tag of the upstream pools' health checks (an application's shard
/// timers must not use it).
pub const PROBE_TIMER: u64 = 0x5550_5052_4f42_4500;

/// HTTP/1.1 on the runtime: one per shard, wrapping the embedder's [`App`].
///
/// ```no_run
/// use ringmaster_protocols::http1::{App, Exchange, Http, Limits, Request, Response};
/// use ringmaster_runtime::Server;
///
/// struct Hello;
/// impl App for Hello {
///     type Task = ();
///     fn on_request(&mut self, _req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<()> {
///         ex.respond(Response::text(200, "Hello, World!"));
///         None
///     }
/// }
///
/// let server = Server::builder().listen("127.0.0.1:8080".parse().unwrap()).build().unwrap();
/// server.serve(|_shard| Http::new(Hello, Limits::default())).unwrap();
/// ```
#[derive(Debug)]
pub struct Http<A: App> {
    app: A,
    limits: Limits,
    counters: HttpCounters,
    date: DateCache,
    /// This shard's upstream pools and their connections.
    pools: Pools,
    /// HTTP/2 with prior knowledge on connections that start with its preface (off:
    /// HTTP/1.1 only).
    h2: Option<H2Config>,
}

/// Per-connection state of [`Http`] (about a hundred bytes; nothing allocated while
/// idle): a client's connection, or one of the shard's upstream connections.
pub struct HttpConn<T>(Role<T>);

/// Which side of HTTP a connection of [`Http`] is on.
enum Role<T> {
    /// Accepted: the server role.
    Server(ServerConn<T>),
    /// Opened by the upstream pool: the client role; the index of its state there.
    Upstream(usize),
    /// A client's connection after its request switched protocols (101) through the
    /// upstream pool: bytes pass raw to and from upstream connection `peer`.
    Tunnel {
        peer: ConnToken,
        input_done: bool,
        output_done: bool,
        /// The upstream connection speaks TLS: what this side reads is posted to it
        /// (its session encrypts it) instead of written below it.
        sealed: bool,
    },
    /// Accepted, and started with the HTTP/2 preface: the server role over HTTP/2
    /// (boxed, so that an idle HTTP/1.1 connection stays small).
    H2(Box<H2Server<T>>),
}

/// A client's HTTP/2 connection.
struct H2Server<T> {
    core: H2Conn<T>,
    /// The protocol timer, if armed, and when it is due.
    timer: Option<(TimerKey, Instant)>,
}

/// A client's connection.
struct ServerConn<T> {
    core: Conn<T>,
    /// The protocol timer, if armed, and when it is due.
    timer: Option<(TimerKey, Instant)>,
}

impl<T> std::fmt::Debug for HttpConn<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Role::Server(c) => f
                .debug_struct("HttpConn")
                .field("timer", &c.timer)
                .finish_non_exhaustive(),
            Role::Upstream(l) => f.debug_tuple("HttpConn::Upstream").field(l).finish(),
            Role::Tunnel { peer, .. } => f.debug_tuple("HttpConn::Tunnel").field(peer).finish(),
            Role::H2(c) => f
                .debug_struct("HttpConn::H2")
                .field("timer", &c.timer)
                .finish_non_exhaustive(),
        }
    }
}

impl<A: App> Http<A> {
    /// Serves `app` with these limits, over HTTP/1.1 and, on a connection that starts
    /// with the HTTP/2 preface, HTTP/2 (h2c with prior knowledge) with the default
    /// [`H2Config`].
    pub fn new(app: A, limits: Limits) -> Self {
        Http {
            app,
            limits,
            counters: HttpCounters::default(),
            date: DateCache::new(),
            pools: Pools::default(),
            h2: Some(H2Config::default()),
        }
    }

    /// Serves HTTP/2 with `config` (`None`: HTTP/1.1 only; the preface then gets the
    /// HTTP/1.1 answer to a request it cannot parse).
    pub fn with_h2(mut self, config: Option<H2Config>) -> Self {
        self.h2 = config;
        self
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
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// This shard's HTTP counters.
    pub fn counters(&self) -> &HttpCounters {
        &self.counters
    }

    /// The application and the counters at once (a cross-shard call's closure gets both).
    pub(crate) fn app_and_counters(&mut self) -> (&mut A, &HttpCounters) {
        (&mut self.app, &self.counters)
    }

    /// Makes this shard's pool for `up` at once, so that its health checks
    /// ([`UpstreamBuilder::health_check`](super::upstream::UpstreamBuilder::health_check))
    /// run from the start rather than from its first request.
    pub fn register_upstream(&mut self, up: &Upstream) -> &mut Self {
        self.pools.register(up);
        self
    }

    /// This shard's counters for each upstream its application called, by address.
    pub fn upstream_stats(&self) -> impl Iterator<Item = (SocketAddr, UpstreamStats)> + '_ {
        self.pools.all_stats()
    }
}

/// [`Port`] over the runtime's [`Io`]: responses are encoded straight into the
/// connection's send queue.
struct IoPort<'p, 'io> {
    io: &'p mut Io<'io>,
    date: &'p DateCache,
    counters: &'p mut HttpCounters,
    pools: &'p mut Pools,
}

impl Port for IoPort<'_, '_> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self.io.out_buf()
    }
    fn push(&mut self, segment: Segment) {
        self.io.push(segment);
    }
    fn date(&self) -> &[u8; DATE_LEN] {
        self.date.value()
    }
    fn set_timer(&mut self, after: Duration, tag: u64) -> PortTimer {
        PortTimer::Runtime(self.io.set_timer(after, tag))
    }
    fn cancel_timer(&mut self, key: PortTimer) -> bool {
        match key {
            PortTimer::Runtime(key) => self.io.cancel_timer(key),
            PortTimer::Local(_) => false,
        }
    }
    fn want_writable(&mut self) {
        self.io.want_writable();
    }
    fn backlog(&self) -> usize {
        self.io.backlog()
    }
    fn now(&self) -> Instant {
        self.io.now()
    }
    fn peer(&self) -> Option<SocketAddr> {
        Some(self.io.peer())
    }
    fn shard_id(&self) -> usize {
        self.io.shard_id()
    }
    fn close(&mut self) {
        self.io.close();
    }
    fn close_without_linger(&mut self) {
        self.io.close_without_linger();
    }
    fn abort(&mut self) {
        self.io.abort();
    }
    fn pause_reading(&mut self) {
        self.io.pause_reading();
    }
    fn resume_reading(&mut self) {
        self.io.resume_reading();
    }
    fn hold_reading(&mut self) {
        self.io.hold_reading();
    }
    fn counters(&mut self) -> &mut HttpCounters {
        self.counters
    }
    fn runtime_counters(&self) -> Option<&Counters> {
        Some(self.io.counters())
    }
    fn offload(&mut self, job: OffloadJob) -> Result<(), OffloadError> {
        self.io.offload(job).map(|_| ())
    }
    fn with_io(&mut self, f: &mut dyn FnMut(&mut Io<'_>)) -> bool {
        f(self.io);
        true
    }
    fn fetch(
        &mut self,
        up: &Upstream,
        req: &UpstreamRequest<'_>,
        seq: u32,
    ) -> Result<Fetch, UpstreamError> {
        let conn = self.io.token();
        let draining = self.io.is_draining();
        self.pools.fetch(up, req, conn, seq, draining, self.io)
    }
    fn fetch_body(
        &mut self,
        fetch: Fetch,
        piece: &[u8],
        last: bool,
        trailers: &[(&str, &str)],
    ) -> Result<bool, UpstreamError> {
        let conn = self.io.token();
        self.pools.body(conn, fetch, piece, last, trailers, self.io)
    }
    fn hold_upstream(&mut self, up: ConnToken) {
        let server = self.io.token();
        self.pools.hold(server, up, self.io);
    }
    fn upstream_stats(&self, up: &Upstream) -> Option<UpstreamStats> {
        self.pools.stats(up)
    }
    fn upstream_down(&self, up: &Upstream) -> bool {
        self.pools.is_down(up)
    }
}

impl<A: App> Http<A> {
    /// Runs `f` on the connection's state machine with a port over `io`, then sends
    /// what it produced and re-arms the protocol timer if the deadline moved earlier.
    fn with_port(
        &mut self,
        conn: &mut ServerConn<A::Task>,
        io: &mut Io<'_>,
        f: impl FnOnce(&mut Conn<A::Task>, &mut A, &Limits, &mut IoPort<'_, '_>),
    ) {
        self.date.refresh(io.now());
        let mut port = IoPort {
            io,
            date: &self.date,
            counters: &mut self.counters,
            pools: &mut self.pools,
        };
        f(&mut conn.core, &mut self.app, &self.limits, &mut port);
        arm(conn, &self.limits, io);
    }
}

/// Makes sure a protocol timer fires no later than the connection's deadline.
fn arm<T>(conn: &mut ServerConn<T>, limits: &Limits, io: &mut Io<'_>) {
    let due = conn.core.deadline(limits).map(|(due, _)| due);
    arm_for(&mut conn.timer, due, io);
}

/// Makes sure an HTTP/2 connection's protocol timer fires no later than its deadline.
fn arm_h2<T>(conn: &mut H2Server<T>, io: &mut Io<'_>) {
    arm_for(&mut conn.timer, conn.core.deadline(), io);
}

/// Arms `timer` for `due` unless it already fires no later; nothing to time (busy or
/// closing) leaves it be: an armed timer then finds nothing to do.
fn arm_for(timer: &mut Option<(TimerKey, Instant)>, due: Option<Instant>, io: &mut Io<'_>) {
    let Some(due) = due else {
        return;
    };
    if let Some((key, armed)) = *timer {
        if armed <= due {
            return;
        }
        io.cancel_timer(key);
    }
    let key = io.set_timer(due.saturating_duration_since(io.now()), PROTO_TIMER);
    *timer = Some((key, due));
}

/// The HTTP/2 connection events, each run on its state machine.
impl<A: App> Http<A> {
    /// Runs `f` on an HTTP/2 connection's state machine with a port over `io`, then
    /// re-arms its protocol timer.
    fn with_h2_port(
        &mut self,
        conn: &mut H2Server<A::Task>,
        io: &mut Io<'_>,
        f: impl FnOnce(&mut H2Conn<A::Task>, &mut A, &mut IoPort<'_, '_>),
    ) {
        self.with_h2_port_as(conn, io, false, f);
    }

    /// [`Self::with_h2_port`]; `writable`: this is the connection's writable event, so
    /// its output is below the runtime's low-water mark already.
    fn with_h2_port_as(
        &mut self,
        conn: &mut H2Server<A::Task>,
        io: &mut Io<'_>,
        writable: bool,
        f: impl FnOnce(&mut H2Conn<A::Task>, &mut A, &mut IoPort<'_, '_>),
    ) {
        self.date.refresh(io.now());
        let mut port = IoPort {
            io,
            date: &self.date,
            counters: &mut self.counters,
            pools: &mut self.pools,
        };
        f(&mut conn.core, &mut self.app, &mut port);
        if self.pools.holds_any() {
            // On its writable event the output has drained as far as the runtime tells
            // of: what is left to decide on is the streams' queues.
            let backlog = if writable { 0 } else { io.backlog() };
            if conn.core.upstreams_may_resume(backlog) {
                self.pools.release(io.token(), io);
            } else if !writable && self.pools.holds_for(io.token()) {
                // Only this connection's output draining releases them, and its streams
                // may have nothing left to send that would ask to hear of it (the rest
                // of their responses is behind the hold): ask here, or nothing wakes
                // the connection until its next timer. Not from the writable event
                // itself, which would ask again at once, every turn.
                io.want_writable();
            }
        }
        arm_h2(conn, io);
    }

    fn h2_event(&mut self, conn: &mut H2Server<A::Task>, event: Event<'_>, io: &mut Io<'_>) {
        match event {
            Event::Eof => self.with_h2_port(conn, io, |core, _app, port| core.peer_closed(port)),
            // Held upstreams resume in `with_h2_port`, once the streams' queues allow.
            Event::Writable => {
                self.with_h2_port_as(conn, io, true, |core, app, port| core.writable(app, port));
            }
            Event::Timer(tag) => match split_app_tag(tag) {
                Some((seq, app_tag)) => self.with_h2_port(conn, io, |core, app, port| {
                    core.app_timer(app, seq, app_tag, port);
                }),
                None => {
                    conn.timer = None;
                    let now = io.now();
                    self.with_h2_port(conn, io, |core, app, port| {
                        if core.deadline().is_some_and(|due| now >= due) {
                            core.expire(app, port);
                        }
                    });
                }
            },
            Event::Offloaded(done) => {
                let Ok(routed) = Offloaded::<Routed>::new().result(done) else {
                    self.counters.app_errors += 1;
                    io.abort();
                    return;
                };
                self.with_h2_port(conn, io, |core, app, port| {
                    core.offload_done(app, routed, port);
                });
            }
            Event::Notified(n) => {
                self.with_h2_port(conn, io, |core, app, port| core.notified(app, n, port));
            }
            Event::NotifierDropped(id) => self.with_h2_port(conn, io, |core, app, port| {
                core.notifier_dropped(app, id, port);
            }),
            Event::CallDone(done) => match Called::<RoutedCall>::new().result(done) {
                Ok(routed) => self.with_h2_port(conn, io, |core, app, port| {
                    core.call_done(app, routed, port);
                }),
                Err(e) => self.with_h2_port(conn, io, |core, app, port| {
                    core.call_failed(app, e, port);
                }),
            },
            Event::Posted(p) if p.is::<Reply>() => {
                let from = p.from();
                if let Ok(reply) = p.take::<Reply>() {
                    self.with_h2_port(conn, io, |core, app, port| {
                        core.upstream_reply(app, reply, from, port);
                    });
                }
            }
            Event::Posted(p) if p.is::<BodyPace>() => {
                if let Ok(pace) = p.take::<BodyPace>() {
                    self.with_h2_port(conn, io, |core, _app, port| {
                        core.body_pace(pace.seq, pace.hold, port);
                    });
                }
            }
            Event::Shutdown => self.with_h2_port(conn, io, |core, _app, port| core.drain(port)),
            _ => {}
        }
    }

    /// Input on an HTTP/2 connection.
    fn h2_data(&mut self, conn: &mut H2Server<A::Task>, input: &mut Input<'_>, io: &mut Io<'_>) {
        let bytes = input.bytes();
        let mut used = 0;
        self.with_h2_port(conn, io, |core, app, port| {
            used = core.feed(app, bytes, port);
        });
        input.consume(used);
    }

    /// Whether a fresh connection's first bytes make it HTTP/2: `Some(true)` for the
    /// whole preface, `Some(false)` for bytes that may still become it, `None` for
    /// HTTP/1.1 (or HTTP/2 turned off).
    fn h2_preface(&self, conn: &ServerConn<A::Task>, bytes: &[u8]) -> Option<bool> {
        if self.h2.is_none() || !conn.core.is_fresh() {
            return None;
        }
        match check_preface(bytes) {
            PrefaceCheck::Complete => Some(true),
            PrefaceCheck::Partial => Some(false),
            PrefaceCheck::Mismatch => None,
        }
    }
}

/// The connection events, each run on the state machine.
impl<A: App> Http<A> {
    fn eof(&mut self, conn: &mut ServerConn<A::Task>, io: &mut Io<'_>) {
        self.with_port(conn, io, |core, _app, limits, port| {
            core.peer_closed(limits, port);
        });
    }

    fn writable(&mut self, conn: &mut ServerConn<A::Task>, io: &mut Io<'_>) {
        self.pools.release(io.token(), io);
        self.with_port(conn, io, |core, app, limits, port| {
            core.writable(app, limits, port);
        });
    }

    fn timer(&mut self, conn: &mut ServerConn<A::Task>, tag: u64, io: &mut Io<'_>) {
        if let Some((seq, app_tag)) = split_app_tag(tag) {
            self.with_port(conn, io, |core, app, limits, port| {
                core.app_timer(app, seq, app_tag, limits, port);
            });
            return;
        }
        conn.timer = None;
        let now = io.now();
        self.with_port(conn, io, |core, _app, limits, port| {
            if let Some((due, kind)) = core.deadline(limits) {
                if now >= due {
                    core.expire(kind, limits, port);
                }
            }
        });
    }

    fn offloaded(&mut self, conn: &mut ServerConn<A::Task>, done: OffloadDone, io: &mut Io<'_>) {
        // Every job this protocol submits is wrapped by `app::wrap_job`, which catches
        // panics and returns a `Routed`; anything else cannot name its exchange.
        let Ok(routed) = Offloaded::<Routed>::new().result(done) else {
            // Unreachable in practice. The exchange waiting for it would never finish, so
            // do not leave the client hanging: reset the connection.
            self.counters.app_errors += 1;
            io.abort();
            return;
        };
        self.with_port(conn, io, |core, app, limits, port| {
            core.offload_done(app, routed, limits, port);
        });
    }

    fn call_done(&mut self, conn: &mut ServerConn<A::Task>, done: CallDone, io: &mut Io<'_>) {
        // Every call this protocol makes returns a `RoutedCall` naming its exchange; only
        // a call refused after it was queued (its target stopped) comes back without one.
        match Called::<RoutedCall>::new().result(done) {
            Ok(routed) => self.with_port(conn, io, |core, app, limits, port| {
                core.call_done(app, routed, limits, port);
            }),
            Err(e) => self.with_port(conn, io, |core, app, limits, port| {
                core.call_failed(app, e, limits, port);
            }),
        }
    }

    fn shutdown(&mut self, conn: &mut ServerConn<A::Task>, io: &mut Io<'_>) {
        self.with_port(conn, io, |core, _app, limits, port| {
            core.drain(limits, port);
        });
    }
}

impl<A: App> Http<A> {
    /// The server role's connection events. Returns the upstream connection to tunnel
    /// to (the tunnel's first bytes, and whether that connection speaks TLS) when a
    /// request switched protocols.
    fn server_event(
        &mut self,
        conn: &mut ServerConn<A::Task>,
        event: Event<'_>,
        io: &mut Io<'_>,
    ) -> Option<(ConnToken, Vec<u8>, bool)> {
        match event {
            Event::Eof => self.eof(conn, io),
            Event::Writable => self.writable(conn, io),
            Event::Timer(tag) => self.timer(conn, tag, io),
            Event::Offloaded(done) => self.offloaded(conn, done, io),
            Event::Notified(n) => self.with_port(conn, io, |core, app, limits, port| {
                core.notified(app, n, limits, port);
            }),
            Event::NotifierDropped(id) => self.with_port(conn, io, |core, app, limits, port| {
                core.notifier_dropped(app, id, limits, port);
            }),
            Event::CallDone(done) => self.call_done(conn, done, io),
            Event::Posted(p) if p.is::<Reply>() => {
                let from = p.from();
                let Ok(reply) = p.take::<Reply>() else {
                    return None;
                };
                let tunnel = reply.upgraded.then(|| reply.tunnel_bytes().to_vec());
                let sealed = reply.sealed;
                self.with_port(conn, io, |core, app, limits, port| {
                    core.upstream_reply(app, reply, from, limits, port);
                });
                if let (Some(bytes), Some(up)) = (tunnel, from) {
                    if conn.core.is_upgraded() {
                        return Some((up, bytes, sealed));
                    }
                    // The application did not switch: the upstream's side goes.
                    io.close_conn(up);
                }
            }
            Event::Posted(p) if p.is::<BodyPace>() => {
                // One body at a time on HTTP/1.1: holding it is holding the connection.
                if let Ok(pace) = p.take::<BodyPace>() {
                    if pace.hold {
                        io.hold_reading();
                    } else {
                        io.resume_reading();
                    }
                }
            }
            Event::Shutdown => self.shutdown(conn, io),
            // Broadcasts are for protocols with connections that listen (WebSocket); a
            // gone upstream connection is its own business (its end reaches the pool).
            _ => {}
        }
        None
    }
}

impl<A: App> Handler for Http<A> {
    type Conn = HttpConn<A::Task>;

    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn {
        let mut conn = ServerConn {
            core: Conn::new(io.now()),
            timer: None,
        };
        arm(&mut conn, &self.limits, io);
        HttpConn(Role::Server(conn))
    }

    fn on_connected(&mut self, tag: u64, _peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn {
        match self.pools.connected(tag, io) {
            Some(l) => HttpConn(Role::Upstream(l)),
            None => {
                // Not the pool's: no other outbound connection speaks this protocol.
                io.abort();
                HttpConn(Role::Upstream(usize::MAX))
            }
        }
    }

    fn on_data(&mut self, conn: &mut Self::Conn, input: &mut Input<'_>, io: &mut Io<'_>) {
        let server = match &mut conn.0 {
            Role::Server(c) => c,
            Role::Upstream(l) => return self.pools.link_data(*l, input, io),
            Role::Tunnel { peer, sealed, .. } => {
                if *sealed {
                    io.post(*peer, TunnelBytes(input.bytes().to_vec()));
                } else {
                    io.write_to(*peer, input.bytes());
                }
                input.consume_all();
                return;
            }
            Role::H2(c) => return self.h2_data(c, input, io),
        };
        let bytes = input.bytes();
        match self.h2_preface(server, bytes) {
            None => {}
            // Not enough bytes to tell yet: shown again with more.
            Some(false) => return,
            Some(true) => {
                let Some(cfg) = &self.h2 else { return };
                let mut h2 = Box::new(H2Server {
                    core: H2Conn::new(cfg, &self.limits, io.now()),
                    timer: server.timer.take(),
                });
                self.h2_data(&mut h2, input, io);
                conn.0 = Role::H2(h2);
                return;
            }
        }
        let conn = server;
        let mut used = 0;
        self.with_port(conn, io, |core, app, limits, port| {
            used = core.feed(app, bytes, limits, port);
        });
        input.consume(used);
    }

    fn on_event(&mut self, conn: &mut Self::Conn, event: Event<'_>, io: &mut Io<'_>) {
        let switch = match &mut conn.0 {
            Role::Server(c) => self.server_event(c, event, io),
            Role::Upstream(l) => return self.pools.link_event(*l, event, io),
            Role::H2(c) => return self.h2_event(c, event, io),
            Role::Tunnel {
                peer,
                input_done,
                output_done,
                ..
            } => return tunnel_event(*peer, input_done, output_done, event, io),
        };
        if let Some((peer, first, sealed)) = switch {
            let old = std::mem::replace(
                &mut conn.0,
                Role::Tunnel {
                    peer,
                    input_done: false,
                    output_done: false,
                    sealed,
                },
            );
            if let Role::Server(c) = old {
                if let Some((key, _)) = c.timer {
                    io.cancel_timer(key);
                }
                for task in c.core.into_tasks() {
                    self.app.on_cancel(task);
                }
            }
            io.write(&first);
            // Input the client sent after its request is the new protocol's.
            io.resume_reading();
        }
    }

    fn on_close(&mut self, conn: Self::Conn, _why: Close) {
        match conn.0 {
            Role::Server(c) => {
                for task in c.core.into_tasks() {
                    self.app.on_cancel(task);
                }
            }
            Role::H2(c) => {
                for task in c.core.into_tasks() {
                    self.app.on_cancel(task);
                }
            }
            Role::Upstream(_) | Role::Tunnel { .. } => {}
        }
    }

    fn on_closed(&mut self, conn: Self::Conn, why: Close, shard: &mut ShardIo<'_>) {
        match conn.0 {
            Role::Upstream(l) => self.pools.link_closed(l, why, shard),
            Role::Tunnel {
                peer,
                input_done,
                output_done,
                ..
            } => {
                if !(input_done && output_done) {
                    shard.close_conn(peer);
                }
            }
            Role::Server(c) => {
                // Upstream responses still streaming to this connection are wanted by no
                // one: their connections cannot be reused before they are read whole.
                for up in c.core.upstream_links() {
                    shard.close_conn(up);
                }
                self.on_close(HttpConn(Role::Server(c)), why);
            }
            Role::H2(c) => {
                for up in c.core.upstream_links() {
                    shard.close_conn(up);
                }
                self.on_close(HttpConn(Role::H2(c)), why);
            }
        }
    }

    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        match &event {
            ShardEvent::ConnectFailed { tag, error, .. }
                if self.pools.connect_failed(*tag, error, shard) =>
            {
                return;
            }
            ShardEvent::Start => {
                if let Some(every) = self.pools.probe_interval() {
                    self.pools.probe_all(shard);
                    shard.set_timer(every, PROBE_TIMER);
                }
            }
            ShardEvent::Timer(PROBE_TIMER) => {
                if let Some(every) = self.pools.probe_interval() {
                    if !shard.is_draining() {
                        self.pools.probe_all(shard);
                        shard.set_timer(every, PROBE_TIMER);
                    }
                }
                return;
            }
            _ => {}
        }
        self.app.on_shard(event, shard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connection_state_is_small() {
        // Per-connection memory matters at 100k connections: keep the protocol's share
        // well under the 1 KiB budget for a whole idle keep-alive connection.
        let size = std::mem::size_of::<HttpConn<Box<u64>>>();
        eprintln!("HttpConn: {size} bytes");
        assert!(size <= 160, "HttpConn grew to {size} bytes");
    }
}
