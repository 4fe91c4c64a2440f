//! The clip archive on a local directory (`--clip-archive /path`): a clip cut from
//! the ffmpeg ladder fixture through the API is archived when complete, and a second
//! app with the same archive and no stream at all answers every one of its links
//! (playlists, MP4s, inits, segments) with the same bytes, ETags and ranges; 404
//! once expired, and the sweep removes it; a deleted clip leaves the archive too.
//! Engines on `ManualClock`s; the only waits are for the archiving task.

mod vod_util;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dvrclip_engine::{ClipId, Engine, EngineConfig, ManualClock, StreamId};
use dvrclip_server::app::App;
use dvrclip_server::archive::{ATTEMPTS, ClipArchive};
use dvrclip_server::config::{Config, ServeArgs};
use dvrclip_server::service::Service;
use dvrclip_server::vod::{ObjectVodStore, StoreConfig, UnavailableStore};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use vod_util::*;

const AUTH: &str = "APIKey k$1";

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An app on `engine` archiving into `dir`.
fn app(engine: Arc<Engine>, dir: &Path) -> (Arc<App>, Service) {
    let mut config = Config::resolve(&ServeArgs {
        api_key: Some("k$1".into()),
        public_url: Some("http://dvrclip.test".into()),
        data_dir: Some(dir.join("data")),
        clip_archive: Some(dir.join("archive").display().to_string()),
        ..ServeArgs::default()
    })
    .unwrap();
    config.vod_store = StoreConfig::Local(dir.join("data"));
    let app = App::with_engine(config, engine);
    (app.clone(), Service::new(app))
}

async fn call(service: &Service, method: Method, target: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .header("host", "dvrclip.test")
        .header("authorization", AUTH);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = service
        .handle(req.body(Full::new(Bytes::new())).unwrap())
        .await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(service: &Service, target: &str) -> Answer {
    call(service, Method::GET, target, &[]).await
}

/// A complete clip of the whole ladder through the API; its JSON.
async fn cut(service: &Service, engine: &Engine, stream: StreamId) -> Value {
    let top = engine.rendition_chunks(stream, "media_3_240").unwrap();
    let body = format!(
        r#"{{"duration": 8, "start": {}}}"#,
        top[0].start_utc().unix_secs()
    );
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/streaming/streams/{}/clip_recording", stream.0))
        .header("host", "dvrclip.test")
        .header("authorization", AUTH)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = service.handle(req).await;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// Waits (bounded) for the archiving task to write the clip's manifest.
async fn archived(dir: &Path, stream: StreamId, clip: &str) {
    let manifest = dir
        .join("archive/clips")
        .join(stream.0.to_string())
        .join(clip)
        .join("manifest.json");
    let until = Instant::now() + Duration::from_secs(30);
    while !manifest.exists() {
        assert!(
            Instant::now() < until,
            "{} never written",
            manifest.display()
        );
        // The archiving task runs on this runtime: nothing to drive but time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every public link of a clip, as paths: the playlists, MP4s, and every init and
/// segment the media playlists name (read from `service`).
async fn links(service: &Service, clip: &Value) -> Vec<String> {
    let master = clip["hls_master"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://dvrclip.test")
        .to_owned();
    let dir = master.rsplit_once('/').unwrap().0.to_owned();
    let base = master.trim_end_matches("_master.m3u8").to_owned();
    let mut out = vec![master.clone(), format!("{base}_master.mp4")];
    let text = String::from_utf8(get(service, &master).await.body.to_vec()).unwrap();
    let media: Vec<String> = text
        .lines()
        .filter(|l| l.ends_with(".m3u8"))
        .map(|l| l.trim_start_matches("URI=").to_owned())
        .chain(
            text.split("URI=\"")
                .skip(1)
                .map(|s| s.split('"').next().unwrap().to_owned()),
        )
        .collect();
    for playlist in media {
        let path = format!("{dir}/{playlist}");
        out.push(path.replace(".m3u8", ".mp4"));
        let text = String::from_utf8(get(service, &path).await.body.to_vec()).unwrap();
        for line in text.lines() {
            if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
                out.push(format!("{dir}/{}", uri.trim_end_matches('"')));
            } else if !line.starts_with('#') && !line.is_empty() {
                out.push(format!("{dir}/{line}"));
            }
        }
        out.push(path);
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn a_node_without_the_clip_serves_it_from_the_archive() {
    let dir = temp_dir("clip-archive");
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let (first, first_service) = app(engine.clone(), &dir);
    let clip = cut(&first_service, &engine, stream).await;
    let id = clip["id"].as_str().unwrap().to_owned();
    archived(&dir, stream, &id).await;
    let paths = links(&first_service, &clip).await;
    // The three renditions' MP4s and playlists, the master's two, inits, segments.
    assert!(paths.len() > 3 * 2 + 2 + 3 + 3, "{paths:?}");

    // A second node: no stream, no clip, the same archive, the same time.
    let other_clock = Arc::new(ManualClock::new(engine.now()));
    let other_engine = Arc::new(Engine::with_clock(
        EngineConfig::default(),
        other_clock.clone(),
    ));
    let (second, service) = app(other_engine.clone(), &dir);
    for path in &paths {
        let want = get(&first_service, path).await;
        let got = get(&service, path).await;
        assert_eq!(want.status, 200, "{path}");
        assert_eq!(
            got.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&got.body)
        );
        assert_eq!(got.body, want.body, "{path}");
        for h in ["etag", "content-type", "cache-control"] {
            assert_eq!(got.header(h), want.header(h), "{path} {h}");
        }
        // In process a segment's length is the body's size hint (hyper writes it).
        let len = got.body.len().to_string();
        assert_eq!(got.header("content-length").unwrap_or(&len), len, "{path}");
    }
    let seg = paths.iter().find(|p| p.ends_with("/seg_1.m4s")).unwrap();
    let head = call(&service, Method::HEAD, seg, &[]).await;
    let len = get(&service, seg).await.body.len().to_string();
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some(len.as_str()));
    let mp4 = clip["mp4_master"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://dvrclip.test")
        .to_owned();
    let whole = get(&service, &mp4).await;
    let etag = whole.header("etag").unwrap().to_owned();
    let part = call(&service, Method::GET, &mp4, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole.body.slice(1000..2000));
    assert_eq!(part.header("content-length"), Some("1000"));
    let tail = call(&service, Method::GET, &mp4, &[("range", "bytes=-100")]).await;
    assert_eq!(tail.body, whole.body.slice(whole.body.len() - 100..));
    let again = call(&service, Method::GET, &mp4, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    let head = call(&service, Method::HEAD, &mp4, &[]).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(
        head.header("content-length"),
        whole.header("content-length")
    );
    // Unknown clips, and a known one under another stream: 404.
    let unknown = mp4.replace(&id, &ClipId::random().unwrap().to_string());
    assert_eq!(get(&service, &unknown).await.status, 404);
    let elsewhere = mp4.replacen(&format!("/rec/{}/", stream.0), "/rec/999/", 1);
    assert_eq!(get(&service, &elsewhere).await.status, 404);

    // Expired: 404 at once on the second node, and the sweep removes the objects.
    let archive = second.archive.clone().unwrap();
    let expiration = clip["expiration"].as_i64().unwrap();
    other_clock.set(dvrclip_engine::WallTime::from_unix_secs(expiration));
    assert_eq!(get(&service, &mp4).await.status, 404);
    assert_eq!(get(&service, &paths[0]).await.status, 404);
    assert_eq!(archive.sweep(other_engine.now()).await.unwrap(), 1);
    let left = archive.store().list("clips").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    drop(first);
}

#[tokio::test]
async fn a_deleted_clip_leaves_the_archive() {
    let dir = temp_dir("clip-archive-delete");
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let (app, service) = app(engine.clone(), &dir);
    let clip = cut(&service, &engine, stream).await;
    let id = clip["id"].as_str().unwrap().to_owned();
    archived(&dir, stream, &id).await;
    let path = format!("/streaming/streams/{}/clip_recording/{id}", stream.0);
    assert_eq!(call(&service, Method::DELETE, &path, &[]).await.status, 204);
    let archive = app.archive.clone().unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !archive.store().list("clips").await.unwrap().is_empty() {
        assert!(Instant::now() < until, "the deleted clip stayed archived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mp4 = format!("/rec/{}/rec_{id}_master.mp4", stream.0);
    assert_eq!(get(&service, &mp4).await.status, 404);
}

#[tokio::test]
async fn without_the_flag_nothing_is_archived() {
    let dir = temp_dir("clip-archive-off");
    let (engine, _clock, _stream) = ladder_engine(EngineConfig::default());
    let config = Config::resolve(&ServeArgs {
        api_key: Some("k$1".into()),
        data_dir: Some(dir.clone()),
        ..ServeArgs::default()
    })
    .unwrap();
    assert!(App::with_engine(config, engine).archive.is_none());
    // The store the flag would open is the VOD's kind.
    let store = ObjectVodStore::open(&StoreConfig::Local(dir.join("a"))).unwrap();
    let archive = ClipArchive::new(Arc::new(store));
    let clip = ClipId::random().unwrap();
    let now = dvrclip_engine::WallTime::from_unix_secs(0);
    assert!(
        archive
            .lookup(StreamId(1), clip, now)
            .await
            .unwrap()
            .is_none()
    );
}

/// A store that fails every call (the type the server runs with when the configured
/// store cannot be opened): the clip is tried [`ATTEMPTS`] times, then given up,
/// counted, and nothing is served from the archive.
#[tokio::test]
async fn a_failing_store_is_retried_then_counted() {
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let clip = ladder_clip(&engine, stream);
    let archive = ClipArchive::new(Arc::new(UnavailableStore("down for the test".into())));
    assert!(
        archive
            .archive(&engine, &clip, &clip.view())
            .await
            .is_none()
    );
    let metrics = archive.render_metrics();
    for line in [
        "dvrclip_archive_clips_total 0",
        "dvrclip_archive_failures_total 1",
        &format!("dvrclip_archive_retries_total {}", ATTEMPTS - 1),
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let now = engine.now();
    assert!(archive.lookup(stream, clip.id(), now).await.is_err());
}
