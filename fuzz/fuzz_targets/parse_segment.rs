//! `parse_segment` on arbitrary bytes. The first byte picks the init segment:
//! - below 0x80: one of ffmpeg's real inits from `tests/fixtures` (by index), the rest
//!   of the input is the segment;
//! - 0x80 and up: a 16-bit big-endian length `n` follows, then `n` bytes parsed with
//!   `parse_init` (fuzzed too: odd `trex` defaults, track ids), then the segment.
//!
//! Besides never panicking, a parsed segment must keep its promises: every track is
//! in the init, every sample lies inside one `mdat`, every `mdat` inside the input.
//! `decode_time_fields` walks the same bytes: its spans lie inside the input and read
//! back as the value it reports, and a segment that parses has one per `tfdt` track.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use dvrclip_fmp4::{InitSegment, decode_time_fields, parse_init, parse_segment};
use libfuzzer_sys::fuzz_target;

static INITS: LazyLock<Vec<InitSegment>> = LazyLock::new(|| {
    let f = |b: &'static [u8]| parse_init(Bytes::from_static(b)).expect("fixture init parses");
    vec![
        f(include_bytes!("../../tests/fixtures/h264_aac/init.mp4")),
        f(include_bytes!("../../tests/fixtures/audio_only/init.mp4")),
        f(include_bytes!("../../tests/fixtures/hevc/init.mp4")),
        f(include_bytes!("../../tests/fixtures/chunked/video/init-stream0.m4s")),
        f(include_bytes!("../../tests/fixtures/av1_opus/init.mp4")),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let owned;
    let (init, seg) = if pick < 0x80 {
        (&INITS[usize::from(pick) % INITS.len()], rest)
    } else {
        let Some((len, rest)) = rest.split_first_chunk::<2>() else { return };
        let n = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let Ok(init) = parse_init(Bytes::copy_from_slice(&rest[..n])) else { return };
        owned = init;
        (&owned, &rest[n..])
    };
    if let Ok(fields) = decode_time_fields(seg) {
        for f in &fields {
            let bytes = &seg[f.span.clone()];
            let read = bytes.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
            assert!(matches!(bytes.len(), 4 | 8) && read == f.ticks);
        }
    }
    let Ok(parsed) = parse_segment(Bytes::copy_from_slice(seg), init) else { return };
    for m in &parsed.mdat_ranges {
        assert!(m.start <= m.end && m.end as usize <= seg.len());
    }
    for t in &parsed.tracks {
        assert!(init.track(t.track_id).is_some());
        for s in &t.samples {
            let r = s.range();
            assert!(
                parsed.mdat_ranges.iter().any(|m| m.start as usize <= r.start && r.end <= m.end as usize),
                "sample outside every mdat"
            );
        }
    }
});
