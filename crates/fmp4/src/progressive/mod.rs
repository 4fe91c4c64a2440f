//! A progressive MP4 of a clip as a virtual file: `ftyp`, `moov`, then one `mdat`
//! whose body is a list of [`Bytes`] sub-slices of the clip's media segments.
//!
//! This module owns turning an ordered run of parsed CMAF segments of ONE rendition
//! into an immutable [`VirtualMp4`]: header bytes computed once, a piece table, the
//! total length, a strong ETag and the `Content-Type`. Any byte range is then answered
//! by a binary search for its first piece and a walk forward, so a 1 MiB read in the
//! middle of a 4 GiB clip costs O(log n) and no media byte is ever copied.
//! It must hold no I/O and no HTTP: the server's `ranged` module wraps it.
//!
//! Boxes written: ISO/IEC 14496-12 §4.3 `ftyp`, §8.2.2 `mvhd`, §8.3.2 `tkhd`, §8.6.6
//! `elst`, §8.4.2 `mdhd`, §8.4.3 `hdlr`, §8.4.5 `vmhd`/`smhd`, §8.7.2 `dref`, §8.5.2
//! `stsd` (carried verbatim from the init), §8.6.1.2 `stts`, §8.6.1.3 `ctts`,
//! §8.6.2 `stss`, §8.7.3 `stsz`, §8.7.4 `stsc`, §8.7.5 `stco`/`co64`, §8.1.1 `mdat`.
//!
//! Timeline, as ffmpeg's `-movflags +faststart` output but without its A/V skew: the
//! first video keyframe is presented at time 0 and every other track starts at 0 too;
//! `elst` absorbs the B-frame composition delay and any audio lead. Across an encoder
//! restart (a new init segment, or the reference track's decode time not continuing)
//! the new run is placed where the previous one's presentation ends, by stretching or
//! shrinking the last sample before the seam (and dropping audio samples that would
//! overlap), so the file plays through as one continuous timeline.
//!
//! A later init whose sample entry differs (e.g. a new resolution after a restart)
//! becomes a second entry of `stsd`, chosen per chunk by `stsc`'s
//! `sample_description_index`; its parameter sets (from `avcC`/`hvcC`) are also
//! repeated in-band before the first keyframe after the switch, as a small extra
//! piece, because stream parsers (ffmpeg's) ignore the switch. A later init with
//! another timescale for a track has its samples' times rescaled into the first
//! init's timescale. Tracks other than video and audio are left out.
//!
//! Files, each depending only on those after it: `build` ([`Mp4Builder`]: timeline,
//! edit lists, layout, ETag), `write` (box bytes), `track` (the tables of one written
//! track, shared by both), `prepared` ([`SegmentTables`]: one segment's rows,
//! summarised once at ingest, which `track` appends whole where a run continues),
//! `rows` (table rows as encoded bytes shared with the chunks, and the per-clip
//! tables made of them), `block` ([`BlockTables`]: consecutive segments that
//! continue each other summarised as one, which the builder takes whole); `slices`
//! answers ranges of the finished file.
//!
//! The header is pieces too: its own bytes (box headers, counts, chunk offsets,
//! `stsc`, `stss`, rows walked at a seam) and, between them, each chunk's `stsz`
//! rows and inner `stts`/`ctts` runs as the `Bytes` encoded at ingest. So building a
//! 4 h clip's header costs O(chunks) and holds about 2 MB of its own (its bytes and
//! its piece table), not 7 MB. Given [`BlockTables`] (the engine's rings make them
//! every 64 chunks), a block of segments is one push: its rows a few pieces, its
//! `mdat` slices one piece shared by `Arc`, so a 4 h header visits O(blocks)
//! records, not 7,200 chunks'.
//!
//! Proof: unit tests walk the written `moov` box by box (`tests.rs`), and a
//! differential proptest holds [`Mp4Builder::push_prepared`] and
//! [`Mp4Builder::push_block`] to the very bytes [`Mp4Builder::push`] writes sample by
//! sample (seams, trims, hostile tables, blocks cut anywhere); the ffmpeg
//! fixtures are checked by ffprobe, `ffmpeg -f null` and the `mp4` crate
//! (`tests/progressive.rs`; `DVRCLIP_KEEP_MP4=1` keeps the files); costs are in
//! `benches/mp4.rs` (`cargo bench --bench mp4`).

mod block;
mod build;
mod prepared;
mod rows;
mod slices;
#[cfg(test)]
mod tests;
mod track;
mod write;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

pub use block::BlockTables;
pub use build::Mp4Builder;
pub use prepared::SegmentTables;
pub use slices::Pieces;

use crate::model::FourCC;

/// Bumped whenever the bytes written for the same input change, so old ETags die.
pub const FORMAT_VERSION: u32 = 1;

/// What a caller may choose about the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The clip's identity (e.g. its id and rendition), hashed into the ETag. Two
    /// files with the same identity, options and segment lengths share an ETag, so it
    /// must change whenever the referenced media could.
    pub identity: Vec<u8>,
    /// Trim playback to an exact window with edit lists (the `precise` option).
    pub trim: Option<Trim>,
}

/// A playback window inside the clip, measured from its first keyframe (time 0 of
/// the untrimmed file). Whole GOPs are kept; only the edit lists change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Trim {
    /// Time from the first keyframe to the first presented instant, µs.
    pub lead_in_micros: u64,
    /// Length of the window, µs (shortened when the media ends earlier).
    pub duration_micros: u64,
}

/// Where playback of the file really lies relative to its first keyframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipBounds {
    /// Time from the first keyframe to the first presented instant, µs (0 unless
    /// trimmed).
    pub lead_in_micros: u64,
    /// Playback duration (`mvhd` duration), µs.
    pub duration_micros: u64,
}

/// Why a file could not be built. Display text is for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No segment was pushed.
    #[error("no media segments")]
    Empty,
    /// The first init has no video or audio track.
    #[error("init segment has no video or audio track")]
    NoTracks,
    /// The first segment does not start with a sync sample of the reference track.
    #[error("segment {segment}: first sample of track {track_id} is not a keyframe")]
    NotKeyframe {
        /// Index of the pushed segment.
        segment: usize,
        /// Source track id.
        track_id: u32,
    },
    /// A sample's bytes lie outside the segment's `mdat` bodies.
    #[error("segment {segment}: track {track_id} sample at {offset}+{size} is outside every mdat")]
    SampleOutOfBounds {
        /// Index of the pushed segment.
        segment: usize,
        /// Source track id.
        track_id: u32,
        /// Sample offset in the segment.
        offset: u32,
        /// Sample size.
        size: u32,
    },
    /// Two tracks claim the same bytes.
    #[error("segment {segment}: samples of two tracks overlap at byte {offset}")]
    OverlappingSamples {
        /// Index of the pushed segment.
        segment: usize,
        /// Where the second claim starts.
        offset: u32,
    },
    /// A sample entry box that is not a well-formed `stsd`.
    #[error("track {track_id}: malformed stsd")]
    BadStsd {
        /// Source track id.
        track_id: u32,
    },
    /// A segment names a sample description its init does not have.
    #[error("segment {segment}: track {track_id} sample description {index} does not exist")]
    BadSampleDescription {
        /// Index of the pushed segment.
        segment: usize,
        /// Source track id.
        track_id: u32,
        /// 1-based index.
        index: u32,
    },
    /// The first presented sample would need a negative `elst` media time.
    #[error("track {track_id}: presentation starts before media time 0")]
    NegativeStart {
        /// Source track id.
        track_id: u32,
    },
    /// The trim window starts after the media ends.
    #[error("trim lead-in {lead_in_micros} µs is past the end of the media")]
    TrimOutOfRange {
        /// As requested.
        lead_in_micros: u64,
    },
    /// A count or box size passes what the format can hold.
    #[error("too large: {0}")]
    TooLarge(&'static str),
}

/// A byte range that does not lie inside the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("range {start}..{end} outside a file of {len} bytes")]
pub struct RangeError {
    /// Requested start.
    pub start: u64,
    /// Requested end (exclusive).
    pub end: u64,
    /// The file's length.
    pub len: u64,
}

/// One contiguous run of the file: header bytes (its own, or a chunk's encoded table
/// rows), a slice of a segment's `mdat`, or a block's `mdat` slices.
#[derive(Clone, Debug)]
struct Piece {
    /// File offset just past this piece; pieces are sorted by it.
    end: u64,
    data: PieceData,
}

#[derive(Clone, Debug)]
enum PieceData {
    One(Bytes),
    /// The `mdat` slices of a block of segments, shared with the block
    /// ([`BlockTables`]): one piece of the table, and no reference count of a
    /// segment touched, per block.
    Run(Arc<BodyRun>),
}

impl PieceData {
    fn len(&self) -> u64 {
        match self {
            PieceData::One(b) => b.len() as u64,
            PieceData::Run(r) => r.len(),
        }
    }
}

/// Consecutive `mdat` slices and where each ends, counted from the first's start.
#[derive(Debug, Default)]
struct BodyRun {
    slices: Vec<Bytes>,
    ends: Vec<u64>,
}

impl BodyRun {
    fn push(&mut self, slice: Bytes) {
        let end = self.len() + slice.len() as u64;
        self.slices.push(slice);
        self.ends.push(end);
    }

    fn len(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Heap bytes held of its own (the slices' payloads are the segments').
    fn memory_bytes(&self) -> usize {
        self.slices.capacity() * std::mem::size_of::<Bytes>() + self.ends.capacity() * 8
    }
}

/// An immutable progressive MP4 built from a clip's segments. Cheap to share behind
/// an `Arc`; reads never lock or copy media.
#[derive(Clone, Debug)]
pub struct VirtualMp4 {
    pieces: Vec<Piece>,
    len: u64,
    header_len: u64,
    /// Header bytes of its own; the rest of the header is the chunks' encoded rows.
    header_own: u64,
    etag: String,
    content_type: String,
    bounds: ClipBounds,
    sample_counts: Vec<(FourCC, u64)>,
}

impl VirtualMp4 {
    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true for a built file (it always holds `ftyp` and `moov`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes before the first media byte: `ftyp`, `moov` and the `mdat` header.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Pieces the header is made of (its own bytes between the shared rows): what a
    /// body reading the header gathers, and a sign of how it was built.
    pub fn header_pieces(&self) -> usize {
        self.pieces.partition_point(|p| p.end <= self.header_len)
    }

    /// Heap bytes this value holds of its own: the header's own bytes (box headers,
    /// counts, chunk offsets, `stsc`, `stss`: about 60 bytes a 2 s chunk for 30 fps
    /// video with its audio, 0.4 MB for 4 h), the piece table (40 bytes a piece,
    /// about 5 pieces a chunk: 1.4 MB for the same), and the small fields. The encoded
    /// rows and the media pieces are `Bytes` of the chunks it was built from and are
    /// not included: the chunks count them.
    pub fn memory_bytes(&self) -> u64 {
        // A block's slices count here too, though the block may still share them.
        let runs: usize = self
            .pieces
            .iter()
            .map(|p| match &p.data {
                PieceData::Run(r) => r.memory_bytes(),
                PieceData::One(_) => 0,
            })
            .sum();
        let table = runs
            + self.pieces.capacity() * std::mem::size_of::<Piece>()
            + self.sample_counts.capacity() * std::mem::size_of::<(FourCC, u64)>()
            + self.etag.capacity()
            + self.content_type.capacity();
        self.header_own
            .saturating_add(table as u64)
            .saturating_add(std::mem::size_of::<VirtualMp4>() as u64)
    }

    /// Strong entity tag, quoted as it goes on the wire (RFC 9110 §8.8.3), e.g.
    /// `"1a2b…"`.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// `video/mp4; codecs="avc1.64001f,mp4a.40.2"` (RFC 6381), or `audio/mp4; …` when
    /// there is no video track.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// Where playback lies relative to the first keyframe.
    pub fn bounds(&self) -> ClipBounds {
        self.bounds
    }

    /// Handler type and sample count of each written track, in `moov` order.
    pub fn sample_counts(&self) -> &[(FourCC, u64)] {
        &self.sample_counts
    }

    /// The bytes of `range` as pieces borrowed from `self`.
    pub fn range(&self, range: Range<u64>) -> Result<Pieces<&VirtualMp4>, RangeError> {
        Pieces::new(self, range)
    }

    /// The bytes of `range` as pieces owning `file` (e.g. an `Arc<VirtualMp4>`), for
    /// a response body that outlives the request handler.
    pub fn pieces<D>(file: D, range: Range<u64>) -> Result<Pieces<D>, RangeError>
    where
        D: std::ops::Deref<Target = VirtualMp4>,
    {
        Pieces::new(file, range)
    }
}
