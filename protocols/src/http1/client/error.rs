//! Why the client codec refused a request or a response.

/// An error from [`ClientCodec`](super::ClientCodec).
///
/// Errors from decoding (all but [`InvalidRequest`](ClientError::InvalidRequest) and
/// [`NotReusable`](ClientError::NotReusable)) leave the codec poisoned: every later call
/// returns [`Poisoned`](ClientError::Poisoned), and the connection must be closed. An
/// encoding error writes nothing and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The response breaks HTTP/1.1 syntax or its framing cannot be read unambiguously.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// The response exceeds one of the [`Limits`](crate::http1::Limits) (named here).
    #[error("response exceeds the {0} limit")]
    TooLarge(&'static str),
    /// Response bytes arrived with no request outstanding.
    #[error("response with no request outstanding")]
    UnexpectedResponse,
    /// The server closed the connection inside a Content-Length or chunked body.
    #[error("connection closed in the middle of a response body")]
    ClosedMidBody,
    /// The server closed the connection before the final response head of an
    /// outstanding request was complete. `bytes_received` is false when nothing at all
    /// came back for it (the request may never have been processed).
    #[error("connection closed before the response")]
    ClosedBeforeResponse {
        /// Whether any part of a response (an interim response, a partial head) came.
        bytes_received: bool,
    },
    /// The request cannot be sent as given (bad method, target or field, missing Host,
    /// a body that does not match its declared length, a request while a body is open).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A response said the connection closes after it (or a request said so): no
    /// further request may be sent, and no further response will be read.
    #[error("connection is not reusable")]
    NotReusable,
    /// The server switched protocols (101): the connection no longer speaks HTTP/1.1.
    #[error("connection switched protocols")]
    Upgraded,
    /// [`peer_closed`](super::ClientCodec::peer_closed) was called.
    #[error("connection closed")]
    Closed,
    /// An earlier error left the connection's framing unknown.
    #[error("connection unusable after an earlier error")]
    Poisoned,
}
