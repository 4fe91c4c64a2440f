//! The videos other nodes of a cluster keep in a bucket shared with this one
//! (`design/cluster.md` "Videos"), read while their node is down so they stay
//! listed and served.
//!
//! Each node keeps its videos under [`node_prefix`] (`nodes/{node id}/`), and only
//! it writes there: its start-up recovery settles the records it finds and removes
//! media no record names. So a node reading another's part never settles or
//! writes anything: [`SharedVideos::of_node`] loads that node's records as stored
//! into a [`Vod`] ([`Vod::stored`]) over its part of the bucket made read-only
//! ([`ObjectVodStore::read_only`]), and the
//! public links and the API serve it exactly as they serve this node's own.
//!
//! Who is down is the caller's business (etcd's live nodes); this room knows only
//! the bucket. Costs: a node's records are read (one listing, then
//! `RECORD_READS` GETs at once) at most once per [`FRESH_FOR`] per node while
//! requests ask for them, and the node ids (one listing of `nodes/` with a
//! delimiter) as often; requests arriving meanwhile wait for that one read. A
//! down node's index is held in memory like the node's own (about half a KB a
//! video) until it is seen live again.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use parking_lot::Mutex;

use super::Vod;
use super::store::{ObjectVodStore, StoreError};

/// How long a down node's records (and the list of nodes in the bucket) are used
/// before they are read again: a node may come back, write, and die again.
pub const FRESH_FOR: Duration = Duration::from_secs(10);

/// The folder of the bucket holding the nodes' parts.
const NODES: &str = "nodes";

/// Where node `id` keeps its videos in a bucket the nodes share.
pub fn node_prefix(id: &str) -> String {
    format!("{NODES}/{id}")
}

/// The other nodes' videos in a shared bucket.
#[derive(Debug)]
pub struct SharedVideos {
    root: ObjectVodStore,
    public_url: String,
    /// The node ids with a folder in the bucket.
    nodes: Fresh<Arc<Vec<String>>>,
    /// Each down node's videos, as last read.
    views: Mutex<HashMap<String, Arc<Fresh<Arc<Vod>>>>>,
}

impl SharedVideos {
    /// The nodes' parts of `root` (the bucket itself, no prefix); links under
    /// `public_url`.
    pub fn new(root: ObjectVodStore, public_url: impl Into<String>) -> SharedVideos {
        SharedVideos {
            root,
            public_url: public_url.into(),
            nodes: Fresh::default(),
            views: Mutex::new(HashMap::new()),
        }
    }

    /// The videos of node `id` as its records in the bucket say, read at most
    /// [`FRESH_FOR`] ago: read-only, nothing settled.
    pub async fn of_node(&self, id: &str) -> Result<Arc<Vod>, StoreError> {
        let fresh = Arc::clone(self.views.lock().entry(id.to_owned()).or_default());
        fresh
            .get(|| {
                let store = (self.root.clone().within(&node_prefix(id)))
                    .read_only(format!("the videos of node {id} are read-only here"));
                Vod::stored(Arc::new(store), self.public_url.clone())
            })
            .await
    }

    /// The videos of every node with a part in the bucket that is not in `live`
    /// (this node and the others etcd lists), a [`Vod`] a node. Views of live
    /// nodes are dropped: a node that comes back answers for its videos itself.
    pub async fn of_nodes_not(&self, live: &HashSet<&str>) -> Result<Vec<Arc<Vod>>, StoreError> {
        let nodes = self
            .nodes
            .get(|| async { Ok(Arc::new(self.root.folders(NODES).await?)) })
            .await?;
        let down: Vec<&String> = nodes
            .iter()
            .filter(|n| !live.contains(n.as_str()))
            .collect();
        self.views.lock().retain(|n, _| down.contains(&n));
        try_join_all(down.into_iter().map(|n| self.of_node(n))).await
    }
}

/// A value read at most [`FRESH_FOR`] ago, read again by the first caller after;
/// callers arriving during a read wait for it. A failed read is not kept.
#[derive(Debug)]
struct Fresh<T>(tokio::sync::Mutex<Option<(Instant, T)>>);

impl<T> Default for Fresh<T> {
    fn default() -> Self {
        Fresh(tokio::sync::Mutex::new(None))
    }
}

impl<T: Clone> Fresh<T> {
    async fn get<F, Fut>(&self, read: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut slot = self.0.lock().await;
        if let Some((at, value)) = &*slot
            && at.elapsed() < FRESH_FOR
        {
            return Ok(value.clone());
        }
        let value = read().await?;
        *slot = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vod::{VideoRecord, VideoStatus, VodStore};
    use bytes::Bytes;
    use object_store::memory::InMemory;

    fn record(id: u64) -> VideoRecord {
        let at = "2026-12-01T00:00:00.000Z".to_owned();
        VideoRecord::pending(id, format!("v{id}"), 1, "ab".into(), at)
    }

    #[tokio::test]
    async fn a_down_nodes_videos_are_read_as_stored_and_never_written() {
        let root = ObjectVodStore::new(Arc::new(InMemory::new()), "mem");
        let n2 = root.clone().within(&node_prefix("n2"));
        for id in [33, 34] {
            let body = record(id).to_stored_json("http://x").to_string();
            n2.put(&VideoRecord::key(id), body.into()).await.unwrap();
        }
        // Media no record names: a recovery would remove it; a view must not.
        n2.put("media/99-00.mp4", Bytes::from_static(b"x"))
            .await
            .unwrap();
        let n1 = root.clone().within(&node_prefix("n1"));
        n1.put(
            &VideoRecord::key(1),
            record(1).to_stored_json("").to_string().into(),
        )
        .await
        .unwrap();
        let shared = SharedVideos::new(root, "http://lb");

        let live = HashSet::from(["n1"]);
        let down = shared.of_nodes_not(&live).await.unwrap();
        assert_eq!(down.len(), 1);
        let vod = &down[0];
        assert!(vod.store().describe().contains("nodes/n2"));
        let v = vod.video(33).unwrap();
        // Pending stays pending: settling it is its node's own start-up's business.
        assert_eq!((v.status, v.name.as_str()), (VideoStatus::Pending, "v33"));
        assert!(vod.video(1).is_none());
        assert!(n2.head("media/99-00.mp4").await.unwrap().is_some());
        let refused = vod.rename(33, "new".into()).await.unwrap_err();
        assert!(refused.to_string().contains("node n2"), "{refused}");
        assert!(vod.delete(34).await.is_err());
        assert_eq!(vod.video(33).unwrap().name, "v33");
        let stored = n2.get(&VideoRecord::key(34)).await.unwrap();
        assert!(!stored.is_empty());

        // Read again only once stale: a record written meanwhile is not seen yet.
        n2.put(
            &VideoRecord::key(35),
            record(35).to_stored_json("").to_string().into(),
        )
        .await
        .unwrap();
        assert!(shared.of_node("n2").await.unwrap().video(35).is_none());
        // Every node live: no view kept.
        let all = HashSet::from(["n1", "n2"]);
        assert!(shared.of_nodes_not(&all).await.unwrap().is_empty());
        assert!(shared.views.lock().is_empty());
        assert!(shared.of_node("n2").await.unwrap().video(35).is_some());
    }

    #[tokio::test]
    async fn a_store_that_fails_is_an_error_not_an_empty_list() {
        // Nothing listens on port 1: refused at once, no retry.
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("videos")
            .with_endpoint("http://127.0.0.1:1")
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("k")
            .with_secret_access_key("s")
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            });
        let shared = SharedVideos::new(ObjectVodStore::s3(s3).unwrap(), "http://lb");
        let e = shared.of_nodes_not(&HashSet::new()).await.unwrap_err();
        assert!(e.to_string().contains("list nodes"), "{e}");
        assert!(shared.of_node("n2").await.is_err());
        // A failed read is not kept: the next request reads again.
        assert!(shared.nodes.0.lock().await.is_none());
    }
}
