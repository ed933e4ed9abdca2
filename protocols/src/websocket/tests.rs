//! WebSocket against a real server (the runtime, in process, on loopback) and real
//! clients: tungstenite for the happy paths and a raw socket for what no well-behaved
//! client sends (unmasked frames, invalid UTF-8 across fragments, oversize messages).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmaster_runtime::{Handler, Running, Server};
use tungstenite::protocol::frame::coding::{Data, OpCode as TOp};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message as TMsg;

use super::frame::client_frame;
use super::*;
use crate::http1::{App, Exchange, Http, Limits, Request, Response};

/// Plain HTTP for every request that is not an upgrade.
pub(crate) struct Plain;
impl App for Plain {
    type Task = ();
    fn on_request(&mut self, _req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<()> {
        ex.respond(Response::text(200, "plain http"));
        None
    }
}

/// A message as broadcast between shards.
enum Owned {
    Text(String),
    Binary(Vec<u8>),
}

/// Echo, or broadcast; `close:CODE` closes with that code.
pub(crate) struct TestApp {
    broadcast: bool,
}

impl WsApp for TestApp {
    type Conn = ();
    fn accept(&mut self, target: &str) -> bool {
        target != "/forbidden"
    }
    fn on_open(&mut self, ws: &mut WsIo<'_, '_>) {
        if self.broadcast {
            ws.send_text(&format!("shard:{}", ws.shard_id()));
        }
    }
    fn on_message(&mut self, _c: &mut (), msg: Message<'_>, ws: &mut WsIo<'_, '_>) {
        if let Message::Text(t) = msg {
            if let Some(code) = t.strip_prefix("close:") {
                return ws.close(code.parse().unwrap_or(1000), "asked to");
            }
        }
        if self.broadcast {
            let m = match msg {
                Message::Text(t) => Owned::Text(t.to_string()),
                Message::Binary(b) => Owned::Binary(b.to_vec()),
            };
            ws.broadcast(Arc::new(m));
        } else {
            ws.send_message(msg);
        }
    }
    fn on_broadcast(
        &mut self,
        _c: &mut (),
        msg: &ringmaster_runtime::Broadcast,
        ws: &mut WsIo<'_, '_>,
    ) {
        match msg.downcast_ref::<Owned>() {
            Some(Owned::Text(t)) => ws.send_text(t),
            Some(Owned::Binary(b)) => ws.send_binary(b),
            None => {}
        }
    }
}

pub(crate) const LIMIT: usize = 1024 * 1024;

pub(crate) fn handler(broadcast: bool, limits: WsLimits) -> HttpWs<Plain, TestApp> {
    HttpWs::new(
        Http::new(Plain, Limits::default()),
        Ws::new(TestApp { broadcast }, limits),
    )
}

pub(crate) fn limits() -> WsLimits {
    WsLimits {
        max_message: LIMIT,
        ..WsLimits::default()
    }
}

pub(crate) fn start<H: Handler, F: Fn(usize) -> H + Send + Sync + 'static>(
    shards: usize,
    f: F,
) -> Running {
    Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(shards)
        .buf_ring_entries(64)
        .handle_signals(false)
        .build()
        .expect("build")
        .start(f)
        .expect("start")
}

fn connect(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (ws, resp) =
        tungstenite::client::client(format!("ws://{addr}/chat"), s).expect("handshake");
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("sec-websocket-extensions").is_none());
    ws
}

#[test]
fn tungstenite_echo_sizes_fragments_ping_and_close() {
    let running = start(1, |_| handler(false, limits()));
    let addr = running.local_addr();
    let mut ws = connect(addr);
    for n in [0usize, 1, 125, 126, 65535, 65536, 200_000, LIMIT] {
        let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        ws.send(TMsg::text(text.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), TMsg::text(text), "text of {n}");
        let bin: Vec<u8> = (0..n).map(|i| (i % 256) as u8).collect();
        ws.send(TMsg::binary(bin.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), TMsg::binary(bin), "binary of {n}");
    }
    // Fragmented, a ping between the fragments, a character split across them.
    let euro = "€".as_bytes();
    ws.send(TMsg::Frame(Frame::message(
        vec![b'x', euro[0]],
        TOp::Data(Data::Text),
        false,
    )))
    .unwrap();
    ws.send(TMsg::Ping(b"mid".to_vec().into())).unwrap();
    ws.send(TMsg::Frame(Frame::message(
        euro[1..].to_vec(),
        TOp::Data(Data::Continue),
        false,
    )))
    .unwrap();
    ws.send(TMsg::Frame(Frame::message(
        b"y".to_vec(),
        TOp::Data(Data::Continue),
        true,
    )))
    .unwrap();
    assert_eq!(ws.read().unwrap(), TMsg::Pong(b"mid".to_vec().into()));
    assert_eq!(ws.read().unwrap(), TMsg::text("x€y"));
    // Close with a code: echoed.
    ws.close(Some(CloseFrame {
        code: 4000u16.into(),
        reason: "bye".into(),
    }))
    .unwrap();
    match ws.read() {
        Ok(TMsg::Close(Some(f))) => assert_eq!(u16::from(f.code), 4000),
        Ok(m) => panic!("unexpected {m:?}"),
        Err(e) => panic!("{e}"),
    }
    // Server-initiated close.
    let mut ws = connect(addr);
    ws.send(TMsg::text("close:4321")).unwrap();
    match ws.read().unwrap() {
        TMsg::Close(Some(f)) => assert_eq!(u16::from(f.code), 4321),
        m => panic!("unexpected {m:?}"),
    }
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

/// A raw client: the handshake by hand, then frames built byte by byte.
pub(crate) fn raw(addr: SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap_or(0) == 0 {
            break;
        }
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// Reads frames until a close frame; returns its code (None on EOF without one).
pub(crate) fn close_code(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        while let Ok(Some(h)) = frame::decode_header(&buf) {
            let end = h.header_len + h.payload_len as usize;
            if buf.len() < end {
                break;
            }
            if h.opcode == frame::OpCode::Close {
                let p = &buf[h.header_len..end];
                return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            }
            buf.drain(..end);
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    None
}

#[test]
fn bad_frames_get_the_right_close_codes() {
    let running = start(1, |_| handler(false, limits()));
    let addr = running.local_addr();
    let k = [1, 2, 3, 4];
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", vec![0x81, 0x02, b'h', b'i'], 1002),
        (
            "invalid utf-8 split across fragments",
            {
                let mut f = client_frame(false, 1, &[b'o', b'k', 0xF4], k);
                f.extend(client_frame(true, 0, &[0x90, 0x80, 0x80], k));
                f
            },
            1007,
        ),
        (
            "oversize",
            client_frame(true, 2, &vec![0u8; LIMIT + 1], k),
            1009,
        ),
        (
            "oversize across fragments",
            {
                let mut f = client_frame(false, 2, &vec![0u8; LIMIT / 2 + 1], k);
                f.extend(client_frame(true, 0, &vec![0u8; LIMIT / 2], k));
                f
            },
            1009,
        ),
        ("reserved opcode", client_frame(true, 5, b"", k), 1002),
        (
            "rsv1 (deflate not negotiated)",
            {
                let mut f = client_frame(true, 1, b"a", k);
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        ("fragmented ping", client_frame(false, 9, b"", k), 1002),
        (
            "close code 1005",
            client_frame(true, 8, &1005u16.to_be_bytes(), k),
            1002,
        ),
        (
            "close reason not utf-8",
            client_frame(true, 8, &[0x03, 0xE8, 0xC0], k),
            1007,
        ),
        (
            "close 1000 echoed",
            client_frame(true, 8, &1000u16.to_be_bytes(), k),
            1000,
        ),
    ];
    for (name, bytes, want) in cases {
        let (mut s, head) = raw(addr, KEY);
        assert!(head.starts_with("HTTP/1.1 101"), "{name}: {head}");
        let _ = s.write_all(&bytes);
        assert_eq!(close_code(&mut s), Some(want), "{name}");
    }
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

#[test]
fn handshake_refusals_and_declined_deflate() {
    let running = start(1, |_| handler(false, limits()));
    let addr = running.local_addr();
    let (_, head) = raw(addr, "Sec-WebSocket-Version: 13\r\n");
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let (_, head) = raw(
        addr,
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n",
    );
    assert!(
        head.starts_with("HTTP/1.1 426 ") && head.contains("Sec-WebSocket-Version: 13\r\n"),
        "{head}"
    );
    let (_, head) = raw(
        addr,
        &format!("{KEY}Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert!(!head.to_ascii_lowercase().contains("extensions"), "{head}");
    // A refused target, and a plain HTTP request on the same server.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET /forbidden HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n{KEY}\r\n").as_bytes()).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 404 "), "{text}");
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(
        text.starts_with("HTTP/1.1 200 ") && text.ends_with("plain http"),
        "{text}"
    );
    // Only a connection's first request upgrades: a later one is a plain request, and so
    // is a body that looks like an upgrade request, even when it starts a read.
    let upgrade = format!(
        "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n{KEY}\r\n"
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\n\r\n{upgrade}").as_bytes())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut tmp = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches("plain http").count() < 2 {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&tmp[..n]);
    }
    assert!(!String::from_utf8_lossy(&got).contains(" 101 "));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            upgrade.len()
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(upgrade.as_bytes()).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert_eq!(text.matches("plain http").count(), 2, "{text}");
    assert!(!text.contains(" 101 "), "{text}");

    // Frames sent right behind the handshake, in the same write, are not lost.
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n{KEY}\r\n"
    )
    .into_bytes();
    req.extend(client_frame(true, 1, b"early", [9, 9, 9, 9]));
    s.write_all(&req).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut tmp = [0u8; 1024];
    while !got.ends_with(b"early") {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&tmp[..n]);
    }
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

#[test]
fn idle_connections_are_pinged_then_closed() {
    let lim = WsLimits {
        idle_timeout: Some(Duration::from_millis(200)),
        ping_timeout: Duration::from_millis(200),
        ..limits()
    };
    let running = start(1, move |_| handler(false, lim.clone()));
    let (mut s, head) = raw(running.local_addr(), KEY);
    assert!(head.starts_with("HTTP/1.1 101"));
    let t = Instant::now();
    let mut b = [0u8; 6];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, &[0x89, 4, b'i', b'd', b'l', b'e']);
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(close_code(&mut s), Some(1001));
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

#[test]
fn broadcast_reaches_every_client_on_every_shard_exactly_once() {
    let running = start(2, |_| handler(true, limits()));
    let addr = running.local_addr();
    let n = 12;
    let mut clients = Vec::new();
    let mut shards = std::collections::BTreeSet::new();
    for _ in 0..n {
        let mut ws = connect(addr);
        match ws.read().unwrap() {
            TMsg::Text(t) => {
                shards.insert(t.to_string());
            }
            m => panic!("{m:?}"),
        }
        clients.push(ws);
    }
    assert!(
        shards.len() == 2,
        "clients all landed on one shard: {shards:?}"
    );
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(TMsg::text(format!("from {i}"))).unwrap();
    }
    for ws in clients.iter_mut() {
        let mut got: Vec<String> = (0..n)
            .map(|_| match ws.read().unwrap() {
                TMsg::Text(t) => t.to_string(),
                m => panic!("{m:?}"),
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = (0..n).map(|i| format!("from {i}")).collect();
        want.sort();
        assert_eq!(got, want);
    }
    // Nothing more (no duplicates): a short read times out.
    for ws in clients.iter_mut() {
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert!(ws.read().is_err());
    }
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

#[test]
fn wss_through_tls_with_tungstenite() {
    use crate::tls::rustls;
    use crate::tls::{Tls, TlsConfig, TlsOptions};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let cfg = TlsConfig::from_der(vec![ck.cert.der().clone()], key, &TlsOptions::http1()).unwrap();
    let running = start(1, move |_| Tls::new(handler(false, limits()), cfg.clone()));
    let addr = running.local_addr();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let mut ccfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    ccfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let conn =
        rustls::ClientConnection::new(Arc::new(ccfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let stream = rustls::StreamOwned::new(conn, sock);
    let (mut ws, resp) =
        tungstenite::client::client(format!("wss://localhost:{}/", addr.port()), stream)
            .expect("wss handshake");
    assert_eq!(resp.status(), 101);
    for n in [5usize, 70_000, LIMIT] {
        let data: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
        ws.send(TMsg::binary(data.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), TMsg::binary(data));
    }
    ws.send(TMsg::text("close:1000")).unwrap();
    match ws.read().unwrap() {
        TMsg::Close(Some(f)) => assert_eq!(u16::from(f.code), 1000),
        m => panic!("unexpected {m:?}"),
    }
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

#[test]
fn a_slow_broadcast_consumer_is_reset_not_buffered_forever() {
    let lim = WsLimits {
        max_backlog: 512 * 1024,
        ..limits()
    };
    let running = start(1, move |_| handler(true, lim.clone()));
    let addr = running.local_addr();
    let mut fast = connect(addr);
    let _ = fast.read().unwrap(); // shard:N
    let (mut slow, head) = raw(addr, KEY); // never reads until the end
    assert!(head.starts_with("HTTP/1.1 101"));
    let big = vec![7u8; 64 * 1024];
    for _ in 0..400 {
        fast.send(TMsg::binary(big.clone())).unwrap();
        match fast.read().unwrap() {
            TMsg::Binary(b) => assert_eq!(b.len(), big.len()),
            m => panic!("{m:?}"),
        }
    }
    // The slow client was cut off: reading what it has ends in EOF or a reset, well
    // short of the 25 MiB broadcast.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match slow.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 20 * 1024 * 1024, "slow consumer got {total} bytes");
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

#[test]
fn shutdown_closes_websockets_with_going_away() {
    let running = start(1, |_| handler(false, limits()));
    let addr = running.local_addr();
    let mut ws = connect(addr);
    ws.send(TMsg::text("hi")).unwrap();
    assert_eq!(ws.read().unwrap(), TMsg::text("hi"));
    let handle = running.shutdown_handle();
    let t = Instant::now();
    handle.shutdown();
    match ws.read().unwrap() {
        TMsg::Close(Some(f)) => assert_eq!(u16::from(f.code), 1001),
        m => panic!("unexpected {m:?}"),
    }
    // tungstenite answers the close; the server then finishes well before its drain deadline.
    let _ = ws.flush();
    running.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
