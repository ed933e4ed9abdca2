//! Why a connection ended and how it began: leaf types the whole runtime names.

/// Why a connection was closed, as told to [`Handler::on_close`](crate::Handler::on_close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The handler asked for it (`Io::close` after the flush, or `Io::abort`).
    Local,
    /// The peer closed its side and everything queued was sent.
    PeerClosed,
    /// The peer reset the connection or a socket error occurred (the errno).
    Error(i32),
    /// No input within the idle timeout.
    Idle,
    /// The handler left more unconsumed input than the carry-over limit allows.
    InputOverflow,
    /// The server is shutting down and the drain deadline passed.
    Shutdown,
}

/// How a connection came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Accepted on the shard's listener.
    Accepted,
    /// Opened by this shard with `connect(addr, tag)`.
    Connected {
        /// The tag given to `connect`.
        tag: u64,
    },
}
