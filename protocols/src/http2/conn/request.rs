//! A request's field section as it is decoded from HPACK, checked against RFC 9113
//! sections 8.2 and 8.3, and the request body as it arrives.
//!
//! This module owns [`RequestParts`]: the decoded fields copied into one buffer (the
//! decoder lends them only for its callback), the pseudo-header fields, the body (or,
//! for an application that takes it in pieces, what it has been given and the
//! flow-control credit it has not yet given back), and the first rule a field broke. It never sends anything: a malformed request is
//! reported, and the connection resets the stream with PROTOCOL_ERROR.

use std::ops::Range;

use crate::http1::encode::TCHAR;
use crate::http1::head::RawHeader;
use crate::http2::hpack::Field;

/// Where a request's pieces are in [`RequestParts::buf`].
type Span = Range<usize>;

/// A request being received on one stream: its fields, then its body.
#[derive(Debug, Default)]
pub(crate) struct RequestParts {
    /// Every name and value, back to back.
    buf: Vec<u8>,
    /// The regular fields, in order.
    fields: Vec<(Span, Span)>,
    method: Option<Span>,
    scheme: Option<Span>,
    authority: Option<Span>,
    path: Option<Span>,
    host: Option<Span>,
    /// A regular field was seen: no pseudo-header may follow.
    regular_seen: bool,
    /// The first rule the section broke.
    pub(crate) malformed: Option<&'static str>,
    /// `content-length`, if sent.
    pub(crate) content_length: Option<u64>,
    /// The body so far (empty when it is streamed to the application).
    pub(crate) body: Vec<u8>,
    /// Body bytes received so far, kept or streamed.
    pub(crate) received: u64,
    /// When its HEADERS arrived (the body's average rate is counted from there).
    pub(crate) since: Option<std::time::Instant>,
    /// The application takes the body in pieces as DATA arrives
    /// ([`App::on_body`](crate::http1::App::on_body)); the request was dispatched at
    /// its head.
    pub(crate) streamed: bool,
    /// Flow-control credit for body bytes the application was given and that the
    /// client has not got back yet (WINDOW_UPDATE), held while the application paused
    /// the body.
    pub(crate) owed: u32,
    /// The trailer section's fields (in `buf`), kept for an application that takes the
    /// body in pieces ([`App::on_trailers`](crate::http1::App::on_trailers)).
    pub(crate) trailers: Vec<TrailerSpan>,
}

/// A trailer field's name and value in [`RequestParts::buf`], as the HTTP/1.1 side's
/// trailer view reads them.
pub(crate) type TrailerSpan = crate::http1::client::Span;

/// Field names that are connection-specific and so malformed in HTTP/2 (section 8.2.2).
fn connection_specific(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
    )
}

/// A field name: a non-empty token with no uppercase letter (section 8.2.1).
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| TCHAR[usize::from(b)] && !b.is_ascii_uppercase())
}

/// A field value: no NUL, CR or LF, no whitespace at either end (section 8.2.1).
fn valid_value(v: &[u8]) -> bool {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    !v.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
        && !v.first().is_some_and(ws)
        && !v.last().is_some_and(ws)
}

impl RequestParts {
    fn span(&mut self, bytes: &[u8]) -> Span {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        start..self.buf.len()
    }

    fn bad(&mut self, why: &'static str) {
        self.malformed.get_or_insert(why);
    }

    fn get(&self, s: &Option<Span>) -> Option<&[u8]> {
        s.as_ref().and_then(|s| self.buf.get(s.clone()))
    }

    /// Takes one decoded field of the request's header section.
    pub(crate) fn field(&mut self, f: Field<'_>) {
        if self.malformed.is_some() {
            return;
        }
        if !valid_value(f.value) {
            return self.bad("field value with NUL, CR, LF or edge whitespace");
        }
        if let Some(pseudo) = f.name.strip_prefix(b":") {
            if self.regular_seen {
                return self.bad("pseudo-header after a regular field");
            }
            let span = self.span(f.value);
            let slot = match pseudo {
                b"method" => &mut self.method,
                b"scheme" => &mut self.scheme,
                b"authority" => &mut self.authority,
                b"path" => &mut self.path,
                _ => return self.bad("unknown or response pseudo-header"),
            };
            if slot.is_some() {
                return self.bad("repeated pseudo-header");
            }
            *slot = Some(span);
            return;
        }
        self.regular_seen = true;
        if !valid_name(f.name) {
            return self.bad("field name not a lowercase token");
        }
        if connection_specific(f.name) {
            return self.bad("connection-specific field");
        }
        if f.name == b"te" && f.value != b"trailers" {
            return self.bad("te other than trailers");
        }
        if f.name == b"content-length" {
            let n = std::str::from_utf8(f.value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            match (n, self.content_length) {
                (None, _) => return self.bad("content-length not a number"),
                (Some(n), Some(m)) if n != m => return self.bad("conflicting content-length"),
                (Some(n), _) => self.content_length = Some(n),
            }
        }
        let name = self.span(f.name);
        let value = self.span(f.value);
        if f.name == b"host" {
            if self.host.is_some() {
                return self.bad("repeated host");
            }
            self.host = Some(value.clone());
        }
        self.fields.push((name, value));
    }

    /// Checks what only the whole section shows (section 8.3.1): the pseudo-headers a
    /// request needs, and `:authority` agreeing with `host`.
    pub(crate) fn finish_head(&mut self) {
        if self.malformed.is_some() {
            return;
        }
        let Some(method) = self.get(&self.method) else {
            return self.bad("no :method");
        };
        if method == b"CONNECT" {
            if self.scheme.is_some() || self.path.is_some() || self.authority.is_none() {
                self.bad("CONNECT with :scheme or :path, or without :authority");
            }
            return;
        }
        let (Some(_), Some(path)) = (&self.scheme, self.get(&self.path)) else {
            return self.bad("no :scheme or :path");
        };
        let asterisk = path == b"*" && method == b"OPTIONS";
        if !asterisk && !path.starts_with(b"/") {
            return self.bad(":path neither origin-form nor * for OPTIONS");
        }
        if let (Some(a), Some(h)) = (self.get(&self.authority), self.get(&self.host)) {
            if a != h {
                self.bad(":authority and host differ");
            }
        }
    }

    /// A field of the trailer section: no pseudo-header may appear (section 8.1).
    pub(crate) fn trailer(&mut self, f: Field<'_>) {
        if f.name.starts_with(b":") {
            self.bad("pseudo-header in trailers");
        } else if !valid_name(f.name) || !valid_value(f.value) || connection_specific(f.name) {
            self.bad("malformed trailer field");
        } else if self.streamed {
            let name = self.span(f.name);
            let value = self.span(f.value);
            self.trailers.push(TrailerSpan::new(
                (name.start, name.len()),
                (value.start, value.len()),
            ));
        }
    }

    /// The trailer section kept by [`RequestParts::trailer`].
    pub(crate) fn trailer_view(&self) -> crate::http1::client::FieldsView<'_> {
        crate::http1::client::FieldsView::new(&self.buf, &self.trailers)
    }

    /// Whether the body's length disagrees with `content-length` (section 8.1.1): over it
    /// as soon as it is, under it at the end of the stream.
    pub(crate) fn length_mismatch(&self, ended: bool) -> bool {
        match self.content_length {
            Some(n) => {
                let got = self.received;
                got > n || (ended && got != n)
            }
            None => false,
        }
    }

    /// The request as [`Request`](crate::http1::Request) wants it: method, target and the
    /// fields (`host` added from `:authority` when the client sent none, for
    /// applications written against HTTP/1.1). `None` for bytes that are not UTF-8
    /// where text is needed.
    pub(crate) fn view<'a>(
        &'a self,
        fields: &mut Vec<RawHeader<'a>>,
    ) -> Option<(&'a str, &'a str)> {
        let text = |s: &Option<Span>| -> Option<&'a str> {
            std::str::from_utf8(self.buf.get(s.clone()?)?).ok()
        };
        let method = text(&self.method)?;
        let target = if method == "CONNECT" {
            text(&self.authority)?
        } else {
            text(&self.path)?
        };
        for (n, v) in &self.fields {
            let name = std::str::from_utf8(self.buf.get(n.clone())?).ok()?;
            let value = self.buf.get(v.clone())?;
            fields.push(RawHeader { name, value });
        }
        if self.host.is_none() {
            if let Some(a) = self.authority.clone().and_then(|s| self.buf.get(s)) {
                fields.push(RawHeader {
                    name: "host",
                    value: a,
                });
            }
        }
        Some((method, target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(fields: &[(&str, &str)]) -> RequestParts {
        let mut p = RequestParts::default();
        for (n, v) in fields {
            p.field(Field {
                name: n.as_bytes(),
                value: v.as_bytes(),
                sensitive: false,
            });
        }
        p.finish_head();
        p
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "a.example"),
        (":path", "/p?q"),
    ];

    #[test]
    fn a_plain_get_is_well_formed_and_gets_a_host() {
        let p = parts(&GET);
        assert_eq!(p.malformed, None);
        let mut f = Vec::new();
        let (m, t) = p.view(&mut f).unwrap();
        assert_eq!((m, t), ("GET", "/p?q"));
        assert_eq!(f[0].name, "host");
        assert_eq!(f[0].value, b"a.example");
    }

    /// RFC 9113 sections 8.2 and 8.3: each rule broken once.
    #[test]
    fn each_rule_of_8_2_and_8_3_makes_it_malformed() {
        let cases: &[&[(&str, &str)]] = &[
            &[(":method", "GET"), (":scheme", "http")],
            &[(":method", "GET"), (":path", "/")],
            &[(":scheme", "http"), (":path", "/")],
            &[(":method", "GET"), (":scheme", "http"), (":path", "")],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":status", "200"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":foo", "x"),
            ],
            &[
                (":method", "GET"),
                ("x", "1"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("X-Up", "1"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("connection", "x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("upgrade", "x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("te", "gzip"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("a", " x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("a", "x\ny"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("", "x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "/"),
                ("host", "b"),
            ],
            &[
                (":method", "CONNECT"),
                (":authority", "a:1"),
                (":path", "/"),
            ],
            &[(":method", "GET"), (":scheme", "http"), (":path", "x")],
            &[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/"),
                ("content-length", "x"),
            ],
        ];
        for c in cases {
            assert!(parts(c).malformed.is_some(), "{c:?}");
        }
        let ok: &[&[(&str, &str)]] = &[
            &[(":method", "OPTIONS"), (":scheme", "http"), (":path", "*")],
            &[(":method", "CONNECT"), (":authority", "a:1")],
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("te", "trailers"),
            ],
        ];
        for c in ok {
            assert_eq!(parts(c).malformed, None, "{c:?}");
        }
    }

    #[test]
    fn content_length_is_held_to_the_body() {
        let mut p = parts(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/"),
            ("content-length", "3"),
        ]);
        p.received += 2;
        assert!(!p.length_mismatch(false));
        assert!(p.length_mismatch(true));
        p.received += 2;
        assert!(p.length_mismatch(false));
    }
}
