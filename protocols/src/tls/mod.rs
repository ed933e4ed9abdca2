//! TLS around any protocol, with rustls.
//!
//! [`Tls<P>`](Tls) wraps an inner [`Handler`](ringmaster_runtime::Handler) (echo, HTTP,
//! WebSocket) without the inner one knowing: it decrypts what the kernel received, shows
//! the inner handler plaintext, and encrypts what the inner handler writes, which goes
//! out through the runtime's normal send path (copied or zero-copy).
//!
//! - [`config`]: PEM loading, one-line errors, the rustls `ServerConfig` (versions,
//!   provider, ALPN, resumption);
//! - [`handler`]: [`Tls`], the runtime `Handler`.
//!
//! # Choices, and what they cost
//!
//! **Buffered `ServerConnection`, not the unbuffered API.** The runtime shows a handler
//! the kernel-filled buffer as a shared `&[u8]`; rustls' unbuffered API decrypts in place
//! and so needs a `&mut [u8]`, which means copying the ciphertext into a per-connection
//! buffer first — the same one copy the buffered API makes into its deframer. With that
//! copy unavoidable, the buffered API buys simpler code (no hand-driven state machine of
//! `EncodeTlsData`/`TransmitTlsData`/`ReadTraffic` states) for one extra copy of the
//! plaintext (rustls' plaintext queue → a per-shard scratch buffer the inner handler
//! reads). Removing both would take a mutable view of the provided buffer from the
//! runtime (the buffer is the shard's until it goes back to the ring, so this is
//! possible) plus the unbuffered API: the way to go if TLS copies show in a profile.
//! The whole input is always consumed (rustls keeps partial records), so TLS never
//! uses the runtime's carry-over.
//!
//! **Provider `ring`.** It builds with just a C compiler and compiles much faster here
//! than `aws-lc-rs` (which needs cmake and a long C build); both give the same cipher
//! suites on x86-64 with AES-NI. `aws-lc-rs` would be the choice for FIPS or post-quantum
//! key exchange (X25519MLKEM768), which `ring` lacks.
//!
//! **Memory.** Each connection holds a boxed rustls `ServerConnection` (1,168 bytes of
//! struct) plus its heap, and the plaintext the inner handler left unconsumed (empty and
//! unallocated in the common case); the `TlsConn` itself is 56 bytes around the inner
//! state. Scratch buffers for plaintext, captured output and ciphertext are per shard.
//! Measured (4,000 idle echo connections on one shard, each after a handshake and one
//! round trip, RSS delta): about 10.4 KiB per TLS connection against 2.0 KiB plaintext,
//! so TLS costs about 8.4 KiB per idle connection. Of that, 4 KiB is rustls' deframer
//! buffer, which rustls keeps at its 4 KiB read size once a connection has read anything
//! and never releases while idle; the rest is the struct, the AEAD key schedules of both
//! directions and allocator rounding. The unbuffered API would let us drop that 4 KiB
//! while idle (the caller owns the buffer): the second reason to move to it.
//!
//! **Handshake deadline.** One runtime timer per connection (tag [`TLS_TIMER`]), cancelled
//! when the handshake completes; at the deadline the connection is closed and counted in
//! [`TlsCounters::handshake_timeouts`].
//!
//! **Errors.** Garbage, an unsupported version, no common cipher suite or ALPN protocol:
//! rustls queues the matching alert, which is flushed before the close; counted in
//! [`TlsCounters::handshake_errors`]. Nothing here panics on input.
//!
//! **Server role only.** Every connection gets a rustls *server* connection, including
//! outbound ones an inner handler opens with `connect`: TLS for clients would need a
//! `ClientConnection` chosen by [`ringmaster_runtime::Io::origin`]. Shard-level callbacks
//! (start, shard timers, failed connects, datagrams) pass straight through.
//!
//! **Known gaps.** The server does not send `close_notify` when the inner handler closes
//! (the inner handler's `Io::close` passes straight through); clients that need it treat
//! the TCP close as a truncation. Plaintext the inner handler left unconsumed while it
//! paused reading is shown again after its next callback (writable, timer), since a
//! resumed read with no ciphertext waiting does not call `on_data`.

pub mod config;
pub mod handler;

pub use config::{TlsConfig, TlsConfigError, TlsOptions};
pub use handler::{Secured, Tls, TlsConn, TlsCounters, TLS_TIMER};
/// The rustls version this crate is built with, for embedders and tests that need its
/// client or types.
pub use rustls;

#[cfg(test)]
mod tests;
