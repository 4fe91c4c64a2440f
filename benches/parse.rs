//! Parsing a 2 s 720p CMAF segment (`tests/fixtures/bench_720p`, ~420 KB, H.264 1.5
//! Mbit/s + AAC) against a memcpy of the same bytes, both as `Throughput::Bytes`, so the
//! result reads as a ratio: parsing touches the `moof` and box headers only, never
//! the payload, and should cost a small fraction of copying it.
//!
//! `cargo bench --bench parse`; the ratio is `parse_segment` time / `memcpy` time.

use std::hint::black_box;
use std::path::Path;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dvrclip::fmp4::{parse_init, parse_segment};

fn read(name: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bench_720p")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn parse(c: &mut Criterion) {
    let init = parse_init(read("init.mp4")).expect("fixture init parses");
    let seg = read("seg_000.m4s");
    let mut g = c.benchmark_group("segment_720p_2s");
    g.throughput(Throughput::Bytes(seg.len() as u64));
    // The baseline: a bare memcpy into a buffer allocated up front, so only the copy is
    // measured. The segment fits in cache, so this is the fastest a copy can be.
    let mut dst = vec![0u8; seg.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&seg));
            black_box(&dst);
        })
    });
    // What an ingest that copied would pay: a fresh buffer per segment.
    g.bench_function("copy_to_new_buffer", |b| {
        b.iter(|| Bytes::copy_from_slice(black_box(&seg)))
    });
    g.bench_function("parse_segment", |b| {
        b.iter(|| parse_segment(black_box(seg.clone()), &init).expect("fixture segment parses"))
    });
    g.finish();

    let mut g = c.benchmark_group("init_720p");
    g.throughput(Throughput::Bytes(init.bytes.len() as u64));
    g.bench_function("parse_init", |b| {
        b.iter(|| parse_init(black_box(init.bytes.clone())))
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
