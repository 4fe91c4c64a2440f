//! Engine benchmarks: clip creation latency against DVR size (the goal is flat:
//! O(log n) search plus O(k) for the clip's own chunks), push cost per segment beside
//! a memcpy of the same bytes, and reader latency while a writer pushes.
//!
//! ```text
//! cargo bench --bench engine
//! ```
//! Under `cargo test` (debug, invariant checks on) the DVRs shrink so the smoke run
//! stays quick; the numbers worth reading come from `cargo bench`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dvrclip::engine::{
    ClipRequest, Clock, Engine, EngineConfig, ManualClock, StreamId, StreamSettings, WallTime,
};
use dvrclip::fmp4::synthetic::{self, FRAME_TICKS};
use dvrclip::fmp4::{InitSegment, MediaSegment};

const SEG_FRAMES: u32 = 60; // 2 s chunks, a common HLS segment length
const SEG_TICKS: u64 = SEG_FRAMES as u64 * FRAME_TICKS as u64;
const RENDITIONS: [(&str, u16); 3] = [
    ("media_1_360", 360),
    ("media_2_720", 720),
    ("media_3_1080", 1080),
];

fn init(height: u16) -> InitSegment {
    synthetic::video_init(Bytes::from(vec![height as u8; 16]), height * 16 / 9, height)
}

fn segment(payload: &Bytes, k: u64) -> MediaSegment {
    synthetic::video_segment(payload.clone(), k * SEG_TICKS, SEG_FRAMES, true)
}

struct Fixture {
    clock: Arc<ManualClock>,
    engine: Arc<Engine>,
    stream: StreamId,
    payload: Bytes,
    next: u64,
}

impl Fixture {
    /// A stream of 3 renditions holding `dvr_secs` of 2 s chunks of `seg_bytes` each.
    fn new(dvr_secs: u32, seg_bytes: usize) -> Fixture {
        let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(1_795_564_800)));
        let engine = Arc::new(Engine::with_clock(
            EngineConfig {
                memory_budget_bytes: 16 << 30,
                ..Default::default()
            },
            clock.clone(),
        ));
        let mut settings = StreamSettings::named("bench");
        settings.dvr_duration_secs = dvr_secs;
        let stream = engine
            .create_stream(settings)
            .map(|i| i.id)
            .unwrap_or(StreamId(0));
        for (name, h) in RENDITIONS {
            let _ = engine.push_init(stream, name, init(h));
        }
        // Bytes are shared by every chunk: the bench measures the engine, not malloc.
        let payload = Bytes::from(vec![0x5a; seg_bytes]);
        let mut f = Fixture {
            clock,
            engine,
            stream,
            payload,
            next: 0,
        };
        for _ in 0..dvr_secs / 2 {
            f.push_all();
        }
        f
    }

    /// Time spent in `iters` pushes of one segment to the top rendition.
    fn time_pushes(&mut self, iters: u64) -> Duration {
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            let seg = segment(&self.payload, self.next);
            self.next += 1;
            self.clock.advance_secs(2);
            let t = Instant::now();
            let _ = black_box(
                self.engine
                    .push_segment(self.stream, "media_3_1080", None, seg),
            );
            spent += t.elapsed();
        }
        spent
    }

    fn push_all(&mut self) {
        self.clock.advance_secs(2);
        for (name, _) in RENDITIONS {
            let _ = self.engine.push_segment(
                self.stream,
                name,
                None,
                segment(&self.payload, self.next),
            );
        }
        self.next += 1;
    }
}

/// Full-size DVRs under `cargo bench`; small ones under the debug smoke test.
fn dvr_sizes() -> Vec<(&'static str, u32)> {
    if cfg!(debug_assertions) {
        vec![("1min", 60), ("10min", 600)]
    } else {
        vec![("1min", 60), ("1h", 3600), ("4h", 4 * 3600)]
    }
}

fn clip_creation(c: &mut Criterion) {
    let mut g = c.benchmark_group("create_clip_30s_x3_renditions");
    for (label, dvr) in dvr_sizes() {
        let f = Fixture::new(dvr, 1024);
        let now = f.clock.now();
        // A 30 s clip from the middle of the DVR (a past clip: cut at once).
        let start = now.add_micros(-i64::from(dvr) * 500_000).unix_secs();
        let req = ClipRequest {
            duration_secs: 30,
            start_unix_secs: Some(start),
            ..Default::default()
        };
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let clip = f.engine.create_clip(f.stream, black_box(req.clone()));
                    spent += t.elapsed();
                    // Keep the store from growing across iterations (not timed).
                    if let Ok(clip) = clip {
                        let _ = f.engine.delete_clip(clip.id());
                    }
                }
                spent
            })
        });
    }
    g.finish();
}

fn push(c: &mut Criterion) {
    let mut g = c.benchmark_group("push_segment");
    // A 2 s 1.5 Mbit/s chunk; the DVR is full, so every push also prunes one chunk.
    let seg_bytes = 375_000;
    g.throughput(Throughput::Bytes(seg_bytes as u64));
    let dvr = if cfg!(debug_assertions) { 60 } else { 3600 };
    let mut f = Fixture::new(dvr, seg_bytes);
    g.bench_function("one_rendition_full_1h_dvr", |b| {
        b.iter_custom(|iters| f.time_pushes(iters))
    });
    // Baseline: what copying the segment once would cost (the engine copies nothing).
    let src = vec![0x5au8; seg_bytes];
    let mut dst = vec![0u8; seg_bytes];
    g.bench_function("baseline_memcpy_same_bytes", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    g.finish();
}

fn readers_under_writer(c: &mut Criterion) {
    let mut g = c.benchmark_group("reader_while_writer_pushes");
    let dvr = if cfg!(debug_assertions) { 60 } else { 3600 };
    let f = Fixture::new(dvr, 1024);
    let stop = Arc::new(AtomicBool::new(false));
    // The writer publishes the newest seq it pushed; readers look that chunk up.
    let newest = Arc::new(AtomicU64::new(f.next.saturating_sub(1)));
    let writer = {
        let (engine, clock, stream, payload) = (
            Arc::clone(&f.engine),
            Arc::clone(&f.clock),
            f.stream,
            f.payload.clone(),
        );
        let (stop, newest) = (Arc::clone(&stop), Arc::clone(&newest));
        let mut k = f.next;
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                clock.advance_secs(2);
                for (name, _) in RENDITIONS {
                    let _ = engine.push_segment(stream, name, None, segment(&payload, k));
                }
                newest.store(k, Ordering::Relaxed);
                k += 1;
            }
        })
    };
    g.bench_function("chunk_by_seq", |b| {
        b.iter(|| {
            let seq = newest.load(Ordering::Relaxed);
            black_box(f.engine.chunk(f.stream, "media_2_720", black_box(seq)))
        })
    });
    g.bench_function("create_clip_30s", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = f.clock.now().add_micros(-60_000_000).unix_secs();
                let req = ClipRequest {
                    duration_secs: 30,
                    start_unix_secs: Some(start),
                    ..Default::default()
                };
                let t = Instant::now();
                let clip = f.engine.create_clip(f.stream, req);
                spent += t.elapsed();
                if let Ok(clip) = clip {
                    let _ = f.engine.delete_clip(clip.id());
                }
            }
            spent
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
}

/// The writer's cost with N reader threads looking chunks up in a tight loop. On a
/// 2-core machine readers past one also take CPU time from the writer: the figure
/// then includes preemption, not only lock waits.
fn push_with_readers(c: &mut Criterion) {
    let mut g = c.benchmark_group("push_segment_with_readers");
    let dvr = if cfg!(debug_assertions) { 60 } else { 3600 };
    let readers: &[usize] = if cfg!(debug_assertions) {
        &[1]
    } else {
        &[0, 1, 2, 4]
    };
    for &n in readers {
        let mut f = Fixture::new(dvr, 1024);
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (engine, stream, stop) = (Arc::clone(&f.engine), f.stream, Arc::clone(&stop));
                let newest = f.next.saturating_sub(1);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        black_box(engine.chunk(stream, "media_3_1080", newest).ok());
                    }
                })
            })
            .collect();
        g.bench_function(BenchmarkId::from_parameter(format!("{n}_readers")), |b| {
            b.iter_custom(|iters| f.time_pushes(iters))
        });
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    clip_creation,
    push,
    readers_under_writer,
    push_with_readers
);
criterion_main!(benches);
