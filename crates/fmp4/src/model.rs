//! The parsed view of CMAF init and media segments: the contract between the parser
//! (`init`, `segment`) and every consumer (the engine's rings, the progressive MP4
//! writer, the HLS renderer).
//!
//! Everything here is plain data. Media payloads are never copied: a [`MediaSegment`]
//! keeps the segment's single [`Bytes`] and each [`Sample`] names its byte range in it.
//! Times are media ticks in the track's timescale unless the name says otherwise.

use bytes::Bytes;

/// A four-character code such as `avc1` or `moof`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourCC(pub [u8; 4]);

impl FourCC {
    /// Builds a code from a 4-byte literal, e.g. `FourCC::new(b"moov")`.
    pub const fn new(code: &[u8; 4]) -> Self {
        FourCC(*code)
    }
}

impl std::fmt::Debug for FourCC {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for FourCC {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// What a track carries, from its `hdlr` handler type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// `vide`
    Video,
    /// `soun`
    Audio,
    /// Anything else (`subt`, `meta`, `text`, ...): kept, never cut on.
    Other(FourCC),
}

/// Per-track defaults from `mvex/trex` (ISO/IEC 14496-12 §8.8.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackDefaults {
    /// `default_sample_description_index`
    pub sample_description_index: u32,
    /// `default_sample_duration`, ticks
    pub sample_duration: u32,
    /// `default_sample_size`, bytes
    pub sample_size: u32,
    /// `default_sample_flags`
    pub sample_flags: u32,
}

/// One `elst` entry (ISO/IEC 14496-12 §8.6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EditEntry {
    /// In the movie timescale (`mvhd`).
    pub segment_duration: u64,
    /// In the track's media timescale; -1 is an empty edit.
    pub media_time: i64,
    /// `media_rate_integer` (16.16 fraction dropped: always 0 in practice).
    pub media_rate: i16,
}

/// Width and height of a visual sample entry, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoInfo {
    /// Pixels.
    pub width: u16,
    /// Pixels.
    pub height: u16,
}

/// Rate and channel count of an audio sample entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioInfo {
    /// Hz (the integer part of the 16.16 field, or the real rate from the codec
    /// configuration when the entry says 0 or the rate does not fit 16 bits).
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
}

/// A track's first sample entry from `stsd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleEntry {
    /// `avc1`, `avc3`, `hvc1`, `hev1`, `av01`, `mp4a`, `Opus`, `ac-3`, `ec-3`, ...
    pub format: FourCC,
    /// The whole `stsd` box (header included) verbatim, to be carried into a written
    /// `moov` unchanged.
    pub stsd: Bytes,
    /// The codec configuration record body (`avcC`, `hvcC`, `av1C`, `esds`, `dOps`,
    /// `dac3`, `dec3`), empty if the entry has none.
    pub config: Bytes,
    /// RFC 6381 codecs string, e.g. `avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`.
    pub codec: String,
    /// Present for visual sample entries.
    pub video: Option<VideoInfo>,
    /// Present for audio sample entries.
    pub audio: Option<AudioInfo>,
}

/// One track of an init segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// `tkhd` track_ID.
    pub track_id: u32,
    /// From `hdlr`.
    pub kind: TrackKind,
    /// `mdhd` timescale, ticks per second; never 0 (the parser refuses it).
    pub timescale: u32,
    /// `mdhd` language, ISO 639-2/T packed as in the box (15 bits).
    pub language: u16,
    /// From `trex`; zeroes when the init has no `trex` for the track.
    pub defaults: TrackDefaults,
    /// From `edts/elst`; empty when absent.
    pub edits: Vec<EditEntry>,
    /// The first sample description.
    pub entry: SampleEntry,
}

/// A parsed init segment (`ftyp` + `moov`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitSegment {
    /// The whole init segment verbatim (served as the HLS `EXT-X-MAP`).
    pub bytes: Bytes,
    /// `mvhd` timescale.
    pub movie_timescale: u32,
    /// In `moov` order.
    pub tracks: Vec<Track>,
}

impl InitSegment {
    /// The track with this id.
    pub fn track(&self, track_id: u32) -> Option<&Track> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }

    /// The first video track, if any.
    pub fn video_track(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == TrackKind::Video)
    }

    /// The first audio track, if any.
    pub fn audio_track(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == TrackKind::Audio)
    }
}

/// One sample of a track fragment, resolved against `tfhd`, `trex` and `trun`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Decode time, ticks: `tfdt` plus the durations of earlier samples.
    pub decode_ticks: u64,
    /// Ticks.
    pub duration: u32,
    /// Presentation minus decode time, ticks (signed: `trun` v1).
    pub composition_offset: i32,
    /// Start of the sample's bytes inside [`MediaSegment::bytes`].
    pub offset: u32,
    /// Bytes.
    pub size: u32,
    /// Not flagged `sample_is_non_sync_sample`.
    pub is_sync: bool,
}

impl Sample {
    /// Byte range inside the segment.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..self.offset as usize + self.size as usize
    }

    /// Presentation time, ticks (may be negative only with negative offsets at time 0).
    pub fn presentation_ticks(&self) -> i64 {
        self.decode_ticks as i64 + i64::from(self.composition_offset)
    }
}

/// All samples of one track in one media segment, every `traf` of every `moof`
/// concatenated in decode order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackSamples {
    /// `tfhd` track_ID.
    pub track_id: u32,
    /// `tfdt` of the first fragment, ticks.
    pub base_decode_ticks: u64,
    /// `sample_description_index` in effect (1-based).
    pub sample_description_index: u32,
    /// In decode order.
    pub samples: Vec<Sample>,
}

impl TrackSamples {
    /// Sum of sample durations, ticks.
    pub fn duration_ticks(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }

    /// Decode time just past the last sample, ticks.
    pub fn end_decode_ticks(&self) -> u64 {
        self.samples.last().map_or(self.base_decode_ticks, |s| {
            s.decode_ticks + u64::from(s.duration)
        })
    }
}

/// A `prft` box (ISO/IEC 14496-12 §8.16.5): the wall-clock time at which the sample
/// with `media_ticks` of `track_id` was produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerTime {
    /// Reference track.
    pub track_id: u32,
    /// NTP format: seconds since 1900-01-01 in the high 32 bits, fraction in the low.
    pub ntp_timestamp: u64,
    /// Media time of the reference track, ticks.
    pub media_ticks: u64,
}

impl ProducerTime {
    /// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
    pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

    /// The timestamp as microseconds since the Unix epoch, `None` before 1970.
    pub fn unix_micros(&self) -> Option<i64> {
        let secs = (self.ntp_timestamp >> 32).checked_sub(Self::NTP_UNIX_OFFSET_SECS)?;
        let frac = self.ntp_timestamp & 0xffff_ffff;
        let micros = (frac * 1_000_000) >> 32;
        i64::try_from(secs * 1_000_000 + micros).ok()
    }
}

/// An `emsg` box (DASH event message), carried for consumers that want it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMessage {
    /// `scheme_id_uri`
    pub scheme_id_uri: String,
    /// `value`
    pub value: String,
    /// `timescale`
    pub timescale: u32,
    /// v0: `presentation_time_delta`; v1: `presentation_time`.
    pub presentation_time: u64,
    /// `event_duration`
    pub event_duration: u32,
    /// `id`
    pub id: u32,
    /// `message_data`, a slice of the segment.
    pub message_data: Bytes,
}

/// A parsed media segment: one or more `moof`+`mdat` pairs, with whatever `styp`,
/// `sidx`, `prft`, `emsg` and `free` boxes came with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSegment {
    /// The whole segment verbatim; every [`Sample::offset`] indexes into it.
    pub bytes: Bytes,
    /// The first `prft`, if any.
    pub producer_time: Option<ProducerTime>,
    /// Every `emsg`, in order.
    pub events: Vec<EventMessage>,
    /// One entry per track present, in first-seen order.
    pub tracks: Vec<TrackSamples>,
    /// Byte ranges of each `mdat` body inside `bytes`, in order: what a progressive
    /// writer copies by reference.
    pub mdat_ranges: Vec<std::ops::Range<u32>>,
}

impl MediaSegment {
    /// Heap bytes of the parsed tables (samples, events, `mdat` ranges) beside the
    /// payload: what holding the parsed segment costs on top of its `bytes`.
    pub fn table_bytes(&self) -> usize {
        use std::mem::size_of;
        let samples: usize = self
            .tracks
            .iter()
            .map(|t| t.samples.capacity() * size_of::<Sample>())
            .sum();
        let strings: usize = self
            .events
            .iter()
            .map(|e| e.scheme_id_uri.capacity() + e.value.capacity())
            .sum();
        samples
            + strings
            + self.events.capacity() * size_of::<EventMessage>()
            + self.tracks.capacity() * size_of::<TrackSamples>()
            + self.mdat_ranges.capacity() * size_of::<std::ops::Range<u32>>()
    }

    /// Samples of this track, if the segment carries it.
    pub fn track(&self, track_id: u32) -> Option<&TrackSamples> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }

    /// Whether the first sample of `video_track_id` is a sync sample. A segment
    /// without that track (audio-only) counts as independent.
    pub fn starts_with_keyframe(&self, video_track_id: Option<u32>) -> bool {
        match video_track_id.and_then(|id| self.track(id)) {
            Some(t) => t.samples.first().is_some_and(|s| s.is_sync),
            None => true,
        }
    }
}
