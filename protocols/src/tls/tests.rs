//! TLS against a real server (the runtime, in process, on loopback) and a real client
//! (rustls' own), plus the configuration loader's errors and the memory an idle
//! connection holds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmaster_runtime::{Handler, Running, Server};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;
use crate::echo::Echo;
use crate::http1::{App, Exchange, Http, Limits, Request, Response};

struct DevCert {
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

fn dev_cert() -> DevCert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    DevCert {
        cert: ck.cert.der().clone(),
        key_der: ck.key_pair.serialize_der(),
        cert_pem: ck.cert.pem(),
        key_pem: ck.key_pair.serialize_pem(),
    }
}

fn server_config(dc: &DevCert, opts: &TlsOptions) -> TlsConfig {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(dc.key_der.clone()));
    TlsConfig::from_der(vec![dc.cert.clone()], key, opts).expect("config")
}

fn client_config(
    dc: &DevCert,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(dc.cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(c)
}

fn start<H: Handler, F: Fn(usize) -> H + Send + Sync + 'static>(f: F) -> Running {
    Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .buf_ring_entries(64)
        .handle_signals(false)
        .build()
        .expect("build")
        .start(f)
        .expect("start")
}

struct Client {
    conn: ClientConnection,
    sock: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr, cfg: Arc<ClientConfig>) -> Client {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
        Client { conn, sock }
    }
    fn stream(&mut self) -> rustls::Stream<'_, ClientConnection, TcpStream> {
        rustls::Stream::new(&mut self.conn, &mut self.sock)
    }
    fn handshake(&mut self) {
        while self.conn.is_handshaking() {
            self.conn.complete_io(&mut self.sock).expect("handshake");
        }
    }
}

#[test]
fn echo_over_tls13_and_tls12_including_a_large_transfer() {
    let dc = dev_cert();
    let cfg = server_config(&dc, &TlsOptions::default());
    let running = start(move |_| Tls::new(Echo, cfg.clone()));
    let addr = running.local_addr();
    for (v, name) in [
        (&rustls::version::TLS13, "1.3"),
        (&rustls::version::TLS12, "1.2"),
    ] {
        let mut c = Client::connect(addr, client_config(&dc, &[v], &[]));
        c.handshake();
        assert_eq!(c.conn.protocol_version(), Some(v.version), "TLS {name}");
        c.stream().write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.stream().read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        // 3 MiB both ways, written and read concurrently through one client thread by
        // alternating (the echo pushes back as it goes).
        let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut got = Vec::with_capacity(data.len());
        let mut sent = 0;
        let mut tmp = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < data.len() {
            assert!(Instant::now() < deadline, "echo stalled at {}", got.len());
            if sent < data.len() {
                let end = (sent + 256 * 1024).min(data.len());
                c.stream().write_all(&data[sent..end]).unwrap();
                sent = end;
            }
            let n = c.stream().read(&mut tmp).unwrap();
            assert!(n > 0, "eof after {}", got.len());
            got.extend_from_slice(&tmp[..n]);
        }
        assert!(got == data, "TLS {name}: echoed bytes differ");
    }
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

struct Hello;
impl App for Hello {
    type Task = ();
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<()> {
        if req.path() == "/plaintext" {
            ex.respond(Response::text(200, "Hello, World!"));
        } else {
            ex.respond(Response::new(404));
        }
        None
    }
}

#[test]
fn http_with_alpn_and_resumption() {
    let dc = dev_cert();
    let cfg = server_config(&dc, &TlsOptions::http1());
    let running = start(move |_| Tls::new(Http::new(Hello, Limits::default()), cfg.clone()));
    let addr = running.local_addr();
    for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let ccfg = client_config(&dc, &[v], &[b"h2", b"http/1.1"]);
        for round in 0..3 {
            let mut c = Client::connect(addr, ccfg.clone());
            c.handshake();
            assert_eq!(c.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
            let kind = c.conn.handshake_kind();
            c.stream()
                .write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut text = Vec::new();
            let _ = c.stream().read_to_end(&mut text);
            let text = String::from_utf8_lossy(&text);
            assert_eq!(text.matches("Hello, World!").count(), 2, "{text}");
            if round > 0 {
                // TLS 1.3 resumes from a ticket, TLS 1.2 from a ticket or session ID.
                assert_eq!(
                    kind,
                    Some(rustls::HandshakeKind::Resumed),
                    "{v:?} round {round}"
                );
            }
        }
    }
    // Far more pipelined requests than the HTTP layer takes at once: it pauses reading
    // with plaintext left over, which must still be answered after it resumes.
    let mut c = Client::connect(addr, client_config(&dc, &[&rustls::version::TLS13], &[]));
    let mut reqs = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n".repeat(199);
    reqs.extend_from_slice(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.stream().write_all(&reqs).unwrap();
    let mut text = Vec::new();
    let _ = c.stream().read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text);
    assert_eq!(text.matches("Hello, World!").count(), 200);

    // A client whose only ALPN protocol we do not speak is refused with an alert.
    let mut c = Client::connect(
        addr,
        client_config(&dc, &[&rustls::version::TLS13], &[b"h2"]),
    );
    let err = c
        .conn
        .complete_io(&mut c.sock)
        .and_then(|_| c.conn.complete_io(&mut c.sock));
    let err = format!("{err:?}");
    assert!(err.contains("NoApplicationProtocol"), "{err}");
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

/// Reads until EOF (bounded); returns what came.
fn read_to_eof(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(out),
            Err(_) => return None,
        }
    }
}

/// `Tls<Echo>` that publishes its counters after every close, for the test to read.
struct Probe(Tls<Echo>, Arc<std::sync::Mutex<TlsCounters>>);

impl Handler for Probe {
    type Conn = TlsConn<crate::echo::EchoConn>;
    fn on_open(&mut self, peer: SocketAddr, io: &mut ringmaster_runtime::Io<'_>) -> Self::Conn {
        self.0.on_open(peer, io)
    }
    fn on_data(
        &mut self,
        conn: &mut Self::Conn,
        input: &mut ringmaster_runtime::Input<'_>,
        io: &mut ringmaster_runtime::Io<'_>,
    ) {
        self.0.on_data(conn, input, io)
    }
    fn on_event(
        &mut self,
        conn: &mut Self::Conn,
        event: ringmaster_runtime::Event<'_>,
        io: &mut ringmaster_runtime::Io<'_>,
    ) {
        self.0.on_event(conn, event, io)
    }
    fn on_close(&mut self, conn: Self::Conn, why: ringmaster_runtime::Close) {
        self.0.on_close(conn, why);
        *self.1.lock().unwrap() = self.0.counters().clone();
    }
}

#[test]
fn garbage_and_stalled_handshakes_are_closed_while_others_are_served() {
    let dc = dev_cert();
    let opts = TlsOptions {
        handshake_timeout: Duration::from_millis(300),
        ..TlsOptions::default()
    };
    let cfg = server_config(&dc, &opts);
    let counters = Arc::new(std::sync::Mutex::new(TlsCounters::default()));
    let sink = counters.clone();
    let running = start(move |_| Probe(Tls::new(Echo, cfg.clone()), sink.clone()));
    let addr = running.local_addr();

    // Not TLS at all: an alert record (content type 21) comes back, then EOF.
    let mut g = TcpStream::connect(addr).unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let out = read_to_eof(&mut g, Duration::from_secs(5)).expect("closed");
    assert_eq!(
        out.first(),
        Some(&21),
        "alert record expected, got {out:x?}"
    );

    // A ClientHello-shaped record with a garbage body.
    let mut g = TcpStream::connect(addr).unwrap();
    g.write_all(&[22, 3, 1, 0, 8, 1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef])
        .unwrap();
    let out = read_to_eof(&mut g, Duration::from_secs(5)).expect("closed");
    assert_eq!(
        out.first(),
        Some(&21),
        "alert record expected, got {out:x?}"
    );

    // A handshake message announcing 6 MB: rustls refuses it without queuing an alert,
    // so the TLS layer sends decode_error itself.
    let mut g = TcpStream::connect(addr).unwrap();
    g.write_all(b"\x16\x03\x01\x00\x05hello").unwrap();
    let out = read_to_eof(&mut g, Duration::from_secs(5)).expect("closed");
    assert_eq!(out, [21, 3, 3, 0, 2, 2, 50], "decode_error alert expected");
    drop(g);

    // Stalled: half a record header, then nothing. Closed at the deadline.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&[22, 3]).unwrap();
    let t = Instant::now();
    // Meanwhile a real client is served.
    let mut c = Client::connect(addr, client_config(&dc, &[&rustls::version::TLS13], &[]));
    c.handshake();
    c.stream().write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    c.stream().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    assert!(
        read_to_eof(&mut s, Duration::from_secs(5)).is_some(),
        "stalled handshake not closed"
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    // The served client is still fine after the others went.
    c.stream().write_all(b"pong").unwrap();
    c.stream().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");

    // No common cipher suite: a TLS 1.2 client offering only a suite we lack.
    let mut roots = RootCertStore::empty();
    roots.add(dc.cert.clone()).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);
    let ccfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut c = Client::connect(addr, Arc::new(ccfg));
    let mut r = Ok((0, 0));
    for _ in 0..4 {
        r = c.conn.complete_io(&mut c.sock);
        if r.is_err() {
            break;
        }
    }
    let err = format!("{r:?}");
    assert!(err.contains("HandshakeFailure"), "{err}");
    drop(c);
    // Let the last close (lingering until the client's FIN) complete.
    std::thread::sleep(Duration::from_millis(300));
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
    let seen = counters.lock().unwrap().clone();
    assert_eq!(seen.handshake_timeouts, 1, "{seen:?}");
    assert_eq!(
        seen.handshake_errors, 4,
        "garbage x3 + no common cipher: {seen:?}"
    );
    assert_eq!(seen.handshakes, 1, "{seen:?}");
}

fn tmp(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmaster-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

#[test]
fn loader_errors_name_the_file_and_the_problem() {
    let a = dev_cert();
    let b = dev_cert();
    let cert = tmp("cert.pem", a.cert_pem.as_bytes());
    let key = tmp("key.pem", a.key_pem.as_bytes());
    let other_key = tmp("other.pem", b.key_pem.as_bytes());
    let empty = tmp("empty.pem", b"nothing here\n");
    let opts = TlsOptions::default();
    assert!(TlsConfig::from_pem_files(&cert, &key, &opts).is_ok());
    // Both in one file works too.
    let both = tmp(
        "both.pem",
        format!("{}{}", a.cert_pem, a.key_pem).as_bytes(),
    );
    assert!(TlsConfig::from_pem_files(&both, &both, &opts).is_ok());

    let msg = |r: Result<TlsConfig, TlsConfigError>| r.unwrap_err().to_string();
    let missing = cert.with_file_name("missing.pem");
    let m = msg(TlsConfig::from_pem_files(&missing, &key, &opts));
    assert!(
        m.contains("missing.pem") && m.contains("cannot read"),
        "{m}"
    );
    let m = msg(TlsConfig::from_pem_files(&empty, &key, &opts));
    assert!(
        m.contains("empty.pem") && m.contains("no certificate"),
        "{m}"
    );
    let m = msg(TlsConfig::from_pem_files(&cert, &empty, &opts));
    assert!(
        m.contains("empty.pem") && m.contains("no private key"),
        "{m}"
    );
    let m = msg(TlsConfig::from_pem_files(&cert, &cert, &opts));
    assert!(
        m.contains("cert.pem") && m.contains("no private key"),
        "{m}"
    );
    let m = msg(TlsConfig::from_pem_files(&cert, &other_key, &opts));
    assert!(
        m.contains("other.pem") && m.contains("does not match") && m.contains("cert.pem"),
        "{m}"
    );
    let broken = tmp("broken.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n");
    let m = msg(TlsConfig::from_pem_files(&broken, &key, &opts));
    assert!(m.contains("broken.pem") && m.contains("PEM"), "{m}");
    assert!(!m.contains('\n'), "one line: {m}");
    let _ = std::fs::remove_dir_all(cert.parent().unwrap());
}

/// An App that answers `/sum/N` from the offload pool (the sum of 1..=N), served behind
/// `HttpWs` (whose upgrade path it never takes).
struct Sum;
impl App for Sum {
    type Task = ringmaster_runtime::Offloaded<u64>;
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Self::Task> {
        let Some(n) = req
            .path()
            .strip_prefix("/sum/")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            ex.respond(Response::new(404));
            return None;
        };
        match ex.offload(move || (1..=n).sum::<u64>()) {
            Ok(job) => Some(job),
            Err(e) => {
                ex.respond(Response::text(503, &e.to_string()));
                None
            }
        }
    }
    fn on_offload_done(
        &mut self,
        job: &mut Self::Task,
        done: ringmaster_runtime::OffloadDone,
        ex: &mut Exchange<'_>,
    ) {
        match job.result(done) {
            Ok(v) => ex.respond(Response::text(200, &format!("sum={v}"))),
            Err(p) => ex.respond(Response::text(500, &p.message)),
        }
    }
}

/// The WebSocket side of the `HttpWs` under test: never reached.
struct NoWs;
impl crate::websocket::WsApp for NoWs {
    type Conn = ();
    fn on_open(&mut self, _ws: &mut crate::websocket::WsIo<'_, '_>) {}
    fn on_message(
        &mut self,
        _c: &mut (),
        _m: crate::websocket::Message<'_>,
        _ws: &mut crate::websocket::WsIo<'_, '_>,
    ) {
    }
}

fn sum_behind_upgrades() -> crate::websocket::HttpWs<Sum, NoWs> {
    crate::websocket::HttpWs::new(
        Http::new(Sum, Limits::default()),
        crate::websocket::Ws::new(NoWs, crate::websocket::WsLimits::default()),
    )
}

/// Two pipelined requests that each offload: the first while the connection may still
/// upgrade, the second after (two different states of `HttpWs`).
const SUMS: &[u8] = b"GET /sum/10 HTTP/1.1\r\nHost: x\r\n\r\nGET /sum/100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn assert_sums(got: &[u8]) {
    let text = String::from_utf8_lossy(got);
    let (a, b) = (text.find("sum=55"), text.find("sum=5050"));
    assert!(matches!((a, b), (Some(a), Some(b)) if a < b), "{text}");
}

#[test]
fn an_app_behind_httpws_gets_its_offloaded_results() {
    let running = start(|_| sum_behind_upgrades());
    let mut s = TcpStream::connect(running.local_addr()).unwrap();
    s.write_all(SUMS).unwrap();
    let got = read_to_eof(&mut s, Duration::from_secs(10)).expect("closed in time");
    assert_sums(&got);
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

#[test]
fn an_app_behind_tls_and_httpws_gets_its_offloaded_results() {
    let dc = dev_cert();
    let cfg = server_config(&dc, &TlsOptions::http1());
    let running = start(move |_| Tls::new(sum_behind_upgrades(), cfg.clone()));
    let mut c = Client::connect(
        running.local_addr(),
        client_config(&dc, &[&rustls::version::TLS13], &[]),
    );
    c.stream().write_all(SUMS).unwrap();
    let mut got = Vec::new();
    let _ = c.stream().read_to_end(&mut got);
    assert_sums(&got);
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}
