//! The application: configuration, the engine, counters, and request dispatch from
//! a [`Route`] to its handler. Background work (expiry ticks, the demo stream) is
//! started here and stopped by [`App::shutdown`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dvrclip_engine::{ClipId, Engine, EngineConfig};
use dvrclip_fmp4::progressive::VirtualMp4;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::body::BodyMemory;
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::{Route, route};
use crate::vod::Vod;
use crate::{api, ingest, public};

/// Every response body: a full buffer or streamed MP4 pieces.
pub type HttpBody = BoxBody<Bytes, Infallible>;
/// Every response.
pub type HttpResponse = Response<HttpBody>;

/// A full-body response with a content type.
pub fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The share of the memory budget kept for request bodies still arriving
/// ([`crate::body`]): a sixteenth.
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

/// A clip rendition's MP4, built by the first request that needs it.
pub(crate) type Mp4Cell = Arc<tokio::sync::OnceCell<Arc<VirtualMp4>>>;

/// The running server's state, shared by every connection.
pub struct App {
    /// Resolved configuration.
    pub config: Config,
    /// The engine holding streams and clips.
    pub engine: Arc<Engine>,
    /// Request and ingest counters.
    pub metrics: Metrics,
    /// Built MP4 headers of complete clips, by clip and rendition, each built once;
    /// pruned when the clip expires.
    pub(crate) mp4_cache: Mutex<HashMap<(ClipId, String), Mp4Cell>>,
    /// Videos persisted from `vod_required` clips.
    pub vod: Arc<Vod>,
    /// Request bodies still arriving: their share of the memory budget.
    pub bodies: BodyMemory,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl App {
    /// Builds the state and starts background tasks (the expiry ticker, the demo).
    pub async fn start(config: Config) -> Result<Arc<App>, Box<dyn std::error::Error>> {
        let vod = crate::vod::open(&config).await;
        let engine = Arc::new(Engine::new(EngineConfig {
            memory_budget_bytes: engine_memory_bytes(&config, crate::heap::resident_bytes()),
            first_video_id: vod.next_video_id(),
            ..EngineConfig::default()
        }));
        Ok(App::with_engine_and_vod(config, engine, vod))
    }

    /// Like [`App::start`] around an engine the caller built (tests pass one on a
    /// `ManualClock`, so expiry is driven without sleeping). The VOD store of
    /// `config` is opened but its existing videos are not read: see
    /// [`App::with_engine_and_vod`].
    pub fn with_engine(config: Config, engine: Arc<Engine>) -> Arc<App> {
        let vod = Vod::new(
            crate::vod::open_store(&config.vod_store),
            config.public_url.clone(),
        );
        App::with_engine_and_vod(config, engine, vod)
    }

    /// Like [`App::with_engine`] with a VOD the caller opened ([`Vod::open`]).
    pub fn with_engine_and_vod(config: Config, engine: Arc<Engine>, vod: Arc<Vod>) -> Arc<App> {
        let app = Arc::new(App {
            bodies: BodyMemory::new(body_memory_bytes(&config)),
            config,
            engine,
            vod,
            metrics: Metrics::default(),
            mp4_cache: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let ticker = tokio::spawn(tick_loop(Arc::downgrade(&app)));
        app.tasks.lock().push(ticker);
        let trimmer = tokio::spawn(trim_loop());
        app.tasks.lock().push(trimmer);
        if app.config.demo {
            let demo = tokio::spawn(crate::demo::run(app.clone()));
            app.tasks.lock().push(demo);
        }
        app
    }

    /// Stops background tasks.
    pub async fn shutdown(&self) {
        self.vod.shutdown(self.config.shutdown_grace).await;
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    /// Answers one request. Never fails: errors become their HTTP response here.
    pub async fn dispatch(self: &Arc<Self>, req: Request<Incoming>) -> HttpResponse {
        let (parts, body) = req.into_parts();
        let route = route(&parts.method, parts.uri.path());
        let public = matches!(
            route,
            Route::ClipLink { .. }
                | Route::ClipMedia { .. }
                | Route::LivePlaylist { .. }
                | Route::LiveMedia { .. }
                | Route::VodMp4(_)
                | Route::VodHls(_)
                | Route::VodHlsMedia(_)
                | Route::Preflight
        );
        let result = match route {
            Route::Health => Ok(full(StatusCode::OK, "text/plain", "ok\n")),
            Route::Metrics => Ok(full(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.render_metrics(),
            )),
            Route::Ingest {
                key,
                rendition,
                file,
                delete,
            } => {
                let r = ingest::handle(
                    self,
                    &key,
                    rendition.as_deref(),
                    &file,
                    delete,
                    &parts,
                    body,
                )
                .await;
                if r.is_err() {
                    self.metrics.record_ingest_error();
                }
                r
            }
            Route::ClipLink { .. } | Route::ClipMedia { .. } => {
                public::handle(self, route, &parts).await
            }
            Route::LivePlaylist { .. } | Route::LiveMedia { .. } => {
                crate::live::handle(self, route, &parts)
            }
            Route::VodMp4(id) => crate::vod::http::mp4(&self.vod, id, &parts).await,
            Route::VodHls(id) => crate::vod::http::playlist(&self.vod, id, &parts).await,
            Route::VodHlsMedia(id) => crate::vod::http::hls_media(&self.vod, id, &parts).await,
            Route::Preflight => Ok(public::preflight()),
            Route::MethodNotAllowed(allow) => Err(ApiError::MethodNotAllowed(allow)),
            Route::NotFound => Err(ApiError::NotFound("no such path".into())),
            api_route => api::handle(self, api_route, &parts, body).await,
        };
        let mut resp = result.unwrap_or_else(|e| {
            if e.status().is_server_error() {
                tracing::error!(error = %e, "request failed");
            }
            e.into_response().map(BodyExt::boxed)
        });
        if public {
            public::add_cors(resp.headers_mut());
        }
        resp
    }

    /// Uploads one file as if an encoder had PUT it (used by the demo stream).
    pub async fn ingest_upload(
        &self,
        key: &str,
        rendition: Option<&str>,
        file: &str,
        body: Bytes,
    ) -> Result<(), ApiError> {
        ingest::store(self, key, rendition, file, body).map(|_| ())
    }

    fn render_metrics(&self) -> String {
        let mem = self.engine.memory();
        let streams = self.engine.streams();
        let (mut renditions, mut chunks) = (0u64, 0u64);
        for s in &streams {
            if let Ok(rs) = self.engine.renditions(s.id) {
                renditions += rs.len() as u64;
                chunks += rs.iter().map(|r| r.chunks as u64).sum::<u64>();
            }
        }
        let clips: u64 = streams
            .iter()
            .filter_map(|s| self.engine.clips(s.id).ok())
            .map(|c| c.len() as u64)
            .sum();
        self.metrics.render(&[
            ("dvrclip_streams", "Streams.", streams.len() as u64),
            (
                "dvrclip_renditions",
                "Renditions with an init segment.",
                renditions,
            ),
            ("dvrclip_dvr_chunks", "Chunks held in DVR rings.", chunks),
            (
                "dvrclip_memory_bytes",
                "Bytes the budget bounds: chunks (payload and parsed tables, DVR and clips), open connections and request bodies still arriving.",
                mem.total_bytes + mem.reserved_bytes + self.bodies.held_bytes(),
            ),
            (
                "dvrclip_clip_memory_bytes",
                "Of those, bytes of chunks held by clips.",
                mem.clip_bytes,
            ),
            (
                "dvrclip_connection_memory_bytes",
                "Of those, bytes counted for open connections.",
                mem.reserved_bytes,
            ),
            (
                "dvrclip_body_memory_bytes",
                "Of those, bytes of request bodies still arriving.",
                self.bodies.held_bytes(),
            ),
            (
                "dvrclip_memory_budget_bytes",
                "The memory budget (the process's start-up footprint and the bodies' sixteenth are set aside from it).",
                self.config.memory_budget_bytes,
            ),
            ("dvrclip_clips", "Clips not yet expired.", clips),
        ])
    }
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
                app.engine.tick();
                app.mp4_cache
                    .lock()
                    .retain(|(id, _), _| app.engine.clip(*id).is_ok());
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
