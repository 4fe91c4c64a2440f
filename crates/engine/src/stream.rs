//! Streams: their settings, their renditions' rings, and the snapshot the API shows.
//!
//! Owns [`StreamId`], [`StreamSettings`], [`StreamPatch`], [`StreamInfo`] and the
//! engine-internal `Stream`. A stream's rendition list only grows (a rendition is
//! created by its first init segment) and is read far more often than written, so it
//! sits behind a `RwLock<Vec<Arc<Ring>>>`; the rings have their own locks.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use dvrclip_fmp4::VideoInfo;
use parking_lot::{Mutex, RwLock};

use crate::clip::{Clip, ClipId};
use crate::ring::{Ring, SharedAnchor};
use crate::{Error, Result, WallTime};

/// A stream's integer id (the API's `id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Settings given at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// Human name, 1-255 chars.
    pub name: String,
    /// Whether the DVR keeps `dvr_duration` and clips may be cut.
    pub dvr_enabled: bool,
    /// DVR window, seconds (1 ..= the engine's maximum).
    pub dvr_duration_secs: u32,
    /// Whether ingest is accepted.
    pub active: bool,
    /// Whether the server pulls the stream from [`StreamSettings::uri`] (Gcore's
    /// `pull`) rather than waiting for a push. The engine only keeps it.
    pub pull: bool,
    /// Where to pull from: one or more URLs separated by spaces, tried round robin
    /// (Gcore's `uri`). The engine keeps it as given; the host checks its syntax.
    pub uri: Option<String>,
}

impl StreamSettings {
    /// A stream named `name` with Gcore's defaults: DVR on, 1 h, active.
    pub fn named(name: impl Into<String>) -> Self {
        StreamSettings {
            name: name.into(),
            dvr_enabled: true,
            dvr_duration_secs: 3600,
            active: true,
            pull: false,
            uri: None,
        }
    }
}

impl StreamSettings {
    /// These settings with `patch` applied; an empty `uri` clears it. Not checked:
    /// the engine checks what it takes.
    pub fn patched(&self, patch: &StreamPatch) -> StreamSettings {
        let mut next = self.clone();
        if let Some(n) = &patch.name {
            next.name.clone_from(n);
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
        if let Some(v) = patch.pull {
            next.pull = v;
        }
        if let Some(u) = &patch.uri {
            next.uri = (!u.trim().is_empty()).then(|| u.clone());
        }
        next
    }
}

/// A settings change: `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamPatch {
    /// New name.
    pub name: Option<String>,
    /// New DVR switch.
    pub dvr_enabled: Option<bool>,
    /// New DVR window, seconds; a shorter one drops older chunks at once.
    pub dvr_duration_secs: Option<u32>,
    /// New ingest switch.
    pub active: Option<bool>,
    /// New pull switch.
    pub pull: Option<bool>,
    /// New pull URIs; `Some("")` clears them.
    pub uri: Option<String>,
}

/// A stream as the API shows it (ref/api.md's Stream object, less the URLs the server
/// builds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// Integer id.
    pub id: StreamId,
    /// Name.
    pub name: String,
    /// Ingest accepted.
    pub active: bool,
    /// DVR on.
    pub dvr_enabled: bool,
    /// DVR window, seconds.
    pub dvr_duration_secs: u32,
    /// Pulled from [`StreamInfo::uri`].
    pub pull: bool,
    /// Pull URIs, as given.
    pub uri: Option<String>,
    /// Ingest seen within the engine's live timeout.
    pub live: bool,
    /// Creation time.
    pub created_at: WallTime,
    /// Rendition names, in the order their first init arrived.
    pub renditions: Vec<String>,
    /// Top rendition's video width, pixels.
    pub video_width: Option<u16>,
    /// Top rendition's video height, pixels.
    pub video_height: Option<u16>,
    /// The secret ingest key (part of the push URL).
    pub ingest_key: String,
    /// The secret key of the stream's live DVR playlists (part of their URL): public
    /// links stay unguessable, like a clip's id (ref/api.md "Public clip links").
    pub play_key: String,
}

/// One rendition's current state.
#[derive(Clone, Debug)]
pub struct RenditionInfo {
    /// Name.
    pub name: String,
    /// The latest init segment.
    pub init: Option<Arc<dvrclip_fmp4::InitSegment>>,
    /// Video size, if it has video.
    pub video: Option<VideoInfo>,
    /// Chunks in the ring.
    pub chunks: usize,
    /// Payload bytes in the ring.
    pub bytes: u64,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) id: StreamId,
    pub(crate) created_at: WallTime,
    pub(crate) ingest_key: String,
    pub(crate) play_key: String,
    pub(crate) settings: RwLock<StreamSettings>,
    pub(crate) renditions: RwLock<Vec<Arc<Ring>>>,
    pub(crate) shared_anchor: Mutex<Option<SharedAnchor>>,
    /// Unix µs of the last accepted push; `i64::MIN` before any.
    pub(crate) last_ingest: AtomicI64,
    pub(crate) recording: Mutex<Vec<Clip>>,
    pub(crate) clips: Mutex<Vec<ClipId>>,
}

pub(crate) fn video_of(ring: &Ring) -> Option<VideoInfo> {
    ring.current_init()
        .and_then(|i| i.video_track().and_then(|t| t.entry.video))
}

/// Index of the highest rendition: tallest video, then widest, then first.
pub(crate) fn reference_index(videos: &[Option<VideoInfo>]) -> usize {
    let mut best = 0;
    for (i, v) in videos.iter().enumerate() {
        let key = |v: &Option<VideoInfo>| v.map(|v| (v.height, v.width));
        if key(v) > key(&videos[best]) {
            best = i;
        }
    }
    best
}

impl Stream {
    pub(crate) fn new(
        id: StreamId,
        settings: StreamSettings,
        created_at: WallTime,
        ingest_key: String,
        play_key: String,
    ) -> Self {
        Stream {
            id,
            created_at,
            ingest_key,
            play_key,
            settings: RwLock::new(settings),
            renditions: RwLock::new(Vec::new()),
            shared_anchor: Mutex::new(None),
            last_ingest: AtomicI64::new(i64::MIN),
            recording: Mutex::new(Vec::new()),
            clips: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn ring(&self, name: &str) -> Option<Arc<Ring>> {
        self.renditions
            .read()
            .iter()
            .find(|r| &*r.name == name)
            .cloned()
    }

    pub(crate) fn rings(&self) -> Vec<Arc<Ring>> {
        self.renditions.read().clone()
    }

    pub(crate) fn last_ingest(&self) -> Option<WallTime> {
        let v = self.last_ingest.load(Ordering::SeqCst);
        (v != i64::MIN).then_some(WallTime::from_unix_micros(v))
    }

    pub(crate) fn info(&self, now: WallTime, live_timeout_micros: i64) -> StreamInfo {
        let s = self.settings.read().clone();
        let rings = self.rings();
        let videos: Vec<_> = rings.iter().map(|r| video_of(r)).collect();
        let top = videos.get(reference_index(&videos)).copied().flatten();
        StreamInfo {
            id: self.id,
            name: s.name,
            active: s.active,
            dvr_enabled: s.dvr_enabled,
            dvr_duration_secs: s.dvr_duration_secs,
            pull: s.pull,
            uri: s.uri,
            live: self
                .last_ingest()
                .is_some_and(|t| now.micros_since(t) <= live_timeout_micros),
            created_at: self.created_at,
            renditions: rings.iter().map(|r| r.name.to_string()).collect(),
            video_width: top.map(|v| v.width),
            video_height: top.map(|v| v.height),
            ingest_key: self.ingest_key.clone(),
            play_key: self.play_key.clone(),
        }
    }
}

/// Checks a stream name: 1-255 chars, no control characters.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::InvalidSetting {
            field: "name",
            reason: "must not be empty",
        });
    }
    if name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(Error::InvalidSetting {
            field: "name",
            reason: "at most 255 printable characters",
        });
    }
    Ok(())
}

/// Checks a rendition or segment name: one safe path component.
pub(crate) fn check_component(name: &str) -> Result<()> {
    if crate::secret::is_safe_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidName(name.chars().take(80).collect()))
    }
}
