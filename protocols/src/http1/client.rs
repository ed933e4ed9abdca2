//! The client role of HTTP/1.1, sans-IO: requests encoded out, responses decoded in.
//!
//! Like hyper's `proto/h1/role.rs`, this is the other role over the server's codec, not
//! a second one: response heads are parsed with the same httparse setup and field scan
//! ([`head`](super::head)), chunked bodies with the same
//! [`ChunkedDecoder`](super::body::ChunkedDecoder), bounds come from the same
//! [`Limits`](super::Limits), and chunk framing from [`encode`](super::encode).
//!
//! [`ClientCodec`] owns one connection's HTTP state: the requests sent and not yet
//! answered (FIFO, so pipelined responses are matched in order; each remembers whether it
//! was a `HEAD`), the response being read, and whether the connection may carry another
//! request. It owns no buffer and never touches a socket: the caller appends request bytes
//! to its own `Vec<u8>`, and shows the codec the bytes received, getting back how many it
//! consumed and at most one [`ClientEvent`] per call. Body data is handed back as a
//! sub-slice of the caller's input, never copied.
//!
//! What it must never do: guess. Framing it cannot read (differing Content-Length
//! values, a bad chunk, a response nobody asked for) is an error, after which the codec
//! refuses all further use rather than read the rest of the stream out of step; a
//! connection closed mid-body is an error, never a complete body.
//!
//! Parts: `request` (request heads and body framing out), `response` (response heads in,
//! RFC 9112 section 6.3 message length), `codec` (the state machine), `error`.

mod codec;
mod error;
mod request;
mod response;

pub use codec::{ClientCodec, ClientEvent, Decoded, End};
pub use error::ClientError;
pub use request::RequestHead;
pub use response::{FieldsView, ResponseHead};

pub(crate) use request::{
    finish as finish_body, prepare, prepare_head, write_body, Outgoing, Sent,
};
pub(crate) use response::{HeadInfo, Span};

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod tests;
