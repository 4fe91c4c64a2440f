//! Pulling a live fMP4 HLS ladder (ref/api.md "Streams": `pull`, `uri`) through the
//! real binary: ffmpeg writes a 2-rendition ladder into a folder, two Python HTTP
//! servers serve that folder as two origins, a stream is created with both URIs, and
//! the DVR fills from the first. The first origin is then killed: the second takes
//! over ("several URLs … round robin, the next one taken when one stops answering"),
//! the switch is a discontinuity, and a clip across it plays (ffprobe, ffmpeg decode).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn stream(addr: SocketAddr, id: u64) -> Value {
    expect(
        api(addr, "GET", &format!("/streaming/streams/{id}"), None),
        200,
    )
    .json()
}

/// (chunks, discontinuities, end of the last range) of `rendition` in the DVR.
fn held(addr: SocketAddr, id: u64, rendition: &str) -> Option<(u64, usize, f64)> {
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
    Some((
        r["chunks"].as_u64()?,
        r["discontinuities"].as_array()?.len(),
        end,
    ))
}

/// Cuts `[start, start + duration)` and waits (bounded) for its MP4; checks it plays.
fn clip_plays(addr: SocketAddr, id: u64, start: i64, duration: u64) -> Value {
    let body = format!(r#"{{"start": {start}, "duration": {duration}}}"#);
    let clip = api(
        addr,
        "PUT",
        &format!("/streaming/streams/{id}/clip_recording"),
        Some(&body),
    );
    let clip = expect(clip, 200).json();
    let url = clip["mp4_master"].as_str().expect("mp4_master").to_owned();
    poll("the clip's MP4", Duration::from_secs(20), || {
        (get(addr, path_of(&url)).status == 200).then_some(())
    });
    let probe = ffprobe(&url, &["-show_streams", "-show_format"]);
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
    let secs: f64 = probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap();
    assert!(
        secs >= duration as f64 - 0.5,
        "{secs} s for a {duration} s clip: {probe}"
    );
    let (ok, errors) = ffmpeg_decode(&url);
    assert!(ok && errors.is_empty(), "{url}: decode errors:\n{errors}");
    clip
}

#[test]
fn a_live_ladder_is_pulled_and_the_second_origin_takes_over() {
    if !have_ffmpeg() {
        return;
    }
    let python = Command::new("python3").arg("--version").output();
    if !require(
        "python3",
        python.map_err(|e| e.to_string()).and_then(|o| {
            o.status
                .success()
                .then_some(())
                .ok_or_else(|| "python3 --version failed".to_owned())
        }),
    ) {
        return;
    }
    let started = Instant::now();
    let dir = temp_dir("pull-origin");
    let _ffmpeg = write_hls_ladder(&dir, 40);
    let (first, p1) = http_origin(&dir);
    let (_second, p2) = http_origin(&dir);
    let server = Server::start(&[]);
    let addr = server.addr;
    poll("ffmpeg's first playlists", Duration::from_secs(15), || {
        ["master.m3u8", "v0/index.m3u8", "v1/index.m3u8"]
            .iter()
            .all(|f| dir.join(f).exists())
            .then_some(())
    });

    // ref/api.md: `uri` is "several URLs separated by spaces"; pull needs one.
    let (u1, u2) = (
        format!("http://127.0.0.1:{p1}/master.m3u8"),
        format!("http://127.0.0.1:{p2}/master.m3u8"),
    );
    let bad = api(
        addr,
        "POST",
        "/streaming/streams",
        Some(r#"{"name":"p","pull":true}"#),
    );
    assert_eq!(expect(bad, 400).json()["field"], "uri");
    let bad = r#"{"name":"p","pull":true,"uri":"rtmps://127.0.0.1/live/k"}"#;
    assert_eq!(
        expect(api(addr, "POST", "/streaming/streams", Some(bad)), 400).json()["field"],
        "uri"
    );
    let body = format!(r#"{{"name":"pulled","pull":true,"uri":"{u1} {u2}"}}"#);
    let created = expect(api(addr, "POST", "/streaming/streams", Some(&body)), 201).json();
    let id = created["id"].as_u64().unwrap();
    assert_eq!(created["pull"], true);
    assert_eq!(created["uri"], format!("{u1} {u2}"));

    // The DVR fills from the first origin, under the variants' directory names.
    let before = poll(
        "media pulled into both renditions",
        Duration::from_secs(20),
        || {
            let v1 = held(addr, id, "v1")?;
            let v0 = held(addr, id, "v0")?;
            (v0.0 >= 3 && v1.0 >= 2).then_some(v0)
        },
    );
    let s = stream(addr, id);
    assert_eq!(s["uri_in_use"], u1.as_str(), "{s}");
    // Named from the variants' directories; ordered by whose init came first.
    let mut names: Vec<&str> = s["transcoded_qualities"]
        .as_array()
        .expect("transcoded_qualities")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["v0", "v1"], "{s}");
    let metrics = get(addr, "/metrics").text();
    assert!(
        metrics.contains(&format!("dvrclip_pull_uri_index{{stream=\"{id}\"}} 0")),
        "{metrics}"
    );
    let end = before.2.floor() as i64;
    clip_plays(addr, id, end - 4, 4);

    // The first origin dies: the second takes over, as a new discontinuity.
    let killed_at = before.2;
    drop(first);
    let after = poll(
        "the second origin in use, and new media",
        Duration::from_secs(25),
        || {
            let s = stream(addr, id);
            let v0 = held(addr, id, "v0")?;
            (s["uri_in_use"] == u2.as_str() && v0.2 >= killed_at + 4.0).then_some(v0)
        },
    );
    assert!(
        after.1 > before.1,
        "the switch opened no discontinuity: {before:?} → {after:?}"
    );
    let metrics = get(addr, "/metrics").text();
    assert!(
        metrics.contains(&format!("dvrclip_pull_uri_index{{stream=\"{id}\"}} 1")),
        "{metrics}"
    );

    // A clip across the switch plays.
    let across = killed_at.floor() as i64 - 3;
    clip_plays(addr, id, across, 6);

    // Turning pull off stops it; the stream stays.
    let off = r#"{"stream": {"pull": false}}"#;
    let s = expect(
        api(
            addr,
            "PATCH",
            &format!("/streaming/streams/{id}"),
            Some(off),
        ),
        200,
    )
    .json();
    assert_eq!(
        (s["pull"].as_bool(), s["uri_in_use"].is_null()),
        (Some(false), true),
        "{s}"
    );
    expect(
        api(addr, "DELETE", &format!("/streaming/streams/{id}"), None),
        204,
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "{:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
