//! The one provided-buffer ring every multishot receive takes its buffers from.
//!
//! Owns two anonymous mappings: the ring of descriptors the kernel reads, and the
//! `entries × size` bytes they point into. A buffer the kernel filled belongs to us
//! until [`BufRing::recycle`] hands it back; [`BufRing::publish`] makes the recycled
//! ones visible to the kernel, once per batch of completions. The mappings are never
//! unmapped: the ring lives as long as the process (the server exits by signal).

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// A registered ring of `entries` buffers of `size` bytes, buffer group `bgid`.
pub struct BufRing {
    descs: *mut BufRingEntry,
    bufs: *mut u8,
    size: u32,
    mask: u16,
    /// Our tail: where the next recycled buffer goes; the kernel sees it at `publish`.
    tail: u16,
    /// The tail the kernel last saw.
    published: u16,
}

fn map(len: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous private mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

impl BufRing {
    /// Maps `entries` (a power of two, at most 32,768) buffers of `size` bytes, gives
    /// them all to the kernel and registers the ring as group `bgid`.
    pub fn new(submitter: &Submitter<'_>, entries: u16, size: u32, bgid: u16) -> io::Result<Self> {
        assert!(entries.is_power_of_two());
        let descs = map(entries as usize * std::mem::size_of::<BufRingEntry>())?.cast();
        let bufs = map(entries as usize * size as usize)?;
        let mut ring = BufRing {
            descs,
            bufs,
            size,
            mask: entries - 1,
            tail: 0,
            published: 0,
        };
        for bid in 0..entries {
            ring.recycle(bid);
        }
        ring.publish();
        // SAFETY: `descs` is page-aligned, holds `entries` descriptors and is never
        // unmapped, so it outlives the registration.
        unsafe { submitter.register_buf_ring_with_flags(descs as u64, entries, bgid, 0)? };
        Ok(ring)
    }

    /// Where buffer `bid` starts.
    pub fn ptr(&self, bid: u16) -> *const u8 {
        // `bid` < entries (it came from the kernel or from `new`): inside the mapping.
        self.bufs.wrapping_add(bid as usize * self.size as usize)
    }

    /// The `len` bytes the kernel received into buffer `bid`.
    pub fn filled(&self, bid: u16, len: usize) -> &[u8] {
        assert!(len <= self.size as usize);
        // SAFETY: the kernel wrote `len` bytes into `bid` and, until we recycle it,
        // will not touch it again; the mapping lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr(bid), len) }
    }

    /// Puts buffer `bid` back at the ring's tail (seen by the kernel after `publish`).
    pub fn recycle(&mut self, bid: u16) {
        // SAFETY: `tail & mask` < entries: a descriptor inside the mapping, one the
        // kernel does not read until the tail moves past it.
        let desc = unsafe { &mut *self.descs.add((self.tail & self.mask) as usize) };
        desc.set_addr(self.ptr(bid) as u64);
        desc.set_len(self.size);
        desc.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every recycled buffer available to the kernel; whether there were any.
    pub fn publish(&mut self) -> bool {
        if self.tail == self.published {
            return false;
        }
        // SAFETY: the tail field sits in the first descriptor of our mapping, is
        // 2-aligned, and the kernel reads it atomically.
        let tail = unsafe { &*(BufRing::tail_ptr(self.descs)) };
        tail.store(self.tail, Ordering::Release);
        self.published = self.tail;
        true
    }

    /// The ring's tail field, inside the first descriptor.
    fn tail_ptr(descs: *mut BufRingEntry) -> *const AtomicU16 {
        // SAFETY: `descs` is our mapping's first descriptor; only its address is taken.
        unsafe { BufRingEntry::tail(descs) as *const AtomicU16 }
    }
}
