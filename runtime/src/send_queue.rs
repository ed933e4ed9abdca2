//! The per-connection send queue: one send in flight, coalescing, short-send resume,
//! and zero-copy buffers held until the kernel's notification.
//!
//! The queue is a list of segments waiting, plus the segment being sent. Starting a
//! send moves the front segment out of the list into memory `sys` owns for the kernel
//! ([`Lent`]): a plain send's segment into the queue's `current` lent buffer, a zero-copy
//! one onto the queue's zero-copy list. While the kernel owes a completion for it, that
//! memory cannot be changed or freed (dropping it would leak it), so the kernel's read
//! is sound by construction, not by this module's bookkeeping. Copied writes are
//! appended to the last waiting segment, never to the one in flight, so everything
//! written while a send is in flight goes out in the next single send. Zero-copy
//! buffers stay on their list until the kernel owes no notification for any of them
//! (notifications may come in any order), even after their bytes were acknowledged.

use std::collections::VecDeque;
use std::mem;

use crate::sys::gather::Gather;
use crate::sys::lend::{Lent, SendBuf, SendSource};
use crate::sys::ring::{Completion, Ring};
use crate::sys::sock::Target;

/// Copy buffers above this capacity are not kept for reuse (they would pin memory on an
/// idle connection).
const SPARE_MAX_CAPACITY: usize = 64 * 1024;

/// A piece of output handed to [`Io::push`](crate::Io::push) whole: how it is queued
/// says how it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Plain bytes, moved into the queue (not copied); later writes may be appended.
    Bytes(Vec<u8>),
    /// A buffer handed over whole; at or above the zero-copy threshold it goes out with
    /// SEND_ZC.
    Owned(Vec<u8>),
    /// Memory that lives for the whole program, sent without a copy.
    Static(&'static [u8]),
}

impl Segment {
    /// The bytes it carries.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Segment::Bytes(v) | Segment::Owned(v) => v,
            Segment::Static(s) => s,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// True when it carries nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A segment as queued.
enum Queued {
    /// Bytes copied in by `write` (or moved in by `push_bytes`); appendable.
    Copied(Vec<u8>),
    /// A buffer handed over whole; `zc` says whether it goes out with SEND_ZC.
    Owned { buf: Vec<u8>, zc: bool },
    /// Memory that lives for the whole program: nothing to free or keep after the send.
    Static { buf: &'static [u8], zc: bool },
}

impl Queued {
    fn bytes(&self) -> &[u8] {
        match self {
            Queued::Copied(v) => v,
            Queued::Owned { buf, .. } => buf,
            Queued::Static { buf, .. } => buf,
        }
    }
}

/// The segment being sent, maybe in part.
enum Current {
    /// None: the next send starts the front waiting segment.
    Idle,
    /// Sent plainly from this lent buffer; `copied` buffers are reused as the spare.
    Plain { buf: Lent<SendBuf>, copied: bool },
    /// Sent zero-copy from the last entry of the zero-copy list.
    Zc,
    /// Several plain segments in one vectored send.
    Gather(Lent<Box<Gather>>),
}

/// The next send: where its bytes live (lent memory of this queue) and from which
/// offset. Submitting it records the operation on that memory.
pub(crate) struct NextSend<'a> {
    src: Src<'a>,
    offset: usize,
    /// It goes out with SEND_ZC (a notification will follow its result).
    pub zc: bool,
}

/// A new copied segment starts with this much room (see `tail`): several small
/// responses, and it grows by doubling past that. Every response in flight holds one,
/// so this is also what a burst of new connections costs at its peak (4 KiB here made
/// 256 connections being set up at once cost ~1 MiB, which the allocator then kept).
const TAIL_CAPACITY: usize = 1024;

/// Bytes pushed whole up to this size join the end of the queue instead of becoming
/// a segment (and a send) of their own.
const COALESCE_MAX: usize = 4096;

/// At most this many segments, and about this many bytes, go out in one vectored send
/// (`SENDMSG`) when several wait: one send of 64 KiB costs far less than four of 16 KiB
/// (a relay's reads, one per receive buffer), and a response head and its body, or an
/// HTTP/2 frame header and its payload, leave together without being copied together.
const GATHER_SEGMENTS: usize = 64;
const GATHER_BYTES: usize = 256 * 1024;

enum Src<'a> {
    Plain(&'a mut Lent<SendBuf>),
    Zc(&'a mut Lent<Vec<SendBuf>>),
    Gather(&'a mut Lent<Box<Gather>>),
}

impl NextSend<'_> {
    /// Submits it on `ring`; returns the bytes it covers.
    pub(crate) fn submit(self, ring: &mut Ring, sock: Target, user_data: u64) -> u32 {
        match self.src {
            Src::Plain(buf) => ring.send(sock, buf, self.offset, false, user_data),
            Src::Zc(list) => ring.send(sock, list, self.offset, true, user_data),
            Src::Gather(msg) => ring.send_gather(sock, msg, self.offset, user_data),
        }
    }

    /// The bytes it would send, in pieces (tests stand in for the ring).
    #[cfg(test)]
    fn parts(&mut self) -> Vec<&[u8]> {
        let all = match &mut self.src {
            Src::Plain(buf) => buf.get().map_or(&[][..], SendBuf::bytes),
            Src::Zc(list) => list.get().map_or(&[][..], |l| l.send_bytes()),
            Src::Gather(msg) => {
                let g = msg.get_mut().expect("not lent yet");
                g.prepare(self.offset);
                return g.vectors();
            }
        };
        vec![&all[self.offset..]]
    }

    /// Records the operation as `submit` would, without a ring.
    #[cfg(test)]
    fn lend_for_test(self, user_data: u64) {
        match self.src {
            Src::Plain(buf) => buf.lend_for_test(user_data),
            Src::Zc(list) => list.lend_for_test(user_data),
            Src::Gather(msg) => msg.lend_for_test(user_data),
        }
    }
}

/// See the module docs.
pub(crate) struct SendQueue {
    /// Waiting segments, in order, after the current one.
    segments: VecDeque<Queued>,
    current: Current,
    /// Bytes of the current segment already sent.
    sent: usize,
    in_flight: bool,
    /// Bytes queued and not yet acknowledged.
    backlog: usize,
    spare: Option<Vec<u8>>,
    /// Buffers lent to zero-copy sends (the current one last, if it is zero-copy): kept
    /// until the kernel owes no notification for any of them. Boxed, and only while
    /// there are any: most connections never send zero-copy, and every idle one would
    /// carry the list's bookkeeping inline.
    zc: Option<Box<Lent<Vec<SendBuf>>>>,
    /// The back segment was handed out by `tail` when it held this many bytes: what
    /// was appended since is not in `backlog` yet (see `settle`).
    tail_open: Option<usize>,
    /// The kernel reported copying a zero-copy send on this connection (loopback, a
    /// device without scatter-gather): later sends are plain, which then costs less.
    zc_off: bool,
}

impl Default for SendQueue {
    fn default() -> Self {
        SendQueue {
            segments: VecDeque::new(),
            current: Current::Idle,
            sent: 0,
            in_flight: false,
            backlog: 0,
            spare: None,
            zc: None,
            tail_open: None,
            zc_off: false,
        }
    }
}

impl SendQueue {
    /// Queues a copy of `bytes`.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.tail_for(bytes.len()).extend_from_slice(bytes);
    }

    /// True when the current segment takes appends: copied bytes, partly sent, not in
    /// flight, nothing waiting behind it.
    fn current_appendable(&self) -> bool {
        self.segments.is_empty()
            && !self.in_flight
            && matches!(&self.current, Current::Plain { buf, copied: true } if !buf.is_owed())
    }

    /// The end of the queue, to append bytes to in place: the last waiting segment if it
    /// is copied bytes (or the current one, if it is copied, not in flight and nothing
    /// waits), else a new one. Never memory the kernel is reading: that is lent, and
    /// gives no `&mut`. Appended bytes join the backlog at the next call.
    pub(crate) fn tail(&mut self) -> &mut Vec<u8> {
        self.tail_for(0)
    }

    /// `tail`, for appending at least `len` bytes: a new segment is made with room for
    /// them (one allocation of the right size, not one that grows).
    fn tail_for(&mut self, len: usize) -> &mut Vec<u8> {
        self.settle();
        if self.current_appendable() {
            if let Current::Plain { buf, .. } = &mut self.current {
                if let Some(SendBuf::Vec(v)) = buf.get_mut() {
                    self.tail_open = Some(v.len());
                    return v;
                }
            }
            unreachable!("checked by current_appendable");
        }
        if !matches!(self.segments.back(), Some(Queued::Copied(_))) {
            // Room for a turn's worth of small responses up front: encoders append in
            // place, and growing from empty would reallocate (and move) them many times.
            let v = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(len.max(TAIL_CAPACITY)));
            self.segments.push_back(Queued::Copied(v));
        }
        match self.segments.back_mut() {
            Some(Queued::Copied(v)) => {
                self.tail_open = Some(v.len());
                v
            }
            // Just made sure the back is a copied segment.
            _ => unreachable!("the tail is a copied segment"),
        }
    }

    /// Counts what was appended through `tail` since it was handed out.
    fn settle(&mut self) {
        if let Some(open) = self.tail_open.take() {
            self.backlog += self.tail_growth(open);
        }
    }

    /// Bytes appended to the tail beyond `open`.
    fn tail_growth(&self, open: usize) -> usize {
        let len = match self.segments.back() {
            Some(Queued::Copied(v)) => v.len(),
            Some(_) => 0,
            None => match &self.current {
                Current::Plain { buf, copied: true } => match buf.get() {
                    Some(SendBuf::Vec(v)) => v.len(),
                    _ => 0,
                },
                _ => 0,
            },
        };
        len.saturating_sub(open)
    }

    /// Queues bytes as they are: moved in as a segment of their own, not copied, unless
    /// they are small enough that joining the end of the queue (one copy) is cheaper than
    /// the extra send a segment of their own would cost.
    pub(crate) fn push_bytes(&mut self, buf: Vec<u8>) {
        self.settle();
        if buf.is_empty() {
            return;
        }
        if buf.len() <= COALESCE_MAX {
            self.tail_for(buf.len()).extend_from_slice(&buf);
            return;
        }
        self.backlog += buf.len();
        self.segments.push_back(Queued::Copied(buf));
    }

    /// Queues an owned buffer. A small one that goes out plainly joins the end of the
    /// queue (one copy), as for [`push_bytes`](Self::push_bytes): a segment of its own
    /// would cost a send of its own (a 13-byte body after its head: two sends).
    pub(crate) fn push_owned(&mut self, buf: Vec<u8>, zc: bool) {
        self.settle();
        if buf.is_empty() {
            return;
        }
        if !zc && buf.len() <= COALESCE_MAX {
            self.tail_for(buf.len()).extend_from_slice(&buf);
            return;
        }
        self.backlog += buf.len();
        self.segments.push_back(Queued::Owned { buf, zc });
    }

    /// Queues `'static` memory without copying it (it outlives any send, so a zero-copy
    /// send needs no buffer kept for its notification).
    pub(crate) fn push_static(&mut self, buf: &'static [u8], zc: bool) {
        self.settle();
        if buf.is_empty() {
            return;
        }
        self.backlog += buf.len();
        self.segments.push_back(Queued::Static { buf, zc });
    }

    /// Bytes queued and not yet acknowledged by the kernel.
    pub(crate) fn backlog(&self) -> usize {
        self.backlog + self.tail_open.map_or(0, |open| self.tail_growth(open))
    }

    /// True when nothing is queued or in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.backlog() == 0
    }

    /// Zero-copy completions (results without notification yet, notifications) still
    /// owed by the kernel.
    pub(crate) fn zc_notifs_owed(&self) -> u32 {
        self.zc.as_ref().map_or(0, |z| z.owed())
    }

    /// The next send to submit, if none is in flight and something is queued. Its
    /// memory is lent to the kernel when it is submitted.
    pub(crate) fn start_next(&mut self) -> Option<NextSend<'_>> {
        self.settle();
        if self.in_flight {
            return None;
        }
        if matches!(self.current, Current::Idle) {
            // A tail handed out and left empty has nothing to send.
            let seg = loop {
                let seg = self.segments.pop_front()?;
                if !seg.bytes().is_empty() {
                    break seg;
                }
            };
            self.sent = 0;
            let zc_on = !self.zc_off;
            let next_plain = (self.segments.front())
                .is_some_and(|q| !q.bytes().is_empty() && self.goes_plain(q));
            self.current = match seg {
                seg if next_plain && self.goes_plain(&seg) => {
                    Current::Gather(Lent::new(self.gather(seg)))
                }
                Queued::Copied(v) => Current::Plain {
                    buf: Lent::new(SendBuf::Vec(v)),
                    copied: true,
                },
                Queued::Owned { buf, zc: true } if zc_on => {
                    self.zc_list().push(SendBuf::Vec(buf));
                    Current::Zc
                }
                Queued::Static { buf, zc: true } if zc_on => {
                    self.zc_list().push(SendBuf::Static(buf));
                    Current::Zc
                }
                Queued::Owned { buf, .. } => Current::Plain {
                    buf: Lent::new(SendBuf::Vec(buf)),
                    copied: false,
                },
                Queued::Static { buf, .. } => Current::Plain {
                    buf: Lent::new(SendBuf::Static(buf)),
                    copied: false,
                },
            };
        }
        self.in_flight = true;
        let offset = self.sent;
        let (src, zc) = match &mut self.current {
            Current::Plain { buf, .. } => (Src::Plain(buf), false),
            // A zero-copy segment resumed after a short send stays zero-copy (its first
            // part's notification may still be owed; the list settles both).
            Current::Zc => (
                Src::Zc(
                    self.zc
                        .get_or_insert_with(|| Box::new(Lent::new(Vec::new()))),
                ),
                true,
            ),
            Current::Gather(msg) => (Src::Gather(msg), false),
            Current::Idle => unreachable!("a current segment was just chosen"),
        };
        Some(NextSend { src, offset, zc })
    }

    /// Whether `q` goes out as a plain send (not SEND_ZC), so it can join a vectored one.
    fn goes_plain(&self, q: &Queued) -> bool {
        match q {
            Queued::Copied(_) => true,
            Queued::Owned { zc, .. } | Queued::Static { zc, .. } => !zc || self.zc_off,
        }
    }

    /// `first` and the plain segments after it, within the gather bounds, as one
    /// vectored send. A tail handed out by `tail` moves with it: nothing appends to a
    /// segment once it is taken from the list.
    fn gather(&mut self, first: Queued) -> Box<Gather> {
        let mut g = Gather::new();
        let mut next = Some(first);
        while let Some(seg) = next.take() {
            g.push(match seg {
                Queued::Copied(v) | Queued::Owned { buf: v, .. } => SendBuf::Vec(v),
                Queued::Static { buf, .. } => SendBuf::Static(buf),
            });
            if g.count() >= GATHER_SEGMENTS || g.len() >= GATHER_BYTES {
                break;
            }
            next = match self.segments.front() {
                Some(q) if !q.bytes().is_empty() && self.goes_plain(q) => self.segments.pop_front(),
                _ => None,
            };
        }
        g
    }

    /// The in-flight send's result `c` arrived (`c.result()` bytes sent). Returns true if
    /// it was short (the rest of the segment goes out in the next send).
    pub(crate) fn complete(&mut self, c: &Completion) -> bool {
        self.settle();
        debug_assert!(self.in_flight);
        self.in_flight = false;
        let len = match &mut self.current {
            Current::Plain { buf, .. } => {
                buf.settle(c);
                buf.get().map_or(0, |b| b.bytes().len())
            }
            Current::Zc => self.zc.as_deref_mut().map_or(0, |z| {
                z.settle(c);
                z.get().map_or(0, |l| l.send_bytes().len())
            }),
            Current::Gather(msg) => {
                msg.settle(c);
                msg.get().map_or(0, |g| g.len())
            }
            Current::Idle => return false,
        };
        let n = (c.result().max(0) as usize).min(len - self.sent);
        self.backlog -= n;
        self.sent += n;
        if self.sent < len {
            return true;
        }
        self.sent = 0;
        match mem::replace(&mut self.current, Current::Idle) {
            Current::Plain { buf, copied } => {
                // `Err`: still owed (a completion that was not this send's): dropping it
                // leaks it, which `sys` counts.
                if let Ok(SendBuf::Vec(mut v)) = buf.into_inner() {
                    if copied && v.capacity() <= SPARE_MAX_CAPACITY && self.spare.is_none() {
                        v.clear();
                        self.spare = Some(v);
                    }
                }
            }
            Current::Zc => self.release_zc(),
            Current::Gather(msg) => {
                // The first buffer, if it was copied bytes, becomes the spare.
                if let Ok(g) = msg.into_inner() {
                    if let Some(SendBuf::Vec(mut v)) = g.into_bufs().into_iter().next() {
                        if v.capacity() <= SPARE_MAX_CAPACITY && self.spare.is_none() {
                            v.clear();
                            self.spare = Some(v);
                        }
                    }
                }
            }
            Current::Idle => {}
        }
        if self.segments.is_empty() {
            // Drained: an idle connection keeps no send storage (a few allocations per
            // busy turn cost far less than pinned memory on every idle connection).
            self.segments = VecDeque::new();
            self.spare = None;
        }
        false
    }

    /// The in-flight send failed (`c`): nothing more will be sent on this connection.
    pub(crate) fn fail(&mut self, c: &Completion) {
        self.in_flight = false;
        match &mut self.current {
            Current::Plain { buf, .. } => {
                buf.settle(c);
            }
            Current::Zc => {
                if let Some(z) = self.zc.as_deref_mut() {
                    z.settle(c);
                }
            }
            Current::Gather(msg) => {
                msg.settle(c);
            }
            Current::Idle => {}
        }
    }

    /// The kernel said it copied a zero-copy send: send plainly from now on.
    pub(crate) fn zc_copied(&mut self) {
        self.zc_off = true;
    }

    /// A zero-copy notification `c` arrived. The zero-copy buffers are released once
    /// none is owed.
    pub(crate) fn zc_notif(&mut self, c: &Completion) {
        if let Some(z) = self.zc.as_deref_mut() {
            z.settle(c);
        }
        self.release_zc();
    }

    /// The zero-copy list, made on first use.
    fn zc_list(&mut self) -> &mut Lent<Vec<SendBuf>> {
        self.zc
            .get_or_insert_with(|| Box::new(Lent::new(Vec::new())))
    }

    /// Frees the zero-copy buffers if the kernel owes nothing for them and none is
    /// being sent.
    fn release_zc(&mut self) {
        let owed = self.zc.as_ref().is_some_and(|z| z.is_owed());
        if !matches!(self.current, Current::Zc) && !owed {
            self.zc = None;
        }
    }

    /// Drops everything not yet handed to the kernel (abort). The in-flight segment and
    /// zero-copy buffers stay until their completions arrive.
    pub(crate) fn discard_unsent(&mut self) {
        self.settle();
        for seg in self.segments.drain(..) {
            self.backlog -= seg.bytes().len();
        }
        if !self.in_flight {
            self.current = Current::Idle;
            self.release_zc();
            self.backlog = 0;
            self.sent = 0;
        }
        self.spare = None;
    }

    /// Zero-copy buffers waiting for notifications.
    #[cfg(test)]
    fn retired(&self) -> usize {
        let current = usize::from(matches!(self.current, Current::Zc));
        self.zc.as_ref().and_then(|z| z.get()).map_or(0, Vec::len) - current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND: u64 = 3 << 56;
    const SEND_ZC: u64 = 4 << 56;
    /// `IORING_CQE_F_MORE`, `IORING_CQE_F_NOTIF`.
    const MORE: u32 = 1 << 1;
    const NOTIF: u32 = 1 << 3;

    /// What the shard's `service` does with a started send, minus the ring.
    struct Started {
        len: u32,
        zc: bool,
        ptr: *const u8,
        /// The bytes, in order (several pieces for a vectored send).
        bytes: Vec<u8>,
        pieces: usize,
    }

    fn start(q: &mut SendQueue) -> Option<Started> {
        let mut next = q.start_next()?;
        let zc = next.zc;
        let parts = next.parts();
        let s = Started {
            len: parts.iter().map(|p| p.len()).sum::<usize>() as u32,
            zc,
            ptr: parts[0].as_ptr(),
            bytes: parts.concat(),
            pieces: parts.len(),
        };
        next.lend_for_test(if s.zc { SEND_ZC } else { SEND });
        Some(s)
    }

    /// The result of the in-flight send: `n` bytes; a zero-copy one promises a
    /// notification.
    fn done(q: &mut SendQueue, zc: bool, n: usize) -> bool {
        let c = if zc {
            Completion::for_test(SEND_ZC, n as i32, MORE)
        } else {
            Completion::for_test(SEND, n as i32, 0)
        };
        q.complete(&c)
    }

    fn notif(q: &mut SendQueue) {
        q.zc_notif(&Completion::for_test(SEND_ZC, 0, NOTIF));
    }

    #[test]
    fn writes_while_in_flight_are_coalesced_into_one_next_send() {
        let mut q = SendQueue::default();
        q.write(b"hello");
        let first = start(&mut q).unwrap();
        assert_eq!(first.len, 5);
        q.write(b" wor");
        q.write(b"ld");
        q.write(b"!");
        assert!(q.start_next().is_none(), "one send in flight at a time");
        assert_eq!(q.backlog(), 12);
        assert!(!done(&mut q, false, 5));
        let second = start(&mut q).unwrap();
        assert_eq!(second.len, 7, "three writes went out as one send");
        assert!(!done(&mut q, false, 7));
        assert!(q.is_empty());
    }

    #[test]
    fn in_flight_segment_is_never_appended_to() {
        let mut q = SendQueue::default();
        q.write(b"abc");
        let s = start(&mut q).unwrap();
        let before = s.ptr;
        for _ in 0..1000 {
            q.write(b"0123456789");
        }
        // The in-flight bytes did not move even though much was written after them.
        match &q.current {
            Current::Plain { buf, .. } => {
                assert!(buf.is_owed(), "lent to the kernel");
                let v = buf.get().unwrap().bytes();
                assert_eq!(v.as_ptr(), before);
                assert_eq!(v, b"abc");
            }
            _ => panic!("wrong segment"),
        }
    }

    #[test]
    fn short_sends_resume_where_they_stopped() {
        let mut q = SendQueue::default();
        q.write(&[7u8; 100]);
        let s = start(&mut q).unwrap();
        let base = s.ptr;
        assert!(done(&mut q, false, 30), "short send");
        let s = start(&mut q).unwrap();
        assert_eq!(s.len, 70);
        assert_eq!(s.ptr, base.wrapping_add(30));
        assert!(done(&mut q, false, 69));
        let s = start(&mut q).unwrap();
        assert_eq!(s.len, 1);
        assert!(!done(&mut q, false, 1));
        assert!(q.start_next().is_none());
        assert_eq!(q.backlog(), 0);
    }

    #[test]
    fn order_is_kept_across_owned_and_copied_segments() {
        let mut q = SendQueue::default();
        q.write(b"a");
        q.push_owned(vec![b'b'; 2 * COALESCE_MAX], false);
        q.write(b"c");
        let s = start(&mut q).unwrap();
        assert_eq!(
            s.pieces, 3,
            "one vectored send, no copy of the owned buffer"
        );
        let mut want = b"a".to_vec();
        want.extend_from_slice(&[b'b'; 2 * COALESCE_MAX]);
        want.push(b'c');
        assert!(s.bytes == want, "in order");
        assert!(done(&mut q, s.zc, 10), "short");
        let s = start(&mut q).unwrap();
        assert!(s.bytes == want[10..], "resumed mid-buffer");
        assert!(!done(&mut q, s.zc, s.len as usize));
        assert!(q.start_next().is_none());
    }

    #[test]
    fn a_small_owned_buffer_joins_the_queue_and_leaves_in_the_same_send() {
        let mut q = SendQueue::default();
        q.write(b"head");
        q.push_owned(vec![b'b'; 10], false);
        q.write(b"c");
        assert_eq!(q.backlog(), 15);
        let s = start(&mut q).unwrap();
        assert_eq!(s.len, 15);
        done(&mut q, s.zc, 15);
        assert!(q.start_next().is_none());
        assert_eq!(q.backlog(), 0);
    }

    #[test]
    fn zero_copy_buffers_live_until_every_notification() {
        let mut q = SendQueue::default();
        q.push_owned(vec![1u8; 1000], true);
        let s = start(&mut q).unwrap();
        assert!(s.zc);
        assert!(done(&mut q, true, 400), "short zero-copy send");
        let s = start(&mut q).unwrap();
        assert_eq!(s.len, 600);
        assert!(!done(&mut q, true, 600));
        assert_eq!(q.zc_notifs_owed(), 2);
        assert_eq!(q.retired(), 1, "acknowledged but still owed a notification");
        notif(&mut q);
        assert_eq!(q.retired(), 1);
        notif(&mut q);
        assert_eq!(q.retired(), 0);
        assert_eq!(q.zc_notifs_owed(), 0);
    }

    #[test]
    fn static_segments_keep_order_and_need_no_retirement() {
        static BODY: [u8; 100] = [7; 100];
        let mut q = SendQueue::default();
        q.write(b"head");
        q.push_static(&BODY, true);
        q.write(b"tail");
        assert_eq!(q.backlog(), 108);
        let mut seen = Vec::new();
        while let Some(s) = start(&mut q) {
            seen.push((s.len, s.zc));
            done(&mut q, s.zc, s.len as usize);
            if s.zc {
                notif(&mut q);
            }
        }
        assert_eq!(seen, vec![(4, false), (100, true), (4, false)]);
        assert_eq!((q.backlog(), q.retired(), q.zc_notifs_owed()), (0, 0, 0));
    }

    #[test]
    fn after_a_copy_report_owned_buffers_go_out_plainly() {
        let mut q = SendQueue::default();
        q.push_owned(vec![1u8; 100], true);
        q.push_owned(vec![2u8; 100], true);
        let s = start(&mut q).unwrap();
        assert!(s.zc);
        done(&mut q, true, 100);
        q.zc_copied();
        notif(&mut q);
        let s = start(&mut q).unwrap();
        assert!(
            !s.zc,
            "the kernel copied: no more zero-copy on this connection"
        );
        done(&mut q, false, 100);
        assert_eq!((q.zc_notifs_owed(), q.retired()), (0, 0));
    }

    #[test]
    fn zero_copy_without_notification_releases_at_once() {
        let mut q = SendQueue::default();
        q.push_owned(vec![1u8; 10], true);
        start(&mut q).unwrap();
        // A result without MORE: no notification follows, it is the final completion.
        q.complete(&Completion::for_test(SEND_ZC, 10, 0));
        assert_eq!(q.retired(), 0);
        assert_eq!(q.zc_notifs_owed(), 0);
    }

    #[test]
    fn notifications_in_any_order_free_nothing_until_the_last() {
        let mut q = SendQueue::default();
        q.push_owned(vec![1u8; 10], true);
        q.push_owned(vec![2u8; 10], true);
        let first = start(&mut q).unwrap().ptr;
        done(&mut q, true, 10);
        start(&mut q).unwrap();
        done(&mut q, true, 10);
        assert_eq!((q.retired(), q.zc_notifs_owed()), (2, 2));
        notif(&mut q);
        // Either buffer may be the one still pinned: both stay, unmoved.
        assert_eq!(q.retired(), 2);
        assert_eq!(
            q.zc.as_ref().unwrap().get().unwrap()[0].bytes().as_ptr(),
            first
        );
        notif(&mut q);
        assert_eq!((q.retired(), q.zc_notifs_owed()), (0, 0));
    }

    #[test]
    fn a_completion_for_another_operation_releases_nothing() {
        let mut q = SendQueue::default();
        q.write(b"abc");
        start(&mut q).unwrap();
        // Same result, wrong user_data (another connection's send): not settled, so
        // the buffer is still lent when the queue lets go of it, and is leaked.
        let before = crate::sys::lend::leaked();
        q.complete(&Completion::for_test(SEND + 1, 3, 0));
        assert!(crate::sys::lend::leaked() > before);
    }

    #[test]
    fn discard_keeps_the_in_flight_segment() {
        let mut q = SendQueue::default();
        q.write(b"abc");
        start(&mut q).unwrap();
        q.write(b"def");
        q.discard_unsent();
        assert_eq!(q.backlog(), 3);
        done(&mut q, false, 3);
        assert!(q.is_empty());
        assert!(q.start_next().is_none());
    }

    #[test]
    fn bytes_appended_in_place_count_and_leave_in_one_send() {
        let mut q = SendQueue::default();
        q.tail().extend_from_slice(b"head ");
        assert_eq!(q.backlog(), 5, "counted before the next queue operation");
        q.write(b"body");
        let s = start(&mut q).unwrap();
        assert_eq!(s.len, 9);
        // In flight: the tail is a new segment, never the one the kernel reads.
        q.tail().extend_from_slice(b"next");
        assert_eq!(q.backlog(), 13);
        assert!(!done(&mut q, false, 9));
        assert_eq!(start(&mut q).unwrap().len, 4);
        assert!(!done(&mut q, false, 4));
        assert!(q.is_empty());
    }

    #[test]
    fn after_a_short_send_writes_join_the_unsent_rest() {
        let mut q = SendQueue::default();
        q.write(b"0123456789");
        start(&mut q).unwrap();
        assert!(done(&mut q, false, 4));
        q.write(b"ab");
        assert_eq!(q.backlog(), 8);
        let s = start(&mut q).unwrap();
        assert_eq!(s.len, 8, "the rest and the new bytes in one send");
        assert!(!done(&mut q, false, 8));
        assert!(q.is_empty());
    }

    #[test]
    fn a_tail_left_empty_sends_nothing() {
        let mut q = SendQueue::default();
        q.tail();
        assert!(q.is_empty());
        assert!(q.start_next().is_none());
        q.push_bytes(b"small".to_vec());
        q.push_bytes(vec![1; 2 * COALESCE_MAX]);
        q.tail();
        let s = start(&mut q).unwrap();
        assert_eq!(
            (s.len as usize, s.pieces),
            (5 + 2 * COALESCE_MAX, 2),
            "a segment of its own, gathered into the same send"
        );
        assert!(!done(&mut q, false, 5 + 2 * COALESCE_MAX));
        assert!(q.start_next().is_none(), "the empty tail sends nothing");
    }

    #[test]
    fn a_relays_reads_leave_together_in_vectored_sends() {
        let mut q = SendQueue::default();
        for i in 0..20u8 {
            q.push_bytes(vec![i; 16 * 1024]);
        }
        assert_eq!(q.backlog(), 20 * 16 * 1024);
        let s = start(&mut q).unwrap();
        assert_eq!(
            (s.len as usize, s.pieces),
            (GATHER_BYTES, GATHER_BYTES / (16 * 1024)),
            "up to the gather bound in one send, each read a piece of it"
        );
        assert!(s.bytes[..16 * 1024].iter().all(|&b| b == 0));
        assert!(!done(&mut q, false, GATHER_BYTES));
        let s = start(&mut q).unwrap();
        assert_eq!(
            s.len as usize,
            20 * 16 * 1024 - GATHER_BYTES,
            "then the rest"
        );
        assert_eq!(s.bytes[0], 16, "in order");
        assert!(!done(&mut q, false, s.len as usize));
        assert!(q.start_next().is_none());
    }
}
