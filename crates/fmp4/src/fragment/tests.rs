//! Unit tests of the fragmenter: box fields against ISO/IEC 14496-12 §8.8, read with
//! the crate's own box walker; cut and duration rules on hand-made timelines; every
//! refusal. Round trips over arbitrary input and the ffmpeg fixtures are in
//! `tests/fragment.rs`.

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::reader::{BoxRef, Boxes};
use crate::{TrackKind, parse_init, parse_segment};

/// ffmpeg's `avcC` of the h264_aac fixture (High, 320x180).
fn avcc() -> Bytes {
    let init = include_bytes!("../../../../tests/fixtures/h264_aac/init.mp4");
    let init = parse_init(Bytes::from_static(init)).unwrap();
    init.video_track().unwrap().entry.config.clone()
}

/// AAC-LC, 48 kHz, stereo.
const ASC: [u8; 2] = [0x11, 0x90];

fn video() -> TrackConfig {
    TrackConfig::new(90_000, CodecConfig::Avc { avcc: avcc() })
}

fn aac() -> TrackConfig {
    TrackConfig::new(
        48_000,
        CodecConfig::Aac {
            audio_specific_config: Bytes::from_static(&ASC),
        },
    )
}

/// One NAL unit of `n` bytes with a 4-byte length prefix.
fn nal(n: usize) -> Bytes {
    let mut b = (n as u32).to_be_bytes().to_vec();
    b.extend((0..n).map(|i| i as u8));
    b.into()
}

fn v(dts: u64, cto: i32, sync: bool) -> InputSample {
    InputSample {
        track: 0,
        decode_ticks: dts,
        composition_offset: cto,
        is_sync: sync,
        data: nal(20),
    }
}

fn a(track: usize, dts: u64) -> InputSample {
    InputSample {
        track,
        decode_ticks: dts,
        composition_offset: 0,
        is_sync: true,
        data: Bytes::from_static(&[0x21, 0x10, 0x04, 0x60]),
    }
}

fn one_second() -> Options {
    Options::with_target(Duration::from_secs(1))
}

fn push_all(f: &mut Fragmenter, samples: impl IntoIterator<Item = InputSample>) -> Vec<Fragment> {
    let mut out = Vec::new();
    for s in samples {
        out.extend(f.push(s).unwrap());
    }
    out
}

fn child(data: &[u8], parent: BoxRef, typ: &[u8; 4]) -> BoxRef {
    parent.find(data, typ).unwrap().unwrap()
}

fn top(data: &[u8], typ: &[u8; 4]) -> BoxRef {
    Boxes::top(data)
        .map(Result::unwrap)
        .find(|b| b.typ.0 == *typ)
        .unwrap()
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

/// Video at 30 fps (3000 ticks), a keyframe every `gop` frames, `frames` frames;
/// with `audio`, 48 kHz AAC frames interleaved by decode time.
fn timeline(frames: u64, gop: u64, audio: bool) -> Vec<InputSample> {
    let mut out: Vec<(f64, InputSample)> = (0..frames)
        .map(|i| (i as f64 / 30.0, v(i * 3000, 0, i % gop == 0)))
        .collect();
    if audio {
        let n = frames * 48_000 / 30 / 1024;
        out.extend((0..n).map(|i| (i as f64 * 1024.0 / 48_000.0, a(1, i * 1024))));
    }
    out.sort_by(|x, y| x.0.total_cmp(&y.0));
    out.into_iter().map(|(_, s)| s).collect()
}

#[test]
fn init_declares_each_track_as_the_parser_reads_it() {
    let f = Fragmenter::new(vec![video(), aac()], Options::default()).unwrap();
    let bytes = f.init_segment().clone();
    let init = parse_init(bytes.clone()).unwrap();
    assert_eq!(init.tracks.len(), 2);
    let (vt, at) = (&init.tracks[0], &init.tracks[1]);
    assert_eq!(
        (vt.track_id, vt.kind, vt.timescale),
        (1, TrackKind::Video, 90_000)
    );
    assert_eq!(vt.entry.codec, "avc1.64000d");
    assert_eq!(vt.entry.config, avcc());
    assert_eq!(
        vt.entry.video.map(|v| (v.width, v.height)),
        Some((320, 180))
    );
    assert_eq!(
        (at.track_id, at.kind, at.timescale),
        (2, TrackKind::Audio, 48_000)
    );
    assert_eq!(at.entry.codec, "mp4a.40.2");
    assert_eq!(
        at.entry.audio.map(|a| (a.sample_rate, a.channels)),
        Some((48_000, 2))
    );
    assert_eq!(vt.language, LANGUAGE_UNDETERMINED);
    // §8.8.3: a trex per track; description 1.
    assert_eq!(vt.defaults.sample_description_index, 1);
    assert_eq!(at.defaults.sample_description_index, 1);
    // Muxed: not declared CMAF; `iso6` major brand.
    let ftyp = top(&bytes, b"ftyp");
    let brands = &bytes[ftyp.body..ftyp.end];
    assert_eq!(&brands[..4], b"iso6");
    assert!(!brands.chunks(4).any(|b| b == b"cmfc"));
    // §8.8.1: the `moov` tables are empty.
    let moov = top(&bytes, b"moov");
    let stbl = child(&bytes, moov, b"trak");
    let stbl = child(&bytes, stbl, b"mdia");
    let stbl = child(&bytes, stbl, b"minf");
    let stbl = child(&bytes, stbl, b"stbl");
    for t in [b"stts", b"stsc", b"stco"] {
        assert_eq!(be32(&bytes, child(&bytes, stbl, t).body + 4), 0, "{t:?}");
    }
    assert!(moov.find(&bytes, b"mvex").unwrap().is_some());

    let single = Fragmenter::new(vec![aac()], Options::default()).unwrap();
    let bytes = single.init_segment();
    let ftyp = top(bytes, b"ftyp");
    assert!(bytes[ftyp.body..ftyp.end].chunks(4).any(|b| b == b"cmfc"));
}

#[test]
fn opus_id_header_becomes_dops() {
    // RFC 7845 §5.1: "OpusHead", version 1, 2 channels, pre-skip 312, 48 kHz input,
    // gain 0, family 0 — little-endian.
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
    let c = CodecConfig::opus_from_id_header(&head).unwrap();
    // Opus in ISOBMFF §4.3.2: the same fields, big-endian, version 0.
    let want = [0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0];
    assert_eq!(
        c,
        CodecConfig::Opus {
            dops: Bytes::copy_from_slice(&want)
        }
    );
    let f = Fragmenter::new(vec![TrackConfig::new(48_000, c)], Options::default()).unwrap();
    let init = parse_init(f.init_segment().clone()).unwrap();
    let e = &init.tracks[0].entry;
    assert_eq!((e.format.0, e.codec.as_str()), (*b"Opus", "opus"));
    assert_eq!(&e.config[..], &want);
    assert_eq!(
        e.audio.map(|a| (a.sample_rate, a.channels)),
        Some((48_000, 2))
    );

    // Family 1 carries a table: stream count, coupled count, one byte per channel.
    let mut head6 = b"OpusHead".to_vec();
    head6.extend_from_slice(&[
        1, 6, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 1, 4, 2, 0, 4, 1, 2, 3, 5,
    ]);
    let CodecConfig::Opus { dops } = CodecConfig::opus_from_id_header(&head6).unwrap() else {
        unreachable!()
    };
    assert_eq!(dops.len(), 11 + 2 + 6);
    for bad in [
        &head[..18],
        b"OpusTags\x01\x02\x38\x01\x80\xbb\0\0\0\0\0",
        &head6[..22],
    ] {
        assert!(matches!(
            CodecConfig::opus_from_id_header(bad),
            Err(FragmentError::BadOpusHeader(_))
        ));
    }
}

/// §8.8.7.1 `default-base-is-moof`, §8.8.12 `tfdt` v1, §8.8.8 `trun` fields and
/// data offsets, §8.8.3.1 sample flags: read field by field.
#[test]
fn fragment_boxes_follow_8_8() {
    let mut f = Fragmenter::new(vec![video(), aac()], one_second()).unwrap();
    let mut samples = vec![
        v(0, 6000, true),
        a(1, 0),
        v(3000, -3000, false),
        a(1, 1024),
        v(6000, 0, false),
    ];
    samples.push(v(90_000, 0, true));
    samples.push(a(1, 2048));
    let out = push_all(&mut f, samples);
    assert_eq!(out.len(), 1);
    let frag = &out[0];
    assert_eq!(frag.sequence_number, 1);
    assert!(frag.starts_with_keyframe);
    assert_eq!(frag.ended_by, CutReason::Keyframe);
    let bytes = frag.to_bytes();
    assert_eq!(bytes.len(), frag.len());
    let d = &bytes[..];

    let moof = top(d, b"moof");
    assert_eq!(moof.start, 0);
    let mdat = top(d, b"mdat");
    assert_eq!(be32(d, child(d, moof, b"mfhd").body + 4), 1);
    let trafs: Vec<BoxRef> = moof
        .children(d, 0)
        .map(Result::unwrap)
        .filter(|b| b.typ.0 == *b"traf")
        .collect();
    assert_eq!(trafs.len(), 2);

    let mut data_at = mdat.body;
    for (i, traf) in trafs.iter().enumerate() {
        let tfhd = child(d, *traf, b"tfhd");
        // "default-base-is-moof ... the base-data-offset for this track fragment is
        // the position of the first byte of the enclosing MovieFragmentBox".
        assert_eq!(be32(d, tfhd.body), 0x0002_0000);
        assert_eq!(be32(d, tfhd.body + 4), i as u32 + 1);
        let tfdt = child(d, *traf, b"tfdt");
        assert_eq!(d[tfdt.body], 1, "tfdt version 1");
        assert_eq!(&d[tfdt.body + 4..tfdt.end], &[0; 8]);
        let trun = child(d, *traf, b"trun");
        let vf = be32(d, trun.body);
        let count = be32(d, trun.body + 4) as usize;
        let offset = be32(d, trun.body + 8) as usize;
        // data_offset counts from the moof's first byte to the run's first sample.
        assert_eq!(offset, data_at - moof.start);
        if i == 0 {
            // A negative offset: version 1; all four per-sample fields.
            assert_eq!(vf, 0x0100_0f01);
            assert_eq!(count, 3);
            let rows: Vec<[u32; 4]> = (0..3)
                .map(|k| {
                    let at = trun.body + 12 + 16 * k;
                    [
                        be32(d, at),
                        be32(d, at + 4),
                        be32(d, at + 8),
                        be32(d, at + 12),
                    ]
                })
                .collect();
            assert_eq!(
                rows,
                [
                    [3000, 24, 0x0200_0000, 6000],
                    [3000, 24, 0x0101_0000, (-3000i32) as u32],
                    // Its duration is the next keyframe's decode time minus its own.
                    [84_000, 24, 0x0101_0000, 0],
                ]
            );
            assert_eq!(&d[data_at..data_at + 24], &nal(20)[..]);
        } else {
            // No composition offsets: version 0, no offset column.
            assert_eq!(vf, 0x0000_0701);
            assert_eq!(count, 2);
            assert_eq!(be32(d, trun.body + 12), 1024);
            assert_eq!(&d[data_at..data_at + 4], &[0x21, 0x10, 0x04, 0x60]);
        }
        data_at += if i == 0 { 72 } else { 8 };
    }
    assert_eq!(data_at, mdat.end);
    assert_eq!(mdat.end, d.len());
}

#[test]
fn pieces_share_the_input_bytes() {
    let mut f = Fragmenter::new(vec![video()], one_second()).unwrap();
    let payload = nal(1000);
    let s = |dts, sync| InputSample {
        data: payload.clone(),
        ..v(dts, 0, sync)
    };
    let out = push_all(&mut f, [s(0, true), s(3000, false), s(90_000, true)]);
    let pieces = out[0].pieces();
    assert_eq!(pieces.len(), 3);
    for p in &pieces[1..] {
        assert_eq!(
            p.as_ptr(),
            payload.as_ptr(),
            "a sample's bytes are not copied"
        );
    }
    assert_eq!(out[0].len(), pieces.iter().map(Bytes::len).sum::<usize>());
}

#[test]
fn keyframe_cuts_wait_for_the_audio_frame_that_ends_them() {
    let mut f = Fragmenter::new(vec![video(), aac()], one_second()).unwrap();
    // GOP of 30 frames (1 s) and 3 s of media: cuts at the keyframes at 1 s and 2 s.
    let samples = timeline(90, 30, true);
    let mut fragments = Vec::new();
    for s in samples {
        let (track, dts) = (s.track, s.decode_ticks);
        let out = f.push(s).unwrap();
        if let Some(first) = out.first() {
            // Emitted by the first audio frame after the keyframe, not the keyframe.
            assert_eq!(track, 1, "emitted on track {track} at {dts}");
            let cut_video = first.tracks[0].base_decode_ticks + first.tracks[0].duration_ticks;
            assert_eq!(cut_video % 90_000, 0);
        }
        fragments.extend(out);
    }
    assert!(f.held_bytes() > 0);
    fragments.extend(f.flush().unwrap());
    assert_eq!(f.held_bytes(), 0);
    let init = parse_init(f.init_segment().clone()).unwrap();
    let mut audio_end = None;
    for (i, frag) in fragments.iter().enumerate() {
        assert_eq!(frag.sequence_number, i as u32 + 1);
        assert!(frag.starts_with_keyframe);
        let seg = parse_segment(frag.to_bytes(), &init).unwrap();
        let v = seg.track(1).unwrap();
        assert_eq!(v.samples.len(), 30);
        assert_eq!(v.base_decode_ticks, i as u64 * 90_000);
        let a = seg.track(2).unwrap();
        // Audio runs on from where the previous fragment's ended (no gap, no overlap).
        if let Some(end) = audio_end {
            assert_eq!(a.base_decode_ticks, end);
        }
        assert!(a.samples.iter().all(|s| s.duration == 1024));
        audio_end = Some(a.end_decode_ticks());
    }
    assert_eq!(
        fragments.iter().map(|f| f.ended_by).collect::<Vec<_>>(),
        [CutReason::Keyframe, CutReason::Keyframe, CutReason::Flush]
    );
}

#[test]
fn a_track_that_stops_gets_its_duration_repeated_at_the_next_cut() {
    let mut f = Fragmenter::new(vec![video(), aac()], one_second()).unwrap();
    // Audio for half a second only.
    let mut samples = timeline(90, 30, false);
    let audio: Vec<InputSample> = (0..20).map(|i| a(1, i * 1024)).collect();
    samples.splice(1..1, audio);
    let mut got = Vec::new();
    for s in samples {
        let out = f.push(s).unwrap();
        got.push(out.len());
        let init = parse_init(f.init_segment().clone()).unwrap();
        for frag in &out {
            let seg = parse_segment(frag.to_bytes(), &init).unwrap();
            if let Some(a) = seg.track(2) {
                // The last frame repeats the one before.
                assert_eq!(a.samples.last().unwrap().duration, 1024);
            }
        }
    }
    // The first cut (1 s) waits; the second (2 s) writes it and then its own, which
    // has no audio to wait for.
    assert_eq!(got.iter().filter(|&&n| n > 0).collect::<Vec<_>>(), [&2]);
}

#[test]
fn the_target_is_a_minimum_the_keyframe_decides() {
    // GOP 45 frames (1.5 s), target 1 s: each fragment runs to the next keyframe.
    let mut f = Fragmenter::new(vec![video()], one_second()).unwrap();
    let mut out = push_all(&mut f, timeline(135, 45, false));
    out.extend(f.flush().unwrap());
    let counts: Vec<u32> = out.iter().map(|f| f.tracks[0].sample_count).collect();
    assert_eq!(counts, [45, 45, 45]);
    // Frames before the first keyframe (a join mid-GOP) make a first fragment that
    // does not start with one.
    let mut f = Fragmenter::new(vec![video()], one_second()).unwrap();
    let mut s = timeline(70, 30, false);
    s[0].is_sync = false;
    let out = push_all(&mut f, s);
    assert!(!out[0].starts_with_keyframe);
    assert!(out[1..].iter().all(|f| f.starts_with_keyframe));
}

#[test]
fn without_keyframes_the_hard_caps_cut() {
    let opts = Options {
        target_duration: Duration::from_secs(1),
        max_duration: Duration::from_secs(3),
        max_bytes: 1 << 20,
    };
    let mut f = Fragmenter::new(vec![video(), aac()], opts).unwrap();
    let mut samples = timeline(300, 1000, true);
    samples[0].is_sync = true;
    let out = push_all(&mut f, samples);
    assert!(!out.is_empty());
    for frag in &out {
        assert_eq!(frag.ended_by, CutReason::MaxDuration);
        // The cap is reached by one track or the other; neither passes it.
        for t in &frag.tracks {
            let ts = if t.track == 0 { 90_000 } else { 48_000 };
            assert!(t.duration_ticks <= 3 * ts + 3000, "{t:?}");
        }
    }
    assert!(out[1..].iter().all(|f| !f.starts_with_keyframe));

    let opts = Options {
        max_bytes: 8192,
        ..one_second()
    };
    let mut f = Fragmenter::new(vec![video()], opts).unwrap();
    let big = |dts| InputSample {
        data: nal(1000),
        ..v(dts, 0, dts == 0)
    };
    let out = push_all(&mut f, (0..40).map(|i| big(i * 3000)));
    assert!(out.len() >= 4);
    for frag in &out {
        assert_eq!(frag.ended_by, CutReason::MaxBytes);
        assert!(frag.len() <= 8192);
    }
    assert!(f.held_bytes() <= 2 * 8192);
}

#[test]
fn audio_only_cuts_on_the_target() {
    let mut f = Fragmenter::new(vec![aac()], Options::default()).unwrap();
    let mut out = push_all(&mut f, (0..300).map(|i| a(0, i * 1024)));
    out.extend(f.flush().unwrap());
    let counts: Vec<u32> = out.iter().map(|f| f.tracks[0].sample_count).collect();
    // 2 s is 93.75 frames: each fragment ends at the first frame at or past it.
    assert_eq!(counts, [94, 94, 94, 18]);
    assert!(out.iter().all(|f| f.starts_with_keyframe));
    assert_eq!(out[0].ended_by, CutReason::Target);
}

#[test]
fn flush_repeats_durations_and_the_stream_may_go_on() {
    let mut f = Fragmenter::new(vec![video(), aac()], one_second()).unwrap();
    push_all(
        &mut f,
        [v(0, 0, true), a(1, 0), v(3000, 0, false), v(7000, 0, false)],
    );
    let out = f.flush().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ended_by, CutReason::Flush);
    let init = parse_init(f.init_segment().clone()).unwrap();
    let seg = parse_segment(out[0].to_bytes(), &init).unwrap();
    let durations: Vec<u32> = seg
        .track(1)
        .unwrap()
        .samples
        .iter()
        .map(|s| s.duration)
        .collect();
    // The last repeats the previous (4000); audio had one frame: 1024 at 48 kHz.
    assert_eq!(durations, [3000, 4000, 4000]);
    assert_eq!(seg.track(2).unwrap().samples[0].duration, 1024);
    assert!(f.flush().unwrap().is_empty());
    // Afterwards: a new fragment, times still checked against the last ones.
    assert!(matches!(
        f.push(v(7000, 0, true)),
        Err(FragmentError::NotIncreasing { .. })
    ));
    push_all(&mut f, [v(9000, 0, true)]);
    let out = f.flush().unwrap();
    assert_eq!(out[0].sequence_number, 2);
    assert_eq!(out[0].tracks[0].base_decode_ticks, 9000);
    // A video track's only frame lasts 1/30 s.
    let mut f = Fragmenter::new(vec![video()], one_second()).unwrap();
    push_all(&mut f, [v(0, 0, true)]);
    assert_eq!(f.flush().unwrap()[0].tracks[0].duration_ticks, 3000);
}

#[test]
fn refused_samples_change_nothing() {
    let opts = Options {
        max_bytes: 8192,
        ..one_second()
    };
    let run = |refused: &[InputSample]| {
        let mut f = Fragmenter::new(vec![video(), aac()], opts).unwrap();
        let mut out = Vec::new();
        for (i, s) in timeline(70, 30, true).into_iter().enumerate() {
            if i == 10 {
                for r in refused {
                    assert!(f.push(r.clone()).is_err(), "{r:?}");
                }
            }
            out.extend(f.push(s).unwrap());
        }
        out.extend(f.flush().unwrap());
        out.iter().map(Fragment::to_bytes).collect::<Vec<_>>()
    };
    let clean = run(&[]);
    let mut errors = Vec::new();
    let mut check = |s: InputSample, want: fn(&FragmentError) -> bool| {
        let mut f = Fragmenter::new(vec![video(), aac()], opts).unwrap();
        f.push(v(3000, 0, true)).unwrap();
        f.push(a(1, 1024)).unwrap();
        let e = f.push(s).unwrap_err();
        assert!(want(&e), "{e}");
        errors.push(e.to_string());
    };
    check(v(3000, 0, true), |e| {
        matches!(
            e,
            FragmentError::NotIncreasing {
                track: 0,
                previous_ticks: 3000,
                decode_ticks: 3000
            }
        )
    });
    check(a(1, 1000), |e| {
        matches!(e, FragmentError::NotIncreasing { track: 1, .. })
    });
    check(v(3000 + (1 << 32), 0, true), |e| {
        matches!(e, FragmentError::GapTooLong { .. })
    });
    check(v(MAX_DECODE_TICKS + 1, 0, true), |e| {
        matches!(e, FragmentError::DecodeTimeTooLarge { .. })
    });
    check(a(2, 5000), |e| {
        matches!(e, FragmentError::UnknownTrack { track: 2 })
    });
    let empty = InputSample {
        data: Bytes::new(),
        ..a(1, 9000)
    };
    check(empty.clone(), |e| {
        matches!(e, FragmentError::EmptySample { .. })
    });
    let large = InputSample {
        data: nal(9000),
        ..v(9000, 0, false)
    };
    check(large.clone(), |e| {
        matches!(e, FragmentError::SampleTooLarge { size: 9004, .. })
    });
    // A length prefix that claims more than is there, and one cut short.
    let mut past = nal(20).to_vec();
    past.extend_from_slice(&[0, 0, 0, 9, 1]);
    let past = InputSample {
        data: past.into(),
        ..v(9000, 0, false)
    };
    check(past.clone(), |e| {
        matches!(e, FragmentError::BadNalUnits { at: 24, .. })
    });
    let short = InputSample {
        data: Bytes::from_static(&[0, 0]),
        ..v(9000, 0, false)
    };
    check(short.clone(), |e| {
        matches!(e, FragmentError::BadNalUnits { at: 0, .. })
    });
    assert!(errors.iter().all(|e| e.contains("track")), "{errors:?}");

    // The same refusals in the middle of a stream leave its output byte for byte the
    // same.
    // Past the decode times at that point, but not too far: refused for their own faults.
    let far = 1 << 20;
    let refused = [
        v(0, 0, true),
        a(1, 0),
        v(1 << 40, 0, true),
        v(MAX_DECODE_TICKS + 1, 0, true),
        a(2, 5000),
        InputSample {
            decode_ticks: far,
            ..empty
        },
        InputSample {
            decode_ticks: far,
            ..large
        },
        InputSample {
            decode_ticks: far,
            ..past
        },
        InputSample {
            decode_ticks: far,
            ..short
        },
    ];
    assert_eq!(run(&refused), clean);
}

#[test]
fn configurations_are_checked_before_anything_is_written() {
    let new = |t: TrackConfig| Fragmenter::new(vec![t], Options::default()).map(|_| ());
    let bad = |r: Result<(), FragmentError>| match r {
        Err(FragmentError::BadConfig { track: 0, reason }) => reason,
        other => panic!("{other:?}"),
    };
    let avc = |avcc: &[u8]| {
        TrackConfig::new(
            90_000,
            CodecConfig::Avc {
                avcc: Bytes::copy_from_slice(avcc),
            },
        )
    };
    let good = avcc();
    assert_eq!(new(avc(&good)), Ok(()));
    // The checks are `params`' (the parser's): a few of them, to see they run.
    assert!(bad(new(avc(&good[..5]))).contains("cut short"));
    let mut v0 = good.to_vec();
    v0[0] = 0;
    assert!(bad(new(avc(&v0))).contains("version"));
    let mut three = good.to_vec();
    three[4] = 0xfe;
    assert!(bad(new(avc(&three))).contains("length size of 3"));
    // No SPS and no PPS: nothing to take the picture size from, nor to decode with.
    assert!(bad(new(avc(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]))).contains("SPS"));
    let hevc = TrackConfig::new(
        90_000,
        CodecConfig::Hevc {
            hvcc: Bytes::from_static(&[1, 1, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 93]),
        },
    );
    assert!(bad(new(hevc)).contains("cut short"));
    let mut t = aac();
    t.timescale = 0;
    assert!(bad(new(t)).contains("timescale"));
    // Sampling frequency index 13 is reserved: no rate.
    let reserved = TrackConfig::new(
        48_000,
        CodecConfig::Aac {
            audio_specific_config: Bytes::from_static(&[0x16, 0x90]),
        },
    );
    assert!(bad(new(reserved)).contains("sampling rate"));
    let opus = |d: &'static [u8]| {
        TrackConfig::new(
            48_000,
            CodecConfig::Opus {
                dops: Bytes::from_static(d),
            },
        )
    };
    assert_eq!(
        new(opus(&[0, 2, 1, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0])),
        Ok(())
    );
    assert!(bad(new(opus(&[0, 3, 1, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]))).contains("family 0"));
    assert!(bad(new(opus(&[0, 2, 1, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 1, 1]))).contains("mapping"));
    assert!(bad(new(opus(&[1, 2, 1, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]))).contains("version"));

    assert_eq!(
        Fragmenter::new(Vec::new(), Options::default()).map(|_| ()),
        Err(FragmentError::NoTracks)
    );
    assert_eq!(
        Fragmenter::new(vec![aac(); MAX_TRACKS + 1], Options::default()).map(|_| ()),
        Err(FragmentError::TooManyTracks(MAX_TRACKS + 1))
    );
    for o in [
        Options::with_target(Duration::ZERO),
        Options {
            max_duration: Duration::from_secs(1),
            ..Options::default()
        },
        Options {
            max_bytes: 100,
            ..Options::default()
        },
        Options {
            max_bytes: 2 << 30,
            ..Options::default()
        },
    ] {
        assert!(matches!(
            Fragmenter::new(vec![aac()], o),
            Err(FragmentError::BadOptions(_))
        ));
    }
}

#[test]
fn esds_descriptor_lengths_grow_past_127_bytes() {
    // A long AudioSpecificConfig (a PCE, say) needs a multi-byte descriptor length.
    let mut asc = vec![0x11, 0x90];
    asc.resize(300, 0);
    let e = init::esds(&asc, 1);
    let info = crate::codec::describe(crate::FourCC::new(b"mp4a"), Some(&e)).unwrap();
    assert_eq!(info.codec, "mp4a.40.2");
    assert_eq!(info.sample_rate, Some(48_000));
}
