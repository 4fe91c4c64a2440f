//! Rendering a clip's HLS playlists: the master and the top rendition's media playlist
//! of a 60 s clip and of a 4 h clip (7,200 segments per rendition), each beside a
//! memcpy of the same number of bytes, all as `Throughput::Bytes`, so the result also
//! reads as a ratio; and a live poll of a 4 h DVR window: rendered (ring snapshot +
//! render, what every poll cost before issue 19) and cached (the server's poll now:
//! the ring's generation, then the kept text's shared bytes). Target: ≤ 1 ms for the 60 s clip (a recording clip's playlist is
//! rendered on every poll).
//!
//! The stream is `tests/fixtures/ladder` (3 renditions, H.264 + AAC muxed, 2 s
//! segments): each rendition's first segment pushed again and again with its decode
//! times shifted, so every chunk carries real sample tables and codec strings.
//!
//! ```text
//! cargo bench --bench hls
//! ```
//! Under `cargo test` (debug, ring invariant checks on) the long clip shrinks to 10 min
//! so the smoke run stays quick; the numbers worth reading come from `cargo bench`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dvrclip::engine::{
    ClipRequest, ClipView, Engine, EngineConfig, ManualClock, StreamId, StreamSettings, WallTime,
};
use dvrclip::fmp4::{InitSegment, MediaSegment, parse_init, parse_segment};
use dvrclip::hls::{PlaylistKind, live_media_playlist, master_playlist, media_playlist};
use dvrclip::server::playlist_cache::{Key, Playlists};

const LADDER: [(&str, &str); 3] = [
    ("media_3_240", "init_0.mp4"),
    ("media_2_180", "init_1.mp4"),
    ("media_1_144", "init_2.mp4"),
];
const SEG_SECS: i64 = 2;
/// 2026-11-25T06:00:00Z.
const T0_SECS: i64 = 1_795_586_400;
const CLIP: &str = "5f0c2a9e7d3b41c8a6e2f4b1d9c07e35";

fn read(rendition: &str, name: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ladder")
        .join(rendition)
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// `seg` moved `k` segment lengths later in media time, every track by its timescale.
fn shifted(seg: &MediaSegment, init: &InitSegment, k: u64) -> MediaSegment {
    let mut s = seg.clone();
    for t in &mut s.tracks {
        let timescale = init.track(t.track_id).map_or(1, |tr| tr.timescale);
        let shift = k * SEG_SECS as u64 * u64::from(timescale);
        t.base_decode_ticks += shift;
        for sample in &mut t.samples {
            sample.decode_ticks += shift;
        }
    }
    s
}

/// An engine holding `segments` 2 s segments of every ladder rendition, uploaded in
/// real time from T0.
fn stream_of(segments: u64) -> (Engine, StreamId) {
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(T0_SECS)));
    let config = EngineConfig {
        // The payload is one shared `Bytes` per rendition, but the budget counts each
        // chunk's length.
        memory_budget_bytes: 1 << 40,
        ..EngineConfig::default()
    };
    let engine = Engine::with_clock(config, clock.clone());
    let mut settings = StreamSettings::named("bench");
    settings.dvr_duration_secs = (segments as i64 * SEG_SECS + 3600) as u32;
    let stream = engine.create_stream(settings).expect("stream").id;
    let ladder: Vec<(&str, InitSegment, MediaSegment)> = LADDER
        .iter()
        .map(|(name, init_file)| {
            let init = parse_init(read(name, init_file)).expect("fixture init");
            let seg = parse_segment(read(name, "seg_00000.m4s"), &init).expect("fixture seg");
            engine.push_init(stream, name, init.clone()).expect("init");
            (*name, init, seg)
        })
        .collect();
    for k in 0..segments {
        clock.advance_secs(SEG_SECS);
        for (name, init, seg) in &ladder {
            engine
                .push_segment(stream, name, None, shifted(seg, init, k))
                .expect("push");
        }
    }
    (engine, stream)
}

/// A complete clip of `secs` from `offset_secs` into the stream.
fn clip(engine: &Engine, stream: StreamId, offset_secs: i64, secs: u64) -> Arc<ClipView> {
    let start = T0_SECS + SEG_SECS + offset_secs;
    let clip = engine
        .create_clip(
            stream,
            ClipRequest {
                duration_secs: secs,
                start_unix_secs: Some(start),
                ..Default::default()
            },
        )
        .expect("clip");
    let view = clip.view();
    assert!(view.is_complete());
    view
}

fn bench_clip(c: &mut Criterion, label: &str, view: &ClipView) {
    let top = view.reference().expect("reference rendition");
    let master = master_playlist(CLIP, view);
    let media = media_playlist(CLIP, top, PlaylistKind::Vod);
    let mut g = c.benchmark_group(format!("hls_{label}_{}segs", top.chunks().len()));
    for (name, text, render) in [
        (
            "master",
            &master,
            &(|| master_playlist(CLIP, view)) as &dyn Fn() -> String,
        ),
        ("media", &media, &|| {
            media_playlist(CLIP, top, PlaylistKind::Vod)
        }),
    ] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        // The baseline: copying the finished playlist once.
        let mut dst = vec![0u8; text.len()];
        g.bench_function(format!("{name}_memcpy"), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(text.as_bytes()));
                black_box(&dst);
            })
        });
        g.bench_function(name, |b| b.iter(|| black_box(render())));
    }
    g.finish();
}

fn playlists(c: &mut Criterion) {
    let long_secs: u64 = if cfg!(debug_assertions) {
        600
    } else {
        4 * 3600
    };
    let (engine, stream) = stream_of(long_secs / SEG_SECS as u64);
    let short = clip(&engine, stream, 600.min(long_secs as i64 - 60), 60);
    bench_clip(c, "60s", &short);
    let long = clip(&engine, stream, 0, long_secs);
    bench_live(
        c,
        if cfg!(debug_assertions) {
            "10min_window"
        } else {
            "4h_window"
        },
        &engine,
        stream,
    );
    bench_clip(
        c,
        if cfg!(debug_assertions) {
            "10min"
        } else {
            "4h"
        },
        &long,
    );
}

/// A live poll: snapshot the rings, render the top rendition's window (the whole DVR).
fn bench_live(c: &mut Criterion, label: &str, engine: &Engine, stream: StreamId) {
    let poll = || {
        let top = engine
            .live_rendition(stream, LADDER[0].0)
            .expect("rendition");
        live_media_playlist(&top)
    };
    let text = poll();
    let mut g = c.benchmark_group(format!("hls_live_{label}"));
    g.throughput(Throughput::Bytes(text.len() as u64));
    let mut dst = vec![0u8; text.len()];
    g.bench_function("media_memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(text.as_bytes()));
            black_box(&dst);
        })
    });
    g.bench_function("media", |b| b.iter(|| black_box(poll())));
    // What the server does per poll since issue 19: read the ring's generation, find
    // the text rendered for it, share its bytes (`dvrclip_server::playlist_cache`).
    let cache = Playlists::default();
    let key = Key::Live(stream, Some(LADDER[0].0.to_owned()));
    let cached_poll = || {
        let generation = engine
            .live_generation(stream, LADDER[0].0)
            .expect("rendition");
        cache.get_or_render(engine, key.clone(), vec![generation], || {
            Ok::<_, std::convert::Infallible>(poll())
        })
    };
    g.bench_function("media_cached", |b| b.iter(|| black_box(cached_poll())));
    g.finish();
}

criterion_group!(benches, playlists);
criterion_main!(benches);
