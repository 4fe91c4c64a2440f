//! A restart loses nothing (issue 20), against the real binary and real ffmpeg:
//! the spool keeps the DVR, every clip and the streams' keys across a SIGKILL in
//! the middle of an upload (spool on tmpfs) and across a SIGTERM (spool on disk, and
//! on tmpfs with `--spool-sync on-ack`); a full spool refuses uploads with a reason
//! and recovers (a real 1 MiB tmpfs, skipped where mounting is not allowed).
//! After the restart every clip link answers as before (same ETag, same bytes, so
//! the same SHA-256), the DVR holds at least what was acknowledged, and a clip that
//! was recording completes once ffmpeg pushes again. ffmpeg decodes every MP4.
//! A `vod_required` clip recording at a SIGKILL has its video written after the
//! restart; a clip whose media was lost is reported `lost` (410 on its links),
//! never served short; `--spool-max-maps` bounds the mapped chunk files.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn chunks_of(d: &Value, name: &str) -> u64 {
    d["renditions"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .and_then(|r| r["chunks"].as_u64())
        .unwrap_or(0)
}

fn first_range_start(d: &Value, name: &str) -> Value {
    let r = d["renditions"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {d}"));
    r["ranges"][0]["start"].clone()
}

fn create_clip(addr: SocketAddr, sid: u64, body: &str) -> Value {
    let path = format!("/streaming/streams/{sid}/clip_recording");
    expect(api(addr, "PUT", &path, Some(body)), 200).json()
}

/// A spool directory on tmpfs when the host has one, else in the temp dir.
fn shm_dir(tag: &str) -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        let d = shm.join(format!("dvrclip-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    } else {
        temp_dir(tag).join("spool")
    }
}

/// What a complete clip's MP4 link answers: ETag and body.
fn mp4(addr: SocketAddr, clip: &Value) -> (String, Vec<u8>) {
    let path = path_of(clip["mp4_master"].as_str().unwrap()).to_owned();
    let r = expect(get(addr, &path), 200);
    (r.header("etag").expect("an ETag").to_owned(), r.body)
}

fn start(spool: &std::path::Path, root: &std::path::Path, n: u32) -> Server {
    start_synced(spool, root, n, "batch")
}

fn start_synced(spool: &std::path::Path, root: &std::path::Path, n: u32, sync: &str) -> Server {
    Server::start_in(
        root.join("data"),
        temp_dir(&format!("spool-run{n}")),
        &[
            "--api-key",
            KEY,
            "--spool-dir",
            spool.to_str().unwrap(),
            "--spool-sync",
            sync,
        ],
    )
}

#[test]
fn sigkill_mid_upload_keeps_the_dvr_and_every_clip() {
    if !have_ffmpeg() {
        return;
    }
    let root = temp_dir("spool-kill");
    let spool = shm_dir("kill");
    let server = start(&spool, &root, 1);
    let addr = server.addr;
    let stream = expect(
        api(
            addr,
            "POST",
            "/streaming/streams",
            Some(r#"{"name": "spool", "dvr_duration": 3600}"#),
        ),
        201,
    )
    .json();
    let sid = stream["id"].as_u64().unwrap();
    let push_url = stream["push_url_http"].as_str().unwrap().to_owned();
    let mut ffmpeg = push_ladder(&push_url, 40, 440);
    let top = LADDER[0].0;
    poll("5 chunks", Duration::from_secs(40), || {
        (chunks_of(&dvr(addr, sid), top) >= 5).then_some(())
    });
    let now = unix_now();
    let complete = create_clip(
        addr,
        sid,
        &format!(r#"{{"duration": 4, "start": {}}}"#, now - 9),
    );
    let precise = create_clip(
        addr,
        sid,
        &format!(
            r#"{{"duration": 3, "start": {}, "precise": true}}"#,
            now - 8
        ),
    );
    let recording = create_clip(addr, sid, r#"{"duration": 8}"#);
    assert_eq!(recording["state"], "recording", "{recording}");
    let before_complete = mp4(addr, &complete);
    let before_precise = mp4(addr, &precise);
    // Uploads go on while the server dies, and one is surely in flight at the kill:
    // half a segment's body sent, the rest never.
    std::thread::sleep(Duration::from_millis(2300));
    let mut half = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "PUT {}/{top}/seg_99999.m4s HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000\r\n\r\n",
        path_of(&push_url)
    );
    std::io::Write::write_all(&mut half, head.as_bytes()).unwrap();
    std::io::Write::write_all(&mut half, &[0u8; 40_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let acked = dvr(addr, sid);
    drop(server); // SIGKILL
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();

    let server = start(&spool, &root, 2);
    let addr = server.addr;
    let again = expect(
        api(addr, "GET", &format!("/streaming/streams/{sid}"), None),
        200,
    )
    .json();
    assert_eq!(
        path_of(again["push_url_http"].as_str().unwrap()),
        path_of(&push_url),
        "the push URL's key survives"
    );
    let restored = dvr(addr, sid);
    let metrics = expect(api(addr, "GET", "/metrics", None), 200).text();
    let orphans = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dvrclip_spool_recovery_orphans_removed "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        orphans >= Some(1),
        "the half upload's file is swept: {metrics}"
    );
    drop(half);
    for (name, ..) in LADDER {
        assert!(
            chunks_of(&restored, name) >= chunks_of(&acked, name),
            "{name}: every acknowledged upload is back: {acked} vs {restored}"
        );
        assert_eq!(
            first_range_start(&restored, name),
            first_range_start(&acked, name)
        );
    }
    for (clip, before) in [(&complete, &before_complete), (&precise, &before_precise)] {
        let after = mp4(addr, clip);
        assert_eq!(after.0, before.0, "same ETag");
        assert!(after.1 == before.1, "same bytes (so the same SHA-256)");
        let url = format!(
            "http://{addr}{}",
            path_of(clip["mp4_master"].as_str().unwrap())
        );
        let (ok, errors) = ffmpeg_decode(&url);
        assert!(ok, "decodes after the restart: {errors}");
    }
    let id = recording["id"].as_str().unwrap();
    let rec = expect(
        api(
            addr,
            "GET",
            &format!("/streaming/streams/{sid}/clip_recording/{id}"),
            None,
        ),
        200,
    )
    .json();
    assert_eq!(rec["state"], "recording", "{rec}");

    // The encoder comes back: the recording clip takes what arrives and completes.
    let push_url = again["push_url_http"].as_str().unwrap().to_owned();
    let mut ffmpeg = push_ladder(&push_url, 30, 660);
    let done = poll(
        "the recording clip complete",
        Duration::from_secs(60),
        || {
            let c = expect(
                api(
                    addr,
                    "GET",
                    &format!("/streaming/streams/{sid}/clip_recording/{id}"),
                    None,
                ),
                200,
            )
            .json();
            (c["state"] == "complete").then_some(c)
        },
    );
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    let url = format!(
        "http://{addr}{}",
        path_of(done["mp4_master"].as_str().unwrap())
    );
    let (ok, errors) = ffmpeg_decode(&url);
    assert!(ok, "the completed recording decodes: {errors}");
    drop(server);
    let _ = std::fs::remove_dir_all(&spool);
    let _ = std::fs::remove_dir_all(root);
}

/// SIGTERM, with the spool on disk (batch syncs) and on tmpfs (`--spool-sync on-ack`).
#[test]
fn sigterm_keeps_everything_on_disk_and_on_tmpfs() {
    if !have_ffmpeg() {
        return;
    }
    let root = temp_dir("spool-term");
    for (spool, sync) in [(root.join("spool"), "batch"), (shm_dir("term"), "on-ack")] {
        sigterm_keeps_everything(&spool, &root, sync);
        let _ = std::fs::remove_dir_all(&spool);
    }
    let _ = std::fs::remove_dir_all(root);
}

fn sigterm_keeps_everything(spool: &std::path::Path, root: &std::path::Path, sync: &str) {
    let server = start_synced(spool, root, 3, sync);
    let addr = server.addr;
    let stream = expect(
        api(
            addr,
            "POST",
            "/streaming/streams",
            Some(r#"{"name": "term"}"#),
        ),
        201,
    )
    .json();
    let sid = stream["id"].as_u64().unwrap();
    let push_url = stream["push_url_http"].as_str().unwrap().to_owned();
    let mut ffmpeg = push_ladder(&push_url, 8, 440);
    let _ = ffmpeg.wait();
    let top = LADDER[0].0;
    poll("4 chunks", Duration::from_secs(20), || {
        (chunks_of(&dvr(addr, sid), top) >= 4).then_some(())
    });
    let now = unix_now();
    let clip = create_clip(
        addr,
        sid,
        &format!(r#"{{"duration": 3, "start": {}}}"#, now - 7),
    );
    let before = mp4(addr, &clip);
    let before_dvr = dvr(addr, sid);
    assert!(server.terminate().success());

    let server = start_synced(spool, root, 4, sync);
    let addr = server.addr;
    assert_eq!(dvr(addr, sid), before_dvr, "the same DVR ({sync})");
    let metrics = expect(api(addr, "GET", "/metrics", None), 200).text();
    assert!(
        metrics.contains("\ndvrclip_spool_recovery_dropped_chunks 0\n"),
        "{metrics}"
    );
    let after = mp4(addr, &clip);
    assert_eq!(after.0, before.0, "same ETag ({sync})");
    assert!(after.1 == before.1, "same bytes ({sync})");
    drop(server);
}

/// A tmpfs mounted for the test (as `tests/vod_restart.rs` does); unmounted lazily
/// when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
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

fn put(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    request(addr, "PUT", path, &[], Some(body))
}

/// ref/api.md: 503 when "the spool's filesystem is full (an upload is refused with
/// the reason, nothing stored changes); retry". A real 1 MiB tmpfs, filled but for
/// 16 KiB: the journal's records fit, a segment does not.
#[test]
fn a_full_spool_refuses_uploads_with_a_reason_and_recovers() {
    const TEST: &str = "a_full_spool_refuses_uploads_with_a_reason_and_recovers";
    let root = temp_dir("spool-full");
    let spool = root.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let _tmpfs = match Tmpfs::mount(&spool, 1 << 20) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED {TEST}: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let server = start(&spool, &root, 5);
    let addr = server.addr;
    let stream = expect(
        api(
            addr,
            "POST",
            "/streaming/streams",
            Some(r#"{"name": "full"}"#),
        ),
        201,
    )
    .json();
    let sid = stream["id"].as_u64().unwrap();
    let base = path_of(stream["push_url_http"].as_str().unwrap()).to_owned();
    let at = |f: &str| format!("{base}/v/{f}");
    expect(
        put(addr, &at("init.mp4"), &fixture("h264_aac/init.mp4")),
        201,
    );
    let seg0 = fixture("h264_aac/seg_000.m4s");
    let seg1 = fixture("h264_aac/seg_001.m4s");
    expect(put(addr, &at("seg_000.m4s"), &seg0), 201);
    let dvr_before = dvr(addr, sid);

    let filler = spool.join("filler");
    let free = {
        // Fill all but 16 KiB: write until the tmpfs says no, then give some back.
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 16 << 10];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        drop(f);
        let len = std::fs::metadata(&filler).unwrap().len();
        std::fs::File::options()
            .write(true)
            .open(&filler)
            .unwrap()
            .set_len(len.saturating_sub(16 << 10))
            .unwrap();
        16 << 10
    };
    assert!(seg1.len() > free);
    let refused = put(addr, &at("seg_001.m4s"), &seg1);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("No space left"),
        "the reason is given: {}",
        refused.text()
    );
    assert_eq!(dvr(addr, sid), dvr_before, "nothing stored changed");

    // Space returns: the retry is stored, and survives a kill.
    std::fs::remove_file(&filler).unwrap();
    expect(put(addr, &at("seg_001.m4s"), &seg1), 201);
    let dvr_after = dvr(addr, sid);
    assert_eq!(chunks_of(&dvr_after, "v"), 2);
    drop(server); // SIGKILL
    let server = start(&spool, &root, 6);
    assert_eq!(
        dvr(server.addr, sid),
        dvr_after,
        "nothing corrupt, nothing lost"
    );
    drop(server);
    drop(_tmpfs);
    let _ = std::fs::remove_dir_all(root);
}

fn clip_of(addr: SocketAddr, sid: u64, id: &str) -> Resp {
    api(
        addr,
        "GET",
        &format!("/streaming/streams/{sid}/clip_recording/{id}"),
        None,
    )
}

fn video_of(addr: SocketAddr, id: u64) -> Value {
    expect(
        api(addr, "GET", &format!("/streaming/videos/{id}"), None),
        200,
    )
    .json()
}

/// Issue 20: a `vod_required` clip still recording when the server is killed keeps
/// its video `pending` across the restart, records on when ffmpeg pushes again, and
/// its video is written then: the same MP4 the clip's link serves, decodable.
#[test]
fn a_pending_video_is_written_after_a_sigkill() {
    if !have_ffmpeg() {
        return;
    }
    let root = temp_dir("spool-vod");
    let spool = shm_dir("vod");
    let server = start(&spool, &root, 7);
    let addr = server.addr;
    let stream = create_stream(addr, "vod");
    let sid = stream["id"].as_u64().unwrap();
    let push_url = stream["push_url_http"].as_str().unwrap().to_owned();
    let mut ffmpeg = push_ladder(&push_url, 40, 440);
    let top = LADDER[0].0;
    poll("3 chunks", Duration::from_secs(40), || {
        (chunks_of(&dvr(addr, sid), top) >= 3).then_some(())
    });
    // Recording for 12 s more: its video cannot be written before the kill.
    let clip = create_clip(addr, sid, r#"{"duration": 12, "vod_required": true}"#);
    assert_eq!(clip["state"], "recording", "{clip}");
    let vid = clip["video_id"].as_u64().expect("a video id");
    assert_eq!(video_of(addr, vid)["status"], "pending");
    // The `pending` record reaches the VOD store just after the answer; the kill
    // comes once it is there (and before the clip can complete).
    let record = root.join(format!("data/vod/videos/{vid}.json"));
    poll("the pending record stored", Duration::from_secs(5), || {
        record.exists().then_some(())
    });
    drop(server); // SIGKILL
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();

    let server = start(&spool, &root, 8);
    let addr = server.addr;
    let video = video_of(addr, vid);
    assert_eq!(video["status"], "pending", "resumed, not failed: {video}");
    let id = clip["id"].as_str().unwrap();
    assert_eq!(
        expect(clip_of(addr, sid, id), 200).json()["state"],
        "recording"
    );
    let again = expect(
        api(addr, "GET", &format!("/streaming/streams/{sid}"), None),
        200,
    )
    .json();
    let push_url = again["push_url_http"].as_str().unwrap().to_owned();
    let mut ffmpeg = push_ladder(&push_url, 40, 660);
    let ready = poll("the video ready", Duration::from_secs(90), || {
        let v = video_of(addr, vid);
        assert_ne!(v["status"], "error", "{v}");
        (v["status"] == "ready").then_some(v)
    });
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    let done = expect(clip_of(addr, sid, id), 200).json();
    assert_eq!(done["state"], "complete", "{done}");
    let url = ready["origin_url"].as_str().expect("an MP4 link");
    let stored = expect(get(addr, path_of(url)), 200).body;
    assert!(
        stored == mp4(addr, &done).1,
        "the video is the MP4 the clip's link serves"
    );
    let (ok, errors) = ffmpeg_decode(&format!("http://{addr}{}", path_of(url)));
    assert!(ok, "the video decodes: {errors}");
    drop(server);
    let _ = std::fs::remove_dir_all(&spool);
    let _ = std::fs::remove_dir_all(root);
}

/// Issue 20: "a clip whose media was lost is reported as such, never served short".
/// Every payload file is damaged between a SIGTERM and the restart: each clip that
/// held media answers `state: lost` with the reason, is listed so, its links answer
/// 410, its pending video turns `error`, `/metrics` counts them; it can be deleted.
#[test]
fn a_clip_whose_media_was_lost_is_reported_lost() {
    if !have_ffmpeg() {
        return;
    }
    let root = temp_dir("spool-lost");
    let spool = shm_dir("lost");
    let server = start(&spool, &root, 9);
    let addr = server.addr;
    let stream = create_stream(addr, "lost");
    let sid = stream["id"].as_u64().unwrap();
    let push_url = stream["push_url_http"].as_str().unwrap().to_owned();
    let mut ffmpeg = push_ladder(&push_url, 30, 440);
    let top = LADDER[0].0;
    poll("5 chunks", Duration::from_secs(40), || {
        (chunks_of(&dvr(addr, sid), top) >= 5).then_some(())
    });
    let complete = create_clip(
        addr,
        sid,
        &format!(r#"{{"duration": 4, "start": {}}}"#, unix_now() - 9),
    );
    let recording = create_clip(addr, sid, r#"{"duration": 60, "vod_required": true}"#);
    let rid = recording["id"].as_str().unwrap().to_owned();
    poll(
        "the recording clip holds media",
        Duration::from_secs(30),
        || {
            let c = expect(clip_of(addr, sid, &rid), 200).json();
            (c["actual_duration"].as_f64() > Some(0.0)).then_some(())
        },
    );
    assert!(server.terminate().success());
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    for entry in std::fs::read_dir(spool.join("chunks")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
    }

    let server = start(&spool, &root, 10);
    let addr = server.addr;
    assert_eq!(metric(addr, "dvrclip_spool_recovery_lost_clips"), 2);
    for clip in [&complete, &recording] {
        let id = clip["id"].as_str().unwrap();
        let lost = expect(clip_of(addr, sid, id), 200).json();
        assert_eq!(lost["state"], "lost", "{lost}");
        assert!(
            lost["error"].as_str().is_some_and(|e| e.contains("lost")),
            "{lost}"
        );
        assert_eq!(lost["duration"], clip["duration"]);
        assert_eq!(lost["start"], clip["start"]);
        assert_eq!(
            path_of(lost["mp4_master"].as_str().unwrap()),
            path_of(clip["mp4_master"].as_str().unwrap())
        );
        for link in ["mp4_master", "hls_master"] {
            let r = get(addr, path_of(clip[link].as_str().unwrap()));
            assert_eq!(r.status, 410, "{link}: never served short: {}", r.text());
        }
    }
    let listed = expect(
        api(
            addr,
            "GET",
            &format!("/streaming/streams/{sid}/clip_recording"),
            None,
        ),
        200,
    )
    .json();
    let states: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["state"])
        .collect();
    assert_eq!(states, ["lost", "lost"], "{listed}");
    let video = video_of(addr, recording["video_id"].as_u64().unwrap());
    assert_eq!(video["status"], "error", "{video}");
    assert!(
        video["error"].as_str().is_some_and(|e| e.contains("lost")),
        "{video}"
    );
    let path = format!("/streaming/streams/{sid}/clip_recording/{rid}");
    expect(api(addr, "DELETE", &path, None), 204);
    expect(api(addr, "GET", &path, None), 404);
    drop(server);
    let _ = std::fs::remove_dir_all(&spool);
    let _ = std::fs::remove_dir_all(root);
}

/// `--spool-max-maps`: at most that many chunk files are mapped, the others held in
/// memory (`/metrics` counts both), and all of them come back after a SIGKILL.
#[test]
fn the_mapping_cap_holds_in_the_server() {
    let root = temp_dir("spool-maps");
    let spool = shm_dir("maps");
    let args = |n| {
        Server::start_in(
            root.join("data"),
            temp_dir(&format!("spool-maps-run{n}")),
            &[
                "--api-key",
                KEY,
                "--spool-dir",
                spool.to_str().unwrap(),
                "--spool-max-maps",
                "2",
            ],
        )
    };
    let server = args(1);
    let addr = server.addr;
    let stream = create_stream(addr, "maps");
    let sid = stream["id"].as_u64().unwrap();
    let base = path_of(stream["push_url_http"].as_str().unwrap()).to_owned();
    for rendition in ["v", "w"] {
        let at = |f: &str| format!("{base}/{rendition}/{f}");
        expect(
            put(addr, &at("init.mp4"), &fixture("h264_aac/init.mp4")),
            201,
        );
        for seg in ["seg_000.m4s", "seg_001.m4s"] {
            expect(
                put(addr, &at(seg), &fixture(&format!("h264_aac/{seg}"))),
                201,
            );
        }
    }
    assert_eq!(metric(addr, "dvrclip_spool_payload_maps"), 2);
    assert_eq!(metric(addr, "dvrclip_spool_payload_held"), 2);
    assert_eq!(metric(addr, "dvrclip_spool_payload_files"), 4);
    let before = dvr(addr, sid);
    drop(server); // SIGKILL

    let server = args(2);
    let addr = server.addr;
    assert_eq!(
        dvr(addr, sid),
        before,
        "held chunks come back as mapped ones"
    );
    assert_eq!(metric(addr, "dvrclip_spool_payload_maps"), 2);
    assert_eq!(metric(addr, "dvrclip_spool_payload_held"), 2);
    drop(server);
    let _ = std::fs::remove_dir_all(&spool);
    let _ = std::fs::remove_dir_all(root);
}
