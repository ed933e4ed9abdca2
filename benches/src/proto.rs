//! What is said on a connection, without any I/O ("sans-IO").
//!
//! A [`Conversation`] produces request bytes and checks response bytes; the engine
//! moves them through sockets and keeps the clock. New targets (`http`, `udp-echo`, `ws`)
//! add a `Conversation`; a new engine (the ringmaster runtime's outbound connections)
//! reuses every conversation unchanged. TLS (`crate::tls`) is a conversation too,
//! wrapped around another: it encrypts what the inner one sends and decrypts what it
//! is fed, so every engine gets TLS without a line of its own.
//!
//! Engines hold a [`Conv`] (an enum, so the hot path is a match, not a virtual call),
//! made per connection by [`TargetPlan::conversation`].

mod h2;
mod http;
mod ws;

use std::sync::Arc;

pub(crate) use h2::{Expect, H2Spec, H2};
pub(crate) use http::{Http, HttpSpec};
pub(crate) use ws::{Ws, WsSpec};

use crate::stats::ErrorKind;
use crate::tls::Tls;

/// A response that is not the one expected (wrong bytes, or bytes nobody asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadResponse;

/// The per-connection protocol state of one target.
///
/// An engine, on a new connection: `reset`, then `poll_output` (sent at once), then
/// `push_request` while `ready` and the mode allows; after every `feed`: `poll_output`
/// again, and more requests once `ready`.
pub(crate) trait Conversation {
    /// A new connection is open: forget whatever was half-received on the previous one.
    fn reset(&mut self);
    /// Appends bytes the conversation sends of its own accord, not requests: an opening
    /// handshake on a fresh connection, a pong, TLS records. None by default.
    fn poll_output(&mut self, _out: &mut Vec<u8>) {}
    /// Whether requests may be sent yet (false until a handshake is answered). The bytes
    /// that make it ready complete no message.
    fn ready(&self) -> bool {
        true
    }
    /// Appends the bytes of the next request to `out` (only when [`Self::ready`]).
    fn push_request(&mut self, out: &mut Vec<u8>);
    /// Checks received bytes; returns how many responses they completed.
    fn feed(&mut self, data: &[u8]) -> Result<usize, BadResponse>;
    /// Why the last `feed` failed: the error kind to count.
    fn fault(&self) -> ErrorKind {
        ErrorKind::BadResponse
    }
    /// For a conversation whose responses may complete out of order (HTTP/2 streams):
    /// the requests completed by `feed` since the engine last emptied this list, each
    /// as its position among the requests then in flight (oldest first), in the order
    /// they completed. `None` (the default): responses complete in the order sent.
    fn out_of_order(&mut self) -> Option<&mut Vec<usize>> {
        None
    }
}

/// What a run's connections say, fixed for the run: makes each connection's [`Conv`].
#[derive(Debug, Clone)]
pub(crate) enum TargetPlan {
    /// TCP echo with messages of this many bytes.
    TcpEcho {
        /// Bytes per message.
        size: usize,
    },
    /// HTTP/1.1 with this request and these expectations.
    Http(Arc<HttpSpec>),
    /// HTTP/2 with this request on every stream and these expectations.
    H2(Arc<H2Spec>),
    /// WebSocket echo with this handshake and payload size.
    Ws(Arc<WsSpec>),
    /// UDP echo with datagrams of this many bytes (its own engine: no `Conv`).
    UdpEcho {
        /// Bytes per datagram.
        size: usize,
    },
}

impl TargetPlan {
    /// The conversation of the connection with global index `conn`.
    pub(crate) fn conversation(&self, conn: usize) -> Conv {
        match self {
            TargetPlan::TcpEcho { size } | TargetPlan::UdpEcho { size } => {
                Conv::Echo(Echo::new(conn as u64, *size))
            }
            TargetPlan::Http(spec) => Conv::Http(Http::new(Arc::clone(spec))),
            TargetPlan::H2(spec) => Conv::H2(Box::new(H2::new(Arc::clone(spec)))),
            TargetPlan::Ws(spec) => Conv::Ws(Ws::new(Arc::clone(spec), conn as u64)),
        }
    }

    /// Bytes of one request (to size buffers).
    pub(crate) fn request_len(&self) -> usize {
        match self {
            TargetPlan::TcpEcho { size } | TargetPlan::UdpEcho { size } => *size,
            TargetPlan::Http(spec) => spec.request_len(),
            TargetPlan::H2(spec) => spec.request_len(),
            TargetPlan::Ws(spec) => spec.request_len(),
        }
    }
}

/// One connection's conversation, whichever the target.
pub(crate) enum Conv {
    /// TCP echo.
    Echo(Echo),
    /// HTTP/1.1.
    Http(Http),
    /// HTTP/2 (boxed: its HPACK tables make it the largest).
    H2(Box<H2>),
    /// WebSocket.
    Ws(Ws),
    /// Any of the above under TLS (boxed: the variant would otherwise hold itself).
    Tls(Box<Tls<Conv>>),
}

impl Conversation for Conv {
    #[inline]
    fn reset(&mut self) {
        match self {
            Conv::Echo(c) => c.reset(),
            Conv::Http(c) => c.reset(),
            Conv::H2(c) => c.reset(),
            Conv::Ws(c) => c.reset(),
            Conv::Tls(c) => c.reset(),
        }
    }

    #[inline]
    fn poll_output(&mut self, out: &mut Vec<u8>) {
        match self {
            Conv::Echo(c) => c.poll_output(out),
            Conv::Http(c) => c.poll_output(out),
            Conv::H2(c) => c.poll_output(out),
            Conv::Ws(c) => c.poll_output(out),
            Conv::Tls(c) => c.poll_output(out),
        }
    }

    #[inline]
    fn ready(&self) -> bool {
        match self {
            Conv::Echo(c) => c.ready(),
            Conv::Http(c) => c.ready(),
            Conv::H2(c) => c.ready(),
            Conv::Ws(c) => c.ready(),
            Conv::Tls(c) => c.ready(),
        }
    }

    #[inline]
    fn push_request(&mut self, out: &mut Vec<u8>) {
        match self {
            Conv::Echo(c) => c.push_request(out),
            Conv::Http(c) => c.push_request(out),
            Conv::H2(c) => c.push_request(out),
            Conv::Ws(c) => c.push_request(out),
            Conv::Tls(c) => c.push_request(out),
        }
    }

    #[inline]
    fn feed(&mut self, data: &[u8]) -> Result<usize, BadResponse> {
        match self {
            Conv::Echo(c) => c.feed(data),
            Conv::Http(c) => c.feed(data),
            Conv::H2(c) => c.feed(data),
            Conv::Ws(c) => c.feed(data),
            Conv::Tls(c) => c.feed(data),
        }
    }

    #[inline]
    fn out_of_order(&mut self) -> Option<&mut Vec<usize>> {
        match self {
            Conv::H2(c) => c.out_of_order(),
            Conv::Tls(c) => c.out_of_order(),
            Conv::Echo(_) | Conv::Http(_) | Conv::Ws(_) => None,
        }
    }

    #[inline]
    fn fault(&self) -> ErrorKind {
        match self {
            Conv::Echo(c) => c.fault(),
            Conv::Http(c) => c.fault(),
            Conv::H2(c) => c.fault(),
            Conv::Ws(c) => c.fault(),
            Conv::Tls(c) => c.fault(),
        }
    }
}

/// Fills `buf` with the payload of message `seq` on the connection salted `salt`.
///
/// The first (up to) 8 bytes carry the sequence number mixed with the connection, so a
/// replayed, reordered or cross-wired message is caught; the rest is a counter pattern
/// offset by a per-message tag, so a dropped, duplicated or flipped byte is caught.
pub(crate) fn fill_payload(salt: u64, seq: u64, buf: &mut [u8]) {
    let head = (seq ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes();
    let tag = (seq.wrapping_add(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
    let (h, body) = buf.split_at_mut(buf.len().min(8));
    h.copy_from_slice(&head[..h.len()]);
    for (i, b) in body.iter_mut().enumerate() {
        *b = ((i + 8) as u8).wrapping_add(tag);
    }
}

/// The sequence number a payload made by [`fill_payload`] for `salt` carries, if it is
/// at least 8 bytes long.
pub(crate) fn payload_seq(salt: u64, data: &[u8]) -> Option<u64> {
    let head: [u8; 8] = data.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(head) ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

/// TCP echo: every message must come back byte for byte, in order.
pub(crate) struct Echo {
    salt: u64,
    size: usize,
    /// Sequence number of the next message to send.
    next_seq: u64,
    /// Sequence number of the message being received.
    recv_seq: u64,
    /// Bytes of it received so far.
    recv_off: usize,
    /// The expected payload of `expected_seq`.
    expected: Vec<u8>,
    expected_seq: Option<u64>,
}

impl Echo {
    /// Messages of `size` bytes, with a pattern unique to connection `salt`.
    pub(crate) fn new(salt: u64, size: usize) -> Self {
        Echo {
            salt,
            size,
            next_seq: 0,
            recv_seq: 0,
            recv_off: 0,
            expected: vec![0; size],
            expected_seq: None,
        }
    }
}

impl Conversation for Echo {
    fn reset(&mut self) {
        // Sequence numbers keep counting across connections: a message of the old
        // connection can never pass for one of the new.
        self.recv_seq = self.next_seq;
        self.recv_off = 0;
    }

    fn push_request(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.size, 0);
        fill_payload(self.salt, self.next_seq, &mut out[start..]);
        self.next_seq += 1;
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<usize, BadResponse> {
        let mut done = 0;
        while !data.is_empty() {
            if self.recv_seq >= self.next_seq {
                return Err(BadResponse); // more bytes than were sent
            }
            if self.expected_seq != Some(self.recv_seq) {
                fill_payload(self.salt, self.recv_seq, &mut self.expected);
                self.expected_seq = Some(self.recv_seq);
            }
            let n = (self.size - self.recv_off).min(data.len());
            if data[..n] != self.expected[self.recv_off..self.recv_off + n] {
                return Err(BadResponse);
            }
            data = &data[n..];
            self.recv_off += n;
            if self.recv_off == self.size {
                self.recv_off = 0;
                self.recv_seq += 1;
                done += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(echo: &mut Echo, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..n {
            echo.push_request(&mut out);
        }
        out
    }

    #[test]
    fn exact_echo_passes_in_any_chunking() {
        for size in [1, 7, 8, 9, 64, 1000] {
            for chunk in [1, 3, 64, 4096] {
                let mut e = Echo::new(5, size);
                let bytes = sent(&mut e, 10);
                let mut done = 0;
                for c in bytes.chunks(chunk) {
                    done += e.feed(c).unwrap();
                }
                assert_eq!(done, 10, "size {size} chunk {chunk}");
            }
        }
    }

    #[test]
    fn payloads_differ_between_messages_and_connections() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        fill_payload(1, 1, &mut a);
        fill_payload(1, 2, &mut b);
        assert_ne!(a, b);
        fill_payload(2, 1, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn sequence_number_is_recovered() {
        let mut b = [0u8; 16];
        fill_payload(9, 1234, &mut b);
        assert_eq!(payload_seq(9, &b), Some(1234));
        assert_eq!(payload_seq(9, &b[..7]), None);
    }

    #[test]
    fn flipped_byte_is_caught() {
        for pos in [0, 7, 8, 63, 100] {
            let mut e = Echo::new(0, 64);
            let mut bytes = sent(&mut e, 2);
            bytes[pos] ^= 0x01;
            assert_eq!(e.feed(&bytes), Err(BadResponse), "pos {pos}");
        }
    }

    #[test]
    fn dropped_byte_is_caught() {
        let mut e = Echo::new(0, 64);
        let mut bytes = sent(&mut e, 2);
        bytes.remove(20);
        assert_eq!(e.feed(&bytes), Err(BadResponse));
    }

    #[test]
    fn duplicated_or_reordered_message_is_caught() {
        let mut e = Echo::new(0, 16);
        let bytes = sent(&mut e, 2);
        // The first message twice.
        let mut dup = bytes[..16].to_vec();
        dup.extend_from_slice(&bytes[..16]);
        assert_eq!(e.feed(&dup), Err(BadResponse));

        let mut e = Echo::new(0, 16);
        let bytes = sent(&mut e, 2);
        let mut swapped = bytes[16..].to_vec();
        swapped.extend_from_slice(&bytes[..16]);
        assert_eq!(e.feed(&swapped), Err(BadResponse));
    }

    #[test]
    fn extra_bytes_are_caught() {
        let mut e = Echo::new(0, 4);
        let mut bytes = sent(&mut e, 1);
        bytes.push(0);
        assert_eq!(e.feed(&bytes), Err(BadResponse));
    }

    #[test]
    fn message_of_previous_connection_is_rejected_after_reset() {
        let mut e = Echo::new(3, 32);
        let old = sent(&mut e, 1); // lost with the old connection
        e.reset();
        let new = sent(&mut e, 1);
        assert_eq!(e.feed(&old), Err(BadResponse));
        let mut e2 = Echo::new(3, 32);
        let _ = sent(&mut e2, 1);
        e2.reset();
        let new2 = sent(&mut e2, 1);
        assert_eq!(new, new2);
        assert_eq!(e2.feed(&new2), Ok(1));
    }
}
