//! WebSocket (RFC 6455) as a sans-IO protocol, and its HTTP/1.1 upgrade.
//!
//! Split by concern:
//! - [`frame`]: frame headers, masking, server frame encoding;
//! - [`utf8`]: incremental UTF-8 validation across fragments and reads;
//! - [`session`]: one connection's protocol state (messages, control frames, close
//!   handshake, limits), bytes in and bytes out, no socket;
//! - [`handshake`]: the opening handshake's checks and answers (101, 400, 426);
//! - [`handler`]: [`Ws`], the runtime `Handler`, and the embedder's [`WsApp`];
//! - [`upgrade`]: [`HttpWs`], HTTP/1.1 that hands upgraded connections to [`Ws`].
//!
//! `permessage-deflate` is not implemented: the handshake declines it by not echoing
//! the extension, so clients send uncompressed frames (and a compressed frame, RSV1
//! set, fails the connection with 1002).

pub mod frame;
pub mod handler;
pub mod handshake;
pub mod session;
pub mod upgrade;
pub mod utf8;

pub use handler::{Ws, WsApp, WsConn, WsCounters, WsIo, WsLimits};
pub use session::{code, Message};
pub use upgrade::{HttpWs, HttpWsConn};

#[cfg(test)]
pub(crate) mod tests;
