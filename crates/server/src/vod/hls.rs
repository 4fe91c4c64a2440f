//! The HLS form of a stored video: the reference rendition's chunks as one fMP4 file
//! (its init segment, then its segments; the new init again after an encoder
//! restart) and a VOD media playlist that addresses it by byte ranges (RFC 8216
//! §4.3.2.2 `EXT-X-BYTERANGE`, §4.3.2.5 `EXT-X-MAP` with `BYTERANGE`).
//!
//! The file is the chunks' own `Bytes` in order: nothing is copied or rewritten, so
//! a player sees exactly what the live clip's playlist served. Rendering only; the
//! store writes and serves it. The clip archive keeps the same file per rendition
//! and serves each `init_{n}.mp4` and `seg_{i}.m4s` as a range of it (`inits`,
//! `segments`).

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{ClipRendition, InitSegment};

/// One rendition as a single fMP4 file and the playlist over it.
#[derive(Debug, Clone)]
pub struct SingleFile {
    /// The file's bytes in order.
    pub pieces: Vec<Bytes>,
    /// Their total length.
    pub len: u64,
    /// The media playlist; segments name the file as `uri`.
    pub playlist: String,
    /// Where each distinct init lies in the file, in clip order: the clip link's
    /// `init_{n}.mp4` is entry n.
    pub inits: Vec<Range<u64>>,
    /// Where each chunk lies in the file: the clip link's `seg_{i}.m4s` is entry i.
    pub segments: Vec<Range<u64>>,
}

/// Lays out rendition `r` as one file named `uri` in its playlist (a URI relative
/// to the playlist's own).
pub fn single_file(r: &ClipRendition, uri: &str) -> SingleFile {
    let mut pieces = Vec::with_capacity(r.chunks().len() + 1);
    let mut inits = Vec::new();
    let mut segments = Vec::with_capacity(r.chunks().len());
    let mut off = 0u64;
    let mut text = String::new();
    // Version 7 as ffmpeg writes fMP4 playlists; EXT-X-MAP in a playlist without
    // EXT-X-I-FRAMES-ONLY needs at least 6 (RFC 8216 §7).
    let _ = write!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        r.target_duration_secs()
    );
    let mut last_init: Option<&Arc<InitSegment>> = None;
    for (i, chunk) in r.chunks().iter().enumerate() {
        let new_init = last_init.is_none_or(|p| !Arc::ptr_eq(p, chunk.init()));
        let discontinuity = i > 0 && (new_init || r.discontinuity_before(i));
        if discontinuity {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if new_init {
            let init = &chunk.init().bytes;
            let _ = writeln!(
                text,
                "#EXT-X-MAP:URI=\"{uri}\",BYTERANGE=\"{}@{off}\"",
                init.len()
            );
            inits.push(off..off + init.len() as u64);
            off += init.len() as u64;
            pieces.push(init.clone());
            last_init = Some(chunk.init());
        }
        if i == 0 || discontinuity {
            let _ = writeln!(
                text,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                chunk.start_utc().to_rfc3339_millis()
            );
        }
        let bytes = chunk.bytes();
        let _ = write!(
            text,
            "#EXTINF:{:.6},\n#EXT-X-BYTERANGE:{}@{off}\n{uri}\n",
            chunk.duration_secs(),
            bytes.len()
        );
        segments.push(off..off + bytes.len() as u64);
        off += bytes.len() as u64;
        pieces.push(bytes.clone());
    }
    text.push_str("#EXT-X-ENDLIST\n");
    SingleFile {
        pieces,
        len: off,
        playlist: text,
        inits,
        segments,
    }
}
