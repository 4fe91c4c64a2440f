//! Builders for unit tests: a one-track 90 kHz video init and segments of 30 fps
//! frames, pushed straight into a [`Ring`] with an explicit arrival time.

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_fmp4::{
    FourCC, InitSegment, MediaSegment, Sample, SampleEntry, Track, TrackDefaults, TrackKind,
    TrackSamples, VideoInfo,
};

use crate::memory::Account;
use crate::ring::{PushInput, PushOutcome, Ring, SharedAnchor};
use crate::{StreamId, WallTime};

pub(crate) const FRAME: u64 = 3000;

pub(crate) fn init() -> InitSegment {
    InitSegment {
        bytes: Bytes::from_static(b"init"),
        movie_timescale: 1000,
        tracks: vec![Track {
            track_id: 1,
            kind: TrackKind::Video,
            timescale: 90_000,
            language: 0,
            defaults: TrackDefaults::default(),
            edits: Vec::new(),
            entry: SampleEntry {
                format: FourCC::new(b"avc1"),
                stsd: Bytes::new(),
                config: Bytes::new(),
                codec: "avc1.64001f".into(),
                video: Some(VideoInfo {
                    width: 1280,
                    height: 720,
                }),
                audio: None,
            },
        }],
    }
}

pub(crate) fn segment(start_ticks: u64, frames: u32, keyframe: bool) -> MediaSegment {
    let samples = (0..frames)
        .map(|i| Sample {
            decode_ticks: start_ticks + u64::from(i) * FRAME,
            duration: FRAME as u32,
            composition_offset: 0,
            offset: i * 10,
            size: 10,
            is_sync: i == 0 && keyframe,
        })
        .collect();
    MediaSegment {
        bytes: Bytes::from(vec![0; frames as usize * 10]),
        producer_time: None,
        events: Vec::new(),
        tracks: vec![TrackSamples {
            track_id: 1,
            base_decode_ticks: start_ticks,
            sample_description_index: 1,
            samples,
        }],
        mdat_ranges: std::iter::once(0..frames * 10).collect(),
    }
}

/// A ring fed 1 s chunks; `keyframes[i]` says whether chunk i starts a GOP. Chunk i
/// starts at `t0 + i` seconds.
pub(crate) fn ring(keyframes: &[bool], t0: WallTime, offset_micros: i64) -> (Ring, Arc<Account>) {
    let ring = Ring::new(Arc::from("r"));
    let account = Arc::new(Account::default());
    let _ = ring.push_init(init());
    let mut shared: Option<SharedAnchor> = None;
    for (i, kf) in keyframes.iter().enumerate() {
        let inp = PushInput {
            stream: StreamId(1),
            name: None,
            segment: segment(i as u64 * 30 * FRAME, 30, *kf),
            arrival: t0.add_micros(offset_micros),
            window_micros: i64::MAX / 4,
            account: &account,
        };
        match ring.push(inp, &mut shared) {
            Ok(p) => assert!(matches!(p.outcome, PushOutcome::Stored { .. })),
            Err(e) => panic!("{e}"),
        }
    }
    (ring, account)
}
