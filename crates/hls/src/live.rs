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

pub use crate::names::LiveFile;
use crate::playlist::{Numbering, render_master, render_media};

/// The master playlist over a stream's renditions; media playlists at `{name}.m3u8`.
pub fn live_master_playlist(renditions: &[ClipRendition]) -> String {
    render_master(renditions, |name| format!("{name}.m3u8"))
}

/// A rendition's live media playlist; its files under `{name}/`.
pub fn live_media_playlist(rendition: &ClipRendition) -> String {
    render_media(rendition.name(), rendition, Numbering::Live)
}
