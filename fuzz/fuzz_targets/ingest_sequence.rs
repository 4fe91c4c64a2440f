//! The ingest state machine (`ref/api.md` "Ingest") fed arbitrary sequences of
//! uploads, in process: `dvrclip_ingest::Upload` resolved and stored (what the HTTP
//! handler and the demo do once a body is whole) on one stream of an engine on a
//! `ManualClock`, with a 1 MiB memory budget so eviction happens; refusals mapped to
//! their HTTP status by the server's one map.
//!
//! Each step takes an op byte and its arguments from the input: PUT an init, a
//! segment or a playlist (a committed ffmpeg fixture as is, with bytes flipped, a
//! 32-bit field overwritten, truncated, or raw input bytes) under a rendition and
//! file name that may be hostile (`../`, percent-encoded, hidden, no extension);
//! an immediate retry of the last upload; a DELETE; the clock moving; the stream
//! switched off/on or its window changed; a clip cut or dropped.
//!
//! Asserted: nothing panics; a refused upload leaves the DVR exactly as it was
//! (and a DELETE always does); an immediate retry of a stored segment is a 200 that
//! changes nothing; the engine's memory account equals the payload bytes reachable
//! from the rings and the clips held, and without clips stays within the budget
//! (or one chunk); and at the end, if the reference rendition holds a chunk that
//! starts with a keyframe, a clip around the newest such chunk can be cut and holds
//! media.
#![no_main]

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{
    Clip, ClipRequest, Engine, EngineConfig, ManualClock, StreamId, StreamPatch, StreamSettings,
    WallTime,
};
use dvrclip_ingest::Upload;
use dvrclip_server::error::ApiError;
use dvrclip_server::ingest::status_of;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;

const BUDGET: u64 = 1 << 20;

macro_rules! fixture {
    ($p:literal) => {
        include_bytes!(concat!("../../tests/fixtures/", $p)) as &'static [u8]
    };
}

const INITS: &[&[u8]] = &[
    fixture!("h264_aac/init.mp4"),
    fixture!("audio_only/init.mp4"),
    fixture!("video_only/init.mp4"),
    fixture!("restart/b/init.mp4"),
    fixture!("ladder/media_1_144/init_2.mp4"),
];
const SEGMENTS: &[&[u8]] = &[
    fixture!("h264_aac/seg_000.m4s"),
    fixture!("h264_aac/seg_001.m4s"),
    fixture!("audio_only/seg_000.m4s"),
    fixture!("audio_only/seg_002.m4s"),
    fixture!("video_only/seg_000.m4s"),
    fixture!("restart/b/seg_000.m4s"),
    fixture!("restart/b/seg_001.m4s"),
    fixture!("ladder/media_1_144/seg_00000.m4s"),
    fixture!("ladder/media_1_144/seg_00001.m4s"),
];
const PLAYLISTS: &[&[u8]] = &[
    fixture!("h264_aac/index.m3u8"),
    fixture!("ladder/media_1_144/index.m3u8"),
    fixture!("ladder/master.m3u8"),
];
/// Valid names first; the rest must be refused before anything is stored.
const RENDITIONS: &[&str] = &["v", "a", "media_1_144", "../v", "v%2F..", ".v", "v/..", ""];
const SEGMENT_NAMES: &[&str] = &[
    "seg_000.m4s",
    "seg_001.m4s",
    "seg_00000.m4s",
    "seg_00001.m4s",
    "../seg_000.m4s",
    "..%2Fseg_000.m4s",
    ".seg.m4s",
    "seg.txt",
    "seg",
    "a/b.m4s",
];

/// A cursor over the fuzzer's bytes; running out reads zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte()) % from.len()]
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A fixture as is or mutated, or raw input bytes.
fn body(inp: &mut Input<'_>, fixtures: &[&'static [u8]]) -> Bytes {
    let how = inp.byte();
    let base = inp.pick(fixtures);
    let at = |inp: &mut Input<'_>, len: usize| usize::from(inp.u16()) * len / 65536;
    match how % 6 {
        // Copied, so each upload's payload has its own address (see `reachable_bytes`).
        0 | 1 => Bytes::copy_from_slice(base),
        2 => {
            let mut v = base.to_vec();
            for _ in 0..(inp.byte() % 8) + 1 {
                let i = at(inp, v.len());
                v[i] ^= inp.byte() | 1;
            }
            v.into()
        }
        3 => {
            // A box size, a count or an offset in the header (the first 4 KiB).
            let mut v = base.to_vec();
            let i = usize::from(inp.u16() % 4096).min(v.len().saturating_sub(4));
            v[i..i + 4].copy_from_slice(&inp.u32().to_be_bytes());
            v.into()
        }
        4 => {
            let n = at(inp, base.len());
            Bytes::copy_from_slice(&base[..n])
        }
        _ => {
            let n = usize::from(inp.u16() % 2048);
            Bytes::copy_from_slice(inp.take(n))
        }
    }
}

/// A media playlist naming fixture segments with dates around `now`.
fn generated_playlist(inp: &mut Input<'_>, now: WallTime) -> Bytes {
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n");
    for _ in 0..inp.byte() % 4 {
        let offset_secs = i64::from(inp.byte() as i8) * 4;
        let t = now.add_micros(offset_secs * 1_000_000);
        if inp.byte() % 4 != 0 {
            text.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:{}\n",
                t.to_rfc3339_millis()
            ));
        }
        text.push_str("#EXTINF:2.000000,\n");
        text.push_str(inp.pick(SEGMENT_NAMES));
        text.push('\n');
    }
    text.into()
}

/// One upload as the HTTP handler stores it: its status, or its refusal.
fn store(
    engine: &Engine,
    key: &str,
    rendition: Option<&str>,
    file: &str,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    let upload = Upload::resolve(engine, key, rendition, file)?;
    Ok(status_of(upload.store(engine, bytes)?))
}

struct World {
    engine: Engine,
    clock: Arc<ManualClock>,
    stream: StreamId,
    key: String,
    clips: Vec<Clip>,
    last: Option<(&'static str, String, Bytes)>,
    last_stored: bool,
}

impl World {
    fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Payload bytes reachable from the rings and the clips held, each payload once
    /// (a re-dated chunk is a new `Chunk` around the same payload; every upload is a
    /// fresh allocation, so the address names the payload).
    fn reachable_bytes(&self) -> u64 {
        let mut seen = HashSet::new();
        let mut total = 0;
        let mut count = |c: &Arc<dvrclip_engine::Chunk>| {
            if seen.insert(c.bytes().as_ptr()) {
                total += c.memory_bytes();
            }
        };
        for r in self.engine().renditions(self.stream).unwrap() {
            for c in self.engine().rendition_chunks(self.stream, &r.name).unwrap() {
                count(&c);
            }
        }
        for clip in &self.clips {
            for r in clip.view().renditions() {
                r.chunks().iter().for_each(&mut count);
            }
        }
        total
    }

    fn check_memory(&self) {
        let mem = self.engine().memory();
        assert_eq!(mem.total_bytes, self.reachable_bytes(), "memory account");
        assert!(mem.clip_bytes <= mem.total_bytes);
        if self.clips.is_empty() {
            let largest = self
                .engine()
                .renditions(self.stream)
                .unwrap()
                .iter()
                .flat_map(|r| self.engine().rendition_chunks(self.stream, &r.name).unwrap())
                .map(|c| c.memory_bytes())
                .max()
                .unwrap_or(0);
            assert!(mem.total_bytes <= BUDGET.max(largest), "{mem:?}");
        }
    }

    fn put(&mut self, rendition: Option<&'static str>, file: &str, bytes: Bytes) {
        let before = self.engine().dvr(self.stream).unwrap();
        let r = store(&self.engine, &self.key, rendition, file, bytes.clone());
        match r {
            Ok(status) => {
                assert!(status == StatusCode::OK || status == StatusCode::CREATED);
                self.last_stored = status == StatusCode::CREATED && file.ends_with(".m4s");
                self.last = rendition.map(|r| (r, file.to_owned(), bytes));
            }
            Err(e) => {
                assert!(e.status().is_client_error() || e.status() == 503, "{e:?}");
                assert!(!e.to_string().is_empty());
                assert_eq!(self.engine().dvr(self.stream).unwrap(), before, "{e}");
                self.last_stored = false;
            }
        }
    }

    fn retry_last(&mut self) {
        let Some((rendition, file, bytes)) = self.last.clone() else { return };
        let stored = self.last_stored;
        let before = self.engine().dvr(self.stream).unwrap();
        let r = store(&self.engine, &self.key, Some(rendition), &file, Bytes::copy_from_slice(&bytes));
        if stored {
            // A PUT to a path already received is idempotent (a retry): `ref/api.md` "Ingest".
            assert!(
                matches!(r, Ok(StatusCode::OK)),
                "a retry of {rendition}/{file}, stored just before: {r:?}"
            );
            assert_eq!(self.engine().dvr(self.stream).unwrap(), before);
        }
        self.last_stored = false;
    }

    fn cut(&mut self, inp: &mut Input<'_>) {
        let now = self.engine().now();
        let back = i64::from(inp.byte());
        let req = ClipRequest {
            duration_secs: u64::from(inp.byte() % 16) + 1,
            start_unix_secs: Some(now.unix_secs() - back),
            expiration_unix_secs: None,
            vod_required: false,
            precise: inp.byte() & 1 == 1,
        };
        if let Ok(c) = self.engine().create_clip(self.stream, req) {
            self.clips.push(c);
        }
    }

    /// The rendition a clip is cut on: the tallest video, then the widest, then first.
    fn reference(&self) -> Option<String> {
        let rs = self.engine().renditions(self.stream).unwrap();
        let key = |r: &dvrclip_engine::RenditionInfo| r.video.map(|v| (v.height, v.width));
        let mut best = rs.first()?;
        for r in &rs {
            if key(r) > key(best) {
                best = r;
            }
        }
        Some(best.name.clone())
    }

    /// At the end: a clip around the reference's newest keyframe chunk can be cut.
    fn final_cut(&mut self) {
        for c in self.clips.drain(..) {
            let _ = self.engine.delete_clip(c.id());
        }
        let engine = &self.engine;
        engine
            .update_stream(
                self.stream,
                StreamPatch {
                    active: Some(true),
                    ..StreamPatch::default()
                },
            )
            .unwrap();
        let Some(reference) = self.reference() else { return };
        // A clip starts on a chunk that begins with a keyframe (ref/api.md "Clips"); a ring of
        // mutated or misfiled segments may hold none, and then nothing can be cut.
        let Some(newest) = engine
            .rendition_chunks(self.stream, &reference)
            .unwrap()
            .into_iter()
            .rfind(|c| c.is_keyframe())
        else {
            return;
        };
        let start = newest.start_utc().unix_secs();
        let end_secs = newest.end_utc().unix_secs() + 1;
        let duration_secs = (end_secs - start).max(1) as u64;
        let window = u64::from(engine.stream(self.stream).unwrap().dvr_duration_secs);
        if duration_secs > window || newest.len_bytes() > BUDGET / 2 {
            return;
        }
        // Past the recording wait, so the clip is complete at once.
        let after = newest.end_utc().add_micros(700 * 1_000_000);
        if after > engine.now() {
            self.clock.set(after);
        }
        let clip = engine
            .create_clip(
                self.stream,
                ClipRequest {
                    duration_secs,
                    start_unix_secs: Some(start),
                    expiration_unix_secs: None,
                    vod_required: false,
                    precise: false,
                },
            )
            .unwrap_or_else(|e| {
                panic!(
                    "cutting [{start}, +{duration_secs}) around {:?}..{:?} of {reference}: {e}\n{:#?}",
                    newest.start_utc(),
                    newest.end_utc(),
                    engine.dvr(self.stream)
                )
            });
        let view = clip.view();
        assert!(
            view.reference().is_some_and(|r| !r.chunks().is_empty()),
            "a clip around a held chunk holds no media"
        );
        self.clips.push(clip);
        self.check_memory();
    }
}

fn world() -> World {
    let clock = Arc::new(ManualClock::new(WallTime::from_unix_secs(1_795_500_000)));
    let engine = Engine::with_clock(
        EngineConfig {
            memory_budget_bytes: BUDGET,
            ..EngineConfig::default()
        },
        clock.clone(),
    );
    let info = engine
        .create_stream(StreamSettings {
            dvr_duration_secs: 60,
            ..StreamSettings::named("fuzz")
        })
        .unwrap();
    World {
        engine,
        clock,
        stream: info.id,
        key: info.ingest_key,
        clips: Vec::new(),
        last: None,
        last_stored: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut w = world();
    let mut inp = Input(data);
    let mut steps = 0;
    while !inp.is_empty() && steps < 64 {
        steps += 1;
        match inp.byte() % 10 {
            0 => {
                let r = inp.pick(RENDITIONS);
                let b = body(&mut inp, INITS);
                w.put(Some(r), "init.mp4", b);
            }
            1 | 2 => {
                let r = inp.pick(RENDITIONS);
                let name = inp.pick(SEGMENT_NAMES);
                let b = body(&mut inp, SEGMENTS);
                w.put(Some(r), name, b);
            }
            3 => {
                let r = inp.pick(RENDITIONS);
                let b = if inp.byte() & 1 == 0 {
                    body(&mut inp, PLAYLISTS)
                } else {
                    generated_playlist(&mut inp, w.engine().now())
                };
                w.put(Some(r), "index.m3u8", b);
            }
            4 => {
                let b = body(&mut inp, PLAYLISTS);
                w.put(None, "master.m3u8", b);
            }
            5 => w.retry_last(),
            6 => {
                // A DELETE is answered 204 and removes nothing (ref/api.md "Ingest").
                let before = w.engine().dvr(w.stream).unwrap();
                w.engine().tick();
                assert_eq!(w.engine().dvr(w.stream).unwrap(), before);
            }
            7 => {
                w.clock.advance_micros(i64::from(inp.u16()) * 10_000);
                w.engine().tick();
            }
            8 => {
                let b = inp.byte();
                let patch = StreamPatch {
                    active: Some(b & 1 == 0),
                    dvr_duration_secs: (b & 2 == 2).then(|| 30 + u32::from(inp.byte())),
                    ..StreamPatch::default()
                };
                w.engine().update_stream(w.stream, patch).unwrap();
                // An inactive stream refuses even a retry (403).
                w.last_stored = false;
            }
            _ => {
                if inp.byte() & 1 == 0 && w.clips.len() < 4 {
                    w.cut(&mut inp);
                } else if !w.clips.is_empty() {
                    let c = w.clips.remove(0);
                    let _ = w.engine().delete_clip(c.id());
                }
            }
        }
        w.check_memory();
    }
    w.final_cut();
});
