//! Why a request to an upstream failed.

use crate::http1::client::ClientError;

/// Why a request made with [`Exchange::fetch`](crate::http1::Exchange::fetch) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The connection could not be made (refused, unreachable, no source port...): the
    /// errno.
    #[error("could not connect to the upstream: {}", std::io::Error::from_raw_os_error(*.0))]
    Connect(i32),
    /// The connection was not made within the upstream's connect timeout.
    #[error("the upstream did not accept the connection in time")]
    ConnectTimeout,
    /// No response head within the upstream's response timeout.
    #[error("the upstream sent no response in time")]
    Timeout,
    /// The response broke HTTP/1.1's rules (its connection was dropped).
    #[error("the upstream's response is malformed: {0}")]
    Protocol(ClientError),
    /// The upstream closed the connection before the body was complete.
    #[error("the upstream closed the connection in the middle of the body")]
    ClosedMidBody,
    /// The upstream closed (or reset) the connection before responding.
    #[error("the upstream closed the connection before responding")]
    Closed,
    /// The TLS session with the upstream failed (certificate, handshake, record).
    #[error("TLS with the upstream failed: {0}")]
    Tls(String),
    /// Too many requests already wait for a connection to this upstream (see
    /// [`UpstreamBuilder::max_queued`](super::UpstreamBuilder::max_queued)).
    #[error("too many requests wait for this upstream")]
    QueueFull,
    /// The server is shutting down: no new upstream requests.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The request cannot be encoded (a field or target with bytes HTTP forbids...).
    #[error("the request cannot be sent: {0}")]
    InvalidRequest(ClientError),
    /// The protocol is driven without the runtime (a test driver): no connections.
    #[error("no upstream connections without the runtime")]
    Unavailable,
}

impl UpstreamError {
    /// The status a gateway answers its client with: 504 for the timeouts, 503 for a
    /// full queue or a server shutting down, 502 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            UpstreamError::ConnectTimeout | UpstreamError::Timeout => 504,
            UpstreamError::QueueFull | UpstreamError::ShuttingDown => 503,
            _ => 502,
        }
    }
}
