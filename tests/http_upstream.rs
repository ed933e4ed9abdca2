//! The upstream pool through the `App` API, in-process (`Server::builder`, `Http::new`)
//! with real peers on 127.0.0.1: TLS to a `ringmaster http --tls-self-signed` backend
//! (CA file and server name checked), the default relay of `App::on_upstream`, the
//! per-upstream counters, a full queue answered 503, a connect that times out answered
//! 504, and a drain that lets a request in flight to a slow backend finish. Every loop is
//! bounded in count and every wait in time.

mod common;
mod http_support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::ServerProc;
use http_support::{read_responses, Resp};
use ringmaster_protocols::http1::upstream::{UpstreamStats, UpstreamTls};
use ringmaster_protocols::http1::{
    App, Exchange, Http, Limits, Request, Response, Upstream, UpstreamRequest,
};
use ringmaster_runtime::{Running, Server};

const LIMIT: Duration = Duration::from_secs(15);

/// Relays every request to its upstream with the default `on_upstream`; `/__up`
/// answers with this shard's counters for it.
struct Relay {
    up: Upstream,
}

impl App for Relay {
    type Task = ();

    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<()> {
        if req.path() == "/__up" {
            let s = ex.upstream_stats(&self.up).unwrap_or_default();
            let text = format_stats(&s);
            ex.respond(Response::text(200, &text));
            return None;
        }
        match ex.fetch(&self.up, UpstreamRequest::get(req.target())) {
            Ok(_) => Some(()),
            Err(e) => {
                ex.respond(Response::text(e.status(), "refused\n"));
                None
            }
        }
    }
}

fn format_stats(s: &UpstreamStats) -> String {
    s.fields()
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect()
}

fn stat(text: &str, key: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with(&format!("{key}=")));
    line.and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

fn start(up: Upstream) -> (Running, SocketAddr) {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .handle_signals(false)
        .build()
        .unwrap();
    let running = server
        .start(move |_| Http::new(Relay { up: up.clone() }, Limits::default()))
        .unwrap();
    let addr = running.local_addr();
    (running, addr)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

fn get(s: &mut TcpStream, path: &str) -> Resp {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n").as_bytes())
        .unwrap();
    let (mut r, _) = read_responses(s, 1, LIMIT);
    assert_eq!(r.len(), 1, "GET {path}: no response");
    r.remove(0)
}

#[test]
fn tls_upstream_checked_by_ca_file_and_name_relayed_and_counted() {
    let be = ServerProc::start(&[
        "http",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--tls-self-signed",
    ]);
    let cert = std::path::PathBuf::from(common::self_signed_cert(&be));
    let tls = UpstreamTls::with_ca_file(&cert, "localhost").unwrap();
    let (gw, addr) = start(Upstream::builder(be.addr).tls(tls).build());
    let mut c = connect(addr);
    for _ in 0..10 {
        let r = get(&mut c, "/plaintext");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"Hello, World!");
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
    let text = String::from_utf8(get(&mut c, "/__up").body).unwrap();
    assert_eq!(stat(&text, "requests"), 10, "{text}");
    assert_eq!(stat(&text, "reused"), 9, "{text}");
    assert_eq!(stat(&text, "connects"), 1, "{text}");
    assert_eq!(stat(&text, "completed"), 10, "{text}");
    assert_eq!(stat(&text, "idle"), 1, "{text}");
    assert_eq!(stat(&text, "failures"), 0, "{text}");
    gw.shutdown_handle().shutdown();
    gw.wait().unwrap();

    // A certificate that does not name the server: the handshake fails, 502.
    let tls = UpstreamTls::with_ca_file(&cert, "not-localhost.example").unwrap();
    let (gw, addr) = start(Upstream::builder(be.addr).tls(tls).build());
    let mut c = connect(addr);
    assert_eq!(get(&mut c, "/plaintext").status, 502);
    let text = String::from_utf8(get(&mut c, "/__up").body).unwrap();
    assert_eq!(stat(&text, "failures"), 1, "{text}");
    gw.shutdown_handle().shutdown();
    gw.wait().unwrap();
}

fn slow_backend(delay_ms: &str) -> ServerProc {
    common::bad_backend("slow", &["--delay-ms", delay_ms])
}

#[test]
fn a_full_queue_is_503_never_a_wait() {
    let be = slow_backend("1000");
    let up = Upstream::builder(be.addr)
        .max_conns(1)
        .max_queued(1)
        .build();
    let (gw, addr) = start(up);
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("GET /q{i} HTTP/1.1\r\nHost: gw\r\n\r\n").as_bytes())
            .unwrap();
        // In order: the first takes the one connection, the second the one queue place.
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut statuses: Vec<u16> = clients
        .iter_mut()
        .map(|c| read_responses(c, 1, LIMIT).0[0].status)
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503]);
    gw.shutdown_handle().shutdown();
    gw.wait().unwrap();
}

#[test]
fn a_connect_that_hangs_times_out_as_504() {
    // A listener that never accepts, its accept queue full: further SYNs are dropped,
    // so a connect to it neither succeeds nor fails.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    sock.listen(0).unwrap();
    let target = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&target.into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let up = Upstream::builder(target)
        .connect_timeout(Duration::from_millis(300))
        .build();
    let (gw, addr) = start(up);
    let mut c = connect(addr);
    let t = Instant::now();
    let r = get(&mut c, "/x");
    assert_eq!(r.status, 504, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(t.elapsed() < LIMIT);
    let text = String::from_utf8(get(&mut c, "/__up").body).unwrap();
    assert_eq!(stat(&text, "connect_failures"), 1, "{text}");
    gw.shutdown_handle().shutdown();
    gw.wait().unwrap();
    drop(fillers);
}

#[test]
fn a_drain_lets_a_request_in_flight_finish() {
    let be = slow_backend("700");
    let (gw, addr) = start(Upstream::new(be.addr));
    let mut c = connect(addr);
    c.write_all(b"GET /late HTTP/1.1\r\nHost: gw\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let handle = gw.shutdown_handle();
    handle.shutdown();
    let (r, _) = read_responses(&mut c, 1, LIMIT);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].body, b"hello from /late\n");
    gw.wait().unwrap();
}

/// Sends `raw` and reads one chunked response up to the end of its trailer section;
/// what follows the last chunk's line (the trailer section and its blank line).
fn trailer_section_of(addr: SocketAddr, raw: &[u8]) -> String {
    use std::io::Read;
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let deadline = Instant::now() + LIMIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b);
        if let Some(at) = body.and_then(|b| b.find("\r\n0\r\n")) {
            let after = &body.unwrap()[at + 5..];
            if after.starts_with("\r\n") || after.contains("\r\n\r\n") {
                return after.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no whole chunked response: {text:?}"
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("closed before the response ended: {text:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn the_default_relay_passes_trailers_to_a_client_that_takes_them() {
    let be = common::bad_backend("trailers", &[]);
    let (gw, addr) = start(Upstream::new(be.addr));
    let with = trailer_section_of(
        addr,
        b"GET /t HTTP/1.1\r\nHost: gw\r\nTE: trailers\r\nConnection: TE\r\n\r\n",
    );
    assert!(with.starts_with("X-Checksum: "), "{with:?}");
    assert!(with.ends_with("\r\nX-Done: yes\r\n\r\n"), "{with:?}");
    assert!(
        !with.contains("Set-Cookie"),
        "not allowed in trailers: {with:?}"
    );
    let without = trailer_section_of(addr, b"GET /t HTTP/1.1\r\nHost: gw\r\n\r\n");
    assert_eq!(without, "\r\n");
    gw.shutdown_handle().shutdown();
    gw.wait().unwrap();
}
