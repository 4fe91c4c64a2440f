//! A stream's shipped DVR read back on a claim ([`super::Shipper::take_in`]): the
//! chain of generations (the greatest one below the claim's with a `gen.json`, and
//! the ones it names), every batch of theirs read (at most [`READS_IN_FLIGHT`] at
//! once) and checked (`dvrclip_spool::shipped::decode`: a refused object is skipped,
//! logged with its reason and counted, never a panic), folded as the spool folds
//! its journal, and given to [`Engine::restore`], which parses every payload against
//! its init again.
//!
//! Memory: the restored chunks' payloads are slices of the objects read, so a
//! restore holds what the dead node's DVR and clips held, within the engine's
//! budget; objects of generations no chain names are only listed (garbage for the
//! sweep).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use dvrclip_engine::persist::{Restore, RestoreReport};
use dvrclip_engine::{ClipId, Engine, StreamId, WallTime};
use dvrclip_spool::record::StreamRec;
use dvrclip_spool::shipped::{self, Entry};
use futures_util::StreamExt;
use tracing::warn;

use super::{GenerationRec, MAX_CHAIN, ObjectInfo, generation_key, stream_prefix};
use crate::cluster::records::StreamRecord;
use crate::vod::{StoreError, VodStore};

/// A claim waits this long at most for its stream's DVR to be read; past it the
/// stream starts empty.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Batch objects read at once.
pub const READS_IN_FLIGHT: usize = 8;

/// A batch object larger than this is not read (counted as refused): the shipper
/// writes a few chunks per object, so it is not one of ours.
pub const MAX_OBJECT_BYTES: u64 = 256 << 20;

/// Why a shipped DVR could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A generation's description is not one.
    #[error("{key}: {reason}")]
    Generation {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// What was read: the stream and clips to restore, and what the shipper needs to
/// go on from there.
#[derive(Debug, Default)]
pub struct Restored {
    /// Generations whose objects were read, oldest first: the new one's base.
    pub chain: Vec<u64>,
    /// The objects read, for the sweep.
    pub objects: Vec<(String, ObjectInfo)>,
    /// Objects of generations no chain names, to remove.
    pub garbage: Vec<String>,
    /// Each clip's latest record: the object holding it.
    pub clip_latest: HashMap<ClipId, String>,
    /// Objects refused (unreadable), skipped.
    pub corrupt: usize,
    restore: Option<Restore>,
}

impl Restored {
    /// Puts the stream, its DVR and clips into `engine` (which must not hold the
    /// stream); nothing read: nothing done.
    pub fn apply(&mut self, engine: &Engine) -> Result<RestoreReport, dvrclip_engine::Error> {
        match self.restore.take() {
            Some(r) if !r.streams.is_empty() => engine.restore(r),
            _ => Ok(RestoreReport::default()),
        }
    }
}

/// Where a key sits: its generation and, for a batch, its number (`None`: the
/// generation's description).
fn parse_key(prefix: &str, key: &str) -> Option<(u64, Option<u64>)> {
    let (generation, name) = key.strip_prefix(prefix)?.split_once('/')?;
    let generation = u64::from_str_radix(generation, 16).ok()?;
    if name == "gen.json" {
        return Some((generation, None));
    }
    let n = u64::from_str_radix(name.strip_suffix(".dvr")?, 16).ok()?;
    Some((generation, Some(n)))
}

/// Reads the shipped DVR of `record`'s stream for a claim at `generation`, as of
/// `now`.
pub async fn read(
    store: &dyn VodStore,
    record: &StreamRecord,
    generation: u64,
    now: WallTime,
) -> Result<Restored, RestoreError> {
    let id = StreamId(record.id);
    let prefix = stream_prefix(id);
    let mut generations: BTreeMap<u64, (bool, Vec<(u64, String)>)> = BTreeMap::new();
    let mut out = Restored::default();
    for (key, size) in store.list(prefix.trim_end_matches('/')).await? {
        let Some((g, batch)) = parse_key(&prefix, &key) else {
            continue;
        };
        let e = generations.entry(g).or_default();
        match batch {
            // A description is a few hundred bytes.
            None if size > 1 << 20 => out.corrupt += 1,
            None => e.0 = true,
            Some(_) if size > MAX_OBJECT_BYTES => {
                out.corrupt += 1;
                warn!(%key, size, "shipped DVR batch too large to be ours; skipped");
            }
            Some(n) => e.1.push((n, key)),
        }
    }
    let latest = generations
        .iter()
        .rev()
        .find(|(g, (described, _))| **g < generation && *described)
        .map(|(g, _)| *g);
    let chain = match latest {
        Some(latest) => {
            let key = generation_key(id, latest);
            let body = store.get(&key).await?;
            let bad = |reason: String| RestoreError::Generation {
                key: key.clone(),
                reason,
            };
            let rec: GenerationRec =
                serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
            if rec.version != 1 || rec.stream != id.0 || rec.generation != latest {
                return Err(bad("names another version, stream or generation".into()));
            }
            if rec.base.len() > MAX_CHAIN || rec.base.iter().any(|g| *g >= latest) {
                return Err(bad("its base is not older generations".into()));
            }
            let mut chain = rec.base;
            chain.push(latest);
            chain
        }
        None => Vec::new(),
    };
    for (g, (_, batches)) in &generations {
        if *g < generation && !chain.contains(g) {
            out.garbage.extend(batches.iter().map(|(_, k)| k.clone()));
            out.garbage.push(generation_key(id, *g));
        }
    }
    let mut wanted = Vec::new();
    for (at, g) in chain.iter().enumerate() {
        if let Some((_, batches)) = generations.get_mut(g) {
            batches.sort();
            wanted.extend(batches.iter().map(|(_, key)| (at, key.clone())));
        }
    }
    let reads = futures_util::stream::iter(wanted)
        .map(|(at, key)| async move {
            let got = store.get(&key).await;
            (at, key, got)
        })
        .buffered(READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut entries: Vec<Vec<Entry>> = vec![Vec::new(); chain.len()];
    let mut read_from = vec![false; chain.len()];
    for (at, key, got) in reads {
        let decoded = match got {
            Ok(bytes) => shipped::decode(&bytes).map_err(|e| e.to_string()),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        match decoded {
            Ok(batch) => {
                let info = ObjectInfo::of(&batch);
                for clip in &info.clips {
                    out.clip_latest.insert(*clip, key.clone());
                }
                out.objects.push((key, info));
                read_from[at] = true;
                entries[at].extend(batch);
            }
            Err(reason) => {
                out.corrupt += 1;
                warn!(%key, %reason, "shipped DVR batch refused; skipped");
            }
        }
    }
    out.chain = chain
        .iter()
        .zip(&read_from)
        .filter(|(_, read)| **read)
        .map(|(g, _)| *g)
        .collect();
    if !out.objects.is_empty() {
        let stream = StreamRec {
            id: record.id,
            name: record.name.clone(),
            active: record.active,
            dvr_enabled: record.dvr_enabled,
            dvr_duration_secs: record.dvr_duration,
            pull: record.pull,
            uri: record.uri.clone(),
            created_us: record.created_us,
            ingest_key: record.ingest_key.clone(),
            play_key: record.play_key.clone(),
        };
        let (restore, _) = shipped::restore_stream(stream, entries, now);
        out.restore = Some(restore);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_generation_and_batch() {
        let p = "dvr/7/";
        assert_eq!(
            parse_key(p, "dvr/7/00000000000000a1/gen.json"),
            Some((0xa1, None))
        );
        assert_eq!(
            parse_key(p, "dvr/7/00000000000000a1/0000000000000003.dvr"),
            Some((0xa1, Some(3)))
        );
        assert_eq!(parse_key(p, "dvr/70/00000000000000a1/gen.json"), None);
        assert_eq!(parse_key(p, "dvr/7/zz/gen.json"), None);
        assert_eq!(parse_key(p, "dvr/7/00000000000000a1/other"), None);
    }
}
