//! The shipper against a directory store and real fixture media.

use std::path::Path;

use dvrclip_engine::{ClipRequest, EngineConfig, ManualClock, StreamSettings, WallTime};

use super::*;
use crate::cluster::records::StreamRecord;
use crate::vod::StoreConfig;

const T0: i64 = 1_795_564_800;

fn fixture(name: &str) -> Bytes {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/h264_aac")
        .join(name);
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// A node: an engine shipping into the store at `dir`, its clock at `now`.
fn node(dir: &Path, now: i64) -> (Arc<Engine>, Arc<Shipper>, Arc<ManualClock>) {
    let store = crate::vod::open_store(&StoreConfig::Local(dir.to_owned()), None);
    node_on(store, now, EngineConfig::default())
}

/// A node shipping into `store`, its engine under `config`.
fn node_on(
    store: Arc<dyn VodStore>,
    now: i64,
    config: EngineConfig,
) -> (Arc<Engine>, Arc<Shipper>, Arc<ManualClock>) {
    let ship = Shipper::new(ClipArchive::new(store));
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(now)));
    let engine = Engine::with_clock(config, clock.clone()).with_persist(Arc::new(ShipPersist {
        inner: None,
        ship: Arc::clone(&ship),
        runtime: tokio::runtime::Handle::current(),
    }));
    (Arc::new(engine), ship, clock)
}

/// Flushes until nothing is queued.
async fn shipped(ship: &Arc<Shipper>) {
    for _ in 0..500 {
        ship.flush();
        let idle = {
            let st = ship.state.lock();
            st.inflight_records == 0
                && st
                    .streams
                    .values()
                    .all(|s| !s.busy && s.batch.is_empty() && s.gen_written)
        };
        if idle {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not shipped");
}

fn keys(dir: &Path) -> Vec<String> {
    fn walk(d: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A DVR and a clip shipped by one node come back on the next claimant, the
/// clip's MP4 byte for byte; what neither the window nor a clip needs is swept;
/// a deleted stream's objects go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_restores_what_the_last_owner_shipped_and_the_sweep_frees_the_rest() {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut settings = StreamSettings::named("ship");
    settings.dvr_duration_secs = 60;
    let record = StreamRecord::new(7, &settings, WallTime::from_unix_secs(T0)).unwrap();
    let s = StreamId(7);

    let (a, ship_a, _) = node(&dir, T0);
    ship_a.take_in(&a, &record, 5).await.unwrap();
    a.push_init_bytes(s, "v", fixture("init.mp4")).unwrap();
    for name in ["seg_000.m4s", "seg_001.m4s"] {
        a.push_segment_bytes(s, "v", Some(name), fixture(name))
            .unwrap();
    }
    let request = ClipRequest {
        duration_secs: 3,
        start_unix_secs: Some(T0),
        ..ClipRequest::default()
    };
    let clip = a.create_clip(s, request).unwrap();
    let mp4 = |e: &Engine| {
        let c = e.clip(clip.id()).unwrap();
        let view = c.view();
        let m = c.mp4(&view, view.reference().unwrap()).unwrap();
        let bytes: Vec<u8> = m.range(0..m.len()).unwrap().flatten().collect();
        (m.etag().to_owned(), bytes)
    };
    shipped(&ship_a).await;
    assert!(keys(&dir).contains(&"dvr/7/0000000000000005/gen.json".to_owned()));

    // The next owner (a greater generation) restores the DVR and the clip.
    let (b, ship_b, clock_b) = node(&dir, T0 + 10);
    ship_b.take_in(&b, &record, 9).await.unwrap();
    assert_eq!(b.dvr(s).unwrap(), a.dvr(s).unwrap());
    assert_eq!(mp4(&b), mp4(&a));
    shipped(&ship_b).await;
    assert!(keys(&dir).contains(&"dvr/7/0000000000000009/gen.json".to_owned()));
    let gen9: GenerationRec = serde_json::from_slice(
        &std::fs::read(dir.join("dvr/7/0000000000000009/gen.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(gen9.base, [5]);

    // Within the window nothing goes; past it, only what the clip does not need.
    assert_eq!(ship_b.sweepable(&b, s), Vec::<String>::new());
    clock_b.advance_secs(300);
    assert_eq!(ship_b.sweepable(&b, s), Vec::<String>::new());
    b.delete_clip(clip.id()).unwrap();
    let swept = ship_b.sweepable(&b, s);
    assert!(
        swept
            .iter()
            .any(|k| k.starts_with("dvr/7/0000000000000005/")),
        "{swept:?}"
    );

    // A deleted stream's objects are removed.
    b.delete_stream(s).unwrap();
    for _ in 0..500 {
        if keys(&dir).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(keys(&dir), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// An object that is not a batch is skipped with a count, and the rest restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_object_is_skipped_and_counted() {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let record = StreamRecord::new(
        3,
        &StreamSettings::named("bad"),
        WallTime::from_unix_secs(T0),
    )
    .unwrap();
    let s = StreamId(3);
    let (a, ship_a, _) = node(&dir, T0);
    ship_a.take_in(&a, &record, 2).await.unwrap();
    a.push_init_bytes(s, "v", fixture("init.mp4")).unwrap();
    a.push_segment_bytes(s, "v", Some("seg_000.m4s"), fixture("seg_000.m4s"))
        .unwrap();
    shipped(&ship_a).await;
    a.push_segment_bytes(s, "v", Some("seg_001.m4s"), fixture("seg_001.m4s"))
        .unwrap();
    shipped(&ship_a).await;
    let batch = dir.join("dvr/3/0000000000000002/0000000000000001.dvr");
    let mut bytes = std::fs::read(&batch).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&batch, bytes).unwrap();

    let (b, ship_b, _) = node(&dir, T0 + 10);
    ship_b.take_in(&b, &record, 4).await.unwrap();
    assert_eq!(ship_b.counters.corrupt.load(Relaxed), 1);
    assert_eq!(b.dvr(s).unwrap().renditions[0].chunks, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The directory store at `dir`, whose reads of `stalled` keys never end (a
/// store slower than a claim's bound).
#[derive(Debug)]
struct Stalling {
    inner: Arc<dyn VodStore>,
    stalled: HashSet<String>,
}

impl VodStore for Stalling {
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
    ) -> futures_util::future::BoxFuture<'a, Result<(), crate::vod::StoreError>> {
        self.inner.put(key, body)
    }

    fn put_pieces<'a>(
        &'a self,
        key: &'a str,
        len: u64,
        pieces: crate::vod::store::Pieces<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<(), crate::vod::StoreError>> {
        self.inner.put_pieces(key, len, pieces)
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Bytes, crate::vod::StoreError>> {
        if self.stalled.contains(key) {
            return Box::pin(std::future::pending());
        }
        self.inner.get(key)
    }

    fn get_range<'a>(
        &'a self,
        key: &'a str,
        range: std::ops::Range<u64>,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<crate::vod::store::ByteStream, crate::vod::StoreError>,
    > {
        self.inner.get_range(key, range)
    }

    fn head<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<u64>, crate::vod::StoreError>> {
        self.inner.head(key)
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<(String, u64)>, crate::vod::StoreError>>
    {
        self.inner.list(prefix)
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), crate::vod::StoreError>> {
        self.inner.delete(key)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Node A's DVR of 16 chunks of 2 s (`looped_segment`), one batch object each,
/// with three clips: `old` (complete, of the first chunks), `long` (recording
/// since the first chunk) and `new` (complete, of the newest chunks). Returns
/// the engine, the stream's record and the clips.
async fn shipped_dvr(dir: &Path) -> (Arc<Engine>, StreamRecord, [ClipId; 3]) {
    let mut settings = StreamSettings::named("big");
    settings.dvr_duration_secs = 3600;
    let record = StreamRecord::new(7, &settings, WallTime::from_unix_secs(T0)).unwrap();
    let s = StreamId(7);
    let (a, ship_a, clock) = node(dir, T0);
    ship_a.take_in(&a, &record, 5).await.unwrap();
    a.push_init_bytes(s, "v", crate::demo::looped_segment(0).0)
        .unwrap();
    let clip = |start: i64, secs: u64| {
        let request = ClipRequest {
            duration_secs: secs,
            start_unix_secs: Some(start),
            ..ClipRequest::default()
        };
        a.create_clip(s, request).unwrap().id()
    };
    let mut clips = Vec::new();
    for n in 0..16 {
        let (_, segment) = crate::demo::looped_segment(n);
        let name = format!("seg_{n}.m4s");
        a.push_segment_bytes(s, "v", Some(&name), segment).unwrap();
        clock.advance_secs(2);
        match n {
            1 => clips.push(clip(T0, 60)),
            3 => clips.push(clip(T0, 4)),
            _ => {}
        }
        shipped(&ship_a).await;
    }
    clips.push(clip(T0 + 24, 6));
    shipped(&ship_a).await;
    (a, record, [clips[1], clips[0], clips[2]])
}

/// A clip's first rendition's MP4: its ETag and bytes.
fn clip_mp4(e: &Engine, id: ClipId) -> (String, Vec<u8>) {
    let c = e.clip(id).unwrap();
    let view = c.view();
    let m = c.mp4(&view, view.reference().unwrap()).unwrap();
    let bytes: Vec<u8> = m.range(0..m.len()).unwrap().flatten().collect();
    (m.etag().to_owned(), bytes)
}

/// The batch objects under `dir`, oldest first.
fn batches(dir: &Path) -> Vec<String> {
    keys(dir)
        .into_iter()
        .filter(|k| k.ends_with(".dvr"))
        .collect()
}

/// A restore cut by its bound keeps the newest objects read: the ring is the
/// newest chunks, one run ending where the dead node's did; a clip of them is
/// back byte for byte; a clip holding older chunks too is lost (reported, never
/// served short); a clip whose record was not read is unknown; the objects not
/// read are the sweep's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_cut_by_its_bound_keeps_the_newest_chunks() {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-cut-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = StreamId(7);
    let (a, record, [old, long, new]) = shipped_dvr(&dir).await;
    let all = batches(&dir);
    // Every object but the newest 6 is slower than the bound.
    let read = 6;
    let stalled: HashSet<String> = all[..all.len() - read].iter().cloned().collect();
    let local = crate::vod::open_store(&StoreConfig::Local(dir.clone()), None);
    let store = Arc::new(Stalling {
        inner: local,
        stalled: stalled.clone(),
    });
    let (b, ship_b, _) = node_on(store, T0 + 40, EngineConfig::default());
    ship_b.restore_timeout_ms.store(1000, Relaxed);
    let started = Instant::now();
    ship_b.take_in(&b, &record, 9).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ship_b.counters.restores_partial.load(Relaxed), 1);
    assert_eq!(ship_b.counters.unread.load(Relaxed), stalled.len() as u64);

    // The newest chunks, one run ending at A's newest.
    let chunks_read: usize = all[all.len() - read..]
        .iter()
        .map(|k| {
            let bytes = Bytes::from(std::fs::read(dir.join(k)).unwrap());
            let entries = shipped::decode(&bytes).unwrap();
            entries
                .iter()
                .filter(|e| matches!(e.record, Record::Chunk(_)))
                .count()
        })
        .sum();
    assert!(chunks_read >= 4, "{chunks_read}");
    let (da, db) = (a.dvr(s).unwrap(), b.dvr(s).unwrap());
    let (ra, rb) = (&da.renditions[0], &db.renditions[0]);
    assert_eq!(ra.chunks, 16);
    assert_eq!(rb.chunks, chunks_read);
    assert_eq!(rb.ranges.len(), 1, "{rb:?}");
    assert_eq!(rb.ranges[0].end_utc, ra.ranges[0].end_utc);

    assert_eq!(clip_mp4(&b, new), clip_mp4(&a, new));
    assert!(b.clip(long).is_err());
    assert!(
        b.lost_clip(long).is_some(),
        "the recording clip is reported lost"
    );
    assert!(b.clip(old).is_err());
    assert!(b.lost_clip(old).is_none(), "its record was not read");

    // What was not read goes at the first sweep, and only that.
    let mut swept = ship_b.sweepable(&b, s);
    swept.sort();
    let mut expected: Vec<String> = stalled.into_iter().collect();
    expected.sort();
    assert_eq!(swept, expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A restore reads no more than the memory budget leaves: the newest objects
/// that fit, and the engine within its budget after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_reads_what_the_memory_budget_leaves() {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-mem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = StreamId(7);
    let (a, record, _) = shipped_dvr(&dir).await;
    let all = batches(&dir);
    let size = |k: &String| std::fs::metadata(dir.join(k)).unwrap().len();
    // Room for the newest 5 objects and the tables their chunks are parsed into.
    let newest: u64 = all[all.len() - 5..].iter().map(size).sum();
    let budget = newest * 3 / 2;
    let fit = all
        .iter()
        .rev()
        .scan(0, |sum, k| {
            *sum += size(k);
            Some(*sum)
        })
        .take_while(|sum| *sum <= budget)
        .count();
    let config = EngineConfig {
        memory_budget_bytes: budget,
        ..EngineConfig::default()
    };
    let store = crate::vod::open_store(&StoreConfig::Local(dir.clone()), None);
    let (b, ship_b, _) = node_on(store, T0 + 40, config);
    ship_b.take_in(&b, &record, 9).await.unwrap();
    assert_eq!(ship_b.counters.restores_partial.load(Relaxed), 1);
    assert_eq!(
        ship_b.counters.unread.load(Relaxed),
        (all.len() - fit) as u64
    );
    let (ra, rb) = (
        &a.dvr(s).unwrap().renditions[0],
        &b.dvr(s).unwrap().renditions[0],
    );
    assert!(rb.chunks > 0 && rb.chunks < ra.chunks, "{rb:?}");
    assert_eq!(rb.ranges.len(), 1, "{rb:?}");
    assert_eq!(rb.ranges[0].end_utc, ra.ranges[0].end_utc);
    let m = b.memory();
    assert!(m.total_bytes + m.reserved_bytes <= m.budget_bytes, "{m:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file of the encoder-restart fixture (`restart/a`, `restart/b`: two runs with
/// different inits).
fn run_file(run: &str, name: &str) -> Bytes {
    fixture(&format!("../restart/{run}/{name}"))
}

/// Which run's init (`"a"`, `"b"`) the rendition's current init is.
fn current_init(e: &Engine, s: StreamId) -> &'static str {
    let r = e.renditions(s).unwrap();
    let bytes = &r[0].init.as_ref().unwrap().bytes;
    ["a", "b"]
        .into_iter()
        .find(|run| bytes[..] == run_file(run, "init.mp4")[..])
        .unwrap_or("neither")
}

/// Pushes `run`'s init, then its segment `seg` a clock step later.
fn push_run(e: &Engine, clock: &ManualClock, s: StreamId, run: &str, seg: &str) {
    e.push_init_bytes(s, "v", run_file(run, "init.mp4"))
        .unwrap();
    clock.advance_secs(2);
    e.push_segment_bytes(s, "v", Some(&format!("{run}_{seg}")), run_file(run, seg))
        .unwrap();
}

/// A stream record for the tests below, its DVR an hour.
fn record_of(id: u64) -> StreamRecord {
    let mut settings = StreamSettings::named("inits");
    settings.dvr_duration_secs = 3600;
    StreamRecord::new(id, &settings, WallTime::from_unix_secs(T0)).unwrap()
}

/// A first owner (generation 5) of stream `id` that pushed a run of init A, then a
/// run of init B, all shipped into a fresh directory store: the store's directory,
/// the stream's record and id.
async fn a_then_b_shipped(tag: &str, id: u64) -> (std::path::PathBuf, StreamRecord, StreamId) {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let record = record_of(id);
    let s = StreamId(id);
    let (n1, ship1, clock1) = node(&dir, T0);
    ship1.take_in(&n1, &record, 5).await.unwrap();
    push_run(&n1, &clock1, s, "a", "seg_000.m4s");
    push_run(&n1, &clock1, s, "b", "seg_000.m4s");
    shipped(&ship1).await;
    (dir, record, s)
}

/// Init A, a chunk, init B, a chunk, init A again (a new init, the same bytes as
/// the first), shipped by one node: A is the current init on the next owner, so
/// the next segment of A's run is cut against A in a discontinuity of its own, as
/// on the first node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_that_comes_back_is_current_on_the_next_owner() {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-aba-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let record = record_of(11);
    let s = StreamId(11);
    let (a, ship_a, clock) = node(&dir, T0);
    ship_a.take_in(&a, &record, 5).await.unwrap();
    push_run(&a, &clock, s, "a", "seg_000.m4s");
    push_run(&a, &clock, s, "b", "seg_000.m4s");
    let a_init = run_file("a", "init.mp4");
    a.push_init_bytes(s, "v", a_init.clone()).unwrap();
    shipped(&ship_a).await;
    let last_disc = a.rendition_chunks(s, "v").unwrap()[1].discontinuity();

    let (b, ship_b, clock_b) = node(&dir, T0 + 10);
    ship_b.take_in(&b, &record, 9).await.unwrap();
    assert_eq!(b.dvr(s).unwrap().renditions[0].chunks, 2);
    assert_eq!(current_init(&b, s), "a");
    clock_b.advance_secs(2);
    b.push_segment_bytes(s, "v", Some("a_seg_001.m4s"), run_file("a", "seg_001.m4s"))
        .unwrap();
    let chunks = b.rendition_chunks(s, "v").unwrap();
    let next = chunks.last().unwrap();
    assert_eq!(next.name(), Some("a_seg_001.m4s"));
    assert!(next.init().bytes[..] == a_init[..], "cut against A");
    assert!(next.discontinuity() > last_disc);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Node 1 ships A then B; node 2 (its own init ids, from 1 again) restores B and
/// admits A again; node 3 restores A, the init node 2 had last, not B (whose id,
/// of the first generation, is the greatest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_that_comes_back_after_a_claim_is_current_on_the_third_owner() {
    let (dir, record, s) = a_then_b_shipped("aba3", 12).await;

    let (n2, ship2, clock2) = node(&dir, T0 + 10);
    ship2.take_in(&n2, &record, 9).await.unwrap();
    assert_eq!(current_init(&n2, s), "b");
    push_run(&n2, &clock2, s, "a", "seg_001.m4s");
    shipped(&ship2).await;

    let (n3, ship3, _) = node(&dir, T0 + 20);
    ship3.take_in(&n3, &record, 13).await.unwrap();
    assert_eq!(n3.dvr(s).unwrap(), n2.dvr(s).unwrap());
    assert_eq!(current_init(&n3, s), "a");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A clip cut back into an older init's chunks names that init in a batch after
/// the current one: the next owner still takes the current init (B), and the clip
/// comes back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_naming_an_older_init_leaves_the_current_one() {
    let (dir, record, s) = a_then_b_shipped("named", 13).await;

    // Node 2: a chunk of B (B named in its generation), then a clip of A's chunk.
    let (n2, ship2, clock2) = node(&dir, T0 + 10);
    ship2.take_in(&n2, &record, 9).await.unwrap();
    clock2.advance_secs(2);
    n2.push_segment_bytes(s, "v", Some("b_seg_001.m4s"), run_file("b", "seg_001.m4s"))
        .unwrap();
    shipped(&ship2).await;
    let first = n2.rendition_chunks(s, "v").unwrap()[0].clone();
    assert!(first.init().bytes[..] == run_file("a", "init.mp4")[..]);
    let request = ClipRequest {
        duration_secs: 1,
        start_unix_secs: Some(first.start_utc().unix_secs()),
        ..ClipRequest::default()
    };
    let clip = n2.create_clip(s, request).unwrap().id();
    shipped(&ship2).await;

    let (n3, ship3, _) = node(&dir, T0 + 20);
    ship3.take_in(&n3, &record, 13).await.unwrap();
    assert_eq!(current_init(&n3, s), "b");
    assert_eq!(clip_mp4(&n3, clip), clip_mp4(&n2, clip));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node with a spool at `spool_dir` (the default in a cluster: `/dev/shm`)
/// mapping at most `max_maps` payloads, shipping into the directory store at
/// `dir`, its clock at `now`.
fn node_with_spool(
    dir: &Path,
    spool_dir: &Path,
    max_maps: usize,
    now: i64,
) -> (
    Arc<Engine>,
    Arc<Shipper>,
    Arc<ManualClock>,
    Arc<dvrclip_spool::Spool>,
) {
    let store = crate::vod::open_store(&StoreConfig::Local(dir.to_owned()), None);
    let ship = Shipper::new(ClipArchive::new(store));
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(now)));
    let options = dvrclip_spool::SpoolOptions {
        max_maps,
        ..dvrclip_spool::SpoolOptions::default()
    };
    let opened =
        dvrclip_spool::Spool::open_with(spool_dir, options, WallTime::from_unix_secs(now)).unwrap();
    assert!(opened.restore.streams.is_empty(), "a fresh spool");
    let engine = Engine::with_clock(EngineConfig::default(), clock.clone()).with_persist(Arc::new(
        ShipPersist {
            inner: Some(opened.spool.clone()),
            ship: Arc::clone(&ship),
            runtime: tokio::runtime::Handle::current(),
        },
    ));
    (Arc::new(engine), ship, clock, opened.spool)
}

/// The spool at `dir` opened again after a crash (retried while the dead
/// process's background thread still holds its lock for a moment), restored into
/// a fresh engine at `now`.
async fn restart(dir: &Path, now: i64) -> (Engine, Arc<dvrclip_spool::Spool>) {
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(now)));
    let mut tries = 0;
    let opened = loop {
        match dvrclip_spool::Spool::open(
            dir,
            dvrclip_spool::SyncPolicy::Batch,
            WallTime::from_unix_secs(now),
        ) {
            Ok(o) => break o,
            Err(dvrclip_spool::SpoolError::Locked(_)) if tries < 200 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let engine =
        Engine::with_clock(EngineConfig::default(), clock).with_persist(opened.spool.clone());
    engine.restore(opened.restore).unwrap();
    (engine, opened.spool)
}

/// The seqs each clip rendition holds.
fn clip_seqs(e: &Engine, id: ClipId) -> Vec<Vec<u64>> {
    let c = e.clip(id).unwrap();
    let view = c.view();
    view.renditions()
        .iter()
        .map(|r| r.chunks().iter().map(|c| c.seq()).collect())
        .collect()
}

/// A node with a spool claims a stream and restores its shipped DVR: the spool
/// learns all of it (the stream, its init, the restored chunks' payloads in spool
/// files, the clips), so the chunks admitted after the claim are spooled and a
/// crash of the new owner loses nothing: the next process on its spool has the
/// same DVR and the same clips, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_is_spooled_so_a_crash_of_the_new_owner_keeps_it() {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-spool-{}", std::process::id()));
    let spool_dir =
        std::env::temp_dir().join(format!("dvrclip-ship-spool-b-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&spool_dir);
    let s = StreamId(7);
    let (a, record, [old, long, new]) = shipped_dvr(&dir).await;

    let (b, ship_b, clock_b, spool) =
        node_with_spool(&dir, &spool_dir, dvrclip_spool::DEFAULT_MAX_MAPS, T0 + 40);
    ship_b.take_in(&b, &record, 9).await.unwrap();
    assert_eq!(b.dvr(s).unwrap(), a.dvr(s).unwrap());
    // The restored payloads are spool files now.
    assert_eq!(spool.live_payloads(), 16);
    // The publisher reconnects after the failover, its init the same bytes (no
    // new init for the ring), and goes on: its next chunk is spooled.
    clock_b.advance_secs(2);
    let same = b
        .push_init_bytes(s, "v", crate::demo::looped_segment(0).0)
        .unwrap();
    assert_eq!(same, dvrclip_engine::PushOutcome::SameInit);
    b.push_segment_bytes(
        s,
        "v",
        Some("seg_16.m4s"),
        crate::demo::looped_segment(16).1,
    )
    .unwrap();
    assert_eq!(
        spool.stats.journal_errors.load(Relaxed),
        0,
        "every record of the restore and after it is in the journal"
    );
    assert_eq!(spool.live_payloads(), 17);
    let dvr = b.dvr(s).unwrap();
    assert_eq!(dvr.renditions[0].chunks, 17);
    let seqs = [old, long, new].map(|c| clip_seqs(&b, c));
    let mp4s = [old, new].map(|c| clip_mp4(&b, c));

    // The new owner crashes; its next process restores from its spool.
    spool.seal().unwrap();
    drop((b, ship_b, spool));
    let (c, _spool) = restart(&spool_dir, T0 + 42).await;
    assert_eq!(c.dvr(s).unwrap(), dvr);
    assert_eq!([old, long, new].map(|id| clip_seqs(&c, id)), seqs);
    assert_eq!([old, new].map(|id| clip_mp4(&c, id)), mp4s);
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&spool_dir);
}

/// Init A, B, then A again shipped by one node; the next owner, with a spool
/// whose mappings are capped below its DVR (payloads past the cap held in memory,
/// their files kept), restores it and crashes: its next process has A as the
/// current init, the same DVR, and cuts the next segment of A's run against A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_that_comes_back_is_current_after_a_crash_of_the_next_owner() {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-abas-{}", std::process::id()));
    let spool_dir =
        std::env::temp_dir().join(format!("dvrclip-ship-abas-b-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&spool_dir);
    let record = record_of(14);
    let s = StreamId(14);
    let (a, ship_a, clock) = node(&dir, T0);
    ship_a.take_in(&a, &record, 5).await.unwrap();
    push_run(&a, &clock, s, "a", "seg_000.m4s");
    push_run(&a, &clock, s, "b", "seg_000.m4s");
    a.push_init_bytes(s, "v", run_file("a", "init.mp4"))
        .unwrap();
    shipped(&ship_a).await;

    let (b, ship_b, _, spool) = node_with_spool(&dir, &spool_dir, 1, T0 + 10);
    ship_b.take_in(&b, &record, 9).await.unwrap();
    assert_eq!(current_init(&b, s), "a");
    let counts = spool.payload_counts();
    assert_eq!((counts.mapped, counts.held), (1, 1), "{counts:?}");
    assert_eq!(spool.stats.journal_errors.load(Relaxed), 0);
    let dvr = b.dvr(s).unwrap();
    spool.seal().unwrap();
    drop((b, ship_b, spool));

    let (c, _spool) = restart(&spool_dir, T0 + 12).await;
    assert_eq!(c.dvr(s).unwrap(), dvr);
    assert_eq!(current_init(&c, s), "a");
    let last_disc = c.rendition_chunks(s, "v").unwrap()[1].discontinuity();
    c.push_segment_bytes(s, "v", Some("a_seg_001.m4s"), run_file("a", "seg_001.m4s"))
        .unwrap();
    let chunks = c.rendition_chunks(s, "v").unwrap();
    let next = chunks.last().unwrap();
    assert!(next.init().bytes[..] == run_file("a", "init.mp4")[..]);
    assert!(next.discontinuity() > last_disc);
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&spool_dir);
}

/// The new owner's spool refuses a restored payload (here the file it would write
/// is in the way, as a full filesystem refuses a write): the placing, newest
/// first, ends there; the DVR is whole in memory, the newest chunks are spooled,
/// the rest is counted and not reported (no journal error); after a crash the
/// spooled chunks and the clip made of them come back, and clips holding a chunk
/// that was not spooled are reported lost, never served short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_the_spool_refuses_in_part_keeps_what_was_placed() {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-full-{}", std::process::id()));
    let spool_dir =
        std::env::temp_dir().join(format!("dvrclip-ship-full-b-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&spool_dir);
    let s = StreamId(7);
    let (a, record, [old, long, new]) = shipped_dvr(&dir).await;

    let (b, ship_b, _, spool) =
        node_with_spool(&dir, &spool_dir, dvrclip_spool::DEFAULT_MAX_MAPS, T0 + 40);
    // A fresh spool numbers its files from 1: the sixth payload is refused.
    std::fs::write(spool_dir.join("chunks/0000000000000006.m4s"), b"").unwrap();
    ship_b.take_in(&b, &record, 9).await.unwrap();
    assert_eq!(b.dvr(s).unwrap(), a.dvr(s).unwrap());
    assert_eq!(clip_mp4(&b, new), clip_mp4(&a, new));
    assert_eq!(spool.live_payloads(), 5);
    assert_eq!(ship_b.counters.unspooled.load(Relaxed), 11);
    assert_eq!(spool.stats.journal_errors.load(Relaxed), 0);
    let new_mp4 = clip_mp4(&b, new);

    spool.seal().unwrap();
    drop((b, ship_b, spool));
    let (c, _spool) = restart(&spool_dir, T0 + 42).await;
    let (dc, db) = (c.dvr(s).unwrap(), a.dvr(s).unwrap());
    assert_eq!(dc.renditions[0].chunks, 5);
    assert_eq!(
        dc.renditions[0].ranges[0].end_utc,
        db.renditions[0].ranges[0].end_utc
    );
    assert_eq!(clip_mp4(&c, new), new_mp4);
    for lost in [long, old] {
        assert!(c.clip(lost).is_err());
        assert!(c.lost_clip(lost).is_some(), "{lost} reported lost");
    }
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&spool_dir);
}

/// A stream the engine holds with no chain of this process (a node restarted on
/// its spool; here a new shipper beside the engine holding it) is shipped again
/// when claimed: in several batches when larger than one, its generation
/// described only once all of it is written (until then a failover restores the
/// chain shipped before), then a failover restores all of it, clips byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_dvr_claimed_again_is_shipped_again() {
    let dir = std::env::temp_dir().join(format!("dvrclip-ship-reship-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = StreamId(7);
    let (a, record, [old, long, new]) = shipped_dvr(&dir).await;

    let store = crate::vod::open_store(&StoreConfig::Local(dir.clone()), None);
    let ship = Shipper::new(ClipArchive::new(store));
    // One chunk a batch.
    ship.reship_batch_bytes.store(1, Relaxed);
    ship.take_in(&a, &record, 9).await.unwrap();
    assert_eq!(a.dvr(s).unwrap().renditions[0].chunks, 16);
    let gen9 = format!("{:016x}/", 9);
    let described = generation_key(s, 9);
    // The first batches: written, the generation not described yet.
    for _ in 0..3 {
        ship.flush();
        for _ in 0..500 {
            if !ship.state.lock().streams.values().any(|s| s.busy) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let written: Vec<String> = batches(&dir)
        .into_iter()
        .filter(|k| k.contains(&gen9))
        .collect();
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(!keys(&dir).contains(&described));
    assert!(
        ship.state.lock().streams[&s].reship.is_some(),
        "more to ship"
    );
    // A failover in this window restores the chain shipped before (generation 5).
    let (c, ship_c, _) = node(&dir, T0 + 40);
    ship_c.take_in(&c, &record, 10).await.unwrap();
    assert_eq!(c.dvr(s).unwrap(), a.dvr(s).unwrap());
    assert_eq!(
        [old, new].map(|id| clip_mp4(&c, id)),
        [old, new].map(|id| clip_mp4(&a, id))
    );
    drop((c, ship_c));
    shipped(&ship).await;
    let written = batches(&dir)
        .into_iter()
        .filter(|k| k.contains(&gen9))
        .count();
    assert!(written >= 16, "{written} batches");
    assert!(keys(&dir).contains(&described));

    // The owner dies: the next claim restores all it held from the new chain.
    let (b, ship_b, _) = node(&dir, T0 + 40);
    ship_b.take_in(&b, &record, 11).await.unwrap();
    assert_eq!(b.dvr(s).unwrap(), a.dvr(s).unwrap());
    assert_eq!(
        [old, long, new].map(|c| clip_seqs(&b, c)),
        [old, long, new].map(|c| clip_seqs(&a, c))
    );
    assert_eq!(
        [old, new].map(|c| clip_mp4(&b, c)),
        [old, new].map(|c| clip_mp4(&a, c))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
