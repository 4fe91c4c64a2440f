//! Pulling a live MPEG-TS HLS ladder (ref/api.md "Pull"; issue 17) through the real
//! binary: ffmpeg writes a 2-rendition ladder of `.ts` segments (H.264 with B-frames,
//! AAC; no `EXT-X-MAP`) into a folder, a Python HTTP server serves it, a stream is
//! created with its master playlist as `uri`, and the DVR fills through the MPEG-TS
//! demuxer. A clip's MP4 decodes cleanly and holds exactly the source segments'
//! frames: as many per keyframe interval as ffprobe counts in each source segment,
//! none lost or repeated (presentation times one frame apart, B-frames reordered).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// ffmpeg writing a live 2-rendition MPEG-TS HLS ladder (`v0` 426x240, `v1`
/// 256x144, H.264 High with 2 B-frames + AAC, a keyframe and a segment every 2 s)
/// into `dir` for `secs` seconds of real time.
fn write_ts_ladder(dir: &Path, secs: u32) -> ChildGuard {
    let d = dir.display();
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=426x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args(["-filter_complex", "[0:v]split=2[a][b];[b]scale=256:144[b2]"])
        .args(["-map", "[a]", "-map", "[b2]", "-map", "1:a", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-profile:v",
            "high",
        ])
        .args([
            "-bf",
            "2",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
        ])
        .args([
            "-b:v:0", "300k", "-b:v:1", "150k", "-c:a", "aac", "-b:a", "64k",
        ])
        .args(["-f", "hls", "-hls_time", "2", "-hls_segment_type", "mpegts"])
        .args(["-hls_list_size", "6"])
        .args(["-master_pl_name", "master.m3u8"])
        .args(["-var_stream_map", "v:0,a:0,name:v0 v:1,a:1,name:v1"])
        .args(["-hls_segment_filename", &format!("{d}/%v/seg_%05d.ts")])
        .arg(format!("{d}/%v/index.m3u8"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning ffmpeg");
    ChildGuard(child)
}

/// (chunks, end of the last range) of `rendition` in the DVR.
fn held(addr: std::net::SocketAddr, id: u64, rendition: &str) -> Option<(u64, f64)> {
    let d = expect(
        api(addr, "GET", &format!("/streaming/streams/{id}/dvr"), None),
        200,
    )
    .json();
    let r = d["renditions"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == rendition)?;
    let end = r["ranges"].as_array()?.last()?["end"].as_f64()?;
    Some((r["chunks"].as_u64()?, end))
}

/// Video packets' presentation times of `url`, sorted, in seconds.
fn video_pts(url: &str) -> Vec<f64> {
    let p = ffprobe(
        url,
        &["-select_streams", "v:0", "-show_entries", "packet=pts_time"],
    );
    let mut pts: Vec<f64> = p["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter_map(|k| k["pts_time"].as_str()?.parse().ok())
        .collect();
    pts.sort_by(f64::total_cmp);
    pts
}

/// Decoded video frames of `url`.
fn video_frames(url: &str) -> u64 {
    let p = ffprobe(
        url,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
        ],
    );
    p["streams"][0]["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("nb_read_frames")
}

#[test]
fn a_live_mpeg_ts_ladder_is_pulled_and_clipped_exactly() {
    if !have_ffmpeg() {
        return;
    }
    let python = Command::new("python3").arg("--version").output();
    let found = python.map_err(|e| e.to_string()).and_then(|o| {
        o.status
            .success()
            .then_some(())
            .ok_or_else(|| "python3 --version failed".to_owned())
    });
    if !require("python3", found) {
        return;
    }
    let dir = temp_dir("pull-ts-origin");
    let _ffmpeg = write_ts_ladder(&dir, 40);
    let (_origin, port) = http_origin(&dir);
    let server = Server::start(&[]);
    let addr = server.addr;
    poll("ffmpeg's first playlists", Duration::from_secs(15), || {
        ["master.m3u8", "v0/index.m3u8", "v1/index.m3u8"]
            .iter()
            .all(|f| dir.join(f).exists())
            .then_some(())
    });
    let playlist = std::fs::read_to_string(dir.join("v0/index.m3u8")).unwrap();
    assert!(
        !playlist.contains("EXT-X-MAP"),
        "MPEG-TS segments: {playlist}"
    );

    let uri = format!("http://127.0.0.1:{port}/master.m3u8");
    let body = format!(r#"{{"name":"pulled-ts","pull":true,"uri":"{uri}"}}"#);
    let created = expect(api(addr, "POST", "/streaming/streams", Some(&body)), 201).json();
    let id = created["id"].as_u64().unwrap();

    // Both renditions fill through the demuxer.
    let (_, end) = poll(
        "MPEG-TS media pulled into both renditions",
        Duration::from_secs(30),
        || {
            let v1 = held(addr, id, "v1")?;
            let v0 = held(addr, id, "v0")?;
            (v0.0 >= 4 && v1.0 >= 2).then_some(v0)
        },
    );

    // A clip of the last 4 s held: whole keyframe chunks.
    let start = end.floor() as i64 - 4;
    let body = format!(r#"{{"start": {start}, "duration": 4}}"#);
    let path = format!("/streaming/streams/{id}/clip_recording");
    let clip: Value = expect(api(addr, "PUT", &path, Some(&body)), 200).json();
    let url = clip["mp4_master"].as_str().expect("mp4_master").to_owned();
    poll("the clip's MP4", Duration::from_secs(20), || {
        (get(addr, path_of(&url)).status == 200).then_some(())
    });
    let probe = ffprobe(&url, &["-show_streams"]);
    let streams = probe["streams"].as_array().expect("streams");
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(426), Some(240))
    );
    assert!(
        streams.iter().any(|s| s["codec_type"] == "audio"),
        "{probe}"
    );
    let (ok, errors) = ffmpeg_decode(&url);
    assert!(ok && errors.is_empty(), "{url}: decode errors:\n{errors}");

    // The source: ffprobe counts the frames of each v0 segment written so far.
    let mut per_segment = Vec::new();
    for entry in std::fs::read_dir(dir.join("v0")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ts") {
            per_segment.push(video_frames(path.to_str().unwrap()));
        }
    }
    let gop = per_segment[0];
    assert!(
        gop > 0 && per_segment.iter().all(|&n| n == gop),
        "{per_segment:?}"
    );
    // The clip holds whole source keyframe intervals, every frame of each.
    let frames = video_frames(&url);
    assert!(
        frames >= 2 * gop && frames % gop == 0,
        "{frames} frames, {gop} per segment"
    );
    let pts = video_pts(&url);
    assert_eq!(pts.len() as u64, frames);
    // ISO/IEC 14496-12 §8.6.1.3: composition times from the offsets; with B-frames
    // reordered right, the sorted times are one frame (1/30 s) apart, no gap.
    for w in pts.windows(2) {
        assert!((w[1] - w[0] - 1.0 / 30.0).abs() < 0.002, "{:?}", w);
    }

    expect(
        api(addr, "DELETE", &format!("/streaming/streams/{id}"), None),
        204,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
