//! `ringmaster proxy` end to end: the real binary between real clients (raw sockets,
//! curl, Python h11) on 127.0.0.1 and real upstreams (`ringmaster http`, `ringmaster
//! echo`, and the misbehaving backends of `tests/py/bad_backend.py`). Checked: the
//! fields the upstream receives (hop-by-hop removed, `Via`, `X-Forwarded-*`, CRLF only,
//! one well-framed request), trailers both ways (to a client that takes them only, over
//! HTTP/1.1 and HTTP/2), smuggling attempts stopped at the proxy, pipelined order
//! across upstreams, the retry rules, 502/504 and truncation, balancing, TCP mode with
//! half-close, and the proxy's descriptors back at their start after each case. Every
//! loop is bounded in count and time.

mod common;
mod http_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ServerProc;
use http_support::{read_responses, Resp};

const LIMIT: Duration = Duration::from_secs(15);

fn backend(mode: &str, extra: &[&str]) -> ServerProc {
    common::bad_backend(mode, extra)
}

fn proxy(upstreams: &[SocketAddr], extra: &[&str]) -> ServerProc {
    let mut args: Vec<String> = ["proxy", "--listen", "127.0.0.1:0", "--shards", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for u in upstreams {
        args.push("--upstream".into());
        args.push(u.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProc::start(&refs)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

fn roundtrip(addr: SocketAddr, raw: &[u8], count: usize) -> (Vec<Resp>, bool) {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    read_responses(&mut s, count, LIMIT)
}

fn get(s: &mut TcpStream, path: &str) -> Resp {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: front.example\r\n\r\n").as_bytes())
        .unwrap();
    let (mut r, _) = read_responses(s, 1, LIMIT);
    assert_eq!(r.len(), 1, "GET {path}: no response");
    r.remove(0)
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn fds_return(px: &ServerProc, start: usize) {
    let now = px.wait_fds_at_most(start, LIMIT);
    assert_eq!(now, start, "proxy descriptors after the case");
}

/// The backend's `/__stats` request count.
fn answered(addr: SocketAddr) -> u64 {
    backend_stat(addr, "requests")
}

/// One number of the backend's `/__stats` (`requests` or `connections`).
fn backend_stat(addr: SocketAddr, key: &str) -> u64 {
    let mut s = connect(addr);
    let r = get(&mut s, "/__stats");
    let text = String::from_utf8(r.body).unwrap();
    let at = text.find(&format!("\"{key}\"")).unwrap();
    text[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn the_upstream_gets_one_well_framed_request_with_hop_by_hop_fields_removed() {
    let mut be = backend("echo-head", &[]);
    let mut px = proxy(&[be.addr], &[]);
    let start = px.fd_count();
    let raw = b"POST /form?q=1 HTTP/1.1\r\n\
Host: front.example\r\n\
Connection: keep-alive, X-Drop\r\n\
X-Drop: secret\r\n\
Keep-Alive: timeout=5\r\n\
TE: trailers\r\n\
Proxy-Connection: keep-alive\r\n\
Upgrade: h2c\r\n\
X-Forwarded-For: 10.0.0.1\r\n\
X-Forwarded-Proto: gopher\r\n\
X-Keep: yes\r\n\
Transfer-Encoding: chunked\r\n\
\r\n\
5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (r, _) = roundtrip(px.addr, raw, 1);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].header("via"), Some("1.1 ringmaster"));
    let seen = String::from_utf8(r[0].body.clone()).unwrap();
    let (head, body) = seen.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, "hello world", "the body, re-framed");
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "POST /form?q=1 HTTP/1.1");
    let has = |name: &str| {
        lines
            .iter()
            .skip(1)
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| l.split_once(':').unwrap().1.trim().to_string())
    };
    assert_eq!(
        has("host").as_deref(),
        Some("front.example"),
        "Host unchanged"
    );
    for gone in [
        "x-drop",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "transfer-encoding",
    ] {
        assert_eq!(has(gone), None, "{gone} is hop-by-hop: {head}");
    }
    // The client's `TE: trailers` is asked for again on the proxy's own hop (on its
    // behalf, named in Connection as TE must be), the rest of its TE and Connection not.
    assert_eq!(has("te").as_deref(), Some("trailers"), "{head}");
    assert_eq!(has("connection").as_deref(), Some("TE"), "{head}");
    assert_eq!(has("content-length").as_deref(), Some("11"));
    assert_eq!(has("x-keep").as_deref(), Some("yes"));
    assert_eq!(
        has("x-forwarded-for").as_deref(),
        Some("10.0.0.1, 127.0.0.1")
    );
    assert_eq!(has("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(has("via").as_deref(), Some("1.1 ringmaster"));
    assert!(
        !seen.replace("\r\n", "").contains('\n'),
        "CRLF only upstream"
    );
    px.stop();
    be.stop();
    let _ = start;
}

/// One response read whole from `s` (framed by `Content-Length`): its head and body as
/// raw bytes, nothing decoded.
fn raw_response(s: &mut TcpStream) -> (Vec<u8>, Vec<u8>) {
    let deadline = Instant::now() + LIMIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        assert!(Instant::now() < deadline, "no whole response: {got:?}");
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = &got[..end + 4];
            let text = String::from_utf8_lossy(head).to_ascii_lowercase();
            let len: usize = text
                .split("\r\n")
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return (head.to_vec(), got[end + 4..end + 4 + len].to_vec());
            }
        }
        match s.read(&mut buf) {
            Ok(0) => panic!("closed before a whole response: {got:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The lines of a raw head (CRLF-separated), as bytes.
fn head_lines(head: &[u8]) -> Vec<&[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn obs_text_in_field_values_passes_both_ways_byte_for_byte() {
    // RFC 9110 section 5.5: obs-text (0x80-0xFF) in a field value is opaque data. The
    // request's `X-A: caf\xe9` (Latin-1, not UTF-8) and a value of every obs-text byte
    // reach the upstream as sent; the upstream's `X-Seen-A` (the same bytes) reaches
    // the client as sent. A control byte in a value is still refused by the parser.
    let mut be = backend("echo-head", &[]);
    let mut px = proxy(&[be.addr], &[]);
    let start = px.fd_count();
    let all: Vec<u8> = (0x80..=0xffu8).collect();
    let mut s = connect(px.addr);
    for _ in 0..2 {
        // Twice on one connection: the second goes over the pooled upstream connection.
        let mut raw =
            b"GET /obs HTTP/1.1\r\nHost: front.example\r\nX-A: caf\xe9\r\nX-All: ".to_vec();
        raw.extend_from_slice(&all);
        raw.extend_from_slice(b"\r\n\r\n");
        s.write_all(&raw).unwrap();
        let (head, body) = raw_response(&mut s);
        assert!(head.starts_with(b"HTTP/1.1 200 "), "{head:?}");
        let lines = head_lines(&head);
        assert!(
            lines.contains(&&b"X-Seen-A: caf\xe9"[..]),
            "the upstream's obs-text field reaches the client: {:?}",
            String::from_utf8_lossy(&head)
        );
        let seen = head_lines(&body);
        assert!(
            seen.contains(&&b"X-A: caf\xe9"[..]),
            "the upstream gets X-A byte for byte: {:?}",
            String::from_utf8_lossy(&body)
        );
        let mut want = b"X-All: ".to_vec();
        want.extend_from_slice(&all);
        assert!(
            seen.contains(&want.as_slice()),
            "every obs-text byte upstream"
        );
    }
    drop(s);
    // Still refused: a NUL in a value, and a bare CR (the proxy's parser answers 400,
    // nothing reaches the upstream).
    let before = answered(be.addr);
    for bad in [&b"X-A: a\x00b"[..], &b"X-A: a\rb"[..]] {
        let mut raw = b"GET /bad HTTP/1.1\r\nHost: h\r\n".to_vec();
        raw.extend_from_slice(bad);
        raw.extend_from_slice(b"\r\n\r\n");
        let (r, _) = roundtrip(px.addr, &raw, 1);
        assert_eq!(r.len(), 1, "an answer to {bad:?}");
        assert_eq!(r[0].status, 400, "{bad:?}");
    }
    assert_eq!(answered(be.addr), before, "nothing reached the upstream");
    // The one upstream connection stays pooled.
    fds_return(&px, start + 1);
    px.stop();
    be.stop();
}

#[test]
fn smuggling_attempts_are_answered_400_at_the_proxy_and_never_reach_an_upstream() {
    let mut be = backend("ok", &[]);
    let mut px = proxy(&[be.addr], &[]);
    let attempts: [&[u8]; 4] = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    ];
    for raw in attempts {
        let (r, closed) = roundtrip(px.addr, raw, 1);
        assert_eq!(r.len(), 1, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(r[0].status, 400, "{:?}", String::from_utf8_lossy(raw));
        let _ = closed;
    }
    assert_eq!(answered(be.addr), 0, "nothing reached the upstream");
    px.stop();
    be.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order_across_upstreams() {
    let a = backend("ok", &["--tag", "a"]);
    let b = backend("slow", &["--tag", "b", "--delay-ms", "300"]);
    let mut px = proxy(&[a.addr, b.addr], &[]);
    let start = px.fd_count();
    let mut raw = Vec::new();
    for i in 0..6 {
        raw.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    let (rs, _) = roundtrip(px.addr, &raw, 6);
    assert_eq!(rs.len(), 6);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(
            r.body,
            format!("hello from /p{i}\n").as_bytes(),
            "response {i} in order"
        );
    }
    let tags: Vec<_> = rs
        .iter()
        .map(|r| r.header("x-backend").unwrap_or("").to_string())
        .collect();
    assert!(
        tags.contains(&"a".to_string()) && tags.contains(&"b".to_string()),
        "{tags:?}"
    );
    drop((a, b));
    fds_return(&px, start);
    px.stop();
}

#[test]
fn an_unreachable_upstream_is_retried_elsewhere_for_idempotent_methods_only() {
    let be = backend("ok", &["--tag", "ok"]);
    let dead = closed_port();
    // Round-robin over [dead, ok]; a high --max-fails keeps the dead one in turn.
    let mut px = proxy(&[dead, be.addr], &["--max-fails", "100"]);
    let mut c = connect(px.addr);
    for i in 0..4 {
        let r = get(&mut c, &format!("/g{i}"));
        assert_eq!(r.status, 200, "GET {i} is sent elsewhere");
    }
    let mut statuses = Vec::new();
    for i in 0..4 {
        c.write_all(
            format!("POST /p{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx").as_bytes(),
        )
        .unwrap();
        let (r, _) = read_responses(&mut c, 1, LIMIT);
        statuses.push(r[0].status);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 200, 502, 502],
        "a POST is never sent to a second upstream"
    );
    px.stop();
}

#[test]
fn stalled_malformed_and_cut_short_upstreams() {
    // No response head within --upstream-timeout: 504.
    let stall = backend("stall", &[]);
    let mut px = proxy(&[stall.addr], &["--upstream-timeout", "0.5"]);
    let start = px.fd_count();
    let mut c = connect(px.addr);
    assert_eq!(get(&mut c, "/s").status, 504);
    drop(c);
    drop(stall);
    fds_return(&px, start);
    px.stop();

    // The deadline of a request on a reused connection: the timer the first request
    // armed is kept and re-armed, not replaced, so check both ways it can stand when
    // the second request comes (not fired yet; fired and re-armed for the idle wait).
    for pause in [Duration::from_millis(100), Duration::from_millis(900)] {
        let second = backend("stall-second", &[]);
        let mut px = proxy(&[second.addr], &["--upstream-timeout", "0.5"]);
        let mut c = connect(px.addr);
        assert_eq!(get(&mut c, "/first").status, 200);
        std::thread::sleep(pause);
        let sent = Instant::now();
        assert_eq!(get(&mut c, "/second").status, 504, "after {pause:?}");
        assert!(
            sent.elapsed() >= Duration::from_millis(500),
            "a 504 before the deadline, after {pause:?}: {:?}",
            sent.elapsed()
        );
        // The proxy's one connection, and the one asking.
        assert_eq!(
            backend_stat(second.addr, "connections"),
            2,
            "one connection, reused"
        );
        px.stop();
    }

    // A malformed response head: 502.
    let bad = backend("malformed", &[]);
    let mut px = proxy(&[bad.addr], &[]);
    let mut c = connect(px.addr);
    assert_eq!(get(&mut c, "/m").status, 502);
    px.stop();

    // A body cut short: the client connection closes, the body never looks complete.
    let cut = backend("mid-body-close", &[]);
    let mut px = proxy(&[cut.addr], &[]);
    let mut c = connect(px.addr);
    c.write_all(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + LIMIT;
    let mut buf = [0u8; 4096];
    let mut closed = false;
    while Instant::now() < deadline {
        match c.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed);
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-length: 1000"),
        "{head}"
    );
    assert!(body.len() < 1000);
    px.stop();
}

#[test]
fn hash_balancing_is_sticky_per_client_address() {
    let a = backend("ok", &["--tag", "a"]);
    let b = backend("ok", &["--tag", "b"]);
    let mut px = proxy(&[a.addr, b.addr], &["--balance", "hash"]);
    let mut tags = Vec::new();
    for i in 0..6 {
        let mut c = connect(px.addr);
        tags.push(
            get(&mut c, &format!("/h{i}"))
                .header("x-backend")
                .unwrap()
                .to_string(),
        );
    }
    assert!(tags.iter().all(|t| *t == tags[0]), "{tags:?}");
    px.stop();
}

#[test]
fn curl_and_h11_through_the_proxy_to_ringmaster_http() {
    let mut be = ServerProc::start(&["http", "--listen", "127.0.0.1:0", "--shards", "1"]);
    let mut px = proxy(&[be.addr], &[]);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://{}/plaintext", px.addr))
        .arg(format!("http://{}/json", px.addr))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, World!{\"message\":\"Hello, World!\"}"
    );
    // A 1 MiB body through the proxy, every byte counted by curl.
    let st = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ])
        .arg(format!("http://{}/bytes/1048576", px.addr))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&st.stdout), "200 1048576");
    // h11, strict about framing, through the proxy: several exchanges on one
    // connection, chunked request bodies, then `Connection: close`.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/h11_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(px.addr.to_string())
        .output()
        .expect("python3 h11_client.py");
    assert!(
        out.status.success(),
        "h11 through the proxy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    px.stop();
    be.stop();
}

#[test]
fn tcp_mode_passes_bytes_both_ways_and_half_close_through() {
    tcp_mode_case(&["--mode", "tcp"]);
}

#[test]
fn tcp_mode_with_splice_passes_the_same_bytes_without_a_receive_or_a_send() {
    tcp_mode_case(&["--mode", "tcp", "--splice"]);
    // Only where it means something: one line, exit 2.
    for bad in [
        &["--splice"][..],
        &["--mode", "tcp", "--splice", "--tls-self-signed"],
    ] {
        let mut args = vec![
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
        ];
        args.extend_from_slice(bad);
        let (code, err) = common::run_to_end(&args);
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(err.contains("--splice"), "{err}");
    }
}

fn tcp_mode_case(mode: &[&str]) {
    let splice = mode.contains(&"--splice");
    let mut echo = ServerProc::start(&["echo", "--listen", "127.0.0.1:0", "--shards", "1"]);
    let mut px = proxy(&[echo.addr], mode);
    let start = px.fd_count();
    for _ in 0..3 {
        let mut c = connect(px.addr);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        c.write_all(&data).unwrap();
        // Our FIN travels on; the echo still comes back whole, then the end.
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + LIMIT;
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        assert_eq!(got.len(), data.len());
        assert!(got == data, "every byte, in order");
    }
    fds_return(&px, start);
    px.stop();
    echo.stop();
    if splice {
        // Every byte went through the pipes: the runtime received and sent nothing.
        assert_eq!(px.counter("recv_completions"), 0);
        assert_eq!(px.counter("sends"), 0);
        assert!(px.counter("bytes_in") >= 2 * 3 * 200_000);
    }

    // An upstream that cannot be reached: the client connection closes at once.
    let mut px = proxy(&[closed_port()], mode);
    let mut c = connect(px.addr);
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let mut b = [0u8; 16];
    let n = c.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "closed, nothing sent");
    px.stop();
}

#[test]
fn stats_gather_every_shard_and_the_shutdown_summary_names_each_upstream() {
    let be = backend("ok", &[]);
    let mut px = ServerProc::start(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--stats",
        "--upstream",
        &be.addr.to_string(),
    ]);
    // Connections land on either shard; 8 of them, 3 requests each.
    for i in 0..8 {
        let mut c = connect(px.addr);
        for j in 0..3 {
            assert_eq!(get(&mut c, &format!("/s{i}-{j}")).status, 200);
        }
    }
    let mut c = connect(px.addr);
    let r = get(&mut c, "/.ringmaster/stats");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("\"shard\":0") && text.contains("\"shard\":1"),
        "{text}"
    );
    // "requests" appears per upstream (the proxy's count) and in each pool: sum the
    // proxy's, which come right after "marked_down".
    let total: u64 = text
        .split("\"marked_down\":")
        .skip(1)
        .map(|rest| {
            let at = rest.find("\"requests\":").unwrap() + "\"requests\":".len();
            rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 24, "{text}");
    drop(c);
    assert!(px.stop().success());
    let summary: Vec<String> = px
        .stderr()
        .into_iter()
        .filter(|l| l.contains("proxy upstream"))
        .collect();
    assert_eq!(summary.len(), 2, "one line per shard: {summary:?}");
    assert!(summary.iter().all(|l| l.contains(&be.addr.to_string())));
}

#[test]
fn websocket_passes_through_the_proxy() {
    // Python websockets' echo suite (sizes up to the limit, fragments, ping/pong, close
    // codes, invalid UTF-8, an unmasked frame, an oversize message) against `ringmaster
    // ws`, through the proxy: the 101 is relayed, then the bytes tunnel both ways.
    const LIMIT: &str = "1048576";
    let mut ws = ServerProc::start(&[
        "ws",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--max-message",
        LIMIT,
    ]);
    let mut px = proxy(&[ws.addr], &[]);
    let start = px.fd_count();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/ws_client.py");
    let out = Command::new("timeout")
        .args(["120", "python3", script, "echo"])
        .arg(px.addr.to_string())
        .arg(LIMIT)
        .output()
        .expect("python3 ws_client.py");
    assert!(
        out.status.success(),
        "websockets through the proxy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    fds_return(&px, start);
    px.stop();

    // The same through a proxy that terminates TLS (wss:// to the proxy, ws:// to the
    // upstream): the tunnel's upstream bytes are encrypted by the client's connection.
    let mut px = proxy(&[ws.addr], &["--tls-self-signed"]);
    let cert = common::self_signed_cert(&px);
    let out = Command::new("timeout")
        .args(["120", "python3", script, "echo"])
        .arg(px.addr.to_string())
        .arg(LIMIT)
        .arg(&cert)
        .output()
        .expect("python3 ws_client.py");
    assert!(
        out.status.success(),
        "wss through the proxy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    px.stop();
    ws.stop();
}

#[test]
fn websocket_tunnels_to_a_tls_upstream_through_its_session() {
    // `ringmaster ws` serving TLS only, the proxy speaking TLS to it (`--upstream-tls`,
    // trusting its certificate): after the 101 every tunnel byte is encrypted towards
    // the upstream and decrypted from it by the upstream connection's rustls session.
    // Python websockets' echo suite over ws:// to the proxy: messages up to 1 MiB
    // byte-exact both ways, fragments, ping/pong, a clean close (its code echoed), the
    // upstream's own closes (1007, 1009, 1002) reaching the client, and an unmasked
    // frame by hand.
    const LIMIT: &str = "1048576";
    let mut ws = ServerProc::start(&[
        "ws",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--max-message",
        LIMIT,
        "--tls-self-signed",
    ]);
    let cert = common::self_signed_cert(&ws);
    let mut px = proxy(&[ws.addr], &["--upstream-tls", "--upstream-ca", &cert]);
    let start = px.fd_count();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/ws_client.py");
    let out = Command::new("timeout")
        .args(["120", "python3", script, "echo"])
        .arg(px.addr.to_string())
        .arg(LIMIT)
        .output()
        .expect("python3 ws_client.py");
    assert!(
        out.status.success(),
        "websockets through the proxy to a TLS upstream: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every tunnel's two connections closed: nothing kept, nothing leaked.
    fds_return(&px, start);
    px.stop();

    // TLS on both sides (wss:// to the proxy, TLS to the upstream): each side's session
    // encrypts what it writes, decrypts what it reads.
    let mut px = proxy(
        &[ws.addr],
        &[
            "--tls-self-signed",
            "--upstream-tls",
            "--upstream-ca",
            &cert,
        ],
    );
    let front = common::self_signed_cert(&px);
    let start = px.fd_count();
    let out = Command::new("timeout")
        .args(["120", "python3", script, "echo"])
        .arg(px.addr.to_string())
        .arg(LIMIT)
        .arg(&front)
        .output()
        .expect("python3 ws_client.py");
    assert!(
        out.status.success(),
        "wss through the proxy to a TLS upstream: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    fds_return(&px, start);
    px.stop();
    ws.stop();
}

/// A certificate and key for 127.0.0.1 (PEM files in a scratch directory), for a
/// TLS upstream the tests start.
fn upstream_cert(stem: &str) -> (String, String) {
    let dir = std::env::temp_dir().join(format!(
        "ringmaster-proxy-e2e-{}-{stem}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let path = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    (path(cert), path(key))
}

#[test]
fn an_upgrade_tunnel_to_a_tls_upstream_carries_bytes_and_half_closes_both_ways() {
    // A Python TLS upstream answers the upgrade with 101 and echoes until its input
    // ends, then sends `after-eof` and closes. The client writes 1 MiB and then shuts its
    // output: everything comes back byte-exact through the upstream connection's TLS
    // session, the client's FIN reaches the upstream as close_notify + FIN while the
    // other direction keeps flowing, and the upstream's end reaches the client as a FIN.
    let (cert, key) = upstream_cert("upgrade-echo");
    let mut be = backend("upgrade-echo", &["--tls-cert", &cert, "--tls-key", &key]);
    let mut px = proxy(&[be.addr], &["--upstream-tls", "--upstream-ca", &cert]);
    let start = px.fd_count();
    let mut s = connect(px.addr);
    s.write_all(
        b"GET /tunnel HTTP/1.1\r\nHost: up.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .unwrap();
    let (head, _) = read_until(&mut s, |t| t.contains("\r\n\r\n"));
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let (head, early) = head.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase().contains("\r\nupgrade: echo"),
        "{head}"
    );
    assert!(
        early.is_empty(),
        "nothing before the tunnel's bytes: {early:?}"
    );
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let deadline = Instant::now() + LIMIT;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "no end after {} bytes",
            got.len()
        );
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    writer.join().unwrap();
    let mut want = data;
    want.extend_from_slice(b"after-eof\n");
    assert!(
        got.len() == want.len() && got == want,
        "{} bytes back, {} expected; the echo and `after-eof`, in order",
        got.len(),
        want.len()
    );
    drop(s);
    // Both sides of the tunnel closed once both directions ended.
    fds_return(&px, start);
    px.stop();
    be.stop();
}

#[test]
fn upstream_connections_come_from_each_source_address_in_turn() {
    // A backend that closes after each answer: every request needs a new connection,
    // and the sources take turns.
    let be = backend("one-shot", &[]);
    let mut px = proxy(&[be.addr], &["--source-addrs", "127.0.0.2,127.0.0.3"]);
    let mut c = connect(px.addr);
    let mut peers = Vec::new();
    for i in 0..4 {
        let r = get(&mut c, &format!("/src{i}"));
        assert_eq!(r.status, 200);
        peers.push(r.header("x-peer").unwrap().to_string());
    }
    assert_eq!(peers, ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]);
    px.stop();

    // TCP mode too.
    let mut echo = ServerProc::start(&["echo", "--listen", "127.0.0.1:0", "--shards", "1"]);
    let mut px = proxy(
        &[echo.addr],
        &["--mode", "tcp", "--source-addrs", "127.0.0.4"],
    );
    let mut c = connect(px.addr);
    c.set_read_timeout(Some(LIMIT)).unwrap();
    c.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    px.stop();
    echo.stop();
}

#[test]
fn active_health_checks_keep_requests_off_a_failing_upstream() {
    let good = backend("ok", &["--tag", "good"]);
    let bad = backend("malformed", &[]);
    // Passive health is kept out of it (--max-fails 100): only the checks can tell.
    let mut px = proxy(
        &[bad.addr, good.addr],
        &[
            "--max-fails",
            "100",
            "--health-check",
            "/health",
            "--health-interval",
            "0.2",
        ],
    );
    std::thread::sleep(Duration::from_millis(1000));
    let mut c = connect(px.addr);
    for i in 0..10 {
        let r = get(&mut c, &format!("/h{i}"));
        assert_eq!(r.status, 200, "request {i} went to the failing upstream");
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    px.stop();
}

#[test]
fn tcp_mode_behind_tls_encrypts_what_comes_back() {
    let mut echo = ServerProc::start(&["echo", "--listen", "127.0.0.1:0", "--shards", "1"]);
    let mut px = proxy(&[echo.addr], &["--mode", "tcp", "--tls-self-signed"]);
    let cert = common::self_signed_cert(&px);
    // Python's ssl module as the client: 100 KiB out, the same back, decrypted.
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
host, port = sys.argv[1].rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        data = bytes(i % 251 for i in range(100_000))
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        assert got == data, (len(got), len(data))
print("ok")
"#;
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", script])
        .arg(px.addr.to_string())
        .arg(&cert)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "TLS to a TCP-mode proxy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    px.stop();
    echo.stop();
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let be = backend("slow", &["--delay-ms", "700"]);
    let mut px = proxy(&[be.addr], &[]);
    let mut c = connect(px.addr);
    c.write_all(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    px.signal("TERM");
    let (r, _) = read_responses(&mut c, 1, LIMIT);
    assert_eq!(r.len(), 1, "the request in flight is answered");
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].body, b"hello from /late\n");
    let st = px.wait_exit(LIMIT).expect("the proxy exits after SIGTERM");
    assert!(st.success(), "{st:?}");
}

fn hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// h2load against `url`: `n` requests over `conns` connections of `streams` streams
/// each; every one must succeed, within a minute, and no connection may go 5 s without
/// activity (h2load then gives up on it: a stalled stream fails). Its report.
fn h2load_all_succeed(url: &str, n: u32, conns: u32, streams: u32) -> String {
    let out = common::run_bounded(
        Command::new("h2load").args([
            "-n",
            &n.to_string(),
            "-c",
            &conns.to_string(),
            "-m",
            &streams.to_string(),
            "-N",
            "5",
            url,
        ]),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "h2load {url}: {text}");
    assert!(
        text.contains(&format!("{n} total, {n} started, {n} done, {n} succeeded")),
        "h2load {url}: {text}"
    );
    text
}

#[test]
fn http2_streams_downloading_at_once_never_leave_an_upstream_connection_held() {
    // Each response that outpaces its client holds its upstream connection until the
    // client's output drains. With several streams of one connection at once, a hold
    // can land after its upstream connection read the response whole and took the next
    // request: that request's response must still be read (it got 504 after the
    // upstream timeout). And the connection must hear when its output has drained
    // enough to release them, though its streams have nothing left to send until then
    // (it heard nothing, and stalled until its next timer). Cleartext (prior knowledge)
    // and TLS, where ALPN offers h2; two shards, where the stall showed.
    let be = ServerProc::start(&["http", "--listen", "127.0.0.1:0", "--shards", "1"]);
    for tls in [false, true] {
        let upstream = be.addr.to_string();
        let mut args = vec!["proxy", "--listen", "127.0.0.1:0", "--shards", "2"];
        args.extend(["--upstream", &upstream]);
        if tls {
            args.push("--tls-self-signed");
        }
        let mut px = ServerProc::start(&args);
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://{}/bytes/1000000", px.addr);
        let text = h2load_all_succeed(&url, 40, 1, 4);
        if tls {
            assert!(text.contains("Application protocol: h2"), "{text}");
        }
        for _ in 0..4 {
            h2load_all_succeed(&url, 200, 4, 4);
        }
        px.stop();
    }
}

/// `ringmaster http` (whose `/echo` sends the body back) taking bodies up to
/// `max_body` bytes, and a proxy in front of it with the same limit.
fn echoing_backend_behind_proxy(max_body: &str) -> (ServerProc, ServerProc) {
    let be = ServerProc::start(&[
        "http",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--max-body",
        max_body,
    ]);
    let px = proxy(&[be.addr], &["--max-body", max_body]);
    (be, px)
}

#[test]
fn request_bodies_stream_through_without_being_held_whole() {
    // `ringmaster http` echoes the body back: every byte, in order, both framings.
    let (mut be, mut px) = echoing_backend_behind_proxy("300000000");
    let small: Vec<u8> = (0..(8 << 20)).map(|i| (i % 251) as u8).collect();
    for chunked in [false, true] {
        let r = upload(px.addr, "/echo", &small, chunked);
        assert_eq!(r.status, 200, "chunked={chunked}");
        assert!(
            r.body == small,
            "chunked={chunked}: the body, whole and in order"
        );
    }
    // Memory: 128 MiB up and the same back. Held whole, the upload and its echo would
    // add 256 MiB to the proxy's peak. Streamed, what it holds is bounded by its
    // backlogs (4 MiB per connection, 256 KiB of upstream body) plus one receive buffer
    // per pause: a connection paused for backpressure gets one-shot receives from then
    // on, so a fast sender cannot pile up input behind a pause. A first transfer faults
    // in the buffer ring and the allocator's pools, which every later one reuses.
    const BIG: usize = 128 << 20;
    let big: Vec<u8> = (0..BIG).map(|i| (i % 253) as u8).collect();
    let warm = upload(px.addr, "/echo", &big[..BIG / 4], false);
    assert_eq!(warm.status, 200);
    let before = hwm_kib(px.pid());
    let r = upload(px.addr, "/echo", &big, false);
    assert_eq!(r.status, 200);
    assert!(
        r.body.len() == BIG && r.body == big,
        "the big body, whole and in order"
    );
    let grew = hwm_kib(px.pid()).saturating_sub(before);
    eprintln!(
        "proxy peak RSS grew {grew} KiB for {} MiB up and back",
        BIG >> 20
    );
    assert!(
        grew < (BIG / 4 / 1024) as u64,
        "the proxy's peak grew by {grew} KiB"
    );
    px.stop();
    be.stop();
}

#[test]
fn a_request_body_is_delivered_whole_when_its_request_closes_the_connection() {
    // `Connection: close` (or HTTP/1.0, which closes by default) marks the connection
    // closing as soon as the head is read; the body that follows is still the
    // request's. Both the proxy's front and `ringmaster http` itself.
    let (mut be, mut px) = echoing_backend_behind_proxy("16777216");
    let body: Vec<u8> = (0..(1 << 20)).map(|i| (i % 249) as u8).collect();
    let cases = [
        ("HTTP/1.1", "Connection: close\r\n", false),
        ("HTTP/1.1", "Connection: close\r\n", true),
        ("HTTP/1.0", "", false),
    ];
    for (to, addr) in [("proxy", px.addr), ("ringmaster http", be.addr)] {
        for (version, fields, chunked) in cases {
            let r = upload_as(addr, "/echo", &body, chunked, version, fields);
            let case = format!("{to}, {version} {fields:?} chunked={chunked}");
            assert_eq!(r.status, 200, "{case}");
            assert!(
                r.body == body,
                "{case}: {} of {} bytes back",
                r.body.len(),
                body.len()
            );
        }
    }
    px.stop();
    be.stop();
}

/// POSTs `body` to `path` (Content-Length, or chunked in 1 MiB chunks) from a writer
/// thread while the response is read; the response.
fn upload(addr: SocketAddr, path: &str, body: &[u8], chunked: bool) -> Resp {
    upload_as(addr, path, body, chunked, "HTTP/1.1", "")
}

/// [`upload`] in `version`, with `fields` (whole lines) added to the head.
fn upload_as(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    chunked: bool,
    version: &str,
    fields: &str,
) -> Resp {
    let mut c = connect(addr);
    c.set_write_timeout(Some(LIMIT)).unwrap();
    let head = if chunked {
        format!("POST {path} {version}\r\nHost: x\r\n{fields}Transfer-Encoding: chunked\r\n\r\n")
    } else {
        format!(
            "POST {path} {version}\r\nHost: x\r\n{fields}Content-Length: {}\r\n\r\n",
            body.len()
        )
    };
    let mut w = c.try_clone().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(head.as_bytes()).unwrap();
        if chunked {
            for piece in body.chunks(1 << 20) {
                w.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .unwrap();
                w.write_all(piece).unwrap();
                w.write_all(b"\r\n").unwrap();
            }
            w.write_all(b"0\r\n\r\n").unwrap();
        } else {
            w.write_all(&body).unwrap();
        }
    });
    let (mut r, _) = read_responses(&mut c, 1, Duration::from_secs(60));
    writer.join().unwrap();
    assert_eq!(r.len(), 1, "POST {path}: no response");
    r.remove(0)
}

/// Reads from `s` until `done` says the bytes so far are whole, or the peer closes.
fn read_until(s: &mut TcpStream, done: impl Fn(&str) -> bool) -> (String, bool) {
    let deadline = Instant::now() + LIMIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if done(&text) {
            return (text, false);
        }
        assert!(Instant::now() < deadline, "no whole response: {text:?}");
        match s.read(&mut buf) {
            Ok(0) => return (text, true),
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

/// Sends `raw` and reads one chunked response whole, framing included: its head and
/// what follows it up to the end of its trailer section.
fn raw_chunked(addr: SocketAddr, raw: &[u8]) -> (String, String) {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let (text, closed) = read_until(&mut s, |text| {
        let Some((_, rest)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        // After the last chunk's line: an empty trailer section, or fields then CRLF.
        rest.find("\r\n0\r\n").is_some_and(|at| {
            let after = &rest[at + 5..];
            after.starts_with("\r\n") || after.contains("\r\n\r\n")
        })
    });
    assert!(!closed, "closed before the response ended: {text:?}");
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    (head.to_string(), rest.to_string())
}

/// The trailer section of a raw chunked body (what follows its last chunk's line).
fn trailer_section(body: &str) -> &str {
    let at = body.find("\r\n0\r\n").expect("a last chunk");
    &body[at + 5..]
}

#[test]
fn response_trailers_pass_through_to_a_client_that_takes_them_only() {
    let mut be = backend("trailers", &[]);
    let mut px = proxy(&[be.addr], &[]);
    let start = px.fd_count();
    // TE: trailers: the allowed trailer fields come through, after the body.
    let (head, body) = raw_chunked(
        px.addr,
        b"GET /t HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: TE\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{head}");
    assert!(
        body.contains("te: trailers\n"),
        "the upstream was asked for trailers: {body:?}"
    );
    let len = body.split("\r\n").nth(1).unwrap().len();
    assert_eq!(
        trailer_section(&body),
        format!("X-Checksum: {len}\r\nX-Done: yes\r\n\r\n"),
        "allowed trailers only (Set-Cookie dropped): {body:?}"
    );
    // No TE: trailers: the same response ends with an empty trailer section.
    let (head, body) = raw_chunked(px.addr, b"GET /t HTTP/1.1\r\nHost: x\r\nTE: gzip\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.contains("te: -\n"),
        "nothing asked for upstream: {body:?}"
    );
    assert_eq!(trailer_section(&body), "\r\n", "{body:?}");
    // An HTTP/1.0 client: no chunked coding, so no trailers whatever it says; the body
    // ends with the connection.
    let mut s = connect(px.addr);
    s.write_all(b"GET /t HTTP/1.0\r\nTE: trailers\r\n\r\n")
        .unwrap();
    let (text, closed) = read_until(&mut s, |_| false);
    assert!(closed);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        body.starts_with("hello from /t\n") && body.ends_with("body: \n"),
        "the body, and nothing after it: {body:?}"
    );
    drop(s);
    // What is left: the proxy's one pooled connection to the backend.
    fds_return(&px, start + 1);
    px.stop();
    be.stop();
}

#[test]
fn request_trailers_reach_the_upstream_without_forbidden_fields() {
    let mut be = backend("trailers", &[]);
    let mut px = proxy(&[be.addr], &[]);
    let start = px.fd_count();
    let body = "5\r\nhello\r\n0\r\nX-Req-Sum: 5\r\nHost: evil\r\nContent-Length: 1\r\n\
Authorization: Basic eA==\r\nX-Two:  a b \r\n\r\n";
    // With its head in one write (a body complete on arrival), and after it; and with
    // a `Connection: close` that marks the connection closing before the body is read.
    for (split, close) in [(false, false), (true, false), (false, true)] {
        let fields = if close { "Connection: close\r\n" } else { "" };
        let head =
            format!("POST /u HTTP/1.1\r\nHost: x\r\n{fields}Transfer-Encoding: chunked\r\n\r\n");
        let mut s = connect(px.addr);
        if split {
            s.write_all(head.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(body.as_bytes()).unwrap();
        } else {
            s.write_all(format!("{head}{body}").as_bytes()).unwrap();
        }
        let (r, _) = read_responses(&mut s, 1, LIMIT);
        assert_eq!(r.len(), 1, "split={split} close={close}");
        assert_eq!(r[0].status, 200, "split={split} close={close}");
        let seen = String::from_utf8(r[0].body.clone()).unwrap();
        assert!(
            seen.ends_with("te: -\ntrailer: X-Req-Sum: 5\ntrailer: X-Two: a b\nbody: hello\n"),
            "split={split} close={close}: {seen:?}"
        );
    }
    // What is left: the proxy's one pooled connection to the backend.
    fds_return(&px, start + 1);
    px.stop();
    be.stop();
}

/// Runs an inline Python client `script` with `addr` and `path` as its arguments,
/// bounded to 30 s; it must succeed. Its standard output.
fn python_client(script: &str, addr: SocketAddr, path: &str) -> String {
    let out = common::run_bounded(
        Command::new("python3").args(["-c", script, &addr.to_string(), path]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// An HTTP/2 client (Python `h2`, cleartext with prior knowledge) that GETs `path`
/// and prints the response's trailer fields (`name=value` lines), then `body:` and
/// the body. Bounded: 10 s, and a stream that does not end is a failure.
const H2_GET: &str = r#"
import socket, sys, time
import h2.config, h2.connection, h2.events
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
c.initiate_connection()
c.send_headers(1, [(":method", "GET"), (":path", sys.argv[2]), (":scheme", "http"),
                   (":authority", "x")], end_stream=True)
s.sendall(c.data_to_send())
body, trailers, ended, deadline = b"", [], False, time.monotonic() + 10
while not ended:
    assert time.monotonic() < deadline, "no end of stream"
    data = s.recv(65536)
    assert data, "closed before the end of the stream"
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.DataReceived):
            body += ev.data
            c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            trailers = [(n.decode(), v.decode()) for n, v in ev.headers]
        elif isinstance(ev, h2.events.StreamEnded):
            ended = True
        elif isinstance(ev, h2.events.StreamReset):
            raise AssertionError("stream reset")
    s.sendall(c.data_to_send())
for n, v in trailers:
    print(f"{n}={v}")
print("body:" + body.decode())
"#;

#[test]
fn an_http2_client_gets_the_upstreams_trailers_after_the_body() {
    let mut be = backend("trailers", &[]);
    let mut px = proxy(&[be.addr], &[]);
    let text = python_client(H2_GET, px.addr, "/t");
    let (trailers, body) = text.split_once("body:").unwrap();
    // HTTP/2 always carries trailers: the upstream is asked for them, and the allowed
    // ones come as a HEADERS frame ending the stream after the DATA.
    assert!(body.contains("te: trailers\n"), "{body:?}");
    let len = body.trim_end_matches('\n').len() + 1;
    assert_eq!(
        trailers,
        format!("x-checksum={len}\nx-done=yes\n"),
        "{text}"
    );
    // A body past the stream's first window (64 KiB): the trailers wait for the last
    // DATA, which waits for the client's WINDOW_UPDATEs.
    let text = python_client(H2_GET, px.addr, "/t?pad=300000");
    let (trailers, body) = text.split_once("body:").unwrap();
    assert!(body.contains(&format!("\n{}\n", "x".repeat(300_000))));
    let len = body.trim_end_matches('\n').len() + 1;
    assert_eq!(trailers, format!("x-checksum={len}\nx-done=yes\n"));
    px.stop();
    be.stop();
}

/// A strict HTTP/1.1 client (Python `h11`) that GETs `path` with `TE: trailers` and
/// prints the trailer fields of the response (`name=value` lines), then `body:` and the
/// body. Bounded: 10 s.
const H11_GET: &str = r#"
import socket, sys, time
import h11
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
c = h11.Connection(h11.CLIENT)
s.sendall(c.send(h11.Request(method="GET", target=sys.argv[2],
                             headers=[("Host", "x"), ("TE", "trailers"), ("Connection", "TE")])))
s.sendall(c.send(h11.EndOfMessage()))
body, trailers, deadline = b"", None, time.monotonic() + 10
while trailers is None:
    assert time.monotonic() < deadline, "no end of message"
    ev = c.next_event()
    if ev is h11.NEED_DATA:
        c.receive_data(s.recv(65536))
    elif isinstance(ev, h11.Data):
        body += bytes(ev.data)
    elif isinstance(ev, h11.EndOfMessage):
        trailers = [(n.decode(), v.decode()) for n, v in ev.headers]
    elif isinstance(ev, h11.ConnectionClosed):
        raise AssertionError("closed mid-response")
for n, v in trailers:
    print(f"{n}={v}")
print("body:" + body.decode())
"#;

#[test]
fn a_strict_http11_client_reads_the_trailers_the_proxy_passes_on() {
    let mut be = backend("trailers", &[]);
    let mut px = proxy(&[be.addr], &[]);
    let text = python_client(H11_GET, px.addr, "/t");
    let (trailers, body) = text.split_once("body:").unwrap();
    let len = body.trim_end_matches('\n').len() + 1;
    // h11 lower-cases names.
    assert_eq!(
        trailers,
        format!("x-checksum={len}\nx-done=yes\n"),
        "{text}"
    );
    px.stop();
    be.stop();
}

/// An HTTP/2 client (Python `h2`, cleartext with prior knowledge) that uploads to
/// `/hold` (an upstream that never reads the body) as fast as flow control lets it, then
/// GETs `/after` on another stream of the same connection and prints that response's
/// status and body, and how much of the upload the windows let through. Bounded: 20 s.
const H2_HELD_UPLOAD: &str = r#"
import socket, sys, time
import h2.config, h2.connection, h2.events
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=20)
s.settimeout(0.2)
c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
c.initiate_connection()
c.send_headers(1, [(":method", "POST"), (":path", "/hold"), (":scheme", "http"),
                   (":authority", "x")])
s.sendall(c.data_to_send())
sent, quiet_since, deadline = 0, None, time.monotonic() + 20
chunk = b"u" * 16384
def pump():
    try:
        data = s.recv(65536)
    except socket.timeout:
        return []
    assert data, "the proxy closed the connection"
    evs = c.receive_data(data)
    s.sendall(c.data_to_send())
    return evs
# Upload until the windows stay shut for a second: the upstream reads nothing, so the
# proxy must stop granting credit for this stream.
while True:
    assert time.monotonic() < deadline, "the upload was never paused"
    room = min(c.local_flow_control_window(1), len(chunk))
    if room > 0:
        c.send_data(1, chunk[:room])
        s.sendall(c.data_to_send())
        sent += room
        quiet_since = None
        continue
    quiet_since = quiet_since or time.monotonic()
    if time.monotonic() - quiet_since > 1.0:
        break
    for ev in pump():
        assert not isinstance(ev, h2.events.StreamReset), "the upload was reset"
# The connection itself must still be read and answered.
c.send_headers(3, [(":method", "GET"), (":path", "/after"), (":scheme", "http"),
                   (":authority", "x")], end_stream=True)
s.sendall(c.data_to_send())
status, body, ended = None, b"", False
while not ended:
    assert time.monotonic() < deadline, "no answer on the second stream"
    for ev in pump():
        if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == 3:
            status = dict(ev.headers)[b":status"].decode()
        elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == 3:
            body += ev.data
            c.acknowledge_received_data(ev.flow_controlled_length, 3)
        elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == 3:
            ended = True
print(f"status={status} uploaded={sent}")
print("body:" + body.decode())
"#;

#[test]
fn an_http2_upload_held_by_its_upstream_pauses_its_stream_not_the_connection() {
    let mut be = backend("hold-body", &[]);
    // Bodies far larger than the default limit may stream through.
    let mut px = proxy(&[be.addr], &["--max-body", "1000000000"]);
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", H2_HELD_UPLOAD, &px.addr.to_string()])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("status=200 "), "{text}");
    assert!(text.contains("body:hello from /after\n"), "{text}");
    // The stream was held to what the proxy lets one upstream fall behind by, plus the
    // windows it had granted: nowhere near what an unpaced client could push.
    let uploaded: usize = text
        .split("uploaded=")
        .nth(1)
        .and_then(|t| t.lines().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(uploaded < 16 << 20, "{text}");
    px.stop();
    be.stop();
}

/// A strict HTTP/1.1 client (Python `h11`) that GETs `path` and prints each interim
/// response (`interim STATUS name=value ...`), then the final status and the body.
/// Bounded: 10 s.
const H11_INTERIM: &str = r#"
import socket, sys, time
import h11
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
c = h11.Connection(h11.CLIENT)
s.sendall(c.send(h11.Request(method="GET", target=sys.argv[2], headers=[("Host", "x")])))
s.sendall(c.send(h11.EndOfMessage()))
body, deadline = b"", time.monotonic() + 10
while True:
    assert time.monotonic() < deadline, "no end of message"
    ev = c.next_event()
    if ev is h11.NEED_DATA:
        c.receive_data(s.recv(65536))
    elif isinstance(ev, h11.InformationalResponse):
        fields = " ".join(f"{n.decode()}={v.decode()}" for n, v in ev.headers)
        print(f"interim {ev.status_code} {fields}")
    elif isinstance(ev, h11.Response):
        print(f"final {ev.status_code}")
    elif isinstance(ev, h11.Data):
        body += bytes(ev.data)
    elif isinstance(ev, h11.EndOfMessage):
        break
    elif isinstance(ev, h11.ConnectionClosed):
        raise AssertionError("closed mid-response")
print("body:" + body.decode())
"#;

/// An HTTP/2 client (Python `h2`) that GETs `path` and prints each interim response's
/// status and fields, then the final status. Bounded: 10 s.
const H2_INTERIM: &str = r#"
import socket, sys, time
import h2.config, h2.connection, h2.events
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
c.initiate_connection()
c.send_headers(1, [(":method", "GET"), (":path", sys.argv[2]), (":scheme", "http"),
                   (":authority", "x")], end_stream=True)
s.sendall(c.data_to_send())
ended, deadline = False, time.monotonic() + 10
while not ended:
    assert time.monotonic() < deadline, "no end of stream"
    data = s.recv(65536)
    assert data, "closed before the end of the stream"
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.InformationalResponseReceived):
            h = dict(ev.headers)
            fields = " ".join(f"{n.decode()}={v.decode()}" for n, v in ev.headers
                              if not n.startswith(b":") and n not in (b"date", b"server"))
            print(f"interim {h[b':status'].decode()} {fields}".rstrip())
        elif isinstance(ev, h2.events.ResponseReceived):
            print(f"final {dict(ev.headers)[b':status'].decode()}")
        elif isinstance(ev, h2.events.DataReceived):
            c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            ended = True
        elif isinstance(ev, h2.events.StreamReset):
            raise AssertionError("stream reset")
    s.sendall(c.data_to_send())
"#;

#[test]
fn interim_responses_are_forwarded_without_hop_by_hop_fields_in_order() {
    let mut be = backend("early-hints", &[]);
    let mut px = proxy(&[be.addr], &[]);
    // RFC 9110 section 15.2: a proxy forwards 1xx responses (the ones it did not ask
    // for), each cleaned of hop-by-hop fields like any response.
    let text = python_client(H11_INTERIM, px.addr, "/e");
    let lines: Vec<&str> = text.lines().collect();
    // Each carries the proxy's Via, as every forwarded message does (section 7.6.3).
    assert_eq!(lines[0], "interim 102 via=1.1 ringmaster", "{text}");
    assert!(lines[1].starts_with("interim 103 "), "{text}");
    assert!(
        lines[1].contains("link=</style.css>; rel=preload"),
        "{text}"
    );
    assert!(lines[1].contains("via=1.1 ringmaster"), "{text}");
    assert!(
        !lines[1].contains("x-hop") && !lines[1].contains("connection"),
        "{text}"
    );
    assert_eq!(lines[2], "final 200", "{text}");
    assert_eq!(lines[3], "body:hello from /e", "{text}");

    // HTTP/2: a HEADERS frame without END_STREAM for each.
    let text = python_client(H2_INTERIM, px.addr, "/e");
    assert_eq!(
        text,
        "interim 102 via=1.1 ringmaster\n\
         interim 103 link=</style.css>; rel=preload via=1.1 ringmaster\nfinal 200\n",
        "{text}"
    );

    // An HTTP/1.0 client never gets a 1xx (section 15.2).
    let mut s = connect(px.addr);
    s.write_all(b"GET /e HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let (raw, _) = read_until(&mut s, |t| t.contains("hello from /e"));
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");

    // Pipelined: each exchange's interim responses come after the previous response
    // and before its own.
    let mut s = connect(px.addr);
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (raw, _) = read_until(&mut s, |t| t.contains("hello from /b"));
    let statuses: Vec<&str> = raw
        .split('\n')
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .map(|l| &l[9..12])
        .collect();
    assert_eq!(
        statuses,
        ["102", "103", "200", "102", "103", "200"],
        "{raw:?}"
    );
    assert!(raw.starts_with("HTTP/1.1 102 Processing\r\n"), "{raw:?}");
    assert!(
        raw.contains("\r\n\r\nHTTP/1.1 103 Early Hints\r\n"),
        "{raw:?}"
    );
    let a = raw.find("hello from /a").unwrap();
    let second = raw[a..].find("HTTP/1.1 102").map(|i| i + a);
    assert!(second.is_some(), "{raw}");
    px.stop();
    be.stop();
}

#[test]
fn an_absolute_form_target_reaches_the_upstream_in_origin_form_with_its_host() {
    let mut be = backend("echo-head", &[]);
    let mut px = proxy(&[be.addr], &[]);
    // RFC 9112 section 3.2.2: the target's authority wins over Host; an origin server
    // gets the origin form (section 3.2.1), with no fragment and `/` for an empty path.
    for (target, line, host) in [
        (
            "http://Origin.example:8080/abs?q=1#frag",
            "GET /abs?q=1 HTTP/1.1",
            "Origin.example:8080",
        ),
        (
            "HTTPS://origin.example?x=2",
            "GET /?x=2 HTTP/1.1",
            "origin.example",
        ),
        ("http://origin.example", "GET / HTTP/1.1", "origin.example"),
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: other.example\r\n\r\n");
        let (r, _) = roundtrip(px.addr, raw.as_bytes(), 1);
        assert_eq!(r[0].status, 200, "{target}");
        let seen = String::from_utf8(r[0].body.clone()).unwrap();
        let lines: Vec<&str> = seen.split("\r\n").collect();
        assert_eq!(lines[0], line, "{seen}");
        let hosts: Vec<&&str> = lines
            .iter()
            .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
            .collect();
        assert_eq!(hosts, [&format!("Host: {host}").as_str()], "{seen}");
    }
    // No userinfo, no empty host (RFC 9110 sections 4.2.4 and 4.2.1).
    for target in ["http://user@origin.example/", "http:///path"] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (r, _) = roundtrip(px.addr, raw.as_bytes(), 1);
        assert_eq!(r[0].status, 400, "{target}");
    }
    assert_eq!(answered(be.addr), 3);
    px.stop();
    be.stop();
}

#[test]
fn max_forwards_is_decremented_and_zero_is_answered_by_the_proxy() {
    let mut be = backend("echo-head", &[]);
    let mut px = proxy(&[be.addr], &[]);
    // RFC 9110 section 7.6.2, for OPTIONS and TRACE only.
    let (r, _) = roundtrip(
        px.addr,
        b"OPTIONS /x HTTP/1.1\r\nHost: x\r\nMax-Forwards: 3\r\n\r\n",
        1,
    );
    let seen = String::from_utf8(r[0].body.clone()).unwrap();
    assert!(seen.contains("\r\nMax-Forwards: 2\r\n"), "{seen}");
    let (r, _) = roundtrip(
        px.addr,
        b"GET /x HTTP/1.1\r\nHost: x\r\nMax-Forwards: 3\r\n\r\n",
        1,
    );
    let seen = String::from_utf8(r[0].body.clone()).unwrap();
    assert!(seen.contains("\r\nMax-Forwards: 3\r\n"), "{seen}");
    let (r, _) = roundtrip(
        px.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n",
        1,
    );
    assert_eq!(r[0].status, 200);
    assert!(r[0].body.is_empty());
    let (r, _) = roundtrip(
        px.addr,
        b"TRACE /t HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nCookie: secret\r\nX-A: b\r\n\r\n",
        1,
    );
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].header("content-type"), Some("message/http"));
    let echo = String::from_utf8(r[0].body.clone()).unwrap();
    assert!(echo.starts_with("TRACE /t HTTP/1.1\r\n"), "{echo}");
    assert!(
        echo.contains("X-A: b\r\n") && !echo.contains("secret"),
        "{echo}"
    );
    // Only the two forwarded requests reached the upstream.
    assert_eq!(answered(be.addr), 2);
    px.stop();
    be.stop();
}

#[test]
fn via_names_the_protocol_each_request_came_in() {
    let mut be = backend("echo-head", &[]);
    let mut px = proxy(&[be.addr], &[]);
    // RFC 9110 section 7.6.3: the received protocol, "1.0", "1.1" or "2".
    let (r, _) = roundtrip(px.addr, b"GET /v HTTP/1.0\r\nHost: x\r\n\r\n", 1);
    let seen = String::from_utf8(r[0].body.clone()).unwrap();
    assert!(seen.contains("\r\nVia: 1.0 ringmaster\r\n"), "{seen}");
    let text = python_client(H2_GET, px.addr, "/v");
    assert!(text.contains("\r\nVia: 2 ringmaster\r\n"), "{text}");
    px.stop();
    be.stop();
}

#[test]
fn python_http_server_behind_the_proxy_answers_curl_whole_in_http10() {
    let dir = std::env::temp_dir().join(format!("rm-px-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let content: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(dir.join("file"), &content).unwrap();
    let (mut py, addr) = common::http_server(&dir);
    let mut px = proxy(&[addr], &[]);
    let start = px.fd_count();
    // http.server answers in HTTP/1.0 and closes each connection: the proxy reads the
    // response to its end, says so in Via, and keeps the client's connection.
    for _ in 0..3 {
        let out = Command::new("curl")
            .args(["-s", "-m", "10", "-D", "-", "-o", "/dev/stderr"])
            .arg(format!("http://{}/file", px.addr))
            .output()
            .expect("curl");
        assert!(out.status.success());
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert!(head.contains("\r\nVia: 1.0 ringmaster\r\n"), "{head}");
        assert_eq!(out.stderr, content);
    }
    let (r, _) = roundtrip(px.addr, b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    assert_eq!(r[0].status, 404);
    fds_return(&px, start);
    px.stop();
    let _ = py.kill();
    let _ = py.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The backend's `/__stats` connection count (connections it ever accepted, the one
/// asking included).
fn backend_connections(addr: SocketAddr) -> u64 {
    backend_stat(addr, "connections")
}

/// `n` requests to `path` at once, each on its own client connection; every one 200.
fn at_once(addr: SocketAddr, path: &str, n: usize) {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let path = path.to_string();
            std::thread::spawn(move || {
                let mut s = connect(addr);
                get(&mut s, &path).status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
}

#[test]
fn connections_past_the_idle_bound_serve_the_next_burst_then_close() {
    let mut be = backend("slow", &["--delay-ms", "300"]);
    let mut px = proxy(&[be.addr], &["--upstream-idle", "1"]);
    let start = px.fd_count();
    // Three at once need three upstream connections; the two past the idle bound stay
    // a moment, so a burst right after reuses all three instead of opening more.
    at_once(px.addr, "/a", 3);
    at_once(px.addr, "/b", 3);
    // Each /__stats reading is a connection of its own.
    assert_eq!(backend_connections(be.addr), 3 + 1);
    // Past the short grace the extra two are closed; the one within the bound stays.
    std::thread::sleep(Duration::from_millis(3500));
    fds_return(&px, start + 1);
    at_once(px.addr, "/c", 3);
    assert_eq!(backend_connections(be.addr), 3 + 1 + 2 + 1);
    px.stop();
    be.stop();
}
