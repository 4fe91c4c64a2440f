//! Stream records in etcd (`{prefix}/streams/{id}`, JSON [`StreamRecord`]): what any
//! node answers the stream API from, so a list through a balancer is complete and a
//! stream outlives the node that created it.
//!
//! A record holds what the stream was created with (settings, keys, creation time),
//! never what its owner's DVR holds; a change is a compare-and-swap on the record's
//! revision, so two nodes patching at once never lose one write. The keys in a record
//! are the stream's secrets: a node that receives an upload or a live-playlist request
//! for a stream it does not hold finds the stream through a digest index of the
//! records ([`Records::by_ingest_key`]), rebuilt from one etcd range at most every
//! [`INDEX_REFRESH`] so a flood of wrong keys costs no more than that. A miss is
//! answered only by a rebuild begun after it (waiting for the next one if need be):
//! a stream created on another node a moment ago is found, never refused as
//! unknown because this node's index was read just before the create.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dvrclip_cluster::etcd::KeyValue;
use dvrclip_cluster::{ClusterError, Etcd};
use dvrclip_engine::secret::{KeyKind, key_digest, random_hex};
use dvrclip_engine::{StreamId, StreamInfo, StreamPatch, StreamSettings, WallTime};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Shortest time between two rebuilds of the key index on a miss.
pub const INDEX_REFRESH: Duration = Duration::from_millis(500);

/// Attempts of a patch's compare-and-swap before it gives up (each failure means
/// another node changed the record meanwhile).
const PATCH_ATTEMPTS: usize = 16;

/// A stream as the cluster keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// The id, from the cluster's counter.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Ingest accepted.
    pub active: bool,
    /// DVR on.
    pub dvr_enabled: bool,
    /// DVR window, seconds.
    pub dvr_duration: u32,
    /// Pulled from `uri`.
    pub pull: bool,
    /// Pull URIs.
    pub uri: Option<String>,
    /// Creation, Unix µs.
    pub created_us: i64,
    /// The secret ingest key.
    pub ingest_key: String,
    /// The secret live-playlist key.
    pub play_key: String,
}

impl StreamRecord {
    /// A new record: fresh keys, created now.
    pub fn new(id: u64, s: &StreamSettings, now: WallTime) -> Result<StreamRecord, String> {
        Ok(StreamRecord {
            id,
            name: s.name.clone(),
            active: s.active,
            dvr_enabled: s.dvr_enabled,
            dvr_duration: s.dvr_duration_secs,
            pull: s.pull,
            uri: s.uri.clone(),
            created_us: now.unix_micros(),
            ingest_key: random_hex::<16>().map_err(|e| e.to_string())?,
            play_key: random_hex::<16>().map_err(|e| e.to_string())?,
        })
    }

    /// Its settings, for the engine of the node that owns it.
    pub fn settings(&self) -> StreamSettings {
        StreamSettings {
            name: self.name.clone(),
            dvr_enabled: self.dvr_enabled,
            dvr_duration_secs: self.dvr_duration,
            active: self.active,
            pull: self.pull,
            uri: self.uri.clone(),
        }
    }

    /// The record with `patch` applied, as the engine applies one.
    pub fn patched(&self, patch: &StreamPatch) -> StreamRecord {
        let s = self.settings().patched(patch);
        StreamRecord {
            name: s.name,
            active: s.active,
            dvr_enabled: s.dvr_enabled,
            dvr_duration: s.dvr_duration_secs,
            pull: s.pull,
            uri: s.uri,
            ..self.clone()
        }
    }

    /// The stream as a node that does not hold its DVR shows it: not live, no
    /// renditions (the owner's answer has them).
    pub fn info(&self) -> StreamInfo {
        StreamInfo {
            id: StreamId(self.id),
            name: self.name.clone(),
            active: self.active,
            dvr_enabled: self.dvr_enabled,
            dvr_duration_secs: self.dvr_duration,
            pull: self.pull,
            uri: self.uri.clone(),
            live: false,
            created_at: WallTime::from_unix_micros(self.created_us),
            renditions: Vec::new(),
            video_width: None,
            video_height: None,
            ingest_key: self.ingest_key.clone(),
            play_key: self.play_key.clone(),
        }
    }
}

#[derive(Default)]
struct Index {
    by_digest: HashMap<[u8; 32], u64>,
    /// When the last rebuild's etcd range was sent: it holds every record
    /// written before then.
    built: Option<Instant>,
    /// Keys of records this node wrote, with when: a rebuild whose range was sent
    /// before the write may not hold them, so it keeps them.
    recent: Vec<([u8; 32], u64, Instant)>,
}

/// The stream records of one cluster.
pub struct Records {
    etcd: Etcd,
    prefix: String,
    index: Mutex<Index>,
    /// One rebuild of the index at a time.
    rebuild: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Records {
    /// The records under `prefix` in `etcd`.
    pub fn new(etcd: Etcd, prefix: &str) -> Records {
        Records {
            etcd,
            prefix: prefix.trim_end_matches('/').to_owned(),
            index: Mutex::new(Index::default()),
            rebuild: tokio::sync::Mutex::new(()),
        }
    }

    fn key(&self, id: u64) -> String {
        format!("{}/streams/{id}", self.prefix)
    }

    fn parse(kv: &KeyValue) -> Result<StreamRecord, ClusterError> {
        serde_json::from_slice(&kv.value).map_err(|e| ClusterError::Record {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            reason: e.to_string(),
        })
    }

    fn encode(&self, r: &StreamRecord) -> Result<Vec<u8>, ClusterError> {
        serde_json::to_vec(r).map_err(|e| ClusterError::Record {
            key: self.key(r.id),
            reason: e.to_string(),
        })
    }

    /// Writes a new record (its id fresh from the cluster's counter).
    pub async fn create(&self, r: &StreamRecord) -> Result<(), ClusterError> {
        let made = self
            .etcd
            .create(self.key(r.id).as_bytes(), &self.encode(r)?, 0)
            .await?;
        if !made.succeeded {
            return Err(ClusterError::Record {
                key: self.key(r.id),
                reason: "a record already holds this fresh id".into(),
            });
        }
        self.remember(r);
        Ok(())
    }

    /// Every record, by id.
    pub async fn list(&self) -> Result<Vec<StreamRecord>, ClusterError> {
        let prefix = format!("{}/streams/", self.prefix);
        let sent = Instant::now();
        let mut all = self
            .etcd
            .list(prefix.as_bytes())
            .await?
            .iter()
            .map(Records::parse)
            .collect::<Result<Vec<_>, _>>()?;
        // etcd orders keys as bytes ("10" before "9").
        all.sort_by_key(|r| r.id);
        let mut index = self.index.lock();
        if index.built.is_some_and(|t| t > sent) {
            // A newer rebuild finished first.
            return Ok(all);
        }
        index.recent.retain(|(_, _, at)| *at >= sent);
        let recent: Vec<_> = index.recent.iter().map(|(d, id, _)| (*d, *id)).collect();
        index.by_digest = all
            .iter()
            .flat_map(|r| {
                [
                    (key_digest(KeyKind::Ingest, &r.ingest_key), r.id),
                    (key_digest(KeyKind::Play, &r.play_key), r.id),
                ]
            })
            .chain(recent)
            .collect();
        index.built = Some(sent);
        Ok(all)
    }

    /// One record, with the revision a patch compares against.
    async fn get_rev(&self, id: u64) -> Result<Option<(StreamRecord, i64)>, ClusterError> {
        match self.etcd.get(self.key(id).as_bytes()).await? {
            Some(kv) => Ok(Some((Records::parse(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// One record.
    pub async fn get(&self, id: u64) -> Result<Option<StreamRecord>, ClusterError> {
        Ok(self.get_rev(id).await?.map(|(r, _)| r))
    }

    /// Applies `patch` to the record (`check` refuses a result the engine would
    /// not take); the record as written, `None` when there is none.
    pub async fn patch<E>(
        &self,
        id: u64,
        patch: &StreamPatch,
        check: impl Fn(&StreamRecord) -> Result<(), E>,
    ) -> Result<Option<StreamRecord>, PatchError<E>> {
        for _ in 0..PATCH_ATTEMPTS {
            let Some((current, rev)) = self.get_rev(id).await? else {
                return Ok(None);
            };
            let next = current.patched(patch);
            check(&next).map_err(PatchError::Refused)?;
            let t = self
                .etcd
                .swap(self.key(id).as_bytes(), rev, &self.encode(&next)?)
                .await
                .map_err(ClusterError::from)?;
            if t.succeeded {
                return Ok(Some(next));
            }
        }
        Err(PatchError::Cluster(ClusterError::Contended))
    }

    /// Deletes the record.
    pub async fn delete(&self, id: u64) -> Result<(), ClusterError> {
        self.etcd.delete(self.key(id).as_bytes()).await?;
        Ok(())
    }

    /// The stream whose ingest key this is, from the records.
    pub async fn by_ingest_key(&self, key: &str) -> Result<Option<StreamId>, ClusterError> {
        self.by_key(KeyKind::Ingest, key).await
    }

    /// The stream whose live-playlist key this is, from the records.
    pub async fn by_play_key(&self, key: &str) -> Result<Option<StreamId>, ClusterError> {
        self.by_key(KeyKind::Play, key).await
    }

    async fn by_key(&self, kind: KeyKind, key: &str) -> Result<Option<StreamId>, ClusterError> {
        let d = key_digest(kind, key);
        let lookup = || self.index.lock().by_digest.get(&d).map(|id| StreamId(*id));
        let missed = Instant::now();
        if let Some(id) = lookup() {
            return Ok(Some(id));
        }
        // Misses queue here; the first rebuilds (at most once per INDEX_REFRESH),
        // and those behind it whose miss came before that rebuild's range are
        // answered by it.
        let _turn = self.rebuild.lock().await;
        let built = self.index.lock().built;
        if built.is_none_or(|t| t <= missed) {
            if let Some(t) = built {
                tokio::time::sleep_until((t + INDEX_REFRESH).into()).await;
            }
            self.list().await?;
        }
        Ok(lookup())
    }

    fn remember(&self, r: &StreamRecord) {
        let now = Instant::now();
        let mut index = self.index.lock();
        for d in [
            key_digest(KeyKind::Ingest, &r.ingest_key),
            key_digest(KeyKind::Play, &r.play_key),
        ] {
            index.by_digest.insert(d, r.id);
            index.recent.push((d, r.id, now));
        }
    }
}

/// Why a patch was not written.
#[derive(Debug)]
pub enum PatchError<E> {
    /// The cluster store failed.
    Cluster(ClusterError),
    /// The patched record is not one the engine takes.
    Refused(E),
}

impl<E> From<ClusterError> for PatchError<E> {
    fn from(e: ClusterError) -> Self {
        PatchError::Cluster(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_patches_as_the_engine_does() {
        let mut s = StreamSettings::named("cam");
        s.dvr_duration_secs = 60;
        let r = StreamRecord::new(7, &s, WallTime::from_unix_secs(1_700_000_000)).unwrap();
        assert_eq!(r.settings(), s);
        assert_ne!(r.ingest_key, r.play_key);
        let back: StreamRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let p = r.patched(&StreamPatch {
            name: Some("cam2".into()),
            uri: Some(" ".into()),
            ..StreamPatch::default()
        });
        assert_eq!((p.name.as_str(), p.uri.as_deref()), ("cam2", None));
        assert_eq!(p.info().id, StreamId(7));
        assert!(!p.info().live);
    }
}
