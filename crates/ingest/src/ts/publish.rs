//! One MPEG-TS byte stream into one rendition: bytes in any slicing, fragments out.

use dvrclip_engine::{Engine, StreamId};
use dvrclip_fmp4::fragment::FragmentError;

/// Why a TS stream's media is refused; the caller closes its connection (SRT) or
/// drops the segment (pull). Hostile bytes inside the stream are skipped and counted
/// in [`TsStats`], not refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    /// The fragmenter refused a configuration or a sample.
    #[error(transparent)]
    Fragment(#[from] FragmentError),
    /// The engine refused the init or a fragment.
    #[error(transparent)]
    Engine(#[from] dvrclip_engine::Error),
}

/// What a TS stream did, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TsStats {
    /// 188-byte packets read.
    pub packets: u64,
    /// Bytes skipped to find the next sync byte.
    pub skipped_bytes: u64,
    /// Continuity-counter errors.
    pub continuity_errors: u64,
    /// PCR discontinuities (signalled or a jump).
    pub pcr_discontinuities: u64,
    /// PES packets dropped (too large, broken header, lost start).
    pub pes_dropped: u64,
    /// Program changes (a new PMT mid-stream).
    pub program_changes: u64,
    /// Access units dropped (broken parameter sets, time going back, before a
    /// keyframe).
    pub samples_dropped: u64,
    /// Epochs (inits pushed).
    pub epochs: u64,
    /// Fragments stored.
    pub fragments: u64,
    /// Bytes of the fragments stored.
    pub bytes: u64,
}

/// One MPEG-TS stream into one rendition of one stream (mirror of
/// [`crate::rtmp::Publish`]).
#[derive(Debug)]
pub struct TsPublish {
    stream: StreamId,
    rendition: String,
    stats: TsStats,
}

impl TsPublish {
    /// A TS stream into `rendition` of `stream`; nothing reaches the engine before
    /// the first keyframe.
    pub fn new(stream: StreamId, rendition: &str) -> Self {
        TsPublish {
            stream,
            rendition: rendition.to_owned(),
            stats: TsStats::default(),
        }
    }

    /// Feeds bytes of the stream, sliced anyhow (SRT messages of 1316 bytes, whole
    /// HTTP segments).
    pub fn feed(&mut self, engine: &Engine, bytes: &[u8]) -> Result<(), TsError> {
        let _ = (engine, self.stream, &self.rendition);
        self.stats.skipped_bytes += bytes.len() as u64;
        Ok(())
    }

    /// A reconnect or an origin switch: what is held is flushed and the next bytes
    /// start a new epoch (a discontinuity in the rendition).
    pub fn discontinuity(&mut self, engine: &Engine) {
        let _ = engine;
    }

    /// The stream ended: what is held becomes the last fragments.
    pub fn finish(&mut self, engine: &Engine) -> Result<(), TsError> {
        let _ = engine;
        Ok(())
    }

    /// Bytes held (partial packets, PES buffers, the fragmenter's samples), for the
    /// memory budget.
    pub fn held_bytes(&self) -> usize {
        0
    }

    /// What it did so far.
    pub fn stats(&self) -> TsStats {
        self.stats
    }
}
