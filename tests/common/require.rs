//! What a test needs from outside the workspace (ffmpeg and ffprobe as the
//! independent oracle, moto's S3 server, Gcore's Python SDK) and what happens when it
//! is missing. Under CI (`CI=true`, which CI services and `.ci/run` set) the test
//! fails: CI installs them, so a missing one is a broken machine, and a skipped oracle
//! would be a check that silently did not run. Elsewhere the test is skipped with the
//! reason printed.
//!
//! One file for the whole workspace: the root's tests reach it through
//! `tests/common`, each crate's tests with `#[path]`, so the rule is written once.

#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Stdio};

/// Whether the tests run under CI: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    })
}

/// Whether `tool -version` runs and exits 0 (ffmpeg, ffprobe); see [`require`] for
/// what happens when it does not.
#[track_caller]
pub fn require_tool(tool: &str) -> bool {
    let ran = Command::new(tool)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let found = match ran {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{tool} -version` failed ({s})")),
        Err(e) => Err(format!("{tool} not found on PATH ({e})")),
    };
    require(tool, found)
}

/// `true` when `found` is `Ok` and the test may go on. Otherwise, under CI, fails the
/// test saying what is missing and why; outside CI prints why the test (or the part
/// of it that needs `what`) is skipped and returns `false`.
///
/// Call it on the test's own thread: the test is named after it.
#[track_caller]
pub fn require(what: &str, found: Result<(), String>) -> bool {
    let Err(why) = found else {
        return true;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    assert!(!in_ci(), "{test} needs {what} and CI is set: {why}");
    eprintln!("SKIPPED {test}: needs {what}: {why} (with CI=true this fails)");
    false
}
