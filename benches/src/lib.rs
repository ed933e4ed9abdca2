//! ringmaster's load generator (`ringmaster load`) and benchmark helpers.
//!
//! `ringmaster load tcp-echo --addr 127.0.0.1:7000` opens `--connections` connections and
//! plays ping-pong with an echo server, validating every byte that comes back, then
//! prints messages/s, bytes/s, errors by kind, latency percentiles (hdrhistogram) and,
//! with `--server-pid`, the server's CPU time per message and its RSS. `http` sends a
//! fixed HTTP/1.1 request (keep-alive, `--pipeline` deep, or a connection per request)
//! and checks each response's status and framing (with `--h2`, HTTP/2: h2c with prior
//! knowledge, or h2 by ALPN under `--tls`, `--streams` requests in flight per
//! connection, answered in any order, each validated and timed on its own); `ws`
//! makes the WebSocket opening handshake (RFC 6455; no frame before the `101`, whose
//! `Sec-WebSocket-Accept` is checked), then sends masked binary frames and validates
//! every echo byte for byte; `udp-echo` plays datagram ping-pong. `--tls` runs any TCP target over TLS (rustls,
//! `ring` provider), trusting `--tls-ca FILE` or, with `--tls-insecure`, any certificate;
//! every new connection makes a full handshake unless `--tls-resume`, so with
//! `--connect-per-request` the figure is full handshakes per second.
//!
//! Layout: [`LoadArgs`] and [`run`] (this file) plan the run, start the load threads
//! and report; `proto` holds what is said on a connection, without I/O (echo, HTTP);
//! `tls` is the TLS transport, a conversation wrapped around another, so that every
//! engine runs it unchanged; `engine` moves the bytes (a ringmaster shard by default, a mio/epoll loop as a
//! cross-check, and a mio loop of UDP sockets for `udp-echo`); `stats`, `procfs` and
//! `report` measure and print.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod engine;
pub mod plot;
mod procfs;
mod proto;
mod report;
mod stats;
mod tls;

use std::io::IsTerminal;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use engine::EngineKind;
use engine::{Live, ThreadPlan, ThreadReport};
use report::{ClientUsage, MachineUsage, Report, ServerUsage};
use stats::{LatencySummary, Recorder};

/// With `--requests` and no `--duration`, the run still stops after this long.
const REQUESTS_TIME_CAP_SECS: f64 = 300.0;

/// What to load: the protocol spoken to the server.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// TCP echo: each message must come back byte for byte.
    TcpEcho,
    /// HTTP/1.1 keep-alive: a fixed request (--method, --path, --header, --body-size);
    /// each response's status (and with --expect-length its body length) is checked.
    Http,
    /// WebSocket echo: the opening handshake (GET --path), then one masked binary frame
    /// of --size bytes per message, each echo checked byte for byte; pings are answered.
    Ws,
    /// UDP echo: one datagram in flight per "connection", each must come back byte for
    /// byte; one not back within --timeout counts as a timeout. On the uring engine a
    /// load thread's connections are flows over its shard's one UDP socket (the payload
    /// names its flow, so --size below 16 runs on epoll); on epoll each connection is a
    /// connected UDP socket.
    UdpEcho,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::TcpEcho => "tcp-echo",
            Target::Http => "http",
            Target::Ws => "ws",
            Target::UdpEcho => "udp-echo",
        }
    }
}

/// `ringmaster load`: the load generator's command line.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// What to load: the protocol spoken to the server.
    #[arg(value_enum, value_name = "TARGET")]
    pub target: Target,

    /// Server address.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: String,

    /// Concurrent connections.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 100)]
    pub connections: usize,

    /// Length of the measured window, in seconds, after the warmup [default: 10, or
    /// until --requests are done when that is given]. With --requests as well, whichever
    /// comes first ends the run.
    #[arg(long, short = 'd', value_name = "SECS")]
    pub duration: Option<f64>,

    /// Stop after N messages completed in the measured window (still at most 300 s
    /// unless --duration says otherwise).
    #[arg(long, short = 'n', value_name = "N")]
    pub requests: Option<u64>,

    /// Seconds of load before measuring starts (connections are made, caches warm).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub warmup: f64,

    /// Bytes per message (tcp-echo, udp-echo; ws: the payload of each frame).
    #[arg(long, short = 's', value_name = "BYTES", default_value_t = 64)]
    pub size: usize,

    /// http, ws: the request path (with any query) [default: /plaintext for http, / for
    /// ws].
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,

    /// http: the request method.
    #[arg(long, value_name = "METHOD", default_value = "GET")]
    pub method: String,

    /// http: an extra request header, `Name: value` (repeatable). `Host` defaults to
    /// --addr.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// http: a request body of N bytes (sent with `Content-Length`).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub body_size: usize,

    /// http: the status every response must have.
    #[arg(long, value_name = "CODE", default_value_t = 200)]
    pub expect_status: u16,

    /// http: the body length every response must have.
    #[arg(long, value_name = "N")]
    pub expect_length: Option<u64>,

    /// Messages kept in flight per connection (1: ping-pong).
    #[arg(long, short = 'p', value_name = "D", default_value_t = 1)]
    pub pipeline: usize,

    /// http: speak HTTP/2 (h2c with prior knowledge; with --tls, h2 by ALPN, which the
    /// server must choose). The request is the same; responses may come in any order.
    #[arg(long)]
    pub h2: bool,

    /// --h2: concurrent streams (requests in flight) per connection, within the
    /// server's SETTINGS_MAX_CONCURRENT_STREAMS.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "h2")]
    pub streams: usize,

    /// --h2: our receive window in bytes, each stream's (SETTINGS_INITIAL_WINDOW_SIZE)
    /// and the connection's (WINDOW_UPDATE), 65535..=2147483647. The default is the
    /// protocol's 65,535; large bodies need more, or the window's round trips are what
    /// gets measured (browsers use several MiB, h2load 1 GiB).
    #[arg(long, value_name = "BYTES", default_value_t = 65_535, requires = "h2")]
    pub h2_window: u32,

    /// Open loop: R messages/s in total on a fixed schedule, latency measured from when
    /// each message was due, not when it was sent (no coordinated omission, as wrk2).
    /// Without it: closed loop, each connection sends as soon as it may.
    #[arg(long, short = 'r', value_name = "R")]
    pub rate: Option<f64>,

    /// Open a new connection for every message (connect, send, receive, close):
    /// measures accept rates. Latency then includes the connect.
    #[arg(long)]
    pub connect_per_request: bool,

    /// Seconds without a response byte (or a connect) before a connection counts a
    /// timeout error and is replaced.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub timeout: f64,

    /// Engine: `uring` runs the load on a ringmaster shard (io_uring), `epoll` on a mio loop
    #[arg(long, value_enum, default_value_t = EngineKind::Uring)]
    pub engine: EngineKind,

    /// Load threads (each runs its own event loop over its share of the connections).
    #[arg(long, short = 't', value_name = "N", default_value_t = 1)]
    pub threads: usize,

    /// Report this process's CPU time (utime+stime from /proc/PID/stat over the measured
    /// window) per message, and its RSS (VmRSS).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Print the results as JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Speak TLS (tcp-echo, http, ws). Needs --tls-ca or --tls-insecure. Each new
    /// connection makes a full handshake unless --tls-resume.
    #[arg(long)]
    pub tls: bool,

    /// --tls: trust the certificates (roots) in this PEM file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls",
        conflicts_with = "tls_insecure"
    )]
    pub tls_ca: Option<PathBuf>,

    /// --tls: accept any certificate (handshake signatures are still verified).
    #[arg(long, requires = "tls")]
    pub tls_insecure: bool,

    /// --tls: the server name sent (SNI) and checked in the certificate [default: the
    /// host of --addr if it is a name, else localhost].
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_sni: Option<String>,

    /// --tls: a protocol offered with ALPN (repeatable, in order of preference)
    /// [default: http/1.1 for http and ws, none for tcp-echo].
    #[arg(long = "tls-alpn", value_name = "PROTO", requires = "tls")]
    pub tls_alpn: Vec<String>,

    /// --tls: keep a session cache, so reconnections resume (tickets) instead of making a
    /// full handshake.
    #[arg(long, requires = "tls")]
    pub tls_resume: bool,
}

/// Why a run could not be made.
enum Failure {
    /// Bad flags: exit 2.
    Usage(String),
    /// Anything else: exit 1.
    Runtime(String),
}

/// Runs the load described by `args`, prints the results on stdout (a table, or JSON
/// with `--json`) and returns the exit code: 0 when the run completed, 1 on a runtime
/// error (address does not resolve, no message at all completed, any response that
/// failed validation), 2 on bad usage. Problems are explained in one line on stderr.
pub fn run(args: &LoadArgs) -> ExitCode {
    match run_inner(args) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            let text = if args.json {
                report.json() + "\n"
            } else {
                report.human()
            };
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            if report.messages == 0 {
                eprintln!(
                    "ringmaster load: no message completed against {} (see errors above)",
                    report.addr
                );
                ExitCode::from(1)
            } else if report.errors.bad_response > 0 {
                eprintln!(
                    "ringmaster load: {} responses failed validation: the server is wrong",
                    report.errors.bad_response
                );
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("ringmaster load: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("ringmaster load: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The run, checked and resolved.
struct Plan {
    addr: SocketAddr,
    target: proto::TargetPlan,
    tls: Option<Arc<tls::TlsPlan>>,
    warmup: Duration,
    /// Longest measured window.
    window: Duration,
}

fn secs(name: &str, v: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(v).map_err(|_| {
        Failure::Usage(format!(
            "--{name} must be a number of seconds >= 0, not {v}"
        ))
    })
}

fn check(args: &LoadArgs) -> Result<Plan, Failure> {
    let usage = |m: &str| Err(Failure::Usage(m.to_string()));
    if args.connections == 0 {
        return usage("--connections must be at least 1");
    }
    if args.threads == 0 || args.threads > args.connections {
        return usage("--threads must be between 1 and --connections");
    }
    if args.size == 0 {
        return usage("--size must be at least 1 byte");
    }
    if args.pipeline == 0 {
        return usage("--pipeline must be at least 1");
    }
    if args.h2 {
        if args.target != Target::Http {
            return usage("--h2 is for the http target");
        }
        if args.pipeline > 1 {
            return usage(
                "--h2 keeps --streams requests in flight per connection: drop --pipeline",
            );
        }
        if args.streams == 0 {
            return usage("--streams must be at least 1");
        }
        if !(65_535..=2_147_483_647).contains(&args.h2_window) {
            return usage("--h2-window must be 65535..=2147483647 (the protocol's limits)");
        }
    }
    if args.connect_per_request && depth(args) > 1 {
        return usage("--connect-per-request sends one message per connection: drop --pipeline");
    }
    if args.requests == Some(0) {
        return usage("--requests must be at least 1");
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return usage("--rate must be a positive number of messages per second");
        }
    }
    let window = match (args.duration, args.requests) {
        (Some(d), _) => secs("duration", d)?,
        (None, Some(_)) => Duration::from_secs_f64(REQUESTS_TIME_CAP_SECS),
        (None, None) => Duration::from_secs(10),
    };
    if window.is_zero() {
        return usage("--duration must be more than 0 seconds");
    }
    let warmup = secs("warmup", args.warmup)?;
    let timeout = secs("timeout", args.timeout)?;
    if timeout.is_zero() {
        return usage("--timeout must be more than 0 seconds");
    }
    if let Some(pid) = args.server_pid {
        if let Err(e) = procfs::read_cpu(&pid.to_string()) {
            return Err(Failure::Usage(format!(
                "--server-pid {pid}: cannot read /proc/{pid}/stat ({e}); is the server running?"
            )));
        }
    }
    if !args.addr.contains(':') {
        return usage(&format!(
            "--addr `{}` is not HOST:PORT (e.g. 127.0.0.1:7000)",
            args.addr
        ));
    }
    let addr = args
        .addr
        .to_socket_addrs()
        .map_err(|e| Failure::Runtime(format!("cannot resolve --addr {}: {e}", args.addr)))?
        .next()
        .ok_or_else(|| Failure::Runtime(format!("--addr {} resolves to nothing", args.addr)))?;
    let target = match args.target {
        Target::TcpEcho => proto::TargetPlan::TcpEcho { size: args.size },
        Target::UdpEcho => {
            if args.pipeline > 1 || args.rate.is_some() || args.connect_per_request {
                return usage(
                    "udp-echo is closed-loop ping-pong: no --pipeline, --rate or --connect-per-request",
                );
            }
            if args.size > 65_507 {
                return usage("udp-echo: --size must fit in one datagram (at most 65507 bytes)");
            }
            proto::TargetPlan::UdpEcho { size: args.size }
        }
        Target::Http if args.h2 => proto::TargetPlan::H2(Arc::new(
            proto::H2Spec::new(
                &args.addr,
                args.tls,
                &args.method,
                args.path.as_deref().unwrap_or("/plaintext"),
                &args.headers,
                args.body_size,
                proto::Expect {
                    status: args.expect_status,
                    length: args.expect_length,
                },
            )
            .map(|spec| spec.with_streams(args.streams).with_window(args.h2_window))
            .map_err(Failure::Usage)?,
        )),
        Target::Http => proto::TargetPlan::Http(Arc::new(
            proto::HttpSpec::new(
                &args.addr,
                &args.method,
                args.path.as_deref().unwrap_or("/plaintext"),
                &args.headers,
                args.body_size,
                args.expect_status,
                args.expect_length,
            )
            .map_err(Failure::Usage)?,
        )),
        Target::Ws => proto::TargetPlan::Ws(Arc::new(
            proto::WsSpec::new(&args.addr, args.path.as_deref().unwrap_or("/"), args.size)
                .map_err(Failure::Usage)?,
        )),
    };
    let tls = if args.tls {
        Some(Arc::new(tls_plan(args)?))
    } else {
        None
    };
    Ok(Plan {
        addr,
        target,
        tls,
        warmup,
        window,
    })
}

/// The TLS client configuration `--tls-*` describe.
fn tls_plan(args: &LoadArgs) -> Result<tls::TlsPlan, Failure> {
    if args.target == Target::UdpEcho {
        return Err(Failure::Usage(
            "udp-echo has no --tls (DTLS is not supported): use tcp-echo, http or ws".into(),
        ));
    }
    let trust = match (&args.tls_ca, args.tls_insecure) {
        (Some(path), _) => tls::Trust::Roots(path),
        (None, true) => tls::Trust::Any,
        (None, false) => {
            return Err(Failure::Usage(
                "--tls needs --tls-ca FILE (the roots to trust) or --tls-insecure".into(),
            ))
        }
    };
    let sni = match &args.tls_sni {
        Some(name) => name.clone(),
        None => default_sni(&args.addr),
    };
    let alpn = match (args.tls_alpn.is_empty(), args.target) {
        (true, Target::Http) if args.h2 => vec!["h2".to_string()],
        (true, Target::Http | Target::Ws) => vec!["http/1.1".to_string()],
        _ => args.tls_alpn.clone(),
    };
    let require = args.h2.then_some("h2");
    // A bad --tls-ca file is a usage error: the run never starts.
    tls::TlsPlan::new(trust, &sni, &alpn, args.tls_resume, require).map_err(Failure::Usage)
}

/// The host of `HOST:PORT` when it is a name; `localhost` for an address (what a
/// development certificate is made for).
fn default_sni(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        "localhost".to_string()
    } else {
        host.to_string()
    }
}

/// Messages in flight per connection: `--streams` with `--h2`, else `--pipeline`.
fn depth(args: &LoadArgs) -> usize {
    if args.h2 {
        args.streams
    } else {
        args.pipeline
    }
}

/// Splits `total` into `parts` shares that differ by at most one.
fn share(total: u64, parts: usize, k: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((k as u64) < total % parts)
}

fn run_inner(args: &LoadArgs) -> Result<Report, Failure> {
    let plan = check(args)?;
    let timeout = Duration::from_secs_f64(args.timeout);
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r));
    let stagger = args
        .rate
        .map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r));
    let server_pid = args.server_pid.map(|p| p.to_string());

    let start = Instant::now();
    let warmup_end = start + plan.warmup;
    let deadline = warmup_end + plan.window;
    let live = Arc::new(Live::default());
    let (tx, rx) = mpsc::channel::<std::io::Result<ThreadReport>>();
    let mut first_conn = 0;
    let mut handles = Vec::with_capacity(args.threads);
    for k in 0..args.threads {
        let connections = share(args.connections as u64, args.threads, k) as usize;
        let tplan = ThreadPlan {
            addr: plan.addr,
            first_conn,
            connections,
            target: plan.target.clone(),
            tls: plan.tls.clone(),
            pipeline: depth(args),
            interval,
            stagger,
            connect_per_request: args.connect_per_request,
            timeout,
            start,
            warmup_end,
            deadline,
            quota: args.requests.map(|n| share(n, args.threads, k)),
            engine: args.engine,
        };
        first_conn += connections;
        let (tx, live) = (tx.clone(), Arc::clone(&live));
        let h = std::thread::Builder::new()
            .name(format!("load-{k}"))
            .spawn(move || {
                let _ = tx.send(engine::run_thread(&tplan, &live));
            })
            .map_err(|e| Failure::Runtime(format!("cannot start a load thread: {e}")))?;
        handles.push(h);
    }
    drop(tx);

    // Wait for the threads, sampling CPU times when the measured window opens, and
    // showing progress when a person is watching.
    let progress = std::io::stderr().is_terminal();
    let mut cpu_before = None;
    let mut reports = Vec::with_capacity(args.threads);
    let mut last_shown = (Instant::now(), 0u64);
    let mut failure = None;
    while reports.len() + usize::from(failure.is_some()) < args.threads {
        let now = Instant::now();
        if cpu_before.is_none() && now >= warmup_end {
            cpu_before = Some(sample_cpu(server_pid.as_deref()));
        }
        let mut wait = Duration::from_millis(200);
        if cpu_before.is_none() {
            wait = wait.min(warmup_end.saturating_duration_since(now));
        }
        match rx.recv_timeout(wait) {
            Ok(Ok(r)) => reports.push(r),
            Ok(Err(e)) => failure = Some(e),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if progress && last_shown.0.elapsed() >= Duration::from_secs(1) {
            let msgs = live.messages.load(std::sync::atomic::Ordering::Relaxed);
            let errs = live.errors.load(std::sync::atomic::Ordering::Relaxed);
            let now = Instant::now();
            let rate = (msgs - last_shown.1) as f64 / (now - last_shown.0).as_secs_f64();
            let phase = if now < warmup_end { "warmup" } else { "load" };
            let t = now.saturating_duration_since(start).as_secs_f64();
            eprint!(
                "\r\x1b[2K  {phase} {t:5.1}/{:.0} s  {rate:>10.0} msg/s  {errs} errors",
                (deadline - start).as_secs_f64()
            );
            last_shown = (now, msgs);
        }
    }
    let cpu_after = sample_cpu(server_pid.as_deref());
    let rss_kib = server_pid
        .as_deref()
        .and_then(|p| procfs::read_rss_kib(p).ok());
    if progress {
        eprint!("\r\x1b[2K");
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(e) = failure {
        return Err(Failure::Runtime(format!("load thread failed: {e}")));
    }
    if reports.len() < args.threads {
        return Err(Failure::Runtime("a load thread died".into()));
    }
    // Threads finished before the window opened (cannot happen with a window > 0, but a
    // sample must exist): count from now.
    let cpu_before = cpu_before.unwrap_or_else(|| sample_cpu(server_pid.as_deref()));

    let mut total = Recorder::new();
    let mut finished = warmup_end;
    for r in &reports {
        total.merge(&r.recorder);
        finished = finished.max(r.finished);
    }
    let elapsed = finished.saturating_duration_since(warmup_end).as_secs_f64();
    let per_s = |v: u64| {
        if elapsed > 0.0 {
            v as f64 / elapsed
        } else {
            0.0
        }
    };
    let per_msg = |cpu_s: f64| (total.messages > 0).then(|| cpu_s * 1e6 / total.messages as f64);

    let client_cpu = match (cpu_before.client, cpu_after.client) {
        (Some(a), Some(b)) => a.seconds_until(&b),
        _ => 0.0,
    };
    let server = match (args.server_pid, cpu_before.server, cpu_after.server) {
        (Some(pid), Some(a), Some(b)) => {
            let cpu_s = a.seconds_until(&b);
            Some(ServerUsage {
                pid,
                cpu_s,
                cpu_us_per_message: per_msg(cpu_s),
                rss_kib,
            })
        }
        (Some(pid), _, _) => {
            return Err(Failure::Runtime(format!(
                "process {pid} went away during the run (cannot read /proc/{pid}/stat)"
            )))
        }
        _ => None,
    };
    let machine = match (cpu_before.machine, cpu_after.machine) {
        (Some(a), Some(b)) => {
            let busy_cpu_s = procfs::ticks_to_s(b.busy.saturating_sub(a.busy));
            let ours = client_cpu + server.as_ref().map_or(0.0, |s| s.cpu_s);
            Some(MachineUsage {
                busy_cpu_s,
                steal_s: procfs::ticks_to_s(b.steal.saturating_sub(a.steal)),
                other_cpu_s: (busy_cpu_s - ours).max(0.0),
            })
        }
        _ => None,
    };
    // The uring engine tags each datagram with its flow: smaller ones go to epoll.
    let udp_small = args.target == Target::UdpEcho
        && args.engine == EngineKind::Uring
        && args.size < engine::UDP_URING_MIN_SIZE;
    Ok(Report {
        target: args.target.name(),
        addr: plan.addr.to_string(),
        connections: args.connections,
        threads: args.threads,
        size: plan.target.request_len(),
        engine: if udp_small {
            EngineKind::Epoll
        } else {
            args.engine
        },
        note: udp_small.then_some(
            "udp-echo below 16 B runs on the epoll engine: the uring engine's payload names its flow in 16 B (--engine uring ignored)",
        ),
        pipeline: depth(args),
        h2: args.h2,
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        rate: args.rate,
        connect_per_request: args.connect_per_request,
        tls: args.tls,
        warmup_s: plan.warmup.as_secs_f64(),
        elapsed_s: elapsed,
        messages: total.messages,
        messages_per_s: per_s(total.messages),
        bytes_sent: total.bytes_sent,
        bytes_received: total.bytes_received,
        bytes_per_s: per_s(total.bytes_received),
        errors_total: total.errors.total(),
        errors: total.errors,
        latency_us: LatencySummary::of(&total.hist),
        latency_cdf_us: stats::latency_cdf(&total.hist),
        server,
        client: ClientUsage {
            cpu_s: client_cpu,
            cpu_us_per_message: per_msg(client_cpu),
        },
        machine,
    })
}

/// CPU times of the server (if asked for) and of this process, at one instant.
struct CpuSample {
    server: Option<procfs::CpuTicks>,
    client: Option<procfs::CpuTicks>,
    machine: Option<procfs::MachineTicks>,
}

fn sample_cpu(server_pid: Option<&str>) -> CpuSample {
    CpuSample {
        server: server_pid.and_then(|p| procfs::read_cpu(p).ok()),
        client: procfs::read_cpu("self").ok(),
        machine: procfs::read_machine().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn parse(args: &[&str]) -> LoadArgs {
        Cli::try_parse_from(std::iter::once("load").chain(args.iter().copied()))
            .unwrap()
            .load
    }

    #[test]
    fn defaults_are_bounded() {
        let a = parse(&["tcp-echo", "--addr", "127.0.0.1:1"]);
        assert_eq!(a.target, Target::TcpEcho);
        assert_eq!(
            (a.connections, a.size, a.pipeline, a.threads),
            (100, 64, 1, 1)
        );
        let p = check(&a).ok().unwrap();
        assert_eq!(p.window, Duration::from_secs(10));
    }

    /// The shape `servers/main.rs` uses: `ringmaster load ...` as a subcommand.
    #[test]
    fn works_as_a_subcommand() {
        #[derive(Parser)]
        struct Main {
            #[command(subcommand)]
            command: Command,
        }
        #[derive(clap::Subcommand)]
        enum Command {
            /// Load generator.
            Load(LoadArgs),
        }
        let m = Main::try_parse_from([
            "ringmaster",
            "load",
            "tcp-echo",
            "--addr",
            "[::1]:7000",
            "-c",
            "3",
            "--json",
        ])
        .unwrap();
        let Command::Load(a) = m.command;
        assert_eq!(
            (a.connections, a.json, a.addr.as_str()),
            (3, true, "[::1]:7000")
        );
        Main::command().debug_assert();
    }

    #[test]
    fn unknown_target_is_rejected() {
        assert!(Cli::try_parse_from(["load", "carrier-pigeon", "--addr", "x:1"]).is_err());
    }

    #[test]
    fn bad_usage_is_usage() {
        for bad in [
            &["tcp-echo", "--addr", "127.0.0.1:1", "--connections", "0"][..],
            &[
                "tcp-echo",
                "--addr",
                "127.0.0.1:1",
                "--pipeline",
                "2",
                "--connect-per-request",
            ],
            &["tcp-echo", "--addr", "127.0.0.1:1", "--rate=-5"],
            &["tcp-echo", "--addr", "127.0.0.1:1", "--duration", "0"],
            &["tcp-echo", "--addr", "127.0.0.1:1", "--threads", "200"],
            &["tcp-echo", "--addr", "localhost"],
        ] {
            assert!(
                matches!(check(&parse(bad)), Err(Failure::Usage(_))),
                "{bad:?}"
            );
        }
    }

    /// A server on 127.0.0.1 that runs `conn` on a thread of its own for every
    /// connection it accepts; returns its address.
    fn serve_each(conn: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conn = Arc::new(conn);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(s) = stream else { return };
                let conn = Arc::clone(&conn);
                std::thread::spawn(move || conn(s));
            }
        });
        addr
    }

    /// A thread-per-connection echo server on 127.0.0.1 that applies `mangle` to what
    /// it sends back; returns its address.
    fn echo_server(mangle: fn(&mut [u8])) -> SocketAddr {
        use std::io::{Read, Write};
        serve_each(move |mut s| {
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    return;
                }
                mangle(&mut buf[..n]);
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        })
    }

    /// The arguments of a run of `target` against `addr` on 8 connections, and `extra`.
    fn target_args(target: &str, addr: SocketAddr, extra: &[&str]) -> LoadArgs {
        let addr = addr.to_string();
        let mut v = vec![target, "--addr", &addr, "--connections", "8"];
        v.extend_from_slice(extra);
        parse(&v)
    }

    fn args(addr: SocketAddr, extra: &[&str]) -> LoadArgs {
        target_args("tcp-echo", addr, extra)
    }

    fn load(a: &LoadArgs) -> Report {
        match run_inner(a) {
            Ok(r) => r,
            Err(Failure::Usage(m) | Failure::Runtime(m)) => panic!("{m}"),
        }
    }

    #[test]
    fn closed_loop_against_a_correct_server() {
        let addr = echo_server(|_| {});
        let own = std::process::id().to_string();
        let r = load(&args(
            addr,
            &[
                "--requests",
                "2000",
                "--size",
                "300",
                "--pipeline",
                "4",
                "--threads",
                "2",
            ],
        ));
        assert_eq!(r.errors_total, 0, "{r:?}");
        assert_eq!(r.messages, 2000);
        assert_eq!(r.bytes_received, 2000 * 300);
        assert!(r.latency_us.max > 0.0 && r.messages_per_s > 0.0);
        // Our own process as the "server": the /proc plumbing end to end.
        let mut a = args(addr, &["--duration", "0.3", "--warmup", "0.1"]);
        a.server_pid = Some(own.parse().unwrap());
        let r = load(&a);
        let sv = r.server.expect("server usage");
        assert!(sv.rss_kib.unwrap() > 0);
        assert!(r.elapsed_s >= 0.3 && r.elapsed_s < 1.0, "{}", r.elapsed_s);
    }

    #[test]
    fn open_loop_and_connection_per_request() {
        let addr = echo_server(|_| {});
        let r = load(&args(addr, &["--duration", "0.5", "--rate", "2000"]));
        assert_eq!(r.errors_total, 0, "{r:?}");
        // 1000 due in the window, give or take the edges.
        assert!((900..=1100).contains(&r.messages), "{}", r.messages);
        let r = load(&args(addr, &["--requests", "200", "--connect-per-request"]));
        assert_eq!((r.messages, r.errors_total), (200, 0), "{r:?}");
    }

    #[test]
    fn a_wrong_server_is_caught() {
        let addr = echo_server(|b| b[b.len() / 2] ^= 0x20);
        let r = load(&args(addr, &["--duration", "0.3"]));
        assert_eq!(r.messages, 0);
        assert!(r.errors.bad_response > 0, "{r:?}");
    }

    #[test]
    fn a_closed_port_counts_refused_connections() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        }; // dropped: nobody listens there now
        let r = load(&args(addr, &["--duration", "0.3"]));
        assert_eq!(r.messages, 0);
        assert!(r.errors.connect_refused >= 8, "{r:?}");
    }

    #[test]
    fn the_epoll_engine_agrees() {
        let addr = echo_server(|_| {});
        let r = load(&args(
            addr,
            &["--engine", "epoll", "--requests", "500", "-p", "2"],
        ));
        assert_eq!((r.messages, r.errors_total), (500, 0), "{r:?}");
        let bad = echo_server(|b| b[0] ^= 1);
        let r = load(&args(bad, &["--engine", "epoll", "--duration", "0.3"]));
        assert!(r.errors.bad_response > 0, "{r:?}");
    }

    /// A thread-per-connection HTTP/1.1 keep-alive server on 127.0.0.1 that answers
    /// every (pipelined) request with `response`, after reading its body; returns its
    /// address.
    fn http_server(response: &'static [u8]) -> SocketAddr {
        use std::io::{Read, Write};
        serve_each(move |mut s| {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let mut out = Vec::new();
                // Every complete request in `buf`, each one response.
                loop {
                    let mut headers = [httparse::EMPTY_HEADER; 16];
                    let mut req = httparse::Request::new(&mut headers);
                    let Ok(httparse::Status::Complete(head)) = req.parse(&buf) else {
                        break;
                    };
                    let body = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |h| {
                            std::str::from_utf8(h.value).unwrap().parse().unwrap()
                        });
                    if buf.len() < head + body {
                        break;
                    }
                    buf.drain(..head + body);
                    out.extend_from_slice(response);
                }
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        })
    }

    fn http_args(addr: SocketAddr, extra: &[&str]) -> LoadArgs {
        target_args("http", addr, extra)
    }

    const PLAINTEXT: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nHello\r\n8\r\n, World!\r\n0\r\n\r\n";

    #[test]
    fn http_keep_alive_pipelined_and_churn_on_both_engines() {
        let ok = http_server(PLAINTEXT);
        let chunked = http_server(CHUNKED);
        for engine in ["uring", "epoll"] {
            for (addr, extra) in [
                (ok, &["-p", "16", "--expect-length", "13"][..]),
                (
                    ok,
                    &["--method", "POST", "--body-size", "5000", "-H", "X-Test: 1"],
                ),
                (chunked, &["-p", "4", "--expect-length", "13"]),
                (ok, &["--connect-per-request"]),
            ] {
                let mut v = vec!["--engine", engine, "--requests", "3000"];
                v.extend_from_slice(extra);
                let r = load(&http_args(addr, &v));
                assert_eq!(
                    (r.messages, r.errors_total),
                    (3000, 0),
                    "{engine} {extra:?} {r:?}"
                );
                assert_eq!(r.target, "http");
            }
        }
    }

    #[test]
    fn http_wrong_status_or_length_is_caught() {
        let not_found = http_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        let ok = http_server(PLAINTEXT);
        for engine in ["uring", "epoll"] {
            let r = load(&http_args(
                not_found,
                &["--engine", engine, "--duration", "0.3"],
            ));
            assert_eq!(r.messages, 0);
            assert!(r.errors.bad_response > 0, "{r:?}");
            let r = load(&http_args(
                ok,
                &[
                    "--engine",
                    engine,
                    "--duration",
                    "0.3",
                    "--expect-length",
                    "12",
                ],
            ));
            assert_eq!(r.messages, 0);
            assert!(r.errors.bad_response > 0, "{r:?}");
        }
        // ...and the status asked for passes.
        let r = load(&http_args(
            not_found,
            &["--requests", "100", "--expect-status", "404"],
        ));
        assert_eq!((r.messages, r.errors_total), (100, 0), "{r:?}");
    }

    #[test]
    fn http_bad_flags_are_usage() {
        for bad in [
            &["http", "--addr", "127.0.0.1:1", "--path", "no-slash"][..],
            &["http", "--addr", "127.0.0.1:1", "-H", "NoColon"],
            &["http", "--addr", "127.0.0.1:1", "--method", "G T"],
            &["http", "--addr", "127.0.0.1:1", "--expect-status", "42"],
        ] {
            assert!(
                matches!(check(&parse(bad)), Err(Failure::Usage(_))),
                "{bad:?}"
            );
        }
    }

    /// A thread-per-connection WebSocket echo server on 127.0.0.1: answers the upgrade
    /// (with a wrong `Sec-WebSocket-Accept` when `wrong_accept`), pings once, then
    /// echoes every binary message unmasked; counts the pongs it gets in `pongs`.
    fn ws_server(wrong_accept: bool, pongs: &'static std::sync::atomic::AtomicU64) -> SocketAddr {
        use base64::Engine as _;
        use sha1::Digest as _;
        use std::io::{Read, Write};
        serve_each(move |mut s| {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16384];
            let mut upgraded = false;
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let mut out = Vec::new();
                if !upgraded {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8(buf.drain(..end + 4).collect()).unwrap();
                    let key = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                        .unwrap();
                    let mut h = sha1::Sha1::new();
                    h.update(key.as_bytes());
                    h.update(if wrong_accept {
                        "x"
                    } else {
                        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
                    });
                    let accept = base64::engine::general_purpose::STANDARD.encode(h.finalize());
                    out.extend_from_slice(
                        format!(
                            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(&[0x89, 2, b'h', b'i']); // a ping
                    upgraded = true;
                }
                // Every complete client frame in `buf`.
                loop {
                    if buf.len() < 2 {
                        break;
                    }
                    let (len, at) = match buf[1] & 0x7F {
                        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                        127 if buf.len() >= 10 => (
                            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                            10,
                        ),
                        126 | 127 => break,
                        n => (n as usize, 2),
                    };
                    if buf.len() < at + 4 + len {
                        break;
                    }
                    let key: [u8; 4] = buf[at..at + 4].try_into().unwrap();
                    let op = buf[0] & 0x0F;
                    let mut p: Vec<u8> = buf.drain(..at + 4 + len).skip(at + 4).collect();
                    for (i, b) in p.iter_mut().enumerate() {
                        *b ^= key[i % 4];
                    }
                    if op == 0xA {
                        pongs
                            .fetch_add(u64::from(p == b"hi"), std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    out.push(0x82);
                    match len {
                        0..=125 => out.push(len as u8),
                        126..=65535 => {
                            out.push(126);
                            out.extend_from_slice(&(len as u16).to_be_bytes());
                        }
                        _ => {
                            out.push(127);
                            out.extend_from_slice(&(len as u64).to_be_bytes());
                        }
                    }
                    out.extend_from_slice(&p);
                }
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        })
    }

    #[test]
    fn ws_keep_alive_pipelined_and_churn_on_both_engines() {
        static PONGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        static NONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let ok = ws_server(false, &PONGS).to_string();
        for engine in ["uring", "epoll"] {
            for extra in [
                &["-p", "8", "--size", "300"][..],
                &["--size", "70000", "--path", "/echo"],
                &["--connect-per-request"],
            ] {
                let mut v = vec![
                    "ws",
                    "--addr",
                    &ok,
                    "-c",
                    "8",
                    "--engine",
                    engine,
                    "--requests",
                    "1000",
                ];
                v.extend_from_slice(extra);
                let r = load(&parse(&v));
                assert_eq!(
                    (r.messages, r.errors_total),
                    (1000, 0),
                    "{engine} {extra:?} {r:?}"
                );
                assert_eq!((r.target, r.tls), ("ws", false));
            }
        }
        // Every connection answered the server's ping.
        assert!(
            PONGS.load(std::sync::atomic::Ordering::Relaxed) >= 16,
            "no pong"
        );
        let wrong = ws_server(true, &NONE).to_string();
        for engine in ["uring", "epoll"] {
            let r = load(&parse(&[
                "ws",
                "--addr",
                &wrong,
                "-c",
                "4",
                "--engine",
                engine,
                "--duration",
                "0.3",
            ]));
            assert_eq!(r.messages, 0);
            assert!(r.errors.bad_response > 0, "{r:?}");
            assert_eq!(r.errors.bad_response, r.errors_total, "{r:?}");
        }
        // A server that never answers the upgrade: the handshake times out like a
        // request (and no frame was ever sent, so nothing else is counted).
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let held: Vec<_> = silent.incoming().take(64).collect();
            drop(held);
        });
        for engine in ["uring", "epoll"] {
            let r = load(&parse(&[
                "ws",
                "--addr",
                &addr,
                "-c",
                "2",
                "--engine",
                engine,
                "--duration",
                "0.5",
                "--timeout",
                "0.1",
            ]));
            assert_eq!(r.messages, 0);
            assert!(r.errors.timeout > 0, "{engine}: {r:?}");
            assert_eq!(r.errors.timeout, r.errors_total, "{engine}: {r:?}");
        }
    }

    /// A self-signed certificate for `localhost`: (DER, PKCS#8 key DER, PEM).
    fn self_signed() -> (Vec<u8>, Vec<u8>, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (
            c.cert.der().to_vec(),
            c.key_pair.serialize_der(),
            c.cert.pem(),
        )
    }

    /// A thread-per-connection TLS echo server (rustls) on 127.0.0.1 with this
    /// certificate; returns its address.
    fn tls_echo_server(cert: Vec<u8>, key: Vec<u8>) -> SocketAddr {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        use std::io::{Read, Write};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![CertificateDer::from(cert)],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
                )
                .unwrap(),
        );
        serve_each(move |s| {
            // Records go out as written, not after a delayed ACK.
            let _ = s.set_nodelay(true);
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut buf = [0u8; 16384];
            while let Ok(n) = tls.read(&mut buf) {
                if n == 0 || tls.write_all(&buf[..n]).is_err() || tls.flush().is_err() {
                    return;
                }
            }
        })
    }

    /// Writes `pem` to a file of this test process; returns its path.
    fn pem_file(name: &str, pem: &str) -> String {
        let p = std::env::temp_dir().join(format!("rm-load-{}-{name}.pem", std::process::id()));
        std::fs::write(&p, pem).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn tls_echo_with_any_or_a_given_certificate_on_both_engines() {
        let (cert, key, pem) = self_signed();
        let addr = tls_echo_server(cert, key);
        let ca = pem_file("ca", &pem);
        for engine in ["uring", "epoll"] {
            for extra in [
                &["--tls-insecure", "-p", "4", "--size", "300"][..],
                &["--tls-ca", &ca, "--tls-sni", "localhost", "--size", "20000"],
                &["--tls-insecure", "--connect-per-request"],
                &["--tls-ca", &ca, "--connect-per-request", "--tls-resume"],
            ] {
                let mut v = vec!["--tls", "--engine", engine, "--requests", "400"];
                v.extend_from_slice(extra);
                let r = load(&args(addr, &v));
                assert_eq!(
                    (r.messages, r.errors_total),
                    (400, 0),
                    "{engine} {extra:?} {r:?}"
                );
                assert!(r.tls);
            }
        }
    }

    #[test]
    fn tls_with_an_untrusted_certificate_counts_tls_errors() {
        let (cert, key, _) = self_signed();
        let addr = tls_echo_server(cert, key);
        let (_, _, other) = self_signed();
        let wrong_ca = pem_file("wrong-ca", &other);
        for engine in ["uring", "epoll"] {
            let r = load(&args(
                addr,
                &[
                    "--tls",
                    "--tls-ca",
                    &wrong_ca,
                    "--engine",
                    engine,
                    "--duration",
                    "0.3",
                ],
            ));
            assert_eq!(r.messages, 0, "{r:?}");
            assert!(r.errors.tls > 0, "{r:?}");
            assert_eq!(r.errors.tls, r.errors_total, "{r:?}");
        }
        // A name the certificate is not for.
        let r = load(&args(
            addr,
            &[
                "--tls",
                "--tls-ca",
                &wrong_ca,
                "--tls-sni",
                "example.com",
                "--duration",
                "0.2",
            ],
        ));
        assert_eq!(r.messages, 0, "{r:?}");
        assert!(r.errors.tls > 0, "{r:?}");
        // Plaintext against a TLS server: the server never answers a plain message as
        // an echo.
        let r = load(&args(addr, &["--duration", "0.3", "--timeout", "0.1"]));
        assert_eq!(r.messages, 0, "{r:?}");
    }

    #[test]
    fn h2_flags_are_checked() {
        let a = ["--addr", "127.0.0.1:1"];
        for bad in [
            &["tcp-echo", "--h2"][..],
            &["http", "--h2", "-p", "4"],
            &["http", "--h2", "--streams", "0"],
            &["http", "--h2", "--streams", "2", "--connect-per-request"],
            &["http", "--h2", "--header", "Connection: close"],
            &["http", "--h2", "--header", "TE: gzip"],
            &["http", "--h2", "--h2-window", "1000"],
            &["http", "--h2", "--h2-window", "2147483648"],
        ] {
            let args = parse(&[bad, &a[..]].concat());
            assert!(matches!(check(&args), Err(Failure::Usage(_))), "{bad:?}");
        }
        // --streams needs --h2.
        let no_h2 = ["http", "--addr", "127.0.0.1:1", "--streams", "4"];
        assert!(Cli::try_parse_from(std::iter::once("load").chain(no_h2)).is_err());
        let ok = parse(&[
            "http",
            "--h2",
            "--streams",
            "8",
            "-H",
            "Host: x",
            a[0],
            a[1],
        ]);
        assert!(check(&ok).is_ok());
        assert_eq!(depth(&ok), 8);
    }

    #[test]
    fn tls_flags_are_checked() {
        let (_, _, pem) = self_signed();
        let ca = pem_file("flags", &pem);
        let empty = pem_file("empty", "");
        for bad in [
            &["tcp-echo", "--addr", "127.0.0.1:1", "--tls"][..],
            &[
                "udp-echo",
                "--addr",
                "127.0.0.1:1",
                "--tls",
                "--tls-insecure",
            ],
            &[
                "tcp-echo",
                "--addr",
                "127.0.0.1:1",
                "--tls",
                "--tls-ca",
                &empty,
            ],
            &[
                "tcp-echo",
                "--addr",
                "127.0.0.1:1",
                "--tls",
                "--tls-ca",
                "/nonexistent",
            ],
            &[
                "tcp-echo",
                "--addr",
                "127.0.0.1:1",
                "--tls",
                "--tls-insecure",
                "--tls-sni",
                "a b",
            ],
        ] {
            assert!(
                matches!(check(&parse(bad)), Err(Failure::Usage(_))),
                "{bad:?}"
            );
        }
        assert!(check(&parse(&[
            "http",
            "--addr",
            "127.0.0.1:1",
            "--tls",
            "--tls-ca",
            &ca
        ]))
        .is_ok());
        // --tls-* without --tls, and both trust flags, are clap errors.
        assert!(
            Cli::try_parse_from(["load", "tcp-echo", "--addr", "h:1", "--tls-insecure"]).is_err()
        );
        assert!(Cli::try_parse_from([
            "load",
            "tcp-echo",
            "--addr",
            "h:1",
            "--tls",
            "--tls-insecure",
            "--tls-ca",
            "x"
        ])
        .is_err());
        assert_eq!(default_sni("127.0.0.1:443"), "localhost");
        assert_eq!(default_sni("[::1]:443"), "localhost");
        assert_eq!(default_sni("example.com:443"), "example.com");
    }

    /// A UDP echo server on 127.0.0.1: drops every `drop_every`-th datagram, echoes
    /// every `late_every`-th 100 ms late (0: none), and applies `mangle` to what it sends
    /// back; returns its address. The thread lives as long as the test process.
    fn udp_echo_server(drop_every: u64, late_every: u64, mangle: fn(&mut [u8])) -> SocketAddr {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let mut k = 0u64;
            let mut late = std::collections::VecDeque::new();
            loop {
                while late
                    .front()
                    .is_some_and(|(at, _, _): &(Instant, Vec<u8>, SocketAddr)| {
                        *at <= Instant::now()
                    })
                {
                    if let Some((_, data, peer)) = late.pop_front() {
                        let _ = sock.send_to(&data, peer);
                    }
                }
                let (n, peer) = match sock.recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue
                    }
                    Err(_) => return,
                };
                k += 1;
                if drop_every > 0 && k % drop_every == 0 {
                    continue;
                }
                mangle(&mut buf[..n]);
                if late_every > 0 && k % late_every == 0 {
                    let at = Instant::now() + Duration::from_millis(100);
                    late.push_back((at, buf[..n].to_vec(), peer));
                    continue;
                }
                let _ = sock.send_to(&buf[..n], peer);
            }
        });
        addr
    }

    fn udp_load(addr: SocketAddr, engine: &str, extra: &[&str]) -> Report {
        let addr = addr.to_string();
        let mut v = vec!["udp-echo", "--addr", &addr, "--engine", engine];
        v.extend_from_slice(extra);
        load(&parse(&v))
    }

    #[test]
    fn udp_echo_on_both_engines_counts_lost_late_and_wrong_datagrams() {
        let good = udp_echo_server(0, 0, |_| {});
        let lossy = udp_echo_server(10, 0, |_| {});
        let late = udp_echo_server(0, 10, |_| {});
        let mangled = udp_echo_server(0, 0, |d| {
            if let Some(b) = d.last_mut() {
                *b ^= 1;
            }
        });
        let lossy_args = ["-c", "4", "--duration", "0.5", "--timeout", "0.02"];
        for (engine, kind) in [("uring", EngineKind::Uring), ("epoll", EngineKind::Epoll)] {
            let r = udp_load(
                good,
                engine,
                &["-c", "8", "-t", "2", "--requests", "2000", "--size", "100"],
            );
            assert_eq!((r.messages, r.errors_total), (2000, 0), "{engine}: {r:?}");
            assert_eq!(r.bytes_received, 2000 * 100, "{engine}");
            assert_eq!((r.engine, r.note), (kind, None), "{engine}");
            // Lost datagrams are timeouts, and only that.
            let r = udp_load(lossy, engine, &lossy_args);
            assert!(r.messages > 0 && r.errors.timeout > 0, "{engine}: {r:?}");
            assert_eq!(r.errors_total, r.errors.timeout, "{engine}: {r:?}");
            // The late echo of a datagram already timed out is not a second error.
            let r = udp_load(late, engine, &lossy_args);
            assert!(r.messages > 0 && r.errors.timeout > 0, "{engine}: {r:?}");
            assert_eq!(r.errors_total, r.errors.timeout, "{engine}: {r:?}");
            // A flipped byte is a bad response.
            let r = udp_load(
                mangled,
                engine,
                &["-c", "2", "--duration", "0.3", "--timeout", "0.05"],
            );
            assert!(r.errors.bad_response > 0, "{engine}: {r:?}");
            assert_eq!(r.messages, 0, "{engine}: {r:?}");
        }
        // Below the uring engine's 16 B: epoll, and the report says so.
        let r = udp_load(
            good,
            "uring",
            &["-c", "2", "--requests", "100", "--size", "8"],
        );
        assert_eq!((r.messages, r.errors_total), (100, 0), "{r:?}");
        assert_eq!(r.engine, EngineKind::Epoll);
        assert!(r.note.is_some());
        let good = good.to_string();
        assert!(matches!(
            check(&parse(&["udp-echo", "--addr", &good, "-p", "2"])),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn shares_add_up() {
        for (total, parts) in [(10u64, 3usize), (100, 1), (7, 7), (5, 2)] {
            let sum: u64 = (0..parts).map(|k| share(total, parts, k)).sum();
            assert_eq!(sum, total);
        }
    }
}
