//! The seam through which an [`Exchange`](super::Exchange) writes its response to
//! something other than an HTTP/1.1 byte stream: an HTTP/2 stream.
//!
//! This module owns the [`StreamOut`] trait and nothing else. The exchange keeps every
//! rule of answering (once, head then body then finish, sized bodies held to their
//! length, HEAD without a body); a `StreamOut` only frames what it is given. The HTTP/1.1
//! path never goes through it: that path encodes bytes straight into the port.

use ringmaster_runtime::Segment;

use super::encode::Fields;
use super::port::Port;

/// Where an exchange's response goes when it is carried by a multiplexed stream.
///
/// The head is encoded at once (its compression state is the connection's, so heads
/// must leave in the order they are made); body pieces are queued and leave as the
/// connection's flow control allows, after the callback returns.
pub(crate) trait StreamOut {
    /// Sends the response head: `len` is the body's announced length, if known; `end`
    /// says no body follows. Returns how many application fields were dropped.
    fn head(
        &mut self,
        port: &mut dyn Port,
        status: u16,
        fields: Fields<'_>,
        len: Option<u64>,
        end: bool,
    ) -> usize;
    /// Sends an interim (1xx) response head before the final one: a HEADERS frame
    /// without END_STREAM. Returns how many fields were dropped.
    fn interim(&mut self, port: &mut dyn Port, status: u16, fields: &[(&str, &str)]) -> usize;
    /// Queues a piece of the body, copied.
    fn copy(&mut self, data: &[u8]);
    /// Queues a piece of the body handed over whole.
    fn segment(&mut self, piece: Segment);
    /// The body is complete.
    fn end(&mut self);
    /// The body is complete and a trailer section follows it (`fields`, those allowed
    /// in trailers): after the last of the body, never before. Returns how many fields
    /// were dropped.
    fn end_with_trailers(&mut self, fields: &[(&str, &str)]) -> usize;
    /// The response cannot be completed: the stream is reset (the client sees an error,
    /// never a truncated body taken for whole).
    fn reset(&mut self);
    /// Body bytes queued on this stream and not yet sent.
    fn queued(&self) -> usize;
}
