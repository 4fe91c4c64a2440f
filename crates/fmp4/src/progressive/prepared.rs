//! [`SegmentTables`]: one segment's rows of the progressive sample tables, summarised
//! once (at ingest) so that building a clip's header appends a summary per segment
//! instead of walking every sample again.
//!
//! Owns only the per-segment, per-track summary: sizes (§8.7.3), `stts` and `ctts`
//! runs (§8.6.1.2, §8.6.1.3), sync sample numbers (§8.6.2), the contiguous byte runs
//! that become `stsc` chunks, and the presentation extent. Everything is relative to
//! the segment; `build` places it on the output timeline and must reach the very
//! state its sample-by-sample path would (the differential test in `tests.rs` holds
//! it to that). Nothing here depends on the init or on other segments.

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
    pub(super) sizes: Vec<u32>,
    pub(super) stts: Vec<(u32, u32)>,
    pub(super) ctts: Vec<(u32, i32)>,
    /// 1-based numbers of sync samples within the segment's samples of the track.
    pub(super) sync: Vec<u32>,
    /// Contiguous byte runs: (start, end, samples), in sample order.
    pub(super) chunks: Vec<(u32, u32, u32)>,
    pub(super) duration_sum: u64,
    /// Largest `decode + composition offset + duration` of any sample, the decode
    /// time counted from the segment's first sample.
    pub(super) max_pt_end: i64,
    pub(super) first_cto: i32,
    pub(super) last_duration: u32,
}

impl SegmentTables {
    /// Summarises every track of `segment`. O(samples); the summary holds about 12
    /// bytes per sample (sizes, and `ctts` runs when offsets change every sample).
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
            t.sizes.capacity() * 4
                + (t.stts.capacity() + t.ctts.capacity()) * 8
                + t.sync.capacity() * 4
                + t.chunks.capacity() * 12
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
    let mut t = TrackTables {
        track_id: ts.track_id,
        sizes: Vec::with_capacity(n),
        stts: Vec::new(),
        ctts: Vec::new(),
        sync: Vec::new(),
        chunks: Vec::new(),
        duration_sum: 0,
        max_pt_end: i64::MIN,
        first_cto: first.composition_offset,
        last_duration: 0,
    };
    let mut decode: u64 = 0;
    for (i, s) in ts.samples.iter().enumerate() {
        let end = s.offset.checked_add(s.size)?;
        // The same grouping as `OutTrack::append`: an empty sample joins the run.
        match t.chunks.last_mut() {
            Some((_, e, c)) if *e == s.offset || s.size == 0 => {
                if s.size > 0 {
                    *e = end;
                }
                *c += 1;
            }
            _ => t.chunks.push((s.offset, end, 1)),
        }
        t.sizes.push(s.size);
        match t.stts.last_mut() {
            Some((c, d)) if *d == s.duration => *c += 1,
            _ => t.stts.push((1, s.duration)),
        }
        match t.ctts.last_mut() {
            Some((c, o)) if *o == s.composition_offset => *c += 1,
            _ => t.ctts.push((1, s.composition_offset)),
        }
        if s.is_sync {
            t.sync.push(i as u32 + 1);
        }
        let pt_end = decode as i64 + i64::from(s.composition_offset) + i64::from(s.duration);
        t.max_pt_end = t.max_pt_end.max(pt_end);
        decode += u64::from(s.duration);
        t.last_duration = s.duration;
    }
    t.duration_sum = decode;
    Some(t)
}
