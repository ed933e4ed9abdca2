//! File descriptors and signals: the few libc calls std does not wrap.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Takes ownership of a descriptor the kernel just created for us (an accept result).
pub(crate) fn adopt(fd: RawFd) -> OwnedFd {
    debug_assert!(fd >= 0);
    // SAFETY: `fd` comes from a successful accept completion (or `pipe2`); nothing else
    // in the process has seen it, so this is its only owner and it is closed exactly once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A non-blocking pipe: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a live array of the two ints the call fills in.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((adopt(fds[0]), adopt(fds[1])))
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), if it can be read.
pub(crate) fn nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live, exclusively borrowed rlimit the call fills in.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    ok.then_some(lim.rlim_cur)
}

/// Sets `TCP_DEFER_ACCEPT` on a listener: a connection is accepted only once data has
/// arrived on it, or after `secs` seconds.
pub(crate) fn set_defer_accept(sock: &impl AsRawFd, secs: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live local int and its exact size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` on an outbound IPv4 socket: a later `bind` to an
/// address with port 0 leaves the port to `connect`, which picks one free for the very
/// destination (so one source address is not limited to one set of ephemeral ports).
pub(crate) fn set_bind_address_no_port(sock: &impl AsRawFd) -> io::Result<()> {
    let on: i32 = 1;
    // SAFETY: passes a pointer to a live local int and its exact size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A non-blocking, close-on-exec eventfd used to wake a shard's ring.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with no pointer arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(adopt(fd))
}

/// Increments an eventfd (wakes whoever reads it). Errors are ignored: EAGAIN means the
/// counter is saturated, i.e. a wake is already pending.
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local; the fd stays open for the caller's
    // lifetime (it is owned by the shard's handle, which the caller holds).
    unsafe {
        libc::write(fd, (&one as *const u64).cast(), 8);
    }
}

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: as above; `s` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

/// Blocks SIGINT and SIGTERM in the calling thread (and the threads it spawns after),
/// so that only [`wait_signal`] receives them. Their dispositions are reset to the
/// default first: a process started in the background by a non-interactive shell
/// inherits SIGINT *ignored*, and an ignored signal is discarded instead of becoming
/// pending, so `sigwait` would never see it. (Blocked, the default action never runs.)
pub(crate) fn block_shutdown_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs the predefined SIG_DFL disposition; no handler code runs.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let set = signal_set(&[libc::SIGINT, libc::SIGTERM]);
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits for SIGINT or SIGTERM (which must be blocked) and returns its number.
pub(crate) fn wait_signal() -> libc::c_int {
    let set = signal_set(&[libc::SIGINT, libc::SIGTERM]);
    let mut sig: libc::c_int = 0;
    // SAFETY: both pointers point to live, initialised locals.
    unsafe { libc::sigwait(&set, &mut sig) };
    sig
}

/// Ignores SIGPIPE process-wide: a peer closing mid-send must be an error code, not a
/// process kill (sends also pass MSG_NOSIGNAL).
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installs the predefined SIG_IGN disposition; no handler code runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
