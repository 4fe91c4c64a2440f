//! Built clip MP4s, each counted in the memory budget for as long as it lives.
//!
//! A complete clip rendition's [`VirtualMp4`] is built by the first request for it
//! and kept until the clip is gone (expired: [`Mp4Cache::retain`] from the app's
//! tick; deleted: [`Mp4Cache::forget`]). Its own bytes, the header (`ftyp`, and a
//! `moov` whose sample tables reach about 7 MB for a 4 h rendition) and the piece
//! table ([`VirtualMp4::memory_bytes`]), live outside the chunks, so each
//! [`CachedMp4`] holds an engine [`MemoryReservation`] of that size from its build
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

use dvrclip_engine::{ClipId, Engine, MemoryReservation};
use dvrclip_fmp4::progressive::VirtualMp4;
use http_body_util::BodyExt;
use parking_lot::Mutex;

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

/// The built MP4s by clip and rendition name.
#[derive(Debug, Default)]
pub struct Mp4Cache {
    cells: Mutex<HashMap<(ClipId, String), Cell>>,
    held: Arc<AtomicU64>,
}

impl Mp4Cache {
    /// The MP4 of `clip`'s `rendition`, built by `build` on first use (concurrent
    /// first requests share one build) and counted in `engine`'s budget. A build
    /// that fails, or whose header does not fit the budget
    /// ([`Engine::try_reserve_memory`]), caches nothing: a later request tries again.
    pub async fn get_or_build<E, F, Fut>(
        &self,
        engine: &Engine,
        clip: ClipId,
        rendition: &str,
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
            let file = build().await?;
            let bytes = file.memory_bytes();
            let memory = engine.try_reserve_memory(bytes)?;
            self.held.fetch_add(bytes, Ordering::Relaxed);
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
