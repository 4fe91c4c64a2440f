//! An archived clip's manifest (`dvrclip_server::archive::Manifest`, read back from
//! an object store) on any bytes: no panic, and whatever a manifest that parses
//! says, a link it answers names a range inside the object it names.
#![no_main]

use dvrclip_engine::{ClipId, StreamId};
use dvrclip_hls::MediaFile;
use dvrclip_server::archive::{ClipFile, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::parse(data) else { return };
    let Some(clip) = ClipId::parse("00112233445566778899aabbccddeeff") else { return };
    let stream = StreamId(m.stream_id);
    let _ = m.is_of(stream, clip);
    let _ = m.is_expired(m.expiration_utc());
    for p in &m.playlists {
        if let Some(f) = m.file(stream, clip, ClipFile::Playlist(&p.name)) {
            assert_eq!(f.range, 0..p.object.size);
        }
    }
    let _ = m.file(stream, clip, ClipFile::Mp4("master"));
    for r in &m.renditions {
        if let Some(f) = m.file(stream, clip, ClipFile::Mp4(&r.name)) {
            assert!(f.range.start <= f.range.end);
        }
        for i in 0..=r.segments.len().min(64) {
            let seg = m.file(stream, clip, ClipFile::Media(&r.name, MediaFile::Segment(i)));
            let init = m.file(stream, clip, ClipFile::Media(&r.name, MediaFile::Init(i)));
            for f in [seg, init].into_iter().flatten() {
                assert!(f.range.start <= f.range.end && f.range.end <= r.segments_size);
            }
        }
    }
});
