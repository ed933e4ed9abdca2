//! Shared by the `http_*` end-to-end tests: start the real binary, talk raw HTTP/1.1 to
//! it, and parse what comes back strictly. Every wait is bounded in time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `ringmaster http`, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `ringmaster http --listen 127.0.0.1:0 --shards 1` plus `extra` flags and
    /// waits (at most 20 s) for its `listening on ADDR` line.
    pub fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .args(["http", "--listen", "127.0.0.1:0", "--shards", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringmaster");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stderr for the server's whole life so it never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("no `listening on` line from ringmaster http: {e}");
                }
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                let addr = addr.parse().expect("listen address");
                return Server { child, addr };
            }
        }
    }

    /// A connected client socket with read/write timeouts.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (graceful shutdown) and waits at most `limit` for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET /stats` on a fresh connection, as raw JSON text.
    pub fn stats(&self) -> String {
        let mut s = self.connect();
        s.write_all(b"GET /stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (resps, _) = read_responses(&mut s, 1, Duration::from_secs(10));
        String::from_utf8(resps[0].body.clone()).unwrap()
    }

    /// One counter from `/stats` (`section` is `runtime` or `http`).
    pub fn counter(&self, section: &str, name: &str) -> u64 {
        let json = self.stats();
        let sec = json
            .split(&format!("\"{section}\":{{"))
            .nth(1)
            .expect("section");
        let v = sec.split(&format!("\"{name}\":")).nth(1).expect("counter");
        v.split([',', '}']).next().unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one response from the start of `buf` (`head_only`: a HEAD's, no body).
/// `None` if incomplete; panics on anything malformed.
pub fn parse_response(buf: &[u8], head_only: bool) -> Option<(Resp, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).expect("head is UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(
        status_line.starts_with("HTTP/1.1 "),
        "status line {status_line:?}"
    );
    let status: u16 = status_line[9..12].parse().expect("status");
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    let mut pos = end + 4;
    let no_body = head_only || (100..200).contains(&status) || status == 204 || status == 304;
    if no_body {
        return Some((resp, pos));
    }
    if let Some(cl) = resp.header("content-length") {
        let n: usize = cl.parse().expect("content-length");
        let body = buf.get(pos..pos + n)?;
        resp.body = body.to_vec();
        return Some((resp, pos + n));
    }
    assert_eq!(
        resp.header("transfer-encoding"),
        Some("chunked"),
        "no framing in {head}"
    );
    loop {
        let line_end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
        let size = std::str::from_utf8(&buf[pos..line_end]).unwrap();
        let n = usize::from_str_radix(size, 16).expect("chunk size");
        pos = line_end + 2;
        if n == 0 {
            buf.get(pos..pos + 2)?;
            assert_eq!(&buf[pos..pos + 2], b"\r\n");
            return Some((resp, pos + 2));
        }
        let data = buf.get(pos..pos + n + 2)?;
        assert_eq!(&data[n..], b"\r\n");
        resp.body.extend_from_slice(&data[..n]);
        pos += n + 2;
    }
}

/// Reads until `count` responses are parsed, EOF, or `limit` passes. Returns them and
/// whether EOF (or a reset) was seen. `head_only[i]` says whether response i answers a
/// HEAD. Bytes left over after the last response fail the test.
pub fn read_responses_with(
    s: &mut TcpStream,
    count: usize,
    head_only: &[bool],
    limit: Duration,
) -> (Vec<Resp>, bool) {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut eof = false;
    loop {
        while out.len() < count {
            let ho = head_only.get(out.len()).copied().unwrap_or(false);
            match parse_response(&buf, ho) {
                Some((r, used)) => {
                    out.push(r);
                    buf.drain(..used);
                }
                None => break,
            }
        }
        if out.len() == count || Instant::now() >= deadline {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => {
                eof = true;
                break;
            }
        }
    }
    assert!(
        buf.is_empty(),
        "unexpected bytes after {} responses: {:?}",
        out.len(),
        String::from_utf8_lossy(&buf[..buf.len().min(200)])
    );
    (out, eof)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// [`read_responses_with`] for responses that all carry a body.
pub fn read_responses(s: &mut TcpStream, count: usize, limit: Duration) -> (Vec<Resp>, bool) {
    read_responses_with(s, count, &[], limit)
}

/// Writes `bytes`, reads `count` responses, then reports whether the server closed the
/// connection right after them (waiting at most 3 s for the close).
pub fn exchange(server: &Server, bytes: &[u8], count: usize) -> (Vec<Resp>, bool) {
    let mut s = server.connect();
    s.write_all(bytes).unwrap();
    let (resps, eof) = read_responses(&mut s, count, Duration::from_secs(10));
    let closed = eof || closed_silently(&mut s, Duration::from_secs(3));
    (resps, closed)
}

/// True once the peer has closed (EOF or reset) within `limit`, with no bytes received.
pub fn closed_silently(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !is_timeout(&e),
    }
}

/// Half-closes the write side (the server then finishes and closes).
pub fn finish_writing(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
}
