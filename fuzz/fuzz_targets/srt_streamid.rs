//! What an SRT caller's `streamid` names (`dvrclip_ingest::srt::ingest_key`), fed any
//! string a hostile caller can send (up to SRT's 512-byte stream id, and past it).
//!
//! Asserted: nothing panics; a key found is non-empty and a part of the input, so a
//! refusal or a key is all that comes out.
#![no_main]

use dvrclip_ingest::srt::ingest_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let streamid = String::from_utf8_lossy(data);
    if let Ok(key) = ingest_key(&streamid) {
        assert!(!key.is_empty());
        assert!(streamid.contains(key));
    }
});
