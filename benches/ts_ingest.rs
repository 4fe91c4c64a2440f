//! The MPEG-TS door's cost per second of media (issue 17: "demux + fragment cost per
//! second of media against the fMP4 path in the same benchmark run"; target ≤ 2% of
//! one core for a 5 Mb/s stream), beside the fMP4 upload path it replaces.
//!
//! The input is `crates/ingest/tests/fixtures/h264_stereo.ts` (4 s of H.264 + AAC
//! stereo by ffmpeg) re-multiplexed here at 5 Mb/s: each video access unit grows by a
//! filler NAL unit (H.264 type 12, carried into the samples like picture data) so the
//! demuxer, the Annex B conversion and the fragmenter handle a 5 Mb/s stream's bytes.
//! - `ts_publish`: the TS bytes in 1316-byte slices (an SRT message each) through
//!   `TsPublish` into a fresh engine: packets, PES, Annex B → AVCC (one copy), ADTS,
//!   fragmenting, and the copy of each fragment into the buffer the engine keeps.
//! - `fmp4_push_segment_bytes`: the fragments that run produced, pushed as an
//!   uploader's segments would be (`push_init_bytes` + `push_segment_bytes`).
//! - `memcpy`: the TS bytes copied once, the floor.
//!
//! Each is `Throughput::Bytes` of the TS. The share of a core for a live 5 Mb/s
//! stream is the time per iteration / the 4 s of media it holds.
//!
//! `cargo bench --bench ts_ingest`

use std::hint::black_box;
use std::path::Path;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dvrclip::engine::{Engine, EngineConfig, StreamId, StreamSettings};
use dvrclip::ingest::ts::TsPublish;

const MEDIA_SECS: f64 = 4.0;
const TARGET_BITS_PER_SEC: f64 = 5e6;
const VIDEO_PID: u16 = 0x100;

fn fixture() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/ingest/tests/fixtures/h264_stereo.ts");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture with every video PES grown by a filler NAL unit so the stream runs
/// at about 5 Mb/s: PES payloads are collected per PID and written out again.
fn at_5_mbps(ts: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pes: Vec<u8> = Vec::new();
    let mut cc = 0u8;
    let video_pes = ts
        .chunks(188)
        .filter(|p| pid(p) == VIDEO_PID && p[1] & 0x40 != 0)
        .count();
    let extra = ((TARGET_BITS_PER_SEC * MEDIA_SECS / 8.0 - ts.len() as f64) / video_pes as f64)
        .max(0.0) as usize;
    let flush = |out: &mut Vec<u8>, pes: &mut Vec<u8>, cc: &mut u8| {
        if pes.is_empty() {
            return;
        }
        // H.264 §7.3.2.7 filler_data_rbsp: 0xFF bytes, then the stop bit.
        pes.extend_from_slice(&[0, 0, 0, 1, 0x0c]);
        pes.resize(pes.len() + extra, 0xff);
        pes.push(0x80);
        // PES_packet_length 0 (unbounded, as for video).
        pes[4] = 0;
        pes[5] = 0;
        packetize(out, VIDEO_PID, pes, cc);
        pes.clear();
    };
    for p in ts.chunks(188) {
        if pid(p) != VIDEO_PID {
            out.extend_from_slice(p);
            continue;
        }
        if p[1] & 0x40 != 0 {
            flush(&mut out, &mut pes, &mut cc);
        }
        let at = if p[3] & 0x20 != 0 {
            5 + usize::from(p[4])
        } else {
            4
        };
        pes.extend_from_slice(&p[at..]);
    }
    flush(&mut out, &mut pes, &mut cc);
    out
}

fn pid(p: &[u8]) -> u16 {
    u16::from(p[1] & 0x1f) << 8 | u16::from(p[2])
}

/// One PES as packets of `pid`, stuffing the last one's adaptation field.
fn packetize(out: &mut Vec<u8>, pid: u16, pes: &[u8], cc: &mut u8) {
    for (i, piece) in pes.chunks(184).enumerate() {
        let start = if i == 0 { 0x40 } else { 0 };
        out.extend_from_slice(&[0x47, start | (pid >> 8) as u8, pid as u8]);
        if piece.len() == 184 {
            out.push(0x10 | *cc);
        } else {
            let af = 183 - piece.len();
            out.extend_from_slice(&[0x30 | *cc, af as u8]);
            if af > 0 {
                out.push(0);
                out.resize(out.len() + af - 1, 0xff);
            }
        }
        out.extend_from_slice(piece);
        *cc = (*cc + 1) & 0x0f;
    }
}

fn engine() -> (Engine, StreamId) {
    let engine = Engine::new(EngineConfig {
        memory_budget_bytes: 1 << 30,
        ..Default::default()
    });
    let id = engine
        .create_stream(StreamSettings::named("bench"))
        .map(|i| i.id)
        .unwrap_or(StreamId(0));
    (engine, id)
}

fn ts_publish(engine: &Engine, id: StreamId, ts: &[u8]) {
    let mut p = TsPublish::new(id, "ts");
    for message in ts.chunks(1316) {
        p.feed(engine, message).expect("the fixture feeds");
    }
    p.finish(engine).expect("the fixture flushes");
}

fn ingest(c: &mut Criterion) {
    let ts = at_5_mbps(&fixture());
    let mbps = ts.len() as f64 * 8.0 / MEDIA_SECS / 1e6;
    eprintln!(
        "ts_ingest: {} bytes of TS, {mbps:.2} Mb/s over {MEDIA_SECS} s",
        ts.len()
    );

    // The fragments the TS door makes, for the fMP4 path.
    let (e, id) = engine();
    ts_publish(&e, id, &ts);
    let rendition = e.live_rendition(id, "ts").expect("the door stored media");
    let segments: Vec<(Bytes, Bytes)> = rendition
        .to_segment_list()
        .into_iter()
        .map(|(init, seg)| (init.bytes.clone(), seg.bytes))
        .collect();
    let fmp4_bytes: usize = segments.iter().map(|(_, s)| s.len()).sum();
    eprintln!(
        "ts_ingest: {} fragments, {fmp4_bytes} bytes of fMP4",
        segments.len()
    );

    let mut g = c.benchmark_group("ts_ingest_5mbps_4s");
    g.throughput(Throughput::Bytes(ts.len() as u64));
    g.sample_size(20);
    let mut dst = vec![0u8; ts.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&ts));
            black_box(&dst);
        })
    });
    g.bench_function("ts_publish", |b| {
        b.iter_batched(
            engine,
            |(e, id)| {
                ts_publish(&e, id, black_box(&ts));
                e
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("fmp4_push_segment_bytes", |b| {
        b.iter_batched(
            engine,
            |(e, id)| {
                let mut last_init: Option<&Bytes> = None;
                for (init, seg) in &segments {
                    if last_init != Some(init) {
                        e.push_init_bytes(id, "ts", init.clone()).expect("init");
                        last_init = Some(init);
                    }
                    e.push_segment_bytes(id, "ts", None, seg.clone())
                        .expect("segment");
                }
                e
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
