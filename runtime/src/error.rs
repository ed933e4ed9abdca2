//! The runtime's error type.

use std::io;
use std::net::SocketAddr;

/// What can stop a server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range; the message says which and what to use.
    #[error("{0}")]
    Config(String),
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}{hint}", hint = bind_hint(source))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// io_uring could not be set up.
    #[error("io_uring setup failed: {source}{hint}", hint = uring_hint(source))]
    Uring {
        /// The cause.
        source: io::Error,
    },
    /// The kernel lacks an operation the runtime needs.
    #[error("the kernel lacks io_uring {0}: ringmaster needs Linux 6.1 or newer")]
    Unsupported(&'static str),
    /// Any other I/O failure while starting a shard.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// A shard thread died from a panic.
    #[error("shard {0} panicked")]
    ShardPanicked(usize),
}

impl From<crate::sys::SetupError> for Error {
    fn from(e: crate::sys::SetupError) -> Self {
        use crate::sys::SetupError;
        match e {
            SetupError::Uring(source) => Error::Uring { source },
            SetupError::Unsupported(what) => Error::Unsupported(what),
            SetupError::Io { what, source } => Error::Io { what, source },
        }
    }
}

fn bind_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => " (the port is in use: stop the other server or pick another port; port 0 picks a free one)",
        Some(libc::EACCES) => " (ports below 1024 need root or CAP_NET_BIND_SERVICE: pick a port above 1024)",
        Some(libc::EADDRNOTAVAIL) => " (no interface has that address: use 127.0.0.1, ::1 or 0.0.0.0)",
        _ => "",
    }
}

fn uring_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (io_uring is disabled or blocked: check sysctl kernel.io_uring_disabled=0 and any seccomp profile)"
        }
        Some(libc::ENOMEM) => " (locked-memory limit too low: raise `ulimit -l` or use fewer ring entries)",
        Some(libc::ENOSYS) => " (this kernel has no io_uring: ringmaster needs Linux 6.1 or newer)",
        _ => "",
    }
}
