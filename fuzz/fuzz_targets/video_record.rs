//! A video's record (`dvrclip_server::vod::VideoRecord`, read back from the VOD
//! store; in a cluster's shared bucket, from another node's part of it) on any
//! bytes: no panic, and a record that parses is stored as it reads back.
#![no_main]

use dvrclip_server::vod::VideoRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = std::str::from_utf8(data) {
        let _ = VideoRecord::id_of_key(key);
    }
    let Ok(record) = VideoRecord::parse(data) else { return };
    let _ = record.to_json("http://h");
    let stored = record.to_stored_json("http://h").to_string();
    let back = VideoRecord::parse(stored.as_bytes()).expect("a stored record reads back");
    assert_eq!(back, record);
});
