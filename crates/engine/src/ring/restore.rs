//! Rebuilding a ring from persisted chunks ([`crate::Engine::restore`]): each chunk
//! re-measured from its parsed payload by the push's own `check`, then the longest
//! run of chunks ending at the newest that keeps every ring invariant (contiguous
//! seqs, rising wall time, one init per discontinuity, no overlap) goes back into
//! the ring; older chunks stay available to the clips holding them. The writer's
//! state continues the newest chunk's discontinuity, so an encoder that keeps
//! pushing after a server restart continues its timeline; a retry of the last
//! upload is still a retry.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_fmp4::InitSegment;
use dvrclip_fmp4::progressive::SegmentTables;
use parking_lot::RwLock;

use super::place::Anchor;
use super::push::check;
use super::{AnchorSource, Disc, Ring, RingState};
use crate::chunk::{Chunk, ChunkMedia, memory_cost};
use crate::memory::{Account, Ticket};
use crate::{Error, Result, StreamId, WallTime};

/// A persisted chunk to rebuild.
pub(crate) struct ChunkParts {
    pub(crate) seq: u64,
    pub(crate) name: Option<String>,
    pub(crate) init: Arc<InitSegment>,
    pub(crate) bytes: Bytes,
    pub(crate) start_utc: WallTime,
    pub(crate) discontinuity: u64,
    pub(crate) arrival: WallTime,
}

/// Parses and measures a persisted chunk as a push would; a payload that does not
/// parse against its init, or that a push would refuse, is an error.
pub(crate) fn rebuild_chunk(
    p: ChunkParts,
    stream: StreamId,
    rendition: &str,
    account: &Arc<Account>,
) -> Result<Arc<Chunk>> {
    let segment = dvrclip_fmp4::parse_segment(p.bytes, &p.init).map_err(|source| Error::Media {
        stream,
        rendition: rendition.to_owned(),
        source,
    })?;
    let st = RingState {
        init: Some(Arc::clone(&p.init)),
        ..RingState::default()
    };
    let c = check(&st, &segment, p.arrival, stream, rendition)?;
    let tables = SegmentTables::new(&segment);
    let cost = memory_cost(&segment, &tables);
    let media = ChunkMedia {
        seq: p.seq,
        name: p.name.map(Arc::from),
        init: p.init,
        segment,
        tables,
        start_ticks: c.start_ticks,
        duration_ticks: c.end_ticks.saturating_sub(c.start_ticks),
        timescale: c.timescale,
        keyframe: c.keyframe,
        arrival: p.arrival,
        ticket: Ticket::new(account, cost),
    };
    Ok(Arc::new(Chunk {
        media: Arc::new(media),
        start_utc: p.start_utc,
        discontinuity: p.discontinuity,
    }))
}

/// Whether `older` may sit right before `newer` in a ring.
fn fits_before(older: &Chunk, newer: &Chunk) -> bool {
    if older.seq() + 1 != newer.seq()
        || older.start_utc >= newer.start_utc
        || older.discontinuity > newer.discontinuity
        || older.duration_ticks() == 0
    {
        return false;
    }
    if older.discontinuity == newer.discontinuity {
        older.start_ticks() < newer.start_ticks() && Arc::ptr_eq(older.init(), newer.init())
    } else {
        older.end_utc() <= newer.start_utc
    }
}

impl Ring {
    /// A ring holding the longest invariant-keeping run of `chunks` (sorted by seq)
    /// that ends at the newest, pruned to `window_micros`. Returns the ring and how
    /// many chunks stayed out of it.
    pub(crate) fn restored(
        name: Arc<str>,
        init: Option<Arc<InitSegment>>,
        next_seq: u64,
        next_disc: u64,
        mut chunks: Vec<Arc<Chunk>>,
        window_micros: i64,
    ) -> (Ring, usize) {
        chunks.sort_by_key(|c| c.seq());
        chunks.dedup_by_key(|c| c.seq());
        let total = chunks.len();
        let mut run: VecDeque<Arc<Chunk>> = VecDeque::new();
        while let Some(c) = chunks.pop() {
            if run.front().is_some_and(|n| !fits_before(&c, n)) {
                break;
            }
            run.push_front(c);
        }
        let mut st = RingState {
            bytes: run.iter().map(|c| c.len_bytes()).sum(),
            // A restored chunk's source is unknown: the strongest keeps a later
            // playlist date from moving what was already placed.
            sources: run.iter().map(|_| AnchorSource::PlaylistDate).collect(),
            ..RingState::default()
        };
        if let Some(last) = run.back() {
            let init = last.init();
            let ref_track = init
                .video_track()
                .or_else(|| init.tracks.first())
                .map_or(0, |t| t.track_id);
            st.cur = Some(Disc {
                seq: last.discontinuity,
                init: Arc::clone(init),
                ref_track,
                timescale: last.timescale(),
                end_ticks: last.start_ticks().saturating_add(last.duration_ticks()),
                anchor: Anchor {
                    ticks: last.start_ticks(),
                    utc: last.start_utc,
                },
            });
            st.newest = Some((last.start_utc, last.end_utc()));
            st.next_seq = next_seq.max(last.seq() + 1);
            st.next_disc = next_disc.max(last.discontinuity + 1);
        } else {
            st.next_seq = next_seq;
            st.next_disc = next_disc;
        }
        // The newest chunk's init is the current one unless a newer init came after it.
        let last_init = run.back().map(|c| Arc::clone(c.init()));
        (st.init, st.init_changed) = match (init, last_init) {
            (Some(i), Some(l)) if i.bytes == l.bytes => (Some(l), false),
            (Some(i), _) => (Some(i), true),
            (None, l) => (l, true),
        };
        st.chunks = run;
        let pruned = st.prune_window(window_micros).len();
        st.check_invariants();
        let kept = st.chunks.len();
        debug_assert!(kept + pruned <= total);
        let ring = Ring {
            name,
            state: RwLock::new(st),
        };
        (ring, total - kept)
    }
}
