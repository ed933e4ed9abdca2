//! One stream of an HTTP/2 connection: its state (RFC 9113 section 5.1), its request
//! while it arrives, its exchange with the application, and its response body waiting
//! for flow-control credit.
//!
//! This module owns [`Stream`], the [`SendQueue`] of response body pieces, and
//! [`StreamSink`], the [`StreamOut`] through which an
//! [`Exchange`](crate::http1::Exchange) writes to the stream: the head is HPACK-encoded
//! and written at once (the encoder's table is shared by every stream, so blocks leave
//! in the order they are encoded), body pieces are queued and leave as DATA when the
//! connection's `flush` finds window for them.

use std::collections::VecDeque;
use std::time::Instant;

use ringmaster_runtime::Segment;

use super::request::RequestParts;
use crate::http1::encode::{field_allowed, put_u64, trailer_allowed, Fields};
use crate::http1::exchange_state::ExchangeState;
use crate::http1::port::Port;
use crate::http1::stream_out::StreamOut;
use crate::http2::frame::{encode_data_header, encode_headers};
use crate::http2::hpack::Encoder;

/// Where a stream stands (section 5.1). Idle streams are not stored, and a closed one
/// is removed: the connection tells them apart by the highest stream id seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamState {
    /// The request is still arriving (its header section, or its body).
    Open,
    /// The request is complete (the client sent END_STREAM); the response is being made.
    HalfClosedRemote,
}

/// Copied body bytes are appended to the last queued piece while it stays this small.
const COALESCE_MAX: usize = 64 * 1024;

/// Response body pieces of one stream not yet sent as DATA.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    /// The pieces, oldest first.
    pieces: VecDeque<Segment>,
    /// How much of the front piece has been sent.
    front_sent: usize,
    /// Bytes queued and not sent.
    pub(crate) queued: usize,
    /// The head went out (DATA may follow).
    pub(crate) head_sent: bool,
    /// The body is complete: END_STREAM goes on the last DATA frame.
    pub(crate) end: bool,
    /// END_STREAM went out.
    pub(crate) end_sent: bool,
    /// The exchange gave up: the stream is to be reset with INTERNAL_ERROR.
    pub(crate) reset: bool,
    /// A trailer section to send once the body is all sent (lower-cased names, checked):
    /// 16 bytes per stream, allocated only by a response that has trailers.
    /// Kept as fields, not encoded, until then: HPACK blocks must leave in the order
    /// they are encoded, and other streams' heads may leave before this body's end.
    pub(crate) trailers: Option<Box<[(String, String)]>>,
}

impl SendQueue {
    /// Body bytes wait to leave as DATA (and so need flow-control credit).
    pub(crate) fn has_data(&self) -> bool {
        self.head_sent && !self.end_sent && self.queued > 0
    }

    /// The unsent part of the front piece, at most `max` bytes: its bytes, and whether
    /// it is program-lifetime memory (sent without a copy).
    pub(crate) fn front(&self, max: usize) -> Option<(&[u8], Option<&'static [u8]>)> {
        let piece = self.pieces.front()?;
        let start = self.front_sent;
        match piece {
            Segment::Static(s) => {
                let end = s.len().min(start.saturating_add(max));
                let part: &'static [u8] = s.get(start..end).unwrap_or_default();
                Some((part, Some(part)))
            }
            other => {
                let b = other.bytes();
                let end = b.len().min(start.saturating_add(max));
                Some((b.get(start..end).unwrap_or_default(), None))
            }
        }
    }

    /// Whether END_STREAM goes on the DATA frame that empties the queue: the body is
    /// complete and no trailer section follows it.
    pub(crate) fn ends_with_data(&self) -> bool {
        self.end && self.trailers.is_none()
    }

    /// Writes the end of a stream whose body is all sent (`end` set, nothing queued):
    /// its trailer section as HEADERS with END_STREAM (RFC 9113 section 8.1), encoded
    /// now so that it takes its place in the HPACK order, or else an empty DATA frame
    /// with END_STREAM.
    pub(crate) fn write_end(
        &mut self,
        id: u32,
        enc: &mut Encoder,
        block: &mut Vec<u8>,
        max_frame: u32,
        out: &mut Vec<u8>,
    ) {
        match self.trailers.take() {
            Some(fields) => {
                block.clear();
                enc.start_block(block);
                for (name, value) in fields.iter() {
                    enc.encode_field(name.as_bytes(), value.as_bytes(), block);
                }
                encode_headers(out, id, block, true, max_frame);
            }
            None => encode_data_header(out, id, 0, true),
        }
        self.end_sent = true;
    }

    /// Queues a copy of `data`.
    fn push_copy(&mut self, data: &[u8]) {
        self.queued += data.len();
        // Appended to the last piece if it is copied bytes and stays small (never mind
        // whether part of it was sent: `front_sent` counts from its start either way).
        // Bounded, because a piece is freed only once all of it is sent: a stream whose
        // queue never empties (a client that keeps its window small) would otherwise
        // keep every byte it ever sent in one growing piece.
        if let Some(Segment::Bytes(last)) = self.pieces.back_mut() {
            if last.len() + data.len() <= COALESCE_MAX {
                last.extend_from_slice(data);
                return;
            }
        }
        self.pieces.push_back(Segment::Bytes(data.to_vec()));
    }

    /// Marks `n` bytes of the front piece sent.
    pub(crate) fn advance(&mut self, n: usize) {
        self.front_sent += n;
        self.queued = self.queued.saturating_sub(n);
        if let Some(p) = self.pieces.front() {
            if self.front_sent >= p.len() {
                self.pieces.pop_front();
                self.front_sent = 0;
            }
        }
    }
}

/// One stream the connection keeps.
pub(crate) struct Stream<T> {
    /// Its id (odd: opened by the client).
    pub(crate) id: u32,
    pub(crate) state: StreamState,
    /// The request while it arrives; taken when it is handed to the application.
    pub(crate) req: Option<Box<RequestParts>>,
    /// The exchange's bookkeeping (phase, sequence number, notifiers, ...).
    pub(crate) ex: ExchangeState,
    /// The application's task, while it answers later.
    pub(crate) task: Option<T>,
    /// The response body waiting for window.
    pub(crate) send: SendQueue,
    /// What the peer lets us send on this stream (may go negative after SETTINGS).
    pub(crate) send_window: i64,
    /// What we let the peer send on this stream.
    pub(crate) recv_window: i64,
    /// Request body bytes received since the last stream WINDOW_UPDATE.
    pub(crate) recv_unacked: u32,
    /// Since when its body has waited on a stream window of zero or less, with no DATA
    /// sent (a stall; the connection's deadline covers it, no timer of its own).
    pub(crate) stalled_since: Option<Instant>,
}

impl<T> Stream<T> {
    /// A stream whose HEADERS just arrived.
    pub(crate) fn new(id: u32, send_window: i64, recv_window: i64) -> Self {
        Stream {
            id,
            state: StreamState::Open,
            req: Some(Box::default()),
            ex: ExchangeState::new(0, false, false, true),
            task: None,
            send: SendQueue::default(),
            send_window,
            recv_window,
            recv_unacked: 0,
            stalled_since: None,
        }
    }
}

/// The fields the protocol writes itself, or HTTP/2 forbids: dropped from an
/// application's list (section 8.2.2, plus what `field_allowed` refuses).
fn h2_field_allowed(name: &str, value: &str) -> bool {
    field_allowed(name, value)
        && !name.eq_ignore_ascii_case("keep-alive")
        && !name.eq_ignore_ascii_case("proxy-connection")
        && !name.eq_ignore_ascii_case("upgrade")
}

/// The [`StreamOut`] of one stream, lent to an exchange for one callback.
pub(crate) struct StreamSink<'a> {
    pub(crate) id: u32,
    pub(crate) send: &'a mut SendQueue,
    pub(crate) enc: &'a mut Encoder,
    /// The peer's SETTINGS_MAX_FRAME_SIZE (a field block is split to fit it).
    pub(crate) max_frame: u32,
    /// A reusable buffer for the field block.
    pub(crate) block: &'a mut Vec<u8>,
}

impl StreamSink<'_> {
    /// Starts a header block with `:status`; the digits buffer, for reuse.
    fn start_block(&mut self, status: u16) -> Vec<u8> {
        self.block.clear();
        self.enc.start_block(self.block);
        let mut digits = Vec::with_capacity(20);
        put_u64(&mut digits, u64::from(status));
        self.enc.encode_field(b":status", &digits, self.block);
        digits
    }

    /// Encodes the allowed fields of `list` into the block; returns how many were not.
    fn fields(&mut self, list: &[(&str, &str)], lower: &mut Vec<u8>) -> usize {
        let mut dropped = 0;
        for &(name, value) in list {
            if h2_field_allowed(name, value) {
                self.field(name, value, lower);
            } else {
                dropped += 1;
            }
        }
        dropped
    }

    fn field(&mut self, name: &str, value: &str, lower: &mut Vec<u8>) {
        lower.clear();
        lower.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        self.enc.encode_field(lower, value.as_bytes(), self.block);
    }
}

impl StreamOut for StreamSink<'_> {
    fn head(
        &mut self,
        port: &mut dyn Port,
        status: u16,
        fields: Fields<'_>,
        len: Option<u64>,
        end: bool,
    ) -> usize {
        if self.send.head_sent || self.send.reset {
            return 0;
        }
        let mut digits = self.start_block(status.clamp(100, 999));
        self.enc.encode_field(b"server", b"ringmaster", self.block);
        let date = *port.date();
        self.enc.encode_field(b"date", &date, self.block);
        if let Some(n) = len {
            digits.clear();
            put_u64(&mut digits, n);
            self.enc
                .encode_field(b"content-length", &digits, self.block);
        }
        let mut lower = Vec::new();
        let dropped = match fields {
            Fields::List(list) => self.fields(list, &mut lower),
            Fields::Set(set) => {
                let mut dropped = set.dropped();
                for (name, value) in set.iter() {
                    if h2_field_allowed(name, value) {
                        self.field(name, value, &mut lower);
                    } else {
                        dropped += 1;
                    }
                }
                dropped
            }
        };
        encode_headers(port.buf(), self.id, self.block, end, self.max_frame);
        self.send.head_sent = true;
        if end {
            self.send.end = true;
            self.send.end_sent = true;
        }
        dropped
    }

    fn interim(&mut self, port: &mut dyn Port, status: u16, fields: &[(&str, &str)]) -> usize {
        if self.send.head_sent || self.send.reset {
            return 0;
        }
        self.start_block(status.clamp(100, 199));
        let dropped = self.fields(fields, &mut Vec::new());
        encode_headers(port.buf(), self.id, self.block, false, self.max_frame);
        dropped
    }

    fn copy(&mut self, data: &[u8]) {
        if data.is_empty() || self.send.end || self.send.reset {
            return;
        }
        self.send.push_copy(data);
    }

    fn segment(&mut self, piece: Segment) {
        if piece.is_empty() || self.send.end || self.send.reset {
            return;
        }
        self.send.queued += piece.len();
        self.send.pieces.push_back(piece);
    }

    fn end(&mut self) {
        self.send.end = true;
    }

    fn end_with_trailers(&mut self, fields: &[(&str, &str)]) -> usize {
        if self.send.end || self.send.reset {
            return 0;
        }
        self.send.end = true;
        let mut kept = Vec::with_capacity(fields.len());
        let mut dropped = 0;
        for &(name, value) in fields {
            // Section 8.2.2's connection-specific fields are among those refused.
            if trailer_allowed(name, value) {
                kept.push((name.to_ascii_lowercase(), value.to_owned()));
            } else {
                dropped += 1;
            }
        }
        if !kept.is_empty() {
            self.send.trailers = Some(kept.into_boxed_slice());
        }
        dropped
    }

    fn reset(&mut self) {
        self.send.reset = true;
        self.send.pieces.clear();
        self.send.queued = 0;
    }

    fn queued(&self) -> usize {
        self.send.queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream whose queue never empties (the client's window stays small) must not
    /// keep the bytes it already sent: what its pieces hold stays near what is queued.
    #[test]
    fn a_queue_that_never_empties_keeps_only_what_is_unsent() {
        let mut q = SendQueue::default();
        let chunk = [7u8; 10_000];
        for _ in 0..2_000 {
            q.push_copy(&chunk);
            while q.queued > 100_000 {
                let front = q.pieces.front().map_or(0, |p| p.len()) - q.front_sent;
                q.advance(front.min(6_000));
            }
        }
        let held: usize = q.pieces.iter().map(|p| p.len()).sum();
        assert!(q.queued <= 100_000);
        assert!(
            held <= q.queued + 2 * COALESCE_MAX,
            "{held} bytes held for {} queued",
            q.queued
        );
    }
}
