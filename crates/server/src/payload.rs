//! Where an uploaded file's bytes live once it is complete: for a media segment, for as
//! long as the DVR or a clip holds it.
//!
//! A segment of 32 KiB or more gets an anonymous memory mapping of its own, so that
//! its pages go back to the OS the moment its last reference drops. On the heap,
//! segments of 40–100 KiB freed oldest-first while connections allocate in between
//! leave holes glibc's malloc keeps resident. Measured with `scripts/load-test.sh` at a
//! 128 MiB budget (5-minute runs, RSS while eviction churns): with payloads on glibc's
//! heap RSS crept 152 → 170 MiB to the end; under `MALLOC_MMAP_THRESHOLD_=65536`
//! (every allocation of 64 KiB or more mapped, the same effect for all of them) it
//! stayed flat. Mapped payloads peaked at 156 MiB, holding more (connections counted
//! in the budget too); with the same accounting, jemalloc as the global allocator
//! peaked at 158 MiB and was still rising, mimalloc at 208 MiB. The cost is one copy
//! of the segment, one `mmap` and one `munmap`, and up to a page of rounding each.
//!
//! Mappings are bounded: each is one kernel VMA and a process has 65,530 by default
//! (`vm.max_map_count`), shared with thread stacks and the allocator. Past
//! [`MAX_MAPPED`] live mappings, or if the kernel refuses one, the bytes stay on the
//! heap, as small files always do.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use memmap2::{Mmap, MmapMut};

/// Files smaller than this stay on the heap: page rounding would cost more than
/// fragmentation does.
pub const MAPPED_MIN_BYTES: usize = 32 << 10;

/// Live mappings at most, about half of Linux's default `vm.max_map_count`.
pub const MAX_MAPPED: usize = 32_768;

static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Live payload mappings now.
pub fn mapped_count() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// The bytes of a complete upload, placed for keeping.
pub fn keep(body: Vec<u8>) -> Bytes {
    if body.len() >= MAPPED_MIN_BYTES
        && let Some(mapped) = Mapped::copy_of(&body)
    {
        return Bytes::from_owner(mapped);
    }
    // Spare room from growing the buffer would be held as long as the file is.
    if body.capacity() - body.len() > body.len() / 16 {
        return Bytes::copy_from_slice(&body);
    }
    Bytes::from(body)
}

/// A read-only mapping holding one payload; gives its slot back when dropped.
struct Mapped {
    map: Mmap,
}

impl Mapped {
    fn copy_of(bytes: &[u8]) -> Option<Mapped> {
        let taken = MAPPED.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_MAPPED).then_some(n + 1)
        });
        taken.ok()?;
        let map = MmapMut::map_anon(bytes.len()).and_then(|mut map| {
            map.copy_from_slice(bytes);
            map.make_read_only()
        });
        match map {
            Ok(map) => Some(Mapped { map }),
            Err(_) => {
                MAPPED.fetch_sub(1, Ordering::AcqRel);
                None
            }
        }
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        MAPPED.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_files_are_mapped_until_their_last_reference_drops() {
        let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let kept = keep(body.clone());
        assert_eq!(kept, body);
        assert!(mapped_count() > 0);
        let slice = kept.slice(10..20);
        drop(kept);
        assert_eq!(slice, body[10..20], "a slice keeps the mapping alive");
    }

    #[test]
    fn small_files_stay_on_the_heap_without_spare_room() {
        let mut body = Vec::with_capacity(4096);
        body.extend_from_slice(b"#EXTM3U\n");
        let kept = keep(body);
        assert_eq!(kept, &b"#EXTM3U\n"[..]);
    }
}
