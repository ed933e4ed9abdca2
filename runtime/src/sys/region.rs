//! The connection slab: one region of address space, reserved up front, grown by pages.
//!
//! Why: a `Vec`-backed slab doubles as it fills (copying every connection) and lives in
//! the allocator's arenas, which commit memory ahead of use, so the memory an idle
//! connection cost varied from run to run. [`Slab`] reserves `capacity` entries of
//! address space at once; a page becomes resident when an entry on it is first written
//! and goes back to the kernel (`MADV_DONTNEED`) once the entries above it are gone. So
//! the memory per connection is `size_of::<T>()`, to the page, in every run.
//!
//! Entries never move: a reference or pointer to an occupied entry stays valid until
//! that entry is removed, so the runtime may lend memory inside one to the kernel. Keys
//! are handed out lowest first, which keeps the occupied entries packed at the bottom
//! and lets whole pages at the top empty out. Pages below the highest occupied entry
//! stay resident even if every entry on them is vacant (the next inserts refill those
//! first): resident memory follows the highest occupied key, not the count.
//!
//! This module owns the mapping. It must never hand out a reference to a vacant entry:
//! vacancy lives in the occupancy bitmap alone, and a vacant entry holds no `T`.

use std::io;
use std::marker::PhantomData;
use std::mem::size_of;

mod reservation;

use reservation::{page_size, Reservation};

/// Free pages above the highest entry that trigger a release (64 KiB with 4 KiB pages):
/// a connection opening and closing at a page boundary must not madvise every time.
const RELEASE_SLACK_PAGES: usize = 16;

/// Pages made writable at a time as the slab grows (one `mprotect` per step).
const GROW_PAGES: usize = 16;

/// See the module docs.
pub(crate) struct Slab<T> {
    map: Reservation,
    page: usize,
    capacity: usize,
    /// Bit `k % 64` of word `k / 64` is set while key `k` is occupied.
    occupied: Vec<u64>,
    len: usize,
    /// Every word below this one is full.
    first_free_word: usize,
    /// One past the highest occupied key (0 when empty).
    end: usize,
    /// Bytes from the base that may be resident: every page written since the last
    /// release (a multiple of the page size).
    resident: usize,
    /// Releases done (madvise calls), for counters and tests.
    releases: u64,
    /// The slab owns `T` values (for drop checking); also keeps it `!Sync`.
    _owns: PhantomData<T>,
}

// SAFETY: the slab owns its `T`s outright (like a `Vec<T>`) and its mapping belongs to
// the process, not to a thread; moving it moves the ownership of both. It is not `Sync`:
// it stays with its shard.
unsafe impl<T: Send> Send for Slab<T> {}

impl<T> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slab")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("resident_pages", &self.resident_pages())
            .finish()
    }
}

/// A free slot, from [`Slab::vacant_entry`]: its key is known before the value is.
pub(crate) struct VacantEntry<'a, T> {
    slab: &'a mut Slab<T>,
    key: usize,
}

impl<T> VacantEntry<'_, T> {
    /// The key the value will have.
    pub(crate) fn key(&self) -> usize {
        self.key
    }
}

impl<'a, T> VacantEntry<'a, T> {
    /// Stores `value` at [`key`](Self::key).
    pub(crate) fn insert(self, value: T) -> &'a mut T {
        let key = self.key;
        self.slab.fill(key, value);
        self.slab.occupied_mut(key)
    }
}

impl<T> Slab<T> {
    /// Reserves address space for `max` entries; nothing is resident yet. Fails if the
    /// reservation does (or if `T` is aligned beyond a page).
    pub(crate) fn with_capacity(max: usize) -> io::Result<Slab<T>> {
        let page = page_size();
        if std::mem::align_of::<T>() > page {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "slab entries aligned beyond a page",
            ));
        }
        let bytes = max
            .checked_mul(size_of::<T>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(Slab {
            map: Reservation::new(bytes, page, GROW_PAGES)?,
            page,
            capacity: max,
            occupied: vec![0; max.div_ceil(64)],
            len: 0,
            first_free_word: 0,
            end: 0,
            resident: 0,
            releases: 0,
            _owns: PhantomData,
        })
    }

    #[cfg(test)]
    /// How many entries the slab can ever hold.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Occupied entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is occupied.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pages of the region that may be resident: every page from the bottom up to the
    /// highest entry written since the last release. The kernel counts exactly these
    /// once the entries on them have been written in full.
    pub(crate) fn resident_pages(&self) -> usize {
        self.resident / self.page
    }

    #[cfg(test)]
    /// How many times pages have been given back to the kernel.
    pub(crate) fn releases(&self) -> u64 {
        self.releases
    }

    /// Whether `key` holds a value.
    pub(crate) fn contains(&self, key: usize) -> bool {
        key < self.capacity && self.occupied[key / 64] & (1 << (key % 64)) != 0
    }

    /// The value at `key`, if occupied.
    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        self.contains(key).then(|| self.occupied_ref(key))
    }

    /// The value at `key`, if occupied.
    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        if self.contains(key) {
            Some(self.occupied_mut(key))
        } else {
            None
        }
    }

    /// The lowest free slot, or `None` when the slab is full (or, under
    /// `vm.overcommit_memory=2`, when the kernel refuses to commit another page).
    pub(crate) fn vacant_entry(&mut self) -> Option<VacantEntry<'_, T>> {
        let key = self.lowest_free()?;
        let end = (key + 1) * size_of::<T>();
        self.map.make_writable(end).ok()?;
        Some(VacantEntry { slab: self, key })
    }

    /// Stores `value` at the lowest free key and returns the key; the value back when
    /// there is no room.
    pub(crate) fn insert(&mut self, value: T) -> Result<usize, T> {
        match self.vacant_entry() {
            Some(entry) => {
                let key = entry.key();
                entry.insert(value);
                Ok(key)
            }
            None => Err(value),
        }
    }

    /// Takes the value at `key` out. Panics if `key` is vacant (as `slab` does).
    pub(crate) fn remove(&mut self, key: usize) -> T {
        self.try_remove(key).expect("removing a vacant slab entry")
    }

    /// Takes the value at `key` out, if occupied. Pages left wholly free above the
    /// highest occupied entry go back to the kernel once there are enough of them.
    pub(crate) fn try_remove(&mut self, key: usize) -> Option<T> {
        if !self.contains(key) {
            return None;
        }
        self.occupied[key / 64] &= !(1 << (key % 64));
        self.len -= 1;
        self.first_free_word = self.first_free_word.min(key / 64);
        let value = self.take(key);
        if key + 1 == self.end {
            self.end = self.occupied_end(key);
            if self.resident - self.bytes_in_use() >= RELEASE_SLACK_PAGES * self.page {
                self.release_above_end();
            }
        }
        Some(value)
    }

    #[cfg(test)]
    /// Gives back every page above the highest occupied entry now, slack or not (for
    /// a shard gone idle, or a test).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.release_above_end();
    }

    #[cfg(test)]
    /// `(key, &value)` for every occupied entry, in key order. Costs time in proportion
    /// to the highest occupied key, not to the capacity.
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        Iter {
            slab: self,
            words: Words::new(&self.occupied[..self.end.div_ceil(64)]),
        }
    }

    /// `(key, &mut value)` for every occupied entry, in key order.
    pub(crate) fn iter_mut(&mut self) -> IterMut<'_, T> {
        let base = self.map.base().as_ptr().cast::<T>();
        let words = self.end.div_ceil(64);
        IterMut {
            base,
            words: Words::new(&self.occupied[..words]),
            _values: PhantomData,
        }
    }

    /// Bytes from the base up to the end of the highest occupied entry, to the page.
    fn bytes_in_use(&self) -> usize {
        (self.end * size_of::<T>()).next_multiple_of(self.page)
    }

    fn release_above_end(&mut self) {
        let keep = self.bytes_in_use();
        if self.resident > keep && self.map.release(keep, self.resident).is_ok() {
            self.resident = keep;
            self.releases += 1;
        }
    }

    /// The lowest vacant key, if any.
    fn lowest_free(&mut self) -> Option<usize> {
        if self.len == self.capacity {
            return None;
        }
        while self.occupied[self.first_free_word] == u64::MAX {
            self.first_free_word += 1;
        }
        let w = self.first_free_word;
        let key = w * 64 + self.occupied[w].trailing_ones() as usize;
        debug_assert!(
            key < self.capacity,
            "len < capacity, so a key below it is free"
        );
        Some(key)
    }

    /// One past the highest occupied key below `limit` (0 if there is none).
    fn occupied_end(&self, limit: usize) -> usize {
        let top = |w: usize, bits: u64| w * 64 + 64 - bits.leading_zeros() as usize;
        let mut w = limit / 64;
        let below = limit % 64;
        if below != 0 {
            let bits = self.occupied[w] & ((1 << below) - 1);
            if bits != 0 {
                return top(w, bits);
            }
        }
        while w > 0 {
            w -= 1;
            if self.occupied[w] != 0 {
                return top(w, self.occupied[w]);
            }
        }
        0
    }

    /// Writes `value` into vacant `key` (made writable by `vacant_entry`) and marks it
    /// occupied.
    fn fill(&mut self, key: usize, value: T) {
        assert!(!self.contains(key), "filling an occupied slab entry");
        let end = (key + 1) * size_of::<T>();
        assert!(self.map.make_writable(end).is_ok(), "made writable already");
        // `key` < capacity (it came from `lowest_free`): the entry lies in the reservation,
        // inside its writable part (just checked); entries sit at multiples of
        // `size_of::<T>()` from a page-aligned base.
        // SAFETY: in bounds, writable and aligned (above); vacant, so no live value is overwritten.
        unsafe { self.slot(key).write(value) };
        self.occupied[key / 64] |= 1 << (key % 64);
        self.len += 1;
        self.end = self.end.max(key + 1);
        self.resident = self.resident.max(end.next_multiple_of(self.page));
    }

    /// Moves the value out of `key`, which the caller has just marked vacant.
    fn take(&mut self, key: usize) -> T {
        // SAFETY: `key` was occupied until the caller cleared its bit, so it holds an
        // initialised `T`; with the bit clear nothing will read or drop it again.
        unsafe { self.slot(key).read() }
    }

    fn occupied_ref(&self, key: usize) -> &T {
        debug_assert!(self.contains(key));
        // SAFETY: callers pass only occupied keys, which hold an initialised `T`; the
        // shared borrow of the slab keeps it from being removed or mutated meanwhile.
        unsafe { &*self.slot(key) }
    }

    fn occupied_mut(&mut self, key: usize) -> &mut T {
        debug_assert!(self.contains(key));
        // SAFETY: as in `occupied_ref`, and the exclusive borrow of the slab makes this
        // the only reference to the entry.
        unsafe { &mut *self.slot(key) }
    }

    /// The address of entry `key`, derived from the region's base.
    fn slot(&self, key: usize) -> *mut T {
        assert!(key < self.capacity, "slab key out of range");
        // SAFETY: `key` < capacity, so the offset stays inside the reservation, which
        // holds `capacity × size_of::<T>()` bytes.
        unsafe { self.map.base().as_ptr().cast::<T>().add(key) }
    }
}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        for w in 0..self.end.div_ceil(64) {
            let mut bits = self.occupied[w];
            while bits != 0 {
                let key = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                // Cleared first: if a destructor panics, the rest leak, none drops twice.
                self.occupied[w] &= !(1 << (key % 64));
                drop(self.take(key));
            }
        }
        // The reservation unmaps itself after this.
    }
}

/// The set bits of a run of bitmap words, lowest first, as keys.
struct Words<'a> {
    words: &'a [u64],
    /// Index of the word `bits` came from.
    word: usize,
    bits: u64,
}

impl<'a> Words<'a> {
    fn new(words: &'a [u64]) -> Words<'a> {
        Words {
            words,
            word: 0,
            bits: words.first().copied().unwrap_or(0),
        }
    }
}

impl Iterator for Words<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.word += 1;
            self.bits = *self.words.get(self.word)?;
        }
        let key = self.word * 64 + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(key)
    }
}

#[cfg(test)]
/// See [`Slab::iter`].
pub(crate) struct Iter<'a, T> {
    slab: &'a Slab<T>,
    words: Words<'a>,
}

#[cfg(test)]
impl<'a, T> Iterator for Iter<'a, T> {
    type Item = (usize, &'a T);

    fn next(&mut self) -> Option<(usize, &'a T)> {
        let key = self.words.next()?;
        Some((key, self.slab.occupied_ref(key)))
    }
}

/// See [`Slab::iter_mut`].
pub(crate) struct IterMut<'a, T> {
    /// The region's base, as entries.
    base: *mut T,
    /// The slab's bitmap: it cannot change while the slab is borrowed for `'a`.
    words: Words<'a>,
    _values: PhantomData<&'a mut T>,
}

impl<'a, T> Iterator for IterMut<'a, T> {
    type Item = (usize, &'a mut T);

    fn next(&mut self) -> Option<(usize, &'a mut T)> {
        let key = self.words.next()?;
        // SAFETY: `key`'s bit is set, so it lies below capacity and holds an initialised
        // `T`; each key is yielded once, so no two of these references alias, and the
        // slab is exclusively borrowed for `'a`, so nothing else reaches the entries.
        let value = unsafe { &mut *self.base.add(key) };
        Some((key, value))
    }
}

#[cfg(test)]
mod tests;
