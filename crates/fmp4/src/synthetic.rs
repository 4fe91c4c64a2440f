//! Synthetic model values for tests and benchmarks of the crates above: a one-track
//! H.264 init and segments of equal 30 fps frames, built as model types with no bytes
//! parsed. Never used on input from the network.
//!
//! A segment's payload is the caller's `Bytes`, split evenly: sample i is bytes
//! `[i * size, (i + 1) * size)` with `size = payload.len() / frames`.

use bytes::Bytes;

use crate::model::{
    FourCC, InitSegment, MediaSegment, Sample, SampleEntry, Track, TrackDefaults, TrackKind,
    TrackSamples, VideoInfo,
};

/// Ticks per second of the synthetic video track.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Ticks per frame: 30 fps.
pub const FRAME_TICKS: u32 = 3000;

/// A one-track (id 1) `avc1.64001f` init of `width`x`height`. `bytes` stands for the
/// init's own bytes: inits with different bytes are different encoder runs.
pub fn video_init(bytes: Bytes, width: u16, height: u16) -> InitSegment {
    InitSegment {
        bytes,
        movie_timescale: 1000,
        tracks: vec![Track {
            track_id: 1,
            kind: TrackKind::Video,
            timescale: VIDEO_TIMESCALE,
            language: 0,
            defaults: TrackDefaults::default(),
            edits: Vec::new(),
            entry: SampleEntry {
                format: FourCC::new(b"avc1"),
                stsd: Bytes::new(),
                config: Bytes::new(),
                codec: "avc1.64001f".into(),
                video: Some(VideoInfo { width, height }),
                audio: None,
            },
        }],
    }
}

/// A segment of `frames` frames of track 1 from `start_ticks`; its first frame is a
/// sync sample iff `keyframe`.
pub fn video_segment(
    payload: Bytes,
    start_ticks: u64,
    frames: u32,
    keyframe: bool,
) -> MediaSegment {
    let size = u32::try_from(payload.len() / frames.max(1) as usize).unwrap_or(u32::MAX);
    let samples = (0..frames)
        .map(|i| Sample {
            decode_ticks: start_ticks + u64::from(i) * u64::from(FRAME_TICKS),
            duration: FRAME_TICKS,
            composition_offset: 0,
            offset: i * size,
            size,
            is_sync: i == 0 && keyframe,
        })
        .collect();
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    MediaSegment {
        bytes: payload,
        producer_time: None,
        events: Vec::new(),
        tracks: vec![TrackSamples {
            track_id: 1,
            base_decode_ticks: start_ticks,
            sample_description_index: 1,
            samples,
        }],
        mdat_ranges: std::iter::once(0..len).collect(),
    }
}
