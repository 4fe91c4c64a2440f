//! The clip archive on a local directory (`--clip-archive /path`): a clip cut from
//! the ffmpeg ladder fixture through the API is archived when complete, and a second
//! app with the same archive and no stream at all answers every one of its links
//! (playlists, MP4s, inits, segments) with the same bytes, ETags and ranges; 404
//! once expired, and the sweep removes it; a deleted clip leaves the archive too.
//! Each MP4 is stored once (its head object and stretches of the segments file):
//! any range of it is the live bytes, planned as few reads; a manifest of format 1
//! (the MP4 stored whole) is still served. Engines on `ManualClock`s; the only waits
//! are for the archiving task.

mod vod_util;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dvrclip_engine::{ClipId, Engine, EngineConfig, ManualClock, StreamId};
use dvrclip_server::app::App;
use dvrclip_server::archive::layout::Source;
use dvrclip_server::archive::{ATTEMPTS, ClipArchive, Manifest};
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

/// A clip's links without the host, and its MP4s' common start
/// (`/rec/{stream}/rec_{clip}`; `_{rendition}.mp4` follows).
fn link_base(clip: &Value) -> (String, String) {
    let master = clip["hls_master"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://dvrclip.test")
        .to_owned();
    let base = master.trim_end_matches("_master.m3u8").to_owned();
    (master, base)
}

/// A node with no stream and no clip, archiving into `dir`, at `engine`'s time;
/// its engine's clock.
fn second_node(engine: &Engine, dir: &Path) -> (Arc<App>, Service, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(engine.now()));
    let other = Arc::new(Engine::with_clock(EngineConfig::default(), clock.clone()));
    let (app, service) = app(other, dir);
    (app, service, clock)
}

/// A node on the ladder (engine `config`) archiving into `dir`, and a complete clip
/// of it cut through the API, archived.
struct Recorded {
    engine: Arc<Engine>,
    app: Arc<App>,
    service: Service,
    stream: StreamId,
    /// The clip's JSON.
    clip: Value,
    id: String,
}

async fn record(dir: &Path, config: EngineConfig) -> Recorded {
    let (engine, _clock, stream) = ladder_engine(config);
    let (app, service) = app(engine.clone(), dir);
    let clip = cut(&service, &engine, stream).await;
    let id = clip["id"].as_str().unwrap().to_owned();
    archived(dir, stream, &id).await;
    Recorded {
        engine,
        app,
        service,
        stream,
        clip,
        id,
    }
}

/// Every public link of a clip, as paths: the playlists, MP4s, and every init and
/// segment the media playlists name (read from `service`).
async fn links(service: &Service, clip: &Value) -> Vec<String> {
    let (master, base) = link_base(clip);
    let dir = master.rsplit_once('/').unwrap().0.to_owned();
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
    let first = record(&dir, EngineConfig::default()).await;
    let (engine, stream, clip, id) = (&first.engine, first.stream, &first.clip, first.id.as_str());
    let first_service = &first.service;
    let paths = links(first_service, clip).await;
    // The three renditions' MP4s and playlists, the master's two, inits, segments.
    assert!(paths.len() > 3 * 2 + 2 + 3 + 3, "{paths:?}");

    // A second node: no stream, no clip, the same archive, the same time.
    let (second, service, other_clock) = second_node(engine, &dir);
    let other_engine = second.engine.clone();
    for path in &paths {
        let want = get(first_service, path).await;
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
    let unknown = mp4.replace(id, &ClipId::random().unwrap().to_string());
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
    let Recorded {
        app,
        service,
        stream,
        id,
        ..
    } = record(&dir, EngineConfig::default()).await;
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

/// Reads the archived manifest of `clip` from `dir`.
fn manifest_in(dir: &Path, stream: StreamId, clip: &str) -> (std::path::PathBuf, Manifest) {
    let folder = dir
        .join("archive/clips")
        .join(stream.0.to_string())
        .join(clip);
    let m = Manifest::parse(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    (folder, m)
}

/// Ranges that cross every seam of `m`'s layout of rendition `name` (the header's
/// end, each span's ends, one byte either side), whole files, suffixes, and a few
/// hundred drawn at random.
fn ranges_of(m: &Manifest, name: &str, len: u64) -> Vec<(u64, u64)> {
    let r = m.renditions.iter().find(|r| r.name == name).unwrap();
    let layout = r.mp4_layout.as_ref().unwrap();
    let mut seams = vec![0, len];
    for s in layout.spans() {
        seams.extend([s.at, s.at + s.len]);
    }
    let mut out = vec![(0, len - 1), (len - 1, len - 1), (0, 0)];
    for w in seams.windows(2) {
        let (a, b) = (w[0], w[1]);
        for (x, y) in [
            (a, b),
            (a.saturating_sub(1), b + 1),
            (a + 1, b.saturating_sub(1)),
        ] {
            if x <= y && y < len {
                out.push((x, y));
            }
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let a = seed % len;
        let b = (a + (seed >> 32) % 300_000).min(len - 1);
        out.push((a, b));
    }
    out
}

#[tokio::test]
async fn an_mp4_is_stored_once_and_any_range_of_it_is_the_live_bytes() {
    let dir = temp_dir("clip-archive-once");
    // Blocks of two chunks in the rings' MP4 index: the clip's MP4 is built from
    // whole blocks (their `mdat` slices shared), as a long clip's is.
    let config = EngineConfig {
        mp4_index_block_chunks: 2,
        ..EngineConfig::default()
    };
    let first = record(&dir, config).await;
    let (engine, stream, clip, id) = (&first.engine, first.stream, &first.clip, first.id.as_str());
    let first_service = &first.service;
    let (folder, manifest) = manifest_in(&dir, stream, id);
    assert_eq!(manifest.format_version, 2);
    let live = engine.clip(ClipId::parse(id).unwrap()).unwrap();
    let view = live.view();
    let mut mp4_bytes = 0;
    for r in &manifest.renditions {
        // The body is each chunk's `mdat` body in clip order: one span per chunk,
        // forward through the segments file; the head object is the header alone.
        let layout = r.mp4_layout.as_ref().unwrap();
        let built = live.mp4(&view, view.rendition(&r.name).unwrap()).unwrap();
        assert_eq!(layout.len(), built.len());
        assert_eq!(layout.head_size(), built.header_len(), "{}", r.name);
        assert_eq!(layout.spans().len(), r.segments.len(), "{}", r.name);
        for (span, seg) in layout.spans().iter().zip(&r.segments) {
            assert!(seg.0 < span.from && span.from + span.len <= seg.1);
        }
        let head = std::fs::metadata(folder.join(format!("{}.head", r.name))).unwrap();
        assert_eq!(head.len(), layout.head_size());
        assert!(!folder.join(format!("{}.mp4", r.name)).exists());
        // Few reads: the whole file is the header and one read of the segments
        // file; a range of the body, one read; the header, one.
        let plan = |a: u64, b: u64| {
            let mut reads = Vec::new();
            let mut pos = a;
            while let Some(read) = layout.read(pos, b) {
                pos = read.mp4.end;
                reads.push(read.source);
            }
            reads
        };
        let len = layout.len();
        assert_eq!(plan(0, len), [Source::Head, Source::Segments]);
        assert_eq!(plan(len / 2, len - 1), [Source::Segments]);
        assert_eq!(plan(10, built.header_len()), [Source::Head]);
        mp4_bytes += len;
    }
    // What the archive holds: about the media once.
    let stored: u64 = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let ratio = stored as f64 / mp4_bytes as f64;
    eprintln!("archived: {stored} bytes for MP4s of {mp4_bytes} ({ratio:.3}x)");
    assert!(ratio < 1.1, "{ratio}");

    // A second node: every range of every MP4 is the live bytes.
    let (_second, service, _) = second_node(engine, &dir);
    let (_, base) = link_base(clip);
    for r in &manifest.renditions {
        let path = format!("{base}_{}.mp4", r.name);
        let want = get(first_service, &path).await;
        let len = want.body.len() as u64;
        let etag = want.header("etag").unwrap().to_owned();
        for (a, b) in ranges_of(&manifest, &r.name, len) {
            let range = format!("bytes={a}-{b}");
            let got = call(&service, Method::GET, &path, &[("range", &range)]).await;
            assert_eq!(got.status, 206, "{path} {range}");
            assert!(
                got.body == want.body.slice(a as usize..=b as usize),
                "{path} {range}"
            );
            let cr = format!("bytes {a}-{b}/{len}");
            assert_eq!(got.header("content-range"), Some(cr.as_str()));
        }
        // If-Range: the tag served means the range, another means the whole file.
        let ranged = [("range", "bytes=5000-5999"), ("if-range", etag.as_str())];
        let got = call(&service, Method::GET, &path, &ranged).await;
        assert_eq!((got.status, got.body.len()), (206, 1000));
        let stale = [("range", "bytes=5000-5999"), ("if-range", "\"other\"")];
        let got = call(&service, Method::GET, &path, &stale).await;
        assert_eq!(got.status, 200);
        assert!(got.body == want.body, "{path}");
    }
    // The segments file gone: a range of the body is a 404 before any byte; the
    // whole file, its header and then an early end (fewer bytes than announced).
    let name = &manifest.renditions[0].name;
    std::fs::remove_file(folder.join(format!("{name}.m4s"))).unwrap();
    let path = format!("{base}_{name}.mp4");
    let lost = call(&service, Method::GET, &path, &[("range", "bytes=-1000")]).await;
    assert_eq!(lost.status, 404);
    let cut_short = get(&service, &path).await;
    let header = manifest.renditions[0]
        .mp4_layout
        .as_ref()
        .unwrap()
        .head_size();
    assert_eq!(
        (cut_short.status, cut_short.body.len() as u64),
        (200, header)
    );
    drop(first);
}

/// A node upgraded under an archive written by format 1 (each MP4 stored whole,
/// `{rendition}.mp4`, and no layout) serves those clips as they were.
#[tokio::test]
async fn a_format_1_archive_is_still_served() {
    let dir = temp_dir("clip-archive-v1");
    let first = record(&dir, EngineConfig::default()).await;
    let (engine, stream, clip, id) = (&first.engine, first.stream, &first.clip, first.id.as_str());
    let first_service = &first.service;
    let paths = links(first_service, clip).await;
    // Rewritten as format 1 wrote it.
    let (folder, mut manifest) = manifest_in(&dir, stream, id);
    let (_, base) = link_base(clip);
    for r in &mut manifest.renditions {
        let mp4 = get(first_service, &format!("{base}_{}.mp4", r.name)).await;
        std::fs::write(folder.join(format!("{}.mp4", r.name)), &mp4.body).unwrap();
        std::fs::remove_file(folder.join(format!("{}.head", r.name))).unwrap();
        r.mp4_layout = None;
    }
    manifest.format_version = 1;
    let text = serde_json::to_vec(&manifest).unwrap();
    assert!(!String::from_utf8_lossy(&text).contains("mp4_layout"));
    std::fs::write(folder.join("manifest.json"), text).unwrap();

    let (_second, service, _) = second_node(engine, &dir);
    for path in &paths {
        let want = get(first_service, path).await;
        let got = get(&service, path).await;
        assert_eq!(got.status, 200, "{path}");
        assert!(got.body == want.body, "{path}");
        assert_eq!(got.header("etag"), want.header("etag"), "{path}");
    }
    let mp4 = format!("{base}_master.mp4");
    let whole = get(&service, &mp4).await;
    let part = call(&service, Method::GET, &mp4, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(
        (part.status, part.body),
        (206, whole.body.slice(1000..2000))
    );
    drop(first);
}
