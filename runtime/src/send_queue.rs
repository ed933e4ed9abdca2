//! The per-connection send queue: one send in flight, coalescing, short-send resume,
//! and zero-copy buffers held until the kernel's notification.
//!
//! The queue is a list of segments. Copied writes are appended to the last segment
//! unless that segment is the one in flight: the kernel is reading it, so it is never
//! touched (no push that could reallocate it) until its completion arrives. Everything
//! written while a send is in flight therefore lands in the next segment and goes out
//! in the next single send. A zero-copy segment stays alive until every notification
//! the kernel promised has arrived, even after its bytes were acknowledged.

use std::collections::VecDeque;

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

/// What to submit next: a pointer into memory the queue keeps unmoved until
/// [`SendQueue::complete`] is called for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NextSend {
    pub ptr: *const u8,
    pub len: u32,
    pub zc: bool,
}

/// Bytes pushed whole up to this size join the end of the queue instead of becoming
/// a segment (and a send) of their own.
const COALESCE_MAX: usize = 4096;

/// Largest single send; the rest of a larger segment follows as a resumed send.
const MAX_SEND: usize = 1 << 30;

/// See the module docs.
#[derive(Default)]
pub(crate) struct SendQueue {
    segments: VecDeque<Queued>,
    /// Bytes of the front segment already sent.
    front_sent: usize,
    in_flight: bool,
    /// Bytes queued and not yet acknowledged.
    backlog: usize,
    spare: Option<Vec<u8>>,
    /// Zero-copy buffers fully sent but maybe still referenced by the kernel.
    zc_retired: Vec<Vec<u8>>,
    /// Notifications the kernel still owes us.
    zc_notifs_owed: u32,
    /// The back segment was handed out by `tail` when it held this many bytes: what
    /// was appended since is not in `backlog` yet (see `settle`).
    tail_open: Option<usize>,
    /// The kernel reported copying a zero-copy send on this connection (loopback, a
    /// device without scatter-gather): later sends are plain, which then costs less.
    zc_off: bool,
}

impl SendQueue {
    /// Queues a copy of `bytes`.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.tail().extend_from_slice(bytes);
    }

    /// The end of the queue, to append bytes to in place: the last segment if it is
    /// copied bytes not in flight (the kernel is reading an in-flight one; a push could
    /// reallocate it), else a new one. Appended bytes join the backlog at the next call.
    pub(crate) fn tail(&mut self) -> &mut Vec<u8> {
        self.settle();
        let back_in_flight = self.in_flight && self.segments.len() == 1;
        let appendable = !back_in_flight && matches!(self.segments.back(), Some(Queued::Copied(_)));
        if !appendable {
            let v = self.spare.take().unwrap_or_default();
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

    /// Bytes appended to the back segment beyond `open`.
    fn tail_growth(&self, open: usize) -> usize {
        match self.segments.back() {
            Some(Queued::Copied(v)) => v.len().saturating_sub(open),
            _ => 0,
        }
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
            self.tail().extend_from_slice(&buf);
            return;
        }
        self.backlog += buf.len();
        self.segments.push_back(Queued::Copied(buf));
    }

    /// Queues an owned buffer.
    pub(crate) fn push_owned(&mut self, buf: Vec<u8>, zc: bool) {
        self.settle();
        if buf.is_empty() {
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

    /// Zero-copy notifications still owed by the kernel.
    pub(crate) fn zc_notifs_owed(&self) -> u32 {
        self.zc_notifs_owed
    }

    /// The next send to submit, if none is in flight and something is queued. The
    /// memory it points to stays put until `complete`.
    pub(crate) fn start_next(&mut self) -> Option<NextSend> {
        self.settle();
        if self.in_flight {
            return None;
        }
        // A tail handed out and left empty has nothing to send.
        while self.segments.front().is_some_and(|s| s.bytes().is_empty()) {
            self.segments.pop_front();
        }
        let seg = self.segments.front()?;
        let zc = matches!(
            seg,
            Queued::Owned { zc: true, .. } | Queued::Static { zc: true, .. }
        ) && !self.zc_off;
        let rest = &seg.bytes()[self.front_sent..];
        let len = rest.len().min(MAX_SEND) as u32;
        self.in_flight = true;
        if zc {
            // Assume a notification will follow; `zc_no_notif` takes it back if the
            // result completion says otherwise.
            self.zc_notifs_owed += 1;
        }
        Some(NextSend {
            ptr: rest.as_ptr(),
            len,
            zc,
        })
    }

    /// The in-flight send completed having sent `n` bytes. Returns true if it was short
    /// (the rest of the segment goes out in the next send).
    pub(crate) fn complete(&mut self, n: usize) -> bool {
        self.settle();
        debug_assert!(self.in_flight);
        self.in_flight = false;
        let Some(front) = self.segments.front() else {
            return false;
        };
        let len = front.bytes().len();
        let n = n.min(len - self.front_sent);
        self.backlog -= n;
        self.front_sent += n;
        if self.front_sent < len {
            return true;
        }
        self.front_sent = 0;
        match self.segments.pop_front() {
            Some(Queued::Copied(mut v))
                if v.capacity() <= SPARE_MAX_CAPACITY && self.spare.is_none() =>
            {
                v.clear();
                self.spare = Some(v);
            }
            Some(Queued::Owned { buf, zc: true }) if self.zc_notifs_owed > 0 => {
                self.zc_retired.push(buf)
            }
            _ => {}
        }
        if self.segments.is_empty() {
            // Drained: an idle connection keeps no send storage (a few allocations per
            // busy turn cost far less than pinned memory on every idle connection).
            self.segments = VecDeque::new();
            self.spare = None;
        }
        false
    }

    /// The in-flight send failed: nothing more will be sent on this connection.
    pub(crate) fn fail(&mut self) {
        self.in_flight = false;
    }

    /// A zero-copy result completion arrived without the MORE flag: no notification
    /// will follow for it.
    pub(crate) fn zc_no_notif(&mut self) {
        self.zc_notif();
    }

    /// The kernel said it copied a zero-copy send: send plainly from now on.
    pub(crate) fn zc_copied(&mut self) {
        self.zc_off = true;
    }

    /// A zero-copy notification arrived. Retired buffers are released once none is owed.
    pub(crate) fn zc_notif(&mut self) {
        self.zc_notifs_owed = self.zc_notifs_owed.saturating_sub(1);
        if self.zc_notifs_owed == 0 {
            self.zc_retired.clear();
        }
    }

    /// Drops everything not yet handed to the kernel (abort). The in-flight segment and
    /// zero-copy buffers stay until their completions arrive.
    pub(crate) fn discard_unsent(&mut self) {
        self.settle();
        let keep = if self.in_flight { 1 } else { 0 };
        while self.segments.len() > keep {
            if let Some(seg) = self.segments.pop_back() {
                self.backlog -= seg.bytes().len();
            }
        }
        if keep == 0 {
            self.backlog = 0;
            self.front_sent = 0;
        }
        self.spare = None;
    }

    /// Zero-copy buffers waiting for notifications.
    #[cfg(test)]
    fn retired(&self) -> usize {
        self.zc_retired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_while_in_flight_are_coalesced_into_one_next_send() {
        let mut q = SendQueue::default();
        q.write(b"hello");
        let first = q.start_next().unwrap();
        assert_eq!(first.len, 5);
        q.write(b" wor");
        q.write(b"ld");
        q.write(b"!");
        assert!(q.start_next().is_none(), "one send in flight at a time");
        assert_eq!(q.backlog(), 12);
        assert!(!q.complete(5));
        let second = q.start_next().unwrap();
        assert_eq!(second.len, 7, "three writes went out as one send");
        assert!(!q.complete(7));
        assert!(q.is_empty());
    }

    #[test]
    fn in_flight_segment_is_never_appended_to() {
        let mut q = SendQueue::default();
        q.write(b"abc");
        let s = q.start_next().unwrap();
        let before = s.ptr;
        for _ in 0..1000 {
            q.write(b"0123456789");
        }
        // The in-flight bytes did not move even though much was written after them.
        match q.segments.front().unwrap() {
            Queued::Copied(v) => {
                assert_eq!(v.as_ptr(), before);
                assert_eq!(v.as_slice(), b"abc");
            }
            _ => panic!("wrong segment"),
        }
    }

    #[test]
    fn short_sends_resume_where_they_stopped() {
        let mut q = SendQueue::default();
        q.write(&[7u8; 100]);
        let s = q.start_next().unwrap();
        let base = s.ptr;
        assert!(q.complete(30), "short send");
        let s = q.start_next().unwrap();
        assert_eq!(s.len, 70);
        assert_eq!(s.ptr, base.wrapping_add(30));
        assert!(q.complete(69));
        let s = q.start_next().unwrap();
        assert_eq!(s.len, 1);
        assert!(!q.complete(1));
        assert!(q.start_next().is_none());
        assert_eq!(q.backlog(), 0);
    }

    #[test]
    fn order_is_kept_across_owned_and_copied_segments() {
        let mut q = SendQueue::default();
        q.write(b"a");
        q.push_owned(vec![b'b'; 10], false);
        q.write(b"c");
        let mut lens = vec![];
        while let Some(s) = q.start_next() {
            lens.push(s.len);
            q.complete(s.len as usize);
        }
        assert_eq!(lens, vec![1, 10, 1]);
    }

    #[test]
    fn zero_copy_buffers_live_until_every_notification() {
        let mut q = SendQueue::default();
        q.push_owned(vec![1u8; 1000], true);
        let s = q.start_next().unwrap();
        assert!(s.zc);
        assert!(q.complete(400), "short zero-copy send");
        let s = q.start_next().unwrap();
        assert_eq!(s.len, 600);
        assert!(!q.complete(600));
        assert_eq!(q.zc_notifs_owed(), 2);
        assert_eq!(q.retired(), 1, "acknowledged but still owed a notification");
        q.zc_notif();
        assert_eq!(q.retired(), 1);
        q.zc_notif();
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
        while let Some(s) = q.start_next() {
            seen.push((s.len, s.zc));
            q.complete(s.len as usize);
            if s.zc {
                q.zc_notif();
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
        let s = q.start_next().unwrap();
        assert!(s.zc);
        q.complete(100);
        q.zc_copied();
        q.zc_notif();
        let s = q.start_next().unwrap();
        assert!(
            !s.zc,
            "the kernel copied: no more zero-copy on this connection"
        );
        q.complete(100);
        assert_eq!((q.zc_notifs_owed(), q.retired()), (0, 0));
    }

    #[test]
    fn zero_copy_without_notification_releases_at_once() {
        let mut q = SendQueue::default();
        q.push_owned(vec![1u8; 10], true);
        q.start_next().unwrap();
        q.zc_no_notif();
        q.complete(10);
        assert_eq!(q.retired(), 0);
    }

    #[test]
    fn discard_keeps_the_in_flight_segment() {
        let mut q = SendQueue::default();
        q.write(b"abc");
        q.start_next().unwrap();
        q.write(b"def");
        q.discard_unsent();
        assert_eq!(q.backlog(), 3);
        q.complete(3);
        assert!(q.is_empty());
        assert!(q.start_next().is_none());
    }

    #[test]
    fn bytes_appended_in_place_count_and_leave_in_one_send() {
        let mut q = SendQueue::default();
        q.tail().extend_from_slice(b"head ");
        assert_eq!(q.backlog(), 5, "counted before the next queue operation");
        q.write(b"body");
        let s = q.start_next().unwrap();
        assert_eq!(s.len, 9);
        // In flight: the tail is a new segment, never the one the kernel reads.
        q.tail().extend_from_slice(b"next");
        assert_eq!(q.backlog(), 13);
        assert!(!q.complete(9));
        assert_eq!(q.start_next().unwrap().len, 4);
        assert!(!q.complete(4));
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
        assert_eq!(
            q.start_next().unwrap().len,
            5,
            "the large one is its own segment"
        );
        assert!(!q.complete(5));
        assert_eq!(q.start_next().unwrap().len as usize, 2 * COALESCE_MAX);
    }
}
