//! An archived clip's manifest (`dvrclip_server::archive::Manifest`, read back from
//! an object store) on any bytes: no panic, and whatever a manifest that parses
//! says, a link it answers names bytes inside the objects it names: a range inside
//! its object, or (an MP4 stored once, format 2) reads that each lie inside the head
//! object or the segments file as the manifest sizes them, and that together hand on
//! exactly the MP4's bytes asked for.
#![no_main]

use bytes::Bytes;
use dvrclip_engine::{ClipId, StreamId};
use dvrclip_hls::MediaFile;
use dvrclip_server::archive::layout::{Cursor, Source};
use dvrclip_server::archive::manifest::ArchivedRendition;
use dvrclip_server::archive::{ClipFile, Manifest, Mp4Layout, StoredBytes};
use libfuzzer_sys::fuzz_target;

/// Reads planned per walk at most, and the largest read fed through a cursor.
const MAX_READS: usize = 4096;
const MAX_FED: u64 = 1 << 16;

/// Walks the reads serving MP4 bytes `from..to` of `layout` (stored for `r`).
fn walk(layout: &Mp4Layout, r: &ArchivedRendition, from: u64, to: u64) {
    let mut pos = from;
    for _ in 0..MAX_READS {
        let Some(read) = layout.read(pos, to) else {
            break;
        };
        assert_eq!(read.mp4.start, pos);
        assert!(pos < read.mp4.end && read.mp4.end <= to);
        let size = match read.source {
            Source::Head => layout.head_size(),
            Source::Segments => r.segments_size,
        };
        assert!(read.range.start < read.range.end && read.range.end <= size);
        let (want, object_len) = (read.mp4.end - pos, read.range.end - read.range.start);
        assert!(want <= object_len);
        pos = read.mp4.end;
        if object_len <= MAX_FED {
            // Fed the read's bytes in pieces: exactly the MP4's bytes come out.
            let mut cursor = Cursor::new(read);
            let mut out = 0u64;
            let zeros = Bytes::from(vec![0u8; object_len as usize]);
            let mut at = 0;
            while at < zeros.len() {
                let mut arrived = zeros.slice(at..(at + 977).min(zeros.len()));
                at += arrived.len();
                while let Some(b) = cursor.take(layout, &mut arrived).expect("a planned read") {
                    out += b.len() as u64;
                }
            }
            assert!(cursor.is_done() && out == want);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::parse(data) else { return };
    let Some(clip) = ClipId::parse("00112233445566778899aabbccddeeff") else {
        return;
    };
    let stream = StreamId(m.stream_id);
    let _ = m.is_of(stream, clip);
    let _ = m.is_expired(m.expiration_utc());
    for p in &m.playlists {
        if let Some(f) = m.file(stream, clip, ClipFile::Playlist(&p.name)) {
            assert_eq!(f.len(), p.object.size);
        }
    }
    let _ = m.file(stream, clip, ClipFile::Mp4("master"));
    for r in &m.renditions {
        if let Some(f) = m.file(stream, clip, ClipFile::Mp4(&r.name)) {
            assert_eq!(Some(f.len()), r.mp4.as_ref().map(|o| o.size));
            match &f.bytes {
                StoredBytes::Range { range, .. } => assert!(range.start <= range.end),
                StoredBytes::Split { layout, .. } => {
                    assert!(layout.segments_end() <= r.segments_size);
                    let len = layout.len();
                    walk(layout, r, 0, len);
                    walk(layout, r, len / 3, len - len / 3);
                    for s in layout.spans().iter().take(16) {
                        walk(layout, r, s.at + s.len / 2, len);
                    }
                }
            }
        }
        for i in 0..=r.segments.len().min(64) {
            let seg = m.file(
                stream,
                clip,
                ClipFile::Media(&r.name, MediaFile::Segment(i)),
            );
            let init = m.file(stream, clip, ClipFile::Media(&r.name, MediaFile::Init(i)));
            for f in [seg, init].into_iter().flatten() {
                let StoredBytes::Range { range, .. } = f.bytes else {
                    panic!("an init or a segment is a range of the segments file");
                };
                assert!(range.start <= range.end && range.end <= r.segments_size);
            }
        }
    }
});
