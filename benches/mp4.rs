//! The progressive MP4 of a clip: building its header (every segment pushed, then
//! `moov` written) for a 60 s and a 4 h clip, and reading a 1 MiB range from the
//! middle of the 4 h file, each beside a memcpy of the same number of bytes.
//!
//! Segments are synthesised (2 s each: 60 frames of 30 fps H.264-like video with
//! B-frame offsets, ~94 frames of 48 kHz AAC, ~1 MB per segment) and share one
//! payload buffer, so the 4 h clip (~7 GB virtual file, 1.1 M samples) fits in
//! little memory. Targets: 60 s header ≤ 1 ms, 4 h header ≤ 50 ms.
//!
//! `build` walks every sample and writes the header as one buffer (the form before
//! issue 19's pieced header); `build_prepared` is what `Clip::mp4` does: each
//! segment's rows were summarised and encoded at ingest (`SegmentTables`) and the
//! header takes them as pieces, so the first byte waits for O(segments) work.
//! `header_pieces_copied` is the other cost of pieces: reading the whole header out
//! of them (what a body does gathering them into frames).
//!
//! `build_blocks` is what `Clip::mp4` does since the ring keeps an index of blocks
//! (64 consecutive segments summarised as one, `BlockTables`, made at ingest): a
//! block the clip holds whole is taken as a few pieces, the rest segment by segment
//! (here the first block, which starts the file, and the last 32 segments).
//!
//! Also what ingest now pays per segment: its rows summarised (`SegmentTables`), and
//! per 64 segments: their block of the index (`index_block_64_segments`).
//!
//! `cargo bench --bench mp4`; ratios: `memcpy` time / the other's time per group.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dvrclip::fmp4::progressive::{BlockTables, Mp4Builder, Options, SegmentTables, VirtualMp4};
use dvrclip::fmp4::{
    AudioInfo, FourCC, InitSegment, MediaSegment, Sample, SampleEntry, Track, TrackDefaults,
    TrackKind, TrackSamples, VideoInfo,
};

const FRAME: u32 = 512; // 30 fps at 15360 Hz
const AFRAME: u32 = 1024; // AAC at 48 kHz
const SEG_FRAMES: u64 = 60;

fn stsd(format: &[u8; 4]) -> Bytes {
    let mut b = vec![0, 0, 0, 32];
    b.extend_from_slice(b"stsd");
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 16]);
    b.extend_from_slice(format);
    b.extend_from_slice(&[0; 8]);
    Bytes::from(b)
}

fn track(id: u32, kind: TrackKind, timescale: u32, format: &[u8; 4], codec: &str) -> Track {
    Track {
        track_id: id,
        kind,
        timescale,
        language: 0x55c4,
        defaults: TrackDefaults::default(),
        edits: vec![],
        entry: SampleEntry {
            format: FourCC::new(format),
            stsd: stsd(format),
            config: Bytes::new(),
            codec: codec.into(),
            video: (kind == TrackKind::Video).then_some(VideoInfo {
                width: 1280,
                height: 720,
            }),
            audio: (kind == TrackKind::Audio).then_some(AudioInfo {
                sample_rate: 48000,
                channels: 2,
            }),
        },
    }
}

fn init() -> InitSegment {
    InitSegment {
        bytes: Bytes::from_static(b"bench init"),
        movie_timescale: 1000,
        tracks: vec![
            track(1, TrackKind::Video, 15360, b"avc1", "avc1.64001f"),
            track(2, TrackKind::Audio, 48000, b"mp4a", "mp4a.40.2"),
        ],
    }
}

/// `n` consecutive 2 s segments over one shared payload buffer.
fn segments(n: u64) -> Vec<MediaSegment> {
    let video_sizes: Vec<u32> = (0..SEG_FRAMES)
        .map(|k| {
            if k == 0 {
                60_000
            } else {
                14_000 + (k as u32 % 5) * 500
            }
        })
        .collect();
    let video_len: u32 = video_sizes.iter().sum();
    let payload_len = 16 + video_len + 100 * 400;
    let payload = Bytes::from(vec![0x5au8; payload_len as usize]);
    let ctos = [1024, 2048, 512, 512];
    (0..n)
        .map(|seg| {
            let base = seg * SEG_FRAMES * u64::from(FRAME);
            let mut offset = 16;
            let video: Vec<Sample> = video_sizes
                .iter()
                .enumerate()
                .map(|(k, &size)| {
                    let s = Sample {
                        decode_ticks: base + k as u64 * u64::from(FRAME),
                        duration: FRAME,
                        composition_offset: if k == 0 { 1024 } else { ctos[k % 4] },
                        offset,
                        size,
                        is_sync: k == 0,
                    };
                    offset += size;
                    s
                })
                .collect();
            let per_seg = 2 * 48000;
            let (first, last) = (
                (seg * per_seg).div_ceil(u64::from(AFRAME)),
                ((seg + 1) * per_seg).div_ceil(u64::from(AFRAME)),
            );
            let audio: Vec<Sample> = (first..last)
                .map(|j| {
                    let s = Sample {
                        decode_ticks: j * u64::from(AFRAME),
                        duration: AFRAME,
                        composition_offset: 0,
                        offset,
                        size: 380 + (j as u32 % 3) * 10,
                        is_sync: true,
                    };
                    offset += s.size;
                    s
                })
                .collect();
            MediaSegment {
                bytes: payload.clone(),
                producer_time: None,
                events: vec![],
                tracks: vec![
                    TrackSamples {
                        track_id: 1,
                        base_decode_ticks: base,
                        sample_description_index: 1,
                        samples: video,
                    },
                    TrackSamples {
                        track_id: 2,
                        base_decode_ticks: first * u64::from(AFRAME),
                        sample_description_index: 1,
                        samples: audio,
                    },
                ],
                mdat_ranges: std::iter::once(16..payload_len).collect(),
            }
        })
        .collect()
}

fn build(init: &InitSegment, segs: &[MediaSegment]) -> VirtualMp4 {
    let mut b = Mp4Builder::new(Options {
        identity: b"bench".to_vec(),
        trim: None,
    });
    // As `Clip::mp4` does.
    b.reserve_samples(
        segs.iter()
            .flat_map(|s| &s.tracks)
            .map(|t| t.samples.len())
            .sum(),
    );
    for s in segs {
        b.push(init, s).expect("synthetic segment");
    }
    b.build().expect("synthetic clip")
}

/// As the engine builds a clip's MP4: the segments' tables were summarised at ingest.
fn build_prepared(init: &InitSegment, segs: &[(MediaSegment, SegmentTables)]) -> VirtualMp4 {
    let mut b = Mp4Builder::new(Options {
        identity: b"bench".to_vec(),
        trim: None,
    });
    // As `Clip::mp4` does.
    b.reserve_segments(segs.len());
    for (s, t) in segs {
        b.push_prepared(init, s, t).expect("synthetic segment");
    }
    b.build().expect("synthetic clip")
}

/// Segments per block, as the engine's ring makes them.
const BLOCK: usize = 64;

/// As `Clip::mp4` builds from the ring's blocks: each whole block in one push where
/// the builder takes it, the other segments one by one.
fn build_blocks(
    init: &InitSegment,
    segs: &[(MediaSegment, SegmentTables)],
    blocks: &[BlockTables],
) -> VirtualMp4 {
    let mut b = Mp4Builder::new(Options {
        identity: b"bench".to_vec(),
        trim: None,
    });
    b.reserve_segments(segs.len());
    for (k, group) in segs.chunks(BLOCK).enumerate() {
        let taken = blocks
            .get(k)
            .is_some_and(|block| b.push_block(init, block).expect("synthetic block"));
        if !taken {
            for (s, t) in group {
                b.push_prepared(init, s, t).expect("synthetic segment");
            }
        }
    }
    b.build().expect("synthetic clip")
}

fn header(c: &mut Criterion) {
    let init = init();
    for (name, n, samples) in [("60s", 30, 100), ("4h", 7200, 10)] {
        let segs = segments(n);
        let mp4 = build(&init, &segs);
        let header_len = mp4.header_len() as usize;
        let mut g = c.benchmark_group(format!("header_{name}"));
        g.sample_size(samples);
        g.throughput(Throughput::Bytes(header_len as u64));
        // Baseline: copying as many bytes as the header holds.
        let src = vec![1u8; header_len];
        let mut dst = vec![0u8; header_len];
        g.bench_function("memcpy", |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
        g.bench_function("build", |b| b.iter(|| build(&init, black_box(&segs))));
        let prepared: Vec<(MediaSegment, SegmentTables)> = segs
            .iter()
            .map(|s| (s.clone(), SegmentTables::new(s)))
            .collect();
        g.bench_function("build_prepared", |b| {
            b.iter(|| build_prepared(&init, black_box(&prepared)))
        });
        let pieced = build_prepared(&init, &prepared);
        assert_eq!(pieced.header_len(), mp4.header_len(), "the same header");
        // Whole blocks only, as the ring makes them (the last partial one is not).
        let blocks: Vec<BlockTables> = segs
            .chunks_exact(BLOCK)
            .map(|g| {
                let refs: Vec<&MediaSegment> = g.iter().collect();
                BlockTables::new(&init, &refs).expect("continuous segments")
            })
            .collect();
        let held: u64 = blocks.iter().map(|b| b.memory_bytes()).sum();
        eprintln!(
            "header_{name}: {} blocks hold {held} bytes of their own, {} per segment",
            blocks.len(),
            held / (blocks.len() * BLOCK).max(1) as u64
        );
        let blocked = build_blocks(&init, &prepared, &blocks);
        assert_eq!(blocked.etag(), mp4.etag(), "the same file");
        assert_eq!(blocked.header_len(), mp4.header_len(), "the same header");
        g.bench_function("build_blocks", |b| {
            b.iter(|| build_blocks(&init, black_box(&prepared), black_box(&blocks)))
        });
        g.bench_function("header_pieces_copied", |b| {
            b.iter(|| {
                let mut at = 0;
                for p in pieced.range(0..pieced.header_len()).expect("in range") {
                    dst[at..at + p.len()].copy_from_slice(&p);
                    at += p.len();
                }
                black_box(&dst);
            })
        });
        g.finish();
    }
}

fn read_range(c: &mut Criterion) {
    let init = init();
    let segs = segments(7200);
    let mp4 = build(&init, &segs);
    let len = 1u64 << 20;
    let start = mp4.len() / 2 + 12345;
    let mut g = c.benchmark_group("read_1MiB_of_4h");
    g.throughput(Throughput::Bytes(len));
    let src = vec![1u8; len as usize];
    let mut dst = vec![0u8; len as usize];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    // What a response body does: find the first piece, yield `Bytes` slices.
    g.bench_function("pieces", |b| {
        b.iter(|| {
            let n: usize = mp4
                .range(black_box(start..start + len))
                .expect("in range")
                .map(|p| p.len())
                .sum();
            black_box(n)
        })
    });
    // The same, then copied out (a socket write would copy them once anyway).
    g.bench_function("pieces_copied", |b| {
        b.iter(|| {
            let mut at = 0;
            for p in mp4.range(black_box(start..start + len)).expect("in range") {
                dst[at..at + p.len()].copy_from_slice(&p);
                at += p.len();
            }
            black_box(&dst);
        })
    });
    g.finish();
}

/// What ingest pays per segment since issue 19: summarising one 2 s segment's table
/// rows (60 video + 94 audio samples), beside a memcpy of the segment's bytes.
fn summarise(c: &mut Criterion) {
    let seg = segments(1).remove(0);
    let mut g = c.benchmark_group("summarise_2s_segment");
    g.throughput(Throughput::Bytes(seg.bytes.len() as u64));
    let mut dst = vec![0u8; seg.bytes.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&seg.bytes));
            black_box(&dst);
        })
    });
    g.bench_function("tables", |b| {
        b.iter(|| black_box(SegmentTables::new(black_box(&seg))))
    });
    g.finish();
}

/// What ingest pays once per 64 chunks since the rings' header index: one block of
/// 64 2 s segments summarised as one (`BlockTables::new`, O(samples)), beside a
/// memcpy of the 64 segments' bytes.
fn index_block(c: &mut Criterion) {
    let init = init();
    let segs = segments(BLOCK as u64);
    let refs: Vec<&MediaSegment> = segs.iter().collect();
    let one = segs[0].bytes.len();
    let mut g = c.benchmark_group("index_block_64_segments");
    g.throughput(Throughput::Bytes((one * BLOCK) as u64));
    let mut dst = vec![0u8; one];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            for s in &segs {
                dst.copy_from_slice(black_box(&s.bytes));
                black_box(&dst);
            }
        })
    });
    g.bench_function("block_tables", |b| {
        b.iter(|| black_box(BlockTables::new(&init, black_box(&refs))))
    });
    g.finish();
}

criterion_group!(benches, header, read_range, summarise, index_block);
criterion_main!(benches);
