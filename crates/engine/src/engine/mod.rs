//! The [`Engine`]: the one object a media server embeds. It owns the streams, the
//! clip store, the memory budget and the deadlines (expiry, recording wait).
//!
//! Time never passes inside the engine by itself: it reads its [`Clock`] and does
//! the deadline work when the host calls [`Engine::tick`], which it should do at
//! [`Engine::next_deadline`] (a `tokio::time::sleep_until` in the server; a loop
//! in a test that moves a [`crate::ManualClock`]). Expiry and recording deadlines
//! live in two min-heaps, so a tick costs O(log n) per clip it acts on and nothing
//! polls per clip.
//!
//! Locks, always taken in this order and never across I/O: the streams map, a
//! stream's `shared_anchor`, one ring; the clip map, then the map of lost clips; a
//! clip's `build`. Budget eviction takes one ring lock at a time. The key index is
//! taken alone.
//!
//! A key (ingest or play) finds its stream through the key index: a map from the
//! key's SHA-256 to the stream, then one constant-time comparison with that
//! stream's key. Every upload resolves its key, so a scan of all streams made the
//! ingest cost per upload grow with the stream count (40% of the server's CPU at
//! 1,000 streams, `benches/results/flame-ingest-*.svg`); hashing first keeps the
//! map's own comparisons on digests, which say nothing about the key.
//!
//! This file holds the engine itself and its streams; the rest of its methods live
//! by job in [`ingest`] (pushing media in), [`rings`] (reading what the rings hold),
//! [`clips`] (cutting, recording, expiry) and [`restore`] (rebuilding from a store).
//! With a [`Persist`] hook set, each commit is reported to it after it is made in
//! memory, outside ring locks ([`crate::persist`]).

mod clips;
mod ingest;
mod restore;
mod rings;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::chunk::Chunk;
use crate::clip::{Build, Clip, ClipId};
use crate::memory::Account;
use crate::persist::Persist;
use crate::ring::{DEFAULT_BLOCK_CHUNKS, Ring};
use crate::secret::{KeyDigest, KeyKind, constant_time_eq, key_digest, random_hex};
use crate::stream::{Stream, StreamId, StreamInfo, StreamPatch, StreamSettings, check_name};
use crate::time::MICROS_PER_SEC;
use crate::{Clock, Error, MemoryReservation, MemoryStats, Result, SystemClock, WallTime};
use clips::complete_clip;

/// Engine-wide limits and timeouts. `Default` gives production values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Global budget for chunks (payload and parsed tables, DVR and clips together)
    /// and [`Engine::reserve_memory`] reservations, bytes.
    pub memory_budget_bytes: u64,
    /// A recording clip whose end has passed completes this long after the stream's
    /// last upload, seconds (the bounded wait when an encoder stops).
    pub recording_stall_secs: u32,
    /// A recording clip completes at the latest this long after its end, seconds,
    /// even while uploads go on (an encoder whose clock lags forever).
    pub recording_max_wait_secs: u32,
    /// A stream is `live` if it had an upload within this, seconds.
    pub live_timeout_secs: u32,
    /// Largest `dvr_duration` accepted, seconds.
    pub max_dvr_duration_secs: u32,
    /// Window kept for a stream with DVR disabled (live playback only), seconds.
    pub no_dvr_window_secs: u32,
    /// How far in the future a clip's `start` may be, seconds.
    pub max_start_ahead_secs: u32,
    /// Renditions per stream.
    pub max_renditions: usize,
    /// Clips a stream holds at once (recording, complete, not yet expired): each
    /// costs bookkeeping the byte budget does not see, so their number is bounded.
    pub max_clips_per_stream: usize,
    /// The first `video_id` handed to a `vod_required` clip (a VOD store that
    /// survived a restart passes its next free id).
    pub first_video_id: u64,
    /// Chunks per block of each ring's MP4 header index (`ring::index`); below 2,
    /// no index (every clip header visits each chunk). 64 unless a test needs
    /// blocks to form in a few chunks.
    pub mp4_index_block_chunks: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memory_budget_bytes: 2 << 30,
            recording_stall_secs: 15,
            recording_max_wait_secs: 600,
            live_timeout_secs: 10,
            max_dvr_duration_secs: 86_400,
            no_dvr_window_secs: 30,
            max_start_ahead_secs: 3600,
            max_renditions: 16,
            max_clips_per_stream: 10_000,
            first_video_id: 1,
            mp4_index_block_chunks: DEFAULT_BLOCK_CHUNKS,
        }
    }
}

/// What a [`Engine::tick`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Clips removed at their expiration.
    pub expired: usize,
    /// Recording clips completed by their bounded wait.
    pub completed: usize,
}

/// Expiration bounds (ref/api.md "Clips"), measured from the later of the clip's end
/// and now: 1 h by default, 1 min at the least, 4 h at the most.
const EXPIRATION_MIN_SECS: i64 = 60;
const EXPIRATION_MAX_SECS: i64 = 4 * 3600;
const EXPIRATION_DEFAULT_SECS: i64 = 3600;

type Deadlines = BinaryHeap<Reverse<(WallTime, ClipId)>>;

/// Where `vod_required` clips' video ids come from when one counter per engine is not
/// enough (a cluster's nodes draw blocks from a shared counter). Called on the clip
/// creation path: must answer from memory, never wait on I/O.
pub trait VideoIds: Send + Sync + std::fmt::Debug {
    /// A video id never handed out before, or why none is available now.
    fn next_video_id(&self) -> std::result::Result<u64, String>;
}

/// The dvrclip engine. `Send + Sync`: share it in an `Arc`.
pub struct Engine {
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    account: Arc<Account>,
    streams: RwLock<BTreeMap<StreamId, Arc<Stream>>>,
    /// SHA-256 of each stream's ingest and play key (tagged apart) → the stream.
    keys: RwLock<HashMap<KeyDigest, StreamId>>,
    next_stream_id: AtomicU64,
    next_video_id: AtomicU64,
    /// Where video ids come from instead of `next_video_id` (a cluster's blocks).
    video_ids: Option<Arc<dyn VideoIds>>,
    clips: RwLock<HashMap<ClipId, Clip>>,
    /// Clips whose media a restore could not bring back, kept until their
    /// expiration so they are reported ([`crate::LostClip`]).
    lost: RwLock<HashMap<ClipId, crate::LostClip>>,
    expiry: Mutex<Deadlines>,
    recording_deadlines: Mutex<Deadlines>,
    evict: Mutex<()>,
    persist: Option<Arc<dyn Persist>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("memory", &self.memory())
            .finish_non_exhaustive()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(EngineConfig::default())
    }
}

impl Engine {
    /// An engine on the system clock.
    pub fn new(config: EngineConfig) -> Self {
        Engine::with_clock(config, Arc::new(SystemClock))
    }

    /// An engine on the given clock (tests pass a [`crate::ManualClock`]).
    pub fn with_clock(config: EngineConfig, clock: Arc<dyn Clock>) -> Self {
        let first_video_id = config.first_video_id;
        Engine {
            config,
            clock,
            account: Arc::new(Account::default()),
            streams: RwLock::new(BTreeMap::new()),
            keys: RwLock::new(HashMap::new()),
            next_stream_id: AtomicU64::new(1),
            next_video_id: AtomicU64::new(first_video_id),
            video_ids: None,
            clips: RwLock::new(HashMap::new()),
            lost: RwLock::new(HashMap::new()),
            expiry: Mutex::new(BinaryHeap::new()),
            recording_deadlines: Mutex::new(BinaryHeap::new()),
            evict: Mutex::new(()),
            persist: None,
        }
    }

    /// Reports every commit to `persist` from now on (before the engine is shared;
    /// [`crate::persist`] says when each hook runs). Without one, memory only.
    pub fn with_persist(mut self, persist: Arc<dyn Persist>) -> Self {
        self.persist = Some(persist);
        self
    }

    /// Draws `vod_required` clips' video ids from `ids` instead of the engine's own
    /// counter (before the engine is shared).
    pub fn with_video_ids(mut self, ids: Arc<dyn VideoIds>) -> Self {
        self.video_ids = Some(ids);
        self
    }

    /// The next `video_id`: the source's, else the engine's own counter.
    pub(crate) fn draw_video_id(&self) -> Result<u64> {
        match &self.video_ids {
            Some(ids) => ids.next_video_id().map_err(Error::NoVideoId),
            None => Ok(self.next_video_id.fetch_add(1, Ordering::SeqCst)),
        }
    }

    /// The persistence hook, if any.
    pub(crate) fn persist(&self) -> Option<&dyn Persist> {
        self.persist.as_deref()
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Now, by the engine's clock.
    pub fn now(&self) -> WallTime {
        self.clock.now()
    }

    // ----- streams -----

    fn stream_arc(&self, id: StreamId) -> Result<Arc<Stream>> {
        self.streams
            .read()
            .get(&id)
            .cloned()
            .ok_or(Error::UnknownStream(id))
    }

    fn live_timeout_micros(&self) -> i64 {
        i64::from(self.config.live_timeout_secs) * MICROS_PER_SEC
    }

    /// Whether this engine would take `s` for a stream (name, DVR window, pull
    /// needing a URI): what a cluster checks before writing a record elsewhere.
    pub fn check_settings(&self, s: &StreamSettings) -> Result<()> {
        check_name(&s.name)?;
        if s.dvr_duration_secs == 0 || s.dvr_duration_secs > self.config.max_dvr_duration_secs {
            return Err(Error::InvalidSetting {
                field: "dvr_duration",
                reason: "out of range",
            });
        }
        if s.pull && s.uri.as_deref().is_none_or(|u| u.trim().is_empty()) {
            return Err(Error::InvalidSetting {
                field: "uri",
                reason: "pull needs a uri",
            });
        }
        Ok(())
    }

    /// Creates a stream; ids count up from 1.
    pub fn create_stream(&self, settings: StreamSettings) -> Result<StreamInfo> {
        self.check_settings(&settings)?;
        let (ingest_key, play_key) = (random_hex::<16>()?, random_hex::<16>()?);
        let id = StreamId(self.next_stream_id.fetch_add(1, Ordering::SeqCst));
        let now = self.now();
        let stream = Arc::new(Stream::new(id, settings, now, ingest_key, play_key));
        let info = stream.info(now, self.live_timeout_micros());
        // A fresh id from the counter: never held (adopted ids move the counter past).
        self.insert_stream(stream);
        if let Some(p) = self.persist() {
            p.stream_saved(&info);
        }
        Ok(info)
    }

    /// Takes in a stream made elsewhere, with the id, keys and creation time it was
    /// given there (a cluster's stream record, claimed by this node): reported to the
    /// persistence hook as a creation is. Refused when the id is already held, so
    /// a stream is never replaced under its DVR and clips.
    pub fn adopt_stream(
        &self,
        id: StreamId,
        settings: StreamSettings,
        created_at: WallTime,
        ingest_key: String,
        play_key: String,
    ) -> Result<StreamInfo> {
        self.check_settings(&settings)?;
        let stream = Arc::new(Stream::new(id, settings, created_at, ingest_key, play_key));
        let info = stream.info(self.now(), self.live_timeout_micros());
        if !self.insert_stream(stream) {
            return Err(Error::InvalidSetting {
                field: "id",
                reason: "a stream with this id is held",
            });
        }
        self.next_stream_id
            .fetch_max(id.0.saturating_add(1), Ordering::SeqCst);
        if let Some(p) = self.persist() {
            p.stream_saved(&info);
        }
        Ok(info)
    }

    /// Adds `stream` to the streams map and its keys to the key index: the one way a
    /// stream enters the engine (created or restored).
    /// Whether it went in: an id already held keeps its stream.
    fn insert_stream(&self, stream: Arc<Stream>) -> bool {
        let digests = [
            key_digest(KeyKind::Ingest, &stream.ingest_key),
            key_digest(KeyKind::Play, &stream.play_key),
        ];
        let id = stream.id;
        {
            let mut streams = self.streams.write();
            if streams.contains_key(&id) {
                return false;
            }
            streams.insert(id, stream);
        }
        self.keys.write().extend(digests.map(|d| (d, id)));
        true
    }

    /// Changes settings. A shorter (or disabled) DVR drops older chunks at once;
    /// clips already cut keep theirs.
    pub fn update_stream(&self, id: StreamId, patch: StreamPatch) -> Result<StreamInfo> {
        let stream = self.stream_arc(id)?;
        let window = {
            let mut cur = stream.settings.write();
            let next = cur.patched(&patch);
            self.check_settings(&next)?;
            *cur = next;
            self.window_micros(&cur)
        };
        let evicted: Vec<Arc<Chunk>> = stream
            .rings()
            .iter()
            .flat_map(|r| r.prune(window))
            .collect();
        drop(evicted);
        let info = stream.info(self.now(), self.live_timeout_micros());
        if let Some(p) = self.persist() {
            p.stream_saved(&info);
        }
        Ok(info)
    }

    /// Deletes a stream and its DVR; its clips die with it (a reader holding a
    /// [`crate::ClipView`] finishes its download).
    pub fn delete_stream(&self, id: StreamId) -> Result<()> {
        let stream = self
            .streams
            .write()
            .remove(&id)
            .ok_or(Error::UnknownStream(id))?;
        {
            let mut keys = self.keys.write();
            keys.remove(&key_digest(KeyKind::Ingest, &stream.ingest_key));
            keys.remove(&key_digest(KeyKind::Play, &stream.play_key));
        }
        let ids = std::mem::take(&mut *stream.clips.lock());
        {
            let mut clips = self.clips.write();
            for cid in &ids {
                clips.remove(cid);
            }
        }
        self.lost.write().retain(|_, l| l.stream != id);
        let recording = std::mem::take(&mut *stream.recording.lock());
        for clip in recording {
            complete_clip(&clip);
        }
        if let Some(p) = self.persist() {
            p.stream_deleted(id);
        }
        for r in stream.rings() {
            drop(r.clear());
        }
        Ok(())
    }

    /// One stream's snapshot.
    pub fn stream(&self, id: StreamId) -> Result<StreamInfo> {
        Ok(self
            .stream_arc(id)?
            .info(self.now(), self.live_timeout_micros()))
    }

    /// Every stream, by id.
    pub fn streams(&self) -> Vec<StreamInfo> {
        let now = self.now();
        let streams: Vec<_> = self.streams.read().values().cloned().collect();
        streams
            .iter()
            .map(|s| s.info(now, self.live_timeout_micros()))
            .collect()
    }

    /// The stream whose ingest key this is: O(1), and the answer's timing says
    /// nothing about how close a guess was (see the module doc).
    pub fn stream_by_ingest_key(&self, key: &str) -> Option<StreamId> {
        self.stream_by_key(KeyKind::Ingest, key, |s| &s.ingest_key)
    }

    /// The stream whose live playlists' key is `key`, found as an ingest key is.
    pub fn stream_by_play_key(&self, key: &str) -> Option<StreamId> {
        self.stream_by_key(KeyKind::Play, key, |s| &s.play_key)
    }

    fn stream_by_key(
        &self,
        kind: KeyKind,
        key: &str,
        key_of: impl Fn(&Stream) -> &str,
    ) -> Option<StreamId> {
        let id = *self.keys.read().get(&key_digest(kind, key))?;
        let stream = self.stream_arc(id).ok()?;
        constant_time_eq(key_of(&stream).as_bytes(), key.as_bytes()).then_some(id)
    }

    fn ring(&self, id: StreamId, rendition: &str) -> Result<Arc<Ring>> {
        self.stream_arc(id)?
            .ring(rendition)
            .ok_or_else(|| Error::UnknownRendition {
                stream: id,
                rendition: rendition.to_string(),
            })
    }

    fn window_micros(&self, s: &StreamSettings) -> i64 {
        let secs = if s.dvr_enabled {
            s.dvr_duration_secs
        } else {
            self.config.no_dvr_window_secs
        };
        i64::from(secs) * MICROS_PER_SEC
    }

    /// Memory use now.
    pub fn memory(&self) -> MemoryStats {
        MemoryStats {
            budget_bytes: self.config.memory_budget_bytes,
            total_bytes: self.account.total_bytes(),
            clip_bytes: self.account.clip_bytes(),
            reserved_bytes: self.account.reserved_bytes(),
        }
    }

    /// Counts `bytes` the caller holds outside chunks on behalf of a client (an open
    /// connection's buffers) against the budget until the reservation drops. Never
    /// refused, since the caller holds the memory already: the oldest DVR chunks across
    /// streams are evicted to make room, as for a push.
    pub fn reserve_memory(&self, bytes: u64) -> MemoryReservation {
        let reservation = MemoryReservation::new(&self.account, bytes);
        self.enforce_budget(None);
        reservation
    }

    /// Like [`Engine::reserve_memory`] for memory the caller could do without (a
    /// cache's entry): refused with [`Error::OverBudget`] when what eviction cannot
    /// free (chunks held by clips, and reservations) leaves no room for `bytes`.
    pub fn try_reserve_memory(&self, bytes: u64) -> Result<MemoryReservation> {
        let pinned = self.account.pinned_bytes();
        if pinned.saturating_add(bytes) > self.config.memory_budget_bytes {
            return Err(Error::OverBudget {
                needed_bytes: bytes,
                available_bytes: self.config.memory_budget_bytes.saturating_sub(pinned),
            });
        }
        Ok(self.reserve_memory(bytes))
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Engine>();
    is::<Clip>();
    is::<Build>();
}
