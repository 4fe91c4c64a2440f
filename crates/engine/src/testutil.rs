//! Builders for unit tests: a one-track 90 kHz video init and segments of 30 fps
//! frames, pushed straight into a [`Ring`] with an explicit arrival time.

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_fmp4::synthetic::{self, FRAME_TICKS};
use dvrclip_fmp4::{InitSegment, MediaSegment};

use crate::memory::Account;
use crate::ring::{PushInput, PushOutcome, Ring, SharedAnchor};
use crate::{StreamId, WallTime};

pub(crate) const FRAME: u64 = FRAME_TICKS as u64;

pub(crate) fn init() -> InitSegment {
    synthetic::video_init(Bytes::from_static(b"init"), 1280, 720)
}

pub(crate) fn segment(start_ticks: u64, frames: u32, keyframe: bool) -> MediaSegment {
    let payload = Bytes::from(vec![0; frames as usize * 10]);
    synthetic::video_segment(payload, start_ticks, frames, keyframe)
}

/// A push of `segment` arriving at `arrival`, unnamed, with a window no test reaches.
pub(crate) fn input(
    segment: MediaSegment,
    arrival: WallTime,
    account: &Arc<Account>,
) -> PushInput<'_> {
    PushInput {
        stream: StreamId(1),
        name: None,
        tables: dvrclip_fmp4::progressive::SegmentTables::new(&segment),
        segment,
        arrival,
        window_micros: i64::MAX / 4,
        account,
    }
}

/// A ring fed 1 s chunks; `keyframes[i]` says whether chunk i starts a GOP. Chunk i
/// starts at `t0 + i` seconds.
pub(crate) fn ring(keyframes: &[bool], t0: WallTime, offset_micros: i64) -> (Ring, Arc<Account>) {
    let ring = Ring::new(Arc::from("r"), 0);
    let account = Arc::new(Account::default());
    let _ = ring.push_init(init());
    let mut shared: Option<SharedAnchor> = None;
    for (i, kf) in keyframes.iter().enumerate() {
        let seg = segment(i as u64 * 30 * FRAME, 30, *kf);
        let inp = input(seg, t0.add_micros(offset_micros), &account);
        match ring.push(inp, &mut shared) {
            Ok(p) => assert!(matches!(p.outcome, PushOutcome::Stored { .. })),
            Err(e) => panic!("{e}"),
        }
    }
    (ring, account)
}
