//! TLS end to end: the real binary with `--tls-*`, and clients nobody here wrote —
//! rustls, `openssl s_client` (TLS 1.2 and 1.3, ALPN) and curl `--cacert` — plus a
//! garbage ClientHello and a stalled handshake closed while others are served, and the
//! certificate flags' one-line errors.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run_to_end, ServerProc};
use ringmaster_protocols::tls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A scratch directory for this test process.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringmaster-tls-e2e-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An ECDSA P-256 certificate for localhost/127.0.0.1 made with the openssl CLI.
fn openssl_cert(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{stem}-cert.pem"));
    let key = dir.join(format!("{stem}-key.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .args(["-days", "30", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success());
    (cert, key)
}

/// The certificate file named in a `--tls-self-signed` startup line.
fn self_signed_path(server: &ServerProc) -> PathBuf {
    let lines = server.stderr();
    let line = lines
        .iter()
        .find(|l| l.contains("self-signed certificate in "))
        .unwrap_or_else(|| panic!("no certificate path in {lines:?}"));
    let rest = line.split("self-signed certificate in ").nth(1).unwrap();
    PathBuf::from(rest.split(')').next().unwrap())
}

fn client_config(ca: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(c)
}

fn rustls_roundtrip(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>, name: &str, msg: &[u8]) {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut conn =
        rustls::ClientConnection::new(cfg, ServerName::try_from(name.to_string()).unwrap())
            .unwrap();
    let mut s = rustls::Stream::new(&mut conn, &mut sock);
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn echo_with_a_self_signed_certificate_and_rustls() {
    let dir = scratch("selfsigned");
    let out = dir.join("dev.pem");
    let mut server = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--tls-self-signed",
        "--tls-self-signed-out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(self_signed_path(&server), out);
    for name in ["localhost", "127.0.0.1"] {
        rustls_roundtrip(
            server.addr,
            client_config(&out, &[]),
            name,
            b"hello over tls",
        );
    }
    // ::1 is in the certificate too.
    let six = ServerProc::start(&[
        "echo",
        "--listen",
        "[::1]:0",
        "--shards",
        "1",
        "--tls-self-signed",
        "--tls-self-signed-out",
        dir.join("dev6.pem").to_str().unwrap(),
    ]);
    rustls_roundtrip(
        six.addr,
        client_config(&dir.join("dev6.pem"), &[]),
        "::1",
        b"v6",
    );
    assert!(server.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `openssl s_client` with `args`, sending `input`; returns stdout+stderr.
fn s_client(addr: SocketAddr, args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    // Keep stdin open a moment so the reply arrives before s_client sees EOF.
    std::thread::sleep(Duration::from_millis(700));
    drop(stdin);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn openssl_s_client_tls12_tls13_alpn_against_echo_and_http() {
    let dir = scratch("openssl");
    let (cert, key) = openssl_cert(&dir, "srv");
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let echo = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--tls-cert",
        c,
        "--tls-key",
        k,
    ]);
    let http = ServerProc::start(&[
        "http",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--tls-cert",
        c,
        "--tls-key",
        k,
    ]);
    for v in ["-tls1_2", "-tls1_3"] {
        let out = s_client(
            echo.addr,
            &[v, "-CAfile", c, "-verify_return_error", "-quiet"],
            b"echo me\n",
        );
        assert!(out.contains("echo me"), "{v} echo: {out}");
        let out = s_client(
            http.addr,
            &[
                v,
                "-CAfile",
                c,
                "-verify_return_error",
                "-alpn",
                "http/1.1",
                "-servername",
                "localhost",
            ],
            b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n",
        );
        assert!(out.contains("ALPN protocol: http/1.1"), "{v} alpn: {out}");
        assert!(
            out.contains("Verify return code: 0 (ok)"),
            "{v} verify: {out}"
        );
        assert!(out.contains("Hello, World!"), "{v} http: {out}");
        let want = if v == "-tls1_2" { "TLSv1.2" } else { "TLSv1.3" };
        assert!(out.contains(want), "{v}: {out}");
    }
    // Resumption with a ticket: s_client saves the session, the second run reuses it.
    let sess = dir.join("sess.pem");
    let s = sess.to_str().unwrap();
    for v in ["-tls1_2", "-tls1_3"] {
        let _ = std::fs::remove_file(&sess);
        let first = s_client(http.addr, &[v, "-CAfile", c, "-sess_out", s], b"");
        assert!(first.contains("New, "), "{v}: {first}");
        let second = s_client(http.addr, &[v, "-CAfile", c, "-sess_in", s], b"");
        assert!(second.contains("Reused, "), "{v} not resumed: {second}");
    }
    // curl trusts the certificate file and fetches the benchmark route.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", c])
        .arg(format!("https://127.0.0.1:{}/plaintext", http.addr.port()))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, World!",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--http1.1",
            "--cacert",
            c,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(format!(
            "https://localhost:{}/bytes/3000000",
            http.addr.port()
        ))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1.1 200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop((echo, http));
    let _ = std::fs::remove_dir_all(dir);
}

fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
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

#[test]
fn garbage_and_stalled_handshakes_are_closed_while_others_are_served() {
    let dir = scratch("garbage");
    let (cert, key) = openssl_cert(&dir, "srv");
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut server = ServerProc::start(&[
        "http",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--tls-cert",
        c,
        "--tls-key",
        k,
        "--tls-handshake-timeout",
        "0.5",
    ]);
    let addr = server.addr;
    let stalled: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&[22, 3, 1]).unwrap();
            s
        })
        .collect();
    let t = Instant::now();
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x00\x05hello, this is not a ClientHello")
        .unwrap();
    let alert = read_until_closed(&mut garbage, Duration::from_secs(5)).expect("garbage closed");
    assert_eq!(alert.first(), Some(&21), "an alert record: {alert:x?}");
    // Real clients are served meanwhile.
    for _ in 0..3 {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", c])
            .arg(format!("https://127.0.0.1:{}/plaintext", addr.port()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, World!");
    }
    for mut s in stalled {
        assert!(
            read_until_closed(&mut s, Duration::from_secs(5)).is_some(),
            "stalled handshake left open"
        );
    }
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(server.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn certificate_problems_are_one_line_naming_the_file() {
    let dir = scratch("errors");
    let (cert, key) = openssl_cert(&dir, "a");
    let (_, other_key) = openssl_cert(&dir, "b");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no pem here\n").unwrap();
    let missing = dir.join("missing.pem");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str, String)> = vec![
        (vec![s(&missing), s(&key)], "cannot read", s(&missing)),
        (vec![s(&empty), s(&key)], "no certificate", s(&empty)),
        (vec![s(&cert), s(&empty)], "no private key", s(&empty)),
        (vec![s(&cert), s(&cert)], "no private key", s(&cert)),
        (
            vec![s(&cert), s(&other_key)],
            "does not match",
            s(&other_key),
        ),
    ];
    for (files, what, file) in cases {
        let (code, err) = run_to_end(&[
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &files[0],
            "--tls-key",
            &files[1],
        ]);
        assert_eq!(code, 1, "{files:?}: {err}");
        let err = err.trim();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(what) && err.contains(&file),
            "{files:?}: {err}"
        );
    }
    // A cert without a key is a usage error.
    let (code, err) = run_to_end(&["echo", "--listen", "127.0.0.1:0", "--tls-cert", &s(&cert)]);
    assert_eq!(code, 2, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tls_echo_and_https_work_on_plain_descriptors_too() {
    // The default path (direct descriptors) is what every other test here runs; this is
    // the same traffic with `--plain-fds`, for a handler (or a kernel) that needs them.
    let dir = scratch("plainfds");
    let out = dir.join("dev.pem");
    let mut server = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--plain-fds",
        "--tls-self-signed",
        "--tls-self-signed-out",
        out.to_str().unwrap(),
    ]);
    for _ in 0..4 {
        rustls_roundtrip(
            server.addr,
            client_config(&out, &[]),
            "localhost",
            b"plain fds",
        );
    }
    assert!(server.stop().success());
    assert_eq!(
        server.counter("sockets_closed"),
        server.counter("accepted") + server.counter("refused")
    );
    let _ = std::fs::remove_dir_all(dir);
}
