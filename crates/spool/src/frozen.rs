//! Memory whose bytes never change again while it is mapped: the process-wide record
//! the server's socket writer consults before it hands pages to the kernel by
//! reference (`vmsplice`, `dvrclip_server::http::splice`) instead of copying them.
//!
//! A page given by reference is read by the kernel after the call returns, when the
//! socket sends it; if its bytes changed in between, the client would get the new
//! ones. So only memory that is never written after it is frozen may be listed: the
//! spool's payload mappings (`payload`: files written once, then mapped read-only)
//! and the server's anonymous payload mappings (`http::payload`: filled once, then
//! shared read-only as `Bytes`). A heap buffer never is: once freed, the allocator
//! hands its pages to the next owner, who writes them.
//!
//! Unmapping a frozen region is fine, even with its pages still in a pipe or a
//! socket buffer: those hold references to the pages, which the kernel frees only
//! when the last one drops; truncating or unlinking a payload file removes its pages
//! from the page cache without touching their bytes.
//!
//! The one ordering rule: a region leaves the record *before* it is unmapped (a
//! [`Frozen`] is declared before the mapping in its owner, so it drops first);
//! otherwise a new mapping at the same address (a large heap allocation) could be
//! taken for frozen. Lookups are O(log n) under one mutex: one per write of a
//! response frame of tens of KiB, and one insert and removal per chunk.

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// Frozen regions: start address → end address (exclusive). Regions never overlap:
/// each is a live mapping of its own.
static REGIONS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

/// A region's place in the record, removed when dropped (none for an empty one).
#[derive(Debug)]
pub struct Frozen {
    start: Option<usize>,
}

/// Records `bytes`, a whole mapping that its owner will never write again, until
/// the returned [`Frozen`] drops; the owner must drop it before unmapping.
pub fn freeze(bytes: &[u8]) -> Frozen {
    if bytes.is_empty() {
        return Frozen { start: None };
    }
    let start = bytes.as_ptr() as usize;
    REGIONS.lock().insert(start, start + bytes.len());
    Frozen { start: Some(start) }
}

/// Whether every byte of `bytes` lies in one frozen region. The caller holds a
/// reference to `bytes` (so the region stays mapped for as long as the answer is
/// used).
pub fn contains(bytes: &[u8]) -> bool {
    contains_range(bytes.as_ptr() as usize, bytes.len())
}

/// [`contains`] by address: whether `len` bytes from `start` lie in one frozen
/// region now (a region the caller holds no reference to may leave at any time).
pub fn contains_range(start: usize, len: usize) -> bool {
    let Some(end) = start.checked_add(len).filter(|_| len > 0) else {
        return false;
    };
    REGIONS
        .lock()
        .range(..=start)
        .next_back()
        .is_some_and(|(_, &region_end)| end <= region_end)
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            REGIONS.lock().remove(&start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_is_frozen_whole_and_only_while_held() {
        let region = vec![1u8; 10_000].into_boxed_slice();
        let other = vec![2u8; 100];
        assert!(!contains(&region[10..20]));
        let held = freeze(&region);
        assert!(contains(&region[..]));
        assert!(contains(&region[10..20]));
        assert!(contains(&region[9_999..]));
        assert!(!contains(&region[5..5]), "nothing to send");
        assert!(!contains(&other));
        // An empty region records nothing, and dropping it removes nothing.
        drop(freeze(&region[..0]));
        assert!(contains(&region[10..20]));
        drop(held);
        assert!(!contains(&region[10..20]));
    }

    #[test]
    fn a_slice_reaching_past_its_region_is_not_frozen() {
        let buf = vec![0u8; 1000];
        let (a, rest) = buf.split_at(400);
        let held = freeze(a);
        assert!(contains(&buf[100..400]));
        assert!(!contains(&buf[100..401]), "crosses into memory not frozen");
        assert!(!contains(&rest[..10]));
        drop(held);
    }
}
