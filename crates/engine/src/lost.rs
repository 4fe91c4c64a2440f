//! Clips whose media was lost at a restore ([`crate::Engine::restore`]): a chunk
//! one of them held did not come back (its payload failed its checksum, its file was
//! gone). Such a clip is never served short, and never silently turned into "no
//! such clip" either: it is kept as a record without media until its expiration, so
//! the API reports it (`state: lost`, with the reason) and its links answer
//! [`crate::Error::ClipLost`] rather than 404. Owns [`LostClip`] only; the engine
//! keeps them beside its clips and expires or deletes them with the same calls.

use crate::{ClipId, ClipRequest, StreamId, WallTime};

/// Why a restored clip is lost, as the API reports it.
pub const MEDIA_LOST: &str =
    "media lost at a restart: a chunk this clip held did not survive (never served short)";

/// A clip that was made, whose media did not survive a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostClip {
    /// Its id, as handed out.
    pub id: ClipId,
    /// Its stream.
    pub stream: StreamId,
    /// The request as received.
    pub request: ClipRequest,
    /// Requested start.
    pub start: WallTime,
    /// When it disappears.
    pub expiration: WallTime,
    /// When it was made.
    pub created_at: WallTime,
    /// Its video, when `vod_required`.
    pub video_id: Option<u64>,
    /// Its renditions' names, as when it was cut.
    pub renditions: Vec<String>,
    /// Why it is lost.
    pub reason: String,
}
