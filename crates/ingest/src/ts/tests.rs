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

/// Chunks of the rendition, for "the DVR is intact" checks.
fn chunk_count(engine: &Engine, id: StreamId) -> usize {
    engine
        .live_rendition(id, RENDITION)
        .map_or(0, |r| r.segments().len())
}

/// The fixture's packets, with `edit` applied to each (index, packet).
fn edited(name: &str, mut edit: impl FnMut(usize, &mut [u8])) -> Vec<u8> {
    let mut ts = fixture(name);
    for (i, p) in ts.chunks_mut(188).enumerate() {
        edit(i, p);
    }
    ts
}

#[test]
fn garbage_between_packets_loses_nothing() {
    let (engine, id) = setup();
    let ts = fixture("h264_stereo.ts");
    let mut noisy = Vec::new();
    for (i, p) in ts.chunks(188).enumerate() {
        noisy.extend_from_slice(p);
        if i % 7 == 0 {
            noisy.extend_from_slice(&[0x47, 0x00, 0x13, 0x47, 0xff][..1 + i % 5]);
        }
    }
    let stats = publish(&engine, id, &noisy, 1000);
    assert!(stats.skipped_bytes > 0);
    assert_eq!((stats.epochs, stats.continuity_errors), (1, 0), "{stats:?}");
    let (clean_engine, clean) = setup();
    publish(&clean_engine, clean, &ts, 1316);
    assert_eq!(
        stats.fragments,
        clean_engine.dvr(clean).unwrap().renditions[0].chunks as u64
    );
}

#[test]
fn random_bytes_store_nothing_and_hold_little() {
    let (engine, id) = setup();
    let mut p = TsPublish::new(id, RENDITION);
    // A deterministic xorshift: sync bytes and PIDs at random.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 50 == 0 { 0x47 } else { x as u8 }
        })
        .collect();
    for piece in bytes.chunks(1316) {
        p.feed(&engine, piece).unwrap();
        assert!(p.held_bytes() < 64 << 10, "{}", p.held_bytes());
    }
    p.finish(&engine).unwrap();
    assert_eq!(p.stats().epochs, 0);
    assert_eq!(chunk_count(&engine, id), 0);
}

#[test]
fn impossible_adaptation_fields_and_pes_lengths_are_skipped() {
    let (engine, id) = setup();
    // Every 40th packet claims an adaptation field longer than the packet.
    let ts = edited("h264_stereo.ts", |i, p| {
        if i % 40 == 5 {
            p[3] |= 0x30;
            p[4] = 190;
        }
    });
    let stats = publish(&engine, id, &ts, 1316);
    assert!(stats.bad_packets > 0, "{stats:?}");
    // A skipped packet is a lost one: its PES is dropped, the timeline breaks, and
    // what is stored still parses (every chunk went through parse_segment).
    assert!(stats.continuity_errors > 0);
    assert!(chunk_count(&engine, id) > 0);

    // Every audio PES claims a length past what it carries.
    let (engine, id) = setup();
    let ts = edited("h264_stereo.ts", |_, p| {
        let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
        if pid == 0x101 && p[1] & 0x40 != 0 {
            let at = if p[3] & 0x20 != 0 {
                5 + usize::from(p[4])
            } else {
                4
            };
            if p.get(at..at + 3) == Some(&[0, 0, 1]) {
                p[at + 4] = 0xff;
                p[at + 5] = 0xff;
            }
        }
    });
    let stats = publish(&engine, id, &ts, 1316);
    assert!(stats.pes_dropped > 0, "{stats:?}");
    // The audio the PMT promised never came whole: video goes on alone.
    assert!(chunk_count(&engine, id) > 0);
}

#[test]
fn a_broken_sps_drops_its_pictures_and_keeps_the_dvr() {
    let (engine, id) = setup();
    let ts = fixture("h264_stereo.ts");
    publish(&engine, id, &ts, 1316);
    let before = engine
        .live_rendition(id, RENDITION)
        .unwrap()
        .segments()
        .len();
    // Corrupt every SPS: the byte after its header becomes an impossible profile
    // and the rest ones (exp-Golomb codes that never end).
    let broken = edited("h264_stereo.ts", |_, p| {
        for i in 4..p.len().saturating_sub(8) {
            if p[i..i + 4] == [0, 0, 1, 0x67] {
                p[i + 5..i + 8].fill(0);
                p[i + 8..].iter_mut().take(12).for_each(|b| *b = 0);
            }
        }
    });
    let mut again = TsPublish::new(id, RENDITION);
    again.feed(&engine, &broken).unwrap();
    again.finish(&engine).unwrap();
    let stats = again.stats();
    assert_eq!(stats.epochs, 0, "{stats:?}");
    assert!(stats.samples_dropped > 0);
    assert_eq!(chunk_count(&engine, id), before, "the DVR is as it was");
}

#[test]
fn pmt_churn_is_bounded() {
    // Every PMT is followed by a forged one that moves the video to another PID, so
    // the program changes twice per PMT interval.
    let (engine, id) = setup();
    let ts = fixture("h264_stereo.ts");
    let mut churned = Vec::new();
    let mut pmts = 0;
    for p in ts.chunks(188) {
        churned.extend_from_slice(p);
        let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
        if pid == 0x1000 {
            pmts += 1;
            let mut forged = p.to_vec();
            // The first stream's elementary_PID (0x100 → 0x1ff), CRC recomputed.
            let section_len = usize::from(forged[6] & 0x0f) << 8 | usize::from(forged[7]);
            let end = 5 + 3 + section_len;
            forged[5 + 13..5 + 15].copy_from_slice(&[0xe1, 0xff]);
            let crc = psi::crc32_mpeg2(&forged[5..end - 4]);
            forged[end - 4..end].copy_from_slice(&crc.to_be_bytes());
            churned.extend_from_slice(&forged);
        }
    }
    assert!(pmts > 2);
    let mut p = TsPublish::new(id, RENDITION);
    for piece in churned.chunks(1316) {
        p.feed(&engine, piece).unwrap();
        assert!(p.held_bytes() < 4 << 20);
    }
    p.finish(&engine).unwrap();
    let stats = p.stats();
    assert!(stats.program_changes >= 2 * (pmts - 1), "{stats:?}");
    // The forged program names a PID with no packets: nothing is stored from it,
    // and the real one restarts only at keyframes.
    assert!(stats.epochs <= stats.program_changes);
}

#[test]
fn a_reconnect_is_a_discontinuity() {
    let (engine, id) = setup();
    let ts = fixture("h264_stereo.ts");
    let mut p = TsPublish::new(id, RENDITION);
    p.feed(&engine, &ts[..ts.len() / 2]).unwrap();
    p.discontinuity(&engine);
    p.feed(&engine, &ts).unwrap();
    p.finish(&engine).unwrap();
    assert_eq!(p.stats().epochs, 2);
    let r = &engine.dvr(id).unwrap().renditions[0];
    assert_eq!(r.ranges.len(), 2, "two discontinuities");
}

#[test]
fn timestamps_wrap_at_33_bits() {
    // The fixture's times moved to 4 s before the 33-bit wrap: PTS, DTS and PCR.
    let shift = (1u64 << 33) - 4 * 90_000;
    let ts = edited("h264_bframes_mono.ts", |_, p| {
        let mut at = 4;
        if p[3] & 0x20 != 0 {
            let len = usize::from(p[4]);
            if len >= 7 && p[5] & 0x10 != 0 {
                let b = &mut p[6..11];
                let base = (u64::from(b[0]) << 25
                    | u64::from(b[1]) << 17
                    | u64::from(b[2]) << 9
                    | u64::from(b[3]) << 1
                    | u64::from(b[4]) >> 7)
                    .wrapping_add(shift)
                    & ((1 << 33) - 1);
                b[0] = (base >> 25) as u8;
                b[1] = (base >> 17) as u8;
                b[2] = (base >> 9) as u8;
                b[3] = (base >> 1) as u8;
                b[4] = (b[4] & 0x7f) | ((base & 1) << 7) as u8;
            }
            at = 5 + len;
        }
        if p[1] & 0x40 == 0 || p.get(at..at + 3) != Some(&[0, 0, 1]) {
            return;
        }
        let flags = p[at + 7] >> 6;
        for (k, present) in [(0, flags & 2 != 0), (5, flags == 3)] {
            if present {
                let b = &mut p[at + 9 + k..at + 14 + k];
                let t = (u64::from(b[0] >> 1 & 7) << 30
                    | u64::from(b[1]) << 22
                    | u64::from(b[2] >> 1) << 15
                    | u64::from(b[3]) << 7
                    | u64::from(b[4] >> 1))
                .wrapping_add(shift)
                    & ((1 << 33) - 1);
                b[0] = (b[0] & 0xf1) | ((t >> 29) & 0x0e) as u8;
                b[1] = (t >> 22) as u8;
                b[2] = ((t >> 14) & 0xfe) as u8 | 1;
                b[3] = (t >> 7) as u8;
                b[4] = ((t << 1) & 0xfe) as u8 | 1;
            }
        }
    });
    let (engine, id) = setup();
    let stats = publish(&engine, id, &ts, 1316);
    assert_eq!(
        (stats.epochs, stats.pcr_discontinuities),
        (1, 0),
        "{stats:?}"
    );
    let r = engine.live_rendition(id, RENDITION).unwrap();
    let samples: usize = r
        .segments()
        .map(|(init, s)| {
            let v = init.video_track().unwrap().track_id;
            let t = s.tracks.iter().filter(|t| t.track_id == v);
            t.map(|t| t.samples.len()).sum::<usize>()
        })
        .sum();
    assert_eq!(samples, 100, "no picture lost at the wrap");
}
