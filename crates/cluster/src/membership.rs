//! One node's place in the cluster: its record among the live nodes, the streams it
//! owns, and the stream ids it draws, all kept in etcd under one prefix.
//!
//! Everything a node holds is tied to one etcd lease: its node record and its
//! ownership keys. While the node refreshes the lease (every third of its TTL) they
//! stay; when the node dies they vanish together at the TTL, and another node may then
//! claim its streams. A node whose lease has expired (a pause longer than the TTL, a
//! partition) learns it at its next refresh ([`ClusterError::LeaseExpired`]) and owns
//! nothing any more: it must join again and claim again, never go on as if it still
//! owned (another node may have claimed meanwhile).
//!
//! Keys under the prefix (`/dvrclip` by default):
//! - `nodes/{node id}`: the node's record (JSON [`Node`]), on its lease;
//! - `owners/{stream id}`: the owning node's id, on the owner's lease;
//! - `ids/stream`: the last stream id drawn, a decimal counter moved by
//!   compare-and-swap, so ids are unique across nodes without a coordinator;
//! - `ids/video`: the last video id handed out in a block ([`VIDEO_ID_BLOCK`] at a
//!   time), and `video_blocks/{n}`: the node that drew block `n` (ids
//!   `(n-1)·B+1 ..= n·B`), kept without a lease.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::etcd::{Etcd, EtcdError, KeyValue};

/// How many video ids a node draws at once ([`Membership::reserve_video_ids`]).
pub const VIDEO_ID_BLOCK: u64 = 32;

/// Attempts at drawing an id before [`ClusterError::Contended`]: each failed
/// attempt means another node drew one meanwhile, so this is only reached under a
/// storm of creates.
const ID_ATTEMPTS: usize = 32;

/// Why a cluster step failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd did not answer or refused.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// The node's lease is gone: it owns nothing and must join again.
    #[error("the node's etcd lease {0} has expired; it owns nothing until it joins again")]
    LeaseExpired(i64),
    /// A live node already has this id.
    #[error("node id {0:?} is held by a live node")]
    NodeTaken(String),
    /// Too many nodes drew ids at once.
    #[error("id counter contended {ID_ATTEMPTS} times in a row")]
    Contended,
    /// A record in etcd that this version cannot read.
    #[error("unreadable cluster record at {key}: {reason}")]
    Record {
        /// The key.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

/// A node as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Unique among live nodes (a host name, or one made at start).
    pub id: String,
    /// Where the other nodes reach its HTTP API and links (`http://10.0.0.7:8080`).
    pub url: String,
}

/// Who owns a stream, as a claim found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This node (it just claimed it, or already held it).
    Me,
    /// Another live node, by id.
    Other(String),
}

/// A node joined to the cluster; dropping it without [`Membership::leave`] leaves its
/// keys to expire with the lease, as a crash does.
#[derive(Debug)]
pub struct Membership {
    etcd: Etcd,
    prefix: String,
    node: Node,
    lease: i64,
    ttl: Duration,
}

impl Membership {
    /// Joins: a lease of `ttl`, and the node's record on it. Refused when a live node
    /// holds the same id.
    pub async fn join(
        etcd: Etcd,
        prefix: &str,
        node: Node,
        ttl: Duration,
    ) -> Result<Membership, ClusterError> {
        let lease = etcd.grant(ttl).await?.id;
        let m = Membership {
            etcd,
            prefix: prefix.trim_end_matches('/').to_owned(),
            node,
            lease,
            ttl,
        };
        let record = serde_json::to_vec(&m.node).map_err(|e| ClusterError::Record {
            key: m.key("nodes", &m.node.id),
            reason: e.to_string(),
        })?;
        let made = m
            .etcd
            .create(m.key("nodes", &m.node.id).as_bytes(), &record, lease)
            .await?;
        if !made.succeeded {
            let _ = m.etcd.revoke(lease).await;
            return Err(ClusterError::NodeTaken(m.node.id));
        }
        Ok(m)
    }

    /// This node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// How often [`Membership::keep_alive`] must run: a third of the TTL, so two
    /// refreshes may be lost before the lease ends.
    pub fn refresh_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Refreshes the lease.
    pub async fn keep_alive(&self) -> Result<(), ClusterError> {
        if self.etcd.keep_alive(self.lease).await?.ttl <= 0 {
            return Err(ClusterError::LeaseExpired(self.lease));
        }
        Ok(())
    }

    /// The live nodes, this one included, by id.
    pub async fn nodes(&self) -> Result<Vec<Node>, ClusterError> {
        let prefix = format!("{}/nodes/", self.prefix);
        self.etcd
            .list(prefix.as_bytes())
            .await?
            .iter()
            .map(|kv| {
                serde_json::from_slice(&kv.value).map_err(|e| ClusterError::Record {
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Claims `stream` for this node unless a live node owns it.
    pub async fn claim(&self, stream: u64) -> Result<Owner, ClusterError> {
        let key = self.key("owners", &stream.to_string());
        let t = self
            .etcd
            .create(key.as_bytes(), self.node.id.as_bytes(), self.lease)
            .await?;
        if t.succeeded {
            return Ok(Owner::Me);
        }
        match t.read.first() {
            Some(kv) => self.owner_in(kv),
            // Deleted between the comparison and the read: try once more.
            None => {
                let again = self
                    .etcd
                    .create(key.as_bytes(), self.node.id.as_bytes(), self.lease)
                    .await?;
                match again.read.first() {
                    _ if again.succeeded => Ok(Owner::Me),
                    Some(kv) => self.owner_in(kv),
                    None => Err(ClusterError::Record {
                        key,
                        reason: "claim neither made nor held".into(),
                    }),
                }
            }
        }
    }

    /// Who owns `stream` now, if anyone.
    pub async fn owner(&self, stream: u64) -> Result<Option<Owner>, ClusterError> {
        let key = self.key("owners", &stream.to_string());
        match self.etcd.get(key.as_bytes()).await? {
            Some(kv) => self.owner_in(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// The streams some live node owns now (one etcd range).
    pub async fn owned_streams(&self) -> Result<Vec<u64>, ClusterError> {
        let prefix = self.key("owners", "");
        Ok(self
            .etcd
            .list(prefix.as_bytes())
            .await?
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(prefix.as_bytes()))
            .filter_map(|id| std::str::from_utf8(id).ok()?.parse().ok())
            .collect())
    }

    /// Gives `stream` up, if this node still owns it.
    pub async fn release(&self, stream: u64) -> Result<(), ClusterError> {
        let key = self.key("owners", &stream.to_string());
        self.etcd
            .delete_if(key.as_bytes(), self.node.id.as_bytes())
            .await?;
        Ok(())
    }

    /// A stream id no node has drawn before: 1, 2, 3, … across the cluster.
    pub async fn next_stream_id(&self) -> Result<u64, ClusterError> {
        self.advance("stream", |cur| cur.map_or(Some(1), |c| c.checked_add(1)))
            .await
    }

    /// A block of [`VIDEO_ID_BLOCK`] video ids no node has drawn, none below
    /// `floor` (ids this node's VOD store already holds): drawn from the counter
    /// `ids/video` (the last id handed out, always a multiple of the block), and
    /// the block's holder written at `video_blocks/{block}` (no lease: a video
    /// outlives its node's lease) so a read of a video finds its node
    /// ([`Membership::video_holder`]). A block whose holder could not be written
    /// is lost, never handed out twice.
    pub async fn reserve_video_ids(
        &self,
        floor: u64,
    ) -> Result<std::ops::RangeInclusive<u64>, ClusterError> {
        let last = self
            .advance("video", |cur| {
                let after = cur.unwrap_or(0).checked_add(VIDEO_ID_BLOCK)?;
                let above_floor = floor.checked_add(VIDEO_ID_BLOCK - 1)?;
                after
                    .max(above_floor)
                    .checked_next_multiple_of(VIDEO_ID_BLOCK)
            })
            .await?;
        let first = last - VIDEO_ID_BLOCK + 1;
        let holder = self.key("video_blocks", &(last / VIDEO_ID_BLOCK).to_string());
        self.etcd
            .put(holder.as_bytes(), self.node.id.as_bytes(), 0)
            .await?;
        Ok(first..=last)
    }

    /// The id of the node that drew the block holding video `id`, if any did.
    pub async fn video_holder(&self, id: u64) -> Result<Option<String>, ClusterError> {
        let Some(block) = id.checked_next_multiple_of(VIDEO_ID_BLOCK) else {
            return Ok(None);
        };
        let key = self.key("video_blocks", &(block / VIDEO_ID_BLOCK).to_string());
        Ok(self
            .etcd
            .get(key.as_bytes())
            .await?
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    }

    /// Moves the counter `ids/{name}` from its value (`None`: never moved) to
    /// `next` of it by compare-and-swap, retried while other nodes move it; the
    /// value written.
    async fn advance(
        &self,
        name: &str,
        next: impl Fn(Option<u64>) -> Option<u64>,
    ) -> Result<u64, ClusterError> {
        let key = self.key("ids", name);
        let overflow = || ClusterError::Record {
            key: key.clone(),
            reason: format!("{name} id counter at its end"),
        };
        for _ in 0..ID_ATTEMPTS {
            let t = match self.etcd.get(key.as_bytes()).await? {
                None => {
                    let value = next(None).ok_or_else(overflow)?;
                    let t = self
                        .etcd
                        .create(key.as_bytes(), value.to_string().as_bytes(), 0)
                        .await?;
                    (t.succeeded, value)
                }
                Some(kv) => {
                    let value = next(Some(counter(&key, &kv)?)).ok_or_else(overflow)?;
                    let t = self
                        .etcd
                        .swap(
                            key.as_bytes(),
                            kv.mod_revision,
                            value.to_string().as_bytes(),
                        )
                        .await?;
                    (t.succeeded, value)
                }
            };
            if t.0 {
                return Ok(t.1);
            }
        }
        Err(ClusterError::Contended)
    }

    /// Leaves now: the lease is revoked, so the node's record and every ownership key
    /// go at once and other nodes may claim its streams without waiting for the TTL.
    /// By reference, so a node that shares its membership between tasks can leave
    /// while one of them still holds it; what it does afterwards fails with
    /// [`ClusterError::LeaseExpired`] or etcd's refusal.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.etcd.revoke(self.lease).await?;
        Ok(())
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}/{kind}/{name}", self.prefix)
    }

    fn owner_in(&self, kv: &KeyValue) -> Result<Owner, ClusterError> {
        let id = std::str::from_utf8(&kv.value).map_err(|e| ClusterError::Record {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            reason: e.to_string(),
        })?;
        Ok(if id == self.node.id && kv.lease == self.lease {
            Owner::Me
        } else {
            Owner::Other(id.to_owned())
        })
    }
}

fn counter(key: &str, kv: &KeyValue) -> Result<u64, ClusterError> {
    std::str::from_utf8(&kv.value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ClusterError::Record {
            key: key.to_owned(),
            reason: format!("not a counter: {:?}", String::from_utf8_lossy(&kv.value)),
        })
}
