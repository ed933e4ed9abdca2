//! `monoio-gateway`: the monoio peer of ringmaster's gateway benchmark.
//!
//! One thread on monoio's io_uring driver. Every request `METHOD PATH` from a client becomes
//! `GET PATH` to the backend over a keep-alive HTTP/1.1 connection taken from a per-thread
//! LIFO pool (a new one is connected when the pool is empty; a pooled one that turns out to
//! be closed is replaced once). The answer carries the backend's status, `Content-Type` and
//! `Content-Length` (chunked when the backend sent none) and its body with every ASCII letter
//! upper-cased, written to the client piece by piece as it arrives: the head and the first
//! piece leave in one write. No response head within 5 s: 504; any other backend failure
//! before the head: 502; after it, the client connection is closed.
//!
//! Hand-written with httparse: monoio-http-client (0.3) reads a whole HTTP/1.1 response body
//! before it returns the response, so it cannot stream.
//! Request bodies are not supported (a request with `Content-Length` > 0 or chunked closes
//! the connection): this is a peer for GET benchmarks, not a general gateway.
//!
//! Usage: `monoio-gateway --listen ADDR --backend HOST:PORT` (port 0 picks a free one). When
//! ready it prints `monoio-gateway listening on ADDR` on stderr.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: monoio-gateway --listen ADDR --backend HOST:PORT";
const BUF: usize = 16 * 1024;
/// Largest request or response head, and longest chunk-size or trailer line.
const MAX_HEAD: usize = 64 * 1024;
/// How long the backend may take to send its response head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

fn parse_args() -> Result<(SocketAddr, SocketAddr, String), String> {
    let (mut listen, mut backend) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next(),
            "--backend" => backend = args.next(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let listen = listen.ok_or("--listen ADDR is required")?;
    let backend = backend.ok_or("--backend HOST:PORT is required")?;
    let listen_addr = listen
        .parse()
        .map_err(|e| format!("bad --listen address `{listen}`: {e} (expected IP:PORT)"))?;
    let backend_addr = backend
        .to_socket_addrs()
        .map_err(|e| format!("bad --backend `{backend}`: {e}"))?
        .next()
        .ok_or(format!("--backend `{backend}` resolves to nothing"))?;
    Ok((listen_addr, backend_addr, backend))
}

/// The `Date` header value, formatted again only when the second changes.
#[derive(Default)]
struct DateCache {
    secs: u64,
    value: String,
}

impl DateCache {
    fn get(&mut self) -> &str {
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if secs != self.secs || self.value.is_empty() {
            self.secs = secs;
            self.value = httpdate::fmt_http_date(now);
        }
        &self.value
    }
}

/// A keep-alive connection to the backend and the bytes read from it but not used yet.
struct Backend {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// What the thread shares between its connections.
struct Gateway {
    backend: SocketAddr,
    host: String,
    /// Idle backend connections, most recently used last (taken from the end).
    pool: RefCell<Vec<Backend>>,
    date: RefCell<DateCache>,
}

/// How the backend's response body ends.
#[derive(Clone, Copy)]
enum Framing {
    /// No body (HEAD-like statuses: 1xx, 204, 304).
    None,
    Length(usize),
    Chunked,
    /// Until the backend closes.
    Close,
}

/// The parts of the backend's response head the gateway forwards.
struct Head {
    status: u16,
    reason: String,
    content_type: Option<Vec<u8>>,
    framing: Framing,
    keep_alive: bool,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads more bytes onto the end of `buf`; Ok(0) at EOF.
async fn read_more(stream: &mut TcpStream, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    if buf.capacity() - buf.len() < BUF / 4 {
        buf.reserve(BUF);
    }
    let len = buf.len();
    let (res, slice) = stream.read(buf.slice_mut(len..)).await;
    (res, slice.into_inner())
}

/// Parses the backend's response head at the start of `buf`: the head and its length.
fn parse_head(buf: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(bad("response head too large")),
        Err(e) => return Err(bad(&e.to_string())),
    };
    let status = resp.code.unwrap_or(502);
    let mut head = Head {
        status,
        reason: resp.reason.unwrap_or("").to_string(),
        content_type: None,
        framing: Framing::Close,
        keep_alive: resp.version == Some(1),
    };
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(h.value.to_vec());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
            if !matches!(head.framing, Framing::Chunked) {
                head.framing = Framing::Length(len.ok_or_else(|| bad("bad Content-Length"))?);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` (last) is understood; anything else ends at close.
            let chunked =
                h.value.len() >= 7 && h.value[h.value.len() - 7..].eq_ignore_ascii_case(b"chunked");
            head.framing = if chunked {
                Framing::Chunked
            } else {
                Framing::Close
            };
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value.to_ascii_lowercase();
            if v.windows(5).any(|w| w == b"close") {
                head.keep_alive = false;
            } else if v.windows(10).any(|w| w == b"keep-alive") {
                head.keep_alive = true;
            }
        }
    }
    if status < 200 || status == 204 || status == 304 {
        head.framing = Framing::None;
    }
    if matches!(head.framing, Framing::Close) {
        head.keep_alive = false;
    }
    Ok(Some((head, n)))
}

/// The backend request for `path`.
fn backend_request(gw: &Gateway, path: &str) -> Vec<u8> {
    let mut req = Vec::with_capacity(32 + path.len() + gw.host.len());
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    req.extend_from_slice(gw.host.as_bytes());
    req.extend_from_slice(b"\r\n\r\n");
    req
}

/// Sends `req` on `be` and reads the response head. `Err((e, retry))`: `retry` says that
/// nothing of a response had arrived (a pooled connection the backend closed meanwhile).
async fn exchange(be: &mut Backend, req: Vec<u8>) -> Result<Head, (io::Error, bool)> {
    let (res, _) = be.stream.write_all(req).await;
    if let Err(e) = res {
        return Err((e, true));
    }
    loop {
        if !be.buf.is_empty() {
            if let Some((head, n)) = parse_head(&be.buf).map_err(|e| (e, false))? {
                be.buf.drain(..n);
                return Ok(head);
            }
        }
        let (res, buf) = read_more(&mut be.stream, std::mem::take(&mut be.buf)).await;
        be.buf = buf;
        match res {
            Ok(0) => return Err((io::ErrorKind::UnexpectedEof.into(), be.buf.is_empty())),
            Ok(_) => {}
            Err(e) => return Err((e, be.buf.is_empty())),
        }
    }
}

/// A backend connection (the last one pooled, else a new one) that has answered
/// `GET path` with a response head. A pooled connection that the backend closed before
/// answering is dropped and the request goes to a new one.
async fn fetch_head(gw: &Gateway, path: &str) -> io::Result<(Backend, Head)> {
    let pooled = gw.pool.borrow_mut().pop();
    if let Some(mut be) = pooled {
        match exchange(&mut be, backend_request(gw, path)).await {
            Ok(head) => return Ok((be, head)),
            Err((e, false)) => return Err(e),
            Err((_, true)) => {}
        }
    }
    let stream = TcpStream::connect(gw.backend).await?;
    let _ = stream.set_nodelay(true);
    let mut be = Backend {
        stream,
        buf: Vec::with_capacity(BUF),
    };
    let head = exchange(&mut be, backend_request(gw, path))
        .await
        .map_err(|(e, _)| e)?;
    Ok((be, head))
}

/// Appends a status-only response (502 or 504) to `out`.
fn error_response(out: &mut Vec<u8>, gw: &Gateway, status: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(gw.date.borrow_mut().get().as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
}

/// Appends the client's response head to `out`.
fn response_head(out: &mut Vec<u8>, gw: &Gateway, head: &Head) {
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\nDate: ", head.status, head.reason).as_bytes());
    out.extend_from_slice(gw.date.borrow_mut().get().as_bytes());
    if let Some(ct) = &head.content_type {
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(ct);
    }
    match head.framing {
        Framing::None => {}
        Framing::Length(n) => out.extend_from_slice(format!("\r\nContent-Length: {n}").as_bytes()),
        Framing::Chunked | Framing::Close => {
            out.extend_from_slice(b"\r\nTransfer-Encoding: chunked")
        }
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends `data` upper-cased to `out` as one chunk.
fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    let start = out.len();
    out.extend_from_slice(data);
    out[start..].make_ascii_uppercase();
    out.extend_from_slice(b"\r\n");
}

/// Where the backend's chunked body decoder is.
enum Chunk {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

/// One line (without CRLF) at `input[pos..]` and the position after it, if complete.
fn line(input: &[u8], pos: usize) -> io::Result<Option<(&[u8], usize)>> {
    match input[pos..].iter().position(|&b| b == b'\n') {
        Some(i) => {
            let l = &input[pos..pos + i];
            Ok(Some((l.strip_suffix(b"\r").unwrap_or(l), pos + i + 1)))
        }
        None if input.len() - pos > MAX_HEAD => Err(bad("chunk line too long")),
        None => Ok(None),
    }
}

/// Decodes what `input` holds of a chunked body, re-chunking its data upper-cased into
/// `out` (and the last chunk once the body ends); returns the bytes consumed.
fn dechunk(state: &mut Chunk, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
    let mut pos = 0;
    loop {
        match *state {
            Chunk::Size => {
                let Some((l, next)) = line(input, pos)? else {
                    return Ok(pos);
                };
                let hex = l.split(|&b| b == b';').next().unwrap_or(b"");
                let hex = std::str::from_utf8(hex).map_err(|_| bad("bad chunk size"))?;
                let size =
                    usize::from_str_radix(hex.trim(), 16).map_err(|_| bad("bad chunk size"))?;
                pos = next;
                *state = if size == 0 {
                    Chunk::Trailer
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                let n = left.min(input.len() - pos);
                if n == 0 {
                    return Ok(pos);
                }
                push_chunk(out, &input[pos..pos + n]);
                pos += n;
                *state = if n == left {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - n)
                };
            }
            Chunk::DataEnd => {
                let Some((l, next)) = line(input, pos)? else {
                    return Ok(pos);
                };
                if !l.is_empty() {
                    return Err(bad("no CRLF after chunk data"));
                }
                pos = next;
                *state = Chunk::Size;
            }
            Chunk::Trailer => {
                let Some((l, next)) = line(input, pos)? else {
                    return Ok(pos);
                };
                pos = next;
                if l.is_empty() {
                    out.extend_from_slice(b"0\r\n\r\n");
                    *state = Chunk::Done;
                }
            }
            Chunk::Done => return Ok(pos),
        }
    }
}

/// How streaming a body went.
struct Streamed {
    /// The whole response reached the client.
    client_ok: bool,
    /// The backend's body ended cleanly with nothing after it: `be` can serve another request.
    backend_ok: bool,
}

/// Streams the backend's body to the client after `out` (which holds the response head).
async fn stream_body(
    client: &mut TcpStream,
    be: &mut Backend,
    framing: Framing,
    mut out: Vec<u8>,
) -> (Streamed, Vec<u8>) {
    let failed = |backend_ok| Streamed {
        client_ok: false,
        backend_ok,
    };
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunk = Chunk::Size;
    loop {
        // Turn what the backend has sent so far into client bytes.
        let done = match framing {
            Framing::None => true,
            Framing::Length(_) => {
                let n = left.min(be.buf.len());
                let start = out.len();
                out.extend_from_slice(&be.buf[..n]);
                out[start..].make_ascii_uppercase();
                be.buf.drain(..n);
                left -= n;
                left == 0
            }
            Framing::Chunked => match dechunk(&mut chunk, &be.buf, &mut out) {
                Ok(n) => {
                    be.buf.drain(..n);
                    matches!(chunk, Chunk::Done)
                }
                Err(_) => return (failed(false), out),
            },
            Framing::Close => {
                push_chunk(&mut out, &be.buf);
                be.buf.clear();
                false
            }
        };
        if !out.is_empty() {
            let (res, o) = client.write_all(out).await;
            out = o;
            out.clear();
            if res.is_err() {
                // The client has gone; the backend connection is still good if its answer is complete.
                return (failed(done && be.buf.is_empty()), out);
            }
        }
        if done {
            return (
                Streamed {
                    client_ok: true,
                    backend_ok: be.buf.is_empty(),
                },
                out,
            );
        }
        let (res, buf) = read_more(&mut be.stream, std::mem::take(&mut be.buf)).await;
        be.buf = buf;
        match res {
            Ok(0) if matches!(framing, Framing::Close) => {
                let (res, o) = client.write_all(b"0\r\n\r\n".to_vec()).await;
                return (
                    Streamed {
                        client_ok: res.is_ok(),
                        backend_ok: false,
                    },
                    o,
                );
            }
            Ok(0) | Err(_) => return (failed(false), out),
            Ok(_) => {}
        }
    }
}

/// Answers one client request for `path`. Ok(true): the client connection can go on.
async fn forward(
    gw: &Gateway,
    client: &mut TcpStream,
    path: &str,
    mut out: Vec<u8>,
) -> (bool, Vec<u8>) {
    out.clear();
    let (mut be, head) = match monoio::time::timeout(HEAD_TIMEOUT, fetch_head(gw, path)).await {
        Ok(Ok(x)) => x,
        Ok(Err(_)) => {
            error_response(&mut out, gw, "502 Bad Gateway");
            let (res, o) = client.write_all(out).await;
            return (res.is_ok(), o);
        }
        Err(_) => {
            error_response(&mut out, gw, "504 Gateway Timeout");
            let (res, o) = client.write_all(out).await;
            return (res.is_ok(), o);
        }
    };
    response_head(&mut out, gw, &head);
    let (streamed, o) = stream_body(client, &mut be, head.framing, out).await;
    if streamed.backend_ok && head.keep_alive {
        gw.pool.borrow_mut().push(be);
    }
    // A response cut short (by either side) ends the client connection.
    (streamed.client_ok, o)
}

/// A request head at the start of `buf`: its target, its length and whether the client
/// wants the connection closed after it. Err: a malformed request or one with a body.
fn parse_request(buf: &[u8]) -> Result<Option<(String, usize, bool)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let mut close = req.version == Some(0);
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") && h.value != b"0"
                    || h.name.eq_ignore_ascii_case("transfer-encoding")
                {
                    return Err(());
                }
                if h.name.eq_ignore_ascii_case("connection") {
                    close = h.value.eq_ignore_ascii_case(b"close");
                }
            }
            Ok(Some((req.path.unwrap_or("/").to_string(), n, close)))
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Ok(None),
        _ => Err(()),
    }
}

async fn serve(mut client: TcpStream, gw: Rc<Gateway>) {
    let mut buf: Vec<u8> = Vec::with_capacity(BUF);
    let mut out: Vec<u8> = Vec::with_capacity(BUF);
    loop {
        let (path, n, close) = loop {
            match parse_request(&buf) {
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(()) => return,
            }
            let (res, b) = read_more(&mut client, buf).await;
            buf = b;
            match res {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        buf.drain(..n);
        let (keep, o) = forward(&gw, &mut client, &path, out).await;
        out = o;
        if !keep || close {
            return;
        }
    }
}

fn main() -> ExitCode {
    let (listen, backend, host) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("monoio-gateway: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut rt = match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .enable_timer()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("monoio-gateway: cannot set up io_uring: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::bind(listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("monoio-gateway: cannot listen on {listen}: {e}");
                return ExitCode::from(1);
            }
        };
        match listener.local_addr() {
            Ok(a) => eprintln!("monoio-gateway listening on {a}"),
            Err(e) => {
                eprintln!("monoio-gateway: {e}");
                return ExitCode::from(1);
            }
        }
        let gw = Rc::new(Gateway {
            backend,
            host,
            pool: RefCell::new(Vec::new()),
            date: RefCell::new(DateCache::default()),
        });
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(serve(stream, gw.clone()));
                }
                Err(e) => eprintln!("monoio-gateway: accept: {e}"),
            }
        }
    })
}
