//! The load generator against the real servers: `ringmaster load ws` against
//! `ringmaster ws` (plain and `wss://`), `ringmaster load tcp-echo|http --tls`
//! against `ringmaster echo|http --tls-self-signed`, keep-alive and with a connection
//! (so a full TLS handshake) per request, and `ringmaster load http --h2` against
//! `ringmaster http` (h2c with prior knowledge, and h2 by ALPN). Each run asks for an exact number of
//! messages and must complete all of them without an error: a client or server that
//! gets the protocol wrong shows up as bad responses, TLS errors or a shortfall.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, ServerProc};

/// Runs `ringmaster load <args> --json` (bounded); returns its JSON report.
fn load(args: &[&str]) -> String {
    let mut child = Command::new(bin())
        .arg("load")
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringmaster load");
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("ringmaster load {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "ringmaster load {args:?}: {:?}\n{stderr}\n{stdout}",
        out.status
    );
    stdout
}

/// The value of top-level field `name` in the pretty-printed JSON report.
fn field<'a>(json: &'a str, name: &str) -> &'a str {
    let key = format!("\n  \"{name}\": ");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {json}"));
    let rest = &json[at + key.len()..];
    rest[..rest.find([',', '\n']).unwrap_or(rest.len())].trim()
}

/// Asserts a report of exactly `n` messages, no error, for `target` over TLS or not.
fn assert_all_done(json: &str, n: u64, target: &str, tls: bool) {
    assert_eq!(field(json, "messages"), n.to_string(), "{json}");
    assert_eq!(field(json, "errors_total"), "0", "{json}");
    assert_eq!(field(json, "target"), format!("\"{target}\""), "{json}");
    assert_eq!(field(json, "tls"), tls.to_string(), "{json}");
}

/// A scratch path for this test process.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ringmaster-load-e2e-{}-{name}", std::process::id()))
}

#[test]
fn ws_plain_and_over_tls() {
    let plain = ServerProc::start(&["ws", "--listen", "127.0.0.1:0", "--shards", "2"]);
    let addr = plain.addr.to_string();
    let base = ["ws", "--addr", &addr, "-c", "8", "-t", "2"];
    for extra in [
        &["--requests", "4000", "-p", "4", "--size", "100"][..],
        // 16-bit and 64-bit frame lengths, both engines.
        &["--requests", "500", "--size", "1000", "--path", "/ws"],
        &["--requests", "200", "--size", "70000", "--engine", "epoll"],
        // Connect, upgrade, one message, close.
        &["--requests", "500", "--connect-per-request"],
    ] {
        let n: u64 = extra[1].parse().unwrap();
        let json = load(&[&base[..], extra].concat());
        assert_all_done(&json, n, "ws", false);
    }

    let cert = scratch("ws-cert.pem");
    let cert_s = cert.to_string_lossy().into_owned();
    let tls = ServerProc::start(&[
        "ws",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--tls-self-signed",
        "--tls-self-signed-out",
        &cert_s,
    ]);
    let addr = tls.addr.to_string();
    for extra in [
        &["--tls-insecure", "--requests", "3000", "-p", "4"][..],
        &["--tls-ca", &cert_s, "--requests", "300", "--size", "70000"],
        &[
            "--tls-insecure",
            "--requests",
            "300",
            "--connect-per-request",
        ],
    ] {
        let mut args = vec!["ws", "--addr", &addr, "-c", "8", "--tls"];
        args.extend_from_slice(extra);
        let n: u64 = extra[extra.iter().position(|a| *a == "--requests").unwrap() + 1]
            .parse()
            .unwrap();
        assert_all_done(&load(&args), n, "ws", true);
    }
    let _ = std::fs::remove_file(&cert);
}

#[test]
fn https_and_tls_echo_keep_alive_and_a_handshake_per_request() {
    let cert = scratch("http-cert.pem");
    let cert_s = cert.to_string_lossy().into_owned();
    let http = ServerProc::start(&[
        "http",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--tls-self-signed",
        "--tls-self-signed-out",
        &cert_s,
    ]);
    let addr = http.addr.to_string();
    for (extra, n) in [
        (
            &["--tls-insecure", "-p", "8", "--expect-length", "13"][..],
            4000,
        ),
        (&["--tls-ca", &cert_s, "--engine", "epoll"], 1000),
        (&["--tls-insecure", "--connect-per-request"], 500),
        (
            &["--tls-ca", &cert_s, "--connect-per-request", "--tls-resume"],
            500,
        ),
    ] {
        let n_s = n.to_string();
        let mut args = vec![
            "http",
            "--addr",
            &addr,
            "-c",
            "8",
            "--tls",
            "--requests",
            &n_s,
        ];
        args.extend_from_slice(extra);
        assert_all_done(&load(&args), n, "http", true);
    }

    let echo = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--tls-self-signed",
    ]);
    let addr = echo.addr.to_string();
    for extra in [&["-p", "4"][..], &["--connect-per-request"]] {
        let mut args = vec![
            "tcp-echo",
            "--addr",
            &addr,
            "-c",
            "8",
            "--tls",
            "--tls-insecure",
            "--requests",
            "1000",
        ];
        args.extend_from_slice(extra);
        assert_all_done(&load(&args), 1000, "tcp-echo", true);
    }
    let _ = std::fs::remove_file(&cert);
}

/// Asserts that the run's rate is a positive number.
fn assert_rate(json: &str) {
    let rate: f64 = field(json, "messages_per_s").parse().unwrap();
    assert!(rate > 0.0, "{json}");
    assert_eq!(field(json, "h2"), "true", "{json}");
}

#[test]
fn h2_streams_plain_and_over_tls_with_flow_control() {
    let cert = scratch("h2-cert.pem");
    let cert_s = cert.to_string_lossy().into_owned();
    let plain = ServerProc::start(&["http", "--listen", "127.0.0.1:0", "--shards", "2"]);
    let tls = ServerProc::start(&[
        "http",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--tls-self-signed",
        "--tls-self-signed-out",
        &cert_s,
    ]);
    let (plain_addr, tls_addr) = (plain.addr.to_string(), tls.addr.to_string());
    for (addr, over_tls) in [(&plain_addr, false), (&tls_addr, true)] {
        let tls_args: &[&str] = if over_tls {
            &["--tls", "--tls-ca", &cert_s]
        } else {
            &[]
        };
        for (extra, n) in [
            (&["--streams", "1", "--expect-length", "13"][..], 2000),
            (&["--streams", "16", "--expect-length", "13"], 20_000),
            // Bodies larger than the 64 KiB windows: WINDOW_UPDATE both ways.
            (
                &[
                    "--streams",
                    "4",
                    "--path",
                    "/bytes/100000",
                    "--expect-length",
                    "100000",
                ],
                400,
            ),
            (
                &[
                    "--streams",
                    "8",
                    "--method",
                    "POST",
                    "--path",
                    "/echo",
                    "--body-size",
                    "70000",
                    "--expect-length",
                    "70000",
                ],
                400,
            ),
        ] {
            let n_s = n.to_string();
            let mut args = vec![
                "http",
                "--addr",
                addr,
                "-c",
                "4",
                "--h2",
                "--requests",
                &n_s,
            ];
            args.extend_from_slice(tls_args);
            args.extend_from_slice(extra);
            let json = load(&args);
            assert_all_done(&json, n, "http", over_tls);
            assert_rate(&json);
        }
    }
    let _ = std::fs::remove_file(&cert);
}
