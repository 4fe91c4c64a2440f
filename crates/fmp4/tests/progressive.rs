//! Progressive MP4s built from the ffmpeg fixtures (`tests/fixtures/`), checked by two
//! independent oracles: ffprobe/ffmpeg reading the written file, and the `mp4` crate
//! reading every sample back through `stsz`/`stsc`/`stco`.
//!
//! Without ffprobe/ffmpeg the checks that need them fail under CI (`.ci/run`
//! installs them) and are skipped, saying so, elsewhere (`tests/common/require.rs`).

#[path = "support/fixture.rs"]
mod fixture;
#[path = "../../../tests/common/require.rs"]
mod require;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use dvrclip_fmp4::progressive::{Mp4Builder, Options, SegmentTables, Trim, VirtualMp4};
use dvrclip_fmp4::{InitSegment, MediaSegment, TrackKind, parse_init, parse_segment};
use serde_json::Value;

/// One run of a fixture: its init and its segments in playlist order.
struct Run {
    init: InitSegment,
    segments: Vec<MediaSegment>,
}

fn load(dir: &str) -> Run {
    let files = fixture::files(dir);
    let init = parse_init(files.init).unwrap();
    let segments = files
        .segments
        .into_iter()
        .map(|(_, bytes)| parse_segment(bytes, &init).unwrap())
        .collect();
    Run { init, segments }
}

/// The file as the engine builds it: each segment's rows summarised and encoded as
/// at ingest, the header made of them as pieces. Checked against the header built
/// whole sample by sample (the form before issue 19): the same bytes.
fn build(runs: &[Run], options: Options) -> VirtualMp4 {
    let mut walked = Mp4Builder::new(options.clone());
    let mut pieced = Mp4Builder::new(options);
    for r in runs {
        for s in &r.segments {
            walked.push(&r.init, s).unwrap();
            pieced
                .push_prepared(&r.init, s, &SegmentTables::new(s))
                .unwrap();
        }
    }
    let (walked, pieced) = (walked.build().unwrap(), pieced.build().unwrap());
    let bytes = |m: &VirtualMp4| -> Vec<u8> { m.range(0..m.len()).unwrap().flatten().collect() };
    assert!(bytes(&walked) == bytes(&pieced), "pieced header differs");
    pieced
}

fn write_out(mp4: &VirtualMp4, name: &str) -> PathBuf {
    let mut bytes = Vec::with_capacity(mp4.len() as usize);
    for p in mp4.range(0..mp4.len()).unwrap() {
        bytes.extend_from_slice(&p);
    }
    assert_eq!(bytes.len() as u64, mp4.len());
    let path = std::env::temp_dir().join(format!(
        "dvrclip-progressive-{}-{}.mp4",
        std::process::id(),
        name.replace('/', "_")
    ));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Whether the ffmpeg oracle runs ([`require::require`]).
fn have_ffmpeg() -> bool {
    require::require_tool("ffprobe") && require::require_tool("ffmpeg")
}

fn ffprobe(path: &Path, ignore_editlist: bool) -> Value {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]);
    if ignore_editlist {
        cmd.args(["-ignore_editlist", "1"]);
    }
    let out = cmd
        .args(["-show_streams", "-show_packets", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `ffmpeg -v error -i f.mp4 -f null -` prints nothing: every packet demuxes and
/// decodes without an error or a warning.
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or(f64::NAN)
}

/// One source sample: (decode, cto, duration, size, sync, bytes).
type Src = (i64, i64, i64, u32, bool, Bytes);

/// Source samples of each output track, in `moov` order (video and audio tracks of
/// the first init, matched across runs by kind and rank), one list per run.
fn source_runs(runs: &[Run]) -> Vec<(TrackKind, Vec<Vec<Src>>)> {
    let first = &runs[0].init;
    let mut out = Vec::new();
    for (i, t) in first.tracks.iter().enumerate() {
        if !matches!(t.kind, TrackKind::Video | TrackKind::Audio) {
            continue;
        }
        let rank = first.tracks[..i]
            .iter()
            .filter(|x| x.kind == t.kind)
            .count();
        let mut per_run = Vec::new();
        for r in runs {
            let mut samples = Vec::new();
            let id = r
                .init
                .tracks
                .iter()
                .filter(|x| x.kind == t.kind)
                .nth(rank)
                .map(|x| x.track_id);
            for s in &r.segments {
                let ts = id.and_then(|id| s.track(id));
                for x in ts.map_or(&[][..], |ts| &ts.samples) {
                    samples.push((
                        x.decode_ticks as i64,
                        i64::from(x.composition_offset),
                        i64::from(x.duration),
                        x.size,
                        x.is_sync,
                        s.bytes.slice(x.range()),
                    ));
                }
            }
            per_run.push(samples);
        }
        out.push((t.kind, per_run));
    }
    out
}

/// What the file must hold for each track: every source sample, except that at a
/// seam between runs the writer may drop up to two leading audio frames of the new
/// run that the previous run already covers (`dropped` per track, from the output).
fn expected(sources: &[(TrackKind, Vec<Vec<Src>>)], out_counts: &[usize]) -> Vec<Vec<Src>> {
    sources
        .iter()
        .zip(out_counts)
        .map(|((kind, runs), &n)| {
            let total: usize = runs.iter().map(Vec::len).sum();
            let dropped = total - n;
            assert!(
                dropped == 0 || *kind == TrackKind::Audio && dropped <= 2 && runs.len() > 1,
                "{kind:?}: {dropped} samples missing"
            );
            let mut all = runs[0].clone();
            for (i, r) in runs[1..].iter().enumerate() {
                all.extend(r.iter().skip(if i == 0 { dropped } else { 0 }).cloned());
            }
            all
        })
        .collect()
}

/// The checks every fixture gets; `continuous` says whether the source timeline is
/// one run (then output durations and offsets must equal the source's exactly).
fn check(name: &str, runs: &[Run], continuous: bool) {
    let mp4 = build(
        runs,
        Options {
            identity: name.as_bytes().to_vec(),
            trim: None,
        },
    );
    let out_counts: Vec<usize> = mp4.sample_counts().iter().map(|c| c.1 as usize).collect();
    let sources = source_runs(runs);
    let want = expected(&sources, &out_counts);
    mp4_crate_reads_every_sample(name, &mp4, &want, continuous);

    if !have_ffmpeg() {
        return;
    }
    let path = write_out(&mp4, name);

    // Same packet count, sizes and key flags as the source segments; with the edit
    // list ignored, the same composition offsets and (for one run) durations.
    let raw = ffprobe(&path, true);
    let packets = raw["packets"].as_array().unwrap();
    for (index, src) in want.iter().enumerate() {
        let kind = sources[index].0;
        let got: Vec<&Value> = packets
            .iter()
            .filter(|p| p["stream_index"].as_u64() == Some(index as u64))
            .collect();
        assert_eq!(got.len(), src.len(), "{name} stream {index}: packet count");
        let mut prev: Option<(i64, i64)> = None;
        let mut dts_shift: Option<i64> = None;
        for (k, (p, s)) in got.iter().zip(src).enumerate() {
            let size: u32 = p["size"].as_str().unwrap().parse().unwrap();
            // At a seam to a new sample entry the keyframe carries the entry's
            // parameter sets in front (a few dozen bytes).
            let seam = !continuous && s.4 && kind == TrackKind::Video;
            assert!(
                size == s.3 || seam && size > s.3 && size < s.3 + 256,
                "{name} {kind:?} packet {k}: size {size} vs {}",
                s.3
            );
            let key = p["flags"].as_str().unwrap().starts_with('K');
            assert_eq!(key, s.4, "{name} {kind:?} packet {k}: key flag");
            let (pts, dts) = (p["pts"].as_i64().unwrap(), p["dts"].as_i64().unwrap());
            if let Some((pd, ps)) = prev {
                if continuous {
                    assert_eq!(dts - pd, s.0 - ps, "{name} {kind:?} packet {k}: dts step");
                } else {
                    assert!(dts > pd, "{name} {kind:?} packet {k}: dts goes back");
                }
            }
            if continuous {
                // ffmpeg delays dts by the largest negative offset (`ctts` v1) so
                // that pts >= dts: a constant per stream, taken from packet 0.
                let shift = *dts_shift.get_or_insert(pts - dts - s.1);
                if src.iter().all(|s| s.1 >= 0) {
                    assert_eq!(shift, 0, "{name} {kind:?}: dts shifted");
                }
                assert_eq!(pts - dts - shift, s.1, "{name} {kind:?} packet {k}: cto");
            }
            prev = Some((dts, s.0));
        }
    }

    // With edit lists applied: the first video frame is a keyframe at time 0, and
    // audio starts with it (skew at most one audio frame).
    let probed = ffprobe(&path, false);
    let streams = probed["streams"].as_array().unwrap();
    let start = |kind: &str| {
        streams
            .iter()
            .find(|s| s["codec_type"] == kind)
            .map(|s| num(&s["start_time"]))
    };
    let packets = probed["packets"].as_array().unwrap();
    if let Some(v) = start("video") {
        assert!(v.abs() < 1e-3, "{name}: video starts at {v}");
        let vi = streams.iter().position(|s| s["codec_type"] == "video");
        let first = packets
            .iter()
            .find(|p| p["stream_index"].as_u64() == vi.map(|i| i as u64))
            .unwrap();
        assert!(first["flags"].as_str().unwrap().starts_with('K'));
        if let Some(a) = start("audio") {
            let rate = streams
                .iter()
                .find(|s| s["codec_type"] == "audio")
                .map(|s| num(&s["sample_rate"]))
                .unwrap();
            let frame = 1024.0 / rate;
            assert!((a - v).abs() <= frame, "{name}: A/V skew {}", a - v);
        }
    }
    let errors = decode_errors(&path);
    assert!(errors.is_empty(), "{name}: ffmpeg says:\n{errors}");
    remove(&path);
}

/// Deletes a written file unless `DVRCLIP_KEEP_MP4` is set (to compare by hand with
/// `ffmpeg -movflags +faststart` output).
fn remove(path: &Path) {
    if std::env::var_os("DVRCLIP_KEEP_MP4").is_some() {
        eprintln!("kept {}", path.display());
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// The `mp4` crate, a second parser, reads every sample back: size, bytes, sync flag
/// and composition offset equal the source sample's.
fn mp4_crate_reads_every_sample(name: &str, mp4: &VirtualMp4, want: &[Vec<Src>], continuous: bool) {
    let mut file = Vec::with_capacity(mp4.len() as usize);
    for p in mp4.range(0..mp4.len()).unwrap() {
        file.extend_from_slice(&p);
    }
    let size = file.len() as u64;
    let mut reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(file), size).unwrap();
    for (out_index, src) in want.iter().enumerate() {
        let track_id = out_index as u32 + 1;
        let count = reader.sample_count(track_id).unwrap();
        assert_eq!(count as usize, src.len(), "{name} track {track_id}");
        for (i, (_, cto, _, _, sync, bytes)) in src.iter().enumerate() {
            let s = reader
                .read_sample(track_id, i as u32 + 1)
                .unwrap()
                .unwrap_or_else(|| panic!("{name} track {track_id} sample {i}"));
            if continuous || !sync {
                assert_eq!(s.bytes, *bytes, "{name} track {track_id} sample {i}: bytes");
            } else {
                assert!(
                    s.bytes.ends_with(bytes),
                    "{name} track {track_id} sample {i}"
                );
            }
            assert_eq!(s.is_sync, *sync, "{name} track {track_id} sample {i}: sync");
            assert_eq!(
                i64::from(s.rendering_offset),
                *cto,
                "{name} track {track_id} sample {i}: cto"
            );
        }
    }
}

#[test]
fn h264_aac_muxed_with_b_frames() {
    check("h264_aac", &[load("h264_aac")], true);
}

#[test]
fn video_only() {
    check("video_only", &[load("video_only")], true);
}

#[test]
fn audio_only() {
    check("audio_only", &[load("audio_only")], true);
}

#[test]
fn long_gop() {
    check("long_gop", &[load("long_gop")], true);
}

#[test]
fn hevc() {
    check("hevc", &[load("hevc")], true);
}

#[test]
fn ladder_renditions() {
    for r in [
        "ladder/media_1_144",
        "ladder/media_2_180",
        "ladder/media_3_240",
    ] {
        check(r, &[load(r)], true);
    }
}

/// An encoder restart (new init: other resolution, 44.1 kHz instead of 48 kHz, no
/// B-frames; media time back to 0) plays through: "A fixture across an encoder
/// restart plays through with 0 decode errors."
#[test]
fn encoder_restart_plays_through() {
    let runs = [load("restart/a"), load("restart/b")];
    check("restart", &runs, false);
    // The seam keeps the timeline continuous: video lasts as long as both runs.
    let mp4 = build(&runs, Options::default());
    let d = mp4.bounds().duration_micros;
    assert!((7_900_000..8_100_000).contains(&d), "duration {d} µs");
}

/// Segments that do not start on a keyframe cannot open a file.
#[test]
fn long_gop_refuses_a_non_keyframe_start() {
    let run = load("long_gop");
    let start = run
        .segments
        .iter()
        .position(|s| !s.starts_with_keyframe(run.init.video_track().map(|t| t.track_id)))
        .expect("long_gop has segments that start mid-GOP");
    let mut b = Mp4Builder::new(Options::default());
    assert!(b.push(&run.init, &run.segments[start]).is_err());
}

/// `precise`: the edit lists trim playback to the window; ffprobe sees its duration.
#[test]
fn precise_window() {
    let run = load("h264_aac");
    let trim = Trim {
        lead_in_micros: 500_000,
        duration_micros: 2_000_000,
    };
    let mp4 = build(
        std::slice::from_ref(&run),
        Options {
            identity: b"precise".to_vec(),
            trim: Some(trim),
        },
    );
    assert_eq!(mp4.bounds().lead_in_micros, 500_000);
    assert_eq!(mp4.bounds().duration_micros, 2_000_000);
    if !have_ffmpeg() {
        return;
    }
    let path = write_out(&mp4, "precise");
    let probed = ffprobe(&path, false);
    let duration = num(&probed["streams"][0]["duration"]);
    assert!((duration - 2.0).abs() < 0.002, "video duration {duration}");
    let errors = decode_errors(&path);
    assert!(errors.is_empty(), "ffmpeg says:\n{errors}");
    remove(&path);
}

/// `trun` v1 with negative composition offsets: written as `ctts` version 1.
#[test]
fn negative_composition_offsets() {
    check("negative_cto", &[load("negative_cto")], true);
}

/// Chunked CMAF: four `moof`+`mdat` per segment, so four `stsc` chunks per segment.
#[test]
fn chunked_cmaf() {
    for r in ["chunked/video", "chunked/audio"] {
        check(r, &[load(r)], true);
    }
}

#[test]
fn other_codecs() {
    for r in ["av1_opus", "ac3", "eac3"] {
        check(r, &[load(r)], true);
    }
}
