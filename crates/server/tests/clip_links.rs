//! A clip's public links served in process on a manual clock (ref/api.md "Public clip
//! links", "Operations"): a built MP4 counts in the memory budget until its clip
//! expires and its last download ends, a header that does not fit is refused, a
//! clip cut through the API has its master MP4 built before any request (one build,
//! shared with a request that comes during it), and clip media may be cached
//! exactly until the clip expires. No socket; the only waits are for the
//! background build, polled.

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::ClipId;
use dvrclip_engine::{
    Clip, ClipRequest, Engine, EngineConfig, ManualClock, StreamId, StreamSettings, WallTime,
};
use dvrclip_server::app::App;
use dvrclip_server::config::{Config, ServeArgs};
use dvrclip_server::http::HttpResponse;
use dvrclip_server::service::Service;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

const START: i64 = 1_800_000_000;

fn fixture(name: &str) -> Bytes {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/h264_aac")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// An engine on a manual clock holding `h264_aac`'s two 2 s segments, the clock
/// then a minute past them.
fn setup(budget: u64) -> (Arc<Engine>, Arc<ManualClock>, StreamId) {
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(START)));
    let config = EngineConfig {
        memory_budget_bytes: budget,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::with_clock(config, clock.clone()));
    let stream = engine
        .create_stream(StreamSettings::named("links"))
        .unwrap()
        .id;
    engine
        .push_init_bytes(stream, "v", fixture("init.mp4"))
        .unwrap();
    for name in ["seg_000.m4s", "seg_001.m4s"] {
        clock.advance_secs(2);
        let bytes = fixture(name);
        engine
            .push_segment_bytes(stream, "v", Some(name), bytes)
            .unwrap();
    }
    clock.advance_secs(60);
    (engine, clock, stream)
}

/// A complete clip of everything held, expiring `expires_in` seconds from now.
fn clip(engine: &Engine, stream: StreamId, expires_in: i64) -> Clip {
    let first = engine.rendition_chunks(stream, "v").unwrap()[0].start_utc();
    let now = engine.now().unix_secs();
    let clip = engine
        .create_clip(
            stream,
            ClipRequest {
                duration_secs: 4,
                start_unix_secs: Some(first.unix_secs()),
                expiration_unix_secs: Some(now + expires_in),
                ..ClipRequest::default()
            },
        )
        .unwrap();
    assert!(clip.view().is_complete());
    clip
}

fn app(engine: Arc<Engine>) -> Arc<App> {
    let dir = std::env::temp_dir().join(format!("dvrclip-clip-links-{}", std::process::id()));
    let config = Config::resolve(&ServeArgs {
        public_url: Some("http://links.test".into()),
        api_key: Some("k".into()),
        data_dir: Some(dir),
        ..ServeArgs::default()
    })
    .unwrap();
    App::with_engine(config, engine)
}

async fn get(service: &Service, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut req = Request::get(path).header("Host", "links.test");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    service
        .handle(req.body(Empty::<Bytes>::new()).unwrap())
        .await
}

async fn body(resp: HttpResponse) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

fn header<'a>(resp: &'a HttpResponse, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

fn links(clip: &Clip, stream: StreamId) -> (String, String, String) {
    let base = format!("/rec/{}/rec_{}", stream.0, clip.id());
    (
        format!("{base}_master.mp4"),
        format!("{base}_master.m3u8"),
        format!("{base}_v"),
    )
}

async fn metric(service: &Service, name: &str) -> u64 {
    let text = body(get(service, "/metrics", &[]).await).await;
    let text = String::from_utf8(text.to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// Issue 15, "Memory the budget does not see": a built MP4's header is counted in
/// the budget (a reservation beside the cached file) from its first request until
/// the clip expires and the last download of it ends.
#[tokio::test]
async fn a_built_mp4_is_counted_until_its_clip_expires_and_its_downloads_end() {
    let (engine, clock, stream) = setup(1 << 30);
    let clip = clip(&engine, stream, 600);
    let app = app(engine.clone());
    let service = Service::new(app.clone());
    let (mp4, _, _) = links(&clip, stream);
    assert_eq!(engine.memory().reserved_bytes, 0);
    assert_eq!(metric(&service, "dvrclip_mp4_memory_bytes").await, 0);

    let first = get(&service, &mp4, &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let built = clip
        .mp4(&clip.view(), clip.view().reference().unwrap())
        .unwrap();
    // The header's own bytes and its piece table; the sample-table rows in it are
    // the chunks' encoded rows, counted with the chunks (issue 19).
    let counted = built.memory_bytes();
    assert!(counted > 0, "{counted}");
    assert_eq!(engine.memory().reserved_bytes, counted);
    assert_eq!(metric(&service, "dvrclip_mp4_memory_bytes").await, counted);
    assert_eq!(metric(&service, "dvrclip_connection_memory_bytes").await, 0);
    let chunks = engine.memory().total_bytes;
    assert_eq!(
        metric(&service, "dvrclip_memory_bytes").await,
        chunks + counted
    );
    // A second request shares the built file: nothing more is counted.
    let second = get(&service, &mp4, &[("Range", "bytes=0-99")]).await;
    assert_eq!(second.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body(second).await.len(), 100);
    assert_eq!(engine.memory().reserved_bytes, counted);

    // The clip expires with `first`'s body still unsent: the link is gone, the
    // cache forgets the file, the download in flight keeps it (and its count).
    clock.advance_secs(601);
    app.tick();
    assert_eq!(
        get(&service, &mp4, &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(engine.memory().reserved_bytes, counted);
    assert_eq!(body(first).await.len() as u64, built.len());
    assert_eq!(engine.memory().reserved_bytes, 0);
    assert_eq!(metric(&service, "dvrclip_mp4_memory_bytes").await, 0);
}

/// A JSON API call (the app's key is `k`).
async fn api(service: &Service, method: Method, path: &str, body: &str) -> HttpResponse {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "links.test")
        .header("Authorization", "APIKey k")
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    service.handle(req).await
}

/// A complete clip of everything held, cut through the API (which starts the
/// background build of its master MP4).
async fn api_clip(service: &Service, engine: &Engine, stream: StreamId) -> Clip {
    let first = engine.rendition_chunks(stream, "v").unwrap()[0].start_utc();
    let path = format!("/streaming/streams/{}/clip_recording", stream.0);
    let body = format!(r#"{{"duration": 4, "start": {}}}"#, first.unix_secs());
    let resp = api(service, Method::PUT, &path, &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&body_of(resp).await).unwrap();
    let id = ClipId::parse(json["id"].as_str().unwrap()).unwrap();
    let clip = engine.clip(id).unwrap();
    assert!(clip.view().is_complete());
    clip
}

async fn body_of(resp: HttpResponse) -> Bytes {
    body(resp).await
}

/// Polls `/metrics` until `name` reaches `want` (the background build runs on a
/// blocking thread); fails after 10 s.
async fn wait_for_metric(service: &Service, name: &str, want: u64) {
    for _ in 0..10_000 {
        if metric(service, name).await >= want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("{name} never reached {want}");
}

/// Issue 19, "a 4 h clip's first byte": a complete clip's master MP4 is built in
/// the background when the clip is cut, before any request, into the same counted
/// cache; the first request is served from it (no second build, the ETag and bytes
/// of a build on request), and a delete drops it as before.
#[tokio::test]
async fn a_complete_clips_master_mp4_is_built_before_any_request() {
    let (engine, _, stream) = setup(1 << 30);
    let app = app(engine.clone());
    let service = Service::new(app.clone());
    let clip = api_clip(&service, &engine, stream).await;
    wait_for_metric(&service, "dvrclip_mp4_prebuilt_total", 1).await;
    let expected = clip
        .mp4(&clip.view(), clip.view().reference().unwrap())
        .unwrap();
    let counted = expected.memory_bytes();
    assert_eq!(engine.memory().reserved_bytes, counted);
    assert_eq!(metric(&service, "dvrclip_mp4_memory_bytes").await, counted);
    assert_eq!(metric(&service, "dvrclip_mp4_builds_total").await, 1);

    let (mp4, _, _) = links(&clip, stream);
    let resp = get(&service, &mp4, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "etag"), expected.etag());
    let want: Vec<u8> = expected
        .range(0..expected.len())
        .unwrap()
        .flat_map(|b| b.to_vec())
        .collect();
    assert_eq!(body(resp).await.as_ref(), &want[..]);
    assert_eq!(metric(&service, "dvrclip_mp4_builds_total").await, 1);
    assert_eq!(metric(&service, "dvrclip_mp4_prebuilt_total").await, 1);

    let path = format!(
        "/streaming/streams/{}/clip_recording/{}",
        stream.0,
        clip.id()
    );
    let resp = api(&service, Method::DELETE, &path, "").await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        get(&service, &mp4, &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(engine.memory().reserved_bytes, 0);
    assert_eq!(metric(&service, "dvrclip_mp4_memory_bytes").await, 0);
}

/// A recording clip's master MP4 is built when it completes (here by its recording
/// deadline: the encoder stopped), not before; then the first request finds it.
#[tokio::test]
async fn a_recording_clips_master_mp4_is_built_when_it_completes() {
    let (engine, clock, stream) = setup(1 << 30);
    let app = app(engine.clone());
    let service = Service::new(app.clone());
    let first = engine.rendition_chunks(stream, "v").unwrap()[0].start_utc();
    let path = format!("/streaming/streams/{}/clip_recording", stream.0);
    let body = format!(r#"{{"duration": 120, "start": {}}}"#, first.unix_secs());
    let resp = api(&service, Method::PUT, &path, &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&body_of(resp).await).unwrap();
    let clip = engine
        .clip(ClipId::parse(json["id"].as_str().unwrap()).unwrap())
        .unwrap();
    assert!(!clip.view().is_complete());
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(metric(&service, "dvrclip_mp4_builds_total").await, 0);
    assert_eq!(engine.memory().reserved_bytes, 0);

    clock.advance_secs(300);
    app.tick();
    assert!(clip.view().is_complete());
    wait_for_metric(&service, "dvrclip_mp4_prebuilt_total", 1).await;
    let (mp4, _, _) = links(&clip, stream);
    assert_eq!(get(&service, &mp4, &[]).await.status(), StatusCode::OK);
    assert_eq!(metric(&service, "dvrclip_mp4_builds_total").await, 1);
}

/// One build per clip whoever asks first: a request right after the cut, at every
/// point of the background build from not yet started to done (the number of
/// scheduler turns between them swept), finds or waits for that build, or builds
/// it itself and the background build then finds it; never two builds.
#[tokio::test]
async fn a_request_during_the_background_build_shares_it() {
    let (engine, _, stream) = setup(1 << 30);
    let app = app(engine.clone());
    let service = Service::new(app.clone());
    let (mut first, mut background, mut prebuilt) = (None, None, 0);
    for turns in 0..40u64 {
        let clip = api_clip(&service, &engine, stream).await;
        for _ in 0..turns {
            tokio::task::yield_now().await;
        }
        let (mp4, _, _) = links(&clip, stream);
        let resp = get(&service, &mp4, &[("Range", "bytes=0-0")]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            metric(&service, "dvrclip_mp4_builds_total").await,
            turns + 1
        );
        let now = metric(&service, "dvrclip_mp4_prebuilt_total").await;
        if now == prebuilt {
            first.get_or_insert(turns);
        } else {
            background.get_or_insert(turns);
        }
        prebuilt = now;
    }
    // Both orders were seen: a request building (the background then finds it)
    // and the background building (the request found or waited for it).
    assert!(
        first.is_some() && background.is_some(),
        "{first:?} {background:?}"
    );
}

/// ref/api.md 503 "over the memory budget (clips hold all of it)": a header that
/// clips and other reservations leave no room for is refused, and nothing is
/// cached; with exactly enough room it is served.
#[tokio::test]
async fn a_header_the_budget_has_no_room_for_is_refused() {
    // The same input gives the same chunks and header on every engine.
    let (engine, _, stream) = setup(1 << 30);
    let c = clip(&engine, stream, 600);
    let pinned = engine.memory().clip_bytes;
    let header = c
        .mp4(&c.view(), c.view().reference().unwrap())
        .unwrap()
        .memory_bytes();
    drop((c, engine));

    let (engine, _, stream) = setup(pinned + header - 1);
    let c = clip(&engine, stream, 600);
    assert_eq!(engine.memory().clip_bytes, pinned);
    let service = Service::new(app(engine.clone()));
    let (mp4, _, _) = links(&c, stream);
    let resp = get(&service, &mp4, &[]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = body(resp).await;
    assert!(String::from_utf8_lossy(&text).contains("memory budget"));
    assert_eq!(engine.memory().reserved_bytes, 0);

    let (engine, _, stream) = setup(pinned + header);
    let c = clip(&engine, stream, 600);
    let service = Service::new(app(engine.clone()));
    let (mp4, _, _) = links(&c, stream);
    assert_eq!(get(&service, &mp4, &[]).await.status(), StatusCode::OK);
    assert_eq!(engine.memory().reserved_bytes, header);
}

/// Clip media may be cached until the clip expires, never after (RFC 9111
/// §5.2.2.1 `max-age`); a complete clip's playlists at most a minute.
#[tokio::test]
async fn clip_media_is_cacheable_exactly_until_the_clip_expires() {
    let (engine, clock, stream) = setup(1 << 30);
    let clip = clip(&engine, stream, 1800);
    let service = Service::new(app(engine.clone()));
    let (mp4, master, media) = links(&clip, stream);

    let resp = get(&service, &mp4, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "cache-control"), "public, max-age=1800");
    let etag = header(&resp, "etag").to_owned();
    // RFC 9110 §15.4.5: a 304 carries the Cache-Control a 200 would; so does a 206.
    let resp = get(&service, &mp4, &[("If-None-Match", &etag)]).await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&resp, "cache-control"), "public, max-age=1800");
    let resp = get(&service, &mp4, &[("Range", "bytes=10-19")]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "cache-control"), "public, max-age=1800");

    let resp = get(&service, &format!("{media}/seg_0.m4s"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "cache-control"),
        "public, max-age=1800, immutable"
    );
    let resp = get(&service, &master, &[]).await;
    assert_eq!(header(&resp, "cache-control"), "public, max-age=60");

    // 25 min later: 5 min left for the media; the playlist's minute still fits.
    clock.advance_secs(1500);
    let resp = get(&service, &mp4, &[("Range", "bytes=0-0")]).await;
    assert_eq!(header(&resp, "cache-control"), "public, max-age=300");
    let resp = get(&service, &format!("{media}/init_0.mp4"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "cache-control"),
        "public, max-age=300, immutable"
    );
    // 20 s left: nothing may be kept longer, the playlist included.
    clock.advance_secs(280);
    let resp = get(&service, &master, &[]).await;
    assert_eq!(header(&resp, "cache-control"), "public, max-age=20");
    let resp = get(&service, &format!("{media}.m3u8"), &[]).await;
    assert_eq!(header(&resp, "cache-control"), "public, max-age=20");
    let resp = get(&service, &mp4, &[("Range", "bytes=0-0")]).await;
    assert_eq!(header(&resp, "cache-control"), "public, max-age=20");
}

/// A recording clip's playlists change with every chunk: `no-cache` (RFC 8216
/// §6.2.1); its MP4 is not there yet.
#[tokio::test]
async fn a_recording_clips_playlists_are_not_cached() {
    let (engine, _, stream) = setup(1 << 30);
    let clip = engine
        .create_clip(
            stream,
            ClipRequest {
                duration_secs: 60,
                ..ClipRequest::default()
            },
        )
        .unwrap();
    assert!(!clip.view().is_complete());
    let service = Service::new(app(engine.clone()));
    let (mp4, master, _) = links(&clip, stream);
    let resp = get(&service, &master, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "cache-control"), "no-cache");
    assert_eq!(
        get(&service, &mp4, &[]).await.status(),
        StatusCode::TOO_EARLY
    );
}

/// A live playlist is rendered once per ring change and answered with a strong ETag:
/// RFC 9110 §13.1.2 "If-None-Match ... the origin server MUST NOT perform the
/// requested method" when a tag matches (304), and a new chunk changes the text and
/// its tag (RFC 8216 §6.2.1: the server appends to a live playlist).
#[tokio::test]
async fn a_live_playlist_poll_between_chunks_is_a_304() {
    let (engine, clock, stream) = setup(1 << 30);
    let key = engine.stream(stream).unwrap().play_key;
    let service = Service::new(app(engine.clone()));
    for path in [
        format!("/live/{key}/v.m3u8"),
        format!("/live/{key}/master.m3u8"),
    ] {
        let first = get(&service, &path, &[]).await;
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(header(&first, "cache-control"), "no-cache");
        assert_eq!(
            header(&first, "content-type"),
            "application/vnd.apple.mpegurl"
        );
        let etag = header(&first, "etag").to_owned();
        let text = body(first).await;
        assert!(text.starts_with(b"#EXTM3U\n"));

        let again = get(&service, &path, &[]).await;
        assert_eq!(header(&again, "etag"), etag);
        assert_eq!(body(again).await, text);
        let not_modified = get(&service, &path, &[("If-None-Match", &etag)]).await;
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&not_modified, "cache-control"), "no-cache");
        assert!(body(not_modified).await.is_empty());
    }

    let path = format!("/live/{key}/v.m3u8");
    let before = get(&service, &path, &[]).await;
    let etag = header(&before, "etag").to_owned();
    let before = body(before).await;
    // The fixture's first segment again, two segments later in media time: a new
    // chunk in the window.
    let init = dvrclip_fmp4::parse_init(fixture("init.mp4")).unwrap();
    let mut shifted = dvrclip_fmp4::parse_segment(fixture("seg_000.m4s"), &init).unwrap();
    for t in &mut shifted.tracks {
        let scale = init.track(t.track_id).map_or(1, |tr| tr.timescale);
        let shift = 4 * u64::from(scale);
        t.base_decode_ticks += shift;
        for s in &mut t.samples {
            s.decode_ticks += shift;
        }
    }
    clock.advance_secs(2);
    engine.push_segment(stream, "v", None, shifted).unwrap();
    let after = get(&service, &path, &[("If-None-Match", &etag)]).await;
    assert_eq!(after.status(), StatusCode::OK);
    assert_ne!(header(&after, "etag"), etag);
    let after = body(after).await;
    assert!(after.len() > before.len());
    assert_eq!(
        String::from_utf8_lossy(&after).matches("#EXTINF").count(),
        3
    );
}

/// A clip's playlists carry a strong ETag too; the same view answers a matching
/// `If-None-Match` with 304 and the Cache-Control a 200 would carry (§15.4.5).
#[tokio::test]
async fn a_clip_playlist_revalidates_with_its_etag() {
    let (engine, clock, stream) = setup(1 << 30);
    let clip = clip(&engine, stream, 1800);
    let app = app(engine.clone());
    let service = Service::new(app.clone());
    let (_, master, media) = links(&clip, stream);
    for path in [master, format!("{media}.m3u8")] {
        let first = get(&service, &path, &[]).await;
        assert_eq!(first.status(), StatusCode::OK);
        let etag = header(&first, "etag").to_owned();
        let resp = get(&service, &path, &[("If-None-Match", &etag)]).await;
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&resp, "cache-control"), "public, max-age=60");
        let resp = get(&service, &path, &[("If-None-Match", "\"other\"")]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body(resp).await, body(first).await);
    }
    // The kept texts count in the budget until the clip is gone.
    assert!(engine.memory().reserved_bytes > 0);
    clock.advance_secs(1801);
    app.tick();
    assert_eq!(engine.memory().reserved_bytes, 0);
}
