//! Clips of the RTMP and SRT doors as a player plays them (issue 17: SRT clips
//! checked in hls.js): ffmpeg publishes H.264/AAC to both push doors at once, a clip
//! of each is cut, and `tests/console/players.test.mjs` plays each clip's HLS master
//! in hls.js and its MP4 in a plain `<video>` in Debian's chromium (Playwright):
//! both start, advance, and show the source's picture size. The decoders of the
//! e2e tests (ffmpeg) are not players; this is the check a user's browser makes.
//!
//! Needs ffmpeg, node, chromium and `npm ci` in `tests/console` (`.ci/run` installs
//! them; under `CI=true` a missing one fails the test).

mod common;

use std::time::Duration;

use common::{
    ChildGuard, Server, browser_ready, create_complete_clip, create_stream, have_ffmpeg, path_of,
    publish_test_signal, run_browser_script, wait_chunks,
};

#[test]
fn rtmp_and_srt_clips_play_in_a_browser() {
    if !(have_ffmpeg() && browser_ready()) {
        return;
    }
    let server = Server::start(&[
        "--srt-listen",
        "127.0.0.1:0",
        "--rtmp-listen",
        "127.0.0.1:0",
    ]);
    let addr = server.addr;
    let doors = [
        ("srt", "push_url_srt", "mpegts", "320x180"),
        ("rtmp", "push_url", "flv", "426x240"),
    ];
    let mut senders = Vec::new();
    let mut streams = Vec::new();
    for (door, field, format, size) in doors {
        let stream = create_stream(addr, door);
        let url = stream[field].as_str().expect(field).to_owned();
        senders.push(ChildGuard(publish_test_signal(&url, format, size, 12)));
        streams.push((door, stream["id"].as_u64().unwrap(), size));
    }
    let mut clips = Vec::new();
    for (door, sid, size) in streams {
        // Five 2 s chunks: a 6 s clip from the first whole second held is complete.
        let held = wait_chunks(addr, sid, door, 5, Duration::from_secs(30));
        let start = held["ranges"][0]["start"].as_f64().unwrap().ceil() as i64;
        let clip = create_complete_clip(addr, sid, start, 6);
        let link = |field: &str| format!("http://{addr}{}", path_of(clip[field].as_str().unwrap()));
        let (width, height) = size.split_once('x').unwrap();
        clips.push(format!(
            "{door},{},{},{width},{height}",
            link("hls_master"),
            link("mp4_master")
        ));
    }
    drop(senders);
    let stdout = run_browser_script(
        "players.test.mjs",
        "players test",
        &[
            ("DVRCLIP_URL", &format!("http://{addr}")),
            ("CLIPS", &clips.join(" ")),
        ],
        Duration::from_secs(120),
    );
    for (door, ..) in doors {
        assert!(
            stdout.contains(&format!("{door}: HLS plays in hls.js")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("{door}: MP4 plays")), "{stdout}");
    }
}
