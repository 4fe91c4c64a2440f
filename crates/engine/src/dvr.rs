//! What a stream's DVR holds: time ranges, the gaps between them and the
//! discontinuities (ref/api.md "Streams", `GET /streaming/streams/{id}/dvr`).
//!
//! Owns the report types and the one O(n) pass over a ring that fills them; it is
//! an operator's view, computed on request, never on the ingest path.

use crate::ring::RingState;
use crate::{StreamId, WallTime};

/// Chunks closer than this count as touching (no gap).
const GAP_TOLERANCE_MICROS: i64 = 100_000;

/// A contiguous run of chunks of one discontinuity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DvrRange {
    /// First chunk's start.
    pub start_utc: WallTime,
    /// Last chunk's end.
    pub end_utc: WallTime,
    /// The discontinuity the run belongs to.
    pub discontinuity: u64,
    /// Chunks in the run.
    pub chunks: usize,
}

/// Missing wall time between two ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DvrGap {
    /// End of the range before.
    pub start_utc: WallTime,
    /// Start of the range after.
    pub end_utc: WallTime,
}

/// Where a discontinuity begins in the DVR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DvrDiscontinuity {
    /// Its number in the rendition.
    pub discontinuity: u64,
    /// Its first held chunk's start.
    pub start_utc: WallTime,
}

/// One rendition's DVR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenditionDvr {
    /// Rendition name.
    pub name: String,
    /// Chunks held.
    pub chunks: usize,
    /// Payload bytes held by the ring.
    pub bytes: u64,
    /// Contiguous runs, oldest first.
    pub ranges: Vec<DvrRange>,
    /// Holes between consecutive ranges.
    pub gaps: Vec<DvrGap>,
    /// Each discontinuity with a held chunk, oldest first.
    pub discontinuities: Vec<DvrDiscontinuity>,
}

/// A stream's DVR, per rendition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DvrInfo {
    /// The stream.
    pub stream: StreamId,
    /// The configured window, seconds.
    pub dvr_duration_secs: u32,
    /// Renditions in the stream's order.
    pub renditions: Vec<RenditionDvr>,
}

pub(crate) fn describe(name: &str, ring: &RingState) -> RenditionDvr {
    let mut ranges: Vec<DvrRange> = Vec::new();
    let mut gaps = Vec::new();
    let mut discs: Vec<DvrDiscontinuity> = Vec::new();
    for c in &ring.chunks {
        if discs
            .last()
            .is_none_or(|d| d.discontinuity != c.discontinuity())
        {
            discs.push(DvrDiscontinuity {
                discontinuity: c.discontinuity(),
                start_utc: c.start_utc(),
            });
        }
        match ranges.last_mut() {
            Some(r)
                if r.discontinuity == c.discontinuity()
                    && c.start_utc().micros_since(r.end_utc) <= GAP_TOLERANCE_MICROS =>
            {
                r.end_utc = r.end_utc.max(c.end_utc());
                r.chunks += 1;
            }
            last => {
                if let Some(r) = last {
                    if c.start_utc().micros_since(r.end_utc) > GAP_TOLERANCE_MICROS {
                        gaps.push(DvrGap {
                            start_utc: r.end_utc,
                            end_utc: c.start_utc(),
                        });
                    }
                }
                ranges.push(DvrRange {
                    start_utc: c.start_utc(),
                    end_utc: c.end_utc(),
                    discontinuity: c.discontinuity(),
                    chunks: 1,
                });
            }
        }
    }
    RenditionDvr {
        name: name.to_string(),
        chunks: ring.chunks.len(),
        bytes: ring.bytes,
        ranges,
        gaps,
        discontinuities: discs,
    }
}
