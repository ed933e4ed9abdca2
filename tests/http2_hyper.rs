//! HTTP/2 end to end from a Rust client nobody here wrote: hyper's HTTP/2 client
//! connection on a current-thread tokio runtime, against the real binary on 127.0.0.1.
//!
//! - `ringmaster http` in h2c with prior knowledge and in h2 over TLS by ALPN: GETs,
//!   several streams at once on one connection where `/delay/500` holds none of the
//!   others up (the order of completions is checked, not their times), a POST body
//!   echoed, `/bytes/N` bodies far larger than the initial windows;
//! - request bodies streamed through an App that takes them in pieces (`ringmaster
//!   proxy`, whose App opts in): a large upload arrives byte for byte, and one to an
//!   upstream that never reads holds the client back, the proxy's memory bounded.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::ServerProc;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::client::conn::http2::{self, SendRequest};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Every request body here, boxed so one connection takes them all.
type ReqBody = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Runs `f` on a current-thread runtime, bounded in time.
fn block_on<F: std::future::Future<Output = ()>>(limit: Duration, f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(limit, f)
            .await
            .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"));
    });
}

/// A TCP connection to `addr` with TCP_NODELAY, as HTTP/2 clients set it (curl and
/// nghttp do): with Nagle's algorithm a body's last small segment waits for the
/// server's delayed ACK, some 40 ms per window of flow-control credit.
async fn connect(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// An HTTP/2 connection to `addr` with prior knowledge (h2c).
async fn h2c(addr: std::net::SocketAddr) -> SendRequest<ReqBody> {
    let tcp = connect(addr).await;
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("h2c handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// An HTTP/2 connection to `addr` over TLS, `h2` chosen by ALPN (asserted), the
/// server's certificate checked against `ca` (a PEM file) for `localhost`.
async fn h2_tls(addr: std::net::SocketAddr, ca: &std::path::Path) -> SendRequest<ReqBody> {
    use rustls::pki_types::ServerName;

    let cfg = common::tls_client_config(ca, &[b"h2", b"http/1.1"]);
    let tcp = connect(addr).await;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// Sends `method path` with `body` on `send`; the status and the whole response body.
async fn fetch(
    send: &mut SendRequest<ReqBody>,
    base: &str,
    method: Method,
    path: &str,
    body: ReqBody,
) -> (StatusCode, Bytes) {
    send.ready().await.expect("connection ready");
    let req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .body(body)
        .unwrap();
    let res = send.send_request(req).await.expect("response");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

async fn get(send: &mut SendRequest<ReqBody>, base: &str, path: &str) -> (StatusCode, Bytes) {
    fetch(send, base, Method::GET, path, full(Bytes::new())).await
}

/// The cases every transport gets: plain GETs, a POST echoed (larger than a stream's
/// initial window, so WINDOW_UPDATEs must flow), `/bytes/N` at 8 MiB, and four streams
/// at once where the one on a timer finishes last.
async fn cases(mut send: SendRequest<ReqBody>, base: &str) {
    let (status, body) = get(&mut send, base, "/plaintext").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"Hello, World!"[..]));
    let (status, body) = get(&mut send, base, "/json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], br#"{"message":"Hello, World!"}"#);
    let (status, _) = get(&mut send, base, "/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (status, body) = fetch(&mut send, base, Method::POST, "/echo", full(upload.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == upload, "echo: {} bytes back", body.len());

    let (status, body) = get(&mut send, base, "/bytes/8388608").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 8 << 20);
    assert!(body.iter().all(|&b| b == b'x'));

    // Four streams at once on this one connection; /delay/500 is sent first.
    let order = std::cell::RefCell::new(Vec::new());
    let one = |path: &'static str| {
        let mut send = send.clone();
        let order = &order;
        async move {
            let (status, body) = get(&mut send, base, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(!body.is_empty(), "{path}");
            order.borrow_mut().push(path);
        }
    };
    tokio::join!(
        one("/delay/500"),
        one("/plaintext"),
        one("/json"),
        one("/bytes/100000")
    );
    let order = order.into_inner();
    assert_eq!(order.len(), 4);
    assert_eq!(
        order.last(),
        Some(&"/delay/500"),
        "the timer's stream held another up: {order:?}"
    );
}

fn http_server(extra: &[&str]) -> ServerProc {
    let mut args = vec!["http", "--listen", "127.0.0.1:0", "--shards", "1"];
    args.extend_from_slice(extra);
    ServerProc::start(&args)
}

#[test]
fn hyper_h2c_prior_knowledge() {
    let server = http_server(&[]);
    let base = format!("http://{}", server.addr);
    block_on(Duration::from_secs(60), async {
        cases(h2c(server.addr).await, &base).await;
    });
}

#[test]
fn hyper_h2_over_tls_by_alpn() {
    let dir = std::env::temp_dir().join(format!("ringmaster-h2hyper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let server = http_server(&[
        "--tls-self-signed",
        "--tls-self-signed-out",
        ca.to_str().unwrap(),
    ]);
    let base = format!("https://localhost:{}", server.addr.port());
    block_on(Duration::from_secs(60), async {
        cases(h2_tls(server.addr, &ca).await, &base).await;
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// A request body of `len` bytes made as it is pulled, in 64 KiB pieces, counting what
/// the client took (and so tried to send) in `pulled`.
struct Generated {
    left: u64,
    piece: Bytes,
    pulled: Arc<AtomicU64>,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.piece.len() as u64);
        self.left -= n;
        self.pulled.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(self.piece.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// The pattern of byte `i` of the uploads below.
fn pattern(i: usize) -> u8 {
    (i % 253) as u8
}

fn kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn proxy_to(upstream: std::net::SocketAddr) -> ServerProc {
    ServerProc::start(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--upstream",
        &upstream.to_string(),
        "--max-body",
        "1000000000",
    ])
}

/// FNV-1a over `bytes`, continuing from `h` (start from [`FNV_START`]).
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// An HTTP/1.1 upstream that reads each request's body as it comes (Content-Length
/// only), keeps none of it, and answers `<length> <fnv-1a hex>` of what it read.
fn sink_backend() -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(16) {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = None;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((n, v)) = line.split_once(':') {
                            if n.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse::<u64>().ok();
                            }
                        }
                    }
                    let mut left = len.expect("the proxy sent Content-Length");
                    let (mut h, mut got) = (FNV_START, 0u64);
                    let mut buf = vec![0; 64 << 10];
                    while left > 0 {
                        let want = buf.len().min(left as usize);
                        let n = r.read(&mut buf[..want]).unwrap();
                        assert!(n > 0, "the body ended early");
                        h = fnv(h, &buf[..n]);
                        got += n as u64;
                        left -= n as u64;
                    }
                    let body = format!("{got} {h:016x}");
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    w.write_all(head.as_bytes()).unwrap();
                    w.write_all(body.as_bytes()).unwrap();
                }
            });
        }
    });
    addr
}

/// 256 MiB uploaded over h2c through the proxy (which takes request bodies in pieces)
/// to an upstream that reads as it comes: every byte arrives, in order (length and
/// FNV-1a of what the upstream read), and the proxy's peak memory grows by a part of
/// the body, which held whole would add 256 MiB.
#[test]
fn a_streamed_h2_upload_arrives_whole_and_in_order() {
    const BIG: u64 = 256 << 20;
    let px = proxy_to(sink_backend());
    let base = format!("http://{}", px.addr);
    let before = kib(px.pid(), "VmHWM:");
    block_on(Duration::from_secs(120), async {
        let mut send = h2c(px.addr).await;
        let piece: Vec<u8> = (0..(64usize << 10)).map(pattern).collect();
        let body = Generated {
            left: BIG,
            piece: Bytes::from(piece.clone()),
            pulled: Arc::new(AtomicU64::new(0)),
        }
        .boxed();
        let (status, back) = fetch(&mut send, &base, Method::POST, "/upload", body).await;
        assert_eq!(status, StatusCode::OK);
        let mut h = FNV_START;
        for _ in 0..BIG / piece.len() as u64 {
            h = fnv(h, &piece);
        }
        assert_eq!(String::from_utf8_lossy(&back), format!("{BIG} {h:016x}"));
    });
    let grew = kib(px.pid(), "VmHWM:").saturating_sub(before);
    eprintln!("proxy peak RSS grew {grew} KiB for {} MiB up", BIG >> 20);
    // What it holds is what a turn of the runtime reads before a pause lands plus the
    // backlogs (about 50 MiB here on a quiet machine, as for HTTP/1.1 uploads).
    assert!(
        grew < (BIG / 1024) / 2,
        "the proxy's peak grew by {grew} KiB"
    );
}

/// An upload of 1 GiB over h2c through the proxy to an upstream that accepts and never
/// reads: the client is held back (what it manages to send stops growing, far short of
/// the body) and the proxy's memory stays bounded while it waits.
#[test]
fn a_streamed_h2_upload_to_a_consumer_that_never_reads_is_held_back() {
    const TOTAL: u64 = 1 << 30;
    // The upstream: connections accepted and kept, never read.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().take(4) {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(120));
        drop(held);
    });
    let px = proxy_to(upstream);
    let base = format!("http://{}", px.addr);
    let before = kib(px.pid(), "VmRSS:");
    let pulled = Arc::new(AtomicU64::new(0));
    let seen = pulled.clone();
    block_on(Duration::from_secs(60), async move {
        let mut send = h2c(px.addr).await;
        let body = Generated {
            left: TOTAL,
            piece: Bytes::from(vec![b'u'; 64 << 10]),
            pulled,
        }
        .boxed();
        send.ready().await.unwrap();
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{base}/sink"))
            .body(body)
            .unwrap();
        let upload = send.send_request(req);
        // The upload runs until nothing more goes for a whole second (bounded: a client
        // never held back fails the test when the limit of block_on passes).
        let watch = async {
            let mut last = 0;
            let mut still = 0;
            while still < 10 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = seen.load(Ordering::SeqCst);
                still = if now == last { still + 1 } else { 0 };
                last = now;
            }
            last
        };
        tokio::select! {
            res = upload => panic!("the upload ended: {:?}", res.map(|r| r.status())),
            sent = watch => {
                let grew = kib(px.pid(), "VmRSS:").saturating_sub(before);
                eprintln!(
                    "held back after {} KiB of {} MiB; proxy RSS grew {grew} KiB",
                    sent >> 10,
                    TOTAL >> 20
                );
                assert!(sent < TOTAL / 8, "the client sent {sent} bytes");
                assert!(grew < 128 << 10, "the proxy's RSS grew by {grew} KiB");
            }
        }
    });
}
