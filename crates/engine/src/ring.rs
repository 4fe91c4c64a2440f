//! The per-rendition ring of chunks: one writer (ingest), many readers (cutter, HTTP).
//!
//! Owns [`Ring`]: a `VecDeque<Arc<Chunk>>` in push order behind a `parking_lot::RwLock`,
//! plus the writer's state for the current discontinuity (init, wall-clock anchor).
//! What it must not hold: clips, or anything a reader keeps after its read lock ends —
//! readers copy out `Arc`s and release the lock before any I/O.
//!
//! Ingest rules (DESIGN §2, §7), applied under the write lock:
//! - wall time: the chunk's own `prft` (ISO/IEC 14496-12 §8.16.5), else the
//!   discontinuity's anchor advanced by media time; a new discontinuity anchors on its
//!   first chunk's arrival (shared with sibling renditions of the stream so a ladder
//!   lands on one timeline). `EXT-X-PROGRAM-DATE-TIME` arrives after its segment and
//!   re-anchors it later ([`Ring::set_segment_date`]); a `prft` or date a day away
//!   from arrival is ignored as a broken clock;
//! - a new init, or media time going backwards or jumping by more than
//!   [`JUMP_TOLERANCE_MICROS`], opens a discontinuity with its own init and anchor; a
//!   forward jump of up to 5 min with the same init keeps the clock mapping (a lost
//!   upload); nothing stored is overwritten;
//! - a retry (same start and same bytes in the current discontinuity) is a no-op.
//!
//! Why a `RwLock` around a `VecDeque` rather than an arc-swap snapshot: a snapshot
//! that readers can hold without a lock must be rebuilt or copied on every push, O(n)
//! for a 4 h DVR of 2 s chunks (7200 entries, ×3 renditions, every 2 s), or needs a
//! persistent tree with O(log n) pointer chasing on every read. The lock's critical
//! sections are tiny instead: the writer holds it for a `push_back`/`pop_front` and a
//! few field updates; a reader for a binary search and cloning the `Arc`s it needs. No
//! lock is held across I/O or across another ring's lock, so the writer never waits on
//! a reader's download and a reader never waits longer than one push.
//!
//! Costs: push and prune amortized O(1) (prune pops from the front only); search by
//! wall time or media time O(log n); a re-anchor by playlist date O(k) for the k
//! chunks it moves; memory one `Arc` per chunk plus the payload, counted in
//! [`crate::MemoryStats`].
//!
//! Invariants (checked by [`RingState::check`] under `debug_assertions` after every
//! write): `seq` strictly increasing; `start_utc` strictly increasing (so wall-time
//! search is a binary search even across discontinuities); `discontinuity`
//! non-decreasing; within one discontinuity `start_ticks` strictly increasing and
//! every chunk shares the discontinuity's init; `bytes` equals the payloads held.

use std::collections::VecDeque;
use std::sync::Arc;

use dvrclip_fmp4::{InitSegment, MediaSegment, TrackKind};
use parking_lot::RwLock;

use crate::chunk::{Chunk, ChunkMedia, memory_cost};
use crate::memory::{Account, Ticket};
use crate::time::{MICROS_PER_SEC, micros_from_ticks, micros_from_ticks_signed};
use crate::{Error, Result, StreamId, WallTime};

/// Media time may wander this far from the previous chunk's end before it counts as
/// a jump (a new discontinuity): encoders round tfdt, and audio frames straddle.
pub(crate) const JUMP_TOLERANCE_MICROS: i64 = 100_000;

/// A forward jump up to this long with the same init keeps the old clock mapping
/// (a lost upload, not a restart).
const EXTRAPOLATE_MAX_MICROS: i64 = 300 * MICROS_PER_SEC;

/// How far another rendition's anchor may sit from this arrival and still be shared,
/// so renditions of one encoder land on one timeline.
const SHARED_ANCHOR_MAX_MICROS: i64 = 3 * MICROS_PER_SEC;

/// A `prft` or playlist date further than this from the chunk's arrival is ignored.
const TRUST_WINDOW_MICROS: i64 = 24 * 3600 * MICROS_PER_SEC;

/// Longest chunk accepted.
const MAX_CHUNK_MICROS: i64 = 3600 * MICROS_PER_SEC;

/// 9999-12-31T23:59:59Z: wall times stay far from `i64` saturation, so `+1 µs` is
/// always a later time.
const MAX_WALL: WallTime = WallTime::from_unix_secs(253_402_300_799);

/// Where a chunk's `start_utc` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorSource {
    /// The chunk's own `prft` box (ISO/IEC 14496-12 §8.16.5).
    ProducerTime,
    /// The playlist's `EXT-X-PROGRAM-DATE-TIME` for this segment.
    PlaylistDate,
    /// An earlier anchor of the same discontinuity advanced by media time.
    MediaTime,
    /// Arrival time of the discontinuity's first chunk. An encoder uploads a chunk
    /// once it is complete, so wall time runs about one chunk ahead of production:
    /// a clip of "now" starts with the newest chunk held.
    Arrival,
}

/// A clock mapping: `utc` is the wall time of media time `ticks`.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    ticks: u64,
    utc: WallTime,
}

/// A stream-wide mapping from media time (µs) to wall time, shared between renditions
/// anchored by arrival so one encoder's ladder lands on one timeline.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SharedAnchor {
    pub(crate) media_micros: i64,
    pub(crate) utc: WallTime,
}

#[derive(Debug)]
struct Disc {
    seq: u64,
    init: Arc<InitSegment>,
    ref_track: u32,
    timescale: u32,
    end_ticks: u64,
    anchor: Anchor,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored as chunk `seq`; `new_discontinuity` when it opened one.
    Stored {
        /// The chunk's sequence number in its rendition.
        seq: u64,
        /// Whether this chunk starts a new discontinuity.
        new_discontinuity: bool,
        /// Its wall-clock start.
        start_utc: WallTime,
    },
    /// Already held (same name and start, or same start in this discontinuity): nothing
    /// changed.
    Duplicate,
    /// An init segment identical to the current one: nothing changed.
    SameInit,
    /// A new init segment: the next chunk opens a new discontinuity.
    NewInit,
}

/// The lock-protected state of one ring.
#[derive(Debug, Default)]
pub(crate) struct RingState {
    pub(crate) chunks: VecDeque<Arc<Chunk>>,
    pub(crate) bytes: u64,
    /// Anchor source per chunk, parallel to `chunks` (kept out of `Chunk` because it
    /// matters only to the writer).
    sources: VecDeque<AnchorSource>,
    next_seq: u64,
    next_disc: u64,
    init: Option<Arc<InitSegment>>,
    init_changed: bool,
    cur: Option<Disc>,
    /// Start and end of the newest chunk stored, kept after it leaves: the floor of the
    /// next chunk's wall time when eviction has emptied the ring (budget eviction can
    /// drop a ring's newest chunk while a clip still holds it).
    newest: Option<(WallTime, WallTime)>,
}

/// One rendition's ring. See the module doc.
#[derive(Debug)]
pub(crate) struct Ring {
    pub(crate) name: Arc<str>,
    state: RwLock<RingState>,
}

pub(crate) struct PushInput<'a> {
    pub(crate) stream: StreamId,
    pub(crate) name: Option<&'a str>,
    pub(crate) segment: MediaSegment,
    pub(crate) arrival: WallTime,
    pub(crate) window_micros: i64,
    pub(crate) account: &'a Arc<Account>,
}

/// Result of a push: the outcome and what fell off the DVR window (dropped by the
/// caller outside the lock).
pub(crate) struct Pushed {
    pub(crate) outcome: PushOutcome,
    pub(crate) evicted: Vec<Arc<Chunk>>,
}

fn ref_track_of(init: &InitSegment) -> Option<(u32, u32)> {
    let t = init.video_track().or_else(|| init.tracks.first())?;
    Some((t.track_id, t.timescale))
}

impl Ring {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Ring {
            name,
            state: RwLock::new(RingState::default()),
        }
    }

    /// Runs `f` under the read lock. Keep `f` short: search and clone `Arc`s only.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&RingState) -> R) -> R {
        f(&self.state.read())
    }

    pub(crate) fn push_init(&self, init: InitSegment) -> Result<PushOutcome> {
        if init.tracks.is_empty() {
            return Err(Error::EmptyInit);
        }
        let mut st = self.state.write();
        if st.init.as_ref().is_some_and(|cur| cur.bytes == init.bytes) {
            return Ok(PushOutcome::SameInit);
        }
        st.init = Some(Arc::new(init));
        st.init_changed = true;
        Ok(PushOutcome::NewInit)
    }

    pub(crate) fn current_init(&self) -> Option<Arc<InitSegment>> {
        self.state.read().init.clone()
    }

    /// Pushes one media segment. `shared` is the stream's arrival anchor, read and
    /// possibly replaced.
    pub(crate) fn push(
        &self,
        inp: PushInput<'_>,
        shared: &mut Option<SharedAnchor>,
    ) -> Result<Pushed> {
        let mut st = self.state.write();
        let init = match &st.init {
            Some(i) => Arc::clone(i),
            None => {
                return Err(Error::NoInit {
                    stream: inp.stream,
                    rendition: self.name.to_string(),
                });
            }
        };
        for t in &inp.segment.tracks {
            if init.track(t.track_id).is_none() {
                return Err(Error::TrackMismatch {
                    stream: inp.stream,
                    rendition: self.name.to_string(),
                    track_id: t.track_id,
                });
            }
        }
        let bad = |reason| Error::BadTiming {
            stream: inp.stream,
            rendition: self.name.to_string(),
            reason,
        };
        let empty = || Error::EmptySegment {
            stream: inp.stream,
            rendition: self.name.to_string(),
        };
        let (ref_track, timescale) = ref_track_of(&init).ok_or(Error::EmptyInit)?;
        let ts = inp
            .segment
            .track(ref_track)
            .filter(|t| !t.samples.is_empty())
            .ok_or_else(empty)?;
        let start_ticks = ts
            .samples
            .first()
            .map_or(ts.base_decode_ticks, |s| s.decode_ticks);
        // Saturating: timestamps are untrusted and release builds check overflow.
        let end_ticks = ts.samples.last().map_or(start_ticks, |s| {
            s.decode_ticks.saturating_add(u64::from(s.duration))
        });
        let duration_ticks = end_ticks.saturating_sub(start_ticks);
        let video_id = init
            .tracks
            .iter()
            .find(|t| t.kind == TrackKind::Video)
            .map(|t| t.track_id);
        let keyframe = inp.segment.starts_with_keyframe(video_id);
        let tol_ticks =
            (JUMP_TOLERANCE_MICROS as u64 * u64::from(timescale)) / MICROS_PER_SEC as u64;

        // Duplicate: a retry of a chunk still held in this discontinuity, i.e. the same
        // start and the same bytes. Same start with other bytes is an encoder restart
        // that kept its init (ffmpeg run again with the same settings).
        if let (Some(cur), false) = (&st.cur, st.init_changed) {
            let held = st.find_ticks_in_disc(cur.seq, start_ticks);
            if held.is_some_and(|i| st.chunks[i].bytes() == &inp.segment.bytes) {
                return Ok(Pushed {
                    outcome: PushOutcome::Duplicate,
                    evicted: Vec::new(),
                });
            }
        }

        // A producer time a day away from arrival is a broken encoder clock, not news.
        let prft_utc = producer_utc(&inp.segment, &init, start_ticks, timescale)
            .filter(|u| u.micros_since(inp.arrival).unsigned_abs() <= TRUST_WINDOW_MICROS as u64);
        let newest = st
            .chunks
            .back()
            .map(|c| (c.start_utc(), c.end_utc()))
            .or(st.newest);
        let last_start = newest.map(|(s, _)| s);
        let last_end = newest.map(|(_, e)| e);
        let last_ticks = st
            .chunks
            .back()
            .filter(|c| st.cur.as_ref().is_some_and(|d| d.seq == c.discontinuity));
        let last_ticks = last_ticks.map(|c| c.start_ticks());

        let continues = match (&st.cur, st.init_changed) {
            (Some(cur), false) => {
                start_ticks.saturating_add(tol_ticks) >= cur.end_ticks
                    && start_ticks <= cur.end_ticks.saturating_add(tol_ticks)
                    && last_ticks.is_none_or(|t| start_ticks > t)
            }
            _ => false,
        };
        let (start_utc, source, new_disc) = if continues {
            let cur = st.cur.as_ref().ok_or_else(empty)?;
            let (utc, src) = match prft_utc {
                Some(u) => (u, AnchorSource::ProducerTime),
                None => (
                    at_ticks(cur.anchor, start_ticks, timescale),
                    AnchorSource::MediaTime,
                ),
            };
            // Strictly after the previous start keeps wall-time search a binary search.
            let floor = last_start.map_or(utc, |s| s.add_micros(1));
            (utc.max(floor), src, false)
        } else {
            let (utc, src) = if let Some(u) = prft_utc {
                (u, AnchorSource::ProducerTime)
            } else {
                let extrapolated = match (&st.cur, st.init_changed) {
                    (Some(cur), false) if start_ticks > cur.end_ticks => {
                        let jump = micros_from_ticks(start_ticks - cur.end_ticks, timescale);
                        (jump <= EXTRAPOLATE_MAX_MICROS)
                            .then(|| at_ticks(cur.anchor, start_ticks, timescale))
                    }
                    _ => None,
                };
                match extrapolated {
                    Some(u) => (u, AnchorSource::MediaTime),
                    None => (
                        shared_or_arrival(shared, start_ticks, timescale, inp.arrival),
                        AnchorSource::Arrival,
                    ),
                }
            };
            // A new discontinuity never overlaps the one before it.
            let floor = last_end
                .zip(last_start)
                .map(|(e, s)| e.max(s.add_micros(1)));
            (floor.map_or(utc, |f| utc.max(f)), src, true)
        };

        let duration_micros = micros_from_ticks(duration_ticks, timescale);
        if duration_micros > MAX_CHUNK_MICROS {
            return Err(bad("segment longer than 1 h"));
        }
        // A chunk of no length lies in no clip's range: nothing could ever cut it.
        if duration_micros == 0 {
            return Err(bad("segment has no duration"));
        }
        if start_utc < WallTime::EPOCH || start_utc.add_micros(MAX_CHUNK_MICROS) > MAX_WALL {
            return Err(bad("wall-clock time outside 1970..9999"));
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        if new_disc {
            let disc_seq = st.next_disc;
            st.next_disc += 1;
            st.cur = Some(Disc {
                seq: disc_seq,
                init: Arc::clone(&init),
                ref_track,
                timescale,
                end_ticks: start_ticks,
                anchor: Anchor {
                    ticks: start_ticks,
                    utc: start_utc,
                },
            });
            st.init_changed = false;
        }
        let name: Option<Arc<str>> = inp.name.map(Arc::from);
        let Some(cur) = st.cur.as_mut() else {
            return Err(empty());
        };
        debug_assert_eq!((cur.ref_track, cur.timescale), (ref_track, timescale));
        cur.end_ticks = end_ticks;
        if source != AnchorSource::MediaTime {
            cur.anchor = Anchor {
                ticks: start_ticks,
                utc: start_utc,
            };
        }
        let disc_seq = cur.seq;
        let bytes = inp.segment.bytes.len();
        let cost = memory_cost(&inp.segment);
        let media = ChunkMedia {
            seq,
            name,
            init: Arc::clone(&cur.init),
            segment: inp.segment,
            start_ticks,
            duration_ticks,
            timescale,
            keyframe,
            arrival: inp.arrival,
            ticket: Ticket::new(inp.account, cost),
        };
        let chunk = Arc::new(Chunk {
            media: Arc::new(media),
            start_utc,
            discontinuity: disc_seq,
        });
        st.newest = Some((chunk.start_utc(), chunk.end_utc()));
        st.chunks.push_back(chunk);
        st.sources.push_back(source);
        st.bytes += bytes as u64;
        let evicted = st.prune_window(inp.window_micros);
        st.check();
        Ok(Pushed {
            outcome: PushOutcome::Stored {
                seq,
                new_discontinuity: new_disc,
                start_utc,
            },
            evicted,
        })
    }

    /// Re-anchors the newest chunk named `segment_name`, and the chunks after it in its
    /// discontinuity up to the next one with its own date, so it starts at `utc`.
    /// Returns whether anything moved. A chunk with its own `prft` keeps it.
    pub(crate) fn set_segment_date(&self, segment_name: &str, utc: WallTime) -> bool {
        let mut st = self.state.write();
        let Some(idx) = st
            .chunks
            .iter()
            .rposition(|c| c.name() == Some(segment_name))
        else {
            return false;
        };
        let trusted = utc
            .micros_since(st.chunks[idx].arrival_utc())
            .unsigned_abs()
            <= TRUST_WINDOW_MICROS as u64;
        // The first date of a chunk wins: a later playlist naming the same file (an
        // encoder restart reusing names, whose upload was a duplicate) must not move it.
        if matches!(
            st.sources[idx],
            AnchorSource::ProducerTime | AnchorSource::PlaylistDate
        ) || !trusted
        {
            return false;
        }
        let chunk = Arc::clone(&st.chunks[idx]);
        let disc = chunk.discontinuity;
        let mut end = idx + 1;
        while end < st.chunks.len()
            && st.chunks[end].discontinuity == disc
            && matches!(
                st.sources[end],
                AnchorSource::MediaTime | AnchorSource::Arrival
            )
        {
            end += 1;
        }
        // Clamp the shift so the moved run neither overlaps its neighbours nor leaves
        // them: it starts at or after the previous chunk's end and ends at or before
        // the next chunk's start.
        let old = chunk.start_utc;
        let lo = match idx.checked_sub(1).map(|p| &st.chunks[p]) {
            Some(p) => p.end_utc().micros_since(old),
            None => i64::MIN,
        };
        let last = &st.chunks[end - 1];
        let hi = match st.chunks.get(end) {
            Some(n) => n.start_utc.micros_since(last.end_utc()),
            None => i64::MAX,
        };
        let delta = utc.micros_since(old).max(lo).min(hi);
        if delta == 0 || lo > hi {
            st.sources[idx] = AnchorSource::PlaylistDate;
            return false;
        }
        for i in idx..end {
            let c = &st.chunks[i];
            let moved = Chunk {
                start_utc: c.start_utc.add_micros(delta),
                ..Chunk::clone(c)
            };
            st.chunks[i] = Arc::new(moved);
        }
        st.sources[idx] = AnchorSource::PlaylistDate;
        let new_start = old.add_micros(delta);
        if let Some(cur) = st.cur.as_mut().filter(|c| c.seq == disc) {
            cur.anchor = Anchor {
                ticks: chunk.start_ticks(),
                utc: new_start,
            };
        }
        st.check();
        true
    }

    /// Removes every chunk (the DVR cleanup). The discontinuity state stays, so the
    /// next push continues the same clock mapping.
    pub(crate) fn clear(&self) -> Vec<Arc<Chunk>> {
        let mut st = self.state.write();
        st.bytes = 0;
        st.sources.clear();
        let out = st.chunks.drain(..).collect();
        st.check();
        out
    }

    /// Drops what is older than the window (after a settings change).
    pub(crate) fn prune(&self, window_micros: i64) -> Vec<Arc<Chunk>> {
        let mut st = self.state.write();
        let out = st.prune_window(window_micros);
        st.check();
        out
    }

    /// Start of the oldest chunk, for the global "oldest first" eviction.
    pub(crate) fn oldest_start(&self) -> Option<WallTime> {
        self.state.read().chunks.front().map(|c| c.start_utc)
    }

    /// Pops the oldest chunk (global budget eviction).
    pub(crate) fn pop_oldest(&self) -> Option<Arc<Chunk>> {
        let mut st = self.state.write();
        let c = st.pop_front();
        st.check();
        c
    }
}

impl RingState {
    fn pop_front(&mut self) -> Option<Arc<Chunk>> {
        let c = self.chunks.pop_front()?;
        self.sources.pop_front();
        self.bytes -= c.len_bytes();
        Some(c)
    }

    /// Pops chunks that ended before the newest chunk's end minus the window.
    fn prune_window(&mut self, window_micros: i64) -> Vec<Arc<Chunk>> {
        let mut out = Vec::new();
        let Some(newest_end) = self.chunks.back().map(|c| c.end_utc()) else {
            return out;
        };
        let horizon = newest_end.add_micros(-window_micros);
        while self.chunks.len() > 1 && self.chunks.front().is_some_and(|c| c.end_utc() <= horizon) {
            out.extend(self.pop_front());
        }
        out
    }

    /// Index of the chunk of discontinuity `disc` starting at `ticks`. O(log n).
    fn find_ticks_in_disc(&self, disc: u64, ticks: u64) -> Option<usize> {
        let lo = self.chunks.partition_point(|c| c.discontinuity < disc);
        let hi = self.chunks.partition_point(|c| c.discontinuity <= disc);
        // Ticks rise within a discontinuity: binary search the run.
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let m = a + (b - a) / 2;
            match self.chunks[m].start_ticks().cmp(&ticks) {
                std::cmp::Ordering::Less => a = m + 1,
                std::cmp::Ordering::Greater => b = m,
                std::cmp::Ordering::Equal => return Some(m),
            }
        }
        None
    }

    /// Index of the first chunk ending after `t`. O(log n): ends rise with starts
    /// except where a discontinuity is clamped; see the module invariants.
    pub(crate) fn first_ending_after(&self, t: WallTime) -> usize {
        // start_utc is strictly increasing; the chunk before the first start > t is
        // the only candidate that may still end after t.
        let i = self.chunks.partition_point(|c| c.start_utc <= t);
        match i.checked_sub(1) {
            Some(p) if self.chunks[p].end_utc() > t => p,
            _ => i,
        }
    }

    /// Number of chunks starting strictly before `t`. O(log n).
    pub(crate) fn count_starting_before(&self, t: WallTime) -> usize {
        self.chunks.partition_point(|c| c.start_utc < t)
    }

    /// Index of the chunk with this `seq`, if still held. O(1).
    pub(crate) fn index_of_seq(&self, seq: u64) -> Option<usize> {
        let first = self.chunks.front()?.seq();
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        // Seqs are contiguous in the ring: evictions pop from the front only.
        self.chunks.get(i).filter(|c| c.seq() == seq).map(|_| i)
    }

    pub(crate) fn init(&self) -> Option<&Arc<InitSegment>> {
        self.init.as_ref()
    }

    /// Verifies the module invariants. Compiled to nothing in release builds.
    fn check(&self) {
        #[cfg(debug_assertions)]
        {
            assert_eq!(self.chunks.len(), self.sources.len());
            let mut bytes = 0;
            for (i, c) in self.chunks.iter().enumerate() {
                bytes += c.len_bytes();
                if i == 0 {
                    continue;
                }
                let p = &self.chunks[i - 1];
                assert_eq!(p.seq() + 1, c.seq(), "seq contiguous");
                assert!(p.start_utc < c.start_utc, "start_utc strictly increasing");
                assert!(
                    p.discontinuity <= c.discontinuity,
                    "discontinuity non-decreasing"
                );
                if p.discontinuity == c.discontinuity {
                    assert!(
                        p.start_ticks() < c.start_ticks(),
                        "ticks rise in a discontinuity"
                    );
                    assert!(
                        Arc::ptr_eq(p.init(), c.init()),
                        "one init per discontinuity"
                    );
                } else {
                    assert!(p.end_utc() <= c.start_utc, "discontinuities do not overlap");
                }
            }
            assert_eq!(bytes, self.bytes, "byte count");
        }
    }
}

fn at_ticks(anchor: Anchor, ticks: u64, timescale: u32) -> WallTime {
    let d = i128::from(ticks) - i128::from(anchor.ticks);
    anchor
        .utc
        .add_micros(micros_from_ticks_signed(d, timescale))
}

/// Wall time of `start_ticks` from the segment's `prft`, if it has a usable one.
fn producer_utc(
    seg: &MediaSegment,
    init: &InitSegment,
    start_ticks: u64,
    timescale: u32,
) -> Option<WallTime> {
    let p = seg.producer_time?;
    let utc = WallTime::from_unix_micros(p.unix_micros()?);
    let p_scale = init.track(p.track_id).map_or(timescale, |t| t.timescale);
    // Tracks of one encoder share a time origin, so µs convert across timescales.
    let p_micros = micros_from_ticks(p.media_ticks, p_scale);
    let s_micros = micros_from_ticks(start_ticks, timescale);
    Some(utc.add_micros(s_micros - p_micros))
}

fn shared_or_arrival(
    shared: &mut Option<SharedAnchor>,
    ticks: u64,
    timescale: u32,
    arrival: WallTime,
) -> WallTime {
    let media_micros = micros_from_ticks(ticks, timescale);
    if let Some(a) = *shared {
        let candidate = a.utc.add_micros(media_micros - a.media_micros);
        if candidate.micros_since(arrival).unsigned_abs() <= SHARED_ANCHOR_MAX_MICROS as u64 {
            return candidate;
        }
    }
    *shared = Some(SharedAnchor {
        media_micros,
        utc: arrival,
    });
    arrival
}

#[cfg(test)]
mod tests {
    use crate::WallTime;
    use crate::testutil::ring;

    #[test]
    fn search_by_wall_time_and_seq() {
        let t0 = WallTime::from_unix_secs(1000);
        let (r, account) = ring(&[true; 10], t0, 0);
        r.read(|st| {
            assert_eq!(st.first_ending_after(t0.add_micros(2_500_000)), 2);
            assert_eq!(st.first_ending_after(t0.add_micros(3_000_000)), 3);
            assert_eq!(st.first_ending_after(t0.add_micros(-1)), 0);
            assert_eq!(st.first_ending_after(t0.add_micros(10_000_000)), 10);
            assert_eq!(st.count_starting_before(t0.add_micros(3_000_000)), 3);
            assert_eq!(st.count_starting_before(t0.add_micros(3_000_001)), 4);
            assert_eq!(st.index_of_seq(7), Some(7));
            assert_eq!(st.index_of_seq(10), None);
        });
        let cost = r.read(|st| st.chunks[0].memory_bytes());
        assert_eq!(account.total_bytes(), 10 * cost);
    }

    /// Found by `fuzz/fuzz_targets/ingest_sequence.rs`: a segment whose reference
    /// samples all last 0 ticks was stored as a chunk with `end == start`, which no
    /// clip can hold (the final cut found "no media in the requested range").
    #[test]
    fn a_segment_with_no_duration_is_refused() {
        use std::sync::Arc;

        use crate::memory::Account;
        use crate::ring::{PushInput, Ring};
        use crate::testutil::{init, segment};
        use crate::{Error, StreamId};

        let ring = Ring::new(Arc::from("r"));
        let account = Arc::new(Account::default());
        ring.push_init(init()).unwrap();
        let mut seg = segment(0, 30, true);
        for t in &mut seg.tracks {
            for s in &mut t.samples {
                // All at the first sample's time, as a trun of 0-tick durations gives.
                (s.duration, s.decode_ticks) = (0, 0);
            }
        }
        let inp = PushInput {
            stream: StreamId(1),
            name: None,
            segment: seg,
            arrival: WallTime::from_unix_secs(1000),
            window_micros: i64::MAX / 4,
            account: &account,
        };
        let r = ring.push(inp, &mut None);
        assert!(matches!(r, Err(Error::BadTiming { .. })), "{:?}", r.err());
        ring.read(|st| assert!(st.chunks.is_empty()));
        assert_eq!(account.total_bytes(), 0);
    }

    #[test]
    fn prune_pops_the_front_and_releases_bytes() {
        let t0 = WallTime::from_unix_secs(1000);
        let (r, account) = ring(&[true; 10], t0, 0);
        let evicted = r.prune(3_000_000);
        assert_eq!(
            evicted.iter().map(|c| c.seq()).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
        // Still alive while someone holds them, released when they go.
        let cost = evicted[0].memory_bytes();
        assert!(cost > 300, "the payload and its tables");
        assert_eq!(account.total_bytes(), 10 * cost);
        drop(evicted);
        assert_eq!(account.total_bytes(), 3 * cost);
        r.read(|st| {
            assert_eq!(
                (st.chunks.len(), st.bytes, st.index_of_seq(8)),
                (3, 900, Some(1))
            )
        });
    }
}
