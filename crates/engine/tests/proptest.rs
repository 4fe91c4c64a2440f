//! Property tests: random streams (segment durations, GOP lengths, lost uploads,
//! encoder restarts, arrival jitter, DVR windows, memory budgets) and random clip
//! requests. Every clip must obey the cutting rules of ref/api.md "Clips" against the ring it
//! was cut from, and the memory account must equal the bytes actually held. The rings'
//! MP4 header index cuts blocks of 3 chunks here, so that blocks form, wrap and leave
//! with eviction, and a clip's MP4 must be the very file its chunks give walked
//! sample by sample ([`check_mp4`]).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use dvrclip_engine::{Chunk, Clip, ClipRequest, EngineConfig, Error, StreamId, WallTime};
use dvrclip_fmp4::progressive::{Mp4Builder, Options, VirtualMp4};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// One segment of `frames` frames uploaded with `jitter_ms` of arrival jitter.
    Seg { frames: u32, jitter_ms: i64 },
    /// `segs` 2 s segments never arrive (media time jumps forward).
    Lost { segs: u64 },
    /// The encoder restarts: media time from 0, a new init when `new_init`.
    Restart { new_init: bool, pause_secs: i64 },
    /// A clip of `[now - back_secs, +duration_secs)`.
    Clip { back_secs: i64, duration_secs: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (prop::sample::select(vec![15u32, 30, 45, 60, 90]), -400i64..400)
            .prop_map(|(frames, jitter_ms)| Op::Seg { frames, jitter_ms }),
        1 => (1u64..4).prop_map(|segs| Op::Lost { segs }),
        1 => (any::<bool>(), 0i64..20).prop_map(|(new_init, pause_secs)| Op::Restart { new_init, pause_secs }),
        3 => (0i64..150, 1u64..90).prop_map(|(back_secs, duration_secs)| Op::Clip { back_secs, duration_secs }),
    ]
}

const RENDITIONS: [(&str, u16); 2] = [("low", 360), ("high", 720)];
const FRAME_BYTES: u32 = 7;

struct Sim {
    h: Harness,
    s: StreamId,
    ticks: u64,
    /// Segments since the encoder (re)started, lost ones included: GOP cadence.
    counter: u64,
    gop: u64,
    tag: u8,
    clips: Vec<Clip>,
    /// Per clip, the next `seq` of the reference ring when the clip was first seen
    /// complete: a chunk pushed after that (a late upload placed back in its range)
    /// cannot be in it.
    complete_before_seq: Vec<Option<u64>>,
}

impl Sim {
    fn push_init(&mut self) {
        self.tag = self.tag.wrapping_add(1);
        for (name, height) in RENDITIONS {
            if let Err(e) = self
                .h
                .engine
                .push_init(self.s, name, init(height, self.tag))
            {
                panic!("push_init: {e}");
            }
        }
    }

    /// Marks the clips complete now with the reference ring's next `seq`.
    fn note_completions(&mut self) {
        let next_seq = self.ring("high").last().map_or(0, |c| c.seq() + 1);
        for (clip, done) in self.clips.iter().zip(&mut self.complete_before_seq) {
            if done.is_none() && clip.view().is_complete() {
                *done = Some(next_seq);
            }
        }
    }

    fn ring(&self, name: &str) -> Vec<Arc<Chunk>> {
        self.h
            .engine
            .rendition_chunks(self.s, name)
            .unwrap_or_default()
    }

    /// Total equals distinct payloads in rings and clips; clip equals distinct
    /// payloads in clip views.
    fn check_memory(&self) {
        let mut all: HashMap<(usize, u64), u64> = HashMap::new();
        let mut clip: HashMap<(usize, u64), u64> = HashMap::new();
        for (i, (name, _)) in RENDITIONS.iter().enumerate() {
            for c in self.ring(name) {
                all.insert((i, c.seq()), c.memory_bytes());
            }
        }
        for c in &self.clips {
            let v = c.view();
            for r in v.renditions() {
                let i = RENDITIONS
                    .iter()
                    .position(|(n, _)| *n == r.name())
                    .unwrap_or(usize::MAX);
                for ch in r.chunks() {
                    all.insert((i, ch.seq()), ch.memory_bytes());
                    clip.insert((i, ch.seq()), ch.memory_bytes());
                }
            }
        }
        let m = self.h.engine.memory();
        assert_eq!(m.total_bytes, all.values().sum::<u64>(), "total bytes");
        assert_eq!(m.clip_bytes, clip.values().sum::<u64>(), "clip bytes");
    }
}

/// The cutting rules, checked against the reference ring the clip was cut from.
fn check_cut(ring: &[Arc<Chunk>], c: &[Arc<Chunk>], s: WallTime, e: WallTime) {
    let overlapping: Vec<&Arc<Chunk>> = ring
        .iter()
        .filter(|x| x.end_utc() > s && x.start_utc() < e)
        .collect();
    let Some(first) = c.first() else {
        // Empty only if nothing decodable overlaps the request.
        assert!(
            overlapping.iter().all(|x| !x.is_keyframe())
                && overlapping
                    .first()
                    .is_none_or(|w| !ring.iter().any(|x| x.is_keyframe()
                        && x.discontinuity() == w.discontinuity()
                        && x.seq() <= w.seq())),
            "empty clip although the ring holds decodable media in range"
        );
        return;
    };
    let pos = |x: &Arc<Chunk>| ring.iter().position(|r| r.same_payload(x));
    let Some(p0) = pos(first) else {
        panic!("clip chunk not from the ring")
    };
    // Starts on a keyframe chunk.
    assert!(first.is_keyframe(), "starts on a keyframe chunk");
    // The last keyframe chunk at or before the start: any other keyframe chunk of the
    // clip starts after the requested start.
    for x in &c[1..] {
        if x.is_keyframe() && x.discontinuity() == first.discontinuity() {
            assert!(
                x.start_utc() > s,
                "a later keyframe chunk at or before start: {:?} {:?}",
                x.start_utc(),
                s
            );
        }
    }
    // Covers the request when the data exists: it starts at or before the start
    // unless the ring holds no keyframe chunk before it in that discontinuity.
    if first.start_utc() > s {
        let w0 = overlapping.first().map(|w| w.seq()).unwrap_or(u64::MAX);
        let earlier_kf = ring[..p0].iter().any(|x| {
            x.is_keyframe()
                && x.discontinuity() == first.discontinuity()
                && x.seq() <= w0
                && x.end_utc() > s
        });
        assert!(!earlier_kf, "could have started earlier");
        assert!(ring[..p0].iter().all(|x| x.end_utc() <= s
            || !x.is_keyframe()
            || x.discontinuity() != first.discontinuity()));
    }
    // Contiguous within a discontinuity; between discontinuities only the new one's
    // undecodable lead (non-keyframe chunks before its first keyframe) is skipped.
    let mut p = p0;
    for w in c.windows(2) {
        let Some(q) = pos(&w[1]) else {
            panic!("clip chunk not from the ring")
        };
        assert!(q > p);
        if w[0].discontinuity() == w[1].discontinuity() {
            assert_eq!(q, p + 1, "contiguous within a discontinuity");
        } else {
            let skipped = &ring[p + 1..q];
            assert!(
                skipped
                    .iter()
                    .all(|x| !x.is_keyframe() && x.discontinuity() != w[0].discontinuity())
            );
        }
        p = q;
    }
    // Ends with the chunk covering the end, or the DVR's edge.
    let last = c.last().unwrap_or(first);
    assert!(last.start_utc() < e, "last chunk starts before the end");
    let next_taken = ring[p + 1..]
        .iter()
        .take_while(|x| x.start_utc() < e)
        .any(|x| x.discontinuity() == last.discontinuity() || x.is_keyframe());
    assert!(!next_taken, "a chunk before the end was left out");
}

/// The clip's MP4 (whole blocks of the ring's index where it holds them, its other
/// chunks one by one) is the file its chunks give pushed sample by sample: the same
/// ETag and bytes, or the same error.
fn check_mp4(clip: &Clip) {
    let v = clip.view();
    let Some(r) = v.reference() else {
        return;
    };
    let mut b = Mp4Builder::new(Options {
        identity: format!("{}/{}", clip.id(), r.name()).into_bytes(),
        trim: None,
    });
    let walked = r
        .chunks()
        .iter()
        .try_for_each(|c| b.push(c.init(), c.segment()))
        .and_then(|()| b.build());
    let whole = |f: &VirtualMp4| -> Vec<u8> {
        let pieces = f.range(0..f.len()).expect("the whole file");
        pieces.flat_map(|p| p.to_vec()).collect()
    };
    match (walked, clip.mp4(&v, r)) {
        (Ok(x), Ok(y)) => {
            assert_eq!((x.etag(), x.len()), (y.etag(), y.len()));
            assert!(whole(&x) == whole(&y), "clip {} MP4 differs", clip.id());
        }
        (x, y) => assert_eq!(x.err(), y.err()),
    }
}

fn run(ops: Vec<Op>, gop: u64, dvr_secs: u32, budget_chunks: Option<u64>) {
    let config = EngineConfig {
        memory_budget_bytes: budget_chunks.map_or(1 << 40, |n| n * 60 * u64::from(FRAME_BYTES)),
        mp4_index_block_chunks: 3,
        ..Default::default()
    };
    let h = Harness::new(config);
    let s = h.stream(dvr_secs);
    let mut sim = Sim {
        h,
        s,
        ticks: 0,
        counter: 0,
        gop,
        tag: 0,
        clips: Vec::new(),
        complete_before_seq: Vec::new(),
    };
    sim.push_init();
    for op in ops {
        match op {
            Op::Seg { frames, jitter_ms } => {
                let dur_micros = i64::from(frames) * 100_000 / 3;
                sim.h
                    .clock
                    .advance_micros((dur_micros + jitter_ms * 1000).max(0));
                let kf = sim.counter % sim.gop == 0;
                for (name, _) in RENDITIONS {
                    let seg = segment(sim.ticks, frames, kf, FRAME_BYTES);
                    match sim.h.engine.push_segment(sim.s, name, None, seg) {
                        Ok(_) | Err(Error::OverBudget { .. }) => {}
                        Err(e) => panic!("push: {e}"),
                    }
                }
                sim.ticks += u64::from(frames * FRAME_TICKS);
                sim.counter += 1;
            }
            Op::Lost { segs } => {
                sim.ticks += segs * 60 * u64::from(FRAME_TICKS);
                sim.counter += segs;
                sim.h.clock.advance_secs(2 * segs as i64);
            }
            Op::Restart {
                new_init,
                pause_secs,
            } => {
                sim.h.clock.advance_secs(pause_secs);
                if new_init {
                    sim.push_init();
                }
                sim.ticks = 0;
                sim.counter = 0;
            }
            Op::Clip {
                back_secs,
                duration_secs,
            } => {
                let now = sim.h.engine.now();
                let start = WallTime::from_unix_secs(now.unix_secs() - back_secs);
                let duration_secs = duration_secs.min(u64::from(dvr_secs));
                let req = ClipRequest {
                    duration_secs,
                    start_unix_secs: Some(start.unix_secs()),
                    ..Default::default()
                };
                let end = start.add_micros(duration_secs as i64 * 1_000_000);
                match sim.h.engine.create_clip(sim.s, req) {
                    Ok(clip) => {
                        let v = clip.view();
                        let refr = v
                            .reference()
                            .map(|r| r.chunks().to_vec())
                            .unwrap_or_default();
                        assert_eq!(clip.reference_rendition(), "high");
                        if v.is_complete() {
                            check_cut(&sim.ring("high"), &refr, start, end);
                            check_mp4(&clip);
                        }
                        // The follower takes the same boundaries (same cadence here).
                        let low = v
                            .rendition("low")
                            .map(|r| r.chunks().to_vec())
                            .unwrap_or_default();
                        let seqs = |c: &[Arc<Chunk>]| c.iter().map(|x| x.seq()).collect::<Vec<_>>();
                        if v.is_complete() && budget_chunks.is_none() {
                            assert_eq!(seqs(&low), seqs(&refr), "renditions cut alike");
                        }
                        sim.clips.push(clip);
                        sim.complete_before_seq.push(None);
                    }
                    Err(Error::NoMediaInRange(_) | Error::OverBudget { .. }) => {}
                    Err(e) => panic!("create_clip: {e}"),
                }
            }
        }
        sim.check_memory();
        sim.note_completions();
    }
    // Let every recording clip finish (the encoder stopped), then check them again.
    sim.h.clock.advance_secs(3600);
    sim.h.engine.tick();
    sim.note_completions();
    for (clip, before_seq) in sim.clips.iter().zip(&sim.complete_before_seq) {
        let v = clip.view();
        assert!(v.is_complete());
        let c = v
            .reference()
            .map(|r| r.chunks().to_vec())
            .unwrap_or_default();
        if let Some(first) = c.first() {
            assert!(first.is_keyframe());
            assert!(c.last().is_some_and(|l| l.start_utc() < clip.end_utc()));
        }
        // A clip that recorded must end up as if cut afterwards, when the ring still
        // holds everything the cutter could have looked at, and nothing that arrived
        // after it was complete.
        let before_seq = before_seq.unwrap_or(u64::MAX);
        let ring: Vec<_> = sim
            .ring("high")
            .into_iter()
            .filter(|x| x.seq() < before_seq)
            .collect();
        let held = |first: &Arc<Chunk>| {
            ring.first()
                .is_some_and(|r| r.seq() == 0 || r.seq() + 8 <= first.seq())
        };
        if c.first().is_some_and(held) {
            check_cut(&ring, &c, clip.start_utc(), clip.end_utc());
        }
        check_mp4(clip);
        for w in c.windows(2) {
            assert!(w[0].seq() < w[1].seq());
            assert!(
                w[0].end_utc() <= w[1].start_utc() || w[0].discontinuity() == w[1].discontinuity()
            );
        }
    }
    sim.check_memory();
    // Expire everything: only the rings remain.
    sim.h.clock.advance_secs(5 * 3600);
    sim.h.engine.tick();
    sim.clips.clear();
    sim.check_memory();
    let m = sim.h.engine.memory();
    assert_eq!(m.clip_bytes, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn clips_obey_the_cutting_rules(
        ops in prop::collection::vec(op(), 1..140),
        gop in 1u64..5,
        dvr_secs in 20u32..240,
    ) {
        run(ops, gop, dvr_secs, None);
    }

    #[test]
    fn memory_accounting_is_exact_under_a_budget(
        ops in prop::collection::vec(op(), 1..140),
        gop in 1u64..4,
        budget_chunks in 4u64..60,
    ) {
        run(ops, gop, 3600, Some(budget_chunks));
    }
}

/// Hostile input: any timestamps, durations, timescales, `prft` values, playlist
/// dates and requests. Nothing panics (release builds check overflow), and after
/// every step the ring, read through the public API, keeps its invariants
/// ([`check_ring`]) and memory accounting is exact ([`check_memory_held`]).
#[derive(Debug, Clone)]
enum Hostile {
    Seg {
        start_ticks: u64,
        durations: Vec<u32>,
        keyframe: bool,
        prft: Option<(u64, u64)>,
        name: u8,
    },
    Init {
        timescale: u32,
    },
    Date {
        name: u8,
        utc_micros: i64,
    },
    Clip {
        start_secs: Option<i64>,
        duration_secs: u64,
        expiration: Option<i64>,
    },
    Advance {
        micros: i64,
    },
}

fn ticks() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), u64::MAX - 1000..=u64::MAX, 0u64..1_000_000]
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        6 => (ticks(), prop::collection::vec(any::<u32>(), 1..4), any::<bool>(),
              prop::option::of((any::<u64>(), ticks())), 0u8..6)
            .prop_map(|(start_ticks, durations, keyframe, prft, name)| Hostile::Seg { start_ticks, durations, keyframe, prft, name }),
        1 => prop_oneof![Just(1u32), Just(u32::MAX), 1u32..200_000].prop_map(|timescale| Hostile::Init { timescale }),
        2 => (0u8..6, any::<i64>()).prop_map(|(name, utc_micros)| Hostile::Date { name, utc_micros }),
        // Any numbers, and (so that some clips hold chunks) starts near the clock.
        2 => (prop::option::of(prop_oneof![any::<i64>(), T0_SECS - 7200..T0_SECS + 7200]),
              prop_oneof![any::<u64>(), 1u64..600], prop::option::of(any::<i64>()))
            .prop_map(|(start_secs, duration_secs, expiration)| Hostile::Clip { start_secs, duration_secs, expiration }),
        1 => any::<i64>().prop_map(|micros| Hostile::Advance { micros: micros % 10_000_000_000 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_timestamps_never_panic(ops in prop::collection::vec(hostile(), 1..60)) {
        let h = Harness::new(EngineConfig::default());
        let s = h.stream(3600);
        let mut current = init(720, 0);
        let _ = h.engine.push_init(s, "v", current.clone());
        let mut clips = Vec::new();
        for op in ops {
            match op {
                Hostile::Seg { start_ticks, durations, keyframe, prft, name } => {
                    let mut seg = segment(0, durations.len() as u32, keyframe, 3);
                    let mut t = start_ticks;
                    for (smp, d) in seg.tracks[0].samples.iter_mut().zip(&durations) {
                        smp.decode_ticks = t;
                        smp.duration = *d;
                        t = t.saturating_add(u64::from(*d));
                    }
                    seg.tracks[0].base_decode_ticks = start_ticks;
                    seg.producer_time = prft.map(|(ntp_timestamp, media_ticks)| {
                        dvrclip_fmp4::ProducerTime { track_id: 1, ntp_timestamp, media_ticks }
                    });
                    let _ = h.engine.push_segment(s, "v", Some(&format!("s{name}.m4s")), seg);
                }
                Hostile::Init { timescale } => {
                    current.tracks[0].timescale = timescale;
                    current.bytes = Bytes::from(timescale.to_be_bytes().to_vec());
                    let _ = h.engine.push_init(s, "v", current.clone());
                }
                Hostile::Date { name, utc_micros } => {
                    let _ = h.engine.set_segment_date(s, "v", &format!("s{name}.m4s"), WallTime::from_unix_micros(utc_micros));
                }
                Hostile::Clip { start_secs, duration_secs, expiration } => {
                    let req = ClipRequest { duration_secs, start_unix_secs: start_secs, expiration_unix_secs: expiration, ..Default::default() };
                    if let Ok(c) = h.engine.create_clip(s, req) {
                        let v = c.view();
                        let _ = (v.actual_duration_micros(), v.lead_in_micros(), c.actual_duration_secs());
                        for r in v.renditions() {
                            let _ = (r.peak_bandwidth_bps(), r.average_bandwidth_bps(), r.target_duration_secs(), r.duration_secs());
                        }
                        clips.push(c);
                    }
                }
                Hostile::Advance { micros } => {
                    h.clock.advance_micros(micros);
                    h.engine.tick();
                }
            }
            let _ = h.engine.dvr(s);
            let ring = h.engine.rendition_chunks(s, "v").unwrap_or_default();
            check_ring(&ring);
            check_memory_held(&h, &ring, &clips);
        }
        drop(clips);
        h.clock.advance_secs(1 << 40);
        h.engine.tick();
        let ring = h.engine.rendition_chunks(s, "v").unwrap_or_default();
        check_ring(&ring);
        check_memory_held(&h, &ring, &[]);
    }
}

/// The ring's invariants (`crates/engine/src/ring/mod.rs`), seen from outside: what
/// any push, date or clock change, however hostile, must leave behind.
fn check_ring(ring: &[Arc<Chunk>]) {
    let (year_1970, year_10000) = (0, 253_402_300_800 * 1_000_000);
    for c in ring {
        // Admitted: a duration in (0, 1 h], a wall time in 1970..9999.
        let d = c.duration_micros();
        assert!(
            d > 0 && d <= 3600 * 1_000_000,
            "chunk {} lasts {d} µs",
            c.seq()
        );
        let (start, end) = (c.start_utc().unix_micros(), c.end_utc().unix_micros());
        assert!(
            start >= year_1970 && end < year_10000,
            "chunk {} at {start}..{end} µs",
            c.seq()
        );
    }
    for w in ring.windows(2) {
        let (p, c) = (&w[0], &w[1]);
        assert_eq!(p.seq() + 1, c.seq(), "seqs contiguous");
        assert!(
            p.start_utc() < c.start_utc(),
            "start_utc strictly increasing at {}",
            c.seq()
        );
        assert!(
            p.discontinuity() <= c.discontinuity(),
            "discontinuities non-decreasing at {}",
            c.seq()
        );
        if p.discontinuity() == c.discontinuity() {
            assert!(
                p.start_ticks() < c.start_ticks(),
                "media time rises at {}",
                c.seq()
            );
            assert!(
                Arc::ptr_eq(p.init(), c.init()),
                "one init per discontinuity at {}",
                c.seq()
            );
        } else {
            assert!(
                p.end_utc() <= c.start_utc(),
                "discontinuities overlap at {}",
                c.seq()
            );
        }
    }
}

/// Memory equals the payloads held: every chunk alive is in the ring or in a clip's
/// view, each counted once; clip memory is the chunks the clips' views hold.
fn check_memory_held(h: &Harness, ring: &[Arc<Chunk>], clips: &[Clip]) {
    let mut all: HashMap<u64, u64> = ring.iter().map(|c| (c.seq(), c.memory_bytes())).collect();
    let mut pinned: HashMap<u64, u64> = HashMap::new();
    for clip in clips {
        for r in clip.view().renditions() {
            for c in r.chunks() {
                all.insert(c.seq(), c.memory_bytes());
                pinned.insert(c.seq(), c.memory_bytes());
            }
        }
    }
    let m = h.engine.memory();
    assert_eq!(m.total_bytes, all.values().sum::<u64>(), "total bytes");
    assert_eq!(m.clip_bytes, pinned.values().sum::<u64>(), "clip bytes");
}

/// Found by `memory_accounting_is_exact_under_a_budget`: budget eviction from another
/// rendition's push emptied "high" while the clip held its newest chunk; the restart's
/// first chunk then had no floor and overlapped it in wall time.
#[test]
fn a_restart_after_eviction_emptied_the_ring_does_not_overlap_the_last_chunk() {
    run(
        vec![
            Op::Seg {
                frames: 60,
                jitter_ms: 0,
            },
            Op::Seg {
                frames: 30,
                jitter_ms: 0,
            },
            Op::Seg {
                frames: 90,
                jitter_ms: 0,
            },
            Op::Seg {
                frames: 15,
                jitter_ms: 0,
            },
            Op::Restart {
                new_init: false,
                pause_secs: 0,
            },
            Op::Clip {
                back_secs: 83,
                duration_secs: 86,
            },
            Op::Seg {
                frames: 30,
                jitter_ms: 0,
            },
        ],
        1,
        3600,
        Some(14),
    );
}

/// Found by `clips_obey_the_cutting_rules`. The restart keeps its init and its first
/// upload repeats the first chunk's bytes, so it is a retry; 21 s later media time
/// 2 s arrives, 0.5 s past the discontinuity's end, and is extrapolated to
/// [2.5 s, 3 s): inside a clip that ended at 3 s and was complete at 23 s. A complete
/// clip never changes, so it rightly lacks a chunk that arrived after it; the
/// property now compares a clip with what the ring held when it completed.
#[test]
fn a_late_upload_extrapolated_into_a_finished_clip() {
    let seg = Op::Seg {
        frames: 15,
        jitter_ms: 0,
    };
    run(
        vec![
            seg.clone(),
            seg.clone(),
            seg.clone(),
            Op::Restart {
                new_init: false,
                pause_secs: 0,
            },
            seg.clone(),
            Op::Lost { segs: 2 },
            Op::Restart {
                new_init: false,
                pause_secs: 15,
            },
            Op::Lost { segs: 1 },
            Op::Clip {
                back_secs: 95,
                duration_secs: 75,
            },
            seg,
        ],
        1,
        75,
        None,
    );
}
