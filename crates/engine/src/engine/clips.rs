//! Clips: creating them from requests (the cut), feeding recording clips as chunks
//! arrive, deleting, and the deadline work [`Engine::tick`] does (expiry, the bounded
//! wait of a recording clip). Clips a restore found lost ([`crate::LostClip`]) are
//! read, deleted and expired here too.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{
    EXPIRATION_DEFAULT_SECS, EXPIRATION_MAX_SECS, EXPIRATION_MIN_SECS, Engine, TickReport,
};
use crate::chunk::bytes_per_sec;
use crate::clip::{Clip, ClipId, ClipRequest, NewClip, RenditionHead};
use crate::cut::{FOLLOW_TOLERANCE_MICROS, Track, cut_follower, cut_reference};
use crate::ring::Ring;
use crate::stream::{Stream, StreamId, reference_index, video_of};
use crate::time::MICROS_PER_SEC;
use crate::{Error, LostClip, Result, WallTime};

impl Engine {
    /// Creates a clip from a request (ref/api.md "Clips"). Past ranges are cut at once; a range
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
        // A lifetime runs from the later of the clip's end and now, so a clip cut deep
        // in a 4 h DVR is not born expired. Whole seconds, as the API speaks: rounded up.
        let from = end.max(now);
        let from_secs = from.unix_secs() + i64::from(from.unix_micros() % MICROS_PER_SEC != 0);
        let expiration_secs = req
            .expiration_unix_secs
            .unwrap_or(from_secs + EXPIRATION_DEFAULT_SECS);
        let (min, max) = (
            from_secs + EXPIRATION_MIN_SECS,
            from_secs + EXPIRATION_MAX_SECS,
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
            .map(|c| c.memory_bytes())
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
        let pinned = self.account.pinned_bytes();
        if pinned.saturating_add(needed) > self.config.memory_budget_bytes {
            return Err(Error::OverBudget {
                needed_bytes: needed,
                available_bytes: self.config.memory_budget_bytes.saturating_sub(pinned),
            });
        }

        let video_id = match req.vod_required {
            true => Some(self.draw_video_id()?),
            false => None,
        };
        let clip = Clip::new(NewClip {
            id: ClipId::random()?,
            stream: id,
            start,
            end,
            expiration: WallTime::from_unix_secs(expiration_secs),
            created_at: now,
            video_id,
            names: rings.iter().map(|r| Arc::clone(&r.name)).collect(),
            heads: rings
                .iter()
                .zip(&rates)
                .map(|(r, rate)| RenditionHead {
                    init: r.current_init(),
                    ring: Arc::downgrade(r),
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
        if let Some(p) = self.persist() {
            p.clip_saved(&clip);
        }
        Ok(clip)
    }

    /// A clip by id; [`Error::UnknownClip`] once it expired (even before the sweeper
    /// ran), [`Error::ClipLost`] for one whose media a restore could not bring back.
    pub fn clip(&self, clip_id: ClipId) -> Result<Clip> {
        let Some(clip) = self.clips.read().get(&clip_id).cloned() else {
            return Err(match self.lost_clip(clip_id) {
                Some(lost) => Error::ClipLost {
                    id: clip_id,
                    reason: lost.reason,
                },
                None => Error::UnknownClip,
            });
        };
        if self.now() >= clip.expiration_utc() {
            return Err(Error::UnknownClip);
        }
        Ok(clip)
    }

    /// A clip whose media a restore could not bring back, until its expiration.
    pub fn lost_clip(&self, clip_id: ClipId) -> Option<LostClip> {
        let lost = self.lost.read().get(&clip_id).cloned()?;
        (self.now() < lost.expiration).then_some(lost)
    }

    /// A stream's lost clips that have not expired, oldest first.
    pub fn lost_clips(&self, id: StreamId) -> Vec<LostClip> {
        let now = self.now();
        let mut out: Vec<LostClip> = self
            .lost
            .read()
            .values()
            .filter(|l| l.stream == id && now < l.expiration)
            .cloned()
            .collect();
        out.sort_by_key(|l| (l.created_at, l.id));
        out
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
        let removed = self.clips.write().remove(&clip_id);
        let Some(clip) = removed else {
            self.lost
                .write()
                .remove(&clip_id)
                .ok_or(Error::UnknownClip)?;
            if let Some(p) = self.persist() {
                p.clip_removed(clip_id);
            }
            return Ok(());
        };
        if let Some(p) = self.persist() {
            p.clip_removed(clip_id);
        }
        self.forget(std::slice::from_ref(&clip));
        self.compact_deadlines();
        Ok(())
    }

    /// Drops the deadlines of deleted clips once they outnumber the live ones, so a
    /// client that creates and deletes in a loop cannot grow the heaps for hours.
    /// Amortised O(1) per delete.
    fn compact_deadlines(&self) {
        let live = self.clips.read();
        let lost = self.lost.read();
        let limit = 2 * (live.len() + lost.len()) + 64;
        for heap in [&self.expiry, &self.recording_deadlines] {
            let mut heap = heap.lock();
            if heap.len() > limit {
                heap.retain(|Reverse((_, id))| live.contains_key(id) || lost.contains_key(id));
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
    pub(super) fn recording_deadline(&self, stream: &Stream, end: WallTime) -> WallTime {
        let stall = i64::from(self.config.recording_stall_secs) * MICROS_PER_SEC;
        let cap = end.add_micros(i64::from(self.config.recording_max_wait_secs) * MICROS_PER_SEC);
        let last = stream.last_ingest().unwrap_or(WallTime::EPOCH);
        end.max(last).add_micros(stall).min(cap)
    }

    /// Lets every recording clip of the stream take the chunks that arrived.
    pub(super) fn feed_recording(&self, stream: &Stream) {
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
                if let Some(p) = self.persist() {
                    p.clip_saved(clip);
                }
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
        let lost_expired: Vec<ClipId> = {
            let mut lost = self.lost.write();
            due.iter()
                .filter(|id| lost.remove(id).is_some())
                .copied()
                .collect()
        };
        if let Some(p) = self.persist() {
            for id in expired
                .iter()
                .map(Clip::id)
                .chain(lost_expired.iter().copied())
            {
                p.clip_removed(id);
            }
        }
        self.forget(&expired);
        report.expired = expired.len() + lost_expired.len();
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
            if let Some(p) = self.persist() {
                p.clip_saved(&clip);
            }
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
}

/// Marks a clip complete with the chunks it has.
pub(super) fn complete_clip(clip: &Clip) {
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
pub(super) fn advance_tracks(
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
