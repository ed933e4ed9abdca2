//! The engine: moves a [`Conversation`](crate::proto::Conversation)'s bytes through
//! sockets and keeps the clock.
//!
//! This is the whole interface the rest of the crate sees: a [`ThreadPlan`] in, a
//! [`ThreadReport`] out, one call per load thread. The default engine (`uring`) runs the
//! thread's connections on a ringmaster shard, as a client handler of the runtime's own
//! outbound connections; `epoll` is a mio readiness loop, kept as a cross-check.
//! Handshakes (WebSocket's upgrade, TLS) live in the conversations, not here: an engine
//! only sends what `poll_output` gives it and holds requests back until `ready`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::proto::{Conv, TargetPlan};
use crate::stats::Recorder;
use crate::tls::{Tls, TlsPlan};

mod mio_loop;
mod mio_udp;
mod pipeline;
mod run_timers;
mod uring;
mod uring_udp;

/// The smallest `udp-echo` datagram the uring engine can tag with its flow and sequence
/// number; smaller ones run on the epoll engine.
pub(crate) const UDP_URING_MIN_SIZE: usize = uring_udp::MIN_SIZE;

/// What one load thread does.
#[derive(Debug, Clone)]
pub(crate) struct ThreadPlan {
    /// Server address.
    pub addr: SocketAddr,
    /// Global index of this thread's first connection (payloads differ per connection).
    pub first_conn: usize,
    /// Connections this thread drives.
    pub connections: usize,
    /// What is said on each connection.
    pub target: TargetPlan,
    /// Said over TLS (TCP targets): how.
    pub tls: Option<std::sync::Arc<TlsPlan>>,
    /// Messages in flight per connection, at most.
    pub pipeline: usize,
    /// Open loop: time between two messages due on one connection; `None`: closed loop.
    pub interval: Option<Duration>,
    /// Open loop: the offset of connection `k`'s schedule is `k * stagger`.
    pub stagger: Duration,
    /// One connection per message: connect, send, receive, close.
    pub connect_per_request: bool,
    /// No response byte for this long while a message is outstanding: timeout error.
    pub timeout: Duration,
    /// Everything starts here (connections, warmup).
    pub start: Instant,
    /// Counting starts here.
    pub warmup_end: Instant,
    /// Nothing happens after this.
    pub deadline: Instant,
    /// Stop after this many messages completed in the measured window.
    pub quota: Option<u64>,
    /// Which engine moves the bytes.
    pub engine: EngineKind,
}

impl ThreadPlan {
    /// The conversation of the connection with global index `conn`: the target's,
    /// under TLS when asked (the same for every engine).
    pub(crate) fn conversation(&self, conn: usize) -> Conv {
        let c = self.target.conversation(conn);
        match &self.tls {
            Some(t) => Conv::Tls(Box::new(Tls::new(std::sync::Arc::clone(t), c))),
            None => c,
        }
    }
}

/// The engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EngineKind {
    /// A ringmaster shard (io_uring): outbound connect, multishot receive, batched sends.
    Uring,
    /// A mio (epoll) readiness loop.
    Epoll,
}

/// Live counters shared with the progress line.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Messages completed, warmup included.
    pub messages: AtomicU64,
    /// Errors, warmup included.
    pub errors: AtomicU64,
}

impl Live {
    /// Adds the counts a thread gathered since it last published, and zeroes them
    /// (threads count privately and publish now and then: the hot path touches no
    /// shared cache line).
    pub(crate) fn publish(&self, messages: &mut u64, errors: &mut u64) {
        if *messages > 0 {
            self.messages.fetch_add(
                std::mem::take(messages),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        if *errors > 0 {
            self.errors
                .fetch_add(std::mem::take(errors), std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// What one load thread measured.
pub(crate) struct ThreadReport {
    /// Figures of the measured window.
    pub recorder: Recorder,
    /// When this thread stopped measuring.
    pub finished: Instant,
}

impl ThreadReport {
    /// The report of a thread that stops measuring at `now`: `rec`'s figures, which
    /// leaves `rec` empty.
    pub(super) fn take(rec: &mut Recorder, now: Instant) -> Self {
        ThreadReport {
            recorder: std::mem::replace(rec, Recorder::new()),
            finished: now,
        }
    }
}

/// Runs one load thread to the end of its plan.
pub(crate) fn run_thread(
    plan: &ThreadPlan,
    live: &std::sync::Arc<Live>,
) -> std::io::Result<ThreadReport> {
    if let TargetPlan::UdpEcho { size } = plan.target {
        // Below the uring engine's smallest datagram: the mio loop (the report says so).
        return match plan.engine {
            EngineKind::Uring if size >= UDP_URING_MIN_SIZE => uring_udp::run(plan, live, size),
            _ => mio_udp::run(plan, live, size),
        };
    }
    match plan.engine {
        EngineKind::Uring => uring::run(plan, live),
        EngineKind::Epoll => mio_loop::run(plan, live),
    }
}
