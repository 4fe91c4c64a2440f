//! What the spool holds stays bounded while it runs, with a real engine ingesting
//! real fixture media (`tests/fixtures/h264_aac`): the journal of a long ingest is
//! compacted by the spool's own background thread and stays a bounded size on disk;
//! at most `max_maps` payload files are mapped (counted by the kernel in
//! `/proc/self/maps`), the rest held in memory, and a restart under the same cap
//! restores all of it with the clip's MP4 byte for byte.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dvrclip_engine::{
    ClipId, ClipRequest, Clock, Engine, EngineConfig, ManualClock, StreamId, StreamSettings,
    WallTime,
};
use dvrclip_spool::{Spool, SpoolOptions};

const T0: i64 = 1_795_564_800;

fn fixture(name: &str) -> Bytes {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/h264_aac")
        .join(name);
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// On tmpfs where there is one (as the server's default spool): the background
/// thread's batch syncs then cost nothing, so its compactions keep their pace
/// under this test's hundreds of chunks a second.
fn dir(tag: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("dvrclip-bounds-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

struct Running {
    clock: Arc<ManualClock>,
    engine: Engine,
    spool: Arc<Spool>,
}

fn open(d: &Path, now: WallTime, options: SpoolOptions) -> Running {
    let clock = Arc::new(ManualClock::new(now));
    let opened = Spool::open_with(d, options, clock.now()).unwrap();
    let engine = Engine::with_clock(EngineConfig::default(), clock.clone())
        .with_persist(opened.spool.clone());
    engine.restore(opened.restore).unwrap();
    Running {
        clock,
        engine,
        spool: opened.spool,
    }
}

/// A process that dies: nothing more is removed.
fn crash(r: Running) {
    r.spool.seal().unwrap();
}

/// The fixture's two segments again, as a new discontinuity (an encoder restart).
fn push_pair(r: &Running, s: StreamId) {
    r.engine.break_discontinuity(s, "v").unwrap();
    for name in ["seg_000.m4s", "seg_001.m4s"] {
        r.engine
            .push_segment_bytes(s, "v", Some(name), fixture(name))
            .unwrap();
        r.clock.advance_micros(2_000_000);
    }
}

fn stream(r: &Running, dvr_secs: u32) -> StreamId {
    let mut settings = StreamSettings::named("bounds");
    settings.dvr_duration_secs = dvr_secs;
    let s = r.engine.create_stream(settings).unwrap().id;
    r.engine
        .push_init_bytes(s, "v", fixture("init.mp4"))
        .unwrap();
    s
}

fn mp4_of(engine: &Engine, id: ClipId) -> Option<(String, Vec<u8>)> {
    let clip = engine.clip(id).ok()?;
    let view = clip.view();
    let mp4 = clip.mp4(&view, view.reference()?).ok()?;
    let mut bytes = Vec::new();
    for piece in mp4.range(0..mp4.len()).ok()? {
        bytes.extend_from_slice(&piece);
    }
    Some((mp4.etag().to_owned(), bytes))
}

/// Mappings of files under `d` the kernel lists for this process now.
fn kernel_maps_under(d: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let d = d.to_str().unwrap();
    maps.lines().filter(|l| l.contains(d)).count()
}

/// Issue 20: the background compaction keeps a long ingest's journal bounded on
/// disk. 16 KiB as the floor (32 MiB in production) so a few seconds of pushes pass
/// it many times over.
#[test]
fn a_long_ingest_keeps_its_journal_bounded_on_disk() {
    let d = dir("journal");
    let options = SpoolOptions {
        compact_min_bytes: 16 << 10,
        ..SpoolOptions::default()
    };
    let r = open(&d, WallTime::from_unix_secs(T0), options);
    let s = stream(&r, 10);
    let journal = r.spool.journal_path().to_owned();
    let (mut appended, mut largest, mut last) = (0u64, 0u64, r.spool.journal_bytes());
    let started = Instant::now();
    let mut pushed = 0;
    while started.elapsed() < Duration::from_secs(10) {
        push_pair(&r, s);
        pushed += 2;
        let now = r.spool.journal_bytes();
        appended += now.saturating_sub(last);
        last = now;
        largest = largest.max(std::fs::metadata(&journal).unwrap().len());
        std::thread::sleep(Duration::from_millis(2));
    }
    let compactions = r.spool.stats.compactions.load(Ordering::Relaxed);
    eprintln!(
        "{pushed} chunks, {appended} bytes appended, {compactions} compactions, largest journal {largest} bytes"
    );
    assert!(compactions >= 3, "compacted while running: {compactions}");
    // Bounded: never past the compaction floor (twice it, as what is alive may be
    // half of it) plus what two of the background thread's 1 s ticks append,
    // whatever the push rate on a loaded machine.
    let per_sec = appended / started.elapsed().as_secs().max(1);
    assert!(
        largest <= 2 * (16 << 10) + 2 * per_sec,
        "the journal stays bounded: {largest} bytes on disk at {per_sec} bytes/s appended"
    );
    assert!(
        appended > 2 * largest,
        "at most {largest} bytes on disk of {appended} appended"
    );
    let metrics = r.spool.render_metrics();
    assert!(
        metrics.contains(&format!("dvrclip_spool_compactions_total {compactions}")),
        "{metrics}"
    );
    let dvr = r.engine.dvr(s).unwrap();
    crash(r);

    let r = open(&d, WallTime::from_unix_secs(T0 + 1), options);
    assert_eq!(
        r.engine.dvr(s).unwrap(),
        dvr,
        "a compacted journal loses nothing"
    );
    crash(r);
    let _ = std::fs::remove_dir_all(d);
}

/// Issue 20: at most `max_maps` payload files are mapped; the others are held in
/// memory, served and restored the same.
#[test]
fn payload_mappings_stay_under_their_cap() {
    let d = dir("maps");
    let options = SpoolOptions {
        max_maps: 4,
        ..SpoolOptions::default()
    };
    let r = open(&d, WallTime::from_unix_secs(T0), options);
    let s = stream(&r, 3600);
    for _ in 0..10 {
        push_pair(&r, s);
    }
    let clip = r
        .engine
        .create_clip(
            s,
            ClipRequest {
                duration_secs: 30,
                start_unix_secs: Some(T0 + 4),
                ..ClipRequest::default()
            },
        )
        .unwrap()
        .id();
    let before = mp4_of(&r.engine, clip).unwrap();
    let counts = r.spool.payload_counts();
    assert_eq!((counts.mapped, counts.held), (4, 16), "{counts:?}");
    assert_eq!(r.spool.live_payloads(), 20);
    let on_disk: u64 = std::fs::read_dir(d.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(counts.mapped_bytes + counts.held_bytes, on_disk);
    assert_eq!(kernel_maps_under(&d), 4, "the kernel's count");
    let dvr = r.engine.dvr(s).unwrap();
    crash(r);
    assert_eq!(
        kernel_maps_under(&d),
        0,
        "every mapping went with its engine"
    );

    let r = open(&d, WallTime::from_unix_secs(T0 + 60), options);
    let counts = r.spool.payload_counts();
    assert_eq!((counts.mapped, counts.held), (4, 16), "{counts:?}");
    assert!(kernel_maps_under(&d) <= 4);
    assert_eq!(r.engine.dvr(s).unwrap(), dvr);
    assert_eq!(mp4_of(&r.engine, clip).unwrap(), before, "the same MP4");

    // Freed like mapped ones: their files go with the last holder.
    r.engine.delete_clip(clip).unwrap();
    r.engine.delete_stream(s).unwrap();
    let counts = r.spool.payload_counts();
    assert_eq!(counts, dvrclip_spool::PayloadCounts::default());
    assert_eq!(std::fs::read_dir(d.join("chunks")).unwrap().count(), 0);
    crash(r);
    let _ = std::fs::remove_dir_all(d);
}
