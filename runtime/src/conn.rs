//! A connection's runtime-side state: everything the shard tracks besides the
//! handler's own `Conn`.
//!
//! The slot that holds this is freed only when `inflight` is zero and no zero-copy
//! notification is owed: until then the kernel may still write into the buffer ring
//! for it, read from its send queue, or complete an operation that names its slot.
//! (Memory the kernel reads, the send queue's in-flight bytes and the connect address,
//! is held in `sys::lend::Lent`s, which would leak rather than free it if this
//! accounting were ever wrong.)

use std::net::SocketAddr;
use std::time::Instant;

use crate::close::{Close, Origin};
use crate::send_queue::SendQueue;
use crate::sys::lend::Lent;
use crate::sys::sock::Sock;
use crate::timer::TimerKey;
use crate::token::ConnToken;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepted as a direct descriptor; its peer address is being asked for (only the
    /// ring can ask). The handler has not seen the connection yet; input that arrives
    /// meanwhile waits in the carry-over.
    Opening,
    /// An outbound connect is in flight; the handler has not seen the connection yet.
    Connecting,
    /// Reading and writing.
    Open,
    /// The handler asked to close once queued output is sent; input is discarded.
    Flushing,
    /// Our write side is shut down; input is read and discarded until the peer closes or
    /// the linger timer fires, so that a peer still sending does not get a reset that
    /// would destroy the responses it has not read yet.
    Lingering,
    /// The handler has been told; waiting for the kernel to return every operation.
    Closed,
}

/// See the module docs.
pub(crate) struct ConnIo {
    pub token: ConnToken,
    /// The socket; `None` once the ring was told to close it.
    pub sock: Option<Sock>,
    pub peer: SocketAddr,
    pub send: SendQueue,
    /// Input the handler left unconsumed, shown again before new bytes.
    pub carry: Vec<u8>,
    pub phase: Phase,
    pub close_why: Close,
    pub abort_requested: bool,
    pub user_paused: bool,
    /// The handler's pause is backpressure (`Io::hold_reading`, or `pause_reading_of`
    /// from another connection), not the peer's doing: input still arriving is kept
    /// whole, as for the runtime's own pauses.
    pub held: bool,
    /// Show the carry-over again even without new bytes (after a pause ends).
    pub redeliver: bool,
    pub want_writable: bool,
    /// The handler asked for a plain descriptor ([`Io::request_fd`](crate::Io::request_fd)).
    pub fd_requested: bool,
    /// Reading stopped because the write backlog passed its bound.
    pub backpressured: bool,
    /// Reading stopped because a linked connection's write backlog passed its bound
    /// ([`Io::link`](crate::Io::link)).
    pub link_paused: bool,
    pub peer_eof: bool,
    /// The peer's end of input arrived while input it sent earlier still waits to be
    /// shown (reading paused, or the connection not open yet): `Eof` follows that input.
    pub eof_pending: bool,
    /// The handler closed saying the peer will send nothing more: no lingering.
    pub no_linger: bool,
    /// Where the handler's `Io::shutdown_write` stands.
    pub half: HalfClose,
    /// Where the connection's receive stands.
    pub recv: Recv,
    /// Arm one-shot receives rather than a multishot one. A multishot receive keeps
    /// filling buffers until its cancel lands, and what it brings after the handler (or
    /// the runtime) paused reading for backpressure must be kept whole: for a peer that
    /// sends faster than the connection drains, that is unbounded over many pauses. Set
    /// when reading stops for backpressure; cleared when a receive finds the socket
    /// drained (the peer no longer outruns us, and one multishot serves best again).
    pub recv_single: bool,
    /// The last receive said more input was already waiting in the socket.
    pub input_pending: bool,
    /// Waiting for the buffer ring to refill (ENOBUFS).
    pub parked: bool,
    /// Submissions whose final completion has not arrived yet.
    pub inflight: u16,
    /// Last time bytes moved either way (for the idle timeout).
    pub last_active: Instant,
    pub idle_timer: Option<TimerKey>,
    /// Queued on the shard's dirty list.
    pub dirty: bool,
    pub origin: Origin,
    /// The address an outbound connect names, or where the kernel writes a direct
    /// descriptor's peer address: lent to the kernel (boxed, so it stays put while the
    /// slab may move the slot) until that operation's completion.
    pub addr: Option<Lent<Box<socket2::SockAddr>>>,
}

/// A connection's receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recv {
    /// None armed.
    Idle,
    /// Armed (multishot, or one-shot with `recv_single`).
    Armed,
    /// Armed and being ended (cancelled, or its socket shut down).
    Cancelling,
}

/// A connection's half-close (`Io::shutdown_write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HalfClose {
    /// Not asked for.
    No,
    /// Asked for: the write side is shut once the queue is empty.
    Asked,
    /// The write side is shut.
    Done,
}

impl ConnIo {
    pub(crate) fn new(token: ConnToken, sock: Sock, peer: SocketAddr, now: Instant) -> Self {
        ConnIo {
            token,
            sock: Some(sock),
            peer,
            send: SendQueue::default(),
            carry: Vec::new(),
            phase: Phase::Open,
            close_why: Close::Local,
            abort_requested: false,
            user_paused: false,
            held: false,
            redeliver: false,
            want_writable: false,
            fd_requested: false,
            backpressured: false,
            link_paused: false,
            peer_eof: false,
            eof_pending: false,
            no_linger: false,
            half: HalfClose::No,
            recv: Recv::Idle,
            recv_single: false,
            input_pending: false,
            parked: false,
            inflight: 0,
            last_active: now,
            idle_timer: None,
            dirty: false,
            origin: Origin::Accepted,
            addr: None,
        }
    }

    /// True once nothing more may be queued (closed or being aborted).
    pub(crate) fn closing_now(&self) -> bool {
        self.abort_requested || matches!(self.phase, Phase::Closed | Phase::Lingering)
    }

    /// Close once queued output is sent.
    pub(crate) fn close_after_flush(&mut self, why: Close) {
        if self.phase == Phase::Open {
            self.phase = Phase::Flushing;
            self.close_why = if self.peer_eof && why == Close::Local {
                Close::PeerClosed
            } else {
                why
            };
        }
    }

    /// Close now, dropping queued output.
    pub(crate) fn abort(&mut self, why: Close) {
        if self.phase != Phase::Closed && !self.abort_requested {
            self.abort_requested = true;
            self.close_why = why;
        }
    }

    /// Whether input should be delivered to the handler now.
    pub(crate) fn reading_enabled(&self) -> bool {
        self.phase == Phase::Open
            && !self.user_paused
            && !self.backpressured
            && !self.link_paused
            && !self.abort_requested
    }

    /// Whether a receive should be armed.
    pub(crate) fn wants_recv(&self) -> bool {
        !self.peer_eof
            && !self.abort_requested
            && match self.phase {
                Phase::Open => !self.user_paused && !self.backpressured && !self.link_paused,
                // Keep reading (and discarding) while flushing and lingering: input
                // left in the socket at close() would turn our FIN into a reset.
                Phase::Flushing | Phase::Lingering => true,
                // Opening: armed at accept already, so that input waits in the socket's
                // place (the carry-over) rather than be read one turn late.
                Phase::Opening => true,
                Phase::Connecting | Phase::Closed => false,
            }
    }

    /// Whether every operation has come back and the slot can be freed.
    pub(crate) fn is_quiet(&self) -> bool {
        self.inflight == 0 && self.send.zc_notifs_owed() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    /// What an idle connection costs the runtime, field by field (docs/BENCHMARKS.md
    /// has the table; `cargo test -p ringmaster-runtime budget -- --nocapture` prints
    /// it). The bound catches growth: every byte here is paid by every connection.
    #[test]
    fn connection_state_stays_within_its_budget() {
        let fields: [(&str, usize); 12] = [
            ("token", size_of::<crate::token::ConnToken>()),
            ("sock", size_of::<Option<crate::sys::sock::Sock>>()),
            ("peer", size_of::<std::net::SocketAddr>()),
            ("send queue", size_of::<crate::send_queue::SendQueue>()),
            ("carry", size_of::<Vec<u8>>()),
            ("close_why", size_of::<crate::close::Close>()),
            ("last_active", size_of::<std::time::Instant>()),
            ("idle_timer", size_of::<Option<crate::timer::TimerKey>>()),
            ("origin", size_of::<crate::close::Origin>()),
            (
                "addr",
                size_of::<Option<crate::sys::lend::Lent<Box<socket2::SockAddr>>>>(),
            ),
            ("inflight", size_of::<u16>()),
            ("phase, half and 16 flags", size_of::<super::Phase>() + 17),
        ];
        let total = size_of::<super::ConnIo>();
        for (name, bytes) in fields {
            eprintln!("{name:>20} {bytes:>4} B");
        }
        let listed: usize = fields.iter().map(|f| f.1).sum();
        eprintln!("{:>20} {:>4} B", "padding", total - listed);
        eprintln!("{:>20} {total:>4} B", "ConnIo");
        assert!(listed <= total, "a field is counted twice");
        assert!(total <= 320, "ConnIo grew to {total} B");
    }
}
