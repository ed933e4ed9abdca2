//! `ringmaster proxy`: an HTTP reverse proxy and load balancer (`--mode http`, the
//! default) or a TCP proxy (`--mode tcp`), in front of one or more `--upstream`s.
//!
//! HTTP mode is an [`App`] on the upstream pool of `http1::upstream`: every request is
//! re-framed from the proxy's own parse (one request in, one request out: a smuggling
//! attempt is answered 400 by the server's parser and never reaches an upstream), its
//! hop-by-hop fields removed and `Via`, `X-Forwarded-For` and `X-Forwarded-Proto` added
//! (`headers`), sent to the upstream the balancer picks (`balance`), and the response
//! streamed back with its own hop-by-hop fields removed. Field values travel as bytes,
//! borrowed from the parse: obs-text passes both ways byte for byte (RFC 9110 §5.5).
//! An upgrade the upstream accepts (101) becomes a tunnel, to a TLS upstream too (its
//! bytes then go through the upstream connection's TLS session). Trailers pass both ways, those
//! allowed in a trailer section only: a chunked request's to the upstream (its body
//! re-framed chunked), and an upstream's to a client that takes them (`TE: trailers`
//! over HTTP/1.1, which the proxy then asks the upstream for on its behalf, or HTTP/2);
//! other clients' responses end without them. Failures: an upstream that
//! cannot be reached is replaced by the next for idempotent methods while nothing of
//! the response went out, else 502; no response head within `--upstream-timeout` 504; a
//! malformed response 502; a body cut short closes the client connection.
//!
//! Parts: `http1::upstream::forward` (what changes in the fields), `balance` (which upstream, and
//! passive health), `tcp` (the L4 mode).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use ringmaster_protocols::http1::client::FieldsView;
use ringmaster_protocols::http1::encode::{trailer_allowed, Framing};
use ringmaster_protocols::http1::upstream::forward as headers;
use ringmaster_protocols::http1::upstream::{UpstreamStats, UpstreamTls};
use ringmaster_protocols::http1::{
    App, Exchange, Fetch, Http, Request, Response, Upstream, UpstreamError, UpstreamEvent,
    UpstreamRequest, Version,
};
use ringmaster_protocols::tls::TlsOptions;
use ringmaster_runtime::{CallDone, Called};

use crate::cli::{parse_listen, ServerArgs};
use crate::http::LimitArgs;
use crate::tls::{run_maybe_tls, TlsArgs};

mod balance;
mod tcp;

use balance::{Balancer, Policy, MAX_UPSTREAMS};

/// What the proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// HTTP/1.1 reverse proxy: requests balanced one by one.
    Http,
    /// TCP (L4): bytes pass both ways, balanced per connection.
    Tcp,
}

/// Flags of `ringmaster proxy`.
#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// An upstream to proxy to, HOST:PORT (repeat for several, at most 64)
    #[arg(long = "upstream", value_name = "HOST:PORT", required = true, value_parser = parse_listen)]
    pub upstreams: Vec<SocketAddr>,

    /// http: an HTTP/1.1 reverse proxy; tcp: bytes both ways (L4)
    #[arg(long, value_enum, default_value_t = Mode::Http)]
    pub mode: Mode,

    /// How an upstream is chosen for each request (http) or connection (tcp)
    #[arg(long, value_enum, default_value_t = Policy::RoundRobin)]
    pub balance: Policy,

    /// Failures in a row after which an upstream is skipped for --fail-timeout
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_fails: u32,

    /// Seconds a failing upstream is skipped
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub fail_timeout: f64,

    /// Seconds an upstream has to send a response head before the client gets 504
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub upstream_timeout: f64,

    /// Seconds a connect to an upstream may take
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub connect_timeout: f64,

    /// Idle keep-alive connections kept per upstream and shard; more that go idle after a
    /// burst are kept 2 s for the next one, then closed (0: none kept)
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub upstream_idle: usize,

    /// Connections open at once per upstream and shard; past it requests wait (bounded)
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub upstream_conns: usize,

    /// Speak TLS to the upstreams (trusting the platform's CAs unless --upstream-ca or --upstream-insecure)
    #[arg(long)]
    pub upstream_tls: bool,

    /// Trust the CA certificates in this PEM file for the upstreams' certificates
    #[arg(long, value_name = "FILE", requires = "upstream_tls")]
    pub upstream_ca: Option<PathBuf>,

    /// Do not check the upstreams' certificates (a test bed only)
    #[arg(long, requires = "upstream_tls", conflicts_with = "upstream_ca")]
    pub upstream_insecure: bool,

    /// The name the upstreams' certificates must carry, also sent as SNI [default: the upstream's IP address]
    #[arg(long, value_name = "NAME", requires = "upstream_tls")]
    pub upstream_name: Option<String>,

    /// Local addresses to connect to upstreams from, in turn, e.g. 127.0.0.2,127.0.0.3 (each has ~28k ephemeral ports per upstream)
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub source_addrs: Vec<std::net::IpAddr>,

    /// Check each upstream actively with GET PATH every --health-interval; one whose last check failed (no answer, or not 2xx/3xx) gets no requests (HTTP mode)
    #[arg(long, value_name = "PATH")]
    pub health_check: Option<String>,

    /// Seconds between active health checks
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5.0,
        requires = "health_check"
    )]
    pub health_interval: f64,

    /// Answer GET /.ringmaster/stats with the per-upstream counters (HTTP mode)
    #[arg(long)]
    pub stats: bool,

    /// TCP mode: move bytes with io_uring SPLICE through a pipe per direction instead of receives and sends (an experiment: slower for small messages, see docs/BENCHMARKS.md; uses plain descriptors; not with --tls-*)
    #[arg(long)]
    pub splice: bool,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() {
        s.clamp(0.001, 1e6)
    } else {
        1e6
    })
}

/// Runs the proxy until SIGINT/SIGTERM.
pub fn run(args: &ProxyArgs) -> ExitCode {
    if args.upstreams.len() > MAX_UPSTREAMS {
        eprintln!(
            "ringmaster: at most {MAX_UPSTREAMS} --upstream addresses (got {}); put a second proxy tier in front of more",
            args.upstreams.len()
        );
        return ExitCode::from(2);
    }
    let tls_front = args.tls.tls_cert.is_some() || args.tls.tls_self_signed;
    if args.splice && (args.mode != Mode::Tcp || tls_front) {
        eprintln!(
            "ringmaster: --splice moves bytes between sockets as they are: only with --mode tcp and without --tls-*"
        );
        return ExitCode::from(2);
    }
    let mut builder = args.server.builder();
    if args.splice {
        builder = builder.direct_descriptors(false);
    }
    let fail_timeout = secs(args.fail_timeout);
    if args.mode == Mode::Tcp {
        let ups = args.upstreams.clone();
        let (policy, fails, connect) = (args.balance, args.max_fails, secs(args.connect_timeout));
        let sources = args.source_addrs.clone();
        let splice = args.splice;
        return run_maybe_tls(
            "proxy (tcp)",
            builder,
            &args.tls,
            TlsOptions::default(),
            None,
            move |shard| {
                let bal = Balancer::new(ups.len(), policy, fails, fail_timeout, shard as u64 + 1);
                let relay = if tls_front {
                    tcp::Relay::PostToTls
                } else if splice {
                    tcp::Relay::Splice
                } else {
                    tcp::Relay::Copy
                };
                tcp::TcpProxy::new(ups.clone(), bal, connect, sources.clone(), relay)
            },
        );
    }
    let ups = match upstreams(args) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("ringmaster: {e}");
            return ExitCode::from(1);
        }
    };
    let limits = args.limits.limits();
    let proto = if args.tls.tls_cert.is_some() || args.tls.tls_self_signed {
        "https"
    } else {
        "http"
    };
    let (policy, fails, stats) = (args.balance, args.max_fails, args.stats);
    let shards = builder.config().shards;
    // Under TLS, ALPN offers h2 first (RFC 9113 section 3.2), as `ringmaster http`
    // does: the proxy's App serves HTTP/2 clients as it does h2c ones.
    run_maybe_tls(
        "proxy",
        builder,
        &args.tls,
        TlsOptions::http(),
        None,
        move |shard| {
            let bal = Balancer::new(ups.len(), policy, fails, fail_timeout, shard as u64 + 1);
            let app = Proxy::new(shards, ups.clone(), bal, proto, stats);
            let mut http = Http::new(app, limits.clone());
            for up in &ups {
                http.register_upstream(up);
            }
            http
        },
    )
}

/// The upstream handles the flags describe.
fn upstreams(args: &ProxyArgs) -> Result<Vec<Upstream>, String> {
    args.upstreams
        .iter()
        .map(|&addr| {
            let mut b = Upstream::builder(addr)
                .response_timeout(secs(args.upstream_timeout))
                .connect_timeout(secs(args.connect_timeout))
                .max_idle(args.upstream_idle)
                .max_conns(args.upstream_conns)
                .sources(args.source_addrs.clone());
            if let Some(path) = &args.health_check {
                b = b.health_check(path, secs(args.health_interval));
            }
            if args.upstream_tls {
                let name = args
                    .upstream_name
                    .clone()
                    .unwrap_or_else(|| addr.ip().to_string());
                let tls = if args.upstream_insecure {
                    UpstreamTls::without_verification(&name)
                } else if let Some(ca) = &args.upstream_ca {
                    UpstreamTls::with_ca_file(ca, &name)
                } else {
                    UpstreamTls::with_platform_roots(&name)
                };
                b = b.tls(tls.map_err(|e| format!("--upstream-tls: {e}"))?);
            }
            Ok(b.build())
        })
        .collect()
}

/// What the proxy counts per upstream on one shard, beside the pool's counters.
#[derive(Debug, Default, Clone)]
struct Counts {
    /// Requests given to this upstream.
    requests: u64,
    /// Requests sent to it after another upstream failed them.
    retries: u64,
    /// Failures that count against its health.
    failures: u64,
    /// 502s and 504s answered for it.
    sent_502: u64,
    sent_504: u64,
}

/// The HTTP proxy, one per shard.
pub struct Proxy {
    shards: usize,
    ups: Vec<Upstream>,
    bal: Balancer,
    counts: Vec<Counts>,
    proto: &'static str,
    stats: bool,
    /// The `X-Forwarded-For` value being built (kept to reuse its allocation).
    scratch: Vec<u8>,
}

/// A request kept whole, to be sent to another upstream if the first cannot be reached.
struct Again {
    method: String,
    target: String,
    fields: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// One proxied request.
pub struct Forward {
    up: usize,
    tried: u64,
    again: Option<Box<Again>>,
    /// The request upstream, whose body the client's pieces go to when streamed.
    fetch: Fetch,
    /// The trailer fields that ended the client's chunked body (those allowed in a
    /// trailer section), held from `on_trailers` until the body's end goes upstream.
    trailers: Option<Box<[(String, String)]>>,
}

/// What an exchange of the proxy waits for.
pub enum Task {
    /// A request forwarded upstream.
    Forward(Forward),
    /// `/.ringmaster/stats`: each shard's part, until every shard has answered.
    Stats { parts: Vec<String>, left: usize },
}

impl Proxy {
    fn new(
        shards: usize,
        ups: Vec<Upstream>,
        bal: Balancer,
        proto: &'static str,
        stats: bool,
    ) -> Self {
        let counts = vec![Counts::default(); ups.len()];
        Proxy {
            shards,
            ups,
            bal,
            counts,
            proto,
            stats,
            scratch: Vec::new(),
        }
    }

    /// Sends `call` to the balancer's pick (not one of `tried`); the task, or the status
    /// the client gets.
    fn send(
        &mut self,
        call: UpstreamRequest<'_>,
        client: Option<IpAddr>,
        tried: u64,
        ex: &mut Exchange<'_>,
    ) -> Result<(usize, u64, Fetch), u16> {
        let mut tried = tried;
        // Upstreams whose last active health check failed are passed over while any
        // other is left.
        let down = self
            .ups
            .iter()
            .enumerate()
            .filter(|(_, up)| ex.upstream_down(up))
            .fold(0u64, |m, (i, _)| m | 1 << i);
        loop {
            let pick = self.bal.pick(client, tried | down, ex.now());
            let Some(i) = pick.or_else(|| self.bal.pick(client, tried, ex.now())) else {
                return Err(502);
            };
            tried |= 1 << i;
            self.counts[i].requests += 1;
            match ex.fetch(&self.ups[i], call) {
                Ok(fetch) => {
                    self.bal.standing[i].inflight += 1;
                    return Ok((i, tried, fetch));
                }
                // This upstream's queue is full: another may have room.
                Err(UpstreamError::QueueFull) => continue,
                Err(e) => return Err(e.status()),
            }
        }
    }

    /// This shard's part of `/.ringmaster/stats`: each upstream's standing, the
    /// proxy's counts and the pool's counters (`pool`, by upstream address).
    fn shard_json(
        &self,
        shard: usize,
        pool: &[(SocketAddr, UpstreamStats)],
        now: Instant,
    ) -> String {
        let mut out = format!("{{\"shard\":{shard},\"upstreams\":[");
        for (i, up) in self.ups.iter().enumerate() {
            let s = pool
                .iter()
                .find(|(a, _)| *a == up.addr())
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            let st = &self.bal.standing[i];
            let c = &self.counts[i];
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"addr\":\"{}\",\"up\":{},\"inflight\":{},\"marked_down\":{},\"requests\":{},\"retries\":{},\"failures\":{},\"sent_502\":{},\"sent_504\":{},\"pool\":{}}}",
                up.addr(),
                st.down_until.is_none_or(|t| now >= t),
                st.inflight,
                st.marked_down,
                c.requests,
                c.retries,
                c.failures,
                c.sent_502,
                c.sent_504,
                pool_json(&s)
            ));
        }
        out.push_str("]}");
        out
    }

    /// Asks every shard for its part of `/.ringmaster/stats`.
    fn gather(&mut self, ex: &mut Exchange<'_>) -> Option<Task> {
        for shard in 0..self.shards {
            let asked = ex.call_handler::<Http<Proxy>, String, _>(shard, |http, io| {
                let pool: Vec<_> = http.upstream_stats().collect();
                http.app().shard_json(io.shard_id(), &pool, io.now())
            });
            if asked.is_err() {
                ex.respond(
                    Response::text(503, "busy, try again\n").fields(&[("Retry-After", "1")]),
                );
                return None;
            }
        }
        Some(Task::Stats {
            parts: Vec::with_capacity(self.shards),
            left: self.shards,
        })
    }

    fn count_status(&mut self, up: usize, status: u16) {
        if let Some(c) = self.counts.get_mut(up) {
            match status {
                502 => c.sent_502 += 1,
                504 => c.sent_504 += 1,
                _ => {}
            }
        }
    }
}

fn pool_json(s: &UpstreamStats) -> String {
    let fields: Vec<String> = s
        .fields()
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Failures that say the upstream is unwell (not the client's doing, not a full queue).
fn counts_against(e: &UpstreamError) -> bool {
    !matches!(
        e,
        UpstreamError::QueueFull | UpstreamError::ShuttingDown | UpstreamError::InvalidRequest(_)
    )
}

/// Failures after which the request may go to another upstream: nothing of it was
/// processed there (it could not be reached, or closed before a response).
fn may_go_elsewhere(e: &UpstreamError) -> bool {
    matches!(
        e,
        UpstreamError::Connect(_) | UpstreamError::ConnectTimeout | UpstreamError::Closed
    )
}

/// The protocol a request asks to switch to: its `Upgrade` value, when its
/// `Connection` field names `upgrade` (RFC 9110 §7.8).
fn requested_upgrade<'a>(req: &Request<'a>) -> Option<&'a [u8]> {
    let named = req
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .any(|(_, v)| headers::names_option(v, "upgrade"));
    if !named {
        return None;
    }
    req.header("upgrade")
}

/// A request target in absolute form (`http://host:port/path?query`, RFC 9112 section
/// 3.2.2), split into its authority and the origin form an origin server must get
/// (section 3.2.1: an empty path is `/`). `None` for any other form. `Err` for an
/// authority that is empty or carries userinfo (RFC 9110 section 4.2.4: an error).
fn absolute_form(target: &str) -> Option<Result<(&str, std::borrow::Cow<'_, str>), ()>> {
    let scheme_len = ["http://", "https://"].into_iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme).then_some(scheme.len())
    })?;
    let rest = &target[scheme_len..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') || authority.starts_with(':') {
        return Some(Err(()));
    }
    // A fragment is never sent (RFC 9110 section 4.2.5).
    let path = path.split('#').next().unwrap_or_default();
    Some(Ok((
        authority,
        if path.starts_with('/') {
            path.into()
        } else {
            format!("/{path}").into()
        },
    )))
}

/// Answers an OPTIONS or TRACE whose `Max-Forwards` is 0 as its final recipient: 200
/// for OPTIONS; for TRACE the request as received, as `message/http`, without the
/// fields likely to hold credentials (RFC 9110 section 9.3.8).
fn last_hop(req: &Request<'_>, ex: &mut Exchange<'_>) {
    if req.method() == "OPTIONS" {
        ex.respond(Response::new(200));
        return;
    }
    let version = match req.version() {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
        Version::Http2 => "HTTP/2",
    };
    let mut echo = format!("TRACE {} {version}\r\n", req.target()).into_bytes();
    for (n, v) in req.headers() {
        if ["authorization", "proxy-authorization", "cookie"]
            .iter()
            .any(|s| n.eq_ignore_ascii_case(s))
        {
            continue;
        }
        echo.extend_from_slice(n.as_bytes());
        echo.extend_from_slice(b": ");
        echo.extend_from_slice(v);
        echo.extend_from_slice(b"\r\n");
    }
    echo.extend_from_slice(b"\r\n");
    ex.respond(
        Response::new(200)
            .fields(&[("Content-Type", "message/http")])
            .owned_body(echo),
    );
}

/// The `Via` value for a message that came in `version` (RFC 9110 section 7.6.3: the
/// received protocol).
fn via(version: Version) -> &'static [u8] {
    match version {
        Version::Http10 => b"1.0 ringmaster",
        Version::Http11 => b"1.1 ringmaster",
        Version::Http2 => b"2 ringmaster",
    }
}

fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

impl App for Proxy {
    type Task = Task;

    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Task> {
        if self.stats && req.path() == "/.ringmaster/stats" {
            return self.gather(ex);
        }
        let client = ex.peer().map(|a| a.ip());
        // Max-Forwards (RFC 9110 section 7.6.2): on OPTIONS and TRACE the proxy is the
        // last hop when it is 0, and passes it on decremented otherwise.
        let mut max_forwards = String::new();
        if matches!(req.method(), "OPTIONS" | "TRACE") {
            let hops = req
                .header("max-forwards")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
            match hops {
                Some(0) => {
                    last_hop(req, ex);
                    return None;
                }
                Some(n) => max_forwards = (n - 1).to_string(),
                None => {}
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        // An absolute-form target reaches the upstream in origin form, and its
        // authority replaces `Host` (RFC 9112 section 3.2.2).
        let absolute = match absolute_form(req.target()) {
            Some(Err(())) => {
                self.scratch = scratch;
                ex.respond(Response::text(400, "bad request target\n"));
                return None;
            }
            Some(Ok(split)) => Some(split),
            None => None,
        };
        let target = absolute.as_ref().map_or(req.target(), |(_, path)| path);
        // Values pass as bytes, obs-text included (RFC 9110 section 5.5), borrowed from
        // the request: no copy per field.
        let mut fields = headers::request_fields(req.headers(), client, self.proto, &mut scratch);
        if let Some(f) = fields.iter_mut().rev().find(|(n, _)| *n == "Via") {
            f.1 = via(req.version());
        }
        if !max_forwards.is_empty() {
            for (n, v) in fields.iter_mut() {
                if n.eq_ignore_ascii_case("max-forwards") {
                    *v = max_forwards.as_bytes();
                }
            }
        }
        if let Some((authority, _)) = absolute {
            fields.retain(|(n, _)| !n.eq_ignore_ascii_case("host"));
            fields.insert(0, ("Host", authority.as_bytes()));
        }
        // An upgrade the client asked for (`Connection: upgrade` naming it) goes on to
        // the upstream: WebSocket and any other protocol pass through once it says 101.
        let upgrade = requested_upgrade(req);
        if let Some(proto) = upgrade {
            fields.push(("Connection", b"Upgrade"));
            fields.push(("Upgrade", proto));
        }
        // A client that takes trailers has them asked for on its behalf (RFC 9110
        // section 10.1.4; TE is hop-by-hop, so it is named in Connection): some
        // upstreams send trailers only then.
        if ex.accepts_trailers() {
            fields.push(("TE", b"trailers"));
            fields.push(("Connection", b"TE"));
        }
        let mut call = UpstreamRequest::new(req.method(), target)
            .header_bytes(&fields)
            .body(req.body());
        if req.is_body_streamed() {
            // Re-framed as it came: its length if it had one, chunked otherwise.
            let len = req
                .header("content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
            call = call.body_stream(len);
        }
        let again = (idempotent(req.method()) && self.ups.len() > 1 && !req.is_body_streamed())
            .then(|| {
                Box::new(Again {
                    method: req.method().to_owned(),
                    target: target.to_owned(),
                    fields: fields
                        .iter()
                        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
                        .collect(),
                    body: req.body().to_vec(),
                })
            });
        let sent = self.send(call, client, 0, ex);
        drop(fields);
        self.scratch = scratch;
        match sent {
            Ok((up, tried, fetch)) => Some(Task::Forward(Forward {
                up,
                tried,
                again,
                fetch,
                trailers: None,
            })),
            Err(status) => {
                ex.respond(Response::text(status, "upstream unavailable\n"));
                None
            }
        }
    }

    fn on_upstream(
        &mut self,
        task: &mut Task,
        _: Fetch,
        ev: UpstreamEvent<'_>,
        ex: &mut Exchange<'_>,
    ) {
        let Task::Forward(task) = task else {
            return;
        };
        match ev {
            // RFC 9110 section 15.2: a proxy forwards 1xx responses, cleaned like any
            // response, with its Via. Not 100: the front answers a client's
            // `Expect: 100-continue` itself.
            UpstreamEvent::Informational(head) if head.status() != 100 => {
                let all = head.headers();
                let mut fields = headers::end_to_end(all.iter());
                fields.push(("Via", headers::VIA.as_bytes()));
                ex.send_informational_bytes(head.status(), &fields);
            }
            UpstreamEvent::Informational(_) => {}
            UpstreamEvent::Head(head) if head.status() == 101 => {
                self.bal.succeeded(task.up);
                // The handshake's fields pass whole (hop-by-hop ones included: they are
                // the handshake), and `Via`; the tunnel follows.
                let all = head.headers();
                let mut fields: Vec<(&str, &str)> = all
                    .iter()
                    .filter_map(|(n, v)| Some((n, std::str::from_utf8(v).ok()?)))
                    .collect();
                fields.push(("Via", headers::VIA));
                ex.switch_protocols(&fields);
            }
            UpstreamEvent::Head(head) => {
                self.bal.succeeded(task.up);
                let all = head.headers();
                // Values as bytes: obs-text reaches the client as the upstream sent it.
                let mut fields = headers::end_to_end(all.iter());
                // An upstream may answer in HTTP/1.0.
                fields.push(("Via", via(head.version())));
                if let Framing::Length(n) = head.framing() {
                    // The usual case, as the codec read it: no second look at the fields.
                    return ex.start_sized_bytes(head.status(), &fields, n);
                }
                let len = head
                    .headers()
                    .get("content-length")
                    .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
                let chunked = head.headers().get("transfer-encoding").is_some();
                match len {
                    Some(n) if !chunked => ex.start_sized_bytes(head.status(), &fields, n),
                    _ if head.framing() == Framing::None => {
                        // No body: as a complete response would say it (`Content-Length:
                        // 0` unless the status has none); the end comes with the
                        // upstream's.
                        ex.start_sized_bytes(head.status(), &fields, 0);
                    }
                    _ => ex.start_stream_bytes(head.status(), &fields),
                }
            }
            UpstreamEvent::Body(b) => ex.send_chunk(b),
            UpstreamEvent::End(trailers) => {
                self.bal.standing[task.up].inflight -= 1;
                if ex.is_done() {
                    return;
                }
                // Trailers go on to a client that takes them (`TE: trailers`, or
                // HTTP/2), those allowed in a trailer section only; otherwise they are
                // dropped (RFC 9110 section 6.5.1), the body ending as it would have.
                let fields: Vec<(&str, &str)> = if ex.accepts_trailers() {
                    trailers
                        .iter()
                        .filter_map(|(n, v)| Some((n, std::str::from_utf8(v).ok()?)))
                        .filter(|&(n, v)| trailer_allowed(n, v))
                        .collect()
                } else {
                    Vec::new()
                };
                ex.finish_with_trailers(&fields);
            }
            UpstreamEvent::Failed(e) => {
                let now = ex.now();
                self.bal.standing[task.up].inflight -= 1;
                if counts_against(&e) {
                    self.counts[task.up].failures += 1;
                    self.bal.failed(task.up, now);
                }
                if !ex.is_started() && may_go_elsewhere(&e) {
                    if let Some(again) = task.again.take() {
                        let fields: Vec<(&str, &[u8])> = again
                            .fields
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_slice()))
                            .collect();
                        let call = UpstreamRequest::new(&again.method, &again.target)
                            .header_bytes(&fields)
                            .body(&again.body);
                        let client = ex.peer().map(|a| a.ip());
                        if let Ok((up, tried, fetch)) = self.send(call, client, task.tried, ex) {
                            self.counts[up].retries += 1;
                            task.up = up;
                            task.tried = tried;
                            task.fetch = fetch;
                            drop(fields);
                            task.again = Some(again);
                            return;
                        }
                    }
                }
                if ex.is_started() {
                    ex.abort();
                } else {
                    self.count_status(task.up, e.status());
                    ex.respond(Response::text(e.status(), "upstream failed\n"));
                }
            }
        }
    }

    // Every body that did not arrive with its head streams through: a proxy holds no
    // upload whole.
    fn stream_body(&mut self, _req: &Request<'_>) -> bool {
        true
    }

    fn on_body(&mut self, task: &mut Task, piece: &[u8], last: bool, ex: &mut Exchange<'_>) {
        if let Task::Forward(f) = task {
            // Gone: the request failed or was answered, as on_upstream hears.
            let _ = match f.trailers.take() {
                Some(t) if last => {
                    let fields: Vec<(&str, &str)> =
                        t.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    ex.fetch_body_with_trailers(f.fetch, piece, &fields)
                }
                _ => ex.fetch_body(f.fetch, piece, last),
            };
        }
    }

    // A chunked request body's trailers go upstream with its end (the body is re-framed
    // chunked, as it came), without those not allowed in a trailer section.
    fn on_trailers(&mut self, task: &mut Task, trailers: FieldsView<'_>, _ex: &mut Exchange<'_>) {
        if let Task::Forward(f) = task {
            let kept: Vec<(String, String)> = trailers
                .iter()
                .filter_map(|(n, v)| Some((n, std::str::from_utf8(v).ok()?)))
                .filter(|&(n, v)| trailer_allowed(n, v))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            if !kept.is_empty() {
                f.trailers = Some(kept.into_boxed_slice());
            }
        }
    }

    fn on_call_done(&mut self, task: &mut Task, done: CallDone, ex: &mut Exchange<'_>) {
        let Task::Stats { parts, left } = task else {
            return;
        };
        match Called::<String>::new().result(done) {
            Ok(part) => {
                parts.push(part);
                *left -= 1;
                if *left == 0 {
                    parts.sort();
                    let body = format!("{{\"shards\":[{}]}}\n", parts.join(","));
                    let fields = [("Content-Type", "application/json")];
                    ex.respond(Response::new(200).fields(&fields).body(body.as_bytes()));
                }
            }
            Err(e) => {
                let text = format!("stats unavailable: {e}\n");
                ex.respond(Response::text(503, &text).fields(&[("Retry-After", "1")]));
            }
        }
    }

    fn on_cancel(&mut self, task: Task) {
        if let Task::Forward(task) = task {
            if let Some(s) = self.bal.standing.get_mut(task.up) {
                s.inflight = s.inflight.saturating_sub(1);
            }
        }
    }
}

/// At exit, each shard says what its proxy did per upstream (the shutdown summary).
impl Drop for Proxy {
    fn drop(&mut self) {
        for (up, c) in self.ups.iter().zip(&self.counts) {
            eprintln!(
                "ringmaster: proxy upstream {}: requests={} retries={} failures={} sent_502={} sent_504={}",
                up.addr(),
                c.requests,
                c.retries,
                c.failures,
                c.sent_502,
                c.sent_504
            );
        }
    }
}
