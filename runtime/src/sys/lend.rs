//! Memory lent to the kernel, owned by `sys` until the operation's last completion.
//!
//! A [`Lent<T>`] owns a value whose memory a submission names (a send's bytes, a
//! connect's address, a `msghdr`, the eventfd's 8-byte buffer). The [`Ring`] submission
//! functions take the `Lent` itself and record on it the operation's `user_data` and one
//! more owed completion; only a *final* completion for that `user_data` (one without
//! `IORING_CQE_F_MORE`, which includes a zero-copy notification), handed back through
//! [`Lent::settle`], takes the debt off again. [`Completion`] values are made only by
//! [`Ring::reap`], so nothing above `sys` can forge one.
//!
//! While a completion is owed the value gives no `&mut` access (and no access at all if
//! the kernel writes into it). Dropped while owed, it is leaked, never freed: the kernel
//! may still touch it. That is counted ([`leaked`]) and is a bug in the caller's
//! accounting (or a shard torn down with operations still in the kernel), but it is
//! never a use-after-free.
//!
//! `T` must be [`Stable`]: the memory the kernel sees does not move when the `T` value
//! moves (a `Vec`'s heap bytes, a `Box`'s pointee, `'static` memory), so the `Lent` may
//! live in a slab or a queue that moves it around. Nothing is boxed on the hot path:
//! send payloads are `Vec<u8>` or `&'static [u8]`, stable already.
//!
//! [`Ring`]: super::ring::Ring
//! [`Ring::reap`]: super::ring::Ring::reap

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};

use super::ring::Completion;

/// Values dropped while the kernel still owed a completion for them (leaked instead).
static LEAKED: AtomicU64 = AtomicU64::new(0);

/// How many lent values were dropped while still owed a completion, process-wide.
pub(crate) fn leaked() -> u64 {
    LEAKED.load(Ordering::Relaxed)
}

mod sealed {
    pub trait Sealed {}
}

/// Values whose kernel-visible memory does not move when the value itself moves.
pub(crate) trait Stable: sealed::Sealed {}

impl sealed::Sealed for Vec<u8> {}
impl Stable for Vec<u8> {}
impl sealed::Sealed for &'static [u8] {}
impl Stable for &'static [u8] {}
impl<T> sealed::Sealed for Box<T> {}
impl<T> Stable for Box<T> {}
impl sealed::Sealed for super::msg::RecvTemplate {}
/// Its header is boxed.
impl Stable for super::msg::RecvTemplate {}
impl sealed::Sealed for SendBuf {}
impl Stable for SendBuf {}
/// A list of stable values: pushing moves the values, never the memory they own.
impl<T: Stable> sealed::Sealed for Vec<T> {}
impl<T: Stable> Stable for Vec<T> {}

/// Bytes a send reads: an owned buffer or `'static` memory.
#[derive(Debug)]
pub(crate) enum SendBuf {
    /// Heap bytes (their address is stable while the `Vec` is not grown).
    Vec(Vec<u8>),
    /// Memory that outlives every operation.
    Static(&'static [u8]),
}

impl SendBuf {
    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            SendBuf::Vec(v) => v,
            SendBuf::Static(s) => s,
        }
    }
}

/// What a send submission reads from a lent value.
pub(crate) trait SendSource: Stable {
    /// The bytes of the current send (for a list, its last entry).
    fn send_bytes(&self) -> &[u8];
}

impl SendSource for SendBuf {
    fn send_bytes(&self) -> &[u8] {
        self.bytes()
    }
}

impl SendSource for Vec<SendBuf> {
    fn send_bytes(&self) -> &[u8] {
        self.last().map_or(&[], SendBuf::bytes)
    }
}

/// See the module docs.
pub(crate) struct Lent<T: Stable> {
    value: ManuallyDrop<T>,
    /// The `user_data` of the operations owed (all share it while any is owed).
    user_data: u64,
    /// Final completions still owed.
    owed: u32,
    /// An owed operation writes into the value: no access at all until it completes.
    kernel_writes: bool,
}

impl<T: Stable> Lent<T> {
    /// Wraps `value`; nothing is owed until a submission lends it.
    pub(crate) fn new(value: T) -> Self {
        Lent {
            value: ManuallyDrop::new(value),
            user_data: 0,
            owed: 0,
            kernel_writes: false,
        }
    }

    /// Final completions the kernel still owes for this value.
    pub(crate) fn owed(&self) -> u32 {
        self.owed
    }

    /// True while the kernel may still use the value.
    pub(crate) fn is_owed(&self) -> bool {
        self.owed > 0
    }

    /// Shared access: always when the kernel only reads the value, else only when
    /// nothing is owed.
    pub(crate) fn get(&self) -> Option<&T> {
        if self.owed > 0 && self.kernel_writes {
            None
        } else {
            Some(&self.value)
        }
    }

    /// Exclusive access, only when nothing is owed.
    pub(crate) fn get_mut(&mut self) -> Option<&mut T> {
        if self.owed > 0 {
            None
        } else {
            Some(&mut self.value)
        }
    }

    /// The value back, if nothing is owed; else the `Lent` unchanged.
    pub(crate) fn into_inner(mut self) -> Result<T, Self> {
        if self.owed > 0 {
            return Err(self);
        }
        // SAFETY: `self` is forgotten right after, so the value is taken exactly once
        // and its destructor runs at most once (in the caller's hands).
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        std::mem::forget(self);
        Ok(value)
    }

    /// Takes one debt off if `c` is a final completion of the operations this value was
    /// lent to. Returns whether it did.
    pub(crate) fn settle(&mut self, c: &Completion) -> bool {
        if self.owed > 0 && c.is_final() && c.user_data() == self.user_data {
            self.owed -= 1;
            if self.owed == 0 {
                self.kernel_writes = false;
            }
            true
        } else {
            false
        }
    }

    /// Records one more operation on the value, to be settled by a final completion
    /// carrying `user_data`. Called by the `Ring` submission functions, right before
    /// they push the entry.
    pub(super) fn lend(&mut self, user_data: u64, kernel_writes: bool) -> &T {
        debug_assert!(
            self.owed == 0 || self.user_data == user_data,
            "a lent value serves one user_data at a time"
        );
        self.user_data = user_data;
        self.owed += 1;
        self.kernel_writes |= kernel_writes;
        &self.value
    }

    /// Test-only stand-in for a submission: records a debt without a ring.
    #[cfg(test)]
    pub(crate) fn lend_for_test(&mut self, user_data: u64) {
        self.lend(user_data, false);
    }
}

impl<T: Stable> Lent<Vec<T>> {
    /// Appends a value, even while owed: the entries move, the memory they own does not,
    /// and nothing already lent is removed.
    pub(crate) fn push(&mut self, item: T) {
        self.value.push(item);
    }
}

impl<T: Stable> Drop for Lent<T> {
    fn drop(&mut self) {
        if self.owed > 0 {
            // The kernel may still read or write it: leak rather than free. Counted and
            // reported when the server exits; never a panic, which in a destructor on
            // the way out would only turn a small leak into an abort.
            LEAKED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // SAFETY: dropped once, here; `into_inner` forgets `self` after taking the value.
        unsafe { ManuallyDrop::drop(&mut self.value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// Counts its drops.
    struct Probe(Rc<std::cell::Cell<u32>>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    fn probe() -> (Box<Probe>, Rc<std::cell::Cell<u32>>) {
        let n = Rc::new(std::cell::Cell::new(0));
        (Box::new(Probe(n.clone())), n)
    }

    const UD: u64 = 42;
    /// `IORING_CQE_F_MORE` and `IORING_CQE_F_NOTIF`.
    const MORE: u32 = 1 << 1;
    const NOTIF: u32 = 1 << 3;

    #[test]
    fn dropped_while_owed_it_leaks_instead_of_freeing() {
        let (p, drops) = probe();
        let mut lent = Lent::new(p);
        lent.lend_for_test(UD);
        let before = leaked();
        drop(lent);
        assert_eq!(drops.get(), 0, "the destructor must not run while owed");
        assert!(leaked() > before, "the leak is counted");
    }

    #[test]
    fn released_only_by_the_final_completion_for_its_user_data() {
        let (p, drops) = probe();
        let mut lent = Lent::new(p);
        assert!(lent.get_mut().is_some(), "not lent yet");
        lent.lend_for_test(UD);
        assert!(lent.get_mut().is_none(), "no &mut while owed");
        assert!(lent.get().is_some(), "the kernel only reads it");
        // Someone else's completion, and a non-final one of ours, settle nothing.
        assert!(!lent.settle(&Completion::for_test(UD + 1, 0, 0)));
        assert!(!lent.settle(&Completion::for_test(UD, 10, MORE)));
        assert!(lent.is_owed());
        let lent = lent.into_inner().err().expect("still owed");
        let mut lent = lent;
        // The zero-copy notification is final.
        assert!(lent.settle(&Completion::for_test(UD, 0, NOTIF)));
        assert!(!lent.is_owed());
        assert!(
            !lent.settle(&Completion::for_test(UD, 0, 0)),
            "nothing owed"
        );
        drop(lent);
        assert_eq!(drops.get(), 1, "freed normally once settled");
    }

    #[test]
    fn every_operation_is_owed_its_own_final_completion() {
        let mut lent = Lent::new(vec![1u8; 4]);
        lent.lend_for_test(UD);
        lent.lend_for_test(UD);
        assert_eq!(lent.owed(), 2);
        lent.settle(&Completion::for_test(UD, 0, NOTIF));
        assert!(lent.get_mut().is_none());
        lent.settle(&Completion::for_test(UD, 0, NOTIF));
        assert_eq!(lent.into_inner().ok(), Some(vec![1u8; 4]));
    }

    #[test]
    fn a_value_the_kernel_writes_is_not_even_readable_while_owed() {
        let mut lent = Lent::new(Box::new([0u8; 8]));
        lent.lend(UD, true);
        assert!(lent.get().is_none());
        lent.settle(&Completion::for_test(UD, 8, 0));
        assert_eq!(lent.get().map(|b| b[0]), Some(0));
    }

    #[test]
    fn a_list_grows_while_owed_without_moving_lent_bytes() {
        let mut lent = Lent::new(Vec::<SendBuf>::new());
        lent.push(SendBuf::Vec(vec![7u8; 100]));
        let before = lent.get().unwrap().send_bytes().as_ptr();
        lent.lend_for_test(UD);
        for i in 0..100 {
            lent.push(SendBuf::Vec(vec![i; 10]));
        }
        assert_eq!(lent.get().unwrap()[0].bytes().as_ptr(), before);
        lent.settle(&Completion::for_test(UD, 0, NOTIF));
        assert_eq!(lent.get_mut().map(|v| v.len()), Some(101));
    }
}
