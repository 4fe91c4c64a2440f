//! One writer, many readers, real threads: every snapshot a reader takes (ring
//! contents, a chunk by seq, a clip view, the DVR report) must be a state the ring
//! actually passed through — never half a push or half a prune.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::*;
use dvrclip_engine::{Chunk, ClipRequest, EngineConfig};

const SEGS: u64 = 20_000;
const FRAMES: u32 = 30; // 1 s chunks

/// A snapshot is whole: seqs contiguous, times strictly rising and exactly one chunk
/// apart (one discontinuity, arrival-anchored), every payload the one pushed for its
/// media time.
fn check_run(chunks: &[Arc<Chunk>]) {
    for w in chunks.windows(2) {
        assert_eq!(w[0].seq() + 1, w[1].seq(), "torn: seq gap");
        assert_eq!(
            w[1].start_utc().micros_since(w[0].start_utc()),
            1_000_000,
            "torn: time"
        );
    }
    for c in chunks {
        let expect = (c.start_ticks() / u64::from(FRAME_TICKS)) as u8;
        assert!(c.bytes().iter().all(|&b| b == expect), "torn: payload");
        assert_eq!(c.start_ticks(), c.seq() * u64::from(FRAMES * FRAME_TICKS));
    }
}

#[test]
fn readers_never_see_a_torn_ring() {
    let h = Arc::new(Harness::new(EngineConfig::default()));
    let s = h.stream(30);
    if let Err(e) = h.engine.push_init(s, "v", init(720, 1)) {
        panic!("{e}");
    }
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let (h, done, reads) = (Arc::clone(&h), Arc::clone(&done), Arc::clone(&reads));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !done.load(Ordering::Acquire) {
                    let chunks = h.engine.rendition_chunks(s, "v").unwrap_or_default();
                    check_run(&chunks);
                    assert!(chunks.len() <= 32, "window bound: {}", chunks.len());
                    if let Some(last) = chunks.last() {
                        let again = h.engine.chunk(s, "v", last.seq()).ok().flatten();
                        // Either still held and the same payload, or already pruned.
                        assert!(again.is_none_or(|a| a.same_payload(last)));
                    }
                    match i {
                        0 => {
                            let dvr = h.engine.dvr(s).ok();
                            let r = dvr.as_ref().and_then(|d| d.renditions.first());
                            assert!(r.is_none_or(|r| r.ranges.len() <= 1 && r.gaps.is_empty()));
                        }
                        1 => {
                            let req = ClipRequest {
                                duration_secs: 5,
                                ..Default::default()
                            };
                            if let Ok(clip) = h.engine.create_clip(s, req) {
                                let v = clip.view();
                                check_run(v.reference().map(|r| r.chunks()).unwrap_or_default());
                                // Clips live an hour; without this the loop would
                                // pile up thousands and hit the per-stream cap.
                                assert!(h.engine.delete_clip(clip.id()).is_ok());
                            }
                        }
                        _ => {
                            let m = h.engine.memory();
                            assert!(m.clip_bytes <= m.total_bytes);
                        }
                    }
                    n += 1;
                }
                reads.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();

    let writer = {
        let h = Arc::clone(&h);
        std::thread::spawn(move || {
            for k in 0..SEGS {
                h.clock.advance_secs(1);
                let seg = segment(k * u64::from(FRAMES * FRAME_TICKS), FRAMES, true, 64);
                if let Err(e) = h.engine.push_segment(s, "v", None, seg) {
                    panic!("push {k}: {e}");
                }
                if k % 64 == 0 {
                    h.engine.tick();
                }
            }
        })
    };
    let writer_ok = writer.join().is_ok();
    done.store(true, Ordering::Release);
    let readers_ok = readers.into_iter().all(|r| r.join().is_ok());
    assert!(writer_ok && readers_ok, "a thread panicked");
    let reads = reads.load(Ordering::Relaxed);
    eprintln!("{reads} reader snapshots during {SEGS} pushes");
    assert!(reads > 0);
    let chunks = h.engine.rendition_chunks(s, "v").unwrap_or_default();
    check_run(&chunks);
    assert_eq!(chunks.last().map(|c| c.seq()), Some(SEGS - 1));
}
