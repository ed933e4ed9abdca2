//! One io_uring per shard: setup with fallbacks, opcode probing, typed submissions.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};

use crate::sys::gather::Gather;
use crate::sys::lend::{Lent, SendSource};
use crate::sys::msg::{DatagramMsg, RecvTemplate};
use crate::sys::sock::{Sock, Target};
use crate::sys::SetupError;

/// How the ring was set up; the best the kernel accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRunMode {
    /// SINGLE_ISSUER | DEFER_TASKRUN (6.1+): completions are processed only when the
    /// shard asks, in batches, with no interrupts.
    DeferTaskrun,
    /// COOP_TASKRUN | TASKRUN_FLAG (5.19+): no IPIs, task work at the next syscall.
    CoopTaskrun,
    /// Plain setup.
    Plain,
}

/// `IORING_SEND_ZC_REPORT_USAGE`: the notification's result then carries
/// [`ZC_COPIED`] when the kernel copied the data instead of sending it from our pages.
const ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, in a zero-copy notification's result.
pub(crate) const ZC_COPIED: i32 = 1 << 31;

/// What the kernel offered this ring.
#[derive(Debug, Clone, Copy)]
pub struct RingFeatures {
    /// The task-run mode in use.
    pub mode: TaskRunMode,
    /// Recv bundles (6.10+).
    pub recv_bundles: bool,
    /// SEND_ZC is available.
    pub send_zc: bool,
    /// SEND_ZC notifications say whether the kernel copied after all
    /// (`IORING_SEND_ZC_REPORT_USAGE`, 6.2).
    pub zc_report_usage: bool,
    /// Submission and completion queue sizes.
    pub sq_entries: u32,
    /// Completion queue size.
    pub cq_entries: u32,
    /// Batched waits (`min_wait_usec`, 6.12).
    pub min_timeout: bool,
    /// Successful completions can be skipped (`IOSQE_CQE_SKIP_SUCCESS`, 5.17): a close
    /// or shutdown then costs no completion unless it fails.
    pub skip_success: bool,
    /// A direct descriptor can be turned into a plain one (`FIXED_FD_INSTALL`, 6.8).
    pub fd_install: bool,
    /// The operations a direct socket needs besides accept and I/O (close, shutdown,
    /// socket commands) are there.
    pub direct_ops: bool,
}

/// Builds an entry for `target`, a plain descriptor or a registered file's index:
/// `on_target!(t, |f| opcode::X::new(f, ..).build())`.
macro_rules! on_target {
    ($target:expr, |$f:ident| $build:expr) => {
        match $target {
            Target::Fd(fd) => {
                let $f = Fd(fd);
                $build
            }
            Target::Fixed(i) => {
                let $f = Fixed(i);
                $build
            }
        }
    };
}

/// `SOCKET_URING_OP_GETSOCKOPT` (6.7): a `getsockopt` at `SOL_SOCKET` as a ring command.
const SOCKET_OP_GETSOCKOPT: u32 = 2;

/// `SO_LINGER` with a zero timeout: closing then resets the connection. Static, so the
/// pointer a `setsockopt` command carries is valid for as long as the kernel needs it.
static LINGER_ZERO: libc::linger = libc::linger {
    l_onoff: 1,
    l_linger: 0,
};

/// Largest single send; the rest of a larger buffer follows as a resumed send.
pub(crate) const MAX_SEND: usize = 1 << 30;

/// One completion, as reaped. Only `sys` makes these (in [`Ring::reap`]), so a
/// [`Lent`] can trust one to be the kernel's word that an operation is over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    user_data: u64,
    res: i32,
    flags: u32,
}

impl Completion {
    /// The `user_data` of the submission it completes.
    pub(crate) fn user_data(&self) -> u64 {
        self.user_data
    }

    /// The result (negative: an errno).
    pub(crate) fn result(&self) -> i32 {
        self.res
    }

    /// The CQE flags.
    pub(crate) fn flags(&self) -> u32 {
        self.flags
    }

    /// `IORING_CQE_F_MORE`: more completions follow for this operation.
    pub(crate) fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// A zero-copy notification (`IORING_CQE_F_NOTIF`).
    pub(crate) fn notif(&self) -> bool {
        cqueue::notif(self.flags)
    }

    /// The operation's last completion: nothing of it is left in the kernel.
    pub(crate) fn is_final(&self) -> bool {
        !self.more()
    }

    /// A completion made up by a test.
    #[cfg(test)]
    pub(crate) fn for_test(user_data: u64, res: i32, flags: u32) -> Completion {
        Completion {
            user_data,
            res,
            flags,
        }
    }
}

/// A shard's ring. Not `Send`: it lives and dies on its shard's thread.
pub(crate) struct Ring {
    ring: IoUring,
    pub(crate) features: RingFeatures,
}

const REQUIRED: &[(u8, &str)] = &[
    (opcode::AcceptMulti::CODE, "multishot accept"),
    (opcode::RecvMulti::CODE, "recv"),
    (opcode::Send::CODE, "send"),
    (opcode::AsyncCancel::CODE, "async cancel"),
    (opcode::Read::CODE, "read"),
    (opcode::RecvMsg::CODE, "recvmsg"),
    (opcode::SendMsg::CODE, "sendmsg"),
];

impl Ring {
    /// Sets up a ring of `entries` submissions with a completion queue four times as
    /// large, trying DEFER_TASKRUN, then COOP_TASKRUN, then plain.
    pub(crate) fn new(entries: u32, allow_bundles: bool) -> Result<Ring, SetupError> {
        let cq = entries.saturating_mul(4);
        type Configure = fn(&mut io_uring::Builder);
        let attempts: [(TaskRunMode, Configure); 3] = [
            (TaskRunMode::DeferTaskrun, |b| {
                b.setup_single_issuer().setup_defer_taskrun();
            }),
            (TaskRunMode::CoopTaskrun, |b| {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }),
            (TaskRunMode::Plain, |_| {}),
        ];
        let mut last_err = None;
        for (mode, configure) in attempts {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(cq).setup_submit_all().setup_clamp();
            configure(&mut builder);
            match builder.build(entries) {
                Ok(ring) => return Self::finish(ring, mode, allow_bundles),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
                Err(e) => return Err(SetupError::Uring(e)),
            }
        }
        Err(SetupError::Uring(last_err.unwrap_or_else(|| {
            io::Error::from_raw_os_error(libc::EINVAL)
        })))
    }

    fn finish(ring: IoUring, mode: TaskRunMode, allow_bundles: bool) -> Result<Ring, SetupError> {
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(SetupError::Uring)?;
        for (code, name) in REQUIRED {
            if !probe.is_supported(*code) {
                return Err(SetupError::Unsupported(name));
            }
        }
        if !ring.params().is_feature_ext_arg() {
            return Err(SetupError::Unsupported("EXT_ARG waits"));
        }
        let features = RingFeatures {
            mode,
            recv_bundles: allow_bundles && ring.params().is_feature_recvsend_bundle(),
            send_zc: probe.is_supported(opcode::SendZc::CODE)
                && probe.is_supported(opcode::SendMsgZc::CODE),
            // No feature bit announces usage reports (6.2); bundles (6.10) imply them,
            // and an older kernel would fail every zero-copy send with EINVAL.
            zc_report_usage: ring.params().is_feature_recvsend_bundle(),
            min_timeout: ring.params().is_feature_min_timeout(),
            skip_success: ring.params().is_feature_skip_cqe_on_success(),
            fd_install: probe.is_supported(opcode::FixedFdInstall::CODE),
            direct_ops: [
                opcode::Close::CODE,
                opcode::Shutdown::CODE,
                opcode::UringCmd16::CODE,
            ]
            .iter()
            .all(|c| probe.is_supported(*c)),
            sq_entries: ring.params().sq_entries(),
            cq_entries: ring.params().cq_entries(),
        };
        Ok(Ring { ring, features })
    }

    /// Registers a sparse file table of `slots` entries for direct descriptors, once
    /// the kernel has shown it can run on one everything a connection needs (a socket
    /// command, `getsockopt`, on a registered socket: 6.7). Err: why not, for the
    /// startup line; the shard then uses plain descriptors.
    pub(crate) fn enable_direct(&mut self, slots: u32) -> Result<(), String> {
        if !self.features.direct_ops {
            return Err("kernel lacks close/shutdown/socket commands on the ring".into());
        }
        self.ring
            .submitter()
            .register_files_sparse(slots)
            .map_err(|e| format!("registering a {slots}-slot file table failed: {e}"))?;
        match self.socket_command_works() {
            Ok(true) => Ok(()),
            Ok(false) => {
                let _ = self.ring.submitter().unregister_files();
                Err("kernel lacks getsockopt as a ring command (6.7)".into())
            }
            Err(e) => {
                let _ = self.ring.submitter().unregister_files();
                Err(format!("probing socket commands failed: {e}"))
            }
        }
    }

    /// Runs `getsockopt(SO_TYPE)` as a ring command on a fresh socket placed in slot 0
    /// of the (just registered, empty) table, and waits for it.
    fn socket_command_works(&mut self) -> io::Result<bool> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        use std::os::fd::AsRawFd;
        self.ring
            .submitter()
            .register_files_update(0, &[sock.as_raw_fd()])?;
        let mut kind: libc::c_int = 0;
        let ptr: *mut libc::c_int = &mut kind;
        let e = opcode::SetSockOpt::new(
            Fixed(0),
            libc::SOL_SOCKET as u32,
            libc::SO_TYPE as u32,
            ptr.cast_const().cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
        .build();
        let e = with_cmd_op(e, SOCKET_OP_GETSOCKOPT).user_data(u64::MAX);
        // SAFETY: `kind` outlives the operation: this function waits below for its
        // completion (the only submission on the ring so far) before returning.
        unsafe { self.push(e) };
        let res = loop {
            self.ring.submitter().submit_and_wait(1)?;
            if let Some(c) = self.ring.completion().next() {
                break c.result();
            }
        };
        self.ring.submitter().register_files_update(0, &[-1])?;
        Ok(res == std::mem::size_of::<libc::c_int>() as i32 && kind == libc::SOCK_STREAM)
    }

    /// The submitter, for registrations.
    pub(super) fn submitter(&self) -> io_uring::Submitter<'_> {
        self.ring.submitter()
    }

    /// Queues an entry, flushing the submission queue to the kernel first if it is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid, and its memory unmoved, until the
    /// entry's final completion is reaped.
    unsafe fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // Full: hand what is queued to the kernel and retry. An error here (EBUSY
            // while the CQ is backed up) still leaves room once completions are reaped,
            // which the shard does on every turn; spinning is bounded by that.
            if self.ring.submit().is_err() {
                std::thread::yield_now();
            }
        }
    }

    /// Arms a multishot accept on `listener`; with `direct`, each connection goes into
    /// the registered file table (a free slot the kernel picks) instead of the process's
    /// descriptor table, and its completion's result is that slot.
    pub(crate) fn accept_multi(&mut self, listener: RawFd, direct: bool, user_data: u64) {
        // A direct descriptor is in no process table, so has no close-on-exec flag to
        // set (the kernel refuses the flag with one).
        let flags = if direct { 0 } else { libc::SOCK_CLOEXEC };
        let e = opcode::AcceptMulti::new(Fd(listener))
            .allocate_file_index(direct)
            .flags(flags)
            .build()
            .user_data(user_data);
        // SAFETY: the entry holds no pointers.
        unsafe { self.push(e) }
    }

    /// Arms a multishot receive into buffer group `bgid`, as bundles if asked.
    pub(crate) fn recv_multi(&mut self, sock: Target, bgid: u16, bundle: bool, user_data: u64) {
        let e = if bundle {
            on_target!(sock, |f| opcode::RecvMultiBundle::new(f, bgid).build())
        } else {
            on_target!(sock, |f| opcode::RecvMulti::new(f, bgid).build())
        };
        // SAFETY: no pointers; the kernel picks buffers from the registered ring, whose
        // memory lives as long as the ring (see BufRing).
        unsafe { self.push(e.user_data(user_data)) }
    }

    /// Arms one receive (not multishot) into one buffer of group `bgid`: at most that
    /// buffer's bytes arrive, however fast the peer sends, which is what a connection
    /// whose reading keeps being paused wants (see `ConnIo::recv_single`).
    pub(crate) fn recv_once(&mut self, sock: Target, bgid: u16, user_data: u64) {
        let e = on_target!(sock, |f| opcode::Recv::new(f, std::ptr::null_mut(), 0)
            .buf_group(bgid)
            .build()
            .flags(io_uring::squeue::Flags::BUFFER_SELECT));
        // SAFETY: no pointers (the null buffer is never used: BUFFER_SELECT makes the
        // kernel pick one from the registered ring, whose memory lives as long as the
        // ring, see BufRing).
        unsafe { self.push(e.user_data(user_data)) }
    }

    /// Arms a one-shot poll for input (or the peer's end of it) on a plain descriptor.
    pub(crate) fn poll_in(&mut self, fd: RawFd, user_data: u64) {
        let mask = (libc::POLLIN | libc::POLLRDHUP) as u32;
        let e = opcode::PollAdd::new(Fd(fd), mask).build();
        // SAFETY: no pointers.
        unsafe { self.push(e.user_data(user_data)) }
    }

    /// Moves up to `len` bytes from `from` to `to` (plain descriptors, one of them a
    /// pipe) inside the kernel (`IORING_OP_SPLICE`; the kernel runs it on an io-wq
    /// worker, never inline). `SPLICE_F_NONBLOCK` keeps the pipe side from blocking.
    pub(crate) fn splice(&mut self, from: RawFd, to: RawFd, len: u32, user_data: u64) {
        let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
        let e = opcode::Splice::new(Fd(from), -1, Fd(to), -1, len)
            .flags(flags)
            .build();
        // SAFETY: no pointers; both descriptors are owned by the splice state, which
        // outlives the operation (it is dropped only once its connection's slot is
        // freed, after every completion).
        unsafe { self.push(e.user_data(user_data)) }
    }

    /// Submits one vectored send (`SENDMSG`) of `msg`'s buffers from `offset`; returns
    /// the bytes it covers. `msg` records the operation and cannot be changed or freed
    /// until its completion is settled on it.
    pub(crate) fn send_gather(
        &mut self,
        sock: Target,
        msg: &mut Lent<Box<Gather>>,
        offset: usize,
        user_data: u64,
    ) -> u32 {
        let Some(g) = msg.get_mut() else {
            debug_assert!(false, "a gathered send submitted twice");
            return 0;
        };
        let len = g.len().saturating_sub(offset) as u32;
        let hdr = g.prepare(offset);
        msg.lend(user_data, false);
        let e = on_target!(sock, |f| opcode::SendMsg::new(f, hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build());
        // SAFETY: `hdr`, its vectors and the buffers they point into live in the box,
        // inside a `Lent` that now owes the completion: unchanged, unmoved and unfreed
        // until then.
        unsafe { self.push(e.user_data(user_data)) }
        len
    }

    /// Submits a send (SEND_ZC when `zc`) of `src`'s bytes from `offset` (at most
    /// [`MAX_SEND`] of them; returns how many). `src` records the operation and cannot be
    /// changed or freed until its final completion (for zero-copy, the notification)
    /// is settled on it.
    pub(crate) fn send<B: SendSource>(
        &mut self,
        sock: Target,
        src: &mut Lent<B>,
        offset: usize,
        zc: bool,
        user_data: u64,
    ) -> u32 {
        let report = if self.features.zc_report_usage {
            ZC_REPORT_USAGE
        } else {
            0
        };
        let bytes = src.lend(user_data, false).send_bytes();
        let rest = &bytes[offset.min(bytes.len())..];
        let len = rest.len().min(MAX_SEND) as u32;
        let ptr = rest.as_ptr();
        let e = if zc {
            on_target!(sock, |f| opcode::SendZc::new(f, ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .zc_flags(report)
                .build())
        } else {
            on_target!(sock, |f| opcode::Send::new(f, ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build())
        };
        // SAFETY: the bytes belong to `src`, a stable value (its memory does not move
        // when it moves) that now owes a final completion for `user_data`: it gives no
        // `&mut` access and is never freed (leaked if dropped) until that is settled.
        unsafe { self.push(e.user_data(user_data)) };
        len
    }

    /// Connects `fd` to the address `addr` holds, which stays lent (boxed, unmoved,
    /// unfreed) until the completion is settled on it.
    pub(crate) fn connect(
        &mut self,
        sock: Target,
        addr: &mut Lent<Box<socket2::SockAddr>>,
        user_data: u64,
    ) {
        let a = addr.lend(user_data, false);
        let (ptr, len) = (a.as_ptr().cast(), a.len());
        let e =
            on_target!(sock, |f| opcode::Connect::new(f, ptr, len).build()).user_data(user_data);
        // SAFETY: the address is boxed inside a `Lent` that now owes the completion.
        unsafe { self.push(e) }
    }

    /// Cancels every request in flight on `sock`.
    pub(crate) fn cancel_fd(&mut self, sock: Target, user_data: u64) {
        let which = on_target!(sock, |f| CancelBuilder::fd(f).all());
        let e = opcode::AsyncCancel2::new(which)
            .build()
            .user_data(user_data);
        // SAFETY: the entry holds no pointers that outlive this call (the cancel
        // builder's fields are copied into the entry).
        unsafe { self.push(e) }
    }

    /// Shuts down one or both directions of `sock` (`libc::SHUT_*`). The kernel runs it
    /// on a worker thread, so it may finish after operations submitted later: its
    /// completion (always posted) says when it has.
    pub(crate) fn shutdown(&mut self, sock: Target, how: i32, user_data: u64) {
        let e = on_target!(sock, |f| opcode::Shutdown::new(f, how).build());
        let e = e.user_data(user_data);
        // SAFETY: the entry holds no pointers.
        unsafe { self.push(e) }
    }

    /// Closes `sock` (frees its registered-table slot, or its descriptor). Every
    /// operation on it must have completed: a slot is reused by the next accept.
    pub(crate) fn close(&mut self, sock: Sock, user_data: u64) {
        let e = on_target!(sock.into_target(), |f| opcode::Close::new(f).build());
        let e = self.quiet(e).user_data(user_data);
        // SAFETY: the entry holds no pointers.
        unsafe { self.push(e) }
    }

    /// Installs the direct descriptor `sock` as a plain (close-on-exec) descriptor too;
    /// the completion's result is the new descriptor, which the caller then owns.
    pub(crate) fn fd_install(&mut self, sock: Target, user_data: u64) {
        let Target::Fixed(i) = sock else {
            debug_assert!(false, "only a direct descriptor is installed");
            return;
        };
        let e = opcode::FixedFdInstall::new(Fixed(i), 0)
            .build()
            .user_data(user_data);
        // SAFETY: the entry holds no pointers.
        unsafe { self.push(e) }
    }

    /// Sets `SO_LINGER` to zero on `sock`, so that closing it sends a reset. (A command
    /// that completes when submitted: the close, submitted turns later, follows it.)
    pub(crate) fn linger_zero(&mut self, sock: Target, user_data: u64) {
        let val: *const libc::linger = &LINGER_ZERO;
        let e = on_target!(sock, |f| opcode::SetSockOpt::new(
            f,
            libc::SOL_SOCKET as u32,
            libc::SO_LINGER as u32,
            val.cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
        .build());
        let e = self.quiet(e).user_data(user_data);
        // SAFETY: the option value is a `static`: valid and unchanged for ever.
        unsafe { self.push(e) }
    }

    /// Asks for `sock`'s peer address (`getsockopt(SO_PEERNAME)` as a ring command, the
    /// only way to reach a direct descriptor's), written into `addr`, which stays lent
    /// until the completion (result: the address length) is settled on it. `addr` must
    /// hold an address of the expected family: its length is the length asked for.
    pub(crate) fn peer_name(
        &mut self,
        sock: Target,
        addr: &mut Lent<Box<socket2::SockAddr>>,
        user_data: u64,
    ) {
        let a = addr.lend(user_data, true);
        let (ptr, len) = (a.as_ptr().cast_mut().cast::<libc::c_void>(), a.len());
        let e = on_target!(sock, |f| opcode::SetSockOpt::new(
            f,
            libc::SOL_SOCKET as u32,
            libc::SO_PEERNAME as u32,
            ptr.cast_const(),
            len,
        )
        .build());
        let e = with_cmd_op(e, SOCKET_OP_GETSOCKOPT).user_data(user_data);
        // SAFETY: the address buffer is boxed inside a `Lent` that now owes the
        // completion and gives no access (the kernel writes it) until it is settled.
        unsafe { self.push(e) }
    }

    /// Marks `e` to post no completion when it succeeds, where the kernel can.
    fn quiet(&self, e: squeue::Entry) -> squeue::Entry {
        if self.features.skip_success {
            e.flags(squeue::Flags::SKIP_SUCCESS)
        } else {
            e
        }
    }

    /// Cancels the request submitted with `target` as its user data, with no completion
    /// for the cancellation itself unless it fails (where the kernel can skip one).
    pub(crate) fn cancel_quietly(&mut self, target: u64, user_data: u64) {
        let e = opcode::AsyncCancel::new(target).build();
        let e = self.quiet(e).user_data(user_data);
        // SAFETY: the entry holds no pointers.
        unsafe { self.push(e) }
    }

    /// Cancels the request submitted with `target` as its user data.
    pub(crate) fn cancel_user_data(&mut self, target: u64, user_data: u64) {
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data);
        // SAFETY: the entry holds no pointers.
        unsafe { self.push(e) }
    }

    /// Reads 8 bytes from an eventfd into `buf`, lent (boxed, and unreadable by us) until
    /// the completion is settled on it.
    pub(crate) fn read_eventfd(&mut self, fd: RawFd, buf: &mut Lent<Box<[u8; 8]>>, user_data: u64) {
        let ptr = buf.lend(user_data, true).as_ptr().cast_mut();
        let e = opcode::Read::new(Fd(fd), ptr, 8)
            .build()
            .user_data(user_data);
        // SAFETY: the 8 bytes are boxed inside a `Lent` that now owes the completion and
        // gives no access at all (the kernel writes them) until it is settled.
        unsafe { self.push(e) }
    }

    /// Arms a multishot recvmsg into buffer group `bgid`, reading the template `hdr`
    /// (lent until the multishot's last completion is settled on it).
    pub(crate) fn recvmsg_multi(
        &mut self,
        fd: RawFd,
        hdr: &mut Lent<RecvTemplate>,
        bgid: u16,
        user_data: u64,
    ) {
        let e = opcode::RecvMsgMulti::new(Fd(fd), hdr.lend(user_data, false).hdr(), bgid)
            .build()
            .user_data(user_data);
        // SAFETY: the template is boxed inside a `Lent` that owes the final completion;
        // the data goes into the registered buffer ring, which outlives the ring's use.
        unsafe { self.push(e) }
    }

    /// Sends the datagram(s) `msg` describes (SENDMSG_ZC if `zc`). The message (header,
    /// iovec, cmsg, address and payload, all in one box) stays lent until its final
    /// completion (for zero-copy, the notification) is settled on it.
    pub(crate) fn sendmsg(
        &mut self,
        fd: RawFd,
        msg: &mut Lent<Box<DatagramMsg>>,
        zc: bool,
        user_data: u64,
    ) {
        // The pointers are taken inside the box, which is not touched again until the
        // debt recorded below is settled.
        let hdr: *const libc::msghdr = match msg.get_mut() {
            Some(m) => m.prepare(),
            None => {
                debug_assert!(false, "a datagram message submitted twice");
                return;
            }
        };
        msg.lend(user_data, false);
        let e = if zc {
            opcode::SendMsgZc::new(Fd(fd), hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        } else {
            opcode::SendMsg::new(Fd(fd), hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        // SAFETY: `hdr` and everything it points to live in the message's box, inside a
        // `Lent` that now owes the final completion: unchanged, unmoved and unfreed
        // until then.
        unsafe { self.push(e.user_data(user_data)) }
    }

    /// Submits what is queued and waits for at least one completion, or `timeout`.
    pub(crate) fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.submit_and_wait_batch(timeout, 1, 0)
    }

    /// Like `submit_and_wait`, but first waits up to `min_wait_us` for `want` completions
    /// (then returns on the first one): fewer wake-ups under load for a bounded delay.
    /// Needs IORING_FEAT_MIN_TIMEOUT (6.12); without it, waits for one.
    pub(crate) fn submit_and_wait_batch(
        &mut self,
        timeout: Option<Duration>,
        want: usize,
        min_wait_us: u32,
    ) -> io::Result<()> {
        let batching = want > 1 && min_wait_us > 0 && self.features.min_timeout;
        let (want, min_wait_us) = if batching {
            (want, min_wait_us)
        } else {
            (1, 0)
        };
        let ts = timeout.map(Timespec::from);
        let res = match &ts {
            Some(ts) => {
                let args = SubmitArgs::new().min_wait_usec(min_wait_us).timespec(ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            None if batching => {
                let args = SubmitArgs::new().min_wait_usec(min_wait_us);
                self.ring.submitter().submit_with_args(want, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        match res {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// Submits what is queued without waiting.
    pub(crate) fn submit(&mut self) -> io::Result<()> {
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves every available completion into `out`; returns the kernel's overflow count.
    pub(crate) fn reap(&mut self, out: &mut Vec<Completion>) -> u32 {
        let mut cq = self.ring.completion();
        cq.sync();
        let overflow = cq.overflow();
        out.extend((&mut cq).map(|e| Completion {
            user_data: e.user_data(),
            res: e.result(),
            flags: e.flags(),
        }));
        overflow
    }
}

/// `e`, a socket command built as a `setsockopt`, turned into command `cmd_op` (the crate
/// builds only `SOCKET_URING_OP_SETSOCKOPT`; the other socket commands share its layout).
fn with_cmd_op(e: squeue::Entry, cmd_op: u32) -> squeue::Entry {
    /// Where `cmd_op` sits in a submission entry (`struct io_uring_sqe`, after opcode,
    /// flags, ioprio and fd).
    const CMD_OP_OFFSET: usize = 8;
    // SAFETY: `Entry` is a `repr(C)` wrapper of the kernel's 64-byte `io_uring_sqe`,
    // plain data for which every bit pattern is valid (`transmute` checks the size).
    let mut raw: [u8; 64] = unsafe { std::mem::transmute::<squeue::Entry, [u8; 64]>(e) };
    raw[CMD_OP_OFFSET..CMD_OP_OFFSET + 4].copy_from_slice(&cmd_op.to_ne_bytes());
    // SAFETY: as above, back to the wrapper; only `cmd_op` changed.
    unsafe { std::mem::transmute::<[u8; 64], squeue::Entry>(raw) }
}
