//! Every frame type and every single-frame rule of RFC 9113, with the section each
//! comes from, and properties: encoders round-trip, arbitrary bytes never panic.

use super::*;
use crate::http2::error::{ErrorCode, FrameError};
use proptest::prelude::*;

const MAX: u32 = DEFAULT_MAX_FRAME_SIZE;

fn raw(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_frame_header(&mut v, payload.len(), kind, flags, stream_id);
    v.extend_from_slice(payload);
    v
}

fn one(buf: &[u8]) -> Result<Frame<'_>, FrameError> {
    decode(buf, MAX).map(|f| {
        let (frame, n) = f.expect("complete frame");
        assert_eq!(n, buf.len());
        frame
    })
}

fn conn_err(buf: &[u8]) -> ErrorCode {
    match one(buf) {
        Err(FrameError::Connection { code, .. }) => code,
        other => panic!("expected a connection error, got {other:?}"),
    }
}

fn stream_err(buf: &[u8]) -> (u32, ErrorCode, usize) {
    match one(buf) {
        Err(FrameError::Stream {
            stream_id,
            code,
            frame_len,
            ..
        }) => (stream_id, code, frame_len),
        other => panic!("expected a stream error, got {other:?}"),
    }
}

/// Section 4.1: a frame is incomplete until all of its payload is here.
#[test]
fn partial_frames_need_more() {
    let f = raw(kind::DATA, 0, 1, b"hello");
    for cut in 0..f.len() {
        assert_eq!(decode(&f[..cut], MAX), Ok(None), "{cut}");
    }
    let mut two = f.clone();
    two.extend_from_slice(&f);
    let (_, n) = decode(&two, MAX).unwrap().unwrap();
    assert_eq!(n, f.len());
}

/// Section 4.1: the reserved bit of the stream id is ignored.
#[test]
fn reserved_bit_is_ignored() {
    let mut f = raw(kind::DATA, 0, 3, b"x");
    f[5] |= 0x80;
    assert_eq!(one(&f).unwrap().stream_id(), 3);
}

/// Section 4.2: a frame over SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR, known from
/// its header alone; one at the limit is fine.
#[test]
fn oversized_frame_is_rejected_from_its_header() {
    let f = raw(kind::DATA, 0, 1, &vec![0; MAX as usize + 1]);
    assert_eq!(
        decode(&f[..9], MAX).unwrap_err().code(),
        ErrorCode::FrameSizeError
    );
    assert!(decode(&f[..9], MAX).unwrap_err().is_connection_error());
    let ok = raw(kind::DATA, 0, 1, &vec![0; MAX as usize]);
    assert!(one(&ok).is_ok());
    // A larger advertised limit admits it.
    assert!(decode(&f, MAX + 1).unwrap().is_some());
}

/// Section 6.1: DATA, its padding (which counts for flow control), END_STREAM, unknown
/// flags ignored; on stream 0 a PROTOCOL_ERROR.
#[test]
fn data() {
    let f = raw(kind::DATA, flags::END_STREAM | 0x40, 1, b"abc");
    assert_eq!(
        one(&f).unwrap(),
        Frame::Data(Data {
            stream_id: 1,
            end_stream: true,
            data: b"abc",
            flow_len: 3
        })
    );
    let f = raw(kind::DATA, flags::PADDED, 1, b"\x02abcXX");
    assert_eq!(
        one(&f).unwrap(),
        Frame::Data(Data {
            stream_id: 1,
            end_stream: false,
            data: b"abc",
            flow_len: 6
        })
    );
    assert_eq!(
        conn_err(&raw(kind::DATA, 0, 0, b"x")),
        ErrorCode::ProtocolError
    );
}

/// Sections 6.1, 6.2, 6.6: padding as long as the payload or longer is a PROTOCOL_ERROR;
/// a PADDED frame too short for its pad length is a FRAME_SIZE_ERROR.
#[test]
fn padding_rules() {
    // Pad length 0 with nothing else: empty data, fine.
    assert!(one(&raw(kind::DATA, flags::PADDED, 1, b"\x00")).is_ok());
    // Pad length 3 with 3 bytes after it: empty data, fine.
    assert!(one(&raw(kind::DATA, flags::PADDED, 1, b"\x03xyz")).is_ok());
    for k in [kind::DATA, kind::HEADERS, kind::PUSH_PROMISE] {
        assert_eq!(
            conn_err(&raw(k, flags::PADDED, 1, b"\x04xyz")),
            ErrorCode::ProtocolError
        );
        assert_eq!(
            conn_err(&raw(k, flags::PADDED, 1, b"")),
            ErrorCode::FrameSizeError
        );
    }
}

/// Section 6.2: HEADERS with and without the PRIORITY fields, padded; on stream 0 a
/// PROTOCOL_ERROR; too short for its priority a FRAME_SIZE_ERROR; a self-dependency
/// (section 5.3.1) a PROTOCOL_ERROR.
#[test]
fn headers() {
    let f = raw(
        kind::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        1,
        b"\x82\x86",
    );
    assert_eq!(
        one(&f).unwrap(),
        Frame::Headers(Headers {
            stream_id: 1,
            end_stream: true,
            end_headers: true,
            priority: None,
            block: b"\x82\x86"
        })
    );
    let f = raw(
        kind::HEADERS,
        flags::PRIORITY | flags::PADDED,
        5,
        b"\x01\x80\x00\x00\x03\x0f\x82X",
    );
    assert_eq!(
        one(&f).unwrap(),
        Frame::Headers(Headers {
            stream_id: 5,
            end_stream: false,
            end_headers: false,
            priority: Some(Priority {
                dependency: 3,
                exclusive: true,
                weight: 15
            }),
            block: b"\x82"
        })
    );
    assert_eq!(
        conn_err(&raw(kind::HEADERS, 0, 0, b"\x82")),
        ErrorCode::ProtocolError
    );
    assert_eq!(
        conn_err(&raw(kind::HEADERS, flags::PRIORITY, 1, b"\0\0\0")),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_err(&raw(
            kind::HEADERS,
            flags::PRIORITY,
            1,
            b"\0\0\0\x01\x10\x82"
        )),
        ErrorCode::ProtocolError
    );
}

/// Section 6.3: PRIORITY is parsed and returned to be ignored; a length other than 5
/// is a *stream* FRAME_SIZE_ERROR, a self-dependency a stream PROTOCOL_ERROR, stream 0
/// a connection PROTOCOL_ERROR.
#[test]
fn priority() {
    let f = raw(kind::PRIORITY, 0, 3, b"\0\0\0\x01\x20");
    assert_eq!(
        one(&f).unwrap(),
        Frame::Priority {
            stream_id: 3,
            priority: Priority {
                dependency: 1,
                exclusive: false,
                weight: 0x20
            }
        }
    );
    let f = raw(kind::PRIORITY, 0, 3, b"\0\0\0\x01");
    assert_eq!(stream_err(&f), (3, ErrorCode::FrameSizeError, f.len()));
    let f = raw(kind::PRIORITY, 0, 3, b"\0\0\0\x03\x20");
    assert_eq!(stream_err(&f), (3, ErrorCode::ProtocolError, f.len()));
    assert_eq!(
        conn_err(&raw(kind::PRIORITY, 0, 0, b"\0\0\0\x01\x20")),
        ErrorCode::ProtocolError
    );
}

/// Section 6.4: RST_STREAM is 4 bytes (else FRAME_SIZE_ERROR), never on stream 0;
/// unknown codes are kept (section 7).
#[test]
fn rst_stream() {
    let f = raw(kind::RST_STREAM, 0, 7, &8u32.to_be_bytes());
    assert_eq!(
        one(&f).unwrap(),
        Frame::RstStream {
            stream_id: 7,
            code: ErrorCode::Cancel
        }
    );
    let f = raw(kind::RST_STREAM, 0, 7, &0x77u32.to_be_bytes());
    assert!(matches!(
        one(&f).unwrap(),
        Frame::RstStream {
            code: ErrorCode::Unknown(0x77),
            ..
        }
    ));
    assert_eq!(
        conn_err(&raw(kind::RST_STREAM, 0, 7, b"\0\0\0")),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_err(&raw(kind::RST_STREAM, 0, 0, b"\0\0\0\0")),
        ErrorCode::ProtocolError
    );
}

fn param(id: u16, value: u32) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&value.to_be_bytes());
    v
}

/// Sections 6.5 and 6.5.2: parameters parsed in order, unknown ones ignored; ACK with a
/// payload and a length not a multiple of 6 are FRAME_SIZE_ERRORs; on a stream a
/// PROTOCOL_ERROR; every range rule with its error code.
#[test]
fn settings() {
    let mut p = param(settings::id::MAX_CONCURRENT_STREAMS, 100);
    p.extend(param(0x99, 7));
    p.extend(param(settings::id::INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE));
    p.extend(param(settings::id::MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE));
    p.extend(param(settings::id::ENABLE_PUSH, 0));
    p.extend(param(settings::id::HEADER_TABLE_SIZE, 0));
    p.extend(param(settings::id::MAX_HEADER_LIST_SIZE, 8192));
    let f = raw(kind::SETTINGS, 0, 0, &p);
    let Frame::Settings(s) = one(&f).unwrap() else {
        panic!("not SETTINGS")
    };
    assert!(!s.ack);
    let got: Vec<Setting> = s.iter().collect();
    assert_eq!(
        got,
        vec![
            Setting::MaxConcurrentStreams(100),
            Setting::InitialWindowSize(MAX_WINDOW_SIZE),
            Setting::MaxFrameSize(MAX_MAX_FRAME_SIZE),
            Setting::EnablePush(false),
            Setting::HeaderTableSize(0),
            Setting::MaxHeaderListSize(8192),
        ]
    );
    let mut values = Settings::default();
    got.into_iter().for_each(|s| values.apply(s));
    assert_eq!(values.max_concurrent_streams, Some(100));
    assert_eq!(values.max_frame_size, MAX_MAX_FRAME_SIZE);
    assert!(!values.enable_push);

    let ack = raw(kind::SETTINGS, flags::ACK, 0, b"");
    assert!(matches!(
        one(&ack).unwrap(),
        Frame::Settings(SettingsFrame { ack: true, .. })
    ));
    assert_eq!(
        conn_err(&raw(kind::SETTINGS, flags::ACK, 0, &param(1, 1))),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_err(&raw(kind::SETTINGS, 0, 0, &[0; 5])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_err(&raw(kind::SETTINGS, 0, 1, &param(1, 1))),
        ErrorCode::ProtocolError
    );
    for (id, value, code) in [
        (settings::id::ENABLE_PUSH, 2, ErrorCode::ProtocolError),
        (
            settings::id::INITIAL_WINDOW_SIZE,
            1 << 31,
            ErrorCode::FlowControlError,
        ),
        (
            settings::id::MAX_FRAME_SIZE,
            DEFAULT_MAX_FRAME_SIZE - 1,
            ErrorCode::ProtocolError,
        ),
        (
            settings::id::MAX_FRAME_SIZE,
            MAX_MAX_FRAME_SIZE + 1,
            ErrorCode::ProtocolError,
        ),
    ] {
        assert_eq!(
            conn_err(&raw(kind::SETTINGS, 0, 0, &param(id, value))),
            code,
            "{id} {value}"
        );
    }
}

/// Section 6.6: PUSH_PROMISE is parsed (a server answers it with PROTOCOL_ERROR, section
/// 8.4); too short for the promised id a FRAME_SIZE_ERROR.
#[test]
fn push_promise() {
    let f = raw(
        kind::PUSH_PROMISE,
        flags::END_HEADERS,
        1,
        b"\x80\0\0\x02\x82",
    );
    assert_eq!(
        one(&f).unwrap(),
        Frame::PushPromise(PushPromise {
            stream_id: 1,
            end_headers: true,
            promised_stream_id: 2,
            block: b"\x82"
        })
    );
    assert_eq!(
        conn_err(&raw(kind::PUSH_PROMISE, 0, 1, b"\0\0")),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_err(&raw(kind::PUSH_PROMISE, 0, 0, b"\0\0\0\x02")),
        ErrorCode::ProtocolError
    );
}

/// Section 6.7: PING is 8 bytes on stream 0, with or without ACK.
#[test]
fn ping() {
    let f = raw(kind::PING, flags::ACK, 0, b"12345678");
    assert_eq!(
        one(&f).unwrap(),
        Frame::Ping {
            ack: true,
            payload: *b"12345678"
        }
    );
    assert_eq!(
        conn_err(&raw(kind::PING, 0, 0, b"1234567")),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_err(&raw(kind::PING, 0, 0, b"123456789")),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_err(&raw(kind::PING, 0, 1, b"12345678")),
        ErrorCode::ProtocolError
    );
}

/// Section 6.8: GOAWAY with last stream id (reserved bit ignored), code and debug data;
/// shorter than 8 a FRAME_SIZE_ERROR; on a stream a PROTOCOL_ERROR.
#[test]
fn goaway() {
    let f = raw(kind::GOAWAY, 0, 0, b"\x80\0\0\x05\0\0\0\x0bcalm down");
    assert_eq!(
        one(&f).unwrap(),
        Frame::GoAway(GoAway {
            last_stream_id: 5,
            code: ErrorCode::EnhanceYourCalm,
            debug_data: b"calm down"
        })
    );
    assert_eq!(
        conn_err(&raw(kind::GOAWAY, 0, 0, b"\0\0\0\x05\0\0\0")),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_err(&raw(kind::GOAWAY, 0, 1, &[0; 8])),
        ErrorCode::ProtocolError
    );
}

/// Section 6.9: WINDOW_UPDATE is 4 bytes (reserved bit ignored); an increment of 0 is a
/// stream error on a stream and a connection error on stream 0.
#[test]
fn window_update() {
    let f = raw(kind::WINDOW_UPDATE, 0, 0, b"\x80\0\x01\0");
    assert_eq!(
        one(&f).unwrap(),
        Frame::WindowUpdate {
            stream_id: 0,
            increment: 256
        }
    );
    let f = raw(kind::WINDOW_UPDATE, 0, 9, b"\0\0\0\0");
    assert_eq!(stream_err(&f), (9, ErrorCode::ProtocolError, f.len()));
    assert_eq!(
        conn_err(&raw(kind::WINDOW_UPDATE, 0, 0, b"\x80\0\0\0")),
        ErrorCode::ProtocolError
    );
    assert_eq!(
        conn_err(&raw(kind::WINDOW_UPDATE, 0, 1, b"\0\0\x01")),
        ErrorCode::FrameSizeError
    );
}

/// Section 6.10: CONTINUATION carries a fragment; on stream 0 a PROTOCOL_ERROR.
#[test]
fn continuation() {
    let f = raw(kind::CONTINUATION, flags::END_HEADERS, 1, b"\x84");
    assert_eq!(
        one(&f).unwrap(),
        Frame::Continuation {
            stream_id: 1,
            end_headers: true,
            block: b"\x84"
        }
    );
    assert_eq!(
        conn_err(&raw(kind::CONTINUATION, 0, 0, b"\x84")),
        ErrorCode::ProtocolError
    );
}

/// Section 4.1 / 5.5: an unknown frame type is returned (to be ignored) and consumed.
#[test]
fn unknown_type_is_returned_and_consumed() {
    let f = raw(0xfa, 0xff, 3, b"whatever");
    assert_eq!(
        one(&f).unwrap(),
        Frame::Unknown {
            kind: 0xfa,
            stream_id: 3
        }
    );
}

/// Section 6.10: a field block larger than the peer's max frame size goes out as
/// HEADERS then CONTINUATION frames, END_HEADERS on the last only.
#[test]
fn headers_split_into_continuations() {
    let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let mut out = Vec::new();
    encode_headers(&mut out, 1, &block, true, MAX);
    let mut rest = &out[..];
    let mut joined = Vec::new();
    let mut kinds = Vec::new();
    while let Some((f, n)) = decode(rest, MAX).unwrap() {
        match f {
            Frame::Headers(h) => {
                assert!(h.end_stream && !h.end_headers);
                kinds.push("H");
                joined.extend_from_slice(h.block);
            }
            Frame::Continuation {
                end_headers, block, ..
            } => {
                kinds.push(if end_headers { "C$" } else { "C" });
                joined.extend_from_slice(block);
            }
            other => panic!("{other:?}"),
        }
        rest = &rest[n..];
    }
    assert_eq!(kinds, ["H", "C", "C$"]);
    assert_eq!(joined, block);
    // A small block is a single HEADERS with END_HEADERS; an empty one too.
    for b in [&b"\x88"[..], b""] {
        let mut out = Vec::new();
        encode_headers(&mut out, 3, b, false, MAX);
        let Frame::Headers(h) = one(&out).unwrap() else {
            panic!()
        };
        assert!(h.end_headers && !h.end_stream);
        assert_eq!(h.block, b);
    }
}

/// Every server encoder produces what the decoder reads back.
#[test]
fn server_encoders_round_trip() {
    let mut out = Vec::new();
    encode_settings(
        &mut out,
        &[
            Setting::MaxConcurrentStreams(100),
            Setting::InitialWindowSize(1 << 20),
        ],
    );
    let Frame::Settings(s) = one(&out).unwrap() else {
        panic!()
    };
    assert_eq!(
        s.iter().collect::<Vec<_>>(),
        [
            Setting::MaxConcurrentStreams(100),
            Setting::InitialWindowSize(1 << 20)
        ]
    );
    let cases: Vec<(Vec<u8>, Frame<'static>)> = vec![
        (
            {
                let mut o = Vec::new();
                encode_settings_ack(&mut o);
                o
            },
            Frame::Settings(SettingsFrame::parse(true, b"").unwrap()),
        ),
        (
            {
                let mut o = Vec::new();
                encode_ping_ack(&mut o, *b"pingpong");
                o
            },
            Frame::Ping {
                ack: true,
                payload: *b"pingpong",
            },
        ),
        (
            {
                let mut o = Vec::new();
                encode_ping(&mut o, *b"pingpong");
                o
            },
            Frame::Ping {
                ack: false,
                payload: *b"pingpong",
            },
        ),
        (
            {
                let mut o = Vec::new();
                encode_goaway(&mut o, 7, ErrorCode::NoError, b"bye");
                o
            },
            Frame::GoAway(GoAway {
                last_stream_id: 7,
                code: ErrorCode::NoError,
                debug_data: b"bye",
            }),
        ),
        (
            {
                let mut o = Vec::new();
                encode_rst_stream(&mut o, 9, ErrorCode::RefusedStream);
                o
            },
            Frame::RstStream {
                stream_id: 9,
                code: ErrorCode::RefusedStream,
            },
        ),
        (
            {
                let mut o = Vec::new();
                encode_window_update(&mut o, 0, MAX_WINDOW_SIZE);
                o
            },
            Frame::WindowUpdate {
                stream_id: 0,
                increment: MAX_WINDOW_SIZE,
            },
        ),
        (
            {
                let mut o = Vec::new();
                encode_data(&mut o, 5, b"body", true);
                o
            },
            Frame::Data(Data {
                stream_id: 5,
                end_stream: true,
                data: b"body",
                flow_len: 4,
            }),
        ),
    ];
    for (bytes, want) in &cases {
        assert_eq!(&one(bytes).unwrap(), want);
    }
}

fn server_frame() -> impl Strategy<Value = (Vec<u8>, u32, bool)> {
    // (payload or debug data, stream id or other number, a flag), encoded by `which`.
    (
        proptest::collection::vec(any::<u8>(), 0..300),
        1u32..=MAX_WINDOW_SIZE,
        any::<bool>(),
    )
}

proptest! {
    /// Encode then decode gives back what was encoded, for each server frame.
    #[test]
    fn encoders_round_trip((payload, n, flag) in server_frame(), which in 0u8..7, code in any::<u32>()) {
        let mut out = Vec::new();
        let code = ErrorCode::from_u32(code);
        match which {
            0 => encode_data(&mut out, n, &payload, flag),
            1 => encode_headers(&mut out, n, &payload, flag, MAX),
            2 => encode_goaway(&mut out, n, code, &payload),
            3 => encode_rst_stream(&mut out, n, code),
            4 => encode_window_update(&mut out, n, n),
            5 => {
                let mut p = [0u8; 8];
                p.iter_mut().zip(&payload).for_each(|(d, s)| *d = *s);
                encode_ping_ack(&mut out, p)
            }
            _ => encode_settings(&mut out, &[Setting::MaxConcurrentStreams(n), Setting::HeaderTableSize(n)]),
        }
        let (frame, used) = decode(&out, MAX).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        match (which, frame) {
            (0, Frame::Data(d)) => {
                prop_assert_eq!((d.stream_id, d.end_stream, d.data), (n, flag, &payload[..]));
            }
            (1, Frame::Headers(h)) => {
                prop_assert_eq!((h.stream_id, h.end_stream, h.end_headers, h.block), (n, flag, true, &payload[..]));
            }
            (2, Frame::GoAway(g)) => {
                prop_assert_eq!((g.last_stream_id, g.code, g.debug_data), (n, code, &payload[..]));
            }
            (3, Frame::RstStream { stream_id, code: c }) => prop_assert_eq!((stream_id, c), (n, code)),
            (4, Frame::WindowUpdate { stream_id, increment }) => prop_assert_eq!((stream_id, increment), (n, n)),
            (5, Frame::Ping { ack, .. }) => prop_assert!(ack),
            (6, Frame::Settings(s)) => {
                prop_assert_eq!(s.iter().collect::<Vec<_>>(), vec![Setting::MaxConcurrentStreams(n), Setting::HeaderTableSize(n)]);
            }
            (w, f) => prop_assert!(false, "encoder {} decoded as {:?}", w, f),
        }
    }

    /// Decoding arbitrary bytes as a sequence of frames never panics, never claims more
    /// than it was given, and always makes progress or stops.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), small in any::<bool>()) {
        let max = if small { 64 } else { MAX };
        let mut rest = &bytes[..];
        loop {
            match decode(rest, max) {
                Ok(Some((_, n))) => {
                    prop_assert!(n >= FRAME_HEADER_LEN && n <= rest.len());
                    rest = &rest[n..];
                }
                Ok(None) => break,
                Err(FrameError::Stream { frame_len, .. }) => {
                    prop_assert!(frame_len <= rest.len());
                    rest = &rest[frame_len..];
                }
                Err(FrameError::Connection { .. }) => break,
            }
        }
    }
}
