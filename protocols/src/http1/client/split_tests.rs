//! Property tests: a sequence of responses decodes to the same events whatever byte
//! boundaries it arrives at (one byte at a time, or any random chunking), and garbage
//! gives the same result (the same events, then the same error) whole or split.

use proptest::prelude::*;

use super::tests::{bytewise, codec_after, feed, Seen};

/// One generated response and the method of the request it answers.
#[derive(Debug, Clone)]
struct Gen {
    method: &'static str,
    wire: Vec<u8>,
    /// Transfer-Encoding with Content-Length: the connection ends after this one.
    closes: bool,
}

fn response() -> impl Strategy<Value = Gen> {
    let method = prop_oneof![Just("GET"), Just("HEAD")];
    let status = prop_oneof![Just(200u16), Just(204), Just(304), Just(404), Just(500)];
    // 0: Content-Length, 1: chunked, 2: TE and CL (chunked, then close).
    let framing = 0u8..3;
    let headers = prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,20}"), 0..4);
    let body = prop::collection::vec(any::<u8>(), 0..200);
    let cuts = prop::collection::vec(1usize..40, 0..6);
    let interim = any::<bool>();
    let ext = any::<bool>();
    let trailer = any::<bool>();
    (
        method, status, framing, headers, body, cuts, interim, ext, trailer,
    )
        .prop_map(
            |(method, status, framing, headers, body, cuts, interim, ext, trailer)| {
                let mut wire = Vec::new();
                if interim {
                    wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                wire.extend_from_slice(format!("HTTP/1.1 {status} Reason\r\n").as_bytes());
                for (n, v) in headers {
                    wire.extend_from_slice(format!("X-{n}: {}\r\n", v.trim()).as_bytes());
                }
                let no_body = method == "HEAD" || status == 204 || status == 304;
                if framing == 0 {
                    wire.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                    );
                    if !no_body {
                        wire.extend_from_slice(&body);
                    }
                    return Gen {
                        method,
                        wire,
                        closes: framing == 2,
                    };
                }
                if framing == 2 {
                    wire.extend_from_slice(b"Content-Length: 7\r\n");
                }
                wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                if no_body {
                    return Gen {
                        method,
                        wire,
                        closes: framing == 2,
                    };
                }
                let mut rest = &body[..];
                let mut cuts = cuts.into_iter();
                while !rest.is_empty() {
                    let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
                    let (c, r) = rest.split_at(n);
                    wire.extend_from_slice(format!("{n:X}").as_bytes());
                    if ext {
                        wire.extend_from_slice(b";name=\"v\"");
                    }
                    wire.extend_from_slice(b"\r\n");
                    wire.extend_from_slice(c);
                    wire.extend_from_slice(b"\r\n");
                    rest = r;
                }
                wire.extend_from_slice(b"0\r\n");
                if trailer {
                    wire.extend_from_slice(b"X-Trailer: yes\r\n");
                }
                wire.extend_from_slice(b"\r\n");
                Gen {
                    method,
                    wire,
                    closes: framing == 2,
                }
            },
        )
}

/// Splits `input` at the given cut points (taken modulo its length).
fn split<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut prev = 0;
    for a in at {
        pieces.push(&input[prev..a]);
        prev = a;
    }
    pieces.push(&input[prev..]);
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn responses_decode_the_same_however_split(
        responses in prop::collection::vec(response(), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        // Nothing is read after a response that closes the connection.
        let keep = responses.iter().position(|r| r.closes).map_or(responses.len(), |i| i + 1);
        let responses = &responses[..keep];
        let methods: Vec<&str> = responses.iter().map(|r| r.method).collect();
        let wire: Vec<u8> = responses.iter().flat_map(|r| r.wire.clone()).collect();
        let mut whole_codec = codec_after(&methods);
        let (whole, rest) = feed(&mut whole_codec, &[&wire], false);
        prop_assert!(!whole.iter().any(|s| matches!(s, Seen::Error(_))), "{whole:?}");
        let ends = whole.iter().filter(|s| matches!(s, Seen::End { .. })).count();
        prop_assert_eq!(ends, methods.len());
        prop_assert!(rest.is_empty());
        let mut split_codec = codec_after(&methods);
        let (pieces, _) = feed(&mut split_codec, &split(&wire, &cuts), false);
        prop_assert_eq!(&whole, &pieces);
        prop_assert_eq!(&whole, &bytewise(&methods, &wire, false));
        prop_assert_eq!(whole_codec.is_idle(), split_codec.is_idle());
        prop_assert_eq!(whole_codec.is_reusable(), split_codec.is_reusable());
    }

    #[test]
    fn garbage_gives_the_same_result_whole_or_split(
        head in prop_oneof![
            Just(&b"HTTP/1.1 200 OK\r\n"[..]),
            Just(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..]),
            Just(&b""[..]),
        ],
        junk in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        eof in any::<bool>(),
    ) {
        let mut wire = head.to_vec();
        wire.extend_from_slice(&junk);
        let whole = feed(&mut codec_after(&["GET"]), &[&wire], eof).0;
        let pieces = feed(&mut codec_after(&["GET"]), &split(&wire, &cuts), eof).0;
        prop_assert_eq!(&whole, &pieces);
    }
}
