use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::*;

/// Counts its drops.
struct Probe(Rc<Cell<u32>>);
impl Drop for Probe {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Pages the kernel holds resident in the slab's region (mincore), checked against
/// the slab's own count.
fn kernel_pages<T>(slab: &Slab<T>) -> usize {
    let real = slab.map.resident_in_kernel(slab.page);
    assert!(
        real <= slab.resident_pages(),
        "kernel has {real} pages resident, the slab counts {}",
        slab.resident_pages()
    );
    real
}

/// Pages covering keys `0..end` of `T`.
fn pages_for<T>(end: usize) -> usize {
    (end * size_of::<T>()).div_ceil(page_size())
}

#[test]
fn insert_get_remove() {
    let mut s = Slab::<String>::with_capacity(100).unwrap();
    assert_eq!(s.capacity(), 100);
    assert!(s.is_empty());
    let a = s.insert("a".to_string()).unwrap();
    let e = s.vacant_entry().unwrap();
    let b = e.key();
    e.insert("b".to_string()).push('!');
    assert_eq!((a, b), (0, 1));
    assert_eq!(s.len(), 2);
    assert_eq!(s.get(a).map(String::as_str), Some("a"));
    assert_eq!(s.get(b).map(String::as_str), Some("b!"));
    s.get_mut(a).unwrap().push('x');
    assert_eq!(s.remove(a), "ax");
    assert!(!s.contains(a) && s.contains(b));
    assert!(s.get(a).is_none() && s.get_mut(a).is_none());
    assert!(s.try_remove(a).is_none());
    assert!(s.get(100).is_none() && s.get(usize::MAX).is_none() && !s.contains(1000));
    assert_eq!(s.len(), 1);
}

#[test]
#[should_panic(expected = "vacant")]
fn removing_a_vacant_key_panics() {
    let mut s = Slab::<u32>::with_capacity(10).unwrap();
    s.remove(3);
}

#[test]
fn the_lowest_free_key_is_reused_first() {
    let mut s = Slab::<u64>::with_capacity(1000).unwrap();
    for i in 0..200 {
        assert_eq!(s.insert(i), Ok(i as usize));
    }
    for k in [150, 3, 70, 64, 63] {
        s.remove(k);
    }
    let next: Vec<usize> = (0..6).map(|_| s.insert(0).unwrap()).collect();
    assert_eq!(next, [3, 63, 64, 70, 150, 200]);
}

#[test]
fn iteration_is_in_key_order_and_skips_vacant_entries() {
    let mut s = Slab::<usize>::with_capacity(500).unwrap();
    assert_eq!(s.iter().count(), 0);
    for i in 0..300 {
        s.insert(i * 10).unwrap();
    }
    for k in (0..300).filter(|k| k % 3 != 0) {
        s.remove(k);
    }
    s.remove(297); // the highest: iteration ends below it
    let want: Vec<usize> = (0..297).filter(|k| k % 3 == 0).collect();
    let keys: Vec<usize> = s.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, want);
    for (k, v) in s.iter_mut() {
        *v += k;
    }
    assert!(s.iter().all(|(k, &v)| v == k * 11));
}

#[test]
fn every_value_is_dropped_exactly_once() {
    let n = Rc::new(Cell::new(0));
    let mut s = Slab::with_capacity(10_000).unwrap();
    for _ in 0..5_000 {
        s.insert(Probe(n.clone())).ok().unwrap();
    }
    for k in (0..5_000).step_by(7) {
        drop(s.remove(k));
    }
    let removed = n.get();
    assert_eq!(removed, 715);
    drop(s);
    assert_eq!(n.get(), 5_000);
}

#[test]
fn entries_never_move() {
    let mut s = Slab::<[u8; 100]>::with_capacity(50_000).unwrap();
    let k = s.insert([7; 100]).unwrap();
    let at = s.get(k).unwrap() as *const _;
    for i in 0..40_000 {
        s.insert([i as u8; 100]).unwrap();
    }
    for k in 1..40_000 {
        s.remove(k);
    }
    assert_eq!(s.get(k).unwrap() as *const _, at);
    assert_eq!(s.get(k).unwrap()[99], 7);
}

#[test]
fn a_full_slab_refuses() {
    let mut s = Slab::<u32>::with_capacity(130).unwrap();
    for i in 0..130 {
        s.insert(i).unwrap();
    }
    assert!(s.vacant_entry().is_none());
    assert_eq!(s.insert(9), Err(9));
    s.remove(77);
    assert_eq!(s.vacant_entry().map(|e| e.key()), Some(77));
    let empty = Slab::<u32>::with_capacity(0)
        .unwrap()
        .vacant_entry()
        .is_none();
    assert!(empty);
}

#[test]
fn pages_go_back_to_the_kernel_when_the_top_empties() {
    let page = page_size();
    let entry = 256;
    let n = 64 * page / entry; // 64 pages' worth
    let mut s = Slab::<[u8; 256]>::with_capacity(100_000).unwrap();
    assert_eq!(
        (s.resident_pages(), kernel_pages(&s)),
        (0, 0),
        "reserving costs nothing"
    );
    for i in 0..n {
        s.insert([i as u8 | 1; 256]).unwrap();
    }
    assert_eq!(s.resident_pages(), 64);
    assert_eq!(kernel_pages(&s), 64);
    // Removing from the top, pages go back in steps of RELEASE_SLACK_PAGES.
    for k in (n / 2..n).rev() {
        s.remove(k);
        let kept = kernel_pages(&s);
        assert!(kept >= pages_for::<[u8; 256]>(k));
        assert!(kept < pages_for::<[u8; 256]>(k) + RELEASE_SLACK_PAGES);
    }
    // From the bottom, nothing can go until the top entry does.
    for k in 0..n / 2 - 1 {
        s.remove(k);
    }
    assert_eq!(kernel_pages(&s), 32);
    s.remove(n / 2 - 1);
    assert!(s.is_empty());
    assert_eq!((s.resident_pages(), kernel_pages(&s)), (0, 0));
    // Released pages come back zeroed and usable.
    for i in 0..n {
        assert_eq!(s.insert([i as u8; 256]), Ok(i));
    }
    assert!(s.iter().all(|(k, v)| v.iter().all(|&b| b == k as u8)));
    assert_eq!(kernel_pages(&s), 64);
}

#[test]
fn churn_at_a_page_boundary_does_not_release_every_time() {
    let mut s = Slab::<[u64; 64]>::with_capacity(10_000).unwrap(); // 512 B
    let per_page = page_size() / 512;
    for _ in 0..per_page * 20 {
        s.insert([1; 64]).unwrap();
    }
    for k in (per_page * 10..per_page * 20).rev() {
        s.remove(k);
    }
    let releases = s.releases();
    for _ in 0..10_000 {
        let k = s.insert([2; 64]).unwrap(); // first entry of a fresh page
        s.remove(k);
    }
    assert_eq!(s.releases(), releases);
    s.shrink_to_fit();
    assert_eq!(kernel_pages(&s), 10);
    assert_eq!(s.resident_pages(), 10);
}

/// Bigger than a page, and over-aligned.
#[repr(align(64))]
struct Big {
    words: [u64; 1500],
    _probe: Probe,
}

#[test]
fn entries_larger_than_a_page() {
    assert_eq!(size_of::<Big>() % 64, 0);
    let drops = Rc::new(Cell::new(0));
    let mut s = Slab::<Big>::with_capacity(1000).unwrap();
    for i in 0..40u64 {
        let big = Big {
            words: [i; 1500],
            _probe: Probe(drops.clone()),
        };
        assert_eq!(s.insert(big).ok(), Some(i as usize));
    }
    for (k, b) in s.iter() {
        assert_eq!(b as *const Big as usize % 64, 0);
        assert!(b.words.iter().all(|&w| w == k as u64));
    }
    assert_eq!(kernel_pages(&s), pages_for::<Big>(40));
    for k in 0..40 {
        s.remove(k);
    }
    assert_eq!(drops.get(), 40);
    assert_eq!(kernel_pages(&s), 0);
}

#[test]
fn zero_sized_values() {
    let mut s = Slab::<()>::with_capacity(100).unwrap();
    for i in 0..100 {
        assert_eq!(s.insert(()), Ok(i));
    }
    assert_eq!(s.insert(()), Err(()));
    assert_eq!(s.iter().count(), 100);
    s.remove(42);
    assert_eq!(s.resident_pages(), 0);
}

/// Random inserts and removes against a map, checking keys, values, iteration,
/// lowest-key allocation and the kernel's resident pages.
#[test]
fn random_churn_matches_a_model() {
    const CAP: usize = 3_000;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut s = Slab::<(u64, [u8; 200])>::with_capacity(CAP).unwrap();
    let mut model: BTreeMap<usize, u64> = BTreeMap::new();
    for round in 0..40_000u32 {
        let r = next();
        // Phases that mostly fill, then mostly drain, so the top moves a lot.
        let fill = (round / 5_000) % 2 == 0;
        let insert = (r % 100) < if fill { 70 } else { 30 };
        if insert {
            let mut keys = model.keys().copied().chain([CAP]);
            let want = (0..CAP).find(|&k| keys.next() != Some(k));
            match s.insert((r, [r as u8; 200])) {
                Ok(k) => {
                    assert_eq!(Some(k), want, "lowest free key");
                    model.insert(k, r);
                }
                Err(_) => assert_eq!(want, None),
            }
        } else {
            // Draining, often the highest key, so the top comes down and pages go back.
            let k = match model.last_key_value() {
                Some((&top, _)) if !fill && r % 2 == 0 => top,
                _ => (next() % CAP as u64) as usize,
            };
            let got = s.try_remove(k).map(|(v, b)| {
                assert!(b.iter().all(|&x| x == v as u8));
                v
            });
            assert_eq!(got, model.remove(&k));
        }
        assert_eq!(s.len(), model.len());
        if round % 500 == 0 {
            let want: Vec<(usize, u64)> = model.iter().map(|(&k, &v)| (k, v)).collect();
            let got: Vec<(usize, u64)> = s.iter().map(|(k, v)| (k, v.0)).collect();
            assert_eq!(got, want);
            let top = want.last().map_or(0, |&(k, _)| k + 1);
            let kernel = kernel_pages(&s);
            let need = pages_for::<(u64, [u8; 200])>(top);
            assert!(kernel >= need, "{kernel} < {need}");
            assert!(
                kernel < need + RELEASE_SLACK_PAGES,
                "{kernel} pages for {need}"
            );
        }
    }
    assert!(
        s.releases() > 5,
        "the top came down: {} releases",
        s.releases()
    );
}

/// Resident set size of the process, in bytes (/proc/self/statm).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * page_size()
}

/// Prints what 10,000 entries of 512 bytes cost. Other tests running at the same time
/// move the process RSS; for a clean figure run it alone:
/// `cargo test -p ringmaster-runtime rss_per_entry -- --nocapture --test-threads=1`.
#[test]
fn rss_per_entry() {
    const N: usize = 10_000;
    let mut s = Slab::<[u8; 512]>::with_capacity(100_000).unwrap();
    let before = rss();
    for i in 0..N {
        s.insert([i as u8; 512]).unwrap();
    }
    let after = rss();
    let kernel = kernel_pages(&s) * page_size();
    println!(
        "region slab, {N} x 512 B: process RSS +{} B ({} B per entry); \
         region resident {kernel} B ({} B per entry)",
        after - before,
        (after - before) / N,
        kernel / N
    );
    assert_eq!(kernel, N * 512);
    for k in 0..N {
        s.remove(k);
    }
    let released = rss();
    println!(
        "after removing all: process RSS {:+} B vs before inserting",
        released as isize - before as isize
    );
    assert_eq!(kernel_pages(&s), 0);
}
