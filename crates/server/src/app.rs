//! The application's state, shared by every connection: configuration, the engine,
//! the VOD, who may call the API, counters, the memory of bodies in flight, the
//! cache of built clip MP4s ([`crate::mp4_cache`]) and of rendered playlists
//! ([`crate::playlist_cache`]). Background work (expiry ticks,
//! heap trims, the demo stream, the cluster lease and its video id blocks, complete
//! clips' master MP4s built
//! ahead of their requests: [`crate::mp4_prebuild`]) is started here and stopped by
//! [`App::shutdown`].
//!
//! What a request means is not here: the service routes it to the rooms (`api`,
//! `public`, `ingest`, `ops`), which read this state.

use std::sync::Arc;
use std::time::Duration;

use dvrclip_engine::{Clip, ClipId, Engine, EngineConfig};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::archive::ClipArchive;
use crate::auth::{ApiKey, Authorize};
use crate::cluster::Cluster;
use crate::cluster::ship::{ShipPersist, Shipper};
use crate::config::Config;
use crate::http::body::BodyMemory;
use crate::metrics::Metrics;
use crate::mp4_cache::Mp4Cache;
use crate::mp4_prebuild::Mp4Prebuild;
use crate::playlist_cache::{Key, Playlists};
use crate::pullers::Pullers;
use crate::vod::shared::SharedVideos;
use crate::vod::{ObjectVodStore, Vod};
use dvrclip_spool::{Spool, SpoolOptions};

/// The share of the memory budget kept for request bodies still arriving
/// ([`crate::http::body`]): a sixteenth.
pub fn body_memory_bytes(config: &Config) -> u64 {
    config.memory_budget_bytes / 16
}

/// What the engine may hold (chunks, and open connections through its reservations):
/// the budget less the share kept for bodies and the process's own footprint before
/// any stream (`resident_bytes` at start: code, runtime, allocator; 7 MiB measured),
/// so that the process as a whole stays within the budget.
pub fn engine_memory_bytes(config: &Config, resident_bytes: u64) -> u64 {
    let engine = config
        .memory_budget_bytes
        .saturating_sub(body_memory_bytes(config))
        .saturating_sub(resident_bytes);
    if engine < config.memory_budget_bytes / 2 {
        tracing::warn!(
            budget = config.memory_budget_bytes,
            resident = resident_bytes,
            "the process's own footprint takes much of the memory budget"
        );
    }
    engine
}

/// The running server's state, shared by every connection.
pub struct App {
    /// Resolved configuration.
    pub config: Config,
    /// The engine holding streams and clips.
    pub engine: Arc<Engine>,
    /// Request and ingest counters.
    pub metrics: Metrics,
    /// Who may call the JSON API.
    pub auth: Arc<dyn Authorize>,
    /// Built MP4s of complete clips, by clip and rendition, each built once and
    /// counted in the memory budget; pruned when the clip expires or is deleted.
    pub(crate) mp4_cache: Arc<Mp4Cache>,
    /// Complete clips' master MP4s built into `mp4_cache` before any request.
    pub(crate) mp4_prebuild: Mp4Prebuild,
    /// Rendered live and clip playlists, each kept until what it lists changes;
    /// pruned when its stream or clip is gone.
    pub(crate) playlists: Playlists,
    /// Videos persisted from `vod_required` clips.
    pub vod: Arc<Vod>,
    /// Request bodies still arriving: their share of the memory budget.
    pub bodies: BodyMemory,
    /// Streams pulled from an origin (`pull: true`).
    pub pullers: Pullers,
    /// The push doors' publisher slots (one publisher per stream), also held for
    /// publishes other nodes of a cluster forward here.
    pub publishers: Arc<dvrclip_ingest::publishers::Publishers>,
    /// The RTMP door, once the binary starts it (its counters go to `/metrics`).
    pub rtmp: std::sync::OnceLock<Arc<dvrclip_ingest::rtmp::RtmpDoor>>,
    /// The spool the engine persists into, if any ([`Config::spool_dir`]).
    pub spool: Option<Arc<Spool>>,
    /// The SRT door, once the binary starts it (its counters go to `/metrics`).
    pub srt: std::sync::OnceLock<Arc<dvrclip_ingest::srt::SrtDoor>>,
    /// Where complete clips are archived ([`Config::clip_archive`]), if anywhere.
    pub archive: Option<Arc<ClipArchive>>,
    /// The cluster this node is part of (`--cluster-etcd`); `None`: one process.
    pub cluster: Option<Arc<Cluster>>,
    /// The other nodes' videos in the bucket the nodes of the cluster share
    /// (`--s3-bucket`), served while their node is down; `None` without one.
    pub shared_videos: Option<Arc<SharedVideos>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("public_url", &self.config.public_url)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The binary's state: opens the VOD store of `config` (recovering its
    /// videos), builds the engine under the memory budget, starts background tasks.
    pub async fn start(config: Config) -> Result<Arc<App>, Box<dyn std::error::Error>> {
        let vod = crate::vod::open(
            &config.vod_store,
            config.vod_within.as_deref(),
            &config.public_url,
        )
        .await;
        let engine = Engine::new(EngineConfig {
            memory_budget_bytes: engine_memory_bytes(&config, crate::heap::resident_bytes()),
            first_video_id: vod.next_video_id(),
            ..EngineConfig::default()
        });
        let (engine, spool) = match &config.spool_dir {
            Some(dir) => {
                let options = SpoolOptions {
                    sync: config.spool_sync,
                    max_maps: config.spool_max_maps,
                    ..SpoolOptions::default()
                };
                let (engine, spool) = open_spool(engine, dir, options).await?;
                (engine, Some(spool))
            }
            None => (engine, None),
        };
        // In a cluster with a clip archive, owned streams' DVR is shipped to its store
        // (`cluster::ship`): the engine reports to the spool, then to the shipper.
        let archive = match (&config.cluster, &config.clip_archive) {
            (Some(_), Some(store)) => Some(ClipArchive::open(store)),
            _ => None,
        };
        let ship = archive.as_ref().map(|a| Shipper::new(Arc::clone(a)));
        let engine = match &ship {
            Some(ship) => {
                let inner: Option<Arc<dyn dvrclip_engine::persist::Persist>> = match &spool {
                    Some(s) => Some(s.clone()),
                    None => None,
                };
                engine.with_persist(Arc::new(ShipPersist {
                    inner,
                    ship: Arc::clone(ship),
                    runtime: tokio::runtime::Handle::current(),
                }))
            }
            None => engine,
        };
        let cluster = match &config.cluster {
            Some(c) => {
                let url = c.advertise_url.as_deref().unwrap_or(&config.public_url);
                let cluster = Arc::new(Cluster::new(c, url, vod.next_video_id())?);
                if let Some(ship) = &ship {
                    cluster.set_ship(Arc::clone(ship));
                }
                // Joined before the first request when etcd answers; else the lease
                // loop keeps trying and creates are refused meanwhile.
                if let Err(e) = cluster.join().await {
                    tracing::warn!(error = %e, "joining the cluster at start");
                }
                Some(cluster)
            }
            None => None,
        };
        // In a cluster, video ids come from blocks drawn from etcd.
        let engine = match &cluster {
            Some(c) => engine.with_video_ids(c.video_ids.clone()),
            None => engine,
        };
        let engine = Arc::new(engine);
        // Videos left `pending` by the last run: written again if their clip is back.
        vod.resume(&engine).await;
        if let Some(ship) = &ship {
            let flusher = ship.spawn(&engine);
            // Ends with the engine; not joined.
            drop(flusher);
        }
        let mut builder = App::builder(config, engine).vod(vod);
        builder.spool = spool;
        builder.cluster = cluster;
        builder.archive = archive;
        Ok(builder.build())
    }

    /// Starts building the state around an engine the caller owns (an embedding
    /// media server's, or a test's on a `ManualClock`).
    pub fn builder(config: Config, engine: Arc<Engine>) -> AppBuilder {
        AppBuilder {
            config,
            engine,
            vod: None,
            auth: None,
            spool: None,
            archive: None,
            cluster: None,
        }
    }

    /// [`App::builder`] with the defaults: the VOD store of `config` opened without
    /// reading its earlier videos, the API behind `config.api_key`.
    pub fn with_engine(config: Config, engine: Arc<Engine>) -> Arc<App> {
        App::builder(config, engine).build()
    }

    /// [`App::with_engine`] with a VOD the caller opened ([`Vod::open`]).
    pub fn with_engine_and_vod(config: Config, engine: Arc<Engine>, vod: Arc<Vod>) -> Arc<App> {
        App::builder(config, engine).vod(vod).build()
    }

    /// Leaves the cluster, if in one: the lease is revoked, so the streams this
    /// node owned are claimable by another at once (the drain's first step).
    pub async fn leave_cluster(&self) {
        if let Some(c) = &self.cluster {
            // What is queued for the store is written before the lease goes, so the
            // next owner restores the DVR up to this node's last chunk.
            if let Some(ship) = c.ship() {
                ship.drain(self.config.shutdown_grace.min(DRAIN_SHIPPING))
                    .await;
            }
            c.leave().await;
        }
    }

    /// Stops background tasks; VOD and clip archive writes in progress get the grace
    /// period.
    pub async fn shutdown(&self) {
        self.leave_cluster().await;
        self.pullers.stop_all();
        // VOD and archive writes share one grace period.
        let grace = self.config.shutdown_grace;
        let archive = async {
            if let Some(archive) = &self.archive {
                archive.shutdown(grace).await;
            }
        };
        tokio::join!(self.vod.shutdown(grace), archive);
        if let Some(spool) = &self.spool
            && let Err(e) = spool.seal()
        {
            tracing::warn!(error = %e, "spool: final sync failed");
        }
        self.mp4_prebuild.shutdown();
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    /// Builds `clip`'s master MP4 in the background once it is complete, so that its
    /// first request finds it built ([`crate::mp4_prebuild`]). Returns at once.
    pub(crate) fn prebuild_mp4(&self, clip: Clip) {
        self.mp4_prebuild.spawn(clip);
    }

    /// Forgets the built MP4s of `clips` (deleted, alone or with their stream).
    pub(crate) fn forget_mp4s(&self, clips: &[ClipId]) {
        self.mp4_cache.forget(clips);
    }

    /// Runs the engine's deadlines that are due (expiry, recording waits) and forgets
    /// the built MP4s of clips that are gone, releasing their memory. The background
    /// loop calls it when a deadline falls due; a test on a `ManualClock` calls it
    /// after moving the clock.
    pub fn tick(&self) {
        self.engine.tick();
        self.mp4_cache.retain(|id| self.engine.clip(id).is_ok());
        self.playlists.retain(|key| match key {
            Key::Live(stream, None) => self.engine.stream(*stream).is_ok(),
            Key::Live(stream, Some(name)) => self.engine.live_generation(*stream, name).is_ok(),
            Key::Clip(clip, _) => self.engine.clip(*clip).is_ok(),
        });
    }

    /// Bytes the built clip MP4s (headers and piece tables) count in the budget.
    pub fn mp4_memory_bytes(&self) -> u64 {
        self.mp4_cache.memory_bytes()
    }
}

/// A draining node waits this long at most for its DVR batches to be written
/// before it gives its streams up.
const DRAIN_SHIPPING: Duration = Duration::from_secs(5);

/// Builds an [`App`]: [`App::builder`].
pub struct AppBuilder {
    config: Config,
    engine: Arc<Engine>,
    vod: Option<Arc<Vod>>,
    auth: Option<Arc<dyn Authorize>>,
    spool: Option<Arc<Spool>>,
    archive: Option<Arc<ClipArchive>>,
    cluster: Option<Arc<Cluster>>,
}

impl AppBuilder {
    /// The VOD to persist `vod_required` clips into (default: the store of the
    /// configuration, opened without reading earlier videos).
    pub fn vod(mut self, vod: Arc<Vod>) -> Self {
        self.vod = Some(vod);
        self
    }

    /// Who may call the JSON API (default: `Authorization: APIKey <config.api_key>`).
    pub fn auth(mut self, auth: Arc<dyn Authorize>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The clip archive (default: the one of `config.clip_archive`, if any).
    pub fn archive(mut self, archive: Arc<ClipArchive>) -> Self {
        self.archive = Some(archive);
        self
    }

    /// The state, with its background tasks running on the current Tokio runtime.
    pub fn build(self) -> Arc<App> {
        let config = self.config;
        let vod = self.vod.unwrap_or_else(|| {
            Vod::new(
                crate::vod::open_store(&config.vod_store, config.vod_within.as_deref()),
                config.public_url.clone(),
            )
        });
        let archive = self
            .archive
            .or_else(|| config.clip_archive.as_ref().map(ClipArchive::open));
        let auth = self
            .auth
            .unwrap_or_else(|| Arc::new(ApiKey::new(config.api_key.clone())));
        // A cluster node keeps its videos in its part of the bucket (`vod_within`).
        let shared_videos = match (&self.cluster, &config.vod_within) {
            (Some(_), Some(_)) => ObjectVodStore::open(&config.vod_store)
                .ok()
                .map(|root| Arc::new(SharedVideos::new(root, config.public_url.clone()))),
            _ => None,
        };
        let mp4_cache = Arc::new(Mp4Cache::default());
        let app = Arc::new(App {
            mp4_prebuild: Mp4Prebuild::new(Arc::clone(&self.engine), Arc::clone(&mp4_cache)),
            mp4_cache,
            bodies: BodyMemory::new(body_memory_bytes(&config)),
            pullers: Pullers::new(&config),
            publishers: Arc::default(),
            engine: self.engine,
            vod,
            auth,
            metrics: Metrics::default(),
            playlists: Playlists::default(),
            rtmp: std::sync::OnceLock::new(),
            spool: self.spool,
            srt: std::sync::OnceLock::new(),
            archive,
            cluster: self.cluster,
            shared_videos,
            tasks: Mutex::new(Vec::new()),
            config,
        });
        let mut tasks = app.tasks.lock();
        tasks.push(tokio::spawn(tick_loop(Arc::downgrade(&app))));
        tasks.push(tokio::spawn(trim_loop()));
        if app.config.demo {
            tasks.push(tokio::spawn(crate::demo::run(app.engine.clone())));
        }
        if let Some(c) = &app.cluster {
            tasks.push(tokio::spawn(c.clone().run()));
            tasks.push(tokio::spawn(c.video_ids.clone().run(c.clone())));
        }
        drop(tasks);
        // Streams the engine already holds (an embedder's) that are pulled; clips
        // it holds (restored from the spool) are archived when complete, unless
        // they are already.
        for info in app.engine.streams() {
            app.pullers.sync(&app.engine, &info);
            if let (Some(archive), Ok(clips)) = (&app.archive, app.engine.clips(info.id)) {
                for clip in clips {
                    archive.spawn(app.engine.clone(), clip);
                }
            }
        }
        if let Some(archive) = &app.archive {
            archive.spawn_sweeper(app.engine.clone());
        }
        app
    }
}

/// Opens the spool at `dir` (off the runtime's threads: it maps and verifies every
/// payload), restores what it holds into `engine`, and makes it the engine's store.
async fn open_spool(
    engine: Engine,
    dir: &std::path::Path,
    options: SpoolOptions,
) -> Result<(Engine, Arc<Spool>), Box<dyn std::error::Error>> {
    let now = engine.now();
    let dir = dir.to_owned();
    let opened =
        tokio::task::spawn_blocking(move || Spool::open_with(&dir, options, now)).await??;
    opened.spool.seal_on_panic();
    let engine = engine.with_persist(opened.spool.clone());
    let restored = engine.restore(opened.restore)?;
    opened.spool.note_restore(&restored);
    let r = opened.report;
    tracing::info!(
        dir = %opened.spool.dir().display(),
        streams = restored.streams,
        ring_chunks = restored.ring_chunks,
        clips = restored.clips,
        clips_lost = restored.clips_lost,
        clips_expired = restored.clips_expired,
        chunks_dropped = restored.chunks_dropped + r.chunks_failed,
        torn_bytes = r.torn_bytes,
        orphans_removed = r.orphans_removed,
        "spool restored"
    );
    Ok((engine, opened.spool))
}

/// Returns free heap pages to the OS every [`crate::heap::TRIM_EVERY`], off the
/// request threads. Stopped with the other tasks.
async fn trim_loop() {
    let mut every = tokio::time::interval(crate::heap::TRIM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let _ = tokio::task::spawn_blocking(crate::heap::release_free_memory).await;
    }
}

/// Runs the engine's deadlines (expiry, recording waits) when they fall due, and
/// drops cached MP4 headers of clips that are gone. Ends when the app is dropped.
async fn tick_loop(app: std::sync::Weak<App>) {
    loop {
        let wait = match app.upgrade() {
            Some(app) => {
                app.tick();
                let now = app.engine.now();
                app.engine
                    .next_deadline()
                    .map_or(Duration::from_secs(1), |d| {
                        let micros = d.micros_since(now).clamp(1_000, 1_000_000);
                        Duration::from_micros(micros as u64)
                    })
            }
            None => return,
        };
        tokio::time::sleep(wait).await;
    }
}
