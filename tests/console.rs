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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, require, require_tool};

/// Whether `program --version` runs and exits 0.
fn runs(program: &str) -> Result<(), String> {
    match Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{program} --version` failed ({s})")),
        Err(e) => Err(format!("{program} not found ({e})")),
    }
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

#[test]
fn console_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/console");
    let playwright = dir.join("node_modules/playwright-core/package.json");
    let ready = require("node", runs("node"))
        && require(
            "playwright-core",
            if playwright.exists() {
                Ok(())
            } else {
                Err(format!(
                    "{} is missing: run `npm ci` in tests/console",
                    playwright.display()
                ))
            },
        )
        && require("chromium (Debian's)", runs(&chromium()))
        && require_tool("ffprobe");
    if !ready {
        return;
    }

    let server = Server::start_with(&["--demo"]);
    let shot: PathBuf = root.join("target/console-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let mut child = Command::new("node")
        .arg("console.test.mjs")
        .current_dir(&dir)
        .env("DVRCLIP_URL", format!("http://{}", server.addr))
        .env("DVRCLIP_KEY", "demo")
        .env("SCREENSHOT", &shot)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning node");
    // The script bounds each wait itself (Playwright's 30 s, 60 s for the DVR to
    // fill); this only stops a hung browser from hanging `cargo test`.
    let until = Instant::now() + Duration::from_secs(240);
    while child.try_wait().expect("waiting for node").is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("node's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("console test: PASSED"), "{stdout}");
    assert!(shot.exists(), "no screenshot at {}", shot.display());
}
