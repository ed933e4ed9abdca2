//! Output held back for an exchange whose turn has not come yet.
//!
//! Pipelined responses leave in request order. The exchange at the front of the
//! connection's queue writes straight to the port; every later one writes into its own
//! [`Held`], which the connection releases to the port, in order, when the exchange
//! reaches the front. This module owns that buffer and nothing else: it never decides
//! when to release, and never sees a socket.
//!
//! Segments are produced by `Exchange` (encoded bytes through [`Held::buf`], owned and
//! static buffers through [`Held::push`]) and by the
//! connection's `reject` (an error response queued behind others); they are released by
//! `Conn::advance`, which calls [`Held::release`] on the front of the queue.

use ringmaster_runtime::Segment;

use super::port::Port;

/// Output held back for an exchange whose turn has not come yet, as the runtime's send
/// queue will take it: the same [`Segment`]s, moved on at release without a copy.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// Earlier segments, in order.
    segments: Vec<Segment>,
    /// Bytes written after the last segment.
    tail: Vec<u8>,
}

impl Held {
    /// The buffer output is appended to (after every segment pushed so far).
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.tail
    }

    /// Holds a segment after everything written so far.
    pub(crate) fn push(&mut self, segment: Segment) {
        if !self.tail.is_empty() {
            self.segments
                .push(Segment::Bytes(std::mem::take(&mut self.tail)));
        }
        self.segments.push(segment);
    }

    /// Moves everything held to the port, in order.
    pub(crate) fn release(&mut self, port: &mut dyn Port) {
        for segment in self.segments.drain(..) {
            port.push(segment);
        }
        if !self.tail.is_empty() {
            port.push(Segment::Bytes(std::mem::take(&mut self.tail)));
        }
    }
}
