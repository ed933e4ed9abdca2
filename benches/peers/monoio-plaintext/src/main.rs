//! `monoio-plaintext`: the monoio peer of ringmaster's HTTP benchmark.
//!
//! A lean HTTP/1.1 server on monoio's io_uring driver, one thread: per connection one
//! read buffer and one write buffer; every complete request in a read is parsed with
//! httparse and answered into the write buffer, and the whole batch leaves in one write
//! (so 16 pipelined requests cost one read and one write). `Date` is formatted once per
//! second. Routes: `GET /plaintext` → `Hello, World!` (text/plain); `GET /bytes/N` → N
//! bytes (N ≤ 16 MiB, copied into the write buffer from one shared buffer); anything else
//! 404.
//! Bodies are not supported (a request with `Content-Length` > 0 or chunked closes the
//! connection): this is a peer for GET benchmarks, not a general server.
//!
//! Usage: `monoio-plaintext [--listen ADDR]` (default `127.0.0.1:8082`; port 0 picks a
//! free one). When ready it prints `monoio-plaintext listening on ADDR` on stderr.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: monoio-plaintext [--listen ADDR]   (default 127.0.0.1:8082)";
const BUF: usize = 16 * 1024;

fn parse_args() -> Result<SocketAddr, String> {
    let mut listen = String::from("127.0.0.1:8082");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            s if s.starts_with("--listen=") => listen = s["--listen=".len()..].to_string(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    listen
        .parse()
        .map_err(|e| format!("bad --listen address `{listen}`: {e} (expected IP:PORT)"))
}

/// The `Date` header value, formatted again only when the second changes.
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
        if secs != self.secs {
            self.secs = secs;
            self.value = httpdate::fmt_http_date(now);
        }
        &self.value
    }
}

/// Largest `/bytes/N` body.
const MAX_BYTES: usize = 16 << 20;

/// The body `/bytes/N` copies from: filled once.
fn bytes_body() -> &'static [u8] {
    static BODY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BODY.get_or_init(|| (0..MAX_BYTES).map(|i| b'a' + (i % 26) as u8).collect())
}

/// Appends one response for `path` to `out`.
fn respond(out: &mut Vec<u8>, path: &str, date: &str, close: bool) {
    let bytes_len = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n <= MAX_BYTES);
    let (status, body): (&[u8], &[u8]) = if let Some(n) = bytes_len {
        (b"200 OK", &bytes_body()[..n])
    } else if path == "/plaintext" {
        (b"200 OK", b"Hello, World!")
    } else {
        (b"404 Not Found", b"Not Found\n")
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status);
    out.extend_from_slice(b"\r\nServer: monoio\r\nContent-Type: text/plain\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    if close {
        out.extend_from_slice(b"\r\nConnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

enum Parsed {
    /// A complete request of this many bytes was answered.
    Done(usize, bool),
    Partial,
    Bad,
}

fn parse_one(input: &[u8], out: &mut Vec<u8>, date: &str) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => {
            let mut close = req.version == Some(0);
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") && h.value != b"0"
                    || h.name.eq_ignore_ascii_case("transfer-encoding")
                {
                    return Parsed::Bad;
                }
                if h.name.eq_ignore_ascii_case("connection") {
                    close = h.value.eq_ignore_ascii_case(b"close");
                }
            }
            respond(out, req.path.unwrap_or("/"), date, close);
            Parsed::Done(n, close)
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Bad,
    }
}

async fn serve(mut stream: TcpStream, date: Rc<RefCell<DateCache>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(BUF);
    let mut out: Vec<u8> = Vec::with_capacity(BUF);
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= 1024 * 1024 {
                return; // an absurd head: give up on the connection
            }
            buf.reserve(buf.len());
        }
        let len = buf.len();
        let (res, b) = stream.read(buf.slice_mut(len..)).await;
        buf = b.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut pos = 0;
        let mut close = false;
        {
            let mut d = date.borrow_mut();
            let date = d.get();
            while pos < buf.len() && !close {
                match parse_one(&buf[pos..], &mut out, date) {
                    Parsed::Done(n, c) => {
                        pos += n;
                        close = c;
                    }
                    Parsed::Partial => break,
                    Parsed::Bad => return,
                }
            }
        }
        buf.drain(..pos);
        if !out.is_empty() {
            let (res, o) = stream.write_all(out).await;
            out = o;
            out.clear();
            if res.is_err() {
                return;
            }
        }
        if close {
            return;
        }
    }
}

fn main() -> ExitCode {
    let addr = match parse_args() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("monoio-plaintext: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut rt = match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("monoio-plaintext: cannot set up io_uring: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("monoio-plaintext: cannot listen on {addr}: {e}");
                return ExitCode::from(1);
            }
        };
        match listener.local_addr() {
            Ok(a) => eprintln!("monoio-plaintext listening on {a}"),
            Err(e) => {
                eprintln!("monoio-plaintext: {e}");
                return ExitCode::from(1);
            }
        }
        let date = Rc::new(RefCell::new(DateCache {
            secs: 0,
            value: String::new(),
        }));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(serve(stream, date.clone()));
                }
                Err(e) => eprintln!("monoio-plaintext: accept: {e}"),
            }
        }
    })
}
