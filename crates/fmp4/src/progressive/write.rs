//! Box bytes of the progressive header: `ftyp` and `moov` with its sample tables.
//!
//! Owns the byte layout only (ISO/IEC 14496-12 §8.2–§8.7); every number comes in
//! from `track`'s tables or the [`TrackHeader`]s `build` computes, and nothing here
//! imports `build`. Box sizes are reserved and back-patched. Chunk offsets are
//! written relative to the `mdat` body, then shifted by [`patch_offsets`] once the
//! header length is known.

use super::BuildError;
use super::track::OutTrack;
use crate::writer::{self, begin, begin_full, u16be, u32be, u64be};

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

/// The shared box `end`, its overflow in this module's error.
fn end(buf: &mut [u8], pos: usize) -> Result<(), BuildError> {
    writer::end(buf, pos).map_err(too_large)
}

fn too_large(_: writer::TooLarge) -> BuildError {
    BuildError::TooLarge("box over 4 GiB")
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
    writer::mvhd(&mut buf, movie_timescale, movie_duration, next_track_id).map_err(too_large)?;
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

fn trak(
    buf: &mut Vec<u8>,
    h: &TrackHeader<'_>,
    patches: &mut Vec<OffsetPatch>,
    wide: bool,
) -> Result<(), BuildError> {
    let t = h.track;
    let trak = begin(buf, b"trak");
    writer::tkhd(buf, h.track_id, h.duration, t.kind, t.video).map_err(too_large)?;
    let edts = begin(buf, b"edts");
    elst(buf, &h.edits)?;
    end(buf, edts)?;
    let mdia = begin(buf, b"mdia");
    writer::mdhd(buf, t.timescale, t.decode_end, t.language).map_err(too_large)?;
    writer::hdlr(buf, t.kind).map_err(too_large)?;
    let minf = begin(buf, b"minf");
    writer::media_header_and_dinf(buf, t.kind).map_err(too_large)?;
    stbl(buf, t, patches, wide)?;
    end(buf, minf)?;
    end(buf, mdia)?;
    end(buf, trak)
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
        for (row, &(n, o)) in rows(buf, t.ctts.len(), 8).zip(&t.ctts) {
            row[..4].copy_from_slice(&n.to_be_bytes());
            row[4..].copy_from_slice(&o.to_be_bytes());
        }
        end(buf, pos)?;
    }

    // stss (§8.6.2): "If the sync sample box is not present, every sample is a sync
    // sample."
    if t.sync.len() != t.sample_count as usize {
        let pos = begin_full(buf, b"stss", 0, 0);
        u32be(buf, t.sync.len() as u32);
        for (row, &s) in rows(buf, t.sync.len(), 4).zip(&t.sync) {
            row.copy_from_slice(&s.to_be_bytes());
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
        for (row, &s) in rows(buf, t.sizes.len(), 4).zip(&t.sizes) {
            row.copy_from_slice(&s.to_be_bytes());
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

/// `count` table rows of `width` bytes appended to `buf`, to be filled in place: one
/// length check for the whole table instead of one per field, so the loop that fills
/// them (a million rows for 4 h of video and audio) compiles to plain stores.
fn rows(buf: &mut Vec<u8>, count: usize, width: usize) -> std::slice::ChunksExactMut<'_, u8> {
    let start = buf.len();
    buf.resize(start + count * width, 0);
    buf[start..].chunks_exact_mut(width)
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
