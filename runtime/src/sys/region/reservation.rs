//! One range of address space, reserved up front and made usable from the bottom up.
//!
//! Reserved `PROT_NONE` with `MAP_NORESERVE`: address space only, no commit charge and
//! no pages (and no transparent huge pages, so a fault brings in one small page). [`Reservation::make_writable`] opens it (read-write) up to a byte offset, a
//! few pages at a time; a page becomes resident only when first written, and
//! [`Reservation::release`] hands pages back to the kernel (`MADV_DONTNEED`, so RSS
//! drops at once and the next touch gets a fresh zero page). Access beyond the writable
//! part faults instead of quietly touching memory. Unmapped on drop.

use std::io;
use std::ptr::NonNull;

/// The system page size.
pub(super) fn page_size() -> usize {
    // SAFETY: sysconf reads a constant and has no pointer arguments.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// See the module docs.
pub(super) struct Reservation {
    base: NonNull<u8>,
    /// Bytes reserved (a multiple of the page size, at least one page).
    len: usize,
    /// Bytes from `base` that are read-write (a multiple of the page size).
    writable: usize,
    /// The step by which the writable part grows (a multiple of the page size).
    grow: usize,
}

impl Reservation {
    /// Reserves `len` bytes (rounded up to `page`, at least one page) of address space;
    /// nothing is writable yet.
    pub(super) fn new(len: usize, page: usize, grow_pages: usize) -> io::Result<Reservation> {
        let len = len
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh anonymous private mapping with no address hint; the result is
        // checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        // With transparent huge pages set to `always`, a fault could bring in 2 MiB at
        // once and the per-entry cost would no longer be exact: small pages only. Fails
        // harmlessly (EINVAL) on kernels built without THP.
        // SAFETY: advice on our own fresh mapping; it changes no contents.
        unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
        Ok(Reservation {
            base,
            len,
            writable: 0,
            grow: page * grow_pages.max(1),
        })
    }

    /// The first byte of the range (page-aligned).
    pub(super) fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Makes at least the first `end` bytes read-write (`end` ≤ the reserved length).
    /// Fails only if the kernel refuses the commit charge (`vm.overcommit_memory=2`).
    pub(super) fn make_writable(&mut self, end: usize) -> io::Result<()> {
        if end <= self.writable {
            return Ok(());
        }
        if end > self.len {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let new = end.next_multiple_of(self.grow).min(self.len);
        // SAFETY: `[writable, new)` lies inside our reservation (`new` ≤ len) and starts
        // on a page boundary; it holds no Rust values yet, so changing its protection
        // invalidates nothing.
        let r = unsafe {
            libc::mprotect(
                self.base.as_ptr().add(self.writable).cast(),
                new - self.writable,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        self.writable = new;
        Ok(())
    }

    /// Gives the pages of `[from, to)` back to the kernel: they read as zeros afterwards
    /// and cost nothing until written again. `from` is page-aligned, `to` ≤ the writable
    /// part. The caller guarantees no live value lies in the range.
    pub(super) fn release(&mut self, from: usize, to: usize) -> io::Result<()> {
        if from >= to {
            return Ok(());
        }
        assert!(to <= self.writable, "releasing beyond the writable part");
        // SAFETY: `[from, to)` lies inside our mapping and starts on a page boundary
        // (madvise checks it and fails otherwise); the caller holds no live value there,
        // and zero-filled pages are a valid state for vacant memory.
        let r = unsafe {
            libc::madvise(
                self.base.as_ptr().add(from).cast(),
                to - from,
                libc::MADV_DONTNEED,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Pages of the whole reservation the kernel holds resident right now (mincore(2)):
    /// the real figure, not our own accounting.
    #[cfg(test)]
    pub(super) fn resident_in_kernel(&self, page: usize) -> usize {
        let mut v = vec![0u8; self.len / page];
        // SAFETY: the range is exactly our mapping; `v` has one byte per page of it.
        let r = unsafe { libc::mincore(self.base.as_ptr().cast(), self.len, v.as_mut_ptr()) };
        assert_eq!(r, 0, "mincore: {}", io::Error::last_os_error());
        v.iter().filter(|&&b| b & 1 == 1).count()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range mapped in `new`, once; the slab that owns this
        // has dropped every value in it first.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
