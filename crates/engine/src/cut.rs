//! The cutter: which chunks of a ring make a clip of `[start, end)`. Container-neutral:
//! it sees chunks (wall-time span, keyframe flag, discontinuity), never boxes.
//!
//! The rules (ref/api.md "Clips", the seed's):
//! - the reference rendition (the highest video) starts with the last keyframe chunk
//!   at or before `start` in the discontinuity that holds `start`, and ends with the
//!   chunk covering `end`; only what the ring holds, so the DVR's edges bound it;
//! - every other rendition follows the reference's bounds: its first chunk is the one
//!   holding the reference's first start (widened back to a keyframe chunk), its last
//!   the one still starting before the reference's end, both within
//!   [`FOLLOW_TOLERANCE_MICROS`] so a few ms of boundary jitter between renditions
//!   selects the same segments;
//! - in a clip that spans an encoder restart, the chunks of a later discontinuity
//!   before its first keyframe chunk are skipped: the new init cannot decode them.
//!
//! [`Track`] applies the same rules incrementally for recording clips: it remembers
//! the last `seq` it considered and takes newer chunks while they start before the
//! bound. Everything is O(log n) search plus O(k) for the k chunks taken.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::WallTime;
use crate::chunk::Chunk;
use crate::ring::RingState;

/// How far a follower rendition's chunk boundary may sit from the reference's and
/// still count as the same boundary.
pub const FOLLOW_TOLERANCE_MICROS: i64 = 100_000;

/// One rendition's share of a clip while it is built.
#[derive(Debug, Default, Clone)]
pub(crate) struct Track {
    pub(crate) chunks: Vec<Arc<Chunk>>,
    /// The newest `seq` of the ring already considered.
    seen: Option<u64>,
    /// No more chunks will be taken.
    pub(crate) closed: bool,
}

/// Widens index `i` back to the closest keyframe chunk of its discontinuity, else
/// forward to the first keyframe chunk starting before `limit`.
fn keyframe_start(chunks: &VecDeque<Arc<Chunk>>, i: usize, limit: WallTime) -> Option<usize> {
    let disc = chunks[i].discontinuity();
    let mut j = i;
    while !chunks[j].is_keyframe() && j > 0 && chunks[j - 1].discontinuity() == disc {
        j -= 1;
    }
    if chunks[j].is_keyframe() {
        return Some(j);
    }
    (i..chunks.len())
        .take_while(|&k| chunks[k].start_utc() < limit)
        .find(|&k| chunks[k].is_keyframe())
}

/// Appends `chunks[from..to]` to `out`, skipping a later discontinuity's chunks before
/// its first keyframe chunk.
fn take(out: &mut Vec<Arc<Chunk>>, chunks: &VecDeque<Arc<Chunk>>, from: usize, to: usize) {
    for c in chunks.range(from..to) {
        let joins = out
            .last()
            .is_none_or(|p| p.discontinuity() == c.discontinuity());
        if joins || c.is_keyframe() {
            out.push(Arc::clone(c));
        }
    }
}

/// The reference rendition's cut of `[start, end)`: empty when the ring holds
/// nothing of it.
pub(crate) fn cut_reference(ring: &RingState, start: WallTime, end: WallTime) -> Vec<Arc<Chunk>> {
    let chunks = &ring.chunks;
    let i0 = ring.first_ending_after(start);
    if i0 >= chunks.len() || chunks[i0].start_utc() >= end {
        return Vec::new();
    }
    let Some(first) = keyframe_start(chunks, i0, end) else {
        return Vec::new();
    };
    let to = ring.count_starting_before(end);
    let mut out = Vec::with_capacity(to.saturating_sub(first));
    take(&mut out, chunks, first, to);
    out
}

/// A follower rendition's cut matching the reference's `[ref_start, ref_end)`.
pub(crate) fn cut_follower(
    ring: &RingState,
    ref_start: WallTime,
    ref_end: WallTime,
) -> Vec<Arc<Chunk>> {
    let chunks = &ring.chunks;
    let limit = ref_end.add_micros(-FOLLOW_TOLERANCE_MICROS);
    let holding = ring.count_starting_before(ref_start.add_micros(FOLLOW_TOLERANCE_MICROS + 1));
    let mut i0 = holding.saturating_sub(1);
    if chunks
        .get(i0)
        .is_some_and(|c| c.end_utc() <= ref_start.add_micros(FOLLOW_TOLERANCE_MICROS))
    {
        i0 += 1;
    }
    if i0 >= chunks.len() || chunks[i0].start_utc() >= limit {
        return Vec::new();
    }
    let Some(first) = keyframe_start(chunks, i0, limit) else {
        return Vec::new();
    };
    let to = ring.count_starting_before(limit);
    let mut out = Vec::with_capacity(to.saturating_sub(first));
    take(&mut out, chunks, first, to);
    out
}

impl Track {
    /// A track rebuilt from persisted chunks: it goes on from its last chunk.
    pub(crate) fn restored(chunks: Vec<Arc<Chunk>>, closed: bool) -> Track {
        Track {
            seen: chunks.last().map(|c| c.seq()),
            chunks,
            closed,
        }
    }

    /// Brings the track up to date with `ring`. `bound` is where chunks stop being
    /// taken (a chunk starting before it is taken); `initial` computes the first cut
    /// while the track is still empty. `bound_final` says `bound` will not move.
    pub(crate) fn advance(
        &mut self,
        ring: &RingState,
        bound: WallTime,
        bound_final: bool,
        initial: impl FnOnce(&RingState) -> Vec<Arc<Chunk>>,
    ) -> bool {
        if self.closed {
            return false;
        }
        let before = self.chunks.len();
        if self.chunks.is_empty() {
            let first = initial(ring);
            if let Some(last) = first.last() {
                self.seen = Some(last.seq());
                self.chunks = first;
            }
        } else {
            let from = self
                .seen
                .map_or(0, |s| ring.chunks.partition_point(|c| c.seq() <= s));
            // Chunks after the last one taken already left the ring (memory pressure
            // evicted them before this clip was fed): end the clip here rather than
            // leave a hole in it.
            let lost = self
                .seen
                .is_some_and(|s| ring.chunks.get(from).is_some_and(|c| c.seq() != s + 1));
            if lost {
                self.closed = true;
                return false;
            }
            let to = ring.count_starting_before(bound).max(from);
            take(&mut self.chunks, &ring.chunks, from, to);
            if to > from {
                self.seen = Some(ring.chunks[to - 1].seq());
            }
        }
        if bound_final {
            let covered = self.chunks.last().is_some_and(|c| c.end_utc() >= bound);
            // A chunk past the bound arrived: nothing more can belong to the clip.
            let passed = ring.chunks.back().is_some_and(|c| c.start_utc() >= bound);
            self.closed = covered || passed;
        }
        self.chunks.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ring;

    const T: [bool; 8] = [true, false, false, true, false, false, true, false];

    fn at(s: f64) -> WallTime {
        WallTime::from_unix_secs(1000).add_micros((s * 1e6) as i64)
    }

    fn seqs(c: &[Arc<Chunk>]) -> Vec<u64> {
        c.iter().map(|c| c.seq()).collect()
    }

    #[test]
    fn reference_widens_back_to_the_keyframe_and_ends_covering_the_end() {
        let (r, _a) = ring(&T, at(0.0), 0);
        // [4.5 s, 6.5 s): keyframe at 3, end covered by chunk 6 (starts at 6 s).
        assert_eq!(
            r.read(|st| seqs(&cut_reference(st, at(4.5), at(6.5)))),
            [3, 4, 5, 6]
        );
        // An end exactly on a boundary takes no chunk starting there.
        assert_eq!(
            r.read(|st| seqs(&cut_reference(st, at(3.0), at(6.0)))),
            [3, 4, 5]
        );
        // Before the DVR: its first keyframe chunk; past it: nothing.
        assert_eq!(
            r.read(|st| seqs(&cut_reference(st, at(-5.0), at(1.5)))),
            [0, 1]
        );
        assert!(r.read(|st| cut_reference(st, at(9.0), at(12.0))).is_empty());
    }

    #[test]
    fn follower_matches_within_the_tolerance() {
        let (refr, _a) = ring(&T, at(0.0), 0);
        // Follower boundaries 40 ms late (another encoder output, same GOPs).
        let (fol, _b) = ring(&T, at(0.0), 40_000);
        let cut = refr.read(|st| cut_reference(st, at(3.5), at(5.5)));
        let (s, e) = (cut[0].start_utc(), cut[cut.len() - 1].end_utc());
        assert_eq!(fol.read(|st| seqs(&cut_follower(st, s, e))), seqs(&cut));
    }

    #[test]
    fn track_takes_new_chunks_until_the_bound() {
        let (r, _a) = ring(&T[..5], at(0.0), 0);
        let mut t = Track::default();
        let end = at(6.5);
        assert!(r.read(|st| t.advance(st, end, true, |st| cut_reference(st, at(4.0), end))));
        assert_eq!(seqs(&t.chunks), [3, 4]);
        assert!(!t.closed);
        // Nothing new: nothing changes.
        assert!(!r.read(|st| t.advance(st, end, true, |_| Vec::new())));
        let (r2, _b) = ring(&T, at(0.0), 0);
        assert!(r2.read(|st| t.advance(st, end, true, |_| Vec::new())));
        assert_eq!(seqs(&t.chunks), [3, 4, 5, 6]);
        assert!(t.closed, "chunk 6 covers the end");
    }
}
