//! Response heads, in: parsed in place with httparse, then read for message length and
//! persistence by the rules of RFC 9112 section 6.3.
//!
//! This part owns what a response head *means* for the connection: whether a body
//! follows and how it is delimited, and whether the connection survives it. Field
//! positions are kept as offsets into the caller's input (a reused `Vec`, so no
//! allocation per response once warm), and handed out as borrowed views.

use super::error::ClientError;
use super::request::Sent;
use crate::http1::encode::Framing;
use crate::http1::head::{header_buf, scan_fields, Fields, Version};
use crate::http1::limits::{Limits, HEADER_CAP};

/// Where one field sits in the input: name and value as (offset, length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    name: (usize, usize),
    value: (usize, usize),
}

impl Span {
    /// A field whose name and value sit at these (offset, length) places.
    pub(crate) fn new(name: (usize, usize), value: (usize, usize)) -> Self {
        Span { name, value }
    }
}

/// Header or trailer fields, borrowed from the input they arrived in.
#[derive(Debug, Clone, Copy)]
pub struct FieldsView<'a> {
    input: &'a [u8],
    spans: &'a [Span],
}

impl<'a> FieldsView<'a> {
    /// No fields (e.g. the trailers of a body that had none).
    pub fn empty() -> Self {
        FieldsView {
            input: &[],
            spans: &[],
        }
    }

    pub(crate) fn new(input: &'a [u8], spans: &'a [Span]) -> Self {
        FieldsView { input, spans }
    }

    /// The bytes the fields sit in (up to the end of the last one) and their spans,
    /// copied: to keep them past the input's life and rebuild the view with
    /// [`FieldsView::new`].
    pub(crate) fn copied_parts(self) -> (Vec<u8>, Vec<Span>) {
        let end = self
            .spans
            .iter()
            .map(|s| (s.name.0 + s.name.1).max(s.value.0 + s.value.1))
            .max()
            .unwrap_or(0);
        let bytes = self.input.get(..end).unwrap_or(self.input);
        (bytes.to_vec(), self.spans.to_vec())
    }

    /// The fields in order, as (name, raw value).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let input = self.input;
        self.spans.iter().map(move |s| {
            let name = input.get(s.name.0..s.name.0 + s.name.1).unwrap_or_default();
            let value = input.get(s.value.0..s.value.0 + s.value.1);
            // httparse checked the name is a token, so it is ASCII.
            (
                std::str::from_utf8(name).unwrap_or_default(),
                value.unwrap_or_default(),
            )
        })
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// A response head (interim or final), borrowing from the input it arrived in.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    pub(super) info: HeadInfo,
    pub(super) reason: &'a str,
    pub(super) fields: FieldsView<'a>,
}

impl<'a> ResponseHead<'a> {
    /// The status code (100..=999).
    pub fn status(&self) -> u16 {
        self.info.status
    }
    /// The reason phrase (empty if absent, or if it held non-ASCII bytes).
    pub fn reason(&self) -> &'a str {
        self.reason
    }
    /// The HTTP version of the response.
    pub fn version(&self) -> Version {
        self.info.version
    }
    /// The header fields, in order.
    pub fn headers(&self) -> FieldsView<'a> {
        self.fields
    }
    /// Length of the head in bytes, including the blank line.
    pub fn len(&self) -> usize {
        self.info.len
    }
    /// Always false: a complete head has at least a status line.
    pub fn is_empty(&self) -> bool {
        self.info.len == 0
    }
    /// How the body is delimited: [`Framing::None`] for a response to `HEAD`, any 1xx,
    /// 204 and 304, whatever their fields say. Transfer codings other than chunked are
    /// not decoded: such a body is passed on as it arrives.
    pub fn framing(&self) -> Framing {
        self.info.framing
    }
    /// Whether the connection may carry another request after this response. False for
    /// HTTP/1.0 without `Connection: keep-alive`, `Connection: close` (in the response
    /// or the request), a body delimited by close, and Transfer-Encoding together with
    /// Content-Length (the framing was ambiguous: the connection must close).
    pub fn keep_alive(&self) -> bool {
        self.info.keep_alive
    }
    /// What this head is made of, for a caller that copies its bytes (`..len()` of
    /// the input it arrived in) and shows it again later with [`ResponseHead::rebuild`].
    pub(crate) fn parts(&self) -> (HeadInfo, &'a [Span]) {
        (self.info, self.fields.spans)
    }

    /// A head from its [`parts`](Self::parts) and a copy of its bytes.
    pub(crate) fn rebuild(info: HeadInfo, input: &'a [u8], spans: &'a [Span]) -> Self {
        let (start, len) = info.reason;
        let reason = input.get(start..start + len).unwrap_or_default();
        ResponseHead {
            info,
            reason: std::str::from_utf8(reason).unwrap_or_default(),
            fields: FieldsView::new(input, spans),
        }
    }
}

/// A parsed head, without borrows (the codec keeps it while the body is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadInfo {
    pub(crate) status: u16,
    pub(super) version: Version,
    /// The reason phrase as (offset, length) in the input.
    pub(super) reason: (usize, usize),
    pub(super) len: usize,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
}

/// A complete response head and what its fields say.
pub(super) struct Parsed {
    pub(super) info: HeadInfo,
    pub(super) fields: Fields,
}

fn offset(input: &[u8], part: &[u8]) -> (usize, usize) {
    // Both point into `input` (httparse borrows from it), so this cannot underflow; the
    // views re-slice with `get`, so a wrong offset could never panic anyway.
    let start = (part.as_ptr() as usize).saturating_sub(input.as_ptr() as usize);
    (start, part.len())
}

pub(super) fn record(input: &[u8], headers: &[httparse::Header<'_>], spans: &mut Vec<Span>) {
    spans.clear();
    spans.extend(headers.iter().map(|h| Span {
        name: offset(input, h.name.as_bytes()),
        value: offset(input, h.value),
    }));
}

/// The part of `input` a head or trailer section must fit in. Only these bytes are
/// parsed, so the verdict on an oversized head (too large, or malformed within the
/// limit) depends on its first `max_header_bytes` bytes alone, never on how the input
/// was split: bytes past the limit are never looked at.
pub(super) fn within_limit<'a>(input: &'a [u8], limits: &Limits) -> &'a [u8] {
    input.get(..limits.max_header_bytes).unwrap_or(input)
}

/// Parses a response head at the start of `input`, recording its fields in `spans`.
/// `Ok(None)`: incomplete (and within limits so far), show it again with more appended.
/// The message length is left to [`message_length`]: it depends on the request.
pub(super) fn parse_head(
    input: &[u8],
    limits: &Limits,
    spans: &mut Vec<Span>,
) -> Result<Option<Parsed>, ClientError> {
    let mut slots = header_buf();
    let count = limits.header_count().min(HEADER_CAP);
    let slots = slots.get_mut(..count).unwrap_or_default();
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        within_limit(input, limits),
        slots,
    );
    match parsed {
        Ok(httparse::Status::Complete(len)) => {
            let status = resp.code.unwrap_or_default();
            if status < 100 {
                return Err(ClientError::Malformed("status code below 100"));
            }
            let version = if resp.version == Some(0) {
                Version::Http10
            } else {
                Version::Http11
            };
            let reason = offset(input, resp.reason.unwrap_or_default().as_bytes());
            record(input, resp.headers, spans);
            Ok(Some(Parsed {
                info: HeadInfo {
                    status,
                    version,
                    reason,
                    len,
                    framing: Framing::None,
                    keep_alive: false,
                },
                fields: scan_fields(resp.headers),
            }))
        }
        Ok(httparse::Status::Partial) => {
            if input.len() > limits.max_header_bytes {
                return Err(ClientError::TooLarge("response head size"));
            }
            Ok(None)
        }
        Err(e) => Err(match e {
            httparse::Error::TooManyHeaders => ClientError::TooLarge("header count"),
            httparse::Error::Version => ClientError::Malformed("invalid HTTP version"),
            httparse::Error::Status | httparse::Error::Token => {
                ClientError::Malformed("invalid status line")
            }
            httparse::Error::HeaderName => ClientError::Malformed("invalid header name"),
            httparse::Error::HeaderValue => ClientError::Malformed("invalid header value"),
            httparse::Error::NewLine => ClientError::Malformed("invalid line ending"),
        }),
    }
}

/// RFC 9112 section 6.3, for a final (non-1xx) response to `req`: how its body is
/// delimited and whether the connection persists after it.
pub(super) fn message_length(
    status: u16,
    version: Version,
    f: &Fields,
    req: &Sent,
    limits: &Limits,
) -> Result<(Framing, bool), ClientError> {
    let mut keep_alive =
        !req.close && !f.conn_close && (version == Version::Http11 || f.conn_keep_alive);
    // 1. HEAD, 204 and 304 (1xx never get here): no body, whatever the fields say.
    if req.head || status == 204 || status == 304 {
        return Ok((Framing::None, keep_alive));
    }
    // 2. A 2xx to CONNECT: never, the codec refuses to send CONNECT.
    if let Some(e) = f.framing_error {
        return Err(ClientError::Malformed(e));
    }
    let framing = if f.te_seen {
        // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
        if version == Version::Http10 {
            return Err(ClientError::Malformed("Transfer-Encoding in HTTP/1.0"));
        }
        // 3. With Content-Length too, Transfer-Encoding wins and the connection closes.
        if f.content_length.is_some() {
            keep_alive = false;
        }
        if f.te_chunked_last {
            if f.te_chunked_count > 1 {
                return Err(ClientError::Malformed("chunked applied more than once"));
            }
            Framing::Chunked
        } else {
            // 4. Chunked not last: the body runs until the server closes.
            Framing::UntilClose
        }
    } else {
        match f.content_length {
            // 5. Invalid and differing values were refused above (`framing_error`).
            Some(n) if n > limits.max_body => return Err(ClientError::TooLarge("body size")),
            Some(n) => Framing::Length(n),
            // 7. Otherwise the body runs until the server closes.
            None => Framing::UntilClose,
        }
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok((framing, keep_alive))
}
