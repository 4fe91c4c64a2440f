//! Property tests: a small fragment writer (kept here, not in the crate) writes a
//! random valid init segment and media segment — every `tfhd`/`trun` flag combination,
//! `tfdt`/`trun` v0 and v1, several `moof`s, `traf`s and `trun`s, `prft` and `emsg` —
//! and the parser must give back exactly the samples the writer meant. Corrupted
//! copies must give an `Err`, never a panic.

use bytes::Bytes;
use dvrclip_fmp4::{
    ErrorKind, EventMessage, InitSegment, MediaSegment, ProducerTime, Sample, TrackDefaults,
    TrackKind, TrackSamples, parse_init, parse_segment,
};
use proptest::prelude::*;

/// Big-endian box writer; `open` reserves the size, `close` back-patches it.
#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn open(&mut self, typ: &[u8; 4]) -> usize {
        let at = self.0.len();
        self.u32(0);
        self.bytes(typ);
        at
    }
    fn full(&mut self, typ: &[u8; 4], version: u8, flags: u32) -> usize {
        let at = self.open(typ);
        self.u32(u32::from(version) << 24 | flags);
        at
    }
    fn close(&mut self, at: usize) {
        let size = (self.0.len() - at) as u32;
        self.0[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }
}

#[derive(Clone, Debug)]
struct TrackSpec {
    audio: bool,
    timescale: u32,
    v1: bool,
    width: u16,
    trex: TrackDefaults,
}

/// ffmpeg's avcC for libx264 High 320x180 (`tests/fixtures/h264_aac`) with its level
/// (record byte 3, SPS byte 3) raised to 3.1 for `avc1.64001f`: the parser checks the
/// SPS and PPS (ISO/IEC 14496-15 §5.3.3), so a made-up record will not do.
const AVCC: [u8; 45] = [
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x41, 0x41,
    0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42,
    0x99, 0x60, 0x01, 0x00, 0x04, 0x68, 0xef, 0xbc, 0xb0, 0xfd, 0xf8, 0xf8, 0x00,
];

/// ffmpeg's esds for AAC-LC 48 kHz stereo.
const ESDS: [u8; 43] = [
    0, 0, 0, 0, 0x03, 0x80, 0x80, 0x80, 0x22, 0x00, 0x02, 0x00, 0x04, 0x80, 0x80, 0x80, 0x14, 0x40,
    0x15, 0, 0, 0, 0, 1, 0xf4, 0, 0, 1, 0xf4, 0, 0x05, 0x80, 0x80, 0x80, 0x02, 0x11, 0x90, 0x06,
    0x80, 0x80, 0x80, 0x01, 0x02,
];

/// Track ids are 1, 2, ... in spec order.
fn write_init(tracks: &[TrackSpec], mvhd_v1: bool) -> Vec<u8> {
    let mut w = W::default();
    let ftyp = w.open(b"ftyp");
    w.bytes(b"iso6\0\0\0\0iso6cmfc");
    w.close(ftyp);
    let moov = w.open(b"moov");
    let mvhd = w.full(b"mvhd", mvhd_v1 as u8, 0);
    w.bytes(&vec![0; if mvhd_v1 { 16 } else { 8 }]);
    w.u32(1000);
    w.bytes(&vec![0; if mvhd_v1 { 8 } else { 4 }]);
    w.bytes(&[0; 80]);
    w.close(mvhd);
    for (i, t) in tracks.iter().enumerate() {
        let v = t.v1 as u8;
        let long = if t.v1 { 16 } else { 8 };
        let trak = w.open(b"trak");
        let tkhd = w.full(b"tkhd", v, 3);
        w.bytes(&vec![0; long]);
        w.u32(i as u32 + 1);
        w.bytes(&[0; 60]);
        w.close(tkhd);
        let mdia = w.open(b"mdia");
        let mdhd = w.full(b"mdhd", v, 0);
        w.bytes(&vec![0; long]);
        w.u32(t.timescale);
        w.bytes(&vec![0; long / 2]);
        w.u16(0x55c4); // "und"
        w.u16(0);
        w.close(mdhd);
        let hdlr = w.full(b"hdlr", 0, 0);
        w.u32(0);
        w.bytes(if t.audio { b"soun" } else { b"vide" });
        w.bytes(&[0; 13]);
        w.close(hdlr);
        let minf = w.open(b"minf");
        let stbl = w.open(b"stbl");
        let stsd = w.full(b"stsd", 0, 0);
        w.u32(1);
        if t.audio {
            let e = w.open(b"mp4a");
            w.bytes(&[0, 0, 0, 0, 0, 0, 0, 1]);
            w.bytes(&[0; 8]);
            w.u16(2);
            w.u16(16);
            w.u32(0);
            w.u32(48000 << 16);
            let esds = w.open(b"esds");
            w.bytes(&ESDS);
            w.close(esds);
            w.close(e);
        } else {
            let e = w.open(b"avc1");
            w.bytes(&[0, 0, 0, 0, 0, 0, 0, 1]);
            w.bytes(&[0; 16]);
            w.u16(t.width);
            w.u16(t.width / 2);
            w.bytes(&[0; 50]);
            let avcc = w.open(b"avcC");
            w.bytes(&AVCC);
            w.close(avcc);
            w.close(e);
        }
        w.close(stsd);
        w.close(stbl);
        w.close(minf);
        w.close(mdia);
        w.close(trak);
    }
    let mvex = w.open(b"mvex");
    for (i, t) in tracks.iter().enumerate() {
        let trex = w.full(b"trex", 0, 0);
        w.u32(i as u32 + 1);
        w.u32(t.trex.sample_description_index);
        w.u32(t.trex.sample_duration);
        w.u32(t.trex.sample_size);
        w.u32(t.trex.sample_flags);
        w.close(trex);
    }
    w.close(mvex);
    w.close(moov);
    w.0
}

#[derive(Clone, Debug)]
struct TrunSpec {
    version: u8,
    /// Write `data_offset` even where the data sits where the defaults put it.
    data_offset: bool,
    first_flags: Option<u32>,
    duration: bool,
    size: bool,
    flags: bool,
    cto: bool,
    /// (duration, size, flags, composition offset) before defaults are applied.
    samples: Vec<(u32, u32, u32, i32)>,
}

#[derive(Clone, Copy, Debug)]
enum Base {
    Explicit,
    Moof,
    Implicit,
}

#[derive(Clone, Debug)]
struct TrafSpec {
    track: usize,
    base: Base,
    sdi: Option<u32>,
    duration: Option<u32>,
    size: Option<u32>,
    flags: Option<u32>,
    tfdt: Option<(u8, u64)>,
    truns: Vec<TrunSpec>,
}

#[derive(Clone, Debug)]
struct SegSpec {
    styp: bool,
    prft: Option<(u8, u32, u64, u64)>,
    emsg: Option<(u8, u32, u64)>,
    moofs: Vec<Vec<TrafSpec>>,
}

/// What the writer put where: the segment and, for the corruption tests, the offsets
/// of every box header and every `trun` sample_count.
struct Written {
    bytes: Vec<u8>,
    expected: MediaSegment,
    box_starts: Vec<usize>,
    counts: Vec<usize>,
}

/// Writes the segment and the samples a correct parser must report.
fn write_segment(tracks: &[TrackSpec], spec: &SegSpec) -> Written {
    let mut w = W::default();
    let mut boxes = Vec::new();
    let mut counts = Vec::new();
    let mut expected = MediaSegment {
        bytes: Bytes::new(),
        producer_time: None,
        events: Vec::new(),
        tracks: Vec::new(),
        mdat_ranges: Vec::new(),
    };
    if spec.styp {
        boxes.push(w.0.len());
        let b = w.open(b"styp");
        w.bytes(b"msdh\0\0\0\0msdhmsix");
        w.close(b);
    }
    if let Some((v, track, ntp, media)) = spec.prft {
        boxes.push(w.0.len());
        let b = w.full(b"prft", v, 0);
        w.u32(track);
        w.u64(ntp);
        if v == 1 {
            w.u64(media)
        } else {
            w.u32(media as u32)
        }
        w.close(b);
        let media_ticks = if v == 1 {
            media
        } else {
            u64::from(media as u32)
        };
        expected.producer_time = Some(ProducerTime {
            track_id: track,
            ntp_timestamp: ntp,
            media_ticks,
        });
    }
    if let Some((v, id, time)) = spec.emsg {
        boxes.push(w.0.len());
        let b = w.full(b"emsg", v, 0);
        let time = if v == 0 { u64::from(time as u32) } else { time };
        if v == 0 {
            w.bytes(b"urn:test\0v\0");
            w.u32(90000);
            w.u32(time as u32);
            w.u32(10);
            w.u32(id);
        } else {
            w.u32(90000);
            w.u64(time);
            w.u32(10);
            w.u32(id);
            w.bytes(b"urn:test\0v\0");
        }
        w.bytes(b"data");
        w.close(b);
        expected.events.push(EventMessage {
            scheme_id_uri: "urn:test".into(),
            value: "v".into(),
            timescale: 90000,
            presentation_time: time,
            event_duration: 10,
            id,
            message_data: Bytes::from_static(b"data"),
        });
    }
    let mut next_decode = vec![0u64; tracks.len()];
    for trafs in &spec.moofs {
        let moof_start = w.0.len();
        // Where the mdat body starts depends on the moof's size, which depends on
        // which runs need a data_offset: write until the guess holds.
        let mut body = moof_start;
        loop {
            let (probe, _, _) = write_moof(
                tracks,
                trafs,
                moof_start,
                body,
                &mut next_decode.clone(),
                &mut expected.clone(),
                &mut Vec::new(),
            );
            if moof_start + probe.len() + 8 == body {
                break;
            }
            body = moof_start + probe.len() + 8;
        }
        let (moof, data, c) = write_moof(
            tracks,
            trafs,
            moof_start,
            body,
            &mut next_decode,
            &mut expected,
            &mut boxes,
        );
        w.bytes(&moof);
        counts.extend(c);
        boxes.push(w.0.len());
        let mdat = w.open(b"mdat");
        w.bytes(&data);
        w.close(mdat);
        expected.mdat_ranges.push(body as u32..w.0.len() as u32);
    }
    expected.bytes = Bytes::from(w.0.clone());
    Written {
        bytes: w.0,
        expected,
        box_starts: boxes,
        counts,
    }
}

/// One `moof` (returned with its mdat payload), following §8.8.7.1 / §8.8.8.3 for
/// where each run's data must be, and writing `data_offset` wherever the defaults
/// would point elsewhere.
fn write_moof(
    tracks: &[TrackSpec],
    trafs: &[TrafSpec],
    moof_start: usize,
    body: usize,
    next_decode: &mut [u64],
    expected: &mut MediaSegment,
    boxes: &mut Vec<usize>,
) -> (Vec<u8>, Vec<u8>, Vec<usize>) {
    let mut w = W::default();
    let mut data = Vec::new();
    let mut counts = Vec::new();
    let rec = |w: &W, boxes: &mut Vec<usize>| boxes.push(moof_start + w.0.len());
    rec(&w, boxes);
    let moof = w.open(b"moof");
    rec(&w, boxes);
    let mfhd = w.full(b"mfhd", 0, 0);
    w.u32(1);
    w.close(mfhd);
    let mut prev_traf_end: Option<u64> = None;
    let mut seen = Vec::new();
    for traf in trafs {
        let t = traf.track % tracks.len();
        if seen.contains(&t) {
            continue;
        }
        seen.push(t);
        let spec = &tracks[t];
        let track_id = t as u32 + 1;
        let traf_data_start = (body + data.len()) as u64;
        let base = match traf.base {
            Base::Explicit => traf_data_start,
            Base::Moof => moof_start as u64,
            Base::Implicit => prev_traf_end.unwrap_or(moof_start as u64),
        };
        let mut flags = 0;
        if matches!(traf.base, Base::Explicit) {
            flags |= 0x1;
        }
        if matches!(traf.base, Base::Moof) {
            flags |= 0x02_0000;
        }
        flags |= traf.sdi.map_or(0, |_| 0x2)
            | traf.duration.map_or(0, |_| 0x8)
            | traf.size.map_or(0, |_| 0x10)
            | traf.flags.map_or(0, |_| 0x20);
        rec(&w, boxes);
        let trafb = w.open(b"traf");
        rec(&w, boxes);
        let tfhd = w.full(b"tfhd", 0, flags);
        w.u32(track_id);
        if flags & 1 != 0 {
            w.u64(base);
        }
        for v in [traf.sdi, traf.duration, traf.size, traf.flags]
            .into_iter()
            .flatten()
        {
            w.u32(v);
        }
        w.close(tfhd);
        if let Some((v, time)) = traf.tfdt {
            let time = if v == 0 { u64::from(time as u32) } else { time };
            rec(&w, boxes);
            let b = w.full(b"tfdt", v, 0);
            if v == 0 {
                w.u32(time as u32)
            } else {
                w.u64(time)
            }
            w.close(b);
            next_decode[t] = time;
        }
        let ti = match expected.tracks.iter().position(|x| x.track_id == track_id) {
            Some(i) => i,
            None => {
                expected.tracks.push(TrackSamples {
                    track_id,
                    base_decode_ticks: traf
                        .tfdt
                        .map_or(0, |(v, x)| if v == 0 { u64::from(x as u32) } else { x }),
                    sample_description_index: traf
                        .sdi
                        .unwrap_or(spec.trex.sample_description_index),
                    samples: Vec::new(),
                });
                expected.tracks.len() - 1
            }
        };
        let def_dur = traf.duration.unwrap_or(spec.trex.sample_duration);
        let def_size = traf.size.unwrap_or(spec.trex.sample_size);
        let def_flags = traf.flags.unwrap_or(spec.trex.sample_flags);
        let mut run_end = base;
        for run in &traf.truns {
            let start = (body + data.len()) as u64;
            let need_offset = run.data_offset || start != run_end;
            let mut f = 0;
            if need_offset {
                f |= 0x1;
            }
            if run.first_flags.is_some() {
                f |= 0x4;
            }
            f |= (run.duration as u32) << 8
                | (run.size as u32) << 9
                | (run.flags as u32) << 10
                | (run.cto as u32) << 11;
            rec(&w, boxes);
            let b = w.full(b"trun", run.version, f);
            counts.push(moof_start + w.0.len());
            w.u32(run.samples.len() as u32);
            if need_offset {
                w.u32((start as i64 - base as i64) as i32 as u32);
            }
            if let Some(ff) = run.first_flags {
                w.u32(ff);
            }
            for (i, &(d, s, fl, c)) in run.samples.iter().enumerate() {
                let d = if run.duration { d } else { def_dur };
                // A run with no per-sample fields needs a nonzero default size (the
                // parser refuses a count not backed by bytes): generators keep it so.
                let s = if run.size { s } else { def_size };
                let fl = if run.flags { fl } else { def_flags };
                let c = if !run.cto {
                    0
                } else if run.version == 0 {
                    c & i32::MAX
                } else {
                    c
                };
                if run.duration {
                    w.u32(d);
                }
                if run.size {
                    w.u32(s);
                }
                if run.flags {
                    w.u32(fl);
                }
                if run.cto {
                    w.u32(c as u32);
                }
                let fl = match run.first_flags {
                    Some(ff) if i == 0 => ff,
                    _ => fl,
                };
                let offset = (body + data.len()) as u32;
                data.extend((0..s).map(|k| k as u8));
                expected.tracks[ti].samples.push(Sample {
                    decode_ticks: next_decode[t],
                    duration: d,
                    composition_offset: c,
                    offset,
                    size: s,
                    is_sync: fl & 0x1_0000 == 0,
                });
                next_decode[t] += u64::from(d);
            }
            w.close(b);
            run_end = (body + data.len()) as u64;
        }
        w.close(trafb);
        prev_traf_end = Some(run_end);
    }
    w.close(moof);
    (w.0, data, counts)
}

fn track_spec() -> impl Strategy<Value = TrackSpec> {
    (
        any::<bool>(),
        1..200_000u32,
        any::<bool>(),
        16..4000u16,
        (0..3u32, 0..5000u32, 1..40u32, any::<u32>()),
    )
        .prop_map(
            |(audio, timescale, v1, width, (sdi, dur, size, flags))| TrackSpec {
                audio,
                timescale,
                v1,
                width,
                trex: TrackDefaults {
                    sample_description_index: sdi,
                    sample_duration: dur,
                    sample_size: size,
                    sample_flags: flags,
                },
            },
        )
}

fn trun_spec() -> impl Strategy<Value = TrunSpec> {
    (
        0..2u8,
        any::<bool>(),
        prop::option::of(any::<u32>()),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        prop::collection::vec((0..100_000u32, 0..40u32, any::<u32>(), any::<i32>()), 0..6),
    )
        .prop_map(
            |(version, data_offset, first_flags, (duration, size, flags, cto), samples)| TrunSpec {
                version,
                data_offset,
                first_flags,
                duration,
                size,
                flags,
                cto,
                samples,
            },
        )
}

fn traf_spec() -> impl Strategy<Value = TrafSpec> {
    (
        0..4usize,
        prop_oneof![Just(Base::Explicit), Just(Base::Moof), Just(Base::Implicit)],
        (
            prop::option::of(1..4u32),
            prop::option::of(0..5000u32),
            prop::option::of(1..40u32),
            prop::option::of(any::<u32>()),
        ),
        prop::option::of((0..2u8, any::<u64>().prop_map(|x| x >> 8))),
        prop::collection::vec(trun_spec(), 1..4),
    )
        .prop_map(
            |(track, base, (sdi, duration, size, flags), tfdt, truns)| TrafSpec {
                track,
                base,
                sdi,
                duration,
                size,
                flags,
                tfdt,
                truns,
            },
        )
}

fn seg_spec() -> impl Strategy<Value = SegSpec> {
    (
        any::<bool>(),
        prop::option::of((0..2u8, 1..3u32, any::<u64>(), any::<u64>())),
        prop::option::of((0..2u8, any::<u32>(), any::<u64>())),
        prop::collection::vec(prop::collection::vec(traf_spec(), 1..4), 1..4),
    )
        .prop_map(|(styp, prft, emsg, moofs)| SegSpec {
            styp,
            prft,
            emsg,
            moofs,
        })
}

fn case() -> impl Strategy<Value = (Vec<TrackSpec>, bool, SegSpec)> {
    (
        prop::collection::vec(track_spec(), 1..4),
        any::<bool>(),
        seg_spec(),
    )
}

fn parse(tracks: &[TrackSpec], mvhd_v1: bool) -> InitSegment {
    parse_init(Bytes::from(write_init(tracks, mvhd_v1))).expect("written init parses")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn init_round_trips(tracks in prop::collection::vec(track_spec(), 1..4), mvhd_v1 in any::<bool>()) {
        let init = parse(&tracks, mvhd_v1);
        prop_assert_eq!(init.movie_timescale, 1000);
        prop_assert_eq!(init.tracks.len(), tracks.len());
        for (i, (t, s)) in init.tracks.iter().zip(&tracks).enumerate() {
            prop_assert_eq!(t.track_id, i as u32 + 1);
            prop_assert_eq!(t.timescale, s.timescale);
            prop_assert_eq!(t.defaults, s.trex);
            prop_assert_eq!(t.language, 0x55c4);
            if s.audio {
                prop_assert_eq!(t.kind, TrackKind::Audio);
                prop_assert_eq!(&t.entry.codec, "mp4a.40.2");
                prop_assert_eq!(t.entry.audio.map(|a| (a.sample_rate, a.channels)), Some((48000, 2)));
            } else {
                prop_assert_eq!(t.kind, TrackKind::Video);
                prop_assert_eq!(&t.entry.codec, "avc1.64001f");
                prop_assert_eq!(t.entry.video.map(|v| (v.width, v.height)), Some((s.width, s.width / 2)));
            }
        }
    }

    #[test]
    fn segment_round_trips((tracks, mvhd_v1, spec) in case()) {
        let init = parse(&tracks, mvhd_v1);
        let written = write_segment(&tracks, &spec);
        let got = parse_segment(Bytes::from(written.bytes.clone()), &init);
        prop_assert_eq!(got, Ok(written.expected));
    }

    /// A box size reaching past its parent, or a sample_count larger than the bytes
    /// present, is an error.
    #[test]
    fn corrupt_size_or_count_is_an_error((tracks, mvhd_v1, spec) in case(), pick in any::<prop::sample::Index>(), extra in 1..1000u32) {
        let init = parse(&tracks, mvhd_v1);
        let written = write_segment(&tracks, &spec);
        let mut bytes = written.bytes.clone();
        let n = bytes.len();
        let (what, at) = if extra % 2 == 0 && !written.counts.is_empty() {
            ("count", written.counts[pick.index(written.counts.len())])
        } else {
            ("size", written.box_starts[pick.index(written.box_starts.len())])
        };
        let old = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        // Past everything that follows (the parent ends no later than the input), or
        // more samples than there are bytes in the segment.
        let new = if what == "size" { (n - at) as u32 + extra } else { old + n as u32 + extra };
        bytes[at..at + 4].copy_from_slice(&new.to_be_bytes());
        let got = parse_segment(Bytes::from(bytes), &init);
        prop_assert!(got.is_err(), "{} at {}: {:?}", what, at, got);
    }

    /// Any byte overwritten anywhere: Ok or Err, never a panic.
    #[test]
    fn random_corruption_never_panics((tracks, mvhd_v1, spec) in case(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let init_bytes = write_init(&tracks, mvhd_v1);
        let init = parse(&tracks, mvhd_v1);
        let mut seg = write_segment(&tracks, &spec).bytes;
        let mut bad_init = init_bytes.clone();
        for (i, v) in &edits {
            let k = i.index(seg.len());
            seg[k] = *v;
            let k = i.index(bad_init.len());
            bad_init[k] = *v;
        }
        let _ = parse_segment(Bytes::from(seg), &init);
        let _ = parse_init(Bytes::from(bad_init));
    }
}

#[test]
fn unknown_track_is_refused() {
    let tracks = [TrackSpec {
        audio: false,
        timescale: 90000,
        v1: false,
        width: 320,
        trex: TrackDefaults {
            sample_size: 1,
            ..Default::default()
        },
    }];
    let init = parse(&tracks, false);
    let spec = SegSpec {
        styp: false,
        prft: None,
        emsg: None,
        moofs: vec![vec![TrafSpec {
            track: 0,
            base: Base::Moof,
            sdi: None,
            duration: None,
            size: None,
            flags: None,
            tfdt: None,
            truns: vec![],
        }]],
    };
    let mut bytes = write_segment(&tracks, &spec).bytes;
    // tfhd's track_ID: moof(8) mfhd(16) traf(8) tfhd header(12).
    let at = 8 + 16 + 8 + 12;
    assert_eq!(bytes[at..at + 4], [0, 0, 0, 1]);
    bytes[at + 3] = 7;
    let err = parse_segment(Bytes::from(bytes), &init).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownTrack(7));
    assert_eq!(err.path, "moof/traf/tfhd");
}

/// §8.8.7.1: without base-data-offset-present and default-base-is-moof, "the
/// base-data-offset for the first track in the movie fragment is the position of the
/// first byte of the enclosing Movie Fragment Box, and for second and subsequent track
/// fragments, the default is the end of the data defined by the preceding track
/// fragment". §8.8.8.3: a run without data_offset starts where the previous one ended.
#[test]
fn implicit_base_chains_across_trafs_and_runs() {
    let track = |audio| TrackSpec {
        audio,
        timescale: 90000,
        v1: false,
        width: 320,
        trex: TrackDefaults {
            sample_description_index: 1,
            sample_duration: 3000,
            sample_size: 7,
            sample_flags: 0,
        },
    };
    let tracks = [track(false), track(true)];
    let run = |n| TrunSpec {
        version: 0,
        data_offset: false,
        first_flags: None,
        duration: false,
        size: false,
        flags: false,
        cto: false,
        samples: vec![(0, 0, 0, 0); n],
    };
    let traf = |t| TrafSpec {
        track: t,
        base: Base::Implicit,
        sdi: None,
        duration: None,
        size: None,
        flags: None,
        tfdt: Some((1, 1000)),
        truns: vec![run(2), run(3)],
    };
    let spec = SegSpec {
        styp: true,
        prft: None,
        emsg: None,
        moofs: vec![vec![traf(0), traf(1)]],
    };
    let written = write_segment(&tracks, &spec);
    // Only the very first run needs a data_offset (the moof start is not its data).
    let flags: Vec<u8> = written
        .counts
        .iter()
        .map(|&at| written.bytes[at - 1] & 1)
        .collect();
    assert_eq!(flags, [1, 0, 0, 0]);
    let seg = parse_segment(Bytes::from(written.bytes.clone()), &parse(&tracks, false)).unwrap();
    assert_eq!(seg, written.expected);
    let offsets: Vec<u32> = seg
        .tracks
        .iter()
        .flat_map(|t| &t.samples)
        .map(|s| s.offset)
        .collect();
    let first = seg.mdat_ranges[0].start;
    assert_eq!(offsets, (0..10).map(|i| first + 7 * i).collect::<Vec<_>>());
    assert_eq!(seg.tracks[1].samples[0].decode_ticks, 1000);
    assert_eq!(seg.tracks[1].samples[4].decode_ticks, 1000 + 4 * 3000);
}

fn patch(bytes: &mut [u8], from: &[u8; 4], to: &[u8; 4]) {
    let at = bytes.windows(4).position(|w| w == from).unwrap();
    bytes[at..at + 4].copy_from_slice(to);
}

/// ref/api.md "Ingest": an unsupported codec is refused (415 at ingest), naming the entry; a
/// track that is neither video nor audio is kept, described by its format alone.
#[test]
fn unsupported_video_codec_is_refused_other_tracks_are_kept() {
    let spec = TrackSpec {
        audio: false,
        timescale: 90000,
        v1: false,
        width: 320,
        trex: TrackDefaults::default(),
    };
    let mut bytes = write_init(std::slice::from_ref(&spec), false);
    patch(&mut bytes, b"avc1", b"vp09");
    let err = parse_init(Bytes::from(bytes)).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::UnsupportedCodec(dvrclip_fmp4::FourCC::new(b"vp09"))
    );
    assert_eq!(err.path, "moov/trak/mdia/minf/stbl/stsd/vp09");

    let mut bytes = write_init(&[spec], false);
    patch(&mut bytes, b"vide", b"text");
    patch(&mut bytes, b"avc1", b"wvtt");
    let init = parse_init(Bytes::from(bytes)).unwrap();
    let t = &init.tracks[0];
    assert_eq!(t.kind, TrackKind::Other(dvrclip_fmp4::FourCC::new(b"text")));
    assert_eq!(
        (t.entry.codec.as_str(), t.entry.video, t.entry.audio),
        ("wvtt", None, None)
    );
}

/// An `avc1` entry without its `avcC` cannot be described.
#[test]
fn missing_config_box_is_an_error() {
    let spec = TrackSpec {
        audio: false,
        timescale: 90000,
        v1: false,
        width: 320,
        trex: TrackDefaults::default(),
    };
    let mut bytes = write_init(&[spec], false);
    patch(&mut bytes, b"avcC", b"free");
    let err = parse_init(Bytes::from(bytes)).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Missing(dvrclip_fmp4::FourCC::new(b"avcC"))
    );
    assert!(err.path.ends_with("stsd/avc1"), "{}", err.path);
}

/// `mdhd` timescale 0 would divide by zero in every consumer: refused.
#[test]
fn zero_timescale_is_refused() {
    let spec = TrackSpec {
        audio: true,
        timescale: 0,
        v1: true,
        width: 0,
        trex: TrackDefaults::default(),
    };
    let err = parse_init(Bytes::from(write_init(&[spec], false))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid("timescale 0"));
    assert_eq!(err.path, "moov/trak/mdia/mdhd");
}
