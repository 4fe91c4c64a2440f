//! Unit tests of the progressive writer on synthetic segments built from the model
//! types, with a small box cursor that walks the written `moov`.
#![allow(clippy::single_range_in_vec_init)] // `mdat_ranges` holds one range here

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::model::*;

// ---------------------------------------------------------------- synthetic input

/// 30 fps video at 15360 Hz (512 ticks a frame), 2 B-frames, one GOP per 2 s
/// segment; 48 kHz AAC-like audio (1024 ticks a frame) in the same segments.
#[derive(Clone)]
pub(super) struct Synth {
    pub(super) video: bool,
    pub(super) audio: bool,
    /// Audio decode times are shifted by this many ticks (negative: audio leads).
    pub(super) audio_shift: i64,
    /// `stsd` payload byte, so two inits can differ in their sample entry.
    pub(super) entry_tag: u8,
    /// Added to every source decode time (an encoder restart starts elsewhere).
    pub(super) time_base: u64,
}

const VIDEO_TS: u32 = 15360;
const FRAME: u32 = 512;
const AUDIO_TS: u32 = 48000;
const AFRAME: u32 = 1024;
const GOP: usize = 60;

impl Default for Synth {
    fn default() -> Self {
        Synth {
            video: true,
            audio: true,
            audio_shift: 0,
            entry_tag: 0,
            time_base: 0,
        }
    }
}

fn stsd(format: &[u8; 4], tag: u8) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32(16 + 8 + 8);
    b.put_slice(b"stsd");
    b.put_u32(0);
    b.put_u32(1);
    b.put_u32(16);
    b.put_slice(format);
    b.put_slice(&[tag; 8]);
    b.freeze()
}

fn entry(format: &[u8; 4], codec: &str, tag: u8, video: bool) -> SampleEntry {
    SampleEntry {
        format: FourCC::new(format),
        stsd: stsd(format, tag),
        // A tiny avcC: 4-byte NAL lengths, one SPS and one PPS that carry the tag.
        config: if video {
            Bytes::from(vec![
                1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, tag, 1, 0, 2, 0x68, tag,
            ])
        } else {
            Bytes::new()
        },
        codec: codec.to_owned(),
        video: video.then_some(VideoInfo {
            width: 320,
            height: 240,
        }),
        audio: (!video).then_some(AudioInfo {
            sample_rate: 48000,
            channels: 2,
        }),
    }
}

/// Composition offsets of one closed GOP in decode order: I, then P B B groups.
fn gop_offsets() -> Vec<i32> {
    // Display order 0..GOP; decode order I0 P3 B1 B2 P6 B4 B5 ...; the tail that does
    // not fill a group is coded P then B.
    let mut decode: Vec<usize> = vec![0];
    let mut d = 1;
    while d < GOP {
        let p = (d + 2).min(GOP - 1);
        decode.push(p);
        decode.extend(d..p);
        d = p + 1;
    }
    decode
        .iter()
        .enumerate()
        .map(|(k, &disp)| (disp as i32 + 2 - k as i32) * FRAME as i32)
        .collect()
}

impl Synth {
    pub(super) fn init(&self) -> InitSegment {
        let mut tracks = Vec::new();
        if self.video {
            tracks.push(Track {
                track_id: 1,
                kind: TrackKind::Video,
                timescale: VIDEO_TS,
                language: 0x55c4,
                defaults: TrackDefaults::default(),
                // ffmpeg's: the first keyframe (cto 2 frames) is presented at 0.
                edits: vec![EditEntry {
                    segment_duration: 0,
                    media_time: 1024,
                    media_rate: 1,
                }],
                entry: entry(b"avc1", "avc1.64001f", self.entry_tag, true),
            });
        }
        if self.audio {
            tracks.push(Track {
                track_id: 2,
                kind: TrackKind::Audio,
                timescale: AUDIO_TS,
                language: 0x55c4,
                defaults: TrackDefaults::default(),
                edits: vec![],
                entry: entry(b"mp4a", "mp4a.40.2", 0, false),
            });
        }
        let mut bytes = b"synthetic init ".to_vec();
        bytes.push(self.entry_tag);
        bytes.extend_from_slice(&self.time_base.to_be_bytes());
        InitSegment {
            bytes: Bytes::from(bytes),
            movie_timescale: 1000,
            tracks,
        }
    }

    /// Segment `n` (2 s each), its bytes filled with a pattern unique per sample.
    pub(super) fn segment(&self, n: u64) -> MediaSegment {
        let mut bytes = vec![0xEEu8; 64]; // stands for styp + moof
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(b"mdat");
        let body_start = bytes.len() as u32;
        let mut tracks = Vec::new();
        if self.video {
            let base = self.time_base + n * (GOP as u64) * u64::from(FRAME);
            let mut samples = Vec::new();
            for (k, cto) in gop_offsets().into_iter().enumerate() {
                let size = if k == 0 {
                    900
                } else {
                    150 + (k as u32 % 7) * 20
                };
                let offset = bytes.len() as u32;
                bytes.extend((0..size).map(|i| (n as u32 * 7 + k as u32 * 13 + i) as u8));
                samples.push(Sample {
                    decode_ticks: base + k as u64 * u64::from(FRAME),
                    duration: FRAME,
                    composition_offset: cto,
                    offset,
                    size,
                    is_sync: k == 0,
                });
            }
            tracks.push(TrackSamples {
                track_id: 1,
                base_decode_ticks: base,
                sample_description_index: 1,
                samples,
            });
        }
        if self.audio {
            // Audio frames whose (unshifted) start lies in this segment's 2 s.
            let per_seg = 2 * u64::from(AUDIO_TS);
            let first = (n * per_seg).div_ceil(u64::from(AFRAME));
            let last = ((n + 1) * per_seg).div_ceil(u64::from(AFRAME));
            let audio_base = rescale_u(self.time_base, VIDEO_TS, AUDIO_TS);
            let mut samples = Vec::new();
            for j in first..last {
                let size = 40 + (j as u32 % 5) * 3;
                let offset = bytes.len() as u32;
                bytes.extend((0..size).map(|i| (j as u32 * 3 + i + 101) as u8));
                let dt = (j * u64::from(AFRAME) + audio_base) as i64 + self.audio_shift;
                samples.push(Sample {
                    decode_ticks: dt as u64,
                    duration: AFRAME,
                    composition_offset: 0,
                    offset,
                    size,
                    is_sync: true,
                });
            }
            tracks.push(TrackSamples {
                track_id: 2,
                base_decode_ticks: samples.first().map_or(0, |s| s.decode_ticks),
                sample_description_index: 1,
                samples,
            });
        }
        let len = bytes.len() as u32;
        let mdat_size = len - body_start + 8;
        bytes[64..68].copy_from_slice(&mdat_size.to_be_bytes());
        MediaSegment {
            bytes: Bytes::from(bytes),
            producer_time: None,
            events: vec![],
            tracks,
            mdat_ranges: vec![body_start..len],
        }
    }
}

fn rescale_u(x: u64, from: u32, to: u32) -> u64 {
    x * u64::from(to) / u64::from(from)
}

fn build(init: &InitSegment, segs: &[MediaSegment], options: Options) -> VirtualMp4 {
    let mut b = Mp4Builder::new(options);
    for s in segs {
        b.push(init, s).unwrap();
    }
    b.build().unwrap()
}

fn whole(mp4: &VirtualMp4) -> Vec<u8> {
    let mut out = Vec::with_capacity(mp4.len() as usize);
    for p in mp4.range(0..mp4.len()).unwrap() {
        out.extend_from_slice(&p);
    }
    out
}

// ---------------------------------------------------------------- box cursor

/// A box found by [`Cursor`]: its type and body (header excluded).
#[derive(Clone, Copy)]
struct Bx<'a> {
    kind: [u8; 4],
    body: &'a [u8],
}

/// Walks a box tree by path, e.g. `find(moov, "trak/mdia/minf/stbl/stts")`.
fn children(buf: &[u8]) -> Vec<Bx<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= buf.len() {
        let mut size = u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = buf[pos + 4..pos + 8].try_into().unwrap();
        let mut header = 8;
        if size == 1 {
            size = u64::from_be_bytes(buf[pos + 8..pos + 16].try_into().unwrap()) as usize;
            header = 16;
        }
        assert!(size >= header, "box {kind:?} size {size}");
        let end = (pos + size).min(buf.len());
        out.push(Bx {
            kind,
            body: &buf[pos + header..end],
        });
        pos += size;
    }
    out
}

fn all<'a>(buf: &'a [u8], path: &str) -> Vec<Bx<'a>> {
    let mut level = vec![Bx {
        kind: *b"root",
        body: buf,
    }];
    for name in path.split('/') {
        level = level
            .iter()
            .flat_map(|b| children(b.body))
            .filter(|c| c.kind == name.as_bytes())
            .collect();
    }
    level
}

fn one<'a>(buf: &'a [u8], path: &str) -> &'a [u8] {
    let v = all(buf, path);
    assert_eq!(v.len(), 1, "{path}");
    v[0].body
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// A full box's table as rows of `width` u32 fields after version/flags and count.
fn table(body: &[u8], width: usize) -> Vec<Vec<u32>> {
    let n = be32(body, 4) as usize;
    (0..n)
        .map(|i| {
            (0..width)
                .map(|f| be32(body, 8 + (i * width + f) * 4))
                .collect()
        })
        .collect()
}

#[derive(Debug, PartialEq)]
struct Parsed {
    timescale: u32,
    handler: [u8; 4],
    elst: Vec<(u64, i64)>,
    tkhd_duration: u64,
    mdhd_duration: u64,
    stts: Vec<Vec<u32>>,
    ctts: Option<(u8, Vec<Vec<u32>>)>,
    stss: Option<Vec<u32>>,
    sizes: Vec<u32>,
    stsc: Vec<Vec<u32>>,
    offsets: Vec<u64>,
    stsd_entries: u32,
}

fn parse_trak(trak: &[u8]) -> Parsed {
    let tkhd = one(trak, "tkhd");
    let tkhd_duration = if tkhd[0] == 1 {
        be64(tkhd, 4 + 8 + 8 + 8)
    } else {
        u64::from(be32(tkhd, 4 + 16))
    };
    let elst = one(trak, "edts/elst");
    let v1 = elst[0] == 1;
    let n = be32(elst, 4) as usize;
    let elst = (0..n)
        .map(|i| {
            if v1 {
                let at = 8 + i * 20;
                (be64(elst, at), be64(elst, at + 8) as i64)
            } else {
                let at = 8 + i * 12;
                (
                    u64::from(be32(elst, at)),
                    i64::from(be32(elst, at + 4) as i32),
                )
            }
        })
        .collect();
    let mdhd = one(trak, "mdia/mdhd");
    let (timescale, mdhd_duration) = if mdhd[0] == 1 {
        (be32(mdhd, 20), be64(mdhd, 24))
    } else {
        (be32(mdhd, 12), u64::from(be32(mdhd, 16)))
    };
    let hdlr = one(trak, "mdia/hdlr");
    let stbl = one(trak, "mdia/minf/stbl");
    let stsz = one(stbl, "stsz");
    let count = be32(stsz, 8) as usize;
    let sizes = if be32(stsz, 4) != 0 {
        vec![be32(stsz, 4); count]
    } else {
        (0..count).map(|i| be32(stsz, 12 + i * 4)).collect()
    };
    let offsets = match all(stbl, "co64").first() {
        Some(b) => (0..be32(b.body, 4) as usize)
            .map(|i| be64(b.body, 8 + i * 8))
            .collect(),
        None => table(one(stbl, "stco"), 1)
            .into_iter()
            .map(|r| u64::from(r[0]))
            .collect(),
    };
    Parsed {
        timescale,
        handler: hdlr[8..12].try_into().unwrap(),
        elst,
        tkhd_duration,
        mdhd_duration,
        stts: table(one(stbl, "stts"), 2),
        ctts: all(stbl, "ctts")
            .first()
            .map(|b| (b.body[0], table(b.body, 2))),
        stss: all(stbl, "stss")
            .first()
            .map(|b| table(b.body, 1).into_iter().map(|r| r[0]).collect()),
        sizes,
        stsc: table(one(stbl, "stsc"), 3),
        offsets,
        stsd_entries: be32(one(stbl, "stsd"), 4),
    }
}

/// Expands stsc into the number of samples of each chunk.
fn chunk_sizes(p: &Parsed) -> Vec<u32> {
    let n = p.offsets.len();
    let mut out = Vec::with_capacity(n);
    for (i, row) in p.stsc.iter().enumerate() {
        let next = p.stsc.get(i + 1).map_or(n as u32 + 1, |r| r[0]);
        for _ in row[0]..next {
            out.push(row[1]);
        }
    }
    out
}

/// Every sample's file range, from stsz + stsc + stco as a reader computes them.
fn sample_ranges(p: &Parsed) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut s = 0;
    for (c, &n) in chunk_sizes(p).iter().enumerate() {
        let mut pos = p.offsets[c];
        for _ in 0..n {
            let size = u64::from(p.sizes[s]);
            out.push(pos..pos + size);
            pos += size;
            s += 1;
        }
    }
    out
}

fn traks(file: &[u8]) -> Vec<Parsed> {
    all(file, "moov/trak")
        .iter()
        .map(|t| parse_trak(t.body))
        .collect()
}

/// The source samples of `track_id`, in order, with their bytes.
fn source_samples(segs: &[MediaSegment], track_id: u32) -> Vec<(Sample, Bytes)> {
    segs.iter()
        .flat_map(|s| {
            s.track(track_id).into_iter().flat_map(move |t| {
                t.samples
                    .iter()
                    .map(move |x| (*x, s.bytes.slice(x.range())))
            })
        })
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn muxed_tables_are_exact() {
    let synth = Synth::default();
    let init = synth.init();
    let segs: Vec<_> = (3..6).map(|n| synth.segment(n)).collect();
    let mp4 = build(&init, &segs, Options::default());
    let file = whole(&mp4);
    assert_eq!(file.len() as u64, mp4.len());

    // §4.3: ftyp first, then moov, then mdat ("faststart").
    let top: Vec<[u8; 4]> = children(&file).iter().map(|b| b.kind).collect();
    assert_eq!(top, [*b"ftyp", *b"moov", *b"mdat"]);
    assert!(all(&file, "moov/mvex").is_empty());

    let mvhd = one(&file, "moov/mvhd");
    assert_eq!(be32(mvhd, 12), VIDEO_TS, "movie timescale = video's");
    let t = traks(&file);
    assert_eq!(t.len(), 2);
    let (v, a) = (&t[0], &t[1]);
    assert_eq!(&v.handler, b"vide");
    assert_eq!(&a.handler, b"soun");
    assert_eq!(v.timescale, VIDEO_TS);
    assert_eq!(a.timescale, AUDIO_TS);

    // Video: 3 GOPs of 60 frames, one stts run, ctts v0 (all offsets positive),
    // keyframes 1, 61, 121, one chunk per fragment.
    assert_eq!(v.stts, vec![vec![180, FRAME]]);
    let (ver, ctts) = v.ctts.clone().unwrap();
    assert_eq!(ver, 0);
    let expanded: Vec<i32> = ctts
        .iter()
        .flat_map(|r| std::iter::repeat_n(r[1] as i32, r[0] as usize))
        .collect();
    let want: Vec<i32> = (0..3).flat_map(|_| gop_offsets()).collect();
    assert_eq!(expanded, want);
    assert_eq!(v.stss, Some(vec![1, 61, 121]));
    assert_eq!(v.stsc, vec![vec![1, 60, 1]]);
    assert_eq!(v.mdhd_duration, 180 * u64::from(FRAME));
    // The keyframe's composition delay (2 frames) is absorbed by the edit list.
    assert_eq!(v.elst, vec![(180 * u64::from(FRAME), 1024)]);
    assert_eq!(v.tkhd_duration, 180 * u64::from(FRAME));

    // Audio: every sample sync (no stss), no ctts, starts later than video by
    // 16 ms (frame 282 starts at 288768 ticks, video at 6 s): an empty edit.
    assert!(a.stss.is_none());
    assert!(a.ctts.is_none());
    let first_audio = 288_000u64.div_ceil(1024) * 1024;
    let lag = first_audio - 288_000;
    let lag_movie = (lag * u64::from(VIDEO_TS) + 24000) / 48000;
    assert_eq!(a.elst[0], (lag_movie, -1));
    assert_eq!(a.elst[1].1, 0);
    assert_eq!(
        a.mdhd_duration,
        a.stts.iter().map(|r| u64::from(r[0] * r[1])).sum::<u64>()
    );

    // Every sample's bytes, found through stsz/stsc/stco, equal the source's.
    for (p, id) in [(v, 1), (a, 2)] {
        let src = source_samples(&segs, id);
        let ranges = sample_ranges(p);
        assert_eq!(ranges.len(), src.len());
        for (r, (s, data)) in ranges.iter().zip(&src) {
            assert_eq!(r.end - r.start, u64::from(s.size));
            assert_eq!(&file[r.start as usize..r.end as usize], &data[..]);
        }
    }

    // One piece for the header and one per segment: video and audio chunks of a
    // fragment are contiguous, so they coalesce.
    assert_eq!(mp4.pieces.len(), 1 + segs.len());
    assert_eq!(mp4.sample_counts()[0], (FourCC::new(b"vide"), 180));
    // Its own memory is the header plus a small table: the media is the segments'.
    let own = mp4.memory_bytes();
    assert!(own >= mp4.header_len(), "{own}");
    assert!(own < mp4.header_len() + 1024, "{own}");
    assert_eq!(
        mp4.content_type(),
        "video/mp4; codecs=\"avc1.64001f,mp4a.40.2\""
    );
    assert_eq!(mp4.bounds().lead_in_micros, 0);
    // The movie lasts as long as its longest track: audio ends within a frame of 6 s.
    let d = mp4.bounds().duration_micros;
    assert!((6_000_000..6_000_000 + 21_334).contains(&d), "{d}");
}

#[test]
fn audio_lead_is_absorbed_by_the_edit_list() {
    // Audio that starts 700 ticks before the keyframe is presented: elst skips them,
    // so both tracks start at 0 (ffmpeg's faststart would show audio 14 ms early).
    let synth = Synth {
        audio_shift: -700,
        time_base: 10 * u64::from(VIDEO_TS),
        ..Synth::default()
    };
    let init = synth.init();
    let segs = vec![synth.segment(0), synth.segment(1)];
    let file = whole(&build(&init, &segs, Options::default()));
    let t = traks(&file);
    assert_eq!(t[1].elst.len(), 1);
    assert_eq!(t[1].elst[0].1, 700);
    assert_eq!(t[0].elst, vec![(120 * u64::from(FRAME), 1024)]);
}

#[test]
fn first_sample_must_be_a_keyframe() {
    let synth = Synth::default();
    let init = synth.init();
    let mut seg = synth.segment(0);
    seg.tracks[0].samples[0].is_sync = false;
    let mut b = Mp4Builder::new(Options::default());
    assert_eq!(
        b.push(&init, &seg),
        Err(BuildError::NotKeyframe {
            segment: 0,
            track_id: 1
        })
    );
    assert_eq!(
        Mp4Builder::new(Options::default()).build().unwrap_err(),
        BuildError::Empty
    );
}

#[test]
fn sample_outside_mdat_is_refused() {
    let synth = Synth::default();
    let init = synth.init();
    let mut seg = synth.segment(0);
    seg.tracks[1].samples[3].offset = 10; // inside the fake moof
    let mut b = Mp4Builder::new(Options::default());
    assert!(matches!(
        b.push(&init, &seg),
        Err(BuildError::SampleOutOfBounds { .. })
    ));
    let mut seg = synth.segment(0);
    seg.tracks[0].samples[59].size = u32::MAX;
    let mut b = Mp4Builder::new(Options::default());
    assert!(matches!(
        b.push(&init, &seg),
        Err(BuildError::SampleOutOfBounds { .. })
    ));
}

#[test]
fn restart_is_stitched_continuously() {
    // Run A: segments 0..2 at time 0; run B: a restarted encoder whose clock starts
    // at an unrelated time, with a new init (and a different sample entry).
    let a = Synth::default();
    let b = Synth {
        time_base: 5_000_000,
        entry_tag: 9,
        audio_shift: -300,
        ..Synth::default()
    };
    let (ia, ib) = (a.init(), b.init());
    let segs_a = vec![a.segment(0), a.segment(1)];
    let segs_b = vec![b.segment(0), b.segment(1)];
    let mut builder = Mp4Builder::new(Options::default());
    for s in &segs_a {
        builder.push(&ia, s).unwrap();
    }
    for s in &segs_b {
        builder.push(&ib, s).unwrap();
    }
    let mp4 = builder.build().unwrap();
    let file = whole(&mp4);
    let t = traks(&file);
    let (v, au) = (&t[0], &t[1]);

    // Video: 240 frames of 512 ticks, no seam adjustment (same B-frame delay).
    assert_eq!(v.stts, vec![vec![240, FRAME]]);
    assert_eq!(v.stss, Some(vec![1, 61, 121, 181]));
    // Two sample entries; chunks of run B point at the second.
    assert_eq!(v.stsd_entries, 2);
    assert_eq!(v.stsc, vec![vec![1, 60, 1], vec![3, 60, 2]]);
    // Run B's first keyframe carries its entry's SPS and PPS in-band in front of
    // the source bytes; every other video sample is the source's exactly.
    let src_v: Vec<_> = source_samples(&segs_a, 1)
        .into_iter()
        .chain(source_samples(&segs_b, 1))
        .collect();
    let prefix = [0, 0, 0, 2, 0x67, 9, 0, 0, 0, 2, 0x68, 9];
    for (i, (r, (_, data))) in sample_ranges(v).iter().zip(&src_v).enumerate() {
        let got = &file[r.start as usize..r.end as usize];
        if i == 120 {
            assert_eq!(&got[..prefix.len()], &prefix);
            assert_eq!(&got[prefix.len()..], &data[..]);
        } else {
            assert_eq!(got, &data[..], "video sample {i}");
        }
    }

    // Audio: run B's first frame lands where video run B starts (8 s = 384000
    // ticks), shifted by its 300-tick lead, which overlaps run A's last frame: the
    // seam shrinks or drops frames so the timeline never goes backwards and stays
    // within one frame of the target.
    let durations: Vec<u64> = au
        .stts
        .iter()
        .flat_map(|r| std::iter::repeat_n(u64::from(r[1]), r[0] as usize))
        .collect();
    let src_b = source_samples(&segs_b, 2);
    let src_a = source_samples(&segs_a, 2);
    let n_a = src_a.len();
    let seam: u64 = durations[..n_a].iter().sum();
    // Run B's audio starts at movie 4 s minus its lead (300 ticks) relative to the
    // video keyframe, i.e. output decode time 192000 - 300 plus run A's audio offset.
    assert!(durations.iter().all(|&d| d >= 1));
    let kept_b = durations.len() - n_a;
    assert!(kept_b == src_b.len() || kept_b + 1 == src_b.len());
    let target = 4 * 48000 - 300 + (src_b.len() - kept_b) as u64 * 1024;
    assert!(seam.abs_diff(target) <= 1, "seam {seam} target {target}");
    // Every sample's bytes are still exactly the source's.
    let all_src: Vec<_> = src_a
        .iter()
        .chain(&src_b[src_b.len() - kept_b..])
        .cloned()
        .collect();
    for (r, (_, data)) in sample_ranges(au).iter().zip(&all_src) {
        assert_eq!(&file[r.start as usize..r.end as usize], &data[..]);
    }
}

#[test]
fn parameter_sets_come_from_the_decoder_configuration() {
    let avcc = [
        1, 0x64, 0, 0x1f, 0xfd, 0xe1, 0, 3, 0x67, 1, 2, 1, 0, 1, 0x68,
    ];
    let avc1 = FourCC::new(b"avc1");
    // lengthSizeMinusOne = 1: 2-byte NAL lengths.
    assert_eq!(
        build::parameter_sets(avc1, &avcc).as_deref(),
        Some(&[0, 3, 0x67, 1, 2, 0, 1, 0x68][..])
    );
    assert_eq!(build::parameter_sets(avc1, &avcc[..12]), None);
    assert_eq!(build::parameter_sets(FourCC::new(b"mp4a"), &avcc), None);
    // hvcC: 22 bytes of header, length size 4, one array (SPS) of one NAL.
    let mut hvcc = vec![0u8; 21];
    hvcc.extend_from_slice(&[0x03, 1, 0x21, 0, 1, 0, 2, 0x42, 0x01]);
    assert_eq!(
        build::parameter_sets(FourCC::new(b"hvc1"), &hvcc).as_deref(),
        Some(&[0, 0, 0, 2, 0x42, 0x01][..])
    );
}

#[test]
fn precise_trim_sets_edit_lists_and_reports_bounds() {
    let synth = Synth::default();
    let init = synth.init();
    let segs: Vec<_> = (0..3).map(|n| synth.segment(n)).collect();
    let trim = Trim {
        lead_in_micros: 1_500_000,
        duration_micros: 3_000_000,
    };
    let mp4 = build(
        &init,
        &segs,
        Options {
            identity: b"x".to_vec(),
            trim: Some(trim),
        },
    );
    assert_eq!(
        mp4.bounds(),
        ClipBounds {
            lead_in_micros: 1_500_000,
            duration_micros: 3_000_000
        }
    );
    let file = whole(&mp4);
    let t = traks(&file);
    // Video: 1.5 s in = 23040 ticks after the keyframe's presentation (1024).
    assert_eq!(t[0].elst, vec![(3 * VIDEO_TS as u64, 23040 + 1024)]);
    assert_eq!(t[1].elst, vec![(3 * VIDEO_TS as u64, 72000)]);
    assert_eq!(be32(one(&file, "moov/mvhd"), 16), 3 * VIDEO_TS);
    // A window past the end is refused; one running past the end is shortened.
    let mut b = Mp4Builder::new(Options {
        identity: vec![],
        trim: Some(Trim {
            lead_in_micros: 7_000_000,
            duration_micros: 1,
        }),
    });
    b.push(&init, &segs[0]).unwrap();
    assert!(matches!(b.build(), Err(BuildError::TrimOutOfRange { .. })));
    let mp4 = build(
        &init,
        &segs,
        Options {
            identity: vec![],
            trim: Some(Trim {
                lead_in_micros: 5_000_000,
                duration_micros: 5_000_000,
            }),
        },
    );
    assert_eq!(mp4.bounds().duration_micros, 1_000_000);
}

#[test]
fn audio_only_and_video_only() {
    let audio = Synth {
        video: false,
        ..Synth::default()
    };
    let mp4 = build(&audio.init(), &[audio.segment(0)], Options::default());
    assert_eq!(mp4.content_type(), "audio/mp4; codecs=\"mp4a.40.2\"");
    let t = traks(&whole(&mp4));
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].elst, vec![(94 * 1024, 0)]);

    let video = Synth {
        audio: false,
        ..Synth::default()
    };
    let mp4 = build(&video.init(), &[video.segment(0)], Options::default());
    assert_eq!(mp4.content_type(), "video/mp4; codecs=\"avc1.64001f\"");
    assert_eq!(traks(&whole(&mp4)).len(), 1);
}

#[test]
fn etag_depends_on_identity_options_and_segments() {
    let synth = Synth::default();
    let init = synth.init();
    let segs = vec![synth.segment(0)];
    let opt = |id: &[u8], trim| Options {
        identity: id.to_vec(),
        trim,
    };
    let a = build(&init, &segs, opt(b"a", None));
    assert_eq!(a.etag(), build(&init, &segs, opt(b"a", None)).etag());
    assert_eq!(a.etag().len(), 34);
    assert!(a.etag().starts_with('"') && a.etag().ends_with('"'));
    assert_ne!(a.etag(), build(&init, &segs, opt(b"b", None)).etag());
    let t = Trim {
        lead_in_micros: 0,
        duration_micros: 1_000_000,
    };
    assert_ne!(a.etag(), build(&init, &segs, opt(b"a", Some(t))).etag());
    let two = vec![synth.segment(0), synth.segment(1)];
    assert_ne!(a.etag(), build(&init, &two, opt(b"a", None)).etag());
}

/// A clip over 4 GiB: `co64`, a 64-bit `mdat` size, and reads near the end. The
/// segments share one buffer, so the test needs little memory.
#[test]
fn over_4_gib_uses_co64_and_largesize() {
    let shared = Bytes::from(vec![7u8; 4 << 20]);
    let init = Synth {
        audio: false,
        ..Synth::default()
    }
    .init();
    // 1100 segments of 4 MiB: about 4.3 GiB.
    let segs: Vec<MediaSegment> = (0..1100u64)
        .map(|n| MediaSegment {
            bytes: shared.clone(),
            producer_time: None,
            events: vec![],
            tracks: vec![TrackSamples {
                track_id: 1,
                base_decode_ticks: n * 60 * 512,
                sample_description_index: 1,
                samples: (0..60u32)
                    .map(|k| Sample {
                        decode_ticks: n * 60 * 512 + u64::from(k) * 512,
                        duration: 512,
                        // Runs inside each segment: encoded rows, shared pieces.
                        composition_offset: [1024, 2048, 0, 512][k as usize % 4],
                        offset: 16 + k * 65536,
                        size: 65536,
                        is_sync: k == 0,
                    })
                    .collect(),
            }],
            mdat_ranges: vec![16..(4 << 20)],
        })
        .collect();
    let mp4 = build(&init, &segs, Options::default());
    assert!(mp4.len() > 1 << 32);
    let header: Vec<u8> = mp4
        .range(0..mp4.header_len())
        .unwrap()
        .flat_map(|b| b.to_vec())
        .collect();
    let moov = children(&header)[1].body;
    assert_eq!(all(moov, "trak/mdia/minf/stbl/stco").len(), 0);
    let co64 = all(moov, "trak/mdia/minf/stbl/co64");
    assert_eq!(co64.len(), 1);
    let last = be64(co64[0].body, 8 + 1099 * 8);
    assert_eq!(last, mp4.header_len() + 1099 * 60 * 65536);
    let tail = &header[header.len() - 16..];
    assert_eq!(be32(tail, 0), 1);
    assert_eq!(&tail[4..8], b"mdat");
    assert_eq!(be64(tail, 8), mp4.len() - (mp4.header_len() - 16));
    // The header from the rows encoded at ingest: the same bytes, co64 included.
    let mut b = Mp4Builder::new(Options::default());
    for seg in &segs {
        b.push_prepared(&init, seg, &SegmentTables::new(seg))
            .unwrap();
    }
    let pieced = b.build().unwrap();
    assert_eq!(pieced.header_len(), mp4.header_len());
    assert!(pieced.range(0..pieced.header_len()).unwrap().count() > 1100);
    let same: Vec<u8> = pieced
        .range(0..pieced.header_len())
        .unwrap()
        .flat_map(|b| b.to_vec())
        .collect();
    assert!(same == header, "the same header");
    // A 1 MiB read in the middle.
    let mid = mp4.len() / 2;
    let got: u64 = mp4
        .range(mid..mid + (1 << 20))
        .unwrap()
        .map(|b| b.len() as u64)
        .sum();
    assert_eq!(got, 1 << 20);
}

#[test]
fn ranges_out_of_bounds_are_errors() {
    let synth = Synth::default();
    let mp4 = build(&synth.init(), &[synth.segment(0)], Options::default());
    let len = mp4.len();
    assert!(mp4.range(0..len + 1).is_err());
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 5..4;
    assert!(mp4.range(backwards).is_err());
    assert_eq!(mp4.range(len..len).unwrap().count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any range read from the virtual file is the same range of the file written
    /// out whole, and its length is exact.
    #[test]
    fn any_range_equals_the_whole_file(a in 0u64..1_000_000, b in 0u64..1_000_000, segs in 1u64..4) {
        let synth = Synth::default();
        let init = synth.init();
        let segs: Vec<_> = (0..segs).map(|n| synth.segment(n)).collect();
        let mp4 = build(&init, &segs, Options::default());
        let file = whole(&mp4);
        let (s, e) = (a.min(b) % (mp4.len() + 1), a.max(b) % (mp4.len() + 1));
        let (s, e) = (s.min(e), s.max(e));
        let pieces: Vec<Bytes> = mp4.range(s..e).unwrap().collect();
        prop_assert!(pieces.iter().all(|p| !p.is_empty()));
        let got: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        prop_assert_eq!(got.len() as u64, e - s);
        prop_assert_eq!(&got[..], &file[s as usize..e as usize]);
    }
}

/// A 300-byte segment with two `mdat` bodies (8..200, 220..300) and the given
/// video (track 1, sample description `sdi`) and audio (track 2) samples.
fn hostile_segment(video: Vec<Sample>, audio: Vec<Sample>, sdi: u32) -> MediaSegment {
    MediaSegment {
        bytes: Bytes::from(vec![3u8; 300]),
        producer_time: None,
        events: vec![],
        tracks: vec![
            TrackSamples {
                track_id: 1,
                base_decode_ticks: 0,
                sample_description_index: sdi,
                samples: video,
            },
            TrackSamples {
                track_id: 2,
                base_decode_ticks: 0,
                sample_description_index: 1,
                samples: audio,
            },
        ],
        mdat_ranges: vec![8..200, 220..300],
    }
}

fn hostile_sample(offsets: Range<u32>) -> impl Strategy<Value = Sample> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<i32>(),
        offsets,
        0u32..8,
        any::<bool>(),
    )
        .prop_map(|(dt, duration, cto, offset, size, is_sync)| Sample {
            decode_ticks: dt,
            duration,
            composition_offset: cto,
            offset,
            size,
            is_sync,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Hostile sample tables (any times, offsets, sizes, edit lists, timescales) never
    /// panic the builder, and a built file's pieces always add up to its length.
    #[test]
    fn hostile_tables_never_panic(
        segs in proptest::collection::vec(
            (proptest::collection::vec(hostile_sample(0..210), 0..6),
             proptest::collection::vec(hostile_sample(215..300), 0..6),
             0u32..3,
             any::<bool>()),
            1..4),
        media_time in -1i64..5000,
        empty in 0u64..u64::MAX,
        timescale in 1u32..200_000,
    ) {
        let mut init = Synth::default().init();
        init.tracks[0].edits = vec![EditEntry { segment_duration: empty, media_time, media_rate: 1 }];
        init.tracks[1].timescale = timescale;
        let mut other = init.clone();
        other.bytes = Bytes::from_static(b"another init");
        other.tracks[1].timescale = timescale / 2 + 1;
        let mut b = Mp4Builder::new(Options::default());
        for (video, audio, sdi, restart) in segs {
            let seg = hostile_segment(video, audio, sdi);
            let _ = b.push(if restart { &other } else { &init }, &seg);
        }
        let built = b.build();
        if let Ok(mp4) = built {
            let total: u64 = mp4.range(0..mp4.len()).unwrap().map(|p| p.len() as u64).sum();
            prop_assert_eq!(total, mp4.len());
        }
    }
}

#[test]
fn time_jumps_with_the_same_init_are_stitched() {
    // Same init, but media time jumps forward (a lost segment) and then back (an
    // encoder that restarted its clock without a new init): both are seams.
    let synth = Synth::default();
    let init = synth.init();
    let segs = vec![
        synth.segment(0),
        synth.segment(1),
        synth.segment(5),
        synth.segment(0),
    ];
    let mp4 = build(&init, &segs, Options::default());
    let t = traks(&whole(&mp4));
    // Video: 240 frames back to back, no gap and no overlap.
    assert_eq!(t[0].stts, vec![vec![240, FRAME]]);
    // Audio: continuous, every duration positive, ending within a frame of 8 s.
    let audio_end: u64 = t[1].stts.iter().map(|r| u64::from(r[0] * r[1])).sum();
    assert!(t[1].stts.iter().all(|r| r[1] >= 1));
    assert!(
        audio_end.abs_diff(8 * 48000) <= u64::from(AFRAME),
        "{audio_end}"
    );
    let d = mp4.bounds().duration_micros;
    assert!((8_000_000..8_021_334).contains(&d), "{d}");
}

/// Three encoders a stream may restart into: two sample entries, three time bases.
fn encoders(audio_shift: i64) -> Vec<Synth> {
    (0u8..3)
        .map(|k| Synth {
            audio_shift,
            entry_tag: k % 2,
            time_base: u64::from(k) * 1_000_000,
            ..Synth::default()
        })
        .collect()
}

/// Both ways of pushing a segment, side by side: the file (or the error) must be the
/// same, byte for byte.
fn same_both_ways(
    pushes: &[(&InitSegment, &MediaSegment)],
    options: Options,
) -> Result<(), TestCaseError> {
    let mut walked = Mp4Builder::new(options.clone());
    let mut prepared = Mp4Builder::new(options);
    for &(init, seg) in pushes {
        let a = walked.push(init, seg);
        let b = prepared.push_prepared(init, seg, &SegmentTables::new(seg));
        prop_assert_eq!(&a, &b);
        if a.is_err() {
            return Ok(());
        }
    }
    match (walked.build(), prepared.build()) {
        (Ok(x), Ok(y)) => {
            prop_assert_eq!(x.etag(), y.etag());
            prop_assert_eq!(x.len(), y.len());
            prop_assert!(whole(&x) == whole(&y), "files differ");
        }
        (x, y) => prop_assert_eq!(x.err(), y.err()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// The summaries made at ingest give the very file the sample-by-sample path
    /// writes: over realistic runs with gaps, jumps back, encoder restarts (another
    /// base time, another sample entry) and audio leads.
    #[test]
    fn prepared_tables_write_the_same_file(
        steps in proptest::collection::vec((0u64..12, 0u8..3, any::<bool>()), 1..12),
        audio_shift in -3000i64..3000,
        trim in proptest::option::of((0u64..3_000_000, 1u64..20_000_000)),
    ) {
        let synths = encoders(audio_shift);
        let inits: Vec<InitSegment> = synths.iter().map(|s| s.init()).collect();
        let mut segs = Vec::new();
        for (i, &(n, which, _)) in steps.iter().enumerate() {
            // The first segment starts on a keyframe of the first init.
            let which = if i == 0 { 0 } else { usize::from(which) };
            segs.push((which, synths[which].segment(n)));
        }
        let pushes: Vec<(&InitSegment, &MediaSegment)> =
            segs.iter().map(|(w, s)| (&inits[*w], s)).collect();
        let trim = trim.map(|(lead_in_micros, duration_micros)| Trim { lead_in_micros, duration_micros });
        same_both_ways(&pushes, Options { identity: b"x".to_vec(), trim })?;
    }

    /// The same over hostile tables: any times, offsets, sizes, empty samples.
    #[test]
    fn prepared_tables_match_on_hostile_input(
        segs in proptest::collection::vec(
            (proptest::collection::vec(hostile_sample(0..210), 0..6),
             proptest::collection::vec(hostile_sample(215..300), 0..6),
             0u32..3,
             any::<bool>()),
            1..4),
        timescale in 1u32..200_000,
    ) {
        let init = Synth::default().init();
        let mut other = init.clone();
        other.bytes = Bytes::from_static(b"another init");
        other.tracks[1].timescale = timescale;
        let segs: Vec<(bool, MediaSegment)> = segs.into_iter().map(|(video, audio, sdi, restart)| (restart, hostile_segment(video, audio, sdi))).collect();
        let pushes: Vec<(&InitSegment, &MediaSegment)> =
            segs.iter().map(|(r, s)| (if *r { &other } else { &init }, s)).collect();
        same_both_ways(&pushes, Options::default())?;
    }
}

/// Pushes `pushes` sample by sample, and again with consecutive segments grouped
/// into blocks of the sizes `groups` gives in turn (a group taken whole where
/// [`BlockTables::new`] and [`Mp4Builder::push_block`] accept it, else segment by
/// segment): the file, or the error, must be the same byte for byte. Returns how
/// many blocks were taken whole.
fn same_with_blocks(
    pushes: &[(&InitSegment, &MediaSegment)],
    groups: &[usize],
    options: Options,
) -> Result<usize, TestCaseError> {
    let mut walked = Mp4Builder::new(options.clone());
    let walked = pushes
        .iter()
        .try_for_each(|&(init, seg)| walked.push(init, seg))
        .and_then(|()| walked.build());
    let mut blocked = Mp4Builder::new(options);
    let mut taken = 0;
    let mut rest = pushes;
    let mut sizes = groups.iter().cycle();
    let mut result = Ok(());
    while !rest.is_empty() && result.is_ok() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (group, tail) = rest.split_at(n);
        rest = tail;
        let init = group[0].0;
        let segs: Vec<&MediaSegment> = group.iter().map(|p| p.1).collect();
        let block = group
            .iter()
            .all(|p| std::ptr::eq(p.0, init))
            .then(|| BlockTables::new(init, &segs))
            .flatten();
        if let Some(block) = block {
            prop_assert_eq!(block.segments(), n);
            match blocked.push_block(init, &block) {
                Ok(true) => {
                    taken += 1;
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        result = group
            .iter()
            .try_for_each(|&(i, s)| blocked.push_prepared(i, s, &SegmentTables::new(s)));
    }
    let blocked = result.and_then(|()| blocked.build());
    match (walked, blocked) {
        (Ok(x), Ok(y)) => {
            prop_assert_eq!(x.etag(), y.etag());
            prop_assert_eq!(x.len(), y.len());
            let all = whole(&x);
            prop_assert!(all == whole(&y), "files differ");
            // Ranges starting and ending anywhere, inside a block's slices too.
            let n = y.len();
            for (a, b) in [
                (0, 1),
                (n / 3, 2 * n / 3),
                (n / 2 + 7, n),
                (n - 1, n),
                (5, 5),
            ] {
                let (a, b) = (a.min(n), b.min(n));
                let got: Vec<u8> = y.range(a..b).unwrap().flat_map(|p| p.to_vec()).collect();
                prop_assert!(got[..] == all[a as usize..b as usize], "range {}..{}", a, b);
            }
        }
        (x, y) => prop_assert_eq!(x.err(), y.err()),
    }
    Ok(taken)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Blocks of consecutive segments taken whole give the very file the
    /// sample-by-sample path writes: over runs of consecutive segments broken by
    /// gaps, jumps back, encoder restarts (another init, base time or sample entry)
    /// and audio leads, blocks cut anywhere (across a seam they are refused).
    #[test]
    fn blocks_write_the_same_file(
        runs in proptest::collection::vec((0u64..12, 1u64..6, 0u8..3), 1..6),
        groups in proptest::collection::vec(1usize..6, 1..6),
        audio_shift in -3000i64..3000,
        trim in proptest::option::of((0u64..3_000_000, 1u64..30_000_000)),
    ) {
        let synths = encoders(audio_shift);
        let inits: Vec<InitSegment> = synths.iter().map(|s| s.init()).collect();
        let mut segs = Vec::new();
        for (i, &(start, len, which)) in runs.iter().enumerate() {
            let which = if i == 0 { 0 } else { usize::from(which) };
            for n in start..start + len {
                segs.push((which, synths[which].segment(n)));
            }
        }
        let pushes: Vec<(&InitSegment, &MediaSegment)> =
            segs.iter().map(|(w, s)| (&inits[*w], s)).collect();
        let trim = trim.map(|(lead_in_micros, duration_micros)| Trim { lead_in_micros, duration_micros });
        same_with_blocks(&pushes, &groups, Options { identity: b"x".to_vec(), trim })?;
    }

    /// The same over hostile tables: any times, offsets, sizes, empty samples.
    #[test]
    fn blocks_match_on_hostile_input(
        segs in proptest::collection::vec(
            (proptest::collection::vec(hostile_sample(0..210), 0..6),
             proptest::collection::vec(hostile_sample(215..300), 0..6),
             0u32..3),
            1..8),
        groups in proptest::collection::vec(1usize..5, 1..4),
    ) {
        let init = Synth::default().init();
        let segs: Vec<MediaSegment> = segs.into_iter().map(|(video, audio, sdi)| hostile_segment(video, audio, sdi)).collect();
        let pushes: Vec<(&InitSegment, &MediaSegment)> = segs.iter().map(|s| (&init, s)).collect();
        same_with_blocks(&pushes, &groups, Options::default())?;
    }
}

/// A long continuous run is taken in blocks (not refused everywhere), and the file
/// is the same as walked; a block straddling a time jump is refused.
#[test]
fn continuous_blocks_are_taken_whole() {
    let synth = Synth::default();
    let init = synth.init();
    let segs: Vec<MediaSegment> = (0..20).map(|n| synth.segment(n)).collect();
    let pushes: Vec<(&InitSegment, &MediaSegment)> = segs.iter().map(|s| (&init, s)).collect();
    // One segment first (a block never starts a file), then blocks of 4 and 5.
    let taken = same_with_blocks(&pushes, &[1, 4, 5, 5, 5], Options::default()).unwrap();
    assert_eq!(taken, 4);
    let jump = [synth.segment(0), synth.segment(1), synth.segment(3)];
    let refs: Vec<&MediaSegment> = jump.iter().collect();
    assert!(BlockTables::new(&init, &refs).is_none(), "a gap inside");
    assert!(BlockTables::new(&init, &refs[..2]).is_some());
}

/// Every sample of a parsed track as a player reads it: decode time, duration,
/// composition offset, byte range in the file, whether it is a sync sample.
fn expanded(p: &Parsed) -> Vec<(u64, u32, i64, Range<u64>, bool)> {
    let mut durations = p
        .stts
        .iter()
        .flat_map(|r| std::iter::repeat_n(r[1], r[0] as usize));
    let offsets: Vec<i64> = match &p.ctts {
        Some((version, rows)) => rows
            .iter()
            .flat_map(|r| {
                let o = if *version == 1 {
                    i64::from(r[1] as i32)
                } else {
                    i64::from(r[1])
                };
                std::iter::repeat_n(o, r[0] as usize)
            })
            .collect(),
        None => Vec::new(),
    };
    let mut decode = 0u64;
    sample_ranges(p)
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let d = durations.next().expect("a duration per sample");
            let sync = p.stss.as_ref().is_none_or(|s| s.contains(&(i as u32 + 1)));
            let row = (decode, d, offsets.get(i).copied().unwrap_or(0), range, sync);
            decode += u64::from(d);
            row
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// The header made of the chunks' encoded rows (`push_prepared`: many pieces)
    /// means what the header built whole sample by sample (`push`: one buffer, the
    /// form before issue 19) does: parsed back, every track has the same samples
    /// with the same decode times, durations, composition offsets, file byte ranges
    /// and sync flags, the same edit lists and durations; the media bytes at those
    /// ranges are the same. Longer clips than the byte-for-byte test above: up to 40
    /// segments with restarts, gaps and audio leads.
    #[test]
    fn pieced_header_means_what_the_built_one_does(
        steps in proptest::collection::vec((0u64..40, 0u8..3, any::<bool>()), 1..40),
        audio_shift in -3000i64..3000,
        trim in proptest::option::of((0u64..3_000_000, 1u64..60_000_000)),
    ) {
        let synths = encoders(audio_shift);
        let inits: Vec<InitSegment> = synths.iter().map(|s| s.init()).collect();
        let segs: Vec<(usize, MediaSegment)> = steps
            .iter()
            .enumerate()
            .map(|(i, &(n, which, _))| {
                let which = if i == 0 { 0 } else { usize::from(which) };
                (which, synths[which].segment(n))
            })
            .collect();
        let trim = trim.map(|(lead_in_micros, duration_micros)| Trim { lead_in_micros, duration_micros });
        let options = Options { identity: b"x".to_vec(), trim };
        let mut walked = Mp4Builder::new(options.clone());
        let mut pieced = Mp4Builder::new(options);
        for (w, seg) in &segs {
            walked.push(&inits[*w], seg).unwrap();
            pieced.push_prepared(&inits[*w], seg, &SegmentTables::new(seg)).unwrap();
        }
        let (walked, pieced) = match (walked.build(), pieced.build()) {
            (Ok(x), Ok(y)) => (x, y),
            (x, y) => {
                prop_assert_eq!(x.err(), y.err());
                return Ok(());
            }
        };
        prop_assert_eq!(walked.range(0..walked.header_len()).unwrap().count(), 1);
        prop_assert!(pieced.range(0..pieced.header_len()).unwrap().count() > 1);
        let (a, b) = (whole(&walked), whole(&pieced));
        let (ta, tb) = (traks(&a), traks(&b));
        prop_assert_eq!(ta.len(), tb.len());
        for (x, y) in ta.iter().zip(&tb) {
            let (ex, ey) = (expanded(x), expanded(y));
            prop_assert_eq!(ex.len(), x.sizes.len());
            prop_assert_eq!(&ex, &ey);
            for row in &ey {
                let r = row.3.start as usize..row.3.end as usize;
                prop_assert!(a[r.clone()] == b[r]);
            }
            prop_assert_eq!(
                (x.timescale, x.handler, &x.elst, x.tkhd_duration, x.mdhd_duration, x.stsd_entries),
                (y.timescale, y.handler, &y.elst, y.tkhd_duration, y.mdhd_duration, y.stsd_entries)
            );
        }
        prop_assert_eq!(walked.bounds(), pieced.bounds());
        prop_assert_eq!(walked.sample_counts(), pieced.sample_counts());
    }
}
