//! A chunk: one parsed CMAF segment of one rendition, as the ring, the cutter and the
//! writers see it.
//!
//! Owns [`Chunk`] and its immutable payload. The payload (bytes, sample tables, init)
//! is built once at ingest and shared by `Arc`; only the wall-clock placement
//! (`start_utc`) can change later, when a playlist date re-anchors it, and that makes
//! a new `Chunk` around the same payload. Nothing here knows boxes beyond the model
//! types of `dvrclip_fmp4`.
//!
//! Times: `*_ticks` are the reference track's media time (video if the rendition has
//! video, else its first track) in `timescale`; `*_utc` are wall time.

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_fmp4::progressive::SegmentTables;
use dvrclip_fmp4::{InitSegment, MediaSegment};

use crate::WallTime;
use crate::memory::Ticket;
use crate::time::{MICROS_PER_SEC, micros_from_ticks};

/// The immutable part of a chunk, shared by every `Chunk` that places it in time.
#[derive(Debug)]
pub(crate) struct ChunkMedia {
    pub(crate) seq: u64,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) init: Arc<InitSegment>,
    pub(crate) segment: MediaSegment,
    /// Its rows of a progressive MP4's sample tables, summarised and encoded at
    /// ingest so a clip's header takes them by reference, per segment, not per
    /// sample (`crate::mp4`); counted in [`memory_cost`].
    pub(crate) tables: SegmentTables,
    pub(crate) start_ticks: u64,
    pub(crate) duration_ticks: u64,
    pub(crate) timescale: u32,
    pub(crate) keyframe: bool,
    pub(crate) arrival: WallTime,
    pub(crate) ticket: Ticket,
}

/// One segment of one rendition, placed on the wall clock. Cheap to clone through
/// `Arc<Chunk>`; the payload is never copied.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub(crate) media: Arc<ChunkMedia>,
    pub(crate) start_utc: WallTime,
    pub(crate) discontinuity: u64,
}

impl Chunk {
    /// Position in its rendition: 0, 1, 2, … in push order, never reused.
    pub fn seq(&self) -> u64 {
        self.media.seq
    }

    /// The segment's file name as uploaded (`segment12.m4s`), if the pusher gave one.
    pub fn name(&self) -> Option<&str> {
        self.media.name.as_deref()
    }

    /// The init segment this chunk decodes with (its discontinuity's).
    pub fn init(&self) -> &Arc<InitSegment> {
        &self.media.init
    }

    /// The parsed segment: sample tables and `mdat` ranges.
    pub fn segment(&self) -> &MediaSegment {
        &self.media.segment
    }

    /// The segment's rows of a progressive MP4's sample tables, summarised at ingest.
    pub fn tables(&self) -> &SegmentTables {
        &self.media.tables
    }

    /// The segment's bytes verbatim (what an HLS segment URL serves).
    pub fn bytes(&self) -> &Bytes {
        &self.media.segment.bytes
    }

    /// Payload length, bytes.
    pub fn len_bytes(&self) -> u64 {
        self.media.segment.bytes.len() as u64
    }

    /// What holding the chunk costs, bytes: the payload, its parsed sample tables,
    /// their MP4 summary, its share of its ring's MP4 header index and the chunk's
    /// own record ([`memory_cost`]). The memory budget counts this, so it bounds what the
    /// process really holds (the tables are about a tenth of a 2 s segment's bytes).
    pub fn memory_bytes(&self) -> u64 {
        self.media.ticket.bytes()
    }

    /// The discontinuity it belongs to: a per-rendition counter that grows at every
    /// encoder restart or timestamp jump. Consecutive chunks with different values need
    /// `EXT-X-DISCONTINUITY` between them (RFC 8216 §4.3.2.3).
    pub fn discontinuity(&self) -> u64 {
        self.discontinuity
    }

    /// Whether the first video sample is a sync sample (or there is no video).
    pub fn is_keyframe(&self) -> bool {
        self.media.keyframe
    }

    /// Reference-track decode time of the first sample, ticks.
    pub fn start_ticks(&self) -> u64 {
        self.media.start_ticks
    }

    /// Reference-track duration, ticks.
    pub fn duration_ticks(&self) -> u64 {
        self.media.duration_ticks
    }

    /// Reference-track timescale, ticks per second.
    pub fn timescale(&self) -> u32 {
        self.media.timescale
    }

    /// Duration, microseconds.
    pub fn duration_micros(&self) -> i64 {
        micros_from_ticks(self.media.duration_ticks, self.media.timescale)
    }

    /// Duration, seconds (what `#EXTINF` carries).
    pub fn duration_secs(&self) -> f64 {
        self.media.duration_ticks as f64 / f64::from(self.media.timescale.max(1))
    }

    /// Wall-clock time of the first sample (`EXT-X-PROGRAM-DATE-TIME`).
    pub fn start_utc(&self) -> WallTime {
        self.start_utc
    }

    /// `start_utc + duration`.
    pub fn end_utc(&self) -> WallTime {
        self.start_utc.add_micros(self.duration_micros())
    }

    /// When the engine received it.
    pub fn arrival_utc(&self) -> WallTime {
        self.media.arrival
    }

    pub(crate) fn ticket(&self) -> &Ticket {
        &self.media.ticket
    }

    /// Whether two `Chunk`s share one payload (a re-anchored copy of the same upload).
    pub fn same_payload(&self, other: &Chunk) -> bool {
        Arc::ptr_eq(&self.media, &other.media)
    }
}

/// What a chunk's share of its block in the ring's MP4 header index (`ring::index`)
/// costs beyond its own table rows, bytes: its
/// `stsc` chunks (24 bytes per track), a sync number (8), its `mdat` slice (32),
/// its length (8), the runs it kept as numbers that the block encodes (up to 24
/// bytes per table that changes within it: `ctts` of B-frame video), with room for
/// a third track. Counted in [`memory_cost`]; a test holds a block to it.
pub(crate) const BLOCK_SHARE_BYTES: u64 = 192;

/// What a chunk of `segment` will cost ([`Chunk::memory_bytes`]): the payload, its
/// parsed tables, their MP4 summary, its share of the ring's MP4 header index (the
/// summary again, merged into its block, and [`BLOCK_SHARE_BYTES`]; counted whether
/// or not its block is made) and the chunk's own record. Computed once, when its
/// ticket is made.
pub(crate) fn memory_cost(segment: &MediaSegment, tables: &SegmentTables) -> u64 {
    (segment.bytes.len()
        + segment.table_bytes()
        + std::mem::size_of::<ChunkMedia>()
        + std::mem::size_of::<Chunk>()) as u64
        + 2 * tables.memory_bytes()
        + BLOCK_SHARE_BYTES
}

/// Rough bitrate of a run of chunks, bytes per second; used to estimate what a
/// recording clip will still take.
pub(crate) fn bytes_per_sec<'a>(chunks: impl Iterator<Item = &'a Arc<Chunk>>) -> u64 {
    let (mut bytes, mut micros) = (0u64, 0i64);
    for c in chunks {
        bytes += c.len_bytes();
        micros = micros.saturating_add(c.duration_micros());
    }
    if micros <= 0 {
        return 0;
    }
    (u128::from(bytes) * MICROS_PER_SEC as u128 / micros as u128) as u64
}
