//! `hyper-plaintext`: the tokio + hyper peer of ringmaster's HTTP benchmark.
//!
//! An idiomatic hyper 1.x HTTP/1.1 server on tokio's current-thread runtime: one task per
//! connection, keep-alive, `pipeline_flush` on (responses to pipelined requests read
//! together leave in one write), `TCP_NODELAY` on every accepted socket. Routes:
//! `GET /plaintext` → `Hello, World!` (text/plain); `GET /bytes/N` → N bytes (N ≤ 16 MiB,
//! sliced from one shared buffer, so no per-request fill: the large-body workload);
//! anything else 404. hyper adds `Date` (cached per second) and `Content-Length` itself.
//!
//! Usage: `hyper-plaintext [--listen ADDR]` (default `127.0.0.1:8081`; port 0 picks a free
//! one). When ready it prints `hyper-plaintext listening on ADDR` on stderr.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const USAGE: &str = "usage: hyper-plaintext [--listen ADDR]   (default 127.0.0.1:8081)";

fn parse_args() -> Result<SocketAddr, String> {
    let mut listen = String::from("127.0.0.1:8081");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            s if s.starts_with("--listen=") => listen = s["--listen=".len()..].to_string(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    listen
        .parse()
        .map_err(|e| format!("bad --listen address `{listen}`: {e} (expected IP:PORT)"))
}

/// Largest `/bytes/N` body.
const MAX_BYTES: usize = 16 << 20;

/// The body `/bytes/N` slices from: filled once, shared by every response (cheap clones).
fn bytes_body() -> &'static Bytes {
    static BODY: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    BODY.get_or_init(|| {
        Bytes::from(
            (0..MAX_BYTES)
                .map(|i| b'a' + (i % 26) as u8)
                .collect::<Vec<u8>>(),
        )
    })
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let bytes_len = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n <= MAX_BYTES);
    let mut res = if let Some(n) = bytes_len {
        let mut r = Response::new(Full::new(bytes_body().slice(..n)));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        r
    } else if path == "/plaintext" {
        let mut r = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"Not Found\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    res.headers_mut()
        .insert(SERVER, HeaderValue::from_static("hyper"));
    Ok(res)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let addr = match parse_args() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("hyper-plaintext: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hyper-plaintext: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(a) => eprintln!("hyper-plaintext listening on {a}"),
        Err(e) => {
            eprintln!("hyper-plaintext: {e}");
            return ExitCode::from(1);
        }
    }
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: say so and keep accepting.
                eprintln!("hyper-plaintext: accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
