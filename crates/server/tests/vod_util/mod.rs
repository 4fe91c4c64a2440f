//! Shared by the VOD tests: the ffmpeg ladder fixture pushed into an engine, temp
//! directories, a minimal HTTP/1.1 client, the MP4 a clip should be stored as, and
//! what a test needs from outside (ffprobe, moto: `tests/common/require.rs`).

#![allow(dead_code, unreachable_pub)]

#[path = "../../../../tests/common/require.rs"]
mod require;
// Not every test binary that includes this module needs a tool.
#[allow(unused_imports)]
pub use require::{require, require_tool};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use dvrclip_engine::{
    Clip, ClipRequest, Engine, EngineConfig, ManualClock, StreamId, StreamSettings, WallTime,
};
use dvrclip_fmp4::progressive::{Mp4Builder, Options, VirtualMp4};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn ladder_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ladder")
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "dvrclip-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_playlist(dir: &Path) -> (String, Vec<(String, Option<WallTime>)>) {
    let text = std::fs::read_to_string(dir.join("index.m3u8")).unwrap();
    let (mut init, mut segs, mut date) = (String::new(), Vec::new(), None);
    for line in text.lines() {
        if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            init = uri.trim_end_matches('"').to_string();
        } else if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            date = WallTime::parse_program_date_time(d);
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            segs.push((line.trim().to_string(), date.take()));
        }
    }
    (init, segs)
}

/// An engine on a manual clock holding the 3-rendition ladder (8 s) in one stream,
/// the clock then moved a minute past the last segment.
pub fn ladder_engine(config: EngineConfig) -> (Arc<Engine>, Arc<ManualClock>, StreamId) {
    let ladder = ladder_dir();
    let start = WallTime::parse_program_date_time("2026-11-25T05:59:30Z").unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let engine = Arc::new(Engine::with_clock(config, clock.clone()));
    let stream = engine
        .create_stream(StreamSettings::named("ladder"))
        .unwrap()
        .id;
    let names = ["media_1_144", "media_2_180", "media_3_240"];
    let mut inits = Vec::new();
    for name in names {
        let (init_name, _) = read_playlist(&ladder.join(name));
        let bytes = std::fs::read(ladder.join(name).join(init_name)).unwrap();
        let init = dvrclip_fmp4::parse_init(Bytes::from(bytes)).unwrap();
        engine.push_init(stream, name, init.clone()).unwrap();
        inits.push(init);
    }
    let (_, first) = read_playlist(&ladder.join(names[0]));
    for k in 0..first.len() {
        clock.advance_secs(2);
        for (name, init) in names.iter().zip(&inits) {
            let (_, segs) = read_playlist(&ladder.join(name));
            let (file, date) = &segs[k];
            let bytes = Bytes::from(std::fs::read(ladder.join(name).join(file)).unwrap());
            let segment = dvrclip_fmp4::parse_segment(bytes, init).unwrap();
            engine
                .push_segment(stream, name, Some(file), segment)
                .unwrap();
            if let Some(date) = date {
                engine.set_segment_date(stream, name, file, *date).unwrap();
            }
        }
    }
    clock.advance_secs(60);
    (engine, clock, stream)
}

/// A complete `vod_required` clip of the whole ladder (its start lies in the past).
pub fn ladder_clip(engine: &Engine, stream: StreamId) -> Clip {
    let top = engine.rendition_chunks(stream, "media_3_240").unwrap();
    let clip = engine
        .create_clip(
            stream,
            ClipRequest {
                duration_secs: 8,
                start_unix_secs: Some(top[0].start_utc().unix_secs()),
                vod_required: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(clip.view().is_complete());
    clip
}

/// The MP4 the clip link serves for the clip's highest rendition (what the VOD
/// must store byte for byte).
pub fn clip_mp4(clip: &Clip) -> VirtualMp4 {
    let view = clip.view();
    let r = view.reference().unwrap();
    let mut b = Mp4Builder::new(Options {
        identity: format!("{}/{}", clip.id(), r.name()).into_bytes(),
        trim: None,
    });
    for (init, segment) in r.segments() {
        b.push(init, segment).unwrap();
    }
    b.build().unwrap()
}

/// Every byte of a virtual MP4.
pub fn whole(file: &VirtualMp4) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() as usize);
    for piece in file.range(0..file.len()).unwrap() {
        out.extend_from_slice(&piece);
    }
    out
}

/// `ffprobe` on a file or URL: (codec names, format duration in seconds). Check
/// `require_tool("ffprobe")` first, on the test's thread.
pub fn ffprobe(path: impl AsRef<std::ffi::OsStr>) -> (Vec<String>, f64) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("running ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codecs = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_owned())
        .collect();
    let duration = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    (codecs, duration)
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&b[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        b = &b[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
