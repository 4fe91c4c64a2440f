//! Where an uploaded file's bytes live: from the socket until the DVR and every clip
//! holding it let go.
//!
//! A body that declares its length is read straight into its final home
//! ([`PayloadBuf::for_declared`]): one copy of each media byte, from hyper's frame
//! into the mapping the chunk keeps. A body of unknown length (chunked, as ffmpeg
//! sends) grows in a heap buffer and is placed by [`keep`] once complete: two copies.
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
//! With a spool ([`PayloadBuf::spooled`]) a segment's body is written into its spool
//! file as it arrives, declared length or not, and the file is mapped once complete:
//! one copy, and the spool keeps it as it is (`dvrclip_spool`).
//!
//! Mappings are bounded: each is one kernel VMA and a process has 65,530 by default
//! (`vm.max_map_count`), shared with thread stacks and the allocator. Past
//! [`MAX_MAPPED`] live mappings, or if the kernel refuses one, the bytes stay on the
//! heap, as small files always do.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use memmap2::MmapMut;

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

/// A buffer a body is read into, already where its bytes will be kept.
#[derive(Debug)]
pub struct PayloadBuf(Inner);

#[derive(Debug)]
enum Inner {
    Heap(Vec<u8>),
    /// A writable mapping of the declared length, `filled` bytes written.
    Mapped {
        map: MmapMut,
        filled: usize,
        slot: Slot,
    },
    /// A spool file, written as bytes arrive; the first write error is kept.
    Spooled {
        writer: Box<dvrclip_spool::PayloadWriter>,
        failed: Option<std::io::Error>,
    },
}

impl PayloadBuf {
    /// A buffer for a body of unknown length: the heap, placed by [`keep`] at the end.
    pub fn growable() -> Self {
        PayloadBuf(Inner::Heap(Vec::new()))
    }

    /// A buffer for a body that declared `len` bytes: a mapping of exactly that size
    /// when it is large enough to deserve one. Its pages become resident only as
    /// bytes arrive, so a client that declares much and sends little costs little.
    pub fn for_declared(len: u64) -> Self {
        let Ok(len) = usize::try_from(len) else {
            return PayloadBuf::growable();
        };
        if len >= MAPPED_MIN_BYTES
            && let Some(slot) = Slot::take()
            && let Ok(map) = MmapMut::map_anon(len)
        {
            return PayloadBuf(Inner::Mapped {
                map,
                filled: 0,
                slot,
            });
        }
        PayloadBuf(Inner::Heap(Vec::new()))
    }

    /// A buffer that is a new file of `spool`, written as bytes arrive; `None` when
    /// the file cannot be made (the caller reads into memory instead).
    pub fn spooled(spool: &dvrclip_spool::Spool) -> Option<Self> {
        let writer = spool.payload_writer().ok()?;
        Some(PayloadBuf(Inner::Spooled {
            writer: Box::new(writer),
            failed: None,
        }))
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        match &self.0 {
            Inner::Heap(v) => v.len(),
            Inner::Mapped { filled, .. } => *filled,
            Inner::Spooled { writer, .. } => writer.len() as usize,
        }
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes that fit without growing (a mapping never grows).
    pub fn capacity(&self) -> usize {
        match &self.0 {
            Inner::Heap(v) => v.capacity(),
            Inner::Mapped { map, .. } => map.len(),
            Inner::Spooled { writer, .. } => writer.len() as usize,
        }
    }

    /// Makes room for `capacity` bytes in all (a no-op for a mapping).
    pub fn reserve_to(&mut self, capacity: usize) {
        if let Inner::Heap(v) = &mut self.0 {
            v.reserve_exact(capacity.saturating_sub(v.len()));
        }
    }

    /// Appends `data`. A mapping takes no more than its declared length: the rest
    /// moves the whole body to the heap (hyper never delivers more than a
    /// `Content-Length`, so this is a guard, not a path).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if let Inner::Spooled { writer, failed } = &mut self.0 {
            if failed.is_none()
                && let Err(e) = writer.write(data)
            {
                *failed = Some(e);
            }
            return;
        }
        if let Inner::Mapped { map, filled, .. } = &mut self.0 {
            if let Some(dst) = map.get_mut(*filled..*filled + data.len()) {
                dst.copy_from_slice(data);
                *filled += data.len();
                return;
            }
            let mut v = Vec::with_capacity(*filled + data.len());
            v.extend_from_slice(&map[..*filled]);
            self.0 = Inner::Heap(v);
        }
        if let Inner::Heap(v) = &mut self.0 {
            v.extend_from_slice(data);
        }
    }

    /// The complete body, placed for keeping: a full mapping is sealed read-only and
    /// shared as it is; a spool file is mapped; anything else goes through [`keep`].
    /// Errors: the spool file could not be written (a full filesystem).
    pub fn finish(self) -> Result<Bytes, std::io::Error> {
        Ok(match self.0 {
            Inner::Spooled {
                failed: Some(e), ..
            } => return Err(e),
            Inner::Spooled { writer, .. } => writer.finish()?,
            Inner::Heap(v) => keep(v),
            Inner::Mapped { map, filled, slot } if filled == map.len() => {
                Bytes::from_owner(Mapped::frozen(map, slot))
            }
            // Shorter than declared: hyper reports that as an error first.
            Inner::Mapped { map, filled, .. } => keep(map[..filled].to_vec()),
        })
    }
}

/// One of the [`MAX_MAPPED`] mapping slots, given back when dropped.
#[derive(Debug)]
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        MAPPED
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_MAPPED).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        MAPPED.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A mapping holding one payload. `Bytes` hands out shared slices only, so it is
/// never written again (sealing it read-only would cost an `mprotect` per chunk),
/// which is what its entry in [`dvrclip_spool::frozen`] promises: the socket writer
/// may send its pages by reference (`http::splice`).
struct Mapped {
    /// Declared before `map`: it leaves the record before the unmap.
    _frozen: dvrclip_spool::frozen::Frozen,
    map: MmapMut,
    _slot: Slot,
}

impl Mapped {
    /// `map`, filled and never written again.
    fn frozen(map: MmapMut, slot: Slot) -> Mapped {
        Mapped {
            _frozen: dvrclip_spool::frozen::freeze(&map),
            map,
            _slot: slot,
        }
    }

    fn copy_of(bytes: &[u8]) -> Option<Mapped> {
        let slot = Slot::take()?;
        let mut map = MmapMut::map_anon(bytes.len()).ok()?;
        map.copy_from_slice(bytes);
        Some(Mapped::frozen(map, slot))
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
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
    fn a_declared_body_is_written_into_its_mapping_once() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let before = mapped_count();
        let mut buf = PayloadBuf::for_declared(body.len() as u64);
        assert_eq!(buf.capacity(), body.len());
        for part in body.chunks(16_384) {
            buf.extend_from_slice(part);
        }
        let kept = buf.finish().unwrap();
        assert_eq!(kept, body);
        assert!(mapped_count() > before);
        drop(kept);
        // Small or unknown lengths stay on the heap.
        assert_eq!(PayloadBuf::for_declared(100).capacity(), 0);
    }

    #[test]
    fn a_body_past_its_declared_length_moves_to_the_heap() {
        let mut buf = PayloadBuf::for_declared(40_000);
        buf.extend_from_slice(&[1; 30_000]);
        buf.extend_from_slice(&[2; 30_000]);
        let kept = buf.finish().unwrap();
        assert_eq!(kept.len(), 60_000);
        assert_eq!((kept[29_999], kept[30_000]), (1, 2));
    }

    #[test]
    fn small_files_stay_on_the_heap_without_spare_room() {
        let mut body = Vec::with_capacity(4096);
        body.extend_from_slice(b"#EXTM3U\n");
        let kept = keep(body);
        assert_eq!(kept, &b"#EXTM3U\n"[..]);
    }
}
