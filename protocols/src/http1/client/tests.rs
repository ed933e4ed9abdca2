//! Unit tests of the client role: request encoding, the message-length rules of RFC 9112
//! section 6.3 for responses, keep-alive, interim responses, pipelining, end of stream,
//! malformed heads and limits.

use super::*;
use crate::http1::encode::Framing;
use crate::http1::head::{BodyKind, Version};
use crate::http1::limits::Limits;

/// What a test saw, owned, with consecutive body pieces merged (so that any chunking of
/// the input gives the same list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    Info(u16),
    Head {
        status: u16,
        version: Version,
        framing: Framing,
        keep_alive: bool,
        headers: Vec<(String, Vec<u8>)>,
    },
    Body(Vec<u8>),
    End {
        trailers: Vec<(String, Vec<u8>)>,
        reusable: bool,
    },
    Upgraded(u16),
    Error(ClientError),
}

fn owned(fields: FieldsView<'_>) -> Vec<(String, Vec<u8>)> {
    fields
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect()
}

fn seen(ev: ClientEvent<'_>) -> Seen {
    match ev {
        ClientEvent::Informational(h) => Seen::Info(h.status()),
        ClientEvent::Head(h) => Seen::Head {
            status: h.status(),
            version: h.version(),
            framing: h.framing(),
            keep_alive: h.keep_alive(),
            headers: owned(h.headers()),
        },
        ClientEvent::Body(b) => Seen::Body(b.to_vec()),
        ClientEvent::End(e) => Seen::End {
            trailers: owned(e.trailers),
            reusable: e.reusable,
        },
        ClientEvent::Upgraded(h) => Seen::Upgraded(h.status()),
    }
}

fn push(out: &mut Vec<Seen>, s: Seen) {
    if let (Some(Seen::Body(prev)), Seen::Body(more)) = (out.last_mut(), &s) {
        prev.extend_from_slice(more);
        return;
    }
    out.push(s);
}

/// Feeds `pieces` one after another as a driver would (keeping what was not consumed),
/// then the end of stream if `eof`. Returns the events and the bytes left unconsumed.
pub(super) fn feed(codec: &mut ClientCodec, pieces: &[&[u8]], eof: bool) -> (Vec<Seen>, Vec<u8>) {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let (n, ev) = match codec.decode(&buf) {
                Ok(d) => (d.consumed, d.event.map(seen)),
                Err(e) => {
                    out.push(Seen::Error(e));
                    return (out, buf);
                }
            };
            assert!(n <= buf.len());
            buf.drain(..n);
            match ev {
                Some(s) => push(&mut out, s),
                None => break,
            }
        }
    }
    if eof {
        match codec.peer_closed(&buf) {
            Ok(Some(end)) => push(&mut out, seen(ClientEvent::End(end))),
            Ok(None) => {}
            Err(e) => out.push(Seen::Error(e)),
        }
    }
    (out, buf)
}

/// A codec with one request per `methods` entry already encoded.
pub(super) fn codec_after(methods: &[&str]) -> ClientCodec {
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    for m in methods {
        let req = RequestHead {
            method: m,
            target: "/",
            headers: &[("Host", "example.com")],
        };
        c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
    }
    c
}

/// Decodes `input` whole after one request of `method`.
pub(super) fn one(method: &str, input: &[u8], eof: bool) -> Vec<Seen> {
    feed(&mut codec_after(&[method]), &[input], eof).0
}

/// Decodes `input` fed one byte at a time.
pub(super) fn bytewise(methods: &[&str], input: &[u8], eof: bool) -> Vec<Seen> {
    let pieces: Vec<&[u8]> = input.chunks(1).collect();
    feed(&mut codec_after(methods), &pieces, eof).0
}

fn head(status: u16, framing: Framing, keep_alive: bool) -> impl Fn(&Seen) -> bool {
    move |s| {
        matches!(s, Seen::Head { status: st, framing: f, keep_alive: k, .. }
            if *st == status && *f == framing && *k == keep_alive)
    }
}

fn end(reusable: bool) -> Seen {
    Seen::End {
        trailers: vec![],
        reusable,
    }
}

fn body(b: &[u8]) -> Seen {
    Seen::Body(b.to_vec())
}

fn get(headers: &[(&str, &str)]) -> (Result<(), ClientError>, Vec<u8>) {
    let mut c = ClientCodec::default();
    let mut out = b"kept".to_vec();
    let r = c.encode_request(
        &RequestHead {
            method: "GET",
            target: "/x",
            headers,
        },
        BodyKind::Empty,
        &mut out,
    );
    (r, out)
}

// ---- request encoding ----

#[test]
fn encodes_a_get() {
    let (r, out) = get(&[("Host", "example.com"), ("Accept", "*/*")]);
    r.unwrap();
    assert_eq!(
        out,
        b"keptGET /x HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
    );
}

#[test]
fn encodes_a_length_body() {
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    let req = RequestHead {
        method: "PUT",
        target: "/f",
        headers: &[("Host", "h")],
    };
    c.encode_request(&req, BodyKind::Length(5), &mut out)
        .unwrap();
    assert!(!c.is_idle());
    c.encode_body(b"hel", &mut out).unwrap();
    assert_eq!(
        c.encode_body(b"lo!", &mut out),
        Err(ClientError::InvalidRequest(
            "body longer than its Content-Length"
        ))
    );
    assert_eq!(
        c.finish_body(&mut out),
        Err(ClientError::InvalidRequest(
            "body shorter than its Content-Length"
        ))
    );
    c.encode_body(b"lo", &mut out).unwrap();
    c.finish_body(&mut out).unwrap();
    assert_eq!(
        out,
        b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    );
}

#[test]
fn encodes_a_chunked_body() {
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    let req = RequestHead {
        method: "POST",
        target: "/up",
        headers: &[("Host", "h")],
    };
    c.encode_request(&req, BodyKind::Chunked, &mut out).unwrap();
    c.encode_body(b"hello", &mut out).unwrap();
    c.encode_body(b"", &mut out).unwrap();
    c.encode_body(&[b'x'; 26], &mut out).unwrap();
    c.finish_body(&mut out).unwrap();
    let mut want =
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1a\r\n"
            .to_vec();
    want.extend_from_slice(&[b'x'; 26]);
    want.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(out, want);
    // The server's own decoder reads it back.
    let body_at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut dec = crate::http1::body::ChunkedDecoder::new(1 << 20, 1024);
    let mut got = Vec::new();
    dec.decode(&out[body_at..], &mut |d| got.extend_from_slice(d))
        .unwrap();
    assert!(dec.is_done());
    assert_eq!(got.len(), 31);
}

#[test]
fn an_empty_post_announces_length_zero() {
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    let req = RequestHead {
        method: "POST",
        target: "/",
        headers: &[("Host", "h")],
    };
    c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
    assert_eq!(
        out,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(
        c.encode_body(b"x", &mut out),
        Err(ClientError::InvalidRequest("no request body is open"))
    );
}

#[test]
fn refuses_requests_that_would_break_framing_and_writes_nothing() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "missing Host"),
        (&[("Host", "a"), ("host", "b")], "repeated Host"),
        (
            &[("Host", "a"), ("X", "a\r\nEvil: 1")],
            "field value holds CR, LF, NUL or another control byte",
        ),
        (
            &[("Host", "a"), ("X", "a\nb")],
            "field value holds CR, LF, NUL or another control byte",
        ),
        (
            &[("Host", "a"), ("X", "a\0b")],
            "field value holds CR, LF, NUL or another control byte",
        ),
        (
            &[("Host", "a\r")],
            "field value holds CR, LF, NUL or another control byte",
        ),
        (
            &[("Host", "a"), ("Bad Name", "v")],
            "field name is not a token",
        ),
        (&[("Host", "a"), ("X:Y", "v")], "field name is not a token"),
        (&[("Host", "a"), ("", "v")], "field name is not a token"),
        (
            &[("Host", "a"), ("Content-Length", "3")],
            "Content-Length and Transfer-Encoding are written by the codec",
        ),
        (
            &[("Host", "a"), ("transfer-encoding", "chunked")],
            "Content-Length and Transfer-Encoding are written by the codec",
        ),
    ];
    for (headers, why) in cases {
        let (r, out) = get(headers);
        assert_eq!(r, Err(ClientError::InvalidRequest(why)), "{headers:?}");
        assert_eq!(out, b"kept", "{headers:?}");
    }
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    for (method, target) in [
        ("G T", "/"),
        ("", "/"),
        ("GET", "/a b"),
        ("GET", "/\r\n"),
        ("GET", ""),
        ("CONNECT", "h:443"),
    ] {
        let req = RequestHead {
            method,
            target,
            headers: &[("Host", "h")],
        };
        assert!(
            matches!(
                c.encode_request(&req, BodyKind::Empty, &mut out),
                Err(ClientError::InvalidRequest(_))
            ),
            "{method} {target}"
        );
    }
    assert!(out.is_empty());
    assert!(c.is_idle() && c.is_reusable());
}

#[test]
fn no_request_while_a_body_is_open() {
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    let req = RequestHead {
        method: "POST",
        target: "/",
        headers: &[("Host", "h")],
    };
    c.encode_request(&req, BodyKind::Chunked, &mut out).unwrap();
    let len = out.len();
    assert!(matches!(
        c.encode_request(&req, BodyKind::Empty, &mut out),
        Err(ClientError::InvalidRequest(_))
    ));
    assert_eq!(out.len(), len);
    c.finish_body(&mut out).unwrap();
    c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
    assert_eq!(c.in_flight(), 2);
}

#[test]
fn pipelining_is_bounded_by_max_pipelined() {
    let mut c = ClientCodec::new(Limits {
        max_pipelined: 2,
        ..Limits::default()
    });
    let mut out = Vec::new();
    let req = RequestHead {
        method: "GET",
        target: "/",
        headers: &[("Host", "h")],
    };
    c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
    c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
    assert!(matches!(
        c.encode_request(&req, BodyKind::Empty, &mut out),
        Err(ClientError::InvalidRequest(_))
    ));
}

// ---- message length (RFC 9112 6.3) ----

#[test]
fn content_length_body() {
    let s = one(
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        false,
    );
    assert!(head(200, Framing::Length(5), true)(&s[0]));
    assert_eq!(s[1..], [body(b"hello"), end(true)]);
}

#[test]
fn rfc9110_example_response() {
    // The example response of RFC 9110 section 6 (and RFC 7230 2.1).
    let input = b"HTTP/1.1 200 OK\r\nDate: Mon, 27 Jul 2009 12:28:53 GMT\r\nServer: Apache\r\n\
Last-Modified: Wed, 22 Jul 2009 19:15:56 GMT\r\nETag: \"34aa387-d-1568eb00\"\r\n\
Accept-Ranges: bytes\r\nContent-Length: 51\r\nVary: Accept-Encoding\r\n\
Content-Type: text/plain\r\n\r\nHello World! My content includes a trailing CRLF.\r\n";
    let s = one("GET", input, false);
    let Seen::Head { headers, .. } = &s[0] else {
        panic!("{s:?}")
    };
    assert_eq!(headers.len(), 8);
    assert_eq!(
        headers[3],
        ("ETag".to_string(), b"\"34aa387-d-1568eb00\"".to_vec())
    );
    assert_eq!(
        s[1..],
        [
            body(b"Hello World! My content includes a trailing CRLF.\r\n"),
            end(true)
        ]
    );
}

#[test]
fn chunked_with_extensions_and_trailers() {
    // Shaped after the chunked example of RFC 9112 section 7.1 and 7.1.2.
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Expires\r\n\r\n\
4;name=value\r\nWiki\r\n5 ; quoted=\"a b\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\n\
Expires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Sum: 12\r\n\r\n";
    for s in [one("GET", input, false), bytewise(&["GET"], input, false)] {
        assert!(head(200, Framing::Chunked, true)(&s[0]), "{s:?}");
        assert_eq!(s[1], body(b"Wikipedia in\r\n\r\nchunks."));
        assert_eq!(
            s[2],
            Seen::End {
                trailers: vec![
                    ("Expires".into(), b"Wed, 21 Oct 2015 07:28:00 GMT".to_vec()),
                    ("X-Sum".into(), b"12".to_vec()),
                ],
                reusable: true,
            }
        );
        assert_eq!(s.len(), 3);
    }
}

#[test]
fn head_response_has_no_body_whatever_its_length_says() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    let mut c = codec_after(&["HEAD", "GET"]);
    let (s, rest) = feed(&mut c, &[input], false);
    assert!(head(200, Framing::None, true)(&s[0]), "{s:?}");
    assert_eq!(s[1], end(true));
    assert!(head(204, Framing::None, true)(&s[2]));
    assert_eq!(s[3], end(true));
    assert!(rest.is_empty() && c.is_idle());
    // Even chunked: a HEAD response never has a body.
    let s = one(
        "HEAD",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    );
    assert_eq!(s[1..], [end(true)]);
}

#[test]
fn no_body_for_204_and_304_even_with_bogus_framing_fields() {
    for input in [
        &b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"[..],
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let mut c = codec_after(&["GET"]);
        let (s, rest) = feed(&mut c, &[input], false);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[1], end(true));
        assert!(rest.is_empty() && c.is_idle() && c.is_reusable());
    }
}

#[test]
fn interim_responses_then_the_final_one() {
    let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for s in [one("GET", input, false), bytewise(&["GET"], input, false)] {
        assert_eq!(s[..2], [Seen::Info(100), Seen::Info(103)]);
        assert!(head(200, Framing::Length(2), true)(&s[2]));
        assert_eq!(s[3..], [body(b"ok"), end(true)]);
    }
}

#[test]
fn switching_protocols_leaves_the_rest_unconsumed() {
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    let req = RequestHead {
        method: "GET",
        target: "/chat",
        headers: &[
            ("Host", "h"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
        ],
    };
    c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
    let input = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi";
    let (s, rest) = feed(&mut c, &[input], false);
    assert_eq!(s, [Seen::Upgraded(101), Seen::Error(ClientError::Upgraded)]);
    assert_eq!(rest, b"\x81\x02hi");
    assert!(!c.is_reusable());
    assert_eq!(
        c.encode_request(&req, BodyKind::Empty, &mut out),
        Err(ClientError::Upgraded)
    );
    // Without an Upgrade in the request, a 101 is not an answer.
    let s = one("GET", b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false);
    assert!(matches!(s[..], [Seen::Error(ClientError::Malformed(_))]));
}

#[test]
fn transfer_encoding_with_content_length_is_chunked_then_close() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let mut c = codec_after(&["GET"]);
    let (s, _) = feed(&mut c, &[input], false);
    assert!(head(200, Framing::Chunked, false)(&s[0]), "{s:?}");
    assert_eq!(s[1..], [body(b"abc"), end(false)]);
    assert!(!c.is_reusable());
    assert!(c.is_idle());
    // Nothing more may be read or sent on it.
    assert_eq!(
        c.decode(b"HTTP/1.1 200 OK\r\n").unwrap_err(),
        ClientError::UnexpectedResponse
    );
}

#[test]
fn transfer_encoding_without_chunked_last_runs_until_close() {
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw bytes";
    let s = one("GET", input, true);
    assert!(head(200, Framing::UntilClose, false)(&s[0]), "{s:?}");
    assert_eq!(s[1..], [body(b"raw bytes"), end(false)]);
}

#[test]
fn bad_content_length_is_an_error_never_a_guess() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let mut c = codec_after(&["GET"]);
        let (s, _) = feed(&mut c, &[input], false);
        assert!(
            matches!(s[..], [Seen::Error(ClientError::Malformed(_))]),
            "{s:?}"
        );
        // Poisoned: never read out of step.
        assert_eq!(c.decode(b"x").unwrap_err(), ClientError::Poisoned);
        assert!(!c.is_reusable());
    }
    // Repeated equal values are one value.
    let s = one(
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok",
        false,
    );
    assert_eq!(s[1..], [body(b"ok"), end(true)]);
}

#[test]
fn content_length_above_max_body_is_too_large() {
    let mut c = ClientCodec::new(Limits {
        max_body: 10,
        ..Limits::default()
    });
    let mut out = Vec::new();
    c.encode_request(
        &RequestHead {
            method: "GET",
            target: "/",
            headers: &[("Host", "h")],
        },
        BodyKind::Empty,
        &mut out,
    )
    .unwrap();
    let (s, _) = feed(
        &mut c,
        &[b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"],
        false,
    );
    assert_eq!(s, [Seen::Error(ClientError::TooLarge("body size"))]);
}

#[test]
fn close_delimited_body_ends_at_eof() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this, until the end";
    for s in [one("GET", input, true), bytewise(&["GET"], input, true)] {
        assert!(head(200, Framing::UntilClose, false)(&s[0]), "{s:?}");
        assert_eq!(s[1..], [body(b"all of this, until the end"), end(false)]);
    }
    // Without the end of stream, the body is not complete.
    let mut c = codec_after(&["GET"]);
    let (s, _) = feed(&mut c, &[input], false);
    assert_eq!(s.len(), 2);
    assert!(!c.is_idle());
}

#[test]
fn eof_mid_body_is_an_error() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n",
    ] {
        let s = one("GET", input, true);
        assert_eq!(
            s.last(),
            Some(&Seen::Error(ClientError::ClosedMidBody)),
            "{s:?}"
        );
        assert!(!s.iter().any(|e| matches!(e, Seen::End { .. })));
    }
}

#[test]
fn eof_before_a_response() {
    let s = one("GET", b"", true);
    assert_eq!(
        s,
        [Seen::Error(ClientError::ClosedBeforeResponse {
            bytes_received: false
        })]
    );
    let s = one("GET", b"HTTP/1.1 200 OK\r\nContent-", true);
    assert_eq!(
        s,
        [Seen::Error(ClientError::ClosedBeforeResponse {
            bytes_received: true
        })]
    );
    let s = one("GET", b"HTTP/1.1 100 Continue\r\n\r\n", true);
    assert_eq!(
        s,
        [
            Seen::Info(100),
            Seen::Error(ClientError::ClosedBeforeResponse {
                bytes_received: true
            })
        ]
    );
    // An idle connection closed: nothing wrong, and nothing more to do.
    let mut c = ClientCodec::default();
    assert_eq!(c.peer_closed(b"").unwrap().map(|e| e.reusable), None);
    assert_eq!(c.decode(b"").unwrap_err(), ClientError::Closed);
    assert!(!c.is_reusable());
}

#[test]
fn a_response_nobody_asked_for_is_an_error() {
    let mut c = ClientCodec::default();
    assert_eq!(
        c.decode(b"HTTP/1.1 200 OK\r\n\r\n").unwrap_err(),
        ClientError::UnexpectedResponse
    );
    assert_eq!(c.decode(b"").unwrap_err(), ClientError::Poisoned);
    // One response too many after a pipelined pair.
    let input = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    let mut c = codec_after(&["GET", "GET"]);
    let (s, _) = feed(&mut c, &[input], false);
    assert_eq!(
        s.last(),
        Some(&Seen::Error(ClientError::UnexpectedResponse))
    );
    assert_eq!(s.len(), 5);
    // Bytes left at the end of stream with nothing outstanding.
    let mut c = ClientCodec::default();
    assert_eq!(
        c.peer_closed(b"junk").unwrap_err(),
        ClientError::UnexpectedResponse
    );
}

#[test]
fn three_pipelined_responses_in_one_buffer() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none\
HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\
HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n";
    for s in [
        feed(&mut codec_after(&["GET", "HEAD", "GET"]), &[input], false).0,
        bytewise(&["GET", "HEAD", "GET"], input, false),
    ] {
        assert_eq!(s.len(), 8, "{s:?}");
        assert!(head(200, Framing::Length(3), true)(&s[0]));
        assert_eq!(s[1..3], [body(b"one"), end(true)]);
        assert!(head(200, Framing::None, true)(&s[3]));
        assert_eq!(s[4], end(true));
        assert!(head(404, Framing::Chunked, true)(&s[5]));
        assert_eq!(s[6..], [body(b"three"), end(true)]);
    }
    let mut c = codec_after(&["GET", "HEAD", "GET"]);
    let (_, rest) = feed(&mut c, &[input], false);
    assert!(rest.is_empty() && c.is_idle() && c.is_reusable());
}

// ---- keep-alive ----

fn reusable_after(method_headers: &[(&str, &str)], input: &[u8]) -> bool {
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    c.encode_request(
        &RequestHead {
            method: "GET",
            target: "/",
            headers: method_headers,
        },
        BodyKind::Empty,
        &mut out,
    )
    .unwrap();
    let (s, _) = feed(&mut c, &[input], false);
    let Some(Seen::End { reusable, .. }) = s.last() else {
        panic!("{s:?}")
    };
    assert_eq!(*reusable, c.is_reusable());
    *reusable
}

#[test]
fn keep_alive_decisions() {
    let host = &[("Host", "h")][..];
    assert!(reusable_after(
        host,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!reusable_after(
        host,
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!reusable_after(
        host,
        b"HTTP/1.1 200 OK\r\nConnection: foo, CLOSE\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(reusable_after(
        host,
        b"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!reusable_after(
        host,
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(reusable_after(
        host,
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!reusable_after(
        host,
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!reusable_after(
        host,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ));
    // The request said close: its response is the last.
    let close = &[("Host", "h"), ("Connection", "close")][..];
    assert!(!reusable_after(
        close,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    ));
}

#[test]
fn after_a_closing_response_nothing_more_is_sent() {
    let mut c = codec_after(&["GET"]);
    let (s, _) = feed(
        &mut c,
        &[b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"],
        false,
    );
    assert_eq!(s.last(), Some(&end(false)));
    let mut out = Vec::new();
    let req = RequestHead {
        method: "GET",
        target: "/",
        headers: &[("Host", "h")],
    };
    assert_eq!(
        c.encode_request(&req, BodyKind::Empty, &mut out),
        Err(ClientError::NotReusable)
    );
    assert!(out.is_empty());
    assert_eq!(c.peer_closed(b"").unwrap().map(|e| e.reusable), None);
}

#[test]
fn requests_pipelined_behind_a_closing_one_are_reported_unanswered() {
    let mut c = codec_after(&["GET", "GET"]);
    let (s, _) = feed(
        &mut c,
        &[b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"],
        true,
    );
    assert_eq!(
        s.last(),
        Some(&Seen::Error(ClientError::ClosedBeforeResponse {
            bytes_received: false
        }))
    );
}

#[test]
fn idle_lifecycle() {
    let mut c = ClientCodec::default();
    assert!(c.is_idle() && c.is_reusable() && c.in_flight() == 0);
    let mut out = Vec::new();
    let req = RequestHead {
        method: "GET",
        target: "/",
        headers: &[("Host", "h")],
    };
    c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
    assert!(!c.is_idle());
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let d = c.decode(input).unwrap();
    assert_eq!(d.consumed, input.len() - 2);
    assert!(!c.is_idle());
    let d = c.decode(&input[input.len() - 2..]).unwrap();
    assert!(matches!(d.event, Some(ClientEvent::Body(b"ok"))));
    assert!(!c.is_idle());
    let d = c.decode(b"").unwrap();
    assert!(matches!(d.event, Some(ClientEvent::End(_))));
    assert!(c.is_idle() && c.is_reusable());
}

// ---- malformed heads and limits ----

#[test]
fn malformed_heads() {
    for input in [
        &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"HTTP/1.1  200 OK\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        // obs-fold
        b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n",
        // bare CR in a value, in the status line, as a line end
        b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
        b"HTTP/1.1 200 O\rK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\r\n\r\n",
        // space before the colon, no colon, NUL in a value
        b"HTTP/1.1 200 OK\r\nX-A : a\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n",
    ] {
        let mut c = codec_after(&["GET"]);
        let (s, _) = feed(&mut c, &[input], false);
        assert!(
            matches!(s[..], [Seen::Error(ClientError::Malformed(_))]),
            "{:?}: {s:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(c.decode(input).unwrap_err(), ClientError::Poisoned);
    }
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    // RFC 9112 2.2: a recipient MAY recognise a lone LF as a line terminator.
    let s = one("GET", b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx", false);
    assert_eq!(s[1..], [body(b"x"), end(true)]);
}

#[test]
fn head_too_large() {
    let limits = Limits {
        max_header_bytes: 64,
        max_headers: 3,
        ..Limits::default()
    };
    let big = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(100));
    let many = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    let partial = format!("HTTP/1.1 200 OK\r\nX-Big: {}", "a".repeat(100));
    for (input, limit) in [
        (big.as_bytes(), "response head size"),
        (&many[..], "header count"),
        (partial.as_bytes(), "response head size"),
    ] {
        let mut c = ClientCodec::new(limits.clone());
        let mut out = Vec::new();
        c.encode_request(
            &RequestHead {
                method: "GET",
                target: "/",
                headers: &[("Host", "h")],
            },
            BodyKind::Empty,
            &mut out,
        )
        .unwrap();
        let (s, _) = feed(&mut c, &[input], false);
        assert_eq!(s, [Seen::Error(ClientError::TooLarge(limit))]);
    }
}

#[test]
fn chunked_limits() {
    let limits = Limits {
        max_header_bytes: 64,
        max_body: 8,
        ..Limits::default()
    };
    let long_ext = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\n",
        "e".repeat(5000)
    );
    let big_trailer = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: {}\r\n\r\n",
        "t".repeat(100)
    );
    let too_much =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n";
    let bad_trailer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n";
    let bad_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    let until_close = b"HTTP/1.1 200 OK\r\n\r\n0123456789";
    for (input, want) in [
        (
            long_ext.as_bytes(),
            ClientError::Malformed("chunk size line too long"),
        ),
        (
            big_trailer.as_bytes(),
            ClientError::TooLarge("trailer section size"),
        ),
        (&too_much[..], ClientError::TooLarge("body size")),
        (
            &bad_trailer[..],
            ClientError::Malformed("invalid trailer section"),
        ),
        (&bad_size[..], ClientError::Malformed("missing chunk size")),
        (&until_close[..], ClientError::TooLarge("body size")),
    ] {
        let mut c = ClientCodec::new(limits.clone());
        let mut out = Vec::new();
        c.encode_request(
            &RequestHead {
                method: "GET",
                target: "/",
                headers: &[("Host", "h")],
            },
            BodyKind::Empty,
            &mut out,
        )
        .unwrap();
        let (s, _) = feed(&mut c, &[input], false);
        assert_eq!(s.last(), Some(&Seen::Error(want)), "{s:?}");
    }
}

#[test]
fn fields_view_lookup() {
    let mut c = codec_after(&["GET"]);
    let input = b"HTTP/1.1 200 Fine Thanks\r\nContent-Type: text/plain\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n";
    let d = c.decode(input).unwrap();
    let Some(ClientEvent::Head(h)) = d.event else {
        panic!()
    };
    assert_eq!(h.reason(), "Fine Thanks");
    assert_eq!(h.version(), Version::Http11);
    assert_eq!(h.len(), input.len());
    assert_eq!(h.headers().get("x-A"), Some(&b"1"[..]));
    assert_eq!(h.headers().get("content-type"), Some(&b"text/plain"[..]));
    assert_eq!(h.headers().get("missing"), None);
    assert_eq!(h.headers().len(), 4);
}

#[test]
fn an_oversized_head_is_too_large_however_split() {
    // Malformed only past the limit: the verdict must not depend on where the input was
    // cut (found by the `client_response` fuzz target).
    let limits = Limits {
        max_header_bytes: 64,
        ..Limits::default()
    };
    let input = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nBad Name: x\r\n\r\n",
        "a".repeat(60)
    );
    for pieces in [vec![input.as_bytes()], input.as_bytes().chunks(1).collect()] {
        let mut c = ClientCodec::new(limits.clone());
        let mut out = Vec::new();
        let req = RequestHead {
            method: "GET",
            target: "/",
            headers: &[("Host", "h")],
        };
        c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
        let (s, _) = feed(&mut c, &pieces, false);
        assert_eq!(
            s,
            [Seen::Error(ClientError::TooLarge("response head size"))]
        );
    }
}

#[test]
fn a_close_delimited_body_is_cut_at_the_limit_however_split() {
    let limits = Limits {
        max_body: 8,
        ..Limits::default()
    };
    let input = b"HTTP/1.1 200 OK\r\n\r\n0123456789";
    for pieces in [vec![&input[..]], input.chunks(3).collect()] {
        let mut c = ClientCodec::new(limits.clone());
        let mut out = Vec::new();
        let req = RequestHead {
            method: "GET",
            target: "/",
            headers: &[("Host", "h")],
        };
        c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
        let (s, _) = feed(&mut c, &pieces, false);
        assert_eq!(
            s[1..],
            [
                body(b"01234567"),
                Seen::Error(ClientError::TooLarge("body size"))
            ]
        );
    }
}

#[test]
fn a_chunked_request_ends_with_its_allowed_trailers_and_reads_back() {
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    let req = RequestHead {
        method: "POST",
        target: "/up",
        headers: &[("Host", "h")],
    };
    c.encode_request(&req, BodyKind::Chunked, &mut out).unwrap();
    c.encode_body(b"hello", &mut out).unwrap();
    let trailers = [("X-Sum", "5"), ("Content-Length", "5"), ("Host", "x")];
    c.finish_body_with_trailers(&trailers, &mut out).unwrap();
    assert!(
        out.ends_with(b"5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n"),
        "{out:?}"
    );
    let body_at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut dec = crate::http1::body::ChunkedDecoder::new(1 << 20, 1024);
    dec.decode(&out[body_at..], &mut |_| {}).unwrap();
    assert!(dec.is_done());
    let got: Vec<_> = dec.trailers().iter().collect();
    assert_eq!(got, [("X-Sum", &b"5"[..])]);
}

#[test]
fn a_sized_request_body_drops_trailers() {
    let mut c = ClientCodec::default();
    let mut out = Vec::new();
    let req = RequestHead {
        method: "PUT",
        target: "/f",
        headers: &[("Host", "h")],
    };
    c.encode_request(&req, BodyKind::Length(2), &mut out)
        .unwrap();
    c.encode_body(b"hi", &mut out).unwrap();
    c.finish_body_with_trailers(&[("X-Sum", "2")], &mut out)
        .unwrap();
    assert!(out.ends_with(b"\r\n\r\nhi"), "{out:?}");
}
