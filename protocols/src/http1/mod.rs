//! HTTP/1.1 as a sans-IO protocol: keep-alive, pipelining, bodies, limits.
//!
//! Split by concern, after hyper's `proto/h1`:
//! - [`head`]: request heads, parsed in place with httparse and checked against RFC 9112
//!   (message framing, the request-smuggling rules of section 6.3);
//! - [`body`]: body decoding (Content-Length, chunked with extensions and trailers);
//! - [`encode`]: response heads, chunk framing, the per-shard cached `Date`;
//! - [`limits`]: every bound, with safe defaults, and the counters of their hits;
//! - `conn`: the per-connection state machine (requests in, ordered responses out);
//! - [`app`]: the embedder's API ([`App`], [`Request`], [`Response`], [`Exchange`]);
//! - [`handler`]: [`Http`], the runtime `Handler` that drives all of the above;
//! - [`sim`]: the same state machine driven from memory, for tests and fuzzing.
//!
//! Nothing here touches a socket: bytes come in as slices and responses go out through
//! a port the driver provides.

pub mod app;
pub mod body;
mod conn;
pub mod encode;
pub mod handler;
pub mod head;
pub mod limits;
pub mod sim;

pub use app::{App, Body, Exchange, Request, Response};
pub use encode::FieldSet;
pub use handler::{Http, HttpConn};
pub use head::Version;
pub use limits::{HttpCounters, Limits};

#[cfg(test)]
mod split_tests;
