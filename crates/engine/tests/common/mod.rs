//! Synthetic CMAF model values for engine tests: no parser, no files. A segment is
//! one video track (id 1, 90 kHz) of 30 fps frames whose bytes are a counter pattern,
//! so tests can tell chunks apart by content.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{Engine, EngineConfig, ManualClock, StreamId, StreamSettings, WallTime};
pub use dvrclip_fmp4::synthetic::{FRAME_TICKS, VIDEO_TIMESCALE as TIMESCALE};
use dvrclip_fmp4::{InitSegment, MediaSegment, synthetic};

/// 2026-11-25T00:00:00Z
pub const T0_SECS: i64 = 1_795_564_800;

pub fn t0() -> WallTime {
    WallTime::from_unix_secs(T0_SECS)
}

pub fn init(height: u16, tag: u8) -> InitSegment {
    let bytes = Bytes::from(vec![tag, (height >> 8) as u8, height as u8, 0, 0, 0, 0, 8]);
    synthetic::video_init(bytes, height * 16 / 9, height)
}

/// A segment of `frames` frames from `start_ticks`; the first is a keyframe iff
/// `keyframe`. `frame_bytes` per frame.
pub fn segment(start_ticks: u64, frames: u32, keyframe: bool, frame_bytes: u32) -> MediaSegment {
    let fill = (start_ticks / u64::from(FRAME_TICKS)) as u8;
    let payload = Bytes::from(vec![fill; (frames * frame_bytes) as usize]);
    synthetic::video_segment(payload, start_ticks, frames, keyframe)
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
