//! RTMP push into the real binary (issue 16 §2; ref/api.md "Ingest" RTMP): real
//! ffmpeg publishing `-f flv` to the Stream's `push_url` on `127.0.0.1:0`, clips cut
//! through the API, ffprobe and ffmpeg as the oracle for what comes out.
//!
//! - `push_reconnect_and_clip`: H.264 + AAC for ~6 s, the encoder killed mid-stream
//!   and started again for 5 s (a reconnect); a second publisher on the live key is
//!   refused; a clip across the reconnect plays, both tracks, with one discontinuity.
//! - `video_only_push`: `-an`; the clip has one video track.
//! - `stalled_publisher_is_closed`: an encoder frozen (SIGSTOP) after publishing is
//!   closed by the idle timeout (15 s), counted, and its key taken by a new publisher;
//!   what it stored stays.
//! - `hostile_connections_are_closed`: no ffmpeg needed: garbage handshakes, a wrong
//!   app, an unknown key, a huge message; each closed, counted, the DVR untouched.
//!
//! Waits happen only on real ingest (ffmpeg `-re` in real time), polling with a bound.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn start() -> Server {
    Server::start(&["--rtmp-listen", "127.0.0.1:0"])
}

/// `ffmpeg -re` publishing test video (and a tone unless `video_only`) for `secs`.
fn publish(url: &str, secs: u32, video_only: bool) -> Child {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"]);
    if !video_only {
        c.args(["-f", "lavfi", "-i", "sine=frequency=440"]);
    }
    c.args(["-t", &secs.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "60"]);
    if video_only {
        c.arg("-an");
    } else {
        c.args(["-c:a", "aac"]);
    }
    c.args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning ffmpeg")
}

/// ffprobe's streams of `url`, frames counted.
fn probe(url: &str) -> Vec<Value> {
    let p = ffprobe(url, &["-count_frames", "-show_streams"]);
    p["streams"].as_array().expect("streams").clone()
}

#[test]
fn push_reconnect_and_clip() {
    if !have_ffmpeg() {
        return;
    }
    let server = start();
    let addr = server.addr;
    let stream = create_stream(addr, "rtmp");
    let sid = stream["id"].as_u64().unwrap();
    let key = ingest_key(&stream);
    // ref/api.md "Streams": `push_url` is `rtmp://{host}:{port}/live/{ingest key}`.
    let url = stream["push_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("rtmp://127.0.0.1:") && url.ends_with(&format!("/live/{key}")),
        "{stream}"
    );
    assert!(
        stream["push_url_http"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{addr}/ingest/")),
        "{stream}"
    );

    let mut first = publish(&url, 30, false);
    wait_chunks(addr, sid, "rtmp", 2, Duration::from_secs(15));
    let live = expect(
        api(addr, "GET", &format!("/streaming/streams/{sid}"), None),
        200,
    )
    .json();
    assert_eq!(live["live"], true, "{live}");
    // Issue 16: "a second publisher on a key that is already live is refused".
    let second = publish(&url, 2, true).wait_with_output().unwrap();
    assert!(!second.status.success(), "a second publisher was accepted");
    // The encoder dies mid-stream (no FCUnpublish), then reconnects.
    std::thread::sleep(Duration::from_secs(1));
    first.kill().unwrap();
    let _ = first.wait();
    let before = wait_chunks(addr, sid, "rtmp", 2, Duration::from_secs(5));
    let again = publish(&url, 5, false);
    let out = again.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ffmpeg (reconnect): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chunks_before = before["chunks"].as_u64().unwrap();
    let r = wait_chunks(addr, sid, "rtmp", chunks_before + 2, Duration::from_secs(5));
    // A reconnect is a new discontinuity (design/architecture.md "Ingest").
    let ranges = r["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 2, "{r}");
    assert_eq!(r["discontinuities"].as_array().unwrap().len(), 2, "{r}");
    assert!(
        ranges[1]["start"].as_f64() >= ranges[0]["end"].as_f64(),
        "{r}"
    );

    // A clip across the reconnect: 2 s before the first run's end to 3 s into the second.
    let start = ranges[0]["end"].as_f64().unwrap().floor() as i64 - 2;
    let end = ranges[1]["start"].as_f64().unwrap().ceil() as i64 + 3;
    let clip = create_complete_clip(addr, sid, start, end - start);
    let master = path_of(clip["hls_master"].as_str().unwrap()).to_owned();
    let base = master.strip_suffix("_master.m3u8").unwrap();
    let playlist = expect(get(addr, &format!("{base}_rtmp.m3u8")), 200).text();
    assert_eq!(
        playlist.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{playlist}"
    );
    let mp4 = format!(
        "http://{addr}{}",
        path_of(clip["mp4_master"].as_str().unwrap())
    );
    let streams = probe(&mp4);
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video");
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("audio");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(audio["codec_name"], "aac");
    let secs = clip["actual_duration"].as_f64().unwrap_or(0.0);
    let n = frames(video);
    // 30 fps on both sides; the clip starts on a keyframe before `start`.
    assert!(
        n as f64 >= 30.0 * (end - start) as f64 * 0.8 && n as f64 <= 30.0 * (secs + 1.0),
        "{n} video frames in {secs} s: {video}"
    );
    assert!(frames(audio) > 0, "{audio}");
    eprintln!(
        "clip across the reconnect: {secs} s, {n} video frames, {} audio frames, DVR {r}",
        frames(audio)
    );
    let (ok, errors) = ffmpeg_decode(&mp4);
    assert!(
        ok && errors.is_empty(),
        "MP4 across the reconnect:\n{errors}"
    );
    let (ok, errors) = ffmpeg_decode(&format!("http://{addr}{master}"));
    assert!(
        ok && errors.is_empty(),
        "HLS across the reconnect:\n{errors}"
    );
    assert!(metric(addr, "dvrclip_rtmp_publishes_total") >= 2);
    assert!(metric(addr, "dvrclip_rtmp_errors_total") >= 1);
}

#[test]
fn video_only_push() {
    if !have_ffmpeg() {
        return;
    }
    let server = start();
    let addr = server.addr;
    let stream = create_stream(addr, "video-only");
    let sid = stream["id"].as_u64().unwrap();
    let url = stream["push_url"].as_str().unwrap();
    let out = publish(url, 5, true).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = wait_chunks(addr, sid, "rtmp", 2, Duration::from_secs(5));
    let range = &r["ranges"][0];
    let start = range["start"].as_f64().unwrap().ceil() as i64;
    let end = range["end"].as_f64().unwrap().floor() as i64;
    let clip = create_complete_clip(addr, sid, start, end - start);
    let mp4 = format!(
        "http://{addr}{}",
        path_of(clip["mp4_master"].as_str().unwrap())
    );
    let streams = probe(&mp4);
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!(streams[0]["codec_type"], "video");
    assert!(
        frames(&streams[0]) >= 30 * (end - start) as u64 * 8 / 10,
        "{streams:?}"
    );
    let (ok, errors) = ffmpeg_decode(&mp4);
    assert!(ok && errors.is_empty(), "{errors}");
}

#[test]
fn stalled_publisher_is_closed() {
    if !have_ffmpeg() {
        return;
    }
    let server = start();
    let addr = server.addr;
    let stream = create_stream(addr, "stall");
    let sid = stream["id"].as_u64().unwrap();
    let url = stream["push_url"].as_str().unwrap().to_owned();
    let mut frozen = publish(&url, 120, false);
    let before = wait_chunks(addr, sid, "rtmp", 2, Duration::from_secs(20));
    let signal = |sig: &str, child: &Child| {
        let ok = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP", &frozen);
    let timeouts = metric(addr, "dvrclip_rtmp_timeouts_total");
    // The idle timeout is 15 s; the connection is closed within it plus a margin.
    poll("idle close", Duration::from_secs(30), || {
        (metric(addr, "dvrclip_rtmp_timeouts_total") > timeouts).then_some(())
    });
    let after_close = wait_chunks(addr, sid, "rtmp", 0, Duration::from_secs(1));
    assert!(
        after_close["chunks"].as_u64() >= before["chunks"].as_u64(),
        "what the frozen publisher stored stays: {before} then {after_close}"
    );
    // The key is free again: a new publisher is taken and its media stored.
    let fresh = publish(&url, 5, false).wait_with_output().unwrap();
    assert!(
        fresh.status.success(),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    let target = after_close["chunks"].as_u64().unwrap() + 2;
    wait_chunks(addr, sid, "rtmp", target, Duration::from_secs(10));
    signal("-CONT", &frozen);
    let _ = frozen.kill();
    let _ = frozen.wait();
}

/// Sends `bytes` and reads until the server closes; true when it did within 5 s.
fn closed_after(rtmp: SocketAddr, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(rtmp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// An RTMP handshake (C0, C1, then C2 echoing S1), as a plain-handshake client does.
fn handshake(rtmp: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(rtmp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, 1536));
    s.write_all(&c0c1).unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    s.read_exact(&mut s0s1s2).unwrap();
    s.write_all(&s0s1s2[1..1537]).unwrap();
    s
}

#[test]
fn hostile_connections_are_closed() {
    let mut server = start();
    let addr = server.addr;
    let rtmp: SocketAddr = loop {
        let line = server.stdout_line();
        assert!(!line.is_empty(), "no rtmp listening line");
        if let Some(a) = line
            .trim()
            .strip_prefix("dvrclip rtmp listening on rtmp://")
        {
            break a.parse().unwrap();
        }
    };
    let stream = create_stream(addr, "hostile");
    let sid = stream["id"].as_u64().unwrap();

    // Not a handshake: RTMP version 3 is the only one.
    assert!(closed_after(rtmp, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    // A flood before any publish (64 KiB cap), after a good handshake.
    let mut s = handshake(rtmp);
    let _ = s.write_all(&vec![0x03u8; 200 << 10]);
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break true,
            Ok(_) => continue,
        }
    };
    assert!(closed);
    // A chunk header claiming a 16 MiB message and then AMF garbage.
    let mut s = handshake(rtmp);
    let mut chunk = vec![0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0x14, 0, 0, 0, 0];
    chunk.extend(std::iter::repeat_n(0xAAu8, 128));
    chunk.extend([0x02, 0, 0, 0, 0, 0, 5, 0x14, 0, 0, 0, 0, 9, 9, 9, 9, 9]);
    let _ = s.write_all(&chunk);
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break true,
            Ok(_) => continue,
        }
    };
    assert!(closed);
    if have_ffmpeg() {
        // An unknown key and a wrong app: ffmpeg is refused.
        let rtmp_url = format!("rtmp://{rtmp}");
        for url in [
            format!("{rtmp_url}/live/nokey"),
            format!("{rtmp_url}/other/x"),
        ] {
            let out = publish(&url, 1, true).wait_with_output().unwrap();
            assert!(!out.status.success(), "{url} was accepted");
        }
    }
    // The ring is unchanged: nothing was ever stored.
    assert_eq!(dvr(addr, sid)["renditions"], serde_json::json!([]));
    assert!(metric(addr, "dvrclip_rtmp_errors_total") >= 3);
    assert_eq!(metric(addr, "dvrclip_rtmp_publishes_total"), 0);
}
