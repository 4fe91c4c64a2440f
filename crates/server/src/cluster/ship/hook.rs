//! The shipper's side of the engine's persistence seam: [`ShipPersist`] hands each
//! commit to the spool (when the node has one) and then appends it to the
//! shipper's queue for the stream, under one short lock, never waiting on I/O.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use dvrclip_engine::persist::Persist;
use dvrclip_engine::{Chunk, Clip, ClipId, InitSegment, StreamId, StreamInfo, WallTime};
use dvrclip_spool::record::Record;
use tracing::warn;

use super::{Held, Pushed, Shipper};

/// The engine's store: the spool (if any) first, then the shipper.
#[derive(Debug)]
pub struct ShipPersist {
    /// The spool, if the node has one.
    pub inner: Option<Arc<dyn Persist>>,
    /// The shipper.
    pub ship: Arc<Shipper>,
    /// To remove a deleted stream's objects off the engine's thread.
    pub runtime: tokio::runtime::Handle,
}

impl Persist for ShipPersist {
    fn place_payload(&self, bytes: Bytes) -> Result<Bytes, String> {
        match &self.inner {
            Some(p) => p.place_payload(bytes),
            None => Ok(bytes),
        }
    }

    fn stream_saved(&self, stream: &StreamInfo) {
        if let Some(p) = &self.inner {
            p.stream_saved(stream);
        }
    }

    fn stream_deleted(&self, id: StreamId) {
        if let Some(p) = &self.inner {
            p.stream_deleted(id);
        }
        if self.ship.forget(id) {
            let ship = Arc::clone(&self.ship);
            self.runtime
                .spawn(async move { ship.remove_stream(id).await });
        }
    }

    fn init_admitted(&self, stream: StreamId, rendition: &str, init: &Arc<InitSegment>) {
        if let Some(p) = &self.inner {
            p.init_admitted(stream, rendition, init);
        }
        // In the batch now, so a restore finds the current init of a rendition that
        // has no chunk after it yet.
        self.ship.state.lock().push_init(stream, rendition, init);
    }

    fn chunk_admitted(&self, stream: StreamId, rendition: &str, chunk: &Chunk) {
        if let Some(p) = &self.inner {
            p.chunk_admitted(stream, rendition, chunk);
        }
        let mut st = self.ship.state.lock();
        match st.push_chunk(stream, rendition, chunk, Some(Instant::now())) {
            Pushed::Yes => {
                drop(st);
                self.ship.wake.notify_one();
            }
            Pushed::Full => {
                drop(st);
                if self.ship.counters.dropped.fetch_add(1, Relaxed) % 100 == 0 {
                    warn!(
                        stream = stream.0,
                        rendition,
                        "DVR shipping queue full (the store is slower than the media); chunk not shipped"
                    );
                }
            }
            Pushed::No => {}
        }
    }

    fn chunk_moved(&self, stream: StreamId, rendition: &str, seq: u64, start_utc: WallTime) {
        if let Some(p) = &self.inner {
            p.chunk_moved(stream, rendition, seq, start_utc);
        }
        let record = Record::Moved {
            stream: stream.0,
            rendition: rendition.to_owned(),
            seq,
            start_us: start_utc.unix_micros(),
        };
        self.ship.state.lock().push(stream, &[], |_| record, None);
    }

    fn chunks_left_ring(&self, stream: StreamId, rendition: &str, seqs: &[u64]) {
        if let Some(p) = &self.inner {
            p.chunks_left_ring(stream, rendition, seqs);
        }
        let record = Record::Left {
            stream: stream.0,
            rendition: rendition.to_owned(),
            seqs: seqs.to_vec(),
        };
        self.ship.state.lock().push(stream, &[], |_| record, None);
    }

    fn clip_saved(&self, clip: &Clip) {
        if let Some(p) = &self.inner {
            p.clip_saved(clip);
        }
        self.ship.state.lock().push_clip(clip);
    }

    fn clip_removed(&self, id: ClipId) {
        if let Some(p) = &self.inner {
            p.clip_removed(id);
        }
        let mut st = self.ship.state.lock();
        if let Some(stream) = st.clip_streams.remove(&id) {
            let record = Record::ClipGone { id: id.to_string() };
            st.push(stream, &[], |_| record, None);
        }
    }
}

/// Collects what [`dvrclip_engine::Engine::report_stream`] reports of a held
/// stream, to be shipped again (a re-claim of a stream held from the spool): the
/// shipper's records only, the spool holds all of it already.
#[derive(Debug, Default)]
pub(super) struct HeldWalk(pub(super) parking_lot::Mutex<Vec<Held>>);

impl Persist for HeldWalk {
    fn place_payload(&self, bytes: Bytes) -> Result<Bytes, String> {
        Ok(bytes)
    }

    fn stream_saved(&self, _: &StreamInfo) {}

    fn stream_deleted(&self, _: StreamId) {}

    fn init_admitted(&self, _: StreamId, rendition: &str, init: &Arc<InitSegment>) {
        self.0
            .lock()
            .push(Held::Init(rendition.to_owned(), Arc::clone(init)));
    }

    fn chunk_admitted(&self, _: StreamId, rendition: &str, chunk: &Chunk) {
        self.0
            .lock()
            .push(Held::Chunk(rendition.to_owned(), chunk.clone()));
    }

    fn chunk_moved(&self, _: StreamId, _: &str, _: u64, _: WallTime) {}

    fn chunks_left_ring(&self, _: StreamId, rendition: &str, seqs: &[u64]) {
        self.0
            .lock()
            .push(Held::Left(rendition.to_owned(), seqs.to_vec()));
    }

    fn clip_saved(&self, clip: &Clip) {
        self.0.lock().push(Held::Clip(clip.clone()));
    }

    fn clip_removed(&self, _: ClipId) {}
}
