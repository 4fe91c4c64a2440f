//! kill -9 in the middle of a VOD write (issue 8: "kill -9 in the middle of a write
//! leaves no visible corrupt video"). The test re-runs its own binary as a child
//! that streams a 40 MiB MP4 into a local store as a multipart upload, slowly;
//! once the upload's staging file is on disk the child is SIGKILLed. The next start
//! shows no media object, sweeps the staging file, and turns the video's `pending`
//! record into `error`.

mod vod_util;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dvrclip_server::vod::store::Pieces;
use dvrclip_server::vod::{
    INTERRUPTED, ObjectVodStore, StoreConfig, VideoRecord, VideoStatus, Vod, VodStore,
};
use vod_util::temp_dir;

const CHILD_ENV: &str = "DVRCLIP_VOD_CRASH_CHILD_DIR";
const MEDIA: &str = "media/5-0123456789abcdef.mp4";

fn local(dir: &std::path::Path) -> Arc<dyn VodStore> {
    Arc::new(ObjectVodStore::open(&StoreConfig::Local(dir.to_owned())).unwrap())
}

/// The child's part: does nothing unless the parent set [`CHILD_ENV`].
#[tokio::test]
async fn child_writes_slowly_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = local(std::path::Path::new(&dir));
    let piece = Bytes::from(vec![7u8; 1 << 20]);
    // 40 pieces of 1 MiB, 50 ms apart: the first 8 MiB part lands, then it crawls.
    let pieces: Pieces<'_> = Box::new((0..40).map(move |_| {
        std::thread::sleep(Duration::from_millis(50));
        piece.clone()
    }));
    let _ = store.put_pieces(MEDIA, 40 << 20, pieces).await;
}

#[tokio::test]
async fn kill_9_mid_write_leaves_no_visible_video() {
    let dir = temp_dir("vod-kill9");
    // The video as the writer records it before any media: `pending`.
    let at = "2026-11-25T06:00:00.000Z".to_owned();
    let pending = VideoRecord::pending(5, "cam".into(), 1, "00".into(), at);
    local(&dir)
        .put(
            &VideoRecord::key(5),
            Bytes::from(serde_json::to_vec(&pending).unwrap()),
        )
        .await
        .unwrap();

    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "child_writes_slowly_until_killed", "--nocapture"])
        .env(CHILD_ENV, &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the upload's staging file (`{key}#{n}`), with some bytes in it.
    let media_dir = dir.join("media");
    let deadline = Instant::now() + Duration::from_secs(30);
    let staging = loop {
        let found = std::fs::read_dir(&media_dir).ok().and_then(|rd| {
            rd.filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().contains('#'))
        });
        if let Some(e) = found.filter(|e| e.metadata().is_ok_and(|m| m.len() >= 8 << 20)) {
            break e.path();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child ended before it was killed"
        );
        assert!(Instant::now() < deadline, "no staging file appeared");
        // Watching another process write: there is no clock to drive.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(staging.exists(), "the kill left the staging file behind");

    // Nothing half-written is visible, before or after recovery.
    let store = local(&dir);
    assert_eq!(store.head(MEDIA).await.unwrap(), None);
    let vod = Vod::open(store.clone(), "http://h").await.unwrap();
    assert!(!staging.exists(), "start-up sweeps staging files");
    let rec = vod.video(5).unwrap();
    assert_eq!(
        (rec.status, rec.error.as_deref()),
        (VideoStatus::Error, Some(INTERRUPTED))
    );
    assert!(vod.video_json(5).unwrap()["origin_url"].is_null());
    assert_eq!(store.list("media").await.unwrap(), []);
}
