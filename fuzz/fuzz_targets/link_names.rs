//! The names in links, on arbitrary input: `dvrclip_hls::MediaFile::parse` and
//! `dvrclip_hls::LiveFile::parse` (the files a clip's or a live rendition's playlist
//! lists) and `dvrclip_engine::ClipId::parse` (the clip in every clip link).
//!
//! Asserted: no parser panics; a name a parser accepts is exactly the name the server
//! writes for what it parsed to (one name per file, one link per clip); and what the
//! server writes, for numbers and ids taken from the input, parses back to itself.
//! The ranges are the parsers': clip indexes below 10^9 (a 4 h clip has 7,200
//! chunks), ring numbers below 10^19.
#![no_main]

use dvrclip_engine::ClipId;
use dvrclip_hls::{LiveFile, MediaFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(file) = MediaFile::parse(name) {
            assert_eq!(file.to_string(), name);
        }
        if let Some(file) = LiveFile::parse(name) {
            assert_eq!(file.to_string(), name);
        }
        if let Some(id) = ClipId::parse(name) {
            assert_eq!(id.to_string(), name);
        }
    }

    let mut word = [0u8; 8];
    let n = data.len().min(8);
    word[..n].copy_from_slice(&data[..n]);
    let n = u64::from_le_bytes(word);
    let index = (n % 1_000_000_000) as usize;
    for file in [MediaFile::Init(index), MediaFile::Segment(index)] {
        assert_eq!(MediaFile::parse(&file.to_string()), Some(file));
    }
    let number = n % 10_000_000_000_000_000_000;
    for file in [LiveFile::Init(number), LiveFile::Segment(number)] {
        assert_eq!(LiveFile::parse(&file.to_string()), Some(file));
    }

    let mut bits = [0u8; 16];
    let n = data.len().min(16);
    bits[..n].copy_from_slice(&data[..n]);
    let id = ClipId::parse(&dvrclip_engine::secret::hex(&bits)).expect("hex of 16 bytes");
    assert_eq!(id.as_bytes(), &bits);
    assert_eq!(ClipId::parse(&id.to_string()), Some(id));
});
