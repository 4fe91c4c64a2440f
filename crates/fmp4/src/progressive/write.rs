//! Box bytes of the progressive header: `ftyp` and `moov` with its sample tables.
//!
//! Owns the byte layout only (ISO/IEC 14496-12 §8.2–§8.7); every number comes in
//! from `track`'s tables or the [`TrackHeader`]s `build` computes, and nothing here
//! imports `build`. Box sizes are reserved and back-patched. Chunk offsets are
//! written relative to the `mdat` body, then shifted by [`patch_offsets`] once the
//! header length is known.
//!
//! The header is [`Parts`]: bytes of its own (box headers, counts, rows walked at a
//! seam, `stss`, `stsc`, chunk offsets) with the chunks' encoded rows (`stsz`
//! sizes, inner `stts`/`ctts` runs) between them as shared pieces. A box that holds
//! shared pieces is sized by its logical length, so writing a 4 h clip's header
//! costs O(chunks), not a copy of its 7 MB of rows.

use std::ops::Range;

use bytes::Bytes;

use super::BuildError;
use super::rows::{RowValue, RunRow, SizeRows};
use super::track::OutTrack;
use crate::writer::{self, begin, u16be, u32be, u64be};

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

/// The header as written: bytes of its own with shared pieces between them.
pub(super) struct Parts {
    buf: Vec<u8>,
    parts: Vec<Part>,
    /// Where in `buf` the bytes written since the last shared piece start.
    open: usize,
    shared: u64,
}

enum Part {
    Own(Range<usize>),
    Shared(Bytes),
}

/// A box begun in [`Parts`]: where its size field is, where the box starts.
pub(super) struct Open {
    at: usize,
    start: u64,
}

impl Parts {
    fn with_capacity(own: usize, pieces: usize) -> Self {
        Parts {
            buf: Vec::with_capacity(own),
            parts: Vec::with_capacity(pieces),
            open: 0,
            shared: 0,
        }
    }

    /// The header's length so far, shared pieces included.
    pub(super) fn len(&self) -> u64 {
        self.buf.len() as u64 + self.shared
    }

    /// Bytes of its own (what holding the header costs beyond its chunks).
    pub(super) fn own_len(&self) -> usize {
        self.buf.len()
    }

    /// The end of its own bytes, to write into.
    pub(super) fn own(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn begin(&mut self, kind: &[u8; 4]) -> Open {
        let start = self.len();
        Open {
            at: begin(&mut self.buf, kind),
            start,
        }
    }

    fn begin_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) -> Open {
        let open = self.begin(kind);
        u32be(
            &mut self.buf,
            (u32::from(version) << 24) | (flags & 0x00ff_ffff),
        );
        open
    }

    /// Writes the size of a box begun with [`Parts::begin`], which ends here.
    fn end(&mut self, open: Open) -> Result<(), BuildError> {
        let size =
            u32::try_from(self.len() - open.start).map_err(|_| too_large(writer::TooLarge))?;
        self.buf[open.at..open.at + 4].copy_from_slice(&size.to_be_bytes());
        Ok(())
    }

    /// Puts `bytes` here by reference.
    fn share(&mut self, bytes: &Bytes) {
        if bytes.is_empty() {
            return;
        }
        if self.open < self.buf.len() {
            self.parts.push(Part::Own(self.open..self.buf.len()));
        }
        self.parts.push(Part::Shared(bytes.clone()));
        self.open = self.buf.len();
        self.shared += bytes.len() as u64;
    }

    /// The header as `Bytes` pieces in order: slices of its own bytes (one
    /// allocation) and the shared pieces.
    pub(super) fn into_pieces(mut self) -> impl ExactSizeIterator<Item = Bytes> {
        if self.open < self.buf.len() {
            self.parts.push(Part::Own(self.open..self.buf.len()));
        }
        let own = Bytes::from(self.buf);
        self.parts.into_iter().map(move |p| match p {
            Part::Own(r) => own.slice(r),
            Part::Shared(b) => b,
        })
    }
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

/// `ftyp` then the whole `moov`, with chunk offsets relative to the `mdat` body,
/// with room left for the `mdat` header (written by the caller after it).
pub(super) fn moov(
    ftyp: &[u8],
    tracks: &[TrackHeader<'_>],
    movie_timescale: u32,
    movie_duration: u64,
    next_track_id: u32,
    wide_offsets: bool,
) -> Result<(Parts, Vec<OffsetPatch>), BuildError> {
    let estimate: usize = tracks
        .iter()
        .map(|h| {
            let t = h.track;
            1024 + t.sizes.own_len() * 4
                + (t.stts.own_rows() + t.ctts.own_rows()) * 8
                + t.sync.len() as usize * 4
                + t.chunks.len() * 20
                + t.descriptions.iter().map(|d| d.stsd.len()).sum::<usize>()
        })
        .sum::<usize>()
        + 256
        + ftyp.len();
    // A shared piece, and its own bytes before it, per stretch of encoded rows.
    let pieces: usize = tracks
        .iter()
        .map(|h| {
            2 * (h.track.sizes.stretches() + h.track.stts.own_rows() + h.track.ctts.own_rows())
        })
        .sum::<usize>()
        + 1;
    let mut parts = Parts::with_capacity(estimate, pieces);
    parts.own().extend_from_slice(ftyp);
    let mut patches = Vec::with_capacity(tracks.len());
    let moov = parts.begin(b"moov");
    writer::mvhd(parts.own(), movie_timescale, movie_duration, next_track_id).map_err(too_large)?;
    for h in tracks {
        trak(&mut parts, h, &mut patches, wide_offsets)?;
    }
    parts.end(moov)?;
    Ok((parts, patches))
}

/// Adds the header length to every chunk offset written by [`moov`].
pub(super) fn patch_offsets(moov: &mut Parts, patches: &[OffsetPatch], header_len: u64) {
    for p in patches {
        let width = if p.wide { 8 } else { 4 };
        let table = moov.buf.get_mut(p.pos..p.pos + p.count * width);
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
    parts: &mut Parts,
    h: &TrackHeader<'_>,
    patches: &mut Vec<OffsetPatch>,
    wide: bool,
) -> Result<(), BuildError> {
    let t = h.track;
    let trak = parts.begin(b"trak");
    let buf = parts.own();
    writer::tkhd(buf, h.track_id, h.duration, t.kind, t.video).map_err(too_large)?;
    let edts = begin(buf, b"edts");
    elst(buf, &h.edits)?;
    end(buf, edts)?;
    let mdia = parts.begin(b"mdia");
    let buf = parts.own();
    writer::mdhd(buf, t.timescale, t.decode_end, t.language).map_err(too_large)?;
    writer::hdlr(buf, t.kind).map_err(too_large)?;
    let minf = parts.begin(b"minf");
    writer::media_header_and_dinf(parts.own(), t.kind).map_err(too_large)?;
    stbl(parts, t, patches, wide)?;
    parts.end(minf)?;
    parts.end(mdia)?;
    parts.end(trak)
}

/// `elst` (§8.6.6), version 1 when a value needs 64 bits.
fn elst(buf: &mut Vec<u8>, edits: &[Edit]) -> Result<(), BuildError> {
    let v1 = edits
        .iter()
        .any(|e| e.duration > u64::from(u32::MAX) || i32::try_from(e.media_time).is_err());
    let pos = writer::begin_full(buf, b"elst", u8::from(v1), 0);
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
    parts: &mut Parts,
    t: &OutTrack,
    patches: &mut Vec<OffsetPatch>,
    wide: bool,
) -> Result<(), BuildError> {
    let stbl = parts.begin(b"stbl");
    stsd(parts.own(), t)?;

    // stts (§8.6.1.2): runs of equal durations, merged across segments by `rows`.
    let pos = parts.begin_full(b"stts", 0, 0);
    u32be(parts.own(), t.stts.rows());
    run_rows(parts, t.stts.pieces());
    parts.end(pos)?;

    // ctts (§8.6.1.3): omitted when every offset is 0; version 1 for signed offsets.
    if t.ctts.any_nonzero() {
        let pos = parts.begin_full(b"ctts", u8::from(t.ctts.any_negative()), 0);
        u32be(parts.own(), t.ctts.rows());
        run_rows(parts, t.ctts.pieces());
        parts.end(pos)?;
    }

    // stss (§8.6.2): "If the sync sample box is not present, every sample is a sync
    // sample."
    if t.sync.len() != t.sample_count {
        let pos = parts.begin_full(b"stss", 0, 0);
        let buf = parts.own();
        u32be(buf, t.sync.len());
        for (row, s) in rows(buf, t.sync.len() as usize, 4).zip(t.sync.numbers()) {
            row.copy_from_slice(&s.to_be_bytes());
        }
        parts.end(pos)?;
    }

    // stsz (§8.7.3): a single size when all samples share it.
    let pos = parts.begin_full(b"stsz", 0, 0);
    match t.sizes.uniform() {
        Some(size) => {
            u32be(parts.own(), size);
            u32be(parts.own(), t.sample_count);
        }
        None => {
            u32be(parts.own(), 0);
            u32be(parts.own(), t.sample_count);
            for piece in t.sizes.pieces() {
                match piece {
                    SizeRows::Own(sizes) => {
                        for (row, &s) in rows(parts.own(), sizes.len(), 4).zip(sizes) {
                            row.copy_from_slice(&s.to_be_bytes());
                        }
                    }
                    SizeRows::Encoded(bytes) => parts.share(bytes),
                }
            }
        }
    }
    parts.end(pos)?;

    let buf = parts.own();
    // stsc (§8.7.4): one chunk per fragment's run of samples; a new entry only when
    // the samples per chunk or the description change.
    let pos = writer::begin_full(buf, b"stsc", 0, 0);
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
    let pos = writer::begin_full(buf, if wide { b"co64" } else { b"stco" }, 0, 0);
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
    parts.end(stbl)
}

/// A run-length table's rows: its own written, encoded ones shared.
fn run_rows<'a, T: RowValue + 'a>(parts: &mut Parts, rows: impl Iterator<Item = RunRow<'a, T>>) {
    for row in rows {
        match row {
            RunRow::Run(n, v) => {
                let buf = parts.own();
                u32be(buf, n);
                buf.extend_from_slice(&v.to_be());
            }
            RunRow::Encoded(bytes) => parts.share(bytes),
        }
    }
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
            let pos = writer::begin_full(buf, b"stsd", 0, 0);
            u32be(buf, all.iter().map(|d| d.count).sum());
            for d in all {
                // Checked by `stsd_entry_count` when the description was adopted.
                buf.extend_from_slice(d.stsd.get(16..).unwrap_or_default());
            }
            end(buf, pos)
        }
    }
}
