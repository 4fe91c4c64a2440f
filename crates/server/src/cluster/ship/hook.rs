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
use dvrclip_spool::shipped;
use tracing::warn;

use super::{MAX_QUEUED_BYTES, Shipper};

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
        let len = chunk.bytes().len() as u64;
        let mut st = self.ship.state.lock();
        if st.shipping(stream).is_none() {
            return;
        }
        if st.queued_bytes + len > MAX_QUEUED_BYTES {
            drop(st);
            if self.ship.counters.dropped.fetch_add(1, Relaxed) % 100 == 0 {
                warn!(
                    stream = stream.0,
                    rendition,
                    "DVR shipping queue full (the store is slower than the media); chunk not shipped"
                );
            }
            return;
        }
        let pushed = st.push(
            stream,
            &[(rendition, chunk.init())],
            |init_id| {
                shipped::chunk_record(
                    stream.0,
                    rendition,
                    chunk.seq(),
                    init_id(chunk.init()),
                    chunk.name().map(str::to_owned),
                    chunk.start_utc().unix_micros(),
                    chunk.discontinuity(),
                    chunk.arrival_utc().unix_micros(),
                    chunk.bytes(),
                )
            },
            Some(chunk.bytes().clone()),
        );
        if pushed {
            st.queued_bytes += len;
            if let Some(s) = st.streams.get_mut(&stream) {
                s.batch.payload_bytes += len;
                s.batch.admitted.push(Instant::now());
            }
            drop(st);
            self.ship.wake.notify_one();
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
        let stream = clip.stream_id();
        let view = clip.view();
        let inits: Vec<(&str, &Arc<InitSegment>)> = view
            .renditions()
            .iter()
            .filter_map(|r| Some((r.name(), r.announced_init()?)))
            .collect();
        let mut st = self.ship.state.lock();
        let pushed = st.push(
            stream,
            &inits,
            |init_id| {
                Record::Clip(dvrclip_spool::clip_record(clip, &mut |_, i| {
                    Some(init_id(i))
                }))
            },
            None,
        );
        if pushed {
            st.clip_streams.insert(clip.id(), stream);
        }
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
