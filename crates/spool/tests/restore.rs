//! The spool with a real engine and real fixture media (ffmpeg-made, see
//! `tests/fixtures/README.md`): what one engine committed, a second one restores,
//! the clip's MP4 identical; a journal cut at every byte offset of its last record
//! restores everything before it and never a wrong clip; a payload file changed on
//! disk is dropped, and the clip holding it is not served short but reported lost
//! until it is deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{
    ClipRequest, Clock, Engine, EngineConfig, ManualClock, StreamId, StreamSettings, WallTime,
};
use dvrclip_spool::{Spool, SyncPolicy};

const T0: i64 = 1_795_564_800;

fn fixture(name: &str) -> Bytes {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/h264_aac")
        .join(name);
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dvrclip-spool-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// An engine on `dir`'s spool at `now`, with what the spool restored.
fn open(dir: &Path, now: i64) -> (Engine, Arc<Spool>, dvrclip_engine::persist::RestoreReport) {
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(now)));
    let opened = Spool::open(dir, SyncPolicy::Batch, clock.now()).unwrap();
    let engine =
        Engine::with_clock(EngineConfig::default(), clock).with_persist(opened.spool.clone());
    let report = engine.restore(opened.restore).unwrap();
    (engine, opened.spool, report)
}

/// A process that dies: nothing more is removed, nothing dropped cleans up.
fn crash(engine: Engine, spool: Arc<Spool>) {
    spool.seal().unwrap();
    drop(engine);
    drop(spool);
}

/// The ETag and bytes of the clip's reference MP4.
fn mp4_of(engine: &Engine, id: dvrclip_engine::ClipId) -> Option<(String, Vec<u8>)> {
    let clip = engine.clip(id).ok()?;
    let view = clip.view();
    let mp4 = clip.mp4(&view, view.reference()?).ok()?;
    let mut bytes = Vec::new();
    for piece in mp4.range(0..mp4.len()).ok()? {
        bytes.extend_from_slice(&piece);
    }
    Some((mp4.etag().to_owned(), bytes))
}

/// One stream with the fixture's two 2 s segments and a complete clip of them.
fn fill(engine: &Engine) -> (StreamId, dvrclip_engine::ClipId) {
    let s = engine
        .create_stream(StreamSettings::named("spool"))
        .unwrap()
        .id;
    engine.push_init_bytes(s, "v", fixture("init.mp4")).unwrap();
    for name in ["seg_000.m4s", "seg_001.m4s"] {
        engine
            .push_segment_bytes(s, "v", Some(name), fixture(name))
            .unwrap();
    }
    let clip = engine
        .create_clip(
            s,
            ClipRequest {
                duration_secs: 3,
                start_unix_secs: Some(T0),
                ..ClipRequest::default()
            },
        )
        .unwrap();
    (s, clip.id())
}

#[test]
fn a_restart_restores_the_dvr_and_the_clip_byte_for_byte() {
    let d = dir("restart");
    let (engine, spool, _) = open(&d, T0);
    let (s, clip) = fill(&engine);
    let before = mp4_of(&engine, clip).unwrap();
    let dvr = engine.dvr(s).unwrap();
    let key = engine.stream(s).unwrap().ingest_key;
    crash(engine, spool);

    let (engine, spool, report) = open(&d, T0 + 10);
    assert_eq!(
        (report.streams, report.ring_chunks, report.clips),
        (1, 2, 1)
    );
    assert_eq!(engine.dvr(s).unwrap(), dvr);
    assert_eq!(engine.stream_by_ingest_key(&key), Some(s));
    assert_eq!(mp4_of(&engine, clip).unwrap(), before);
    // New streams never reuse an id.
    let next = engine.create_stream(StreamSettings::named("n")).unwrap().id;
    assert_eq!(next, StreamId(s.0 + 1));
    crash(engine, spool);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_journal_cut_inside_its_last_record_loses_only_that_record() {
    let d = dir("torn");
    let (engine, spool, _) = open(&d, T0);
    let (s, clip) = fill(&engine);
    let before = mp4_of(&engine, clip).unwrap();
    let journal = spool.journal_path().to_owned();
    crash(engine, spool);
    let whole = std::fs::read(&journal).unwrap();
    // Frame starts: the last record is the clip's.
    let mut starts = Vec::new();
    let mut at = 8;
    while let Ok(Some((_, n))) = dvrclip_spool::record::decode(&whole[at..]) {
        starts.push(at);
        at += n;
    }
    assert_eq!(at, whole.len());
    let last = *starts.last().unwrap();
    for cut in last..=whole.len() {
        std::fs::write(&journal, &whole[..cut]).unwrap();
        let (engine, spool, report) = open(&d, T0 + 10);
        assert_eq!(report.ring_chunks, 2, "cut at {cut}");
        match mp4_of(&engine, clip) {
            Some(mp4) => {
                assert_eq!(cut, whole.len(), "a clip only from its whole record");
                assert!(mp4 == before, "never a wrong clip");
            }
            None => assert!(cut < whole.len(), "cut at {cut}"),
        }
        assert!(engine.stream(s).is_ok());
        crash(engine, spool);
    }
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_changed_payload_is_dropped_and_its_clip_is_not_served_short() {
    let d = dir("corrupt");
    let (engine, spool, _) = open(&d, T0);
    let (s, clip) = fill(&engine);
    crash(engine, spool);
    // Flip a byte in one payload file.
    let chunks = d.join("chunks");
    let mut files: Vec<_> = std::fs::read_dir(&chunks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
    std::fs::write(&files[1], &bytes).unwrap();

    let (engine, spool, report) = open(&d, T0 + 10);
    assert_eq!(
        (report.ring_chunks, report.clips, report.clips_lost),
        (1, 0, 1)
    );
    assert!(mp4_of(&engine, clip).is_none(), "lost, never served short");
    assert_eq!(engine.dvr(s).unwrap().renditions[0].chunks, 1);
    // Reported as lost, not as never made, until it expires or is deleted.
    assert!(matches!(
        engine.clip(clip),
        Err(dvrclip_engine::Error::ClipLost { .. })
    ));
    let lost = engine.lost_clips(s);
    assert_eq!(lost.len(), 1);
    assert_eq!((lost[0].id, lost[0].request.duration_secs), (clip, 3));
    crash(engine, spool);

    // A second restart reports it again; a delete ends it, for good.
    let (engine, spool, report) = open(&d, T0 + 20);
    assert_eq!(report.clips_lost, 1);
    engine.delete_clip(clip).unwrap();
    assert!(matches!(
        engine.clip(clip),
        Err(dvrclip_engine::Error::UnknownClip)
    ));
    assert!(engine.lost_clips(s).is_empty());
    crash(engine, spool);
    let (engine, spool, report) = open(&d, T0 + 30);
    assert_eq!((report.clips, report.clips_lost), (0, 0));
    crash(engine, spool);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_second_process_on_one_spool_is_refused() {
    let d = dir("lock");
    let (engine, spool, _) = open(&d, T0);
    let second = Spool::open(&d, SyncPolicy::Batch, WallTime::from_unix_secs(T0));
    assert!(matches!(second, Err(dvrclip_spool::SpoolError::Locked(_))));
    crash(engine, spool);
    let _ = std::fs::remove_dir_all(d);
}

/// A compaction while running keeps only what is alive (the journal shrinks) and
/// loses nothing of it: the DVR and a clip holding chunks that left the DVR.
#[test]
fn a_compaction_while_running_keeps_what_is_alive() {
    let d = dir("compact");
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(T0)));
    let opened = Spool::open(&d, SyncPolicy::Batch, clock.now()).unwrap();
    let spool = opened.spool;
    let engine =
        Engine::with_clock(EngineConfig::default(), clock.clone()).with_persist(spool.clone());
    let mut settings = StreamSettings::named("short");
    settings.dvr_duration_secs = 10;
    let s = engine.create_stream(settings).unwrap().id;
    engine.push_init_bytes(s, "v", fixture("init.mp4")).unwrap();
    let push_pair = |engine: &Engine| {
        engine.break_discontinuity(s, "v").unwrap();
        for name in ["seg_000.m4s", "seg_001.m4s"] {
            engine
                .push_segment_bytes(s, "v", Some(name), fixture(name))
                .unwrap();
            clock.advance_micros(2_000_000);
        }
    };
    push_pair(&engine);
    let clip = engine
        .create_clip(
            s,
            ClipRequest {
                duration_secs: 3,
                start_unix_secs: Some(T0),
                ..ClipRequest::default()
            },
        )
        .unwrap()
        .id();
    let before = mp4_of(&engine, clip).unwrap();
    for _ in 0..20 {
        push_pair(&engine);
    }
    let dvr = engine.dvr(s).unwrap();
    let grown = spool.journal_bytes();
    spool.compact().unwrap();
    assert!(
        spool.journal_bytes() < grown / 2,
        "{} of {grown}",
        spool.journal_bytes()
    );
    crash(engine, spool);

    let (engine, spool, report) = open(&d, T0 + 90);
    assert_eq!((report.clips, report.clips_lost), (1, 0));
    assert_eq!(engine.dvr(s).unwrap(), dvr);
    assert_eq!(mp4_of(&engine, clip).unwrap(), before);
    crash(engine, spool);
    let _ = std::fs::remove_dir_all(d);
}

/// A file of the encoder-restart fixture (`restart/a`, `restart/b`: two runs with
/// different inits).
fn run_file(run: &str, name: &str) -> Bytes {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/restart")
        .join(run)
        .join(name);
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// An engine on `dir`'s spool at `clock`'s time, with what the spool restored.
fn open_on(dir: &Path, clock: &Arc<ManualClock>) -> (Engine, Arc<Spool>) {
    let opened = Spool::open(dir, SyncPolicy::Batch, clock.now()).unwrap();
    let engine = Engine::with_clock(EngineConfig::default(), clock.clone())
        .with_persist(opened.spool.clone());
    engine.restore(opened.restore).unwrap();
    (engine, opened.spool)
}

/// Which run's init (`"a"`, `"b"`) the rendition's current init is.
fn current_init(engine: &Engine, s: StreamId) -> &'static str {
    let r = engine.renditions(s).unwrap();
    let bytes = &r[0].init.as_ref().unwrap().bytes;
    ["a", "b"]
        .into_iter()
        .find(|run| bytes[..] == run_file(run, "init.mp4")[..])
        .unwrap_or("neither")
}

/// Init A, a chunk, init B, a chunk, init A again (a new init, the same bytes as
/// the first): A is the rendition's current init after a restart, and again after
/// a second one (the first restart's compacted journal), so the next segment of
/// A's run is cut against A in a discontinuity of its own, as without a restart.
#[test]
fn an_init_that_comes_back_is_current_after_a_restart() {
    let d = dir("init-back");
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(T0)));
    let (engine, spool) = open_on(&d, &clock);
    let s = engine
        .create_stream(StreamSettings::named("back"))
        .unwrap()
        .id;
    let a = run_file("a", "init.mp4");
    engine.push_init_bytes(s, "v", a.clone()).unwrap();
    clock.advance_secs(2);
    engine
        .push_segment_bytes(s, "v", Some("a0"), run_file("a", "seg_000.m4s"))
        .unwrap();
    engine
        .push_init_bytes(s, "v", run_file("b", "init.mp4"))
        .unwrap();
    clock.advance_secs(2);
    engine
        .push_segment_bytes(s, "v", Some("b0"), run_file("b", "seg_000.m4s"))
        .unwrap();
    engine.push_init_bytes(s, "v", a.clone()).unwrap();
    assert_eq!(current_init(&engine, s), "a");
    let last_disc = engine.rendition_chunks(s, "v").unwrap()[1].discontinuity();
    crash(engine, spool);

    for restart in 0..2 {
        let (engine, spool) = open_on(&d, &clock);
        assert_eq!(current_init(&engine, s), "a", "restart {restart}");
        crash(engine, spool);
    }
    let (engine, spool) = open_on(&d, &clock);
    clock.advance_secs(2);
    engine
        .push_segment_bytes(s, "v", Some("a1"), run_file("a", "seg_001.m4s"))
        .unwrap();
    let chunks = engine.rendition_chunks(s, "v").unwrap();
    let next = chunks.last().unwrap();
    assert_eq!(next.name(), Some("a1"));
    assert!(next.init().bytes[..] == a[..], "cut against A");
    assert_eq!(next.discontinuity(), last_disc + 1);
    crash(engine, spool);
    let _ = std::fs::remove_dir_all(d);
}

/// Inits admitted in four processes one after another (A, B, A, B, a restart
/// between each): the current init after each restart is the last one admitted,
/// so init ids go on past a restart and never name an older init again.
#[test]
fn the_last_init_admitted_is_current_across_restarts() {
    let d = dir("init-ids");
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(T0)));
    let (engine, spool) = open_on(&d, &clock);
    let s = engine
        .create_stream(StreamSettings::named("ids"))
        .unwrap()
        .id;
    crash(engine, spool);
    for (i, run) in ["a", "b", "a", "b"].into_iter().enumerate() {
        let (engine, spool) = open_on(&d, &clock);
        engine
            .push_init_bytes(s, "v", run_file(run, "init.mp4"))
            .unwrap();
        clock.advance_secs(2);
        engine
            .push_segment_bytes(
                s,
                "v",
                Some(&format!("{run}{i}")),
                run_file(run, "seg_000.m4s"),
            )
            .unwrap();
        crash(engine, spool);
        let (engine, spool) = open_on(&d, &clock);
        assert_eq!(current_init(&engine, s), run, "after init {i}");
        crash(engine, spool);
    }
    let _ = std::fs::remove_dir_all(d);
}
