//! The master MP4 header of each complete clip, built in the background before any
//! request: at creation for a clip cut from the DVR, at completion for a recording
//! one. A 4 h header takes about 12 ms to build (O(chunks), bound by memory latency),
//! twenty times a cached first byte; built here, the first `GET` of the `mp4_master`
//! link the API returns finds it in the MP4 cache.
//!
//! Shaped so that it costs no more than a request would have:
//! - the header goes into the same cache ([`Mp4Cache`]), counted in the engine's
//!   memory budget and dropped with the clip; one that does not fit is not kept (a
//!   request later tries again and gets the 503 it would have got);
//! - one build per clip and rendition whoever starts it: a request arriving during
//!   the build waits for it ([`Mp4Cache::clip_rendition`]), and a build that finds
//!   the header built (a request was first) does nothing;
//! - at most [`BUILDS_AT_ONCE`] builds run, on a blocking thread, so ingest and the
//!   API keep the other core; the API answers before any build starts;
//! - only the master (the reference rendition, the one MP4 link the API hands out):
//!   each other rendition costs about as much again and is asked for by name, if at
//!   all, so it is built by its first request as before.
//!
//! Clips restored from the spool at start are not built here: their first request
//! builds them, as before.

use std::sync::Arc;

use dvrclip_engine::{Clip, Engine};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::debug;

use crate::mp4_cache::{Asker, Mp4Cache};

/// Background header builds running at once.
pub const BUILDS_AT_ONCE: usize = 1;

/// The background builds: one task per clip waiting for it to complete, at most
/// [`BUILDS_AT_ONCE`] of them building.
#[derive(Debug)]
pub struct Mp4Prebuild {
    engine: Arc<Engine>,
    cache: Arc<Mp4Cache>,
    permits: Arc<Semaphore>,
    tasks: Mutex<JoinSet<()>>,
}

impl Mp4Prebuild {
    /// Builds into `cache` for clips of `engine`.
    pub fn new(engine: Arc<Engine>, cache: Arc<Mp4Cache>) -> Mp4Prebuild {
        Mp4Prebuild {
            engine,
            cache,
            permits: Arc::new(Semaphore::new(BUILDS_AT_ONCE)),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Builds `clip`'s master MP4 once the clip is complete, unless the engine no
    /// longer holds it by then (deleted or expired). Returns at once.
    pub fn spawn(&self, clip: Clip) {
        let engine = Arc::clone(&self.engine);
        let cache = Arc::clone(&self.cache);
        let permits = Arc::clone(&self.permits);
        let mut tasks = self.tasks.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            // A deleted or expired clip completes too: the check below drops it.
            let id = clip.id();
            clip.wait_complete().await;
            // Nothing of the clip is held while waiting for a turn, so a clip deleted
            // meanwhile releases its chunks at once; it is taken again from the
            // engine when its turn comes.
            drop(clip);
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            let Ok(clip) = engine.clip(id) else {
                return;
            };
            let view = clip.view();
            let Some(name) = view.reference().map(|r| r.name().to_owned()) else {
                return;
            };
            if cache.is_built(id, &name) {
                return;
            }
            if let Err(e) = cache
                .clip_rendition(&engine, &clip, view, &name, Asker::Prebuild)
                .await
            {
                // Over the budget, or no media: the first request answers for it.
                debug!(clip = %id, error = %e, "background MP4 build skipped");
            }
            if engine.clip(id).is_err() {
                // Deleted while it was built: the delete's `forget` may have run first.
                cache.forget(&[id]);
            }
        });
    }

    /// Stops the builds and the waits.
    pub fn shutdown(&self) {
        self.tasks.lock().abort_all();
    }
}
