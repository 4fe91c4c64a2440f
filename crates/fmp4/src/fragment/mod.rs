//! A CMAF fragmenter: elementary-stream samples in (H.264, HEVC, AAC, Opus, as an RTMP,
//! SRT or MPEG-TS door hands them over), fragmented MP4 out: one init segment, then one
//! `moof`+`mdat` per keyframe-started interval, the shape every other door already
//! uploads, so `parse_init`/`parse_segment` and the engine take it unchanged.
//!
//! Owns where fragments are cut, the sample durations and flags, and the bytes of the
//! init and of each fragment. Must hold no I/O, no clock and no protocol: a door turns
//! its packets into [`InputSample`]s (length-prefixed NAL units, raw AAC frames, Opus
//! packets; decode times unwrapped to 64 bits) and ships what comes out.
//!
//! # Specs
//! - ISO/IEC 14496-12 §8.8 (movie fragments): `mvex`/`trex` (§8.8.1–8.8.3) in the init;
//!   per fragment `mfhd` (§8.8.5), one `traf` per track present with `tfhd` (§8.8.7,
//!   `default-base-is-moof`, no other defaults), `tfdt` (§8.8.12, always version 1:
//!   64-bit decode times) and one `trun` (§8.8.8) carrying every sample's duration,
//!   size, flags and, when any is non-zero, composition offset (version 1, signed,
//!   when one is negative); then one `mdat` (§8.1.1).
//! - ISO/IEC 23000-19 (CMAF): `tfdt` in every `traf`, `default-base-is-moof`, a
//!   `trun` `data_offset`, sample entries `avc1`/`hvc1` (parameter sets in the record),
//!   an empty-table `moov`. A CMAF track holds one track; muxed output (video and
//!   audio in one `moof`, as ffmpeg's HLS muxer writes by default and RFC 8216 §3.3
//!   allows) is therefore fMP4 in CMAF's shape, and the `cmfc` brand is declared only
//!   for a single track.
//! - ISO/IEC 14496-15 §5.3.3 (`avcC`) and §8.3.3 (`hvcC`): checked whole by
//!   `params` (as an uploaded init's are) and carried verbatim; the picture size is
//!   the first SPS's; their NAL length size frames every video sample, which is
//!   checked.
//! - ISO/IEC 14496-3 §1.6.2.1 (`AudioSpecificConfig`) inside ISO/IEC 14496-1 §7.2.6
//!   descriptors (`esds`); Opus in ISOBMFF §4.3 (`Opus`, `dOps`), from RFC 7845 §5.1's
//!   ID header if that is what the source carries.
//!
//! # Cutting
//! The reference track is the first video track. A fragment is cut before a keyframe
//! of it whose decode time is at least [`Options::target_duration`] past the
//! fragment's first sample of that track, as ffmpeg's `-movflags
//! frag_keyframe+empty_moov+default_base_moof` with `-min_frag_duration` does. Other
//! tracks' samples go to the fragment open when they arrive, so audio is muxed by
//! arrival as ffmpeg does (a door feeds samples in decode order across tracks). With no
//! video track the first track is cut on the target alone, at any sample.
//!
//! A fragment that never sees a keyframe is bounded: it is also cut before a sample
//! that would put any track [`Options::max_duration`] (default 10× the target) past
//! its first sample in the fragment, or the fragment past [`Options::max_bytes`]
//! (default 32 MiB, below the 50 MiB upload cap of ref/api.md so a cut fragment is
//! always admitted as a chunk). The next fragment then starts without a keyframe, as a
//! long-GOP upload's chunks do; [`Fragment::ended_by`] says why each one ended.
//!
//! # Durations
//! A sample's duration is the next sample's decode time minus its own, so the last
//! sample of each track in a fragment waits for that track's next sample: a cut
//! fragment is held until every track in it has one more sample (usually one audio
//! frame later), at most until the next cut, when a track that stopped gets its
//! previous duration repeated, as does every track at [`Fragmenter::flush`]. A track
//! that only ever had one sample gets one frame's worth (1024 AAC samples, 20 ms of
//! Opus, 1/30 s of video). Decode times must strictly increase per track: a sample
//! that goes back (or stays) is refused with [`FragmentError::NotIncreasing`], and a
//! refused sample leaves the fragmenter exactly as it was.
//!
//! # Memory and copies
//! What is held is at most two fragments' samples (the one waiting for durations and
//! the open one), each bounded by `max_bytes`, which counts every sample's payload
//! and its bookkeeping. No media byte is copied: a [`Fragment`] is a list of `Bytes`,
//! the `moof`+`mdat` header followed by the samples' own `Bytes`. A door that needs
//! one contiguous buffer (the engine parses a segment from one `Bytes`) copies once,
//! into the buffer it keeps — the one copy HTTP ingest also makes from socket to
//! mapping — rather than here into a buffer and again into its home.
//! [`Fragment::to_bytes`] does that copy for callers with nowhere better to put it.
//!
//! Files: `input` (what a door hands in), `init` (sample entries and the init
//! segment), `moof` (one fragment's bytes), `fragmenter` (cutting and durations).
//! Proof: `tests.rs` (box fields against the spec), `tests/fragment.rs` (proptest round
//! trip through our parser; ffmpeg fixtures re-fragmented and checked by ffprobe), and
//! `fuzz/fuzz_targets/fragment.rs`.

mod fragmenter;
mod init;
mod input;
mod moof;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use fragmenter::Fragmenter;
pub use input::{CodecConfig, InputSample, LANGUAGE_UNDETERMINED, TrackConfig};
pub use moof::{Fragment, FragmentTrack};

/// At most this many tracks per fragmenter (a rendition carries a few).
pub const MAX_TRACKS: usize = 64;

/// Decode times above this are refused: with a 32-bit duration and composition
/// offset added, every derived time still fits an `i64` (at 90 kHz it is over a
/// million years).
pub const MAX_DECODE_TICKS: u64 = 1 << 62;

/// Bounds on [`Options::max_bytes`]: a few samples at least; at most what keeps every
/// `trun` `data_offset` (a signed 32-bit field) and box size in range.
pub const MAX_BYTES_RANGE: std::ops::RangeInclusive<usize> = 4096..=1 << 30;

/// Where fragments are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Cut at the first reference keyframe at or past this much time into the
    /// fragment. Default 2 s.
    pub target_duration: Duration,
    /// Cut before any track's sample this far into the fragment, keyframe or not.
    /// At least `target_duration`. Default 20 s (10× the default target).
    pub max_duration: Duration,
    /// Cut before a sample that would take the fragment's payload and bookkeeping
    /// past this many bytes; a single sample larger than that is refused. Within
    /// [`MAX_BYTES_RANGE`]. Default 32 MiB.
    pub max_bytes: usize,
}

impl Options {
    /// `target` with the default caps scaled to it: 10× the target, 32 MiB.
    pub fn with_target(target: Duration) -> Self {
        Options {
            target_duration: target,
            max_duration: target.saturating_mul(10),
            max_bytes: 32 << 20,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::with_target(Duration::from_secs(2))
    }
}

/// Why a fragment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CutReason {
    /// A reference keyframe at or past the target: the next fragment starts with it.
    Keyframe,
    /// No video track: the first track passed the target.
    Target,
    /// A track would have passed [`Options::max_duration`] (no keyframe came).
    MaxDuration,
    /// The fragment would have passed [`Options::max_bytes`].
    MaxBytes,
    /// [`Fragmenter::flush`].
    Flush,
}

/// Why the fragmenter refused a configuration or a sample. Display text is for
/// humans; `track` is the index into the tracks given to [`Fragmenter::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// [`Fragmenter::new`] was given no track.
    #[error("no tracks")]
    NoTracks,
    /// More than [`MAX_TRACKS`].
    #[error("{0} tracks, at most {MAX_TRACKS}")]
    TooManyTracks(usize),
    /// [`Options`] out of their bounds.
    #[error("options: {0}")]
    BadOptions(&'static str),
    /// A track's configuration cannot be written as a valid sample entry.
    #[error("track {track}: {reason}")]
    BadConfig {
        /// Index of the track.
        track: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An Opus ID header (RFC 7845 §5.1) that is not one.
    #[error("Opus ID header: {0}")]
    BadOpusHeader(&'static str),
    /// A sample names a track the fragmenter does not have.
    #[error("sample for track {track}, which does not exist")]
    UnknownTrack {
        /// As given.
        track: usize,
    },
    /// A decode time not after the track's previous one.
    #[error("track {track}: decode time {decode_ticks} not after {previous_ticks}")]
    NotIncreasing {
        /// Index of the track.
        track: usize,
        /// The previous sample's decode time, ticks.
        previous_ticks: u64,
        /// The refused sample's decode time, ticks.
        decode_ticks: u64,
    },
    /// The gap to the previous sample does not fit a 32-bit duration.
    #[error("track {track}: decode time {decode_ticks} is over 2^32 ticks after {previous_ticks}")]
    GapTooLong {
        /// Index of the track.
        track: usize,
        /// The previous sample's decode time, ticks.
        previous_ticks: u64,
        /// The refused sample's decode time, ticks.
        decode_ticks: u64,
    },
    /// A decode time above [`MAX_DECODE_TICKS`].
    #[error("track {track}: decode time {decode_ticks} above 2^62")]
    DecodeTimeTooLarge {
        /// Index of the track.
        track: usize,
        /// The refused sample's decode time, ticks.
        decode_ticks: u64,
    },
    /// A sample with no bytes.
    #[error("track {track}: empty sample at {decode_ticks}")]
    EmptySample {
        /// Index of the track.
        track: usize,
        /// Its decode time, ticks.
        decode_ticks: u64,
    },
    /// A sample that alone passes [`Options::max_bytes`].
    #[error(
        "track {track}: sample at {decode_ticks} of {size} bytes passes the {max_bytes}-byte fragment cap"
    )]
    SampleTooLarge {
        /// Index of the track.
        track: usize,
        /// Its decode time, ticks.
        decode_ticks: u64,
        /// Its size, bytes.
        size: usize,
        /// [`Options::max_bytes`].
        max_bytes: usize,
    },
    /// A video sample whose NAL unit lengths do not tile it exactly (ISO/IEC 14496-15
    /// §5.3.2: each NAL unit is prefixed by its length in the record's size).
    #[error(
        "track {track}: sample at {decode_ticks}: NAL unit length at byte {at} runs past the sample"
    )]
    BadNalUnits {
        /// Index of the track.
        track: usize,
        /// Its decode time, ticks.
        decode_ticks: u64,
        /// Offset of the offending length field in the sample.
        at: usize,
    },
    /// A box would pass 4 GiB. Unreachable within [`MAX_BYTES_RANGE`].
    #[error("a box passes 4 GiB")]
    TooLarge,
}

impl From<crate::writer::TooLarge> for FragmentError {
    fn from(_: crate::writer::TooLarge) -> Self {
        FragmentError::TooLarge
    }
}
