//! A stream's shipped DVR read back on a claim ([`super::Shipper::take_in`]): the
//! chain of generations (the greatest one below the claim's with a `gen.json`, and
//! the ones it names), its batches read newest first (at most [`READS_IN_FLIGHT`] at
//! once) and checked (`dvrclip_spool::shipped::decode`: a refused object is skipped,
//! logged with its reason and counted, never a panic), folded as the spool folds
//! its journal, and given to [`Engine::restore`], which parses every payload against
//! its init again.
//!
//! Bounded in time and memory: the reads stop at the claim's deadline
//! ([`TIMEOUT`]), when the engine's budget has no room for the next object (each
//! object is counted against it from before its read until the restore hands its
//! chunks to the engine, `Engine::try_reserve_memory`), or at the store's first
//! failure ([`Cut`]). What was read by then is kept: the newest objects, one after
//! another from the newest back, so each rendition gets the newest run of its
//! shipped chunks, each with its init (every batch names the inits its chunks need),
//! and no hole between them (an object is kept only if every newer one was read).
//! The older objects not read are handed to the sweep as garbage: the new owner's
//! DVR starts where its restore did, and a later claim must not add older media
//! behind it. Clips: one whose latest record was read is restored if every chunk it
//! held came back, else kept as lost (`Engine::restore`, as the spool does); one
//! whose latest record was not read is unknown to the new owner (its links are
//! still served from the clip archive once it was complete and archived).
//! Nothing read before the bound: the restore fails and the stream starts empty.
//!
//! Memory: the restored chunks' payloads are slices of the objects read, so a
//! restore holds at most what the dead node's DVR and clips held, and never more
//! than the budget leaves; objects of generations no chain names are only listed
//! (garbage for the sweep). On a node with a spool, [`Engine::restore`] gives each
//! payload to the spool (`Restore::report_to_store`, set by
//! `shipped::restore_stream`): it becomes a spool file, and an object's memory is
//! freed once all its chunks are placed, so the restore's bytes are held twice
//! only while it is applied.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use dvrclip_engine::persist::{Restore, RestoreReport};
use dvrclip_engine::{ClipId, Engine, MemoryReservation, StreamId};
use dvrclip_spool::record::StreamRec;
use dvrclip_spool::shipped::{self, Entry};
use futures_util::StreamExt;
use tokio::time::{Instant, timeout_at};
use tracing::warn;

use super::{GenerationRec, MAX_CHAIN, ObjectInfo, generation_key, stream_prefix};
use crate::cluster::records::StreamRecord;
use crate::vod::{StoreError, VodStore};

/// A claim waits this long at most for its stream's DVR to be read; what was read
/// by then is restored (the newest part), nothing read: the stream starts empty.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Batch objects read at once.
pub const READS_IN_FLIGHT: usize = 8;

/// A batch object larger than this is not read (counted as refused): the shipper
/// writes a few chunks per object, so it is not one of ours.
pub const MAX_OBJECT_BYTES: u64 = 256 << 20;

/// Why a shipped DVR could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A generation's description is not one.
    #[error("{key}: {reason}")]
    Generation {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The bound passed (or the budget refused) before any object was read.
    #[error("nothing read: {0}")]
    NothingRead(Cut),
}

/// Why the reading stopped before the oldest object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Cut {
    /// The claim's deadline passed.
    #[error("the {0:?} bound passed")]
    Time(Duration),
    /// The engine's memory budget had no room for the next object.
    #[error("the memory budget has no room for the next object ({0} bytes)")]
    Memory(u64),
    /// The store failed on the next object.
    #[error("the store failed: {0}")]
    Store(String),
}

/// What was read: the stream and clips to restore, and what the shipper needs to
/// go on from there.
#[derive(Debug, Default)]
pub struct Restored {
    /// Generations whose objects were read, oldest first: the new one's base.
    pub chain: Vec<u64>,
    /// The objects read, for the sweep.
    pub objects: Vec<(String, ObjectInfo)>,
    /// Objects to remove: of generations no chain names, and the older objects a
    /// cut left unread.
    pub garbage: Vec<String>,
    /// Each clip's latest record: the object holding it.
    pub clip_latest: HashMap<ClipId, String>,
    /// Objects refused (unreadable), skipped.
    pub corrupt: usize,
    /// Why only the newest objects were read, if so.
    pub cut: Option<Cut>,
    /// Objects left unread by the cut.
    pub unread: usize,
    restore: Option<Restore>,
    /// The objects' bytes, counted against the engine's budget until their chunks
    /// are the engine's.
    reserved: Vec<MemoryReservation>,
}

impl Restored {
    /// Puts the stream, its DVR and clips into `engine` (which must not hold the
    /// stream); nothing read: nothing done.
    pub fn apply(&mut self, engine: &Engine) -> Result<RestoreReport, dvrclip_engine::Error> {
        // The chunks count themselves from here on.
        self.reserved.clear();
        match self.restore.take() {
            Some(r) if !r.streams.is_empty() => engine.restore(r),
            _ => Ok(RestoreReport::default()),
        }
    }
}

/// Where a key sits: its generation and, for a batch, its number (`None`: the
/// generation's description).
fn parse_key(prefix: &str, key: &str) -> Option<(u64, Option<u64>)> {
    let (generation, name) = key.strip_prefix(prefix)?.split_once('/')?;
    let generation = u64::from_str_radix(generation, 16).ok()?;
    if name == "gen.json" {
        return Some((generation, None));
    }
    let n = u64::from_str_radix(name.strip_suffix(".dvr")?, 16).ok()?;
    Some((generation, Some(n)))
}

/// A batch object to read: its generation's place in the chain, key and size.
#[derive(Debug, Clone)]
struct Wanted {
    at: usize,
    key: String,
    size: u64,
}

/// What the newest-first reading got.
#[derive(Debug, Default)]
struct Reading {
    /// The batches read, newest first, each with its `Wanted` and entries.
    batches: Vec<(Wanted, Vec<Entry>)>,
    corrupt: usize,
    /// How many of the wanted objects (newest first) were dealt with: read,
    /// refused, or gone meanwhile.
    done: usize,
    cut: Option<Cut>,
    reserved: Vec<MemoryReservation>,
}

/// Reads `newest_first` in that order, [`READS_IN_FLIGHT`] at once, until the end,
/// `until`, the budget's refusal or the store's failure; what comes back after a
/// cut is not kept (only objects whose newer ones were all read are).
async fn read_newest(
    store: &dyn VodStore,
    engine: &Engine,
    newest_first: &[Wanted],
    until: Instant,
    bound: Duration,
) -> Reading {
    let mut reads = futures_util::stream::iter(newest_first.to_vec())
        .map(move |w: Wanted| {
            // Counted before the read, so what is in flight is within the budget.
            let reserved = engine.try_reserve_memory(w.size);
            async move {
                match reserved {
                    Ok(r) => Ok((store.get(&w.key).await, r)),
                    Err(_) => Err(Cut::Memory(w.size)),
                }
            }
        })
        .buffered(READS_IN_FLIGHT);
    let mut out = Reading::default();
    while let Some(w) = newest_first.get(out.done) {
        let got = match timeout_at(until, reads.next()).await {
            Ok(Some(got)) => got,
            Ok(None) => break,
            Err(_) => {
                out.cut = Some(Cut::Time(bound));
                break;
            }
        };
        let (bytes, reserved) = match got {
            Ok((Ok(bytes), reserved)) => (bytes, reserved),
            // Swept meanwhile.
            Ok((Err(e), _)) if e.is_not_found() => {
                out.done += 1;
                continue;
            }
            Ok((Err(e), _)) => {
                out.cut = Some(Cut::Store(e.to_string()));
                break;
            }
            Err(cut) => {
                out.cut = Some(cut);
                break;
            }
        };
        out.done += 1;
        match shipped::decode(&bytes) {
            Ok(batch) => {
                out.reserved.push(reserved);
                out.batches.push((w.clone(), batch));
            }
            Err(reason) => {
                out.corrupt += 1;
                warn!(key = %w.key, %reason, "shipped DVR batch refused; skipped");
            }
        }
    }
    out
}

/// Each generation's entries, oldest first, from batches read newest first: the
/// order the fold takes them in (a chunk's record before the records that moved
/// it or took it out of the ring).
fn oldest_first(chain_len: usize, newest_first: Vec<(usize, Vec<Entry>)>) -> Vec<Vec<Entry>> {
    let mut out: Vec<Vec<Entry>> = vec![Vec::new(); chain_len];
    for (at, entries) in newest_first.into_iter().rev() {
        if let Some(g) = out.get_mut(at) {
            g.extend(entries);
        }
    }
    out
}

/// Reads the shipped DVR of `record`'s stream for a claim at `generation`, as of
/// `engine`'s now, until `until` (what was read by then is kept: see the module's
/// doc), each object counted against `engine`'s budget.
pub async fn read(
    store: &dyn VodStore,
    engine: &Engine,
    record: &StreamRecord,
    generation: u64,
    until: Instant,
) -> Result<Restored, RestoreError> {
    let bound = until.saturating_duration_since(Instant::now());
    let late = || RestoreError::NothingRead(Cut::Time(bound));
    let id = StreamId(record.id);
    let prefix = stream_prefix(id);
    // Per generation: whether it has a description, and its batches (number, key,
    // size).
    type Batches = Vec<(u64, String, u64)>;
    let mut generations: BTreeMap<u64, (bool, Batches)> = BTreeMap::new();
    let mut out = Restored::default();
    let listed = timeout_at(until, store.list(prefix.trim_end_matches('/')))
        .await
        .map_err(|_| late())??;
    for (key, size) in listed {
        let Some((g, batch)) = parse_key(&prefix, &key) else {
            continue;
        };
        let e = generations.entry(g).or_default();
        match batch {
            // A description is a few hundred bytes.
            None if size > 1 << 20 => out.corrupt += 1,
            None => e.0 = true,
            Some(_) if size > MAX_OBJECT_BYTES => {
                out.corrupt += 1;
                warn!(%key, size, "shipped DVR batch too large to be ours; skipped");
            }
            Some(n) => e.1.push((n, key, size)),
        }
    }
    let latest = generations
        .iter()
        .rev()
        .find(|(g, (described, _))| **g < generation && *described)
        .map(|(g, _)| *g);
    let chain = match latest {
        Some(latest) => {
            let key = generation_key(id, latest);
            let body: Bytes = timeout_at(until, store.get(&key))
                .await
                .map_err(|_| late())??;
            let bad = |reason: String| RestoreError::Generation {
                key: key.clone(),
                reason,
            };
            let rec: GenerationRec =
                serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
            if rec.version != 1 || rec.stream != id.0 || rec.generation != latest {
                return Err(bad("names another version, stream or generation".into()));
            }
            if rec.base.len() > MAX_CHAIN || rec.base.iter().any(|g| *g >= latest) {
                return Err(bad("its base is not older generations".into()));
            }
            let mut chain = rec.base;
            chain.push(latest);
            chain
        }
        None => Vec::new(),
    };
    for (g, (_, batches)) in &generations {
        if *g < generation && !chain.contains(g) {
            out.garbage
                .extend(batches.iter().map(|(_, k, _)| k.clone()));
            out.garbage.push(generation_key(id, *g));
        }
    }
    let mut newest_first = Vec::new();
    for (at, g) in chain.iter().enumerate() {
        if let Some((_, batches)) = generations.get_mut(g) {
            batches.sort();
            newest_first.extend(batches.iter().map(|(_, key, size)| Wanted {
                at,
                key: key.clone(),
                size: *size,
            }));
        }
    }
    newest_first.reverse();
    let reading = read_newest(store, engine, &newest_first, until, bound).await;
    out.corrupt += reading.corrupt;
    if let Some(cut) = reading.cut {
        if reading.batches.is_empty() {
            return Err(RestoreError::NothingRead(cut));
        }
        // Older than everything kept: the new DVR starts after them.
        let unread = newest_first.get(reading.done..).unwrap_or_default();
        out.unread = unread.len();
        out.garbage.extend(unread.iter().map(|w| w.key.clone()));
        out.cut = Some(cut);
    }
    out.reserved = reading.reserved;
    let mut read_from = vec![false; chain.len()];
    let mut batches = Vec::with_capacity(reading.batches.len());
    for (w, batch) in reading.batches {
        let info = ObjectInfo::of(&batch);
        out.objects.push((w.key.clone(), info));
        if let Some(r) = read_from.get_mut(w.at) {
            *r = true;
        }
        batches.push((w.at, batch));
    }
    // Oldest first, so a clip's latest record is the last one seen.
    out.objects.reverse();
    for (key, info) in &out.objects {
        for clip in &info.clips {
            out.clip_latest.insert(*clip, key.clone());
        }
    }
    if out.cut.is_some() {
        // A generation the cut left wholly unread is no part of the new DVR.
        for (g, read) in chain.iter().zip(&read_from) {
            if !read {
                out.garbage.push(generation_key(id, *g));
            }
        }
    }
    out.chain = chain
        .iter()
        .zip(&read_from)
        .filter(|(_, read)| **read)
        .map(|(g, _)| *g)
        .collect();
    if !out.objects.is_empty() {
        let stream = StreamRec {
            id: record.id,
            name: record.name.clone(),
            active: record.active,
            dvr_enabled: record.dvr_enabled,
            dvr_duration_secs: record.dvr_duration,
            pull: record.pull,
            uri: record.uri.clone(),
            created_us: record.created_us,
            ingest_key: record.ingest_key.clone(),
            play_key: record.play_key.clone(),
        };
        let entries = oldest_first(chain.len(), batches);
        let (restore, _) = shipped::restore_stream(stream, entries, engine.now());
        out.restore = Some(restore);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use dvrclip_engine::WallTime;
    use dvrclip_spool::record::Record;
    use proptest::prelude::*;

    use super::*;

    const INIT: &[u8] = include_bytes!("../../../../../tests/fixtures/h264_aac/init.mp4");
    const T0_US: i64 = 1_795_564_800_000_000;

    /// What one step of the shipping node did.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        /// A chunk of rendition `.0`.
        Chunk(u8),
        /// A new init of rendition `.0`: other bytes (`true`) or the same again (an
        /// encoder's reconnect).
        Init(u8, bool),
        /// A new init of rendition `.0` with its first init's bytes (A, B, A).
        Back(u8),
        /// A clip's record names rendition `.0`'s first init (a clip cut back
        /// into the DVR).
        Named(u8),
        /// The oldest chunk of rendition `.0` left the ring.
        Leave(u8),
        /// The batch is written; the next op goes in the next one.
        Write,
        /// The owner died: the next claim (a new generation, its own init ids)
        /// continues the DVR.
        Claim,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..3u8).prop_map(Op::Chunk),
            1 => (0..3u8, any::<bool>()).prop_map(|(r, b)| Op::Init(r, b)),
            1 => (0..3u8).prop_map(Op::Back),
            1 => (0..3u8).prop_map(Op::Named),
            1 => (0..3u8).prop_map(Op::Leave),
            4 => Just(Op::Write),
            1 => Just(Op::Claim),
        ]
    }

    /// An init that parses, distinct for each `n` (a `free` box after the fixture).
    fn init_bytes(n: u32) -> Vec<u8> {
        let mut b = INIT.to_vec();
        b.extend_from_slice(&12u32.to_be_bytes());
        b.extend_from_slice(b"free");
        b.extend_from_slice(&n.to_be_bytes());
        b
    }

    /// What was shipped, as the shipper lays it out: batches (their generation's
    /// place in the chain, entries), oldest first; per rendition, each shipped
    /// chunk's init bytes and whether it left the ring by the end, and its current
    /// init's bytes as of the last batch.
    #[derive(Debug, Default)]
    struct Shipped {
        objects: Vec<(usize, Vec<Entry>)>,
        chunks: HashMap<String, BTreeMap<u64, (Vec<u8>, bool)>>,
        current: HashMap<String, Vec<u8>>,
    }

    /// The shipping node's state in [`ship`].
    #[derive(Debug, Default)]
    struct Node {
        out: Shipped,
        at: usize,
        next_id: u64,
        next_bytes: u32,
        /// Per rendition: the current init (id, bytes), the first init (its id in
        /// this generation, once named; bytes), the next seq, the ring.
        current: HashMap<String, (u64, Vec<u8>)>,
        first: HashMap<String, (Option<u64>, Vec<u8>)>,
        next_seq: HashMap<String, u64>,
        ring: HashMap<String, std::collections::VecDeque<u64>>,
        /// The batch being filled, the inits it names, its chunks and departures.
        batch: Vec<Entry>,
        named: HashSet<u64>,
        pending: Vec<(String, u64, Vec<u8>)>,
        left: Vec<(String, u64)>,
    }

    impl Node {
        fn name_init(&mut self, r: &str, id: u64, bytes: &[u8]) {
            if self.named.insert(id) {
                self.batch.push(Entry {
                    record: Record::Init {
                        id,
                        stream: 7,
                        rendition: r.to_owned(),
                        bytes: bytes.to_vec(),
                    },
                    payload: None,
                });
            }
        }

        fn write(&mut self) {
            // As the shipper does: a batch naming an init of a rendition ends with
            // its current one.
            let mut last: HashMap<String, u64> = HashMap::new();
            for e in &self.batch {
                if let Record::Init { id, rendition, .. } = &e.record {
                    last.insert(rendition.clone(), *id);
                }
            }
            let mut last: Vec<(String, u64)> = last.into_iter().collect();
            last.sort();
            for (r, id) in last {
                if let Some((current, bytes)) = self.current.get(&r).cloned()
                    && current != id
                {
                    self.named.remove(&current);
                    self.name_init(&r, current, &bytes);
                }
            }
            for e in &self.batch {
                if let Record::Init {
                    rendition, bytes, ..
                } = &e.record
                {
                    self.out.current.insert(rendition.clone(), bytes.clone());
                }
            }
            if !self.batch.is_empty() {
                self.out
                    .objects
                    .push((self.at, std::mem::take(&mut self.batch)));
            }
            for (r, seq, bytes) in self.pending.drain(..) {
                self.out
                    .chunks
                    .entry(r)
                    .or_default()
                    .insert(seq, (bytes, false));
            }
            for (r, seq) in self.left.drain(..) {
                if let Some(c) = self.out.chunks.get_mut(&r).and_then(|c| c.get_mut(&seq)) {
                    c.1 = true;
                }
            }
            self.named.clear();
        }

        fn step(&mut self, op: Op) {
            match op {
                Op::Init(r, other) => {
                    let r = format!("r{r}");
                    let bytes = match self.current.get(&r) {
                        Some((_, b)) if !other => b.clone(),
                        _ => {
                            self.next_bytes += 1;
                            init_bytes(self.next_bytes)
                        }
                    };
                    self.next_id += 1;
                    let id = self.next_id;
                    self.name_init(&r, id, &bytes);
                    self.first
                        .entry(r.clone())
                        .or_insert((Some(id), bytes.clone()));
                    self.current.insert(r, (id, bytes));
                }
                Op::Back(r) => {
                    let r = format!("r{r}");
                    let Some((_, bytes)) = self.first.get(&r).cloned() else {
                        return;
                    };
                    if self.current.get(&r).is_some_and(|(_, b)| *b == bytes) {
                        // The engine keeps the current init.
                        return;
                    }
                    self.next_id += 1;
                    let id = self.next_id;
                    self.name_init(&r, id, &bytes);
                    self.current.insert(r, (id, bytes));
                }
                Op::Named(r) => {
                    let r = format!("r{r}");
                    let Some((id, bytes)) = self.first.get(&r).cloned() else {
                        return;
                    };
                    let id = id.unwrap_or_else(|| {
                        self.next_id += 1;
                        self.next_id
                    });
                    self.first.insert(r.clone(), (Some(id), bytes.clone()));
                    self.name_init(&r, id, &bytes);
                }
                Op::Chunk(r) => {
                    let r = format!("r{r}");
                    // No init yet: the engine refuses the chunk.
                    let Some((id, bytes)) = self.current.get(&r).cloned() else {
                        return;
                    };
                    self.name_init(&r, id, &bytes);
                    let seq = *self.next_seq.get(&r).unwrap_or(&0);
                    self.next_seq.insert(r.clone(), seq + 1);
                    let payload = format!("{r} chunk {seq}").into_bytes();
                    let start = T0_US + seq as i64 * 2_000_000;
                    let record =
                        shipped::chunk_record(7, &r, seq, id, None, start, 0, start, &payload);
                    self.batch.push(Entry {
                        record,
                        payload: Some(Bytes::from(payload)),
                    });
                    self.pending.push((r.clone(), seq, bytes));
                    self.ring.entry(r).or_default().push_back(seq);
                }
                Op::Leave(r) => {
                    let r = format!("r{r}");
                    if let Some(seq) = self.ring.get_mut(&r).and_then(|q| q.pop_front()) {
                        self.batch.push(Entry {
                            record: Record::Left {
                                stream: 7,
                                rendition: r.clone(),
                                seqs: vec![seq],
                            },
                            payload: None,
                        });
                        self.left.push((r, seq));
                    }
                }
                Op::Write => self.write(),
                Op::Claim => {
                    // What was queued dies with the node; the next owner holds what
                    // was shipped and goes on from it, with init ids of its own.
                    self.batch.clear();
                    self.named.clear();
                    self.pending.clear();
                    self.left.clear();
                    self.at += 1;
                    for (r, q) in &mut self.ring {
                        let shipped = self.out.chunks.get(r);
                        q.retain(|seq| shipped.is_some_and(|c| c.get(seq).is_some_and(|c| !c.1)));
                        let next = shipped
                            .and_then(|c| c.keys().next_back())
                            .map_or(0, |s| s + 1);
                        self.next_seq.insert(r.clone(), next);
                    }
                    // Its init ids from 1 again, and the current inits it restored
                    // (what was shipped last).
                    self.next_id = 0;
                    self.current.retain(|r, _| self.out.current.contains_key(r));
                    for (r, (id, bytes)) in &mut self.current {
                        self.next_id += 1;
                        *id = self.next_id;
                        if let Some(b) = self.out.current.get(r) {
                            bytes.clone_from(b);
                        }
                    }
                    for (id, _) in self.first.values_mut() {
                        *id = None;
                    }
                }
            }
        }
    }

    fn ship(ops: &[Op]) -> Shipped {
        let mut node = Node::default();
        for op in ops {
            node.step(*op);
        }
        node.write();
        node.out
    }

    fn stream_rec() -> StreamRec {
        StreamRec {
            id: 7,
            name: "s".into(),
            active: true,
            dvr_enabled: true,
            dvr_duration_secs: 3600,
            pull: false,
            uri: None,
            created_us: T0_US,
            ingest_key: "i".into(),
            play_key: "p".into(),
        }
    }

    proptest! {
        /// Whatever the restore's cut-off (the newest `k` objects read), each
        /// rendition gets a contiguous run of its shipped chunks ending at its newest
        /// shipped one (none if no kept object holds one of its chunks), each with
        /// the init it was shipped with and in the ring unless it had left it, and
        /// the rendition's current init is the one it had last (whatever its id,
        /// and the generation that gave it).
        #[test]
        fn any_cut_restores_a_contiguous_newest_run(ops in proptest::collection::vec(op(), 1..60)) {
            let shipped = ship(&ops);
            let n = shipped.objects.len();
            let chain_len = shipped.objects.last().map_or(0, |(at, _)| at + 1);
            for k in 0..=n {
                let kept: Vec<(usize, Vec<Entry>)> =
                    shipped.objects[n - k..].iter().rev().cloned().collect();
                let in_kept: HashSet<(String, u64)> = kept
                    .iter()
                    .flat_map(|(_, e)| e.iter())
                    .filter_map(|e| match &e.record {
                        Record::Chunk(c) => Some((c.rendition.clone(), c.seq)),
                        _ => None,
                    })
                    .collect();
                let entries = oldest_first(chain_len, kept);
                let now = WallTime::from_unix_micros(T0_US);
                let (restore, _) = shipped::restore_stream(stream_rec(), entries, now);
                let mut seen = HashSet::new();
                let none = BTreeMap::new();
                for rs in restore.streams.iter().flat_map(|s| &s.renditions) {
                    // Which init: its `free` box's number.
                    let n = |b: &[u8]| b.get(b.len().saturating_sub(4)..).map(<[u8]>::to_vec);
                    let current = rs.init.as_ref().and_then(|i| n(&i.bytes));
                    let expected = shipped.current.get(&rs.name).and_then(|b| n(b));
                    prop_assert_eq!(current, expected, "{} current init, cut at {}", rs.name, k);
                    // A rendition with inits only has no chunk to restore.
                    let all = shipped.chunks.get(&rs.name).unwrap_or(&none);
                    let mut seqs: Vec<u64> = rs.chunks.iter().map(|c| c.seq).collect();
                    seqs.sort_unstable();
                    if let (Some(first), Some(last)) = (seqs.first(), seqs.last()) {
                        let expected: Vec<u64> = all.range(first..).map(|(s, _)| *s).collect();
                        prop_assert_eq!(&seqs, &expected, "{} cut at {}", rs.name, k);
                        prop_assert_eq!(Some(last), all.keys().next_back());
                        prop_assert!((*first..=*last).eq(seqs.iter().copied()), "a hole: {:?}", seqs);
                    }
                    for c in &rs.chunks {
                        let (bytes, left) = &all[&c.seq];
                        prop_assert_eq!(&c.init.bytes[..], &bytes[..]);
                        prop_assert_eq!(c.in_ring, !left);
                        seen.insert((rs.name.clone(), c.seq));
                    }
                }
                prop_assert_eq!(seen, in_kept, "every kept chunk restored, cut at {}", k);
            }
        }
    }

    #[test]
    fn keys_name_their_generation_and_batch() {
        let p = "dvr/7/";
        assert_eq!(
            parse_key(p, "dvr/7/00000000000000a1/gen.json"),
            Some((0xa1, None))
        );
        assert_eq!(
            parse_key(p, "dvr/7/00000000000000a1/0000000000000003.dvr"),
            Some((0xa1, Some(3)))
        );
        assert_eq!(parse_key(p, "dvr/70/00000000000000a1/gen.json"), None);
        assert_eq!(parse_key(p, "dvr/7/zz/gen.json"), None);
        assert_eq!(parse_key(p, "dvr/7/00000000000000a1/other"), None);
    }
}
