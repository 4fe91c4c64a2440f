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
use crate::model::{MediaSegment, Sample, TrackSamples};

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
    let mut acc = Summary::start(ts.track_id, first);
    let mut chunks = Vec::new();
    acc.add(&ts.samples, &mut chunks)?;
    let mut t = acc.finish()?;
    t.first_chunk = *chunks.first()?;
    t.more_chunks = chunks.get(1..).unwrap_or_default().to_vec();
    Some(t)
}

/// The rows of one track summarised over one or more consecutive sample runs (one
/// segment, or a block of segments continuing each other): what [`SegmentTables`]
/// and `block` both make, so the two cannot disagree.
pub(super) struct Summary {
    t: TrackTables,
    sizes: Vec<u8>,
    uniform_size: Option<u32>,
    stts: Vec<(u32, u32)>,
    ctts: Vec<(u32, i32)>,
    /// Sum of the durations so far: decode time from the first sample.
    decode: u64,
}

impl Summary {
    pub(super) fn start(track_id: u32, first: &Sample) -> Self {
        Summary {
            t: TrackTables {
                track_id,
                samples: 0,
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
            },
            sizes: Vec::new(),
            uniform_size: Some(first.size),
            stts: Vec::new(),
            ctts: Vec::new(),
            decode: 0,
        }
    }

    /// Decode time (source ticks) the next sample must have to continue the run:
    /// the first sample's plus every duration so far.
    pub(super) fn next_decode(&self) -> u64 {
        self.t.first_decode.saturating_add(self.decode)
    }

    /// Source decode time just past the last sample added, if any was.
    pub(super) fn end_decode(&self) -> Option<u64> {
        (self.t.samples > 0).then_some(self.t.end_decode)
    }

    /// Adds `samples`, setting `chunks` to their contiguous byte runs `(start, end,
    /// samples)`. `None` when an offset or a count overflows.
    pub(super) fn add(
        &mut self,
        samples: &[Sample],
        chunks: &mut Vec<(u32, u32, u32)>,
    ) -> Option<()> {
        let before = self.t.samples;
        self.sizes.reserve(samples.len() * 4);
        chunks.clear();
        for (i, s) in samples.iter().enumerate() {
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
            self.sizes.extend_from_slice(&s.size.to_be_bytes());
            if self.uniform_size != Some(s.size) {
                self.uniform_size = None;
            }
            match self.stts.last_mut() {
                Some((c, d)) if *d == s.duration => *c += 1,
                _ => self.stts.push((1, s.duration)),
            }
            match self.ctts.last_mut() {
                Some((c, o)) if *o == s.composition_offset => *c += 1,
                _ => self.ctts.push((1, s.composition_offset)),
            }
            if s.is_sync {
                self.t.sync.push(u32::try_from(before + i + 1).ok()?);
            }
            let pt_end =
                self.decode as i64 + i64::from(s.composition_offset) + i64::from(s.duration);
            self.t.max_pt_end = self.t.max_pt_end.max(pt_end);
            self.decode += u64::from(s.duration);
            self.t.last_duration = s.duration;
        }
        self.t.samples = before + samples.len();
        let last = samples.last()?;
        self.t.end_decode = last.decode_ticks.checked_add(u64::from(last.duration))?;
        Some(())
    }

    /// The summary of everything added (which must be at least one sample).
    pub(super) fn finish(mut self) -> Option<TrackTables> {
        if self.t.samples == 0 {
            return None;
        }
        self.t.duration_sum = self.decode;
        self.t.sizes = Bytes::from(self.sizes);
        self.t.uniform_size = self.uniform_size;
        self.t.stts = SegmentRuns::new(&self.stts);
        self.t.ctts = SegmentRuns::new(&self.ctts);
        Some(self.t)
    }
}
