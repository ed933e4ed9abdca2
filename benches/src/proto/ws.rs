//! The `ws` target: WebSocket (RFC 6455) echo.
//!
//! A fresh connection first sends the opening handshake and waits for the `101`
//! (RFC 6455 §4.1: no frame before it). The `101` must carry `Upgrade: websocket`,
//! `Connection: Upgrade` and the right `Sec-WebSocket-Accept`, and no extension or
//! subprotocol (none was offered). Then every message is one masked binary frame whose
//! payload comes from [`fill_payload`], and must come back as an unmasked binary message
//! with the same payload, byte for byte (one frame, or fragments with control frames
//! between them). A ping is answered with a pong (a server may probe an idle
//! connection); an unsolicited pong is ignored (§5.5.3). Anything else (a masked
//! server frame, a text or close frame, reserved bits, a non-minimal length, a
//! payload that differs) is a [`BadResponse`].
//!
//! The frame code here is written independently of `ringmaster-protocols`, so that the
//! load generator checks the server rather than agreeing with it.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::{fill_payload, BadResponse, Conversation};

/// RFC 6455 §1.3: appended to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// A `101` head longer than this is not a WebSocket server's.
const MAX_HEAD: usize = 16 * 1024;
/// Most response headers looked at.
const MAX_HEADERS: usize = 32;

const OP_CONT: u8 = 0x0;
const OP_BINARY: u8 = 0x2;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// What every `ws` connection of a run says: the handshake's target and `Host`, and
/// the payload size.
#[derive(Debug)]
pub(crate) struct WsSpec {
    host: String,
    path: String,
    size: usize,
}

impl WsSpec {
    /// Checks the request target; `host` is what `Host` says (the `--addr` given).
    pub(crate) fn new(host: &str, path: &str, size: usize) -> Result<Self, String> {
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "--path `{path}` must start with `/` and hold no spaces or control characters"
            ));
        }
        Ok(WsSpec {
            host: host.to_string(),
            path: path.to_string(),
            size,
        })
    }

    /// Bytes of one request frame on the wire (header, mask key, payload).
    pub(crate) fn request_len(&self) -> usize {
        frame_header_len(self.size as u64, true) + self.size
    }
}

/// Header bytes of a frame with this payload length (and a mask key when `masked`).
fn frame_header_len(len: u64, masked: bool) -> usize {
    let ext = match len {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    2 + ext + if masked { 4 } else { 0 }
}

/// Appends a client frame: FIN set, `opcode`, masked with `key` (§5.3).
fn put_masked_frame(out: &mut Vec<u8>, opcode: u8, key: [u8; 4], payload_len: usize) -> usize {
    out.push(0x80 | opcode);
    match payload_len as u64 {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    let start = out.len();
    out.resize(start + payload_len, 0);
    start
}

/// XORs `data` with the mask key, starting at key byte 0.
fn mask(data: &mut [u8], key: [u8; 4]) {
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        for (b, k) in c.iter_mut().zip(key) {
            *b ^= k;
        }
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

/// `Sec-WebSocket-Accept` for `key`.
fn accept_of(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Where the connection is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connected: the handshake is still to be sent.
    Fresh,
    /// Handshake sent, waiting for the `101`.
    Upgrading,
    /// Upgraded: frames both ways.
    Open,
}

/// What the frame being received carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// (Part of) an echoed binary message.
    Data,
    /// A ping's payload, to be echoed in a pong.
    Ping,
    /// An unsolicited pong's payload, ignored.
    Pong,
}

/// The frame whose payload is being received.
#[derive(Debug, Clone, Copy)]
struct Frame {
    body: Body,
    /// Payload bytes still to come.
    left: u64,
    fin: bool,
}

/// One connection's WebSocket echo conversation.
pub(crate) struct Ws {
    spec: Arc<WsSpec>,
    salt: u64,
    /// splitmix64 state for keys and masks (they need not be secret, only unguessable
    /// enough that a server cannot rely on them, §10.3).
    rng: u64,
    phase: Phase,
    /// The `Sec-WebSocket-Accept` the server must answer with.
    accept: String,
    /// `Sec-WebSocket-Key` of this connection.
    key: String,
    /// Response head received so far.
    head: Vec<u8>,
    /// Sequence number of the next message to send.
    next_seq: u64,
    /// Sequence number of the message being received.
    recv_seq: u64,
    /// Frame header bytes received so far (at most 10: server frames are unmasked).
    hdr: [u8; 10],
    hdr_len: usize,
    frame: Option<Frame>,
    /// A data message is open (a fragment without FIN was received).
    in_message: bool,
    /// Payload bytes of the message being received, over all its fragments.
    msg_off: usize,
    /// The expected payload of `expected_seq`.
    expected: Vec<u8>,
    expected_seq: Option<u64>,
    /// Payload of the ping being received.
    ping: Vec<u8>,
    /// Bytes to send on our own (the handshake, pongs).
    pending: Vec<u8>,
}

impl Ws {
    /// The conversation of connection `salt`.
    pub(crate) fn new(spec: Arc<WsSpec>, salt: u64) -> Self {
        // A random seed per connection (std's per-process random hasher keys), mixed
        // with the connection: keys differ between connections and between runs.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        let size = spec.size;
        Ws {
            spec,
            salt,
            rng: h.finish(),
            phase: Phase::Fresh,
            accept: String::new(),
            key: String::new(),
            head: Vec::new(),
            next_seq: 0,
            recv_seq: 0,
            hdr: [0; 10],
            hdr_len: 0,
            frame: None,
            in_message: false,
            msg_off: 0,
            expected: vec![0; size],
            expected_seq: None,
            ping: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn next_rand(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn mask_key(&mut self) -> [u8; 4] {
        (self.next_rand() as u32).to_ne_bytes()
    }

    /// Appends the opening handshake (§4.1) with a fresh key.
    fn handshake(&mut self, out: &mut Vec<u8>) {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&self.next_rand().to_ne_bytes());
        raw[8..].copy_from_slice(&self.next_rand().to_ne_bytes());
        self.key = base64::engine::general_purpose::STANDARD.encode(raw);
        self.accept = accept_of(&self.key);
        let s = &self.spec;
        out.extend_from_slice(
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
                s.path, s.host, self.key
            )
            .as_bytes(),
        );
    }

    /// Takes response-head bytes; returns how many of `data` it used and whether the
    /// `101` is complete (and valid).
    fn upgrade(&mut self, data: &[u8]) -> Result<(usize, bool), BadResponse> {
        let old = self.head.len();
        self.head.extend_from_slice(data);
        let from = old.saturating_sub(3);
        let Some(end) = self.head[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| from + p + 4)
        else {
            // Incomplete: still it must be the start of a response head (a frame sent
            // before the 101 is not).
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let partial = httparse::Response::new(&mut headers).parse(&self.head);
            return if self.head.len() > MAX_HEAD || partial.is_err() {
                Err(BadResponse)
            } else {
                Ok((data.len(), false))
            };
        };
        self.head.truncate(end);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&self.head) {
            Ok(httparse::Status::Complete(n)) if n == end => {}
            _ => return Err(BadResponse),
        }
        if resp.code != Some(101) || resp.version != Some(1) {
            return Err(BadResponse);
        }
        let (mut upgrade, mut connection, mut accept) = (false, false, false);
        for h in resp.headers.iter() {
            let v = std::str::from_utf8(h.value)
                .map_err(|_| BadResponse)?
                .trim();
            if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = v.eq_ignore_ascii_case("websocket");
            } else if h.name.eq_ignore_ascii_case("connection") {
                connection |= v
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
            } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
                if accept {
                    return Err(BadResponse); // twice
                }
                accept = v == self.accept;
                if !accept {
                    return Err(BadResponse);
                }
            } else if h.name.eq_ignore_ascii_case("sec-websocket-extensions")
                || h.name.eq_ignore_ascii_case("sec-websocket-protocol")
            {
                return Err(BadResponse); // §4.1: we offered none
            }
        }
        if !(upgrade && connection && accept) {
            return Err(BadResponse);
        }
        self.head = Vec::new();
        self.phase = Phase::Open;
        Ok((end - old, true))
    }

    /// A frame header is complete in `hdr[..hdr_len]`: checks it, starts the frame.
    fn start_frame(&mut self, len: u64) -> Result<(), BadResponse> {
        let (b0, fin) = (self.hdr[0], self.hdr[0] & 0x80 != 0);
        let opcode = b0 & 0x0F;
        let body = match opcode {
            OP_BINARY | OP_CONT => {
                if (opcode == OP_BINARY) == self.in_message {
                    // A new message inside an open one, or a continuation of nothing.
                    return Err(BadResponse);
                }
                if opcode == OP_BINARY {
                    if self.recv_seq >= self.next_seq {
                        return Err(BadResponse); // a message nobody sent
                    }
                    if self.expected_seq != Some(self.recv_seq) {
                        fill_payload(self.salt, self.recv_seq, &mut self.expected);
                        self.expected_seq = Some(self.recv_seq);
                    }
                }
                let total = self.msg_off as u64 + len;
                let size = self.spec.size as u64;
                if total > size || (fin && total != size) {
                    return Err(BadResponse); // longer or shorter than the message sent
                }
                self.in_message = !fin;
                Body::Data
            }
            OP_PING | OP_PONG => {
                if !fin || len > 125 {
                    return Err(BadResponse); // §5.5: control frames are short and whole
                }
                self.ping.clear();
                if opcode == OP_PING {
                    Body::Ping
                } else {
                    Body::Pong
                }
            }
            // Close (the server gave up on us), text (we sent binary), reserved.
            _ => return Err(BadResponse),
        };
        self.frame = Some(Frame {
            body,
            left: len,
            fin,
        });
        Ok(())
    }

    /// The frame's payload is all in; returns the messages it completed (0 or 1).
    fn end_frame(&mut self, f: Frame) -> usize {
        self.frame = None;
        match f.body {
            Body::Data if f.fin => {
                self.msg_off = 0;
                self.recv_seq += 1;
                1
            }
            Body::Data | Body::Pong => 0,
            Body::Ping => {
                let key = self.mask_key();
                let mut out = std::mem::take(&mut self.pending);
                let start = put_masked_frame(&mut out, OP_PONG, key, self.ping.len());
                out[start..].copy_from_slice(&self.ping);
                mask(&mut out[start..], key);
                self.pending = out;
                0
            }
        }
    }
}

impl Conversation for Ws {
    fn reset(&mut self) {
        // As Echo: sequence numbers go on, so nothing of the old connection passes.
        self.recv_seq = self.next_seq;
        self.phase = Phase::Fresh;
        self.head.clear();
        self.hdr_len = 0;
        self.frame = None;
        self.in_message = false;
        self.msg_off = 0;
        self.pending.clear();
    }

    fn poll_output(&mut self, out: &mut Vec<u8>) {
        if self.phase == Phase::Fresh {
            self.handshake(out);
            self.phase = Phase::Upgrading;
        }
        out.append(&mut self.pending);
    }

    fn ready(&self) -> bool {
        self.phase == Phase::Open
    }

    fn push_request(&mut self, out: &mut Vec<u8>) {
        debug_assert!(self.ready(), "a frame before the 101");
        let key = self.mask_key();
        let start = put_masked_frame(out, OP_BINARY, key, self.spec.size);
        fill_payload(self.salt, self.next_seq, &mut out[start..]);
        mask(&mut out[start..], key);
        self.next_seq += 1;
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<usize, BadResponse> {
        match self.phase {
            Phase::Fresh => {
                return if data.is_empty() {
                    Ok(0)
                } else {
                    Err(BadResponse) // the server spoke first
                };
            }
            Phase::Upgrading => {
                let (used, open) = self.upgrade(data)?;
                if !open {
                    return Ok(0);
                }
                data = &data[used..];
            }
            Phase::Open => {}
        }
        let mut done = 0;
        while !data.is_empty() {
            let Some(mut f) = self.frame else {
                // Header: 2 bytes, then the extended length they announce.
                let need = match self.hdr_len {
                    0 | 1 => 2,
                    _ => match self.hdr[1] & 0x7F {
                        126 => 4,
                        127 => 10,
                        _ => 2,
                    },
                };
                let n = (need - self.hdr_len).min(data.len());
                self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&data[..n]);
                self.hdr_len += n;
                data = &data[n..];
                if self.hdr_len == 2 && (self.hdr[0] & 0x70 != 0 || self.hdr[1] & 0x80 != 0) {
                    return Err(BadResponse); // reserved bits, or a masked server frame
                }
                if self.hdr_len < need || need == 2 && self.hdr[1] & 0x7F >= 126 {
                    continue;
                }
                let len = match need {
                    2 => u64::from(self.hdr[1] & 0x7F),
                    4 => {
                        let l = u64::from(u16::from_be_bytes([self.hdr[2], self.hdr[3]]));
                        if l < 126 {
                            return Err(BadResponse); // §5.2: minimal length encoding
                        }
                        l
                    }
                    _ => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.hdr[2..10]);
                        let l = u64::from_be_bytes(b);
                        if l <= 65535 || l >> 63 != 0 {
                            return Err(BadResponse);
                        }
                        l
                    }
                };
                self.hdr_len = 0;
                self.start_frame(len)?;
                if len == 0 {
                    let f = self.frame.expect("just started");
                    done += self.end_frame(f);
                }
                continue;
            };
            let n = (f.left.min(data.len() as u64)) as usize;
            match f.body {
                Body::Data => {
                    if data[..n] != self.expected[self.msg_off..self.msg_off + n] {
                        return Err(BadResponse);
                    }
                    self.msg_off += n;
                }
                Body::Ping => self.ping.extend_from_slice(&data[..n]),
                Body::Pong => {}
            }
            data = &data[n..];
            f.left -= n as u64;
            self.frame = Some(f);
            if f.left == 0 {
                done += self.end_frame(f);
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: usize) -> Arc<WsSpec> {
        Arc::new(WsSpec::new("127.0.0.1:9", "/ws", size).unwrap())
    }

    /// The request the conversation sent first, and the matching `101`.
    fn open(ws: &mut Ws) -> (String, Vec<u8>) {
        ws.reset();
        let mut out = Vec::new();
        ws.poll_output(&mut out);
        let req = String::from_utf8(out).unwrap();
        let key = req
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_string();
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_of(&key)
        );
        (req, resp.into_bytes())
    }

    /// Decodes a client frame: (opcode, unmasked payload).
    fn client_frame(b: &[u8]) -> (u8, Vec<u8>, usize) {
        assert_eq!(b[0] & 0xF0, 0x80, "FIN, no RSV");
        assert_eq!(b[1] & 0x80, 0x80, "client frames are masked");
        let (len, mut at) = match b[1] & 0x7F {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let key: [u8; 4] = b[at..at + 4].try_into().unwrap();
        at += 4;
        let mut p = b[at..at + len].to_vec();
        mask(&mut p, key);
        (b[0] & 0x0F, p, at + len)
    }

    /// A server frame: unmasked.
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![u8::from(fin) << 7 | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n @ 126..=65535 => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    /// Sends `n` messages; returns their payloads.
    fn send(ws: &mut Ws, n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for _ in 0..n {
            ws.push_request(&mut out);
        }
        let mut rest = &out[..];
        let mut payloads = Vec::new();
        while !rest.is_empty() {
            let (op, p, used) = client_frame(rest);
            assert_eq!(op, OP_BINARY);
            payloads.push(p);
            rest = &rest[used..];
        }
        payloads
    }

    #[test]
    fn handshake_is_rfc6455_and_accept_matches_the_rfc_example() {
        // RFC 6455 §1.3's worked example.
        assert_eq!(
            accept_of("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let mut ws = Ws::new(spec(8), 1);
        assert!(!ws.ready());
        let (req, resp) = open(&mut ws);
        assert!(req.starts_with("GET /ws HTTP/1.1\r\n"), "{req}");
        for h in [
            "Host: 127.0.0.1:9",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
        ] {
            assert!(req.contains(h), "{req}");
        }
        let key = req
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap();
        assert_eq!(raw.len(), 16);
        assert!(!ws.ready(), "no frame before the 101");
        assert_eq!(ws.feed(&resp), Ok(0), "the 101 is not a message");
        assert!(ws.ready());
        // A new connection: a new key, and not ready again.
        let (req2, _) = open(&mut ws);
        assert_ne!(req, req2);
        assert!(!ws.ready());
    }

    #[test]
    fn a_wrong_or_missing_101_is_bad() {
        let wrong: [fn(&str) -> String; 6] = [
            |r| r.replace("Accept: ", "Accept: x"),
            |r| r.replace("101 Switching Protocols", "200 OK"),
            |r| r.replace("Upgrade: websocket", "Upgrade: h2c"),
            |r| r.replace("Connection: Upgrade", "Connection: keep-alive"),
            |r| r.replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: x\r\n\r\n"),
            |r| {
                let mut lines: Vec<&str> = r.split("\r\n").collect();
                lines.retain(|l| !l.starts_with("Sec-WebSocket-Accept"));
                lines.join("\r\n")
            },
        ];
        for (k, f) in wrong.iter().enumerate() {
            let mut ws = Ws::new(spec(8), 1);
            let (_, resp) = open(&mut ws);
            let resp = f(std::str::from_utf8(&resp).unwrap());
            assert_eq!(
                ws.feed(resp.as_bytes()),
                Err(BadResponse),
                "case {k}: {resp}"
            );
        }
        // An accept key for another request.
        let mut ws = Ws::new(spec(8), 1);
        let (_, resp) = open(&mut ws);
        let mut other = Ws::new(spec(8), 1);
        let (_, other_resp) = open(&mut other);
        assert_ne!(resp, other_resp);
        assert_eq!(ws.feed(&other_resp), Err(BadResponse));
    }

    #[test]
    fn echoes_pass_in_any_split_and_every_length_encoding() {
        // 7-bit, 16-bit (>125) and 64-bit (>65535) lengths.
        for size in [1, 125, 126, 1000, 65535, 65536, 70_000] {
            let mut ws = Ws::new(spec(size), 3);
            let (_, resp) = open(&mut ws);
            let mut wire = resp.clone();
            // A ping between the 101 and the echoes, answered with a pong.
            wire.extend(server_frame(true, OP_PING, b"are you there"));
            assert_eq!(ws.feed(&wire), Ok(0));
            let mut out = Vec::new();
            ws.poll_output(&mut out);
            let (op, p, used) = client_frame(&out);
            assert_eq!(
                (op, &p[..], used),
                (OP_PONG, &b"are you there"[..], out.len())
            );
            let sent = send(&mut ws, 3);
            assert!(sent.iter().all(|p| p.len() == size));
            let mut wire = Vec::new();
            for p in &sent {
                wire.extend(server_frame(true, OP_BINARY, p));
            }
            let chunks: &[usize] = if size > 1000 {
                &[4096, 65536]
            } else {
                &[1, 2, 3, 7, 64]
            };
            for &chunk in chunks {
                let mut w = Ws::new(spec(size), 3);
                let (_, resp) = open(&mut w);
                let sent2 = send_after(&mut w, &resp, 3);
                assert_eq!(sent2, sent.iter().map(|p| p.len()).collect::<Vec<_>>());
                let mut done = 0;
                for c in wire.chunks(chunk) {
                    done += w.feed(c).unwrap();
                }
                assert_eq!(done, 3, "size {size} chunk {chunk}");
            }
            assert_eq!(ws.feed(&wire), Ok(3));
        }
    }

    /// Feeds the `101`, sends `n` messages; returns their payload lengths.
    fn send_after(ws: &mut Ws, resp: &[u8], n: usize) -> Vec<usize> {
        assert_eq!(ws.feed(resp), Ok(0));
        send(ws, n).iter().map(Vec::len).collect()
    }

    #[test]
    fn fragments_with_a_ping_between_and_split_101_pass() {
        let mut ws = Ws::new(spec(300), 9);
        let (_, resp) = open(&mut ws);
        let (a, b) = resp.split_at(resp.len() - 2);
        assert_eq!(ws.feed(a), Ok(0));
        assert!(!ws.ready());
        let mut wire = b.to_vec();
        assert!(wire.len() == 2);
        let sent = {
            // Not ready until the tail of the 101 arrives.
            assert_eq!(ws.feed(&wire), Ok(0));
            assert!(ws.ready());
            send(&mut ws, 1)
        };
        wire.clear();
        wire.extend(server_frame(false, OP_BINARY, &sent[0][..100]));
        wire.extend(server_frame(true, OP_PING, b""));
        wire.extend(server_frame(false, OP_CONT, &sent[0][100..200]));
        wire.extend(server_frame(true, OP_PONG, b"unsolicited"));
        wire.extend(server_frame(true, OP_CONT, &sent[0][200..]));
        let mut done = 0;
        for c in wire.chunks(5) {
            done += ws.feed(c).unwrap();
        }
        assert_eq!(done, 1);
    }

    #[test]
    fn wrong_frames_are_bad() {
        let size = 200;
        // (what, the echo of payload made wrong)
        type Case = (&'static str, fn(&[u8]) -> Vec<u8>);
        let cases: [Case; 9] = [
            ("masked", |p| {
                let mut f = server_frame(true, OP_BINARY, p);
                f[1] |= 0x80;
                f.splice(4..4, [0, 0, 0, 0]);
                f
            }),
            ("text", |p| server_frame(true, 0x1, p)),
            ("close", |_| server_frame(true, 0x8, &[0x03, 0xE8])),
            ("rsv1", |p| {
                let mut f = server_frame(true, OP_BINARY, p);
                f[0] |= 0x40;
                f
            }),
            ("flipped byte", |p| {
                let mut f = server_frame(true, OP_BINARY, p);
                f[50] ^= 1;
                f
            }),
            ("short", |p| server_frame(true, OP_BINARY, &p[1..])),
            ("continuation of nothing", |p| {
                server_frame(true, OP_CONT, p)
            }),
            ("long ping", |_| server_frame(true, OP_PING, &[0; 126])),
            ("non-minimal length", |p| {
                let mut f = vec![0x82, 127];
                f.extend_from_slice(&(p.len() as u64).to_be_bytes());
                f.extend_from_slice(p);
                f
            }),
        ];
        for (what, make) in cases {
            let mut ws = Ws::new(spec(size), 4);
            let (_, resp) = open(&mut ws);
            assert_eq!(ws.feed(&resp), Ok(0));
            let sent = send(&mut ws, 1);
            assert_eq!(ws.feed(&make(&sent[0])), Err(BadResponse), "{what}");
        }
        // An echo nobody asked for (a second copy), and a frame before the 101.
        let mut ws = Ws::new(spec(size), 4);
        let (_, resp) = open(&mut ws);
        assert_eq!(ws.feed(&resp), Ok(0));
        let sent = send(&mut ws, 1);
        let mut twice = server_frame(true, OP_BINARY, &sent[0]);
        twice.extend(server_frame(true, OP_BINARY, &sent[0]));
        assert_eq!(ws.feed(&twice), Err(BadResponse));
        let mut ws = Ws::new(spec(size), 4);
        let _ = open(&mut ws);
        assert_eq!(
            ws.feed(&server_frame(true, OP_BINARY, b"x")),
            Err(BadResponse)
        );
    }

    #[test]
    fn a_message_of_the_previous_connection_is_rejected() {
        let mut ws = Ws::new(spec(32), 5);
        let (_, resp) = open(&mut ws);
        assert_eq!(ws.feed(&resp), Ok(0));
        let old = send(&mut ws, 1);
        let (_, resp) = open(&mut ws);
        assert_eq!(ws.feed(&resp), Ok(0));
        let _new = send(&mut ws, 1);
        assert_eq!(
            ws.feed(&server_frame(true, OP_BINARY, &old[0])),
            Err(BadResponse)
        );
    }

    #[test]
    fn bad_paths_are_refused() {
        assert!(WsSpec::new("h:1", "ws", 1).is_err());
        assert!(WsSpec::new("h:1", "/a b", 1).is_err());
        assert_eq!(WsSpec::new("h:1", "/", 100).unwrap().request_len(), 106);
        assert_eq!(WsSpec::new("h:1", "/", 200).unwrap().request_len(), 208);
        assert_eq!(
            WsSpec::new("h:1", "/", 70_000).unwrap().request_len(),
            70_014
        );
    }
}
