//! The pulls the server runs: one [`PullHandle`] per stream with `pull: true` (and
//! `active`), started at create, restarted when a PATCH changes `uri`, stopped when
//! one turns `pull` or `active` off, deletes the stream, or the server shuts down.
//! What a pull does is `dvrclip_ingest::pull`'s; this room only owns the handles.
//!
//! Memory: every pull shares one [`Puller`], whose bytes in flight are bounded by
//! `PullConfig::max_in_flight_bytes` and counted in the engine's budget while held.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use dvrclip_engine::{Engine, StreamId, StreamInfo};
use dvrclip_ingest::pull::{PullConfig, PullHandle, Puller};
use parking_lot::Mutex;

use crate::config::Config;

/// The running pulls, by stream.
#[derive(Debug)]
pub struct Pullers {
    puller: Option<Puller>,
    running: Mutex<BTreeMap<StreamId, PullHandle>>,
}

impl Pullers {
    /// No pull running yet; limits from `config` (segments as large as an upload's).
    pub fn new(config: &Config) -> Self {
        let pull = PullConfig {
            max_segment_bytes: config.limits.segment_bytes,
            max_playlist_bytes: config.limits.small_file_bytes,
            max_init_bytes: config.limits.small_file_bytes,
            max_in_flight_bytes: (config.memory_budget_bytes / 16).max(config.limits.segment_bytes),
            ..PullConfig::default()
        };
        let puller = Puller::new(pull)
            .inspect_err(
                |e| tracing::error!(error = %e, "pull: no HTTP client; pulls will not run"),
            )
            .ok();
        Pullers {
            puller,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    /// Brings the stream's pull in line with its settings: started, restarted for a
    /// new `uri`, or stopped. Call on the Tokio runtime.
    pub fn sync(&self, engine: &Arc<Engine>, info: &StreamInfo) {
        let wanted = info.uri.as_deref().filter(|_| info.pull && info.active);
        let mut running = self.running.lock();
        if running.get(&info.id).map(PullHandle::uri) == wanted {
            return;
        }
        if let Some(old) = running.remove(&info.id) {
            tracing::info!(stream = %info.id, uri = old.uri(), "pull: stopping");
        }
        let (Some(uri), Some(puller)) = (wanted, &self.puller) else {
            return;
        };
        match puller.start(Arc::clone(engine), info.id, uri) {
            Ok(handle) => {
                running.insert(info.id, handle);
            }
            // The API checked the URIs; a stored one the client refuses is logged.
            Err(e) => tracing::warn!(stream = %info.id, error = %e, "pull: not started"),
        }
    }

    /// Stops the stream's pull, if any.
    pub fn stop(&self, id: StreamId) {
        drop(self.running.lock().remove(&id));
    }

    /// The streams pulled now.
    pub fn running(&self) -> Vec<StreamId> {
        self.running.lock().keys().copied().collect()
    }

    /// Stops every pull (shutdown).
    pub fn stop_all(&self) {
        drop(std::mem::take(&mut *self.running.lock()));
    }

    /// The URI the stream's pull follows now.
    pub fn in_use(&self, id: StreamId) -> Option<String> {
        let running = self.running.lock();
        running.get(&id)?.status().in_use().map(str::to_owned)
    }

    /// Prometheus lines for the running pulls, by stream (the URI in use by index:
    /// a URI may carry a secret).
    pub fn render_metrics(&self) -> String {
        let running = self.running.lock();
        let mut out = String::new();
        let series: [(&str, &str, &str); 6] = [
            (
                "dvrclip_pull_uri_index",
                "gauge",
                "Which of the stream's pull URIs is in use (0-based).",
            ),
            (
                "dvrclip_pull_switches_total",
                "counter",
                "Switches from one pull URI to the next.",
            ),
            (
                "dvrclip_pull_segments_total",
                "counter",
                "Segments pulled and stored.",
            ),
            (
                "dvrclip_pull_bytes_total",
                "counter",
                "Media bytes pulled (inits and segments).",
            ),
            (
                "dvrclip_pull_errors_total",
                "counter",
                "Pull fetches that failed after retries, and pulled files refused.",
            ),
            (
                "dvrclip_pull_resets_total",
                "counter",
                "Media sequence resets and segments lost by a pull.",
            ),
        ];
        for (i, (name, kind, help)) in series.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (id, h) in running.iter() {
                let s = h.status();
                let v = match i {
                    0 => match s.in_use_index() {
                        Some(i) => i as u64,
                        None => continue,
                    },
                    1 => s.switches.load(Relaxed),
                    2 => s.segments.load(Relaxed),
                    3 => s.bytes.load(Relaxed),
                    4 => s.errors.load(Relaxed),
                    _ => s.resets.load(Relaxed),
                };
                let _ = writeln!(out, "{name}{{stream=\"{id}\"}} {v}");
            }
        }
        out
    }
}
