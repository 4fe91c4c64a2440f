//! SRT push into the real binary (issue 17; ref/api.md "Ingest" SRT): real ffmpeg
//! (Debian's, with libsrt) sending `-f mpegts` to the Stream's `push_url_srt` on
//! `127.0.0.1:0`, clips cut through the API, ffprobe and ffmpeg as the oracle for
//! what comes out.
//!
//! - `push_restart_and_clip`: H.264 + AAC, the sender killed mid-stream and started
//!   again (a restart); a second caller on the live key is refused, through SRT or
//!   RTMP; a clip across the restart plays, both tracks, with one discontinuity.
//! - `refusals_store_nothing`: a wrong key, SRT's access-control form with another
//!   mode, encryption asked of a door without a passphrase, a flood of handshakes
//!   from many ports and garbage datagrams: refused or ignored, counted, the DVR
//!   untouched; a caller that makes `srt-tokio`'s listener panic, after which the
//!   door binds its socket again; and a good caller is taken afterwards.
//! - `passphrase`: a door with a passphrase takes a caller that encrypts with it and
//!   refuses one with another.
//!
//! Waits happen only on real ingest (ffmpeg `-re` in real time), polling with a bound.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// `ffmpeg -re` sending test video and a tone as MPEG-TS over SRT for `secs`.
fn publish(url: &str, secs: u32) -> Child {
    publish_test_signal(url, "mpegts", "320x180", secs)
}

/// Runs a sender for `secs` and says whether ffmpeg succeeded.
fn publish_ok(url: &str, secs: u32) -> (bool, String) {
    let out = publish(url, secs).wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The SRT address the server printed.
fn srt_addr(server: &mut Server) -> SocketAddr {
    loop {
        let line = server.stdout_line();
        assert!(!line.is_empty(), "no srt listening line");
        if let Some(a) = line.trim().strip_prefix("dvrclip srt listening on srt://") {
            return a.parse().unwrap();
        }
    }
}

#[test]
fn push_restart_and_clip() {
    if !have_ffmpeg() {
        return;
    }
    let server = Server::start(&[
        "--srt-listen",
        "127.0.0.1:0",
        "--rtmp-listen",
        "127.0.0.1:0",
    ]);
    let addr = server.addr;
    let stream = create_stream(addr, "srt");
    let sid = stream["id"].as_u64().unwrap();
    let key = ingest_key(&stream);
    // ref/api.md "Stream object": `srt://{host}:{srt port}?streamid={ingest key}`.
    let url = stream["push_url_srt"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("srt://127.0.0.1:") && url.ends_with(&format!("?streamid={key}")),
        "{stream}"
    );

    let mut first = publish(&url, 30);
    wait_chunks(addr, sid, "srt", 2, Duration::from_secs(20));
    let live = expect(
        api(addr, "GET", &format!("/streaming/streams/{sid}"), None),
        200,
    )
    .json();
    assert_eq!(live["live"], true, "{live}");
    // One caller per key: a second is refused in the handshake.
    let (ok, _) = publish_ok(&url, 2);
    assert!(!ok, "a second caller was accepted");
    // ... and through the other push door too (Gcore: one protocol at a time).
    let rtmp = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30",
            "-t",
            "1",
        ])
        .args(["-c:v", "libx264", "-f", "flv"])
        .arg(stream["push_url"].as_str().unwrap())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!rtmp.status.success(), "an RTMP publisher was accepted");
    // The sender dies mid-stream (no SRT shutdown), then starts again once SRT's
    // peer idle timeout (5 s) has freed the key.
    std::thread::sleep(Duration::from_secs(1));
    first.kill().unwrap();
    let _ = first.wait();
    poll("the dead caller dropped", Duration::from_secs(15), || {
        (metric(addr, "dvrclip_srt_connections") == 0).then_some(())
    });
    let before = wait_chunks(addr, sid, "srt", 2, Duration::from_secs(5));
    let (ok, stderr) = publish_ok(&url, 6);
    assert!(ok, "ffmpeg (restart): {stderr}");
    let chunks_before = before["chunks"].as_u64().unwrap();
    let r = wait_chunks(addr, sid, "srt", chunks_before + 2, Duration::from_secs(5));
    // A reconnect is a discontinuity (issue 17: "a sender restart is a discontinuity").
    let ranges = r["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 2, "{r}");
    assert!(
        ranges[1]["start"].as_f64() >= ranges[0]["end"].as_f64(),
        "{r}"
    );

    // A clip across the restart: 2 s before the first run's end to 3 s into the second.
    let start = ranges[0]["end"].as_f64().unwrap().floor() as i64 - 2;
    let end = ranges[1]["start"].as_f64().unwrap().ceil() as i64 + 3;
    let clip = create_complete_clip(addr, sid, start, end - start);
    let master = path_of(clip["hls_master"].as_str().unwrap()).to_owned();
    let base = master.strip_suffix("_master.m3u8").unwrap();
    let playlist = expect(get(addr, &format!("{base}_srt.m3u8")), 200).text();
    assert_eq!(
        playlist.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{playlist}"
    );
    let mp4 = format!(
        "http://{addr}{}",
        path_of(clip["mp4_master"].as_str().unwrap())
    );
    let probed = ffprobe(&mp4, &["-count_frames", "-show_streams"]);
    let streams = probed["streams"].as_array().expect("streams");
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
    // 30 fps on both sides of the gap (the dead caller's 5 s and the restart hold no
    // media); the clip starts on a keyframe at or before `start`.
    let media = (ranges[0]["end"].as_f64().unwrap() - start as f64)
        + (end as f64 - ranges[1]["start"].as_f64().unwrap());
    assert!(
        n as f64 >= 30.0 * media * 0.8 && n as f64 <= 30.0 * (secs + 1.0),
        "{n} video frames, {media} s of media in a {secs} s clip: {video}"
    );
    assert!(frames(audio) > 0, "{audio}");
    eprintln!(
        "clip across the restart: {secs} s, {n} video frames, {} audio frames, DVR {r}",
        frames(audio)
    );
    let (ok, errors) = ffmpeg_decode(&mp4);
    assert!(ok && errors.is_empty(), "MP4 across the restart:\n{errors}");
    let (ok, errors) = ffmpeg_decode(&format!("http://{addr}{master}"));
    assert!(ok && errors.is_empty(), "HLS across the restart:\n{errors}");
    assert!(metric(addr, "dvrclip_srt_publishes_total") >= 2);
    assert!(metric(addr, "dvrclip_srt_refused_total") >= 1);
    assert!(metric(addr, "dvrclip_srt_fragments_total") >= 4);
}

/// An SRT HSv5 induction request (SRT RFC draft §3.2.1, §4.3.1.1): a control packet
/// of type handshake, version 4, extension field 2, MTU 1500, type induction (1).
fn induction(socket_id: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend(0x8000_0000u32.to_be_bytes()); // control, type 0 (handshake)
    p.extend(0u32.to_be_bytes()); // type-specific
    p.extend(0u32.to_be_bytes()); // timestamp
    p.extend(0u32.to_be_bytes()); // destination socket id
    p.extend(4u32.to_be_bytes()); // version
    p.extend(0u16.to_be_bytes()); // encryption
    p.extend(2u16.to_be_bytes()); // extension field
    p.extend(socket_id.wrapping_mul(7).to_be_bytes()); // initial sequence number
    p.extend(1500u32.to_be_bytes()); // MTU
    p.extend(8192u32.to_be_bytes()); // flow window
    p.extend(1u32.to_be_bytes()); // handshake type: induction
    p.extend(socket_id.to_be_bytes());
    p.extend(0u32.to_be_bytes()); // SYN cookie
    p.extend([127, 0, 0, 1]);
    p.extend([0u8; 12]);
    p
}

#[test]
fn refusals_store_nothing() {
    if !have_ffmpeg() {
        return;
    }
    let mut server = Server::start(&["--srt-listen", "127.0.0.1:0"]);
    let addr = server.addr;
    let srt = srt_addr(&mut server);
    let stream = create_stream(addr, "refusals");
    let sid = stream["id"].as_u64().unwrap();
    let key = ingest_key(&stream);

    // A handshake flood from 200 ports, then garbage datagrams of every short length.
    // The sockets stay open to the end, so that no caller below is given a flooded
    // port (`srt-tokio` keeps a session per source address).
    let mut answered = 0;
    let mut flood = Vec::new();
    for i in 0..200u32 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.send_to(&induction(i + 1), srt).unwrap();
        let mut buf = [0u8; 1500];
        if s.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
        let _ = s.send_to(&vec![(i % 251) as u8; (i as usize * 7) % 1400], srt);
        flood.push(s);
    }
    assert!(answered > 0, "no induction answered");

    let refused = [
        format!("srt://{srt}?streamid=nokey"),
        format!("srt://{srt}?streamid=#!::r={key},m=request"),
        format!("srt://{srt}?streamid={key}&passphrase=0123456789ab&pbkeylen=16"),
        format!("srt://{srt}"),
    ];
    for (n, url) in refused.iter().enumerate() {
        let (ok, stderr) = publish_ok(url, 1);
        assert!(!ok, "{url} was accepted");
        let counted = metric(addr, "dvrclip_srt_refused_total");
        assert!(
            counted > n as u64,
            "{url} failed without a refusal counted ({counted}): {stderr}"
        );
    }
    // Nothing was stored.
    assert_eq!(dvr(addr, sid)["renditions"], serde_json::json!([]));
    assert_eq!(metric(addr, "dvrclip_srt_publishes_total"), 0);
    assert_eq!(metric(addr, "dvrclip_srt_listener_restarts_total"), 0);
    // A caller with the right key that encrypts without announcing a key length, to
    // a door without a passphrase: `srt-tokio`'s listener task panics on it after
    // our yes (crates/ingest/src/srt/mod.rs); the door binds its socket again.
    let (ok, _) = publish_ok(
        &format!("srt://{srt}?streamid={key}&passphrase=0123456789ab"),
        1,
    );
    assert!(
        !ok,
        "an encrypting caller was accepted by a door without a passphrase"
    );
    poll("the listener bound again", Duration::from_secs(10), || {
        (metric(addr, "dvrclip_srt_listener_restarts_total") >= 1).then_some(())
    });
    assert_eq!(dvr(addr, sid)["renditions"], serde_json::json!([]));
    // The door still takes a good caller (SRT's access-control form this time).
    let (ok, stderr) = publish_ok(&format!("srt://{srt}?streamid=#!::r={key},m=publish"), 5);
    assert!(ok, "{stderr}");
    wait_chunks(addr, sid, "srt", 1, Duration::from_secs(10));
    drop(flood);
}

#[test]
fn passphrase() {
    if !have_ffmpeg() {
        return;
    }
    let server = Server::start(&[
        "--srt-listen",
        "127.0.0.1:0",
        "--srt-passphrase",
        "correct-horse-battery",
    ]);
    let addr = server.addr;
    let stream = create_stream(addr, "secret");
    let sid = stream["id"].as_u64().unwrap();
    let url = stream["push_url_srt"].as_str().unwrap().to_owned();
    let (ok, _) = publish_ok(&format!("{url}&passphrase=battery-horse-wrong"), 1);
    assert!(!ok, "a wrong passphrase was accepted");
    let (ok, _) = publish_ok(&url, 1);
    assert!(!ok, "a caller without the passphrase was accepted");
    assert_eq!(dvr(addr, sid)["renditions"], serde_json::json!([]));
    // The key length is the caller's choice (ffmpeg's `pbkeylen`).
    let (ok, stderr) = publish_ok(
        &format!("{url}&passphrase=correct-horse-battery&pbkeylen=32"),
        5,
    );
    assert!(ok, "{stderr}");
    wait_chunks(addr, sid, "srt", 1, Duration::from_secs(10));
    assert_eq!(metric(addr, "dvrclip_srt_listener_restarts_total"), 0);
}
