//! `--demo`: a built-in live stream so a newcomer can cut a clip within a minute,
//! with no encoder and no ffmpeg.
//!
//! It loops the committed 8 s, 3-rendition ladder fixture (`tests/fixtures/ladder`,
//! made by ffmpeg; see its README) in real time through the same ingest path an
//! encoder uses. Each loop shifts every fragment's `tfdt` forward by the loop's
//! video duration, converted to each track's timescale, so media time keeps growing
//! and the DVR sees one continuous stream rather than a restart every 8 s. The audio
//! of a loop is a few milliseconds longer than its video (AAC frames do not divide
//! 8 s); players absorb that overlap at each loop boundary.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::{info, warn};

use dvrclip_engine::{Engine, StreamSettings};
use dvrclip_ingest::Upload;

use crate::http::payload;

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/ladder/",
            $path
        )) as &[u8]
    };
}

/// One rendition of the embedded ladder: name, init, segments.
struct DemoRendition {
    name: &'static str,
    init: &'static [u8],
    segments: [&'static [u8]; 4],
}

const LADDER: [DemoRendition; 3] = [
    DemoRendition {
        name: "media_3_240",
        init: fixture!("media_3_240/init_0.mp4"),
        segments: [
            fixture!("media_3_240/seg_00000.m4s"),
            fixture!("media_3_240/seg_00001.m4s"),
            fixture!("media_3_240/seg_00002.m4s"),
            fixture!("media_3_240/seg_00003.m4s"),
        ],
    },
    DemoRendition {
        name: "media_2_180",
        init: fixture!("media_2_180/init_1.mp4"),
        segments: [
            fixture!("media_2_180/seg_00000.m4s"),
            fixture!("media_2_180/seg_00001.m4s"),
            fixture!("media_2_180/seg_00002.m4s"),
            fixture!("media_2_180/seg_00003.m4s"),
        ],
    },
    DemoRendition {
        name: "media_1_144",
        init: fixture!("media_1_144/init_2.mp4"),
        segments: [
            fixture!("media_1_144/seg_00000.m4s"),
            fixture!("media_1_144/seg_00001.m4s"),
            fixture!("media_1_144/seg_00002.m4s"),
            fixture!("media_1_144/seg_00003.m4s"),
        ],
    },
];

/// Segment length of the fixture, seconds.
const SEGMENT_SECS: u64 = 2;

/// Per rendition, the amount each track's `tfdt` grows per loop, in its own ticks.
fn loop_shifts(r: &DemoRendition) -> Result<HashMap<u32, u64>, dvrclip_fmp4::Error> {
    let init = dvrclip_fmp4::parse_init(Bytes::from_static(r.init))?;
    let (mut video_start, mut video_end) = (u64::MAX, 0u64);
    let video = init.video_track().map(|t| (t.track_id, t.timescale));
    for seg in r.segments {
        let parsed = dvrclip_fmp4::parse_segment(Bytes::from_static(seg), &init)?;
        if let Some(t) = video.and_then(|(id, _)| parsed.track(id)) {
            video_start = video_start.min(t.base_decode_ticks);
            video_end = video_end.max(t.end_decode_ticks());
        }
    }
    let (_, video_scale) = video.unwrap_or((0, 1));
    let loop_ticks = u128::from(video_end.saturating_sub(video_start));
    Ok(init
        .tracks
        .iter()
        .map(|t| {
            let ticks = loop_ticks * u128::from(t.timescale) / u128::from(video_scale.max(1));
            (t.track_id, ticks as u64)
        })
        .collect())
}

/// Creates the stream `demo` (or takes the one a spool restored) and feeds it until
/// the task is dropped.
pub async fn run(engine: Arc<Engine>) {
    let restored = engine.streams().into_iter().find(|s| s.name == "demo");
    let created = restored.map_or_else(|| engine.create_stream(StreamSettings::named("demo")), Ok);
    let key = match created {
        Ok(info) => info.ingest_key,
        Err(e) => {
            warn!("demo stream not created: {e}");
            return;
        }
    };
    let mut shifts = Vec::new();
    for r in &LADDER {
        match loop_shifts(r) {
            Ok(s) => shifts.push(s),
            Err(e) => {
                warn!("demo fixture unreadable: {e}");
                return;
            }
        }
    }
    // Through the same door an encoder's uploads take.
    let upload = |rendition: &str, file: &str, body| {
        Upload::resolve(&engine, &key, Some(rendition), file).and_then(|u| u.store(&engine, body))
    };
    for r in &LADDER {
        if let Err(e) = upload(r.name, "init.mp4", Bytes::from_static(r.init)) {
            warn!("demo init refused: {e}");
            return;
        }
    }
    info!("demo stream live");
    let mut tick = tokio::time::interval(Duration::from_secs(SEGMENT_SECS));
    for n in 0u64.. {
        tick.tick().await;
        let (lap, index) = (n / 4, (n % 4) as usize);
        let file = format!("seg_{n:05}.m4s");
        for (r, shift) in LADDER.iter().zip(&shifts) {
            // Placed like an uploaded segment (its own mapping), so the demo's DVR
            // churns memory the way a pushed stream's does.
            let body = payload::keep(shift_decode_times(r.segments[index], |track| {
                shift.get(&track).map_or(0, |s| s * lap)
            }));
            if let Err(e) = upload(r.name, &file, body) {
                warn!("demo segment refused: {e}");
            }
        }
    }
}

/// A copy of `segment` with every `moof/traf/tfdt` moved forward by `shift(track_id)`
/// ticks. Boxes it cannot read are left as they are (the fixture is ours and valid).
fn shift_decode_times(segment: &[u8], shift: impl Fn(u32) -> u64) -> Vec<u8> {
    let mut out = segment.to_vec();
    for (moof_start, moof_end) in children(&out, 0, out.len(), b"moof") {
        for (traf_start, traf_end) in children(&out, moof_start + 8, moof_end, b"traf") {
            let track = children(&out, traf_start + 8, traf_end, b"tfhd")
                .first()
                .and_then(|&(s, _)| out.get(s + 12..s + 16))
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let Some(track) = track else { continue };
            for (s, _) in children(&out, traf_start + 8, traf_end, b"tfdt") {
                let delta = shift(track);
                match out.get(s + 8) {
                    Some(1) if s + 20 <= out.len() => {
                        let mut v = [0u8; 8];
                        v.copy_from_slice(&out[s + 12..s + 20]);
                        let t = u64::from_be_bytes(v).wrapping_add(delta);
                        out[s + 12..s + 20].copy_from_slice(&t.to_be_bytes());
                    }
                    Some(0) if s + 16 <= out.len() => {
                        let mut v = [0u8; 4];
                        v.copy_from_slice(&out[s + 12..s + 16]);
                        let t = u32::from_be_bytes(v).wrapping_add(delta as u32);
                        out[s + 12..s + 16].copy_from_slice(&t.to_be_bytes());
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// `(start, end)` of each child box of type `kind` in `buf[from..to]` (32-bit sizes;
/// the fixture has no other).
fn children(buf: &[u8], from: usize, to: usize, kind: &[u8; 4]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut at = from;
    while at + 8 <= to {
        let size = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if size < 8 || at + size > to {
            break;
        }
        if &buf[at + 4..at + 8] == kind {
            found.push((at, at + size));
        }
        at += size;
    }
    found
}

/// For tests of other rooms: the init of the ladder's first rendition and its
/// `n`th 2 s segment of an endless loop (media time growing as in [`run`]).
#[cfg(test)]
pub(crate) fn looped_segment(n: u64) -> (Bytes, Bytes) {
    let r = &LADDER[0];
    let shifts = loop_shifts(r).unwrap_or_default();
    let (lap, index) = (n / 4, (n % 4) as usize);
    let body = shift_decode_times(r.segments[index], |track| {
        shifts.get(&track).map_or(0, |s| s * lap)
    });
    (Bytes::from_static(r.init), Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_segments_parse_with_later_times() {
        let r = &LADDER[0];
        let init = dvrclip_fmp4::parse_init(Bytes::from_static(r.init)).unwrap();
        let shifts = loop_shifts(r).unwrap();
        let before = dvrclip_fmp4::parse_segment(Bytes::from_static(r.segments[0]), &init).unwrap();
        let moved = shift_decode_times(r.segments[0], |t| shifts[&t] * 2);
        let after = dvrclip_fmp4::parse_segment(Bytes::from(moved), &init).unwrap();
        for (b, a) in before.tracks.iter().zip(&after.tracks) {
            assert_eq!(
                a.base_decode_ticks,
                b.base_decode_ticks + shifts[&b.track_id] * 2
            );
            assert_eq!(a.samples.len(), b.samples.len());
        }
        // A lap lasts the 8 s of video, in every track's own timescale.
        let v = init.video_track().unwrap();
        assert_eq!(shifts[&v.track_id], 8 * u64::from(v.timescale));
    }
}
