//! `vod_required` against the real binary: the video is written when the clip
//! completes, and a restarted server on the same data directory still serves it
//! (issue 8: "restart keeps videos (e2e against the binary)"). The demo stream is
//! the source, so no encoder is needed; waits are on its real-time ingest.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const AUTH: [(&str, &str); 1] = [("Authorization", "APIKey demo")];

#[test]
fn a_vod_survives_a_restart() {
    if !have_ffmpeg("a_vod_survives_a_restart") {
        return;
    }
    let root = temp_dir("vod-restart");
    let data = root.join("data");
    let server = Server::start_in(data.clone(), temp_dir("vod-first"), &["--demo"]);
    let addr = server.addr;
    // The demo pushes a 2 s segment every 2 s of real time: wait for 4 of them.
    poll("four demo chunks", Duration::from_secs(30), || {
        let d = expect(
            request(addr, "GET", "/streaming/streams/1/dvr", &AUTH, None),
            200,
        )
        .json();
        (d["renditions"].as_array()?.first()?["chunks"].as_u64()? >= 4).then_some(())
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = format!(
        r#"{{"duration": 2, "start": {}, "vod_required": true}}"#,
        now - 6
    );
    let clip = expect(
        request(
            addr,
            "PUT",
            "/streaming/streams/1/clip_recording",
            &AUTH,
            Some(body.as_bytes()),
        ),
        200,
    )
    .json();
    // DESIGN §4: "`vod_required: true`: ... `video_id` is returned at creation."
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

    // DESIGN §8: "Videos survive a restart."
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
