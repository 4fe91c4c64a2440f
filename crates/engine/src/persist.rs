//! The persistence seam: what the engine tells a store at each commit point, and
//! what a store hands back at start-up to rebuild streams, rings and clips.
//!
//! Owns the [`Persist`] trait and the `Restored*` records. The engine stays free of
//! I/O: it calls the hook after a change is committed in memory (never under a ring
//! lock, never waiting on a sync), and [`crate::Engine::restore`] rebuilds from plain
//! values; when those came from another store ([`Restore::report_to_store`]: a
//! cluster's shipped DVR), it reports what it rebuilt through the same hooks. What
//! a store keeps, where, and how it survives a torn write is the store's business
//! (`dvrclip-spool`). Sample tables are not persisted: a chunk's payload is
//! parsed again against its init on restore, which also verifies it.
//!
//! Order: hooks of one stream arrive in the order of the engine's commits for a
//! given rendition only loosely (two uploads of one rendition racing may report in
//! either order), so a store must fold records by key (stream, rendition, seq), not
//! by arrival.

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_fmp4::InitSegment;

use crate::{Chunk, Clip, ClipId, ClipRequest, StreamId, StreamInfo, StreamSettings, WallTime};

/// A store the engine reports its commits to. Every method but
/// [`Persist::place_payload`] is infallible from the engine's view: the change is
/// already made in memory, so a store that cannot record it logs and counts it.
pub trait Persist: Send + Sync + std::fmt::Debug {
    /// Gives a media segment's bytes their durable home before the chunk is pushed,
    /// and returns the bytes to keep (the same content, perhaps another buffer: a
    /// file mapping). Refusing (a full disk) refuses the upload, and nothing changes.
    fn place_payload(&self, bytes: Bytes) -> Result<Bytes, String>;
    /// A stream was created or its settings changed.
    fn stream_saved(&self, stream: &StreamInfo);
    /// A stream was deleted with its DVR and clips.
    fn stream_deleted(&self, id: StreamId);
    /// A rendition's new current init (it opens a discontinuity with its next chunk).
    fn init_admitted(&self, stream: StreamId, rendition: &str, init: &Arc<InitSegment>);
    /// A chunk entered a ring. Its payload is what `place_payload` returned.
    fn chunk_admitted(&self, stream: StreamId, rendition: &str, chunk: &Chunk);
    /// A chunk was re-anchored on the wall clock (a playlist date).
    fn chunk_moved(&self, stream: StreamId, rendition: &str, seq: u64, start_utc: WallTime);
    /// Chunks left a ring other than by the DVR window (budget eviction, DVR
    /// cleanup); clips may still hold them.
    fn chunks_left_ring(&self, stream: StreamId, rendition: &str, seqs: &[u64]);
    /// A clip was created or published a new view (took chunks, completed).
    fn clip_saved(&self, clip: &Clip);
    /// A clip was deleted or expired.
    fn clip_removed(&self, id: ClipId);
}

/// Everything a store recovered, for [`crate::Engine::restore`].
#[derive(Debug, Default)]
pub struct Restore {
    /// Streams, with their renditions and chunks.
    pub streams: Vec<RestoredStream>,
    /// Clips, by the chunks they hold.
    pub clips: Vec<RestoredClip>,
    /// The next stream id to hand out (past every id ever used, deleted ones too).
    pub next_stream_id: u64,
    /// Whether the engine's store ([`Persist`]) is told of what comes back, as it
    /// is of an admission: each payload placed (`place_payload`), then the stream,
    /// each rendition's inits (its current one last), its chunks, those only clips
    /// hold as out of the ring, and the clips. For a restore from elsewhere (a
    /// cluster's shipped DVR) into an engine whose store does not hold it; `false`
    /// (the default) for a store's own recovery, which holds all of it already.
    pub report_to_store: bool,
}

/// One stream as it was persisted.
#[derive(Debug)]
pub struct RestoredStream {
    /// Its id.
    pub id: StreamId,
    /// Its settings.
    pub settings: StreamSettings,
    /// Creation time.
    pub created_at: WallTime,
    /// Push URL key.
    pub ingest_key: String,
    /// Live playlist key.
    pub play_key: String,
    /// Renditions in the order their first init arrived.
    pub renditions: Vec<RestoredRendition>,
}

/// One rendition: its current init and the chunks whose payloads survived.
#[derive(Debug)]
pub struct RestoredRendition {
    /// Name.
    pub name: String,
    /// The latest init admitted.
    pub init: Option<Arc<InitSegment>>,
    /// Past every `seq` ever handed out in this rendition.
    pub next_seq: u64,
    /// Past every discontinuity ever opened in this rendition.
    pub next_discontinuity: u64,
    /// Surviving chunks, any order.
    pub chunks: Vec<RestoredChunk>,
}

/// One chunk: its payload and where it sat.
#[derive(Debug)]
pub struct RestoredChunk {
    /// Position in its rendition.
    pub seq: u64,
    /// Uploaded file name.
    pub name: Option<String>,
    /// The init it decodes with.
    pub init: Arc<InitSegment>,
    /// The verified payload.
    pub bytes: Bytes,
    /// Wall-clock start.
    pub start_utc: WallTime,
    /// Its discontinuity.
    pub discontinuity: u64,
    /// When it arrived.
    pub arrival: WallTime,
    /// Whether it was still in the ring (else only clips held it).
    pub in_ring: bool,
}

/// One clip as persisted at its last published view.
#[derive(Debug)]
pub struct RestoredClip {
    /// Id.
    pub id: ClipId,
    /// Stream.
    pub stream: StreamId,
    /// The request as received.
    pub request: ClipRequest,
    /// Requested start.
    pub start: WallTime,
    /// Requested end.
    pub end: WallTime,
    /// Expiration.
    pub expiration: WallTime,
    /// Creation time.
    pub created_at: WallTime,
    /// VOD id.
    pub video_id: Option<u64>,
    /// Index of the reference rendition in `renditions`.
    pub reference: usize,
    /// Renditions in the stream's order at the cut.
    pub renditions: Vec<RestoredClipRendition>,
    /// Whether it was complete.
    pub complete: bool,
}

/// One rendition of a clip: the seqs of the chunks it held, in order.
#[derive(Debug)]
pub struct RestoredClipRendition {
    /// Rendition name.
    pub name: String,
    /// What its master playlist announces before it holds a chunk.
    pub init: Option<Arc<InitSegment>>,
    /// Announced bitrate, bits per second.
    pub bandwidth_bps: u64,
    /// Announced target duration, seconds.
    pub target_secs: u64,
    /// The chunks held, by seq, in play order.
    pub seqs: Vec<u64>,
}

/// What [`crate::Engine::restore`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RestoreReport {
    /// Streams rebuilt.
    pub streams: usize,
    /// Chunks back in a ring.
    pub ring_chunks: usize,
    /// Chunks that did not parse against their init or broke a ring invariant.
    pub chunks_dropped: usize,
    /// Clips back, recording or complete.
    pub clips: usize,
    /// Clips already expired.
    pub clips_expired: usize,
    /// Clips whose media was lost (a chunk missing): kept as a [`crate::LostClip`],
    /// reported until their expiration, never served short.
    pub clips_lost: usize,
    /// With [`Restore::report_to_store`]: chunks restored whose payload the store
    /// refused (a full disk; payloads are placed newest first and the first
    /// refusal ends the placing), kept in memory only and not reported to it.
    pub chunks_not_stored: usize,
}
