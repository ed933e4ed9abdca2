//! HTTP/1.1 over keep-alive connections: a fixed request, responses parsed incrementally.
//!
//! The request bytes are built once per run ([`HttpSpec`]) and copied for every request,
//! so pipelining is `D` copies back to back. Responses are matched to requests in order
//! (HTTP/1.1 has no other way); each head is parsed with `httparse`, the body is skipped
//! by `Content-Length` or by decoding `Transfer-Encoding: chunked`. A response with a
//! malformed head, a body whose length cannot be known without waiting for the close,
//! the wrong status or (when asked) the wrong body length is a [`BadResponse`].

use std::mem::MaybeUninit;
use std::sync::Arc;

use super::{BadResponse, Conversation};

/// Most header lines a response may have.
const MAX_HEADERS: usize = 64;
/// A response head longer than this is bad (a server that never ends its head).
const MAX_HEAD: usize = 64 * 1024;
/// A chunk-size line (with extensions) or trailer line longer than this is bad.
const MAX_LINE: usize = 4096;

/// What every request on every connection looks like, and what a response must be.
#[derive(Debug)]
pub(crate) struct HttpSpec {
    /// The request, ready to copy.
    request: Vec<u8>,
    /// Requests with `HEAD` get responses without bodies.
    head_method: bool,
    /// The status every response must have.
    expect_status: u16,
    /// The body length every response must have, if given.
    expect_length: Option<u64>,
}

impl HttpSpec {
    /// Builds the request: `METHOD PATH HTTP/1.1`, `Host: host` (unless `headers` has
    /// one), the extra `headers` (each `Name: value`), and with a body of `body_size`
    /// bytes a `Content-Length`. Returns a usage message when an argument cannot go on
    /// the wire as given.
    pub(crate) fn new(
        host: &str,
        method: &str,
        path: &str,
        headers: &[String],
        body_size: usize,
        expect_status: u16,
        expect_length: Option<u64>,
    ) -> Result<Self, String> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        };
        if !token(method) {
            return Err(format!("--method `{method}` is not an HTTP method token"));
        }
        if !path.starts_with('/') && path != "*" || path.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "--path `{path}` must start with / and have no spaces or control bytes"
            ));
        }
        if !(100..=999).contains(&expect_status) {
            return Err(format!(
                "--expect-status {expect_status} is not a 3-digit status"
            ));
        }
        let mut request = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
        let mut has_host = false;
        for h in headers {
            let Some((name, value)) = h.split_once(':') else {
                return Err(format!("--header `{h}` is not `Name: value`"));
            };
            let value = value.trim();
            if !token(name) || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(format!("--header `{h}` is not a valid header line"));
            }
            if name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
            {
                return Err(format!(
                    "--header `{h}`: the body framing comes from --body-size"
                ));
            }
            has_host |= name.eq_ignore_ascii_case("host");
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !has_host {
            request.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
        }
        if body_size > 0 {
            request.extend_from_slice(format!("Content-Length: {body_size}\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend((0..body_size).map(|i| b'a' + (i % 26) as u8));
        Ok(HttpSpec {
            request,
            head_method: method == "HEAD",
            expect_status,
            expect_length,
        })
    }

    /// Bytes of one request.
    pub(crate) fn request_len(&self) -> usize {
        self.request.len()
    }
}

/// Where the parser is inside the current response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Reading the head (status line and headers).
    Head,
    /// `n` bytes of a `Content-Length` body left.
    Body(u64),
    /// Chunked: reading a chunk-size line (`size` so far; `ext`: past the digits).
    ChunkSize { size: u64, digits: u8, ext: bool },
    /// Chunked: `n` bytes of chunk data left.
    ChunkData(u64),
    /// Chunked: the CRLF after chunk data (`cr`: the CR was seen).
    ChunkEnd { cr: bool },
    /// Chunked: trailer lines after the last chunk (`empty`: the line so far is empty).
    Trailer { empty: bool },
}

/// One keep-alive connection's HTTP conversation.
#[derive(Debug)]
pub(crate) struct Http {
    spec: Arc<HttpSpec>,
    /// Requests written on this connection, responses completed.
    sent: u64,
    done: u64,
    part: Part,
    /// A head that arrived in pieces (empty in the common case: parsed in place).
    head: Vec<u8>,
    /// Length of the current chunk-size or trailer line.
    line: usize,
    /// Body bytes of the current response so far (for `expect_length` with chunked).
    body_len: u64,
}

impl Http {
    /// A conversation following `spec`.
    pub(crate) fn new(spec: Arc<HttpSpec>) -> Self {
        Http {
            spec,
            sent: 0,
            done: 0,
            part: Part::Head,
            head: Vec::new(),
            line: 0,
            body_len: 0,
        }
    }

    /// Parses a head in `buf`: `Ok(None)` when incomplete, else its length and what
    /// follows it.
    fn parse_head(&self, buf: &[u8]) -> Result<Option<(usize, Option<Part>)>, BadResponse> {
        // Uninitialised header slots: no 64-entry fill per response on the hot path.
        let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let n = match config.parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if buf.len() > MAX_HEAD {
                    Err(BadResponse)
                } else {
                    Ok(None)
                }
            }
            Err(_) => return Err(BadResponse),
        };
        let code = resp.code.ok_or(BadResponse)?;
        if resp.version != Some(1) {
            return Err(BadResponse); // HTTP/1.0 has no keep-alive by default
        }
        if (100..200).contains(&code) && code != 101 {
            return Ok(Some((n, None))); // interim response: the real one follows
        }
        if code != self.spec.expect_status {
            return Err(BadResponse);
        }
        let mut length = None;
        let mut chunked = false;
        for h in resp.headers.iter() {
            // Length first: most headers are neither of the two.
            if h.name.len() == 14 && h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value).map_err(|_| BadResponse)?;
                let v: u64 = v.trim().parse().map_err(|_| BadResponse)?;
                if length.is_some_and(|l| l != v) {
                    return Err(BadResponse);
                }
                length = Some(v);
            } else if h.name.len() == 17 && h.name.eq_ignore_ascii_case("transfer-encoding") {
                let v = std::str::from_utf8(h.value).map_err(|_| BadResponse)?;
                let last = v.rsplit(',').next().unwrap_or("").trim();
                if !last.eq_ignore_ascii_case("chunked") {
                    return Err(BadResponse); // body delimited by the close
                }
                chunked = true;
            }
        }
        let no_body = self.spec.head_method || code == 204 || code == 304;
        let part = if no_body {
            Part::Body(0)
        } else if chunked {
            if length.is_some() {
                return Err(BadResponse); // both framings: a smuggling shape
            }
            Part::ChunkSize {
                size: 0,
                digits: 0,
                ext: false,
            }
        } else {
            // No length and not chunked: the body would end with the connection.
            let l = length.ok_or(BadResponse)?;
            if self.spec.expect_length.is_some_and(|e| e != l) {
                return Err(BadResponse);
            }
            Part::Body(l)
        };
        Ok(Some((n, Some(part))))
    }

    /// The response is complete.
    fn complete(&mut self) -> Result<(), BadResponse> {
        if let (Some(e), false) = (self.spec.expect_length, self.spec.head_method) {
            if e != self.body_len {
                return Err(BadResponse);
            }
        }
        self.done += 1;
        self.part = Part::Head;
        self.body_len = 0;
        Ok(())
    }

    /// Consumes bytes of the current body part; returns how many.
    fn body(&mut self, data: &[u8]) -> Result<usize, BadResponse> {
        let mut i = 0;
        while i < data.len() {
            match self.part {
                Part::Head => return Ok(i),
                Part::Body(n) => {
                    let k = n.min((data.len() - i) as u64);
                    i += k as usize;
                    self.body_len += k;
                    if k == n {
                        self.complete()?;
                        return Ok(i);
                    }
                    self.part = Part::Body(n - k);
                }
                Part::ChunkData(n) => {
                    let k = n.min((data.len() - i) as u64);
                    i += k as usize;
                    self.body_len += k;
                    self.part = if k == n {
                        Part::ChunkEnd { cr: false }
                    } else {
                        Part::ChunkData(n - k)
                    };
                }
                Part::ChunkSize { size, digits, ext } => {
                    let b = data[i];
                    i += 1;
                    self.line += 1;
                    if self.line > MAX_LINE {
                        return Err(BadResponse);
                    }
                    self.part = match b {
                        b'\n' => {
                            if digits == 0 {
                                return Err(BadResponse);
                            }
                            self.line = 0;
                            if size == 0 {
                                Part::Trailer { empty: true }
                            } else {
                                Part::ChunkData(size)
                            }
                        }
                        _ if ext => self.part,
                        b';' | b'\r' | b' ' | b'\t' => Part::ChunkSize {
                            size,
                            digits,
                            ext: true,
                        },
                        _ => {
                            let d = (b as char).to_digit(16).ok_or(BadResponse)?;
                            if digits >= 15 {
                                return Err(BadResponse); // over 2^60 bytes: nonsense
                            }
                            Part::ChunkSize {
                                size: size * 16 + u64::from(d),
                                digits: digits + 1,
                                ext: false,
                            }
                        }
                    };
                }
                Part::ChunkEnd { cr } => {
                    let b = data[i];
                    i += 1;
                    self.part = match (cr, b) {
                        (false, b'\r') => Part::ChunkEnd { cr: true },
                        (_, b'\n') => Part::ChunkSize {
                            size: 0,
                            digits: 0,
                            ext: false,
                        },
                        _ => return Err(BadResponse),
                    };
                }
                Part::Trailer { empty } => {
                    let b = data[i];
                    i += 1;
                    self.line += 1;
                    if self.line > MAX_LINE {
                        return Err(BadResponse);
                    }
                    match b {
                        b'\n' if empty => {
                            self.line = 0;
                            self.complete()?;
                            return Ok(i);
                        }
                        b'\n' => {
                            self.line = 0;
                            self.part = Part::Trailer { empty: true };
                        }
                        b'\r' => {}
                        _ => self.part = Part::Trailer { empty: false },
                    }
                }
            }
        }
        Ok(i)
    }
}

impl Conversation for Http {
    fn reset(&mut self) {
        self.sent = 0;
        self.done = 0;
        self.part = Part::Head;
        self.head.clear();
        self.line = 0;
        self.body_len = 0;
    }

    fn push_request(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spec.request);
        self.sent += 1;
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<usize, BadResponse> {
        let before = self.done;
        // Bounded: every turn consumes at least one byte or returns.
        while !data.is_empty() {
            if self.part != Part::Head {
                let n = self.body(data)?;
                data = &data[n..];
                continue;
            }
            if self.done >= self.sent {
                return Err(BadResponse); // a response nobody asked for
            }
            let parsed = if self.head.is_empty() {
                match self.parse_head(data)? {
                    Some((n, part)) => Some((n, part)),
                    None => {
                        self.head.extend_from_slice(data);
                        data = &[];
                        None
                    }
                }
            } else {
                let had = self.head.len();
                self.head.extend_from_slice(data);
                let head = std::mem::take(&mut self.head);
                let r = self.parse_head(&head);
                self.head = head;
                match r? {
                    Some((n, part)) => {
                        self.head.clear();
                        Some((n - had, part))
                    }
                    None => {
                        data = &[];
                        None
                    }
                }
            };
            if let Some((n, part)) = parsed {
                data = &data[n..];
                if let Some(part) = part {
                    self.part = part;
                    if part == Part::Body(0) {
                        self.complete()?;
                    }
                }
            }
        }
        Ok((self.done - before) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(status: u16, length: Option<u64>) -> Arc<HttpSpec> {
        Arc::new(
            HttpSpec::new(
                "127.0.0.1:8080",
                "GET",
                "/plaintext",
                &[],
                0,
                status,
                length,
            )
            .unwrap(),
        )
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 13\r\n\r\nHello, World!";
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nHello\r\n8\r\n, World!\r\n0\r\nX-Trailer: t\r\n\r\n";

    fn with_sent(spec: Arc<HttpSpec>, n: usize) -> Http {
        let mut h = Http::new(spec);
        let mut out = Vec::new();
        for _ in 0..n {
            h.push_request(&mut out);
        }
        h
    }

    /// Feeds `bytes` split at `cut` (and, for three pieces, at `cut2`).
    fn feed_split(h: &mut Http, bytes: &[u8], cuts: &[usize]) -> Result<usize, BadResponse> {
        let mut done = 0;
        let mut from = 0;
        for &c in cuts.iter().chain(std::iter::once(&bytes.len())) {
            done += h.feed(&bytes[from..c])?;
            from = c;
        }
        Ok(done)
    }

    #[test]
    fn request_is_built_once_with_host_and_length() {
        let s = HttpSpec::new(
            "127.0.0.1:80",
            "POST",
            "/echo?x=1",
            &["X-A: b".into()],
            3,
            200,
            None,
        )
        .unwrap();
        assert_eq!(
            s.request,
            b"POST /echo?x=1 HTTP/1.1\r\nX-A: b\r\nHost: 127.0.0.1:80\r\nContent-Length: 3\r\n\r\nabc"
        );
        let s = HttpSpec::new("h:1", "GET", "/", &["host: other".into()], 0, 200, None).unwrap();
        assert_eq!(s.request, b"GET / HTTP/1.1\r\nhost: other\r\n\r\n");
        for (m, p, h) in [
            ("G T", "/", ""),
            ("GET", "no-slash", ""),
            ("GET", "/a b", ""),
            ("GET", "/", "NoColon"),
            ("GET", "/", "Content-Length: 5"),
            ("GET", "/", "X: a\r\nY: b"),
        ] {
            let hs: Vec<String> = if h.is_empty() { vec![] } else { vec![h.into()] };
            assert!(
                HttpSpec::new("h:1", m, p, &hs, 0, 200, None).is_err(),
                "{m} {p} {h}"
            );
        }
    }

    #[test]
    fn every_split_of_two_pipelined_responses_parses() {
        for one in [OK, CHUNKED] {
            let mut bytes = one.to_vec();
            bytes.extend_from_slice(one);
            for cut in 0..=bytes.len() {
                for len in [Some(13), None] {
                    let mut h = with_sent(spec(200, len), 2);
                    assert_eq!(feed_split(&mut h, &bytes, &[cut]), Ok(2), "cut {cut}");
                }
            }
            // Byte by byte.
            let mut h = with_sent(spec(200, Some(13)), 2);
            let cuts: Vec<usize> = (1..bytes.len()).collect();
            assert_eq!(feed_split(&mut h, &bytes, &cuts), Ok(2));
        }
    }

    #[test]
    fn chunked_mixed_with_length_and_empty_bodies() {
        let mut bytes = CHUNKED.to_vec();
        bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        bytes.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        bytes.extend_from_slice(OK);
        let mut h = with_sent(spec(200, None), 4);
        assert_eq!(h.feed(&bytes), Ok(4));
        // Chunk sizes in upper-case hex, several chunks.
        let big = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        let mut h = with_sent(spec(200, Some(36)), 1);
        assert_eq!(h.feed(big), Ok(1));
        let mut h = with_sent(spec(200, Some(35)), 1);
        assert_eq!(h.feed(big), Err(BadResponse));
    }

    #[test]
    fn wrong_status_or_length_is_bad() {
        let mut h = with_sent(spec(201, None), 1);
        assert_eq!(h.feed(OK), Err(BadResponse));
        let mut h = with_sent(spec(200, Some(12)), 1);
        assert_eq!(h.feed(OK), Err(BadResponse));
        let mut h = with_sent(spec(200, Some(12)), 1);
        assert_eq!(h.feed(CHUNKED), Err(BadResponse));
    }

    #[test]
    fn garbage_and_unframed_bodies_are_bad() {
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\nbody until close",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
        ] {
            let mut h = with_sent(spec(200, None), 1);
            assert_eq!(
                h.feed(bad),
                Err(BadResponse),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn unrequested_response_and_endless_head_are_bad() {
        let mut h = with_sent(spec(200, None), 1);
        let mut two = OK.to_vec();
        two.extend_from_slice(OK);
        assert_eq!(h.feed(&two), Err(BadResponse));
        let mut h = with_sent(spec(200, None), 1);
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        let line = b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut r = Ok(0);
        for _ in 0..2000 {
            head.extend_from_slice(line);
            r = h.feed(line);
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r, Err(BadResponse));
    }

    #[test]
    fn reset_forgets_a_half_response() {
        let mut h = with_sent(spec(200, None), 1);
        assert_eq!(h.feed(&OK[..20]), Ok(0));
        h.reset();
        let mut out = Vec::new();
        h.push_request(&mut out);
        assert_eq!(h.feed(OK), Ok(1));
    }

    #[test]
    fn head_requests_have_no_body() {
        let s = Arc::new(HttpSpec::new("h:1", "HEAD", "/", &[], 0, 200, Some(13)).unwrap());
        let mut h = with_sent(s, 2);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n";
        let mut two = head.to_vec();
        two.extend_from_slice(head);
        assert_eq!(h.feed(&two), Ok(2));
    }
}
