//! `ringmaster http`: the HTTP/1.1 server, with TechEmpower-shaped routes so results
//! compare with published ones.
//!
//! Routes (HEAD works wherever GET does):
//! - `GET /plaintext` → `Hello, World!` (text/plain)
//! - `GET /json` → `{"message":"Hello, World!"}` (application/json)
//! - `POST /echo` → the request body back
//! - `GET /bytes/N` → N bytes (at most 1 GiB), sent as owned buffers of up to 1 MiB,
//!   paced by the connection's write backlog, so large ones go out zero-copy without
//!   ever holding the whole body
//! - `GET /delay/MS` → answered after MS milliseconds (at most 60 s) from a runtime timer
//! - `GET /compute/N` → N rounds of a 64-bit mix ([`compute`], N at most
//!   [`MAX_COMPUTE_ROUNDS`], else 400) run on the offload pool, answered with
//!   `N HASH\n` (HASH in 16 hex digits) once the job is done; the shard serves other
//!   requests meanwhile. Pool queue full → 503 with `Retry-After: 1`; no pool → 503.
//! - `GET /compute/panic` → **deliberate fault injection**: a job that panics on the
//!   pool, answered 500, so tests (and operators) can see that a panicking job costs one
//!   response and nothing else. It runs only user-invisible code and holds no resource.
//! - `GET /stats` → every shard's runtime and HTTP counters as JSON, totals first, then
//!   per shard (gathered with one cross-shard call per shard; see [`crate::metrics`])
//! - `GET /metrics` → the same counters and a request-latency histogram per shard, in
//!   the Prometheus text exposition format (version 0.0.4)
//!
//! Either answers 503 with `Retry-After: 1` when a shard's mailbox is full.
//! - `OPTIONS *` → 200 with `Allow`
//! - anything else 404; a known path with the wrong method 405 with `Allow`.

use std::process::ExitCode;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use clap::Args;
use ringmaster_protocols::http1::{App, Exchange, FieldSet, Http, Limits, Request, Response};
use ringmaster_runtime::{CallDone, OffloadDone, OffloadError, Offloaded};

use ringmaster_protocols::http2::H2Config;
use ringmaster_protocols::tls::TlsOptions;

use crate::cli::ServerArgs;
use crate::metrics::{self, Gather, Latency};
use crate::tls::{run_maybe_tls, TlsArgs};

/// Flags of `ringmaster http`: the common server flags plus one per HTTP limit.
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// Serve HTTP/1.1 only: no HTTP/2 with prior knowledge (h2c) on connections that
    /// start with its preface
    #[arg(long)]
    pub no_h2: bool,

    /// Seconds an HTTP/2 response may wait on a flow-control window the client keeps at
    /// zero, or on output it does not read, before its stream is reset (CANCEL) or the
    /// connection ends (GOAWAY ENHANCE_YOUR_CALM)
    #[arg(long, value_name = "SECS",
          default_value_t = H2Config::default().stall_timeout.as_secs_f64())]
    pub h2_stall_timeout: f64,

    /// Bytes of HPACK dynamic table the client may use to compress request fields
    /// (SETTINGS_HEADER_TABLE_SIZE); memory per connection against compression. A client
    /// must shrink its table with a size update once it acknowledges a value below 4096
    /// (RFC 7541 section 4.2), and one that does not gets COMPRESSION_ERROR
    #[arg(long, value_name = "BYTES",
          default_value_t = H2Config::default().header_table_size)]
    pub h2_header_table_size: u32,

    /// Bytes of request body an HTTP/2 client may send on one stream before the server
    /// opens the stream's window again (SETTINGS_INITIAL_WINDOW_SIZE)
    #[arg(long, value_name = "BYTES",
          default_value_t = H2Config::default().initial_window_size)]
    pub h2_stream_window: u32,

    /// Bytes of request body an HTTP/2 client may send on the whole connection before
    /// the server opens it again (announced by WINDOW_UPDATE when above 65535)
    #[arg(long, value_name = "BYTES",
          default_value_t = H2Config::default().connection_window)]
    pub h2_connection_window: u32,
}

impl HttpArgs {
    /// The HTTP/2 settings these flags describe (`None` with `--no-h2`): the stall
    /// timeout, and no DATA produced past the runtime's write backlog.
    pub fn h2(&self) -> Option<H2Config> {
        (!self.no_h2).then(|| H2Config {
            stall_timeout: secs_arg(self.h2_stall_timeout),
            max_send_backlog: self.server.write_backlog,
            header_table_size: self.h2_header_table_size,
            initial_window_size: self.h2_stream_window.min(i32::MAX as u32),
            connection_window: self.h2_connection_window,
            ..H2Config::default()
        })
    }
}

/// A duration flag in seconds, kept within 1 ms and about 11 days (not finite: the most).
fn secs_arg(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() {
        s.clamp(0.001, 1e6)
    } else {
        1e6
    })
}

/// The HTTP/1.1 limits, one flag each (shared by every server that speaks HTTP).
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Longest request line in bytes; a longer one gets 414
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_request_line)]
    pub max_request_line: usize,

    /// Largest request head (request line and header fields) in bytes; larger gets 431
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_header_bytes)]
    pub max_header_bytes: usize,

    /// Most header fields in one request (at most 256); more gets 431
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_headers)]
    pub max_headers: usize,

    /// Largest request body in bytes; larger gets 413
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_body)]
    pub max_body: u64,

    /// Seconds a request head may take to arrive once started; slower gets 408 and a close
    #[arg(long, value_name = "SECS",
          default_value_t = Limits::default().header_read_timeout.as_secs_f64())]
    pub header_timeout: f64,

    /// Seconds a keep-alive connection may wait for its next request before it is closed
    #[arg(long, value_name = "SECS",
          default_value_t = Limits::default().idle_timeout.as_secs_f64())]
    pub keepalive_timeout: f64,

    /// Pipelined requests waiting for their responses per connection before reading pauses
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_pipelined)]
    pub max_pipelined: usize,
}

impl LimitArgs {
    /// The protocol limits these flags describe.
    pub fn limits(&self) -> Limits {
        let secs = secs_arg;
        Limits {
            max_request_line: self.max_request_line,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            max_body: self.max_body,
            header_read_timeout: secs(self.header_timeout),
            idle_timeout: secs(self.keepalive_timeout),
            max_pipelined: self.max_pipelined,
        }
    }
}

/// Runs the HTTP server until SIGINT/SIGTERM.
pub fn run(args: &HttpArgs) -> ExitCode {
    let limits = args.limits.limits();
    let builder = args.server.builder();
    let shards = builder.config().shards;
    let h2 = args.h2();
    // Under TLS, ALPN offers h2 first when HTTP/2 is on (RFC 9113 §3.2).
    let alpn = if h2.is_some() {
        TlsOptions::http()
    } else {
        TlsOptions::http1()
    };
    run_maybe_tls("http", builder, &args.tls, alpn, None, move |_shard| {
        Http::new(BenchApp::new(shards), limits.clone()).with_h2(h2.clone())
    })
}

/// Largest body `/bytes/N` sends.
const MAX_BYTES: u64 = 1 << 30;
/// Largest piece of a `/bytes/N` body queued at once.
const PIECE: u64 = 1 << 20;
/// Longest `/delay/MS`.
const MAX_DELAY_MS: u64 = 60_000;

const TEXT: &[(&str, &str)] = &[("Content-Type", "text/plain")];
const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];
/// [`TEXT`] and [`JSON`] checked and encoded once, for the benchmark routes.
static TEXT_SET: LazyLock<FieldSet> = LazyLock::new(|| FieldSet::new(TEXT));
static JSON_SET: LazyLock<FieldSet> = LazyLock::new(|| FieldSet::new(JSON));
const OCTETS: &[(&str, &str)] = &[("Content-Type", "application/octet-stream")];
const ALLOW_GET: &[(&str, &str)] = &[("Allow", "GET, HEAD"), ("Content-Type", "text/plain")];
const ALLOW_POST: &[(&str, &str)] = &[("Allow", "POST"), ("Content-Type", "text/plain")];
const ALLOW_ANY: &[(&str, &str)] = &[("Allow", "GET, HEAD, POST, OPTIONS")];
const BUSY: &[(&str, &str)] = &[("Retry-After", "1"), ("Content-Type", "text/plain")];

/// Most rounds `/compute/N` runs (a few tenths of a second of one core), so one request
/// cannot occupy a worker for long.
pub const MAX_COMPUTE_ROUNDS: u64 = 100_000_000;

/// The `/compute/N` job: N rounds of splitmix64's finaliser, seeded with N. Each round
/// depends on the last, so the compiler cannot shortcut it; clients can check the answer.
pub fn compute(n: u64) -> u64 {
    let mut x = n;
    for _ in 0..n {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x = z ^ (z >> 31);
    }
    x
}

/// The routes above, one per shard; its only state is the shard's latency histogram.
#[derive(Debug, Clone)]
pub struct BenchApp {
    /// How many shards the server runs (`/stats` asks each).
    shards: usize,
    latency: Latency,
}

impl BenchApp {
    /// The app of one shard of a server with `shards` shards.
    pub fn new(shards: usize) -> Self {
        BenchApp {
            shards,
            latency: Latency::default(),
        }
    }
}

/// A request answered after [`App::on_request`] returns: what is left to do, and when
/// it was parsed (for the latency histogram).
#[derive(Debug)]
pub struct Task {
    since: Instant,
    work: Work,
}

/// What a [`Task`] still has to do.
#[derive(Debug)]
pub enum Work {
    /// `/delay/MS`: answered when the timer fires.
    Delay,
    /// `/bytes/N`: this many bytes still to queue, one piece per writable callback.
    Bytes { left: u64 },
    /// `/compute/N`: the job is on the offload pool; `job` reads its hash back.
    Compute { n: u64, job: Offloaded<u64> },
    /// `/stats` or `/metrics`: one snapshot per shard asked for.
    Gather(Gather),
}

impl BenchApp {
    /// Counts a task's latency once its response is complete.
    fn finished(&mut self, task: &Task, ex: &Exchange<'_>) {
        if ex.is_done() {
            let took = ex.now().saturating_duration_since(task.since);
            self.latency.observe(took);
        }
    }

    /// `/stats`, `/metrics`: asks every shard (this one included) for its snapshot.
    fn gather(&mut self, prometheus: bool, ex: &mut Exchange<'_>) -> Option<Work> {
        Gather::start(ex, self.shards, prometheus, |ex, shard| {
            ex.call(shard, |app: &mut BenchApp, on| {
                metrics::snapshot(&app.latency, on)
            })
        })
        .map(Work::Gather)
    }
}

impl App for BenchApp {
    type Task = Task;

    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Task> {
        let work = self.route(req, ex);
        match work {
            Some(work) if !ex.is_done() => Some(Task {
                since: ex.now(),
                work,
            }),
            _ => {
                // Answered in the callback that received it.
                self.latency.observe(Duration::ZERO);
                None
            }
        }
    }

    fn on_timer(&mut self, task: &mut Task, _tag: u32, ex: &mut Exchange<'_>) {
        if let Work::Delay = task.work {
            ex.respond(Response::new(200).fields(TEXT).body(b"OK"));
        }
        self.finished(task, ex);
    }

    fn on_offload_done(&mut self, task: &mut Task, done: OffloadDone, ex: &mut Exchange<'_>) {
        if let Work::Compute { n, job } = task.work {
            match job.result(done) {
                Ok(hash) => {
                    let body = format!("{n} {hash:016x}\n");
                    ex.respond(Response::new(200).fields(TEXT).body(body.as_bytes()));
                }
                Err(_) => {
                    let body = b"Internal Server Error: the offloaded job failed\n";
                    ex.respond(Response::new(500).fields(TEXT).body(body));
                }
            }
        }
        self.finished(task, ex);
    }

    fn on_call_done(&mut self, task: &mut Task, done: CallDone, ex: &mut Exchange<'_>) {
        if let Work::Gather(gather) = &mut task.work {
            gather.on_done(done, ex);
        }
        self.finished(task, ex);
    }

    fn on_writable(&mut self, task: &mut Task, ex: &mut Exchange<'_>) {
        if let Work::Bytes { left } = &mut task.work {
            send_piece(left, ex);
        }
        self.finished(task, ex);
    }
}

impl BenchApp {
    /// Answers at once, or says what is left to do.
    fn route(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Work> {
        let path = req.path();
        let get = matches!(req.method(), "GET" | "HEAD");
        match path {
            "/plaintext" if get => {
                let res = Response::new(200).field_set(&TEXT_SET);
                ex.respond(res.body(b"Hello, World!"));
            }
            "/json" if get => {
                let body = br#"{"message":"Hello, World!"}"#;
                ex.respond(Response::new(200).field_set(&JSON_SET).body(body));
            }
            "/echo" if req.method() == "POST" => {
                ex.respond(Response::new(200).fields(OCTETS).body(req.body()));
            }
            "/stats" | "/metrics" if get => {
                return self.gather(metrics::route(path) == Some(true), ex);
            }
            // OPTIONS * asks about the server as a whole (RFC 9110 9.3.7).
            "*" if req.method() == "OPTIONS" => {
                ex.respond(Response::new(200).fields(ALLOW_ANY).body(b""));
            }
            "/plaintext" | "/json" | "/stats" | "/metrics" => method_not_allowed(ex, ALLOW_GET),
            "/echo" => method_not_allowed(ex, ALLOW_POST),
            _ => {
                if let Some(n) = path.strip_prefix("/bytes/") {
                    if !get {
                        method_not_allowed(ex, ALLOW_GET);
                        return None;
                    }
                    return bytes(n, ex);
                }
                if let Some(n) = path.strip_prefix("/compute/") {
                    if !get {
                        method_not_allowed(ex, ALLOW_GET);
                        return None;
                    }
                    return offload_compute(n, ex);
                }
                if let Some(ms) = path.strip_prefix("/delay/") {
                    if !get {
                        method_not_allowed(ex, ALLOW_GET);
                        return None;
                    }
                    return delay(ms, ex);
                }
                ex.respond(Response::new(404).fields(TEXT).body(b"Not Found\n"));
            }
        }
        None
    }
}

fn method_not_allowed(ex: &mut Exchange<'_>, allow: &[(&str, &str)]) {
    ex.respond(
        Response::new(405)
            .fields(allow)
            .body(b"Method Not Allowed\n"),
    );
}

fn bad_request(ex: &mut Exchange<'_>, why: &str) {
    ex.respond(Response::new(400).fields(TEXT).body(why.as_bytes()));
}

/// `/bytes/N`: announces N, then queues pieces as the connection drains.
fn bytes(n: &str, ex: &mut Exchange<'_>) -> Option<Work> {
    let n = match n.parse::<u64>() {
        Ok(n) if n <= MAX_BYTES => n,
        _ => {
            bad_request(ex, "N must be a byte count of at most 1073741824\n");
            return None;
        }
    };
    ex.start_sized(200, OCTETS, n);
    let mut left = if ex.is_head() { 0 } else { n };
    send_piece(&mut left, ex);
    (!ex.is_done()).then_some(Work::Bytes { left })
}

/// The bytes every `/bytes` piece is cut from: built once, never freed, so a response
/// costs neither an allocation nor a fill, only the send.
fn piece_bytes() -> &'static [u8] {
    static PIECE_BYTES: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    PIECE_BYTES.get_or_init(|| Box::leak(vec![b'x'; PIECE as usize].into_boxed_slice()))
}

/// Queues the next piece of a `/bytes` body; finishes, or asks to be called again.
fn send_piece(left: &mut u64, ex: &mut Exchange<'_>) {
    if *left > 0 {
        let piece = (*left).min(PIECE);
        ex.send_chunk_static(&piece_bytes()[..piece as usize]);
        *left -= piece;
    }
    if *left == 0 {
        ex.finish();
    } else {
        ex.want_writable();
    }
}

/// `/compute/N` (or the fault-injection `/compute/panic`): hands the job to the pool.
fn offload_compute(n: &str, ex: &mut Exchange<'_>) -> Option<Work> {
    let submitted = if n == "panic" {
        // Deliberate fault injection (see the module docs): this job always panics.
        ex.offload(|| -> u64 { panic!("fault injection: /compute/panic") })
            .map(|job| (0, job))
    } else {
        match n.parse::<u64>() {
            Ok(n) if n <= MAX_COMPUTE_ROUNDS => ex.offload(move || compute(n)).map(|job| (n, job)),
            _ => {
                bad_request(ex, "N must be a number of rounds of at most 100000000\n");
                return None;
            }
        }
    };
    match submitted {
        Ok((n, job)) => Some(Work::Compute { n, job }),
        Err(OffloadError::QueueFull) => {
            let body = b"Service Unavailable: the offload queue is full, retry\n";
            ex.respond(Response::new(503).fields(BUSY).body(body));
            None
        }
        Err(OffloadError::NoPool) => {
            let body = b"Service Unavailable: no offload pool (--offload-threads 0)\n";
            ex.respond(Response::new(503).fields(TEXT).body(body));
            None
        }
    }
}

/// `/delay/MS`: a timer on the shard, no thread sleeps.
fn delay(ms: &str, ex: &mut Exchange<'_>) -> Option<Work> {
    match ms.parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => {
            ex.set_timer(Duration::from_millis(ms), 0);
            Some(Work::Delay)
        }
        _ => {
            bad_request(ex, "MS must be a number of milliseconds of at most 60000\n");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmaster_protocols::http1::sim::SimConn;

    fn get(c: &mut SimConn<BenchApp>, path: &str) {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        c.send(&mut BenchApp::new(1), req.as_bytes());
    }

    fn output(c: &mut SimConn<BenchApp>) -> String {
        String::from_utf8(c.take_output()).unwrap()
    }

    #[test]
    fn compute_is_deterministic_and_depends_on_n() {
        assert_eq!(compute(0), 0);
        assert_eq!(compute(3), compute(3));
        assert_ne!(compute(3), compute(4));
    }

    #[test]
    fn compute_route_answers_from_the_pool() {
        let mut c = SimConn::new(Limits::default());
        get(&mut c, "/compute/1000");
        get(&mut c, "/plaintext");
        assert_eq!(output(&mut c), "", "the plaintext answer waits its turn");
        c.run_offloads(&mut BenchApp::new(1), 4);
        let out = output(&mut c);
        let want = format!("\r\n\r\n1000 {:016x}\n", compute(1000));
        assert!(out.contains(&want), "{out}");
        assert!(out.ends_with("Hello, World!"), "{out}");
    }

    #[test]
    fn compute_limits_busy_and_faults() {
        let mut c = SimConn::new(Limits::default());
        get(&mut c, &format!("/compute/{}", MAX_COMPUTE_ROUNDS + 1));
        assert!(output(&mut c).starts_with("HTTP/1.1 400 "));

        c.set_offload_queue(0);
        get(&mut c, "/compute/5");
        let out = output(&mut c);
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
        assert!(out.contains("\r\nRetry-After: 1\r\n"), "{out}");

        c.set_offload_queue(8);
        get(&mut c, "/compute/panic");
        c.run_offloads(&mut BenchApp::new(1), 4);
        assert!(output(&mut c).starts_with("HTTP/1.1 500 "));
        get(&mut c, "/plaintext");
        assert!(output(&mut c).starts_with("HTTP/1.1 200 "));
        assert!(!c.is_closed());
    }
}
