//! [`OutTrack`]: one track of the file being built, the vocabulary `build` and
//! `write` share. `build` fills it segment by segment; `write` turns its tables into
//! `trak` boxes. Depends on neither, so both point down at it.
//!
//! Owns the sample tables in output ticks (ISO/IEC 14496-12 §8.6.1.2 `stts`, §8.6.1.3
//! `ctts`, §8.6.2 `stss`, §8.7.3 `stsz`, §8.7.4 `stsc`, §8.7.5 chunk offsets, §8.5.2
//! `stsd` entries) and the two operations that change them sample by sample; also
//! the per-run state `build` keeps to stitch sources onto them. Must not hold
//! timeline decisions (those are `build`'s) or box bytes (`write`'s). The big tables
//! are `rows`' shapes: a segment summarised at ingest joins them as its encoded rows,
//! by reference.

use bytes::Bytes;

use super::BuildError;
use super::prepared::TrackTables;
use super::rows::{RunTable, SizeTable, SyncTable};
use crate::model::{Sample, Track, TrackKind, VideoInfo};

/// One `stsd` carried from an init: its entries get `first_index..first_index+count`.
#[derive(Debug)]
pub(super) struct Description {
    pub(super) stsd: Bytes,
    pub(super) first_index: u32,
    pub(super) count: u32,
    /// The entry's parameter sets (SPS, PPS, ...) as length-prefixed NAL units, put
    /// in front of the first keyframe after a switch to this entry.
    pub(super) in_band: Option<Bytes>,
}

/// One `stsc` chunk: one fragment's contiguous run of a track's samples.
#[derive(Clone, Copy, Debug)]
pub(super) struct Chunk {
    pub(super) samples: u32,
    pub(super) description: u32,
    /// Offset inside the `mdat` body.
    pub(super) body_pos: u64,
}

/// A written track and its tables, in output ticks.
#[derive(Debug)]
pub(super) struct OutTrack {
    pub(super) kind: TrackKind,
    /// Which track of this kind in an init (0 = first): how a later init's track is
    /// matched to this one even if its id changed.
    pub(super) ordinal: usize,
    pub(super) first_track_id: u32,
    /// The matching track id in the init of the current run, if it has one.
    pub(super) src_track_id: Option<u32>,
    pub(super) timescale: u32,
    pub(super) language: u16,
    pub(super) video: Option<VideoInfo>,
    pub(super) codecs: Vec<String>,
    pub(super) descriptions: Vec<Description>,
    pub(super) desc_base: u32,
    pub(super) desc_count: u32,
    /// Description of the last chunk pushed (0: none yet).
    pub(super) last_description: u32,
    /// Timescale of the matching track in the current init; samples of a run with
    /// another timescale are rescaled into `timescale`.
    pub(super) src_timescale: u32,
    /// Source presentation on the init's movie timeline = PT + this (output ticks).
    pub(super) src_shift: i128,
    /// Output decode time = source decode time + this, for the current run.
    pub(super) run_offset: Option<i128>,
    pub(super) expected_src_decode: Option<u64>,
    pub(super) sample_count: u32,
    pub(super) sizes: SizeTable,
    /// `stts` runs: (count, duration).
    pub(super) stts: RunTable<u32>,
    /// `ctts` runs: (count, offset).
    pub(super) ctts: RunTable<i32>,
    /// 1-based numbers of sync samples.
    pub(super) sync: SyncTable,
    pub(super) chunks: Vec<Chunk>,
    /// Output decode time just past the last sample.
    pub(super) decode_end: u64,
    pub(super) last_duration: u32,
    /// Output composition time of the first sample and the latest end of any sample.
    pub(super) first_pt: i64,
    pub(super) max_pt_end: i64,
    /// Movie presentation = output composition time + this (ticks): chosen when the
    /// first sample arrives so that the track starts where the reference maps it.
    pub(super) presentation_offset: i128,
}

impl OutTrack {
    /// An empty track written for `t`, the `ordinal`-th of its kind in the first init.
    pub(super) fn new(t: &Track, ordinal: usize) -> Self {
        OutTrack {
            kind: t.kind,
            ordinal,
            first_track_id: t.track_id,
            src_track_id: None,
            timescale: t.timescale,
            language: t.language,
            video: t.entry.video,
            codecs: Vec::new(),
            descriptions: Vec::new(),
            desc_base: 1,
            desc_count: 1,
            last_description: 0,
            src_timescale: t.timescale,
            src_shift: 0,
            run_offset: None,
            expected_src_decode: None,
            sample_count: 0,
            sizes: SizeTable::default(),
            stts: RunTable::new(),
            ctts: RunTable::new(),
            sync: SyncTable::default(),
            chunks: Vec::new(),
            decode_end: 0,
            last_duration: 0,
            first_pt: 0,
            max_pt_end: 0,
            presentation_offset: 0,
        }
    }

    /// Makes room for the rows of `segments` segments taken by reference.
    pub(super) fn reserve_segments(&mut self, segments: usize) {
        self.chunks.reserve(segments);
        self.sizes.reserve_segments(segments);
        self.sync.reserve(segments);
        // A segment adds at most its first run, its encoded rows and its last two.
        self.ctts.reserve(segments * 4);
    }

    /// Appends one sample's row to the tables, in output ticks.
    pub(super) fn push_sample(&mut self, s: &Sample) -> Result<(), BuildError> {
        self.sample_count = self
            .sample_count
            .checked_add(1)
            .ok_or(BuildError::TooLarge("more than 2^32 samples in a track"))?;
        self.sizes.push(s.size);
        self.stts.push(1, s.duration);
        self.ctts.push(1, s.composition_offset);
        if s.is_sync {
            self.sync.push(self.sample_count);
        }
        let pt = self.decode_end as i64 + i64::from(s.composition_offset);
        if self.sample_count == 1 {
            self.first_pt = pt;
            self.max_pt_end = pt;
        }
        self.max_pt_end = self.max_pt_end.max(pt + i64::from(s.duration));
        self.decode_end += u64::from(s.duration);
        self.last_duration = s.duration;
        Ok(())
    }

    /// Appends a segment's summarised rows: the state [`OutTrack::push_sample`] would
    /// reach pushing its samples one by one, its encoded rows shared, O(runs kept as
    /// numbers + sync runs), not O(samples).
    pub(super) fn append_rows(&mut self, t: &TrackTables) -> Result<(), BuildError> {
        let before = self.sample_count;
        self.sample_count = u32::try_from(t.samples)
            .ok()
            .and_then(|n| before.checked_add(n))
            .ok_or(BuildError::TooLarge("more than 2^32 samples in a track"))?;
        self.sizes.append(&t.sizes, t.samples, t.uniform_size);
        self.stts.append(&t.stts);
        self.ctts.append(&t.ctts);
        self.sync.append(before, &t.sync);
        let decode = self.decode_end as i64;
        if before == 0 {
            self.first_pt = decode + i64::from(t.first_cto);
            self.max_pt_end = self.first_pt;
        }
        self.max_pt_end = self.max_pt_end.max(decode + t.max_pt_end);
        self.decode_end += t.duration_sum;
        self.last_duration = t.last_duration;
        Ok(())
    }

    /// Changes the duration of the sample last pushed (the seam before a new run).
    pub(super) fn set_last_duration(&mut self, d: u32) {
        let Some(old) = self.stts.set_last_sample(d) else {
            return;
        };
        if old == d {
            return;
        }
        self.decode_end = self.decode_end - u64::from(old) + u64::from(d);
        self.last_duration = d;
        let last_pt =
            self.decode_end as i64 - i64::from(d) + i64::from(self.ctts.last().map_or(0, |c| c.1));
        self.max_pt_end = self.max_pt_end.max(last_pt + i64::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    fn sample(duration: u32, composition_offset: i32, is_sync: bool) -> Sample {
        Sample {
            decode_ticks: 0,
            duration,
            composition_offset,
            offset: 0,
            size: 10,
            is_sync,
        }
    }

    /// §8.6.1.2 and §8.6.1.3 code durations and offsets as runs; §8.6.2 numbers sync
    /// samples from 1.
    #[test]
    fn samples_extend_runs_and_number_sync_samples() {
        let init = synthetic::video_init(Bytes::new(), 640, 360);
        let mut t = OutTrack::new(&init.tracks[0], 0);
        for s in [
            sample(512, 1024, true),
            sample(512, 0, false),
            sample(256, 0, true),
        ] {
            assert_eq!(t.push_sample(&s), Ok(()));
        }
        assert_eq!(t.stts.own_runs(), [(2, 512), (1, 256)]);
        assert_eq!(t.ctts.own_runs(), [(1, 1024), (2, 0)]);
        assert_eq!(t.sync.numbers().collect::<Vec<_>>(), [1, 3]);
        assert_eq!((t.sample_count, t.decode_end), (3, 1280));
        assert_eq!((t.first_pt, t.max_pt_end), (1024, 1536));
    }

    /// The seam before a new run changes the last sample only: its `stts` run splits.
    #[test]
    fn the_seam_duration_splits_the_last_run() {
        let init = synthetic::video_init(Bytes::new(), 640, 360);
        let mut t = OutTrack::new(&init.tracks[0], 0);
        for _ in 0..3 {
            assert_eq!(t.push_sample(&sample(512, 0, true)), Ok(()));
        }
        t.set_last_duration(700);
        assert_eq!(t.stts.own_runs(), [(2, 512), (1, 700)]);
        assert_eq!(
            (t.decode_end, t.last_duration, t.max_pt_end),
            (1724, 700, 1724)
        );
        t.set_last_duration(100);
        assert_eq!(t.stts.own_runs(), [(2, 512), (1, 100)]);
        // The presentation end is the latest of any sample: shrinking keeps it.
        assert_eq!((t.decode_end, t.max_pt_end), (1124, 1724));
    }
}
