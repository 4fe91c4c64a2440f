//! [`BlockTables`]: the rows of a run of consecutive segments that continue each
//! other, summarised as if they were ONE segment, so that building a clip's header
//! takes a whole block (a few pieces, a tight loop over its chunk offsets) instead of
//! visiting each of its segments.
//!
//! Owns the block-level summary: per track, the tables `prepared` makes for one
//! segment (`stsz` rows, `stts`/`ctts` runs §8.6.1.2–§8.6.1.3, sync numbers §8.6.2)
//! over all the block's samples, the `stsc` chunks (§8.7.4) with their offsets in the
//! block's `mdat` body (§8.7.5), laid out exactly as `build` lays out each segment,
//! and the body's slices. A block is made only where every segment continues the
//! previous one on every track (decode times meet, same sample description, same
//! tracks, bytes inside the `mdat`s, no overlap): there the sample-by-sample builder
//! would cross no seam, and taking the block whole reaches the very state it would.
//! Anything else is `None`, and the builder visits those segments one by one.
//!
//! It holds the segments' payloads (`Bytes` slices): whoever keeps a block keeps
//! them alive, so its owner (the engine's ring) drops it with its first chunk. A file
//! built from it shares those slices (one `Arc`), which are exactly the file's
//! media, as each segment's slice was when pushed one by one.

use std::sync::Arc;

use super::BodyRun;
use super::prepared::{Summary, TrackTables};
use crate::model::{InitSegment, MediaSegment, TrackKind};

/// The tables of consecutive segments of one run, summarised as one. See the
/// module doc of `progressive::block`.
#[derive(Debug, Clone)]
pub struct BlockTables {
    segments: usize,
    /// Each segment's length as 8 big-endian bytes: what the ETag hashes per segment.
    segment_lens: Vec<u8>,
    pub(super) tracks: Vec<BlockTrack>,
    /// The `mdat` slices, shared whole with each file built from the block.
    pub(super) body: Arc<BodyRun>,
}

/// One track over the whole block.
#[derive(Debug, Clone)]
pub(super) struct BlockTrack {
    pub(super) tables: TrackTables,
    /// `tfhd` sample description index (1-based), the same in every segment.
    pub(super) description_index: u32,
    /// `stsc` chunks: samples, and the offset in the block's body (`None`: only
    /// empty samples, which `build` places at offset 0).
    pub(super) chunks: Vec<(u32, Option<u64>)>,
}

/// A run of samples in one segment, before layout.
struct SegRun {
    start: u32,
    end: u32,
    track: usize,
    chunk: usize,
}

impl BlockTables {
    /// Summarises `segments`, consecutive segments decoded with `init`, as one.
    /// `None` unless every one continues the previous on every video and audio track
    /// of `init` (see the module doc), or if fewer than two are given.
    /// O(samples); holds about the bytes the segments' own [`super::SegmentTables`]
    /// hold, plus 16 bytes per chunk per track and one `Bytes` per body slice.
    pub fn new(init: &InitSegment, segments: &[&MediaSegment]) -> Option<Self> {
        if segments.len() < 2 {
            return None;
        }
        let ids: Vec<u32> = init
            .tracks
            .iter()
            .filter(|t| matches!(t.kind, TrackKind::Video | TrackKind::Audio))
            .map(|t| t.track_id)
            .collect();
        // The tracks with samples: the same in every segment.
        let present = |s: &MediaSegment| -> Vec<(u32, u32)> {
            ids.iter()
                .filter_map(|&id| s.track(id))
                .filter(|ts| !ts.samples.is_empty())
                .map(|ts| (ts.track_id, ts.sample_description_index))
                .collect()
        };
        let shape = present(segments[0]);
        if shape.is_empty() {
            return None;
        }
        let mut sums: Vec<Summary> = Vec::with_capacity(shape.len());
        let mut chunks: Vec<Vec<(u32, Option<u64>)>> = vec![Vec::new(); shape.len()];
        let mut body = BodyRun::default();
        body.slices.reserve(segments.len());
        body.ends.reserve(segments.len());
        let mut segment_lens = Vec::with_capacity(segments.len() * 8);
        let mut runs: Vec<(u32, u32, u32)> = Vec::new();
        let mut seg_runs: Vec<SegRun> = Vec::new();
        for (k, seg) in segments.iter().enumerate() {
            if present(seg) != shape {
                return None;
            }
            segment_lens.extend_from_slice(&(seg.bytes.len() as u64).to_be_bytes());
            seg_runs.clear();
            for (i, &(id, _)) in shape.iter().enumerate() {
                let ts = seg.track(id)?;
                let first = ts.samples.first()?;
                if k == 0 {
                    sums.push(Summary::start(id, first));
                } else if first.decode_ticks != sums[i].next_decode()
                    || Some(first.decode_ticks) != sums[i].end_decode()
                {
                    return None;
                }
                sums[i].add(&ts.samples, &mut runs)?;
                for &(start, end, samples) in &runs {
                    if !inside_mdat(seg, start, end) {
                        return None;
                    }
                    chunks[i].push((samples, None));
                    if end > start {
                        seg_runs.push(SegRun {
                            start,
                            end,
                            track: i,
                            chunk: chunks[i].len() - 1,
                        });
                    }
                }
            }
            // `Mp4Builder::lay_out`: source byte order, touching runs one slice.
            seg_runs.sort_unstable_by_key(|r| r.start);
            let mut open: Option<(u32, u32)> = None;
            for r in &seg_runs {
                open = match open {
                    Some((s, e)) if r.start == e => Some((s, r.end)),
                    Some((_, e)) if r.start < e => return None,
                    Some((s, e)) => {
                        body.push(seg.bytes.slice(s as usize..e as usize));
                        Some((r.start, r.end))
                    }
                    None => Some((r.start, r.end)),
                };
                let s = open.map_or(r.start, |(s, _)| s);
                chunks[r.track][r.chunk].1 = Some(body.len() + u64::from(r.start - s));
            }
            if let Some((s, e)) = open {
                body.push(seg.bytes.slice(s as usize..e as usize));
            }
        }
        let tracks = sums
            .into_iter()
            .zip(chunks)
            .zip(&shape)
            .map(|((sum, chunks), &(_, description_index))| {
                Some(BlockTrack {
                    tables: sum.finish()?,
                    description_index,
                    chunks,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(BlockTables {
            segments: segments.len(),
            segment_lens,
            tracks,
            body: Arc::new(body),
        })
    }

    /// Segments summarised.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Heap bytes held of its own (the body slices' payloads are the segments').
    pub fn memory_bytes(&self) -> u64 {
        let tracks: usize = self
            .tracks
            .iter()
            .map(|t| {
                t.tables.sizes.len()
                    + t.tables.stts.memory_bytes()
                    + t.tables.ctts.memory_bytes()
                    + t.tables.sync.memory_bytes()
                    + t.chunks.capacity() * std::mem::size_of::<(u32, Option<u64>)>()
                    + std::mem::size_of::<BlockTrack>()
            })
            .sum();
        (tracks
            + self.segment_lens.capacity()
            + self.body.memory_bytes()
            + std::mem::size_of::<BlockTables>()) as u64
    }

    /// The ETag's per-segment input, for all the block's segments at once.
    pub(super) fn segment_lens(&self) -> &[u8] {
        &self.segment_lens
    }

    pub(super) fn track(&self, track_id: u32) -> Option<&BlockTrack> {
        self.tracks.iter().find(|t| t.tables.track_id == track_id)
    }
}

/// Whether a run of bytes lies inside one of the segment's `mdat` bodies (an empty
/// run always does): what `build` checks of each chunk it places.
pub(super) fn inside_mdat(seg: &MediaSegment, start: u32, end: u32) -> bool {
    end == start
        || u64::from(end) <= seg.bytes.len() as u64
            && seg
                .mdat_ranges
                .iter()
                .any(|r| r.start <= start && end <= r.end)
}
