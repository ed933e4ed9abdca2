//! Request heads: parsed in place with httparse, then checked against RFC 9112.
//!
//! This module owns the decision of what a request head *means* for the connection: its
//! version, its target form, how long its body is (RFC 9112 section 6.3, the rules
//! request smuggling attacks exploit), whether the connection persists and whether the
//! client waits for `100 Continue`. It never copies the head: everything borrows from the
//! caller's buffer, and the header array lives on the caller's stack.
//!
//! It must never panic on input: all slicing is via checked `get`, and lengths are
//! parsed with overflow checks.

use std::mem::MaybeUninit;

use super::limits::Limits;

/// One header field as httparse yields it (name, raw value bytes).
pub type RawHeader<'b> = httparse::Header<'b>;

/// Storage for parsed headers: uninitialised, so a parse costs no memset of the array.
pub type HeaderBuf<'b> = [MaybeUninit<RawHeader<'b>>; super::limits::HEADER_CAP];

/// A fresh, uninitialised header array for [`parse_head`].
pub fn header_buf<'b>() -> HeaderBuf<'b> {
    [const { MaybeUninit::uninit() }; super::limits::HEADER_CAP]
}

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: not persistent unless `Connection: keep-alive`; no chunked responses.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2 (RFC 9113): a stream of an HTTP/2 connection, never parsed here.
    Http2,
}

/// How the body of a request is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: neither Content-Length nor Transfer-Encoding.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a head was rejected; each maps to one status code and one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Malformed syntax (400).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Ambiguous framing that a front-end could read differently (400, counted apart).
    #[error("ambiguous message framing: {0}")]
    Smuggling(&'static str),
    /// Request line longer than the limit (414).
    #[error("request line too long")]
    UriTooLong,
    /// Head larger than the limit or too many header fields (431).
    #[error("request header fields too large")]
    HeaderTooLarge,
    /// Content-Length above the body limit (413).
    #[error("request body too large")]
    BodyTooLarge,
    /// A well-formed version other than 1.0 or 1.1 (505).
    #[error("HTTP version not supported")]
    VersionUnsupported,
    /// A transfer coding or method the server does not implement (501).
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
}

impl HeadError {
    /// The response status for this rejection.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::BadRequest(_) | HeadError::Smuggling(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeaderTooLarge => 431,
            HeadError::BodyTooLarge => 413,
            HeadError::VersionUnsupported => 505,
            HeadError::NotImplemented(_) => 501,
        }
    }
}

/// A complete, validated request head, borrowing from the input buffer.
#[derive(Debug)]
pub struct Head<'b, 'h> {
    method: &'b str,
    target: &'b str,
    version: Version,
    headers: &'h [RawHeader<'b>],
    len: usize,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
    te_trailers: bool,
}

impl<'b, 'h> Head<'b, 'h> {
    /// The method token, e.g. `GET`.
    pub fn method(&self) -> &'b str {
        self.method
    }
    /// The request target as sent (origin-form, absolute-form or `*`).
    pub fn target(&self) -> &'b str {
        self.target
    }
    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The header fields, in order.
    pub fn headers(&self) -> &'h [RawHeader<'b>] {
        self.headers
    }
    /// Length of the head in bytes, including the blank line: the body starts here.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Always false: a complete head has at least a request line.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// How the body is delimited.
    pub fn body(&self) -> BodyKind {
        self.body
    }
    /// Whether the connection may carry another request after this one.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }
    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }
    /// Whether the client said it takes trailer fields (`TE: trailers`, HTTP/1.1 only:
    /// an HTTP/1.0 response cannot carry them).
    pub fn te_trailers(&self) -> bool {
        self.te_trailers
    }
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)` means the head is not complete yet (and within limits so far): keep the
/// bytes and call again with more appended. `headers` is scratch space for httparse;
/// only the first `limits.header_count()` entries are used.
pub fn parse_head<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<RawHeader<'b>>],
    limits: &Limits,
) -> Result<Option<Head<'b, 'h>>, HeadError> {
    let count = limits.header_count().min(headers.len());
    let slots = headers.get_mut(..count).unwrap_or_default();
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => {
            if len > limits.max_request_line && request_line_too_long(buf, limits) {
                return Err(HeadError::UriTooLong);
            }
            if len > limits.max_header_bytes {
                return Err(HeadError::HeaderTooLarge);
            }
            let method = req.method.unwrap_or_default();
            let target = req.path.unwrap_or_default();
            let version = if req.version == Some(0) {
                Version::Http10
            } else {
                Version::Http11
            };
            let headers: &'h [RawHeader<'b>] = req.headers;
            analyse(method, target, version, headers, len, limits).map(Some)
        }
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_request_line && request_line_too_long(buf, limits) {
                return Err(HeadError::UriTooLong);
            }
            if buf.len() > limits.max_header_bytes {
                return Err(HeadError::HeaderTooLarge);
            }
            Ok(None)
        }
        Err(e) => {
            if buf.len() > limits.max_request_line && request_line_too_long(buf, limits) {
                return Err(HeadError::UriTooLong);
            }
            Err(match e {
                httparse::Error::TooManyHeaders => HeadError::HeaderTooLarge,
                httparse::Error::Version if well_formed_version(buf) => {
                    HeadError::VersionUnsupported
                }
                httparse::Error::Version => HeadError::BadRequest("invalid HTTP version"),
                httparse::Error::HeaderName => HeadError::BadRequest("invalid header name"),
                httparse::Error::HeaderValue => HeadError::BadRequest("invalid header value"),
                httparse::Error::NewLine => HeadError::BadRequest("invalid line ending"),
                httparse::Error::Token => HeadError::BadRequest("invalid request line"),
                httparse::Error::Status => HeadError::BadRequest("invalid request"),
            })
        }
    }
}

/// The request line, after any empty lines a client may send first (RFC 9112 2.2),
/// up to but not including its LF; `None` if no LF has arrived yet.
fn request_line(buf: &[u8]) -> (usize, Option<usize>) {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    (start, rest.iter().position(|&b| b == b'\n'))
}

fn request_line_too_long(buf: &[u8], limits: &Limits) -> bool {
    let (start, end) = request_line(buf);
    match end {
        Some(n) => n > limits.max_request_line,
        None => buf.len().saturating_sub(start) > limits.max_request_line,
    }
}

/// True if the request line ends in a syntactically valid `HTTP/d.d` that httparse
/// refused (so the version, not the syntax, is what we do not support).
fn well_formed_version(buf: &[u8]) -> bool {
    let (start, end) = request_line(buf);
    let line = match end {
        Some(n) => buf.get(start..start + n),
        None => buf.get(start..),
    }
    .unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = match line.iter().rposition(|&b| b == b' ') {
        Some(sp) => line.get(sp + 1..).unwrap_or_default(),
        None => return false,
    };
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

/// The non-empty elements of a comma-separated field value, trimmed.
pub(crate) fn list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Parses a Content-Length element: one or more DIGITs, nothing else, no overflow.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// What the header fields say about framing and persistence, gathered in one pass.
/// Shared by both roles: the server reads requests with it, the client responses.
#[derive(Default)]
pub(crate) struct Fields {
    pub(crate) hosts: u32,
    pub(crate) content_length: Option<u64>,
    pub(crate) te_seen: bool,
    pub(crate) te_chunked_last: bool,
    pub(crate) te_chunked_count: u32,
    pub(crate) te_other: bool,
    pub(crate) conn_close: bool,
    pub(crate) conn_keep_alive: bool,
    pub(crate) expect_continue: bool,
    /// A `TE` field names `trailers`: the client takes a trailer section (RFC 9110
    /// section 10.1.4).
    pub(crate) te_trailers: bool,
    /// The first framing field that cannot be read (an invalid or differing
    /// Content-Length, parameters on chunked); the scan goes on past it, so the
    /// Connection tokens are known even then.
    pub(crate) framing_error: Option<&'static str>,
}

/// Scans the header fields once for framing (Content-Length, Transfer-Encoding),
/// persistence (Connection), Host and Expect. Never fails: a framing field that cannot
/// be read is recorded in [`Fields::framing_error`] for the caller to act on.
pub(crate) fn scan_fields(headers: &[RawHeader<'_>]) -> Fields {
    let mut f = Fields::default();
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            f.hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            for e in h.value.split(|&b| b == b',').map(trim_ows) {
                let Some(n) = parse_length(e) else {
                    f.framing_error.get_or_insert("invalid Content-Length");
                    break;
                };
                match f.content_length {
                    Some(m) if m != n => {
                        f.framing_error
                            .get_or_insert("differing Content-Length values");
                        break;
                    }
                    _ => f.content_length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.te_seen = true;
            for coding in list(h.value) {
                let (cname, params) = match coding.iter().position(|&b| b == b';') {
                    Some(i) => (
                        trim_ows(coding.get(..i).unwrap_or_default()),
                        coding.get(i..).unwrap_or_default(),
                    ),
                    None => (coding, &b""[..]),
                };
                if cname.eq_ignore_ascii_case(b"chunked") {
                    if !params.is_empty() {
                        f.framing_error.get_or_insert("parameters on chunked");
                    }
                    f.te_chunked_count += 1;
                    f.te_chunked_last = true;
                } else {
                    f.te_other = true;
                    f.te_chunked_last = false;
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    f.conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    f.conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"te") {
            f.te_trailers |= list(h.value).any(|t| t.eq_ignore_ascii_case(b"trailers"));
        } else if name.eq_ignore_ascii_case(b"expect")
            && trim_ows(h.value).eq_ignore_ascii_case(b"100-continue")
        {
            f.expect_continue = true;
        }
    }
    f
}

fn analyse<'b, 'h>(
    method: &'b str,
    target: &'b str,
    version: Version,
    headers: &'h [RawHeader<'b>],
    len: usize,
    limits: &Limits,
) -> Result<Head<'b, 'h>, HeadError> {
    if method == "CONNECT" {
        return Err(HeadError::NotImplemented("CONNECT"));
    }
    check_target(method, target)?;

    let f = scan_fields(headers);
    if let Some(e) = f.framing_error {
        return Err(HeadError::Smuggling(e));
    }

    match (version, f.hosts) {
        (Version::Http11, 0) => return Err(HeadError::BadRequest("missing Host")),
        (_, n) if n > 1 => return Err(HeadError::BadRequest("repeated Host")),
        _ => {}
    }

    let body = if f.te_seen {
        // Every branch here is a framing ambiguity some intermediary resolves the other
        // way; rejecting and closing is the only safe answer.
        if f.content_length.is_some() {
            return Err(HeadError::Smuggling(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if version == Version::Http10 {
            return Err(HeadError::Smuggling("Transfer-Encoding in HTTP/1.0"));
        }
        if !f.te_chunked_last {
            return Err(HeadError::Smuggling("final transfer coding is not chunked"));
        }
        if f.te_chunked_count > 1 {
            return Err(HeadError::Smuggling("chunked applied more than once"));
        }
        if f.te_other {
            return Err(HeadError::NotImplemented("transfer coding"));
        }
        BodyKind::Chunked
    } else {
        match f.content_length {
            Some(n) if n > limits.max_body => return Err(HeadError::BodyTooLarge),
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        }
    };

    let keep_alive = match version {
        Version::Http11 | Version::Http2 => !f.conn_close,
        Version::Http10 => f.conn_keep_alive && !f.conn_close,
    };
    // RFC 9110 10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request, and there
    // is nothing to wait for without a body.
    let expect_continue =
        f.expect_continue && version == Version::Http11 && body != BodyKind::Empty;

    Ok(Head {
        method,
        target,
        version,
        headers,
        len,
        body,
        keep_alive,
        expect_continue,
        te_trailers: f.te_trailers && version == Version::Http11,
    })
}

/// Accepts origin-form, absolute-form, and asterisk-form for OPTIONS (RFC 9112 3.2).
fn check_target(method: &str, target: &str) -> Result<(), HeadError> {
    let t = target.as_bytes();
    match t.first() {
        Some(b'/') => Ok(()),
        Some(b'*') if t.len() == 1 => {
            if method == "OPTIONS" {
                Ok(())
            } else {
                Err(HeadError::BadRequest("asterisk-form outside OPTIONS"))
            }
        }
        _ if absolute_parts(target).is_some() => Ok(()),
        _ => Err(HeadError::BadRequest("invalid request target")),
    }
}

/// For an absolute-form target `scheme://authority[path]`, the path part (`/` if empty).
pub(crate) fn absolute_parts(target: &str) -> Option<&str> {
    let sep = target.find("://")?;
    let scheme = target.get(..sep)?.as_bytes();
    let first_alpha = scheme.first().is_some_and(u8::is_ascii_alphabetic);
    let scheme_ok = scheme
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    if !first_alpha || !scheme_ok {
        return None;
    }
    let rest = target.get(sep + 3..)?;
    if rest.is_empty() {
        return None;
    }
    match rest.find(['/', '?']) {
        Some(0) => None,
        Some(i) if rest.as_bytes().get(i) == Some(&b'/') => rest.get(i..),
        _ => Some("/"),
    }
}

#[cfg(test)]
mod tests;
