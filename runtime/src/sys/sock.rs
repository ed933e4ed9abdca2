//! How a connection's socket is named to the kernel: a descriptor in the process's table,
//! or a direct descriptor, an index in the ring's own registered file table.
//!
//! A direct descriptor never enters the process's descriptor table: accepting one skips
//! allocating and installing a descriptor, and every operation on it skips the
//! reference counting (`fget`/`fput`) a plain descriptor costs per operation. It exists
//! only for the ring, so closing it, and anything a plain system call would do (a
//! `setsockopt`, a `shutdown`, `getpeername`), goes through the ring too.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

/// A connection's socket, owned.
#[derive(Debug)]
pub(crate) enum Sock {
    /// A descriptor in the process's table (closed when dropped).
    Plain(OwnedFd),
    /// An index in the shard ring's registered file table. Dropped without
    /// [`Ring::close`](super::ring::Ring::close) it stays allocated until the ring goes.
    Direct(u32),
}

/// What a submission names: a plain descriptor or a registered file's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A descriptor in the process's table.
    Fd(RawFd),
    /// An index in the ring's registered file table.
    Fixed(u32),
}

impl Sock {
    /// How submissions name this socket.
    pub(crate) fn target(&self) -> Target {
        match self {
            Sock::Plain(fd) => Target::Fd(fd.as_raw_fd()),
            Sock::Direct(i) => Target::Fixed(*i),
        }
    }

    /// Gives up ownership: what the ring's close operation must close.
    pub(super) fn into_target(self) -> Target {
        match self {
            Sock::Plain(fd) => Target::Fd(fd.into_raw_fd()),
            Sock::Direct(i) => Target::Fixed(i),
        }
    }
}
