//! One WebSocket connection's protocol state, sans-IO: client bytes in, messages out,
//! the protocol's own replies (pong, close) appended to an output buffer.
//!
//! This module owns framing rules (masking, reserved bits, control frames), message
//! assembly across fragments with control frames interleaved, incremental UTF-8
//! validation of text, the message size limit and the close handshake. It owns no
//! timer and no socket: the caller decides when bytes arrive and where output goes.
//!
//! Payload bytes are unmasked straight into the message buffer as they arrive, so a
//! frame larger than a receive buffer never waits in the runtime's carry-over: only an
//! incomplete frame header (at most 14 bytes) or control frame (at most 131) is left
//! unconsumed. The message buffer is given back when a message over 64 KiB completes,
//! so an idle connection holds no large allocation.
//!
//! Invariants: once the state is `Done` nothing more is parsed or delivered; every
//! failure writes at most one close frame, and never after one was already sent.

use super::frame::{
    decode_header, encode_close, encode_frame, unmask_into, FrameHeader, HeaderError, OpCode,
    MAX_CONTROL_PAYLOAD,
};
use super::utf8::Utf8Validator;

/// Above this capacity the message buffer is freed after each message.
const MSG_KEEP: usize = 64 * 1024;

/// A complete message as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8, checked).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// Status codes this module sends (RFC 6455 section 7.4.1).
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown, idle).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// Text that is not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL: u16 = 1011;
}

/// True for a status code a peer may send in a close frame.
pub fn valid_close_code(c: u16) -> bool {
    matches!(c, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Where the close handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// The handshake is over (or the connection failed): close the TCP connection once
    /// the output is flushed.
    Done,
}

/// Why the session failed the connection, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A framing rule was broken (1002).
    Protocol,
    /// Text was not UTF-8 (1007).
    Utf8,
    /// A message exceeded the size limit (1009).
    TooBig,
}

/// What the session tells its driver after a call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Bytes of the input consumed.
    pub consumed: usize,
    /// The connection failed for this reason (a close frame was written).
    pub failure: Option<Failure>,
    /// Messages delivered.
    pub messages: u64,
}

/// The application's answer to a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Carry on.
    Continue,
    /// The application wrote a close frame: stop delivering, wait for the peer's close.
    CloseSent,
}

/// A data frame whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    mask: [u8; 4],
    remaining: u64,
    offset: u64,
    fin: bool,
}

/// One connection's WebSocket state (see the module docs).
#[derive(Debug)]
pub struct Session {
    state: State,
    frame: Option<InFrame>,
    /// Kind of the message being assembled (`Some` between its first and last frame).
    kind: Option<OpCode>,
    msg: Vec<u8>,
    utf8: Utf8Validator,
    max_message: usize,
    /// The status code of the peer's close frame, once received.
    peer_code: Option<u16>,
}

impl Session {
    /// A new session accepting messages of at most `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Session {
            state: State::Open,
            frame: None,
            kind: None,
            msg: Vec::new(),
            utf8: Utf8Validator::new(),
            max_message,
            peer_code: None,
        }
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// The status code the peer closed with, if it sent a close frame with one.
    pub fn peer_code(&self) -> Option<u16> {
        self.peer_code
    }

    /// Notes that the application wrote a close frame itself.
    pub fn close_sent(&mut self) {
        if self.state == State::Open {
            self.state = State::CloseSent;
        }
    }

    /// Writes a close frame and ends the session at once (the connection is failed or
    /// the server is going away).
    pub fn fail(&mut self, code: u16, reason: &str, out: &mut Vec<u8>) {
        if self.state == State::Open {
            encode_close(out, Some(code), reason);
        }
        self.state = State::Done;
        self.release();
    }

    /// Starts a close handshake with `code` (no-op unless open).
    pub fn close(&mut self, code: u16, reason: &str, out: &mut Vec<u8>) {
        if self.state == State::Open {
            encode_close(out, Some(code), reason);
            self.state = State::CloseSent;
        }
    }

    /// Memory held beyond the struct itself.
    pub fn heap_bytes(&self) -> usize {
        self.msg.capacity()
    }

    fn release(&mut self) {
        self.msg = Vec::new();
        self.frame = None;
        self.kind = None;
    }

    /// Parses as much of `input` as possible. Protocol replies go to `out`; complete
    /// messages go to `deliver` (with `out`, for the application's own frames).
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        deliver: &mut dyn FnMut(Message<'_>, &mut Vec<u8>) -> Flow,
    ) -> Report {
        let mut rep = Report::default();
        let mut pos = 0usize;
        loop {
            if self.state == State::Done {
                pos = input.len();
                break;
            }
            let rest = input.get(pos..).unwrap_or_default();
            if let Some(f) = self.frame {
                let take = usize::try_from(f.remaining).map_or(rest.len(), |r| r.min(rest.len()));
                let piece = rest.get(..take).unwrap_or_default();
                let start = self.msg.len();
                unmask_into(&mut self.msg, piece, f.mask, f.offset);
                pos += take;
                if self.kind == Some(OpCode::Text) {
                    let fresh = self.msg.get(start..).unwrap_or_default();
                    if self.utf8.feed(fresh).is_err() {
                        self.fail_with(Failure::Utf8, out, &mut rep);
                        continue;
                    }
                }
                let remaining = f.remaining - take as u64; // take <= remaining
                if remaining > 0 {
                    self.frame = Some(InFrame {
                        remaining,
                        offset: f.offset + take as u64,
                        ..f
                    });
                    break; // input used up
                }
                self.frame = None;
                if f.fin {
                    self.finish_message(out, deliver, &mut rep);
                }
                continue;
            }
            let h = match decode_header(rest) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(HeaderError::ReservedOpcode(_)) | Err(HeaderError::LengthTooLarge) => {
                    self.fail_with(Failure::Protocol, out, &mut rep);
                    continue;
                }
            };
            if h.rsv != 0 || h.mask.is_none() {
                self.fail_with(Failure::Protocol, out, &mut rep);
                continue;
            }
            if h.opcode.is_control() {
                if !h.fin || h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                    self.fail_with(Failure::Protocol, out, &mut rep);
                    continue;
                }
                let end = h.header_len + h.payload_len as usize; // both small
                let Some(frame) = rest.get(..end) else {
                    break; // wait for the whole control frame
                };
                pos += end;
                self.control(
                    &h,
                    frame.get(h.header_len..).unwrap_or_default(),
                    out,
                    &mut rep,
                );
                continue;
            }
            match (h.opcode, self.kind) {
                (OpCode::Continuation, None) | (OpCode::Text | OpCode::Binary, Some(_)) => {
                    self.fail_with(Failure::Protocol, out, &mut rep);
                    continue;
                }
                _ => {}
            }
            if (self.msg.len() as u64).saturating_add(h.payload_len) > self.max_message as u64 {
                self.fail_with(Failure::TooBig, out, &mut rep);
                continue;
            }
            if h.opcode != OpCode::Continuation {
                self.kind = Some(h.opcode);
                if self.msg.capacity() == 0 {
                    // Reserve for this frame, bounded: a lying length costs nothing.
                    self.msg.reserve(h.payload_len.min(64 * 1024) as usize);
                }
            }
            pos += h.header_len;
            self.frame = Some(InFrame {
                mask: h.mask.unwrap_or_default(),
                remaining: h.payload_len,
                offset: 0,
                fin: h.fin,
            });
        }
        rep.consumed = pos;
        rep
    }

    fn fail_with(&mut self, why: Failure, out: &mut Vec<u8>, rep: &mut Report) {
        let (code, reason) = match why {
            Failure::Protocol => (code::PROTOCOL, "protocol error"),
            Failure::Utf8 => (code::INVALID_DATA, "invalid UTF-8"),
            Failure::TooBig => (code::TOO_BIG, "message too big"),
        };
        rep.failure = Some(why);
        self.fail(code, reason, out);
    }

    fn finish_message(
        &mut self,
        out: &mut Vec<u8>,
        deliver: &mut dyn FnMut(Message<'_>, &mut Vec<u8>) -> Flow,
        rep: &mut Report,
    ) {
        let kind = self.kind.take();
        if kind == Some(OpCode::Text) && self.utf8.finish().is_err() {
            return self.fail_with(Failure::Utf8, out, rep);
        }
        if self.state == State::Open {
            let msg = match kind {
                Some(OpCode::Text) => match std::str::from_utf8(&self.msg) {
                    Ok(s) => Message::Text(s),
                    Err(_) => return self.fail_with(Failure::Utf8, out, rep),
                },
                _ => Message::Binary(&self.msg),
            };
            rep.messages += 1;
            if deliver(msg, out) == Flow::CloseSent {
                self.close_sent();
            }
        }
        // After we sent a close, data is read and dropped until the peer's close.
        if self.msg.capacity() > MSG_KEEP {
            self.msg = Vec::new();
        } else {
            self.msg.clear();
        }
    }

    fn control(&mut self, h: &FrameHeader, masked: &[u8], out: &mut Vec<u8>, rep: &mut Report) {
        // Control payloads are at most 125 bytes: unmask them on the stack.
        let mut buf = [0u8; MAX_CONTROL_PAYLOAD];
        let n = masked.len().min(MAX_CONTROL_PAYLOAD);
        let payload = buf.get_mut(..n).unwrap_or_default();
        payload.copy_from_slice(masked.get(..n).unwrap_or_default());
        if let Some(key) = h.mask {
            super::frame::unmask_in_place(payload, key, 0);
        }
        let payload: &[u8] = payload;
        match h.opcode {
            OpCode::Ping if self.state == State::Open => {
                encode_frame(out, OpCode::Pong, payload);
            }
            OpCode::Ping | OpCode::Pong => {}
            OpCode::Close => {
                let code = match payload {
                    [] => None,
                    [_] => return self.fail_with(Failure::Protocol, out, rep),
                    [a, b, reason @ ..] => {
                        let c = u16::from_be_bytes([*a, *b]);
                        if !valid_close_code(c) {
                            return self.fail_with(Failure::Protocol, out, rep);
                        }
                        if std::str::from_utf8(reason).is_err() {
                            return self.fail_with(Failure::Utf8, out, rep);
                        }
                        Some(c)
                    }
                };
                self.peer_code = code;
                if self.state == State::Open {
                    // Echo the status code (RFC 6455 5.5.1), without the reason.
                    encode_close(out, code, "");
                }
                self.state = State::Done;
                self.release();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::client_frame;
    use super::*;

    const K: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[derive(Debug, PartialEq)]
    enum Ev {
        Text(String),
        Bin(Vec<u8>),
    }

    /// Feeds `input` in pieces of `chunk` bytes, like reads would, keeping unconsumed
    /// bytes as the runtime's carry-over does.
    fn run(s: &mut Session, input: &[u8], chunk: usize) -> (Vec<Ev>, Vec<u8>, Option<Failure>) {
        let mut evs = Vec::new();
        let mut out = Vec::new();
        let mut carry: Vec<u8> = Vec::new();
        let mut fail = None;
        for piece in input.chunks(chunk.max(1)) {
            carry.extend_from_slice(piece);
            let rep = s.feed(&carry, &mut out, &mut |m, _| {
                evs.push(match m {
                    Message::Text(t) => Ev::Text(t.to_string()),
                    Message::Binary(b) => Ev::Bin(b.to_vec()),
                });
                Flow::Continue
            });
            carry.drain(..rep.consumed);
            fail = fail.or(rep.failure);
        }
        (evs, out, fail)
    }

    fn close_code(out: &[u8]) -> Option<u16> {
        let h = decode_header(out).ok()??;
        if h.opcode != OpCode::Close {
            return None;
        }
        let p = out.get(h.header_len..h.header_len + 2)?;
        Some(u16::from_be_bytes([p[0], p[1]]))
    }

    fn all_chunkings(input: &[u8], check: impl Fn(Vec<Ev>, Vec<u8>, Option<Failure>)) {
        for chunk in [1, 2, 3, 7, 64, input.len().max(1)] {
            let mut s = Session::new(1 << 20);
            let (e, o, f) = run(&mut s, input, chunk);
            check(e, o, f);
        }
    }

    #[test]
    fn fragmented_text_with_interleaved_ping() {
        let mut input = client_frame(false, 1, "héllo ".as_bytes(), K);
        input.extend(client_frame(true, 9, b"are you there", K));
        input.extend(client_frame(false, 0, "wör".as_bytes(), K));
        input.extend(client_frame(true, 0, "ld".as_bytes(), K));
        input.extend(client_frame(true, 2, &[0, 1, 2], K));
        all_chunkings(&input, |e, o, f| {
            assert_eq!(f, None);
            assert_eq!(
                e,
                vec![Ev::Text("héllo wörld".into()), Ev::Bin(vec![0, 1, 2])]
            );
            let mut pong = Vec::new();
            encode_frame(&mut pong, OpCode::Pong, b"are you there");
            assert_eq!(o, pong);
        });
    }

    #[test]
    fn close_is_echoed() {
        let mut p = 4001u16.to_be_bytes().to_vec();
        p.extend_from_slice(b"bye");
        let input = client_frame(true, 8, &p, K);
        let mut s = Session::new(100);
        let (e, o, f) = run(&mut s, &input, 5);
        assert!(e.is_empty() && f.is_none());
        assert_eq!(close_code(&o), Some(4001));
        assert_eq!(s.state(), State::Done);
        assert_eq!(s.peer_code(), Some(4001));
        // Empty close: empty close back.
        let mut s = Session::new(100);
        let (_, o, _) = run(&mut s, &client_frame(true, 8, &[], K), 1);
        assert_eq!(o, vec![0x88, 0x00]);
    }

    #[test]
    fn failures_and_their_codes() {
        let big = vec![b'a'; 200];
        let cases: Vec<(Vec<u8>, u16, Failure)> = vec![
            // unmasked
            (vec![0x81, 0x01, b'a'], 1002, Failure::Protocol),
            // reserved bit
            (
                {
                    let mut f = client_frame(true, 1, b"a", K);
                    f[0] |= 0x40;
                    f
                },
                1002,
                Failure::Protocol,
            ),
            // reserved opcodes
            (client_frame(true, 3, b"", K), 1002, Failure::Protocol),
            (client_frame(true, 0xB, b"", K), 1002, Failure::Protocol),
            // control frame too long / fragmented
            (client_frame(true, 9, &big, K), 1002, Failure::Protocol),
            (client_frame(false, 9, b"x", K), 1002, Failure::Protocol),
            // continuation with nothing to continue; new message inside a fragmented one
            (client_frame(true, 0, b"x", K), 1002, Failure::Protocol),
            (
                {
                    let mut f = client_frame(false, 1, b"x", K);
                    f.extend(client_frame(true, 1, b"y", K));
                    f
                },
                1002,
                Failure::Protocol,
            ),
            // close codes
            (client_frame(true, 8, &[3], K), 1002, Failure::Protocol),
            (
                client_frame(true, 8, &1005u16.to_be_bytes(), K),
                1002,
                Failure::Protocol,
            ),
            (
                client_frame(true, 8, &999u16.to_be_bytes(), K),
                1002,
                Failure::Protocol,
            ),
            (
                client_frame(true, 8, &5000u16.to_be_bytes(), K),
                1002,
                Failure::Protocol,
            ),
            (
                client_frame(true, 8, &[0x03, 0xE8, 0xFF], K),
                1007,
                Failure::Utf8,
            ),
            // invalid UTF-8 split across fragments: 0xF4 | 0x90 0x80 0x80
            (
                {
                    let mut f = client_frame(false, 1, &[b'a', 0xF4], K);
                    f.extend(client_frame(true, 0, &[0x90, 0x80, 0x80], K));
                    f
                },
                1007,
                Failure::Utf8,
            ),
            // truncated character at the end of a message
            (client_frame(true, 1, &[0xE2, 0x82], K), 1007, Failure::Utf8),
            // too big
            (client_frame(true, 2, &[0; 101], K), 1009, Failure::TooBig),
            (
                {
                    let mut f = client_frame(false, 2, &[0; 60], K);
                    f.extend(client_frame(true, 0, &[0; 41], K));
                    f
                },
                1009,
                Failure::TooBig,
            ),
        ];
        for (i, (input, code, why)) in cases.into_iter().enumerate() {
            for chunk in [1, 3, input.len()] {
                let mut s = Session::new(100);
                let (e, o, f) = run(&mut s, &input, chunk);
                assert!(e.is_empty(), "case {i}: {e:?}");
                assert_eq!(f, Some(why), "case {i}");
                assert_eq!(close_code(&o), Some(code), "case {i}");
                assert_eq!(s.state(), State::Done);
            }
        }
    }

    #[test]
    fn utf8_fails_before_the_message_ends() {
        // The invalid byte comes in the first frame; the message never finishes.
        let input = client_frame(false, 1, &[b'o', b'k', 0xC0], K);
        let mut s = Session::new(100);
        let (_, o, f) = run(&mut s, &input, 100);
        assert_eq!((f, close_code(&o)), (Some(Failure::Utf8), Some(1007)));
    }

    #[test]
    fn a_message_at_the_limit_passes_and_big_buffers_are_released() {
        let payload = vec![9u8; 200_000];
        let mut s = Session::new(200_000);
        let (e, _, f) = run(&mut s, &client_frame(true, 2, &payload, K), 16384);
        assert_eq!(f, None);
        assert_eq!(e, vec![Ev::Bin(payload)]);
        assert_eq!(s.heap_bytes(), 0);
    }

    #[test]
    fn after_close_sent_data_is_dropped_until_the_peer_closes() {
        let mut s = Session::new(100);
        let mut out = Vec::new();
        s.close(1000, "done", &mut out);
        assert_eq!(s.state(), State::CloseSent);
        let mut input = client_frame(true, 1, b"late", K);
        input.extend(client_frame(true, 9, b"p", K));
        input.extend(client_frame(true, 8, &1000u16.to_be_bytes(), K));
        let (e, o, f) = run(&mut s, &input, 4);
        assert!(e.is_empty() && f.is_none());
        assert!(o.is_empty(), "no pong or second close after ours: {o:?}");
        assert_eq!(s.state(), State::Done);
    }

    #[test]
    fn random_input_never_panics() {
        // A cheap deterministic fuzz pass (the cargo-fuzz target goes much further).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3000 {
            let mut buf = Vec::new();
            let n = (x % 300) as usize;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            for chunk in [1, 7, 300] {
                let mut s = Session::new(1000);
                let _ = run(&mut s, &buf, chunk);
            }
        }
    }
}
