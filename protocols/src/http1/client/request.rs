//! Request heads and body framing, out.
//!
//! This part owns what a request may say: it checks every byte the caller gives before
//! writing any, so a method, target or field that would split the head or change its
//! framing is refused whole, never written. The framing fields (`Content-Length`,
//! `Transfer-Encoding`) belong to the codec, which writes them from the declared
//! [`BodyKind`]; the caller writes `Host` (required, once) and everything else.

use super::error::ClientError;
use crate::http1::encode::{
    is_field_text, is_token, put_u64, write_chunk_start, write_last_chunk, CHUNK_END,
};
use crate::http1::head::{list, BodyKind};

/// A request head to encode: borrowed, so building one costs nothing.
///
/// Field values are text (`&str`, the default) or bytes (`&[u8]`: a proxy passes a
/// client's obs-text on as it came, RFC 9110 section 5.5); either way a value holding
/// CR, LF, NUL or another control byte is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead<'a, V = &'a str> {
    /// The method token, e.g. `GET`. `CONNECT` is not supported.
    pub method: &'a str,
    /// The request target as it goes on the wire: origin-form (`/path?q`), or
    /// absolute-form (`http://host/path`) towards a proxy.
    pub target: &'a str,
    /// Header fields in order. `Host` must be among them exactly once;
    /// `Content-Length` and `Transfer-Encoding` must not (the codec writes them).
    pub headers: &'a [(&'a str, V)],
}

/// What the codec remembers of a request until its response has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// A `HEAD` request: its response has no body whatever its fields say.
    pub(super) head: bool,
    /// The request asked to upgrade (`Upgrade` field): a 101 is acceptable.
    pub(super) upgrade: bool,
    /// The request said `Connection: close`: its response is the last.
    pub(super) close: bool,
}

/// The request body still to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// No body open: the next request head may be written.
    Idle,
    /// A `Content-Length` body with this many bytes still owed.
    Length(u64),
    /// A chunked body, open until [`finish`] writes the last chunk.
    Chunked,
}

/// Methods whose requests announce `Content-Length: 0` when they carry no body
/// (RFC 9110 8.6: a sender SHOULD when the method defines a meaning for content).
fn expects_content(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

/// Checks `req` and appends its head to `out`; nothing is written if it is refused.
pub(super) fn write_head<V: AsRef<[u8]>>(
    req: &RequestHead<'_, V>,
    body: BodyKind,
    out: &mut Vec<u8>,
) -> Result<(Sent, Outgoing), ClientError> {
    let m = req.method.as_bytes();
    if !is_token(m) {
        return Err(ClientError::InvalidRequest("method is not a token"));
    }
    if req.method == "CONNECT" {
        return Err(ClientError::InvalidRequest("CONNECT is not supported"));
    }
    let t = req.target.as_bytes();
    if t.is_empty() || !t.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(ClientError::InvalidRequest(
            "target is empty or holds a space or control byte",
        ));
    }
    let mut hosts = 0;
    let mut sent = Sent {
        head: req.method == "HEAD",
        upgrade: false,
        close: false,
    };
    for (name, value) in req.headers {
        let (n, value) = (name.as_bytes(), value.as_ref());
        if !is_token(n) {
            return Err(ClientError::InvalidRequest("field name is not a token"));
        }
        if !is_field_text(value) {
            return Err(ClientError::InvalidRequest(
                "field value holds CR, LF, NUL or another control byte",
            ));
        }
        // By length first: most fields are none of these.
        match n.len() {
            4 if n.eq_ignore_ascii_case(b"host") => hosts += 1,
            7 if n.eq_ignore_ascii_case(b"upgrade") => sent.upgrade = true,
            10 if n.eq_ignore_ascii_case(b"connection") => {
                sent.close |= list(value).any(|t| t.eq_ignore_ascii_case(b"close"));
            }
            14 | 17
                if n.eq_ignore_ascii_case(b"content-length")
                    || n.eq_ignore_ascii_case(b"transfer-encoding") =>
            {
                return Err(ClientError::InvalidRequest(
                    "Content-Length and Transfer-Encoding are written by the codec",
                ));
            }
            _ => {}
        }
    }
    match hosts {
        0 => return Err(ClientError::InvalidRequest("missing Host")),
        1 => {}
        _ => return Err(ClientError::InvalidRequest("repeated Host")),
    }

    let fields_len: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.as_ref().len() + 4)
        .sum();
    out.reserve(req.method.len() + req.target.len() + fields_len + 64);
    out.extend_from_slice(m);
    out.push(b' ');
    out.extend_from_slice(t);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_ref());
        out.extend_from_slice(b"\r\n");
    }
    let outgoing = match body {
        BodyKind::Empty | BodyKind::Length(0) => {
            if body == BodyKind::Length(0) || expects_content(req.method) {
                out.extend_from_slice(b"Content-Length: 0\r\n");
            }
            Outgoing::Idle
        }
        BodyKind::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            put_u64(out, n);
            out.extend_from_slice(b"\r\n");
            Outgoing::Length(n)
        }
        BodyKind::Chunked => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            Outgoing::Chunked
        }
    };
    out.extend_from_slice(b"\r\n");
    Ok((sent, outgoing))
}

/// Checks `req` and appends it whole (head and `body`, `Content-Length` framed) to
/// `out`, for a caller that sends it later on a connection of its choosing (and may send
/// it again): see [`ClientCodec::push_prepared`](super::ClientCodec::push_prepared).
/// Nothing is written if it is refused.
pub(crate) fn prepare<V: AsRef<[u8]>>(
    req: &RequestHead<'_, V>,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<Sent, ClientError> {
    let kind = if body.is_empty() {
        BodyKind::Empty
    } else {
        BodyKind::Length(body.len() as u64)
    };
    let (sent, _) = write_head(req, kind, out)?;
    out.extend_from_slice(body);
    Ok(sent)
}

/// Checks `req` and appends its head to `out` for a body that follows in pieces
/// (`kind`: its `Content-Length`, or chunked), written with [`write_body`] and
/// [`finish`] against the returned state.
pub(crate) fn prepare_head<V: AsRef<[u8]>>(
    req: &RequestHead<'_, V>,
    kind: BodyKind,
    out: &mut Vec<u8>,
) -> Result<(Sent, Outgoing), ClientError> {
    write_head(req, kind, out)
}

/// Appends one piece of body; refuses (writing nothing) bytes past a declared length.
pub(crate) fn write_body(
    state: &mut Outgoing,
    chunk: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ClientError> {
    match state {
        Outgoing::Idle if chunk.is_empty() => Ok(()),
        Outgoing::Idle => Err(ClientError::InvalidRequest("no request body is open")),
        Outgoing::Length(left) => {
            if chunk.len() as u64 > *left {
                return Err(ClientError::InvalidRequest(
                    "body longer than its Content-Length",
                ));
            }
            *left -= chunk.len() as u64;
            out.extend_from_slice(chunk);
            if *left == 0 {
                *state = Outgoing::Idle;
            }
            Ok(())
        }
        Outgoing::Chunked => {
            // An empty chunk would be the last chunk: nothing to frame.
            if !chunk.is_empty() {
                write_chunk_start(out, chunk.len());
                out.extend_from_slice(chunk);
                out.extend_from_slice(CHUNK_END);
            }
            Ok(())
        }
    }
}

/// Ends the request body: the last chunk for a chunked body; for a length-delimited one,
/// an error if bytes are still owed (the server would wait for them).
pub(crate) fn finish(
    state: &mut Outgoing,
    trailers: &[(&str, &str)],
    out: &mut Vec<u8>,
) -> Result<(), ClientError> {
    match state {
        Outgoing::Idle => Ok(()),
        Outgoing::Length(_) => Err(ClientError::InvalidRequest(
            "body shorter than its Content-Length",
        )),
        Outgoing::Chunked => {
            // Fields not allowed in a trailer section are dropped, never sent.
            write_last_chunk(out, trailers);
            *state = Outgoing::Idle;
            Ok(())
        }
    }
}
