//! The box layer for writing, `reader`'s mirror: big-endian fields, box headers whose
//! size is reserved and back-patched (ISO/IEC 14496-12 §4.2), and the header boxes
//! every `moov` we write shares whatever its sample tables: `mvhd` (§8.2.2), `tkhd`
//! (§8.3.2), `mdhd` (§8.4.2), `hdlr` (§8.4.3), `vmhd`/`smhd` (§12.1.2, §12.2.2) and
//! `dinf` (§8.7.1).
//!
//! Used by `progressive` (a whole MP4) and `fragment` (an empty-`moov` init and
//! `moof`s). Knows neither: callers pass plain numbers and own the box order.

use crate::model::{FourCC, TrackKind, VideoInfo};

/// A box grew past the 4 GiB a 32-bit size can say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooLarge;

/// The unity matrix of `mvhd` and `tkhd` (§8.2.2.3).
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Starts a box: its size is reserved (patched by [`end`]). Returns where it starts.
pub(crate) fn begin(buf: &mut Vec<u8>, kind: &[u8; 4]) -> usize {
    let pos = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf.extend_from_slice(kind);
    pos
}

/// Starts a `FullBox` (§4.2.2): header, version, 24 bits of flags.
pub(crate) fn begin_full(buf: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32) -> usize {
    let pos = begin(buf, kind);
    u32be(buf, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
    pos
}

/// Writes the size of the box started at `pos`, which ends at the buffer's end.
pub(crate) fn end(buf: &mut [u8], pos: usize) -> Result<(), TooLarge> {
    let size = u32::try_from(buf.len() - pos).map_err(|_| TooLarge)?;
    buf[pos..pos + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

pub(crate) fn u16be(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u32be(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u64be(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// The `hdlr` handler type (§8.4.3) of a track kind.
pub(crate) fn handler(kind: TrackKind) -> FourCC {
    match kind {
        TrackKind::Video => FourCC::new(b"vide"),
        TrackKind::Audio => FourCC::new(b"soun"),
        TrackKind::Other(f) => f,
    }
}

/// The times of `mvhd` and `mdhd` (creation and modification 0, the timescale and
/// the duration), 64-bit in version 1.
fn times(buf: &mut Vec<u8>, v1: bool, timescale: u32, duration: u64) {
    if v1 {
        u64be(buf, 0);
        u64be(buf, 0);
        u32be(buf, timescale);
        u64be(buf, duration);
    } else {
        u32be(buf, 0);
        u32be(buf, 0);
        u32be(buf, timescale);
        u32be(buf, duration as u32);
    }
}

/// `mvhd` (§8.2.2), version 1 only when the duration needs it.
pub(crate) fn mvhd(
    buf: &mut Vec<u8>,
    timescale: u32,
    duration: u64,
    next_track_id: u32,
) -> Result<(), TooLarge> {
    let v1 = duration > u64::from(u32::MAX);
    let pos = begin_full(buf, b"mvhd", u8::from(v1), 0);
    times(buf, v1, timescale, duration);
    u32be(buf, 0x0001_0000); // rate 1.0
    u16be(buf, 0x0100); // volume 1.0
    buf.extend_from_slice(&[0; 10]);
    for m in MATRIX {
        u32be(buf, m);
    }
    buf.extend_from_slice(&[0; 24]); // pre_defined
    u32be(buf, next_track_id);
    end(buf, pos)
}

/// `tkhd` (§8.3.2): flags 3, enabled and in the movie, as ffmpeg writes; volume 1.0
/// for audio; the visual size in 16.16 for video.
pub(crate) fn tkhd(
    buf: &mut Vec<u8>,
    track_id: u32,
    duration: u64,
    kind: TrackKind,
    video: Option<VideoInfo>,
) -> Result<(), TooLarge> {
    let v1 = duration > u64::from(u32::MAX);
    let pos = begin_full(buf, b"tkhd", u8::from(v1), 3);
    if v1 {
        u64be(buf, 0);
        u64be(buf, 0);
        u32be(buf, track_id);
        u32be(buf, 0);
        u64be(buf, duration);
    } else {
        u32be(buf, 0);
        u32be(buf, 0);
        u32be(buf, track_id);
        u32be(buf, 0);
        u32be(buf, duration as u32);
    }
    buf.extend_from_slice(&[0; 8]);
    u16be(buf, 0); // layer
    u16be(buf, 0); // alternate_group
    u16be(buf, if kind == TrackKind::Audio { 0x0100 } else { 0 });
    u16be(buf, 0);
    for m in MATRIX {
        u32be(buf, m);
    }
    let (w, h) = video.map_or((0, 0), |v| (u32::from(v.width), u32::from(v.height)));
    u32be(buf, w << 16);
    u32be(buf, h << 16);
    end(buf, pos)
}

/// `mdhd` (§8.4.2); `language` is ISO 639-2/T packed in 15 bits.
pub(crate) fn mdhd(
    buf: &mut Vec<u8>,
    timescale: u32,
    duration: u64,
    language: u16,
) -> Result<(), TooLarge> {
    let v1 = duration > u64::from(u32::MAX);
    let pos = begin_full(buf, b"mdhd", u8::from(v1), 0);
    times(buf, v1, timescale, duration);
    u16be(buf, language & 0x7fff);
    u16be(buf, 0);
    end(buf, pos)
}

/// `hdlr` (§8.4.3) with ffmpeg's handler names.
pub(crate) fn hdlr(buf: &mut Vec<u8>, kind: TrackKind) -> Result<(), TooLarge> {
    let pos = begin_full(buf, b"hdlr", 0, 0);
    u32be(buf, 0);
    buf.extend_from_slice(&handler(kind).0);
    buf.extend_from_slice(&[0; 12]);
    let name: &[u8] = match kind {
        TrackKind::Video => b"VideoHandler\0",
        _ => b"SoundHandler\0",
    };
    buf.extend_from_slice(name);
    end(buf, pos)
}

/// The start of `minf`'s body: `vmhd` (video) or `smhd`, then `dinf` with one
/// self-contained `url ` entry.
pub(crate) fn media_header_and_dinf(buf: &mut Vec<u8>, kind: TrackKind) -> Result<(), TooLarge> {
    if kind == TrackKind::Video {
        // vmhd flags must be 1 (§12.1.2).
        let p = begin_full(buf, b"vmhd", 0, 1);
        buf.extend_from_slice(&[0; 8]);
        end(buf, p)?;
    } else {
        let p = begin_full(buf, b"smhd", 0, 0);
        buf.extend_from_slice(&[0; 4]);
        end(buf, p)?;
    }
    let dinf = begin(buf, b"dinf");
    let dref = begin_full(buf, b"dref", 0, 0);
    u32be(buf, 1);
    // Flag 1: the media is in this file (§8.7.2).
    let url = begin_full(buf, b"url ", 0, 1);
    end(buf, url)?;
    end(buf, dref)?;
    end(buf, dinf)
}
