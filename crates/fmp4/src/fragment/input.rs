//! What a door hands the fragmenter: per track, before the first sample, its timescale
//! and codec configuration record ([`TrackConfig`]); then elementary-stream samples
//! ([`InputSample`]). Owns the checks a single sample must pass on its own (NAL unit
//! framing, ISO/IEC 14496-15 §5.3.2) and turning an Opus ID header (RFC 7845 §5.1) into
//! the `dOps` body (Opus in ISOBMFF §4.3.2). Checks that need the previous sample are
//! `fragmenter`'s; configuration records are checked where `init` writes them.

use bytes::Bytes;

use super::FragmentError;

/// ISO 639-2/T `und`, packed as `mdhd` stores it (three 5-bit letters minus 0x60).
pub const LANGUAGE_UNDETERMINED: u16 = 0x55c4;

/// One track to fragment. Its index in the list given to
/// [`Fragmenter::new`](super::Fragmenter::new) is how samples name it; the init's
/// `track_ID` is that index plus one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackConfig {
    /// Ticks per second of the samples' decode times; not 0. Audio is usually its
    /// sample rate (48 000 for Opus), video 90 000 (MPEG-TS) or 1000 (RTMP).
    pub timescale: u32,
    /// The codec and its configuration record.
    pub codec: CodecConfig,
    /// ISO 639-2/T packed in 15 bits, as `mdhd` has it; [`LANGUAGE_UNDETERMINED`]
    /// when the source does not say.
    pub language: u16,
}

impl TrackConfig {
    /// A track of `codec` with `timescale` and an undetermined language.
    pub fn new(timescale: u32, codec: CodecConfig) -> Self {
        TrackConfig {
            timescale,
            codec,
            language: LANGUAGE_UNDETERMINED,
        }
    }
}

/// A codec and its configuration record, each written into its sample entry verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecConfig {
    /// H.264 as `avc1`: `avcc` is the AVCDecoderConfigurationRecord (ISO/IEC 14496-15
    /// §5.3.3.1; RTMP's AVC sequence header carries exactly this), with at least one
    /// SPS and PPS. Samples are NAL units prefixed by `lengthSizeMinusOne + 1` bytes
    /// of length. The picture size is the first SPS's, cropped.
    Avc {
        /// The record, parameter sets included.
        avcc: Bytes,
    },
    /// HEVC as `hvc1`: `hvcc` is the HEVCDecoderConfigurationRecord (§8.3.3.1), with
    /// a VPS, an SPS and a PPS. The picture size is the first SPS's, cropped.
    Hevc {
        /// The record, parameter set arrays included.
        hvcc: Bytes,
    },
    /// AAC as `mp4a` with an `esds` (ISO/IEC 14496-1 §7.2.6.5, object type 0x40).
    /// Samples are raw access units, no ADTS header.
    Aac {
        /// ISO/IEC 14496-3 §1.6.2.1, as RTMP's AAC sequence header carries it.
        audio_specific_config: Bytes,
    },
    /// Opus as `Opus` with a `dOps` (Opus in ISOBMFF §4.3.2). Samples are Opus
    /// packets.
    Opus {
        /// The OpusSpecificBox body; [`CodecConfig::opus_from_id_header`] makes it
        /// from an `OpusHead` packet.
        dops: Bytes,
    },
}

impl CodecConfig {
    /// Opus from the ID header packet of RFC 7845 §5.1 (`OpusHead`, little-endian),
    /// rewritten as the big-endian `dOps` body with version 0 (Opus in ISOBMFF
    /// §4.3.2: same fields in the same order).
    pub fn opus_from_id_header(head: &[u8]) -> Result<Self, FragmentError> {
        let bad = FragmentError::BadOpusHeader;
        let fixed = head.get(..19).ok_or(bad("shorter than 19 bytes"))?;
        if &fixed[..8] != b"OpusHead" {
            return Err(bad("no OpusHead magic"));
        }
        // RFC 7845: "MUST NOT reject a stream with a version number of 15 or less".
        if fixed[8] >> 4 != 0 {
            return Err(bad("unsupported major version"));
        }
        let channels = fixed[9];
        let family = fixed[18];
        let table = if family == 0 {
            &[][..]
        } else {
            head.get(19..21 + usize::from(channels))
                .ok_or(bad("channel mapping table cut short"))?
        };
        let mut d = Vec::with_capacity(11 + table.len());
        d.push(0); // Version
        d.push(channels);
        d.extend_from_slice(&[fixed[11], fixed[10]]); // PreSkip
        d.extend_from_slice(&[fixed[15], fixed[14], fixed[13], fixed[12]]); // InputSampleRate
        d.extend_from_slice(&[fixed[17], fixed[16]]); // OutputGain
        d.push(family);
        d.extend_from_slice(table);
        Ok(CodecConfig::Opus { dops: d.into() })
    }
}

/// One elementary-stream sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSample {
    /// Index of its track in [`Fragmenter::new`](super::Fragmenter::new)'s list.
    pub track: usize,
    /// Decode time in the track's timescale: 64 bits, already unwrapped (an MPEG-TS
    /// door removes the 33-bit wrap, an RTMP door the 32-bit one); at most
    /// [`MAX_DECODE_TICKS`](super::MAX_DECODE_TICKS), strictly increasing per track.
    pub decode_ticks: u64,
    /// Presentation minus decode time, ticks; negative is allowed (`trun` version 1).
    pub composition_offset: i32,
    /// A sync sample (an IDR or CRA picture; every AAC and Opus frame).
    pub is_sync: bool,
    /// The sample's bytes, written to the `mdat` by reference: NAL units with length
    /// prefixes for H.264/HEVC, a raw frame for AAC, a packet for Opus.
    pub data: Bytes,
}

/// Checks that NAL unit lengths of `size` bytes tile `data` exactly; `Err` holds the
/// offset of the first length that does not fit.
pub(super) fn check_nal_framing(data: &[u8], size: u8) -> Result<(), usize> {
    let size = usize::from(size);
    let mut at = 0;
    while at < data.len() {
        let field = data.get(at..at + size).ok_or(at)?;
        let len = field.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
        at = at
            .checked_add(size + len)
            .filter(|&end| end <= data.len())
            .ok_or(at)?;
    }
    Ok(())
}
