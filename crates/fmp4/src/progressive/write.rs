//! Box bytes of the progressive header: `ftyp` and `moov` with its sample tables.
//!
//! Owns the byte layout only (ISO/IEC 14496-12 §8.2–§8.7); every number comes in
//! from `track`'s tables or the [`TrackHeader`]s `build` computes, and nothing here
//! imports `build`. Box sizes are reserved and back-patched. Chunk offsets are
//! written relative to the `mdat` body, then shifted by [`patch_offsets`] once the
//! header length is known.

use super::BuildError;
use super::track::{OutTrack, handler};
use crate::model::TrackKind;

/// One `elst` entry, durations in the movie timescale; `media_time` -1 is empty.
#[derive(Clone, Copy, Debug)]
pub(super) struct Edit {
    pub(super) duration: u64,
    pub(super) media_time: i64,
}

/// What `moov` needs to say about one written track.
pub(super) struct TrackHeader<'a> {
    pub(super) track: &'a OutTrack,
    pub(super) track_id: u32,
    /// Movie timescale.
    pub(super) duration: u64,
    pub(super) edits: Vec<Edit>,
}

/// Where a chunk offset table's entries start, how many, and whether 64-bit.
pub(super) struct OffsetPatch {
    pos: usize,
    count: usize,
    wide: bool,
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn begin(buf: &mut Vec<u8>, kind: &[u8; 4]) -> usize {
    let pos = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf.extend_from_slice(kind);
    pos
}

fn begin_full(buf: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32) -> usize {
    let pos = begin(buf, kind);
    buf.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
    pos
}

fn end(buf: &mut [u8], pos: usize) -> Result<(), BuildError> {
    let size =
        u32::try_from(buf.len() - pos).map_err(|_| BuildError::TooLarge("box over 4 GiB"))?;
    buf[pos..pos + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

fn u16be(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn u32be(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn u64be(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// `ftyp` (§4.3): `isom` with the brands a faststart ffmpeg file declares.
pub(super) fn ftyp(tracks: &[OutTrack]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    let pos = begin(&mut buf, b"ftyp");
    buf.extend_from_slice(b"isom");
    u32be(&mut buf, 0x200);
    buf.extend_from_slice(b"isomiso2");
    let avc = tracks
        .iter()
        .any(|t| t.codecs.iter().any(|c| c.starts_with("avc")));
    if avc {
        buf.extend_from_slice(b"avc1");
    }
    buf.extend_from_slice(b"mp41");
    // Cannot fail: a few dozen bytes.
    let _ = end(&mut buf, pos);
    buf
}

/// `ftyp` then the whole `moov`, with chunk offsets relative to the `mdat` body, in
/// one buffer with room left for the `mdat` header (the file's first piece).
pub(super) fn moov(
    ftyp: &[u8],
    tracks: &[TrackHeader<'_>],
    movie_timescale: u32,
    movie_duration: u64,
    next_track_id: u32,
    wide_offsets: bool,
) -> Result<(Vec<u8>, Vec<OffsetPatch>), BuildError> {
    let estimate: usize = tracks
        .iter()
        .map(|h| {
            let t = h.track;
            1024 + t.sizes.len() * 4
                + (t.stts.len() + t.ctts.len()) * 8
                + t.sync.len() * 4
                + t.chunks.len() * 20
                + t.descriptions.iter().map(|d| d.stsd.len()).sum::<usize>()
        })
        .sum::<usize>()
        + 256
        + ftyp.len();
    let mut buf = Vec::with_capacity(estimate);
    buf.extend_from_slice(ftyp);
    let mut patches = Vec::with_capacity(tracks.len());
    let moov = begin(&mut buf, b"moov");
    mvhd(&mut buf, movie_timescale, movie_duration, next_track_id)?;
    for h in tracks {
        trak(&mut buf, h, &mut patches, wide_offsets)?;
    }
    end(&mut buf, moov)?;
    Ok((buf, patches))
}

/// Adds the header length to every chunk offset written by [`moov`].
pub(super) fn patch_offsets(moov: &mut [u8], patches: &[OffsetPatch], header_len: u64) {
    for p in patches {
        let width = if p.wide { 8 } else { 4 };
        let table = moov.get_mut(p.pos..p.pos + p.count * width);
        for entry in table.into_iter().flat_map(|t| t.chunks_exact_mut(width)) {
            if p.wide {
                let mut b = [0u8; 8];
                b.copy_from_slice(entry);
                let v = u64::from_be_bytes(b).wrapping_add(header_len);
                entry.copy_from_slice(&v.to_be_bytes());
            } else {
                let mut b = [0u8; 4];
                b.copy_from_slice(entry);
                // `build` chose 32-bit entries only if the largest offset fits.
                let v = u32::from_be_bytes(b).wrapping_add(header_len as u32);
                entry.copy_from_slice(&v.to_be_bytes());
            }
        }
    }
}

/// `mvhd` (§8.2.2), version 1 only when the duration needs it.
fn mvhd(buf: &mut Vec<u8>, timescale: u32, duration: u64, next_id: u32) -> Result<(), BuildError> {
    let v1 = duration > u64::from(u32::MAX);
    let pos = begin_full(buf, b"mvhd", u8::from(v1), 0);
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
    u32be(buf, 0x0001_0000); // rate 1.0
    u16be(buf, 0x0100); // volume 1.0
    buf.extend_from_slice(&[0; 10]);
    for m in MATRIX {
        u32be(buf, m);
    }
    buf.extend_from_slice(&[0; 24]); // pre_defined
    u32be(buf, next_id);
    end(buf, pos)
}

fn trak(
    buf: &mut Vec<u8>,
    h: &TrackHeader<'_>,
    patches: &mut Vec<OffsetPatch>,
    wide: bool,
) -> Result<(), BuildError> {
    let t = h.track;
    let trak = begin(buf, b"trak");
    tkhd(buf, h)?;
    let edts = begin(buf, b"edts");
    elst(buf, &h.edits)?;
    end(buf, edts)?;
    let mdia = begin(buf, b"mdia");
    mdhd(buf, t)?;
    hdlr(buf, t.kind)?;
    let minf = begin(buf, b"minf");
    if t.kind == TrackKind::Video {
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
    // Flag 1: the media is in this file.
    let url = begin_full(buf, b"url ", 0, 1);
    end(buf, url)?;
    end(buf, dref)?;
    end(buf, dinf)?;
    stbl(buf, t, patches, wide)?;
    end(buf, minf)?;
    end(buf, mdia)?;
    end(buf, trak)
}

/// `tkhd` (§8.3.2): flags 3, enabled and in the movie, as ffmpeg writes.
fn tkhd(buf: &mut Vec<u8>, h: &TrackHeader<'_>) -> Result<(), BuildError> {
    let v1 = h.duration > u64::from(u32::MAX);
    let pos = begin_full(buf, b"tkhd", u8::from(v1), 3);
    if v1 {
        u64be(buf, 0);
        u64be(buf, 0);
        u32be(buf, h.track_id);
        u32be(buf, 0);
        u64be(buf, h.duration);
    } else {
        u32be(buf, 0);
        u32be(buf, 0);
        u32be(buf, h.track_id);
        u32be(buf, 0);
        u32be(buf, h.duration as u32);
    }
    buf.extend_from_slice(&[0; 8]);
    u16be(buf, 0); // layer
    u16be(buf, 0); // alternate_group
    u16be(
        buf,
        if h.track.kind == TrackKind::Audio {
            0x0100
        } else {
            0
        },
    );
    u16be(buf, 0);
    for m in MATRIX {
        u32be(buf, m);
    }
    let (w, ht) = h
        .track
        .video
        .map_or((0, 0), |v| (u32::from(v.width), u32::from(v.height)));
    u32be(buf, w << 16);
    u32be(buf, ht << 16);
    end(buf, pos)
}

/// `elst` (§8.6.6), version 1 when a value needs 64 bits.
fn elst(buf: &mut Vec<u8>, edits: &[Edit]) -> Result<(), BuildError> {
    let v1 = edits
        .iter()
        .any(|e| e.duration > u64::from(u32::MAX) || i32::try_from(e.media_time).is_err());
    let pos = begin_full(buf, b"elst", u8::from(v1), 0);
    u32be(buf, edits.len() as u32);
    for e in edits {
        if v1 {
            u64be(buf, e.duration);
            buf.extend_from_slice(&e.media_time.to_be_bytes());
        } else {
            u32be(buf, e.duration as u32);
            buf.extend_from_slice(&(e.media_time as i32).to_be_bytes());
        }
        u16be(buf, 1); // media_rate_integer
        u16be(buf, 0);
    }
    end(buf, pos)
}

/// `mdhd` (§8.4.2): the media duration is the sum of `stts` durations.
fn mdhd(buf: &mut Vec<u8>, t: &OutTrack) -> Result<(), BuildError> {
    let v1 = t.decode_end > u64::from(u32::MAX);
    let pos = begin_full(buf, b"mdhd", u8::from(v1), 0);
    if v1 {
        u64be(buf, 0);
        u64be(buf, 0);
        u32be(buf, t.timescale);
        u64be(buf, t.decode_end);
    } else {
        u32be(buf, 0);
        u32be(buf, 0);
        u32be(buf, t.timescale);
        u32be(buf, t.decode_end as u32);
    }
    u16be(buf, t.language & 0x7fff);
    u16be(buf, 0);
    end(buf, pos)
}

fn hdlr(buf: &mut Vec<u8>, kind: TrackKind) -> Result<(), BuildError> {
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

fn stbl(
    buf: &mut Vec<u8>,
    t: &OutTrack,
    patches: &mut Vec<OffsetPatch>,
    wide: bool,
) -> Result<(), BuildError> {
    let stbl = begin(buf, b"stbl");
    stsd(buf, t)?;

    // stts (§8.6.1.2): runs of equal durations; a seam may split a run in `build`.
    let pos = begin_full(buf, b"stts", 0, 0);
    let count_pos = buf.len();
    u32be(buf, 0);
    let mut entries = 0u32;
    let mut runs = t.stts.iter().copied().peekable();
    while let Some((mut n, d)) = runs.next() {
        while let Some(&(m, _)) = runs.peek().filter(|r| r.1 == d) {
            n += m;
            runs.next();
        }
        u32be(buf, n);
        u32be(buf, d);
        entries += 1;
    }
    buf[count_pos..count_pos + 4].copy_from_slice(&entries.to_be_bytes());
    end(buf, pos)?;

    // ctts (§8.6.1.3): omitted when every offset is 0; version 1 for signed offsets.
    if t.ctts.iter().any(|&(_, o)| o != 0) {
        let v1 = t.ctts.iter().any(|&(_, o)| o < 0);
        let pos = begin_full(buf, b"ctts", u8::from(v1), 0);
        u32be(buf, t.ctts.len() as u32);
        for &(n, o) in &t.ctts {
            u32be(buf, n);
            buf.extend_from_slice(&o.to_be_bytes());
        }
        end(buf, pos)?;
    }

    // stss (§8.6.2): "If the sync sample box is not present, every sample is a sync
    // sample."
    if t.sync.len() != t.sample_count as usize {
        let pos = begin_full(buf, b"stss", 0, 0);
        u32be(buf, t.sync.len() as u32);
        for &s in &t.sync {
            u32be(buf, s);
        }
        end(buf, pos)?;
    }

    // stsz (§8.7.3): a single size when all samples share it.
    let pos = begin_full(buf, b"stsz", 0, 0);
    let first = t.sizes.first().copied().unwrap_or(0);
    if t.sizes.iter().all(|&s| s == first) && first != 0 {
        u32be(buf, first);
        u32be(buf, t.sample_count);
    } else {
        u32be(buf, 0);
        u32be(buf, t.sample_count);
        for &s in &t.sizes {
            u32be(buf, s);
        }
    }
    end(buf, pos)?;

    // stsc (§8.7.4): one chunk per fragment's run of samples; a new entry only when
    // the samples per chunk or the description change.
    let pos = begin_full(buf, b"stsc", 0, 0);
    let count_pos = buf.len();
    u32be(buf, 0);
    let mut entries = 0u32;
    let mut last: Option<(u32, u32)> = None;
    for (i, c) in t.chunks.iter().enumerate() {
        if last != Some((c.samples, c.description)) {
            u32be(buf, i as u32 + 1);
            u32be(buf, c.samples);
            u32be(buf, c.description);
            entries += 1;
            last = Some((c.samples, c.description));
        }
    }
    buf[count_pos..count_pos + 4].copy_from_slice(&entries.to_be_bytes());
    end(buf, pos)?;

    // stco / co64 (§8.7.5).
    let pos = begin_full(buf, if wide { b"co64" } else { b"stco" }, 0, 0);
    u32be(buf, t.chunks.len() as u32);
    patches.push(OffsetPatch {
        pos: buf.len(),
        count: t.chunks.len(),
        wide,
    });
    for c in &t.chunks {
        if wide {
            u64be(buf, c.body_pos);
        } else {
            u32be(buf, c.body_pos as u32);
        }
    }
    end(buf, pos)?;
    end(buf, stbl)
}

/// `stsd` (§8.5.2): the init's box verbatim, or its entries merged when a restart
/// brought a different sample entry.
fn stsd(buf: &mut Vec<u8>, t: &OutTrack) -> Result<(), BuildError> {
    match &t.descriptions[..] {
        [one] => {
            buf.extend_from_slice(&one.stsd);
            Ok(())
        }
        all => {
            let pos = begin_full(buf, b"stsd", 0, 0);
            u32be(buf, all.iter().map(|d| d.count).sum());
            for d in all {
                // Checked by `stsd_entry_count` when the description was adopted.
                buf.extend_from_slice(d.stsd.get(16..).unwrap_or_default());
            }
            end(buf, pos)
        }
    }
}
