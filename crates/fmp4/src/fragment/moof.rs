//! One fragment's bytes (ISO/IEC 14496-12 §8.8): `moof` with `mfhd` (§8.8.5) and per
//! track present a `traf` of `tfhd` (§8.8.7), `tfdt` (§8.8.12) and one `trun`
//! (§8.8.8); then the `mdat` header, then the samples' own `Bytes`, track after track.
//!
//! Owns the layout and the sample flags; the samples, their durations and where the
//! fragment ends come in from `fragmenter`. Every `trun` `data_offset` is patched once
//! the `moof` size is known: with `default-base-is-moof` it counts from the `moof`'s
//! first byte (§8.8.7.1), so the first track's data starts at `moof` size + the `mdat`
//! header.

use bytes::Bytes;

use super::{CutReason, FragmentError};
use crate::writer::{begin, begin_full, end, u32be, u64be};

// tfhd flags (§8.8.7.1).
const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
// trun flags (§8.8.8.1).
const DATA_OFFSET: u32 = 0x00_0001;
const SAMPLE_DURATION: u32 = 0x00_0100;
const SAMPLE_SIZE: u32 = 0x00_0200;
const SAMPLE_FLAGS: u32 = 0x00_0400;
const SAMPLE_CTO: u32 = 0x00_0800;

/// Sample flags (§8.8.3.1) of a sync sample: `sample_depends_on` 2, "does not depend
/// on others (I picture)".
pub(super) const SYNC_FLAGS: u32 = 0x0200_0000;
/// Of any other: `sample_depends_on` 1, "depends on others (not an I picture)", and
/// `sample_is_non_sync_sample`. The same words ffmpeg writes.
pub(super) const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// Bytes of one sample's `trun` row: duration, size, flags, composition offset.
pub(super) const ROW_BYTES: usize = 16;
/// Bytes of a fragment beside its rows and payloads: `moof` and `mfhd` headers, a
/// 16-byte `mdat` header.
pub(super) const FIXED_BYTES: usize = 8 + 16 + 16;
/// Bytes of one `traf` beside its rows: `traf`, `tfhd` (16), `tfdt` v1 (20), `trun`
/// header with count and data offset (20).
pub(super) const TRAF_BYTES: usize = 8 + 16 + 20 + 20;

/// A sample waiting in a fragment; its duration arrives with the track's next sample.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    pub(super) decode_ticks: u64,
    pub(super) duration: Option<u32>,
    pub(super) composition_offset: i32,
    pub(super) is_sync: bool,
    pub(super) data: Bytes,
}

/// One track's part of a written fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentTrack {
    /// Index of the track (its `track_ID` is this plus one).
    pub track: usize,
    /// `tfdt`: decode time of the track's first sample in the fragment, ticks.
    pub base_decode_ticks: u64,
    /// Sum of the track's sample durations in the fragment, ticks.
    pub duration_ticks: u64,
    /// Samples of the track in the fragment.
    pub sample_count: u32,
}

/// One `moof`+`mdat`: the header bytes, then the samples' `Bytes` as they came in.
#[derive(Clone, Debug)]
pub struct Fragment {
    /// `mfhd` sequence number: 1 for a fragmenter's first fragment, then +1.
    pub sequence_number: u32,
    /// The tracks with samples in this fragment, in track order.
    pub tracks: Vec<FragmentTrack>,
    /// The first sample of the reference (first video) track is a sync sample, or
    /// there is none in this fragment: playback can start here (as
    /// [`MediaSegment::starts_with_keyframe`](crate::MediaSegment::starts_with_keyframe)).
    pub starts_with_keyframe: bool,
    /// Why the fragment ended where it did.
    pub ended_by: CutReason,
    pieces: Vec<Bytes>,
    len: usize,
}

impl Fragment {
    /// The fragment's bytes in order: `moof` and the `mdat` header in the first
    /// piece, then each sample's `Bytes` (shared with the input, not copied).
    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// The pieces, owned.
    pub fn into_pieces(self) -> Vec<Bytes> {
        self.pieces
    }

    /// Total length in bytes: what a caller allocates to keep it contiguous.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a fragment holds at least a `moof`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fragment in one buffer. This copies every media byte once: a caller with a
    /// final home for the bytes (a mapping it keeps) should copy [`Self::pieces`]
    /// there instead.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.len);
        for p in &self.pieces {
            out.extend_from_slice(p);
        }
        Bytes::from(out)
    }
}

/// Writes one fragment of `runs` (index = track; empty runs are left out). Every
/// sample has its duration. The caller bounds the total under 1 GiB
/// ([`MAX_BYTES_RANGE`](super::MAX_BYTES_RANGE)), so sizes and offsets fit.
pub(super) fn write(
    sequence_number: u32,
    runs: Vec<Vec<Pending>>,
    reference: Option<usize>,
    ended_by: CutReason,
) -> Result<Fragment, FragmentError> {
    let present = runs.iter().filter(|r| !r.is_empty()).count();
    let samples: usize = runs.iter().map(Vec::len).sum();
    let payload: usize = runs.iter().flatten().map(|s| s.data.len()).sum();
    let mut h = Vec::with_capacity(FIXED_BYTES + present * TRAF_BYTES + samples * ROW_BYTES);
    let mut tracks = Vec::with_capacity(present);
    // Where each `trun`'s data_offset field is, and the payload bytes before its run.
    let mut offsets = Vec::with_capacity(present);

    let moof = begin(&mut h, b"moof");
    let mfhd = begin_full(&mut h, b"mfhd", 0, 0);
    u32be(&mut h, sequence_number);
    end(&mut h, mfhd)?;
    let mut data_before = 0usize;
    for (track, run) in runs.iter().enumerate() {
        let Some(first) = run.first() else { continue };
        let traf = begin(&mut h, b"traf");
        let tfhd = begin_full(&mut h, b"tfhd", 0, DEFAULT_BASE_IS_MOOF);
        u32be(&mut h, track as u32 + 1);
        end(&mut h, tfhd)?;
        // Version 1 always: decode times are 64-bit, whatever their size today.
        let tfdt = begin_full(&mut h, b"tfdt", 1, 0);
        u64be(&mut h, first.decode_ticks);
        end(&mut h, tfdt)?;

        let any_cto = run.iter().any(|s| s.composition_offset != 0);
        let negative = run.iter().any(|s| s.composition_offset < 0);
        let mut flags = DATA_OFFSET | SAMPLE_DURATION | SAMPLE_SIZE | SAMPLE_FLAGS;
        if any_cto {
            flags |= SAMPLE_CTO;
        }
        // §8.8.8.2: version 1 makes sample_composition_time_offset signed.
        let trun = begin_full(&mut h, b"trun", u8::from(negative), flags);
        u32be(&mut h, run.len() as u32);
        offsets.push((h.len(), data_before));
        u32be(&mut h, 0); // data_offset, patched below
        let mut duration = 0u64;
        for s in run {
            // `fragmenter` sets every duration before writing; 0 would only shorten.
            let d = s.duration.unwrap_or(0);
            duration += u64::from(d);
            u32be(&mut h, d);
            u32be(&mut h, s.data.len() as u32);
            u32be(
                &mut h,
                if s.is_sync {
                    SYNC_FLAGS
                } else {
                    NON_SYNC_FLAGS
                },
            );
            if any_cto {
                h.extend_from_slice(&s.composition_offset.to_be_bytes());
            }
            data_before += s.data.len();
        }
        end(&mut h, trun)?;
        end(&mut h, traf)?;
        tracks.push(FragmentTrack {
            track,
            base_decode_ticks: first.decode_ticks,
            duration_ticks: duration,
            sample_count: run.len() as u32,
        });
    }
    end(&mut h, moof)?;

    let mdat_size = u32::try_from(payload + 8).map_err(|_| FragmentError::TooLarge)?;
    let data_start = h.len() + 8;
    u32be(&mut h, mdat_size);
    h.extend_from_slice(b"mdat");
    for (field, before) in offsets {
        let offset = i32::try_from(data_start + before).map_err(|_| FragmentError::TooLarge)?;
        h[field..field + 4].copy_from_slice(&offset.to_be_bytes());
    }

    let starts_with_keyframe = reference
        .and_then(|r| runs.get(r))
        .and_then(|r| r.first())
        .is_none_or(|s| s.is_sync);
    let len = h.len() + payload;
    let mut pieces = Vec::with_capacity(samples + 1);
    pieces.push(Bytes::from(h));
    pieces.extend(runs.into_iter().flatten().map(|s| s.data));
    Ok(Fragment {
        sequence_number,
        tracks,
        starts_with_keyframe,
        ended_by,
        pieces,
        len,
    })
}
