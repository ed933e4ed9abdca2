//! Sans-IO protocol handlers for ringmaster.
//!
//! Each protocol is a state machine: bytes in, bytes out. The glue to the runtime is a
//! [`ringmaster_runtime::Handler`] implementation; nothing here touches a socket or a ring.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod echo;
pub mod http1;
pub mod tls;
pub mod udp_echo;
pub mod websocket;

/// docs/EMBEDDING.md, compiled as doctests (`cargo test --doc`) so that every code block
/// in it keeps up with the API.
#[cfg(doctest)]
#[doc = include_str!("../../docs/EMBEDDING.md")]
struct EmbeddingDoc;
