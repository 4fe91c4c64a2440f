//! kill -9 in the middle of a VOD write (issue 8: "kill -9 in the middle of a write
//! leaves no visible corrupt video"). The test re-runs its own binary, this same test
//! alone, as a child (told so by [`CHILD_ENV`]) that streams a 40 MiB MP4 into a local
//! store as a multipart upload and stops, blocked, after 9 MiB; once the upload's
//! staging file holds the first 8 MiB part the child is SIGKILLed. The next start
//! shows no media object, sweeps the staging file, and turns the video's `pending`
//! record into `error`.
//!
//! One test plays both parts: a separate child "test" would pass, asserting nothing,
//! whenever it ran without the parent (alone, or in the whole suite).

mod vod_util;

use std::io::Read;
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

/// The child's part: writes 9 of the 40 MiB, then waits on its stdin, which the
/// parent holds open and never writes to, until it is killed. It never returns.
async fn write_until_killed(dir: &std::path::Path) -> ! {
    let store = local(dir);
    let piece = Bytes::from(vec![7u8; 1 << 20]);
    let written = (0..9).map(move |_| piece.clone());
    // Blocking in place: the runtime's workers go on uploading the first part.
    let wait = std::iter::from_fn(|| -> Option<Bytes> {
        let mut byte = [0u8];
        let read = tokio::task::block_in_place(|| std::io::stdin().read(&mut byte));
        panic!("the parent closed stdin instead of killing the child: {read:?}")
    });
    let pieces: Pieces<'_> = Box::new(written.chain(wait));
    let result = store.put_pieces(MEDIA, 40 << 20, pieces).await;
    panic!("the write ended instead of being killed: {result:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_write_leaves_no_visible_video() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        write_until_killed(std::path::Path::new(&dir)).await;
    }
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
        .args(["--exact", "kill_9_mid_write_leaves_no_visible_video"])
        .env(CHILD_ENV, &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the child ended before it was killed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
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
