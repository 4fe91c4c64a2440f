//! VOD: clips with `vod_required` persisted as permanent videos (`ref/api.md` "Video
//! object"; `design/architecture.md` "VOD").
//!
//! Owns the video index (id → [`VideoRecord`]), the writer that turns a complete
//! clip into a stored MP4 and HLS form, and recovery at start-up. Bytes in and out
//! of the store are [`store`]'s business; the MP4 itself is the clip's own
//! ([`dvrclip_engine::Clip::mp4`], as for the live clip link), the HLS form is
//! [`hls`]'s. Serving a video is the public links' business. In a cluster whose
//! nodes share a bucket, another node's videos are read into an index of their own
//! ([`Vod::stored`]: no recovery, no writer) by [`shared`].
//!
//! Crash safety comes from the order of writes. A video's record
//! (`videos/{id}.json`) is written `pending` when the clip is created; when the clip
//! completes its media goes to fresh keys (`media/{id}-{random}.mp4`, `.m4s` and
//! `.m3u8`, never overwritten), and only then the record turns `ready` naming
//! them. So:
//! - nothing half-written is served: only a `ready` record names media;
//! - at start-up media no `ready` record names is removed (a write cut short, or a
//!   crash between the media and its record), and a record still `pending` waits
//!   for [`Vod::resume`]: when the engine restored its clip from the spool
//!   (`design/architecture.md` "Spool") the writer starts again, so a complete
//!   clip is written at once and a recording one when it completes; otherwise it
//!   goes to `error` (its clip is gone, or its media was lost at the restart);
//! - a store that fails turns the video to `error` with the reason; the clip and
//!   the live DVR never wait on the store.
//!
//! At shutdown ([`Vod::shutdown`]) writes in progress get the grace period; videos
//! whose clip is still recording stay `pending` and resume at the next start (or
//! turn `error` there, without a spool).
//!
//! A video is renamed ([`Vod::rename`]) and deleted ([`Vod::delete`]) through the
//! API. Record writes go one at a time, each of the record as the index holds it
//! then, so a rename racing the writer's `ready` loses neither. A delete cancels the
//! video's writer and waits for it to stop (what it had written is removed), then
//! removes the record, then the media: a crash between the two leaves media no
//! record names, removed at the next start.

pub mod hls;
pub mod record;
pub mod shared;
pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dvrclip_engine::secret::random_hex;
use dvrclip_engine::{Clip, ClipId, ClipView, Engine};
use dvrclip_fmp4::progressive::VirtualMp4;
use dvrclip_fmp4::progressive::{BuildError, RangeError};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use record::{VideoRecord, VideoStatus};
pub use store::{ObjectVodStore, StoreConfig, StoreError, UnavailableStore, VodStore};

/// Why a record found `pending` at start-up is an error.
pub const INTERRUPTED: &str =
    "interrupted: the server stopped before the video was written (create a new clip)";

/// Why a record found `pending` at start-up is an error when its clip came back
/// without its media.
pub const CLIP_LOST: &str = "the clip's media was lost at a restart (create a new clip)";

/// The videos of this server and the store they live in.
pub struct Vod {
    store: Arc<dyn VodStore>,
    public_url: String,
    videos: Mutex<BTreeMap<u64, VideoRecord>>,
    /// The writers of videos not yet written, by id: how to cancel each, and how to
    /// learn it stopped.
    writing: Mutex<HashMap<u64, Writing>>,
    /// Held across each record write: the store keeps the last change of a record.
    records: tokio::sync::Mutex<()>,
    writers: Mutex<JoinSet<()>>,
    stop: watch::Sender<bool>,
    /// Lowest id [`Vod::next_video_id`] may answer.
    id_floor: AtomicU64,
    /// Records found `pending` at start-up, waiting for [`Vod::resume`].
    interrupted: Mutex<Vec<u64>>,
}

impl std::fmt::Debug for Vod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vod")
            .field("store", &self.store.describe())
            .field("videos", &self.videos.lock().len())
            .finish_non_exhaustive()
    }
}

impl Vod {
    /// A VOD over `store` with no videos known: nothing is read from the store (see
    /// [`Vod::open`]). Links are built under `public_url`.
    pub fn new(store: Arc<dyn VodStore>, public_url: impl Into<String>) -> Arc<Vod> {
        Arc::new(Vod {
            store,
            public_url: public_url.into(),
            videos: Mutex::new(BTreeMap::new()),
            writing: Mutex::new(HashMap::new()),
            records: tokio::sync::Mutex::new(()),
            writers: Mutex::new(JoinSet::new()),
            stop: watch::channel(false).0,
            id_floor: AtomicU64::new(1),
            interrupted: Mutex::new(Vec::new()),
        })
    }

    /// Opens the VOD over `store`, recovering what a previous run left: reads every
    /// record, marks interrupted ones `error` (no clip of an earlier run is in
    /// memory: see [`Vod::resume`] for a restored engine), removes media no `ready`
    /// record names. Fails only when the store cannot be listed or read.
    pub async fn open(
        store: Arc<dyn VodStore>,
        public_url: impl Into<String>,
    ) -> Result<Arc<Vod>, StoreError> {
        let vod = Vod::new(store, public_url);
        vod.recover().await?;
        vod.resume(&Engine::default()).await;
        Ok(vod)
    }

    /// Settles the records found `pending` at start-up against `engine`, once it is
    /// restored: a video whose clip the engine holds gets its writer again (the
    /// record as stored, a rename included), one whose clip was lost or is gone
    /// turns `error` with the reason. Returns how many writers resumed.
    pub async fn resume(self: &Arc<Self>, engine: &Engine) -> usize {
        let ids = std::mem::take(&mut *self.interrupted.lock());
        let mut resumed = 0;
        for id in ids {
            let Some(rec) = self.video(id).filter(|r| r.status == VideoStatus::Pending) else {
                continue;
            };
            let clip = ClipId::parse(&rec.clip_id).map(|c| engine.clip(c));
            let reason = match clip {
                Some(Ok(clip)) if clip.video_id() == Some(id) => {
                    info!(id, clip = %clip.id(), "video writer resumed after the restart");
                    self.spawn_task(id, clip);
                    resumed += 1;
                    continue;
                }
                Some(Err(dvrclip_engine::Error::ClipLost { .. })) => CLIP_LOST,
                _ => INTERRUPTED,
            };
            let _records = self.records.lock().await;
            let Some(mut rec) = self.video(id) else {
                continue;
            };
            rec.fail(reason);
            self.videos.lock().insert(id, rec.clone());
            if let Err(e) = self.save(&rec).await {
                warn!(id, error = %e, "could not record the video's error");
            }
        }
        resumed
    }

    async fn recover(&self) -> Result<(), StoreError> {
        let store = &self.store;
        let mut swept = 0;
        for prefix in ["media", "videos"] {
            swept += store.sweep_staging(prefix).await?;
        }
        let mut videos = self.load_records().await?;
        let media: HashMap<String, u64> = store.list("media").await?.into_iter().collect();
        let mut changed = Vec::new();
        let mut interrupted = Vec::new();
        for rec in videos.values_mut() {
            match rec.status {
                // Its clip may be back from the spool: settled by `resume`.
                VideoStatus::Pending => {
                    interrupted.push(rec.id);
                    continue;
                }
                VideoStatus::Ready => {
                    let size = |k: &Option<String>| k.as_ref().and_then(|k| media.get(k)).copied();
                    let mp4_ok = size(&rec.media_key).is_some_and(|n| Some(n) == rec.size);
                    let hls_ok = rec.hls_key.is_none()
                        || (size(&rec.hls_key).is_some()
                            && size(&rec.hls_media_key) == rec.hls_media_size);
                    if mp4_ok && hls_ok {
                        continue;
                    }
                    rec.fail("the stored MP4 is missing or has the wrong size");
                }
                VideoStatus::Error => continue,
            }
            changed.push(rec.clone());
        }
        let named: HashSet<&str> = videos
            .values()
            .filter(|r| r.status == VideoStatus::Ready)
            .flat_map(|r| [&r.media_key, &r.hls_media_key, &r.hls_key])
            .filter_map(|k| k.as_deref())
            .collect();
        let mut removed = 0;
        for key in media.keys().filter(|k| !named.contains(k.as_str())) {
            // Written by a run that stopped before its record said `ready`.
            match store.delete(key).await {
                Ok(()) => removed += 1,
                Err(e) => warn!(%key, error = %e, "could not remove unreferenced VOD media"),
            }
        }
        for rec in &changed {
            if let Err(e) = self.save(rec).await {
                warn!(id = rec.id, error = %e, "could not record the video's error");
            }
        }
        info!(
            store = %store.describe(),
            videos = videos.len(),
            marked_error = changed.len(),
            interrupted = interrupted.len(),
            removed_media = removed,
            swept_staging = swept,
            "VOD store opened"
        );
        *self.videos.lock() = videos;
        *self.interrupted.lock() = interrupted;
        Ok(())
    }

    /// The videos another node of a cluster keeps in `store` (its part of a bucket
    /// they share: `shared`), as its records say: read-only, nothing settled (that
    /// is its own start-up's business), links under `public_url`. Fails when the
    /// store cannot be listed or read.
    pub async fn stored(
        store: Arc<dyn VodStore>,
        public_url: impl Into<String>,
    ) -> Result<Arc<Vod>, StoreError> {
        let vod = Vod::new(store, public_url);
        let videos = vod.load_records().await?;
        *vod.videos.lock() = videos;
        Ok(vod)
    }

    /// Every record in the store (unreadable ones are logged and skipped), read
    /// [`RECORD_READS`] at once.
    async fn load_records(&self) -> Result<BTreeMap<u64, VideoRecord>, StoreError> {
        let mut videos = BTreeMap::new();
        let keys = self.store.list("videos").await?.into_iter();
        let keys = keys.filter_map(|(key, _)| Some((VideoRecord::id_of_key(&key)?, key)));
        let mut reads = futures_util::stream::iter(keys)
            .map(|(id, key)| async move { (id, self.store.get(&key).await, key) })
            .buffer_unordered(RECORD_READS);
        while let Some((id, read, key)) = reads.next().await {
            let bytes = match read {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            match VideoRecord::parse(&bytes) {
                Ok(rec) if rec.id == id => {
                    videos.insert(id, rec);
                }
                Ok(rec) => warn!(%key, id = rec.id, "VOD record names another id; ignored"),
                Err(e) => warn!(%key, error = %e, "unreadable VOD record; ignored"),
            }
        }
        Ok(videos)
    }

    /// Reads the videos of earlier runs into an index that is already in use (the
    /// store was down at start-up). Removes nothing: media being written now is not
    /// named by a record yet; leftovers go at the next start.
    async fn recover_late(&self) -> Result<usize, StoreError> {
        let found = self.load_records().await?;
        let mut added = 0;
        for (id, mut rec) in found {
            if self.videos.lock().contains_key(&id) {
                continue;
            }
            let fail = match (rec.status, &rec.media_key) {
                (VideoStatus::Pending, _) => Some(INTERRUPTED),
                (VideoStatus::Ready, Some(key)) if self.store.head(key).await? != rec.size => {
                    Some("the stored MP4 is missing or has the wrong size")
                }
                (VideoStatus::Ready, None) => Some("the record names no MP4"),
                _ => None,
            };
            if let Some(reason) = fail {
                rec.fail(reason);
                if let Err(e) = self.save(&rec).await {
                    warn!(id, error = %e, "could not record the video's error");
                }
            }
            self.videos.lock().entry(id).or_insert(rec);
            added += 1;
        }
        Ok(added)
    }

    /// The store, for serving media.
    pub fn store(&self) -> &Arc<dyn VodStore> {
        &self.store
    }

    /// The first id no known video has (1 when there is none): what the engine's
    /// `first_video_id` should be so ids continue after a restart.
    pub fn next_video_id(&self) -> u64 {
        let after_last = self
            .videos
            .lock()
            .keys()
            .next_back()
            .map_or(1, |id| id.saturating_add(1));
        after_last.max(self.id_floor.load(Ordering::Relaxed))
    }

    /// Makes [`Vod::next_video_id`] answer at least `id`.
    pub fn set_floor(&self, id: u64) {
        self.id_floor.fetch_max(id, Ordering::Relaxed);
    }

    /// A video's record.
    pub fn video(&self, id: u64) -> Option<VideoRecord> {
        self.videos.lock().get(&id).cloned()
    }

    /// The Gcore Video object of a video.
    pub fn video_json(&self, id: u64) -> Option<serde_json::Value> {
        self.video(id).map(|r| r.to_json(&self.public_url))
    }

    /// The Video objects of one page, by id: `skip` videos passed over, at most `take`.
    pub fn videos_json(&self, skip: usize, take: usize) -> Vec<serde_json::Value> {
        let videos = self.videos.lock();
        let page = videos.values().skip(skip).take(take);
        page.map(|r| r.to_json(&self.public_url)).collect()
    }

    /// Renames a video (`PATCH /streaming/videos/{id}`); `Ok(None)` when there is
    /// no such video. The record is stored before the index changes.
    pub async fn rename(&self, id: u64, name: String) -> Result<Option<VideoRecord>, StoreError> {
        let _records = self.records.lock().await;
        let Some(mut rec) = self.video(id) else {
            return Ok(None);
        };
        rec.name = name;
        self.save(&rec).await?;
        self.videos.lock().insert(id, rec.clone());
        Ok(Some(rec))
    }

    /// Deletes a video, its record and its media (`DELETE /streaming/videos/{id}`);
    /// `Ok(false)` when there is no such video. A write in progress is cancelled
    /// first and removes what it wrote. When the record cannot be removed the video
    /// stays (an interrupted write becomes `error`) and the store's error is returned.
    pub async fn delete(&self, id: u64) -> Result<bool, StoreError> {
        if self.video(id).is_none() {
            return Ok(false);
        }
        let writing = self.writing.lock().remove(&id);
        let cancelled = writing.is_some();
        if let Some(w) = writing {
            w.cancel.send_replace(true);
            // Ends when the writer's task does, however it ends.
            let _ = w.ended.await;
        }
        let records = self.records.lock().await;
        let Some(rec) = self.video(id) else {
            return Ok(false);
        };
        if let Err(e) = self.store.delete(&VideoRecord::key(id)).await {
            if cancelled && rec.status == VideoStatus::Pending {
                let mut failed = rec;
                failed.fail(format!(
                    "deleted while being written, but the delete failed: {e}"
                ));
                self.videos.lock().insert(id, failed);
            }
            return Err(e);
        }
        self.videos.lock().remove(&id);
        drop(records);
        let keys = [rec.media_key, rec.hls_media_key, rec.hls_key];
        for key in keys.iter().flatten() {
            self.forget_media(key).await;
        }
        info!(id, "video deleted");
        Ok(true)
    }

    /// Starts persisting `clip` if it has a `video_id`: the video is `pending` at
    /// once, its record stored before this returns (so a crash after the clip's
    /// creation is answered finds it at the next start), written when the clip
    /// completes.
    pub async fn start_writer(self: &Arc<Self>, clip: Clip, stream_name: &str) {
        let Some(id) = self.begin(&clip, stream_name) else {
            return;
        };
        self.save_current(id).await;
        self.spawn_task(id, clip);
    }

    /// The writer of video `id` (its record already in the index and stored): waits
    /// for the clip to complete, writes the media.
    fn spawn_task(self: &Arc<Self>, id: u64, clip: Clip) {
        let (mut cancel, ended) = self.register(id);
        let vod = Arc::clone(self);
        let mut stop = self.stop.subscribe();
        let mut writers = self.writers.lock();
        while writers.try_join_next().is_some() {}
        writers.spawn(async move {
            // Dropped when the task ends, aborted at shutdown too: a delete waits on it.
            let _ended = ended;
            let view = tokio::select! {
                biased;
                _ = cancelled(&mut cancel) => return,
                // A clip complete at shutdown is a write to finish, not to drop.
                v = clip.wait_complete() => v,
                // Shutting down while the clip records: it stays `pending` in the
                // store and resumes at the next start (`resume`).
                _ = stop.wait_for(|s| *s) => return,
            };
            vod.finish(id, &clip, &view, &mut cancel).await;
            vod.writing.lock().remove(&id);
        });
    }

    /// Persists `clip` inline: record `pending`, wait for completion, write the MP4,
    /// record `ready` (or `error`). Returns the final record; `None` if the clip
    /// has no `video_id` or the video was deleted meanwhile.
    pub async fn write_clip(&self, clip: &Clip, stream_name: &str) -> Option<VideoRecord> {
        let id = self.begin(clip, stream_name)?;
        let (mut cancel, _ended) = self.register(id);
        self.save_current(id).await;
        let view = tokio::select! {
            biased;
            _ = cancelled(&mut cancel) => return None,
            v = clip.wait_complete() => v,
        };
        let rec = self.finish(id, clip, &view, &mut cancel).await;
        self.writing.lock().remove(&id);
        rec
    }

    /// Registers the writer of video `id`: the receiver says when a delete cancels
    /// it; the writer drops the sender when it stops.
    fn register(&self, id: u64) -> (watch::Receiver<bool>, oneshot::Sender<()>) {
        let (cancel, cancelled) = watch::channel(false);
        let (ended_tx, ended) = oneshot::channel();
        self.writing.lock().insert(id, Writing { cancel, ended });
        (cancelled, ended_tx)
    }

    /// Stops writers: those still waiting for their clip at once, those writing
    /// after at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let mut writers = std::mem::take(&mut *self.writers.lock());
        let drained = tokio::time::timeout(grace, async {
            while writers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                left = writers.len(),
                "VOD writes cut short by shutdown; marked error at the next start"
            );
            writers.shutdown().await;
        }
    }

    fn begin(&self, clip: &Clip, stream_name: &str) -> Option<u64> {
        let id = clip.video_id()?;
        let rec = VideoRecord::pending(
            id,
            format!("{stream_name} {}", clip.start_utc().to_rfc3339_millis()),
            clip.stream_id().0,
            clip.id().to_string(),
            clip.created_at().to_rfc3339_millis(),
        );
        self.videos.lock().insert(id, rec);
        Some(id)
    }

    /// Stores the record of `id` as the index holds it (the `pending` one at first).
    async fn save_current(&self, id: u64) {
        let _records = self.records.lock().await;
        let Some(rec) = self.video(id) else { return };
        if let Err(e) = self.save(&rec).await {
            warn!(id, error = %e, "could not record the pending video");
        }
    }

    /// Writes the video of `clip` as of `view`; the final record, `None` when a
    /// delete cancelled it.
    async fn finish(
        &self,
        id: u64,
        clip: &Clip,
        view: &ClipView,
        cancel: &mut watch::Receiver<bool>,
    ) -> Option<VideoRecord> {
        match self.write_media(id, clip, view, cancel).await {
            Ok(rec) => {
                info!(id, key = ?rec.media_key, size = ?rec.size, "video ready");
                Some(rec)
            }
            Err(WriteError::Cancelled) => {
                info!(id, "video write cancelled by its delete");
                None
            }
            Err(reason) => {
                warn!(id, %reason, "video failed");
                let _records = self.records.lock().await;
                let mut rec = self.video(id)?;
                rec.fail(reason.to_string());
                self.videos.lock().insert(id, rec.clone());
                if let Err(e) = self.save(&rec).await {
                    warn!(id, error = %e, "could not record the video's error");
                }
                Some(rec)
            }
        }
    }

    /// Media first under fresh keys, then the `ready` record naming them. A cancel
    /// stops the upload where it is and removes what was written.
    async fn write_media(
        &self,
        id: u64,
        clip: &Clip,
        view: &ClipView,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<VideoRecord, WriteError> {
        let r = view.reference().ok_or(WriteError::NoMedia)?;
        let file = clip.mp4(view, r).map_err(WriteError::Build)?;
        // Media keys are never reused, so a retry or a later write cannot clobber
        // bytes a record names.
        let nonce = random_hex::<8>().map_err(|_| WriteError::Entropy)?;
        let stem = format!("media/{id}-{nonce}");
        let keys = [
            format!("{stem}.mp4"),
            format!("{stem}.m4s"),
            format!("{stem}.m3u8"),
        ];
        let hls = hls::single_file(r, &format!("{id}.m4s"));
        let written = tokio::select! {
            biased;
            _ = cancelled(cancel) => Err(WriteError::Cancelled),
            w = self.write_all(&keys, &file, &hls) => w,
        };
        // The record as the index holds it now (a rename since counts), unless a
        // delete came first.
        let (records, current) = match written {
            Ok(()) => {
                let records = self.records.lock().await;
                let cancelled = *cancel.borrow();
                (records, self.video(id).filter(|_| !cancelled))
            }
            Err(e) => {
                self.forget_all(&keys).await;
                return Err(e);
            }
        };
        let Some(mut ready) = current else {
            drop(records);
            self.forget_all(&keys).await;
            return Err(WriteError::Cancelled);
        };
        let [mp4_key, hls_media_key, hls_key] = keys;
        // What the MP4 plays, as the clip's `actual_duration` says.
        let duration_micros = clip
            .played(view)
            .map_or(0, |(start, end)| end.micros_since(start));
        ready.status = VideoStatus::Ready;
        ready.duration = (duration_micros.max(0) / 1000) as u64;
        ready.width = r.video().map(|v| v.width);
        ready.height = r.video().map(|v| v.height);
        ready.rendition = Some(r.name().to_owned());
        ready.media_key = Some(mp4_key);
        ready.size = Some(file.len());
        ready.etag = Some(file.etag().to_owned());
        ready.hls_media_key = Some(hls_media_key);
        ready.hls_media_size = Some(hls.len);
        ready.hls_key = Some(hls_key);
        if let Err(e) = self.save(&ready).await {
            drop(records);
            let keys = [&ready.media_key, &ready.hls_media_key, &ready.hls_key];
            for key in keys.into_iter().flatten() {
                self.forget_media(key).await;
            }
            return Err(WriteError::Record(e));
        }
        self.videos.lock().insert(id, ready.clone());
        Ok(ready)
    }

    /// The MP4, the HLS file and its playlist, each checked by its stored size.
    async fn write_all(
        &self,
        [mp4_key, hls_media_key, hls_key]: &[String; 3],
        file: &VirtualMp4,
        hls: &hls::SingleFile,
    ) -> Result<(), WriteError> {
        let len = file.len();
        let pieces = file.range(0..len).map_err(WriteError::Read)?;
        self.put_checked("MP4", mp4_key, len, Box::new(pieces))
            .await?;
        let pieces = Box::new(hls.pieces.iter().cloned());
        self.put_checked("HLS media", hls_media_key, hls.len, pieces)
            .await?;
        let playlist = Bytes::from(hls.playlist.clone());
        let n = playlist.len() as u64;
        let pieces = Box::new(std::iter::once(playlist));
        self.put_checked("HLS playlist", hls_key, n, pieces).await
    }

    async fn put_checked(
        &self,
        what: &'static str,
        key: &str,
        len: u64,
        pieces: store::Pieces<'_>,
    ) -> Result<(), WriteError> {
        let failed = |source| WriteError::Store { what, source };
        self.store
            .put_pieces(key, len, pieces)
            .await
            .map_err(failed)?;
        match self.store.head(key).await.map_err(failed)? {
            Some(n) if n == len => Ok(()),
            stored => Err(WriteError::Size {
                what,
                key: key.to_owned(),
                stored,
                written: len,
            }),
        }
    }

    async fn forget_all(&self, keys: &[String]) {
        for key in keys {
            self.forget_media(key).await;
        }
    }

    async fn forget_media(&self, key: &str) {
        if let Err(e) = self.store.delete(key).await {
            // Removed at the next start: no `ready` record names it.
            warn!(%key, error = %e, "could not remove unfinished VOD media");
        }
    }

    async fn save(&self, rec: &VideoRecord) -> Result<(), StoreError> {
        let body = Bytes::from(rec.to_stored_json(&self.public_url).to_string());
        self.store.put(&VideoRecord::key(rec.id), body).await
    }
}

/// A video's writer: how a delete cancels it and learns it stopped.
struct Writing {
    cancel: watch::Sender<bool>,
    /// Closed when the writer's task ends (its sender dropped).
    ended: oneshot::Receiver<()>,
}

/// Resolves once `cancel` turns true; never when its sender is gone without that.
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Why a video could not be written; its text becomes the video's `error`.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("cancelled: the video was deleted")]
    Cancelled,
    #[error("the clip holds no media")]
    NoMedia,
    #[error("building the MP4: {0}")]
    Build(BuildError),
    #[error("reading the MP4: {0}")]
    Read(RangeError),
    #[error("no OS randomness for a media key")]
    Entropy,
    #[error("writing the {what}: {source}")]
    Store {
        what: &'static str,
        source: StoreError,
    },
    #[error("writing the {what}: {key}: {stored:?} bytes stored, {written} written")]
    Size {
        what: &'static str,
        key: String,
        stored: Option<u64>,
        written: u64,
    },
    #[error("writing the video record: {0}")]
    Record(StoreError),
}

/// The store `config` asks for (its keys under `within/`, if given), or, when it
/// cannot be opened, an [`UnavailableStore`] carrying the reason (logged): the
/// server runs on and each video goes to `error` with that reason.
pub fn open_store(config: &StoreConfig, within: Option<&str>) -> Arc<dyn VodStore> {
    match ObjectVodStore::open(config) {
        Ok(s) => match within {
            Some(prefix) => Arc::new(s.within(prefix)),
            None => Arc::new(s),
        },
        Err(e) => {
            tracing::error!(error = %e, "VOD store unavailable");
            Arc::new(UnavailableStore(e.to_string()))
        }
    }
}

/// Opens the VOD in the store `config` names (its keys under `within/`, if given),
/// links under `public_url`, and recovers
/// its videos. A store
/// that cannot be opened or listed does not stop the server: it is logged, and new
/// videos get ids from the clock (milliseconds since the epoch) so they cannot
/// collide with videos of earlier runs that could not be read.
///
/// Start-up waits at most [`RECOVERY_TIMEOUT`] for the store; after that the
/// videos of earlier runs are read in the background every [`RECOVERY_RETRY`]
/// until the store answers.
pub async fn open(config: &StoreConfig, within: Option<&str>, public_url: &str) -> Arc<Vod> {
    let vod = Vod::new(open_store(config, within), public_url);
    let why = match tokio::time::timeout(RECOVERY_TIMEOUT, vod.recover()).await {
        Ok(Ok(())) => return vod,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", RECOVERY_TIMEOUT.as_secs()),
    };
    tracing::error!(error = %why, "VOD store unreadable at start-up; earlier videos are read once it answers");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    vod.set_floor(now_ms);
    let weak = Arc::downgrade(&vod);
    let mut stop = vod.stop.subscribe();
    vod.writers.lock().spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RECOVERY_RETRY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let Some(vod) = weak.upgrade() else { return };
            match vod.recover_late().await {
                Ok(n) => {
                    info!(
                        videos = n,
                        "VOD store answers again: earlier videos restored"
                    );
                    return;
                }
                Err(e) => warn!(error = %e, "VOD store still unreadable"),
            }
        }
    });
    vod
}

/// Records read from the store at once when an index is loaded.
const RECORD_READS: usize = 16;

/// How long start-up waits for the VOD store to list its videos.
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(20);
/// Interval of later attempts when it did not.
pub const RECOVERY_RETRY: Duration = Duration::from_secs(30);
