//! The per-rendition ring of chunks: one writer (ingest), many readers (cutter, HTTP).
//!
//! Owns [`Ring`]: a `VecDeque<Arc<Chunk>>` in push order behind a `parking_lot::RwLock`,
//! plus the writer's state for the current discontinuity (init, wall-clock anchor).
//! What it must not hold: clips, or anything a reader keeps after its read lock ends —
//! readers copy out `Arc`s and release the lock before any I/O.
//!
//! Ingest rules (design/architecture.md "Ingest"), applied under the write lock:
//! - wall time: the chunk's own `prft` (ISO/IEC 14496-12 §8.16.5), else the
//!   discontinuity's anchor advanced by media time; a new discontinuity anchors on its
//!   first chunk's arrival (shared with sibling renditions of the stream so a ladder
//!   lands on one timeline). `EXT-X-PROGRAM-DATE-TIME` arrives after its segment and
//!   re-anchors it later ([`Ring::set_segment_date`]); a `prft` or date a day away
//!   from arrival is ignored as a broken clock;
//! - a new init, or media time going backwards or jumping by more than
//!   [`place::JUMP_TOLERANCE_MICROS`], opens a discontinuity with its own init and
//!   anchor; a forward jump of up to 5 min with the same init keeps the clock mapping
//!   (a lost upload); nothing stored is overwritten;
//! - a retry (same start and same bytes in the current discontinuity) is a no-op.
//!
//! [`Ring::push`] applies them in steps, each a function with its own tests:
//! `push::check` (init present, tracks known, a sample on the reference track;
//! measures the chunk), `RingState::is_retry`, `place::place` (pure: wall time, anchor
//! source, whether a discontinuity opens; the rules in detail are in its module doc),
//! `push::admit` (a duration in (0, 1 h], a wall time in 1970..9999) and
//! `RingState::commit`, the only step that writes the ring: a refused push leaves it
//! as it was.
//!
//! Why a `RwLock` around a `VecDeque` rather than an arc-swap snapshot: a snapshot
//! that readers can hold without a lock must be rebuilt or copied on every push, O(n)
//! for a 4 h DVR of 2 s chunks (7200 entries, ×3 renditions, every 2 s), or needs a
//! persistent tree with O(log n) pointer chasing on every read. The lock's critical
//! sections are tiny instead: the writer holds it for a `push_back`/`pop_front` and a
//! few field updates; a reader for a binary search and cloning the `Arc`s it needs. No
//! lock is held across I/O or across another ring's lock, so the writer never waits on
//! a reader's download and a reader never waits longer than one push.
//!
//! Costs: push O(log n) for the retry lookup, every other step amortized O(1); prune
//! amortized O(1) (it pops from the front only); search by wall time or media time
//! O(log n); a re-anchor by playlist date O(k) for the k chunks it moves; memory one
//! `Arc` per chunk plus the payload, counted in [`crate::MemoryStats`].
//!
//! Invariants (checked by [`RingState::check_invariants`] under `debug_assertions`
//! after every write): `seq` strictly increasing; `start_utc` strictly increasing (so
//! wall-time search is a binary search even across discontinuities); `discontinuity`
//! non-decreasing; within one discontinuity `start_ticks` strictly increasing and
//! every chunk shares the discontinuity's init; discontinuities do not overlap in wall
//! time; `bytes` equals the payloads held. A state they rule out is reported as
//! [`Error::Internal`], never as the caller's fault.

mod index;
mod place;
mod push;
mod restore;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dvrclip_fmp4::progressive::SegmentTables;
use dvrclip_fmp4::{InitSegment, MediaSegment};
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::chunk::Chunk;
use crate::memory::Account;
use crate::time::MICROS_PER_SEC;
use crate::{Error, Result, StreamId, WallTime};
pub(crate) use index::{Block, DEFAULT_BLOCK_CHUNKS};
use place::Anchor;
pub use place::AnchorSource;
pub(crate) use place::SharedAnchor;
pub(crate) use restore::{ChunkParts, rebuild_chunk};

/// A `prft` or playlist date further than this from the chunk's arrival is ignored.
const TRUST_WINDOW_MICROS: i64 = 24 * 3600 * MICROS_PER_SEC;

/// The discontinuity new chunks continue: its init, reference track and clock mapping.
#[derive(Debug)]
struct Disc {
    seq: u64,
    init: Arc<InitSegment>,
    ref_track: u32,
    timescale: u32,
    end_ticks: u64,
    anchor: Anchor,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored as chunk `seq`; `new_discontinuity` when it opened one.
    Stored {
        /// The chunk's sequence number in its rendition.
        seq: u64,
        /// Whether this chunk starts a new discontinuity.
        new_discontinuity: bool,
        /// Its wall-clock start.
        start_utc: WallTime,
    },
    /// Already held (same name and start, or same start in this discontinuity): nothing
    /// changed.
    Duplicate,
    /// An init segment identical to the current one: nothing changed.
    SameInit,
    /// A new init segment: the next chunk opens a new discontinuity.
    NewInit,
}

/// The lock-protected state of one ring.
#[derive(Debug, Default)]
pub(crate) struct RingState {
    pub(crate) chunks: VecDeque<Arc<Chunk>>,
    pub(crate) bytes: u64,
    /// Anchor source per chunk, parallel to `chunks` (kept out of `Chunk` because it
    /// matters only to the writer).
    sources: VecDeque<AnchorSource>,
    next_seq: u64,
    next_disc: u64,
    init: Option<Arc<InitSegment>>,
    init_changed: bool,
    cur: Option<Disc>,
    /// Start and end of the newest chunk stored, kept after it leaves: the floor of the
    /// next chunk's wall time when eviction has emptied the ring (budget eviction can
    /// drop a ring's newest chunk while a clip still holds it).
    newest: Option<(WallTime, WallTime)>,
    /// The MP4 header index (`index`): blocks of consecutive chunks, oldest first,
    /// each wholly inside `chunks`.
    blocks: VecDeque<Arc<Block>>,
    /// Sequence number of the first chunk pushed since the last block was cut or
    /// the discontinuity opened: the next block starts there.
    open_since: Option<u64>,
    /// Chunks per block; below 2, no index.
    block_chunks: usize,
    /// Taken from [`NEXT_GENERATION`] at every write: equal values mean the same
    /// state, so what is rendered from the window (a live playlist) can be reused.
    pub(crate) generation: u64,
}

/// Generations of every ring of the process: a value is never handed out twice, so
/// two rings (or one ring before and after a write) never share one.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// One rendition's ring. See the module doc.
#[derive(Debug)]
pub(crate) struct Ring {
    pub(crate) name: Arc<str>,
    state: RwLock<RingState>,
}

pub(crate) struct PushInput<'a> {
    pub(crate) stream: StreamId,
    pub(crate) name: Option<&'a str>,
    pub(crate) segment: MediaSegment,
    /// The segment's progressive-MP4 table rows, summarised before the write lock.
    pub(crate) tables: SegmentTables,
    pub(crate) arrival: WallTime,
    pub(crate) window_micros: i64,
    pub(crate) account: &'a Arc<Account>,
}

/// Result of a push: the outcome and what fell off the DVR window (dropped by the
/// caller outside the lock).
pub(crate) struct Pushed {
    pub(crate) outcome: PushOutcome,
    pub(crate) evicted: Vec<Arc<Chunk>>,
    /// The chunks of a block of the index to make, after the write lock.
    pub(crate) seal: Vec<Arc<Chunk>>,
}

impl Ring {
    /// An empty ring whose MP4 header index cuts blocks of `block_chunks` chunks
    /// (below 2: none).
    pub(crate) fn new(name: Arc<str>, block_chunks: usize) -> Self {
        Ring {
            name,
            state: RwLock::new(RingState {
                generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
                block_chunks,
                ..RingState::default()
            }),
        }
    }

    /// The write lock, the state's generation renewed: every write goes through here.
    fn write(&self) -> RwLockWriteGuard<'_, RingState> {
        let mut st = self.state.write();
        st.generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        st
    }

    /// Runs `f` under the read lock. Keep `f` short: search and clone `Arc`s only.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&RingState) -> R) -> R {
        f(&self.state.read())
    }

    pub(crate) fn push_init(&self, init: InitSegment) -> Result<PushOutcome> {
        if init.tracks.is_empty() {
            return Err(Error::EmptyInit);
        }
        let mut st = self.write();
        if st.init.as_ref().is_some_and(|cur| cur.bytes == init.bytes) {
            return Ok(PushOutcome::SameInit);
        }
        st.init = Some(Arc::new(init));
        st.init_changed = true;
        Ok(PushOutcome::NewInit)
    }

    /// Makes the next chunk open a new discontinuity, as a new init does.
    pub(crate) fn break_discontinuity(&self) {
        self.write().init_changed = true;
    }

    pub(crate) fn current_init(&self) -> Option<Arc<InitSegment>> {
        self.state.read().init.clone()
    }

    /// Pushes one media segment: the steps of the module doc under one write lock.
    /// `shared` is the stream's arrival anchor, read and possibly replaced.
    pub(crate) fn push(
        &self,
        inp: PushInput<'_>,
        shared: &mut Option<SharedAnchor>,
    ) -> Result<Pushed> {
        let mut st = self.write();
        let c = push::check(&st, &inp.segment, inp.arrival, inp.stream, &self.name)?;
        if st.is_retry(c.start_ticks, &inp.segment.bytes) {
            return Ok(Pushed {
                outcome: PushOutcome::Duplicate,
                evicted: Vec::new(),
                seal: Vec::new(),
            });
        }
        let placed = place::place(&st.place_input(&c, inp.arrival, *shared));
        // Shared even if `admit` refuses the chunk: it did arrive, and its arrival may
        // anchor the sibling renditions.
        if let Some(a) = placed.shared {
            *shared = Some(a);
        }
        push::admit(&c, &placed, inp.stream, &self.name)?;
        let mut pushed = st.commit(c, &placed, inp, &self.name)?;
        drop(st);
        // The index's block, made outside the lock; what it changes renders nothing,
        // so the generation stays.
        let seal = std::mem::take(&mut pushed.seal);
        if let Some(block) = Block::new(&seal) {
            let mut st = self.state.write();
            st.add_block(block);
            st.check_invariants();
        }
        Ok(pushed)
    }

    /// The index's blocks wholly inside the chunks `first_seq..=last_seq`, oldest
    /// first. O(log n + blocks returned) under the read lock.
    pub(crate) fn blocks(&self, first_seq: u64, last_seq: u64) -> Vec<Arc<Block>> {
        self.read(|st| {
            let from = st.blocks.partition_point(|b| b.first_seq < first_seq);
            st.blocks
                .range(from..)
                .take_while(|b| b.last_seq <= last_seq)
                .cloned()
                .collect()
        })
    }

    /// Re-anchors the newest chunk named `segment_name`, and the chunks after it in its
    /// discontinuity up to the next one with its own date, so it starts at `utc`.
    /// Returns the chunks moved, in their new place. A chunk with its own `prft` keeps it.
    pub(crate) fn set_segment_date(&self, segment_name: &str, utc: WallTime) -> Vec<Arc<Chunk>> {
        let mut st = self.write();
        let Some(idx) = st
            .chunks
            .iter()
            .rposition(|c| c.name() == Some(segment_name))
        else {
            return Vec::new();
        };
        let trusted = utc
            .micros_since(st.chunks[idx].arrival_utc())
            .unsigned_abs()
            <= TRUST_WINDOW_MICROS as u64;
        // The first date of a chunk wins: a later playlist naming the same file (an
        // encoder restart reusing names, whose upload was a duplicate) must not move it.
        if matches!(
            st.sources[idx],
            AnchorSource::ProducerTime | AnchorSource::PlaylistDate
        ) || !trusted
        {
            return Vec::new();
        }
        let chunk = Arc::clone(&st.chunks[idx]);
        let disc = chunk.discontinuity;
        let mut end = idx + 1;
        while end < st.chunks.len()
            && st.chunks[end].discontinuity == disc
            && matches!(
                st.sources[end],
                AnchorSource::MediaTime | AnchorSource::Arrival
            )
        {
            end += 1;
        }
        // Clamp the shift so the moved run neither overlaps its neighbours nor leaves
        // them: it starts at or after the previous chunk's end and ends at or before
        // the next chunk's start.
        let old = chunk.start_utc;
        let lo = match idx.checked_sub(1).map(|p| &st.chunks[p]) {
            Some(p) => p.end_utc().micros_since(old),
            None => i64::MIN,
        };
        let last = &st.chunks[end - 1];
        let hi = match st.chunks.get(end) {
            Some(n) => n.start_utc.micros_since(last.end_utc()),
            None => i64::MAX,
        };
        let delta = utc.micros_since(old).max(lo).min(hi);
        if delta == 0 || lo > hi {
            st.sources[idx] = AnchorSource::PlaylistDate;
            return Vec::new();
        }
        let mut moved = Vec::with_capacity(end - idx);
        for i in idx..end {
            let c = &st.chunks[i];
            let chunk = Arc::new(Chunk {
                start_utc: c.start_utc.add_micros(delta),
                ..Chunk::clone(c)
            });
            st.chunks[i] = Arc::clone(&chunk);
            moved.push(chunk);
        }
        st.sources[idx] = AnchorSource::PlaylistDate;
        let new_start = old.add_micros(delta);
        if let Some(cur) = st.cur.as_mut().filter(|c| c.seq == disc) {
            cur.anchor = Anchor {
                ticks: chunk.start_ticks(),
                utc: new_start,
            };
        }
        st.check_invariants();
        moved
    }

    /// Removes every chunk (the DVR cleanup). The discontinuity state stays, so the
    /// next push continues the same clock mapping.
    pub(crate) fn clear(&self) -> Vec<Arc<Chunk>> {
        let mut st = self.write();
        st.bytes = 0;
        st.sources.clear();
        st.blocks.clear();
        st.open_since = None;
        let out = st.chunks.drain(..).collect();
        st.check_invariants();
        out
    }

    /// Drops what is older than the window (after a settings change).
    pub(crate) fn prune(&self, window_micros: i64) -> Vec<Arc<Chunk>> {
        let mut st = self.write();
        let out = st.prune_window(window_micros);
        st.check_invariants();
        out
    }

    /// Start of the oldest chunk, for the global "oldest first" eviction.
    pub(crate) fn oldest_start(&self) -> Option<WallTime> {
        self.state.read().chunks.front().map(|c| c.start_utc)
    }

    /// Pops the oldest chunk (global budget eviction).
    pub(crate) fn pop_oldest(&self) -> Option<Arc<Chunk>> {
        let mut st = self.write();
        let c = st.pop_front();
        st.check_invariants();
        c
    }
}

impl RingState {
    fn pop_front(&mut self) -> Option<Arc<Chunk>> {
        let c = self.chunks.pop_front()?;
        self.sources.pop_front();
        self.bytes -= c.len_bytes();
        // A block leaves with its first chunk: it holds the payloads' slices.
        while self.blocks.front().is_some_and(|b| b.first_seq <= c.seq()) {
            self.blocks.pop_front();
        }
        Some(c)
    }

    /// Adds `block`, made from chunks the ring held at the push, if they are all
    /// still held (eviction may have taken the oldest meanwhile).
    fn add_block(&mut self, block: Block) {
        let held = self
            .chunks
            .front()
            .is_some_and(|c| c.seq() <= block.first_seq)
            && self
                .chunks
                .back()
                .is_some_and(|c| block.last_seq <= c.seq());
        let after = self
            .blocks
            .back()
            .is_none_or(|b| b.last_seq < block.first_seq);
        if held && after {
            self.blocks.push_back(Arc::new(block));
        }
    }

    /// After `chunk` is stored: the chunks of the block it completes, if it does.
    fn seal(&mut self, new_discontinuity: bool) -> Vec<Arc<Chunk>> {
        let Some(seq) = self.chunks.back().map(|c| c.seq()) else {
            return Vec::new();
        };
        let since = match self.open_since {
            Some(s) if !new_discontinuity => s,
            _ => *self.open_since.insert(seq),
        };
        let n = self.chunks.len();
        if self.block_chunks < 2
            || seq + 1 - since < self.block_chunks as u64
            || n < self.block_chunks
        {
            return Vec::new();
        }
        self.open_since = None;
        let chunks: Vec<Arc<Chunk>> = self
            .chunks
            .range(n - self.block_chunks..)
            .cloned()
            .collect();
        // Evicted from under the run (a small window): no block.
        if chunks[0].seq() != since {
            return Vec::new();
        }
        chunks
    }

    /// Pops chunks that ended before the newest chunk's end minus the window.
    fn prune_window(&mut self, window_micros: i64) -> Vec<Arc<Chunk>> {
        let mut out = Vec::new();
        let Some(newest_end) = self.chunks.back().map(|c| c.end_utc()) else {
            return out;
        };
        let horizon = newest_end.add_micros(-window_micros);
        while self.chunks.len() > 1 && self.chunks.front().is_some_and(|c| c.end_utc() <= horizon) {
            out.extend(self.pop_front());
        }
        out
    }

    /// Index of the chunk of discontinuity `disc` starting at `ticks`. O(log n).
    fn find_ticks_in_disc(&self, disc: u64, ticks: u64) -> Option<usize> {
        let lo = self.chunks.partition_point(|c| c.discontinuity < disc);
        let hi = self.chunks.partition_point(|c| c.discontinuity <= disc);
        // Ticks rise within a discontinuity: binary search the run.
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let m = a + (b - a) / 2;
            match self.chunks[m].start_ticks().cmp(&ticks) {
                std::cmp::Ordering::Less => a = m + 1,
                std::cmp::Ordering::Greater => b = m,
                std::cmp::Ordering::Equal => return Some(m),
            }
        }
        None
    }

    /// Index of the first chunk ending after `t`. O(log n): ends rise with starts
    /// except where a discontinuity is clamped; see the module invariants.
    pub(crate) fn first_ending_after(&self, t: WallTime) -> usize {
        // start_utc is strictly increasing; the chunk before the first start > t is
        // the only candidate that may still end after t.
        let i = self.chunks.partition_point(|c| c.start_utc <= t);
        match i.checked_sub(1) {
            Some(p) if self.chunks[p].end_utc() > t => p,
            _ => i,
        }
    }

    /// Number of chunks starting strictly before `t`. O(log n).
    pub(crate) fn count_starting_before(&self, t: WallTime) -> usize {
        self.chunks.partition_point(|c| c.start_utc < t)
    }

    /// Index of the chunk with this `seq`, if still held. O(1).
    pub(crate) fn index_of_seq(&self, seq: u64) -> Option<usize> {
        let first = self.chunks.front()?.seq();
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        // Seqs are contiguous in the ring: evictions pop from the front only.
        self.chunks.get(i).filter(|c| c.seq() == seq).map(|_| i)
    }

    pub(crate) fn init(&self) -> Option<&Arc<InitSegment>> {
        self.init.as_ref()
    }

    /// Verifies the module invariants. Compiled to nothing in release builds.
    fn check_invariants(&self) {
        #[cfg(debug_assertions)]
        {
            assert_eq!(self.chunks.len(), self.sources.len());
            let mut bytes = 0;
            for (i, c) in self.chunks.iter().enumerate() {
                bytes += c.len_bytes();
                if i == 0 {
                    continue;
                }
                let p = &self.chunks[i - 1];
                assert_eq!(p.seq() + 1, c.seq(), "seq contiguous");
                assert!(p.start_utc < c.start_utc, "start_utc strictly increasing");
                assert!(
                    p.discontinuity <= c.discontinuity,
                    "discontinuity non-decreasing"
                );
                if p.discontinuity == c.discontinuity {
                    assert!(
                        p.start_ticks() < c.start_ticks(),
                        "ticks rise in a discontinuity"
                    );
                    assert!(
                        Arc::ptr_eq(p.init(), c.init()),
                        "one init per discontinuity"
                    );
                } else {
                    assert!(p.end_utc() <= c.start_utc, "discontinuities do not overlap");
                }
            }
            assert_eq!(bytes, self.bytes, "byte count");
            let (lo, hi) = match (self.chunks.front(), self.chunks.back()) {
                (Some(f), Some(b)) => (f.seq(), b.seq()),
                _ => (1, 0),
            };
            let mut after = lo;
            for b in &self.blocks {
                assert!(
                    after <= b.first_seq && b.last_seq <= hi,
                    "blocks inside, in order"
                );
                after = b.last_seq + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::WallTime;
    use crate::testutil::ring;

    #[test]
    fn search_by_wall_time_and_seq() {
        let t0 = WallTime::from_unix_secs(1000);
        let (r, account) = ring(&[true; 10], t0, 0);
        r.read(|st| {
            assert_eq!(st.first_ending_after(t0.add_micros(2_500_000)), 2);
            assert_eq!(st.first_ending_after(t0.add_micros(3_000_000)), 3);
            assert_eq!(st.first_ending_after(t0.add_micros(-1)), 0);
            assert_eq!(st.first_ending_after(t0.add_micros(10_000_000)), 10);
            assert_eq!(st.count_starting_before(t0.add_micros(3_000_000)), 3);
            assert_eq!(st.count_starting_before(t0.add_micros(3_000_001)), 4);
            assert_eq!(st.index_of_seq(7), Some(7));
            assert_eq!(st.index_of_seq(10), None);
        });
        let cost = r.read(|st| st.chunks[0].memory_bytes());
        assert_eq!(account.total_bytes(), 10 * cost);
    }

    /// Found by `fuzz/fuzz_targets/ingest_sequence.rs`: a segment whose reference
    /// samples all last 0 ticks was stored as a chunk with `end == start`, which no
    /// clip can hold (the final cut found "no media in the requested range").
    #[test]
    fn a_segment_with_no_duration_is_refused() {
        use std::sync::Arc;

        use crate::Error;
        use crate::memory::Account;
        use crate::ring::Ring;
        use crate::testutil::{init, input, segment};

        let ring = Ring::new(Arc::from("r"), 0);
        let account = Arc::new(Account::default());
        ring.push_init(init()).unwrap();
        let mut seg = segment(0, 30, true);
        for t in &mut seg.tracks {
            for s in &mut t.samples {
                // All at the first sample's time, as a trun of 0-tick durations gives.
                (s.duration, s.decode_ticks) = (0, 0);
            }
        }
        let r = ring.push(
            input(seg, WallTime::from_unix_secs(1000), &account),
            &mut None,
        );
        assert!(matches!(r, Err(Error::BadTiming { .. })), "{:?}", r.err());
        ring.read(|st| assert!(st.chunks.is_empty()));
        assert_eq!(account.total_bytes(), 0);
    }

    /// The MP4 header index (`index`): a block per 4 chunks that continue each
    /// other, none across a restart, each gone with its first chunk; a block holds
    /// no more than its chunks are charged for it.
    #[test]
    fn the_index_cuts_blocks_and_drops_them_with_their_first_chunk() {
        use std::sync::Arc;

        use bytes::Bytes;
        use dvrclip_fmp4::synthetic;

        use crate::chunk::BLOCK_SHARE_BYTES;
        use crate::memory::Account;
        use crate::ring::Ring;
        use crate::testutil::{FRAME, init, input, segment};

        let t0 = WallTime::from_unix_secs(1000);
        let ring = Ring::new(Arc::from("r"), 4);
        let account = Arc::new(Account::default());
        let mut shared = None;
        ring.push_init(init()).unwrap();
        let push = |shared: &mut _, i: u64, secs: i64| {
            let seg = segment(i * 30 * FRAME, 30, true);
            let at = t0.add_micros(secs * 1_000_000);
            ring.push(input(seg, at, &account), shared).unwrap();
        };
        for i in 0..10 {
            push(&mut shared, i, i as i64);
        }
        let seqs = |first, last| -> Vec<(u64, u64)> {
            let blocks = ring.blocks(first, last);
            blocks.iter().map(|b| (b.first_seq, b.last_seq)).collect()
        };
        assert_eq!(seqs(0, 9), [(0, 3), (4, 7)], "8 and 9 wait for two more");
        assert_eq!(seqs(1, 9), [(4, 7)]);
        assert_eq!(seqs(0, 6), [(0, 3)]);
        let (chunks, block) = ring.read(|st| (st.chunks.clone(), Arc::clone(&st.blocks[0])));
        let chunks: Vec<_> = chunks.into_iter().collect();
        assert!(block.covers(&chunks[0..4]));
        assert!(!block.covers(&chunks[1..5]) && !block.covers(&chunks[0..3]));
        let charged: u64 = chunks[0..4]
            .iter()
            .map(|c| c.tables().memory_bytes() + BLOCK_SHARE_BYTES)
            .sum();
        assert!(block.tables.memory_bytes() <= charged, "{charged}");

        // A restart: a new init opens a discontinuity, whose chunks start a block.
        let other = synthetic::video_init(Bytes::from_static(b"init 2"), 1280, 720);
        ring.push_init(other).unwrap();
        for i in 0..5 {
            push(&mut shared, i, 20 + i as i64);
        }
        assert_eq!(seqs(0, 20), [(0, 3), (4, 7), (10, 13)]);
        drop((chunks, block));
        // A block leaves with its first chunk.
        assert_eq!(ring.pop_oldest().map(|c| c.seq()), Some(0));
        assert_eq!(seqs(0, 20), [(4, 7), (10, 13)]);
        let cost = ring.read(|st| st.chunks[0].memory_bytes());
        assert_eq!(
            account.total_bytes(),
            14 * cost,
            "blocks are in the chunks' cost"
        );
        ring.clear();
        assert_eq!(seqs(0, 20), []);
    }

    #[test]
    fn prune_pops_the_front_and_releases_bytes() {
        let t0 = WallTime::from_unix_secs(1000);
        let (r, account) = ring(&[true; 10], t0, 0);
        let evicted = r.prune(3_000_000);
        assert_eq!(
            evicted.iter().map(|c| c.seq()).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
        // Still alive while someone holds them, released when they go.
        let cost = evicted[0].memory_bytes();
        assert!(cost > 300, "the payload and its tables");
        assert_eq!(account.total_bytes(), 10 * cost);
        drop(evicted);
        assert_eq!(account.total_bytes(), 3 * cost);
        r.read(|st| {
            assert_eq!(
                (st.chunks.len(), st.bytes, st.index_of_seq(8)),
                (3, 900, Some(1))
            )
        });
    }
}
