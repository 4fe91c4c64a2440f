//! The VOD store against a real S3-compatible server (issue 8): `moto` from PyPI
//! (`pip install 'moto[server]'`, done by `.ci/run`), started here on 127.0.0.1.
//! When moto cannot be started the test fails under CI and is skipped, saying so,
//! elsewhere (`tests/common/require.rs`).
//!
//! The same code path as production: `s3_builder` with an endpoint, path-style
//! requests, plain HTTP allowed; only the credentials are given here rather than
//! read from `AWS_*` (setting the environment is `unsafe` in edition 2024).

#[path = "../../../tests/common/moto.rs"]
mod moto;
mod vod_util;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dvrclip_engine::EngineConfig;
use dvrclip_server::app::App;
use dvrclip_server::config::{Config, ServeArgs};
use dvrclip_server::vod::store::{Pieces, s3_builder, s3_retry};
use dvrclip_server::vod::{INTERRUPTED, ObjectVodStore, VideoRecord, VideoStatus, Vod, VodStore};
use futures_util::TryStreamExt;
use moto::{Moto, start_moto};
use object_store::RetryConfig;
use object_store::aws::AmazonS3Builder;
use vod_util::*;

fn s3_store(moto: &Moto, bucket: &str) -> Arc<dyn VodStore> {
    let endpoint = format!("http://{}", moto.addr);
    let base = AmazonS3Builder::new()
        .with_access_key_id("testing")
        .with_secret_access_key("testing");
    // Production's policy retries for 20 s; once moto is killed below, one quick
    // retry keeps the test short while still going through the retry path.
    let b = s3_builder(base, bucket, Some(&endpoint), Some("us-east-1")).with_retry(RetryConfig {
        max_retries: 1,
        retry_timeout: Duration::from_secs(2),
        ..s3_retry()
    });
    Arc::new(ObjectVodStore::s3(b).unwrap())
}

async fn read_all(store: &dyn VodStore, key: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let parts: Vec<Bytes> = store
        .get_range(key, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    parts.concat()
}

#[tokio::test]
async fn s3_round_trip_against_moto() {
    let moto = match start_moto() {
        Ok(m) => m,
        Err(why) => {
            require("moto (python3 -m pip install 'moto[server]')", Err(why));
            return;
        }
    };
    let bucket = "dvrclip-vod";
    let made = http(moto.addr, "PUT", &format!("/{bucket}"), &[], "").await;
    assert_eq!(made.status, 200, "creating the bucket");
    let store = s3_store(&moto, bucket);

    // Objects: a small PUT, a 20 MiB multipart upload, ranged GETs, list, delete.
    store
        .put("videos/x.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(store.get("videos/x.json").await.unwrap(), &b"{}"[..]);
    let pieces: Vec<Bytes> = (0..40u8)
        .map(|i| Bytes::from(vec![i; 512 * 1024 + i as usize]))
        .collect();
    let all = pieces.concat();
    let len = all.len() as u64;
    let it: Pieces<'_> = Box::new(pieces.into_iter());
    store.put_pieces("media/big.mp4", len, it).await.unwrap();
    assert_eq!(store.head("media/big.mp4").await.unwrap(), Some(len));
    assert!(read_all(&*store, "media/big.mp4", 0..len).await == all);
    assert!(
        read_all(&*store, "media/big.mp4", 8_388_000..8_389_000).await[..]
            == all[8_388_000..8_389_000]
    );
    let mut listed = store.list("").await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("media/big.mp4".to_owned(), len),
            ("videos/x.json".to_owned(), 2)
        ]
    );
    store.delete("media/big.mp4").await.unwrap();
    store.delete("videos/x.json").await.unwrap();
    assert_eq!(store.head("media/big.mp4").await.unwrap(), None);
    assert!(store.get("videos/x.json").await.unwrap_err().is_not_found());

    // A clip written as a video: the stored object is the clip's MP4.
    let (engine, _clock, stream) = ladder_engine(EngineConfig::default());
    let clip = ladder_clip(&engine, stream);
    let vod = Vod::open(store.clone(), "http://h").await.unwrap();
    let rec = vod.write_clip(&clip, "ladder").await.unwrap();
    assert_eq!(rec.status, VideoStatus::Ready, "{:?}", rec.error);
    let expected = whole(&clip_mp4(&clip));
    let key = rec.media_key.clone().unwrap();
    assert!(read_all(&*store, &key, 0..expected.len() as u64).await == expected);

    // What a crash leaves, on S3: media without a record, a pending record.
    store
        .put("media/77-feed.mp4", Bytes::from_static(b"half"))
        .await
        .unwrap();
    let pending = VideoRecord {
        id: rec.id + 1,
        status: VideoStatus::Pending,
        media_key: None,
        size: None,
        ..rec.clone()
    };
    store
        .put(
            &VideoRecord::key(pending.id),
            Bytes::from(serde_json::to_vec(&pending).unwrap()),
        )
        .await
        .unwrap();

    // A restart over the same bucket: the video is there, the wreckage handled.
    let vod = Vod::open(store.clone(), "http://h").await.unwrap();
    assert_eq!(vod.video(rec.id), Some(rec.clone()));
    let p = vod.video(pending.id).unwrap();
    assert_eq!(
        (p.status, p.error.as_deref()),
        (VideoStatus::Error, Some(INTERRUPTED))
    );
    assert_eq!(store.head("media/77-feed.mp4").await.unwrap(), None);
    assert_eq!(vod.next_video_id(), pending.id + 1);

    // Served over HTTP with Range, as ranged GETs on the bucket.
    let config = Config::resolve(&ServeArgs {
        api_key: Some("k".into()),
        data_dir: Some(temp_dir("vod-s3-unused")),
        ..ServeArgs::default()
    })
    .unwrap();
    let app = App::with_engine_and_vod(config, engine.clone(), vod);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dvrclip_server::serve(app.clone(), listener, async {
        let _ = stop_rx.await;
    }));
    let path = format!("/vod/{}.mp4", rec.id);
    let part = http(addr, "GET", &path, &[("Range", "bytes=-500")], "").await;
    assert_eq!(part.status, 206);
    assert!(part.body[..] == expected[expected.len() - 500..]);
    let full = http(addr, "GET", &path, &[], "").await;
    assert_eq!(full.status, 200);
    assert!(full.body == expected);
    // The HLS form from the bucket too.
    let pl = http(addr, "GET", &format!("/vod/{}.m3u8", rec.id), &[], "").await;
    assert_eq!(pl.status, 200);
    assert!(
        String::from_utf8(pl.body)
            .unwrap()
            .contains("#EXT-X-BYTERANGE:")
    );
    let seg = http(
        addr,
        "GET",
        &format!("/vod/{}.m4s", rec.id),
        &[("Range", "bytes=4-7")],
        "",
    )
    .await;
    assert_eq!((seg.status, &seg.body[..]), (206, &b"ftyp"[..]));

    // The endpoint gone: reads answer 503 with a reason (never a short 200), a new
    // video fails with its reason, and the clip and the DVR stay as they were.
    drop(moto);
    let gone = http(addr, "GET", &path, &[], "").await;
    assert_eq!(gone.status, 503, "{}", String::from_utf8_lossy(&gone.body));
    assert!(String::from_utf8_lossy(&gone.body).contains("video"));
    let before = engine
        .rendition_chunks(clip.stream_id(), "media_3_240")
        .unwrap();
    let clip2 = ladder_clip(&engine, clip.stream_id());
    let rec2 = app.vod.write_clip(&clip2, "ladder").await.unwrap();
    assert_eq!(rec2.status, VideoStatus::Error);
    assert!(rec2.error.as_deref().is_some_and(|e| !e.is_empty()));
    assert!(engine.clip(clip2.id()).is_ok());
    let after = engine
        .rendition_chunks(clip.stream_id(), "media_3_240")
        .unwrap();
    assert_eq!(before.len(), after.len());
    // The video that was written is still listed as ready; its bytes come back
    // when the endpoint does.
    assert_eq!(
        app.vod.video(rec.id).map(|r| r.status),
        Some(VideoStatus::Ready)
    );
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    app.shutdown().await;
    eprintln!("S3 round trip against moto, then without it: ok");
}
