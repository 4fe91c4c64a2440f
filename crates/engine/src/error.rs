//! The engine's one error type.
//!
//! Every refusal the engine can give is a variant of [`Error`] carrying its context
//! (stream, rendition, field, the numbers compared). The server maps variants to HTTP
//! status codes in exactly one function; [`Error::field`] names the request field a
//! JSON error body should point at. Display text is for humans, not an API.

use crate::{StreamId, WallTime};

/// Why the engine refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No stream has this id (HTTP 404).
    #[error("stream {0} does not exist")]
    UnknownStream(StreamId),

    /// The stream has no rendition of this name (HTTP 404).
    #[error("stream {stream} has no rendition {rendition:?}")]
    UnknownRendition {
        /// The stream.
        stream: StreamId,
        /// The name asked for.
        rendition: String,
    },

    /// No live clip has this id: never made, expired, or its stream was deleted (404).
    #[error("no such clip")]
    UnknownClip,

    /// The clip was made, but its media did not survive a restart: it is reported,
    /// never served short (HTTP 410).
    #[error("clip {id}: {reason}")]
    ClipLost {
        /// The clip.
        id: crate::ClipId,
        /// Why.
        reason: String,
    },

    /// Clips need the DVR (HTTP 422).
    #[error("stream {0} has DVR disabled")]
    DvrDisabled(StreamId),

    /// `duration` is longer than the stream's `dvr_duration` (HTTP 400).
    #[error("duration {duration_secs} s exceeds the DVR duration {dvr_duration_secs} s")]
    DurationTooLong {
        /// Asked for.
        duration_secs: u64,
        /// The stream's limit.
        dvr_duration_secs: u32,
    },

    /// `duration` is 0 (HTTP 400).
    #[error("duration must be at least 1 s")]
    ZeroDuration,

    /// `start` is further in the future than a clip may wait for (HTTP 400).
    #[error("start {start} is more than {max_wait_secs} s in the future")]
    StartTooFarAhead {
        /// Asked for.
        start: WallTime,
        /// How far ahead a start may be.
        max_wait_secs: u32,
    },

    /// `expiration` is not within 1 min to 4 h after the later of the clip's end and
    /// now (HTTP 400).
    #[error(
        "expiration {expiration_unix_secs} is outside the allowed range [{min_unix_secs}, {max_unix_secs}]: 1 min to 4 h after the later of the clip's end and now"
    )]
    BadExpiration {
        /// Asked for, Unix seconds.
        expiration_unix_secs: i64,
        /// Earliest accepted, Unix seconds.
        min_unix_secs: i64,
        /// Latest accepted, Unix seconds.
        max_unix_secs: i64,
    },

    /// The whole requested range is in the past and the DVR holds nothing of it (422).
    #[error("stream {0} holds no media in the requested range")]
    NoMediaInRange(StreamId),

    /// Admitting this would push memory past the global budget (HTTP 503).
    #[error("memory budget exceeded: need {needed_bytes} bytes, {available_bytes} available")]
    OverBudget {
        /// Bytes the operation would add.
        needed_bytes: u64,
        /// Bytes left under the budget for it.
        available_bytes: u64,
    },

    /// No video id can be handed out now (a cluster's block spent while its store
    /// is away) (HTTP 503, with the reason).
    #[error("no video id available: {0}")]
    NoVideoId(String),

    /// The persistent store refused the payload (a full disk): nothing changed
    /// (HTTP 503, with the reason).
    #[error("storage refused the upload: {reason}")]
    Storage {
        /// Why, as the store put it.
        reason: String,
    },

    /// A stream setting is out of range (HTTP 400); `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidSetting {
        /// `name`, `dvr_duration`, …
        field: &'static str,
        /// Why.
        reason: &'static str,
    },

    /// A rendition or segment name outside the safe charset or too long (HTTP 400).
    #[error("invalid name {0:?}: 1-64 chars of [A-Za-z0-9._-], not starting with '.'")]
    InvalidName(String),

    /// The stream already has the maximum number of renditions (HTTP 400).
    #[error("stream {stream} already has {max} renditions")]
    TooManyRenditions {
        /// The stream.
        stream: StreamId,
        /// The limit.
        max: usize,
    },

    /// The stream already holds the maximum number of clips (HTTP 429); one frees a
    /// place when it expires or is deleted.
    #[error("stream {stream} already holds {max} clips; delete one or wait for one to expire")]
    TooManyClips {
        /// The stream.
        stream: StreamId,
        /// The limit.
        max: usize,
    },

    /// The stream is not `active`: ingest is refused (HTTP 403).
    #[error("stream {0} is not active")]
    StreamInactive(StreamId),

    /// A media segment arrived before any init segment of its rendition (HTTP 412).
    #[error("stream {stream} rendition {rendition:?} has no init segment")]
    NoInit {
        /// The stream.
        stream: StreamId,
        /// The rendition.
        rendition: String,
    },

    /// A media segment names a track its init segment lacks (HTTP 412).
    #[error("stream {stream} rendition {rendition:?}: track {track_id} is not in the init segment")]
    TrackMismatch {
        /// The stream.
        stream: StreamId,
        /// The rendition.
        rendition: String,
        /// The unknown track.
        track_id: u32,
    },

    /// A media segment without a single sample (HTTP 400).
    #[error("stream {stream} rendition {rendition:?}: segment has no samples")]
    EmptySegment {
        /// The stream.
        stream: StreamId,
        /// The rendition.
        rendition: String,
    },

    /// A segment whose timing cannot be placed: longer than an hour, or mapping
    /// outside years 1970-9999 (HTTP 400).
    #[error("stream {stream} rendition {rendition:?}: {reason}")]
    BadTiming {
        /// The stream.
        stream: StreamId,
        /// The rendition.
        rendition: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// An init segment without any track (HTTP 400).
    #[error("init segment has no track")]
    EmptyInit,

    /// The OS RNG failed to give an id (HTTP 500).
    #[error("the operating system's random number generator failed")]
    Entropy,

    /// An uploaded init or media segment does not parse (HTTP 400, or 412/415 by its
    /// kind: see [`dvrclip_fmp4::ErrorKind`]).
    #[error("stream {stream} rendition {rendition:?}: {source}")]
    Media {
        /// The stream.
        stream: StreamId,
        /// The rendition.
        rendition: String,
        /// The parser's error, with the box path and offset.
        source: dvrclip_fmp4::Error,
    },

    /// A state the engine's own invariants rule out: a bug, never the caller's fault
    /// (HTTP 500). `context` says where and what was found.
    #[error("internal error: {context}")]
    Internal {
        /// Where, and what was found.
        context: String,
    },
}

impl Error {
    /// The request field a JSON error body should name, when one is at fault.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::DurationTooLong { .. } | Error::ZeroDuration => Some("duration"),
            Error::StartTooFarAhead { .. } => Some("start"),
            Error::BadExpiration { .. } => Some("expiration"),
            Error::DvrDisabled(_) => Some("dvr_enabled"),
            Error::InvalidSetting { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
