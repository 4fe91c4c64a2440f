//! Start-up: the journal's records folded into what is alive (pure), then each live
//! chunk's payload file mapped and verified (length and crc32c), into the engine's
//! [`Restore`] and the records of a compacted journal.
//!
//! Folding goes by key, never by order of arrival (the engine's hooks of one
//! rendition may race): a chunk is `(stream, rendition, seq)`; a deletion (stream or
//! clip) wins over any later save of the same key; a re-anchor folded before its
//! chunk's record is applied when the record comes. A chunk whose file is gone was
//! freed on purpose (no ring or clip held it) and is silently skipped; one whose
//! file is shorter, longer or fails its checksum is dropped and counted.
//!
//! A rendition's current init is the one its last `Init` record names, in the
//! order records are folded (oldest first), never the greatest id: an init can
//! come back (A, B, A again: the engine makes a new one, with a new id, only for
//! bytes other than the current init's), and a shipped DVR holds ids of several
//! processes. So every writer keeps that rule: the spool writes one `Init` record
//! per admission and a compaction writes each rendition's current init after its
//! other inits ([`current_last`]); the shipper ends each batch naming an init of a
//! rendition with that rendition's current one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::persist::{
    Restore, RestoredChunk, RestoredClip, RestoredClipRendition, RestoredRendition, RestoredStream,
};
use dvrclip_engine::{ClipId, ClipRequest, InitSegment, StreamId, StreamSettings, WallTime};

use crate::payload::Files;
use crate::record::{ChunkRec, ClipRec, Record, StreamRec};

/// A clip holds at most this many chunks per rendition (4 h of 0.5 s chunks).
const MAX_CLIP_CHUNKS: usize = 28_800;

type RenditionKey = (u64, String);
type ChunkKey = (u64, String, u64);

/// What is alive according to the journal.
#[derive(Debug, Default)]
pub(crate) struct Fold {
    streams: BTreeMap<u64, StreamRec>,
    streams_gone: HashSet<u64>,
    next_stream: u64,
    inits: BTreeMap<u64, (u64, String, Vec<u8>)>,
    renditions: HashMap<RenditionKey, Counters>,
    chunks: BTreeMap<ChunkKey, ChunkRec>,
    left: HashSet<ChunkKey>,
    /// Re-anchors whose chunk's record has not been folded yet: a playlist date can
    /// move a chunk between its ring commit and its own hook, so the `Moved` record
    /// may come first.
    moved_early: HashMap<ChunkKey, i64>,
    clips: BTreeMap<String, ClipRec>,
    clips_gone: HashSet<String>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    next_seq: u64,
    next_disc: u64,
    /// The smallest init id: the renditions' order.
    first_init: Option<u64>,
    /// The init the last `Init` record of the rendition names (the module's doc).
    current_init: Option<u64>,
}

impl Fold {
    pub(crate) fn of(records: Vec<Record>) -> Fold {
        let mut f = Fold::default();
        for r in records {
            f.apply(r);
        }
        f
    }

    fn counters(&mut self, stream: u64, rendition: &str) -> &mut Counters {
        self.renditions
            .entry((stream, rendition.to_owned()))
            .or_default()
    }

    pub(crate) fn apply(&mut self, r: Record) {
        match r {
            Record::Stream(s) => {
                self.next_stream = self.next_stream.max(s.id.saturating_add(1));
                if !self.streams_gone.contains(&s.id) {
                    self.streams.insert(s.id, s);
                }
            }
            Record::StreamGone { id } => {
                self.next_stream = self.next_stream.max(id.saturating_add(1));
                self.streams.remove(&id);
                self.streams_gone.insert(id);
            }
            Record::Next { stream } => self.next_stream = self.next_stream.max(stream),
            Record::Rendition {
                stream,
                rendition,
                next_seq,
                next_disc,
            } => {
                let c = self.counters(stream, &rendition);
                c.next_seq = c.next_seq.max(next_seq);
                c.next_disc = c.next_disc.max(next_disc);
            }
            Record::Init {
                id,
                stream,
                rendition,
                bytes,
            } => {
                let c = self.counters(stream, &rendition);
                c.first_init = Some(c.first_init.map_or(id, |f| f.min(id)));
                c.current_init = Some(id);
                self.inits.insert(id, (stream, rendition, bytes));
            }
            Record::Chunk(mut c) => {
                let n = self.counters(c.stream, &c.rendition);
                n.next_seq = n.next_seq.max(c.seq.saturating_add(1));
                n.next_disc = n.next_disc.max(c.disc.saturating_add(1));
                let key = (c.stream, c.rendition.clone(), c.seq);
                if let Some(start_us) = self.moved_early.remove(&key) {
                    c.start_us = start_us;
                }
                self.chunks.insert(key, c);
            }
            Record::Moved {
                stream,
                rendition,
                seq,
                start_us,
            } => {
                let key = (stream, rendition, seq);
                match self.chunks.get_mut(&key) {
                    Some(c) => c.start_us = start_us,
                    None => {
                        self.moved_early.insert(key, start_us);
                    }
                }
            }
            Record::Left {
                stream,
                rendition,
                seqs,
            } => {
                for seq in seqs {
                    self.left.insert((stream, rendition.clone(), seq));
                }
            }
            Record::Clip(c) => {
                if !self.clips_gone.contains(&c.id) {
                    self.clips.insert(c.id.clone(), c);
                }
            }
            Record::ClipGone { id } => {
                self.clips.remove(&id);
                self.clips_gone.insert(id);
            }
        }
    }
}

impl Fold {
    /// The records of a compacted journal while running: chunk records only for
    /// payload files still alive (`live`), and what they and the clips need. Drops
    /// the chunk records of freed files from `self` too, so the fold stays the size
    /// of what is alive.
    pub(crate) fn compact(&mut self, live: &HashSet<u64>) -> Vec<Record> {
        self.chunks.retain(|_, c| live.contains(&c.file));
        // A chunk whose record never came (not placed in the spool) never will.
        self.moved_early.clear();
        let chunks = &self.chunks;
        self.left.retain(|k| chunks.contains_key(k));
        let mut out = vec![Record::Next {
            stream: self.next_stream,
        }];
        out.extend(self.streams.values().cloned().map(Record::Stream));
        for ((stream, rendition), c) in &self.renditions {
            if self.streams.contains_key(stream) {
                out.push(Record::Rendition {
                    stream: *stream,
                    rendition: rendition.clone(),
                    next_seq: c.next_seq,
                    next_disc: c.next_disc,
                });
            }
        }
        let mut inits: HashSet<u64> = self.chunks.values().map(|c| c.init).collect();
        inits.extend(self.renditions.values().filter_map(|c| c.current_init));
        inits.extend(
            self.clips
                .values()
                .flat_map(|c| c.renditions.iter().filter_map(|r| r.init)),
        );
        // Every init of a live stream keeps its rank (the renditions' order).
        let mut kept = Vec::new();
        for (id, (stream, rendition, bytes)) in &self.inits {
            let first = self
                .renditions
                .get(&(*stream, rendition.clone()))
                .and_then(|c| c.first_init);
            if self.streams.contains_key(stream) && (inits.contains(id) || first == Some(*id)) {
                kept.push(Record::Init {
                    id: *id,
                    stream: *stream,
                    rendition: rendition.clone(),
                    bytes: bytes.clone(),
                });
            }
        }
        out.extend(current_last(kept, &self.renditions));
        for (key, c) in &self.chunks {
            if self.streams.contains_key(&c.stream) {
                out.push(Record::Chunk(ChunkRec {
                    held_only: c.held_only || self.left.contains(key),
                    ..c.clone()
                }));
            }
        }
        out.extend(
            self.clips
                .values()
                .filter(|c| self.streams.contains_key(&c.stream))
                .cloned()
                .map(Record::Clip),
        );
        out
    }
}

/// What recovery found, for logs and `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records read from the journal.
    pub records: usize,
    /// Bytes of a torn or corrupt journal tail, dropped.
    pub torn_bytes: u64,
    /// Chunk payloads mapped and verified.
    pub chunks_verified: usize,
    /// Chunk payloads whose length or checksum did not match, dropped.
    pub chunks_failed: usize,
    /// Payload files no record names (an upload cut by the crash), removed.
    pub orphans_removed: usize,
    /// Init segments that did not parse, dropped with their chunks.
    pub inits_failed: usize,
}

/// The result of recovery: what the engine restores, the compacted journal, and the
/// init segments by id (the spool's registry).
pub(crate) struct Recovered {
    pub(crate) restore: Restore,
    pub(crate) snapshot: Vec<Record>,
    pub(crate) inits: Vec<(u64, Arc<InitSegment>)>,
    pub(crate) next_init: u64,
    pub(crate) report: RecoveryReport,
}

/// Maps and verifies the payloads `fold` names under `files`, as of `now`, and
/// removes the payload files no kept record names.
pub(crate) fn build(
    fold: Fold,
    files: &Arc<Files>,
    now: WallTime,
    report: &mut RecoveryReport,
) -> Recovered {
    let mut recovered = build_with(fold, now, report, &mut |c, report| verify(files, c, report));
    let kept_files: HashSet<u64> = recovered
        .snapshot
        .iter()
        .filter_map(|r| match r {
            Record::Chunk(c) => Some(c.file),
            _ => None,
        })
        .collect();
    report.orphans_removed = remove_orphans(files, &kept_files);
    recovered.report = *report;
    recovered
}

/// What is alive in `fold` as of `now`, each chunk's payload given by `payload`
/// (`None`: dropped; it counts its own failures in the report): the spool's
/// recovery with its files, a shipped DVR's restore with its objects.
pub(crate) fn build_with(
    fold: Fold,
    now: WallTime,
    report: &mut RecoveryReport,
    payload: &mut dyn FnMut(&ChunkRec, &mut RecoveryReport) -> Option<Bytes>,
) -> Recovered {
    let next_init = fold.inits.keys().next_back().map_or(1, |l| l + 1);
    let mut parsed: HashMap<u64, Option<Arc<InitSegment>>> = HashMap::new();
    let mut init_of = |id: u64, report: &mut RecoveryReport| -> Option<Arc<InitSegment>> {
        parsed
            .entry(id)
            .or_insert_with(|| {
                let (_, _, bytes) = fold.inits.get(&id)?;
                match dvrclip_fmp4::parse_init(Bytes::from(bytes.clone())) {
                    Ok(i) => Some(Arc::new(i)),
                    Err(e) => {
                        tracing::warn!(init = id, error = %e, "spool: init does not parse; dropped");
                        report.inits_failed += 1;
                        None
                    }
                }
            })
            .clone()
    };
    let mut snapshot = vec![Record::Next {
        stream: fold.next_stream,
    }];
    let mut kept_inits: BTreeMap<u64, ()> = BTreeMap::new();
    let mut kept_chunks: Vec<ChunkRec> = Vec::new();
    let mut streams = Vec::new();
    for (id, s) in &fold.streams {
        snapshot.push(Record::Stream(s.clone()));
        let mut names: Vec<(&RenditionKey, &Counters)> = fold
            .renditions
            .iter()
            .filter(|((sid, _), _)| sid == id)
            .collect();
        names.sort_by_key(|(_, c)| c.first_init.unwrap_or(u64::MAX));
        let mut renditions = Vec::new();
        for ((_, rendition), counters) in names {
            let Some(current) = counters.current_init else {
                continue;
            };
            snapshot.push(Record::Rendition {
                stream: *id,
                rendition: rendition.clone(),
                next_seq: counters.next_seq,
                next_disc: counters.next_disc,
            });
            let init = init_of(current, report);
            if init.is_some() {
                kept_inits.insert(current, ());
            }
            let lo = (*id, rendition.clone(), 0);
            let hi = (*id, rendition.clone(), u64::MAX);
            let mut chunks = Vec::new();
            for (key, c) in fold.chunks.range(lo..=hi) {
                let Some(chunk_init) = init_of(c.init, report) else {
                    continue;
                };
                let Some(bytes) = payload(c, report) else {
                    continue;
                };
                let in_ring = !c.held_only && !fold.left.contains(key);
                kept_inits.insert(c.init, ());
                kept_chunks.push(ChunkRec {
                    held_only: !in_ring,
                    ..c.clone()
                });
                chunks.push(RestoredChunk {
                    seq: c.seq,
                    name: c.name.clone(),
                    init: chunk_init,
                    bytes,
                    start_utc: WallTime::from_unix_micros(c.start_us),
                    discontinuity: c.disc,
                    arrival: WallTime::from_unix_micros(c.arrival_us),
                    in_ring,
                });
            }
            renditions.push(RestoredRendition {
                name: rendition.clone(),
                init,
                next_seq: counters.next_seq,
                next_discontinuity: counters.next_disc,
                chunks,
            });
        }
        streams.push(RestoredStream {
            id: StreamId(*id),
            settings: StreamSettings {
                name: s.name.clone(),
                dvr_enabled: s.dvr_enabled,
                dvr_duration_secs: s.dvr_duration_secs,
                active: s.active,
                pull: s.pull,
                uri: s.uri.clone(),
            },
            created_at: WallTime::from_unix_micros(s.created_us),
            ingest_key: s.ingest_key.clone(),
            play_key: s.play_key.clone(),
            renditions,
        });
    }
    let mut clips = Vec::new();
    let mut kept_clips = Vec::new();
    for c in fold.clips.values() {
        let live = fold.streams.contains_key(&c.stream) && c.expiration_us > now.unix_micros();
        if !live {
            continue;
        }
        let Some(clip) = restored_clip(c, &mut |id| {
            let init = init_of(id, report);
            if init.is_some() {
                kept_inits.insert(id, ());
            }
            init
        }) else {
            continue;
        };
        clips.push(clip);
        kept_clips.push(c.clone());
    }
    let kept_inits = kept_inits.keys().filter_map(|id| {
        let (stream, rendition, bytes) = fold.inits.get(id)?;
        Some(Record::Init {
            id: *id,
            stream: *stream,
            rendition: rendition.clone(),
            bytes: bytes.clone(),
        })
    });
    snapshot.extend(current_last(kept_inits.collect(), &fold.renditions));
    snapshot.extend(kept_chunks.into_iter().map(Record::Chunk));
    snapshot.extend(kept_clips.into_iter().map(Record::Clip));
    let inits = parsed
        .into_iter()
        .filter_map(|(id, i)| i.map(|i| (id, i)))
        .collect();
    Recovered {
        restore: Restore {
            streams,
            clips,
            next_stream_id: fold.next_stream.max(1),
            // The spool's own: it holds all of it already.
            report_to_store: false,
        },
        snapshot,
        inits,
        next_init,
        report: *report,
    }
}

/// `inits` (`Init` records) with each rendition's current init after the others, so
/// the records fold to the same current inits again.
fn current_last(inits: Vec<Record>, renditions: &HashMap<RenditionKey, Counters>) -> Vec<Record> {
    let (mut others, current): (Vec<Record>, Vec<Record>) = inits.into_iter().partition(|r| {
        !matches!(r, Record::Init { id, stream, rendition, .. }
            if renditions
                .get(&(*stream, rendition.clone()))
                .is_some_and(|c| c.current_init == Some(*id)))
    });
    others.extend(current);
    others
}

/// Maps the chunk's file if its length and checksum match its record.
fn verify(files: &Arc<Files>, c: &ChunkRec, report: &mut RecoveryReport) -> Option<Bytes> {
    let path = Files::path(files.dir(), c.file);
    let f = File::open(&path).ok()?;
    let len = f.metadata().ok()?.len();
    let bytes = (len == c.len && len > 0)
        .then(|| files.map(&f, c.file, len, c.crc).ok())
        .flatten();
    match bytes {
        Some(b) if crate::record::crc32c(&b) == c.crc => {
            report.chunks_verified += 1;
            Some(b)
        }
        _ => {
            tracing::warn!(
                stream = c.stream, rendition = %c.rendition, seq = c.seq, file = %path.display(),
                "spool: chunk payload fails verification (length or checksum); dropped"
            );
            report.chunks_failed += 1;
            None
        }
    }
}

fn restored_clip(
    c: &ClipRec,
    init_of: &mut dyn FnMut(u64) -> Option<Arc<InitSegment>>,
) -> Option<RestoredClip> {
    let id = ClipId::parse(&c.id)?;
    let mut renditions = Vec::with_capacity(c.renditions.len());
    for r in &c.renditions {
        renditions.push(RestoredClipRendition {
            name: r.name.clone(),
            init: r.init.and_then(&mut *init_of),
            bandwidth_bps: r.bandwidth_bps,
            target_secs: r.target_secs,
            seqs: r.seqs(MAX_CLIP_CHUNKS)?,
        });
    }
    Some(RestoredClip {
        id,
        stream: StreamId(c.stream),
        request: ClipRequest {
            duration_secs: c.duration_secs,
            start_unix_secs: c.start_unix_secs,
            expiration_unix_secs: c.expiration_unix_secs,
            vod_required: c.vod_required,
            precise: c.precise,
        },
        start: WallTime::from_unix_micros(c.start_us),
        end: WallTime::from_unix_micros(c.end_us),
        expiration: WallTime::from_unix_micros(c.expiration_us),
        created_at: WallTime::from_unix_micros(c.created_us),
        video_id: c.video_id,
        reference: c.reference,
        renditions,
        complete: c.complete,
    })
}

/// Removes payload files no kept record names; returns how many.
fn remove_orphans(files: &Files, kept: &HashSet<u64>) -> usize {
    let Ok(dir) = std::fs::read_dir(files.dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let id = name.to_str().and_then(Files::id_of);
        if id.is_none_or(|id| !kept.contains(&id)) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The largest payload file id in the directory, so new files never reuse one.
pub(crate) fn max_file_id(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("chunks"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(Files::id_of))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const A: &[u8] = include_bytes!("../../../tests/fixtures/restart/a/init.mp4");
    const B: &[u8] = include_bytes!("../../../tests/fixtures/restart/b/init.mp4");

    fn stream() -> Record {
        Record::Stream(StreamRec {
            id: 1,
            name: "s".into(),
            active: true,
            dvr_enabled: true,
            dvr_duration_secs: 3600,
            pull: false,
            uri: None,
            created_us: 0,
            ingest_key: "i".into(),
            play_key: "p".into(),
        })
    }

    fn init(id: u64, rendition: &str, bytes: &[u8]) -> Record {
        Record::Init {
            id,
            stream: 1,
            rendition: rendition.into(),
            bytes: bytes.to_vec(),
        }
    }

    fn current(f: &Fold, rendition: &str) -> Option<u64> {
        f.renditions
            .get(&(1, rendition.to_owned()))
            .and_then(|c| c.current_init)
    }

    /// Ids of two processes (a shipped DVR): the current init is the last one
    /// named, not the greatest id, in the fold, in what recovery restores and in
    /// the journal it writes.
    #[test]
    fn the_current_init_is_the_last_named_not_the_greatest_id() {
        let fold = Fold::of(vec![stream(), init(7, "v", A), init(3, "v", B)]);
        assert_eq!(current(&fold, "v"), Some(3));
        let mut report = RecoveryReport::default();
        let now = WallTime::from_unix_secs(0);
        let recovered = build_with(fold, now, &mut report, &mut |_, _| None);
        let restored = recovered.restore.streams[0].renditions[0].init.clone();
        assert_eq!(restored.map(|i| i.bytes.to_vec()), Some(B.to_vec()));
        assert_eq!(current(&Fold::of(recovered.snapshot), "v"), Some(3));
    }

    proptest! {
        /// Any inits named in any order of ids, over two renditions: each
        /// rendition's current init is the last one named for it, and a compacted
        /// journal folds to the same.
        #[test]
        fn a_compaction_keeps_each_current_init(
            named in proptest::collection::vec((0..2u8, 1..20u64), 1..30)
        ) {
            let mut records = vec![stream()];
            let mut expected: HashMap<String, u64> = HashMap::new();
            let mut used = HashSet::new();
            for (r, id) in named {
                // One id names one init of one rendition.
                let r = if used.insert(id) { format!("r{r}") } else {
                    match records.iter().find_map(|rec| match rec {
                        Record::Init { id: i, rendition, .. } if *i == id => Some(rendition.clone()),
                        _ => None,
                    }) {
                        Some(r) => r,
                        None => continue,
                    }
                };
                records.push(init(id, &r, &id.to_be_bytes()));
                expected.insert(r, id);
            }
            let mut fold = Fold::of(records);
            for (r, id) in &expected {
                prop_assert_eq!(current(&fold, r), Some(*id));
            }
            let again = Fold::of(fold.compact(&HashSet::new()));
            for (r, id) in &expected {
                prop_assert_eq!(current(&again, r), Some(*id));
            }
        }
    }
}
