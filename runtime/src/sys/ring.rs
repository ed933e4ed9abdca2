//! One io_uring per shard: setup with fallbacks, opcode probing, typed submissions.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};

use crate::error::Error;
use crate::send_queue::NextSend;

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
    pub(crate) fn new(entries: u32, allow_bundles: bool) -> Result<Ring, Error> {
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
                Err(e) => return Err(Error::Uring { source: e }),
            }
        }
        Err(Error::Uring {
            source: last_err.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)),
        })
    }

    fn finish(ring: IoUring, mode: TaskRunMode, allow_bundles: bool) -> Result<Ring, Error> {
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|source| Error::Uring { source })?;
        for (code, name) in REQUIRED {
            if !probe.is_supported(*code) {
                return Err(Error::Unsupported(name));
            }
        }
        if !ring.params().is_feature_ext_arg() {
            return Err(Error::Unsupported("EXT_ARG waits"));
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
            sq_entries: ring.params().sq_entries(),
            cq_entries: ring.params().cq_entries(),
        };
        Ok(Ring { ring, features })
    }

    /// The submitter, for registrations.
    pub(crate) fn submitter(&self) -> io_uring::Submitter<'_> {
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

    /// Arms a multishot accept on `listener`.
    pub(crate) fn accept_multi(&mut self, listener: RawFd, user_data: u64) {
        let e = opcode::AcceptMulti::new(Fd(listener))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data);
        // SAFETY: the entry holds no pointers.
        unsafe { self.push(e) }
    }

    /// Arms a multishot receive into buffer group `bgid`, as bundles if asked.
    pub(crate) fn recv_multi(&mut self, fd: RawFd, bgid: u16, bundle: bool, user_data: u64) {
        let e = if bundle {
            opcode::RecvMultiBundle::new(Fd(fd), bgid).build()
        } else {
            opcode::RecvMulti::new(Fd(fd), bgid).build()
        };
        // SAFETY: no pointers; the kernel picks buffers from the registered ring, whose
        // memory lives as long as the ring (see BufRing).
        unsafe { self.push(e.user_data(user_data)) }
    }

    /// Submits a send (SEND_ZC when `next.zc`) of memory owned by a connection's send
    /// queue (or `'static`), which keeps it unmoved until the completion (and, for
    /// zero-copy, the notification) arrives; the shard frees a connection only when none
    /// is owed.
    pub(crate) fn send(&mut self, fd: RawFd, next: NextSend, user_data: u64) {
        let e = if next.zc {
            let report = if self.features.zc_report_usage {
                ZC_REPORT_USAGE
            } else {
                0
            };
            opcode::SendZc::new(Fd(fd), next.ptr, next.len)
                .flags(libc::MSG_NOSIGNAL)
                .zc_flags(report)
                .build()
        } else {
            opcode::Send::new(Fd(fd), next.ptr, next.len)
                .flags(libc::MSG_NOSIGNAL)
                .build()
        };
        // SAFETY: see the doc comment: the send queue owns the memory and keeps it in
        // place until its completion is reaped.
        unsafe { self.push(e.user_data(user_data)) }
    }

    /// Connects `fd` to `addr`, which the connection's slot keeps boxed (unmoved) until
    /// the completion arrives.
    pub(crate) fn connect(&mut self, fd: RawFd, addr: &socket2::SockAddr, user_data: u64) {
        let e = opcode::Connect::new(Fd(fd), addr.as_ptr().cast(), addr.len())
            .build()
            .user_data(user_data);
        // SAFETY: see above: the address outlives the operation.
        unsafe { self.push(e) }
    }

    /// Cancels every request in flight on `fd`.
    pub(crate) fn cancel_fd(&mut self, fd: RawFd, user_data: u64) {
        let e = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
            .build()
            .user_data(user_data);
        // SAFETY: the entry holds no pointers that outlive this call (the cancel
        // builder's fields are copied into the entry).
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

    /// Reads 8 bytes from an eventfd into `buf`, which the caller keeps alive and in
    /// place until the completion is reaped (the shard owns it in a Box).
    pub(crate) fn read_eventfd(&mut self, fd: RawFd, buf: &mut [u8; 8], user_data: u64) {
        let e = opcode::Read::new(Fd(fd), buf.as_mut_ptr(), 8)
            .build()
            .user_data(user_data);
        // SAFETY: `buf` is boxed by the shard, never moved, and dropped only after the
        // read's completion (the shard waits for it before exiting).
        unsafe { self.push(e) }
    }

    /// Arms a multishot recvmsg into buffer group `bgid`. `hdr` (name and control sizes
    /// only) must stay in place until the final completion: the shard keeps it boxed in
    /// its UDP port, which outlives every operation on the socket.
    pub(crate) fn recvmsg_multi(
        &mut self,
        fd: RawFd,
        hdr: &libc::msghdr,
        bgid: u16,
        user_data: u64,
    ) {
        let e = opcode::RecvMsgMulti::new(Fd(fd), hdr, bgid)
            .build()
            .user_data(user_data);
        // SAFETY: see above; the buffers come from the registered ring.
        unsafe { self.push(e) }
    }

    /// Sends one datagram described by `hdr` (SENDMSG_ZC if `zc`). `hdr`, its iovec,
    /// address and payload live in one boxed send-table entry that is removed only after
    /// the result (and, for zero-copy, the notification) completion.
    pub(crate) fn sendmsg(&mut self, fd: RawFd, hdr: &libc::msghdr, zc: bool, user_data: u64) {
        let e = if zc {
            opcode::SendMsgZc::new(Fd(fd), hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        } else {
            opcode::SendMsg::new(Fd(fd), hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        // SAFETY: see above.
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
    pub(crate) fn reap(&mut self, out: &mut Vec<cqueue::Entry>) -> u32 {
        let mut cq = self.ring.completion();
        cq.sync();
        let overflow = cq.overflow();
        out.extend(&mut cq);
        overflow
    }
}
