//! The clip archive on a real S3-compatible server (issue 21: "complete clips keep
//! serving from S3 through any node"): real ffmpeg pushes a ladder into one
//! `dvrclip serve --clip-archive s3://…` on moto; a clip cut from it is archived;
//! a second `dvrclip serve` with the same archive and no stream at all serves every
//! link of it (MP4s, playlists, inits, segments) with the same bytes (SHA-256) and
//! ETags, ranges of the MP4 (stored once: its header, and stretches of the segments
//! file) are the live file's, `If-None-Match`, `If-Range` and HEAD answer as there,
//! the MP4 decodes with ffmpeg, and every link answers 404 once the clip's
//! expiration passes. Prints what the archive wrote and how long it took
//! (`cargo test --test clip_archive -- --nocapture`; BENCHMARKS.md "Clip archive").

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::moto::CREDENTIALS;
use common::*;
use sha2::{Digest, Sha256};

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every public link of the clip whose master playlist is at `master`, as paths.
fn links(addr: SocketAddr, master: &str) -> Vec<String> {
    let dir = master.rsplit_once('/').unwrap().0.to_owned();
    let mut out = vec![
        master.to_owned(),
        master.replace("_master.m3u8", "_master.mp4"),
    ];
    let text = expect(get(addr, master), 200).text();
    let media: Vec<String> = text
        .lines()
        .filter(|l| l.ends_with(".m3u8"))
        .map(str::to_owned)
        .chain(
            text.split("URI=\"")
                .skip(1)
                .map(|s| s.split('"').next().unwrap().to_owned()),
        )
        .collect();
    for playlist in media {
        let path = format!("{dir}/{playlist}");
        out.push(path.replace(".m3u8", ".mp4"));
        let text = expect(get(addr, &path), 200).text();
        for line in text.lines() {
            if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
                out.push(format!("{dir}/{}", uri.trim_end_matches('"')));
            } else if !line.starts_with('#') && !line.is_empty() {
                out.push(format!("{dir}/{line}"));
            }
        }
        out.push(path);
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn a_second_node_serves_an_archived_clip_from_s3() {
    if !have_ffmpeg() {
        return;
    }
    let Some(moto) = require_moto("clips") else {
        return;
    };
    let endpoint = moto.endpoint();
    let args = [
        "--api-key",
        KEY,
        "--clip-archive",
        "s3://clips",
        "--s3-endpoint",
        &endpoint,
        "--s3-region",
        "us-east-1",
    ];
    let root = temp_dir("clip-archive");
    let first = Server::start_env(root.join("a"), temp_dir("archive-a"), &args, &CREDENTIALS);
    let a = first.addr;
    let stream = create_stream(a, "archived");
    let sid = stream["id"].as_u64().unwrap();
    let push_url = stream["push_url_http"].as_str().unwrap().to_owned();
    let mut ffmpeg = ChildGuard(push_ladder(&push_url, 16, 440));
    let (top, ..) = LADDER[0];
    let r = wait_chunks(a, sid, top, 5, Duration::from_secs(60));
    let first_chunk = r["ranges"][0]["start"].as_f64().unwrap();
    // 6 s from the DVR, complete at once; expiring as soon as the API allows (a
    // minute after the later of its end and now).
    let start = first_chunk.ceil() as i64;
    let expiration = (unix_now().ceil() as i64).max(start + 6) + 62;
    let body = format!(r#"{{"start": {start}, "duration": 6, "expiration": {expiration}}}"#);
    let path = format!("/streaming/streams/{sid}/clip_recording");
    let clip = expect(api(a, "PUT", &path, Some(&body)), 200).json();
    assert_eq!(clip["state"], "complete", "{clip}");
    let made = Instant::now();
    poll("the clip archived", Duration::from_secs(60), || {
        (metric(a, "dvrclip_archive_clips_total") >= 1).then_some(())
    });
    let seen_after = made.elapsed();
    let _ = ffmpeg.0.kill();
    let _ = ffmpeg.0.wait();

    let master = path_of(clip["hls_master"].as_str().unwrap()).to_owned();
    let paths = links(a, &master);
    let originals: Vec<Resp> = paths.iter().map(|p| expect(get(a, p), 200)).collect();

    // A second node: its own data directory, no stream, the same archive.
    let second = Server::start_env(root.join("b"), temp_dir("archive-b"), &args, &CREDENTIALS);
    let b = second.addr;
    assert_eq!(
        expect(api(b, "GET", "/streaming/streams", None), 200).json(),
        serde_json::json!([])
    );
    let mut mp4_bytes = 0;
    for (p, want) in paths.iter().zip(&originals) {
        let got = expect(get(b, p), 200);
        assert_eq!(sha256(&got.body), sha256(&want.body), "{p}");
        for h in ["ETag", "Content-Type", "Content-Length"] {
            assert_eq!(got.header(h), want.header(h), "{p} {h}");
        }
        if p.ends_with(".mp4") && !p.ends_with("_master.mp4") && !p.contains("/init_") {
            mp4_bytes += got.body.len();
        }
    }
    let mp4 = path_of(clip["mp4_master"].as_str().unwrap()).to_owned();
    let whole = expect(get(b, &mp4), 200);
    let live = expect(get(a, &mp4), 200);
    assert!(whole.body == live.body);
    // The MP4 is stored once (its header, and stretches of the segments file):
    // ranges in the header, across its end, inside and across chunks' media, to the
    // end, a suffix, are the live file's bytes.
    let len = whole.body.len();
    let mut ranges = vec![(100, 1099), (0, len - 1), (len - 1, len - 1)];
    for k in 1..16 {
        let at = k * len / 16;
        ranges.extend([(at - 700, at + 700), (at, (at + 300_000).min(len - 1))]);
    }
    for (x, y) in ranges {
        let range = format!("bytes={x}-{y}");
        let part = expect(request(b, "GET", &mp4, &[("Range", &range)], None), 206);
        assert!(part.body == whole.body[x..=y], "{range}");
        let cl = (y + 1 - x).to_string();
        assert_eq!(part.header("Content-Length"), Some(cl.as_str()));
    }
    let tail = expect(
        request(b, "GET", &mp4, &[("Range", "bytes=-5000")], None),
        206,
    );
    assert!(tail.body == whole.body[len - 5000..]);
    let etag = whole.header("ETag").unwrap().to_owned();
    let cached = request(b, "GET", &mp4, &[("If-None-Match", &etag)], None);
    assert_eq!(cached.status, 304);
    let if_range = [("Range", "bytes=2000-2999"), ("If-Range", etag.as_str())];
    assert_eq!(
        expect(request(b, "GET", &mp4, &if_range, None), 206)
            .body
            .len(),
        1000
    );
    let stale = [("Range", "bytes=2000-2999"), ("If-Range", "\"stale\"")];
    assert!(expect(request(b, "GET", &mp4, &stale, None), 200).body == whole.body);
    let head = expect(request(b, "HEAD", &mp4, &[], None), 200);
    assert_eq!(
        head.header("Content-Length"),
        whole.header("Content-Length")
    );
    let (decoded, log) = ffmpeg_decode(&format!("http://{b}{mp4}"));
    assert!(decoded, "ffmpeg could not decode the archived MP4: {log}");

    let written = metric(a, "dvrclip_archive_bytes_total");
    let micros = metric(a, "dvrclip_archive_write_micros_total");
    eprintln!(
        "clip archive: {} links; {written} bytes written for MP4s of {mp4_bytes} bytes \
         ({:.2}x); complete -> archived {:.1} ms (server), seen by the test after {:.0} ms",
        paths.len(),
        written as f64 / mp4_bytes as f64,
        micros as f64 / 1000.0,
        seen_after.as_secs_f64() * 1000.0
    );
    drop(first);

    // Expired: every link 404 from the archive too.
    let wait = (expiration as f64 - unix_now()).max(0.0) + 20.0;
    poll(
        "the archived clip expired",
        Duration::from_secs_f64(wait),
        || (get(b, &mp4).status == 404).then_some(()),
    );
    for p in &paths {
        assert_eq!(get(b, p).status, 404, "{p}");
    }
}
