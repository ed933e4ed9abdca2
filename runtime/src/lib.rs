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
#![deny(unsafe_code)]

/// `eprintln!` for lines to the operator, minus its panic: a failed write to stderr
/// (closed, or a pipe whose reader is gone) is dropped. The thread that prints may be the
/// one that must start a drain or finish a shutdown, and `eprintln!` would kill it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

// Bottom to top; a module imports only from the layers below it (docs/DESIGN.md).
// 1. The kernel boundary: every raw pointer and every `unsafe` block.
#[allow(unsafe_code)]
mod sys;
// 2. Leaf types.
mod call;
mod close;
mod config;
mod counters;
mod error;
mod features;
mod find;
mod job;
mod timer;
mod token;
// 3. Per-connection state and the shard's plumbing.
mod conn;
mod mailbox;
mod notifier;
mod send_queue;
mod udp;
// 4. The shard context that handlers reach.
mod ctx;
// 5. The handler API.
mod datagram;
mod handler;
mod io;
// 6. The loop.
mod shard;
// 7. Threads: the worker pool, the server and its builder.
mod builder;
mod offload;
mod server;

pub use builder::ServerBuilder;
pub use call::{CallDone, CallError, Called, Notification, Posted};
pub use close::{Close, Origin};
pub use config::Config;
pub use counters::Counters;
pub use datagram::{DatagramHandler, Datagrams};
pub use error::Error;
pub use features::{Descriptors, Features, ShardFeatures};
pub use handler::{find_in, Event, Handler, ShardEvent};
pub use io::{Input, Io, ShardIo};
pub use job::{catch_panic, OffloadDone, OffloadError, OffloadPanic, Offloaded};
pub use mailbox::Broadcast;
pub use notifier::Notifier;
pub use send_queue::Segment;
pub use server::{CallHandle, PendingCall, Report, Running, Server, ShutdownHandle};
pub use sys::ring::{RingFeatures, TaskRunMode};
pub use timer::TimerKey;
pub use token::ConnToken;
