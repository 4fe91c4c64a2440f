//! Hostile input against the real `dvrclip` binary on `127.0.0.1:0` (issue 10;
//! ref/api.md "Ingest" and "Operations" limits): what `tests/e2e.rs` does not already send.
//!
//! Every hostile body is a committed ffmpeg fixture (`tests/fixtures/h264_aac`)
//! with one field broken: a box size, a count, an offset, a timescale, a track id;
//! or a playlist, a path, a header, a JSON body an attacker would write. Each case
//! checks the status (a 4xx with a reason in its JSON body, or a 2xx where a retry
//! or ignoring the header is the right answer) and then that the stream is exactly
//! as before: the `/dvr` JSON is equal, and the MP4 of a clip cut before the attack
//! still answers with the same ETag and the same bytes. A clip cut again with the
//! same request at the end has the same bytes (its ETag differs by design: the
//! clip's id is part of its identity).
//!
//! No network beyond loopback, no encoder: runs in a few seconds.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::Value;

const RENDITION: &str = "v";

/// The offset of the first box at `path` (`["moof", "traf", "trun"]`) in `file`.
fn find_box(file: &[u8], path: &[&str]) -> usize {
    fn walk(file: &[u8], mut pos: usize, end: usize, path: &[&str]) -> Option<usize> {
        while pos + 8 <= end {
            let size = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
            let size = if size == 0 { end - pos } else { size };
            if &file[pos + 4..pos + 8] == path[0].as_bytes() {
                return if path.len() == 1 {
                    Some(pos)
                } else {
                    walk(file, pos + 8, pos + size, &path[1..])
                };
            }
            pos += size;
        }
        None
    }
    walk(file, 0, file.len(), path).unwrap_or_else(|| panic!("no box {path:?}"))
}

fn set_u32(file: &mut [u8], at: usize, v: u32) {
    file[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn init() -> Vec<u8> {
    fixture("h264_aac/init.mp4")
}

fn segment(n: usize) -> Vec<u8> {
    fixture(&format!("h264_aac/seg_{n:03}.m4s"))
}

/// `file` with the box at `path` given the 32-bit size `size`.
fn with_size(mut file: Vec<u8>, path: &[&str], size: u32) -> Vec<u8> {
    let at = find_box(&file, path);
    set_u32(&mut file, at, size);
    file
}

/// `file` with the box at `path` given `size = 1` and a 64-bit `largesize` (8 bytes
/// inserted after its type, as ISO/IEC 14496-12 §4.2 lays it out).
fn with_largesize(mut file: Vec<u8>, path: &[&str], largesize: u64) -> Vec<u8> {
    let at = find_box(&file, path);
    set_u32(&mut file, at, 1);
    file.splice(at + 8..at + 8, largesize.to_be_bytes());
    file
}

/// `depth` nested boxes of type `kind`, each exactly containing the next.
fn nested(kind: &[u8; 4], depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(depth * 8);
    for i in 0..depth {
        out.extend_from_slice(&(((depth - i) * 8) as u32).to_be_bytes());
        out.extend_from_slice(kind);
    }
    out
}

/// A server holding one stream with the `h264_aac` fixture's init and two segments
/// (anchored on arrival: no playlist is sent), and a complete clip of it.
struct Ctx {
    server: Server,
    sid: u64,
    /// `/ingest/{key}`.
    ingest: String,
    clip_request: String,
    mp4_path: String,
    etag: String,
    mp4: Vec<u8>,
    dvr: Value,
}

impl Ctx {
    fn start() -> Ctx {
        Ctx::start_with(&[])
    }

    fn start_with(flags: &[&str]) -> Ctx {
        let server = Server::start(flags);
        let addr = server.addr;
        let stream = expect(
            api(
                addr,
                "POST",
                "/streaming/streams",
                Some(r#"{"name": "bad input"}"#),
            ),
            201,
        )
        .json();
        let sid = stream["id"].as_u64().unwrap();
        let ingest = path_of(stream["push_url_http"].as_str().unwrap()).to_owned();
        let put = |file: &str, body: &[u8]| {
            let path = format!("{ingest}/{RENDITION}/{file}");
            expect(request(addr, "PUT", &path, &[], Some(body)), 201);
        };
        put("init.mp4", &init());
        put("seg_000.m4s", &segment(0));
        put("seg_001.m4s", &segment(1));
        let dvr = dvr(addr, sid);
        let range = &dvr["renditions"][0]["ranges"][0];
        let (start, end) = (
            range["start"].as_f64().unwrap(),
            range["end"].as_f64().unwrap(),
        );
        assert!(end - start > 3.9, "two 2 s chunks: {dvr}");
        // Whole seconds inside the held range, so the clip is complete at once.
        let clip_start = start.ceil() as i64;
        let clip_request = format!(r#"{{"start": {clip_start}, "duration": 2}}"#);
        let clip = expect(create_clip(addr, sid, &clip_request), 200).json();
        let mp4_path = path_of(clip["mp4_master"].as_str().unwrap()).to_owned();
        let resp = poll("the clip's MP4", Duration::from_secs(30), || {
            let r = get(addr, &mp4_path);
            (r.status == 200).then_some(r)
        });
        let etag = resp.header("etag").expect("ETag").to_owned();
        Ctx {
            server,
            sid,
            ingest,
            clip_request,
            mp4_path,
            etag,
            mp4: resp.body,
            dvr,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn put(&self, file: &str, body: &[u8]) -> Resp {
        self.put_path(&format!("{}/{RENDITION}/{file}", self.ingest), body)
    }

    fn put_path(&self, path: &str, body: &[u8]) -> Resp {
        request(self.addr(), "PUT", path, &[], Some(body))
    }

    /// ref/api.md "Ingest": a refused upload leaves the ring exactly as it was.
    #[track_caller]
    fn assert_unchanged(&self, case: &str) {
        assert_eq!(
            dvr(self.addr(), self.sid),
            self.dvr,
            "{case}: the DVR changed"
        );
        let r = expect(get(self.addr(), &self.mp4_path), 200);
        assert_eq!(r.header("etag"), Some(self.etag.as_str()), "{case}: ETag");
        assert!(r.body == self.mp4, "{case}: the clip's bytes changed");
    }

    /// `resp` has `status` and a JSON body with a non-empty `error`; nothing changed.
    #[track_caller]
    fn refused(&self, case: &str, resp: Resp, status: u16) {
        assert_eq!(resp.status, status, "{case}: {}", resp.text());
        let body = resp.json();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{case}: no reason in {body}"
        );
        self.assert_unchanged(case);
    }

    /// The same clip request cut again gives the same bytes.
    fn recut_is_identical(&self) {
        let clip = expect(create_clip(self.addr(), self.sid, &self.clip_request), 200).json();
        let r = expect(
            get(self.addr(), path_of(clip["mp4_master"].as_str().unwrap())),
            200,
        );
        assert!(r.body == self.mp4, "a clip cut after the attacks differs");
    }
}

fn create_clip(addr: SocketAddr, sid: u64, body: &str) -> Resp {
    api(
        addr,
        "PUT",
        &format!("/streaming/streams/{sid}/clip_recording"),
        Some(body),
    )
}

/// ISO/IEC 14496-12 §4.2 box headers that lie, in segments and in an init.
#[test]
fn hostile_boxes_are_refused_and_change_nothing() {
    let ctx = Ctx::start();
    let seg = segment(0);
    let moof = ["moof"];
    let mfhd = ["moof", "mfhd"];
    let segment_cases: Vec<(&str, Vec<u8>)> = vec![
        // §4.2: "if size is 0, then this box shall be the last one in the file"; a
        // moof that swallows its mdat has no media left.
        ("moof size 0", with_size(seg.clone(), &moof, 0)),
        (
            "moof size 1, largesize from its payload",
            with_size(seg.clone(), &moof, 1),
        ),
        (
            "moof size 4 (smaller than its header)",
            with_size(seg.clone(), &moof, 4),
        ),
        ("moof size 7", with_size(seg.clone(), &moof, 7)),
        (
            "mfhd larger than its moof",
            with_size(seg.clone(), &mfhd, 100_000),
        ),
        (
            "moof larger than the file",
            with_size(seg.clone(), &moof, u32::MAX),
        ),
        (
            "moof largesize 2^64-1",
            with_largesize(seg.clone(), &moof, u64::MAX),
        ),
        (
            "mdat largesize 2^64-1",
            with_largesize(seg.clone(), &["mdat"], u64::MAX),
        ),
        (
            "mdat largesize 2^63",
            with_largesize(seg.clone(), &["mdat"], 1 << 63),
        ),
        ("moof nested 10,000 deep", nested(b"moof", 10_000)),
        ("traf nested 10,000 deep", {
            let mut v = nested(b"moof", 1);
            let inner = nested(b"traf", 10_000);
            set_u32(&mut v, 0, (8 + inner.len()) as u32);
            v.extend_from_slice(&inner);
            v
        }),
        ("empty body", Vec::new()),
        ("truncated header", seg[..5].to_vec()),
        ("truncated moof", seg[..600].to_vec()),
        ("truncated mdat", seg[..seg.len() / 2].to_vec()),
        (
            "mdat with its last byte missing",
            seg[..seg.len() - 1].to_vec(),
        ),
    ];
    for (case, body) in segment_cases {
        let r = ctx.put("seg_002.m4s", &body);
        ctx.refused(case, r, 400);
    }

    // trun (§8.8.8): sample_count at +12, data_offset at +16 (flags 0x000001).
    let trun = find_box(&seg, &["moof", "traf", "trun"]);
    let field = |case: &str, at: usize, v: u32, status: u16| {
        let mut body = seg.clone();
        set_u32(&mut body, at, v);
        let r = ctx.put("seg_002.m4s", &body);
        ctx.refused(case, r, status);
    };
    field("trun sample_count 2^32-1", trun + 12, u32::MAX, 400);
    field("trun sample_count 1,000,000", trun + 12, 1_000_000, 400);
    field("trun data_offset i32::MAX", trun + 16, i32::MAX as u32, 400);
    field("trun data_offset i32::MIN", trun + 16, i32::MIN as u32, 400);
    field("trun data_offset -8", trun + 16, (-8i32) as u32, 400);
    // tfhd (§8.8.7): track_ID at +12. ref/api.md "Ingest": 412 for a fragment whose track
    // the init does not declare.
    let tfhd = find_box(&seg, &["moof", "traf", "tfhd"]);
    field("tfhd track_ID 99", tfhd + 12, 99, 412);
    field("tfhd track_ID 0", tfhd + 12, 0, 412);
    // tfhd flags 0x020038: default_sample_duration follows track_ID; the video trun
    // gives none of its own, so every frame lasts 0 ticks: a chunk of no length.
    assert_eq!(&seg[tfhd + 9..tfhd + 12], [0x02, 0x00, 0x38]);
    field("tfhd default_sample_duration 0", tfhd + 16, 0, 400);
    // tfhd flag 0x000001: a 64-bit base_data_offset follows track_ID (8 bytes
    // inserted, tfhd/traf/moof grown to match); near 2^64 the sample offsets overflow.
    for base in [u64::MAX, u64::MAX - 1_000, 1 << 63] {
        let mut body = seg.clone();
        let moof = find_box(&body, &["moof"]);
        let traf = find_box(&body, &["moof", "traf"]);
        for at in [moof, traf, tfhd] {
            let size = u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            set_u32(&mut body, at, size + 8);
        }
        body[tfhd + 11] |= 0x01;
        body.splice(tfhd + 16..tfhd + 16, base.to_be_bytes());
        let r = ctx.put("seg_002.m4s", &body);
        ctx.refused(&format!("tfhd base_data_offset {base}"), r, 400);
    }

    // A fragment before any init (ref/api.md "Ingest": 412), under a rendition never seen.
    let r = ctx.put_path(&format!("{}/fresh/seg_000.m4s", ctx.ingest), &seg);
    ctx.refused("a fragment before any init", r, 412);

    // Inits: a refused init must not replace the rendition's current one.
    let init = init();
    let mdhd = find_box(&init, &["moov", "trak", "mdia", "mdhd"]);
    let init_cases: Vec<(&str, Vec<u8>)> = vec![
        ("moov size 0 (to the end: fine) with its trak size 3", {
            let v = with_size(init.clone(), &["moov"], 0);
            with_size(v, &["moov", "trak"], 3)
        }),
        (
            "moov size 1, largesize from its payload",
            with_size(init.clone(), &["moov"], 1),
        ),
        ("moov size 4", with_size(init.clone(), &["moov"], 4)),
        (
            "trak larger than its moov",
            with_size(init.clone(), &["moov", "trak"], 100_000),
        ),
        (
            "moov largesize 2^64-1",
            with_largesize(init.clone(), &["moov"], u64::MAX),
        ),
        ("moov nested 10,000 deep", nested(b"moov", 10_000)),
        ("mdhd timescale 0", {
            // mdhd v0 (§8.4.2): timescale after version/flags and two 32-bit times.
            let mut v = init.clone();
            assert_eq!(v[mdhd + 8], 0, "mdhd version 0");
            set_u32(&mut v, mdhd + 20, 0);
            v
        }),
        ("truncated init", init[..init.len() / 2].to_vec()),
        ("no moov", init[..28].to_vec()),
    ];
    for (case, body) in init_cases {
        let r = ctx.put("init.mp4", &body);
        ctx.refused(case, r, 400);
    }
    // The stream still takes a good segment as a retry (nothing was replaced).
    let r = expect(ctx.put("seg_001.m4s", &segment(1)), 200);
    assert!(r.body.is_empty() || r.text().is_ascii());
    ctx.assert_unchanged("a retry after the attacks");
    ctx.recut_is_identical();
}

/// Playlists, names and bodies over the limits.
#[test]
fn hostile_playlists_names_and_sizes_change_nothing() {
    let ctx = Ctx::start();
    let addr = ctx.addr();
    let seg = segment(1);

    // Garbage playlists (RFC 8216 §4.3.1.1: the first line is #EXTM3U).
    let garbage: [(&str, &[u8]); 5] = [
        ("not a playlist", b"hello"),
        ("binary", b"\xff\xfe\x00\x01#EXTM3U"),
        (
            "bad date",
            b"#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n#EXTINF:2,\nseg_000.m4s\n",
        ),
        ("bad duration", b"#EXTM3U\n#EXTINF:NaN,\nseg_000.m4s\n"),
        ("URI without EXTINF", b"#EXTM3U\nseg_000.m4s\n"),
    ];
    for (case, body) in garbage {
        let r = ctx.put("index.m3u8", body);
        ctx.refused(case, r, 400);
        let r = ctx.put_path(&format!("{}/master.m3u8", ctx.ingest), body);
        ctx.refused(case, r, 400);
    }

    // URIs leaving the rendition's directory, dated 1 s off the held chunks (inside
    // the engine's trust window, so a bare name would move them): they name other
    // files, and must not re-date this rendition's `seg_000.m4s`/`seg_001.m4s`.
    let start = ctx.dvr["renditions"][0]["ranges"][0]["start"]
        .as_f64()
        .unwrap();
    let date = |secs: f64| {
        dvrclip_engine::WallTime::from_unix_micros((secs * 1e6) as i64).to_rfc3339_millis()
    };
    for uri in [
        "../seg_000.m4s",
        "../other/seg_000.m4s",
        "/ingest/x/v/seg_000.m4s",
        "http://evil.example/seg_000.m4s",
        "https://evil.example/v/seg_000.m4s?x=1",
        "..%2Fseg_000.m4s",
    ] {
        let body = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
             #EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:2.000000,\n{uri}\n",
            date(start + 1.0)
        );
        let r = ctx.put("index.m3u8", body.as_bytes());
        assert!(matches!(r.status, 200 | 400), "{uri}: {}", r.text());
        if r.status == 400 {
            ctx.refused(uri, r, 400);
        }
        ctx.assert_unchanged(&format!("a playlist naming {uri}"));
    }

    // Path traversal in ingest names, raw and percent-encoded (ref/api.md "Ingest": a file
    // name is one path component of a safe charset; anything else is 400/403).
    let key = ctx.ingest.rsplit('/').next().unwrap().to_owned();
    for path in [
        format!("/ingest/{key}/{RENDITION}/../{RENDITION}/seg_002.m4s"),
        format!("/ingest/{key}/../{key}/{RENDITION}/seg_002.m4s"),
        format!("/ingest/{key}/{RENDITION}/..%2Fseg_002.m4s"),
        format!("/ingest/{key}/{RENDITION}/%2e%2e%2fseg_002.m4s"),
        format!("/ingest/{key}/%2e%2e/{RENDITION}/seg_002.m4s"),
        format!("/ingest/{key}/{RENDITION}%2F..%2F{RENDITION}/seg_002.m4s"),
        format!("/ingest/{key}/{RENDITION}/.seg_002.m4s"),
        format!("/ingest/{key}/{RENDITION}/seg_002.m4s%00.txt"),
        format!("/ingest/{key}/{RENDITION}/%2Fetc%2Fpasswd.m4s"),
        format!("/ingest/{key}/{RENDITION}/seg_002"),
        format!("/ingest/%2e%2e/{RENDITION}/seg_002.m4s"),
        format!("/ingest/{key}/{RENDITION}/sub/dir/seg_002.m4s"),
    ] {
        let r = ctx.put_path(&path, &seg);
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        let status = r.status;
        ctx.refused(&path, r, status);
    }

    // Bodies over the 1 MiB limit of inits and playlists (ref/api.md "Operations"), declared and
    // chunked: 413 before anything is parsed.
    for file in ["init.mp4", "index.m3u8"] {
        let path = format!("{}/{RENDITION}/{file}", ctx.ingest);
        let raw = format!(
            "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n",
            (1 << 20) + 1
        );
        let r = exchange(addr, raw.into_bytes(), false);
        ctx.refused(&format!("{file}, declared 1 MiB + 1"), r, 413);
        let r = exchange(addr, chunked("PUT", &path, addr, &[], 17, 64 << 10), false);
        ctx.refused(&format!("{file}, chunked past 1 MiB"), r, 413);
    }
    let path = format!("/streaming/streams/{}/clip_recording", ctx.sid);
    let r = exchange(
        addr,
        chunked("PUT", &path, addr, &[("Authorization", AUTH)], 17, 64 << 10),
        false,
    );
    ctx.refused("a JSON body chunked past 1 MiB", r, 413);
    let raw = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: {AUTH}\r\n\
         Content-Length: 18446744073709551615\r\n\r\n"
    );
    // hyper refuses this one itself, before the server sees the request: u64::MAX is
    // its internal "chunked" marker, so it answers 431 with no body (no reason).
    let r = exchange(addr, raw.into_bytes(), false);
    assert!(
        matches!(r.status, 413 | 431),
        "Content-Length 2^64-1: {}",
        r.status
    );
    ctx.assert_unchanged("Content-Length 2^64-1");
    let raw = format!(
        "PUT {}/{RENDITION}/seg_002.m4s HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: 99999999999999999999999\r\n\r\n",
        ctx.ingest
    );
    let r = exchange(addr, raw.into_bytes(), false);
    assert!(matches!(r.status, 400 | 413), "{}", r.text());
    ctx.assert_unchanged("a Content-Length past u64");
    ctx.recut_is_identical();
}

/// A request with a `Transfer-Encoding: chunked` body of `n` zero-filled chunks.
fn chunked(
    method: &str,
    path: &str,
    addr: SocketAddr,
    headers: &[(&str, &str)],
    n: usize,
    size: usize,
) -> Vec<u8> {
    let mut raw =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for (k, v) in headers {
        raw.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
    let piece = vec![b'0'; size];
    for _ in 0..n {
        raw.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        raw.extend_from_slice(&piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

/// Retries are 200 and change nothing; segments arriving out of order land in order.
#[test]
fn retries_and_out_of_order_segments() {
    let ctx = Ctx::start();
    // ref/api.md "Ingest": A PUT to a path already received is idempotent (a retry).
    for _ in 0..3 {
        expect(ctx.put("seg_000.m4s", &segment(0)), 200);
        expect(ctx.put("seg_001.m4s", &segment(1)), 200);
        expect(ctx.put("init.mp4", &init()), 200);
    }
    ctx.assert_unchanged("retries");
    // The same bytes under another name: same start in this discontinuity, a retry.
    expect(ctx.put("seg_000_again.m4s", &segment(0)), 200);
    ctx.assert_unchanged("the same segment under another name");

    // A second stream receives seg_001 before seg_000.
    let addr = ctx.addr();
    let stream = expect(
        api(
            addr,
            "POST",
            "/streaming/streams",
            Some(r#"{"name": "out of order"}"#),
        ),
        201,
    )
    .json();
    let sid = stream["id"].as_u64().unwrap();
    let ingest = path_of(stream["push_url_http"].as_str().unwrap()).to_owned();
    let put = |file: &str, body: &[u8]| {
        request(
            addr,
            "PUT",
            &format!("{ingest}/{RENDITION}/{file}"),
            &[],
            Some(body),
        )
    };
    expect(put("init.mp4", &init()), 201);
    expect(put("seg_001.m4s", &segment(1)), 201);
    let r = put("seg_000.m4s", &segment(0));
    assert!(
        matches!(r.status, 200 | 201),
        "a late segment: {}",
        r.text()
    );
    let d = dvr(addr, sid);
    let r0 = &d["renditions"][0];
    // Whatever the server kept, the ranges it reports are ordered and disjoint.
    let ranges = r0["ranges"].as_array().unwrap();
    for w in ranges.windows(2) {
        assert!(w[0]["end"].as_f64() <= w[1]["start"].as_f64(), "{d}");
    }
    for r in ranges {
        assert!(r["start"].as_f64() < r["end"].as_f64(), "{d}");
    }
    // And the first stream never saw any of it.
    ctx.assert_unchanged("another stream's uploads");
    ctx.recut_is_identical();
}

/// Range headers an attacker writes (RFC 9110 §14.2: "A server MAY ignore the
/// Range header field"; §14.1.1: "a last-pos value larger than the current length
/// ... is replaced by the length minus one").
#[test]
fn hostile_ranges_are_bounded() {
    let ctx = Ctx::start();
    let addr = ctx.addr();
    let len = ctx.mp4.len() as u64;
    let range = |v: &str| request(addr, "GET", &ctx.mp4_path, &[("Range", v)], None);

    let many: Vec<String> = (0..1000).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
    let r = range(&format!("bytes={}", many.join(",")));
    assert_eq!(r.status, 200, "1,000 ranges are ignored: {}", r.status);
    assert!(r.body == ctx.mp4);
    let r = range(&format!("bytes={}", vec!["0-0"; 1000].join(",")));
    assert!(matches!(r.status, 200 | 206), "{}", r.status);

    let max = u64::MAX;
    let r = range(&format!("bytes=0-{max}"));
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-{}/{len}", len - 1).as_str())
    );
    assert!(r.body == ctx.mp4);
    let r = range(&format!("bytes={}-{max}", max - 1));
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    let r = range(&format!("bytes={max}-"));
    assert_eq!(r.status, 416);
    let r = range(&format!("bytes=-{max}"));
    assert_eq!(
        r.status, 206,
        "a suffix longer than the file is the whole file"
    );
    assert!(r.body == ctx.mp4);
    // One past u64: not a number this server can hold; ignored (200) or refused.
    let r = range("bytes=18446744073709551616-");
    assert!(matches!(r.status, 200 | 416), "{}", r.status);
    let r = range("bytes=0-18446744073709551616");
    assert!(matches!(r.status, 200 | 206 | 416), "{}", r.status);
    let r = range(&format!("bytes={}-{}", len - 1, 0));
    assert!(matches!(r.status, 200 | 416), "first > last: {}", r.status);
    let r = range("bytes=--1,,,-,");
    assert!(matches!(r.status, 200 | 416), "{}", r.status);
    ctx.assert_unchanged("hostile ranges");
}

/// Malformed JSON and wrong types on every JSON endpoint: 400 naming the field where
/// there is one, and nothing created or changed.
#[test]
fn malformed_json_and_wrong_types() {
    let ctx = Ctx::start();
    let addr = ctx.addr();
    let clip_path = format!("/streaming/streams/{}/clip_recording", ctx.sid);
    let stream_path = format!("/streaming/streams/{}", ctx.sid);
    let deep = "[".repeat(100_000);
    let clip_cases: Vec<(&str, String, Option<&str>)> = vec![
        ("empty", String::new(), None),
        ("truncated", "{".into(), None),
        ("not an object", "[1, 2]".into(), None),
        ("a string", r#""duration""#.into(), None),
        ("nested 100,000 deep", deep.clone(), None),
        ("trailing garbage", r#"{"duration": 5} x"#.into(), None),
        ("not UTF-8", "{\"duration\": \u{fffd}}".into(), None),
        (
            "duration a string",
            r#"{"duration": "5"}"#.into(),
            Some("duration"),
        ),
        (
            "duration a float",
            r#"{"duration": 5.5}"#.into(),
            Some("duration"),
        ),
        ("duration 1e400", r#"{"duration": 1e400}"#.into(), None),
        (
            "duration past u64",
            r#"{"duration": 18446744073709551616}"#.into(),
            Some("duration"),
        ),
        (
            "duration negative",
            r#"{"duration": -5}"#.into(),
            Some("duration"),
        ),
        (
            "duration an object",
            r#"{"duration": {"a": 1}}"#.into(),
            Some("duration"),
        ),
        (
            "start a bool",
            r#"{"duration": 5, "start": true}"#.into(),
            Some("start"),
        ),
        (
            "start i64::MIN",
            r#"{"duration": 5, "start": -9223372036854775808}"#.into(),
            Some("start"),
        ),
        (
            "start i64::MAX",
            r#"{"duration": 5, "start": 9223372036854775807}"#.into(),
            Some("start"),
        ),
        (
            "expiration i64::MAX",
            format!(
                r#"{{"duration": 2, "start": {}, "expiration": 9223372036854775807}}"#,
                ctx.clip_request
                    .split(':')
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap()
                    .trim()
            ),
            Some("expiration"),
        ),
        (
            "vod_required a number",
            r#"{"duration": 5, "vod_required": 1}"#.into(),
            Some("vod_required"),
        ),
        (
            "duplicate keys",
            r#"{"duration": 5, "duration": "x"}"#.into(),
            None,
        ),
    ];
    for (case, body, field) in clip_cases {
        let r = api(addr, "PUT", &clip_path, Some(&body));
        if let Some(f) = field {
            assert_eq!(r.json()["field"], f, "{case}: {}", r.text());
        }
        ctx.refused(case, r, 400);
    }
    let raw = {
        let body = b"{\"duration\":\xff}";
        let mut raw = format!(
            "PUT {clip_path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: {AUTH}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        raw
    };
    ctx.refused("raw bytes not UTF-8", exchange(addr, raw, false), 400);

    let before = expect(api(addr, "GET", &stream_path, None), 200).json();
    let patch_cases = [
        r#"{"stream": 3}"#,
        r#"{"stream": {"dvr_duration": "60"}}"#,
        r#"{"stream": {"dvr_duration": 5}}"#,
        r#"{"stream": {"dvr_duration": 99999999999999999999}}"#,
        r#"{"stream": {"name": ""}}"#,
        r#"{"stream": {"name": 7}}"#,
        r#"{"stream": {"active": "false"}}"#,
        r#"{"stream": {"dvr_enabled": 0}}"#,
        &format!(r#"{{"stream": {{"name": "{}"}}}}"#, "x".repeat(256)),
        "nul\0l",
    ];
    for body in patch_cases {
        let r = api(addr, "PATCH", &stream_path, Some(body));
        ctx.refused(body, r, 400);
    }
    assert_eq!(
        expect(api(addr, "GET", &stream_path, None), 200).json(),
        before
    );
    let streams = expect(api(addr, "GET", "/streaming/streams", None), 200).json();
    for body in [
        r#"{"name": 5}"#,
        r#"{"name": "  "}"#,
        r#"{"dvr_duration": 60}"#,
        "{}",
        "[]",
        "",
    ] {
        let r = api(addr, "POST", "/streaming/streams", Some(body));
        ctx.refused(body, r, 400);
    }
    assert_eq!(
        expect(api(addr, "GET", "/streaming/streams", None), 200).json(),
        streams,
        "a refused POST created a stream"
    );
    ctx.recut_is_identical();
}

#[test]
fn bodies_past_the_memory_kept_for_uploads_are_refused() {
    // A 32 MiB budget keeps a sixteenth, 2 MiB, for bodies still arriving.
    let ctx = Ctx::start_with(&["--memory-budget-mib", "32"]);
    let big = segment(0).repeat((2 << 20) / segment(0).len() + 1);
    let r = ctx.put("seg_002.m4s", &big);
    assert!(r.text().contains("uploads in flight"), "{}", r.text());
    ctx.refused("a body past the upload memory", r, 503);
    let metrics = expect(get(ctx.addr(), "/metrics"), 200).text();
    assert!(
        metrics.contains("\ndvrclip_body_memory_bytes 0\n"),
        "the refused body's memory came back: {metrics}"
    );
    assert!(
        metrics.contains(&format!("\ndvrclip_memory_budget_bytes {}\n", 32 << 20)),
        "{metrics}"
    );
    ctx.recut_is_identical();
}

/// Issue 15: an init whose `avcC` lies about its parameter sets used to be stored
/// (201) and become the rendition's init, so every fragment after it failed to decode
/// ("Error splitting the input into NAL units"). ISO/IEC 14496-15 §5.3.3: each SPS
/// and PPS lies inside the record and is of its type; the SPS gives a picture. A
/// record of a version we cannot read is 415 (ref/api.md "a codec dvrclip cannot
/// describe"), a lying one 400; the rendition keeps its init either way.
#[test]
fn an_init_whose_avcc_lies_is_refused_and_the_rendition_keeps_its_init() {
    let ctx = Ctx::start();
    let init = init();
    // avcC body: version, profile, compat, level, lengthSizeMinusOne, SPS count at
    // +5, the first SPS's 16-bit length at +6 and its NAL header at +8.
    // Inside stsd (a full box with a count) and avc1 (78 bytes of fields first) the
    // walker cannot descend: the sample entry and its avcC are found by type.
    let stsd = find_box(&init, &["moov", "trak", "mdia", "minf", "stbl", "stsd"]);
    let find_in_stsd = |file: &[u8], kind: &[u8; 4]| {
        stsd + file[stsd..].windows(4).position(|w| w == kind).unwrap() - 4
    };
    let body = find_in_stsd(&init, b"avcC") + 8;
    assert_eq!(init[body + 8], 0x67, "an SPS NAL unit");
    let sps_len = u16::from_be_bytes([init[body + 6], init[body + 7]]);
    let with = |at: usize, bytes: &[u8]| {
        let mut v = init.clone();
        v[body + at..body + at + bytes.len()].copy_from_slice(bytes);
        v
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "an SPS longer than the avcC box",
            with(6, &(sps_len + 200).to_be_bytes()),
            400,
            "longer than the record",
        ),
        (
            "no SPS in an avc1 avcC",
            {
                // numOfSequenceParameterSets 0, and the SPS bytes taken out of the
                // record (avcC, avc1, stsd, stbl, minf, mdia, trak, moov shrink with it).
                let mut v = with(5, &[0xe0]);
                let cut = 2 + usize::from(sps_len);
                v.drain(body + 6..body + 6 + cut);
                let mut parents: Vec<usize> = [
                    &["moov"][..],
                    &["moov", "trak"],
                    &["moov", "trak", "mdia"],
                    &["moov", "trak", "mdia", "minf"],
                    &["moov", "trak", "mdia", "minf", "stbl"],
                    &["moov", "trak", "mdia", "minf", "stbl", "stsd"],
                ]
                .iter()
                .map(|path| find_box(&v, path))
                .collect();
                parents.push(find_in_stsd(&v, b"avc1"));
                parents.push(find_in_stsd(&v, b"avcC"));
                for at in parents {
                    let size = u32::from_be_bytes(v[at..at + 4].try_into().unwrap());
                    set_u32(&mut v, at, size - cut as u32);
                }
                v
            },
            400,
            "at least one SPS",
        ),
        (
            "a PPS where the SPS belongs",
            with(8, &[0x68]),
            400,
            "not of type 7",
        ),
        (
            "avcC configurationVersion 2",
            with(0, &[2]),
            415,
            "unsupported",
        ),
    ];
    for (case, bad, status, reason) in cases {
        let r = ctx.put("init.mp4", &bad);
        let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(reason), "{case}: {error}");
        assert!(
            error.contains("avc1/avcC"),
            "{case}: names the box: {error}"
        );
        ctx.refused(case, r, status);
    }
    // The fragments after the attack still parse against the kept init: a retry.
    expect(ctx.put("seg_001.m4s", &segment(1)), 200);
    ctx.assert_unchanged("segments after the refused inits");
    ctx.recut_is_identical();
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
/// HTTP/1.1 request message that lacks a Host header field and to any request
/// message that contains more than one Host header field line or a Host header field
/// with an invalid field value." Refused before routing, with a JSON reason naming
/// `Host`; an HTTP/1.0 request without one is still answered.
#[test]
fn requests_without_one_valid_host_are_refused() {
    let ctx = Ctx::start();
    let addr = ctx.addr();
    let seg_path = format!("{}/{RENDITION}/seg_002.m4s", ctx.ingest);
    let send = |method: &str, path: &str, version: &str, hosts: &[&str], body: &[u8]| {
        let mut raw = format!("{method} {path} {version}\r\nConnection: close\r\n");
        for h in hosts {
            raw.push_str(&format!("Host: {h}\r\n"));
        }
        raw.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut raw = raw.into_bytes();
        raw.extend_from_slice(body);
        exchange(addr, raw, method == "HEAD")
    };
    let good = addr.to_string();
    let cases: [(&str, &[&str]); 4] = [
        ("no Host", &[]),
        ("two Host lines", &[&good, &good]),
        ("a Host with a space", &["a b"]),
        ("a Host with userinfo", &["user@127.0.0.1"]),
    ];
    for (case, hosts) in cases {
        for (method, path, body) in [
            ("GET", "/healthz", &b""[..]),
            ("GET", ctx.mp4_path.as_str(), b""),
            // Even a good segment under the stream's key: refused before it is read.
            ("PUT", seg_path.as_str(), &segment(0)[..]),
        ] {
            let r = send(method, path, "HTTP/1.1", hosts, body);
            assert_eq!(r.json()["field"], "Host", "{case}: {}", r.text());
            ctx.refused(&format!("{case}: {method} {path}"), r, 400);
        }
    }
    // Two Host lines or an invalid one are refused in HTTP/1.0 too; none is fine.
    let r = send("GET", "/healthz", "HTTP/1.0", &[&good, &good], b"");
    ctx.refused("two Host lines in HTTP/1.0", r, 400);
    let r = expect(send("GET", "/healthz", "HTTP/1.0", &[], b""), 200);
    assert_eq!(r.text(), "ok\n");
    let r = expect(send("GET", &ctx.mp4_path, "HTTP/1.0", &[], b""), 200);
    assert!(r.body == ctx.mp4);
    // And one valid Host, as every client sends, is answered as before.
    expect(send("GET", "/healthz", "HTTP/1.1", &[&good], b""), 200);
    ctx.recut_is_identical();
}
