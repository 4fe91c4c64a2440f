//! The ring's index for clip MP4 headers: its chunks in blocks of
//! [`DEFAULT_BLOCK_CHUNKS`] (configurable) consecutive chunks of one discontinuity, each block's sample-table rows, chunk
//! offsets and `mdat` slices summarised as one ([`BlockTables`]) once, at ingest.
//!
//! Why: a clip's MP4 header visited each chunk (its records, its summary, the
//! reference counts of its shared rows: a few cache misses each, 7,200 chunks for
//! 4 h), so a 4 h header took 12–40 ms; with the blocks it takes each whole block
//! as a few pieces and a tight loop over one contiguous array (`Clip::mp4`,
//! `Mp4Builder::push_block`), and visits only the chunks of the partial blocks at
//! its ends. The file is the same bytes either way.
//!
//! Owns [`Block`] and the rules of the index (`RingState` applies them):
//! - a block is made when a block's worth of chunks of one discontinuity have been
//!   pushed since the last block (or the discontinuity's start), outside the write
//!   lock but under the stream's anchor lock the push holds (O(samples of the
//!   block): 0.17 ms for 64 2 s chunks of 30 fps video and AAC in criterion,
//!   `index_block_64_segments`, every 128 s); chunks restored from the spool and a discontinuity's last partial
//!   block have none, and a block whose chunks do not continue each other is not
//!   made: those chunks are visited one by one, as before;
//! - a block leaves the ring with its first chunk (its `mdat` slices hold the
//!   payloads, so it must not outlive the ring's hold on them), so the index is
//!   bounded by the ring: at most one block per block's worth of chunks held;
//! - a clip takes a block only if its chunks are exactly the block's: a run of
//!   sequence numbers of this ring, whose first and last payloads
//!   are the block's (the numbers are never reused in a ring, so the run between
//!   is the same chunks).
//!
//! Cost: a block holds about what its chunks' [`dvrclip_fmp4::progressive::SegmentTables`]
//! hold (the `stsz` rows and inner `stts`/`ctts` runs again, merged), plus
//! [`crate::chunk::BLOCK_SHARE_BYTES`] a chunk (its `stsc` chunks, sync numbers, `mdat` slice and
//! length, runs kept as numbers): about 1.5 KB for a 2 s chunk of 30 fps video
//! with B-frames and AAC. Each chunk's
//! memory cost counts that share from ingest, whether or not its block is made.

use std::sync::{Arc, Weak};

use dvrclip_fmp4::progressive::BlockTables;

use crate::chunk::{Chunk, ChunkMedia};

/// Chunks per block unless configured (`EngineConfig::mp4_index_block_chunks`):
/// 128 s of 2 s chunks. Larger blocks mean fewer pieces per
/// header but more chunks visited one by one at a clip's ends (up to twice this).
pub(crate) const DEFAULT_BLOCK_CHUNKS: usize = 64;

/// A block of the index: see the module doc.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
    first: Weak<ChunkMedia>,
    last: Weak<ChunkMedia>,
    pub(crate) tables: BlockTables,
}

impl Block {
    /// The block of `chunks`, consecutive chunks of one discontinuity, if they
    /// continue each other (see [`BlockTables::new`]).
    pub(crate) fn new(chunks: &[Arc<Chunk>]) -> Option<Block> {
        let (first, last) = (chunks.first()?, chunks.last()?);
        let segments: Vec<_> = chunks.iter().map(|c| c.segment()).collect();
        let tables = BlockTables::new(first.init(), &segments)?;
        Some(Block {
            first_seq: first.seq(),
            last_seq: last.seq(),
            first: Arc::downgrade(&first.media),
            last: Arc::downgrade(&last.media),
            tables,
        })
    }

    /// Chunks in the block.
    pub(crate) fn len(&self) -> usize {
        (self.last_seq - self.first_seq + 1) as usize
    }

    /// Whether `chunks` (of this ring, sequence numbers rising) are exactly the
    /// block's: O(1), the first and the last looked at.
    pub(crate) fn covers(&self, chunks: &[Arc<Chunk>]) -> bool {
        let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else {
            return false;
        };
        chunks.len() == self.len()
            && first.seq() == self.first_seq
            && last.seq() == self.last_seq
            && std::ptr::eq(self.first.as_ptr(), Arc::as_ptr(&first.media))
            && std::ptr::eq(self.last.as_ptr(), Arc::as_ptr(&last.media))
    }
}
