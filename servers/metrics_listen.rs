//! `--metrics-listen ADDR`: `/stats` and `/metrics` for the servers that do not speak
//! HTTP (`echo`, `udp-echo`), on a listener of their own.
//!
//! One plain thread, not a shard: a blocking std `TcpListener` that serves one scrape at
//! a time and gathers every shard's counters through the runtime's cross-thread calls
//! ([`CallHandle`]), one per shard, each a closure run between the shard's callbacks.
//! The shards' data path is untouched: between scrapes the thread sleeps in `accept`,
//! and a scrape costs each shard one wake-up. This module owns the listener, its small
//! HTTP/1.1 exchange (every answer closes the connection) and its bounds: a request head
//! of at most 8 KiB, read within 2 s; answers from the shards within 2 s, else 503.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use ringmaster_runtime::{CallHandle, Handler};

use crate::cli::parse_listen;
use crate::metrics::{self, Snapshot};

/// The `--metrics-listen` flag.
#[derive(Args, Debug, Clone, Default)]
pub struct MetricsArgs {
    /// Serve GET /stats (JSON) and GET /metrics (Prometheus text) with every shard's counters on this address, e.g. 127.0.0.1:9100 (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
}

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request, and to take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the shards may take to answer, all together.
const SHARD_TIMEOUT: Duration = Duration::from_secs(2);

impl MetricsArgs {
    /// Binds the listener, if one is asked for. On error the one-line message is
    /// printed and the exit code (1: the address is in use or not ours) returned.
    pub fn bind(&self) -> Result<Option<TcpListener>, ExitCode> {
        let Some(addr) = self.metrics_listen else {
            return Ok(None);
        };
        TcpListener::bind(addr).map(Some).map_err(|e| {
            eprintln!("ringmaster: cannot listen for metrics on {addr}: {e}");
            ExitCode::from(1)
        })
    }
}

/// Serves `listener` on a thread of its own for as long as the process runs; the
/// shards' handler is of type `H`. Prints `metrics listening on ADDR` once it serves.
pub fn spawn<H: Handler>(listener: TcpListener, calls: CallHandle) {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let started = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(conn) => serve::<H>(conn, &calls),
                    // A failed accept costs that client only; a lasting one (out of
                    // descriptors) is retried at a walk, never in a spin.
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    match started {
        Ok(_) => eprintln!("ringmaster: metrics listening on {addr}"),
        Err(e) => eprintln!("ringmaster: cannot start the metrics thread: {e}"),
    }
}

/// One request, one answer, then the connection closes.
fn serve<H: Handler>(mut conn: TcpStream, calls: &CallHandle) {
    let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
    let answer = match read_head(&mut conn) {
        Some(head) => answer::<H>(&head, calls),
        None => reply(400, "text/plain", "Bad Request\n".into(), &[]),
    };
    let _ = conn.write_all(&answer);
}

/// The request head, up to its blank line, read within the bounds.
fn read_head(conn: &mut TcpStream) -> Option<String> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD || Instant::now() > deadline {
            return None;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8(head).ok()
}

/// The answer to a request head.
fn answer<H: Handler>(head: &str, calls: &CallHandle) -> Vec<u8> {
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let (method, target, version) = (words.next(), words.next(), words.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return reply(400, "text/plain", "Bad Request\n".into(), &[]);
    };
    if !version.starts_with("HTTP/1.") {
        return reply(400, "text/plain", "Bad Request\n".into(), &[]);
    }
    let path = target.split('?').next().unwrap_or(target);
    let Some(prometheus) = metrics::route(path) else {
        let body = "Not Found (try /stats or /metrics)\n".into();
        return reply(404, "text/plain", body, &[]);
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        let allow = [("Allow", "GET, HEAD")];
        return reply(405, "text/plain", "Method Not Allowed\n".into(), &allow);
    }
    let mut answer = match gather::<H>(calls) {
        Ok(mut parts) => {
            let (ty, body) = metrics::render(prometheus, &mut parts);
            reply(200, ty, body, &[])
        }
        Err(why) => {
            let body = format!("Service Unavailable: {why}, retry\n");
            reply(503, "text/plain", body, &[("Retry-After", "1")])
        }
    };
    if head_only {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            answer.truncate(end + 4);
        }
    }
    answer
}

/// Every shard's runtime counters: all the calls go out first, then the answers are
/// awaited, within [`SHARD_TIMEOUT`] in all.
fn gather<H: Handler>(calls: &CallHandle) -> Result<Vec<Snapshot>, String> {
    let pending = (0..calls.shards())
        .map(|shard| {
            calls.call::<H, Snapshot>(shard, |_, on| {
                Snapshot::runtime(on.shard_id(), on.counters())
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + SHARD_TIMEOUT;
    pending
        .into_iter()
        .map(|p| {
            let left = deadline.saturating_duration_since(Instant::now());
            match p.wait(left) {
                Some(r) => r.map_err(|e| e.to_string()),
                None => Err("a shard did not answer in time".to_string()),
            }
        })
        .collect()
}

/// A whole HTTP/1.1 response that closes the connection.
fn reply(status: u16, ty: &str, body: String, extra: &[(&str, &str)]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ty}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}
