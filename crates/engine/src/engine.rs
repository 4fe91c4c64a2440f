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
//! stream's `shared_anchor`, one ring; the clip map; a clip's `build`. Budget
//! eviction takes one ring lock at a time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dvrclip_fmp4::{InitSegment, MediaSegment};
use parking_lot::{Mutex, RwLock};

use crate::chunk::{Chunk, bytes_per_sec};
use crate::clip::{Build, Clip, ClipId, ClipRendition, ClipRequest, NewClip, RenditionHead};
use crate::cut::{FOLLOW_TOLERANCE_MICROS, Track, cut_follower, cut_reference};
use crate::dvr::{DvrInfo, describe};
use crate::memory::Account;
use crate::ring::{PushInput, PushOutcome, Ring};
use crate::stream::{
    RenditionInfo, Stream, StreamId, StreamInfo, StreamPatch, StreamSettings, check_component,
    check_name, reference_index, video_of,
};
use crate::time::MICROS_PER_SEC;
use crate::{Clock, Error, MemoryStats, Result, SystemClock, WallTime};

/// Engine-wide limits and timeouts. `Default` gives production values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Global budget for chunk payloads, DVR and clips together, bytes.
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

/// Expiration bounds (DESIGN §4): between 1 min and 4 h after the clip's end.
const EXPIRATION_MIN_SECS: i64 = 60;
const EXPIRATION_MAX_SECS: i64 = 4 * 3600;
const EXPIRATION_DEFAULT_SECS: i64 = 3600;

type Deadlines = BinaryHeap<Reverse<(WallTime, ClipId)>>;

/// The dvrclip engine. `Send + Sync`: share it in an `Arc`.
pub struct Engine {
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    account: Arc<Account>,
    streams: RwLock<BTreeMap<StreamId, Arc<Stream>>>,
    next_stream_id: AtomicU64,
    next_video_id: AtomicU64,
    clips: RwLock<HashMap<ClipId, Clip>>,
    expiry: Mutex<Deadlines>,
    recording_deadlines: Mutex<Deadlines>,
    evict: Mutex<()>,
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
            next_stream_id: AtomicU64::new(1),
            next_video_id: AtomicU64::new(first_video_id),
            clips: RwLock::new(HashMap::new()),
            expiry: Mutex::new(BinaryHeap::new()),
            recording_deadlines: Mutex::new(BinaryHeap::new()),
            evict: Mutex::new(()),
        }
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

    fn check_settings(&self, s: &StreamSettings) -> Result<()> {
        check_name(&s.name)?;
        if s.dvr_duration_secs == 0 || s.dvr_duration_secs > self.config.max_dvr_duration_secs {
            return Err(Error::InvalidSetting {
                field: "dvr_duration",
                reason: "out of range",
            });
        }
        Ok(())
    }

    /// Creates a stream; ids count up from 1.
    pub fn create_stream(&self, settings: StreamSettings) -> Result<StreamInfo> {
        self.check_settings(&settings)?;
        let (ingest_key, play_key) = (random_key()?, random_key()?);
        let id = StreamId(self.next_stream_id.fetch_add(1, Ordering::SeqCst));
        let now = self.now();
        let stream = Arc::new(Stream::new(id, settings, now, ingest_key, play_key));
        let info = stream.info(now, self.live_timeout_micros());
        self.streams.write().insert(id, stream);
        Ok(info)
    }

    /// Changes settings. A shorter (or disabled) DVR drops older chunks at once;
    /// clips already cut keep theirs.
    pub fn update_stream(&self, id: StreamId, patch: StreamPatch) -> Result<StreamInfo> {
        let stream = self.stream_arc(id)?;
        let window = {
            let mut cur = stream.settings.write();
            let mut next = cur.clone();
            if let Some(n) = patch.name {
                next.name = n;
            }
            if let Some(v) = patch.dvr_enabled {
                next.dvr_enabled = v;
            }
            if let Some(v) = patch.dvr_duration_secs {
                next.dvr_duration_secs = v;
            }
            if let Some(v) = patch.active {
                next.active = v;
            }
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
        Ok(stream.info(self.now(), self.live_timeout_micros()))
    }

    /// Deletes a stream and its DVR; its clips die with it (a reader holding a
    /// [`crate::ClipView`] finishes its download).
    pub fn delete_stream(&self, id: StreamId) -> Result<()> {
        let stream = self
            .streams
            .write()
            .remove(&id)
            .ok_or(Error::UnknownStream(id))?;
        let ids = std::mem::take(&mut *stream.clips.lock());
        {
            let mut clips = self.clips.write();
            for cid in &ids {
                clips.remove(cid);
            }
        }
        let recording = std::mem::take(&mut *stream.recording.lock());
        for clip in recording {
            complete_clip(&clip);
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

    /// The stream whose ingest key this is. Compares every key in constant time so
    /// the answer's timing says nothing about how close a guess was.
    pub fn stream_by_ingest_key(&self, key: &str) -> Option<StreamId> {
        self.stream_by_key(key, |s| &s.ingest_key)
    }

    /// The stream whose live playlists' key is `key`, compared in constant time.
    pub fn stream_by_play_key(&self, key: &str) -> Option<StreamId> {
        self.stream_by_key(key, |s| &s.play_key)
    }

    fn stream_by_key(&self, key: &str, key_of: impl Fn(&Stream) -> &str) -> Option<StreamId> {
        let mut found = None;
        for s in self.streams.read().values() {
            if constant_time_eq(key_of(s).as_bytes(), key.as_bytes()) {
                found = Some(s.id);
            }
        }
        found
    }

    /// Each rendition's current state, in the stream's order.
    pub fn renditions(&self, id: StreamId) -> Result<Vec<RenditionInfo>> {
        let stream = self.stream_arc(id)?;
        Ok(stream
            .rings()
            .iter()
            .map(|r| {
                let (chunks, bytes, init) =
                    r.read(|st| (st.chunks.len(), st.bytes, st.init().cloned()));
                RenditionInfo {
                    name: r.name.to_string(),
                    init,
                    video: video_of(r),
                    chunks,
                    bytes,
                }
            })
            .collect())
    }

    /// The chunks a rendition's ring holds now, oldest first (a live DVR playlist).
    pub fn rendition_chunks(&self, id: StreamId, rendition: &str) -> Result<Vec<Arc<Chunk>>> {
        let ring = self.ring(id, rendition)?;
        Ok(ring.read(|st| st.chunks.iter().cloned().collect()))
    }

    /// Every rendition's ring as it is now, in the stream's order: what a live DVR
    /// master playlist lists. The shape is a clip rendition's, so one playlist writer
    /// serves both; the snapshot holds its chunks only as long as it lives.
    pub fn live_renditions(&self, id: StreamId) -> Result<Vec<ClipRendition>> {
        Ok(self
            .stream_arc(id)?
            .rings()
            .iter()
            .map(|r| live_rendition(r))
            .collect())
    }

    /// One rendition's ring as it is now: what its live media playlist lists.
    pub fn live_rendition(&self, id: StreamId, rendition: &str) -> Result<ClipRendition> {
        Ok(live_rendition(&*self.ring(id, rendition)?))
    }

    /// One chunk by its `seq`, while the ring holds it. O(1).
    pub fn chunk(&self, id: StreamId, rendition: &str, seq: u64) -> Result<Option<Arc<Chunk>>> {
        let ring = self.ring(id, rendition)?;
        Ok(ring.read(|st| st.index_of_seq(seq).map(|i| Arc::clone(&st.chunks[i]))))
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

    // ----- ingest -----

    /// Pushes an init segment, creating the rendition on first sight. A different
    /// init than the current one makes the next chunk open a new discontinuity.
    pub fn push_init(
        &self,
        id: StreamId,
        rendition: &str,
        init: InitSegment,
    ) -> Result<PushOutcome> {
        check_component(rendition)?;
        let stream = self.stream_arc(id)?;
        if !stream.settings.read().active {
            return Err(Error::StreamInactive(id));
        }
        if init.tracks.is_empty() {
            return Err(Error::EmptyInit);
        }
        let ring = match stream.ring(rendition) {
            Some(r) => r,
            None => {
                let mut list = stream.renditions.write();
                match list.iter().find(|r| &*r.name == rendition) {
                    Some(r) => Arc::clone(r),
                    None => {
                        if list.len() >= self.config.max_renditions {
                            return Err(Error::TooManyRenditions {
                                stream: id,
                                max: self.config.max_renditions,
                            });
                        }
                        let r = Arc::new(Ring::new(Arc::from(rendition)));
                        list.push(Arc::clone(&r));
                        r
                    }
                }
            }
        };
        let out = ring.push_init(init)?;
        stream
            .last_ingest
            .store(self.now().unix_micros(), Ordering::SeqCst);
        Ok(out)
    }

    /// Pushes a parsed media segment. A retry (the same start and bytes as a chunk
    /// held in the current discontinuity) is a no-op; the same start with other bytes
    /// is an encoder restart and opens a discontinuity. `segment_name` (the uploaded
    /// file name) lets [`Engine::set_segment_date`] find the chunk. Evicts the oldest
    /// DVR data across streams if the budget needs it, and feeds recording clips.
    pub fn push_segment(
        &self,
        id: StreamId,
        rendition: &str,
        segment_name: Option<&str>,
        segment: MediaSegment,
    ) -> Result<PushOutcome> {
        if let Some(n) = segment_name {
            check_component(n)?;
        }
        let stream = self.stream_arc(id)?;
        let window = {
            let s = stream.settings.read();
            if !s.active {
                return Err(Error::StreamInactive(id));
            }
            self.window_micros(&s)
        };
        let ring = stream.ring(rendition).ok_or_else(|| Error::NoInit {
            stream: id,
            rendition: rendition.to_string(),
        })?;
        let needed = segment.bytes.len() as u64;
        let clip_bytes = self.account.clip_bytes();
        if clip_bytes.saturating_add(needed) > self.config.memory_budget_bytes {
            return Err(Error::OverBudget {
                needed_bytes: needed,
                available_bytes: self.config.memory_budget_bytes.saturating_sub(clip_bytes),
            });
        }
        let now = self.now();
        let pushed = {
            let mut shared = stream.shared_anchor.lock();
            let inp = PushInput {
                stream: id,
                name: segment_name,
                segment,
                arrival: now,
                window_micros: window,
                account: &self.account,
            };
            ring.push(inp, &mut shared)?
        };
        drop(pushed.evicted);
        if !matches!(pushed.outcome, PushOutcome::Stored { .. }) {
            return Ok(pushed.outcome);
        }
        stream
            .last_ingest
            .store(now.unix_micros(), Ordering::SeqCst);
        self.enforce_budget(&ring);
        self.feed_recording(&stream);
        Ok(pushed.outcome)
    }

    /// Re-anchors the chunk named `segment_name` (and the chunks after it in its
    /// discontinuity that have no date of their own) to start at `utc`: the playlist's
    /// `EXT-X-PROGRAM-DATE-TIME` for that segment, which arrives after the segment.
    /// Returns whether anything moved. A chunk with its own `prft` keeps its time.
    pub fn set_segment_date(
        &self,
        id: StreamId,
        rendition: &str,
        segment_name: &str,
        utc: WallTime,
    ) -> Result<bool> {
        let ring = self.ring(id, rendition)?;
        Ok(ring.set_segment_date(segment_name, utc))
    }

    /// Drops every chunk of the stream's DVR. Clips already cut keep theirs.
    pub fn drop_dvr(&self, id: StreamId) -> Result<()> {
        let stream = self.stream_arc(id)?;
        for r in stream.rings() {
            drop(r.clear());
        }
        Ok(())
    }

    /// What the stream's DVR holds: ranges, gaps, discontinuities per rendition.
    pub fn dvr(&self, id: StreamId) -> Result<DvrInfo> {
        let stream = self.stream_arc(id)?;
        let dvr_duration_secs = stream.settings.read().dvr_duration_secs;
        let renditions = stream
            .rings()
            .iter()
            .map(|r| r.read(|st| describe(&r.name, st)))
            .collect();
        Ok(DvrInfo {
            stream: id,
            dvr_duration_secs,
            renditions,
        })
    }

    /// Evicts the oldest chunk across every ring until the total fits the budget.
    /// O(renditions) per evicted chunk; never evicts `keep`'s newest chunk.
    fn enforce_budget(&self, keep: &Arc<Ring>) {
        if self.account.total_bytes() <= self.config.memory_budget_bytes {
            return;
        }
        let _one_evictor = self.evict.lock();
        let rings: Vec<Arc<Ring>> = self
            .streams
            .read()
            .values()
            .flat_map(|s| s.rings())
            .collect();
        while self.account.total_bytes() > self.config.memory_budget_bytes {
            let oldest = rings
                .iter()
                .filter(|r| !Arc::ptr_eq(r, keep) || r.read(|st| st.chunks.len() > 1))
                .filter_map(|r| r.oldest_start().map(|t| (t, r)))
                .min_by_key(|(t, _)| *t);
            let Some((_, ring)) = oldest else { break };
            drop(ring.pop_oldest());
        }
    }

    // ----- clips -----

    /// Creates a clip from a request (DESIGN §4). Past ranges are cut at once; a range
    /// reaching past now records until its end.
    pub fn create_clip(&self, id: StreamId, req: ClipRequest) -> Result<Clip> {
        let stream = self.stream_arc(id)?;
        let settings = stream.settings.read().clone();
        if !settings.dvr_enabled {
            return Err(Error::DvrDisabled(id));
        }
        if req.duration_secs == 0 {
            return Err(Error::ZeroDuration);
        }
        let max = self.config.max_clips_per_stream;
        if stream.clips.lock().len() >= max {
            return Err(Error::TooManyClips { stream: id, max });
        }
        if req.duration_secs > u64::from(settings.dvr_duration_secs) {
            return Err(Error::DurationTooLong {
                duration_secs: req.duration_secs,
                dvr_duration_secs: settings.dvr_duration_secs,
            });
        }
        let now = self.now();
        let start = req.start_unix_secs.map_or(now, WallTime::from_unix_secs);
        if start.micros_since(now) > i64::from(self.config.max_start_ahead_secs) * MICROS_PER_SEC {
            return Err(Error::StartTooFarAhead {
                start,
                max_wait_secs: self.config.max_start_ahead_secs,
            });
        }
        let duration_micros = req.duration_secs as i64 * MICROS_PER_SEC;
        let end = start.add_micros(duration_micros);
        // Whole seconds, as the API speaks: the end rounded up.
        let end_secs = end.unix_secs() + i64::from(end.unix_micros() % MICROS_PER_SEC != 0);
        let expiration_secs = req
            .expiration_unix_secs
            .unwrap_or(end_secs + EXPIRATION_DEFAULT_SECS);
        let (min, max) = (
            end_secs + EXPIRATION_MIN_SECS,
            end_secs + EXPIRATION_MAX_SECS,
        );
        if !(min..=max).contains(&expiration_secs) {
            return Err(Error::BadExpiration {
                expiration_unix_secs: expiration_secs,
                min_unix_secs: min,
                max_unix_secs: max,
            });
        }

        // Held from the cut to the registration: a push landing in between waits to
        // feed this clip, so nothing it brings is evicted before the clip sees it.
        let mut recording = stream.recording.lock();
        let rings = stream.rings();
        let videos: Vec<_> = rings.iter().map(|r| video_of(r)).collect();
        let reference = reference_index(&videos);
        let mut tracks = vec![Track::default(); rings.len()];
        advance_tracks(&rings, reference, &mut tracks, start, end);
        let closed = tracks.iter().all(|t| t.closed);
        let deadline = self.recording_deadline(&stream, end);
        let has_media = tracks.get(reference).is_some_and(|t| !t.chunks.is_empty());
        let nothing_coming = closed || now >= deadline;
        if !has_media && nothing_coming {
            return Err(Error::NoMediaInRange(id));
        }
        let complete = closed || now >= deadline;

        // Each rendition's recent bitrate, bytes per second.
        let rates: Vec<u64> = rings
            .iter()
            .map(|r| r.read(|st| bytes_per_sec(st.chunks.iter().rev().take(8))))
            .collect();
        // Budget: chunks not yet held by a clip, plus what a recording clip will take
        // at the rendition's recent bitrate.
        let mut needed: u64 = tracks
            .iter()
            .flat_map(|t| t.chunks.iter())
            .filter(|c| !c.ticket().is_pinned())
            .map(|c| c.len_bytes())
            .sum();
        if !complete {
            let held_until = tracks
                .get(reference)
                .and_then(|t| t.chunks.last())
                .map_or(start, |c| c.end_utc());
            let remaining_micros = end.micros_since(held_until.max(now)).max(0);
            for &rate in &rates {
                let more = u128::from(rate) * remaining_micros as u128 / MICROS_PER_SEC as u128;
                needed = needed.saturating_add(u64::try_from(more).unwrap_or(u64::MAX));
            }
        }
        let clip_bytes = self.account.clip_bytes();
        if clip_bytes.saturating_add(needed) > self.config.memory_budget_bytes {
            return Err(Error::OverBudget {
                needed_bytes: needed,
                available_bytes: self.config.memory_budget_bytes.saturating_sub(clip_bytes),
            });
        }

        let clip = Clip::new(NewClip {
            id: ClipId::random()?,
            stream: id,
            start,
            end,
            expiration: WallTime::from_unix_secs(expiration_secs),
            created_at: now,
            video_id: req
                .vod_required
                .then(|| self.next_video_id.fetch_add(1, Ordering::SeqCst)),
            names: rings.iter().map(|r| Arc::clone(&r.name)).collect(),
            heads: rings
                .iter()
                .zip(&rates)
                .map(|(r, rate)| RenditionHead {
                    init: r.current_init(),
                    bandwidth_bps: rate.saturating_mul(8),
                    target_secs: r
                        .read(|st| {
                            let recent = st.chunks.iter().rev().take(8);
                            recent.map(|c| c.duration_secs().ceil() as u64).max()
                        })
                        .unwrap_or(0),
                })
                .collect(),
            reference,
            tracks,
            complete,
            request: req,
        });
        self.clips.write().insert(clip.id(), clip.clone());
        stream.clips.lock().push(clip.id());
        self.expiry
            .lock()
            .push(Reverse((clip.expiration_utc(), clip.id())));
        if !complete {
            recording.push(clip.clone());
            self.recording_deadlines
                .lock()
                .push(Reverse((deadline, clip.id())));
        }
        drop(recording);
        // A delete of the stream that raced with this call must not leave an orphan.
        let alive = self
            .streams
            .read()
            .get(&id)
            .is_some_and(|s| Arc::ptr_eq(s, &stream));
        if !alive {
            self.clips.write().remove(&clip.id());
            complete_clip(&clip);
            return Err(Error::UnknownStream(id));
        }
        Ok(clip)
    }

    /// A clip by id; [`Error::UnknownClip`] once it expired (even before the sweeper ran).
    pub fn clip(&self, clip_id: ClipId) -> Result<Clip> {
        let clip = self
            .clips
            .read()
            .get(&clip_id)
            .cloned()
            .ok_or(Error::UnknownClip)?;
        if self.now() >= clip.expiration_utc() {
            return Err(Error::UnknownClip);
        }
        Ok(clip)
    }

    /// A stream's clips that have not expired, oldest first.
    pub fn clips(&self, id: StreamId) -> Result<Vec<Clip>> {
        let stream = self.stream_arc(id)?;
        let now = self.now();
        let ids = stream.clips.lock().clone();
        let clips = self.clips.read();
        Ok(ids
            .iter()
            .filter_map(|c| clips.get(c))
            .filter(|c| now < c.expiration_utc())
            .cloned()
            .collect())
    }

    /// Removes a clip before its expiration.
    pub fn delete_clip(&self, clip_id: ClipId) -> Result<()> {
        let clip = self
            .clips
            .write()
            .remove(&clip_id)
            .ok_or(Error::UnknownClip)?;
        self.forget(std::slice::from_ref(&clip));
        self.compact_deadlines();
        Ok(())
    }

    /// Drops the deadlines of deleted clips once they outnumber the live ones, so a
    /// client that creates and deletes in a loop cannot grow the heaps for hours.
    /// Amortised O(1) per delete.
    fn compact_deadlines(&self) {
        let live = self.clips.read();
        let limit = 2 * live.len() + 64;
        for heap in [&self.expiry, &self.recording_deadlines] {
            let mut heap = heap.lock();
            if heap.len() > limit {
                heap.retain(|Reverse((_, id))| live.contains_key(id));
            }
        }
    }

    /// Unlinks removed clips from their streams and completes them; one pass over
    /// each stream's lists however many clips go (an hour of clips can expire at once).
    fn forget(&self, gone: &[Clip]) {
        let mut by_stream: HashMap<StreamId, HashSet<ClipId>> = HashMap::new();
        for clip in gone {
            by_stream
                .entry(clip.stream_id())
                .or_default()
                .insert(clip.id());
            complete_clip(clip);
        }
        for (id, ids) in by_stream {
            if let Ok(stream) = self.stream_arc(id) {
                stream.clips.lock().retain(|c| !ids.contains(c));
                stream.recording.lock().retain(|c| !ids.contains(&c.id()));
            }
        }
    }

    /// When a recording clip may give up waiting for its end.
    fn recording_deadline(&self, stream: &Stream, end: WallTime) -> WallTime {
        let stall = i64::from(self.config.recording_stall_secs) * MICROS_PER_SEC;
        let cap = end.add_micros(i64::from(self.config.recording_max_wait_secs) * MICROS_PER_SEC);
        let last = stream.last_ingest().unwrap_or(WallTime::EPOCH);
        end.max(last).add_micros(stall).min(cap)
    }

    /// Lets every recording clip of the stream take the chunks that arrived.
    fn feed_recording(&self, stream: &Stream) {
        let mut recording = stream.recording.lock();
        if recording.is_empty() {
            return;
        }
        let rings = stream.rings();
        recording.retain(|clip| {
            let mut build = clip.0.build.lock();
            let tracks = &mut build.tracks;
            // A rendition that appeared after the clip was cut does not join it; the
            // list only grows, so the clip's renditions are its prefix.
            let rings = &rings[..tracks.len().min(rings.len())];
            let changed = advance_tracks(rings, clip.0.reference, tracks, clip.0.start, clip.0.end);
            let done = build.tracks.iter().all(|t| t.closed);
            if changed || done {
                clip.publish(&mut build, done);
            }
            !done
        });
    }

    /// Does the deadline work due by now: removes expired clips, completes recording
    /// clips whose bounded wait ran out. Call it at [`Engine::next_deadline`].
    pub fn tick(&self) -> TickReport {
        let now = self.now();
        let mut report = TickReport::default();
        let mut due = Vec::new();
        {
            let mut heap = self.expiry.lock();
            while heap.peek().is_some_and(|Reverse((t, _))| *t <= now) {
                due.extend(heap.pop().map(|Reverse((_, id))| id));
            }
        }
        let expired: Vec<Clip> = {
            let mut clips = self.clips.write();
            due.iter().filter_map(|id| clips.remove(id)).collect()
        };
        self.forget(&expired);
        report.expired = expired.len();
        loop {
            let due = {
                let mut heap = self.recording_deadlines.lock();
                match heap.peek() {
                    Some(Reverse((t, _))) if *t <= now => heap.pop().map(|Reverse((_, id))| id),
                    _ => None,
                }
            };
            let Some(id) = due else { break };
            let Some(clip) = self.clips.read().get(&id).cloned() else {
                continue;
            };
            if clip.state() == crate::ClipState::Complete {
                continue;
            }
            let Ok(stream) = self.stream_arc(clip.stream_id()) else {
                complete_clip(&clip);
                continue;
            };
            // Uploads since the deadline was set push it later: re-queue, lazily.
            let deadline = self.recording_deadline(&stream, clip.end_utc());
            if deadline > now {
                self.recording_deadlines
                    .lock()
                    .push(Reverse((deadline, id)));
                continue;
            }
            stream.recording.lock().retain(|c| c.id() != id);
            complete_clip(&clip);
            report.completed += 1;
        }
        report
    }

    /// The earliest time [`Engine::tick`] has work; `None` when no clip is waiting.
    pub fn next_deadline(&self) -> Option<WallTime> {
        let a = self.expiry.lock().peek().map(|Reverse((t, _))| *t);
        let b = self
            .recording_deadlines
            .lock()
            .peek()
            .map(|Reverse((t, _))| *t);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Memory use now.
    pub fn memory(&self) -> MemoryStats {
        MemoryStats {
            budget_bytes: self.config.memory_budget_bytes,
            total_bytes: self.account.total_bytes(),
            clip_bytes: self.account.clip_bytes(),
        }
    }
}

/// Marks a clip complete with the chunks it has.
fn complete_clip(clip: &Clip) {
    let mut build = clip.0.build.lock();
    for t in &mut build.tracks {
        t.closed = true;
    }
    if clip.state() != crate::ClipState::Complete {
        clip.publish(&mut build, true);
    }
}

/// Runs the cutter over every rendition: the reference first, then the followers
/// against the reference's bounds. Returns whether any track took a chunk.
fn advance_tracks(
    rings: &[Arc<Ring>],
    reference: usize,
    tracks: &mut [Track],
    start: WallTime,
    end: WallTime,
) -> bool {
    let Some(ref_ring) = rings.get(reference) else {
        return false;
    };
    let mut changed = ref_ring
        .read(|st| tracks[reference].advance(st, end, true, |st| cut_reference(st, start, end)));
    let r = &tracks[reference];
    let (Some(ref_start), Some(ref_end)) = (
        r.chunks.first().map(|c| c.start_utc()),
        r.chunks.last().map(|c| c.end_utc()),
    ) else {
        // The reference closed with nothing (the first chunk to arrive started past
        // the end): the followers have nothing to follow, and the clip is done.
        if r.closed {
            for t in tracks.iter_mut() {
                t.closed = true;
            }
        }
        return changed;
    };
    let ref_closed = r.closed;
    // The follower bound: chunks must start before the reference's end, give or take
    // the boundary tolerance.
    let bound = ref_end.add_micros(-FOLLOW_TOLERANCE_MICROS);
    for (i, ring) in rings.iter().enumerate() {
        if i == reference {
            continue;
        }
        changed |= ring.read(|st| {
            tracks[i].advance(st, bound, ref_closed, |st| {
                cut_follower(st, ref_start, ref_end)
            })
        });
    }
    changed
}

/// A ring's whole window in a clip rendition's shape.
fn live_rendition(ring: &Ring) -> ClipRendition {
    let (chunks, head) = ring.read(|st| {
        let chunks: Vec<Arc<Chunk>> = st.chunks.iter().cloned().collect();
        let head = RenditionHead {
            init: st.init().cloned(),
            bandwidth_bps: bytes_per_sec(st.chunks.iter().rev().take(8)) * 8,
            // The longest chunk held: a live playlist's target duration moves only if
            // the encoder makes a longer one.
            target_secs: chunks
                .iter()
                .map(|c| c.duration_secs().ceil() as u64)
                .max()
                .unwrap_or(0),
        };
        (chunks, head)
    });
    ClipRendition::live(Arc::clone(&ring.name), head, chunks)
}

/// 128 bits from the OS RNG, as 32 hex digits.
fn random_key() -> Result<String> {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|_| Error::Entropy)?;
    Ok(key.iter().map(|b| format!("{b:02x}")).collect())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Engine>();
    is::<Clip>();
    is::<Build>();
}
