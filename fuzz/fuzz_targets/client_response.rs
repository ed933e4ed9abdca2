//! The client role's response decoder: never panics, never consumes more than it was
//! given, and gives the same events (and the same error) whether the response arrives
//! whole or split at arbitrary bytes. The first input byte picks the request (GET or
//! HEAD, then a pipelined second one) and tight or default limits; the next two pick the
//! split points; the rest is the server's output, followed by the end of stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http1::client::{ClientCodec, ClientError, ClientEvent, RequestHead};
use ringmaster_protocols::http1::head::BodyKind;
use ringmaster_protocols::http1::Limits;

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Head(u16, bool, Vec<(String, Vec<u8>)>),
    Info(u16),
    Upgraded(u16),
    Body(Vec<u8>),
    End(Vec<(String, Vec<u8>)>, bool),
    Error(ClientError),
}

fn codec(mode: u8) -> ClientCodec {
    let limits = if mode & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_header_bytes: 256,
            max_headers: 4,
            max_body: 1024,
            ..Limits::default()
        }
    };
    let mut c = ClientCodec::new(limits);
    let mut out = Vec::new();
    let first = if mode & 2 == 0 { "GET" } else { "HEAD" };
    let upgrade = [("Host", "example.com"), ("Upgrade", "websocket")];
    let headers = if mode & 8 == 0 {
        &upgrade[..1]
    } else {
        &upgrade[..]
    };
    let req = RequestHead {
        method: first,
        target: "/",
        headers,
    };
    c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
    if mode & 4 != 0 {
        let req = RequestHead {
            method: "GET",
            target: "/2",
            headers,
        };
        c.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
    }
    c
}

fn run(mode: u8, pieces: &[&[u8]]) -> (Vec<Seen>, bool, bool) {
    let mut c = codec(mode);
    let mut seen: Vec<Seen> = Vec::new();
    let mut buf = Vec::new();
    let push = |seen: &mut Vec<Seen>, s: Seen| {
        if let (Some(Seen::Body(prev)), Seen::Body(more)) = (seen.last_mut(), &s) {
            prev.extend_from_slice(more);
        } else {
            seen.push(s);
        }
    };
    'feed: for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let d = match c.decode(&buf) {
                Ok(d) => d,
                Err(e) => {
                    seen.push(Seen::Error(e));
                    break 'feed;
                }
            };
            assert!(d.consumed <= buf.len());
            let fields = |f: ringmaster_protocols::http1::client::FieldsView<'_>| {
                f.iter()
                    .map(|(n, v)| (n.to_string(), v.to_vec()))
                    .collect::<Vec<_>>()
            };
            let s = match d.event {
                None => None,
                Some(ClientEvent::Head(h)) => {
                    Some(Seen::Head(h.status(), h.keep_alive(), fields(h.headers())))
                }
                Some(ClientEvent::Informational(h)) => Some(Seen::Info(h.status())),
                Some(ClientEvent::Upgraded(h)) => Some(Seen::Upgraded(h.status())),
                Some(ClientEvent::Body(b)) => {
                    assert!(!b.is_empty());
                    Some(Seen::Body(b.to_vec()))
                }
                Some(ClientEvent::End(e)) => Some(Seen::End(fields(e.trailers), e.reusable)),
            };
            let n = d.consumed;
            buf.drain(..n);
            match s {
                Some(s) => push(&mut seen, s),
                None => break,
            }
        }
    }
    if !matches!(seen.last(), Some(Seen::Error(_))) {
        match c.peer_closed(&buf) {
            Ok(Some(e)) => push(&mut seen, Seen::End(vec![], e.reusable)),
            Ok(None) => {}
            Err(e) => seen.push(Seen::Error(e)),
        }
    }
    // The codec refuses further use after the end of stream or an error.
    assert!(c.decode(b"x").is_err());
    (seen, c.is_idle(), c.is_reusable())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((cuts, wire)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let whole = run(mode, &[wire]);
    let a = usize::from(cuts[0]) % (wire.len() + 1);
    let b = usize::from(cuts[1]) % (wire.len() + 1);
    let (a, b) = (a.min(b), a.max(b));
    let split = run(mode, &[&wire[..a], &wire[a..b], &wire[b..]]);
    assert_eq!(whole, split);
    if mode & 16 != 0 {
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(whole, run(mode, &bytes));
    }
});
