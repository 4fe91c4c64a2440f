//! This node's part in a cluster (`design/cluster.md`): its membership under an etcd
//! lease, the streams it owns, where the owner of any other stream is reached, the
//! stream records ([`records`]), the reverse proxy to owners ([`forward`]) with the
//! watch that gives up a forward to a node that hangs ([`liveness`]), the sink that
//! sends a push door's fragments to an owner ([`push`]), and the shipping
//! of owned streams' DVR to the object store with its restore on a claim ([`ship`]).
//! Absent (`App::cluster` is `None`) without `--cluster-etcd`.
//!
//! Shaped around one rule: a stream's DVR is on one node, and a node acts on a
//! stream only while etcd says it owns it. [`Cluster::place`] answers, for a stream,
//! "here" or "at that node's URL": streams this node holds a claim on are answered
//! from memory with no etcd round trip (so they keep working while etcd is away);
//! any other is looked up (owner and node URL cached for [`OWNER_CACHE`]) and, when
//! the request brings media and nobody owns the stream, claimed. The lease loop
//! ([`Cluster::run`]) refreshes the lease every third of its TTL; when etcd says the
//! lease is gone (a pause or partition longer than the TTL), every claim is dropped
//! (another node may have claimed meanwhile) and the node joins again, claiming anew
//! only what media reaches it. [`Cluster::leave`] (SIGTERM) revokes the lease, so
//! the node's streams are claimable at once.
//!
//! This room knows no route and no application state: the service's `steer` room
//! decides which requests are placed, with the engine passed in.

pub mod forward;
pub mod liveness;
pub mod push;
pub mod records;
pub mod ship;
pub mod slots;
pub mod video_ids;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dvrclip_cluster::{ClusterError, Etcd, Membership, Node, Owner};
use dvrclip_engine::{Engine, StreamId, StreamPatch};
use parking_lot::{Mutex, RwLock};

use crate::config::ClusterConfig;
use crate::error::ApiError;
use forward::Forwarder;
use records::{Records, StreamRecord};
use video_ids::VideoIdBlocks;

/// The etcd key prefix every node of a cluster shares.
pub const PREFIX: &str = "/dvrclip";

/// How long a looked-up owner (another node's URL) is trusted before etcd is asked
/// again; a failed forward forgets it at once.
pub const OWNER_CACHE: Duration = Duration::from_secs(1);

/// Each etcd call's bound: a node whose etcd is away learns it this fast.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a stream's requests are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Here: this node owns it.
    Here,
    /// At another node, by its advertised URL.
    At(String),
    /// No node owns it (no media has reached the cluster since its last owner
    /// left).
    Nobody,
}

/// The node holding a video this node does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoNode {
    /// No other node drew its id: there is no such video.
    Nobody,
    /// A live node, by its advertised URL.
    Live(String),
    /// A node that is not live (its lease expired or it left), by id.
    Down(String),
}

/// This node's cluster state.
pub struct Cluster {
    node: Node,
    ttl: Duration,
    etcd: Etcd,
    membership: RwLock<Option<Arc<Membership>>>,
    /// Set by [`Cluster::leave`]: the lease loop stops, no join follows.
    left: AtomicBool,
    /// Streams this node holds a claim on, under its current lease.
    owned: Mutex<HashSet<StreamId>>,
    /// Other nodes' streams: their URL, and when it was looked up.
    owners: Mutex<HashMap<StreamId, (String, Instant)>>,
    /// Counters for `/metrics`.
    counters: Counters,
    /// The stream records.
    pub records: Records,
    /// The reverse proxy to owners.
    pub forward: Forwarder,
    /// What push doors' publishes sent to other owners.
    pub push: Arc<push::PushCounters>,
    /// The video ids this node hands out.
    pub video_ids: Arc<VideoIdBlocks>,
    /// Publisher slots held for publishes other nodes forward here.
    pub slots: slots::ForwardedSlots,
    /// The DVR shipper (with `--clip-archive`), set before the first request.
    ship: std::sync::OnceLock<Arc<ship::Shipper>>,
    /// The nodes forwards wait on ([`Cluster::node_gone`]).
    liveness: liveness::Liveness,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster of `config`, this node reached at `advertise_url`, handing out no
    /// video id below `first_video_id`; not joined yet.
    pub fn new(
        config: &ClusterConfig,
        advertise_url: &str,
        first_video_id: u64,
    ) -> Result<Cluster, String> {
        let endpoints: Vec<&str> = config.etcd.iter().map(String::as_str).collect();
        let etcd = Etcd::new(&endpoints, ETCD_TIMEOUT).map_err(|e| e.to_string())?;
        Ok(Cluster {
            node: Node {
                id: config.node_id.clone(),
                url: advertise_url.trim_end_matches('/').to_owned(),
            },
            ttl: config.lease_ttl,
            records: Records::new(etcd.clone(), PREFIX),
            forward: Forwarder::new(&config.node_id)?,
            etcd,
            membership: RwLock::new(None),
            left: AtomicBool::new(false),
            owned: Mutex::new(HashSet::new()),
            owners: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            push: Arc::default(),
            video_ids: VideoIdBlocks::new(first_video_id),
            slots: slots::ForwardedSlots::default(),
            ship: std::sync::OnceLock::new(),
            liveness: liveness::Liveness::default(),
        })
    }

    /// Ships owned streams' DVR with `ship`, and restores from it on a claim.
    pub fn set_ship(&self, ship: Arc<ship::Shipper>) {
        let _ = self.ship.set(ship);
    }

    /// The DVR shipper, if any.
    pub fn ship(&self) -> Option<&Arc<ship::Shipper>> {
        self.ship.get()
    }

    /// This node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The membership, if joined.
    /// The other live nodes (their records in etcd), for a call that spans the
    /// cluster.
    pub async fn peers(&self) -> Result<Vec<Node>, ApiError> {
        let mut nodes = self.membership()?.nodes().await?;
        nodes.retain(|n| n.id != self.node.id);
        Ok(nodes)
    }

    fn membership(&self) -> Result<Arc<Membership>, ApiError> {
        self.membership.read().clone().ok_or_else(|| {
            ApiError::Unavailable(format!(
                "node {} has not joined the cluster (etcd unreachable?)",
                self.node.id
            ))
        })
    }

    /// Joins under a new lease, unless joined.
    pub async fn join(&self) -> Result<(), ClusterError> {
        if self.membership.read().is_some() || self.left.load(Ordering::SeqCst) {
            return Ok(());
        }
        let m = Membership::join(self.etcd.clone(), PREFIX, self.node.clone(), self.ttl).await?;
        tracing::info!(node = %self.node.id, url = %self.node.url, "joined the cluster");
        *self.membership.write() = Some(Arc::new(m));
        Ok(())
    }

    /// Keeps the lease alive until the task is aborted: joins when not joined
    /// (etcd away at start, or the lease expired), refreshes every third of the TTL.
    pub async fn run(self: Arc<Self>) {
        while !self.left.load(Ordering::SeqCst) {
            self.slots.sweep();
            let member = self.membership.read().clone();
            let wait = match member {
                None => match self.join().await {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "joining the cluster");
                        Duration::from_secs(1).min(self.ttl / 3)
                    }
                },
                Some(m) => {
                    tokio::time::sleep(m.refresh_every()).await;
                    if self.left.load(Ordering::SeqCst) {
                        return;
                    }
                    match m.keep_alive().await {
                        Ok(()) => {
                            if self.slots.held() > 0 {
                                // Off the loop: a slow etcd must not delay a refresh.
                                tokio::spawn(Arc::clone(&self).free_slots_of_gone_nodes(m));
                            }
                            continue;
                        }
                        Err(ClusterError::LeaseExpired(lease)) => {
                            self.counters.leases_lost.fetch_add(1, Relaxed);
                            tracing::warn!(
                                lease,
                                "cluster lease expired: dropping every claim and joining again"
                            );
                            self.forget_claims();
                            continue;
                        }
                        Err(e) => {
                            // etcd away: what this node owns keeps working; the
                            // next refresh tells whether the lease outlived it.
                            tracing::warn!(error = %e, "refreshing the cluster lease");
                            Duration::ZERO
                        }
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Frees the publisher slots held for publishes whose forwarding node is no
    /// longer a member (its lease ended: it died or was cut off, and cannot end
    /// them), so another publisher is taken at that node's TTL, not at
    /// [`slots::IDLE`].
    async fn free_slots_of_gone_nodes(self: Arc<Self>, m: Arc<Membership>) {
        if let Ok(nodes) = m.nodes().await {
            let members = nodes.into_iter().map(|n| n.id).collect();
            self.slots.free_unless_member(&members);
        }
    }

    /// `stream`'s publisher slot for the forwarded publish `publish` from `node`
    /// ([`slots::ForwardedSlots::hold`]). When another publish holds it, its
    /// forwarding node is looked up first: gone from the cluster, its slot is freed
    /// and this one takes it (a re-publish through another node after the
    /// forwarding node died is taken as soon as that node's lease ends).
    pub async fn hold_slot(
        &self,
        publishers: &Arc<dvrclip_ingest::publishers::Publishers>,
        stream: StreamId,
        publish: &str,
        node: &str,
    ) -> Result<(), ApiError> {
        if let Some(holder) = self.slots.holder_other_than(stream, publish)
            && holder != node
            && let Ok(m) = self.membership()
            && let Ok(nodes) = m.nodes().await
        {
            let members = nodes.into_iter().map(|n| n.id).collect();
            self.slots.free_unless_member(&members);
        }
        self.slots.hold(publishers, stream, publish, node)
    }

    /// The lease is gone: nothing is owned any more.
    fn forget_claims(&self) {
        *self.membership.write() = None;
        self.owned.lock().clear();
        self.owners.lock().clear();
        self.slots.clear();
        if let Some(s) = self.ship() {
            s.release_all();
        }
    }

    /// Leaves the cluster (SIGTERM): the lease is revoked, so every stream this node
    /// owned is claimable by another at once.
    pub async fn leave(&self) {
        self.left.store(true, Ordering::SeqCst);
        let member = self.membership.write().take();
        self.owned.lock().clear();
        self.slots.clear();
        if let Some(s) = self.ship() {
            s.release_all();
        }
        if let Some(m) = member {
            match m.leave().await {
                Ok(()) => tracing::info!(node = %self.node.id, "left the cluster"),
                // etcd away: the lease ends at its TTL instead.
                Err(e) => tracing::warn!(error = %e, "leaving the cluster"),
            }
        }
    }

    /// Whether this node holds a claim on `stream`.
    pub fn owns(&self, stream: StreamId) -> bool {
        self.owned.lock().contains(&stream)
    }

    /// A stream id no node has drawn.
    pub async fn next_stream_id(&self) -> Result<u64, ApiError> {
        Ok(self.membership()?.next_stream_id().await?)
    }

    /// A block of video ids no node has drawn, none below `floor`.
    pub async fn reserve_video_ids(
        &self,
        floor: u64,
    ) -> Result<std::ops::RangeInclusive<u64>, ApiError> {
        Ok(self.membership()?.reserve_video_ids(floor).await?)
    }

    /// Where a read or change of video `id`, which this node does not hold, is
    /// answered: the node that drew its id, live or not.
    pub async fn video_node(&self, id: u64) -> Result<VideoNode, ApiError> {
        let m = self.membership()?;
        let Some(holder) = m.video_holder(id).await? else {
            return Ok(VideoNode::Nobody);
        };
        if holder == self.node.id {
            return Ok(VideoNode::Nobody);
        }
        let live = m.nodes().await?.into_iter().find(|n| n.id == holder);
        Ok(match live {
            Some(n) => VideoNode::Live(n.url),
            None => VideoNode::Down(holder),
        })
    }

    /// Where `stream`'s requests are answered. With `claim` (a request bringing
    /// media), a stream nobody owns is claimed by this node and taken into `engine`
    /// from its record.
    pub async fn place(
        &self,
        engine: &Engine,
        stream: StreamId,
        claim: bool,
    ) -> Result<Place, ApiError> {
        if self.owns(stream) {
            return Ok(Place::Here);
        }
        if let Some((url, at)) = self.owners.lock().get(&stream)
            && at.elapsed() < OWNER_CACHE
        {
            return Ok(Place::At(url.clone()));
        }
        let m = self.membership()?;
        let owner = match m.owner(stream.0).await? {
            None if claim => Some(m.claim(stream.0).await?),
            o => o,
        };
        match owner {
            None => Ok(Place::Nobody),
            Some(Owner::Me) => {
                if let Err(e) = self.take_in(engine, stream).await {
                    // Not a stream this node can hold (deleted meanwhile): no claim.
                    let _ = m.release(stream.0).await;
                    return Err(e);
                }
                // Counted once: requests racing the claim (an encoder's inits sent
                // at once, forwarded here too) each find this node the owner.
                if self.owned.lock().insert(stream) {
                    self.counters.claims.fetch_add(1, Relaxed);
                    tracing::info!(stream = stream.0, node = %self.node.id, "stream claimed");
                }
                Ok(Place::Here)
            }
            Some(Owner::Other(id)) => {
                let url = m
                    .nodes()
                    .await?
                    .into_iter()
                    .find(|n| n.id == id)
                    .map(|n| n.url)
                    .ok_or_else(|| {
                        ApiError::Unavailable(format!(
                            "stream {stream} is owned by node {id}, which has no record (leaving?)"
                        ))
                    })?;
                self.owners
                    .lock()
                    .insert(stream, (url.clone(), Instant::now()));
                Ok(Place::At(url))
            }
        }
    }

    /// The streams some live node owns now.
    pub async fn owned_streams(&self) -> Result<HashSet<StreamId>, ApiError> {
        let m = self.membership()?;
        Ok(m.owned_streams().await?.into_iter().map(StreamId).collect())
    }

    /// Counts a pulled stream this node took over (its owner gone).
    pub fn record_pull_takeover(&self) {
        self.counters.pulls_taken_over.fetch_add(1, Relaxed);
    }

    /// Counts a forward given up because its node's lease ended while it did not
    /// answer ([`Cluster::node_gone`]).
    pub fn record_forward_abandoned(&self) {
        self.counters.forwards_abandoned.fetch_add(1, Relaxed);
    }

    /// Counts a forwarded request, answered by the owner or not.
    pub fn record_forward(&self, answered: bool) {
        let c = if answered {
            &self.counters.forwarded
        } else {
            &self.counters.forward_failures
        };
        c.fetch_add(1, Relaxed);
    }

    /// The node's cluster counters and gauges, in Prometheus text.
    pub fn render_metrics(&self) -> String {
        let c = &self.counters;
        let p = &self.push;
        let rows: [(&str, &str, &str, u64); 16] = [
            (
                "dvrclip_cluster_pulls_taken_over_total",
                "counter",
                "Pulled streams whose owner was gone, claimed by this node, which pulls them since.",
                c.pulls_taken_over.load(Relaxed),
            ),
            (
                "dvrclip_cluster_door_over_budget_total",
                "counter",
                "Forwarded publishes closed because the memory budget had no room for a fragment on its way.",
                p.over_budget.load(Relaxed),
            ),
            (
                "dvrclip_cluster_forwarded_publishes",
                "gauge",
                "Publisher slots this owner holds for RTMP and SRT publishes other nodes forward.",
                self.slots.held() as u64,
            ),
            (
                "dvrclip_cluster_forwarded_publishes_refused_total",
                "counter",
                "Forwarded uploads refused because another publisher held the stream's slot.",
                self.slots.refused.load(Relaxed),
            ),
            (
                "dvrclip_cluster_forwarded_publishes_freed_total",
                "counter",
                "Publisher slots of forwarded publishes freed without their end: the forwarding node left the cluster, or the publish went silent.",
                self.slots.freed.load(Relaxed),
            ),
            (
                "dvrclip_cluster_door_uploads_total",
                "counter",
                "Inits and fragments of RTMP and SRT publishes sent to the stream's owner.",
                p.uploads.load(Relaxed),
            ),
            (
                "dvrclip_cluster_door_bytes_total",
                "counter",
                "Bytes of RTMP and SRT publishes sent to the stream's owner.",
                p.bytes.load(Relaxed),
            ),
            (
                "dvrclip_cluster_door_upload_micros_total",
                "counter",
                "Microseconds spent sending them, each from its PUT to the owner's answer.",
                p.micros.load(Relaxed),
            ),
            (
                "dvrclip_cluster_door_forward_failures_total",
                "counter",
                "Publishes closed because the owner refused an upload, fell behind or hung past its lease, or the budget had no room.",
                p.failures.load(Relaxed),
            ),
            (
                "dvrclip_cluster_joined",
                "gauge",
                "1 while the node holds a lease.",
                u64::from(self.membership.read().is_some()),
            ),
            (
                "dvrclip_cluster_owned_streams",
                "gauge",
                "Streams this node holds a claim on.",
                self.owned.lock().len() as u64,
            ),
            (
                "dvrclip_cluster_claims_total",
                "counter",
                "Streams claimed by this node.",
                c.claims.load(Relaxed),
            ),
            (
                "dvrclip_cluster_leases_lost_total",
                "counter",
                "Leases found expired under this live node.",
                c.leases_lost.load(Relaxed),
            ),
            (
                "dvrclip_cluster_forwarded_total",
                "counter",
                "Requests forwarded to a stream's owner and answered by it.",
                c.forwarded.load(Relaxed),
            ),
            (
                "dvrclip_cluster_forward_failures_total",
                "counter",
                "Requests forwarded to an owner that did not answer (502).",
                c.forward_failures.load(Relaxed),
            ),
            (
                "dvrclip_cluster_forwards_abandoned_total",
                "counter",
                "Forwards given up because the node they waited on lost its lease (hung): placed again, 503, or a forwarded publish closed.",
                c.forwards_abandoned.load(Relaxed),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            crate::metrics::family(&mut out, name, kind, help, value);
        }
        if let Some(s) = self.ship() {
            out.push_str(&s.render_metrics());
        }
        out
    }

    /// Forgets a looked-up owner (a forward to it failed).
    pub fn forget_owner(&self, stream: StreamId) {
        self.owners.lock().remove(&stream);
    }

    /// Gives up a stream (deleted).
    pub async fn release(&self, stream: StreamId) -> Result<(), ApiError> {
        self.owned.lock().remove(&stream);
        self.owners.lock().remove(&stream);
        if let Some(s) = self.ship() {
            s.release(stream);
        }
        if let Ok(m) = self.membership() {
            m.release(stream.0).await?;
        }
        Ok(())
    }

    /// Makes sure `engine` holds `stream` as its record says (a stream claimed for
    /// the first time, or again after another node held it).
    async fn take_in(&self, engine: &Engine, stream: StreamId) -> Result<(), ApiError> {
        let record = self
            .records
            .get(stream.0)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("unknown stream {stream}")))?;
        let Some(ship) = self.ship() else {
            return adopt(engine, &record);
        };
        // The claim's generation: the revision that created the ownership key
        // (greater for every later claim, whichever node makes it).
        let key = format!("{PREFIX}/owners/{}", stream.0);
        match self.etcd.get(key.as_bytes()).await {
            Ok(Some(kv)) => {
                let generation = u64::try_from(kv.create_revision).unwrap_or(0);
                ship.take_in(engine, &record, generation).await
            }
            _ => Err(ApiError::Unavailable(format!(
                "stream {stream}: its ownership could not be read from etcd; retry"
            ))),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    claims: AtomicU64,
    pulls_taken_over: AtomicU64,
    leases_lost: AtomicU64,
    forwarded: AtomicU64,
    forward_failures: AtomicU64,
    forwards_abandoned: AtomicU64,
}

/// `engine` holds the stream of `record`, with its settings.
pub fn adopt(engine: &Engine, record: &StreamRecord) -> Result<(), ApiError> {
    let id = StreamId(record.id);
    if engine.stream(id).is_ok() {
        let s = record.settings();
        engine.update_stream(
            id,
            StreamPatch {
                name: Some(s.name),
                dvr_enabled: Some(s.dvr_enabled),
                dvr_duration_secs: Some(s.dvr_duration_secs),
                active: Some(s.active),
                pull: Some(s.pull),
                uri: Some(s.uri.unwrap_or_default()),
            },
        )?;
        return Ok(());
    }
    match engine.adopt_stream(
        id,
        record.settings(),
        dvrclip_engine::WallTime::from_unix_micros(record.created_us),
        record.ingest_key.clone(),
        record.play_key.clone(),
    ) {
        Ok(_) => Ok(()),
        // Taken in by a request racing this one.
        Err(_) if engine.stream(id).is_ok() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
