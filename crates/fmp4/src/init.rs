//! Init segments (`ftyp` + `moov`, ISO/IEC 14496-12 §8.2-8.7 and `mvex` §8.8.1-8.8.3)
//! into an [`InitSegment`]: per track its id, handler, timescale, language, `trex`
//! defaults, edit list and first sample entry.
//!
//! Only what a fragmented stream needs is read; the sample tables of a fragmented
//! `moov` are empty by definition (§8.8.1) and are not looked at. The `stsd` box is kept
//! verbatim so a writer can carry it into a new `moov` unchanged. Codec strings are
//! `codec`'s, which checks H.264/H.265 parameter sets whole (`params`) first.

use bytes::Bytes;

use crate::codec;
use crate::error::{Error, ErrorKind};
use crate::model::{
    AudioInfo, EditEntry, FourCC, InitSegment, SampleEntry, Track, TrackDefaults, TrackKind,
    VideoInfo,
};
use crate::reader::{BoxRef, Boxes};

/// Parses an init segment. Boxes other than `moov` at the top level (`ftyp`, `free`,
/// `uuid`, ...) are skipped; a `moov` is required and so is every track's `tkhd`,
/// `mdhd`, `hdlr` and `stsd`.
pub fn parse_init(bytes: Bytes) -> Result<InitSegment, Error> {
    let data = &bytes[..];
    let mut moov = None;
    for b in Boxes::top(data) {
        let b = b?;
        if b.typ.0 == *b"moov" {
            moov = Some(b);
            break;
        }
    }
    let moov = moov.ok_or_else(|| {
        crate::reader::Path::ROOT.error(0, ErrorKind::Missing(FourCC::new(b"moov")))
    })?;

    let mvhd = moov.require(data, b"mvhd")?;
    let mut c = mvhd.cursor(data);
    let (version, _) = c.version_flags()?;
    // creation_time and modification_time, then the timescale.
    c.skip(if version == 1 { 16 } else { 8 })?;
    let movie_timescale = c.u32()?;

    let mut tracks = Vec::new();
    let mut trex = Vec::new();
    for b in moov.children(data, 0) {
        let b = b?;
        match &b.typ.0 {
            b"trak" => tracks.push(track(&bytes, b)?),
            b"mvex" => {
                for t in b.children(data, 0) {
                    let t = t?;
                    if t.typ.0 == *b"trex" {
                        trex.push(parse_trex(data, t)?);
                    }
                }
            }
            _ => {}
        }
    }
    // Sorted ids keep hostile inits (thousands of `trak`s or `trex`es) out of
    // quadratic time.
    let mut ids: Vec<(u32, usize)> = tracks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.track_id, i))
        .collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(moov.error(ErrorKind::Invalid("two tracks share a track_ID")));
    }
    for (track_id, defaults) in trex {
        if let Ok(k) = ids.binary_search_by_key(&track_id, |&(id, _)| id) {
            tracks[ids[k].1].defaults = defaults;
        }
    }
    Ok(InitSegment {
        bytes,
        movie_timescale,
        tracks,
    })
}

fn parse_trex(data: &[u8], b: BoxRef) -> Result<(u32, TrackDefaults), Error> {
    let mut c = b.cursor(data);
    c.version_flags()?;
    let track_id = c.u32()?;
    let defaults = TrackDefaults {
        sample_description_index: c.u32()?,
        sample_duration: c.u32()?,
        sample_size: c.u32()?,
        sample_flags: c.u32()?,
    };
    Ok((track_id, defaults))
}

fn track(bytes: &Bytes, trak: BoxRef) -> Result<Track, Error> {
    let data = &bytes[..];
    let tkhd = trak.require(data, b"tkhd")?;
    let mut c = tkhd.cursor(data);
    let (version, _) = c.version_flags()?;
    c.skip(if version == 1 { 16 } else { 8 })?;
    let track_id = c.u32()?;
    if track_id == 0 {
        return Err(tkhd.error(ErrorKind::Invalid("track_ID 0")));
    }

    let edits = match trak.find(data, b"edts")? {
        Some(edts) => match edts.find(data, b"elst")? {
            Some(elst) => edit_list(data, elst)?,
            None => Vec::new(),
        },
        None => Vec::new(),
    };

    let mdia = trak.require(data, b"mdia")?;
    let mdhd = mdia.require(data, b"mdhd")?;
    let mut c = mdhd.cursor(data);
    let (version, _) = c.version_flags()?;
    c.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = c.u32()?;
    if timescale == 0 {
        return Err(mdhd.error(ErrorKind::Invalid("timescale 0")));
    }
    c.u32_or_u64(version)?; // duration
    let language = c.u16()? & 0x7fff;

    let hdlr = mdia.require(data, b"hdlr")?;
    let mut c = hdlr.cursor(data);
    c.version_flags()?;
    c.skip(4)?; // pre_defined
    let handler = c.take(4)?;
    let kind = match handler {
        b"vide" => TrackKind::Video,
        b"soun" => TrackKind::Audio,
        h => TrackKind::Other(FourCC([h[0], h[1], h[2], h[3]])),
    };

    let stsd = mdia
        .require(data, b"minf")?
        .require(data, b"stbl")?
        .require(data, b"stsd")?;
    let entry = sample_entry(bytes, stsd, kind)?;
    Ok(Track {
        track_id,
        kind,
        timescale,
        language,
        defaults: TrackDefaults::default(),
        edits,
        entry,
    })
}

/// §8.6.6. Each entry is 12 (v0) or 20 (v1) bytes: the count is checked against the
/// box before anything is allocated.
fn edit_list(data: &[u8], elst: BoxRef) -> Result<Vec<EditEntry>, Error> {
    let mut c = elst.cursor(data);
    let (version, _) = c.version_flags()?;
    let count = c.u32()? as usize;
    let each = if version == 1 { 20 } else { 12 };
    c.need(
        count
            .checked_mul(each)
            .ok_or_else(|| c.error(ErrorKind::BadSize(u64::MAX)))?,
    )?;
    let mut edits = Vec::with_capacity(count);
    for _ in 0..count {
        let (segment_duration, media_time) = if version == 1 {
            (c.u64()?, c.u64()? as i64)
        } else {
            (u64::from(c.u32()?), i64::from(c.i32()?))
        };
        let media_rate = c.u16()? as i16;
        c.skip(2)?; // media_rate_fraction
        edits.push(EditEntry {
            segment_duration,
            media_time,
            media_rate,
        });
    }
    Ok(edits)
}

/// The first entry of `stsd` (§8.5.2) and its configuration box.
fn sample_entry(bytes: &Bytes, stsd: BoxRef, kind: TrackKind) -> Result<SampleEntry, Error> {
    let data = &bytes[..];
    let mut c = stsd.cursor(data);
    c.version_flags()?;
    if c.u32()? == 0 {
        return Err(stsd.error(ErrorKind::Invalid("stsd has no sample entry")));
    }
    let entry = match stsd.children(data, 8).next() {
        Some(e) => e?,
        None => return Err(stsd.error(ErrorKind::Invalid("stsd has no sample entry"))),
    };
    let format = entry.typ;
    let mut c = entry.cursor(data);
    c.skip(8)?; // SampleEntry: reserved[6], data_reference_index
    let mut video = None;
    let mut audio = None;
    let children_at;
    if is_visual(format) {
        // VisualSampleEntry (§12.1.3): pre_defined and reserved, 16 bytes, then size.
        c.skip(16)?;
        video = Some(VideoInfo {
            width: c.u16()?,
            height: c.u16()?,
        });
        // resolutions, reserved, frame_count, compressorname, depth, pre_defined.
        c.skip(50)?;
        children_at = 78;
    } else if is_audio(format) {
        // AudioSampleEntry (§12.2.3); QuickTime writers put a sound description
        // version in the first reserved field, which adds 16 (v1) or 36 (v2) bytes.
        let qt_version = c.u16()?;
        c.skip(6)?;
        let channels = c.u16()?;
        c.skip(6)?; // samplesize, pre_defined, reserved
        let rate = c.u32()? >> 16;
        children_at = 28
            + match qt_version {
                1 => 16,
                2 => 36,
                _ => 0,
            };
        audio = Some(AudioInfo {
            sample_rate: rate,
            channels,
        });
    } else if kind == TrackKind::Video || kind == TrackKind::Audio {
        return Err(entry.error(ErrorKind::UnsupportedCodec(format)));
    } else {
        // A timed text or metadata track: kept for the writer, described by its format
        // alone (RFC 6381 names `wvtt`, `stpp` that way) and never cut on.
        return Ok(SampleEntry {
            format,
            stsd: bytes.slice(stsd.start..stsd.end),
            config: Bytes::new(),
            codec: format.to_string(),
            video,
            audio,
        });
    }

    let mut config = None;
    if let Some(want) = codec::config_box(format) {
        config = entry.children(data, children_at).find(|b| match b {
            Ok(b) => b.typ.0 == *want,
            Err(_) => true,
        });
    }
    let config = config.transpose()?;
    let body = config.map(|b| &data[b.body..b.end]);
    let info = codec::describe(format, body).map_err(|kind| match config {
        Some(b) => b.error(kind),
        None => entry.error(kind),
    })?;
    if let Some(a) = audio.as_mut() {
        // The 16.16 field cannot say 88.2 or 96 kHz, and some writers leave 0 there.
        // Otherwise the entry wins: for HE-AAC it holds the output rate, the
        // AudioSpecificConfig only the core rate.
        if let Some(rate) = info
            .sample_rate
            .filter(|&r| a.sample_rate == 0 || r > 0xffff)
        {
            a.sample_rate = rate;
        }
        // ISO/IEC 14496-14 makes the entry's channelcount a template (ffmpeg writes 2
        // for mono AAC): the configuration record is the truth when it says.
        if let Some(n) = info.channels {
            a.channels = n;
        }
    }
    Ok(SampleEntry {
        format,
        stsd: bytes.slice(stsd.start..stsd.end),
        config: config.map_or_else(Bytes::new, |b| bytes.slice(b.body..b.end)),
        codec: info.codec,
        video,
        audio,
    })
}

fn is_visual(f: FourCC) -> bool {
    matches!(&f.0, b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"av01")
}

fn is_audio(f: FourCC) -> bool {
    matches!(&f.0, b"mp4a" | b"Opus" | b"ac-3" | b"ec-3")
}
