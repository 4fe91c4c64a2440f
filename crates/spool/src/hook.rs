//! The engine's commits, as journal records: [`Persist`] for [`Spool`]. A record
//! that cannot be appended (a full disk) is logged and counted; the change lives on
//! in memory and is lost only if the process restarts before it is made again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use dvrclip_engine::persist::Persist;
use dvrclip_engine::{Chunk, Clip, ClipId, InitSegment, StreamId, StreamInfo, WallTime};

use crate::Spool;
use crate::record::{ChunkRec, ClipRec, ClipRenditionRec, Record, StreamRec};

impl Spool {
    /// Folds `record` into what is alive, then appends it: a compaction running
    /// in between writes it already (an append waits for a compaction, and a record
    /// twice in a journal folds as once).
    fn append(&self, record: &Record) {
        self.live.lock().apply(record.clone());
        if let Err(e) = self.journal.append(record) {
            self.stats.journal_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "spool: journal append failed; kept in memory only");
        }
    }

    fn init_id(&self, init: &Arc<InitSegment>) -> Option<u64> {
        self.inits.lock().id_of(init)
    }
}

impl Persist for Spool {
    fn place_payload(&self, bytes: Bytes) -> Result<Bytes, String> {
        if bytes.is_empty() || self.files.info(&bytes).is_some() {
            return Ok(bytes);
        }
        self.files.place(&bytes).map_err(|e| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            format!("spool {}: {e}", self.dir.display())
        })
    }

    fn stream_saved(&self, s: &StreamInfo) {
        self.append(&Record::Stream(StreamRec {
            id: s.id.0,
            name: s.name.clone(),
            active: s.active,
            dvr_enabled: s.dvr_enabled,
            dvr_duration_secs: s.dvr_duration_secs,
            pull: s.pull,
            uri: s.uri.clone(),
            created_us: s.created_at.unix_micros(),
            ingest_key: s.ingest_key.clone(),
            play_key: s.play_key.clone(),
        }));
    }

    fn stream_deleted(&self, id: StreamId) {
        self.append(&Record::StreamGone { id: id.0 });
    }

    fn init_admitted(&self, stream: StreamId, rendition: &str, init: &Arc<InitSegment>) {
        let id = {
            let mut ids = self.inits.lock();
            let id = ids.next;
            ids.next += 1;
            ids.insert(id, init);
            id
        };
        self.append(&Record::Init {
            id,
            stream: stream.0,
            rendition: rendition.to_owned(),
            bytes: init.bytes.to_vec(),
        });
    }

    fn chunk_admitted(&self, stream: StreamId, rendition: &str, chunk: &Chunk) {
        let (Some(file), Some(init)) = (self.files.info(chunk.bytes()), self.init_id(chunk.init()))
        else {
            self.stats.journal_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%stream, rendition, seq = chunk.seq(), "spool: chunk not placed in the spool; not persisted");
            return;
        };
        self.append(&Record::Chunk(ChunkRec {
            stream: stream.0,
            rendition: rendition.to_owned(),
            seq: chunk.seq(),
            file: file.file,
            len: file.len,
            crc: file.crc,
            init,
            name: chunk.name().map(str::to_owned),
            start_us: chunk.start_utc().unix_micros(),
            disc: chunk.discontinuity(),
            arrival_us: chunk.arrival_utc().unix_micros(),
            held_only: false,
        }));
    }

    fn chunk_moved(&self, stream: StreamId, rendition: &str, seq: u64, start_utc: WallTime) {
        self.append(&Record::Moved {
            stream: stream.0,
            rendition: rendition.to_owned(),
            seq,
            start_us: start_utc.unix_micros(),
        });
    }

    fn chunks_left_ring(&self, stream: StreamId, rendition: &str, seqs: &[u64]) {
        self.append(&Record::Left {
            stream: stream.0,
            rendition: rendition.to_owned(),
            seqs: seqs.to_vec(),
        });
    }

    fn clip_saved(&self, clip: &Clip) {
        let record = clip_record(clip, &mut |_, init| self.init_id(init));
        self.append(&Record::Clip(record));
    }

    fn clip_removed(&self, id: ClipId) {
        self.append(&Record::ClipGone { id: id.to_string() });
    }
}

/// The journal record of `clip` as of its last published view; `init_id` names an
/// announced init (given its rendition) by the store's id for it.
pub fn clip_record(
    clip: &Clip,
    init_id: &mut dyn FnMut(&str, &Arc<InitSegment>) -> Option<u64>,
) -> ClipRec {
    let view = clip.view();
    let renditions = view
        .renditions()
        .iter()
        .map(|r| ClipRenditionRec {
            name: r.name().to_owned(),
            init: r.announced_init().and_then(|i| init_id(r.name(), i)),
            bandwidth_bps: r.expected_bandwidth_bps(),
            target_secs: r.announced_target_secs(),
            runs: ClipRenditionRec::runs_of(r.chunks().iter().map(|c| c.seq())),
        })
        .collect();
    let req = clip.request();
    ClipRec {
        id: clip.id().to_string(),
        stream: clip.stream_id().0,
        duration_secs: req.duration_secs,
        start_unix_secs: req.start_unix_secs,
        expiration_unix_secs: req.expiration_unix_secs,
        vod_required: req.vod_required,
        precise: req.precise,
        start_us: clip.start_utc().unix_micros(),
        end_us: clip.end_utc().unix_micros(),
        expiration_us: clip.expiration_utc().unix_micros(),
        created_us: clip.created_at().unix_micros(),
        video_id: clip.video_id(),
        reference: view
            .renditions()
            .iter()
            .position(|r| r.name() == clip.reference_rendition())
            .unwrap_or(0),
        complete: view.is_complete(),
        renditions,
    }
}
