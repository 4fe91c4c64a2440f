//! The init segment: `ftyp` and a `moov` whose sample tables are empty (ISO/IEC
//! 14496-12 §8.8.1: the samples are all in fragments), with `mvex`/`trex` (§8.8.3) and
//! one `trak` per track; and each track's sample entry (§8.5.2) with its
//! configuration box: `avc1`+`avcC`, `hvc1`+`hvcC` (ISO/IEC 14496-15 §5.4.2, §8.4.1),
//! `mp4a`+`esds` (ISO/IEC 14496-14 §5.6, descriptors of ISO/IEC 14496-1 §7.2.6),
//! `Opus`+`dOps` (Opus in ISOBMFF §4.3).
//!
//! Configuration records are checked here, where they are written, by the functions
//! that check an uploaded init: `params` walks an `avcC`/`hvcC` whole and gives the
//! NAL length size and the picture size (the first SPS, cropped); `codec::describe`
//! (which runs `params` too) names the codec and reads an `AudioSpecificConfig`'s rate
//! and channels. So a record our own parser would refuse never leaves here.

use bytes::Bytes;

use super::FragmentError;
use super::input::{CodecConfig, TrackConfig};
use crate::codec::{self, CodecInfo};
use crate::error::ErrorKind;
use crate::model::{FourCC, TrackKind, VideoInfo};
use crate::params;
use crate::writer::{self, begin, begin_full, end, u16be, u32be};

/// Records larger than this are refused (real ones are tens of bytes; an `avcC` with
/// many parameter sets stays under a few KiB).
const MAX_CONFIG_BYTES: usize = 64 << 10;

/// What the fragmenter keeps of a track once its entry is written.
#[derive(Clone, Copy, Debug)]
pub(super) struct Written {
    pub(super) kind: TrackKind,
    pub(super) timescale: u32,
    /// Bytes of each NAL unit's length prefix, for video.
    pub(super) nal_length_size: Option<u8>,
    /// The duration of a track's only sample: one frame's worth (see the module doc).
    pub(super) fallback_duration: u32,
}

/// The init segment for `tracks`, and what the fragmenter keeps of each.
pub(super) fn write(tracks: &[TrackConfig]) -> Result<(Bytes, Vec<Written>), FragmentError> {
    let estimate: usize = tracks.iter().map(|t| 700 + config_len(&t.codec)).sum();
    let mut buf = Vec::with_capacity(estimate + 200);

    // ftyp (§4.3): iso6 covers `tfdt` and, with iso5, `default-base-is-moof`.
    let ftyp = begin(&mut buf, b"ftyp");
    buf.extend_from_slice(b"iso6");
    u32be(&mut buf, 0);
    buf.extend_from_slice(b"iso6iso5");
    if tracks.len() == 1 {
        buf.extend_from_slice(b"cmfc");
    }
    buf.extend_from_slice(b"mp41");
    end(&mut buf, ftyp)?;

    let moov = begin(&mut buf, b"moov");
    // A track count is at most MAX_TRACKS, so ids fit.
    let next_track_id = tracks.len() as u32 + 1;
    writer::mvhd(&mut buf, 1000, 0, next_track_id)?;
    let mut written = Vec::with_capacity(tracks.len());
    for (i, t) in tracks.iter().enumerate() {
        written.push(trak(&mut buf, i, t)?);
    }
    let mvex = begin(&mut buf, b"mvex");
    for i in 0..tracks.len() {
        // §8.8.3: every default is in each `trun`, so the defaults here are unused;
        // description 1 is the only one.
        let trex = begin_full(&mut buf, b"trex", 0, 0);
        u32be(&mut buf, i as u32 + 1);
        u32be(&mut buf, 1);
        u32be(&mut buf, 0);
        u32be(&mut buf, 0);
        u32be(&mut buf, 0);
        end(&mut buf, trex)?;
    }
    end(&mut buf, mvex)?;
    end(&mut buf, moov)?;
    Ok((Bytes::from(buf), written))
}

fn config_len(c: &CodecConfig) -> usize {
    match c {
        CodecConfig::Avc { avcc: b }
        | CodecConfig::Hevc { hvcc: b }
        | CodecConfig::Aac {
            audio_specific_config: b,
        }
        | CodecConfig::Opus { dops: b } => b.len(),
    }
}

fn trak(buf: &mut Vec<u8>, index: usize, t: &TrackConfig) -> Result<Written, FragmentError> {
    let bad = |reason| FragmentError::BadConfig {
        track: index,
        reason,
    };
    if t.timescale == 0 {
        return Err(bad("timescale 0"));
    }
    if config_len(&t.codec) > MAX_CONFIG_BYTES {
        return Err(bad("configuration record over 64 KiB"));
    }
    let track_id = index as u32 + 1;
    let kind = match t.codec {
        CodecConfig::Avc { .. } | CodecConfig::Hevc { .. } => TrackKind::Video,
        CodecConfig::Aac { .. } | CodecConfig::Opus { .. } => TrackKind::Audio,
    };
    // The entry first, so a bad record is refused before anything else is written.
    let mut entry = Vec::with_capacity(128 + config_len(&t.codec));
    let (written, video) = sample_entry(&mut entry, index, t)?;

    let trak = begin(buf, b"trak");
    writer::tkhd(buf, track_id, 0, kind, video)?;
    let mdia = begin(buf, b"mdia");
    writer::mdhd(buf, t.timescale, 0, t.language)?;
    writer::hdlr(buf, kind)?;
    let minf = begin(buf, b"minf");
    writer::media_header_and_dinf(buf, kind)?;
    let stbl = begin(buf, b"stbl");
    let stsd = begin_full(buf, b"stsd", 0, 0);
    u32be(buf, 1);
    buf.extend_from_slice(&entry);
    end(buf, stsd)?;
    // §8.8.1: "the sample tables ... shall have zero entries": stts, stsc, stsz, stco.
    for (typ, fields) in [(b"stts", 1), (b"stsc", 1), (b"stsz", 2), (b"stco", 1)] {
        let b = begin_full(buf, typ, 0, 0);
        for _ in 0..fields {
            u32be(buf, 0);
        }
        end(buf, b)?;
    }
    end(buf, stbl)?;
    end(buf, minf)?;
    end(buf, mdia)?;
    end(buf, trak)?;
    Ok(written)
}

/// One sample entry box into `buf`, its record checked; what the fragmenter keeps and,
/// for video, the size `tkhd` repeats.
fn sample_entry(
    buf: &mut Vec<u8>,
    index: usize,
    t: &TrackConfig,
) -> Result<(Written, Option<VideoInfo>), FragmentError> {
    let bad = |reason| FragmentError::BadConfig {
        track: index,
        reason,
    };
    let timescale = t.timescale;
    match &t.codec {
        CodecConfig::Avc { avcc } => {
            let c = params::parse_avc_config(avcc).map_err(|k| reason(index, k))?;
            let sps = c.first_sps.ok_or(bad("avcC: no SPS"))?;
            describe(index, b"avc1", avcc)?;
            let video = picture(sps.width, sps.height).ok_or(bad("picture over 65535 pixels"))?;
            visual(buf, b"avc1", b"avcC", avcc, video).map_err(bad)?;
            Ok((video_track(timescale, c.nal_length_size), Some(video)))
        }
        CodecConfig::Hevc { hvcc } => {
            let c = params::parse_hevc_config(hvcc).map_err(|k| reason(index, k))?;
            let sps = c.first_sps.ok_or(bad("hvcC: no SPS"))?;
            describe(index, b"hvc1", hvcc)?;
            let video = picture(sps.width, sps.height).ok_or(bad("picture over 65535 pixels"))?;
            visual(buf, b"hvc1", b"hvcC", hvcc, video).map_err(bad)?;
            Ok((video_track(timescale, c.nal_length_size), Some(video)))
        }
        CodecConfig::Aac {
            audio_specific_config,
        } => {
            if audio_specific_config.len() < 2 {
                return Err(bad("AudioSpecificConfig shorter than 2 bytes"));
            }
            let track_id = u16::try_from(index + 1).unwrap_or(0);
            let esds = esds(audio_specific_config, track_id);
            let info = describe(index, b"mp4a", &esds)?;
            let rate = info
                .sample_rate
                .filter(|&r| r > 0)
                .ok_or(bad("AudioSpecificConfig without a sampling rate"))?;
            // Channel configuration 0 (a PCE) leaves the count to the stream; the entry's
            // field is a template then (ISO/IEC 14496-14 §5.6), 2 as ffmpeg writes.
            let channels = info.channels.unwrap_or(2);
            audio(buf, b"mp4a", b"esds", &esds, channels, rate);
            // An AAC frame is 1024 samples of the core rate (HE-AAC's 2048 at twice the
            // rate last as long).
            let frame = u64::from(timescale) * 1024 / u64::from(rate);
            Ok((audio_track(timescale, frame), None))
        }
        CodecConfig::Opus { dops } => {
            // §4.3.2: Version 0, OutputChannelCount, PreSkip, InputSampleRate,
            // OutputGain, ChannelMappingFamily, then for families other than 0 the
            // StreamCount, CoupledCount and one ChannelMapping byte per channel.
            if dops.len() < 11 || dops[0] != 0 {
                return Err(bad("dOps: not a version 0 box"));
            }
            let channels = dops[1];
            let want = match dops[10] {
                0 if channels == 0 || channels > 2 => {
                    return Err(bad("dOps: family 0 needs 1 or 2 channels"));
                }
                0 => 11,
                _ => 13 + usize::from(channels),
            };
            if channels == 0 || dops.len() != want {
                return Err(bad(
                    "dOps: channel mapping does not match the channel count",
                ));
            }
            describe(index, b"Opus", dops)?;
            audio(buf, b"Opus", b"dOps", dops, u16::from(channels), 48_000);
            // 20 ms, Opus's usual frame.
            Ok((audio_track(timescale, u64::from(timescale) / 50), None))
        }
    }
}

/// A visual sample entry's 16-bit size; `params` has checked it is not empty.
fn picture(width: u32, height: u32) -> Option<VideoInfo> {
    Some(VideoInfo {
        width: u16::try_from(width).ok()?,
        height: u16::try_from(height).ok()?,
    })
}

fn video_track(timescale: u32, nal: u8) -> Written {
    Written {
        kind: TrackKind::Video,
        timescale,
        nal_length_size: Some(nal),
        fallback_duration: (timescale / 30).max(1),
    }
}

fn audio_track(timescale: u32, frame: u64) -> Written {
    Written {
        kind: TrackKind::Audio,
        timescale,
        nal_length_size: None,
        fallback_duration: u32::try_from(frame).unwrap_or(u32::MAX).max(1),
    }
}

/// The record through the reader that names codecs for playlists, which an uploaded
/// init goes through too.
fn describe(index: usize, format: &[u8; 4], body: &[u8]) -> Result<CodecInfo, FragmentError> {
    codec::describe(FourCC(*format), Some(body)).map_err(|k| reason(index, k))
}

/// A refusal of the parser's as a configuration error of track `index`.
fn reason(index: usize, kind: ErrorKind) -> FragmentError {
    FragmentError::BadConfig {
        track: index,
        reason: match kind {
            ErrorKind::Invalid(why) => why,
            ErrorKind::UnsupportedCodec(_) => "configuration record version other than 1",
            ErrorKind::Missing(_) => "configuration record missing",
            _ => "configuration record cut short",
        },
    }
}

/// VisualSampleEntry (§12.1.3) then the configuration box.
fn visual(
    buf: &mut Vec<u8>,
    format: &[u8; 4],
    config: &[u8; 4],
    body: &[u8],
    size: VideoInfo,
) -> Result<(), &'static str> {
    let entry = begin(buf, format);
    buf.extend_from_slice(&[0; 6]); // reserved
    u16be(buf, 1); // data_reference_index
    buf.extend_from_slice(&[0; 16]); // pre_defined, reserved
    u16be(buf, size.width);
    u16be(buf, size.height);
    u32be(buf, 0x0048_0000); // 72 dpi
    u32be(buf, 0x0048_0000);
    u32be(buf, 0); // reserved
    u16be(buf, 1); // frame_count
    buf.extend_from_slice(&[0; 32]); // compressorname
    u16be(buf, 0x0018); // depth
    u16be(buf, 0xffff); // pre_defined = -1
    config_box(buf, config, body)?;
    end(buf, entry).map_err(|_| "sample entry over 4 GiB")
}

/// AudioSampleEntry (§12.2.3) then the configuration box. A rate above 16 bits is
/// written as 0: the record holds it (the parser reads it from there).
fn audio(buf: &mut Vec<u8>, format: &[u8; 4], config: &[u8; 4], body: &[u8], ch: u16, rate: u32) {
    let entry = begin(buf, format);
    buf.extend_from_slice(&[0; 6]);
    u16be(buf, 1); // data_reference_index
    buf.extend_from_slice(&[0; 8]); // reserved
    u16be(buf, ch);
    u16be(buf, 16); // samplesize
    u32be(buf, 0); // pre_defined, reserved
    u32be(buf, if rate <= 0xffff { rate << 16 } else { 0 });
    // Cannot fail: the record is under MAX_CONFIG_BYTES.
    let _ = config_box(buf, config, body);
    let _ = end(buf, entry);
}

fn config_box(buf: &mut Vec<u8>, typ: &[u8; 4], body: &[u8]) -> Result<(), &'static str> {
    let b = begin(buf, typ);
    buf.extend_from_slice(body);
    end(buf, b).map_err(|_| "configuration box over 4 GiB")
}

/// The `esds` body (a FullBox: version and flags first): an ES_Descriptor holding a
/// DecoderConfigDescriptor (object type 0x40, MPEG-4 audio; stream type 5, audio;
/// buffer size and bitrates unknown, 0) with the AudioSpecificConfig as its
/// DecoderSpecificInfo, and the SLConfigDescriptor MP4 requires (predefined 2).
pub(super) fn esds(asc: &[u8], es_id: u16) -> Vec<u8> {
    let mut dcd = vec![0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    descriptor(&mut dcd, 0x05, asc);
    let mut es = Vec::with_capacity(dcd.len() + 16);
    es.extend_from_slice(&es_id.to_be_bytes());
    es.push(0); // no dependsOn, URL or OCR stream
    descriptor(&mut es, 0x04, &dcd);
    descriptor(&mut es, 0x06, &[0x02]);
    let mut body = vec![0, 0, 0, 0];
    descriptor(&mut body, 0x03, &es);
    body
}

/// A descriptor (ISO/IEC 14496-1 §8.3.3): tag, then the body length in 7-bit groups,
/// most significant first, each but the last with its top bit set.
fn descriptor(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    let len = body.len();
    // MAX_CONFIG_BYTES keeps every body under 2^21: at most three groups.
    for shift in [21u32, 14, 7] {
        if len >> shift != 0 {
            out.push(0x80 | ((len >> shift) & 0x7f) as u8);
        }
    }
    out.push((len & 0x7f) as u8);
    out.extend_from_slice(body);
}
