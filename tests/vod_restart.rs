//! `vod_required` against the real binary: the video is written when the clip
//! completes, and a restarted server on the same data directory still serves it
//! (issue 8: "restart keeps videos (e2e against the binary)"). The demo stream is
//! the source, so no encoder is needed; waits are on its real-time ingest. And the
//! data directory full (issue 10: a real 1 MiB tmpfs, skipped where mounting is not
//! allowed): the video fails with the reason, nothing partial is left or served.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const AUTH: [(&str, &str); 1] = [("Authorization", "APIKey demo")];

/// A `vod_required` clip of 2 s of the demo stream, from 6 s ago (held once
/// [`wait_for_demo_chunks`] returned).
fn demo_clip_with_vod(addr: std::net::SocketAddr) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = format!(
        r#"{{"duration": 2, "start": {}, "vod_required": true}}"#,
        now - 6
    );
    let path = "/streaming/streams/1/clip_recording";
    expect(
        request(addr, "PUT", path, &AUTH, Some(body.as_bytes())),
        200,
    )
    .json()
}

#[test]
fn a_vod_survives_a_restart() {
    if !have_ffmpeg() {
        return;
    }
    let root = temp_dir("vod-restart");
    let data = root.join("data");
    let server = Server::start_in(data.clone(), temp_dir("vod-first"), &["--demo"]);
    let addr = server.addr;
    wait_for_demo_chunks(addr);
    let clip = demo_clip_with_vod(addr);
    // ref/api.md "Clips": `vod_required: true`: ... `video_id` is returned at creation.
    let vid = clip["video_id"].as_u64().expect("video_id at creation");
    let video_path = format!("/streaming/videos/{vid}");
    // Gcore's Video object: `status` pending -> ready, `duration` in ms.
    let video = poll("the video ready", Duration::from_secs(30), || {
        let v = expect(request(addr, "GET", &video_path, &AUTH, None), 200).json();
        assert_ne!(v["status"], "error", "{v}");
        (v["status"] == "ready").then_some(v)
    });
    assert_eq!(video["id"], vid);
    assert_eq!(video["stream_id"], 1);
    assert!(video["duration"].as_u64().unwrap() >= 2000, "{video}");
    let mp4_url = video["converted_videos"][0]["mp4_url"]
        .as_str()
        .expect("converted_videos[0].mp4_url")
        .to_owned();
    let before = expect(get(addr, path_of(&mp4_url)), 200);
    let etag = before.header("etag").expect("an ETag").to_owned();
    let (ok, errors) = ffmpeg_decode(&mp4_url);
    assert!(ok, "the VOD decodes: {errors}");
    drop(server); // SIGKILL: no chance to flush anything more.

    // ref/api.md "Videos (VOD)": Videos survive a restart.
    let server = Server::start_in(data, temp_dir("vod-second"), &["--api-key", "demo"]);
    let addr = server.addr;
    let again = expect(request(addr, "GET", &video_path, &AUTH, None), 200).json();
    assert_eq!(again["status"], "ready", "{again}");
    assert_eq!(again["duration"], video["duration"]);
    let after = expect(get(addr, path_of(&mp4_url)), 200);
    assert_eq!(after.header("etag"), Some(etag.as_str()));
    assert_eq!(after.body, before.body, "the same bytes after the restart");
    drop(server);
    let _ = std::fs::remove_dir_all(root);
}

/// A tmpfs mounted for the test; unmounted (lazily, so a failed test cannot leave it
/// busy) when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes at `dir`, or says why it cannot (not root, or
    /// a container without `CAP_SYS_ADMIN`).
    fn mount(dir: &std::path::Path, size: u64) -> Result<Tmpfs, String> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_full_data_directory_fails_the_video_not_the_server() {
    const TEST: &str = "a_full_data_directory_fails_the_video_not_the_server";
    if !have_ffmpeg() {
        return;
    }
    let root = temp_dir("vod-full");
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // 1 MiB, then a filler leaving 64 KiB: room for the JSON records, not for the
    // media of a clip (~80 KB per 2 s chunk of the demo's top rendition).
    let _tmpfs = match Tmpfs::mount(&data, 1 << 20) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED {TEST}: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let filler = data.join("filler");
    std::fs::write(&filler, vec![0u8; (1 << 20) - (64 << 10)]).unwrap();

    let server = Server::start_in(data.clone(), temp_dir("vod-full-run"), &["--demo"]);
    let addr = server.addr;
    wait_for_demo_chunks(addr);
    let settled = |vid: u64| {
        poll("the video settled", Duration::from_secs(30), || {
            let path = format!("/streaming/videos/{vid}");
            let v = expect(request(addr, "GET", &path, &AUTH, None), 200).json();
            (v["status"] != "pending").then_some(v)
        })
    };

    // Disk full: the video fails with the OS's reason; the clip still plays.
    let clip = demo_clip_with_vod(addr);
    let full = clip["video_id"].as_u64().unwrap();
    let video = settled(full);
    assert_eq!(video["status"], "error", "{video}");
    let why = video["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("space"),
        "the reason names the full disk: {video}"
    );
    let mp4 = clip["mp4_master"].as_str().unwrap_or_default();
    poll("the clip complete", Duration::from_secs(30), || {
        (get(addr, path_of(mp4)).status == 200).then_some(())
    });
    let (ok, errors) = ffmpeg_decode(mp4);
    assert!(ok, "the clip's MP4 still decodes: {errors}");
    let vod_mp4 = format!("/vod/{full}.mp4");
    assert_eq!(
        get(addr, &vod_mp4).status,
        404,
        "no half-written video served"
    );

    // Space again: the next video is written and served.
    std::fs::remove_file(&filler).unwrap();
    let ok_vid = demo_clip_with_vod(addr)["video_id"].as_u64().unwrap();
    assert_eq!(settled(ok_vid)["status"], "ready");
    let written = expect(get(addr, &format!("/vod/{ok_vid}.mp4")), 200);
    drop(server);

    // After a kill and a restart: the same answers, and on disk the two records and
    // the good video's files only (the failed write left no partial file).
    let server = Server::start_in(
        data.clone(),
        temp_dir("vod-full-rerun"),
        &["--api-key", "demo"],
    );
    let addr = server.addr;
    let v = expect(
        request(
            addr,
            "GET",
            &format!("/streaming/videos/{full}"),
            &AUTH,
            None,
        ),
        200,
    )
    .json();
    assert_eq!(v["status"], "error", "{v}");
    let again = expect(get(addr, &format!("/vod/{ok_vid}.mp4")), 200);
    assert_eq!(again.body, written.body);
    let files = files_under(&data);
    let media = |id: u64| {
        let prefix = format!("vod/media/{id}-");
        files.iter().filter(|f| f.starts_with(&prefix)).count()
    };
    assert_eq!((media(full), media(ok_vid)), (0, 3), "{files:?}");
    assert_eq!(
        files.len(),
        5,
        "two records, one video's mp4/m4s/m3u8: {files:?}"
    );
    drop(server);
}
