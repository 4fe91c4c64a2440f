//! Synthetic CMAF model values for engine tests: no parser, no files. A segment is
//! one video track (id 1, 90 kHz) of 30 fps frames whose bytes are a counter pattern,
//! so tests can tell chunks apart by content.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{Engine, EngineConfig, ManualClock, StreamId, StreamSettings, WallTime};
use dvrclip_fmp4::{
    FourCC, InitSegment, MediaSegment, Sample, SampleEntry, Track, TrackDefaults, TrackKind,
    TrackSamples, VideoInfo,
};

pub const TIMESCALE: u32 = 90_000;
pub const FRAME_TICKS: u32 = 3000;
/// 2026-11-25T00:00:00Z
pub const T0_SECS: i64 = 1_795_564_800;

pub fn t0() -> WallTime {
    WallTime::from_unix_secs(T0_SECS)
}

pub fn init(height: u16, tag: u8) -> InitSegment {
    InitSegment {
        bytes: Bytes::from(vec![tag, (height >> 8) as u8, height as u8, 0, 0, 0, 0, 8]),
        movie_timescale: 1000,
        tracks: vec![Track {
            track_id: 1,
            kind: TrackKind::Video,
            timescale: TIMESCALE,
            language: 0,
            defaults: TrackDefaults::default(),
            edits: Vec::new(),
            entry: SampleEntry {
                format: FourCC::new(b"avc1"),
                stsd: Bytes::new(),
                config: Bytes::new(),
                codec: "avc1.64001f".into(),
                video: Some(VideoInfo {
                    width: height * 16 / 9,
                    height,
                }),
                audio: None,
            },
        }],
    }
}

/// A segment of `frames` frames from `start_ticks`; the first is a keyframe iff
/// `keyframe`. `frame_bytes` per frame.
pub fn segment(start_ticks: u64, frames: u32, keyframe: bool, frame_bytes: u32) -> MediaSegment {
    let total = (frames * frame_bytes) as usize;
    let fill = (start_ticks / u64::from(FRAME_TICKS)) as u8;
    let samples = (0..frames)
        .map(|i| Sample {
            decode_ticks: start_ticks + u64::from(i * FRAME_TICKS),
            duration: FRAME_TICKS,
            composition_offset: 0,
            offset: i * frame_bytes,
            size: frame_bytes,
            is_sync: i == 0 && keyframe,
        })
        .collect();
    MediaSegment {
        bytes: Bytes::from(vec![fill; total]),
        producer_time: None,
        events: Vec::new(),
        tracks: vec![TrackSamples {
            track_id: 1,
            base_decode_ticks: start_ticks,
            sample_description_index: 1,
            samples,
        }],
        mdat_ranges: std::iter::once(0..total as u32).collect(),
    }
}

pub fn secs_to_ticks(secs: f64) -> u64 {
    (secs * f64::from(TIMESCALE)) as u64
}

pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub engine: Engine,
}

impl Harness {
    pub fn new(config: EngineConfig) -> Self {
        let clock = Arc::new(ManualClock::new(t0()));
        let engine = Engine::with_clock(config, clock.clone());
        Harness { clock, engine }
    }

    pub fn stream(&self, dvr_secs: u32) -> StreamId {
        let mut s = StreamSettings::named("test");
        s.dvr_duration_secs = dvr_secs;
        match self.engine.create_stream(s) {
            Ok(info) => info.id,
            Err(e) => panic!("create_stream: {e}"),
        }
    }
}
