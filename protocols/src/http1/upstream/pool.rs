//! The pools of one shard: for each upstream, its idle connections (reused most recent
//! first), the requests waiting for a connection (bounded), and the connections being
//! opened.
//!
//! This part owns which connection serves which request. Invariants:
//! - the idle list holds only open, reusable connections with nothing in flight: one
//!   the upstream closed while idle is taken off it as soon as its end is seen, never
//!   handed out;
//! - a waiting request is served by the first connection that becomes free or opens;
//!   a connect is started only while fewer are under way than requests wait, and
//!   never past `max_conns`;
//! - a failed connect fails one waiting request (the oldest), so every request hears
//!   back exactly once; every path to "done" goes through `finish`.
//!
//! The pool is reached from a server connection's callback (a new request), from an
//! upstream connection's callback (it opened, answered, failed) and from the shard (a
//! connect failed, a connection closed); [`Ops`] is what each of those can do.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmaster_runtime::{ConnToken, Io, ShardIo, TimerKey};
use rustls::ClientConnection;
use slab::Slab;

use super::reply::Reply;
use super::spec::Spec;
use super::{Fetch, RequestFields, Upstream, UpstreamError, UpstreamRequest, UpstreamStats};
use crate::http1::client::{self, ClientCodec, ClientError, Outgoing, RequestHead, Sent};
use crate::http1::head::BodyKind;

/// The connect tags of upstream connections: this value in the high 32 bits, the
/// connection's index in the low 32. An application's own connects must not use it.
pub(crate) const UPSTREAM_TAG: u64 = 0x5550_5354 << 32;

/// Marks a dispatch: the upstream connection this is posted to has a request assigned
/// and sends it from its own callback (so that its timer and its TLS are its own).
pub(crate) struct Dispatch;

/// Posted between the two sides of a tunnel (after a 101): the sender's input ended,
/// so the receiver shuts its output (the half-close passed on).
pub(crate) struct TunnelEof;

/// Posted to a server connection: the streamed request body of its exchange `seq` is
/// to be held (`hold`: the upstream connection carrying it, or the request waiting for
/// one, has taken all it may for now) or taken again. HTTP/1.1 holds the connection's
/// reading; HTTP/2 holds only that stream's flow-control credit, so the connection's
/// other streams go on.
pub(crate) struct BodyPace {
    pub(crate) seq: u32,
    pub(crate) hold: bool,
}

/// Bytes for the other side of a tunnel to write through its own callback, so that
/// TLS on that side encrypts them: from the upstream side to the client's (a TLS front),
/// and from the client's side to an upstream spoken to over TLS (its session).
pub(crate) struct TunnelBytes(pub(crate) Vec<u8>);

/// What the pool's callers can do on the shard, from whichever callback they are in.
pub(crate) trait Ops {
    fn post_reply(&mut self, to: ConnToken, reply: Reply);
    fn post_dispatch(&mut self, to: ConnToken);
    fn connect(&mut self, addr: SocketAddr, source: Option<IpAddr>, tag: u64, timeout: Duration);
    fn now(&self) -> Instant;
}

macro_rules! ops_for {
    ($t:ty) => {
        impl Ops for $t {
            fn post_reply(&mut self, to: ConnToken, reply: Reply) {
                self.post(to, reply);
            }
            fn post_dispatch(&mut self, to: ConnToken) {
                self.post(to, Dispatch);
            }
            fn connect(
                &mut self,
                addr: SocketAddr,
                source: Option<IpAddr>,
                tag: u64,
                timeout: Duration,
            ) {
                match source {
                    Some(ip) => self.connect_from(addr, ip, tag, timeout),
                    None => self.connect_timeout(addr, tag, timeout),
                }
            }
            fn now(&self) -> Instant {
                <$t>::now(self)
            }
        }
    };
}
ops_for!(Io<'_>);
ops_for!(ShardIo<'_>);

/// Where a response goes: exchange `seq` of server connection `conn`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub(crate) conn: ConnToken,
    pub(crate) seq: u32,
    pub(crate) fetch: Fetch,
    /// The pool's own health check: its outcome is the pool's, not posted anywhere.
    pub(crate) probe: bool,
}

/// A request encoded whole, kept until its response starts so it can be sent again.
pub(crate) struct Job {
    pub(crate) route: Route,
    pub(crate) bytes: Vec<u8>,
    pub(crate) sent: Sent,
    pub(crate) idempotent: bool,
    /// Already sent once and sent again: never a third time.
    pub(crate) retried: bool,
    /// Sent on a connection that had carried a request before.
    pub(crate) reused: bool,
    /// A body that follows in pieces (`UpstreamRequest::body_stream`).
    pub(crate) body: Option<Box<BodyOut>>,
}

/// A request body streamed to the upstream as the client sends it.
pub(crate) struct BodyOut {
    /// Its framing state (length owed, or chunked).
    pub(crate) out: Outgoing,
    /// Framed bytes not written yet (the request still waits for a connection).
    pub(crate) pending: Vec<u8>,
    /// The last piece came.
    pub(crate) finished: bool,
    /// The client's connection is held (its reading paused) until the upstream side
    /// catches up.
    pub(crate) held: bool,
    /// Bytes posted to the upstream connection it has not written yet.
    pub(crate) posted: usize,
}

/// More of a streamed request body, for the upstream connection that carries it.
pub(crate) struct BodyMore {
    pub(crate) bytes: Vec<u8>,
    pub(crate) last: bool,
}

/// Framed body bytes a request waiting for a connection may hold before its client's
/// connection is paused (and a connection's backlog past which the same happens).
pub(crate) const BODY_HOLD: usize = 256 * 1024;

/// Where an upstream connection stands.
pub(crate) enum LinkState {
    /// Connect under way.
    Connecting,
    /// In the idle list.
    Idle,
    /// A request is assigned (a [`Dispatch`] is posted) but not sent yet.
    Assigned(Job),
    /// A request is sent; its response is being read (`head` once its head came).
    Busy { job: Job, head: bool },
    /// Switched protocols (101): bytes pass to and from server connection `peer` (raw,
    /// or through the connection's TLS session); no longer counted in the pool.
    Tunnel {
        peer: ConnToken,
        input_done: bool,
        output_done: bool,
    },
    /// Failed or finished for good; closing.
    Dead,
}

/// One upstream connection.
pub(crate) struct Link {
    pub(crate) pool: usize,
    pub(crate) token: Option<ConnToken>,
    pub(crate) codec: ClientCodec,
    pub(crate) state: LinkState,
    /// It has carried a request (the next one is a reuse).
    pub(crate) used: bool,
    pub(crate) started: Instant,
    /// The connection's one armed timer, and about when it fires (by the turn's clock,
    /// so no later than that).
    pub(crate) timer: Option<(TimerKey, Instant)>,
    /// When the wait the connection's state bounds runs out (a response head awaited,
    /// or an idle connection kept): checked when the timer fires, which may be sooner.
    pub(crate) deadline: Option<Instant>,
    /// Bytes arrived for the request in flight (so it is not sent again).
    pub(crate) got_bytes: bool,
    /// Bytes the codec left unconsumed (they decide how an end of stream reads).
    pub(crate) leftover: bool,
    pub(crate) tls: Option<Box<ClientConnection>>,
    /// Decrypted bytes not consumed yet (TLS only).
    pub(crate) plain: Vec<u8>,
}

/// One upstream's pool on this shard.
pub(crate) struct Pool {
    pub(crate) spec: Arc<Spec>,
    pub(crate) idle: Vec<usize>,
    pub(crate) open: usize,
    pub(crate) connecting: usize,
    pub(crate) queue: VecDeque<Job>,
    pub(crate) stats: UpstreamStats,
    /// The next of the upstream's source addresses to connect from.
    pub(crate) next_source: usize,
    /// Active health: what the last checks said.
    pub(crate) health: Health,
}

/// What an upstream's active health checks found.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// The last check failed (and none has passed since).
    pub(crate) down: bool,
    /// A check is under way.
    pub(crate) in_flight: bool,
    /// The status of the check under way, once its head came.
    pub(crate) status: Option<u16>,
}

/// Every pool of one shard, and their connections.
#[derive(Default)]
pub(crate) struct Pools {
    pub(crate) pools: Vec<Pool>,
    pub(crate) links: Slab<Link>,
    next_fetch: u32,
    /// Upstream connections whose reading is paused while a server connection's output
    /// drains: (server connection, upstream connection).
    pub(crate) paused: Vec<(ConnToken, ConnToken)>,
    /// Each connected upstream connection's link, by its token.
    pub(crate) link_of: HashMap<ConnToken, usize>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("upstreams", &self.pools.len())
            .field("connections", &self.links.len())
            .finish_non_exhaustive()
    }
}

impl Pools {
    /// Starts a request for exchange `seq` of server connection `conn`.
    pub(crate) fn fetch(
        &mut self,
        up: &Upstream,
        req: &UpstreamRequest<'_>,
        conn: ConnToken,
        seq: u32,
        draining: bool,
        ops: &mut dyn Ops,
    ) -> Result<Fetch, UpstreamError> {
        let p = self.pool_for(up);
        if draining {
            return Err(UpstreamError::ShuttingDown);
        }
        let pool = &mut self.pools[p];
        if pool.idle.is_empty()
            && pool.open >= pool.spec.max_conns
            && pool.queue.len() >= pool.spec.max_queued
        {
            pool.stats.queue_full += 1;
            return Err(UpstreamError::QueueFull);
        }
        let job = prepare(&pool.spec, req, conn, seq, Fetch(self.next_fetch))?;
        self.next_fetch = self.next_fetch.wrapping_add(1);
        let fetch = job.route.fetch;
        self.pools[p].queue.push_back(job);
        self.pump(p, ops);
        Ok(fetch)
    }

    /// Makes `up`'s pool now rather than on its first request (so that its health
    /// checks run from the start).
    pub(crate) fn register(&mut self, up: &Upstream) {
        self.pool_for(up);
    }

    /// Whether `up`'s last health check failed.
    pub(crate) fn is_down(&self, up: &Upstream) -> bool {
        self.pools
            .iter()
            .find(|p| p.spec.id == up.spec().id)
            .is_some_and(|p| p.health.down)
    }

    /// The shortest health-check interval of the pools, if any checks.
    pub(crate) fn probe_interval(&self) -> Option<Duration> {
        self.pools
            .iter()
            .filter_map(|p| p.spec.health_check.as_ref().map(|(_, every)| *every))
            .min()
    }

    /// Starts a health check on every pool that has them and none under way: `GET
    /// path` over the pool's connections, like any request (so a check also keeps a
    /// pooled connection warm).
    pub(crate) fn probe_all(&mut self, ops: &mut dyn Ops) {
        for p in 0..self.pools.len() {
            let pool = &mut self.pools[p];
            let Some((path, _)) = pool.spec.health_check.clone() else {
                continue;
            };
            if pool.health.in_flight {
                continue;
            }
            let req = UpstreamRequest::get(&path);
            let Ok(mut job) = prepare(&pool.spec, &req, PROBE_CONN, 0, Fetch(u32::MAX)) else {
                continue;
            };
            job.route.probe = true;
            pool.health.in_flight = true;
            pool.health.status = None;
            pool.queue.push_back(job);
            self.pump(p, ops);
        }
    }

    /// A health check's reply: the upstream is up if it answered 2xx or 3xx in full.
    pub(crate) fn probe_reply(&mut self, p: usize, reply: &Reply) {
        let health = &mut self.pools[p].health;
        if let Some((info, _)) = &reply.head {
            health.status = Some(info.status);
        }
        match &reply.end {
            Some(Ok(())) => {
                health.in_flight = false;
                health.down = !health.status.is_some_and(|s| (200..400).contains(&s));
            }
            Some(Err(_)) => {
                health.in_flight = false;
                health.down = true;
            }
            None => {}
        }
    }

    /// Gives `reply` to its exchange, or to the pool if it answers a health check.
    pub(crate) fn deliver(&mut self, p: usize, route: Route, reply: Reply, ops: &mut dyn Ops) {
        if route.probe {
            self.probe_reply(p, &reply);
        } else {
            ops.post_reply(route.conn, reply);
        }
    }

    /// The pool serving `up`, made on first use.
    fn pool_for(&mut self, up: &Upstream) -> usize {
        let spec = up.spec();
        if let Some(i) = self.pools.iter().position(|p| p.spec.id == spec.id) {
            return i;
        }
        self.pools.push(Pool {
            spec: spec.clone(),
            idle: Vec::new(),
            open: 0,
            connecting: 0,
            queue: VecDeque::new(),
            stats: UpstreamStats::default(),
            next_source: 0,
            health: Health::default(),
        });
        self.pools.len() - 1
    }

    /// Serves waiting requests: idle connections first, then new connections while
    /// fewer are being opened than requests wait.
    pub(crate) fn pump(&mut self, p: usize, ops: &mut dyn Ops) {
        loop {
            let pool = &mut self.pools[p];
            if pool.queue.is_empty() {
                return;
            }
            if let Some(l) = pool.idle.pop() {
                let Some(job) = pool.queue.pop_front() else {
                    return;
                };
                let link = &mut self.links[l];
                link.state = LinkState::Assigned(job);
                if let Some(token) = link.token {
                    ops.post_dispatch(token);
                }
                continue;
            }
            if pool.connecting >= pool.queue.len() || pool.open >= pool.spec.max_conns {
                return;
            }
            let now = ops.now();
            let l = self.links.insert(Link {
                pool: p,
                token: None,
                codec: ClientCodec::new(pool.spec.limits.clone()),
                state: LinkState::Connecting,
                used: false,
                started: now,
                timer: None,
                deadline: None,
                got_bytes: false,
                leftover: false,
                tls: None,
                plain: Vec::new(),
            });
            pool.open += 1;
            pool.connecting += 1;
            pool.stats.connects += 1;
            let sources = &pool.spec.sources;
            let source = (!sources.is_empty()).then(|| sources[pool.next_source % sources.len()]);
            pool.next_source = pool.next_source.wrapping_add(1);
            ops.connect(
                pool.spec.addr,
                source,
                UPSTREAM_TAG | l as u64,
                pool.spec.connect_timeout,
            );
        }
    }

    /// A connect this shard started for a pool failed: one waiting request hears of it
    /// (if more wait than connects remain under way). False if `tag` is not a pool's.
    pub(crate) fn connect_failed(
        &mut self,
        tag: u64,
        error: &std::io::Error,
        ops: &mut dyn Ops,
    ) -> bool {
        let Some(l) = link_of_tag(tag) else {
            return false;
        };
        if !matches!(
            self.links.get(l).map(|k| &k.state),
            Some(LinkState::Connecting)
        ) {
            return false;
        }
        let link = self.links.remove(l);
        let pool = &mut self.pools[link.pool];
        pool.open -= 1;
        pool.connecting -= 1;
        pool.stats.connect_failures += 1;
        if error.kind() == std::io::ErrorKind::AddrNotAvailable {
            pool.stats.source_exhausted += 1;
        }
        if pool.queue.len() > pool.connecting {
            if let Some(job) = pool.queue.pop_front() {
                let e = if error.kind() == std::io::ErrorKind::TimedOut {
                    UpstreamError::ConnectTimeout
                } else {
                    UpstreamError::Connect(error.raw_os_error().unwrap_or(EIO))
                };
                self.finish(link.pool, job.route, Err(e), ops);
            }
        }
        true
    }

    /// Tells a request's exchange how it ended (when it failed before its response
    /// started, or only the end is left to say), and counts it.
    pub(crate) fn finish(
        &mut self,
        p: usize,
        route: Route,
        end: Result<(), UpstreamError>,
        ops: &mut dyn Ops,
    ) {
        let stats = &mut self.pools[p].stats;
        match &end {
            Ok(()) => stats.completed += 1,
            Err(UpstreamError::Timeout) => stats.timeouts += 1,
            Err(_) => stats.failures += 1,
        }
        let mut reply = Reply::new(route.fetch, route.seq);
        reply.end = Some(end);
        self.deliver(p, route, reply, ops);
    }

    /// A request that failed on a connection: sent again on another one if it is
    /// idempotent, was sent on a reused connection (which the upstream may have closed
    /// just as it was sent), nothing of its response arrived and it was not sent again
    /// before; otherwise its exchange hears `e`.
    pub(crate) fn fail_job(
        &mut self,
        p: usize,
        mut job: Job,
        got_bytes: bool,
        e: UpstreamError,
        ops: &mut dyn Ops,
    ) {
        if job.idempotent && job.reused && !job.retried && !got_bytes {
            job.retried = true;
            self.pools[p].stats.retries += 1;
            self.pools[p].queue.push_front(job);
            self.pump(p, ops);
            return;
        }
        self.finish(p, job.route, Err(e), ops);
    }

    /// One shard's counters for `up`, with the gauges filled in.
    pub(crate) fn stats(&self, up: &Upstream) -> Option<UpstreamStats> {
        let pool = self.pools.iter().find(|p| p.spec.id == up.spec().id)?;
        let mut s = pool.stats.clone();
        s.idle = pool.idle.len() as u64;
        s.open = pool.open as u64;
        s.queued = pool.queue.len() as u64;
        Some(s)
    }

    /// Every pool's counters, with its upstream's address.
    pub(crate) fn all_stats(&self) -> impl Iterator<Item = (SocketAddr, UpstreamStats)> + '_ {
        self.pools.iter().map(|pool| {
            let mut s = pool.stats.clone();
            s.idle = pool.idle.len() as u64;
            s.open = pool.open as u64;
            s.queued = pool.queue.len() as u64;
            (pool.spec.addr, s)
        })
    }
}

/// The index of the connection a connect tag names, if it is a pool's.
pub(crate) fn link_of_tag(tag: u64) -> Option<usize> {
    (tag & !0xffff_ffff == UPSTREAM_TAG).then_some((tag & 0xffff_ffff) as usize)
}

/// EIO, for a connect error the OS gave without an errno (never, in practice: the
/// runtime reports every failure with one).
const EIO: i32 = 5;

/// The connection a health check names as its exchange's: none (its outcome is the
/// pool's own, see `Route::probe`).
const PROBE_CONN: ConnToken = ConnToken {
    slot: u32::MAX,
    generation: u32::MAX,
};

/// Fields (with `Host`) that fit in the stack array `prepare` uses.
const FEW_FIELDS: usize = 16;

/// Encodes `req` for `spec`'s upstream, `Host` added unless it names one.
fn prepare(
    spec: &Spec,
    req: &UpstreamRequest<'_>,
    conn: ConnToken,
    seq: u32,
    fetch: Fetch,
) -> Result<Job, UpstreamError> {
    // Sized for the whole request: growing it would copy it again, every request.
    let head = 64 + req.method.len() + req.target.len() + spec.host.len();
    let mut bytes = Vec::with_capacity(head + req.headers.wire_len() + req.body.len());
    let (sent, out) = encode_streamed(req, &spec.host, &mut bytes)?;
    let body = out.map(|out| {
        Box::new(BodyOut {
            out,
            pending: Vec::new(),
            finished: false,
            held: false,
            posted: 0,
        })
    });
    Ok(Job {
        route: Route {
            conn,
            seq,
            fetch,
            probe: false,
        },
        bytes,
        sent,
        idempotent: req.is_idempotent(),
        retried: false,
        reused: false,
        body,
    })
}

/// Appends `req` to `out`: whole, or its head alone when its body is streamed (then
/// with the body's framing state).
fn encode_streamed(
    req: &UpstreamRequest<'_>,
    host: &str,
    out: &mut Vec<u8>,
) -> Result<(Sent, Option<Outgoing>), UpstreamError> {
    let Some(len) = req.streamed else {
        return encode(req, host, out).map(|sent| (sent, None));
    };
    let kind = match len {
        Some(n) => BodyKind::Length(n),
        None => BodyKind::Chunked,
    };
    with_host(req, host, |head| client::prepare_head(head, kind, out))
        .map(|(sent, o)| (sent, Some(o)))
}

/// Runs `f` on `req`'s head with `Host` added unless it names one, its values as bytes
/// (text values are viewed as bytes, without a copy of the text).
fn with_host<R>(
    req: &UpstreamRequest<'_>,
    host: &str,
    f: impl FnOnce(&RequestHead<'_, &[u8]>) -> Result<R, ClientError>,
) -> Result<R, UpstreamError> {
    let (method, target) = (req.method, req.target);
    let run = |headers: &[(&str, &[u8])]| {
        f(&RequestHead {
            method,
            target,
            headers,
        })
    };
    let named = |n: &str| n.eq_ignore_ascii_case("host");
    match req.headers {
        // A proxy's request names its `Host` (passed through unchanged): borrowed whole.
        RequestFields::Bytes(h) if h.iter().any(|(n, _)| named(n)) => run(h),
        RequestFields::Bytes(h) => with_host_added(host, h.len(), h.iter().copied(), run),
        RequestFields::Text(h) => {
            let host_named = h.iter().any(|(n, _)| named(n));
            let fields = h.iter().map(|&(n, v)| (n, v.as_bytes()));
            if host_named {
                with_fields(h.len(), fields, run)
            } else {
                with_host_added(host, h.len(), fields, run)
            }
        }
    }
    .map_err(UpstreamError::InvalidRequest)
}

/// Runs `run` on `("Host", host)` followed by `fields` (`len` of them).
fn with_host_added<'a, R>(
    host: &'a str,
    len: usize,
    fields: impl Iterator<Item = (&'a str, &'a [u8])>,
    run: impl FnOnce(&[(&str, &[u8])]) -> R,
) -> R {
    with_fields(
        len + 1,
        std::iter::once(("Host", host.as_bytes())).chain(fields),
        run,
    )
}

/// Runs `run` on `fields` (`len` of them) gathered in a slice: on the stack for the
/// usual handful, in a vector past [`FEW_FIELDS`].
fn with_fields<'a, R>(
    len: usize,
    fields: impl Iterator<Item = (&'a str, &'a [u8])>,
    run: impl FnOnce(&[(&str, &[u8])]) -> R,
) -> R {
    if len <= FEW_FIELDS {
        let mut few: [(&str, &[u8]); FEW_FIELDS] = [("", &[]); FEW_FIELDS];
        let mut n = 0;
        for (slot, field) in few.iter_mut().zip(fields) {
            *slot = field;
            n += 1;
        }
        run(few.get(..n).unwrap_or_default())
    } else {
        let all: Vec<(&str, &[u8])> = fields.collect();
        run(&all)
    }
}

/// Appends `req` whole to `out` (see [`UpstreamRequest::encode`]).
pub(crate) fn encode(
    req: &UpstreamRequest<'_>,
    host: &str,
    out: &mut Vec<u8>,
) -> Result<Sent, UpstreamError> {
    if req.streamed.is_some() {
        return encode_streamed(req, host, out).map(|(sent, _)| sent);
    }
    with_host(req, host, |head| client::prepare(head, req.body, out))
}
