//! The CMAF fragmenter (`dvrclip_fmp4::fragment`) checked from outside:
//!
//! 1. A proptest round trip: arbitrary sample sequences (tracks, timescales, decode
//!    steps, sizes, sync flags, negative composition offsets, refusals, options that
//!    make every cap fire) go in; every fragment parses back with `parse_init` and
//!    `parse_segment` to exactly the samples accepted, and obeys the cutting rules.
//! 2. Real media: ffmpeg's fixtures (`tests/fixtures/`) parsed into elementary
//!    samples, fragmented again, parsed back to the same samples, and read by ffprobe
//!    (`-count_frames -show_streams`) and decoded by `ffmpeg -f null` beside the
//!    source: same codecs, sizes, rates and frame counts, no error. Without ffmpeg
//!    the ffmpeg part fails under CI and is skipped, saying so, elsewhere
//!    (`tests/common/require.rs`). `DVRCLIP_KEEP_FRAGMENTS=1` keeps the written files.

#[path = "support/fixture.rs"]
mod fixture;
#[path = "../../../tests/common/require.rs"]
mod require;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use dvrclip_fmp4::fragment::{
    CodecConfig, CutReason, Fragment, FragmentError, Fragmenter, InputSample, Options, TrackConfig,
};
use dvrclip_fmp4::{InitSegment, MediaSegment, TrackKind, parse_init, parse_segment};
use proptest::prelude::*;
use serde_json::Value;

/// ffmpeg's `avcC` of the h264_aac fixture.
fn fixture_avcc() -> Bytes {
    let init = parse_init(fixture::read(&fixture::root().join("h264_aac/init.mp4"))).unwrap();
    init.video_track().unwrap().entry.config.clone()
}

/// Every fragment parsed against the fragmenter's init, in order.
fn parse_all(init: &InitSegment, fragments: &[Fragment]) -> Vec<MediaSegment> {
    fragments
        .iter()
        .map(|f| {
            let bytes = f.to_bytes();
            assert_eq!(bytes.len(), f.len());
            parse_segment(bytes, init)
                .unwrap_or_else(|e| panic!("fragment {}: {e}", f.sequence_number))
        })
        .collect()
}

// ------------------------------------------------------------------ 1. proptest

#[derive(Clone, Debug)]
struct Case {
    /// Per track: video (H.264) or audio (AAC), and its timescale.
    tracks: Vec<(bool, u32)>,
    target_ms: u64,
    max_factor: u32,
    max_bytes: usize,
    events: Vec<Event>,
}

/// One push: the track (modulo the count), the decode step from the track's last
/// decode time (0 or negative: refused), payload size (0: refused), sync flag,
/// composition offset.
#[derive(Clone, Debug)]
struct Event {
    track: usize,
    step: i64,
    size: usize,
    sync: bool,
    cto: i32,
}

fn event() -> impl Strategy<Value = Event> {
    (
        0..4usize,
        prop_oneof![
            20 => 1..4000i64,
            2 => 4000..200_000i64,
            1 => -3000..=0i64,
        ],
        prop_oneof![10 => 1..300usize, 1 => Just(0usize), 1 => 300..8000usize],
        prop::bool::weighted(0.15),
        prop_oneof![3 => Just(0i32), 2 => -6000..6000i32, 1 => prop::num::i32::ANY],
    )
        .prop_map(|(track, step, size, sync, cto)| Event {
            track,
            step,
            size,
            sync,
            cto,
        })
}

fn case() -> impl Strategy<Value = Case> {
    let track = (
        prop::bool::ANY,
        prop_oneof![
            Just(90_000u32),
            Just(1000),
            Just(48_000),
            Just(15_360),
            Just(7)
        ],
    );
    (
        prop::collection::vec(track, 1..4),
        prop_oneof![Just(2000u64), 1..3000u64],
        1..12u32,
        prop_oneof![Just(32usize << 20), 4096..40_000usize],
        prop::collection::vec(event(), 0..400),
    )
        .prop_map(|(tracks, target_ms, max_factor, max_bytes, events)| Case {
            tracks,
            target_ms,
            max_factor,
            max_bytes,
            events,
        })
}

/// One accepted sample, as the oracle keeps it.
#[derive(Clone, Debug)]
struct Accepted {
    dts: u64,
    cto: i32,
    sync: bool,
    data: Bytes,
}

fn run_case(c: &Case) -> Result<(), TestCaseError> {
    let avcc = fixture_avcc();
    let configs: Vec<TrackConfig> = c
        .tracks
        .iter()
        .map(|&(video, timescale)| {
            let codec = if video {
                CodecConfig::Avc { avcc: avcc.clone() }
            } else {
                CodecConfig::Aac {
                    audio_specific_config: Bytes::from_static(&[0x11, 0x90]),
                }
            };
            TrackConfig::new(timescale, codec)
        })
        .collect();
    let target = Duration::from_millis(c.target_ms);
    let options = Options {
        target_duration: target,
        max_duration: target * c.max_factor,
        max_bytes: c.max_bytes,
    };
    let mut f = Fragmenter::new(configs, options).unwrap();
    let n = c.tracks.len();
    let mut accepted: Vec<Vec<Accepted>> = vec![Vec::new(); n];
    let mut fragments = Vec::new();
    for (counter, e) in c.events.iter().enumerate() {
        let t = e.track % n;
        let video = c.tracks[t].0;
        let last = accepted[t].last().map(|s| s.dts);
        let dts = match last {
            Some(l) => l.saturating_add_signed(e.step),
            None => e.step.unsigned_abs(),
        };
        // A payload unique to this push; video is one NAL unit with its length.
        let mut data = Vec::with_capacity(e.size + 4);
        if video && e.size > 0 {
            data.extend_from_slice(&(e.size as u32).to_be_bytes());
        }
        data.extend((0..e.size).map(|i| (counter + i) as u8));
        let data = Bytes::from(data);
        let sample = InputSample {
            track: t,
            decode_ticks: dts,
            composition_offset: e.cto,
            is_sync: e.sync,
            data: data.clone(),
        };
        // Beside its payload a sample counts 16 to 64 bytes against max_bytes (its
        // `trun` row or its bookkeeping), a fragment 40 and 64 per track: in between,
        // either answer is right.
        let room = c.max_bytes - 40 - 64 * n;
        let too_large = data.len() + 16 > room;
        let maybe_too_large = data.len() + 64 > room;
        let refused_for = if last.is_some_and(|l| dts <= l) {
            Some("not increasing")
        } else if e.size == 0 {
            Some("empty")
        } else if too_large {
            Some("too large")
        } else {
            None
        };
        match (f.push(sample), refused_for) {
            (Ok(out), None) => {
                accepted[t].push(Accepted {
                    dts,
                    cto: e.cto,
                    sync: e.sync,
                    data,
                });
                fragments.extend(out);
            }
            (Err(FragmentError::SampleTooLarge { .. }), None) if maybe_too_large => {}
            (Err(err), Some(why)) => {
                let right = match why {
                    "not increasing" => matches!(err, FragmentError::NotIncreasing { .. }),
                    "empty" => matches!(err, FragmentError::EmptySample { .. }),
                    _ => matches!(err, FragmentError::SampleTooLarge { .. }),
                };
                prop_assert!(right, "{why}: {err}");
            }
            (got, want) => prop_assert!(false, "push gave {got:?}, expected refusal {want:?}"),
        }
        prop_assert!(f.held_bytes() <= 2 * c.max_bytes);
    }
    fragments.extend(f.flush().unwrap());
    prop_assert_eq!(f.held_bytes(), 0);

    let init = parse_init(f.init_segment().clone()).unwrap();
    prop_assert_eq!(init.tracks.len(), n);
    for (t, &(video, timescale)) in init.tracks.iter().zip(&c.tracks) {
        let kind = if video {
            TrackKind::Video
        } else {
            TrackKind::Audio
        };
        prop_assert_eq!((t.kind, t.timescale), (kind, timescale));
    }
    let segments = parse_all(&init, &fragments);
    let reference = c.tracks.iter().position(|t| t.0);
    let timing = reference.unwrap_or(0);

    // Every accepted sample comes back once, in order, with its own bytes.
    let mut got: Vec<Vec<(dvrclip_fmp4::Sample, Bytes, usize)>> = vec![Vec::new(); n];
    for (i, (frag, seg)) in fragments.iter().zip(&segments).enumerate() {
        prop_assert_eq!(frag.sequence_number, i as u32 + 1);
        prop_assert!(frag.len() <= c.max_bytes);
        prop_assert_eq!(frag.tracks.len(), seg.tracks.len());
        for (meta, ts) in frag.tracks.iter().zip(&seg.tracks) {
            prop_assert_eq!(ts.track_id as usize, meta.track + 1);
            prop_assert_eq!(ts.base_decode_ticks, meta.base_decode_ticks);
            prop_assert_eq!(ts.duration_ticks(), meta.duration_ticks);
            prop_assert_eq!(ts.samples.len(), meta.sample_count as usize);
            for s in &ts.samples {
                got[meta.track].push((*s, seg.bytes.slice(s.range()), i));
            }
        }
        prop_assert_eq!(
            frag.starts_with_keyframe,
            seg.starts_with_keyframe(reference.map(|r| r as u32 + 1))
        );
    }
    for t in 0..n {
        let (want, got) = (&accepted[t], &got[t]);
        prop_assert_eq!(want.len(), got.len(), "track {} sample count", t);
        for (k, (w, (s, bytes, frag))) in want.iter().zip(got).enumerate() {
            prop_assert_eq!(
                (s.decode_ticks, s.composition_offset, s.is_sync),
                (w.dts, w.cto, w.sync),
                "track {} sample {}",
                t,
                k
            );
            prop_assert_eq!(bytes, &w.data);
            // A duration is the step to the next sample; across fragments it may
            // instead repeat the previous one (that track stalled, or a flush).
            match want.get(k + 1) {
                Some(next) if got[k + 1].2 == *frag => {
                    prop_assert_eq!(u64::from(s.duration), next.dts - w.dts);
                }
                next => {
                    let step = next.map(|n| n.dts - w.dts);
                    let repeat = k.checked_sub(1).map(|p| got[p].0.duration);
                    prop_assert!(
                        step == Some(u64::from(s.duration)) || repeat == Some(s.duration) || k == 0,
                        "track {} sample {}: duration {}",
                        t,
                        k,
                        s.duration
                    );
                }
            }
        }
    }

    // Cutting: the target is reached at the first reference keyframe (or timing
    // sample) past it, and the caps are never passed inside a fragment.
    let span = |t: usize, from: u64, to: u64, d: Duration| {
        u128::from(to - from) * 1_000_000_000 >= d.as_nanos() * u128::from(c.tracks[t].1)
    };
    for (i, seg) in segments.iter().enumerate() {
        for ts in &seg.tracks {
            let t = ts.track_id as usize - 1;
            let first = ts.samples[0].decode_ticks;
            for (k, s) in ts.samples.iter().enumerate().skip(1) {
                prop_assert!(!span(t, first, s.decode_ticks, options.max_duration));
                let cut_here = match reference {
                    Some(_) => s.is_sync,
                    None => true,
                };
                if t == timing && cut_here {
                    prop_assert!(
                        !span(t, first, s.decode_ticks, target),
                        "fragment {} track {} sample {} should have started a fragment",
                        i,
                        t,
                        k
                    );
                }
            }
        }
        let Some(next) = segments.get(i + 1) else {
            prop_assert_eq!(fragments[i].ended_by, CutReason::Flush);
            continue;
        };
        let first = |seg: &MediaSegment, t: usize| seg.track(t as u32 + 1).map(|ts| ts.samples[0]);
        match fragments[i].ended_by {
            CutReason::Keyframe | CutReason::Target => {
                prop_assert_eq!(
                    fragments[i].ended_by == CutReason::Keyframe,
                    reference.is_some()
                );
                let (a, b) = (first(seg, timing).unwrap(), first(next, timing).unwrap());
                prop_assert!(span(timing, a.decode_ticks, b.decode_ticks, target));
                prop_assert!(reference.is_none() || b.is_sync);
            }
            CutReason::MaxDuration => {
                let passed = (0..n).any(|t| match (first(seg, t), first(next, t)) {
                    (Some(a), Some(b)) => {
                        span(t, a.decode_ticks, b.decode_ticks, options.max_duration)
                    }
                    _ => false,
                });
                prop_assert!(passed, "fragment {} cut on max_duration early", i);
            }
            CutReason::MaxBytes => {}
            CutReason::Flush => prop_assert!(false, "a flush before the end"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_samples_round_trip_through_the_parser(c in case()) {
        run_case(&c)?;
    }
}

// --------------------------------------------------------------- 2. real media

/// Whether the ffmpeg oracle runs: under CI a missing ffmpeg fails the test,
/// elsewhere that part is skipped, saying so ([`require::require`]).
fn have_ffmpeg() -> bool {
    require::require_tool("ffprobe") && require::require_tool("ffmpeg")
}

/// A fixture's init and segments, in playlist order.
fn load(dir: &str) -> (InitSegment, Vec<MediaSegment>, Vec<u8>) {
    let files = fixture::files(dir);
    let mut concat = files.init.to_vec();
    let init = parse_init(files.init).unwrap();
    let segments = files
        .segments
        .into_iter()
        .map(|(_, bytes)| {
            concat.extend_from_slice(&bytes);
            parse_segment(bytes, &init).unwrap()
        })
        .collect();
    (init, segments, concat)
}

/// The AudioSpecificConfig inside an `esds` body as ffmpeg writes it: version and
/// flags, then descriptors 0x03 (ES, no optional fields) > 0x04 (13 fixed bytes) > 0x05.
fn asc_from_esds(esds: &Bytes) -> Bytes {
    fn descriptor(d: &mut &[u8], tag: u8) -> std::ops::Range<usize> {
        assert_eq!(d[0], tag, "esds descriptor tag");
        let (mut len, mut i) = (0usize, 1);
        loop {
            let b = d[i];
            i += 1;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        let r = i..i + len;
        *d = &d[r.clone()];
        r
    }
    let all = &esds[..];
    let mut d = &all[4..];
    descriptor(&mut d, 0x03);
    assert_eq!(d[2], 0, "ES_Descriptor without optional fields");
    d = &d[3..];
    descriptor(&mut d, 0x04);
    d = &d[13..];
    descriptor(&mut d, 0x05);
    let start = d.as_ptr() as usize - all.as_ptr() as usize;
    esds.slice(start..start + d.len())
}

/// The source's tracks this fragmenter takes, as configurations, with their ids.
fn configs(init: &InitSegment) -> Vec<(u32, TrackConfig)> {
    let mut out = Vec::new();
    for t in &init.tracks {
        let e = &t.entry;
        let codec = match &e.format.0 {
            b"avc1" => CodecConfig::Avc {
                avcc: e.config.clone(),
            },
            b"hvc1" => CodecConfig::Hevc {
                hvcc: e.config.clone(),
            },
            b"mp4a" => CodecConfig::Aac {
                audio_specific_config: asc_from_esds(&e.config),
            },
            b"Opus" => CodecConfig::Opus {
                dops: e.config.clone(),
            },
            _ => continue,
        };
        out.push((
            t.track_id,
            TrackConfig {
                timescale: t.timescale,
                codec,
                language: t.language,
            },
        ));
    }
    out
}

/// The source's samples as a door would hand them over: every track's samples in
/// decode order, tracks interleaved by decode time in seconds.
fn samples(init: &InitSegment, segments: &[MediaSegment], ids: &[u32]) -> Vec<InputSample> {
    let mut all: Vec<(u128, usize, InputSample)> = Vec::new();
    for seg in segments {
        for (track, &id) in ids.iter().enumerate() {
            let Some(ts) = seg.track(id) else { continue };
            let timescale = u128::from(init.track(id).unwrap().timescale);
            for s in &ts.samples {
                // Seconds as a fraction over all timescales: ticks * 10^9 / timescale.
                let at = u128::from(s.decode_ticks) * 1_000_000_000 / timescale;
                all.push((
                    at,
                    track,
                    InputSample {
                        track,
                        decode_ticks: s.decode_ticks,
                        composition_offset: s.composition_offset,
                        is_sync: s.is_sync,
                        data: seg.bytes.slice(s.range()),
                    },
                ));
            }
        }
    }
    all.sort_by_key(|(at, track, _)| (*at, *track));
    all.into_iter().map(|(_, _, s)| s).collect()
}

fn ffprobe_streams(path: &Path) -> (Vec<Value>, String) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["streams"].as_array().unwrap().clone(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ffmpeg -v error -i FILE -f null -`: every packet demuxed and decoded; what it
/// printed (nothing when all is well).
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg -f null {} failed",
        path.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The fields of a probed stream that must match the source's.
fn summary(s: &Value) -> Vec<(&'static str, String)> {
    let keys = [
        "codec_type",
        "codec_name",
        "profile",
        "width",
        "height",
        "pix_fmt",
        "sample_rate",
        "channels",
        "nb_read_frames",
    ];
    keys.iter()
        .filter(|k| !s[**k].is_null())
        .map(|k| (*k, s[*k].to_string().trim_matches('"').to_string()))
        .collect()
}

/// Fragments `dir` again, parses the result back, writes it out and holds ffprobe's
/// and ffmpeg's view of it against the source's.
fn refragment(dir: &str) {
    let (src_init, src_segments, src_concat) = load(dir);
    let tracks = configs(&src_init);
    let ids: Vec<u32> = tracks.iter().map(|t| t.0).collect();
    let configs: Vec<TrackConfig> = tracks.into_iter().map(|t| t.1).collect();
    let input = samples(&src_init, &src_segments, &ids);
    let count = input.len();

    let mut f = Fragmenter::new(configs, Options::default()).unwrap();
    let mut fragments = Vec::new();
    for s in input {
        fragments.extend(f.push(s).unwrap());
    }
    fragments.extend(f.flush().unwrap());

    // Our parser gives back the source's samples: times, offsets, flags, bytes, and
    // durations (all but each track's last, which repeats the one before).
    let init = parse_init(f.init_segment().clone()).unwrap();
    for (ours, &id) in init.tracks.iter().zip(&ids) {
        // Codec strings, rates and the picture size (from the SPS) as the source's.
        let src = &src_init.track(id).unwrap().entry;
        let e = &ours.entry;
        assert_eq!(
            (&e.codec, e.video, e.audio),
            (&src.codec, src.video, src.audio),
            "{dir}"
        );
        // Records verbatim; an esds is ours (its bitrates unknown), its ASC the source's.
        if &e.format.0 == b"mp4a" {
            assert_eq!(
                asc_from_esds(&e.config),
                asc_from_esds(&src.config),
                "{dir}"
            );
        } else {
            assert_eq!(e.config, src.config, "{dir}: configuration record");
        }
    }
    let segments = parse_all(&init, &fragments);
    let reference = f.reference_track();
    let mut back = 0;
    for (track, &id) in ids.iter().enumerate() {
        let src: Vec<(dvrclip_fmp4::Sample, Bytes)> = src_segments
            .iter()
            .filter_map(|s| s.track(id).map(|t| (s, t)))
            .flat_map(|(s, t)| t.samples.iter().map(|x| (*x, s.bytes.slice(x.range()))))
            .collect();
        let ours: Vec<(dvrclip_fmp4::Sample, Bytes)> = segments
            .iter()
            .filter_map(|s| s.track(track as u32 + 1).map(|t| (s, t)))
            .flat_map(|(s, t)| t.samples.iter().map(|x| (*x, s.bytes.slice(x.range()))))
            .collect();
        assert_eq!(ours.len(), src.len(), "{dir} track {id}: sample count");
        for (k, ((o, ob), (s, sb))) in ours.iter().zip(&src).enumerate() {
            let last = k + 1 == src.len();
            assert_eq!(
                (o.decode_ticks, o.composition_offset, o.is_sync, o.size),
                (s.decode_ticks, s.composition_offset, s.is_sync, s.size),
                "{dir} track {id} sample {k}"
            );
            assert_eq!(ob, sb, "{dir} track {id} sample {k}: bytes");
            if !last {
                assert_eq!(
                    o.duration, s.duration,
                    "{dir} track {id} sample {k}: duration"
                );
            }
        }
        back += ours.len();
    }
    assert_eq!(back, count);
    // Each fragment but the last runs at least the 2 s target and starts on a keyframe.
    for (i, frag) in fragments.iter().enumerate() {
        assert!(frag.starts_with_keyframe, "{dir} fragment {i}");
        if let (Some(r), false) = (reference, i + 1 == fragments.len()) {
            assert_eq!(frag.ended_by, CutReason::Keyframe, "{dir} fragment {i}");
            let t = frag.tracks.iter().find(|t| t.track == r).unwrap();
            let ts = init.tracks[r].timescale;
            assert!(
                t.duration_ticks >= 2 * u64::from(ts),
                "{dir} fragment {i}: {t:?}"
            );
        }
    }

    if !have_ffmpeg() {
        return;
    }
    // Written out as a folder of HLS files and as one fragmented MP4.
    let out = std::env::temp_dir().join(format!(
        "dvrclip-fragment-{}-{}",
        std::process::id(),
        dir.replace('/', "_")
    ));
    std::fs::create_dir_all(&out).unwrap();
    let mut file = f.init_segment().to_vec();
    std::fs::write(out.join("init.mp4"), f.init_segment()).unwrap();
    for (i, frag) in fragments.iter().enumerate() {
        std::fs::write(out.join(format!("seg_{i:03}.m4s")), frag.to_bytes()).unwrap();
        for p in frag.pieces() {
            file.extend_from_slice(p);
        }
    }
    let ours = out.join("out.mp4");
    std::fs::write(&ours, &file).unwrap();
    let source = out.join("source.mp4");
    std::fs::write(&source, &src_concat).unwrap();

    let (ours_probe, stderr) = ffprobe_streams(&ours);
    assert!(stderr.is_empty(), "{dir}: ffprobe says:\n{stderr}");
    let (src_probe, _) = ffprobe_streams(&source);
    // The source's streams this fragmenter took (AV1 is not one of them).
    let src_probe: Vec<&Value> = src_probe
        .iter()
        .filter(|s| {
            let name = s["codec_name"].as_str().unwrap_or("");
            matches!(name, "h264" | "hevc" | "aac" | "opus")
        })
        .collect();
    assert_eq!(ours_probe.len(), src_probe.len(), "{dir}: stream count");
    for (o, s) in ours_probe.iter().zip(&src_probe) {
        let (o, s) = (summary(o), summary(s));
        assert_eq!(o, s, "{dir}: ffprobe stream");
        eprintln!(
            "{dir}: {}",
            o.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let errors = decode_errors(&ours);
    assert!(errors.is_empty(), "{dir}: ffmpeg -f null says:\n{errors}");

    if std::env::var_os("DVRCLIP_KEEP_FRAGMENTS").is_some() {
        eprintln!("kept {}", out.display());
    } else {
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn h264_aac_with_b_frames() {
    refragment("h264_aac");
}

#[test]
fn hevc_aac() {
    refragment("hevc");
}

#[test]
fn video_only() {
    refragment("video_only");
}

#[test]
fn audio_only() {
    refragment("audio_only");
}

#[test]
fn negative_composition_offsets() {
    refragment("negative_cto");
}

#[test]
fn long_gop_cuts_at_the_keyframes() {
    refragment("long_gop");
}

#[test]
fn ladder_renditions() {
    for r in [
        "ladder/media_1_144",
        "ladder/media_2_180",
        "ladder/media_3_240",
    ] {
        refragment(r);
    }
}

#[test]
fn opus_beside_av1() {
    refragment("av1_opus");
}
