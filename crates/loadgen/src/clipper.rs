//! Clips cut through the API and downloaded, as a user of the service does, at a
//! steady rate while the streams are pushed.
//!
//! Each tick picks the next stream (round robin) that has been live for at least
//! [`MIN_AGE`], cuts `[now - 16 s, now - 6 s)` (complete at once: its last segment
//! arrived seconds ago) with the shortest expiration the API allows, so clips do not
//! pile up in memory over a long run, then hands the clip's MP4 link to a downloader
//! that GETs it whole. Clip creation is timed on its own connection, one request at a
//! time, on a thread of its own (`main::clipper_thread`; downloads run elsewhere), so
//! its latency is the server's answer and not a queue in this client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::http::Client;
use crate::pusher::unix_secs_now;
use crate::shared::{Shared, url_path};
use crate::stats::Kind;

/// A stream is clipped only after this long live.
const MIN_AGE: Duration = Duration::from_secs(20);
/// Downloads waiting; past this, a clip's MP4 is not fetched (counted as nothing).
const DOWNLOAD_QUEUE: usize = 16;

/// Cuts `per_sec` clips a second until the run stops; the MP4s are downloaded on
/// `downloads`, another runtime, so a download never delays reading a clip's answer.
pub(crate) async fn run(shared: Arc<Shared>, per_sec: f64, downloads: tokio::runtime::Handle) {
    if per_sec <= 0.0 {
        return;
    }
    let (tx, rx) = mpsc::channel::<String>(DOWNLOAD_QUEUE);
    downloads.spawn(download(Arc::clone(&shared), rx));
    let mut stop = shared.stop.subscribe();
    let mut client = Client::new(shared.server);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0usize;
    let headers = format!("{}Content-Type: application/json\r\n", shared.auth);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(id) = pick(&shared, &mut next) else {
            continue;
        };
        let now = unix_secs_now();
        let body = format!(
            r#"{{"start":{},"duration":10,"expiration":{}}}"#,
            now - 16,
            now + 70
        );
        let path = format!("/streaming/streams/{id}/clip_recording");
        let t = Instant::now();
        let outcome = client
            .send("PUT", &path, &headers, body.as_bytes(), true)
            .await;
        let took = t.elapsed();
        let Ok(resp) = outcome else {
            shared.stats().error(Kind::Clip);
            continue;
        };
        shared.stats().record(Kind::Clip, took, resp.status == 200);
        let link = serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v["mp4_master"].as_str().map(|s| url_path(s).to_owned()));
        if let Some(link) = link {
            let _ = tx.try_send(link);
        }
    }
}

/// The next stream old enough to hold the clip.
fn pick(shared: &Shared, next: &mut usize) -> Option<u64> {
    let streams = shared.streams();
    let n = streams.len();
    for _ in 0..n {
        let s = streams.get(*next % n)?;
        *next = next.wrapping_add(1);
        if s.started.elapsed() >= MIN_AGE {
            return Some(s.id);
        }
    }
    None
}

async fn download(shared: Arc<Shared>, mut rx: mpsc::Receiver<String>) {
    let mut client = Client::new(shared.server);
    while let Some(path) = rx.recv().await {
        let t = Instant::now();
        match client.send("GET", &path, "", b"", false).await {
            Ok(resp) => {
                let took = t.elapsed();
                let mut stats = shared.stats();
                stats.record(Kind::Download, took, resp.status == 200);
                stats.download_bytes += resp.body_len;
            }
            Err(_) => shared.stats().error(Kind::Download),
        }
    }
}
