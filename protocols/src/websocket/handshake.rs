//! The opening handshake (RFC 6455 section 4.2) on the server side.
//!
//! This module owns the checks on an upgrade request's fields and the bytes of the
//! answers: `101 Switching Protocols` with `Sec-WebSocket-Accept`, `400 Bad Request`, or
//! `426 Upgrade Required` with `Sec-WebSocket-Version: 13`. It does not parse HTTP: the
//! caller gives it the request's method, version and fields, already parsed.
//!
//! Extensions are declined: a `Sec-WebSocket-Extensions` offer (permessage-deflate
//! included) is never echoed, which RFC 6455 9.1 and RFC 7692 define as "no extension in
//! use", so clients fall back to uncompressed frames.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (the key's bytes as sent,
/// surrounding whitespace already trimmed).
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    STANDARD.encode(h.finalize())
}

/// Why an upgrade request was refused, and so which status answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not `GET`, or not HTTP/1.1 or later: 400.
    Method,
    /// `Upgrade` does not name `websocket`: 400.
    Upgrade,
    /// `Connection` has no `upgrade` token: 400.
    Connection,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes in base64: 400.
    Key,
    /// A request body was announced: 400.
    Body,
    /// `Sec-WebSocket-Version` missing or not 13: 426 naming version 13.
    Version,
}

impl HandshakeError {
    /// The status code of the refusal.
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::Version => 426,
            _ => 400,
        }
    }

    /// A short reason, sent as the refusal's body.
    pub fn reason(self) -> &'static str {
        match self {
            HandshakeError::Method => "WebSocket handshake must be a GET over HTTP/1.1",
            HandshakeError::Upgrade => "Upgrade must be websocket",
            HandshakeError::Connection => "Connection must include upgrade",
            HandshakeError::Key => "Sec-WebSocket-Key must be 16 bytes in base64",
            HandshakeError::Body => "a WebSocket handshake has no body",
            HandshakeError::Version => "Sec-WebSocket-Version must be 13",
        }
    }
}

/// Trims HTTP optional whitespace.
fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    v.get(start..end).unwrap_or_default()
}

/// True if the comma-separated list `v` has `token` (case-insensitive).
pub fn has_token(v: &[u8], token: &str) -> bool {
    v.split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// True if `headers` has an `Upgrade` field naming `websocket`: the request is a
/// WebSocket handshake (valid or not) rather than a plain HTTP request.
pub fn is_websocket_upgrade<'a>(mut headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> bool {
    headers.any(|(n, v)| n.eq_ignore_ascii_case("upgrade") && has_token(v, "websocket"))
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The `Sec-WebSocket-Accept` value to answer with.
    pub accept: String,
}

/// Checks an upgrade request: `get_http11` says the method is GET and the version
/// HTTP/1.1 or later, `has_body` that a body was announced; `headers` are the fields.
pub fn check<'a>(
    get_http11: bool,
    has_body: bool,
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Result<Accepted, HandshakeError> {
    if !get_http11 {
        return Err(HandshakeError::Method);
    }
    if has_body {
        return Err(HandshakeError::Body);
    }
    let fields = |name: &'static str| {
        headers
            .clone()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    if !fields("upgrade").any(|v| has_token(v, "websocket")) {
        return Err(HandshakeError::Upgrade);
    }
    if !fields("connection").any(|v| has_token(v, "upgrade")) {
        return Err(HandshakeError::Connection);
    }
    let mut keys = fields("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => trim(k),
        _ => return Err(HandshakeError::Key),
    };
    match STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::Key),
    }
    let mut versions = fields("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if trim(v) == b"13" => {}
        _ => return Err(HandshakeError::Version),
    }
    Ok(Accepted {
        accept: accept_key(key),
    })
}

/// Appends the `101 Switching Protocols` answer.
pub fn write_101(out: &mut Vec<u8>, accepted: &Accepted) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accepted.accept.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends the refusal for `err` (the connection closes after it).
pub fn write_refusal(out: &mut Vec<u8>, err: HandshakeError) {
    let reason = err.reason();
    let status = match err.status() {
        426 => "426 Upgrade Required\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13",
        _ => "400 Bad Request",
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: ");
    out.extend_from_slice((reason.len() + 1).to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(reason.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn req<'a>(extra: &'a [(&'a str, &'a [u8])]) -> Vec<(&'a str, &'a [u8])> {
        let mut h: Vec<(&str, &[u8])> = vec![
            ("Host", b"example"),
            ("Upgrade", b"WebSocket"),
            ("Connection", b"keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", b"13"),
        ];
        for (n, v) in extra {
            h.retain(|(m, _)| !m.eq_ignore_ascii_case(n));
            if !v.is_empty() {
                h.push((n, v));
            }
        }
        h
    }

    #[test]
    fn rfc_example_accept() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let h = req(&[]);
        let ok = check(true, false, h.iter().copied()).unwrap();
        let mut out = Vec::new();
        write_101(&mut out, &ok);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 "));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(!text.to_ascii_lowercase().contains("extensions"));
    }

    #[test]
    fn refusals() {
        type Case<'a> = (&'a [(&'a str, &'a [u8])], HandshakeError);
        let cases: &[Case<'_>] = &[
            (&[("Upgrade", b"h2c")], HandshakeError::Upgrade),
            (&[("Connection", b"keep-alive")], HandshakeError::Connection),
            (&[("Connection", b"upgrades")], HandshakeError::Connection),
            (&[("Sec-WebSocket-Key", b"")], HandshakeError::Key),
            (&[("Sec-WebSocket-Key", b"c2hvcnQ=")], HandshakeError::Key),
            (
                &[("Sec-WebSocket-Key", b"not base64 at all!!!!!!=")],
                HandshakeError::Key,
            ),
            (&[("Sec-WebSocket-Version", b"8")], HandshakeError::Version),
            (&[("Sec-WebSocket-Version", b"")], HandshakeError::Version),
        ];
        for (extra, want) in cases {
            let h = req(extra);
            assert_eq!(
                check(true, false, h.iter().copied()),
                Err(*want),
                "{extra:?}"
            );
        }
        let h = req(&[]);
        assert_eq!(
            check(false, false, h.iter().copied()),
            Err(HandshakeError::Method)
        );
        assert_eq!(
            check(true, true, h.iter().copied()),
            Err(HandshakeError::Body)
        );
        let mut out = Vec::new();
        write_refusal(&mut out, HandshakeError::Version);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 "));
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let cl: usize = text
            .split("Content-Length: ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), cl);
    }

    #[test]
    fn tokens() {
        assert!(has_token(b" Upgrade ,x", "upgrade"));
        assert!(!has_token(b"upgrade-ish", "upgrade"));
        assert!(is_websocket_upgrade(
            [("upgrade", &b"foo, websocket"[..])].into_iter()
        ));
    }
}
