//! Built clip MP4s, each counted in the memory budget for as long as it lives.
//!
//! A complete clip rendition's [`VirtualMp4`] is built once, by whoever asks first
//! ([`Mp4Cache::clip_rendition`]; concurrent askers wait for that one build): the
//! background build of a complete clip's master (the app starts it when the clip
//! is cut) or a request, and kept until the clip is gone (expired:
//! [`Mp4Cache::retain`] from the app's tick; deleted: [`Mp4Cache::forget`]). Its
//! own bytes, the header (`ftyp`, and a `moov` whose sample tables reach about 7 MB
//! for a 4 h rendition) and the piece table ([`VirtualMp4::memory_bytes`]), live
//! outside the chunks, so each [`CachedMp4`] holds an engine [`MemoryReservation`] of that size from its build
//! until its last reference drops: the cache's, or a download's still in flight. The
//! media pieces are the chunks' own `Bytes`, already counted with the chunks.
//!
//! Counted by a reservation rather than bounded by a least-recently-used cache inside
//! a share of the budget:
//! - a header lives as long as any download holds it, whatever a cache drops; the
//!   reservation travels with the header, so the count is what is alive (as a chunk's
//!   ticket does, `dvrclip_engine::memory`), where an LRU counts only what it holds;
//! - the budget already has one part that gives, the DVR: a header makes the oldest
//!   DVR chunks go as an open connection does, with no second share to size;
//! - when clips and reservations already fill the budget, the header is refused
//!   (503, as a clip that would not fit: ref/api.md status table) instead of pushing
//!   out another clip's header, which its player's next Range request would rebuild
//!   (tens of milliseconds for 4 h): an LRU under pressure rebuilds on every request.

use std::collections::HashMap;
use std::future::Future;
use std::ops::{Deref, Range};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dvrclip_engine::{Clip, ClipId, ClipView, Engine, MemoryReservation};
use dvrclip_fmp4::progressive::VirtualMp4;
use http_body_util::BodyExt;
use parking_lot::Mutex;

use crate::error::ApiError;
use crate::http::HttpBody;
use crate::http::entity::{Entity, Mp4Body};

/// A built MP4 and its share of the memory budget, released when the last clone
/// drops. Cheap to clone; derefs to the file.
#[derive(Clone, Debug)]
pub struct CachedMp4(Arc<Counted>);

#[derive(Debug)]
struct Counted {
    file: VirtualMp4,
    _memory: MemoryReservation,
    /// The cache's gauge of bytes held by built MP4s, this one's included.
    held: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Deref for CachedMp4 {
    type Target = VirtualMp4;

    fn deref(&self) -> &VirtualMp4 {
        &self.0.file
    }
}

impl Entity for CachedMp4 {
    type Error = std::convert::Infallible;

    fn len(&self) -> u64 {
        VirtualMp4::len(self)
    }

    fn etag(&self) -> &str {
        VirtualMp4::etag(self)
    }

    fn content_type(&self) -> &str {
        VirtualMp4::content_type(self)
    }

    async fn body(&self, range: Range<u64>) -> Result<HttpBody, Self::Error> {
        // The body holds a clone: the header stays counted until it is sent.
        Ok(Mp4Body::new(self.clone(), range).boxed())
    }
}

type Cell = Arc<tokio::sync::OnceCell<CachedMp4>>;

/// Who asks for a clip rendition's MP4: counted apart in `/metrics` when it builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asker {
    /// A request for the file.
    Request,
    /// The background build of a complete clip's master, before any request.
    Prebuild,
}

/// The built MP4s by clip and rendition name.
#[derive(Debug, Default)]
pub struct Mp4Cache {
    cells: Mutex<HashMap<(ClipId, String), Cell>>,
    held: Arc<AtomicU64>,
    builds: AtomicU64,
    prebuilt: AtomicU64,
    build_micros: AtomicU64,
}

impl Mp4Cache {
    /// The MP4 of rendition `rendition` (a name [`ClipView::rendition`] knows) of the
    /// complete `clip` as of `view` ([`Clip::mp4`]), built on first use off the
    /// runtime's worker threads (tens of milliseconds for a 4 h clip), concurrent
    /// askers sharing one build, and counted in `engine`'s budget (503 when it does
    /// not fit, nothing cached). The one way the server builds a clip's MP4.
    pub async fn clip_rendition(
        &self,
        engine: &Engine,
        clip: &Clip,
        view: Arc<ClipView>,
        rendition: &str,
        asker: Asker,
    ) -> Result<CachedMp4, ApiError> {
        let build = || {
            let clip = clip.clone();
            let name = rendition.to_owned();
            async move {
                tokio::task::spawn_blocking(move || -> Result<VirtualMp4, ApiError> {
                    let r = view.rendition(&name).ok_or_else(|| {
                        ApiError::NotFound(format!("clip has no rendition {name:?}"))
                    })?;
                    Ok(clip.mp4(&view, r)?)
                })
                .await
                .map_err(|e| ApiError::Internal(format!("building the MP4: {e}")))?
            }
        };
        self.get_or_build(engine, clip.id(), rendition, asker, build)
            .await
    }

    /// Whether the MP4 of `clip`'s `rendition` is built and cached now.
    pub fn is_built(&self, clip: ClipId, rendition: &str) -> bool {
        self.cells
            .lock()
            .get(&(clip, rendition.to_owned()))
            .is_some_and(|c| c.initialized())
    }

    /// The cache's counters in the Prometheus text format, for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let series = [
            (
                "dvrclip_mp4_builds_total",
                "Clip MP4 headers built (by a request or in the background), each once per clip and rendition.",
                &self.builds,
            ),
            (
                "dvrclip_mp4_prebuilt_total",
                "Of those, built in the background when the clip became complete, before any request.",
                &self.prebuilt,
            ),
            (
                "dvrclip_mp4_build_micros_total",
                "Microseconds spent building clip MP4 headers, summed.",
                &self.build_micros,
            ),
        ];
        let mut out = String::new();
        for (name, help, n) in series {
            crate::metrics::family(&mut out, name, "counter", help, n.load(Ordering::Relaxed));
        }
        out
    }

    /// The MP4 of `clip`'s `rendition`, built by `build` on first use (concurrent
    /// askers share one build, counted as `asker`'s) and counted in `engine`'s
    /// budget. A build that fails, or whose header does not fit the budget
    /// ([`Engine::try_reserve_memory`]), caches nothing: a later request tries again.
    async fn get_or_build<E, F, Fut>(
        &self,
        engine: &Engine,
        clip: ClipId,
        rendition: &str,
        asker: Asker,
        build: F,
    ) -> Result<CachedMp4, E>
    where
        E: From<dvrclip_engine::Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<VirtualMp4, E>>,
    {
        let cell = self
            .cells
            .lock()
            .entry((clip, rendition.to_owned()))
            .or_default()
            .clone();
        let init = || async {
            let started = Instant::now();
            let file = build().await?;
            let bytes = file.memory_bytes();
            let memory = engine.try_reserve_memory(bytes)?;
            self.held.fetch_add(bytes, Ordering::Relaxed);
            // Counted before the cell is set, so whoever waited on it sees the count.
            let micros = started.elapsed().as_micros() as u64;
            self.build_micros.fetch_add(micros, Ordering::Relaxed);
            self.builds.fetch_add(1, Ordering::Relaxed);
            if asker == Asker::Prebuild {
                self.prebuilt.fetch_add(1, Ordering::Relaxed);
            }
            Ok(CachedMp4(Arc::new(Counted {
                file,
                _memory: memory,
                held: Arc::clone(&self.held),
                bytes,
            })))
        };
        cell.get_or_try_init(init).await.cloned()
    }

    /// Keeps the MP4s of the clips `keep` says are still alive.
    pub fn retain(&self, mut keep: impl FnMut(ClipId) -> bool) {
        self.cells.lock().retain(|(clip, _), _| keep(*clip));
    }

    /// Drops the MP4s of `clips` (deleted).
    pub fn forget(&self, clips: &[ClipId]) {
        self.retain(|clip| !clips.contains(&clip));
    }

    /// Bytes built MP4s count in the budget now: those cached, and those of clips
    /// already gone whose downloads are still being sent.
    pub fn memory_bytes(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}
