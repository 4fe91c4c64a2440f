//! A stream's DVR shipped as batches (`dvrclip_spool::shipped`) and restored into
//! another engine, with real fixture media (ffmpeg-made, see
//! `tests/fixtures/README.md`): the DVR and the clip come back, the clip's MP4 byte
//! for byte, across two generations that number their inits alike; a batch with a
//! changed payload byte is refused with its reason.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{
    ClipId, ClipRequest, Engine, EngineConfig, ManualClock, StreamId, StreamSettings, WallTime,
};
use dvrclip_spool::record::{Record, StreamRec};
use dvrclip_spool::shipped::{self, BatchError, Entry};

const T0: i64 = 1_795_564_800;

fn fixture(name: &str) -> Bytes {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/h264_aac")
        .join(name);
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

fn engine(now: i64) -> Engine {
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(now)));
    Engine::with_clock(EngineConfig::default(), clock)
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

/// Two generations' batches of one stream: the first holds chunk 0, the second
/// (another node's, its init numbered 1 again) chunk 1 and the clip.
fn shipped_stream() -> (Engine, StreamId, ClipId, Vec<Vec<Entry>>) {
    let e = engine(T0);
    let s = e.create_stream(StreamSettings::named("ship")).unwrap().id;
    e.push_init_bytes(s, "v", fixture("init.mp4")).unwrap();
    for name in ["seg_000.m4s", "seg_001.m4s"] {
        e.push_segment_bytes(s, "v", Some(name), fixture(name))
            .unwrap();
    }
    let clip = e
        .create_clip(
            s,
            ClipRequest {
                duration_secs: 3,
                start_unix_secs: Some(T0),
                ..ClipRequest::default()
            },
        )
        .unwrap();
    let init = |id| Entry {
        record: Record::Init {
            id,
            stream: s.0,
            rendition: "v".into(),
            bytes: fixture("init.mp4").to_vec(),
        },
        payload: None,
    };
    let view = clip.view();
    let chunks = view.renditions()[0].chunks();
    let chunk = |i: usize| {
        let c = &chunks[i];
        Entry {
            record: shipped::chunk_record(
                s.0,
                "v",
                c.seq(),
                1,
                c.name().map(str::to_owned),
                c.start_utc().unix_micros(),
                c.discontinuity(),
                c.arrival_utc().unix_micros(),
                c.bytes(),
            ),
            payload: Some(c.bytes().clone()),
        }
    };
    let clip_rec = Entry {
        record: Record::Clip(dvrclip_spool::clip_record(&clip, &mut |_, _| Some(1))),
        payload: None,
    };
    let generations = vec![vec![init(1), chunk(0)], vec![init(1), chunk(1), clip_rec]];
    (e, s, clip.id(), generations)
}

fn stream_rec(e: &Engine, s: StreamId) -> StreamRec {
    let i = e.stream(s).unwrap();
    StreamRec {
        id: s.0,
        name: i.name,
        active: i.active,
        dvr_enabled: i.dvr_enabled,
        dvr_duration_secs: i.dvr_duration_secs,
        pull: i.pull,
        uri: i.uri,
        created_us: i.created_at.unix_micros(),
        ingest_key: i.ingest_key,
        play_key: i.play_key,
    }
}

#[test]
fn shipped_batches_restore_the_dvr_and_the_clip_byte_for_byte() {
    let (a, s, clip, generations) = shipped_stream();
    // Through the bytes of the objects, as a store would hand them back.
    let read: Vec<Vec<Entry>> = generations
        .iter()
        .map(|g| {
            let object = Bytes::from(shipped::encode(g).unwrap().concat());
            shipped::decode(&object).unwrap()
        })
        .collect();
    let b = engine(T0 + 10);
    let (restore, report) = shipped::restore_stream(stream_rec(&a, s), read, b.now());
    assert_eq!((report.chunks_verified, report.chunks_failed), (2, 0));
    let restored = b.restore(restore).unwrap();
    assert_eq!(
        (restored.streams, restored.ring_chunks, restored.clips),
        (1, 2, 1)
    );
    assert_eq!(b.dvr(s).unwrap(), a.dvr(s).unwrap());
    assert_eq!(mp4_of(&b, clip).unwrap(), mp4_of(&a, clip).unwrap());
    let key = a.stream(s).unwrap().ingest_key;
    assert_eq!(b.stream_by_ingest_key(&key), Some(s));
}

#[test]
fn a_batch_with_a_changed_payload_byte_is_refused() {
    let (_, _, _, generations) = shipped_stream();
    // The first generation's object ends with chunk 0's payload.
    let mut object = shipped::encode(&generations[0]).unwrap().concat();
    let at = object.len() - 100;
    object[at] ^= 0x01;
    match shipped::decode(&Bytes::from(object)) {
        Err(BatchError::PayloadChecksum { seq, .. }) => assert_eq!(seq, 0),
        other => panic!("{other:?}"),
    }
}

/// A chunk moved by a playlist date between its ring commit and its own hook: its
/// `Moved` record comes first (here a batch before), and the move still holds.
#[test]
fn a_move_shipped_before_its_chunk_holds() {
    let (a, s, _, mut generations) = shipped_stream();
    let Record::Chunk(c) = &generations[0][1].record else {
        panic!("chunk 0 expected");
    };
    let moved_to = c.start_us - 500_000;
    generations[0].insert(
        1,
        Entry {
            record: Record::Moved {
                stream: s.0,
                rendition: "v".into(),
                seq: 0,
                start_us: moved_to,
            },
            payload: None,
        },
    );
    // The move first, in a batch of its own.
    let chunk0 = generations[0].remove(2);
    generations.insert(1, vec![generations[0][0].clone(), chunk0]);
    let (restore, _) = shipped::restore_stream(stream_rec(&a, s), generations, a.now());
    let chunk = restore.streams[0].renditions[0]
        .chunks
        .iter()
        .find(|c| c.seq == 0)
        .unwrap();
    assert_eq!(chunk.start_utc.unix_micros(), moved_to);
}
