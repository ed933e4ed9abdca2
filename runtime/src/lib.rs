//! ringmaster's runtime: thread-per-core servers directly on io_uring.
//!
//! A [`Server`] runs one shard per core. Each shard is a pinned thread with its own
//! ring, its own `SO_REUSEPORT` listener, its own connection slab, buffer ring and timer
//! wheel; nothing on the hot path is shared. Protocols plug in as [`Handler`]s and talk
//! to the runtime only through [`Io`]: they never see a ring.
//!
//! ```no_run
//! use ringmaster_runtime::{Handler, Input, Io, Close, Server};
//! use std::net::SocketAddr;
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type Conn = ();
//!     fn on_open(&mut self, _peer: SocketAddr, _io: &mut Io<'_>) {}
//!     fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, io: &mut Io<'_>) {
//!         io.write(input.bytes());
//!         input.consume_all();
//!     }
//!     fn on_close(&mut self, _c: (), _why: Close) {}
//! }
//!
//! let server = Server::builder().listen("127.0.0.1:7000".parse().unwrap()).build().unwrap();
//! server.serve(|_shard| Echo).unwrap();
//! ```
#![deny(missing_docs)]

mod config;
mod conn;
mod counters;
mod error;
mod handler;
mod mailbox;
mod offload;
mod send_queue;
mod server;
mod shard;
mod sys;
mod timer;
mod token;
mod udp;

pub use config::{Config, ServerBuilder};
pub use counters::Counters;
pub use error::Error;
pub use handler::{Close, ConnFn, Conns, Handler, Input, Io, Message, Origin, ShardIo};
pub use offload::{OffloadError, OffloadPanic, OffloadResult};
pub use server::{Features, Report, Running, Server, ShardFeatures, ShutdownHandle};
pub use sys::ring::{RingFeatures, TaskRunMode};
pub use timer::TimerKey;
pub use token::ConnToken;
pub use udp::{DatagramHandler, DatagramIo, Datagrams};
