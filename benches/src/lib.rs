//! ringmaster's load generator (`ringmaster load`) and benchmark helpers.
//!
//! `ringmaster load tcp-echo --addr 127.0.0.1:7000` opens `--connections` connections and
//! plays ping-pong with an echo server, validating every byte that comes back, then
//! prints messages/s, bytes/s, errors by kind, latency percentiles (hdrhistogram) and,
//! with `--server-pid`, the server's CPU time per message and its RSS. `http` sends a
//! fixed HTTP/1.1 request (keep-alive, `--pipeline` deep, or a connection per request)
//! and checks each response's status and framing; `udp-echo` plays datagram ping-pong.
//!
//! Layout: [`LoadArgs`] and [`run`] (this file) plan the run, start the load threads
//! and report; `proto` holds what is said on a connection, without I/O (echo, HTTP);
//! `engine` moves the bytes (a ringmaster shard by default, a mio/epoll loop as a
//! cross-check, and a mio loop of UDP sockets for `udp-echo`); `stats`, `procfs` and
//! `report` measure and print.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod engine;
mod procfs;
mod proto;
mod report;
mod stats;

use std::io::IsTerminal;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
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
    /// UDP echo: one datagram in flight per "connection" (a connected UDP socket), each
    /// must come back byte for byte; one not back within --timeout counts as a timeout.
    /// Always runs on the epoll engine (the runtime has no UDP client).
    UdpEcho,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::TcpEcho => "tcp-echo",
            Target::Http => "http",
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

    /// Bytes per message (tcp-echo, udp-echo).
    #[arg(long, short = 's', value_name = "BYTES", default_value_t = 64)]
    pub size: usize,

    /// http: the request path (with any query).
    #[arg(long, value_name = "PATH", default_value = "/plaintext")]
    pub path: String,

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
    if args.connect_per_request && args.pipeline > 1 {
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
        Target::Http => proto::TargetPlan::Http(Arc::new(
            proto::HttpSpec::new(
                &args.addr,
                &args.method,
                &args.path,
                &args.headers,
                args.body_size,
                args.expect_status,
                args.expect_length,
            )
            .map_err(Failure::Usage)?,
        )),
    };
    Ok(Plan {
        addr,
        target,
        warmup,
        window,
    })
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
            pipeline: args.pipeline,
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
    Ok(Report {
        target: args.target.name(),
        addr: plan.addr.to_string(),
        connections: args.connections,
        threads: args.threads,
        size: plan.target.request_len(),
        engine: if args.target == Target::UdpEcho {
            EngineKind::Epoll
        } else {
            args.engine
        },
        note: (args.target == Target::UdpEcho && args.engine == EngineKind::Uring).then_some(
            "udp-echo runs on the epoll engine: the runtime has no UDP client (--engine uring ignored)",
        ),
        pipeline: args.pipeline,
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        rate: args.rate,
        connect_per_request: args.connect_per_request,
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

    /// A thread-per-connection echo server on 127.0.0.1 that applies `mangle` to what
    /// it sends back; returns its address.
    fn echo_server(mangle: fn(&mut [u8])) -> SocketAddr {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                std::thread::spawn(move || {
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
                });
            }
        });
        addr
    }

    fn args(addr: SocketAddr, extra: &[&str]) -> LoadArgs {
        let addr = addr.to_string();
        let mut v = vec!["tcp-echo", "--addr", &addr, "--connections", "8"];
        v.extend_from_slice(extra);
        parse(&v)
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
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                std::thread::spawn(move || {
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
                });
            }
        });
        addr
    }

    fn http_args(addr: SocketAddr, extra: &[&str]) -> LoadArgs {
        let addr = addr.to_string();
        let mut v = vec!["http", "--addr", &addr, "--connections", "8"];
        v.extend_from_slice(extra);
        parse(&v)
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

    /// A UDP echo server on 127.0.0.1 that drops every `drop_every`-th datagram
    /// (0: none); returns its address.
    fn udp_echo_server(drop_every: u64) -> SocketAddr {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let mut k = 0u64;
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                k += 1;
                if drop_every > 0 && k % drop_every == 0 {
                    continue;
                }
                let _ = sock.send_to(&buf[..n], peer);
            }
        });
        addr
    }

    #[test]
    fn udp_echo_counts_lost_datagrams_and_falls_back_to_epoll() {
        let addr = udp_echo_server(0).to_string();
        let r = load(&parse(&[
            "udp-echo",
            "--addr",
            &addr,
            "-c",
            "8",
            "--requests",
            "2000",
            "--size",
            "100",
        ]));
        assert_eq!((r.messages, r.errors_total), (2000, 0), "{r:?}");
        assert_eq!(r.engine, EngineKind::Epoll);
        assert!(r.note.is_some());
        let lossy = udp_echo_server(10).to_string();
        let r = load(&parse(&[
            "udp-echo",
            "--addr",
            &lossy,
            "-c",
            "4",
            "--duration",
            "0.5",
            "--timeout",
            "0.02",
        ]));
        assert!(r.messages > 0 && r.errors.timeout > 0, "{r:?}");
        assert_eq!(r.errors_total, r.errors.timeout, "{r:?}");
        assert!(matches!(
            check(&parse(&["udp-echo", "--addr", &addr, "-p", "2"])),
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
