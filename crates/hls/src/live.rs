//! The live DVR playlists of a stream: every rendition's whole ring as a sliding
//! media playlist (RFC 8216 §6.2.2), and a master over them — what the stream's
//! `hls_cmaf_url` serves, so an operator can watch the stream and pick clip points.
//!
//! The writers are the clips' ([`crate::playlist`]) over a snapshot of the rings
//! ([`dvrclip_engine::Engine::live_renditions`]); only the numbering differs. A
//! segment is `{rendition}/{seq}.m4s` by the chunk's ring `seq`, an init
//! `{rendition}/init_{d}.mp4` by its discontinuity number: both stay with a chunk as
//! the window slides, and `EXT-X-MEDIA-SEQUENCE` / `EXT-X-DISCONTINUITY-SEQUENCE` are
//! the first chunk's numbers. No `EXT-X-PLAYLIST-TYPE`: old chunks leave the window.

use dvrclip_engine::ClipRendition;

use crate::playlist::{Numbering, decimal, init_number, render_master, render_media};

/// The master playlist over a stream's renditions; media playlists at `{name}.m3u8`.
pub fn live_master_playlist(renditions: &[ClipRendition]) -> String {
    render_master(renditions, |name| format!("{name}.m3u8"))
}

/// A rendition's live media playlist; its files under `{name}/`.
pub fn live_media_playlist(rendition: &ClipRendition) -> String {
    render_media(rendition.name(), rendition, Numbering::Live)
}

/// What a file of a live rendition directory names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveFile {
    /// `init_{d}.mp4`: the init of discontinuity `d`.
    Init(u64),
    /// `{seq}.m4s`: the chunk `seq`.
    Segment(u64),
}

impl LiveFile {
    /// Parses a file name of a live rendition directory.
    pub fn parse(file: &str) -> Option<LiveFile> {
        if let Some(d) = init_number(file) {
            return decimal(d, 19).map(LiveFile::Init);
        }
        decimal(file.strip_suffix(".m4s")?, 19).map(LiveFile::Segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_file_names() {
        assert_eq!(LiveFile::parse("12.m4s"), Some(LiveFile::Segment(12)));
        assert_eq!(LiveFile::parse("init_3.mp4"), Some(LiveFile::Init(3)));
        for bad in [
            ".m4s",
            "-1.m4s",
            "1.mp4",
            "init_.mp4",
            "seg_1.m4s",
            "99999999999999999999.m4s",
        ] {
            assert_eq!(LiveFile::parse(bad), None, "{bad}");
        }
    }
}
