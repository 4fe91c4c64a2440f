//! Clips: what a clip request asked for, the chunks it holds, and how readers follow
//! a clip while it records.
//!
//! Owns [`ClipId`], [`ClipRequest`], [`Clip`] (a cheap handle) and [`ClipView`] (an
//! immutable snapshot of the chunks per rendition). A recording clip publishes a new
//! view each time it takes chunks: O(k) to build for its k chunks, O(1) for a reader
//! to get (`Arc` clone under a short read lock), and a `tokio::sync::watch` channel
//! tells waiters "new chunk" or "complete" without any polling.
//!
//! Memory: every chunk in a view is pinned in [`crate::MemoryStats::clip_bytes`] for
//! as long as the view lives, so a download holding an old view keeps its chunks
//! counted even after the clip expired.

use std::sync::{Arc, Weak};

use dvrclip_fmp4::{InitSegment, MediaSegment, VideoInfo};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::chunk::Chunk;
use crate::cut::Track;
use crate::ring::Ring;
use crate::{Error, Result, StreamId, WallTime};

/// A clip's id: 128 bits from the OS RNG, written as 32 lowercase hex characters
/// (URL-safe, unguessable).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClipId([u8; 16]);

impl ClipId {
    /// A fresh id from the operating system's RNG.
    pub fn random() -> Result<ClipId> {
        crate::secret::random_bytes().map(ClipId)
    }

    /// Parses the form `Display` writes, 32 lowercase hex characters; `None` for
    /// anything else (uppercase too: one clip, one link).
    pub fn parse(s: &str) -> Option<ClipId> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut b = [0u8; 16];
        for (i, out) in b.iter_mut().enumerate() {
            *out = digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?;
        }
        Some(ClipId(b))
    }

    /// The raw bits.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Display for ClipId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ClipId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClipId({self})")
    }
}

impl std::str::FromStr for ClipId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ClipId::parse(s).ok_or(Error::UnknownClip)
    }
}

/// A clip request (ref/api.md "Clips"), as the API receives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClipRequest {
    /// Seconds to cover.
    pub duration_secs: u64,
    /// Unix seconds; `None` means now.
    pub start_unix_secs: Option<i64>,
    /// Unix seconds; `None` means `max(end, now) + 3600`.
    pub expiration_unix_secs: Option<i64>,
    /// Persist the MP4 as a VOD when complete; the clip gets a `video_id`.
    pub vod_required: bool,
    /// Trim playback to exactly `[start, start+duration)` with an edit list.
    pub precise: bool,
}

/// Recording or complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClipState {
    /// Still taking chunks as they arrive (HLS `EVENT` playlist; MP4 answers 425).
    Recording,
    /// Final: no chunk will be added.
    Complete,
}

/// What a watcher of a clip sees change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipProgress {
    /// Grows by one each time the clip publishes a new view.
    pub version: u64,
    /// Chunks of the reference rendition so far.
    pub reference_chunks: usize,
    /// Recording or complete.
    pub state: ClipState,
}

/// What a clip knows of a rendition before holding any of its chunks: the init and
/// bitrate the rendition had when the clip was cut. A recording clip's master playlist
/// lists every rendition from its creation with these (a player loads the master once).
#[derive(Debug, Clone, Default)]
pub(crate) struct RenditionHead {
    pub(crate) init: Option<Arc<InitSegment>>,
    /// The ring the clip was cut from, for its MP4 header index (`Clip::mp4`); none
    /// for a clip restored from the spool or a live view (their MP4 headers visit
    /// every chunk).
    pub(crate) ring: Weak<Ring>,
    pub(crate) bandwidth_bps: u64,
    /// The longest recent chunk rounded up, seconds: keeps a recording clip's
    /// `EXT-X-TARGETDURATION` from changing as it grows (RFC 8216 §6.2.1).
    pub(crate) target_secs: u64,
}

/// One rendition of a clip: its chunks in order.
#[derive(Debug, Clone)]
pub struct ClipRendition {
    name: Arc<str>,
    head: RenditionHead,
    chunks: Vec<Arc<Chunk>>,
}

impl ClipRendition {
    /// Rendition name (`media_1_360`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The video size of the rendition's init when the clip was cut, if it has video.
    /// A clip across an encoder restart may hold other sizes: see each chunk's init.
    pub fn video(&self) -> Option<VideoInfo> {
        let init = self.head.init.as_ref()?;
        init.video_track().and_then(|t| t.entry.video)
    }

    /// The init the rendition's chunks will most likely decode with: the first chunk's,
    /// or, before the clip holds any, the rendition's init when the clip was cut.
    pub fn expected_init(&self) -> Option<&Arc<InitSegment>> {
        self.first_init().or(self.head.init.as_ref())
    }

    /// The rendition's recent bitrate when the clip was cut, bits per second: what a
    /// master playlist announces for a rendition the clip holds no chunk of yet.
    pub fn expected_bandwidth_bps(&self) -> u64 {
        self.head.bandwidth_bps
    }

    /// The init the clip announced for this rendition when it was cut (what
    /// [`ClipRendition::video`] reads); a store persists it with the clip.
    pub fn announced_init(&self) -> Option<&Arc<InitSegment>> {
        self.head.init.as_ref()
    }

    /// The target duration announced when the clip was cut, seconds (0: none).
    pub fn announced_target_secs(&self) -> u64 {
        self.head.target_secs
    }

    /// The ring the chunks came from, while it exists: its MP4 header index.
    pub(crate) fn ring(&self) -> Option<Arc<Ring>> {
        self.head.ring.upgrade()
    }

    /// Chunks in play order. Each carries its init, discontinuity, UTC start, bytes,
    /// duration and keyframe flag.
    pub fn chunks(&self) -> &[Arc<Chunk>] {
        &self.chunks
    }

    /// Whether `EXT-X-DISCONTINUITY` goes before chunk `i` (its discontinuity differs
    /// from the previous chunk's).
    pub fn discontinuity_before(&self, i: usize) -> bool {
        match i.checked_sub(1) {
            Some(p) => {
                self.chunks.get(p).map(|c| c.discontinuity())
                    != self.chunks.get(i).map(|c| c.discontinuity())
            }
            None => false,
        }
    }

    /// The init of the first chunk (what an `EXT-X-MAP` starts with).
    pub fn first_init(&self) -> Option<&Arc<InitSegment>> {
        self.chunks.first().map(|c| c.init())
    }

    /// Sum of chunk durations, seconds.
    pub fn duration_secs(&self) -> f64 {
        self.chunks.iter().map(|c| c.duration_secs()).sum()
    }

    /// The longest chunk rounded up, seconds (`EXT-X-TARGETDURATION`, RFC 8216 §4.3.3.1),
    /// and never less than the rendition's longest recent chunk when the clip was cut,
    /// so the value a recording clip starts with holds as it grows.
    pub fn target_duration_secs(&self) -> u64 {
        self.chunks
            .iter()
            .map(|c| c.duration_secs().ceil() as u64)
            .max()
            .unwrap_or(1)
            .max(self.head.target_secs)
            .max(1)
    }

    /// Highest per-chunk bitrate, bits per second (`BANDWIDTH`, RFC 8216 §4.3.4.2).
    pub fn peak_bandwidth_bps(&self) -> u64 {
        self.chunks
            .iter()
            .filter(|c| c.duration_micros() > 0)
            .map(|c| (u128::from(c.len_bytes()) * 8_000_000 / c.duration_micros() as u128) as u64)
            .max()
            .unwrap_or(0)
    }

    /// Total bytes over total duration, bits per second (`AVERAGE-BANDWIDTH`).
    pub fn average_bandwidth_bps(&self) -> u64 {
        crate::chunk::bytes_per_sec(self.chunks.iter()) * 8
    }

    /// The ordered `(init, segment)` list a progressive MP4 writer consumes.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = (&Arc<InitSegment>, &MediaSegment)> {
        self.chunks.iter().map(|c| (c.init(), c.segment()))
    }

    /// Like [`Self::segments`], owned (sample tables are cloned; payload bytes are not).
    pub fn to_segment_list(&self) -> Vec<(Arc<InitSegment>, MediaSegment)> {
        self.chunks
            .iter()
            .map(|c| (Arc::clone(c.init()), c.segment().clone()))
            .collect()
    }

    /// Wall-clock start of the first chunk.
    pub fn start_utc(&self) -> Option<WallTime> {
        self.chunks.first().map(|c| c.start_utc())
    }

    /// Wall-clock end of the last chunk.
    pub fn end_utc(&self) -> Option<WallTime> {
        self.chunks.last().map(|c| c.end_utc())
    }
}

/// An immutable snapshot of a clip's chunks. Holding one keeps its chunks alive and
/// counted as clip memory.
#[derive(Debug)]
pub struct ClipView {
    renditions: Vec<ClipRendition>,
    reference: usize,
    state: ClipState,
    version: u64,
    requested_start: WallTime,
    requested_end: WallTime,
}

impl ClipView {
    fn new(
        renditions: Vec<ClipRendition>,
        reference: usize,
        state: ClipState,
        version: u64,
        requested: (WallTime, WallTime),
    ) -> Self {
        for r in &renditions {
            for c in &r.chunks {
                c.ticket().pin();
            }
        }
        ClipView {
            renditions,
            reference,
            state,
            version,
            requested_start: requested.0,
            requested_end: requested.1,
        }
    }

    /// Every rendition, in the stream's order.
    pub fn renditions(&self) -> &[ClipRendition] {
        &self.renditions
    }

    /// The rendition of this name.
    pub fn rendition(&self, name: &str) -> Option<&ClipRendition> {
        self.renditions.iter().find(|r| &*r.name == name)
    }

    /// The highest rendition (by video height): the cut's reference and the default MP4.
    pub fn reference(&self) -> Option<&ClipRendition> {
        self.renditions.get(self.reference)
    }

    /// Recording or complete.
    pub fn state(&self) -> ClipState {
        self.state
    }

    /// Whether the reference rendition holds no chunk yet (a recording clip whose
    /// start has not arrived, or one completed with nothing).
    pub fn is_empty(&self) -> bool {
        self.reference().is_none_or(|r| r.chunks.is_empty())
    }

    /// Whether the clip is complete.
    pub fn is_complete(&self) -> bool {
        self.state == ClipState::Complete
    }

    /// Grows with every published view (an HLS playlist `ETag` can use it).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The reference's first chunk start: `actual_start`.
    pub fn actual_start(&self) -> Option<WallTime> {
        self.reference().and_then(|r| r.start_utc())
    }

    /// The reference's last chunk end.
    pub fn actual_end(&self) -> Option<WallTime> {
        self.reference().and_then(|r| r.end_utc())
    }

    /// `actual_end - actual_start`, microseconds (0 when empty).
    pub fn actual_duration_micros(&self) -> i64 {
        match (self.actual_start(), self.actual_end()) {
            (Some(s), Some(e)) => e.micros_since(s),
            _ => 0,
        }
    }

    /// Media before the requested start that keyframe alignment added, microseconds
    /// (what a `precise` MP4's edit list skips). 0 when the clip starts late.
    pub fn lead_in_micros(&self) -> i64 {
        self.actual_start()
            .map_or(0, |s| self.requested_start.micros_since(s).max(0))
    }

    /// The requested `[start, end)` clipped to what the reference holds: the window a
    /// `precise` clip's MP4 plays (its edit lists skip the rest). `None` while empty;
    /// an empty range when the clip holds nothing of the request.
    pub fn trimmed(&self) -> Option<(WallTime, WallTime)> {
        let (held_start, held_end) = (self.actual_start()?, self.actual_end()?);
        let start = held_start.max(self.requested_start);
        Some((start, held_end.min(self.requested_end).max(start)))
    }

    /// The requested `[start, end)`.
    pub fn requested(&self) -> (WallTime, WallTime) {
        (self.requested_start, self.requested_end)
    }

    /// The requested duration, microseconds (a `precise` MP4 plays this long).
    pub fn requested_duration_micros(&self) -> i64 {
        self.requested_end.micros_since(self.requested_start)
    }
}

impl Drop for ClipView {
    fn drop(&mut self) {
        for r in &self.renditions {
            for c in &r.chunks {
                c.ticket().unpin();
            }
        }
    }
}

/// The writer side of a clip while it is built.
#[derive(Debug)]
pub(crate) struct Build {
    pub(crate) tracks: Vec<Track>,
    pub(crate) version: u64,
}

#[derive(Debug)]
pub(crate) struct ClipShared {
    pub(crate) id: ClipId,
    pub(crate) stream: StreamId,
    pub(crate) request: ClipRequest,
    pub(crate) start: WallTime,
    pub(crate) end: WallTime,
    pub(crate) expiration: WallTime,
    pub(crate) created_at: WallTime,
    pub(crate) video_id: Option<u64>,
    pub(crate) names: Vec<Arc<str>>,
    pub(crate) heads: Vec<RenditionHead>,
    pub(crate) reference: usize,
    pub(crate) build: Mutex<Build>,
    view: RwLock<Arc<ClipView>>,
    progress: watch::Sender<ClipProgress>,
}

/// A clip: a cheap, clonable handle. Its fields are the Clip object of ref/api.md plus
/// `actual_start`/`actual_duration`; its chunks come through [`Clip::view`].
#[derive(Debug, Clone)]
pub struct Clip(pub(crate) Arc<ClipShared>);

pub(crate) struct NewClip {
    pub(crate) id: ClipId,
    pub(crate) stream: StreamId,
    pub(crate) request: ClipRequest,
    pub(crate) start: WallTime,
    pub(crate) end: WallTime,
    pub(crate) expiration: WallTime,
    pub(crate) created_at: WallTime,
    pub(crate) video_id: Option<u64>,
    pub(crate) names: Vec<Arc<str>>,
    pub(crate) heads: Vec<RenditionHead>,
    pub(crate) reference: usize,
    pub(crate) tracks: Vec<Track>,
    pub(crate) complete: bool,
}

impl Clip {
    pub(crate) fn new(n: NewClip) -> Clip {
        let state = if n.complete {
            ClipState::Complete
        } else {
            ClipState::Recording
        };
        let view = ClipView::new(
            rendition_list(&n.names, &n.heads, &n.tracks),
            n.reference,
            state,
            0,
            (n.start, n.end),
        );
        let progress = ClipProgress {
            version: 0,
            reference_chunks: n.tracks.get(n.reference).map_or(0, |t| t.chunks.len()),
            state,
        };
        let (tx, _) = watch::channel(progress);
        Clip(Arc::new(ClipShared {
            id: n.id,
            stream: n.stream,
            request: n.request,
            start: n.start,
            end: n.end,
            expiration: n.expiration,
            created_at: n.created_at,
            video_id: n.video_id,
            names: n.names,
            heads: n.heads,
            reference: n.reference,
            build: Mutex::new(Build {
                tracks: n.tracks,
                version: 0,
            }),
            view: RwLock::new(Arc::new(view)),
            progress: tx,
        }))
    }

    /// Publishes the build's current chunks as a new view (the caller holds `build`).
    pub(crate) fn publish(&self, build: &mut Build, complete: bool) {
        build.version += 1;
        let state = if complete {
            ClipState::Complete
        } else {
            ClipState::Recording
        };
        let s = &self.0;
        let view = ClipView::new(
            rendition_list(&s.names, &s.heads, &build.tracks),
            s.reference,
            state,
            build.version,
            (s.start, s.end),
        );
        let old = std::mem::replace(&mut *s.view.write(), Arc::new(view));
        drop(old);
        let reference_chunks = build.tracks.get(s.reference).map_or(0, |t| t.chunks.len());
        s.progress.send_replace(ClipProgress {
            version: build.version,
            reference_chunks,
            state,
        });
    }

    /// The id.
    pub fn id(&self) -> ClipId {
        self.0.id
    }

    /// The stream it was cut from.
    pub fn stream_id(&self) -> StreamId {
        self.0.stream
    }

    /// The request as received.
    pub fn request(&self) -> &ClipRequest {
        &self.0.request
    }

    /// Requested `duration`, seconds.
    pub fn duration_secs(&self) -> u64 {
        self.0.request.duration_secs
    }

    /// Requested start (now when omitted), wall time.
    pub fn start_utc(&self) -> WallTime {
        self.0.start
    }

    /// Requested start, Unix seconds (the Clip object's `start`).
    pub fn start_unix_secs(&self) -> i64 {
        self.0.start.unix_secs()
    }

    /// Requested end: start + duration.
    pub fn end_utc(&self) -> WallTime {
        self.0.end
    }

    /// When it disappears, wall time.
    pub fn expiration_utc(&self) -> WallTime {
        self.0.expiration
    }

    /// When it disappears, Unix seconds (the Clip object's `expiration`).
    pub fn expiration_unix_secs(&self) -> i64 {
        self.0.expiration.unix_secs()
    }

    /// When it was created (format with [`WallTime::to_rfc3339_millis`]).
    pub fn created_at(&self) -> WallTime {
        self.0.created_at
    }

    /// Whether a VOD is written when complete.
    pub fn vod_required(&self) -> bool {
        self.0.request.vod_required
    }

    /// The VOD's id, when `vod_required`.
    pub fn video_id(&self) -> Option<u64> {
        self.0.video_id
    }

    /// Whether the MP4 should trim to the exact request.
    pub fn precise(&self) -> bool {
        self.0.request.precise
    }

    /// Rendition names, in the stream's order.
    pub fn renditions(&self) -> Vec<String> {
        self.0.names.iter().map(|n| n.to_string()).collect()
    }

    /// Name of the reference (highest) rendition: the default MP4.
    pub fn reference_rendition(&self) -> &str {
        self.0.names.get(self.0.reference).map_or("", |n| n)
    }

    /// The current snapshot of its chunks. O(1).
    pub fn view(&self) -> Arc<ClipView> {
        Arc::clone(&self.0.view.read())
    }

    /// Recording or complete, now.
    pub fn state(&self) -> ClipState {
        self.0.progress.borrow().state
    }

    /// What a player of `view` gets, `[start, end)`: whole chunks, or for a `precise`
    /// clip the trimmed window ([`ClipView::trimmed`]) its MP4's edit lists keep. The
    /// Clip object's `actual_start` and `actual_duration`; `None` while it holds nothing.
    pub fn played(&self, view: &ClipView) -> Option<(WallTime, WallTime)> {
        if self.precise() {
            view.trimmed()
        } else {
            Some((view.actual_start()?, view.actual_end()?))
        }
    }

    /// `actual_start`, Unix seconds with fraction; `None` while it holds nothing.
    pub fn actual_start(&self) -> Option<WallTime> {
        self.played(&self.view()).map(|(s, _)| s)
    }

    /// `actual_duration`, seconds with fraction.
    pub fn actual_duration_secs(&self) -> f64 {
        self.played(&self.view())
            .map_or(0.0, |(s, e)| e.micros_since(s) as f64 / 1e6)
    }

    /// A receiver that changes with every new chunk and on completion.
    pub fn subscribe(&self) -> watch::Receiver<ClipProgress> {
        self.0.progress.subscribe()
    }

    /// Waits until the clip is complete (at once if it is). Cancel-safe: dropping the
    /// future just stops waiting.
    pub async fn wait_complete(&self) -> Arc<ClipView> {
        let mut rx = self.subscribe();
        // The sender lives as long as `self`, so this only ends by completion.
        let _ = rx.wait_for(|p| p.state == ClipState::Complete).await;
        self.view()
    }

    /// Waits until the clip holds more than `seen_version`'s chunks or completes; returns
    /// the newest view.
    pub async fn wait_newer(&self, seen_version: u64) -> Arc<ClipView> {
        let mut rx = self.subscribe();
        let _ = rx
            .wait_for(|p| p.version > seen_version || p.state == ClipState::Complete)
            .await;
        self.view()
    }
}

impl ClipRendition {
    /// A rendition's whole ring as it is now, for a live playlist: the same shape a
    /// clip's rendition has, over every chunk held.
    pub(crate) fn live(name: Arc<str>, head: RenditionHead, chunks: Vec<Arc<Chunk>>) -> Self {
        ClipRendition { name, head, chunks }
    }
}

fn rendition_list(
    names: &[Arc<str>],
    heads: &[RenditionHead],
    tracks: &[Track],
) -> Vec<ClipRendition> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| ClipRendition {
            name: Arc::clone(n),
            head: heads.get(i).cloned().unwrap_or_default(),
            chunks: tracks.get(i).map(|t| t.chunks.clone()).unwrap_or_default(),
        })
        .collect()
}
