//! Issue 15 through the service, without a socket: clip lifetimes as the API states
//! them, one clip read and deleted, videos listed, renamed and deleted (a write in
//! progress cancelled), and `page` on every list. The engine runs on a `ManualClock`
//! holding the ffmpeg ladder fixture; nothing sleeps.

#[allow(unused_imports)] // what needs ffprobe or moto is not here
mod vod_util;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dvrclip_engine::{ClipId, ClipRequest, Engine, EngineConfig, ManualClock, StreamId, WallTime};
use dvrclip_server::app::App;
use dvrclip_server::config::{Config, ServeArgs};
use dvrclip_server::service::Service;
use dvrclip_server::vod::store::{ByteStream, Pieces};
use dvrclip_server::vod::{ObjectVodStore, StoreConfig, StoreError, VideoStatus, Vod, VodStore};
use futures_util::future::BoxFuture;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::sync::Notify;
use vod_util::*;

const AUTH: &str = "APIKey k$1";

struct Answer {
    status: u16,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    #[track_caller]
    fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// A 400 whose JSON body names `field`; its message.
    #[track_caller]
    fn bad_field(self, field: &str) -> String {
        let v = self.expect(400).json();
        assert_eq!(v["field"], field, "{v}");
        v["error"].as_str().unwrap_or_default().to_owned()
    }
}

struct Harness {
    app: Arc<App>,
    service: Service,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    stream: StreamId,
    dir: std::path::PathBuf,
}

impl Harness {
    /// The ladder's 8 s in stream `stream`, the clock a minute past it; videos in a
    /// local store under a fresh directory, or in `store`.
    async fn new(store: Option<Arc<dyn VodStore>>) -> Harness {
        let dir = temp_dir("api-verbs");
        let (engine, clock, stream) = ladder_engine(EngineConfig::default());
        let mut config = Config::resolve(&ServeArgs {
            api_key: Some("k$1".into()),
            public_url: Some("http://dvrclip.test".into()),
            data_dir: Some(dir.clone()),
            ..ServeArgs::default()
        })
        .unwrap();
        config.vod_store = StoreConfig::Local(dir.clone());
        let store = store.unwrap_or_else(|| {
            Arc::new(ObjectVodStore::open(&StoreConfig::Local(dir.clone())).unwrap())
        });
        let vod = Vod::new(store, config.public_url.clone());
        let app = App::with_engine_and_vod(config, engine.clone(), vod);
        Harness {
            service: Service::new(app.clone()),
            app,
            engine,
            clock,
            stream,
            dir,
        }
    }

    async fn call(&self, method: Method, target: &str, body: Option<&str>) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header("host", "dvrclip.test")
            .header("authorization", AUTH);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default().to_owned()));
        let resp = self.service.handle(req.body(body).unwrap()).await;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer { status, body }
    }

    async fn get(&self, target: &str) -> Answer {
        self.call(Method::GET, target, None).await
    }

    /// The start of the ladder's first chunk, Unix seconds (rounded up).
    fn first(&self) -> i64 {
        let top = self
            .engine
            .rendition_chunks(self.stream, "media_3_240")
            .unwrap();
        top[0].start_utc().unix_secs() + 1
    }

    fn clips_path(&self) -> String {
        format!("/streaming/streams/{}/clip_recording", self.stream.0)
    }

    async fn create_clip(&self, body: &str) -> Answer {
        self.call(Method::PUT, &self.clips_path(), Some(body)).await
    }

    /// A clip's public links, as paths.
    fn links(clip: &Value) -> Vec<String> {
        let base = clip["hls_master"]
            .as_str()
            .unwrap()
            .trim_start_matches("http://dvrclip.test")
            .trim_end_matches("_master.m3u8")
            .to_owned();
        vec![
            format!("{base}_master.m3u8"),
            format!("{base}_master.mp4"),
            format!("{base}_media_2_180.mp4"),
            format!("{base}_media_2_180/seg_0.m4s"),
        ]
    }

    /// A complete `vod_required` clip of the ladder, its video written inline.
    async fn video(&self) -> u64 {
        let clip = ladder_clip(&self.engine, self.stream);
        let rec = self.app.vod.write_clip(&clip, "ladder").await.unwrap();
        assert_eq!(rec.status, VideoStatus::Ready, "{:?}", rec.error);
        rec.id
    }

    /// Every file under the store's `media/` and `videos/` folders.
    fn stored(&self) -> Vec<String> {
        let mut names = Vec::new();
        for sub in ["media", "videos"] {
            if let Ok(dir) = std::fs::read_dir(self.dir.join(sub)) {
                for e in dir {
                    names.push(format!(
                        "{sub}/{}",
                        e.unwrap().file_name().to_string_lossy()
                    ));
                }
            }
        }
        names.sort();
        names
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ----- clip lifetimes -----

/// ref/api.md "Clips": the lifetime runs from the later of the clip's end and now.
/// 1 h 30 min after the ladder was recorded its clip still lives an hour by default:
/// its links answer until `now + 3600`, then 404. (It was born expired before:
/// end + 3600 had passed, the API answered 200 and every link 404.)
#[tokio::test]
async fn a_clip_of_old_media_lives_its_hour_from_now() {
    let h = Harness::new(None).await;
    h.clock.advance_secs(90 * 60);
    let now = h.engine.now().unix_secs();
    let clip = h
        .create_clip(&format!(r#"{{"start": {}, "duration": 4}}"#, h.first()))
        .await
        .expect(200)
        .json();
    assert_eq!(clip["expiration"], now + 3600, "{clip}");
    let expiry = WallTime::from_unix_secs(now + 3600);
    for t in [h.engine.now(), expiry.add_micros(-1)] {
        h.clock.set(t);
        h.app.tick();
        for l in Harness::links(&clip) {
            h.get(&l).await.expect(200);
        }
        let one = format!("{}/{}", h.clips_path(), clip["id"].as_str().unwrap());
        assert_eq!(h.get(&one).await.expect(200).json()["state"], "complete");
    }
    h.clock.set(expiry);
    h.app.tick();
    for l in Harness::links(&clip) {
        h.get(&l).await.expect(404);
    }
    let listed = h.get(&h.clips_path()).await.expect(200).json();
    assert_eq!(listed, Value::Array(vec![]));
}

/// ref/api.md "Clips": an explicit `expiration` outside `max(end, now) + [60 s, 4 h]`
/// is a 400 naming `expiration` and the allowed range; `start` more than 1 h ahead is
/// a 400 naming `start`.
#[tokio::test]
async fn clip_bounds_are_refused_by_name() {
    let h = Harness::new(None).await;
    let now = h.engine.now().unix_secs();
    let first = h.first();
    // The ladder ended a minute ago: the range runs from now.
    let (min, max) = (now + 60, now + 4 * 3600);
    for exp in [first + 8 + 60, min - 1, max + 1] {
        let body = format!(r#"{{"start": {first}, "duration": 4, "expiration": {exp}}}"#);
        let message = h.create_clip(&body).await.bad_field("expiration");
        assert!(
            message.contains(&min.to_string()) && message.contains(&max.to_string()),
            "{message}"
        );
    }
    for exp in [min, max] {
        let body = format!(r#"{{"start": {first}, "duration": 4, "expiration": {exp}}}"#);
        assert_eq!(
            h.create_clip(&body).await.expect(200).json()["expiration"],
            exp
        );
    }
    let ahead = format!(r#"{{"start": {}, "duration": 4}}"#, now + 3601);
    h.create_clip(&ahead).await.bad_field("start");
    let ahead = format!(r#"{{"start": {}, "duration": 4}}"#, now + 3600);
    let waiting = h.create_clip(&ahead).await.expect(200).json();
    assert_eq!(waiting["state"], "recording");
    assert_eq!(waiting["expiration"], now + 3600 + 4 + 3600);
}

/// ref/api.md "Clip object": a `precise` clip reports the window its MP4 plays. 7 s
/// from half a second into the ladder's 2 s chunks: 8 s of whole chunks are held,
/// the MP4 plays 7 s, and the clip says 7.0 (it said 8.0).
#[tokio::test]
async fn a_precise_clip_reports_what_its_mp4_plays() {
    let h = Harness::new(None).await;
    let top = h.engine.rendition_chunks(h.stream, "media_3_240").unwrap();
    // The fixture starts 0.498 s into a second: the next whole one is 0.502 s in.
    let start = top[0].start_utc().unix_secs() + 1;
    let body = format!(r#"{{"start": {start}, "duration": 7, "precise": true}}"#);
    let clip = h.create_clip(&body).await.expect(200).json();
    assert_eq!(clip["actual_start"], start as f64, "{clip}");
    assert_eq!(clip["actual_duration"], 7.0, "{clip}");
    let c = h
        .engine
        .clip(ClipId::parse(clip["id"].as_str().unwrap()).unwrap())
        .unwrap();
    let view = c.view();
    let mp4 = c.mp4(&view, view.reference().unwrap()).unwrap();
    assert_eq!(mp4.bounds().duration_micros, 7_000_000);
    assert!(
        view.actual_duration_micros() >= 8_000_000,
        "whole chunks held"
    );
}

// ----- one clip: read, delete -----

/// ref/api.md "Clips": `GET …/clip_recording/{clip_id}` answers the Clip object;
/// `DELETE` answers 204, its links 404 at once and its memory is released.
#[tokio::test]
async fn a_clip_is_read_and_deleted() {
    let h = Harness::new(None).await;
    let body = format!(r#"{{"start": {}, "duration": 4}}"#, h.first());
    let made = h.create_clip(&body).await.expect(200).json();
    let id = made["id"].as_str().unwrap();
    let one = format!("{}/{id}", h.clips_path());
    let got = h.get(&one).await.expect(200).json();
    assert_eq!(got, made);
    assert_eq!(got["state"], "complete");
    // Another stream's path does not find it.
    let other = h
        .call(
            Method::POST,
            "/streaming/streams",
            Some(r#"{"name": "other"}"#),
        )
        .await
        .expect(201)
        .json();
    let elsewhere = format!("/streaming/streams/{}/clip_recording/{id}", other["id"]);
    h.get(&elsewhere).await.expect(404);
    h.call(Method::DELETE, &elsewhere, None).await.expect(404);
    h.get(&format!("/streaming/streams/999/clip_recording/{id}"))
        .await
        .expect(404);

    // Its MP4 is built and cached, its chunks pinned.
    for l in Harness::links(&made) {
        h.get(&l).await.expect(200);
    }
    assert!(h.engine.memory().clip_bytes > 0);
    assert!(h.app.mp4_memory_bytes() > 0);

    let deleted = h.call(Method::DELETE, &one, None).await.expect(204);
    assert!(deleted.body.is_empty());
    h.get(&one).await.expect(404);
    h.call(Method::DELETE, &one, None).await.expect(404);
    for l in Harness::links(&made) {
        h.get(&l).await.expect(404);
    }
    assert_eq!(
        h.get(&h.clips_path()).await.expect(200).json(),
        Value::Array(vec![])
    );
    // Released once nothing reads the clip any more: the background MP4 build
    // (`mp4_prebuild`) may still be finishing, as a download in flight would.
    for _ in 0..1000 {
        if h.engine.memory().clip_bytes == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(
        h.engine.memory().clip_bytes,
        0,
        "the clip's chunks are released"
    );
    assert_eq!(h.app.mp4_memory_bytes(), 0, "its built MP4s are forgotten");
    h.call(Method::PUT, &one, None).await.expect(405);
}

// ----- videos -----

/// ref/api.md "Videos": `GET /streaming/videos` lists them (paged), `PATCH` renames
/// one (in the store too), `DELETE` removes its record and media: 404 after, its
/// public links too.
#[tokio::test]
async fn videos_are_listed_renamed_and_deleted() {
    let h = Harness::new(None).await;
    let (a, b) = (h.video().await, h.video().await);
    let listed = h.get("/streaming/videos").await.expect(200).json();
    let ids: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(ids, [a, b]);
    assert_eq!(listed[0]["status"], "ready");
    assert_eq!(
        h.get("/streaming/videos?page=2").await.expect(200).json(),
        Value::Array(vec![])
    );

    let path = format!("/streaming/videos/{a}");
    // What gcore-python's videos.update sends: a flat body, `name` required.
    let renamed = h
        .call(
            Method::PATCH,
            &path,
            Some(r#"{"name": "goal", "priority": 0}"#),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        (renamed["id"].clone(), renamed["name"].clone()),
        (a.into(), "goal".into())
    );
    assert_eq!(h.get(&path).await.expect(200).json()["name"], "goal");
    let stored: Value =
        serde_json::from_slice(&std::fs::read(h.dir.join(format!("videos/{a}.json"))).unwrap())
            .unwrap();
    assert_eq!(
        (stored["name"].clone(), stored["status"].clone()),
        ("goal".into(), "ready".into())
    );
    h.call(Method::PATCH, &path, Some(r#"{"priority": 1}"#))
        .await
        .bad_field("name");
    h.call(
        Method::PATCH,
        "/streaming/videos/999",
        Some(r#"{"name": "x"}"#),
    )
    .await
    .expect(404);

    let before = h.stored();
    assert_eq!(
        before.len(),
        8,
        "two records, three media files each: {before:?}"
    );
    h.get(&format!("/vod/{a}.mp4")).await.expect(200);
    h.call(Method::DELETE, &path, None).await.expect(204);
    h.get(&path).await.expect(404);
    h.get(&format!("/vod/{a}.mp4")).await.expect(404);
    h.get(&format!("/vod/{a}.m3u8")).await.expect(404);
    h.call(Method::DELETE, &path, None).await.expect(404);
    let after = h.stored();
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(
        after
            .iter()
            .all(|f| !f.contains(&format!("/{a}-")) && !f.contains(&format!("/{a}."))),
        "{after:?}"
    );
    let listed = h.get("/streaming/videos").await.expect(200).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], b);
}

/// A store whose media uploads never finish: each start is told on `entered`.
#[derive(Debug)]
struct Stuck {
    inner: Arc<dyn VodStore>,
    entered: Arc<Notify>,
}

impl VodStore for Stuck {
    fn put<'a>(&'a self, key: &'a str, body: Bytes) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.put(key, body)
    }
    fn put_pieces<'a>(
        &'a self,
        key: &'a str,
        len: u64,
        pieces: Pieces<'a>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if !key.starts_with("media/") {
            return self.inner.put_pieces(key, len, pieces);
        }
        Box::pin(async move {
            self.entered.notify_one();
            std::future::pending().await
        })
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, StoreError>> {
        self.inner.get(key)
    }
    fn get_range<'a>(
        &'a self,
        key: &'a str,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, StoreError>> {
        self.inner.get_range(key, range)
    }
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        self.inner.head(key)
    }
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>> {
        self.inner.list(prefix)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.delete(key)
    }
    fn describe(&self) -> String {
        "stuck".into()
    }
}

/// ref/api.md "Videos": deleting a video whose write is in progress cancels the
/// write cleanly: the delete answers (it would wait forever on the stuck upload
/// otherwise), nothing of the video is left in the store, and it answers 404. The
/// same for a video whose clip still records.
#[tokio::test]
async fn deleting_a_video_cancels_its_write() {
    let entered = Arc::new(Notify::new());
    let dir = temp_dir("api-verbs-stuck");
    let local: Arc<dyn VodStore> =
        Arc::new(ObjectVodStore::open(&StoreConfig::Local(dir.clone())).unwrap());
    let stuck = Arc::new(Stuck {
        inner: local,
        entered: entered.clone(),
    });
    let mut h = Harness::new(Some(stuck)).await;
    let _ = std::fs::remove_dir_all(&h.dir);
    h.dir = dir;

    // Written: the upload is stuck.
    let clip = ladder_clip(&h.engine, h.stream);
    let id = clip.video_id().unwrap();
    h.app.vod.start_writer(clip, "ladder").await;
    entered.notified().await;
    assert_eq!(
        h.get(&format!("/streaming/videos/{id}"))
            .await
            .expect(200)
            .json()["status"],
        "pending"
    );
    assert!(h.stored().contains(&format!("videos/{id}.json")));
    let path = format!("/streaming/videos/{id}");
    let deleted =
        tokio::time::timeout(Duration::from_secs(60), h.call(Method::DELETE, &path, None));
    deleted
        .await
        .expect("the delete waits for nothing stuck")
        .expect(204);
    h.get(&path).await.expect(404);
    assert_eq!(h.stored(), Vec::<String>::new());

    // Recording: the writer waits for the clip to complete.
    let recording = h
        .engine
        .create_clip(
            h.stream,
            ClipRequest {
                duration_secs: 30,
                vod_required: true,
                ..Default::default()
            },
        )
        .unwrap();
    let id = recording.video_id().unwrap();
    h.app.vod.start_writer(recording.clone(), "ladder").await;
    let path = format!("/streaming/videos/{id}");
    assert_eq!(h.get(&path).await.expect(200).json()["status"], "pending");
    h.call(Method::DELETE, &path, None).await.expect(204);
    h.get(&path).await.expect(404);
    assert!(
        !h.stored().iter().any(|f| f.contains(&id.to_string())),
        "{:?}",
        h.stored()
    );
    // The clip completing later writes nothing.
    h.engine.delete_clip(recording.id()).unwrap();
    assert!(h.app.vod.video(id).is_none());
}

// ----- paging -----

/// ref/api.md "Paging": every list answers pages of 25, an empty array past the end,
/// and a `page` that is not an integer from 1 is a 400 naming it.
#[tokio::test]
async fn lists_are_paged() {
    let h = Harness::new(None).await;
    for i in 0..29 {
        let body = format!(r#"{{"name": "s{i}"}}"#);
        h.call(Method::POST, "/streaming/streams", Some(&body))
            .await
            .expect(201);
    }
    let page = |n: &str| {
        let h = &h;
        let n = n.to_owned();
        async move {
            h.get(&format!("/streaming/streams{n}"))
                .await
                .expect(200)
                .json()
        }
    };
    let ids = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(&page("").await), (1..=25).collect::<Vec<_>>());
    assert_eq!(ids(&page("?page=1").await), (1..=25).collect::<Vec<_>>());
    assert_eq!(
        ids(&page("?page=2&per_page=100").await),
        (26..=30).collect::<Vec<_>>()
    );
    assert_eq!(page("?page=3").await, Value::Array(vec![]));
    for bad in ["?page=0", "?page=x", "?page=", "?page=-1"] {
        h.get(&format!("/streaming/streams{bad}"))
            .await
            .bad_field("page");
    }

    let body = format!(r#"{{"start": {}, "duration": 4}}"#, h.first());
    let mut made = Vec::new();
    for _ in 0..26 {
        made.push(h.create_clip(&body).await.expect(200).json()["id"].clone());
    }
    let p1 = h.get(&h.clips_path()).await.expect(200).json();
    let p2 = h
        .get(&format!("{}?page=2", h.clips_path()))
        .await
        .expect(200)
        .json();
    let p3 = h
        .get(&format!("{}?page=3", h.clips_path()))
        .await
        .expect(200)
        .json();
    let got: Vec<_> = p1
        .as_array()
        .unwrap()
        .iter()
        .chain(p2.as_array().unwrap())
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(p1.as_array().unwrap().len(), 25);
    assert_eq!(got, made, "oldest first, each once");
    assert_eq!(p3, Value::Array(vec![]));
    h.get(&format!("{}?page=0", h.clips_path()))
        .await
        .bad_field("page");
    h.get("/streaming/videos?page=0").await.bad_field("page");
}
