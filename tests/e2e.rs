//! End-to-end tests of `dvrclip serve` (issue 7; ref/api.md).
//!
//! `live_ladder_through_the_real_binary` runs the real binary on `127.0.0.1:0`,
//! pushes a live 3-rendition ladder with real ffmpeg once (~24 s), then restarts the
//! encoder for 6 s; every section (clips from the past, from now and across the
//! restart, public links, validation, auth, ingest refusals, Gcore client shapes,
//! deletion, shutdown) shares those pushes. ffprobe and ffmpeg are the oracle for
//! every MP4 and playlist the server writes. `demo_stream_is_clippable` runs
//! `--demo` alone; `refused_and_aborted_uploads_commit_nothing` and
//! `stalled_clients_are_cut_off` need no encoder. `expired_clip_links_answer_404`
//! runs the server in-process on an engine whose clock the test drives, so an
//! expiry takes no time.
//!
//! Waits happen only on real ingest (an encoder or the demo pushing in real time)
//! and on the binary's own timers, polling every 200–500 ms with a bound.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

fn dvr(addr: SocketAddr, stream: u64) -> Value {
    expect(
        api(
            addr,
            "GET",
            &format!("/streaming/streams/{stream}/dvr"),
            None,
        ),
        200,
    )
    .json()
}

fn rendition_dvr<'a>(dvr: &'a Value, name: &str) -> &'a Value {
    dvr["renditions"]
        .as_array()
        .expect("renditions")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no rendition {name} in {dvr}"))
}

/// The DVR once every rendition holds `n` chunks, or after 10 s, whichever is first.
/// ffmpeg exits without reading the answers to its last uploads, so the server may
/// still be storing them when ffmpeg is gone (seen: the DVR read 1 ms before the
/// last segment of one rendition was stored). Waiting on real ingest: no clock to
/// drive.
fn wait_for_chunks(addr: SocketAddr, stream: u64, n: u64) -> Value {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = dvr(addr, stream);
        let all = LADDER
            .iter()
            .all(|(name, ..)| rendition_dvr(&d, name)["chunks"].as_u64() >= Some(n));
        if all || std::time::Instant::now() > until {
            return d;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn create_clip(addr: SocketAddr, stream: u64, body: &str) -> Resp {
    api(
        addr,
        "PUT",
        &format!("/streaming/streams/{stream}/clip_recording"),
        Some(body),
    )
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A 400 (or other `status`) whose JSON error names `field`.
#[track_caller]
fn expect_field(resp: Resp, status: u16, field: &str) {
    let body = expect(resp, status).json();
    assert_eq!(body["field"], field, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

/// ref/api.md "Clips": The clip covers `[start, start+duration)` widened outward to chunk
/// boundaries that begin with a keyframe: it may gain one chunk at each end. With
/// 2 s chunks, each edge lies within one chunk outside the request. `slack` covers a
/// `start` the API reports in whole seconds when the server chose it (now).
#[track_caller]
fn assert_covers(clip: &Value, start: f64, duration: f64, slack: f64) {
    let actual_start = clip["actual_start"].as_f64().expect("actual_start");
    let actual_end = actual_start + clip["actual_duration"].as_f64().expect("actual_duration");
    let end = start + duration;
    assert!(
        (start - 2.0 - slack..=start + slack).contains(&actual_start),
        "actual_start {actual_start} vs requested {start}: {clip}"
    );
    assert!(
        (end - slack..=end + 2.0 + slack).contains(&actual_end),
        "actual end {actual_end} vs requested {end}: {clip}"
    );
}

/// Checks one clip MP4 with ffprobe and ffmpeg (ref/api.md "Public clip links": Progressive, `moov`
/// before `mdat`, correct durations, audio and video tracks, starts at time 0 on a
/// keyframe): video of `size` plus audio; the first video packet a keyframe at 0;
/// the file lasts `media_secs` (the clip's `actual_duration`, or its playlists'
/// EXTINF total when a restart gap lies inside); a full decode prints nothing.
#[track_caller]
fn check_mp4(url: &str, size: (u32, u32), media_secs: f64) {
    let probe = ffprobe(url, &["-show_streams", "-show_format"]);
    let streams = probe["streams"].as_array().expect("streams");
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream in {url}: {probe}"));
    assert!(
        streams.iter().any(|s| s["codec_type"] == "audio"),
        "no audio stream in {url}: {probe}"
    );
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(size.0 as u64), Some(size.1 as u64)),
        "{url}"
    );
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("format duration");
    assert!(
        (duration - media_secs).abs() <= 0.1,
        "{url}: ffprobe says {duration} s, the clip {media_secs} s"
    );

    let packets = ffprobe(
        url,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,dts_time,flags",
            "-read_intervals",
            "%+#1",
        ],
    );
    let first = &packets["packets"][0];
    assert!(
        first["flags"].as_str().is_some_and(|f| f.starts_with('K')),
        "{url}: first video packet is not a keyframe: {first}"
    );
    let pts: f64 = first["pts_time"].as_str().unwrap().parse().unwrap();
    assert!(pts.abs() < 0.001, "{url}: first video pts {pts}");

    let (ok, errors) = ffmpeg_decode(url);
    assert!(ok && errors.is_empty(), "{url}: decode errors:\n{errors}");
}

/// The `EXT-X-STREAM-INF` attribute lines of a master playlist.
fn variants(master: &str) -> Vec<&str> {
    master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect()
}

/// The media segment URIs of a media playlist, in order.
fn media_uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn extinf_total(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').split(',').next().unwrap())
        .map(|d| d.parse::<f64>().expect("EXTINF"))
        .sum()
}

fn clip_base(clip: &Value) -> String {
    let master = clip["hls_master"].as_str().unwrap();
    path_of(master)
        .strip_suffix("_master.m3u8")
        .unwrap()
        .to_owned()
}

/// The Clip object's Gcore fields, exactly as ref/api.md names them.
#[track_caller]
fn assert_gcore_clip(clip: &Value, addr: SocketAddr, stream: u64) {
    let id = clip["id"].as_str().expect("id is a string");
    // ref/api.md "Public clip links": the clip id is unguessable: 128 bits from the OS RNG.
    assert!(
        id.len() >= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{clip}"
    );
    for f in ["duration", "start", "expiration"] {
        assert!(clip[f].is_i64(), "{f} is not an integer: {clip}");
    }
    let created = clip["created_at"].as_str().expect("created_at");
    assert!(
        created.len() == 24 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "created_at {created:?}"
    );
    assert!(clip["vod_required"].is_boolean(), "{clip}");
    let renditions: Vec<&str> = clip["renditions"]
        .as_array()
        .expect("renditions")
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for (name, ..) in LADDER {
        assert!(renditions.contains(&name), "{clip}");
    }
    let prefix = format!("http://{addr}/rec/{stream}/rec_{id}_master");
    assert_eq!(clip["hls_master"], format!("{prefix}.m3u8"));
    assert_eq!(clip["mp4_master"], format!("{prefix}.mp4"));
}

#[test]
fn live_ladder_through_the_real_binary() {
    if !have_ffmpeg() {
        return;
    }
    let server = Server::start(&[]);
    let addr = server.addr;

    // ----- streams (ref/api.md: create a stream from a flat body) -----
    let stream = expect(
        api(
            addr,
            "POST",
            "/streaming/streams",
            Some(r#"{"name": "e2e live", "dvr_duration": 3600}"#),
        ),
        201,
    )
    .json();
    let sid = stream["id"].as_u64().expect("id is an integer");
    assert_eq!(stream["name"], "e2e live");
    assert_eq!(stream["dvr_enabled"], true);
    assert_eq!(stream["dvr_duration"], 3600);
    let push_url = stream["push_url_http"].as_str().unwrap().to_owned();
    assert!(
        push_url.starts_with(&format!("http://{addr}/ingest/")),
        "push_url {push_url} must name the bound address"
    );
    let ingest_path = path_of(&push_url).to_owned();
    let no_dvr = expect(
        api(
            addr,
            "POST",
            "/streaming/streams",
            Some(r#"{"name": "no dvr", "dvr_enabled": false}"#),
        ),
        201,
    )
    .json();
    let no_dvr_id = no_dvr["id"].as_u64().unwrap();

    // ----- a live ladder from real ffmpeg -----
    let ffmpeg = push_ladder(&push_url, 24, 440);
    let (top, top_w, top_h, _) = LADDER[0];
    poll("two chunks in the DVR", Duration::from_secs(40), || {
        let d = dvr(addr, sid);
        let n = d["renditions"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == top)?["chunks"]
            .as_u64()?;
        (n >= 2).then_some(())
    });

    // ----- a clip from now, while ffmpeg pushes -----
    // ref/api.md "Clips": `start` omitted or the end in the future: the clip is **recording**;
    // it takes new chunks as they arrive until its end.
    let requested_at = unix_now();
    let live = expect(create_clip(addr, sid, r#"{"duration": 6}"#), 200).json();
    assert_gcore_clip(&live, addr, sid);
    assert_eq!(live["state"], "recording", "{live}");
    assert_eq!(live["duration"], 6);
    let live_start = live["start"].as_i64().unwrap() as f64;
    assert!((live_start - requested_at).abs() <= 1.0, "{live}");
    // Stream object: "`live` (ingest seen in the last few seconds)".
    let s = expect(
        api(addr, "GET", &format!("/streaming/streams/{sid}"), None),
        200,
    )
    .json();
    assert_eq!(s["live"], true, "{s}");
    let live_base = clip_base(&live);
    let live_mp4 = live["mp4_master"].as_str().unwrap().to_owned();

    // ref/api.md "Public clip links": MP4: ... **425 Too Early** while it is recording.
    let early = expect(get(addr, path_of(&live_mp4)), 425);
    assert_eq!(early.header("access-control-allow-origin"), Some("*"));
    expect(get(addr, &format!("{live_base}_{top}.mp4")), 425);
    // ref/api.md "Public clip links": while recording, an `EVENT` playlist that grows.
    let event = expect(get(addr, &format!("{live_base}_{top}.m3u8")), 200);
    let text = event.text();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    assert_eq!(event.header("cache-control"), Some("no-cache"));

    // Waiting on real ingest from a real encoder: no clock to drive here. Meanwhile
    // the EVENT playlist is watched as a player would: the segments it lists play.
    let live_dir = live_base.rsplit_once('/').unwrap().0.to_owned();
    let mut watched: Vec<String> = Vec::new();
    let done = poll("the live clip to complete", Duration::from_secs(40), || {
        let r = get(addr, path_of(&live_mp4));
        if r.status != 425 {
            return Some(r);
        }
        let playlist = expect(get(addr, &format!("{live_base}_{top}.m3u8")), 200).text();
        if playlist.contains("#EXT-X-PLAYLIST-TYPE:EVENT") {
            let segs = media_uris(&playlist);
            if let Some(last) = segs.last() {
                expect(get(addr, &format!("{live_dir}/{last}")), 200);
                // Once a rendition holds media, the master lists it.
                let master = expect(get(addr, &format!("{live_base}_master.m3u8")), 200).text();
                let uri = format!("{}_{top}.m3u8", live_base.rsplit('/').next().unwrap());
                assert!(master.contains(&uri), "{master}");
            }
            if segs.len() > watched.len() {
                watched = segs;
            }
        }
        None
    });
    let done = expect(done, 200);
    assert!(!done.body.is_empty());
    // ref/api.md "Public clip links": VOD playlist with `EXT-X-ENDLIST` when complete.
    let vod = expect(get(addr, &format!("{live_base}_{top}.m3u8")), 200).text();
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{vod}");
    assert!(vod.trim_end().ends_with("#EXT-X-ENDLIST"), "{vod}");
    // "an `EVENT` playlist that grows (a player can watch the clip being recorded)":
    // it listed segments before completion, and only ever appended to them.
    let final_segs = media_uris(&vod);
    assert!(
        !watched.is_empty() && watched.len() <= final_segs.len(),
        "EVENT playlist never listed a segment while recording: {watched:?} / {final_segs:?}"
    );
    assert_eq!(final_segs[..watched.len()], watched[..], "{vod}");
    let live_master = format!("http://{addr}{live_base}_master.m3u8");
    let master = expect(get(addr, path_of(&live_master)), 200).text();
    assert_eq!(variants(&master).len(), 3, "{master}");
    let (ok, errors) = ffmpeg_decode(&live_master);
    assert!(ok && errors.is_empty(), "live clip HLS:\n{errors}");
    let clips = expect(
        api(
            addr,
            "GET",
            &format!("/streaming/streams/{sid}/clip_recording"),
            None,
        ),
        200,
    )
    .json();
    let live_done = clips
        .as_array()
        .expect("the clip list is a JSON array")
        .iter()
        .find(|c| c["id"] == live["id"])
        .expect("the live clip is listed")
        .clone();
    assert_eq!(live_done["state"], "complete", "{live_done}");
    assert_covers(&live_done, live_start, 6.0, 1.0);
    let live_duration = live_done["actual_duration"].as_f64().unwrap();
    check_mp4(&live_mp4, (top_w, top_h), live_duration);

    // ----- every upload lands -----
    let out = ffmpeg.wait_with_output().expect("waiting for ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Issue 7: "An e2e test with real ffmpeg must prove every upload lands": 24 s at
    // `-hls_time 2` is 12 segments per rendition, all in the DVR, with no gap.
    let d = wait_for_chunks(addr, sid, 12);
    assert_eq!(d["renditions"].as_array().unwrap().len(), 3, "{d}");
    for (name, ..) in LADDER {
        let r = rendition_dvr(&d, name);
        assert_eq!(r["chunks"], 12, "{name}: {d}");
        assert_eq!(r["gaps"].as_array().unwrap().len(), 0, "{name}: {r}");
        let ranges = r["ranges"].as_array().unwrap();
        assert_eq!(ranges.len(), 1, "{name}: {r}");
        let span = ranges[0]["end"].as_f64().unwrap() - ranges[0]["start"].as_f64().unwrap();
        assert!((span - 24.0).abs() < 0.1, "{name}: {span} s in {r}");
    }
    let metrics = expect(get(addr, "/metrics"), 200).text();
    assert!(
        metrics.contains("\ndvrclip_ingest_errors_total 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\ndvrclip_dvr_chunks 36\n"), "{metrics}");
    let s = expect(
        api(addr, "GET", &format!("/streaming/streams/{sid}"), None),
        200,
    )
    .json();
    assert_eq!(
        (s["video_width"].as_u64(), s["video_height"].as_u64()),
        (Some(top_w as u64), Some(top_h as u64)),
        "{s}"
    );
    for (name, ..) in LADDER {
        assert!(
            s["transcoded_qualities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|q| q == name),
            "{s}"
        );
    }

    // The encoder restarts (below) while the past clip is checked.
    let restart = push_ladder(&push_url, 6, 660);
    let run1 = d.clone();

    // ----- a clip from the past -----
    // ref/api.md "Clips": `start` in the past: cut from the DVR at once.
    let first_chunk = rendition_dvr(&d, top)["ranges"][0]["start"]
        .as_f64()
        .unwrap();
    let past_start = first_chunk.floor() as i64 + 3;
    let past_body = format!(r#"{{"start": {past_start}, "duration": 8}}"#);
    let asked_at = unix_now();
    let past = expect(create_clip(addr, sid, &past_body), 200).json();
    let answered_at = unix_now();
    assert_gcore_clip(&past, addr, sid);
    assert_eq!(past["state"], "complete", "{past}");
    assert_eq!(past["start"], past_start);
    assert_eq!(past["duration"], 8);
    assert_eq!(past["vod_required"], false);
    // ref/api.md "Clips": `expiration` (Unix s) defaults to `max(end, now) + 3600`.
    // Issue 15 changed it from `start + duration + 3600`: this clip ended before it
    // was made, so its hour runs from the server's now (whole seconds, rounded up),
    // which lies between the request and the answer.
    let expiration = past["expiration"].as_i64().unwrap();
    assert!(past_start + 8 < asked_at.floor() as i64, "{past}");
    assert!(
        (asked_at.floor() as i64 + 3600..=answered_at.ceil() as i64 + 3600).contains(&expiration),
        "expiration {expiration}, asked at {asked_at}, answered at {answered_at}"
    );
    assert_covers(&past, past_start as f64, 8.0, 0.05);
    let past_duration = past["actual_duration"].as_f64().unwrap();
    let base = clip_base(&past);
    let mp4_path = path_of(past["mp4_master"].as_str().unwrap()).to_owned();
    let mp4_url = format!("http://{addr}{mp4_path}");

    // The MP4 master: the highest rendition, progressive, moov before mdat.
    let full = expect(get(addr, &mp4_path), 200);
    let len = full.body.len() as u64;
    assert_eq!(
        full.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert!(
        full.header("content-type")
            .is_some_and(|t| t.starts_with("video/mp4"))
    );
    // ref/api.md "Public clip links": CORS: `Access-Control-Allow-Origin` on playlists, init segments,
    // segments and MP4 (and OPTIONS).
    assert_eq!(full.header("access-control-allow-origin"), Some("*"));
    let etag = full.header("etag").expect("ETag").to_owned();
    assert!(etag.starts_with('"'), "a strong ETag: {etag}");
    let boxes = top_level_boxes(&full.body);
    let kinds: Vec<&str> = boxes.iter().map(|(k, ..)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"ftyp"), "{kinds:?}");
    let moov = kinds.iter().position(|k| *k == "moov").expect("moov");
    let mdat = kinds.iter().position(|k| *k == "mdat").expect("mdat");
    assert!(moov < mdat, "moov must come before mdat: {kinds:?}");
    check_mp4(&mp4_url, (top_w, top_h), past_duration);

    // ref/api.md "Public clip links": `Content-Length`, `ETag`, `Accept-Ranges: bytes` and **Range**
    // requests (206 ...): each range answers exactly those bytes of the full file.
    let mdat_at = boxes[mdat].1;
    let into_mdat = (mdat_at + 70_000).min(len - 1);
    for (spec, from, to) in [
        ("bytes=0-99".to_owned(), 0, 99),
        ("bytes=1000-4999".to_owned(), 1000, 4999),
        (
            format!("bytes={}-{into_mdat}", mdat_at - 64),
            mdat_at - 64,
            into_mdat,
        ),
        ("bytes=-1000".to_owned(), len - 1000, len - 1),
        (format!("bytes={}-", len - 10), len - 10, len - 1),
    ] {
        let r = expect(
            request(addr, "GET", &mp4_path, &[("Range", &spec)], None),
            206,
        );
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {from}-{to}/{len}").as_str()),
            "{spec}"
        );
        assert_eq!(
            r.body,
            &full.body[from as usize..=to as usize],
            "{spec}: not the same bytes as the full file"
        );
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    // RFC 9110 §15.5.17: a range past the end is 416 with `bytes */len`.
    let r = expect(
        request(
            addr,
            "GET",
            &mp4_path,
            &[("Range", &format!("bytes={len}-"))],
            None,
        ),
        416,
    );
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    // HEAD: the same headers, no body.
    let head = expect(request(addr, "HEAD", &mp4_path, &[], None), 200);
    assert_eq!(
        head.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert!(head.body.is_empty());
    // RFC 9110 §13.1.2: If-None-Match with the current ETag is 304 Not Modified.
    let not_modified = expect(
        request(addr, "GET", &mp4_path, &[("If-None-Match", &etag)], None),
        304,
    );
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    // The bodies above went out by page reference (`http::splice`): the media's
    // pages handed to the socket, the same bytes as the full file's.
    let metrics = expect(get(addr, "/metrics"), 200).text();
    let spliced: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dvrclip_http_spliced_bytes_total "))
        .and_then(|v| v.parse().ok())
        .expect("the spliced bytes counter");
    assert!(spliced > 0, "no payload byte spliced: {metrics}");
    // A browser's preflight.
    let pre = expect(request(addr, "OPTIONS", &mp4_path, &[], None), 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert!(
        pre.header("access-control-allow-headers")
            .is_some_and(|h| h.contains("Range"))
    );

    // The HLS master: every variant with CODECS/RESOLUTION/BANDWIDTH; ffmpeg decodes
    // every variant with no error.
    let master_path = path_of(past["hls_master"].as_str().unwrap()).to_owned();
    let master = expect(get(addr, &master_path), 200);
    assert_eq!(
        master.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(master.header("access-control-allow-origin"), Some("*"));
    let master_text = master.text();
    let vars = variants(&master_text);
    assert_eq!(vars.len(), 3, "{master_text}");
    for v in &vars {
        for attr in ["BANDWIDTH=", "CODECS=\"avc1.", "RESOLUTION="] {
            assert!(v.contains(attr), "{attr} missing in {v}");
        }
    }
    let (ok, errors) = ffmpeg_decode(&format!("http://{addr}{master_path}"));
    assert!(ok && errors.is_empty(), "HLS master decode:\n{errors}");

    // Per-rendition links: `rec_{clip}_{rendition}.m3u8` and `.mp4` (ref/api.md "Public clip links").
    for (name, w, h, _) in LADDER {
        assert!(
            vars.iter()
                .any(|v| v.contains(&format!("RESOLUTION={w}x{h}"))),
            "{master_text}"
        );
        assert!(
            master_text.contains(&format!("{}_{name}.m3u8", base.rsplit('/').next().unwrap())),
            "{master_text}"
        );
        let media = expect(get(addr, &format!("{base}_{name}.m3u8")), 200);
        assert_eq!(media.header("access-control-allow-origin"), Some("*"));
        let text = media.text();
        for tag in [
            "#EXT-X-PLAYLIST-TYPE:VOD",
            "#EXT-X-MAP:URI=",
            "#EXT-X-PROGRAM-DATE-TIME:",
            "#EXT-X-ENDLIST",
        ] {
            assert!(text.contains(tag), "{name}: {tag} missing:\n{text}");
        }
        assert!(
            (extinf_total(&text) - past_duration).abs() < 0.1,
            "{name}: EXTINF total vs {past_duration}:\n{text}"
        );
        // The init and the first segment, as the playlist names them (relative URIs).
        let dir = base.rsplit_once('/').unwrap().0;
        let map = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap();
        let init = expect(get(addr, &format!("{dir}/{map}")), 200);
        assert_eq!(init.header("access-control-allow-origin"), Some("*"));
        let init_boxes = top_level_boxes(&init.body);
        assert_eq!(init_boxes[0].0, "ftyp");
        assert!(init_boxes.iter().any(|(k, ..)| k == "moov"));
        let seg_uri = &media_uris(&text)[0];
        let seg = expect(get(addr, &format!("{dir}/{seg_uri}")), 200);
        assert_eq!(seg.header("access-control-allow-origin"), Some("*"));
        // ref/api.md "Public clip links" / issue 7: cache headers (segments immutable ...).
        assert!(
            seg.header("cache-control")
                .is_some_and(|c| c.contains("immutable")),
            "{:?}",
            seg.headers
        );
        assert!(top_level_boxes(&seg.body).iter().any(|(k, ..)| k == "moof"));
        check_mp4(
            &format!("http://{addr}{base}_{name}.mp4"),
            (w, h),
            past_duration,
        );
    }
    // Unknown names under a real clip are 404, not 500.
    expect(get(addr, &format!("{base}_media_9_999.m3u8")), 404);
    expect(get(addr, &format!("{base}_media_9_999.mp4")), 404);

    // ----- API validation (ref/api.md "Clips") -----
    // Gcore's PATCH body is wrapped: `{"stream": {...}}`.
    let patched = expect(
        api(
            addr,
            "PATCH",
            &format!("/streaming/streams/{sid}"),
            Some(r#"{"stream": {"dvr_duration": 120}}"#),
        ),
        200,
    )
    .json();
    assert_eq!(patched["dvr_duration"], 120, "{patched}");
    let again = expect(
        api(addr, "GET", &format!("/streaming/streams/{sid}"), None),
        200,
    )
    .json();
    assert_eq!(again["dvr_duration"], 120);
    assert_eq!(
        again["name"], "e2e live",
        "PATCH changes only what it names"
    );
    // "`duration` > stream's `dvr_duration` → 400".
    expect_field(
        create_clip(addr, sid, r#"{"duration": 121}"#),
        400,
        "duration",
    );
    expect(
        create_clip(
            addr,
            sid,
            &format!(r#"{{"start": {past_start}, "duration": 120}}"#),
        ),
        200,
    );
    expect_field(
        create_clip(addr, sid, r#"{"duration": 0}"#),
        400,
        "duration",
    );
    // "it must lie between 1 min and 4 h after the clip's end, else 400". Issue 15:
    // after the later of the end and now, so for this past clip after the server's
    // now, which this test knows only to a request's latency: the values lie a
    // minute inside or outside the range (crates/server/tests/api_verbs.rs checks
    // its exact edges on a manual clock).
    let past_end = past_start + 8;
    let now = || unix_now().floor() as i64;
    for exp in [now() + 59, now() + 4 * 3600 + 60, past_end - 10] {
        expect_field(
            create_clip(
                addr,
                sid,
                &format!(r#"{{"start": {past_start}, "duration": 8, "expiration": {exp}}}"#),
            ),
            400,
            "expiration",
        );
    }
    for exp in [now() + 120, now() + 4 * 3600 - 60] {
        let c = expect(
            create_clip(
                addr,
                sid,
                &format!(r#"{{"start": {past_start}, "duration": 8, "expiration": {exp}}}"#),
            ),
            200,
        )
        .json();
        assert_eq!(c["expiration"], exp);
    }
    // Malformed JSON and wrong types: 400, naming the field when there is one.
    for body in [r#"{"duration": 8"#, "[8]", "", "duration=8"] {
        let r = expect(create_clip(addr, sid, body), 400).json();
        assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    }
    for (body, field) in [
        (r#"{"duration": "8"}"#, "duration"),
        (r#"{"duration": 8.5}"#, "duration"),
        (r#"{"duration": -8}"#, "duration"),
        ("{}", "duration"),
        (r#"{"duration": 8, "start": "yesterday"}"#, "start"),
        (r#"{"duration": 8, "expiration": "soon"}"#, "expiration"),
        (r#"{"duration": 8, "vod_required": "yes"}"#, "vod_required"),
    ] {
        expect_field(create_clip(addr, sid, body), 400, field);
    }
    for (body, field) in [
        ("{}", "name"),
        (r#"{"name": 5}"#, "name"),
        (r#"{"name": "x", "dvr_duration": 5}"#, "dvr_duration"),
        (r#"{"name": "x", "dvr_enabled": "yes"}"#, "dvr_enabled"),
    ] {
        expect_field(
            api(addr, "POST", "/streaming/streams", Some(body)),
            400,
            field,
        );
    }
    // "unknown stream → 404"; "DVR disabled → 422".
    expect(create_clip(addr, 999_999, r#"{"duration": 8}"#), 404);
    expect(api(addr, "GET", "/streaming/streams/999999", None), 404);
    let disabled = expect(create_clip(addr, no_dvr_id, r#"{"duration": 8}"#), 422).json();
    assert!(disabled["error"].is_string(), "{disabled}");

    // ----- auth (ref/api.md) -----
    // "the scheme word is matched case-insensitively ...; anything else → 401 with a
    // JSON error."
    let missing = expect(request(addr, "GET", "/streaming/streams", &[], None), 401);
    assert!(missing.json()["error"].is_string());
    assert!(missing.header("www-authenticate").is_some());
    for auth in [
        "APIKey 1234$abcdeg",
        "APIKey 1234$abcde",
        "Bearer 1234$abcdef",
        "APIKey",
        "1234$abcdef",
    ] {
        let r = expect(
            request(
                addr,
                "GET",
                "/streaming/streams",
                &[("Authorization", auth)],
                None,
            ),
            401,
        );
        assert!(r.json()["error"].is_string(), "{auth}");
    }
    for auth in ["apikey 1234$abcdef", "APIKEY 1234$abcdef"] {
        let list = expect(
            request(
                addr,
                "GET",
                "/streaming/streams",
                &[("Authorization", auth)],
                None,
            ),
            200,
        )
        .json();
        // Gcore's client parses lists as JSON arrays.
        let ids: Vec<u64> = list
            .as_array()
            .expect("a JSON array")
            .iter()
            .map(|s| s["id"].as_u64().unwrap())
            .collect();
        assert!(ids.contains(&sid) && ids.contains(&no_dvr_id), "{list}");
    }
    let clips = expect(
        api(
            addr,
            "GET",
            &format!("/streaming/streams/{sid}/clip_recording"),
            None,
        ),
        200,
    )
    .json();
    let listed = clips.as_array().expect("a JSON array");
    for c in listed {
        assert_gcore_clip(c, addr, sid);
    }
    for id in [&past["id"], &live["id"]] {
        assert!(listed.iter().any(|c| &c["id"] == id), "{id} not listed");
    }

    // ----- an encoder restart (ref/api.md "Ingest") -----
    // "An encoder restart (a new init segment, or media time going backwards) starts a
    // new discontinuity; the old chunks keep their own init; nothing already stored is
    // overwritten." ffmpeg ran again on the same push_url: media time restarts at 0
    // and file names at seg_00000, with other bytes (another tone).
    let out = restart.wait_with_output().expect("waiting for ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg (restart) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = wait_for_chunks(addr, sid, 15);
    for (name, ..) in LADDER {
        let r = rendition_dvr(&d, name);
        assert_eq!(r["chunks"], 15, "{name}: {d}");
        let ranges = r["ranges"].as_array().unwrap();
        assert_eq!(ranges.len(), 2, "{name}: {r}");
        assert_eq!(r["discontinuities"].as_array().unwrap().len(), 2, "{r}");
        assert_eq!(ranges[1]["chunks"], 3, "{name}: {r}");
        assert_eq!(
            ranges[0],
            rendition_dvr(&run1, name)["ranges"][0],
            "{name}: the first run changed"
        );
        assert!(
            ranges[1]["start"].as_f64() >= ranges[0]["end"].as_f64(),
            "{r}"
        );
    }
    // A clip across the restart: 3 s before the first run's end to 3 s into the second.
    let runs = &rendition_dvr(&d, top)["ranges"];
    let across_start = runs[0]["end"].as_f64().unwrap().floor() as i64 - 3;
    let across_end = runs[1]["start"].as_f64().unwrap().ceil() as i64 + 3;
    let across_len = across_end - across_start;
    let across = expect(
        create_clip(
            addr,
            sid,
            &format!(r#"{{"start": {across_start}, "duration": {across_len}}}"#),
        ),
        200,
    )
    .json();
    assert_eq!(across["state"], "complete", "{across}");
    assert_covers(&across, across_start as f64, across_len as f64, 0.05);
    let across_base = clip_base(&across);
    let across_dir = across_base.rsplit_once('/').unwrap().0.to_owned();
    // ref/api.md "Public clip links": `EXT-X-DISCONTINUITY` where the encoder restarted.
    let mut run2_first = None;
    for (name, ..) in LADDER {
        let text = expect(get(addr, &format!("{across_base}_{name}.m3u8")), 200).text();
        assert_eq!(
            text.matches("#EXT-X-DISCONTINUITY\n").count(),
            1,
            "{name}:\n{text}"
        );
        if name == top {
            // The first segment after the restart is the second run's seg_00000.
            let after = text.split("#EXT-X-DISCONTINUITY\n").nth(1).unwrap();
            let uri = media_uris(after)[0].clone();
            run2_first = Some(expect(get(addr, &format!("{across_dir}/{uri}")), 200).body);
            // The MP4 holds the media, not the gap between the runs.
            let mp4 = format!("http://{addr}{across_base}_master.mp4");
            check_mp4(&mp4, (top_w, top_h), extinf_total(&text));
        }
    }
    let run2_first = run2_first.unwrap();
    let (ok, errors) = ffmpeg_decode(&format!("http://{addr}{across_base}_master.m3u8"));
    assert!(ok && errors.is_empty(), "HLS across the restart:\n{errors}");

    // ----- ingest refusals leave the DVR exactly as it was (ref/api.md "Ingest") -----
    let dvr_before = dvr(addr, sid);
    let cut = |addr| {
        let c = expect(create_clip(addr, sid, &past_body), 200).json();
        let mp4 = expect(
            request(
                addr,
                "HEAD",
                path_of(c["mp4_master"].as_str().unwrap()),
                &[],
                None,
            ),
            200,
        );
        (
            c["actual_start"].clone(),
            c["actual_duration"].clone(),
            mp4.header("content-length").unwrap().to_owned(),
        )
    };
    let cut_before = cut(addr);
    let key_path = ingest_path.as_str();
    let real_segment = expect(get(addr, &format!("{base}_{top}/seg_0.m4s")), 200).body;
    let fixture_segment = fixture("ladder/media_3_240/seg_00000.m4s");
    let put = |path: &str, body: &[u8]| request(addr, "PUT", path, &[], Some(body));
    // "403 wrong key or path outside the stream".
    expect(
        put(
            "/ingest/0123456789abcdef0123456789abcdef/media_3_240/seg_00012.m4s",
            &fixture_segment,
        ),
        403,
    );
    // "412 a fragment with no (or a mismatched) init segment".
    expect(
        put(
            &format!("{key_path}/media_0_90/seg_00000.m4s"),
            &fixture_segment,
        ),
        412,
    );
    // A real segment whose first `tfhd` names a track the init does not have.
    let mut foreign = real_segment.clone();
    let tfhd = foreign.windows(4).position(|w| w == b"tfhd").expect("tfhd");
    foreign[tfhd + 8..tfhd + 12].copy_from_slice(&9u32.to_be_bytes());
    expect(
        put(&format!("{key_path}/{top}/seg_00012.m4s"), &foreign),
        412,
    );
    // "415 an unsupported codec": the clip's own init with its `avc1` entry renamed.
    let init = expect(get(addr, &format!("{base}_{top}/init_0.mp4")), 200).body;
    let avc1 = init.windows(4).position(|w| w == b"avc1").expect("avc1");
    let mut alien = init.clone();
    alien[avc1..avc1 + 4].copy_from_slice(b"zzzz");
    let r = expect(put(&format!("{key_path}/{top}/init.mp4"), &alien), 415).json();
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("zzzz")),
        "{r}"
    );
    // "400 any other malformed body (with the reason)".
    for (file, body) in [
        ("seg_00012.m4s", &b"this is not an fMP4 segment"[..]),
        ("seg_00012.m4s", &real_segment[..real_segment.len() / 2]),
        ("init.mp4", &b"this is not an init segment"[..]),
        ("seg_00012.txt", &real_segment[..]),
    ] {
        let r = expect(put(&format!("{key_path}/{top}/{file}"), body), 400).json();
        assert!(
            r["error"].as_str().is_some_and(|e| e.len() > 10),
            "a 400 says why: {r}"
        );
    }
    // `master` names a clip's master links: no rendition may take it.
    expect(put(&format!("{key_path}/master/init.mp4"), &init), 400);
    // "A file name is one path component of a safe charset; anything else is 400/403."
    for path in [
        format!("{key_path}/{top}/.."),
        format!("{key_path}/../seg_00012.m4s"),
        format!("{key_path}/{top}/../../seg_00012.m4s"),
        format!("{key_path}/%2e%2e/seg_00012.m4s"),
        format!("{key_path}/{top}/%2e%2e"),
        format!("{key_path}/{top}/%2e%2e%2fseg_00012.m4s"),
        format!("{key_path}/{top}/.seg_00012.m4s"),
        format!("/ingest/../streaming/streams/{sid}"),
        format!("/ingest/%2e%2e/{top}/seg_00012.m4s"),
    ] {
        let r = put(&path, &real_segment);
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{path}: {} {}",
            r.status,
            r.text()
        );
    }
    // "A PUT to a path already received is idempotent (a retry): no duplicate chunk."
    expect(
        put(&format!("{key_path}/{top}/seg_00000.m4s"), &run2_first),
        200,
    );
    // ref/api.md "Ingest": `PUT` or `POST`.
    expect(
        request(
            addr,
            "POST",
            &format!("{key_path}/{top}/seg_00000.m4s"),
            &[],
            Some(&run2_first),
        ),
        200,
    );
    // "... and so does an aborted one (never commit a partial body)": a whole valid
    // segment (the first run's, which would open a new discontinuity if stored)
    // whose body ends early, declared longer or with no last chunk, then the client
    // half-closes as ffmpeg does.
    let seg_path = format!("{key_path}/{top}/seg_00013.m4s");
    let mut short = format!(
        "PUT {seg_path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        real_segment.len() + 1
    )
    .into_bytes();
    short.extend_from_slice(&real_segment);
    let mut unfinished = format!(
        "PUT {seg_path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        real_segment.len()
    )
    .into_bytes();
    unfinished.extend_from_slice(&real_segment);
    unfinished.extend_from_slice(b"\r\n");
    for raw in [short, unfinished] {
        // half_close(true): the server still answers a client that shut its side.
        let r = send_then_half_close(addr, &raw).expect("no answer to a half-closed client");
        assert_eq!(r.status, 400, "an aborted body: {}", r.text());
    }
    // "A DELETE removes nothing a clip holds; the DVR window alone decides".
    let del = request(
        addr,
        "DELETE",
        &format!("{key_path}/{top}/seg_00000.m4s"),
        &[],
        None,
    );
    assert!(matches!(del.status, 200 | 204), "{}", del.status);
    assert_eq!(
        dvr(addr, sid),
        dvr_before,
        "a refused upload changed the DVR"
    );
    assert_eq!(cut(addr), cut_before, "the same cut differs after refusals");
    let metrics = expect(get(addr, "/metrics"), 200).text();
    assert!(
        !metrics.contains("\ndvrclip_ingest_errors_total 0\n"),
        "refusals are counted: {metrics}"
    );

    // ----- dvr_cleanup: "drop the stream's DVR (clips already cut stay)" -----
    expect(
        api(
            addr,
            "PUT",
            &format!("/streaming/streams/{sid}/dvr_cleanup"),
            None,
        ),
        200,
    );
    let cleaned = dvr(addr, sid);
    for (name, ..) in LADDER {
        assert_eq!(rendition_dvr(&cleaned, name)["chunks"], 0, "{cleaned}");
    }
    let kept = expect(get(addr, &mp4_path), 200);
    assert_eq!(kept.body, full.body, "a cut clip keeps its media");
    expect(get(addr, &format!("{base}_{top}/seg_0.m4s")), 200);

    // ----- DELETE a stream: its clips die with it (ref/api.md) -----
    expect(
        api(addr, "DELETE", &format!("/streaming/streams/{sid}"), None),
        204,
    );
    expect(
        api(addr, "GET", &format!("/streaming/streams/{sid}"), None),
        404,
    );
    expect(
        api(
            addr,
            "GET",
            &format!("/streaming/streams/{sid}/clip_recording"),
            None,
        ),
        404,
    );
    // ref/api.md "Public clip links": 404 when unknown or expired — and CORS on the 404 too.
    for path in [
        mp4_path.clone(),
        master_path.clone(),
        format!("{base}_{top}.m3u8"),
        format!("{base}_{top}.mp4"),
        format!("{base}_{top}/seg_0.m4s"),
        path_of(&live_mp4).to_owned(),
    ] {
        let r = expect(get(addr, &path), 404);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    expect(
        put(&format!("{key_path}/{top}/seg_00012.m4s"), &real_segment),
        403,
    );

    // Nothing in this whole run was a server error.
    let metrics = expect(get(addr, "/metrics"), 200).text();
    assert!(
        metrics.contains("dvrclip_http_requests_total{class=\"5xx\"} 0\n"),
        "{metrics}"
    );

    // ref/api.md "Operations": graceful shutdown on SIGTERM/SIGINT.
    let status = server.terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

/// ref/api.md "Operations": `--demo` starts a built-in looping demo stream so a newcomer can clip
/// at once: the binary alone, no encoder, no configured key. A clip across the
/// demo's loop seam (every 8 s) plays as one file with no decode error.
#[test]
fn demo_stream_is_clippable() {
    if !have_ffmpeg() {
        return;
    }
    let mut server = Server::start_with(&["--demo"]);
    let addr = server.addr;
    let line = server.stdout_line();
    assert!(line.trim_end().ends_with(": demo"), "{line:?}");
    let auth = [("Authorization", "APIKey demo")];
    let streams = expect(request(addr, "GET", "/streaming/streams", &auth, None), 200).json();
    let demo = &streams.as_array().expect("an array")[0];
    assert_eq!(demo["name"], "demo", "{streams}");
    let sid = demo["id"].as_u64().unwrap();
    let dvr_path = format!("/streaming/streams/{sid}/dvr");
    // The demo pushes a 2 s segment every 2 s of real time: wait for 6 (one loop and
    // a half). Waiting on the demo's real-time ingest: no clock to drive here.
    let d = poll("six demo chunks", Duration::from_secs(30), || {
        let d = expect(request(addr, "GET", &dvr_path, &auth, None), 200).json();
        let n = d["renditions"].as_array()?.first()?["chunks"].as_u64()?;
        (n >= 6).then_some(d)
    });
    let range = &d["renditions"][0]["ranges"][0];
    assert_eq!(
        d["renditions"][0]["ranges"].as_array().unwrap().len(),
        1,
        "{d}"
    );
    let seam = range["start"].as_f64().unwrap() + 8.0;
    let start = seam.floor() as i64 - 3;
    let body = format!(r#"{{"start": {start}, "duration": 6}}"#);
    let clip = expect(
        request(
            addr,
            "PUT",
            &format!("/streaming/streams/{sid}/clip_recording"),
            &auth,
            Some(body.as_bytes()),
        ),
        200,
    )
    .json();
    assert_eq!(clip["state"], "complete", "{clip}");
    assert_covers(&clip, start as f64, 6.0, 0.05);
    let duration = clip["actual_duration"].as_f64().unwrap();
    check_mp4(clip["mp4_master"].as_str().unwrap(), (426, 240), duration);
    let (ok, errors) = ffmpeg_decode(clip["hls_master"].as_str().unwrap());
    assert!(ok && errors.is_empty(), "demo HLS:\n{errors}");

    // The live DVR playlist: every rendition, and ffmpeg plays it as a live stream
    // (it never ends, so 4 s of it).
    let live = demo["hls_cmaf_url"].as_str().expect("hls_cmaf_url");
    let dir = live.strip_suffix("/master.m3u8").expect("…/master.m3u8");
    let key = dir.rsplit('/').next().unwrap_or_default();
    assert_eq!(dir, format!("http://{addr}/live/{key}"));
    let push_url = demo["push_url_http"].as_str().unwrap_or_default();
    assert!(key.len() == 32 && !push_url.contains(key), "{live}");
    let master = expect(get(addr, path_of(live)), 200);
    assert_eq!(master.header("cache-control"), Some("no-cache"));
    assert_eq!(variants(&master.text()).len(), 3, "{}", master.text());
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i", live])
        .args(["-map", "0", "-t", "4", "-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.is_empty(),
        "live HLS:\n{errors}"
    );
    let media = expect(get(addr, &format!("/live/{key}/media_3_240.m3u8")), 200).text();
    assert!(media.contains("#EXT-X-MEDIA-SEQUENCE:") && !media.contains("ENDLIST"));
    expect(
        get(addr, &format!("/live/{key}/media_3_240/999999.m4s")),
        404,
    );
    expect(get(addr, &format!("/live/{key}/nope.m3u8")), 404);
    // The stream id is not a key: the live links cannot be guessed.
    expect(get(addr, &format!("/live/{sid}/master.m3u8")), 404);
}

/// Memory and descriptors stay bounded under any input: past `--max-connections`
/// the server stops accepting until a connection closes; the waiting client is
/// served then, not refused.
#[test]
fn connections_past_the_limit_wait_for_a_free_slot() {
    use std::net::TcpStream;
    let server = Server::start(&["--max-connections", "2"]);
    let addr = server.addr;
    let idle_a = TcpStream::connect(addr).unwrap();
    let _idle_b = TcpStream::connect(addr).unwrap();
    let mut third = TcpStream::connect(addr).unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 64];
    let waited = third.read(&mut buf);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the third connection must wait, got {waited:?}"
    );
    drop(idle_a);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = third.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// ref/api.md "Operations": header read timeout 30 s (hyper enforces it only when a timer is
/// installed), also the keep-alive idle limit, body idle timeout 15 s, here set to 1 s
/// each. A client that stops mid-headers is disconnected, and so is one that sends
/// nothing after an answered request; one that stops mid-body gets 408. This waits on
/// the server's own timers (about 1 s each): the binary has no clock to drive.
#[test]
fn stalled_clients_are_cut_off() {
    let server = Server::start(&["--header-timeout-secs", "1", "--body-idle-secs", "1"]);
    let addr = server.addr;
    let stream = expect(
        api(
            addr,
            "POST",
            "/streaming/streams",
            Some(r#"{"name": "slow"}"#),
        ),
        201,
    )
    .json();
    let ingest = path_of(stream["push_url_http"].as_str().unwrap()).to_owned();

    let started = std::time::Instant::now();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = Vec::new();
    // EOF (maybe after a 408) rather than the read timeout: the server hung up.
    conn.read_to_end(&mut buf)
        .expect("the server closes the connection");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "headers cut off after {waited:?}"
    );
    assert!(
        buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );

    // Kept alive after an answer, then silent: closed after the same timeout.
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 12];
    conn.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let answered = std::time::Instant::now();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest)
        .expect("the server closes the idle connection");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(10),
        "an idle keep-alive connection closed after {idle:?}"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("HTTP/1.1"),
        "one answer only"
    );

    let seg = fixture("ladder/media_3_240/init_0.mp4");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "PUT {ingest}/media_3_240/init_0.mp4 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        seg.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&seg[..seg.len() / 2]).unwrap();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // Nothing was stored: the rendition has no init.
    let d = dvr(addr, stream["id"].as_u64().unwrap());
    assert_eq!(d["renditions"].as_array().map(Vec::len), Some(0), "{d}");
    // The server still serves.
    expect(get(addr, "/healthz"), 200);
}

/// nginx's `send_timeout`: a client that stops reading a response is cut off
/// (`--send-timeout-secs`), not held forever. 200 pipelined requests for a clip's MP4
/// that the client never reads make far more bytes than the sockets buffer, so the
/// server's writes stall; after the timeout it drops the connection and the client
/// gets only part of them, then EOF (or a reset).
#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let server = Server::start_with(&["--demo", "--send-timeout-secs", "1"]);
    let addr = server.addr;
    wait_for_demo_chunks(addr);
    let auth = [("Authorization", "APIKey demo")];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = format!(r#"{{"duration": 4, "start": {}}}"#, now - 8);
    let create = request(
        addr,
        "PUT",
        "/streaming/streams/1/clip_recording",
        &auth,
        Some(body.as_bytes()),
    );
    let clip = expect(create, 200).json();
    let mp4 = path_of(clip["mp4_master"].as_str().unwrap()).to_owned();
    let len = expect(get(addr, &mp4), 200).body.len();

    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let one = format!("GET {mp4} HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.write_all(one.repeat(200).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            // Everything arrived: the server waited it out (the assertion below fails).
            _ if got >= 200 * len => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server neither finished nor hung up: {e} after {got} bytes"),
        }
    }
    assert!(got < 200 * len, "cut off: {got} of {} bytes", 200 * len);
    // The server goes on serving.
    expect(get(addr, "/healthz"), 200);
}

/// ref/api.md "Ingest": 413 when over the limit, segment bodies 50 MiB and
/// configurable ("Operations"); a refused or aborted upload changes nothing (a
/// partial body is never committed): the same bytes sent whole then land.
#[test]
fn refused_and_aborted_uploads_commit_nothing() {
    let server = Server::start(&["--max-segment-mib", "1"]);
    let addr = server.addr;
    let stream = expect(
        api(
            addr,
            "POST",
            "/streaming/streams",
            Some(r#"{"name": "limits"}"#),
        ),
        201,
    )
    .json();
    let sid = stream["id"].as_u64().unwrap();
    let ingest = path_of(stream["push_url_http"].as_str().unwrap()).to_owned();
    let dir = format!("{ingest}/media_3_240");
    expect(
        request(
            addr,
            "PUT",
            &format!("{dir}/init_0.mp4"),
            &[],
            Some(&fixture("ladder/media_3_240/init_0.mp4")),
        ),
        201,
    );
    let before = dvr(addr, sid);

    // A declared length over the limit is refused before any body byte is read.
    let raw = format!(
        "PUT {dir}/seg_00000.m4s HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        (1 << 20) + 1
    );
    expect(exchange(addr, raw.into_bytes(), false), 413);
    // A chunked body (as ffmpeg sends) that grows past the limit.
    let mut raw = format!(
        "PUT {dir}/seg_00000.m4s HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let piece = vec![0u8; 64 << 10];
    for _ in 0..17 {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(&piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = expect(exchange(addr, raw, false), 413);
    assert!(r.json()["error"].is_string());
    assert_eq!(dvr(addr, sid), before, "a refused body changed the DVR");

    // A whole valid segment in a body that ends early (declared longer, or chunked
    // with no last chunk), the client half-closing after it.
    let seg = fixture("ladder/media_3_240/seg_00000.m4s");
    let mut short = format!(
        "PUT {dir}/seg_00000.m4s HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        seg.len() + 1
    )
    .into_bytes();
    short.extend_from_slice(&seg);
    let mut unfinished = format!(
        "PUT {dir}/seg_00000.m4s HTTP/1.1\r\nHost: {addr}\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        seg.len()
    )
    .into_bytes();
    unfinished.extend_from_slice(&seg);
    unfinished.extend_from_slice(b"\r\n");
    for raw in [short, unfinished] {
        // half_close(true): the server still answers a client that shut its side.
        let r = send_then_half_close(addr, &raw).expect("no answer to a half-closed client");
        assert_eq!(r.status, 400, "an aborted body: {}", r.text());
        assert_eq!(dvr(addr, sid), before, "an aborted body changed the DVR");
    }

    // The same segment, whole and chunked like ffmpeg's, lands.
    let mut raw = format!(
        "PUT {dir}/seg_00000.m4s HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        seg.len()
    )
    .into_bytes();
    raw.extend_from_slice(&seg);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    expect(exchange(addr, raw, false), 201);
    assert_eq!(rendition_dvr(&dvr(addr, sid), "media_3_240")["chunks"], 1);
}

/// The server in-process on an engine whose clock the test drives, with one stream.
struct InProcess {
    addr: SocketAddr,
    engine: Arc<dvrclip_engine::Engine>,
    clock: Arc<dvrclip_engine::ManualClock>,
    app: Arc<dvrclip_server::app::App>,
    runtime: Option<tokio::runtime::Runtime>,
    data: std::path::PathBuf,
    sid: u64,
    ingest: String,
}

/// The ladder fixture's renditions, in the order of their init names (`init_{i}.mp4`).
const FIXTURE_LADDER: [&str; 3] = ["media_3_240", "media_2_180", "media_1_144"];

/// The `EXT-X-PROGRAM-DATE-TIME` of the ladder fixture's first segment.
fn fixture_first_date() -> dvrclip_engine::WallTime {
    let playlist = String::from_utf8(fixture("ladder/media_3_240/index.m3u8")).unwrap();
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .and_then(dvrclip_engine::WallTime::parse_program_date_time)
        .expect("the fixture playlist is dated")
}

impl InProcess {
    /// Starts serving with the clock at `now` and creates a stream.
    fn start(now: dvrclip_engine::WallTime) -> InProcess {
        use dvrclip_engine::{Engine, EngineConfig, ManualClock};
        use dvrclip_server::app::App;
        use dvrclip_server::config::{Config, ServeArgs};

        let clock = Arc::new(ManualClock::new(now));
        let engine = Arc::new(Engine::with_clock(EngineConfig::default(), clock.clone()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let data = temp_dir("in-process");
        let (addr, app) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let config = Config::resolve(&ServeArgs {
                api_key: Some(KEY.into()),
                public_url: Some(format!("http://{addr}")),
                data_dir: Some(data.join("data")),
                ..ServeArgs::default()
            })
            .unwrap();
            let app = App::with_engine(config, engine.clone());
            tokio::spawn(dvrclip_server::serve(
                app.clone(),
                listener,
                std::future::pending(),
            ));
            (addr, app)
        });
        let stream = expect(
            api(
                addr,
                "POST",
                "/streaming/streams",
                Some(r#"{"name": "in-process"}"#),
            ),
            201,
        )
        .json();
        InProcess {
            addr,
            engine,
            clock,
            app,
            runtime: Some(runtime),
            data,
            sid: stream["id"].as_u64().unwrap(),
            ingest: path_of(stream["push_url_http"].as_str().unwrap()).to_owned(),
        }
    }

    /// PUTs one rendition's fixture files over HTTP, as an encoder would; each must
    /// be taken (201 stored, or 200 already held / a playlist).
    fn push(&self, rendition: &str, files: &[String]) {
        for f in files {
            let body = fixture(&format!("ladder/{rendition}/{f}"));
            self.put(rendition, f, &body);
        }
    }

    fn put(&self, rendition: &str, file: &str, body: &[u8]) -> u16 {
        let path = format!("{}/{rendition}/{file}", self.ingest);
        let status = request(self.addr, "PUT", &path, &[], Some(body)).status;
        assert!(matches!(status, 200 | 201), "{rendition}/{file}: {status}");
        status
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.block_on(self.app.shutdown());
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Init, segments `from..to` and the playlist of the ladder fixture's rendition `i`.
fn fixture_files(i: usize, segments: std::ops::Range<usize>) -> Vec<String> {
    let mut files = vec![format!("init_{i}.mp4")];
    files.extend(segments.map(|n| format!("seg_{n:05}.m4s")));
    files.push("index.m3u8".into());
    files
}

/// ref/api.md "Clips": At expiration the clip disappears from memory and every link answers
/// 404. The server runs in-process on an engine with a `ManualClock`: the test
/// moves time to the expiration instead of waiting for it.
#[test]
fn expired_clip_links_answer_404() {
    let first_date = fixture_first_date();
    // The fixture's 8 s have just been recorded.
    let srv = InProcess::start(first_date.add_micros(9_000_000));
    let (addr, sid, clock, engine) = (srv.addr, srv.sid, &srv.clock, &srv.engine);
    for (i, r) in FIXTURE_LADDER.iter().enumerate() {
        srv.push(r, &fixture_files(i, 0..4));
    }
    let d = dvr(addr, sid);
    let first = rendition_dvr(&d, "media_3_240")["ranges"][0]["start"]
        .as_f64()
        .unwrap();
    assert!(
        (first - first_date.unix_secs_f64()).abs() < 0.01,
        "the playlist's date anchors the chunks: {d}"
    );

    let start = first.ceil() as i64;
    // Issue 15: the shortest lifetime runs a minute from the later of the clip's
    // end and now; here now, the clip having ended before it is made.
    let now = engine.now();
    assert!(start + 4 < now.unix_secs());
    let expiration = now.unix_secs() + i64::from(now.unix_micros() % 1_000_000 != 0) + 60;
    let clip = expect(
        create_clip(
            addr,
            sid,
            &format!(r#"{{"start": {start}, "duration": 4, "expiration": {expiration}}}"#),
        ),
        200,
    )
    .json();
    assert_eq!(clip["expiration"], expiration);
    assert_eq!(clip["state"], "complete", "{clip}");
    let base = clip_base(&clip);
    let links = [
        format!("{base}_master.m3u8"),
        format!("{base}_master.mp4"),
        format!("{base}_media_2_180.m3u8"),
        format!("{base}_media_2_180.mp4"),
        format!("{base}_media_2_180/init_0.mp4"),
        format!("{base}_media_2_180/seg_0.m4s"),
    ];
    let expiry = dvrclip_engine::WallTime::from_unix_secs(expiration);

    // One microsecond before the expiration everything still answers.
    clock.set(expiry.add_micros(-1));
    engine.tick();
    for l in &links {
        expect(get(addr, l), 200);
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
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // At the expiration the clip is gone: every link 404, the list empty.
    clock.set(expiry);
    engine.tick();
    for l in &links {
        let r = expect(get(addr, l), 404);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{l}");
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
    assert_eq!(listed, Value::Array(vec![]));
    // The DVR is not the clip's: it still holds the fixture.
    assert_eq!(rendition_dvr(&dvr(addr, sid), "media_2_180")["chunks"], 4);
}

// ----- bugs found here and fixed in the engine and hls crates -----

/// ref/api.md "Ingest": nothing already stored is overwritten, and a retry changes nothing.
/// Byte-identical segments sent again (each a duplicate, 200: what an encoder
/// restarted on a deterministic source sends), then their playlist dated 10 s later,
/// must leave the DVR as it was. (It once re-dated the chunks already held: the last
/// jumped 8 s ahead, a false gap, and the others overlapped their successors.)
#[test]
fn a_later_playlist_does_not_redate_held_chunks() {
    let first_date = fixture_first_date();
    let srv = InProcess::start(first_date.add_micros(9_000_000));
    srv.push("media_3_240", &fixture_files(0, 0..4));
    let before = dvr(srv.addr, srv.sid);
    for n in 0..4 {
        let f = format!("seg_{n:05}.m4s");
        let body = fixture(&format!("ladder/media_3_240/{f}"));
        assert_eq!(srv.put("media_3_240", &f, &body), 200, "{f} is a retry");
    }
    let playlist = String::from_utf8(fixture("ladder/media_3_240/index.m3u8")).unwrap();
    let later: String = playlist
        .lines()
        .map(|l| match l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            Some(d) => {
                let d = dvrclip_engine::WallTime::parse_program_date_time(d).unwrap();
                let d = d.add_micros(10_000_000).to_rfc3339_millis();
                format!("#EXT-X-PROGRAM-DATE-TIME:{d}\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    srv.put("media_3_240", "index.m3u8", later.as_bytes());
    assert_eq!(dvr(srv.addr, srv.sid), before);
}

/// ref/api.md "Public clip links": while recording, an `EVENT` playlist that grows (a player can watch
/// the clip being recorded). A clip "from now" is created before the chunk covering
/// now has arrived (always so with a live encoder, which uploads a segment when it
/// ends); its master playlist must list every rendition from the start, since a
/// player loads the master once. (It once listed only renditions already holding a
/// chunk of the clip: none at creation.)
#[test]
fn master_of_a_new_recording_clip_lists_every_rendition() {
    let first_date = fixture_first_date();
    // Segments 0 and 1 ([0 s, 4 s)) have arrived; segment 2 is being encoded.
    let srv = InProcess::start(first_date.add_micros(4_500_000));
    for (i, r) in FIXTURE_LADDER.iter().enumerate() {
        srv.push(r, &fixture_files(i, 0..2));
    }
    let clip = expect(create_clip(srv.addr, srv.sid, r#"{"duration": 4}"#), 200).json();
    assert_eq!(clip["state"], "recording", "{clip}");
    let master = expect(
        get(srv.addr, &format!("{}_master.m3u8", clip_base(&clip))),
        200,
    )
    .text();
    assert_eq!(variants(&master).len(), 3, "{master}");
}
