//! The provided-buffer ring a shard's receives land in.
//!
//! One contiguous, page-aligned region of `entries × size` bytes, carved into buffers,
//! plus the ring of descriptors the kernel picks them from. Ownership of a buffer moves
//! to the kernel when its descriptor is published at the tail, and back to us when a
//! completion names it; the shard shows its bytes to the handler in place and hands the
//! buffer back right after. With incremental consumption (6.12+) the kernel fills one
//! buffer across several receives and says, per completion, whether it keeps using it.
//!
//! Bundles (6.10+) put several consecutive ring entries in one completion. Completions
//! name only the first buffer, so we remember which buffer sits at which ring position
//! and walk forward from there.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::cqueue;
use io_uring::types::BufRingEntry;

use crate::sys::ring::Ring;
use crate::sys::SetupError;

/// `IOU_PBUF_RING_INC` from the kernel uapi (6.12): consume buffers incrementally.
const IOU_PBUF_RING_INC: u16 = 2;

/// A piece of a completion's data: `len` bytes at `offset` in buffer `bid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub bid: u16,
    pub offset: u32,
    pub len: u32,
}

/// A completion's data, in order, and what to do with its buffers afterwards.
#[derive(Debug, Default)]
pub(crate) struct Pieces {
    pub pieces: Vec<Piece>,
    /// The last buffer stays with the kernel (incremental mode): do not recycle it.
    pub last_retained: bool,
}

/// An anonymous private mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes; with `populate`, every page is made resident now.
    fn new(len: usize, populate: bool) -> io::Result<Mapping> {
        let populate = if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | populate,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `new`, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// See the module docs.
pub(crate) struct BufRing {
    // The shard unregisters the ring (`unregister`) before dropping this, so the
    // kernel never touches the mappings after they are gone.
    descriptors: Mapping,
    buffers: Mapping,
    bgid: u16,
    entries: u16,
    mask: u16,
    size: u32,
    /// Our copy of the tail; published to the kernel by `publish`.
    tail: u16,
    published: u16,
    incremental: bool,
    /// Bytes of each buffer the kernel has already filled (incremental mode).
    consumed: Vec<u32>,
    /// Ring position at which each buffer was last published.
    pos_of_bid: Vec<u16>,
    /// Buffer published at each ring position (indexed by position & mask).
    bid_at_pos: Vec<u16>,
    registered: bool,
}

impl BufRing {
    /// Maps and registers a ring of `entries` buffers of `size` bytes as group `bgid`,
    /// with incremental consumption if `want_incremental` and the kernel has it.
    pub(crate) fn new(
        ring: &Ring,
        bgid: u16,
        entries: u16,
        size: u32,
        want_incremental: bool,
    ) -> Result<BufRing, SetupError> {
        let io_err = |what: &'static str| move |source| SetupError::Io { what, source };
        let desc_len = (entries as usize * std::mem::size_of::<BufRingEntry>()).max(4096);
        let descriptors =
            Mapping::new(desc_len, false).map_err(io_err("mapping the buffer ring"))?;
        // Resident from the start: the kernel would otherwise fault pages in one by one
        // inside the receive path, and the shard's memory would creep up with the bytes
        // it has ever received (up to the whole ring), which a measurement of memory per
        // connection then counts as the connections' (see docs/BENCHMARKS.md).
        let buffers = Mapping::new(entries as usize * size as usize, true)
            .map_err(io_err("mapping receive buffers"))?;
        let mut incremental = false;
        let addr = descriptors.ptr.as_ptr() as u64;
        let mut result = Err(io::Error::from_raw_os_error(libc::EINVAL));
        if want_incremental {
            // SAFETY: `descriptors` is page-aligned, holds `entries` descriptors and
            // outlives the registration (Drop unregisters before unmapping).
            result = unsafe {
                ring.submitter().register_buf_ring_with_flags(
                    addr,
                    entries,
                    bgid,
                    IOU_PBUF_RING_INC,
                )
            };
            incremental = result.is_ok();
        }
        if result.is_err() {
            // SAFETY: as above, without the incremental flag.
            result = unsafe {
                ring.submitter()
                    .register_buf_ring_with_flags(addr, entries, bgid, 0)
            };
        }
        result.map_err(io_err("registering the buffer ring"))?;
        let mut br = BufRing {
            descriptors,
            buffers,
            bgid,
            entries,
            mask: entries - 1,
            size,
            tail: 0,
            published: 0,
            incremental,
            consumed: vec![0; entries as usize],
            pos_of_bid: vec![0; entries as usize],
            bid_at_pos: vec![0; entries as usize],
            registered: true,
        };
        for bid in 0..entries {
            br.recycle(bid);
        }
        br.publish();
        Ok(br)
    }

    /// Group id to name in receives.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Whether the kernel consumes buffers incrementally.
    pub(crate) fn incremental(&self) -> bool {
        self.incremental
    }

    fn descriptor(&mut self, pos: u16) -> &mut BufRingEntry {
        let base = self.descriptors.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: `pos & mask` < entries, inside the mapping; the kernel does not read a
        // descriptor past the published tail, and this position is past it.
        unsafe { &mut *base.add((pos & self.mask) as usize) }
    }

    /// Gives buffer `bid` back to the kernel (visible after `publish`).
    pub(crate) fn recycle(&mut self, bid: u16) {
        let pos = self.tail;
        let addr = self.buffers.ptr.as_ptr() as u64 + bid as u64 * self.size as u64;
        let size = self.size;
        let d = self.descriptor(pos);
        d.set_addr(addr);
        d.set_len(size);
        d.set_bid(bid);
        self.consumed[bid as usize] = 0;
        self.pos_of_bid[bid as usize] = pos;
        self.bid_at_pos[(pos & self.mask) as usize] = bid;
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes recycled buffers visible to the kernel.
    pub(crate) fn publish(&mut self) {
        if self.published == self.tail {
            return;
        }
        let base = self.descriptors.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: the tail field overlays the first descriptor's reserved field inside
        // the mapping; it is only ever accessed atomically, by us and the kernel.
        let tail = unsafe { &*(BufRingEntry::tail(base) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
        self.published = self.tail;
    }

    /// Splits a receive completion of `len` bytes starting in buffer `bid` into pieces,
    /// and takes the consumed buffers back from the kernel (accounting only: the caller
    /// recycles them after use with [`BufRing::finish`]).
    pub(crate) fn pieces(&mut self, bid: u16, len: u32, flags: u32, out: &mut Pieces) {
        out.pieces.clear();
        let more = self.incremental && cqueue::buffer_more(flags);
        out.last_retained = more;
        if bid >= self.entries {
            return;
        }
        if len == 0 {
            out.pieces.push(Piece {
                bid,
                offset: self.consumed[bid as usize],
                len: 0,
            });
            return;
        }
        let start = self.pos_of_bid[bid as usize];
        let mut remaining = len;
        let mut i: u16 = 0;
        while remaining > 0 && i < self.entries {
            let b = self.bid_at_pos[(start.wrapping_add(i) & self.mask) as usize];
            let offset = if self.incremental {
                self.consumed[b as usize]
            } else {
                0
            };
            let take = remaining.min(self.size - offset.min(self.size));
            if take == 0 {
                break;
            }
            out.pieces.push(Piece {
                bid: b,
                offset,
                len: take,
            });
            remaining -= take;
            i += 1;
        }
    }

    /// Returns the buffers of a completion once its bytes have been used.
    pub(crate) fn finish(&mut self, done: &Pieces) {
        let n = done.pieces.len();
        for (i, p) in done.pieces.iter().enumerate() {
            let last = i + 1 == n;
            if last && done.last_retained {
                self.consumed[p.bid as usize] += p.len;
            } else {
                self.recycle(p.bid);
            }
        }
    }

    /// The bytes of a piece.
    pub(crate) fn bytes(&self, p: Piece) -> &[u8] {
        let end = (p.offset as usize + p.len as usize).min(self.size as usize);
        let start = (p.offset as usize).min(end);
        let base = self.buffers.ptr.as_ptr() as *const u8;
        // A completion handed this range to us; the kernel writes a buffer only while its
        // descriptor is published and, in incremental mode, only past the bytes it has
        // already completed, and the shard recycles the buffer only after dropping the
        // slice.
        // SAFETY: in-bounds (clamped above) and, per the above, unwritten while borrowed.
        unsafe {
            std::slice::from_raw_parts(
                base.add(p.bid as usize * self.size as usize + start),
                end - start,
            )
        }
    }

    /// Unregisters from `ring` (must be called before the ring is dropped).
    pub(crate) fn unregister(&mut self, ring: &Ring) {
        if self.registered {
            let _ = ring.submitter().unregister_buf_ring(self.bgid);
            self.registered = false;
        }
    }
}
