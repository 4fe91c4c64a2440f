//! The browser tests' harness: whether node, Playwright (`playwright-core`, pinned in
//! `tests/console/package-lock.json`) and Debian's chromium are there, and running
//! one of the scripts in `tests/console` against a server, bounded in time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{require, require_tool};

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

/// The chromium the scripts drive.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// The scripts' folder.
fn scripts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// Whether node, Playwright, chromium and ffprobe are all there (under `CI=true` a
/// missing one fails, see `require`).
pub fn browser_ready() -> bool {
    let playwright = scripts().join("node_modules/playwright-core/package.json");
    require("node", runs("node"))
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
        && require_tool("ffprobe")
}

/// Runs `node {script}` in `tests/console` with `env` and `CHROMIUM`, and asserts it
/// exits 0 having printed `{tag}: PASSED`. The script bounds each of its waits
/// itself; `limit` only stops a hung browser from hanging `cargo test`. Its stdout.
pub fn run_browser_script(
    script: &str,
    tag: &str,
    env: &[(&str, &str)],
    limit: Duration,
) -> String {
    let mut command = Command::new("node");
    command
        .arg(script)
        .current_dir(scripts())
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawning node");
    let until = Instant::now() + limit;
    while child.try_wait().expect("waiting for node").is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("node's output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains(&format!("{tag}: PASSED")), "{stdout}");
    stdout
}
