//! The VOD store and writer (issue 8, ref/api.md "Clips" `vod_required`, §5 Video object, §8
//! VOD store) on the local filesystem: the stored MP4 is the clip's MP4 byte for
//! byte and ffprobe reads it; videos survive a restart and ids continue; an
//! interrupted write is cleaned up at start-up; a video left `pending` is written
//! once its clip is back in a restored engine (`Vod::resume`); a failing store turns the video to
//! `error` without touching the clip or the DVR; the HTTP answers over a socket.

mod vod_util;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dvrclip_engine::EngineConfig;
use dvrclip_server::app::App;
use dvrclip_server::config::{Config, ServeArgs};
use dvrclip_server::vod::store::{ByteStream, Pieces};
use dvrclip_server::vod::{
    INTERRUPTED, ObjectVodStore, StoreConfig, StoreError, UnavailableStore, VideoRecord,
    VideoStatus, Vod, VodStore,
};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use vod_util::*;

fn local(dir: &std::path::Path) -> Arc<dyn VodStore> {
    Arc::new(ObjectVodStore::open(&StoreConfig::Local(dir.to_owned())).unwrap())
}

async fn read_all(store: &dyn VodStore, key: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let s: ByteStream = store.get_range(key, range).await.unwrap();
    let parts: Vec<Bytes> = s.try_collect().await.unwrap();
    parts.concat()
}

#[tokio::test]
async fn a_written_video_is_the_clips_mp4_and_ffprobe_reads_it() {
    let dir = temp_dir("vod-write");
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let clip = ladder_clip(&engine, stream);
    let vod = Vod::open(local(&dir), "http://h").await.unwrap();

    let rec = vod.write_clip(&clip, "ladder").await.unwrap();
    assert_eq!(rec.status, VideoStatus::Ready, "{:?}", rec.error);
    assert_eq!(Some(rec.id), clip.video_id());
    let expected = clip_mp4(&clip);
    assert_eq!(rec.size, Some(expected.len()));
    assert_eq!(rec.etag.as_deref(), Some(expected.etag()));
    assert_eq!(rec.rendition.as_deref(), Some("media_3_240"));
    assert_eq!((rec.width, rec.height), (Some(426), Some(240)));

    // The file on disk, and the store's ranged read, equal the virtual file.
    let key = rec.media_key.clone().unwrap();
    let on_disk = std::fs::read(dir.join(&key)).unwrap();
    assert!(
        on_disk == whole(&expected),
        "stored bytes differ from VirtualMp4"
    );
    let store = local(&dir);
    assert_eq!(read_all(&*store, &key, 0..expected.len()).await, on_disk);
    assert_eq!(read_all(&*store, &key, 100..5000).await, on_disk[100..5000]);

    // ref/api.md: the Video object, Gcore's names, duration in ms.
    let v = vod.video_json(rec.id).unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["stream_id"], stream.0);
    assert_eq!(v["origin_url"], format!("http://h/vod/{}.mp4", rec.id));
    assert_eq!(v["converted_videos"][0]["mp4_url"], v["origin_url"]);
    let ms = v["duration"].as_u64().unwrap();
    assert!((7900..=8100).contains(&ms), "duration {ms} ms");

    // The record is on disk too, and names the media.
    let stored: VideoRecord =
        serde_json::from_slice(&std::fs::read(dir.join(VideoRecord::key(rec.id))).unwrap())
            .unwrap();
    assert_eq!(stored, rec);

    // The HLS form: one fMP4 file (init + the chunks' own bytes) and a byte-range
    // playlist over it (RFC 8216 §4.3.2.2, §4.3.2.5).
    let top = clip.view().reference().unwrap().clone();
    let mut fmp4 = top.chunks()[0].init().bytes.to_vec();
    for c in top.chunks() {
        fmp4.extend_from_slice(c.bytes());
    }
    let hls_file = std::fs::read(dir.join(rec.hls_media_key.as_ref().unwrap())).unwrap();
    assert!(hls_file == fmp4, "HLS file is not init + segments");
    assert_eq!(rec.hls_media_size, Some(fmp4.len() as u64));
    let playlist = std::fs::read_to_string(dir.join(rec.hls_key.as_ref().unwrap())).unwrap();
    let init_len = top.chunks()[0].init().bytes.len();
    assert!(
        playlist.contains(&format!(
            "#EXT-X-MAP:URI=\"{}.m4s\",BYTERANGE=\"{init_len}@0\"",
            rec.id
        )),
        "{playlist}"
    );
    assert_eq!(
        playlist.matches("#EXT-X-BYTERANGE:").count(),
        top.chunks().len()
    );
    assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD"));
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(v["hls_url"], format!("http://h/vod/{}.m3u8", rec.id));

    if require_tool("ffprobe") {
        let (codecs, secs) = ffprobe(dir.join(&key));
        assert_eq!(codecs, ["h264", "aac"], "ffprobe streams");
        assert!(
            (secs * 1000.0 - ms as f64).abs() < 100.0,
            "{secs} s vs {ms} ms"
        );
    }
}

#[tokio::test]
async fn large_objects_go_up_in_parts_and_read_back_exactly() {
    let dir = temp_dir("vod-multipart");
    let store = local(&dir);
    // 20 MiB in uneven pieces: over the 8 MiB threshold, so a multipart upload.
    let mut pieces = Vec::new();
    let mut len = 0u64;
    for i in 0..41u32 {
        let n = 500_000 + (i as usize * 7919) % 40_000;
        pieces.push(Bytes::from(vec![(i % 251) as u8; n]));
        len += n as u64;
    }
    assert!(len > dvrclip_server::vod::store::MULTIPART_THRESHOLD * 2);
    let all: Vec<u8> = pieces.concat();
    let it: Pieces<'_> = Box::new(pieces.clone().into_iter());
    store.put_pieces("media/big.mp4", len, it).await.unwrap();
    assert_eq!(store.head("media/big.mp4").await.unwrap(), Some(len));
    assert!(read_all(&*store, "media/big.mp4", 0..len).await == all);
    let mid = 9_000_000..9_300_001;
    assert!(read_all(&*store, "media/big.mp4", mid.clone()).await[..] == all[9_000_000..9_300_001]);
    // Nothing but the object is left in the folder (no staging files).
    let names: Vec<_> = std::fs::read_dir(dir.join("media"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["big.mp4"]);

    // Pieces that do not add up to the announced length are refused and leave nothing.
    let short: Pieces<'_> = Box::new(pieces[..30].iter().cloned());
    let e = store
        .put_pieces("media/short.mp4", len, short)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Length { .. }), "{e}");
    assert_eq!(store.head("media/short.mp4").await.unwrap(), None);
    assert_eq!(store.sweep_staging("media").await.unwrap(), 0);

    let listed = store.list("media").await.unwrap();
    assert_eq!(listed, [("media/big.mp4".to_owned(), len)]);
    store.delete("media/big.mp4").await.unwrap();
    store.delete("media/big.mp4").await.unwrap(); // absent: not an error
    assert_eq!(store.head("media/big.mp4").await.unwrap(), None);
    assert!(store.get("media/big.mp4").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn videos_survive_a_restart_and_ids_continue() {
    let dir = temp_dir("vod-restart");
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let clip = ladder_clip(&engine, stream);
    let first = {
        let vod = Vod::open(local(&dir), "http://h").await.unwrap();
        vod.write_clip(&clip, "ladder").await.unwrap()
    };
    assert_eq!(first.status, VideoStatus::Ready);

    // A new store and index over the same directory: the video is there, unchanged.
    let vod = Vod::open(local(&dir), "http://other").await.unwrap();
    assert_eq!(vod.video(first.id), Some(first.clone()));
    assert_eq!(vod.next_video_id(), first.id + 1);
    assert_eq!(
        vod.video_json(first.id).unwrap()["origin_url"],
        format!("http://other/vod/{}.mp4", first.id)
    );

    // The server's start-up does the same and hands the engine the next id.
    let app = App::start(config(&dir)).await.unwrap();
    assert_eq!(app.engine.config().first_video_id, first.id + 1);
    assert_eq!(
        app.vod.video(first.id).map(|r| r.status),
        Some(VideoStatus::Ready)
    );
    app.shutdown().await;
}

fn config(data_dir: &std::path::Path) -> Config {
    let mut c = Config::resolve(&ServeArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        api_key: Some("k$1".into()),
        data_dir: Some(data_dir.to_owned()),
        shutdown_grace_secs: Some(5),
        ..ServeArgs::default()
    })
    .unwrap();
    // Tests keep the store at the directory itself.
    c.vod_store = StoreConfig::Local(data_dir.to_owned());
    c
}

#[tokio::test]
async fn an_interrupted_write_is_cleaned_up_at_start_up() {
    let dir = temp_dir("vod-crash");
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let clip = ladder_clip(&engine, stream);
    let done = {
        let vod = Vod::open(local(&dir), "http://h").await.unwrap();
        vod.write_clip(&clip, "ladder").await.unwrap()
    };
    let store = local(&dir);
    let pending = VideoRecord {
        id: done.id + 1,
        status: VideoStatus::Pending,
        media_key: None,
        size: None,
        etag: None,
        duration: 0,
        ..done.clone()
    };
    // What a crash leaves: the pending record of a clip that was recording, media
    // written without its record (killed between the two), a staging file of a
    // write cut short, and a ready record whose media someone removed.
    store
        .put(
            &VideoRecord::key(pending.id),
            Bytes::from(serde_json::to_vec(&pending).unwrap()),
        )
        .await
        .unwrap();
    store
        .put("media/2-deadbeef.mp4", Bytes::from_static(b"half"))
        .await
        .unwrap();
    std::fs::write(dir.join("media/3-cafe.mp4#7"), b"partial").unwrap();
    let lost = VideoRecord {
        id: done.id + 2,
        media_key: Some("media/9-gone.mp4".into()),
        ..done.clone()
    };
    store
        .put(
            &VideoRecord::key(lost.id),
            Bytes::from(serde_json::to_vec(&lost).unwrap()),
        )
        .await
        .unwrap();

    let vod = Vod::open(local(&dir), "http://h").await.unwrap();
    // "nothing half-written is ever served": the pending one is an error now.
    let p = vod.video(pending.id).unwrap();
    assert_eq!(p.status, VideoStatus::Error);
    assert_eq!(p.error.as_deref(), Some(INTERRUPTED));
    let l = vod.video(lost.id).unwrap();
    assert_eq!(l.status, VideoStatus::Error);
    assert!(l.error.unwrap().contains("missing"));
    assert_eq!(vod.video(done.id), Some(done.clone()));
    assert_eq!(vod.next_video_id(), lost.id + 1);
    // Only the ready video's media is left.
    let mut media: Vec<_> = std::fs::read_dir(dir.join("media"))
        .unwrap()
        .map(|e| format!("media/{}", e.unwrap().file_name().into_string().unwrap()))
        .collect();
    media.sort();
    let mut kept: Vec<String> = [&done.media_key, &done.hls_media_key, &done.hls_key]
        .into_iter()
        .map(|k| k.clone().unwrap())
        .collect();
    kept.sort();
    assert_eq!(media, kept);
    // The errors were persisted: a second start finds them as they are.
    let again = Vod::open(local(&dir), "http://h").await.unwrap();
    assert_eq!(again.video(pending.id).unwrap().status, VideoStatus::Error);
    assert_eq!(
        again.video(pending.id).unwrap().error.as_deref(),
        Some(INTERRUPTED)
    );
}

/// What a fault does to a real store's media writes; records and reads go through.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The store "goes down" mid-video: media writes are refused.
    Refused,
    /// A slow link to the bucket: media writes take this long.
    Slow(Duration),
}

#[derive(Debug)]
struct Faulty(Arc<dyn VodStore>, Fault);

impl VodStore for Faulty {
    fn put<'a>(&'a self, key: &'a str, body: Bytes) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.put(key, body)
    }
    fn put_pieces<'a>(
        &'a self,
        key: &'a str,
        len: u64,
        pieces: Pieces<'a>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match self.1 {
                Fault::Refused => Err(StoreError::Unavailable("connection refused".into())),
                Fault::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    self.0.put_pieces(key, len, pieces).await
                }
            }
        })
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, StoreError>> {
        self.0.get(key)
    }
    fn get_range<'a>(
        &'a self,
        key: &'a str,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, StoreError>> {
        self.0.get_range(key, range)
    }
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        self.0.head(key)
    }
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>> {
        self.0.list(prefix)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.delete(key)
    }
    fn describe(&self) -> String {
        format!("{:?} {}", self.1, self.0.describe())
    }
}

#[tokio::test]
async fn a_failing_store_turns_the_video_to_error_and_spares_the_clip() {
    let dir = temp_dir("vod-fail");
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let chunks_before = engine
        .rendition_chunks(stream, "media_3_240")
        .unwrap()
        .len();
    let clip = ladder_clip(&engine, stream);

    let vod = Vod::open(Arc::new(Faulty(local(&dir), Fault::Refused)), "http://h")
        .await
        .unwrap();
    let rec = vod.write_clip(&clip, "ladder").await.unwrap();
    assert_eq!(rec.status, VideoStatus::Error);
    let why = rec.error.clone().unwrap();
    assert!(why.contains("connection refused"), "{why}");
    assert_eq!(vod.video_json(rec.id).unwrap()["error"], why.as_str());
    // The error is recorded in the store as well.
    let stored: VideoRecord =
        serde_json::from_slice(&std::fs::read(dir.join(VideoRecord::key(rec.id))).unwrap())
            .unwrap();
    assert_eq!(stored.status, VideoStatus::Error);
    // The clip and the DVR are as they were.
    assert!(engine.clip(clip.id()).is_ok());
    assert_eq!(
        engine
            .rendition_chunks(stream, "media_3_240")
            .unwrap()
            .len(),
        chunks_before
    );

    // A store that could not be opened at all: same outcome, with its reason.
    let down = Vod::new(
        Arc::new(UnavailableStore("no such bucket".into())),
        "http://h",
    );
    let clip2 = ladder_clip(&engine, stream);
    let rec2 = down.write_clip(&clip2, "ladder").await.unwrap();
    assert_eq!(rec2.status, VideoStatus::Error);
    assert!(rec2.error.unwrap().contains("no such bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_creates_serves_and_keeps_videos() {
    let dir = temp_dir("vod-http");
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let cfg = config(&dir);
    let vod = Vod::open(local(&dir), cfg.public_url.clone())
        .await
        .unwrap();
    let app = App::with_engine_and_vod(cfg, engine.clone(), vod);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dvrclip_server::serve(app.clone(), listener, async {
        let _ = stop_rx.await;
    }));
    let auth = [("Authorization", "APIKey k$1")];

    let top = engine.rendition_chunks(stream, "media_3_240").unwrap();
    let body = format!(
        r#"{{"duration": 8, "start": {}, "vod_required": true}}"#,
        top[0].start_utc().unix_secs()
    );
    let path = format!("/streaming/streams/{}/clip_recording", stream.0);
    let created = http(addr, "PUT", &path, &auth, &body).await;
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["video_id"].as_u64().unwrap();

    // The video answers at once (pending or already ready), then turns ready.
    let video_path = format!("/streaming/videos/{id}");
    let mut v = http(addr, "GET", &video_path, &auth, "").await.json();
    for _ in 0..500 {
        if v["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        v = http(addr, "GET", &video_path, &auth, "").await.json();
    }
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(v["id"], id);
    let mp4_url = v["origin_url"].as_str().unwrap();
    let mp4_path = &mp4_url[mp4_url.find("/vod/").unwrap()..];

    let clip = engine
        .clip(dvrclip_engine::ClipId::parse(created.json()["id"].as_str().unwrap()).unwrap())
        .unwrap();
    let expected = whole(&clip_mp4(&clip));
    let full = http(addr, "GET", mp4_path, &[], "").await;
    assert_eq!(full.status, 200);
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("access-control-allow-origin"), Some("*"));
    assert!(full.body == expected, "served bytes differ");
    let etag = full.header("etag").unwrap().to_owned();

    // RFC 9110 §14.2/§15.3.7: a satisfiable single range is answered 206 with Content-Range.
    let part = http(addr, "GET", mp4_path, &[("Range", "bytes=1000-1999")], "").await;
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1000-1999/{}", expected.len()).as_str())
    );
    assert!(part.body[..] == expected[1000..2000]);
    // §13.1.2: If-None-Match with the current tag → 304.
    let cached = http(addr, "GET", mp4_path, &[("If-None-Match", &etag)], "").await;
    assert_eq!(cached.status, 304);

    // The HLS form: the playlist, ranges of its one file, and ffprobe playing it.
    let hls_url = v["hls_url"]
        .as_str()
        .unwrap()
        .replace("127.0.0.1:0", &addr.to_string());
    let pl = http(addr, "GET", &format!("/vod/{id}.m3u8"), &[], "").await;
    assert_eq!(pl.status, 200);
    assert_eq!(
        pl.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    let text = String::from_utf8(pl.body).unwrap();
    assert!(text.contains(&format!("URI=\"{id}.m4s\"")), "{text}");
    let seg = http(
        addr,
        "GET",
        &format!("/vod/{id}.m4s"),
        &[("Range", "bytes=0-7")],
        "",
    )
    .await;
    assert_eq!(seg.status, 206);
    assert_eq!(&seg.body[4..8], b"ftyp");
    if require_tool("ffprobe") {
        let (codecs, secs) = tokio::task::spawn_blocking(move || ffprobe(hls_url))
            .await
            .unwrap();
        assert_eq!(codecs, ["h264", "aac"], "ffprobe streams of the HLS form");
        let ms = v["duration"].as_f64().unwrap();
        assert!((secs * 1000.0 - ms).abs() < 150.0, "{secs} s vs {ms} ms");
    }

    let head = http(addr, "HEAD", mp4_path, &[], "").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    assert!(head.body.is_empty());

    assert_eq!(
        http(addr, "GET", "/streaming/videos/999", &auth, "")
            .await
            .status,
        404
    );
    assert_eq!(http(addr, "GET", "/vod/999.mp4", &[], "").await.status, 404);
    assert_eq!(http(addr, "GET", &video_path, &[], "").await.status, 401);

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    app.shutdown().await;

    // Restart over the same directory: the video is still served.
    let app = App::start(config(&dir)).await.unwrap();
    assert_eq!(app.engine.config().first_video_id, id + 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dvrclip_server::serve(app.clone(), listener, async {
        let _ = stop_rx.await;
    }));
    assert_eq!(
        http(addr, "GET", &video_path, &auth, "").await.json()["status"],
        "ready"
    );
    let again = http(addr, "GET", mp4_path, &[], "").await;
    assert_eq!(again.status, 200);
    assert!(again.body == expected);
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    app.shutdown().await;
}

#[test]
fn the_store_is_local_by_default_and_s3_when_a_bucket_is_given() {
    let base = ServeArgs {
        data_dir: Some("/srv/d".into()),
        api_key: Some("k".into()),
        ..ServeArgs::default()
    };
    let c = Config::resolve(&base).unwrap();
    assert_eq!(c.vod_store, StoreConfig::Local("/srv/d/vod".into()));
    let s3 = ServeArgs {
        s3_bucket: Some("clips".into()),
        s3_endpoint: Some("http://127.0.0.1:9000".into()),
        s3_region: Some("eu-west-1".into()),
        ..base.clone()
    };
    assert_eq!(
        Config::resolve(&s3).unwrap().vod_store,
        StoreConfig::S3 {
            bucket: "clips".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("eu-west-1".into()),
        }
    );
    let orphan = ServeArgs {
        s3_endpoint: Some("http://x".into()),
        ..base
    };
    assert!(Config::resolve(&orphan).is_err());
}

#[tokio::test]
async fn a_store_that_cannot_open_does_not_stop_the_server() {
    let dir = temp_dir("vod-nostore");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let mut cfg = config(&dir);
    cfg.vod_store = StoreConfig::Local(file.join("vod"));
    let app = App::start(cfg).await.unwrap();
    // Ids come from the clock so they cannot collide with unread earlier videos.
    assert!(app.engine.config().first_video_id > 1_700_000_000_000);
    let stream = app
        .engine
        .create_stream(dvrclip_engine::StreamSettings::named("s"))
        .unwrap();
    assert_eq!(app.engine.stream(stream.id).unwrap().name, "s");
    app.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_a_recording_clips_video_pending_then_error_at_start() {
    let dir = temp_dir("vod-shutdown");
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    // A clip starting now: recording until 30 s from now.
    let clip = engine
        .create_clip(
            stream,
            dvrclip_engine::ClipRequest {
                duration_secs: 30,
                start_unix_secs: Some(engine.now().unix_secs()),
                vod_required: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!clip.view().is_complete());
    let vod = Vod::open(local(&dir), "http://h").await.unwrap();
    vod.start_writer(clip.clone(), "ladder").await;
    let id = clip.video_id().unwrap();
    assert_eq!(vod.video(id).unwrap().status, VideoStatus::Pending);
    let record = dir.join(VideoRecord::key(id));
    for _ in 0..500 {
        if record.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(record.exists(), "the pending record is written at once");
    // A writer waiting for its clip does not hold shutdown for the grace period.
    let t = std::time::Instant::now();
    vod.shutdown(Duration::from_secs(30)).await;
    assert!(t.elapsed() < Duration::from_secs(5));
    let after = Vod::open(local(&dir), "http://h").await.unwrap();
    let rec = after.video(id).unwrap();
    assert_eq!(
        (rec.status, rec.error.as_deref()),
        (VideoStatus::Error, Some(INTERRUPTED))
    );
}

#[tokio::test]
async fn shutdown_lets_a_write_in_progress_finish_within_the_grace_period() {
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());

    // Within the grace period: the video is finished and ready after a restart.
    let dir = temp_dir("vod-grace");
    let slow = Arc::new(Faulty(local(&dir), Fault::Slow(Duration::from_millis(100))));
    let vod = Vod::open(slow, "http://h").await.unwrap();
    let clip = ladder_clip(&engine, stream);
    vod.start_writer(clip.clone(), "ladder").await;
    vod.shutdown(Duration::from_secs(30)).await;
    let id = clip.video_id().unwrap();
    assert_eq!(vod.video(id).unwrap().status, VideoStatus::Ready);
    let after = Vod::open(local(&dir), "http://h").await.unwrap();
    assert_eq!(after.video(id).unwrap().status, VideoStatus::Ready);

    // Past it: the write is cut, and the next start shows an error, no media.
    let dir = temp_dir("vod-grace-cut");
    let slow = Arc::new(Faulty(local(&dir), Fault::Slow(Duration::from_secs(60))));
    let vod = Vod::open(slow, "http://h").await.unwrap();
    let clip = ladder_clip(&engine, stream);
    vod.start_writer(clip.clone(), "ladder").await;
    vod.shutdown(Duration::from_millis(200)).await;
    let id = clip.video_id().unwrap();
    let after = Vod::open(local(&dir), "http://h").await.unwrap();
    let rec = after.video(id).unwrap();
    assert_eq!(
        (rec.status, rec.error.as_deref()),
        (VideoStatus::Error, Some(INTERRUPTED))
    );
    assert_eq!(local(&dir).list("media").await.unwrap(), []);
}

/// Issue 20: a video left `pending` by a killed run is settled once the engine is
/// restored: its complete clip is written at once (the clip's MP4 byte for byte),
/// and a record whose clip did not come back turns `error`.
#[tokio::test]
async fn resume_writes_a_pending_video_whose_clip_is_back() {
    let dir = temp_dir("vod-resume");
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let clip = ladder_clip(&engine, stream);
    let id = clip.video_id().unwrap();
    // What the killed run left in the store: two records `pending`, no media; the
    // second names a clip the engine does not hold.
    let store = local(&dir);
    for (vid, clip_id) in [(id, clip.id().to_string()), (id + 1, "f".repeat(32))] {
        let rec = VideoRecord::pending(
            vid,
            "ladder".into(),
            stream.0,
            clip_id,
            clip.created_at().to_rfc3339_millis(),
        );
        let body = Bytes::from(rec.to_stored_json("http://h").to_string());
        store.put(&VideoRecord::key(vid), body).await.unwrap();
    }
    let vod = dvrclip_server::vod::open(&StoreConfig::Local(dir.clone()), None, "http://h").await;
    assert_eq!(vod.video(id).unwrap().status, VideoStatus::Pending);
    assert_eq!(vod.resume(&engine).await, 1, "one writer resumed");
    let gone = vod.video(id + 1).unwrap();
    assert_eq!(
        (gone.status, gone.error.as_deref()),
        (VideoStatus::Error, Some(INTERRUPTED))
    );
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let rec = vod.video(id).unwrap();
            if rec.status != VideoStatus::Pending {
                return rec;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(ready.status, VideoStatus::Ready, "{:?}", ready.error);
    let expected = clip_mp4(&clip);
    assert_eq!(ready.etag.as_deref(), Some(expected.etag()));
    let on_disk = std::fs::read(dir.join(ready.media_key.unwrap())).unwrap();
    assert!(on_disk == whole(&expected), "the clip's MP4 byte for byte");
}

/// `design/cluster.md` "Videos": nodes of a cluster sharing one bucket keep their
/// videos under `nodes/{node id}`, so one node's recovery, which settles the records
/// it finds (`pending` ones whose clip it does not hold turn `error`) and removes
/// media no record names, leaves another node's video in progress untouched.
#[tokio::test]
async fn a_node_recovering_leaves_other_nodes_videos_alone() {
    let dir = temp_dir("vod-shared");
    let config = StoreConfig::Local(dir.clone());
    let node = |id: &str| -> Arc<dyn VodStore> {
        Arc::new(
            ObjectVodStore::open(&config)
                .unwrap()
                .within(&format!("nodes/{id}")),
        )
    };
    // n2's video in progress: its record `pending`, media being written.
    let n2 = node("n2");
    let rec = VideoRecord::pending(
        33,
        "cam".into(),
        1,
        "f".repeat(32),
        "2026-12-02T00:00:00.000Z".into(),
    );
    let body = Bytes::from(rec.to_stored_json("http://h").to_string());
    n2.put(&VideoRecord::key(33), body).await.unwrap();
    n2.put("media/33-abc.mp4", Bytes::from_static(b"mp4"))
        .await
        .unwrap();

    let n1 = dvrclip_server::vod::open(&config, Some("nodes/n1"), "http://h").await;
    n1.resume(&dvrclip_engine::Engine::default()).await;
    assert!(n1.video(33).is_none(), "n1 sees only its own videos");
    let n2_records = n2.list("videos").await.unwrap();
    assert_eq!(n2_records.len(), 1);
    assert_eq!(n2.list("media").await.unwrap().len(), 1, "n2's media kept");
    let stored = read_all(&*n2, &VideoRecord::key(33), 0..n2_records[0].1).await;
    assert!(String::from_utf8_lossy(&stored).contains("pending"));
    assert!(dir.join("nodes/n2/media/33-abc.mp4").exists());
}
