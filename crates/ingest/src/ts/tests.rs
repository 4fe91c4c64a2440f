//! The MPEG-TS door on real media: TS files made by ffmpeg (`tests/fixtures/`,
//! commands in its README) through [`TsPublish`] into a real engine, the chunks read
//! back and written as a progressive MP4 that ffprobe decodes; and hostile bytes.

use std::process::Command;
use std::sync::Arc;

use dvrclip_engine::{Engine, StreamId, StreamSettings};
use dvrclip_fmp4::progressive::{Mp4Builder, Options};

use super::*;

#[path = "../../../../tests/common/require.rs"]
mod require;

const RENDITION: &str = "ts";

fn setup() -> (Arc<Engine>, StreamId) {
    let engine = Arc::new(Engine::default());
    let id = engine.create_stream(StreamSettings::named("t")).unwrap().id;
    (engine, id)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Feeds `ts` in slices of `step` bytes and finishes.
fn publish(engine: &Engine, id: StreamId, ts: &[u8], step: usize) -> TsStats {
    let mut p = TsPublish::new(id, RENDITION);
    for piece in ts.chunks(step) {
        p.feed(engine, piece).unwrap();
        assert!(p.held_bytes() < 4 << 20);
    }
    p.finish(engine).unwrap();
    p.stats()
}

/// The rendition's chunks as one progressive MP4 file.
fn mp4_of(engine: &Engine, id: StreamId) -> tempfile_path::TempFile {
    let r = engine.live_rendition(id, RENDITION).unwrap();
    let mut b = Mp4Builder::new(Options::default());
    for (init, segment) in r.segments() {
        b.push(init, segment).unwrap();
    }
    let mp4 = b.build().unwrap();
    let bytes: Vec<u8> = mp4.range(0..mp4.len()).unwrap().flatten().collect();
    tempfile_path::TempFile::with(&bytes)
}

/// A file removed when dropped, in the target dir's tmp.
mod tempfile_path {
    pub(super) struct TempFile(pub(super) std::path::PathBuf);
    impl TempFile {
        pub(super) fn with(bytes: &[u8]) -> Self {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path =
                std::env::temp_dir().join(format!("dvrclip-ts-{}-{n}.mp4", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            TempFile(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// `ffprobe` CSV lines of `entries` for the stream `select` of `path`.
fn probe(path: &std::path::Path, select: &str, entries: &str) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            select,
            "-show_entries",
            entries,
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Decoded frames of stream `select`.
fn decoded_frames(path: &std::path::Path, select: &str) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", select])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A TS lists its streams under the program too: the first line is enough.
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .find(|l| !l.is_empty());
    first.unwrap().parse().unwrap()
}

/// Video presentation times of a file, sorted, relative to the first, in 90 kHz.
fn video_pts(path: &std::path::Path) -> Vec<i64> {
    let mut pts: Vec<i64> = probe(path, "v:0", "packet=pts")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    pts.sort_unstable();
    let first = pts[0];
    pts.iter().map(|p| p - first).collect()
}

fn check_fixture(name: &str, codec: &str, channels: u32) {
    let (engine, id) = setup();
    let ts = fixture(name);
    let stats = publish(&engine, id, &ts, 1316);
    assert_eq!(stats.epochs, 1, "{stats:?}");
    assert_eq!(
        (
            stats.continuity_errors,
            stats.pes_dropped,
            stats.skipped_bytes
        ),
        (0, 0, 0)
    );
    let r = engine.live_rendition(id, RENDITION).unwrap();
    assert!(
        r.segments().len() >= 2,
        "{name}: cut at keyframes into chunks"
    );
    // Every chunk was parsed by `dvrclip_fmp4::parse_segment` on the way in; the
    // samples it found are the source's frames.
    let video_samples: usize = r
        .segments()
        .map(|(init, s)| {
            let v = init.video_track().unwrap().track_id;
            s.tracks
                .iter()
                .filter(|t| t.track_id == v)
                .map(|t| t.samples.len())
                .sum::<usize>()
        })
        .sum();
    if !require::require_tool("ffprobe") {
        return;
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let source_video = decoded_frames(&src, "v:0");
    let source_audio = decoded_frames(&src, "a:0");
    assert_eq!(video_samples, source_video, "{name}: {stats:?}");
    let mp4 = mp4_of(&engine, id);
    assert_eq!(
        probe(&mp4.0, "v:0", "stream=codec_name"),
        vec![codec.to_owned()]
    );
    assert_eq!(
        probe(&mp4.0, "a:0", "stream=channels"),
        vec![channels.to_string()]
    );
    assert_eq!(decoded_frames(&mp4.0, "v:0"), source_video, "{name}");
    // Audio before the first keyframe has no epoch to go to: at most that is lost.
    let audio = decoded_frames(&mp4.0, "a:0");
    assert!(
        audio <= source_audio && audio + 3 >= source_audio,
        "{name}: {audio} of {source_audio}"
    );
    // ISO/IEC 14496-12 §8.6.1.3: "CT(n) = DT(n) + CTTS(n)": with B-frames the
    // composition offsets put every picture at the time the source gave it.
    assert_eq!(video_pts(&mp4.0), video_pts(&src), "{name}");
}

#[test]
fn h264_without_b_frames_and_stereo_aac() {
    check_fixture("h264_stereo.ts", "h264", 2);
}

#[test]
fn h264_with_b_frames_and_mono_aac() {
    check_fixture("h264_bframes_mono.ts", "h264", 1);
}

#[test]
fn hevc_with_b_frames() {
    check_fixture("hevc_stereo.ts", "hevc", 2);
}
