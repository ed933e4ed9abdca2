//! Handing the allocator's free memory back to the kernel once a shard goes quiet.
//!
//! An allocator keeps the pages a burst freed for reuse, and returns them only from
//! later allocator calls (mimalloc purges on a delay, from its own frees and
//! allocations). A shard that goes quiet after a burst, thousands of connections each
//! with a request in flight and then idle, makes no further calls, so the burst's
//! high-water mark would stay in its RSS for as long as it is idle. The shard calls
//! [`release_free_memory`] once it has been quiet for a while; it is not on any hot
//! path.

/// Returns the calling thread's free allocator pages to the kernel: mimalloc's (the
/// servers' global allocator) with the `mimalloc` feature, glibc's heap otherwise.
pub(crate) fn release_free_memory() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: `mi_collect` takes no pointers and may be called on any thread at any
    // time; it only frees pages that hold no live allocation.
    unsafe {
        libmimalloc_sys::mi_collect(true)
    };
    #[cfg(all(not(feature = "mimalloc"), target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointers and is thread-safe; it only returns
    // free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
