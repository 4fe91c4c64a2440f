//! `dvrclip_hls::ingest::parse_ingest_playlist` and `parse_playlist` on arbitrary
//! bytes: what an encoder (or anyone holding an ingest key) uploads as `index.m3u8`,
//! and what an origin a stream pulls from serves (RFC 8216 §4).
//!
//! Besides never panicking: a media playlist's segments have a finite, non-negative
//! duration and a file name that is the URI's last path component with no `/`, `?`
//! or `#` (the engine looks chunks up by that name; a `../` in it must never reach a
//! lookup as anything but an unknown name); parsing is deterministic. The pull's view
//! agrees with the upload's, and its media sequence numbers count up by one from
//! `EXT-X-MEDIA-SEQUENCE` (saturating), so the puller's "fetch once" holds.
#![no_main]

use dvrclip_hls::ingest::{IngestPlaylist, Playlist, parse_ingest_playlist, parse_playlist};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first = parse_ingest_playlist(data);
    assert_eq!(first, parse_ingest_playlist(data), "not deterministic");
    let pulled = parse_playlist(data);
    assert_eq!(pulled.is_ok(), first.is_ok());
    if let Ok(Playlist::Media(m)) = &pulled {
        for (i, s) in m.segments.iter().enumerate() {
            assert_eq!(s.media_sequence, m.media_sequence.saturating_add(i as u64));
        }
        assert!(matches!(&first, Ok(IngestPlaylist::Media(segs)) if segs == &m.segments));
    }
    if let Ok(Playlist::Master(uris)) = &pulled {
        assert_eq!(first, Ok(IngestPlaylist::Master));
        assert!(uris.len() <= data.len());
    }
    let Ok(IngestPlaylist::Media(segments)) = first else { return };
    let text = std::str::from_utf8(data).expect("accepted, so UTF-8");
    for s in &segments {
        assert!(s.duration_secs.is_finite() && s.duration_secs >= 0.0);
        assert!(!s.file_name.contains(['/', '?', '#']), "{:?}", s.file_name);
        assert!(s.uri.ends_with(&s.file_name) || s.uri.contains(&s.file_name));
        assert!(text.contains(&s.uri));
        if let Some(t) = s.program_date_time {
            // Any date the scanner accepts renders back (no overflow in the engine's
            // wall-clock arithmetic later).
            let _ = t.to_rfc3339_millis();
        }
    }
});
