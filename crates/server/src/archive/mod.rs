//! The clip archive (`--clip-archive`; `design/cluster.md` "Clip archive"): every
//! complete clip written to an object store as its links serve it, so a node that
//! no longer holds it in memory (restarted without its spool, another node of a
//! cluster, a node after the recording one died) still serves it until it expires.
//!
//! Owns when a clip is written (once complete, by a task per clip; at most
//! [`UPLOADS_IN_FLIGHT`] writing at once, each tried [`ATTEMPTS`] times), the
//! lookup of an archived clip by stream and clip id ([`ClipArchive::lookup`], the one
//! seam the public links and a cluster's forwarding call), removal (a deleted clip,
//! and the periodic sweep of expired ones), and its counters. What is written is
//! [`upload`]'s business, the manifest and keys [`manifest`]'s, where each byte of
//! an MP4 stored once lies [`layout`]'s; serving the bytes is the public links'.
//! The store is the VOD's (`crate::vod::store`): a local directory or any
//! S3-compatible bucket, opened the same way.
//!
//! Shaped as tasks over a store rather than hooks in the engine: the engine stays
//! free of I/O, and a clip's completion is already a future
//! ([`Clip::wait_complete`]) the VOD writer waits on the same way.

pub mod layout;
pub mod manifest;
pub mod upload;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use dvrclip_engine::{Clip, ClipId, Engine, StreamId, WallTime};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use layout::Mp4Layout;
pub use manifest::{ArchivedFile, ClipFile, Manifest, StoredBytes};

use crate::vod::{StoreConfig, StoreError, VodStore};

/// Clips being written at once; each holds at most two multipart parts (16 MiB) of
/// media beyond what its clip already holds.
pub const UPLOADS_IN_FLIGHT: usize = 2;
/// Tries per clip before it is given up (logged, counted); each store request
/// also retries on its own (`crate::vod::store::s3_retry`).
pub const ATTEMPTS: u32 = 3;
/// Wait before the second try, doubled for each later one.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// How often expired clips are removed.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Manifests read, and expired clips removed, per sweep at most.
pub const SWEEP_BATCH: usize = 256;
/// Manifests kept in memory for the links; past it the cache starts over.
const MANIFESTS_KEPT: usize = 4096;

/// The archive's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    archived: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    bytes: AtomicU64,
    micros: AtomicU64,
    removed: AtomicU64,
    served: AtomicU64,
}

/// Complete clips in an object store.
pub struct ClipArchive {
    store: Arc<dyn VodStore>,
    permits: Semaphore,
    tasks: Mutex<JoinSet<()>>,
    stop: watch::Sender<bool>,
    counters: Counters,
    /// Manifests read by the links, by (stream, clip).
    manifests: Mutex<HashMap<(StreamId, ClipId), Arc<Manifest>>>,
    /// What the sweep learnt: each manifest key's expiration, Unix microseconds.
    expirations: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for ClipArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipArchive")
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

impl ClipArchive {
    /// An archive over `store`.
    pub fn new(store: Arc<dyn VodStore>) -> Arc<ClipArchive> {
        Arc::new(ClipArchive {
            store,
            permits: Semaphore::new(UPLOADS_IN_FLIGHT),
            tasks: Mutex::new(JoinSet::new()),
            stop: watch::channel(false).0,
            counters: Counters::default(),
            manifests: Mutex::new(HashMap::new()),
            expirations: Mutex::new(HashMap::new()),
        })
    }

    /// The archive in the store `config` names, opened as the VOD store is (one
    /// that cannot be opened fails each write and lookup with its reason, logged).
    pub fn open(config: &StoreConfig) -> Arc<ClipArchive> {
        let archive = ClipArchive::new(crate::vod::open_store(config, None));
        info!(store = %archive.store.describe(), "clip archive");
        archive
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn VodStore> {
        &self.store
    }

    /// Archives `clip` once it is complete, unless `engine` no longer holds it by
    /// then (deleted or expired) or it is archived already.
    pub fn spawn(self: &Arc<Self>, engine: Arc<Engine>, clip: Clip) {
        let archive = Arc::clone(self);
        let mut stop = self.stop.subscribe();
        let mut tasks = self.tasks.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let view = tokio::select! {
                v = clip.wait_complete() => v,
                _ = stop.wait_for(|s| *s) => return,
            };
            archive.archive(&engine, &clip, &view).await;
        });
    }

    /// Writes `clip` as of `view`, retried; logs and counts the outcome.
    pub async fn archive(
        &self,
        engine: &Engine,
        clip: &Clip,
        view: &Arc<dvrclip_engine::ClipView>,
    ) -> Option<Manifest> {
        let complete_at = Instant::now();
        let (stream, id) = (clip.stream_id(), clip.id());
        let _permit = self.permits.acquire().await.ok()?;
        let key = manifest::manifest_key(stream, id);
        if matches!(self.store.head(&key).await, Ok(Some(_))) {
            return None;
        }
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            if engine.clip(id).is_err() {
                return None;
            }
            match upload::write_clip(self.store.as_ref(), clip, view).await {
                Ok((manifest, bytes)) => {
                    let took = complete_at.elapsed();
                    let c = &self.counters;
                    c.archived.fetch_add(1, Relaxed);
                    c.bytes.fetch_add(bytes, Relaxed);
                    c.micros.fetch_add(took.as_micros() as u64, Relaxed);
                    info!(
                        stream = stream.0, clip = %id, bytes, millis = took.as_millis() as u64,
                        "clip archived"
                    );
                    if engine.clip(id).is_err() {
                        // Deleted while it was written: its links must 404 everywhere.
                        self.remove(stream, id).await;
                        return None;
                    }
                    return Some(manifest);
                }
                Err(e) if attempt < ATTEMPTS => {
                    self.counters.retries.fetch_add(1, Relaxed);
                    warn!(stream = stream.0, clip = %id, attempt, error = %e, "clip archive write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    self.counters.failed.fetch_add(1, Relaxed);
                    warn!(stream = stream.0, clip = %id, error = %e, "clip not archived: its links die with this node's copy");
                }
            }
        }
        None
    }

    /// The seam: the manifest of clip `clip` of `stream` if the archive holds it and
    /// it has not expired at `now`; `Ok(None)` when absent (or unreadable, logged)
    /// or expired. What any caller serving a link of a clip this node does not hold
    /// asks first (`public::archived`; a cluster's forwarding to the owner comes
    /// after a `None`).
    pub async fn lookup(
        &self,
        stream: StreamId,
        clip: ClipId,
        now: WallTime,
    ) -> Result<Option<Arc<Manifest>>, StoreError> {
        let cached = self.manifests.lock().get(&(stream, clip)).cloned();
        let manifest = match cached {
            Some(m) => m,
            None => {
                let key = manifest::manifest_key(stream, clip);
                let bytes = match self.store.get(&key).await {
                    Ok(b) => b,
                    Err(e) if e.is_not_found() => return Ok(None),
                    Err(e) => return Err(e),
                };
                let m = match Manifest::parse(&bytes) {
                    Ok(m) if m.is_of(stream, clip) => Arc::new(m),
                    Ok(_) => {
                        warn!(%key, "archived manifest names another clip; ignored");
                        return Ok(None);
                    }
                    Err(e) => {
                        warn!(%key, error = %e, "unreadable archived manifest; ignored");
                        return Ok(None);
                    }
                };
                let mut kept = self.manifests.lock();
                if kept.len() >= MANIFESTS_KEPT {
                    kept.clear();
                }
                kept.insert((stream, clip), Arc::clone(&m));
                m
            }
        };
        if manifest.is_expired(now) {
            self.manifests.lock().remove(&(stream, clip));
            return Ok(None);
        }
        self.counters.served.fetch_add(1, Relaxed);
        Ok(Some(manifest))
    }

    /// Removes clip `clip` of `stream` from the archive (deleted through the API):
    /// its manifest first, so its links stop at once, then its objects.
    pub async fn remove(&self, stream: StreamId, clip: ClipId) {
        self.manifests.lock().remove(&(stream, clip));
        let key = manifest::manifest_key(stream, clip);
        if let Err(e) = self.remove_clip(&key).await {
            warn!(%key, error = %e, "could not remove an archived clip");
        }
    }

    /// [`ClipArchive::remove`] in the background.
    pub fn spawn_remove(self: &Arc<Self>, stream: StreamId, clip: ClipId) {
        let archive = Arc::clone(self);
        self.tasks
            .lock()
            .spawn(async move { archive.remove(stream, clip).await });
    }

    /// Removes the manifest `manifest_key` and then every object beside it.
    async fn remove_clip(&self, manifest_key: &str) -> Result<(), StoreError> {
        self.store.delete(manifest_key).await?;
        self.expirations.lock().remove(manifest_key);
        let prefix = manifest_key.trim_end_matches("/manifest.json");
        for (key, _) in self.store.list(prefix).await? {
            self.store.delete(&key).await?;
        }
        Ok(())
    }

    /// Removes clips expired at `now`: reads at most [`SWEEP_BATCH`] manifests it has
    /// not read before and removes at most as many clips. Returns how many it removed.
    pub async fn sweep(&self, now: WallTime) -> Result<usize, StoreError> {
        let keys = self.store.list("clips").await?;
        let manifests: HashSet<&str> = keys
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.ends_with("/manifest.json"))
            .collect();
        self.expirations
            .lock()
            .retain(|k, _| manifests.contains(k.as_str()));
        let mut read = 0;
        let mut due = Vec::new();
        for key in manifests {
            let known = self.expirations.lock().get(key).copied();
            let expiration = match known {
                Some(e) => e,
                None if read < SWEEP_BATCH => {
                    read += 1;
                    let Ok(bytes) = self.store.get(key).await else {
                        continue;
                    };
                    // An unreadable manifest serves nothing: removed like an expired one.
                    let e = Manifest::parse(&bytes).map_or(i64::MIN, |m| m.expiration_unix_micros);
                    self.expirations.lock().insert(key.to_owned(), e);
                    e
                }
                None => continue,
            };
            if WallTime::from_unix_micros(expiration) <= now && due.len() < SWEEP_BATCH {
                due.push(key.to_owned());
            }
        }
        let mut removed = 0;
        for key in due {
            match self.remove_clip(&key).await {
                Ok(()) => removed += 1,
                Err(e) => warn!(%key, error = %e, "could not remove an expired archived clip"),
            }
        }
        self.counters.removed.fetch_add(removed as u64, Relaxed);
        Ok(removed)
    }

    /// Sweeps every [`SWEEP_EVERY`] on `engine`'s clock until shutdown.
    pub fn spawn_sweeper(self: &Arc<Self>, engine: Arc<Engine>) {
        let weak = Arc::downgrade(self);
        let mut stop = self.stop.subscribe();
        self.tasks.lock().spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(SWEEP_EVERY) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let Some(archive) = weak.upgrade() else {
                    return;
                };
                match archive.sweep(engine.now()).await {
                    Ok(0) => {}
                    Ok(n) => info!(removed = n, "expired archived clips removed"),
                    Err(e) => warn!(error = %e, "clip archive sweep failed"),
                }
            }
        });
    }

    /// Stops: clips still recording are not archived; writes in progress get
    /// `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            warn!(
                left = tasks.len(),
                "clip archive writes cut short by shutdown"
            );
            tasks.shutdown().await;
        }
    }

    /// The counters in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        let c = &self.counters;
        let series = [
            (
                "dvrclip_archive_clips_total",
                "Clips written to the clip archive.",
                &c.archived,
            ),
            (
                "dvrclip_archive_failures_total",
                "Clips given up after every try.",
                &c.failed,
            ),
            (
                "dvrclip_archive_retries_total",
                "Clip archive writes tried again.",
                &c.retries,
            ),
            (
                "dvrclip_archive_bytes_total",
                "Bytes written to the clip archive (every object, manifests included).",
                &c.bytes,
            ),
            (
                "dvrclip_archive_write_micros_total",
                "Microseconds from a clip's completion to its manifest written, summed.",
                &c.micros,
            ),
            (
                "dvrclip_archive_removed_total",
                "Expired archived clips removed by the sweep.",
                &c.removed,
            ),
            (
                "dvrclip_archive_lookups_total",
                "Links answered from the archive.",
                &c.served,
            ),
        ];
        let mut out = String::new();
        for (name, help, n) in series {
            crate::metrics::family(&mut out, name, "counter", help, n.load(Relaxed));
        }
        out
    }
}
