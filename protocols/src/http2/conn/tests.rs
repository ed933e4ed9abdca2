//! Unit tests of the HTTP/2 connection state machine, driven from memory with the
//! HTTP/1.1 tests' recording port and application (the same `App`).

use super::*;
use crate::http1::conn::tests::{Task, TestApp, TestPort};
use crate::http2::frame::{encode_data, encode_headers, encode_ping, encode_window_update};
use crate::http2::frame::{encode_frame_header, flags, kind};
use crate::http2::hpack::{Decoder as HDecoder, Encoder as HEncoder};
use proptest::prelude::*;

/// What the server sent, frame by frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Settings { ack: bool },
    Headers { sid: u32, status: String, end: bool },
    Data { sid: u32, data: Vec<u8>, end: bool },
    Rst { sid: u32, code: ErrorCode },
    GoAway { last: u32, code: ErrorCode },
    PingAck,
    Window { sid: u32 },
}

/// A client: its HPACK contexts and the connection under test.
struct Client<A: App = TestApp> {
    conn: H2Conn<A::Task>,
    app: A,
    port: TestPort,
    enc: HEncoder,
    dec: HDecoder,
    /// Input not consumed yet.
    pending: Vec<u8>,
}

impl Client {
    fn new(cfg: H2Config) -> Self {
        let port = TestPort::new();
        let conn = H2Conn::new(&cfg, &Limits::default(), port.now);
        let mut c = Client {
            conn,
            app: TestApp::default(),
            port,
            enc: HEncoder::new(4096),
            dec: HDecoder::new(1 << 20),
            pending: Vec::new(),
        };
        let mut b = PREFACE.to_vec();
        encode_settings(&mut b, &[]);
        c.send(&b);
        c
    }

    /// A handshaken client: its SETTINGS acknowledged both ways.
    fn ready() -> Self {
        Self::ready_with(H2Config::default())
    }

    fn ready_with(cfg: H2Config) -> Self {
        let table = cfg.header_table_size as usize;
        let larger_window = cfg.connection_window > 65_535;
        let mut c = Client::new(cfg);
        // As a real client's encoder does on our SETTINGS_HEADER_TABLE_SIZE.
        c.enc.set_max_table_size(table);
        let mut b = Vec::new();
        encode_settings_ack(&mut b);
        c.send(&b);
        let mut want = vec![Out::Settings { ack: false }, Out::Settings { ack: true }];
        if larger_window {
            // The connection window, opened past the RFC's 65,535 right after SETTINGS.
            want.insert(1, Out::Window { sid: 0 });
        }
        assert_eq!(c.take(), want);
        c
    }
}

impl<A: App> Client<A> {
    fn send(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let n = self.conn.feed(&mut self.app, &self.pending, &mut self.port);
        self.pending.drain(..n);
    }

    fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        self.enc.start_block(&mut block);
        for (n, v) in fields {
            self.enc
                .encode_field(n.as_bytes(), v.as_bytes(), &mut block);
        }
        block
    }

    fn request(&mut self, sid: u32, method: &str, path: &str, end: bool) {
        let block = self.block(&[
            (":method", method),
            (":scheme", "http"),
            (":authority", "t"),
            (":path", path),
        ]);
        let mut b = Vec::new();
        encode_headers(&mut b, sid, &block, end, 16384);
        self.send(&b);
    }

    /// Every frame the server sent since the last call.
    fn take(&mut self) -> Vec<Out> {
        let out = std::mem::take(&mut self.port.out);
        let mut frames = Vec::new();
        let mut pos = 0;
        while let Some((f, n)) = frame::decode(&out[pos..], 1 << 24).unwrap() {
            pos += n;
            frames.push(match f {
                Frame::Settings(s) => Out::Settings { ack: s.ack },
                Frame::Headers(h) => {
                    let mut status = String::new();
                    self.dec
                        .decode(h.block, |f| {
                            if f.name == b":status" {
                                status = String::from_utf8_lossy(f.value).into_owned();
                            }
                        })
                        .unwrap();
                    Out::Headers {
                        sid: h.stream_id,
                        status,
                        end: h.end_stream,
                    }
                }
                Frame::Data(d) => Out::Data {
                    sid: d.stream_id,
                    data: d.data.to_vec(),
                    end: d.end_stream,
                },
                Frame::RstStream { stream_id, code } => Out::Rst {
                    sid: stream_id,
                    code,
                },
                Frame::GoAway(g) => Out::GoAway {
                    last: g.last_stream_id,
                    code: g.code,
                },
                Frame::Ping { ack: true, .. } => Out::PingAck,
                Frame::WindowUpdate { stream_id, .. } => Out::Window { sid: stream_id },
                other => panic!("unexpected {other:?}"),
            });
        }
        assert_eq!(pos, out.len(), "a partial frame");
        frames
    }
}

fn headers(sid: u32, status: &str, end: bool) -> Out {
    Out::Headers {
        sid,
        status: status.into(),
        end,
    }
}

fn data(sid: u32, d: &str, end: bool) -> Out {
    Out::Data {
        sid,
        data: d.as_bytes().to_vec(),
        end,
    }
}

/// Section 3.4: preface, SETTINGS both ways, each acknowledged; PING answered.
#[test]
fn handshake_settings_ack_and_ping() {
    let mut c = Client::new(H2Config::default());
    assert_eq!(
        c.take(),
        vec![
            Out::Settings { ack: false },
            Out::Window { sid: 0 },
            Out::Settings { ack: true }
        ]
    );
    let mut b = Vec::new();
    encode_ping(&mut b, *b"12345678");
    c.send(&b);
    assert_eq!(c.take(), vec![Out::PingAck]);
    assert_eq!(c.port.counters.h2.pings, 1);
}

#[test]
fn the_preface_may_arrive_in_pieces_and_a_wrong_one_ends_it() {
    let mut c = Client {
        conn: H2Conn::new(&H2Config::default(), &Limits::default(), Instant::now()),
        app: TestApp::default(),
        port: TestPort::new(),
        enc: HEncoder::new(4096),
        dec: HDecoder::new(4096),
        pending: Vec::new(),
    };
    c.send(&PREFACE[..10]);
    assert!(c.port.out.is_empty());
    c.send(&PREFACE[10..]);
    assert_eq!(
        c.take(),
        vec![Out::Settings { ack: false }, Out::Window { sid: 0 }]
    );
    // Section 3.4: the first frame must be SETTINGS.
    let mut b = Vec::new();
    encode_ping(&mut b, [0; 8]);
    c.send(&b);
    assert!(matches!(
        c.take()[..],
        [Out::GoAway {
            code: ErrorCode::ProtocolError,
            ..
        }]
    ));
    assert!(c.port.closed);
}

#[test]
fn a_get_is_answered_on_its_stream_and_the_stream_closes() {
    let mut c = Client::ready();
    c.request(1, "GET", "/hello", true);
    assert_eq!(
        c.take(),
        vec![headers(1, "200", false), data(1, "/hello", true)]
    );
    assert_eq!(c.conn.open_streams(), 0);
    assert_eq!(c.app.seen[0].target, "/hello");
    // :authority reaches an HTTP/1.1-minded application as Host.
    assert!(c.app.seen[0]
        .headers
        .contains(&("host".to_string(), b"t".to_vec())));
    // HEAD: the head only, ended.
    c.request(3, "HEAD", "/x", true);
    assert_eq!(c.take(), vec![headers(3, "200", true)]);
}

/// Streams answer out of order: one waiting on a timer holds no other up.
#[test]
fn streams_answer_out_of_order() {
    let mut c = Client::ready();
    c.request(1, "GET", "/later/7", true);
    c.request(3, "GET", "/now", true);
    assert_eq!(
        c.take(),
        vec![headers(3, "200", false), data(3, "/now", true)]
    );
    assert_eq!(c.conn.open_streams(), 1);
    c.conn.app_timer(&mut c.app, 0, 7, &mut c.port);
    assert_eq!(
        c.take(),
        vec![headers(1, "200", false), data(1, "/later/7", true)]
    );
    assert_eq!(c.conn.open_streams(), 0);
}

/// A request body in several DATA frames, with trailers, reaches the application whole.
#[test]
fn a_body_in_pieces_and_trailers() {
    let mut c = Client::ready();
    c.request(1, "POST", "/echo", false);
    let mut b = Vec::new();
    encode_data(&mut b, 1, b"hello ", false);
    encode_data(&mut b, 1, b"world", false);
    c.send(&b);
    assert!(c.take().is_empty());
    let block = c.block(&[("x-trailer", "1")]);
    let mut b = Vec::new();
    encode_headers(&mut b, 1, &block, true, 16384);
    c.send(&b);
    assert_eq!(
        c.take(),
        vec![headers(1, "200", false), data(1, "hello world", true)]
    );
}

/// Section 6.9: a response larger than the peer's window waits for WINDOW_UPDATE.
#[test]
fn responses_wait_for_the_peers_window() {
    let mut c = Client::ready();
    let mut b = Vec::new();
    encode_settings(&mut b, &[Setting::InitialWindowSize(4)]);
    c.send(&b);
    assert_eq!(c.take(), vec![Out::Settings { ack: true }]);
    c.request(1, "POST", "/echo", false);
    let mut b = Vec::new();
    encode_data(&mut b, 1, b"0123456789", true);
    c.send(&b);
    assert_eq!(
        c.take(),
        vec![headers(1, "200", false), data(1, "0123", false)]
    );
    let mut b = Vec::new();
    encode_window_update(&mut b, 1, 3);
    c.send(&b);
    assert_eq!(c.take(), vec![data(1, "456", false)]);
    let mut b = Vec::new();
    encode_window_update(&mut b, 1, 100);
    c.send(&b);
    assert_eq!(c.take(), vec![data(1, "789", true)]);
    assert_eq!(c.conn.open_streams(), 0);
}

/// We open the client's windows again as its body arrives.
#[test]
fn request_bodies_get_window_updates() {
    let mut c = Client::ready_with(H2Config {
        connection_window: 65_535,
        ..H2Config::default()
    });
    c.request(1, "POST", "/echo", false);
    let mut b = Vec::new();
    for _ in 0..3 {
        encode_data(&mut b, 1, &[b'x'; 16000], false);
    }
    c.send(&b);
    let out = c.take();
    assert!(out.contains(&Out::Window { sid: 0 }), "{out:?}");
    assert!(out.contains(&Out::Window { sid: 1 }), "{out:?}");
}

/// The default connection window (1 MiB, opened right after SETTINGS) lets several
/// streams each send their whole window at once, far past the RFC's 65,535.
#[test]
fn the_connection_window_is_opened_past_the_rfc_default() {
    let cfg = H2Config::default();
    assert_eq!(cfg.connection_window, 1 << 20);
    let mut c = Client::ready_with(cfg.clone());
    let per_stream = cfg.initial_window_size as usize;
    let streams = (1 << 20) / per_stream;
    let mut sent = 0;
    for k in 0..streams as u32 {
        c.request(1 + 2 * k, "POST", "/echo", false);
        let mut b = Vec::new();
        let body = vec![b'x'; per_stream];
        for piece in body.chunks(16_384) {
            encode_data(&mut b, 1 + 2 * k, piece, false);
        }
        c.send(&b);
        sent += per_stream;
    }
    let out = c.take();
    assert!(
        !out.iter()
            .any(|o| matches!(o, Out::GoAway { .. } | Out::Rst { .. })),
        "{out:?}"
    );
    assert!(sent > 65_535 * 2);
    // Credit comes back in steps of half the connection window, not of 32 KiB.
    let conn_updates = out.iter().filter(|o| **o == Out::Window { sid: 0 }).count();
    assert_eq!(conn_updates, sent / (1 << 19), "{out:?}");
}

/// Sections 8.2 and 8.3: a malformed request is reset with PROTOCOL_ERROR, and the
/// connection goes on.
#[test]
fn a_bad_pseudo_header_resets_the_stream() {
    let mut c = Client::ready();
    let block = c.block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":bogus", "x"),
    ]);
    let mut b = Vec::new();
    encode_headers(&mut b, 1, &block, true, 16384);
    c.send(&b);
    assert_eq!(
        c.take(),
        vec![Out::Rst {
            sid: 1,
            code: ErrorCode::ProtocolError
        }]
    );
    assert_eq!(c.port.counters.h2.malformed, 1);
    c.request(3, "GET", "/ok", true);
    assert_eq!(
        c.take(),
        vec![headers(3, "200", false), data(3, "/ok", true)]
    );
}

/// RST_STREAM from the client cancels the exchange.
#[test]
fn a_client_reset_cancels_the_exchange() {
    let mut c = Client::ready();
    c.request(1, "GET", "/later/1", true);
    let mut b = Vec::new();
    encode_rst_stream(&mut b, 1, ErrorCode::Cancel);
    c.send(&b);
    assert_eq!(c.app.cancelled, 1);
    assert_eq!(c.conn.open_streams(), 0);
    // The timer firing later finds nothing.
    c.conn.app_timer(&mut c.app, 0, 1, &mut c.port);
    assert!(c.take().is_empty());
}

#[test]
fn streams_past_the_concurrency_limit_are_refused() {
    let cfg = H2Config {
        max_concurrent_streams: 1,
        ..H2Config::default()
    };
    let mut c = Client::ready_with(cfg);
    c.request(1, "GET", "/later/1", true);
    c.request(3, "GET", "/x", true);
    assert_eq!(
        c.take(),
        vec![Out::Rst {
            sid: 3,
            code: ErrorCode::RefusedStream
        }]
    );
    assert_eq!(c.port.counters.h2.refused_streams, 1);
}

/// CVE-2023-44487: streams opened and reset at once, past the budget, end the
/// connection with ENHANCE_YOUR_CALM.
#[test]
fn rapid_reset_ends_the_connection() {
    let cfg = H2Config {
        max_resets_per_sec: 5,
        ..H2Config::default()
    };
    let mut c = Client::ready_with(cfg);
    for i in 0..6 {
        let sid = 1 + 2 * i;
        c.request(sid, "GET", "/later/1", true);
        let mut b = Vec::new();
        encode_rst_stream(&mut b, sid, ErrorCode::Cancel);
        c.send(&b);
    }
    let out = c.take();
    assert_eq!(
        out.last(),
        Some(&Out::GoAway {
            last: 11,
            code: ErrorCode::EnhanceYourCalm
        })
    );
    assert!(c.port.closed);
    assert_eq!(c.port.counters.h2.rapid_reset, 1);
    assert_eq!(c.app.cancelled, 6);
}

/// CVE-2025-8671: resets the server makes (here: malformed requests) count too.
#[test]
fn server_resets_count_against_the_budget() {
    let cfg = H2Config {
        max_resets_per_sec: 3,
        ..H2Config::default()
    };
    let mut c = Client::ready_with(cfg);
    for i in 0..4 {
        let block = c.block(&[(":method", "GET"), (":path", "/")]);
        let mut b = Vec::new();
        encode_headers(&mut b, 1 + 2 * i, &block, true, 16384);
        c.send(&b);
    }
    assert!(matches!(
        c.take().last(),
        Some(Out::GoAway {
            code: ErrorCode::EnhanceYourCalm,
            ..
        })
    ));
}

#[test]
fn ping_flood_ends_the_connection() {
    let cfg = H2Config {
        max_control_per_sec: 10,
        ..H2Config::default()
    };
    let mut c = Client::ready_with(cfg);
    let mut b = Vec::new();
    for _ in 0..11 {
        encode_ping(&mut b, [1; 8]);
    }
    c.send(&b);
    assert!(matches!(
        c.take().last(),
        Some(Out::GoAway {
            code: ErrorCode::EnhanceYourCalm,
            ..
        })
    ));
    assert_eq!(c.port.counters.h2.control_flood, 1);
}

/// Section 6.10 and CVE-2024-27316: a header block is bounded across CONTINUATION
/// frames, and nothing else may come between them.
#[test]
fn continuation_is_bounded_and_uninterrupted() {
    let cfg = H2Config {
        max_header_block: 100,
        ..H2Config::default()
    };
    let mut c = Client::ready_with(cfg);
    let mut b = Vec::new();
    encode_frame_header(&mut b, 60, kind::HEADERS, 0, 1);
    b.extend_from_slice(&[0x40; 60]);
    encode_frame_header(&mut b, 60, kind::CONTINUATION, 0, 1);
    b.extend_from_slice(&[0x40; 60]);
    c.send(&b);
    assert!(matches!(
        c.take()[..],
        [Out::GoAway {
            code: ErrorCode::EnhanceYourCalm,
            ..
        }]
    ));
    assert_eq!(c.port.counters.h2.continuation_flood, 1);

    let mut c = Client::ready();
    let block = c.block(&[(":method", "GET"), (":scheme", "http"), (":path", "/")]);
    let mut b = Vec::new();
    encode_frame_header(&mut b, block.len(), kind::HEADERS, flags::END_STREAM, 1);
    b.extend_from_slice(&block);
    encode_ping(&mut b, [0; 8]);
    c.send(&b);
    assert!(matches!(
        c.take()[..],
        [Out::GoAway {
            code: ErrorCode::ProtocolError,
            ..
        }]
    ));
}

#[test]
fn a_header_block_split_over_continuation_is_one_request() {
    let mut c = Client::ready();
    let block = c.block(&[(":method", "GET"), (":scheme", "http"), (":path", "/split")]);
    let (a, z) = block.split_at(3);
    let mut b = Vec::new();
    encode_frame_header(&mut b, a.len(), kind::HEADERS, flags::END_STREAM, 1);
    b.extend_from_slice(a);
    encode_frame_header(&mut b, z.len(), kind::CONTINUATION, flags::END_HEADERS, 1);
    b.extend_from_slice(z);
    c.send(&b);
    assert_eq!(
        c.take(),
        vec![headers(1, "200", false), data(1, "/split", true)]
    );
}

/// Drain: GOAWAY with the last stream id, the open stream finishes, then the close.
#[test]
fn drain_finishes_open_streams_then_closes() {
    let mut c = Client::ready();
    c.request(1, "GET", "/later/2", true);
    c.conn.drain(&mut c.port);
    assert_eq!(
        c.take(),
        vec![Out::GoAway {
            last: 1,
            code: ErrorCode::NoError
        }]
    );
    assert!(!c.port.closed);
    // A stream past the GOAWAY is ignored.
    c.request(3, "GET", "/x", true);
    assert!(c.take().is_empty());
    c.conn.app_timer(&mut c.app, 0, 2, &mut c.port);
    assert_eq!(
        c.take(),
        vec![headers(1, "200", false), data(1, "/later/2", true)]
    );
    assert!(c.port.closed);
}

#[test]
fn stream_rules_of_section_5_1() {
    // Even stream ids are the server's.
    let mut c = Client::ready();
    c.request(2, "GET", "/", true);
    assert!(matches!(
        c.take()[..],
        [Out::GoAway {
            code: ErrorCode::ProtocolError,
            ..
        }]
    ));
    // DATA on an idle stream.
    let mut c = Client::ready();
    let mut b = Vec::new();
    encode_data(&mut b, 5, b"x", true);
    c.send(&b);
    assert!(matches!(
        c.take()[..],
        [Out::GoAway {
            code: ErrorCode::ProtocolError,
            ..
        }]
    ));
    // HEADERS on a closed stream.
    let mut c = Client::ready();
    c.request(1, "GET", "/", true);
    c.take();
    c.request(1, "GET", "/", true);
    assert!(matches!(
        c.take()[..],
        [Out::GoAway {
            code: ErrorCode::StreamClosed,
            ..
        }]
    ));
    // Section 5.1.1: a new stream's id below one already used (3 after 5) is a
    // PROTOCOL_ERROR, not a closed stream's STREAM_CLOSED.
    let mut c = Client::ready();
    c.request(5, "GET", "/", true);
    c.take();
    c.request(3, "GET", "/", true);
    assert!(matches!(
        c.take()[..],
        [Out::GoAway {
            code: ErrorCode::ProtocolError,
            last: 5,
        }]
    ));
    // PRIORITY is ignored; PUSH_PROMISE from a client is a connection error.
    let mut c = Client::ready();
    let mut b = Vec::new();
    encode_frame_header(&mut b, 5, kind::PRIORITY, 0, 9);
    b.extend_from_slice(&[0, 0, 0, 0, 16]);
    c.send(&b);
    assert!(c.take().is_empty());
}

#[test]
fn content_length_must_match_the_body() {
    let mut c = Client::ready();
    let block = c.block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/echo"),
        ("content-length", "3"),
    ]);
    let mut b = Vec::new();
    encode_headers(&mut b, 1, &block, false, 16384);
    encode_data(&mut b, 1, b"ab", true);
    c.send(&b);
    assert_eq!(
        c.take(),
        vec![Out::Rst {
            sid: 1,
            code: ErrorCode::ProtocolError
        }]
    );
}

/// A client's SETTINGS frame on its own.
fn settings_frame(settings: &[Setting]) -> Vec<u8> {
    let mut b = Vec::new();
    encode_settings(&mut b, settings);
    b
}

/// A POST /echo of `body` on `sid`, the body in DATA frames of at most 16 KiB.
fn echo(c: &mut Client, sid: u32, body: &[u8]) {
    c.request(sid, "POST", "/echo", false);
    let mut b = Vec::new();
    let mut chunks = body.chunks(16_384).peekable();
    while let Some(chunk) = chunks.next() {
        encode_data(&mut b, sid, chunk, chunks.peek().is_none());
    }
    c.send(&b);
}

/// The clock moves on by `secs`.
fn advance(c: &mut Client, secs: u64) {
    c.port.now += Duration::from_secs(secs);
}

/// Fires the protocol timer as the driver does: only once the deadline has passed.
fn fire(c: &mut Client) {
    if c.conn.deadline().is_some_and(|due| c.port.now >= due) {
        c.conn.expire(&mut c.app, &mut c.port);
    }
}

fn stall_cfg() -> H2Config {
    H2Config {
        stall_timeout: Duration::from_secs(5),
        ..H2Config::default()
    }
}

/// An idle connection's only deadline is the idle timeout (no timer per stream).
#[test]
fn an_idle_connection_has_only_the_idle_deadline() {
    let mut c = Client::ready();
    let t0 = c.port.now;
    assert_eq!(c.conn.deadline(), Some(t0 + Limits::default().idle_timeout));
    c.request(1, "GET", "/later/1", true);
    // A stream waiting on the application is no stall: no deadline.
    assert_eq!(c.conn.deadline(), None);
}

/// A response stuck on a stream window the peer keeps at zero: RST_STREAM CANCEL after
/// the stall timeout (a window update that lets DATA out restarts the clock); the
/// connection goes on.
#[test]
fn a_stream_stalled_on_a_zero_window_is_cancelled() {
    let mut c = Client::ready_with(stall_cfg());
    c.send(&settings_frame(&[Setting::InitialWindowSize(4)]));
    c.take();
    echo(&mut c, 1, b"0123456789");
    assert_eq!(
        c.take(),
        vec![headers(1, "200", false), data(1, "0123", false)]
    );
    let t0 = c.port.now;
    assert_eq!(c.conn.deadline(), Some(t0 + Duration::from_secs(5)));
    advance(&mut c, 4);
    let mut b = Vec::new();
    encode_window_update(&mut b, 1, 2);
    c.send(&b);
    assert_eq!(c.take(), vec![data(1, "45", false)]);
    // Progress restarted the clock.
    advance(&mut c, 4);
    fire(&mut c);
    assert!(c.take().is_empty());
    advance(&mut c, 1);
    fire(&mut c);
    assert_eq!(
        c.take(),
        vec![Out::Rst {
            sid: 1,
            code: ErrorCode::Cancel
        }]
    );
    assert_eq!(c.port.counters.h2.stream_stalls, 1);
    assert_eq!(c.conn.open_streams(), 0);
    assert!(!c.port.closed);
    c.request(3, "HEAD", "/ok", true);
    assert_eq!(c.take(), vec![headers(3, "200", true)]);
}

/// Responses stuck on a connection window the peer keeps at zero: GOAWAY
/// ENHANCE_YOUR_CALM and the close after the stall timeout.
#[test]
fn a_connection_stalled_on_a_zero_window_ends() {
    let mut c = Client::ready_with(stall_cfg());
    c.send(&settings_frame(&[Setting::InitialWindowSize(1 << 20)]));
    c.take();
    echo(&mut c, 1, &[b'a'; 40_000]);
    echo(&mut c, 3, &[b'b'; 40_000]);
    let sent: usize = c
        .take()
        .iter()
        .map(|o| match o {
            Out::Data { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(sent, 65_535, "the whole connection window and no more");
    advance(&mut c, 5);
    fire(&mut c);
    assert_eq!(
        c.take(),
        vec![Out::GoAway {
            last: 3,
            code: ErrorCode::EnhanceYourCalm
        }]
    );
    assert!(c.port.closed);
    assert_eq!(c.port.counters.h2.window_stalls, 1);
    assert_eq!(c.port.counters.h2.stream_stalls, 0);
}

/// Section 6.5.3: our SETTINGS unacknowledged past the timeout end the connection with
/// SETTINGS_TIMEOUT; acknowledged, they set no deadline.
#[test]
fn unacknowledged_settings_time_out() {
    let mut c = Client::new(H2Config::default());
    c.take();
    let t0 = c.port.now;
    let timeout = H2Config::default().settings_timeout;
    assert_eq!(c.conn.deadline(), Some(t0 + timeout));
    c.request(1, "HEAD", "/", true);
    c.take();
    advance(&mut c, timeout.as_secs());
    fire(&mut c);
    assert!(matches!(
        c.take()[..],
        [Out::GoAway {
            code: ErrorCode::SettingsTimeout,
            ..
        }]
    ));
    assert!(c.port.closed);
    assert_eq!(c.port.counters.h2.settings_timeouts, 1);
}

/// HEADERS without END_HEADERS and no CONTINUATION: past the header-read timeout the
/// connection ends with PROTOCOL_ERROR.
#[test]
fn an_unfinished_header_block_times_out() {
    let mut c = Client::ready();
    let block = c.block(&[(":method", "GET"), (":scheme", "http"), (":path", "/")]);
    let mut b = Vec::new();
    encode_frame_header(&mut b, block.len(), kind::HEADERS, flags::END_STREAM, 1);
    b.extend_from_slice(&block);
    c.send(&b);
    let t0 = c.port.now;
    let timeout = Limits::default().header_read_timeout;
    assert_eq!(c.conn.deadline(), Some(t0 + timeout));
    advance(&mut c, timeout.as_secs() - 1);
    fire(&mut c);
    assert!(c.take().is_empty());
    advance(&mut c, 1);
    fire(&mut c);
    assert_eq!(
        c.take(),
        vec![Out::GoAway {
            last: 1,
            code: ErrorCode::ProtocolError
        }]
    );
    assert!(c.port.closed);
    assert_eq!(c.port.counters.h2.header_timeouts, 1);
}

/// A client that does not read: past the send backlog no DATA is produced (bodies wait
/// in their streams, new streams past the limit are refused, so memory stays bounded),
/// writable-again is asked for, and past the stall timeout the connection ends.
#[test]
fn a_client_that_never_reads_is_bounded_then_closed() {
    let cfg = H2Config {
        max_send_backlog: 1000,
        max_concurrent_streams: 2,
        ..stall_cfg()
    };
    let mut c = Client::ready_with(cfg);
    c.send(&settings_frame(&[Setting::InitialWindowSize(1 << 20)]));
    c.take();
    c.port.backlog = 1000;
    let asked = c.port.writable_asked;
    echo(&mut c, 1, &[b'x'; 100]);
    echo(&mut c, 3, &[b'x'; 100]);
    c.request(5, "GET", "/", true);
    assert_eq!(
        c.take(),
        vec![
            headers(1, "200", false),
            headers(3, "200", false),
            Out::Rst {
                sid: 5,
                code: ErrorCode::RefusedStream
            }
        ]
    );
    assert!(c.port.writable_asked > asked);
    // The peer reads a little: the bodies go.
    c.port.backlog = 0;
    c.conn.writable(&mut c.app, &mut c.port);
    assert_eq!(c.take().len(), 2);
    // Then nothing more.
    c.port.backlog = 5000;
    echo(&mut c, 7, &[b'y'; 100]);
    assert_eq!(c.take(), vec![headers(7, "200", false)]);
    advance(&mut c, 5);
    fire(&mut c);
    assert_eq!(
        c.take(),
        vec![Out::GoAway {
            last: 7,
            code: ErrorCode::EnhanceYourCalm
        }]
    );
    assert!(c.port.closed);
    assert_eq!(c.port.counters.h2.write_stalls, 1);
}

#[test]
fn an_idle_connection_is_small() {
    let size = std::mem::size_of::<H2Conn<Task>>();
    eprintln!("H2Conn: {size} bytes");
    assert!(size <= 1024, "H2Conn grew to {size} bytes");
}

proptest! {
    /// Network input never panics, whatever follows the preface.
    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut c = Client::ready();
        c.send(&bytes);
        c.conn.drain(&mut c.port);
    }

    /// Nor does a well-framed stream of frames of any type with arbitrary payloads.
    #[test]
    fn arbitrary_framed_payloads_never_panic(
        frames in proptest::collection::vec((0u8..12, any::<u8>(), 0u32..8, proptest::collection::vec(any::<u8>(), 0..40)), 0..20)
    ) {
        let mut c = Client::ready();
        let mut b = Vec::new();
        for (k, f, sid, payload) in frames {
            encode_frame_header(&mut b, payload.len(), k, f, sid);
            b.extend_from_slice(&payload);
        }
        c.send(&b);
        c.conn.writable(&mut c.app, &mut c.port);
        // Nor do its deadlines, whatever is due.
        advance(&mut c, 3600);
        fire(&mut c);
        let _ = c.conn.deadline();
    }
}

/// Section 6.8: a client's GOAWAY (here with a code section 7 does not define) limits
/// the streams the server may open, which are none; the connection goes on serving the
/// client until it closes it.
#[test]
fn a_client_goaway_changes_nothing_on_the_server() {
    let mut c = Client::ready();
    let mut b = Vec::new();
    frame::encode_goaway(&mut b, 0, ErrorCode::Unknown(0xff), b"");
    encode_ping(&mut b, *b"pingpong");
    c.send(&b);
    assert_eq!(c.take(), vec![Out::PingAck]);
    c.request(1, "GET", "/", true);
    assert!(matches!(c.take()[..], [Out::Headers { sid: 1, .. }, ..]));
    assert!(!c.port.closed);
}

/// An application that takes `/up` bodies in pieces: it notes each piece, pauses the
/// body after the first when `pause` is set (a timer resumes it), answers the body's
/// length at its end; `/early` is answered at once, its body not awaited.
#[derive(Default)]
struct StreamApp {
    pause: bool,
    pieces: Vec<(Vec<u8>, bool)>,
    dispatched: Vec<bool>,
    cancelled: usize,
    /// Trailer fields given to `on_trailers`, and how many pieces had come before.
    trailers: Vec<(String, Vec<u8>, usize)>,
}

impl App for StreamApp {
    type Task = u64;

    fn stream_body(&mut self, req: &Request<'_>) -> bool {
        req.path() == "/up" || req.path() == "/early"
    }

    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<u64> {
        self.dispatched.push(req.is_body_streamed());
        if req.path() == "/early" {
            ex.respond(Response::text(200, "early"));
            return None;
        }
        Some(0)
    }

    fn on_trailers(
        &mut self,
        _got: &mut u64,
        trailers: crate::http1::client::FieldsView<'_>,
        _ex: &mut Exchange<'_>,
    ) {
        for (name, value) in trailers.iter() {
            self.trailers
                .push((name.to_string(), value.to_vec(), self.pieces.len()));
        }
    }

    fn on_body(&mut self, got: &mut u64, piece: &[u8], last: bool, ex: &mut Exchange<'_>) {
        *got += piece.len() as u64;
        self.pieces.push((piece.to_vec(), last));
        if self.pause && self.pieces.len() == 1 {
            ex.pause_body();
            ex.set_timer(Duration::from_millis(1), 1);
        }
        if last {
            ex.respond(Response::text(200, &got.to_string()));
        }
    }

    fn on_timer(&mut self, _got: &mut u64, _tag: u32, ex: &mut Exchange<'_>) {
        ex.resume_body();
    }

    fn on_cancel(&mut self, _task: u64) {
        self.cancelled += 1;
    }
}

impl Client<StreamApp> {
    /// A handshaken client of a [`StreamApp`] (default settings).
    fn streaming(pause: bool) -> Self {
        let port = TestPort::new();
        let mut c = Client {
            conn: H2Conn::new(&H2Config::default(), &Limits::default(), port.now),
            app: StreamApp {
                pause,
                ..StreamApp::default()
            },
            port,
            enc: HEncoder::new(4096),
            dec: HDecoder::new(1 << 20),
            pending: Vec::new(),
        };
        let mut b = PREFACE.to_vec();
        encode_settings(&mut b, &[]);
        encode_settings_ack(&mut b);
        c.send(&b);
        c.enc
            .set_max_table_size(H2Config::default().header_table_size as usize);
        c.take();
        c
    }

    /// DATA on `sid`: `n` bytes of `x`, in frames of at most 16 KiB.
    fn body(&mut self, sid: u32, n: usize, end: bool) {
        let mut b = Vec::new();
        let body = vec![b'x'; n];
        let mut pieces = body.chunks(16_384).peekable();
        while let Some(p) = pieces.next() {
            encode_data(&mut b, sid, p, end && pieces.peek().is_none());
        }
        self.send(&b);
    }
}

/// An application that opts in gets the request at its head and the body piece by
/// piece as DATA arrives, the end marked; the answer goes out as usual.
#[test]
fn a_streamed_body_reaches_the_application_as_it_arrives() {
    let mut c = Client::streaming(false);
    c.request(1, "POST", "/up", false);
    assert_eq!(c.app.dispatched, vec![true]);
    c.body(1, 3, false);
    assert_eq!(c.app.pieces, vec![(b"xxx".to_vec(), false)]);
    assert!(c.take().is_empty());
    c.body(1, 4, true);
    assert_eq!(c.app.pieces[1], (b"xxxx".to_vec(), true));
    assert_eq!(c.take(), vec![headers(1, "200", false), data(1, "7", true)]);
    assert_eq!(c.conn.open_streams(), 0);
    // Without END_STREAM on HEADERS but with an empty body and trailers: the end comes
    // with the trailers.
    c.request(3, "POST", "/up", false);
    let block = c.block(&[("x-sum", "0")]);
    let mut b = Vec::new();
    encode_headers(&mut b, 3, &block, true, 16384);
    c.send(&b);
    assert_eq!(c.app.pieces.last(), Some(&(Vec::new(), true)));
    assert_eq!(c.take(), vec![headers(3, "200", false), data(3, "0", true)]);
    // The trailers reach the application before the call that ends the body.
    assert_eq!(
        c.app.trailers,
        vec![("x-sum".to_string(), b"0".to_vec(), 2)]
    );
}

/// The stream's window opens again as the application takes the body; while it pauses
/// the body, no credit goes back, so the client is held to one window (a byte more is
/// a FLOW_CONTROL_ERROR), and the credit comes back when it resumes.
#[test]
fn a_paused_body_holds_the_client_to_one_window() {
    // Not paused: half a window taken gives it back.
    let mut c = Client::streaming(false);
    c.request(1, "POST", "/up", false);
    c.body(1, 40_000, false);
    assert_eq!(c.take(), vec![Out::Window { sid: 1 }]);

    let mut c = Client::streaming(true);
    c.request(1, "POST", "/up", false);
    c.body(1, 40_000, false);
    assert!(c.take().is_empty(), "credit given while paused");
    c.body(1, 65_535 - 40_000, false);
    assert!(c.take().is_empty());
    assert_eq!(
        c.app.pieces.iter().map(|p| p.0.len()).sum::<usize>(),
        65_535
    );
    // The timer resumes the body: the whole window comes back at once.
    c.conn.app_timer(&mut c.app, 0, 1, &mut c.port);
    assert_eq!(c.take(), vec![Out::Window { sid: 1 }]);
    c.body(1, 10, true);
    assert_eq!(
        c.take(),
        vec![headers(1, "200", false), data(1, "65545", true)]
    );

    // Paused and never resumed: one byte past the window resets the stream.
    let mut c = Client::streaming(true);
    c.app.pause = true;
    c.request(1, "POST", "/up", false);
    c.body(1, 65_535, false);
    assert!(c.take().is_empty());
    c.body(1, 1, false);
    assert_eq!(
        c.take(),
        vec![Out::Rst {
            sid: 1,
            code: ErrorCode::FlowControlError
        }]
    );
    assert_eq!(c.app.cancelled, 1);
}

/// Section 8.1: answered before its body ended, the stream is reset with NO_ERROR so
/// that the client stops sending it; a streamed body longer than its content-length is
/// malformed (PROTOCOL_ERROR, the exchange cancelled).
#[test]
fn an_early_answer_stops_the_body_and_a_long_one_is_malformed() {
    let mut c = Client::streaming(false);
    c.request(1, "POST", "/early", false);
    assert_eq!(
        c.take(),
        vec![
            headers(1, "200", false),
            data(1, "early", true),
            Out::Rst {
                sid: 1,
                code: ErrorCode::NoError
            }
        ]
    );
    assert_eq!(c.conn.open_streams(), 0);

    let block = c.block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/up"),
        ("content-length", "3"),
    ]);
    let mut b = Vec::new();
    encode_headers(&mut b, 3, &block, false, 16384);
    c.send(&b);
    c.body(3, 4, false);
    assert_eq!(
        c.take(),
        vec![Out::Rst {
            sid: 3,
            code: ErrorCode::ProtocolError
        }]
    );
    assert_eq!(c.app.cancelled, 1);
}

/// A request body dripping in slower than `min_body_rate` (counted from its HEADERS,
/// judged once `stall_timeout` has passed) is answered 408 and reset with NO_ERROR,
/// counted; one fast enough is left alone, and a body the application paused is not
/// judged (the client is held back by the server then).
#[test]
fn a_slow_drip_body_is_answered_408() {
    let mut c = Client::ready();
    let t0 = c.port.now;
    c.request(1, "POST", "/echo", false);
    c.request(3, "POST", "/echo", false);
    let mut b = Vec::new();
    encode_data(&mut b, 1, b"x", false);
    for piece in vec![b'y'; 64 << 10].chunks(16_384) {
        encode_data(&mut b, 3, piece, false);
    }
    c.send(&b);
    c.take();
    // Stream 1 is due at the stall timeout; stream 3 brought 64 KiB, a minute's worth.
    assert_eq!(c.conn.deadline(), Some(t0 + Duration::from_secs(30)));
    advance(&mut c, 30);
    fire(&mut c);
    assert_eq!(
        c.take(),
        vec![
            headers(1, "408", true),
            Out::Rst {
                sid: 1,
                code: ErrorCode::NoError
            }
        ]
    );
    assert_eq!(c.port.counters.h2.slow_bodies, 1);
    assert_eq!(c.conn.open_streams(), 1);
    assert_eq!(c.conn.deadline(), Some(t0 + Duration::from_secs(65)));

    let mut c = Client::streaming(true);
    c.request(1, "POST", "/up", false);
    c.body(1, 1, false);
    assert_eq!(c.app.pieces.len(), 1);
    // Paused by the application: only the timer it set is due, no slow-body bound.
    assert_eq!(c.conn.deadline(), None);
}
