//! `parse_init` on arbitrary bytes: an `Err` is fine, a panic, a hang or an
//! allocation beyond libFuzzer's `-malloc_limit_mb` is a bug.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(init) = dvrclip_fmp4::parse_init(bytes) {
        for t in &init.tracks {
            // What a parsed init promises its consumers.
            assert!(t.timescale > 0);
            assert!(t.track_id > 0);
            assert!(t.entry.stsd.len() >= 16);
            assert!(!t.entry.codec.is_empty());
        }
    }
});
