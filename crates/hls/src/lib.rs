//! HLS for dvrclip (RFC 8216): playlists for clips — the master playlist over every
//! rendition and one media playlist per rendition, VOD when complete, EVENT while
//! recording — the same for a stream's live DVR window, and the reading of playlists
//! encoders upload (their segment dates).
//!
//! Pure: no I/O, no HTTP. The server turns these strings into responses.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ingest;
pub mod live;
mod names;
pub mod playlist;

/// `Content-Type` of an HLS playlist (RFC 8216 §4).
pub const CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";

pub use live::{LiveFile, live_master_playlist, live_media_playlist};
pub use playlist::{MediaFile, PlaylistKind, master_playlist, media_dir, media_playlist};
