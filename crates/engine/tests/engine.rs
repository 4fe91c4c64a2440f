//! Scenario tests of the engine's public API on synthetic segments, driven by a
//! manual clock: ingest, discontinuities, wall clock, cutting, recording, expiry and
//! the memory budget.

mod common;

use std::sync::Arc;

use common::*;
use dvrclip_engine::{
    ClipId, ClipRequest, ClipState, EngineConfig, Error, PushOutcome, StreamId, StreamPatch,
    StreamSettings, WallTime,
};
use dvrclip_fmp4::ProducerTime;

const SEG_FRAMES: u32 = 60; // 2 s at 30 fps
const SEG_TICKS: u64 = SEG_FRAMES as u64 * FRAME_TICKS as u64;

/// Pushes `n` 2 s segments from media time `first * 2 s`, advancing the clock 2 s
/// before each (an encoder uploading in real time). Keyframe every `gop` segments.
fn push_run(h: &Harness, s: StreamId, rendition: &str, first: u64, n: u64, gop: u64) {
    for k in first..first + n {
        h.clock.advance_secs(2);
        let seg = segment(k * SEG_TICKS, SEG_FRAMES, k % gop == 0, 100);
        let name = format!("seg_{k}.m4s");
        ok(h.engine.push_segment(s, rendition, Some(&name), seg));
    }
}

fn ok<T>(r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn setup(dvr_secs: u32) -> (Harness, StreamId) {
    let h = Harness::new(EngineConfig::default());
    let s = h.stream(dvr_secs);
    ok(h.engine.push_init(s, "v720", init(720, 1)));
    (h, s)
}

fn req(duration_secs: u64, start: Option<WallTime>) -> ClipRequest {
    ClipRequest {
        duration_secs,
        start_unix_secs: start.map(|t| t.unix_secs()),
        ..Default::default()
    }
}

#[test]
fn stream_crud() {
    let h = Harness::new(EngineConfig::default());
    let a = ok(h.engine.create_stream(StreamSettings::named("a")));
    let b = ok(h.engine.create_stream(StreamSettings::named("b")));
    assert_eq!((a.id, b.id), (StreamId(1), StreamId(2)));
    assert_eq!(a.ingest_key.len(), 32);
    assert_ne!(a.ingest_key, b.ingest_key);
    assert_eq!(h.engine.stream_by_ingest_key(&b.ingest_key), Some(b.id));
    assert_eq!(h.engine.stream_by_ingest_key("nope"), None);
    // Each key opens its own door only.
    assert_eq!(h.engine.stream_by_play_key(&b.play_key), Some(b.id));
    assert_eq!(h.engine.stream_by_play_key(&b.ingest_key), None);
    assert_eq!(h.engine.stream_by_ingest_key(&b.play_key), None);
    assert_eq!(h.engine.streams().len(), 2);
    assert!(!a.live);
    assert_eq!(a.created_at, t0());

    let patched = ok(h.engine.update_stream(
        a.id,
        StreamPatch {
            name: Some("renamed".into()),
            dvr_duration_secs: Some(60),
            ..Default::default()
        },
    ));
    assert_eq!(
        (patched.name.as_str(), patched.dvr_duration_secs),
        ("renamed", 60)
    );
    let bad = h.engine.update_stream(
        a.id,
        StreamPatch {
            dvr_duration_secs: Some(0),
            ..Default::default()
        },
    );
    assert!(matches!(
        bad,
        Err(Error::InvalidSetting {
            field: "dvr_duration",
            ..
        })
    ));
    assert_eq!(
        ok(h.engine.stream(a.id)).dvr_duration_secs,
        60,
        "a refused patch changes nothing"
    );
    let bad = h.engine.create_stream(StreamSettings::named(" "));
    assert_eq!(
        bad.map(|_| ()),
        Err(Error::InvalidSetting {
            field: "name",
            reason: "must not be empty"
        })
    );

    ok(h.engine.delete_stream(a.id));
    assert_eq!(h.engine.stream(a.id), Err(Error::UnknownStream(a.id)));
    assert_eq!(h.engine.stream_by_ingest_key(&a.ingest_key), None);
    assert_eq!(h.engine.stream_by_play_key(&a.play_key), None);
    assert_eq!(
        h.engine.delete_stream(a.id),
        Err(Error::UnknownStream(a.id))
    );
    assert_eq!(h.engine.streams().len(), 1);
}

#[test]
fn an_adopted_stream_keeps_its_id_keys_and_creation_and_is_never_replaced() {
    let h = Harness::new(EngineConfig::default());
    let settings = StreamSettings::named("from the cluster");
    let created = WallTime::from_unix_secs(1_700_000_000);
    let id = StreamId(42);
    let info = ok(h.engine.adopt_stream(
        id,
        settings.clone(),
        created,
        "ingestkey".into(),
        "playkey".into(),
    ));
    assert_eq!((info.id, info.created_at), (id, created));
    assert_eq!(h.engine.stream_by_ingest_key("ingestkey"), Some(id));
    assert_eq!(h.engine.stream_by_play_key("playkey"), Some(id));
    ok(h.engine.push_init(id, "v", init(720, 1)));
    // The same id again: refused, and the held stream (with its rendition) stays.
    let again = h
        .engine
        .adopt_stream(id, settings, created, "other".into(), "other2".into());
    assert!(matches!(
        again,
        Err(Error::InvalidSetting { field: "id", .. })
    ));
    assert_eq!(ok(h.engine.stream(id)).renditions, ["v"]);
    assert_eq!(h.engine.stream_by_ingest_key("other"), None);
    // A stream created here afterwards never takes an adopted id.
    assert!(h.stream(60).0 > 42);
    // Settings are checked as a creation's are.
    let bad = StreamSettings {
        dvr_duration_secs: 0,
        ..StreamSettings::named("x")
    };
    assert!(
        h.engine
            .adopt_stream(StreamId(7), bad, created, "a".into(), "b".into())
            .is_err()
    );
}

#[test]
fn ingest_refusals_leave_the_ring_as_it_was() {
    let h = Harness::new(EngineConfig::default());
    let s = h.stream(60);
    let seg = segment(0, 30, true, 10);
    assert!(matches!(
        h.engine.push_segment(s, "v", None, seg.clone()),
        Err(Error::NoInit { .. })
    ));
    assert!(matches!(
        h.engine.push_init(s, "../x", init(720, 1)),
        Err(Error::InvalidName(_))
    ));
    ok(h.engine.push_init(s, "v", init(720, 1)));
    let mut wrong = seg.clone();
    wrong.tracks[0].track_id = 7;
    assert!(matches!(
        h.engine.push_segment(s, "v", None, wrong),
        Err(Error::TrackMismatch { track_id: 7, .. })
    ));
    let mut empty = seg.clone();
    empty.tracks[0].samples.clear();
    assert!(matches!(
        h.engine.push_segment(s, "v", None, empty),
        Err(Error::EmptySegment { .. })
    ));
    assert!(matches!(
        h.engine.push_segment(s, "v", Some("a/b"), seg.clone()),
        Err(Error::InvalidName(_))
    ));
    assert_eq!(ok(h.engine.rendition_chunks(s, "v")).len(), 0);
    assert_eq!(h.engine.memory().total_bytes, 0);

    ok(h.engine.update_stream(
        s,
        StreamPatch {
            active: Some(false),
            ..Default::default()
        },
    ));
    assert_eq!(
        h.engine.push_segment(s, "v", None, seg),
        Err(Error::StreamInactive(s))
    );
}

#[test]
fn duplicate_push_is_a_no_op() {
    let (h, s) = setup(60);
    let seg = segment(0, SEG_FRAMES, true, 100);
    let first = ok(h
        .engine
        .push_segment(s, "v720", Some("seg_0.m4s"), seg.clone()));
    assert!(matches!(
        first,
        PushOutcome::Stored {
            seq: 0,
            new_discontinuity: true,
            ..
        }
    ));
    let mem = h.engine.memory();
    // ref/api.md "Ingest": A PUT to a path already received is idempotent (a retry).
    assert_eq!(
        ok(h.engine
            .push_segment(s, "v720", Some("seg_0.m4s"), seg.clone())),
        PushOutcome::Duplicate
    );
    assert_eq!(
        ok(h.engine.push_segment(s, "v720", None, seg.clone())),
        PushOutcome::Duplicate
    );
    assert_eq!(
        ok(h.engine.push_init(s, "v720", init(720, 1))),
        PushOutcome::SameInit
    );
    assert_eq!(
        ok(h.engine.push_segment(s, "v720", Some("other.m4s"), seg)),
        PushOutcome::Duplicate
    );
    assert_eq!(h.engine.memory(), mem);
    assert_eq!(ok(h.engine.rendition_chunks(s, "v720")).len(), 1);
}

#[test]
fn arrival_jitter_moves_nothing() {
    let (h, s) = setup(600);
    let jitters = [0i64, 900_000, -300_000, 1_500_000, 0];
    for (k, j) in jitters.iter().enumerate() {
        h.clock.advance_micros(2_000_000 + j);
        let seg = segment(k as u64 * SEG_TICKS, SEG_FRAMES, true, 100);
        ok(h.engine.push_segment(s, "v720", None, seg));
    }
    let chunks = ok(h.engine.rendition_chunks(s, "v720"));
    let first = chunks[0].start_utc();
    assert_eq!(
        first,
        t0().add_micros(2_000_000),
        "anchored at the first arrival"
    );
    for (k, c) in chunks.iter().enumerate() {
        assert_eq!(
            c.start_utc(),
            first.add_micros(k as i64 * 2_000_000),
            "media time, not arrival"
        );
        assert_eq!(c.discontinuity(), 0);
    }
}

#[test]
fn restart_opens_a_discontinuity_with_its_own_init_and_anchor() {
    let (h, s) = setup(600);
    push_run(&h, s, "v720", 0, 3, 1);
    // Encoder restart: a new init, media time starts again at 0.
    h.clock.advance_secs(30);
    assert_eq!(
        ok(h.engine.push_init(s, "v720", init(720, 2))),
        PushOutcome::NewInit
    );
    push_run(&h, s, "v720", 0, 2, 1);
    // Then media time jumps backwards without a new init: another discontinuity.
    h.clock.advance_secs(5);
    // Same start as a held chunk but other bytes: not a retry.
    let back = segment(0, SEG_FRAMES, true, 101);
    let out = ok(h.engine.push_segment(s, "v720", Some("seg_0.m4s"), back));
    assert!(matches!(
        out,
        PushOutcome::Stored {
            new_discontinuity: true,
            ..
        }
    ));

    let chunks = ok(h.engine.rendition_chunks(s, "v720"));
    let discs: Vec<u64> = chunks.iter().map(|c| c.discontinuity()).collect();
    assert_eq!(discs, [0, 0, 0, 1, 1, 2]);
    assert!(
        !Arc::ptr_eq(chunks[0].init(), chunks[3].init()),
        "old chunks keep their own init"
    );
    assert!(Arc::ptr_eq(chunks[3].init(), chunks[5].init()));
    assert_eq!(chunks[3].init().bytes[0], 2);
    // The restart re-anchors on its arrival (+30 s), not on the old mapping.
    assert_eq!(
        chunks[3].start_utc(),
        chunks[2].start_utc().add_micros(30_000_000 + 2_000_000)
    );
    for w in chunks.windows(2) {
        assert!(w[0].end_utc() <= w[1].start_utc());
    }
    let dvr = ok(h.engine.dvr(s));
    let r = &dvr.renditions[0];
    assert_eq!(r.discontinuities.len(), 3);
    assert_eq!(r.ranges.len(), 3);
    assert_eq!(r.gaps.len(), 2);
    assert_eq!(r.chunks, 6);
}

#[test]
fn a_lost_upload_keeps_the_clock_mapping() {
    let (h, s) = setup(600);
    push_run(&h, s, "v720", 0, 2, 1);
    h.clock.advance_secs(7); // seg_2 never arrives; seg_3 comes late
    ok(h.engine.push_segment(
        s,
        "v720",
        None,
        segment(3 * SEG_TICKS, SEG_FRAMES, true, 100),
    ));
    let c = ok(h.engine.rendition_chunks(s, "v720"));
    assert_eq!(
        c[2].discontinuity(),
        1,
        "a media-time jump is a discontinuity"
    );
    assert_eq!(
        c[2].start_utc(),
        c[0].start_utc().add_micros(6_000_000),
        "same encoder clock"
    );
    let dvr = ok(h.engine.dvr(s));
    assert_eq!(dvr.renditions[0].gaps.len(), 1);
    assert_eq!(
        dvr.renditions[0].gaps[0]
            .end_utc
            .micros_since(dvr.renditions[0].gaps[0].start_utc),
        2_000_000
    );
}

#[test]
fn a_later_playlist_date_drops_what_leaves_the_window() {
    // Found by fuzz ingest_sequence: a restart's first chunk, dated by its playlist
    // ten minutes after the run before it, left that run in a 60 s ring until the
    // next push; a settings change then dropped it under a clip being cut.
    let (h, s) = setup(60);
    push_run(&h, s, "v720", 0, 3, 1);
    ok(h.engine.push_init(s, "v720", init(720, 2)));
    push_run(&h, s, "v720", 0, 1, 1);
    assert_eq!(ok(h.engine.rendition_chunks(s, "v720")).len(), 4);
    let later = h.engine.now().add_micros(600_000_000);
    assert!(ok(h.engine.set_segment_date(s, "v720", "seg_0.m4s", later)));
    let held = ok(h.engine.rendition_chunks(s, "v720"));
    assert_eq!(held.len(), 1, "the old run left the 60 s window");
    assert_eq!(held[0].start_utc(), later);
}

#[test]
fn producer_time_and_playlist_dates_anchor_chunks() {
    let (h, s) = setup(600);
    // An encoder clock an hour behind ours: trusted (its own wall clock is the truth).
    let prft_utc = WallTime::from_unix_secs(T0_SECS - 3600);
    let ntp = (((T0_SECS - 3600) as u64 + ProducerTime::NTP_UNIX_OFFSET_SECS) << 32) | (1u64 << 31); // +0.5 s
    let mut seg = segment(SEG_TICKS, SEG_FRAMES, true, 100);
    seg.producer_time = Some(ProducerTime {
        track_id: 1,
        ntp_timestamp: ntp,
        media_ticks: SEG_TICKS,
    });
    h.clock.advance_secs(2);
    ok(h.engine.push_segment(s, "v720", Some("a.m4s"), seg));
    push_run(&h, s, "v720", 2, 3, 1);
    let c = ok(h.engine.rendition_chunks(s, "v720"));
    assert_eq!(c[0].start_utc(), prft_utc.add_micros(500_000));
    assert_eq!(
        c[3].start_utc(),
        prft_utc.add_micros(500_000 + 6_000_000),
        "later chunks follow media time"
    );
    // A prft wins over a playlist date.
    assert!(!ok(h.engine.set_segment_date(s, "v720", "a.m4s", t0())));

    // The playlist says seg_3 started 40 ms later than extrapolated: seg_3 and after move.
    let dated = c[2].start_utc().add_micros(40_000);
    assert!(ok(h.engine.set_segment_date(s, "v720", "seg_3.m4s", dated)));
    let d = ok(h.engine.rendition_chunks(s, "v720"));
    assert_eq!(d[1].start_utc(), c[1].start_utc());
    assert_eq!(d[2].start_utc(), dated);
    assert_eq!(d[3].start_utc(), c[3].start_utc().add_micros(40_000));
    assert!(d[2].same_payload(&c[2]), "re-anchoring copies no payload");
    assert!(
        !ok(h.engine.set_segment_date(s, "v720", "seg_3.m4s", dated)),
        "same date: no-op"
    );
    // The next chunk extrapolates from the newest date.
    push_run(&h, s, "v720", 5, 1, 1);
    let e = ok(h.engine.rendition_chunks(s, "v720"));
    assert_eq!(e[4].start_utc(), dated.add_micros(4_000_000));
    assert!(!ok(h.engine.set_segment_date(
        s,
        "v720",
        "missing.m4s",
        dated
    )));
}

#[test]
fn dvr_window_bounds_the_ring() {
    let (h, s) = setup(30);
    push_run(&h, s, "v720", 0, 50, 1);
    let c = ok(h.engine.rendition_chunks(s, "v720"));
    let span = c
        .last()
        .map(|l| l.end_utc().micros_since(c[0].start_utc()))
        .unwrap_or(0);
    assert!((30_000_000..=32_000_000).contains(&span), "span {span}");
    assert_eq!(
        h.engine.memory().total_bytes,
        c.iter().map(|c| c.memory_bytes()).sum::<u64>()
    );
    ok(h.engine.update_stream(
        s,
        StreamPatch {
            dvr_duration_secs: Some(10),
            ..Default::default()
        },
    ));
    assert_eq!(ok(h.engine.rendition_chunks(s, "v720")).len(), 5);
    drop(c);
    ok(h.engine.drop_dvr(s));
    assert_eq!(ok(h.engine.rendition_chunks(s, "v720")).len(), 0);
    assert_eq!(h.engine.memory().total_bytes, 0);
}

#[test]
fn past_clip_is_keyframe_aligned_and_covers_the_request() {
    let (h, s) = setup(600);
    push_run(&h, s, "v720", 0, 30, 3); // keyframe every 3rd chunk (6 s GOP)
    let c = ok(h.engine.rendition_chunks(s, "v720"));
    let base = c[0].start_utc();
    // [base+13 s, base+23 s): 13 s is inside chunk 6 (a keyframe chunk at 12 s)...
    let start = base.add_micros(13_000_000);
    let clip = ok(h.engine.create_clip(
        s,
        ClipRequest {
            duration_secs: 10,
            ..req(10, None)
        }
        .with_start(start),
    ));
    let v = clip.view();
    assert_eq!(v.state(), ClipState::Complete);
    let r = v
        .reference()
        .map(|r| r.chunks().to_vec())
        .unwrap_or_default();
    let seqs: Vec<u64> = r.iter().map(|c| c.seq()).collect();
    // Start is on 1 s boundary: start_unix_secs floors. base is t0+2 s exactly.
    assert_eq!(seqs, [6, 7, 8, 9, 10, 11]);
    assert!(r[0].is_keyframe());
    assert_eq!(v.actual_start(), Some(base.add_micros(12_000_000)));
    assert_eq!(v.actual_duration_micros(), 12_000_000);
    assert_eq!(v.lead_in_micros(), 1_000_000);
    assert_eq!(v.requested_duration_micros(), 10_000_000);
    assert_eq!(clip.renditions(), ["v720"]);
    // Issue 15 changed the default lifetime: it runs from the later of the clip's end
    // and now (here now, 60 s after t0: the end is base + 23 s = t0 + 25 s).
    assert!(clip.end_utc() < h.engine.now());
    assert_eq!(
        clip.expiration_unix_secs(),
        h.engine.now().unix_secs() + 3600
    );

    // Long GOP: a start inside chunk 10 widens back to keyframe chunk 9.
    let clip = ok(h
        .engine
        .create_clip(s, req(4, Some(base.add_micros(21_000_000)))));
    let seqs: Vec<u64> = clip
        .view()
        .reference()
        .map(|r| r.chunks().iter().map(|c| c.seq()).collect())
        .unwrap_or_default();
    assert_eq!(seqs, [9, 10, 11, 12]);
}

trait WithStart {
    fn with_start(self, t: WallTime) -> Self;
}

impl WithStart for ClipRequest {
    fn with_start(mut self, t: WallTime) -> Self {
        self.start_unix_secs = Some(t.unix_secs());
        self
    }
}

#[test]
fn clip_request_errors_are_distinct() {
    let (h, s) = setup(60);
    push_run(&h, s, "v720", 0, 10, 1);
    let now = h.engine.now();
    let e = |r: ClipRequest| h.engine.create_clip(s, r).map(|c| c.id());
    assert_eq!(
        e(req(61, None)),
        Err(Error::DurationTooLong {
            duration_secs: 61,
            dvr_duration_secs: 60
        })
    );
    assert_eq!(e(req(0, None)), Err(Error::ZeroDuration));
    // Issue 15: the bounds run from the later of the clip's end and now; this clip
    // ended 10 s ago, so from now (whole seconds).
    let start = now.add_micros(-20_000_000);
    let from_secs = now.unix_secs();
    let mut r = req(10, Some(start));
    r.expiration_unix_secs = Some(from_secs + 59);
    assert!(matches!(e(r.clone()), Err(Error::BadExpiration { .. })));
    r.expiration_unix_secs = Some(from_secs + 4 * 3600 + 1);
    assert!(matches!(e(r.clone()), Err(Error::BadExpiration { .. })));
    r.expiration_unix_secs = Some(from_secs + 60);
    assert!(e(r).is_ok());
    assert_eq!(
        e(req(10, Some(now.add_micros(2 * 3600 * 1_000_000))))
            .map(|_| ())
            .map_err(|e| e.field()),
        Err(Some("start"))
    );
    assert_eq!(
        h.engine
            .create_clip(StreamId(99), req(10, None))
            .map(|c| c.id()),
        Err(Error::UnknownStream(StreamId(99)))
    );
    // Long before the DVR, with the encoder gone: nothing to cut.
    h.clock.advance_secs(3600);
    assert_eq!(
        e(req(10, Some(t0().add_micros(-600_000_000)))),
        Err(Error::NoMediaInRange(s))
    );
    ok(h.engine.update_stream(
        s,
        StreamPatch {
            dvr_enabled: Some(false),
            ..Default::default()
        },
    ));
    assert_eq!(e(req(10, None)), Err(Error::DvrDisabled(s)));
    assert_eq!(Error::DvrDisabled(s).field(), Some("dvr_enabled"));
}

#[test]
fn recording_clip_takes_chunks_until_its_end() {
    let (h, s) = setup(600);
    push_run(&h, s, "v720", 0, 5, 1);
    let clip = ok(h.engine.create_clip(s, req(10, None)));
    assert_eq!(clip.state(), ClipState::Recording);
    let mut rx = clip.subscribe();
    rx.mark_unchanged();
    let v0 = clip.view();
    let first_len = v0.reference().map_or(0, |r| r.chunks().len());
    assert_eq!(first_len, 1, "the chunk covering now");
    push_run(&h, s, "v720", 5, 2, 1);
    assert!(
        rx.has_changed().unwrap_or(false),
        "new chunk wakes watchers"
    );
    assert_eq!(clip.view().reference().map_or(0, |r| r.chunks().len()), 3);
    assert!(
        v0.reference().is_some_and(|r| r.chunks().len() == 1),
        "old views are immutable"
    );
    push_run(&h, s, "v720", 7, 10, 1);
    let v = clip.view();
    assert!(v.is_complete());
    let r = v
        .reference()
        .map(|r| r.chunks().to_vec())
        .unwrap_or_default();
    assert!(r[0].start_utc() <= clip.start_utc());
    assert!(
        r.last()
            .is_some_and(|c| c.start_utc() < clip.end_utc() && c.end_utc() >= clip.end_utc())
    );
    assert_eq!(rx.borrow().state, ClipState::Complete);
    assert_eq!(h.engine.tick().completed, 0);
}

#[test]
fn recording_clip_completes_after_a_bounded_wait_when_the_encoder_stops() {
    let (h, s) = setup(600);
    push_run(&h, s, "v720", 0, 5, 1);
    let clip = ok(h.engine.create_clip(s, req(30, None)));
    push_run(&h, s, "v720", 5, 3, 1);
    let deadline = h.engine.next_deadline();
    // The encoder stops. Nothing happens before the deadline...
    let stall = i64::from(h.engine.config().recording_stall_secs);
    let end = clip.end_utc();
    assert_eq!(deadline, Some(end.add_micros(stall * 1_000_000)));
    h.clock.set(end);
    assert_eq!(h.engine.tick().completed, 0);
    assert_eq!(clip.state(), ClipState::Recording);
    h.clock.set(end.add_micros(stall * 1_000_000));
    assert_eq!(h.engine.tick().completed, 1);
    assert_eq!(clip.state(), ClipState::Complete);
    assert_eq!(clip.view().reference().map_or(0, |r| r.chunks().len()), 4);
}

#[test]
fn a_clip_of_the_past_made_before_any_chunk_completes_when_later_media_arrives() {
    // Found with Gcore's SDK against a server just started: the range ended before
    // the first chunk, and the follower rendition kept the clip recording until the
    // 10 min cap because it waited for a reference cut that would never come.
    let (h, s) = setup(600);
    ok(h.engine.push_init(s, "v360", init(360, 2)));
    let clip = ok(h
        .engine
        .create_clip(s, req(3, Some(h.engine.now().add_micros(-8_000_000)))));
    assert_eq!(clip.state(), ClipState::Recording);
    push_run(&h, s, "v720", 0, 1, 1);
    push_run(&h, s, "v360", 0, 1, 1);
    assert_eq!(clip.state(), ClipState::Complete);
    assert!(
        clip.view()
            .reference()
            .is_none_or(|r| r.chunks().is_empty())
    );
}

#[test]
fn wait_complete_wakes_on_completion() {
    let (h, s) = setup(600);
    push_run(&h, s, "v720", 0, 3, 1);
    let clip = ok(h.engine.create_clip(s, req(4, None)));
    let rt = tokio::runtime::Builder::new_current_thread().build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let waiter = clip.clone();
    let v = rt.block_on(async move {
        let task = async move { waiter.wait_complete().await };
        let feed = async {
            tokio::task::yield_now().await;
            push_run(&h, s, "v720", 3, 4, 1);
        };
        let (v, ()) = tokio::join!(task, feed);
        v
    });
    assert!(v.is_complete());
}

#[test]
fn expiry_removes_clips_and_releases_memory() {
    let (h, s) = setup(30);
    push_run(&h, s, "v720", 0, 10, 1);
    let clip = ok(h
        .engine
        .create_clip(s, req(6, Some(h.engine.now().add_micros(-10_000_000)))));
    let held = clip.view().reference().map_or(0, |r| {
        r.chunks().iter().map(|c| c.memory_bytes()).sum::<u64>()
    });
    assert_eq!(h.engine.memory().clip_bytes, held);
    assert_eq!(ok(h.engine.clip(clip.id())).id(), clip.id());
    assert_eq!(ok(h.engine.clips(s)).len(), 1);
    // The DVR moves on; the clip's chunks leave the ring but stay alive as clip memory.
    push_run(&h, s, "v720", 10, 30, 1);
    assert_eq!(h.engine.memory().clip_bytes, held);
    let ring: u64 = ok(h.engine.rendition_chunks(s, "v720"))
        .iter()
        .map(|c| c.memory_bytes())
        .sum();
    assert_eq!(h.engine.memory().total_bytes, ring + held);

    let exp = clip.expiration_utc();
    assert_eq!(h.engine.next_deadline(), Some(exp));
    h.clock.set(exp.add_micros(-1));
    assert_eq!(h.engine.tick().expired, 0);
    h.clock.set(exp);
    // Links answer 404 at expiration even before the sweeper runs.
    assert_eq!(
        h.engine.clip(clip.id()).map(|c| c.id()),
        Err(Error::UnknownClip)
    );
    assert_eq!(h.engine.tick().expired, 1);
    assert_eq!(ok(h.engine.clips(s)).len(), 0);
    assert_eq!(h.engine.next_deadline(), None);
    // Our handle still holds a view; once it goes, so does the memory.
    assert_eq!(h.engine.memory().clip_bytes, held);
    drop(clip);
    assert_eq!(h.engine.memory().clip_bytes, 0);
    assert_eq!(h.engine.memory().total_bytes, ring);
}

/// What one 2 s chunk of `push_run` (6000 payload bytes) costs with its tables, from
/// a probe.
fn chunk_cost() -> u64 {
    let (probe, s) = setup(600);
    push_run(&probe, s, "v720", 0, 1, 1);
    ok(probe.engine.rendition_chunks(s, "v720"))[0].memory_bytes()
}

#[test]
fn budget_evicts_oldest_across_streams_and_refuses_clips() {
    let cost = chunk_cost();
    let budget = 100 * cost;
    let h = Harness::new(EngineConfig {
        memory_budget_bytes: budget,
        ..Default::default()
    });
    let a = h.stream(3600);
    let b = h.stream(3600);
    ok(h.engine.push_init(a, "v", init(720, 1)));
    ok(h.engine.push_init(b, "v", init(720, 1)));
    push_run(&h, a, "v", 0, 80, 1);
    push_run(&h, b, "v", 0, 40, 1);
    let (ca, cb) = (
        ok(h.engine.rendition_chunks(a, "v")),
        ok(h.engine.rendition_chunks(b, "v")),
    );
    assert_eq!((ca.len(), cb.len()), (60, 40), "a's oldest went first");
    assert_eq!(h.engine.memory().total_bytes, budget);
    drop((ca, cb));

    // A clip pinning all 60 of a's chunks...
    let now = h.engine.now();
    let clip = ok(h
        .engine
        .create_clip(a, req(120, Some(now.add_micros(-198_000_000)))));
    assert_eq!(clip.view().reference().map_or(0, |r| r.chunks().len()), 60);
    assert!(clip.view().is_complete());
    // ...then a recording clip whose held and expected bytes would not fit the rest.
    let big = h
        .engine
        .create_clip(b, req(100, Some(now.add_micros(-60_000_000))));
    assert!(matches!(big, Err(Error::OverBudget { .. })), "{big:?}");
    // Pushes go on: DVR data falls off, clip chunks stay.
    push_run(&h, b, "v", 40, 50, 1);
    let m = h.engine.memory();
    assert!(m.total_bytes <= budget);
    assert_eq!(m.clip_bytes, 60 * cost);
    assert!(
        ok(h.engine.rendition_chunks(a, "v")).is_empty(),
        "oldest DVR data fell off first"
    );
}

#[test]
fn a_reservation_makes_the_dvr_give_room_and_clips_do_not() {
    let cost = chunk_cost();
    let budget = 20 * cost;
    let h = Harness::new(EngineConfig {
        memory_budget_bytes: budget,
        ..Default::default()
    });
    let s = h.stream(3600);
    ok(h.engine.push_init(s, "v", init(720, 1)));
    push_run(&h, s, "v", 0, 20, 1);
    let now = h.engine.now();
    let clip = ok(h
        .engine
        .create_clip(s, req(4, Some(now.add_micros(-10_000_000)))));
    let held = clip.view().reference().map_or(0, |r| r.chunks().len());
    let pinned = h.engine.memory().clip_bytes;
    assert!(clip.view().is_complete() && held > 0 && pinned > 0);

    // Room for five chunks' worth: the five oldest DVR chunks go at once.
    let five = h.engine.reserve_memory(5 * cost);
    let m = h.engine.memory();
    assert_eq!(m.reserved_bytes, 5 * cost);
    assert_eq!(m.total_bytes + m.reserved_bytes, budget);
    assert_eq!(ok(h.engine.rendition_chunks(s, "v")).len(), 15);
    // Reservations past what the DVR can give leave the clip's chunks alone.
    let all = h.engine.reserve_memory(budget);
    assert_eq!(h.engine.memory().clip_bytes, pinned);
    assert_eq!(
        clip.view().reference().map_or(0, |r| r.chunks().len()),
        held
    );
    assert!(ok(h.engine.rendition_chunks(s, "v")).is_empty());
    // Nothing new fits while they are held, and everything does once they go.
    let at = h.engine.now();
    assert!(matches!(
        h.engine
            .create_clip(s, req(2, Some(at.add_micros(-4_000_000)))),
        Err(Error::OverBudget { .. })
    ));
    drop((five, all));
    assert_eq!(h.engine.memory().reserved_bytes, 0);
    push_run(&h, s, "v", 20, 5, 1);
    assert!(h.engine.memory().total_bytes <= budget);
}

/// `try_reserve_memory` (a cache's entry, such as a built MP4 header) evicts DVR
/// chunks like `reserve_memory`, but is refused where clips and reservations would
/// pass the budget, and leaves nothing reserved then.
#[test]
fn a_reservation_that_may_be_refused_is_when_only_clips_and_reservations_remain() {
    let cost = chunk_cost();
    let budget = 20 * cost;
    let h = Harness::new(EngineConfig {
        memory_budget_bytes: budget,
        ..Default::default()
    });
    let s = h.stream(3600);
    ok(h.engine.push_init(s, "v", init(720, 1)));
    push_run(&h, s, "v", 0, 20, 1);
    let now = h.engine.now();
    let _clip = ok(h
        .engine
        .create_clip(s, req(4, Some(now.add_micros(-10_000_000)))));
    let pinned = h.engine.memory().clip_bytes;

    let five = ok(h.engine.try_reserve_memory(5 * cost));
    assert_eq!(ok(h.engine.rendition_chunks(s, "v")).len(), 15);
    let room = budget - pinned - 5 * cost;
    match h.engine.try_reserve_memory(room + 1) {
        Err(Error::OverBudget {
            needed_bytes,
            available_bytes,
        }) => assert_eq!((needed_bytes, available_bytes), (room + 1, room)),
        other => panic!("expected OverBudget, got {other:?}"),
    }
    assert_eq!(h.engine.memory().reserved_bytes, 5 * cost);
    let rest = ok(h.engine.try_reserve_memory(room));
    assert_eq!(h.engine.memory().clip_bytes + 5 * cost + room, budget);
    drop((five, rest));
    assert_eq!(h.engine.memory().reserved_bytes, 0);
}

#[test]
fn clips_per_stream_are_bounded() {
    let h = Harness::new(EngineConfig {
        max_clips_per_stream: 3,
        ..Default::default()
    });
    let (a, b) = (h.stream(600), h.stream(600));
    for s in [a, b] {
        ok(h.engine.push_init(s, "v", init(720, 1)));
        push_run(&h, s, "v", 0, 10, 1);
    }
    let past = Some(h.engine.now().add_micros(-5_000_000));
    let clips: Vec<_> = (0..3)
        .map(|_| ok(h.engine.create_clip(a, req(2, past))))
        .collect();
    assert_eq!(
        h.engine.create_clip(a, req(2, past)).map(|c| c.id()),
        Err(Error::TooManyClips { stream: a, max: 3 })
    );
    // The cap is per stream, and deleting a clip frees its place.
    ok(h.engine.create_clip(b, req(2, past)));
    ok(h.engine.delete_clip(clips[0].id()));
    ok(h.engine.create_clip(a, req(2, past)));
}

#[test]
fn renditions_are_cut_at_the_reference_boundaries() {
    let (h, s) = setup(600);
    ok(h.engine.push_init(s, "v360", init(360, 3)));
    ok(h.engine.push_init(s, "v1080", init(1080, 4)));
    for k in 0..20u64 {
        h.clock.advance_secs(2);
        for (name, kf_every) in [("v360", 1), ("v720", 1), ("v1080", 2)] {
            let seg = segment(k * SEG_TICKS, SEG_FRAMES, k % kf_every == 0, 100);
            ok(h.engine.push_segment(s, name, None, seg));
        }
    }
    let info = ok(h.engine.stream(s));
    assert_eq!(info.renditions, ["v720", "v360", "v1080"]);
    assert_eq!(
        (info.video_width, info.video_height),
        (Some(1920), Some(1080))
    );
    let base = ok(h.engine.rendition_chunks(s, "v1080"))[0].start_utc();
    let clip = ok(h
        .engine
        .create_clip(s, req(5, Some(base.add_micros(7_000_000)))));
    assert_eq!(clip.reference_rendition(), "v1080");
    let v = clip.view();
    let spans: Vec<(u64, usize)> = v
        .renditions()
        .iter()
        .map(|r| (r.chunks()[0].seq(), r.chunks().len()))
        .collect();
    // v1080 (keyframes every 2 chunks) widens 7 s back to 4 s and sets the bounds
    // [4 s, 12 s) every rendition follows.
    assert_eq!(spans, [(2, 4), (2, 4), (2, 4)]);
    for r in v.renditions() {
        assert_eq!(r.start_utc(), v.actual_start());
        assert_eq!(r.end_utc(), v.actual_end());
    }
}

#[test]
fn deleting_a_stream_kills_its_clips_dropping_the_dvr_does_not() {
    let (h, s) = setup(600);
    push_run(&h, s, "v720", 0, 10, 1);
    let past = ok(h
        .engine
        .create_clip(s, req(6, Some(h.engine.now().add_micros(-12_000_000)))));
    let live = ok(h.engine.create_clip(s, req(60, None)));
    ok(h.engine.drop_dvr(s));
    assert!(h.engine.clip(past.id()).is_ok());
    assert!(
        past.view()
            .reference()
            .is_some_and(|r| !r.chunks().is_empty())
    );
    ok(h.engine.delete_stream(s));
    assert_eq!(
        h.engine.clip(past.id()).map(|c| c.id()),
        Err(Error::UnknownClip)
    );
    assert_eq!(live.state(), ClipState::Complete, "waiters wake");
}

#[test]
fn clip_ids_are_random_hex() {
    let a = ok(ClipId::random());
    let b = ok(ClipId::random());
    assert_ne!(a, b);
    let s = a.to_string();
    assert_eq!(s.len(), 32);
    assert!(
        s.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(ClipId::parse(&s), Some(a));
    assert_eq!(ClipId::parse("xyz"), None);
    assert_eq!(ClipId::parse(&s.replace(|_| true, "g")[..32]), None);
    // One clip, one link: only the lowercase form `Display` writes.
    let lower = "5f0c2a9e7d3b41c8a6e2f4b1d9c07e35";
    assert_eq!(ok(lower.parse::<ClipId>()).to_string(), lower);
    assert_eq!(ClipId::parse(&lower.to_ascii_uppercase()), None);
}

// ----- clip lifetimes (issue 15) -----

/// A stream whose init has a well-formed `stsd` (one 16-byte `avc1` entry), so its
/// clips build MP4s.
fn playable(dvr_secs: u32) -> (Harness, StreamId) {
    let h = Harness::new(EngineConfig::default());
    let s = h.stream(dvr_secs);
    let mut init = init(720, 1);
    let mut stsd = vec![0, 0, 0, 32, b's', b't', b's', b'd', 0, 0, 0, 0, 0, 0, 0, 1];
    stsd.extend_from_slice(&[0, 0, 0, 16, b'a', b'v', b'c', b'1', 0, 0, 0, 0, 0, 0, 0, 1]);
    init.tracks[0].entry.stsd = stsd.into();
    ok(h.engine.push_init(s, "v720", init));
    (h, s)
}

/// Pushes `n` 2 s keyframe chunks of 10-byte frames from chunk `first`, the clock
/// 2 s ahead before each: a long DVR filled quickly.
fn push_small(h: &Harness, s: StreamId, first: u64, n: u64) {
    for k in first..first + n {
        h.clock.advance_secs(2);
        let seg = segment(k * SEG_TICKS, SEG_FRAMES, true, 10);
        ok(h.engine.push_segment(s, "v720", None, seg));
    }
}

/// ref/api.md "Clips": the default expiration is `max(end, now) + 3600`, so a clip
/// cut anywhere in a 4 h DVR plays for its whole hour. Clips 1 min, 1 h 30 min and
/// 3 h 59 min deep: each answers and builds its MP4 until its expiration while the
/// DVR moves on under it, then is gone and its memory released. (Before, the last two
/// were born expired: their end + 3600 was already past.)
#[test]
fn clips_deep_in_a_4_hour_dvr_play_for_their_whole_lifetime() {
    let (h, s) = playable(4 * 3600);
    push_small(&h, s, 0, 2 * 3600); // 4 h
    let now = h.engine.now();
    let deep = [60, 90 * 60, 239 * 60];
    let clips: Vec<_> = deep
        .iter()
        .map(|&secs| {
            let start = now.add_micros(-secs * 1_000_000);
            ok(h.engine.create_clip(s, req(20, Some(start))))
        })
        .collect();
    let built: Vec<u64> = clips
        .iter()
        .map(|c| {
            assert_eq!(c.state(), ClipState::Complete);
            assert_eq!(c.expiration_unix_secs(), now.unix_secs() + 3600);
            let v = c.view();
            let r = v.reference().expect("a reference rendition");
            assert!(r.chunks().len() >= 10, "{} chunks", r.chunks().len());
            ok_build(c).len()
        })
        .collect();
    let expiry = WallTime::from_unix_secs(now.unix_secs() + 3600);
    // The hour passes in 10-minute steps; the DVR slides on and drops what the clips
    // hold, which they keep alive.
    for step in 0..6 {
        push_small(&h, s, 2 * 3600 + step * 300, 300);
        let t = h.engine.now().min(expiry.add_micros(-1));
        h.clock.set(t);
        h.engine.tick();
        for (c, len) in clips.iter().zip(&built) {
            let alive = ok(h.engine.clip(c.id()));
            assert_eq!(ok_build(&alive).len(), *len, "same MP4 at {t}");
        }
        assert_eq!(ok(h.engine.clips(s)).len(), 3);
    }
    let oldest = ok(h.engine.rendition_chunks(s, "v720"))[0].start_utc();
    assert!(
        clips[2].end_utc() < oldest,
        "the DVR no longer holds the deepest"
    );
    h.clock.set(expiry);
    for c in &clips {
        assert_eq!(
            h.engine.clip(c.id()).map(|c| c.id()),
            Err(Error::UnknownClip)
        );
    }
    assert_eq!(h.engine.tick().expired, 3);
    drop(clips);
    assert_eq!(h.engine.memory().clip_bytes, 0);
}

/// A clip of 10 min out of a 1 h DVR takes its ring's MP4 header index (blocks of
/// 64 chunks) where it holds whole blocks: the same file as its chunks pushed one by
/// one, its header made of far fewer pieces (a block's `stsz` rows are one, not 64);
/// the same file again after the DVR has evicted the blocks (the clip then visits
/// every chunk).
#[test]
fn a_clip_takes_whole_blocks_of_the_index_and_builds_the_same_file() {
    use dvrclip_fmp4::progressive::{Mp4Builder, Options, VirtualMp4};
    let (h, s) = playable(3600);
    // Frames of 9, 10 and 11 bytes, so `stsz` lists them.
    let push = |first: u64, n: u64| {
        for k in first..first + n {
            h.clock.advance_secs(2);
            let mut seg = segment(k * SEG_TICKS, SEG_FRAMES, true, 10);
            let mut at = 0;
            for (i, x) in seg.tracks[0].samples.iter_mut().enumerate() {
                (x.offset, x.size) = (at, 9 + i as u32 % 3);
                at += x.size;
            }
            ok(h.engine.push_segment(s, "v720", None, seg));
        }
    };
    push(0, 1800);
    let start = h.engine.now().add_micros(-1500 * 1_000_000);
    let clip = ok(h.engine.create_clip(s, req(600, Some(start))));
    let v = clip.view();
    let r = v.reference().expect("a reference rendition");
    assert!(r.chunks().len() >= 300, "{} chunks", r.chunks().len());
    let mut b = Mp4Builder::new(Options {
        identity: format!("{}/{}", clip.id(), r.name()).into_bytes(),
        trim: None,
    });
    for c in r.chunks() {
        if let Err(e) = b.push_prepared(c.init(), c.segment(), c.tables()) {
            panic!("{e}");
        }
    }
    let reference = b.build().unwrap_or_else(|e| panic!("{e}"));
    let whole = |f: &VirtualMp4| -> Vec<u8> {
        let pieces = f.range(0..f.len()).expect("the whole file");
        pieces.flat_map(|p| p.to_vec()).collect()
    };
    let indexed = ok_build(&clip);
    assert_eq!(
        (indexed.etag(), indexed.len()),
        (reference.etag(), reference.len())
    );
    assert!(whole(&indexed) == whole(&reference), "the same bytes");
    assert!(
        indexed.header_pieces() * 2 < reference.header_pieces(),
        "{} vs {} pieces: the blocks were not taken",
        indexed.header_pieces(),
        reference.header_pieces()
    );
    // The DVR moves on past the clip: its blocks leave with their chunks.
    push(1800, 1800);
    let after = ok_build(&clip);
    assert_eq!(after.header_pieces(), reference.header_pieces());
    assert!(whole(&after) == whole(&reference), "the same bytes");
}

fn ok_build(c: &dvrclip_engine::Clip) -> dvrclip_fmp4::progressive::VirtualMp4 {
    let v = c.view();
    let r = v.reference().expect("a reference rendition");
    match c.mp4(&v, r) {
        Ok(f) => f,
        Err(e) => panic!("building the MP4: {e}"),
    }
}

/// ref/api.md "Clips": an explicit `expiration` must lie 1 min to 4 h after the later
/// of the clip's end and now; outside is a 400 naming `expiration` and the range.
#[test]
fn explicit_expirations_are_bounded_from_the_later_of_end_and_now() {
    let (h, s) = setup(3600);
    push_small(&h, s, 0, 1800);
    let now = h.engine.now();
    let e = |start: WallTime, duration: u64, exp: i64| {
        let mut r = req(duration, Some(start));
        r.expiration_unix_secs = Some(exp);
        h.engine.create_clip(s, r).map(|c| c.expiration_unix_secs())
    };
    // A clip 30 min in the past: the range runs from now.
    let past = now.add_micros(-1800 * 1_000_000);
    let from = now.unix_secs();
    let refused = e(past, 10, from + 59);
    assert_eq!(
        refused,
        Err(Error::BadExpiration {
            expiration_unix_secs: from + 59,
            min_unix_secs: from + 60,
            max_unix_secs: from + 4 * 3600,
        })
    );
    let err = refused.unwrap_err();
    assert_eq!(err.field(), Some("expiration"));
    let text = err.to_string();
    assert!(
        text.contains(&(from + 60).to_string()) && text.contains(&(from + 4 * 3600).to_string()),
        "{text}"
    );
    assert!(matches!(
        e(past, 10, from + 4 * 3600 + 1),
        Err(Error::BadExpiration { .. })
    ));
    assert_eq!(e(past, 10, from + 60), Ok(from + 60));
    assert_eq!(e(past, 10, from + 4 * 3600), Ok(from + 4 * 3600));
    // A clip ending in the future (it records): the range runs from its end.
    let end = from + 300;
    let recording = now.add_micros(-10 * 1_000_000);
    assert!(matches!(
        e(recording, 310, end + 59),
        Err(Error::BadExpiration { min_unix_secs, .. }) if min_unix_secs == end + 60
    ));
    assert_eq!(e(recording, 310, end + 4 * 3600), Ok(end + 4 * 3600));
    let default = ok(h.engine.create_clip(s, req(310, Some(recording))));
    assert_eq!(default.expiration_unix_secs(), end + 3600);
}

/// ref/api.md "Clips": `start` at most 1 h ahead; further is a 400 naming `start`.
#[test]
fn a_start_more_than_an_hour_ahead_is_refused() {
    let (h, s) = setup(3600);
    push_small(&h, s, 0, 10);
    let now = h.engine.now();
    let too_far = h
        .engine
        .create_clip(s, req(10, Some(now.add_micros(3601 * 1_000_000))));
    assert!(matches!(
        too_far,
        Err(Error::StartTooFarAhead {
            max_wait_secs: 3600,
            ..
        })
    ));
    assert_eq!(too_far.unwrap_err().field(), Some("start"));
    let waits = ok(h
        .engine
        .create_clip(s, req(10, Some(now.add_micros(3600 * 1_000_000)))));
    assert_eq!(waits.state(), ClipState::Recording);
}

/// ref/api.md "Clip object": a `precise` clip reports the bounds its MP4 plays. A 7 s
/// precise clip inside 2 s chunks holds 8 s of whole chunks and answers 7.0, the
/// MP4's duration (it answered 8.0, the chunks', before).
#[test]
fn a_precise_clip_reports_its_trimmed_bounds() {
    let (h, s) = playable(600);
    push_small(&h, s, 0, 30);
    let base = ok(h.engine.rendition_chunks(s, "v720"))[0].start_utc();
    let start = base.add_micros(11_000_000); // inside chunk 5 [10 s, 12 s)
    let mut r = req(7, Some(start));
    r.precise = true;
    let precise = ok(h.engine.create_clip(s, r.clone()));
    r.precise = false;
    let whole = ok(h.engine.create_clip(s, r));
    let v = precise.view();
    assert_eq!(v.actual_duration_micros(), 8_000_000, "whole chunks held");
    assert_eq!(precise.actual_start(), Some(start));
    assert_eq!(precise.actual_duration_secs(), 7.0);
    assert_eq!(
        precise.played(&v),
        Some((start, start.add_micros(7_000_000)))
    );
    let mp4 = ok_build(&precise);
    assert_eq!(mp4.bounds().duration_micros, 7_000_000);
    assert_eq!(mp4.bounds().lead_in_micros, 1_000_000);
    // Not precise: the whole chunks, as the MP4 plays them.
    assert_eq!(whole.actual_start(), Some(base.add_micros(10_000_000)));
    assert_eq!(whole.actual_duration_secs(), 8.0);
    assert_eq!(ok_build(&whole).bounds().duration_micros, 8_000_000);
}

/// A precise clip whose request starts before the DVR: it plays from its first chunk
/// to the requested end, and says so.
#[test]
fn a_precise_clip_starting_before_the_dvr_reports_what_it_plays() {
    let (h, s) = playable(600);
    push_small(&h, s, 0, 10);
    let base = ok(h.engine.rendition_chunks(s, "v720"))[0].start_utc();
    let mut r = req(7, Some(base.add_micros(-3_000_000)));
    r.precise = true;
    let clip = ok(h.engine.create_clip(s, r));
    assert_eq!(clip.actual_start(), Some(base));
    assert_eq!(clip.actual_duration_secs(), 4.0);
    assert_eq!(ok_build(&clip).bounds().duration_micros, 4_000_000);
}

#[test]
fn a_broken_discontinuity_opens_a_new_one_though_media_time_continues() {
    // A pull switching origin: the same media timeline from another source.
    let (h, s) = setup(600);
    push_run(&h, s, "v720", 0, 2, 1);
    ok(h.engine.break_discontinuity(s, "v720"));
    // Unknown renditions are left alone; unknown streams are an error.
    ok(h.engine.break_discontinuity(s, "nope"));
    assert!(h.engine.break_discontinuity(StreamId(99), "v720").is_err());
    h.clock.advance_secs(2);
    let out = ok(h.engine.push_segment(
        s,
        "v720",
        Some("seg_2.m4s"),
        segment(2 * SEG_TICKS, SEG_FRAMES, true, 100),
    ));
    assert!(
        matches!(
            out,
            PushOutcome::Stored {
                new_discontinuity: true,
                ..
            }
        ),
        "{out:?}"
    );
    // Only the next chunk: the one after continues.
    push_run(&h, s, "v720", 3, 1, 1);
    let r = &ok(h.engine.dvr(s)).renditions[0];
    assert_eq!(r.discontinuities.len(), 2);
}

/// A ring's generation is the same between writes and changes with every write (a
/// chunk, an init, a window prune): what the live playlist cache keys on.
#[test]
fn live_generation_changes_with_every_ring_write_only() {
    let (h, s) = setup(10);
    let g0 = ok(h.engine.live_generation(s, "v720"));
    assert_eq!(ok(h.engine.live_generation(s, "v720")), g0);
    let _ = ok(h.engine.live_rendition(s, "v720"));
    assert_eq!(ok(h.engine.live_generation(s, "v720")), g0);
    push_run(&h, s, "v720", 0, 1, 1);
    let g1 = ok(h.engine.live_generation(s, "v720"));
    assert_ne!(g1, g0);
    assert_eq!(ok(h.engine.live_generations(s)), vec![g1]);
    // A window of 10 s: the seventh chunk pushes the first out.
    push_run(&h, s, "v720", 1, 6, 1);
    let g2 = ok(h.engine.live_generation(s, "v720"));
    assert!(g2 != g1 && g2 != g0);
    ok(h.engine.push_init(s, "v720", init(480, 2)));
    assert_ne!(ok(h.engine.live_generation(s, "v720")), g2);
    assert!(h.engine.live_generation(s, "nope").is_err());
}
