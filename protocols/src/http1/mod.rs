//! HTTP/1.1 as a sans-IO protocol: keep-alive, pipelining, bodies, limits.
//!
//! Split by concern, after hyper's `proto/h1`:
//! - [`head`]: request heads, parsed in place with httparse and checked against RFC 9112
//!   (message framing, the request-smuggling rules of section 6.3);
//! - [`body`]: body decoding (Content-Length, chunked with extensions and trailers);
//! - [`encode`]: response heads, chunk framing, the per-shard cached `Date`;
//! - [`limits`]: every bound, with safe defaults, and the counters of their hits;
//! - `conn`: the per-connection state machine (requests in, ordered responses out);
//! - [`app`]: the embedder's API ([`App`], [`Request`], [`Response`], [`Body`]);
//! - [`exchange`]: one answer in progress ([`Exchange`]) and its timers ([`AppTimer`]);
//! - plumbing, private: `exchange_state` (an exchange's bookkeeping), `held` (output of
//!   an exchange whose turn has not come), `port` (what a driver provides), `offload`
//!   (jobs labelled with their exchange), `compose` (notifier values and cross-shard
//!   calls labelled with their exchange; [`TargetShard`]), `timer_tag` (application
//!   timers in a tag), `stream_out` (the seam through which an exchange answers on an
//!   HTTP/2 stream instead);
//! - [`handler`]: [`Http`], the runtime `Handler` that drives all of the above;
//! - [`sim`]: the same state machine driven from memory, for tests and fuzzing;
//! - [`client`]: the client role (requests out, responses in) over the same parser,
//!   body decoder and limits.
//!
//! Nothing here touches a socket: bytes come in as slices and responses go out through
//! a port the driver provides.

pub mod app;
pub mod body;
pub mod client;
pub(crate) mod compose;
pub(crate) mod conn;
pub mod encode;
pub mod exchange;
pub(crate) mod exchange_state;
pub mod handler;
pub mod head;
pub(crate) mod held;
pub mod limits;
pub(crate) mod offload;
pub(crate) mod port;
pub mod sim;
pub(crate) mod stream_out;
pub(crate) mod timer_tag;
pub mod upstream;

pub use app::{App, Body, Request, Response};
pub use compose::TargetShard;
pub use encode::FieldSet;
pub use exchange::{AppTimer, Exchange};
pub use handler::{Http, HttpConn};
pub use head::Version;
pub use limits::{HttpCounters, Limits};
pub use upstream::{Fetch, Upstream, UpstreamError, UpstreamEvent, UpstreamRequest};

#[cfg(test)]
mod split_tests;
