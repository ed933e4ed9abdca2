//! HTTP/2 from nghttp2's clients (Debian `nghttp2-client`, which scripts/test installs):
//! `nghttp` fetching several URLs at once on one connection, statuses, sizes and bodies
//! checked, and `h2load` runs bounded in requests, each of which must succeed; in h2c with
//! prior knowledge and in h2 over TLS by ALPN. Without the tools the tests are skipped
//! with a note, and fail under CI.

mod common;
mod http_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use http_support::Server;

/// True if `tool` runs; under CI a missing tool is a failure, elsewhere a skip.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing (scripts/test installs nghttp2-client)"
        );
        eprintln!("skipped: {tool} is not installed (Debian nghttp2-client)");
    }
    ok
}

use common::run_bounded as run;

/// `nghttp` with `args` (its own timeout set, and ours); asserts it succeeded.
fn nghttp(args: &[&str]) -> Output {
    let out = run(
        Command::new("nghttp").args(["--timeout", "20"]).args(args),
        Duration::from_secs(40),
    );
    assert!(
        out.status.success(),
        "nghttp {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One row of `nghttp --stat`: the path, status and body size, in completion order.
#[derive(Debug)]
struct Row {
    path: String,
    code: u16,
    size: String,
}

/// Parses `nghttp --stat`'s table (sorted by completion).
fn stat_rows(stdout: &[u8]) -> Vec<Row> {
    let text = String::from_utf8_lossy(stdout);
    let table = text
        .split("sorted by 'complete'")
        .nth(1)
        .unwrap_or_else(|| panic!("no --stat table in {text}"));
    table
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // id responseEnd requestStart process code size path
            let code = w.get(4)?.parse().ok()?;
            Some(Row {
                path: w.get(6)?.to_string(),
                code,
                size: w.get(5)?.to_string(),
            })
        })
        .collect()
}

/// A file of `len` bytes that are not all alike, for request bodies.
fn body_file(dir: &Path, len: usize) -> (PathBuf, Vec<u8>) {
    let body: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let path = dir.join(format!("body-{len}"));
    std::fs::write(&path, &body).unwrap();
    (path, body)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmaster-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// nghttp against `base` (`http://ADDR` or `https://localhost:PORT`): five requests at
/// once on one connection, every status and size as the routes say and the slow one
/// last; then bodies: a text, a large one, and a POST echoed byte for byte.
fn nghttp_cases(base: &str, dir: &Path) {
    let url = |p: &str| format!("{base}{p}");
    let out = nghttp(&[
        "-n",
        "--stat",
        &url("/delay/500"),
        &url("/plaintext"),
        &url("/json"),
        &url("/bytes/300000"),
        &url("/nothing-here"),
    ]);
    let rows = stat_rows(&out.stdout);
    let want = [
        ("/delay/500", 200, "2"),
        ("/plaintext", 200, "13"),
        ("/json", 200, "27"),
        ("/bytes/300000", 200, "292K"),
        ("/nothing-here", 404, "10"),
    ];
    assert_eq!(rows.len(), want.len(), "{rows:?}");
    for (path, code, size) in want {
        let row = rows
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("no {path} in {rows:?}"));
        assert_eq!((row.code, row.size.as_str()), (code, size), "{path}");
    }
    // The stream waiting on its timer held none of the others up: it finished last.
    assert_eq!(rows.last().unwrap().path, "/delay/500", "{rows:?}");

    let out = nghttp(&[&url("/plaintext")]);
    assert_eq!(out.stdout, b"Hello, World!");
    let out = nghttp(&[&url("/bytes/300000")]);
    assert_eq!(out.stdout.len(), 300_000);
    assert!(out.stdout.iter().all(|&b| b == b'x'));
    // A body larger than the stream's initial window: WINDOW_UPDATEs must flow.
    let (file, body) = body_file(dir, 200_000);
    let out = nghttp(&["-d", file.to_str().unwrap(), &url("/echo")]);
    assert!(
        out.stdout == body,
        "/echo returned {} bytes",
        out.stdout.len()
    );
}

/// h2load against `url`: `n` requests, 4 connections, 10 streams each; every one must
/// succeed with a 2xx. `extra` adds flags (a body to POST).
fn h2load(url: &str, n: u32, extra: &[&str]) {
    let n_s = n.to_string();
    let out = run(
        Command::new("h2load")
            .args(["-n", &n_s, "-c", "4", "-m", "10", "-T", "20", "-N", "20"])
            .args(extra)
            .arg(url),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "h2load: {text}");
    if url.starts_with("https") {
        assert!(text.contains("Application protocol: h2"), "{text}");
    }
    let want = format!(
        "requests: {n} total, {n} started, {n} done, {n} succeeded, 0 failed, 0 errored, 0 timeout"
    );
    assert!(text.contains(&want), "h2load {url}: {text}");
    assert!(
        text.contains(&format!("status codes: {n} 2xx, 0 3xx, 0 4xx, 0 5xx")),
        "{text}"
    );
}

#[test]
fn nghttp_several_urls_at_once_over_h2c() {
    if !have("nghttp") {
        return;
    }
    let dir = temp_dir("nghttp-h2c");
    let server = Server::start(&[]);
    nghttp_cases(&format!("http://{}", server.addr), &dir);
    assert!(server.counter("http", "h2_connections") >= 4);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn nghttp_several_urls_at_once_over_tls() {
    if !have("nghttp") {
        return;
    }
    let dir = temp_dir("nghttp-tls");
    let ca = dir.join("ca.pem");
    let server = Server::start(&[
        "--tls-self-signed",
        "--tls-self-signed-out",
        ca.to_str().unwrap(),
    ]);
    let base = format!("https://localhost:{}", server.addr.port());
    // h2 was chosen by ALPN (nghttp offers h2 only: without it the request fails).
    let out = nghttp(&["-nv", &format!("{base}/plaintext")]);
    let verbose = String::from_utf8_lossy(&out.stdout);
    assert!(verbose.contains("The negotiated protocol: h2"), "{verbose}");
    nghttp_cases(&base, &dir);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn h2load_bounded_runs_every_request_succeeds() {
    if !have("h2load") {
        return;
    }
    let dir = temp_dir("h2load");
    let ca = dir.join("ca.pem");
    let server = Server::start(&[]);
    h2load(&server.url("/plaintext"), 2000, &[]);
    // Request bodies on 40 concurrent streams (each over the initial window).
    let (file, _) = body_file(&dir, 100_000);
    h2load(&server.url("/echo"), 200, &["-d", file.to_str().unwrap()]);
    assert!(server.counter("http", "h2_streams") >= 2200);
    let tls = Server::start(&[
        "--tls-self-signed",
        "--tls-self-signed-out",
        ca.to_str().unwrap(),
    ]);
    h2load(
        &format!("https://127.0.0.1:{}/plaintext", tls.addr.port()),
        2000,
        &[],
    );
    let _ = std::fs::remove_dir_all(dir);
}
