//! [`Engine::restore`]: streams, rings and clips rebuilt from what a store recovered
//! ([`crate::persist::Restore`]), as of now: each ring gets its chunks back (re-parsed
//! and re-measured, `dvr_duration` applied), each clip the very chunks it held, so a
//! complete clip's MP4 is byte for byte what it was; a clip missing any chunk is
//! kept as a [`crate::LostClip`] (reported until its expiration, never served
//! short) and counted; an expired clip is dropped. Recording
//! clips go on recording from their last chunk.
//!
//! Hooks are not called for a store's own recovery (the store holds all of it
//! already). A restore from elsewhere ([`Restore::report_to_store`]: a cluster's
//! shipped DVR, on a node whose spool has never seen the stream) is told to the
//! engine's store through the very hooks an admission calls: each payload is
//! placed before its chunk is rebuilt, newest first (so the chunk's bytes are the
//! store's, as an upload's are), and once streams and clips are back, the store
//! hears of the stream, each rendition's inits (its current one last: the store's
//! rule for the current init), the chunks in each ring, the chunks only clips hold
//! (admitted, then out of the ring), and the clips. A store that refuses a payload
//! (a full disk) ends the placing: the rest (older) stays in memory only,
//! unreported, and counted ([`RestoreReport::chunks_not_stored`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Engine;
use super::clips::advance_tracks;
use crate::chunk::Chunk;
use crate::clip::{Clip, NewClip, RenditionHead};
use crate::cut::Track;
use crate::persist::{
    Persist, Restore, RestoreReport, RestoredChunk, RestoredClip, RestoredRendition, RestoredStream,
};
use crate::ring::{ChunkParts, Ring, rebuild_chunk};
use crate::stream::{Stream, StreamId};
use crate::{ClipState, Error, InitSegment, LostClip, MEDIA_LOST, Result};

type ChunkKey = (StreamId, Arc<str>, u64);

impl Engine {
    /// Rebuilds what a store recovered: on a fresh engine before it takes requests
    /// (a spool at start-up), or on a running one for streams it does not hold (a
    /// cluster's claim restoring a shipped DVR). A stream id already present is an
    /// error.
    pub fn restore(&self, mut restore: Restore) -> Result<RestoreReport> {
        let mut report = RestoreReport::default();
        let mut held: HashMap<ChunkKey, Arc<Chunk>> = HashMap::new();
        let now = self.now();
        if let Some(rs) = restore
            .streams
            .iter()
            .find(|rs| self.streams.read().contains_key(&rs.id))
        {
            return Err(Error::Internal {
                context: format!("restore: stream {} already exists", rs.id),
            });
        }
        // Told to the store as admissions are (see the module's doc).
        let store = self.persist().filter(|_| restore.report_to_store);
        let unstored = match store {
            Some(p) => place_newest_first(p, &mut restore.streams),
            None => HashSet::new(),
        };
        let mut streams_back = Vec::new();
        let mut clips_back = Vec::new();
        for rs in restore.streams {
            if self.streams.read().contains_key(&rs.id) {
                return Err(Error::Internal {
                    context: format!("restore: stream {} already exists", rs.id),
                });
            }
            let stream = Stream::new(
                rs.id,
                rs.settings,
                rs.created_at,
                rs.ingest_key,
                rs.play_key,
            );
            let window = self.window_micros(&stream.settings.read());
            let mut last_arrival = None;
            for rr in rs.renditions {
                let name: Arc<str> = Arc::from(rr.name.as_str());
                let mut ring_chunks = Vec::new();
                for rc in rr.chunks {
                    let in_ring = rc.in_ring;
                    let parts = ChunkParts {
                        seq: rc.seq,
                        name: rc.name,
                        init: rc.init,
                        bytes: rc.bytes,
                        start_utc: rc.start_utc,
                        discontinuity: rc.discontinuity,
                        arrival: rc.arrival,
                    };
                    match rebuild_chunk(parts, rs.id, &name, &self.account) {
                        Ok(c) => {
                            last_arrival = last_arrival.max(Some(c.arrival_utc()));
                            held.insert((rs.id, Arc::clone(&name), c.seq()), Arc::clone(&c));
                            if in_ring {
                                ring_chunks.push(c);
                            }
                        }
                        Err(_) => report.chunks_dropped += 1,
                    }
                }
                let offered = ring_chunks.len();
                let (ring, out) = Ring::restored(
                    Arc::clone(&name),
                    rr.init,
                    rr.next_seq,
                    rr.next_discontinuity,
                    ring_chunks,
                    window,
                );
                report.ring_chunks += offered - out;
                stream.renditions.write().push(Arc::new(ring));
            }
            if let Some(t) = last_arrival {
                stream.last_ingest.store(t.unix_micros(), Ordering::SeqCst);
            }
            let stream = Arc::new(stream);
            self.insert_stream(Arc::clone(&stream));
            streams_back.push(stream);
            report.streams += 1;
        }
        self.next_stream_id
            .fetch_max(restore.next_stream_id, Ordering::SeqCst);
        for rc in restore.clips {
            if let Some(v) = rc.video_id {
                self.next_video_id
                    .fetch_max(v.saturating_add(1), Ordering::SeqCst);
            }
            if rc.expiration <= now {
                report.clips_expired += 1;
                continue;
            }
            let lost = LostClip {
                id: rc.id,
                stream: rc.stream,
                request: rc.request.clone(),
                start: rc.start,
                expiration: rc.expiration,
                created_at: rc.created_at,
                video_id: rc.video_id,
                renditions: rc.renditions.iter().map(|r| r.name.clone()).collect(),
                reason: MEDIA_LOST.to_owned(),
            };
            match self.restore_clip(rc, &held) {
                Some(clip) => {
                    report.clips += 1;
                    clips_back.push(clip);
                }
                None => {
                    report.clips_lost += 1;
                    self.keep_lost(lost);
                }
            }
        }
        drop(held);
        if let Some(p) = store {
            report.chunks_not_stored = unstored.len();
            self.report_restored(p, &streams_back, &clips_back, &unstored);
        }
        let streams: Vec<Arc<Stream>> = self.streams.read().values().cloned().collect();
        for s in &streams {
            self.feed_recording(s);
        }
        self.enforce_budget(None);
        Ok(report)
    }

    /// Keeps a clip whose media did not come back, reported until its expiration.
    fn keep_lost(&self, lost: LostClip) {
        if self.stream_arc(lost.stream).is_err() {
            return;
        }
        self.expiry.lock().push(Reverse((lost.expiration, lost.id)));
        self.lost.write().insert(lost.id, lost);
    }

    /// Tells `store` of stream `id` as it is held now, through the hooks its
    /// admissions would have called (the walk a restore reports with, see the
    /// module's doc): the stream, each rendition's inits (its current one last),
    /// the chunks in each ring, the chunks only its clips hold (admitted, then out
    /// of the ring), and its clips. For a store that must hold the stream again
    /// from scratch (a cluster's re-claim of a stream held from a spool).
    pub fn report_stream(&self, id: StreamId, store: &dyn Persist) -> Result<()> {
        let stream = self.stream_arc(id)?;
        let clips = self.clips(id)?;
        self.report_restored(store, &[stream], &clips, &HashSet::new());
        Ok(())
    }

    /// Tells `store` of `streams` and `clips` just restored, as their admissions
    /// would have (see the module's doc); chunks in `unstored` (their payloads
    /// are not the store's) are left out.
    fn report_restored(
        &self,
        store: &dyn Persist,
        streams: &[Arc<Stream>],
        clips: &[Clip],
        unstored: &HashSet<ChunkKey>,
    ) {
        let now = self.now();
        let views: Vec<_> = clips.iter().map(|c| (c.stream_id(), c.view())).collect();
        for stream in streams {
            let id = stream.id;
            store.stream_saved(&stream.info(now, self.live_timeout_micros()));
            for ring in stream.rings() {
                let name = &ring.name;
                let stored = |c: &Arc<Chunk>| !unstored.contains(&(id, Arc::clone(name), c.seq()));
                let in_ring: BTreeMap<u64, Arc<Chunk>> =
                    ring.read(|st| st.chunks.iter().map(|c| (c.seq(), Arc::clone(c))).collect());
                // What only clips hold, and the inits the clips announce.
                let mut held_only: BTreeMap<u64, Arc<Chunk>> = BTreeMap::new();
                let mut inits: Vec<Arc<InitSegment>> = Vec::new();
                let mut add = |i: &Arc<InitSegment>| {
                    if !inits.iter().any(|k| Arc::ptr_eq(k, i)) {
                        inits.push(Arc::clone(i));
                    }
                };
                for (_, view) in views.iter().filter(|(s, _)| *s == id) {
                    for r in view.renditions().iter().filter(|r| r.name() == &**name) {
                        if let Some(i) = r.announced_init() {
                            add(i);
                        }
                        for c in r.chunks() {
                            if !in_ring.contains_key(&c.seq()) {
                                held_only.insert(c.seq(), Arc::clone(c));
                            }
                        }
                    }
                }
                held_only.retain(|_, c| stored(c));
                let chunks: Vec<&Arc<Chunk>> = held_only
                    .values()
                    .chain(in_ring.values().filter(|c| stored(c)))
                    .collect();
                for c in &chunks {
                    add(c.init());
                }
                // The store takes the last init it hears of as the current one.
                let current = ring.current_init();
                if let Some(cur) = &current {
                    inits.retain(|i| !Arc::ptr_eq(i, cur));
                }
                for init in inits.iter().chain(&current) {
                    store.init_admitted(id, name, init);
                }
                for c in chunks {
                    store.chunk_admitted(id, name, c);
                }
                let left: Vec<u64> = held_only.into_keys().collect();
                if !left.is_empty() {
                    store.chunks_left_ring(id, name, &left);
                }
            }
        }
        for clip in clips {
            store.clip_saved(clip);
        }
    }

    /// Rebuilds one clip from the chunks it held; `None` when one is missing.
    fn restore_clip(&self, rc: RestoredClip, held: &HashMap<ChunkKey, Arc<Chunk>>) -> Option<Clip> {
        let stream = self.stream_arc(rc.stream).ok()?;
        // A record naming no rendition of its own as reference is not a clip we made.
        if rc.reference >= rc.renditions.len() {
            return None;
        }
        let complete = rc.complete;
        let mut names = Vec::with_capacity(rc.renditions.len());
        let mut heads = Vec::with_capacity(rc.renditions.len());
        let mut tracks = Vec::with_capacity(rc.renditions.len());
        for r in rc.renditions {
            let name: Arc<str> = Arc::from(r.name.as_str());
            let chunks = r
                .seqs
                .iter()
                .map(|seq| held.get(&(rc.stream, Arc::clone(&name), *seq)).cloned())
                .collect::<Option<Vec<_>>>()?;
            tracks.push(Track::restored(chunks, complete));
            heads.push(RenditionHead {
                init: r.init,
                ring: std::sync::Weak::new(),
                bandwidth_bps: r.bandwidth_bps,
                target_secs: r.target_secs,
            });
            names.push(name);
        }
        // The clip's renditions are a prefix of the stream's, as when it was cut.
        let rings = stream.rings();
        let prefix = rings.iter().zip(&names).all(|(r, n)| r.name == *n);
        if !prefix || names.len() > rings.len() {
            return None;
        }
        if !complete {
            // Chunks that arrived after its last save and survived are taken now.
            advance_tracks(
                &rings[..names.len()],
                rc.reference,
                &mut tracks,
                rc.start,
                rc.end,
            );
        }
        let clip = Clip::new(NewClip {
            id: rc.id,
            stream: rc.stream,
            request: rc.request,
            start: rc.start,
            end: rc.end,
            expiration: rc.expiration,
            created_at: rc.created_at,
            video_id: rc.video_id,
            names,
            heads,
            reference: rc.reference,
            complete,
            tracks,
        });
        self.clips.write().insert(clip.id(), clip.clone());
        stream.clips.lock().push(clip.id());
        self.expiry
            .lock()
            .push(Reverse((clip.expiration_utc(), clip.id())));
        if clip.state() == ClipState::Recording {
            let deadline = self.recording_deadline(&stream, clip.end_utc());
            stream.recording.lock().push(clip.clone());
            self.recording_deadlines
                .lock()
                .push(Reverse((deadline, clip.id())));
        }
        Some(clip)
    }
}

/// Gives each chunk's payload to `store` (`place_payload`), newest first across
/// the streams' renditions, so that a store refusing one (a full disk), which
/// ends the placing, holds the newest part: what a restart's ring keeps (its run
/// ending at the newest chunk) and what recent clips hold. Returns the chunks
/// left unplaced, in memory only.
fn place_newest_first(store: &dyn Persist, streams: &mut [RestoredStream]) -> HashSet<ChunkKey> {
    let mut all: Vec<(StreamId, &str, &mut RestoredChunk)> = Vec::new();
    for rs in streams.iter_mut() {
        for RestoredRendition { name, chunks, .. } in rs.renditions.iter_mut() {
            all.extend(chunks.iter_mut().map(|c| (rs.id, name.as_str(), c)));
        }
    }
    all.sort_by_key(|(_, _, c)| Reverse(c.start_utc));
    let mut unstored = HashSet::new();
    let mut placing = true;
    for (id, name, c) in all {
        let placed = placing
            .then(|| store.place_payload(c.bytes.clone()).ok())
            .flatten();
        match placed {
            Some(bytes) => c.bytes = bytes,
            None => {
                placing = false;
                unstored.insert((id, Arc::from(name), c.seq));
            }
        }
    }
    unstored
}
