//! Unit tests of request-head parsing and the RFC 9112 framing rules.

use super::*;

fn parse(buf: &[u8]) -> Result<Option<(BodyKind, bool, bool, usize)>, HeadError> {
    parse_with(buf, &Limits::default())
}

fn parse_with(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(BodyKind, bool, bool, usize)>, HeadError> {
    let mut hb = header_buf();
    parse_head(buf, &mut hb, limits)
        .map(|o| o.map(|h| (h.body(), h.keep_alive(), h.expect_continue(), h.len())))
}

#[test]
fn simple_get() {
    let buf = b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nextra";
    let mut hb = header_buf();
    let h = parse_head(buf, &mut hb, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(h.method(), "GET");
    assert_eq!(h.target(), "/a?b");
    assert_eq!(h.version(), Version::Http11);
    assert_eq!(h.len(), buf.len() - 5);
    assert_eq!(h.body(), BodyKind::Empty);
    assert!(h.keep_alive());
    assert_eq!(h.headers().len(), 1);
}

#[test]
fn partial_is_none() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
    assert_eq!(parse(b"GE"), Ok(None));
    assert_eq!(parse(b""), Ok(None));
}

#[test]
fn leading_empty_lines_ignored() {
    assert!(parse(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap()
        .is_some());
}

#[test]
fn http10_keep_alive_rules() {
    let r = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!r.1, "1.0 defaults to close");
    let r = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(r.1);
    let r = parse(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!r.1);
}

#[test]
fn host_rules() {
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\n\r\n"),
        Err(HeadError::BadRequest("missing Host"))
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        Err(HeadError::BadRequest("repeated Host"))
    );
    assert!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
}

#[test]
fn obs_fold_rejected() {
    let r = parse(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n");
    assert_eq!(r.map_err(|e| e.status()), Err(400));
}

#[test]
fn targets() {
    assert!(parse(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap()
        .is_some());
    assert_eq!(
        parse(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.status()),
        Err(400)
    );
    assert!(parse(b"GET http://x/p?q HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap()
        .is_some());
    assert_eq!(
        parse(b"GET x/p HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.status()),
        Err(400)
    );
    assert_eq!(
        parse(b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.status()),
        Err(501)
    );
    assert_eq!(absolute_parts("http://x/p?q"), Some("/p?q"));
    assert_eq!(absolute_parts("http://x"), Some("/"));
    assert_eq!(absolute_parts("http://x?q"), Some("/"));
    assert_eq!(absolute_parts("http://"), None);
    assert_eq!(absolute_parts("1http://x/"), None);
}

#[test]
fn versions() {
    for v in ["HTTP/2.0", "HTTP/3.7", "HTTP/1.2", "HTTP/0.9"] {
        let req = format!("GET / {v}\r\nHost: x\r\n\r\n");
        assert_eq!(
            parse(req.as_bytes()),
            Err(HeadError::VersionUnsupported),
            "{v}"
        );
    }
    for v in ["HTTP/2", "HTTP/1.10", "FOO/1.1", "http/1.1"] {
        let req = format!("GET / {v}\r\nHost: x\r\n\r\n");
        assert_eq!(
            parse(req.as_bytes()).map_err(|e| e.status()),
            Err(400),
            "{v}"
        );
    }
}

#[test]
fn content_length_rules() {
    let ok = |v: &str| parse(format!("POST / HTTP/1.1\r\nHost: x\r\n{v}\r\n\r\n").as_bytes());
    assert_eq!(
        ok("Content-Length: 5").unwrap().unwrap().0,
        BodyKind::Length(5)
    );
    assert_eq!(ok("Content-Length: 0").unwrap().unwrap().0, BodyKind::Empty);
    assert_eq!(
        ok("Content-Length: 5, 5").unwrap().unwrap().0,
        BodyKind::Length(5)
    );
    assert_eq!(
        ok("Content-Length: 5\r\nContent-Length: 5")
            .unwrap()
            .unwrap()
            .0,
        BodyKind::Length(5)
    );
    for bad in [
        "Content-Length: 5, 6",
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: +5",
        "Content-Length: -1",
        "Content-Length: 0x5",
        "Content-Length: 5 5",
        "Content-Length: ",
        "Content-Length: 5,",
        "Content-Length: 99999999999999999999999",
    ] {
        assert!(
            matches!(ok(bad), Err(HeadError::Smuggling(_))),
            "{bad:?} -> {:?}",
            ok(bad)
        );
    }
    assert_eq!(ok("Content-Length: 1048577"), Err(HeadError::BodyTooLarge));
}

#[test]
fn transfer_encoding_rules() {
    let te = |v: &str| parse(format!("POST / HTTP/1.1\r\nHost: x\r\n{v}\r\n\r\n").as_bytes());
    assert_eq!(
        te("Transfer-Encoding: chunked").unwrap().unwrap().0,
        BodyKind::Chunked
    );
    assert_eq!(
        te("Transfer-Encoding: CHUNKED").unwrap().unwrap().0,
        BodyKind::Chunked
    );
    for smuggle in [
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked, gzip",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: xchunked",
        "Transfer-Encoding: chunked;a=b",
        "Transfer-Encoding: ",
    ] {
        assert!(
            matches!(te(smuggle), Err(HeadError::Smuggling(_))),
            "{smuggle:?} -> {:?}",
            te(smuggle)
        );
    }
    for unknown in [
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: foo, chunked",
    ] {
        assert_eq!(te(unknown).map_err(|e| e.status()), Err(501), "{unknown}");
    }
    // Whitespace before the colon is not a header name: 400, never "ignored".
    assert_eq!(
        te("Transfer-Encoding : chunked").map_err(|e| e.status()),
        Err(400)
    );
    let r = parse(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(matches!(r, Err(HeadError::Smuggling(_))));
}

#[test]
fn expect_continue() {
    let r =
        parse(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
    assert!(r.2);
    let r = parse(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!r.2, "no body, nothing to continue");
    let r = parse(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!r.2, "ignored in 1.0");
}

#[test]
fn limits_enforced() {
    let limits = Limits {
        max_request_line: 32,
        max_header_bytes: 128,
        max_headers: 4,
        ..Limits::default()
    };
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(40));
    assert_eq!(
        parse_with(long.as_bytes(), &limits),
        Err(HeadError::UriTooLong)
    );
    // Incomplete but already too long: rejected without waiting for the rest.
    assert_eq!(
        parse_with(&long.as_bytes()[..36], &limits),
        Err(HeadError::UriTooLong)
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "v".repeat(120)
    );
    assert_eq!(
        parse_with(big.as_bytes(), &limits),
        Err(HeadError::HeaderTooLarge)
    );
    assert_eq!(
        parse_with(&big.as_bytes()[..130], &limits),
        Err(HeadError::HeaderTooLarge)
    );
    let many = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
    assert_eq!(
        parse_with(many.as_bytes(), &limits),
        Err(HeadError::HeaderTooLarge)
    );
    let four = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\n\r\n";
    assert!(parse_with(four.as_bytes(), &limits).unwrap().is_some());
}

#[test]
fn garbage_never_panics() {
    for buf in [
        &b"\x00\x01\x02"[..],
        b"GET",
        b"GET / HTTP/1.1\r\n\x00: x\r\n\r\n",
        b"\r\n\r\n\r\n",
        b" / HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\rHost: x\r\n\r\n",
    ] {
        let _ = parse(buf);
    }
}
