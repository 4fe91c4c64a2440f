//! The clipping console (`/console`, issue 18) in a real browser: the binary on the
//! demo stream, and `tests/console/console.test.mjs` driving Debian's `chromium`
//! headless through Playwright (`playwright-core`, pinned in
//! `tests/console/package-lock.json`): a wrong key refused in the API's words, the
//! right key, the DVR on the timeline, in and out marked by clicks and by keys, a
//! clip made, played in the page, its MP4 measured by ffprobe, deleted. The script
//! writes `target/console-screenshot.png`.
//!
//! Needs node, chromium, `npm ci` in `tests/console` and ffprobe: `.ci/run`
//! installs them; under `CI=true` a missing one fails the test, elsewhere it is
//! skipped saying why (`tests/common/require.rs`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, browser_ready, run_browser_script};

#[test]
fn console_in_a_real_browser() {
    if !browser_ready() {
        return;
    }
    let server = Server::start_with(&["--demo"]);
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://{}", server.addr);
    run_browser_script(
        "console.test.mjs",
        "console test",
        &[
            ("DVRCLIP_URL", &url),
            ("DVRCLIP_KEY", "demo"),
            ("SCREENSHOT", &shot.to_string_lossy()),
        ],
        Duration::from_secs(240),
    );
    assert!(shot.exists(), "no screenshot at {}", shot.display());
}
