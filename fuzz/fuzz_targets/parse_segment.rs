//! `parse_segment` on arbitrary bytes against a real init segment (ffmpeg's H.264 +
//! AAC, track ids 1 and 2, from `tests/fixtures/h264_aac`). Besides never panicking,
//! a parsed segment must keep its promises: known tracks, every sample inside one `mdat`.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use dvrclip_fmp4::{InitSegment, parse_init, parse_segment};
use libfuzzer_sys::fuzz_target;

static INIT: LazyLock<InitSegment> = LazyLock::new(|| {
    let init = include_bytes!("../../tests/fixtures/h264_aac/init.mp4");
    parse_init(Bytes::from_static(init)).expect("fixture init parses")
});

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(seg) = parse_segment(bytes, &INIT) else { return };
    for m in &seg.mdat_ranges {
        assert!(m.start <= m.end && m.end as usize <= data.len());
    }
    for t in &seg.tracks {
        assert!(INIT.track(t.track_id).is_some());
        for s in &t.samples {
            let r = s.range();
            assert!(
                seg.mdat_ranges.iter().any(|m| m.start as usize <= r.start && r.end <= m.end as usize),
                "sample outside every mdat"
            );
        }
    }
});
