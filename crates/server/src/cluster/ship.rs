//! DVR shipping (`design/cluster.md` "DVR shipping"): while this node owns a stream,
//! what the engine commits for it (inits, chunks with their payloads, re-anchors,
//! chunks leaving the ring, clips) is shipped to the clip archive's object store in
//! batches, so that the node claiming the stream after this one dies restores its
//! DVR and clips ([`restore`]) instead of starting empty.
//!
//! Owns the per-stream queues that the engine's commits are appended to (by
//! [`ShipPersist`], `hook`, the `Persist` beside the spool's), the flusher (a
//! stream's batch written as soon as a chunk arrives, what arrives during a write
//! going in the next object; other records at least every [`FLUSH_EVERY`]; one
//! write per stream at a time, [`UPLOADS_IN_FLIGHT`] in all), the sweep of objects
//! no longer needed, and the counters. Not the format (`dvrclip_spool::shipped`:
//! the journal's records and the payloads after them) nor the store (the clip
//! archive's).
//!
//! Keys ([`keys`]), under `dvr/{stream}/{generation:016x}/`: `gen.json` (the
//! generations this one was restored from, written before its first batch) and
//! `{batch:016x}.dvr`. A generation is one claim: the etcd revision that created
//! the ownership key, so a later owner's generation is always greater. A restore
//! reads the greatest generation with a `gen.json` and the ones it names, nothing
//! else: a claim whose restore failed starts a chain of its own, and a paused node's
//! late batches land in an older generation no chain names (swept as garbage).
//! A claim of a stream the engine holds with no chain of this process (restarted
//! on its spool) ships the held DVR again (`Engine::report_stream`), in bounded
//! batches, and describes its generation only once all of it is written.
//!
//! Never blocks ingest: a hook appends to a queue under one short lock (payloads are
//! `Bytes` handles, not copies). The queued payload bytes are bounded by
//! [`MAX_QUEUED_BYTES`]: past it (the store slower than the media) chunks are not
//! shipped and counted (`dvrclip_ship_dropped_chunks_total`); a failed upload is
//! kept and tried again at the next flush. What a SIGKILL loses is what is queued:
//! the lag, counted from a chunk's admission to its object stored.
//!
//! An object is deleted once every chunk in it is older than the stream's DVR
//! window (plus [`SWEEP_MARGIN`]), no clip the engine holds starts at or before its
//! last chunk of a rendition, and it holds no clip's latest record; all of a
//! stream's objects go when the stream is deleted here, or by the node that
//! deletes it while no node owns it ([`Shipper::remove_unowned`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dvrclip_engine::{Chunk, Clip, ClipId, Engine, InitSegment, StreamId};
use dvrclip_spool::record::Record;
use dvrclip_spool::shipped::{self, Entry};
use parking_lot::Mutex;
use tokio::runtime::RuntimeFlavor;
use tokio::sync::{Notify, Semaphore};
use tracing::{info, warn};

use crate::archive::ClipArchive;
use crate::error::ApiError;
use crate::vod::VodStore;

mod hook;
pub mod keys;
pub mod restore;

pub use hook::ShipPersist;
pub use keys::{GenerationRec, MAX_CHAIN, batch_key, generation_key, stream_prefix};

/// A stream's batch is written at once when a chunk arrives and no write of the
/// stream is in flight (else right after that write), and at least this often
/// while it has other records (clip saves).
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Batch objects written at once, all streams together.
pub const UPLOADS_IN_FLIGHT: usize = 4;
/// Payload bytes queued or being written at most, all streams together.
pub const MAX_QUEUED_BYTES: u64 = 256 << 20;
/// A held DVR shipped again (a re-claim after a restart) goes in batches of about
/// this many payload bytes...
pub const RESHIP_BATCH_BYTES: u64 = 32 << 20;
/// ...while the payload bytes queued, all streams together, stay under this (the
/// rest of [`MAX_QUEUED_BYTES`] is the live media's).
pub const RESHIP_QUEUED_BYTES: u64 = MAX_QUEUED_BYTES / 2;
/// How often a stream's objects are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// An object is kept this long past the DVR window (a clip cut at the window's
/// edge while the sweep runs).
pub const SWEEP_MARGIN: Duration = Duration::from_secs(60);

/// What the sweep needs to know of one stored batch.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    /// The latest chunk start in it, Unix µs (`i64::MIN`: no chunk).
    pub max_start_us: i64,
    /// Per rendition, the greatest seq in it.
    pub max_seq: HashMap<String, u64>,
    /// Clips with a record in it.
    pub clips: Vec<ClipId>,
}

impl ObjectInfo {
    /// What `entries` hold.
    pub fn of(entries: &[Entry]) -> ObjectInfo {
        let mut info = ObjectInfo {
            max_start_us: i64::MIN,
            ..ObjectInfo::default()
        };
        for e in entries {
            match &e.record {
                Record::Chunk(c) => {
                    info.max_start_us = info.max_start_us.max(c.start_us);
                    let m = info.max_seq.entry(c.rendition.clone()).or_insert(c.seq);
                    *m = (*m).max(c.seq);
                }
                Record::Clip(c) => info.clips.extend(ClipId::parse(&c.id)),
                _ => {}
            }
        }
        info
    }
}

/// A record of a held DVR to ship again ([`hook::HeldWalk`]), as the engine reported
/// it.
#[derive(Debug)]
enum Held {
    Init(String, Arc<InitSegment>),
    Chunk(String, Chunk),
    Left(String, Vec<u64>),
    Clip(Clip),
}

/// What became of a chunk given to [`State::push_chunk`].
#[derive(Debug, PartialEq, Eq)]
enum Pushed {
    /// In the stream's batch.
    Yes,
    /// Not shipped: the queue is full.
    Full,
    /// Not shipped here (not owned).
    No,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    objects: AtomicU64,
    bytes: AtomicU64,
    chunks: AtomicU64,
    chunk_bytes: AtomicU64,
    lag_micros: AtomicU64,
    lag_max_micros: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
    removed: AtomicU64,
    restores: AtomicU64,
    restore_failures: AtomicU64,
    restores_partial: AtomicU64,
    unread: AtomicU64,
    restore_micros: AtomicU64,
    restored_chunks: AtomicU64,
    restored_clips: AtomicU64,
    corrupt: AtomicU64,
    unspooled: AtomicU64,
}

/// Records waiting for their object.
#[derive(Debug, Default)]
struct Batch {
    entries: Vec<Entry>,
    payload_bytes: u64,
    /// Inits (by id) already in `entries`: each batch names every init its
    /// records need, so any object can be read (or swept) alone.
    inits: HashSet<u64>,
    admitted: Vec<Instant>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Names `init` in this batch unless it is.
    fn add_init(
        &mut self,
        inits: &mut Inits,
        stream: StreamId,
        rendition: &str,
        init: &Arc<InitSegment>,
    ) {
        let id = inits.id_of(init);
        if self.inits.insert(id) {
            self.entries.push(Entry {
                record: Record::Init {
                    id,
                    stream: stream.0,
                    rendition: rendition.to_owned(),
                    bytes: init.bytes.to_vec(),
                },
                payload: None,
            });
        }
    }

    /// Ends the batch, if it names an init of a rendition other than the rendition's
    /// current one after it, with the current one named again: the last `Init`
    /// record of a rendition names its current init (`dvrclip_spool::recover`'s
    /// rule), and an init named for a clip may be an older one.
    fn end_with_current(
        &mut self,
        inits: &mut Inits,
        stream: StreamId,
        current: &HashMap<String, Arc<InitSegment>>,
    ) {
        let mut last: HashMap<&str, u64> = HashMap::new();
        for e in &self.entries {
            if let Record::Init { id, rendition, .. } = &e.record {
                last.insert(rendition, *id);
            }
        }
        let mut again = Vec::new();
        for (rendition, id) in last {
            if let Some(init) = current.get(rendition) {
                let current_id = inits.id_of(init);
                if current_id != id {
                    again.push(Entry {
                        record: Record::Init {
                            id: current_id,
                            stream: stream.0,
                            rendition: rendition.to_owned(),
                            bytes: init.bytes.to_vec(),
                        },
                        payload: None,
                    });
                }
            }
        }
        for e in again {
            if let Record::Init { id, .. } = &e.record {
                self.inits.insert(*id);
            }
            self.entries.push(e);
        }
    }

    /// Puts `older` (a batch whose write failed) before this one.
    fn prepend(&mut self, mut older: Batch) {
        older.entries.append(&mut self.entries);
        older.admitted.append(&mut self.admitted);
        older.inits.extend(self.inits.drain());
        older.payload_bytes += self.payload_bytes;
        *self = older;
    }
}

/// One stream this node ships.
#[derive(Debug)]
struct Shipping {
    generation: u64,
    /// Generations this one continues, then itself.
    chain: Vec<u64>,
    /// Still owned: false once the claim is gone (what is queued is still written).
    owned: bool,
    gen_written: bool,
    next_batch: u64,
    batch: Batch,
    busy: bool,
    /// Stored objects of the chain, by key.
    objects: BTreeMap<String, ObjectInfo>,
    /// Objects of generations no chain names.
    garbage: Vec<String>,
    /// Each clip's latest record: the object holding it.
    clip_latest: HashMap<ClipId, String>,
    /// Each rendition's current init: the engine's at the claim, then each admission.
    current: HashMap<String, Arc<InitSegment>>,
    last_sweep: Instant,
    /// A held DVR being shipped again (a re-claim of a stream the engine held with
    /// no parked chain: a restart on the spool), oldest first, fed into the batches
    /// as the bounds allow. Until it is all written the generation's `gen.json` is
    /// not: a failover meanwhile restores the chain shipped before.
    reship: Option<VecDeque<Held>>,
}

/// Init segments shipped, by the address of their `Arc`, as the spool's registry.
#[derive(Debug, Default)]
struct Inits {
    next: u64,
    by_ptr: HashMap<usize, (Weak<InitSegment>, u64)>,
}

impl Inits {
    fn id_of(&mut self, init: &Arc<InitSegment>) -> u64 {
        let ptr = Arc::as_ptr(init) as usize;
        if let Some((weak, id)) = self.by_ptr.get(&ptr)
            && weak.strong_count() > 0
            && weak.as_ptr() == Arc::as_ptr(init)
        {
            return *id;
        }
        if self.by_ptr.len() > 4096 {
            self.by_ptr.retain(|_, (w, _)| w.strong_count() > 0);
        }
        self.next += 1;
        self.by_ptr.insert(ptr, (Arc::downgrade(init), self.next));
        self.next
    }
}

#[derive(Debug, Default)]
struct State {
    inits: Inits,
    streams: HashMap<StreamId, Shipping>,
    /// Chains of streams no longer owned: a claim again while the engine still
    /// holds the stream continues them.
    parked: HashMap<StreamId, Vec<u64>>,
    clip_streams: HashMap<ClipId, StreamId>,
    queued_bytes: u64,
    /// Records of the batches being written.
    inflight_records: usize,
}

impl State {
    /// The stream's batch, if it is shipped (owned).
    fn shipping(&mut self, stream: StreamId) -> Option<&mut Shipping> {
        self.streams.get_mut(&stream).filter(|s| s.owned)
    }

    /// `init` is `stream`'s `rendition`'s current init now: added to its batch
    /// unless it is there.
    fn push_init(&mut self, stream: StreamId, rendition: &str, init: &Arc<InitSegment>) {
        let State { inits, streams, .. } = self;
        if let Some(s) = streams.get_mut(&stream).filter(|s| s.owned) {
            s.batch.add_init(inits, stream, rendition, init);
            s.current.insert(rendition.to_owned(), Arc::clone(init));
        }
    }

    /// Adds `record` to `stream`'s batch, with the init records it needs first.
    fn push(
        &mut self,
        stream: StreamId,
        rendition_inits: &[(&str, &Arc<InitSegment>)],
        record: impl FnOnce(&mut dyn FnMut(&Arc<InitSegment>) -> u64) -> Record,
        payload: Option<Bytes>,
    ) -> bool {
        let State { inits, streams, .. } = self;
        let Some(s) = streams.get_mut(&stream).filter(|s| s.owned) else {
            return false;
        };
        for (rendition, init) in rendition_inits {
            s.batch.add_init(inits, stream, rendition, init);
        }
        let record = record(&mut |init| inits.id_of(init));
        s.batch.entries.push(Entry { record, payload });
        true
    }

    /// Adds `chunk` (its record and payload) to `stream`'s batch unless the queue is
    /// full; `admitted` for the lag counters.
    fn push_chunk(
        &mut self,
        stream: StreamId,
        rendition: &str,
        chunk: &Chunk,
        admitted: Option<Instant>,
    ) -> Pushed {
        let len = chunk.bytes().len() as u64;
        if self.shipping(stream).is_none() {
            return Pushed::No;
        }
        if self.queued_bytes + len > MAX_QUEUED_BYTES {
            return Pushed::Full;
        }
        let pushed = self.push(
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
        if !pushed {
            return Pushed::No;
        }
        self.queued_bytes += len;
        if let Some(s) = self.streams.get_mut(&stream) {
            s.batch.payload_bytes += len;
            s.batch.admitted.extend(admitted);
        }
        Pushed::Yes
    }

    /// Adds `clip`'s record (as it is now) to its stream's batch.
    fn push_clip(&mut self, clip: &Clip) {
        let stream = clip.stream_id();
        let view = clip.view();
        let inits: Vec<(&str, &Arc<InitSegment>)> = view
            .renditions()
            .iter()
            .filter_map(|r| Some((r.name(), r.announced_init()?)))
            .collect();
        let pushed = self.push(
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
            self.clip_streams.insert(clip.id(), stream);
        }
    }

    /// Moves the next part of `stream`'s held DVR into its batch: up to about
    /// `batch_bytes` ([`RESHIP_BATCH_BYTES`]) of payloads, the queue staying under
    /// [`RESHIP_QUEUED_BYTES`] (one chunk at least when nothing is queued). Done
    /// (`reship` gone) once all of it is in.
    fn feed_reship(&mut self, stream: StreamId, batch_bytes: u64) {
        let Some(s) = self.shipping(stream) else {
            return;
        };
        let Some(mut queue) = s.reship.take() else {
            return;
        };
        let mut fed = 0u64;
        while let Some(next) = queue.pop_front() {
            match next {
                Held::Init(rendition, init) => {
                    // Named, not made current: `current` is the live one's.
                    let State { inits, streams, .. } = &mut *self;
                    if let Some(s) = streams.get_mut(&stream) {
                        s.batch.add_init(inits, stream, &rendition, &init);
                    }
                }
                Held::Chunk(rendition, chunk) => {
                    let len = chunk.bytes().len() as u64;
                    let room = self.queued_bytes == 0
                        || ((fed == 0 || fed + len <= batch_bytes)
                            && self.queued_bytes + len <= RESHIP_QUEUED_BYTES);
                    if !room {
                        queue.push_front(Held::Chunk(rendition, chunk));
                        break;
                    }
                    match self.push_chunk(stream, &rendition, &chunk, None) {
                        Pushed::Yes => {}
                        // Larger than the whole bound: never shipped, as live.
                        Pushed::Full if self.queued_bytes == 0 => continue,
                        _ => {
                            queue.push_front(Held::Chunk(rendition, chunk));
                            break;
                        }
                    }
                    fed += len;
                }
                Held::Left(rendition, seqs) => {
                    let record = Record::Left {
                        stream: stream.0,
                        rendition,
                        seqs,
                    };
                    self.push(stream, &[], |_| record, None);
                }
                Held::Clip(clip) => self.push_clip(&clip),
            }
        }
        if let Some(s) = self.streams.get_mut(&stream) {
            s.reship = (!queue.is_empty()).then_some(queue);
        }
    }
}

/// Ships the DVR of the streams this node owns.
pub struct Shipper {
    store: Arc<dyn VodStore>,
    archive: Arc<ClipArchive>,
    state: Mutex<State>,
    counters: Counters,
    wake: Notify,
    permits: Arc<Semaphore>,
    /// One claim of a stream at a time goes through [`Shipper::take_in`].
    claims: Mutex<HashMap<StreamId, Arc<tokio::sync::Mutex<()>>>>,
    no_dvr_window_secs: AtomicU64,
    /// A claim's bound on reading its stream's shipped DVR, ms ([`restore::TIMEOUT`];
    /// shorter in tests).
    restore_timeout_ms: AtomicU64,
    /// [`RESHIP_BATCH_BYTES`] (smaller in tests).
    reship_batch_bytes: AtomicU64,
    /// The engine, for the archive writes of restored clips.
    engine: std::sync::OnceLock<Weak<Engine>>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

impl Shipper {
    /// A shipper into `archive`'s store; [`Shipper::spawn`] starts its flusher.
    pub fn new(archive: Arc<ClipArchive>) -> Arc<Shipper> {
        Arc::new(Shipper {
            store: Arc::clone(archive.store()),
            archive,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
            wake: Notify::new(),
            permits: Arc::new(Semaphore::new(UPLOADS_IN_FLIGHT)),
            claims: Mutex::new(HashMap::new()),
            no_dvr_window_secs: AtomicU64::new(30),
            restore_timeout_ms: AtomicU64::new(restore::TIMEOUT.as_millis() as u64),
            reship_batch_bytes: AtomicU64::new(RESHIP_BATCH_BYTES),
            engine: std::sync::OnceLock::new(),
        })
    }

    /// A claim's bound on reading its stream's shipped DVR.
    fn restore_timeout(&self) -> Duration {
        Duration::from_millis(self.restore_timeout_ms.load(Relaxed))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn VodStore> {
        &self.store
    }

    /// Starts the flusher and sweeper on the current runtime; it ends with the
    /// engine.
    pub fn spawn(self: &Arc<Self>, engine: &Arc<Engine>) -> tokio::task::JoinHandle<()> {
        self.no_dvr_window_secs
            .store(u64::from(engine.config().no_dvr_window_secs), Relaxed);
        let _ = self.engine.set(Arc::downgrade(engine));
        let ship = Arc::downgrade(self);
        let engine = Arc::downgrade(engine);
        tokio::spawn(async move {
            loop {
                let Some(s) = ship.upgrade() else { return };
                tokio::select! {
                    _ = tokio::time::sleep(FLUSH_EVERY) => {}
                    _ = s.wake.notified() => {}
                }
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                s.flush();
                s.sweep_due(&engine);
            }
        })
    }

    /// Writes every stream's pending batch (one upload per stream at a time).
    fn flush(self: &Arc<Self>) {
        let mut jobs = Vec::new();
        {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            let reshipping: Vec<StreamId> = st
                .streams
                .iter()
                .filter(|(_, s)| s.owned && !s.busy && s.reship.is_some())
                .map(|(id, _)| *id)
                .collect();
            let batch_bytes = self.reship_batch_bytes.load(Relaxed);
            for id in reshipping {
                st.feed_reship(id, batch_bytes);
            }
            let mut done = Vec::new();
            for (id, s) in st.streams.iter_mut() {
                if s.busy {
                    continue;
                }
                let waiting = s.owned && s.reship.is_some();
                if s.batch.is_empty() && (s.gen_written || !s.owned || waiting) {
                    if !s.owned {
                        done.push(*id);
                    }
                    continue;
                }
                s.busy = true;
                let n = s.next_batch;
                s.batch.end_with_current(&mut st.inits, *id, &s.current);
                let batch = std::mem::take(&mut s.batch);
                // Described once the held DVR shipped again is all written.
                let describe = !s.gen_written && s.reship.is_none();
                jobs.push((*id, s.generation, s.chain.clone(), describe, n, batch));
            }
            st.inflight_records += jobs.iter().map(|j| j.5.entries.len()).sum::<usize>();
            for id in done {
                // A generation never described (released mid re-ship) is no chain
                // to continue: a claim again ships the held DVR again.
                if let Some(s) = st.streams.remove(&id)
                    && s.reship.is_none()
                {
                    st.parked.insert(id, s.chain);
                }
            }
        }
        for (id, generation, chain, describe, n, batch) in jobs {
            let ship = Arc::clone(self);
            tokio::spawn(async move {
                let Ok(_permit) = Arc::clone(&ship.permits).acquire_owned().await else {
                    return;
                };
                let written = ship
                    .write(id, generation, &chain, describe, n, &batch)
                    .await;
                ship.written(id, n, batch, describe, written);
            });
        }
    }

    /// Writes the generation's description (first, when `describe`) and the batch.
    async fn write(
        &self,
        id: StreamId,
        generation: u64,
        chain: &[u64],
        describe: bool,
        n: u64,
        batch: &Batch,
    ) -> Result<u64, String> {
        let mut bytes = 0;
        if describe {
            let rec = GenerationRec {
                version: 1,
                stream: id.0,
                generation,
                base: chain[..chain.len().saturating_sub(1)].to_vec(),
            };
            let body = serde_json::to_vec(&rec).map_err(|e| e.to_string())?;
            bytes += body.len() as u64;
            self.store
                .put(&generation_key(id, generation), Bytes::from(body))
                .await
                .map_err(|e| e.to_string())?;
        }
        if batch.is_empty() {
            return Ok(bytes);
        }
        let pieces = shipped::encode(&batch.entries).map_err(|e| e.to_string())?;
        let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        self.store
            .put_pieces(
                &batch_key(id, generation, n),
                len,
                Box::new(pieces.into_iter()),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(bytes + len)
    }

    /// Books a batch's write: stored (counted, indexed for the sweep) or kept to be
    /// tried again.
    fn written(
        &self,
        id: StreamId,
        n: u64,
        batch: Batch,
        described: bool,
        written: Result<u64, String>,
    ) {
        let mut st = self.state.lock();
        st.inflight_records = st.inflight_records.saturating_sub(batch.entries.len());
        let Some(s) = st.streams.get_mut(&id) else {
            st.queued_bytes = st.queued_bytes.saturating_sub(batch.payload_bytes);
            return;
        };
        s.busy = false;
        match written {
            Ok(bytes) => {
                s.gen_written |= described;
                let c = &self.counters;
                c.bytes.fetch_add(bytes, Relaxed);
                if !batch.is_empty() {
                    s.next_batch = n + 1;
                    let key = batch_key(id, s.generation, n);
                    let info = ObjectInfo::of(&batch.entries);
                    for clip in &info.clips {
                        s.clip_latest.insert(*clip, key.clone());
                    }
                    s.objects.insert(key, info);
                    c.objects.fetch_add(1, Relaxed);
                    c.chunk_bytes.fetch_add(batch.payload_bytes, Relaxed);
                    for at in &batch.admitted {
                        let lag = at.elapsed().as_micros() as u64;
                        c.chunks.fetch_add(1, Relaxed);
                        c.lag_micros.fetch_add(lag, Relaxed);
                        c.lag_max_micros.fetch_max(lag, Relaxed);
                    }
                }
                let more = !s.batch.admitted.is_empty() || s.reship.is_some() || !s.gen_written;
                st.queued_bytes = st.queued_bytes.saturating_sub(batch.payload_bytes);
                if more {
                    // Chunks that arrived during the write go now.
                    self.wake.notify_one();
                }
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Relaxed);
                warn!(stream = id.0, error = %e, "DVR batch not shipped; tried again at the next flush");
                s.batch.prepend(batch);
            }
        }
    }

    /// Sweeps the streams whose turn has come.
    fn sweep_due(self: &Arc<Self>, engine: &Arc<Engine>) {
        let mut due = Vec::new();
        {
            let mut st = self.state.lock();
            for (id, s) in st.streams.iter_mut() {
                if s.owned && s.last_sweep.elapsed() >= SWEEP_EVERY {
                    s.last_sweep = Instant::now();
                    due.push(*id);
                }
            }
        }
        for id in due {
            let keys = self.sweepable(engine, id);
            if keys.is_empty() {
                continue;
            }
            let ship = Arc::clone(self);
            tokio::spawn(async move {
                let mut removed = 0;
                for key in keys {
                    match ship.store.delete(&key).await {
                        Ok(()) => removed += 1,
                        Err(e) => warn!(%key, error = %e, "could not remove a shipped DVR batch"),
                    }
                }
                ship.counters.removed.fetch_add(removed, Relaxed);
            });
        }
    }

    /// The objects of `id` nothing needs any more, forgotten here (their deletion
    /// is the caller's).
    fn sweepable(&self, engine: &Engine, id: StreamId) -> Vec<String> {
        let Ok(info) = engine.stream(id) else {
            return Vec::new();
        };
        let window_secs = if info.dvr_enabled {
            u64::from(info.dvr_duration_secs)
        } else {
            self.no_dvr_window_secs.load(Relaxed)
        };
        let keep = Duration::from_secs(window_secs) + SWEEP_MARGIN;
        let before = engine.now().unix_micros() - keep.as_micros() as i64;
        // Per rendition, the first seq any clip holds.
        let mut needed: HashMap<String, u64> = HashMap::new();
        let mut live: HashSet<ClipId> = HashSet::new();
        for clip in engine.clips(id).unwrap_or_default() {
            live.insert(clip.id());
            let view = clip.view();
            for r in view.renditions() {
                if let Some(first) = r.chunks().first() {
                    let e = needed.entry(r.name().to_owned()).or_insert(first.seq());
                    *e = (*e).min(first.seq());
                } else {
                    // A recording clip holding nothing yet takes what comes next.
                    needed.insert(r.name().to_owned(), u64::MAX);
                }
            }
        }
        let mut st = self.state.lock();
        let Some(s) = st.shipping(id) else {
            return Vec::new();
        };
        s.clip_latest.retain(|c, _| live.contains(c));
        let latest: HashSet<&String> = s.clip_latest.values().collect();
        let mut out: Vec<String> = std::mem::take(&mut s.garbage);
        for (key, o) in &s.objects {
            let old = o.max_start_us < before;
            let unheld = o
                .max_seq
                .iter()
                .all(|(r, seq)| needed.get(r).is_none_or(|from| seq < from));
            if old && unheld && !latest.contains(key) {
                out.push(key.clone());
            }
        }
        for key in &out {
            s.objects.remove(key);
        }
        out
    }

    /// Takes `record`'s stream into `engine` for a claim of this node at
    /// `generation`: its shipped DVR and clips restored first when the engine does
    /// not hold it (bounded by [`restore::TIMEOUT`] and the memory budget: what was
    /// read by then, the newest part, is restored; nothing read or a failure: an
    /// empty DVR, logged and counted), then shipped from now on. The engine's
    /// store hears of what is restored as of admissions (`Engine::restore`,
    /// `report_to_store`), so the node's spool, if it has one, keeps it: payloads
    /// in its files, records in its journal.
    pub async fn take_in(
        &self,
        engine: &Engine,
        record: &super::records::StreamRecord,
        generation: u64,
    ) -> Result<(), ApiError> {
        let id = StreamId(record.id);
        let lock = Arc::clone(self.claims.lock().entry(id).or_default());
        let _claiming = lock.lock().await;
        let already = self
            .state
            .lock()
            .streams
            .get(&id)
            .is_some_and(|s| s.owned && s.generation == generation);
        if already {
            return super::adopt(engine, record);
        }
        let mut restored = restore::Restored::default();
        let mut reship = false;
        if engine.stream(id).is_err() {
            let started = Instant::now();
            let until = tokio::time::Instant::now() + self.restore_timeout();
            let read = restore::read(self.store.as_ref(), engine, record, generation, until).await;
            match read {
                Ok(r) => {
                    restored = r;
                    // Parses every chunk again and, with a spool, writes its
                    // payload: off the runtime's queue where the runtime allows.
                    let multi_thread = tokio::runtime::Handle::try_current()
                        .is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
                    let applied = if multi_thread {
                        tokio::task::block_in_place(|| restored.apply(engine))
                    } else {
                        restored.apply(engine)
                    };
                    match applied {
                        // Nothing shipped yet (a stream's first claim).
                        Ok(_) if restored.objects.is_empty() => {}
                        Ok(report) => {
                            let took = started.elapsed();
                            let c = &self.counters;
                            c.restores.fetch_add(1, Relaxed);
                            c.restore_micros.fetch_add(took.as_micros() as u64, Relaxed);
                            c.restored_chunks
                                .fetch_add(report.ring_chunks as u64, Relaxed);
                            c.restored_clips.fetch_add(report.clips as u64, Relaxed);
                            c.unspooled
                                .fetch_add(report.chunks_not_stored as u64, Relaxed);
                            if report.chunks_not_stored > 0 {
                                warn!(
                                    stream = id.0,
                                    chunks = report.chunks_not_stored,
                                    "restored chunks not in this node's spool (it refused a payload): a restart of this node loses them"
                                );
                            }
                            if let Some(cut) = &restored.cut {
                                c.restores_partial.fetch_add(1, Relaxed);
                                c.unread.fetch_add(restored.unread as u64, Relaxed);
                                warn!(
                                    stream = id.0, %cut, read = restored.objects.len(),
                                    unread = restored.unread,
                                    "shipped DVR restored in part: its newest objects only"
                                );
                            }
                            info!(
                                stream = id.0, generation, chain = ?restored.chain,
                                objects = restored.objects.len(), ring_chunks = report.ring_chunks,
                                clips = report.clips, clips_lost = report.clips_lost,
                                chunks_dropped = report.chunks_dropped, millis = took.as_millis() as u64,
                                "shipped DVR restored"
                            );
                            // Its clips are archived once complete (a clip the dead
                            // node archived already is found there and skipped).
                            if let Some(arc) = self.engine.get().and_then(Weak::upgrade) {
                                for clip in engine.clips(id).unwrap_or_default() {
                                    self.archive.spawn(Arc::clone(&arc), clip);
                                }
                            }
                        }
                        Err(e) => {
                            self.counters.restore_failures.fetch_add(1, Relaxed);
                            warn!(stream = id.0, error = %e, "shipped DVR not restored; starting empty");
                            restored = restore::Restored::default();
                        }
                    }
                }
                Err(e) => {
                    self.counters.restore_failures.fetch_add(1, Relaxed);
                    warn!(stream = id.0, error = %e, "shipped DVR not read; starting empty");
                }
            }
            self.counters
                .corrupt
                .fetch_add(restored.corrupt as u64, Relaxed);
        } else if let Some(chain) = self.state.lock().parked.remove(&id) {
            // Held still (claimed again after a lost lease): its DVR continues.
            restored.chain = chain;
        } else {
            // Held with no chain of this process (recovered from the spool after a
            // restart): what it shipped before is named by no chain of its own,
            // so the held DVR is shipped again as this generation's content.
            reship = true;
        }
        super::adopt(engine, record)?;
        // New media opens a discontinuity after what was restored.
        if let Ok(info) = engine.stream(id) {
            for r in &info.renditions {
                let _ = engine.break_discontinuity(id, r);
            }
        }
        let mut chain = restored.chain;
        if chain.len() >= MAX_CHAIN {
            chain.drain(..chain.len() + 1 - MAX_CHAIN);
        }
        chain.push(generation);
        // Each rendition's current init (restored, or held still), for the batches
        // that name an older one.
        let current: HashMap<String, Arc<InitSegment>> = engine
            .renditions(id)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| Some((r.name, r.init?)))
            .collect();
        // The held DVR, walked as a restore reports it to a store (inits, ring and
        // clip-held chunks, clips), for the batches to come.
        let held = if reship {
            let walk = hook::HeldWalk::default();
            engine.report_stream(id, &walk).map_err(ApiError::from)?;
            let held: VecDeque<Held> = walk.0.into_inner().into();
            info!(
                stream = id.0,
                generation,
                records = held.len(),
                "claimed a stream held from the spool: its DVR is shipped again"
            );
            (!held.is_empty()).then_some(held)
        } else {
            None
        };
        let mut st = self.state.lock();
        let clip_latest = restored.clip_latest;
        for c in clip_latest.keys() {
            st.clip_streams.insert(*c, id);
        }
        // A removal of one of them meanwhile is shipped (and wins over its record).
        for h in held.iter().flatten() {
            if let Held::Clip(c) = h {
                st.clip_streams.insert(c.id(), id);
            }
        }
        let old = st.streams.insert(
            id,
            Shipping {
                generation,
                chain,
                owned: true,
                gen_written: false,
                next_batch: 0,
                batch: Batch::default(),
                busy: false,
                objects: restored.objects.into_iter().collect(),
                garbage: restored.garbage,
                clip_latest,
                current,
                last_sweep: Instant::now(),
                reship: held,
            },
        );
        if let Some(old) = old {
            st.queued_bytes = st.queued_bytes.saturating_sub(old.batch.payload_bytes);
        }
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// The claim on `id` is gone: what is queued is written, nothing more.
    pub fn release(&self, id: StreamId) {
        if let Some(s) = self.state.lock().streams.get_mut(&id) {
            s.owned = false;
        }
    }

    /// Every claim is gone (a lost lease, leaving).
    pub fn release_all(&self) {
        for s in self.state.lock().streams.values_mut() {
            s.owned = false;
        }
    }

    /// Writes what is queued, for at most `grace` (a draining node: its DVR up to
    /// its last chunk is in the store for the next owner).
    pub async fn drain(self: &Arc<Self>, grace: Duration) {
        let until = Instant::now() + grace;
        while Instant::now() < until {
            let pending = self
                .state
                .lock()
                .streams
                .values()
                .any(|s| s.busy || !s.batch.is_empty() || (s.owned && s.reship.is_some()));
            if !pending {
                return;
            }
            self.flush();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        warn!("DVR shipping cut short by shutdown");
    }

    /// Stops shipping stream `id` (deleted), dropping what is queued for it;
    /// whether it was shipped here.
    fn forget(&self, id: StreamId) -> bool {
        let mut st = self.state.lock();
        let s = st.streams.remove(&id);
        st.parked.remove(&id);
        if let Some(s) = &s {
            st.queued_bytes = st.queued_bytes.saturating_sub(s.batch.payload_bytes);
        }
        s.is_some()
    }

    /// Stream `id` was deleted while no node owned it (its owner died): its shipped
    /// objects, which no owner will remove, are removed from here (in the
    /// background).
    pub fn remove_unowned(self: &Arc<Self>, id: StreamId) {
        self.forget(id);
        let ship = Arc::clone(self);
        tokio::spawn(async move { ship.remove_stream(id).await });
    }

    /// Removes every object of stream `id` (deleted).
    async fn remove_stream(&self, id: StreamId) {
        let prefix = stream_prefix(id);
        let keys = match self.store.list(prefix.trim_end_matches('/')).await {
            Ok(k) => k,
            Err(e) => {
                warn!(stream = id.0, error = %e, "could not list a deleted stream's shipped DVR");
                return;
            }
        };
        let mut removed = 0;
        for (key, _) in keys.into_iter().filter(|(k, _)| k.starts_with(&prefix)) {
            if self.store.delete(&key).await.is_ok() {
                removed += 1;
            }
        }
        self.counters.removed.fetch_add(removed, Relaxed);
    }

    /// The counters in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        let c = &self.counters;
        let (queued, pending) = {
            let st = self.state.lock();
            let waiting: usize = st
                .streams
                .values()
                .map(|s| s.batch.entries.len() + s.reship.as_ref().map_or(0, VecDeque::len))
                .sum();
            (st.queued_bytes, (waiting + st.inflight_records) as u64)
        };
        let rows: [(&str, &str, &str, u64); 20] = [
            (
                "dvrclip_ship_objects_total",
                "counter",
                "DVR batch objects written to the store.",
                c.objects.load(Relaxed),
            ),
            (
                "dvrclip_ship_bytes_total",
                "counter",
                "Bytes of DVR batches (and generation descriptions) written.",
                c.bytes.load(Relaxed),
            ),
            (
                "dvrclip_ship_chunks_total",
                "counter",
                "Chunks shipped.",
                c.chunks.load(Relaxed),
            ),
            (
                "dvrclip_ship_chunk_bytes_total",
                "counter",
                "Payload bytes of the chunks shipped.",
                c.chunk_bytes.load(Relaxed),
            ),
            (
                "dvrclip_ship_lag_micros_total",
                "counter",
                "Microseconds from each shipped chunk's admission to its object stored, summed.",
                c.lag_micros.load(Relaxed),
            ),
            (
                "dvrclip_ship_lag_max_micros",
                "gauge",
                "The longest of those so far.",
                c.lag_max_micros.load(Relaxed),
            ),
            (
                "dvrclip_ship_queued_bytes",
                "gauge",
                "Payload bytes queued or being written now.",
                queued,
            ),
            (
                "dvrclip_ship_pending_records",
                "gauge",
                "Records (inits, chunks, clips...) queued or being written now.",
                pending,
            ),
            (
                "dvrclip_ship_failures_total",
                "counter",
                "Batch writes that failed (tried again).",
                c.failures.load(Relaxed),
            ),
            (
                "dvrclip_ship_dropped_chunks_total",
                "counter",
                "Chunks not shipped because the queue was full.",
                c.dropped.load(Relaxed),
            ),
            (
                "dvrclip_ship_removed_total",
                "counter",
                "Shipped objects removed (swept or of a deleted stream).",
                c.removed.load(Relaxed),
            ),
            (
                "dvrclip_ship_restores_total",
                "counter",
                "Streams restored from their shipped DVR on a claim.",
                c.restores.load(Relaxed),
            ),
            (
                "dvrclip_ship_restore_failures_total",
                "counter",
                "Claims whose restore failed or read nothing within the bound (started empty).",
                c.restore_failures.load(Relaxed),
            ),
            (
                "dvrclip_ship_restores_partial_total",
                "counter",
                "Restores cut short (time bound, memory budget or a store failure): the newest objects read were restored, the older ones dropped.",
                c.restores_partial.load(Relaxed),
            ),
            (
                "dvrclip_ship_restore_unread_objects_total",
                "counter",
                "Shipped objects left unread by cut restores (removed by the sweep).",
                c.unread.load(Relaxed),
            ),
            (
                "dvrclip_ship_restore_micros_total",
                "counter",
                "Microseconds spent restoring, summed.",
                c.restore_micros.load(Relaxed),
            ),
            (
                "dvrclip_ship_restored_chunks_total",
                "counter",
                "Chunks put back into rings by restores.",
                c.restored_chunks.load(Relaxed),
            ),
            (
                "dvrclip_ship_restored_clips_total",
                "counter",
                "Clips brought back by restores.",
                c.restored_clips.load(Relaxed),
            ),
            (
                "dvrclip_ship_corrupt_objects_total",
                "counter",
                "Shipped objects refused by a restore (unreadable), skipped.",
                c.corrupt.load(Relaxed),
            ),
            (
                "dvrclip_ship_restore_unspooled_chunks_total",
                "counter",
                "Restored chunks this node's spool refused (no space): held in memory only, lost if this node restarts.",
                c.unspooled.load(Relaxed),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            crate::metrics::family(&mut out, name, kind, help, value);
        }
        out
    }
}

#[cfg(test)]
mod tests;
