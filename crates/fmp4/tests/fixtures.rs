//! Every fixture in `tests/fixtures/` (made by ffmpeg, see its README.md) parsed with
//! `parse_init` + `parse_segment`, compared sample by sample with what ffprobe
//! reported for the same bytes (`golden.json`, written by `make.sh`).
//!
//! The golden is ffprobe over the init segment followed by every segment of the
//! playlist, with `-ignore_editlist 1` so timestamps are the boxes' own media time.
//! Per stream it lists `[pts, dts, duration, size, key, pos]` per packet.

#[path = "support/fixture.rs"]
mod fixture;

use dvrclip_fmp4::{InitSegment, MediaSegment, TrackKind, parse_init, parse_segment};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A fixture's init and segments, in playlist order.
struct Fixture {
    init: InitSegment,
    segments: Vec<MediaSegment>,
    /// Offset of each segment in the init+segments concatenation ffprobe read.
    starts: Vec<u64>,
}

fn load(dir: &str) -> Fixture {
    let files = fixture::files(dir);
    let mut at = files.init.len() as u64;
    let init = parse_init(files.init).unwrap_or_else(|e| panic!("{dir}: {e}"));
    let (mut segments, mut starts) = (Vec::new(), Vec::new());
    for (name, bytes) in files.segments {
        starts.push(at);
        at += bytes.len() as u64;
        let seg = parse_segment(bytes, &init).unwrap_or_else(|e| panic!("{name}: {e}"));
        segments.push(seg);
    }
    Fixture {
        init,
        segments,
        starts,
    }
}

/// The parsed samples of every track equal ffprobe's packets, field by field.
fn check_golden(dir: &str) -> Fixture {
    let f = load(dir);
    let golden: Value = serde_json::from_slice(
        &std::fs::read(fixture::root().join(dir).join("golden.json")).unwrap(),
    )
    .unwrap();
    let streams = golden["streams"].as_array().unwrap();
    // ffmpeg's mov demuxer numbers streams in `trak` order.
    assert_eq!(streams.len(), f.init.tracks.len(), "{dir}: stream count");
    for (stream, track) in streams.iter().zip(&f.init.tracks) {
        let tb = stream["time_base"].as_str().unwrap();
        assert_eq!(tb, format!("1/{}", track.timescale), "{dir}: time base");
        // (pts, dts, duration, size, key, pos) of every sample of the track.
        let mut ours = Vec::new();
        for (seg, start) in f.segments.iter().zip(&f.starts) {
            for s in seg.track(track.track_id).map_or(&[][..], |t| &t.samples) {
                ours.push([
                    s.presentation_ticks(),
                    s.decode_ticks as i64,
                    i64::from(s.duration),
                    i64::from(s.size),
                    i64::from(s.is_sync),
                    *start as i64 + i64::from(s.offset),
                ]);
            }
        }
        // ffmpeg's mov demuxer adds the most negative composition offset of the track
        // back to every pts (its `dts_shift`), so that pts >= dts; `trun` v1 with
        // negative offsets (the negative_cto fixture) shows it.
        let min_cto = f.segments.iter().filter_map(|s| s.track(track.track_id));
        let min_cto = min_cto
            .flat_map(|t| &t.samples)
            .map(|s| s.composition_offset)
            .min();
        let dts_shift = i64::from(min_cto.unwrap_or(0).min(0)).abs();
        for o in &mut ours {
            o[0] += dts_shift;
        }
        let packets = stream["packets"].as_array().unwrap();
        assert_eq!(
            ours.len(),
            packets.len(),
            "{dir} track {}: sample count",
            track.track_id
        );
        for (i, (o, p)) in ours.iter().zip(packets).enumerate() {
            let p: Vec<Option<i64>> = p.as_array().unwrap().iter().map(Value::as_i64).collect();
            let mut want: Vec<i64> = p.iter().map(|v| v.unwrap_or(-1)).collect();
            if p[2].is_none() {
                // ffprobe leaves out the duration of a packet it hangs AAC priming side
                // data on; the next packet's dts says what it is.
                let next = packets.get(i + 1).and_then(|n| n[1].as_i64());
                want[2] = next.map_or(o[2], |n| n - o[1]);
            }
            if i + 1 == packets.len() && track.kind == TrackKind::Audio {
                // ffmpeg trims the last AAC frame of a stream in `tfhd`'s default
                // duration (512 of 1024 ticks, say); ffprobe reports the frame's full
                // 1024. The box is what we read: it may only be shorter.
                assert!(
                    o[2] <= want[2],
                    "{dir}: last audio duration {} > {}",
                    o[2],
                    want[2]
                );
                want[2] = o[2];
            }
            assert_eq!(
                o[..],
                want[..],
                "{dir} track {} sample {i}: [pts dts dur size key pos]",
                track.track_id
            );
        }
    }
    f
}

fn codecs(f: &Fixture) -> Vec<&str> {
    f.init
        .tracks
        .iter()
        .map(|t| t.entry.codec.as_str())
        .collect()
}

#[test]
fn h264_aac_muxed_two_trafs_with_b_frames() {
    let f = check_golden("h264_aac");
    assert_eq!(codecs(&f), ["avc1.64000d", "mp4a.40.2"]);
    let v = f.init.video_track().unwrap();
    assert_eq!(v.entry.video.map(|v| (v.width, v.height)), Some((320, 180)));
    let a = f.init.audio_track().unwrap();
    assert_eq!(
        a.entry.audio.map(|a| (a.sample_rate, a.channels)),
        Some((48000, 1))
    );
    assert_eq!((v.timescale, a.timescale), (15360, 48000));
    // ffmpeg's `und` language: ISO 639-2/T packed as three 5-bit letters minus 0x60.
    assert_eq!(
        a.language,
        ((b'u' - 0x60) as u16) << 10 | ((b'n' - 0x60) as u16) << 5 | (b'd' - 0x60) as u16
    );
    assert_eq!(v.entry.config[..4], [1, 0x64, 0x00, 0x0d]);
    assert!(
        v.entry
            .stsd
            .starts_with(&[0, 0, 0, v.entry.stsd.len() as u8, b's', b't', b's', b'd'])
    );
    // B-frames: composition offsets vary within the segment.
    let first = &f.segments[0];
    assert_eq!(first.tracks.len(), 2);
    let vs = &first.track(v.track_id).unwrap().samples;
    assert!(
        vs.iter()
            .any(|s| s.composition_offset != vs[0].composition_offset)
    );
    for seg in &f.segments {
        assert!(seg.starts_with_keyframe(Some(v.track_id)));
        // One moof+mdat per segment here; samples stay inside it.
        assert_eq!(seg.mdat_ranges.len(), 1);
        for t in &seg.tracks {
            for s in &t.samples {
                assert!(seg.mdat_ranges[0].start as usize <= s.offset as usize);
                assert!(s.range().end <= seg.mdat_ranges[0].end as usize);
            }
        }
    }
    // decode time runs on from segment to segment.
    let t0 = f.segments[0].track(v.track_id).unwrap();
    let t1 = f.segments[1].track(v.track_id).unwrap();
    assert_eq!(t0.end_decode_ticks(), t1.base_decode_ticks);
}

#[test]
fn edit_lists_are_read() {
    let f = load("h264_aac");
    let v = f.init.video_track().unwrap();
    // ffmpeg: an empty edit for the start delay, then media from the first pts (2
    // B-frames at 512 ticks each).
    assert_eq!(v.edits.len(), 2);
    assert_eq!(v.edits[0].media_time, -1);
    assert_eq!(v.edits[1].media_time, 1024);
    assert_eq!(v.edits[1].media_rate, 1);
}

#[test]
fn hevc() {
    let f = check_golden("hevc");
    assert_eq!(f.init.tracks[0].entry.format.to_string(), "hvc1");
    assert_eq!(codecs(&f), ["hvc1.1.6.L60.90", "mp4a.40.2"]);
}

#[test]
fn audio_only() {
    let f = check_golden("audio_only");
    assert_eq!(codecs(&f), ["mp4a.40.2"]);
    assert!(f.init.video_track().is_none());
    assert!(f.segments.iter().all(|s| s.starts_with_keyframe(None)));
    // The last segment holds one AAC frame whose `tfhd` default duration is trimmed
    // to 512 ticks (checked by hand in a hex dump of seg_002.m4s).
    let last = f.segments.last().unwrap();
    assert_eq!(last.tracks[0].samples.len(), 1);
    assert_eq!(last.tracks[0].samples[0].duration, 512);
}

#[test]
fn video_only() {
    let f = check_golden("video_only");
    // Main profile; x264 also sets constraint_set1_flag (0x40).
    assert_eq!(codecs(&f), ["avc1.4d400d"]);
    assert_eq!(f.init.tracks[0].kind, TrackKind::Video);
}

/// `trun` version 1: "sample_composition_time_offset" is signed (§8.8.8.2), which is
/// where the `mp4` crate goes wrong.
#[test]
fn negative_composition_offsets() {
    let f = check_golden("negative_cto");
    let t = f.init.video_track().unwrap();
    assert!(t.edits.is_empty());
    let samples = &f.segments[0].track(t.track_id).unwrap().samples;
    let ctos: Vec<i32> = samples
        .iter()
        .take(4)
        .map(|s| s.composition_offset)
        .collect();
    assert_eq!(ctos, [0, 1024, -512, -512]);
}

#[test]
fn long_gop_cut_by_time_starts_mid_gop() {
    let f = check_golden("long_gop");
    let v = f.init.video_track().unwrap().track_id;
    let starts: Vec<bool> = f
        .segments
        .iter()
        .map(|s| s.starts_with_keyframe(Some(v)))
        .collect();
    // A keyframe every 4 s, a segment every second.
    assert_eq!(starts.iter().filter(|&&k| k).count(), 2, "{starts:?}");
    assert!(starts[0]);
}

#[test]
fn encoder_restart_has_its_own_init_and_time_restarts() {
    let a = check_golden("restart/a");
    let b = check_golden("restart/b");
    assert_ne!(a.init.bytes, b.init.bytes);
    let va = a.init.video_track().unwrap();
    let vb = b.init.video_track().unwrap();
    assert_eq!(
        vb.entry.video.map(|v| (v.width, v.height)),
        Some((256, 144))
    );
    assert_eq!(
        b.init
            .audio_track()
            .unwrap()
            .entry
            .audio
            .map(|a| a.sample_rate),
        Some(44100)
    );
    let end_a = a
        .segments
        .last()
        .unwrap()
        .track(va.track_id)
        .unwrap()
        .end_decode_ticks();
    let start_b = b.segments[0].track(vb.track_id).unwrap().base_decode_ticks;
    assert_eq!(start_b, 0);
    assert!(end_a > start_b);
}

#[test]
fn av1_and_opus() {
    let f = check_golden("av1_opus");
    assert_eq!(codecs(&f), ["av01.0.00M.08", "opus"]);
    let a = f.init.audio_track().unwrap();
    assert_eq!(
        a.entry.audio.map(|a| (a.sample_rate, a.channels)),
        Some((48000, 1))
    );
}

#[test]
fn ac3_and_eac3() {
    assert_eq!(codecs(&check_golden("ac3")), ["ac-3"]);
    assert_eq!(codecs(&check_golden("eac3")), ["ec-3"]);
}

/// ffmpeg's master playlist names each variant's codecs: an independent oracle for ours.
#[test]
fn ladder_codecs_match_ffmpeg_master_playlist() {
    let master = std::fs::read_to_string(fixture::root().join("ladder/master.m3u8")).unwrap();
    let mut lines = master.lines();
    let mut seen = 0;
    while let Some(l) = lines.next() {
        let Some(attrs) = l.strip_prefix("#EXT-X-STREAM-INF:") else {
            continue;
        };
        let codecs_attr = attrs
            .split("CODECS=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let uri = lines.next().unwrap();
        let dir = uri.trim_end_matches("/index.m3u8");
        let f = check_golden(&format!("ladder/{dir}"));
        assert_eq!(codecs(&f).join(","), codecs_attr, "{dir}");
        let res = attrs
            .split("RESOLUTION=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let v = f.init.video_track().unwrap().entry.video.unwrap();
        assert_eq!(format!("{}x{}", v.width, v.height), res);
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn bench_segment() {
    let f = check_golden("bench_720p");
    assert_eq!(f.segments.len(), 1);
}

/// Low-latency shape: four `moof`+`mdat` pairs per segment, a `sidx` before each.
#[test]
fn chunked_cmaf_several_moofs_per_segment() {
    let v = check_golden("chunked/video");
    check_golden("chunked/audio");
    for seg in &v.segments {
        assert_eq!(seg.mdat_ranges.len(), 4);
        let t = &seg.tracks[0];
        // decode time runs on across the moofs (each tfdt agrees with the sum).
        assert!(
            t.samples
                .windows(2)
                .all(|w| w[1].decode_ticks == w[0].decode_ticks + u64::from(w[0].duration))
        );
        // Each sample lies in the mdat of its own moof, in order.
        let mut last_mdat = 0;
        for s in &t.samples {
            let m = seg
                .mdat_ranges
                .iter()
                .position(|m| m.start <= s.offset && s.offset + s.size <= m.end)
                .unwrap();
            assert!(m >= last_mdat);
            last_mdat = m;
        }
        assert_eq!(last_mdat, 3);
    }
}

/// A fragment whose init is another stream's: ref/api.md "Ingest" answers 412.
#[test]
fn segment_under_the_wrong_init_names_the_unknown_track() {
    let audio = load("audio_only").init;
    let seg = fixture::read(&fixture::root().join("h264_aac/seg_000.m4s"));
    let err = parse_segment(seg, &audio).unwrap_err();
    assert_eq!(*err.kind(), dvrclip_fmp4::ErrorKind::UnknownTrack(2));
    assert_eq!(err.path, "moof/traf/tfhd");
}

/// Every proper prefix of a real init or segment is refused (a box runs past the end,
/// `moov`/`moof` is missing, or samples point past the last `mdat`), never a panic.
#[test]
fn every_truncation_is_an_error() {
    let init_bytes = fixture::read(&fixture::root().join("h264_aac/init.mp4"));
    for n in 0..init_bytes.len() {
        assert!(
            parse_init(init_bytes.slice(..n)).is_err(),
            "init cut at {n}"
        );
    }
    let init = parse_init(init_bytes).unwrap();
    for name in [
        "audio_only/seg_002.m4s",
        "chunked/audio/chunk-stream1-00003.m4s",
    ] {
        let seg = fixture::read(&fixture::root().join(name));
        let init = if name.starts_with("audio_only") {
            load("audio_only").init
        } else {
            load("chunked/audio").init
        };
        for n in 0..seg.len() {
            assert!(
                parse_segment(seg.slice(..n), &init).is_err(),
                "{name} cut at {n}"
            );
        }
    }
    // And a large one, cut inside every box header of its first kilobytes.
    let seg = fixture::read(&fixture::root().join("h264_aac/seg_000.m4s"));
    for n in 0..2000 {
        assert!(parse_segment(seg.slice(..n), &init).is_err(), "cut at {n}");
    }
}

/// Every folder under `tests/fixtures` with a `golden.json`, including ones added later
/// for other crates, parses to exactly what ffprobe saw.
#[test]
fn every_fixture_with_a_golden_matches_ffprobe() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|n| n == "golden.json") {
                out.push(p.parent().unwrap().to_path_buf());
            }
        }
    }
    let mut dirs = Vec::new();
    walk(&fixture::root(), &mut dirs);
    dirs.sort();
    assert!(dirs.len() >= 17, "{dirs:?}");
    for d in dirs {
        let rel = d
            .strip_prefix(fixture::root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        check_golden(&rel);
    }
}

/// What the memory budget counts beside a segment's bytes: its sample tables, held
/// at about their size (the parser reserves each `trun`'s count).
#[test]
fn table_bytes_are_the_sample_tables() {
    let f = load("h264_aac");
    for seg in &f.segments {
        let samples: usize = seg.tracks.iter().map(|t| t.samples.len()).sum();
        let rows = samples * std::mem::size_of::<dvrclip_fmp4::Sample>();
        let t = seg.table_bytes();
        assert!(t >= rows && t < rows + 1024, "{t} for {samples} samples");
        // About a tenth of a 2 s segment of this low-bitrate fixture.
        assert!(t < seg.bytes.len() / 4, "{t} vs {}", seg.bytes.len());
    }
}
