//! [`SegmentTables`]: one segment's rows of the progressive sample tables, summarised
//! once (at ingest) so that building a clip's header appends a summary per segment
//! instead of walking every sample again.
//!
//! Owns only the per-segment, per-track summary: sizes (§8.7.3) encoded as the
//! big-endian rows `stsz` lists, `stts` and `ctts` runs (§8.6.1.2, §8.6.1.3) encoded
//! as `rows` keeps them, sync sample numbers (§8.6.2), the contiguous byte runs that
//! become `stsc` chunks, and the presentation extent. The encoded rows are the very
//! bytes a clip's header sends: shared `Bytes`, never copied per clip. Everything is
//! relative to the segment; `build` places it on the output timeline and must reach
//! the very state its sample-by-sample path would (the differential test in
//! `tests.rs` holds it to that). Nothing here depends on the init or on other
//! segments.

use bytes::Bytes;

use super::rows::{SegmentRuns, SegmentSync};
use crate::model::{MediaSegment, TrackSamples};

/// The summaries of one segment's tracks.
#[derive(Debug, Clone, Default)]
pub struct SegmentTables {
    tracks: Vec<TrackTables>,
}

/// One track of one segment, as `OutTrack::append` would add it with nothing to
/// skip and no timescale to convert.
#[derive(Debug, Clone)]
pub(super) struct TrackTables {
    pub(super) track_id: u32,
    pub(super) samples: usize,
    /// Sizes as `stsz` rows: 4 big-endian bytes each.
    pub(super) sizes: Bytes,
    /// The one size every sample has, if they share one.
    pub(super) uniform_size: Option<u32>,
    pub(super) stts: SegmentRuns<u32>,
    pub(super) ctts: SegmentRuns<i32>,
    /// 1-based numbers of sync samples within the segment's samples of the track.
    pub(super) sync: SegmentSync,
    /// Contiguous byte runs: (start, end, samples), in sample order; the first
    /// inline (usually the only one), the others after it.
    pub(super) first_chunk: (u32, u32, u32),
    pub(super) more_chunks: Vec<(u32, u32, u32)>,
    /// Source decode time of the first sample.
    pub(super) first_decode: u64,
    pub(super) duration_sum: u64,
    /// Largest `decode + composition offset + duration` of any sample, the decode
    /// time counted from the segment's first sample.
    pub(super) max_pt_end: i64,
    pub(super) first_cto: i32,
    pub(super) last_duration: u32,
    /// Source decode time just past the last sample: where the next segment of the
    /// run starts (kept here so the builder need not read the last sample).
    pub(super) end_decode: u64,
}

impl SegmentTables {
    /// Summarises every track of `segment`. O(samples); the summary holds about 12
    /// bytes per sample (sizes, and `ctts` rows when offsets change every sample).
    /// A track whose sample offsets overflow is left out: the builder then walks its
    /// samples and reports the error.
    pub fn new(segment: &MediaSegment) -> Self {
        SegmentTables {
            tracks: segment.tracks.iter().filter_map(summarise).collect(),
        }
    }

    /// Heap bytes held, for a memory budget.
    pub fn memory_bytes(&self) -> u64 {
        let per_track = self.tracks.iter().map(|t| {
            t.sizes.len()
                + t.stts.memory_bytes()
                + t.ctts.memory_bytes()
                + t.sync.memory_bytes()
                + t.more_chunks.capacity() * 12
        });
        (per_track.sum::<usize>() + self.tracks.capacity() * std::mem::size_of::<TrackTables>())
            as u64
    }

    pub(super) fn track(&self, track_id: u32) -> Option<&TrackTables> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }
}

fn summarise(ts: &TrackSamples) -> Option<TrackTables> {
    let first = ts.samples.first()?;
    let n = ts.samples.len();
    let mut sizes = Vec::with_capacity(n * 4);
    let mut uniform_size = Some(first.size);
    let mut stts: Vec<(u32, u32)> = Vec::new();
    let mut ctts: Vec<(u32, i32)> = Vec::new();
    let mut t = TrackTables {
        track_id: ts.track_id,
        samples: n,
        sizes: Bytes::new(),
        uniform_size: None,
        stts: SegmentRuns::new(&[]),
        ctts: SegmentRuns::new(&[]),
        sync: SegmentSync::default(),
        end_decode: 0,
        first_chunk: (0, 0, 0),
        more_chunks: Vec::new(),
        first_decode: first.decode_ticks,
        duration_sum: 0,
        max_pt_end: i64::MIN,
        first_cto: first.composition_offset,
        last_duration: 0,
    };
    let mut chunks: Vec<(u32, u32, u32)> = Vec::new();
    let mut decode: u64 = 0;
    for (i, s) in ts.samples.iter().enumerate() {
        let end = s.offset.checked_add(s.size)?;
        // The same grouping as `OutTrack::append`: an empty sample joins the run.
        match chunks.last_mut() {
            Some((_, e, c)) if *e == s.offset || s.size == 0 => {
                if s.size > 0 {
                    *e = end;
                }
                *c += 1;
            }
            _ => chunks.push((s.offset, end, 1)),
        }
        sizes.extend_from_slice(&s.size.to_be_bytes());
        if uniform_size != Some(s.size) {
            uniform_size = None;
        }
        match stts.last_mut() {
            Some((c, d)) if *d == s.duration => *c += 1,
            _ => stts.push((1, s.duration)),
        }
        match ctts.last_mut() {
            Some((c, o)) if *o == s.composition_offset => *c += 1,
            _ => ctts.push((1, s.composition_offset)),
        }
        if s.is_sync {
            t.sync.push(u32::try_from(i + 1).ok()?);
        }
        let pt_end = decode as i64 + i64::from(s.composition_offset) + i64::from(s.duration);
        t.max_pt_end = t.max_pt_end.max(pt_end);
        decode += u64::from(s.duration);
        t.last_duration = s.duration;
    }
    t.duration_sum = decode;
    let last = ts.samples.last()?;
    t.end_decode = last.decode_ticks.checked_add(u64::from(last.duration))?;
    t.sizes = Bytes::from(sizes);
    t.first_chunk = *chunks.first()?;
    t.more_chunks = chunks.get(1..).unwrap_or_default().to_vec();
    t.uniform_size = uniform_size;
    t.stts = SegmentRuns::new(&stts);
    t.ctts = SegmentRuns::new(&ctts);
    Some(t)
}
