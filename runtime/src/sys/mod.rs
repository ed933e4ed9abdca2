//! The kernel boundary: every raw pointer the runtime hands to the kernel, and every
//! `unsafe` block, is in this module (each with a `// SAFETY:` line). It imports nothing
//! from the layers above it.
//!
//! - `ring` sets up io_uring and turns typed requests into submission entries. A
//!   submission that lends memory to the kernel takes it as a [`lend::Lent`], and only a
//!   [`ring::Completion`] reaped by `Ring::reap` can take the debt off again.
//! - `lend` owns memory lent to the kernel until the operation's final completion (for
//!   a zero-copy send, its notification): no `&mut` access while owed, and dropped while
//!   owed it leaks instead of freeing. The shard's send queues, the outbound connect
//!   address, the UDP receive template and send table, and the wake eventfd's buffer
//!   all hold their kernel-visible memory in one.
//! - `msg` builds `msghdr` / `iovec` / `UDP_SEGMENT` cmsg layouts and decodes the
//!   kernel's sockaddrs and `recvmsg` output.
//! - `buf_ring` owns the provided-buffer ring the kernel receives into (its memory lives
//!   as long as the registration, which the shard removes before the ring goes).
//! - `fd` wraps the handful of raw file-descriptor and signal calls.
//! - `alloc` asks the allocator to give its free pages back when a shard goes quiet.
//!
//! So soundness does not rest on the layers above: they cannot free or change memory
//! the kernel still uses, whatever their accounting does (a mistake there leaks, and is
//! counted, instead). They still keep that accounting exact, since it also decides when
//! a connection's slot and socket are freed.

use std::io;

pub(crate) mod alloc;
pub(crate) mod buf_ring;
pub(crate) mod fd;
pub(crate) mod gather;
pub(crate) mod lend;
pub(crate) mod msg;
pub(crate) mod region;
pub(crate) mod ring;
pub(crate) mod sock;

/// Why a ring or buffer ring could not be set up.
#[derive(Debug)]
pub(crate) enum SetupError {
    /// `io_uring_setup` or a registration failed.
    Uring(io::Error),
    /// The kernel lacks an operation or feature the runtime needs.
    Unsupported(&'static str),
    /// Another system call failed while setting up.
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
}
