//! Videos: the Video objects of clips persisted with `vod_required` (`ref/api.md`
//! "Videos"), as Gcore's SDK calls them: list (paged), read, rename, delete. Their
//! media is served by the public links; the store is [`crate::vod`]'s.
//!
//! In a cluster whose nodes share a bucket, the videos of a node that is down are
//! listed and read from its records there ([`crate::vod::shared`],
//! [`of_down_node`]); changing one waits for its node (`design/cluster.md`
//! "Videos").

use std::collections::HashSet;
use std::sync::Arc;

use http::HeaderMap;
use serde_json::Value;

use super::page::{PAGE_SIZE, Page};
use super::wire::PatchVideo;
use crate::app::App;
use crate::cluster::forward::Forwarder;
use crate::error::ApiError;
use crate::route::{ApiRoute, Route};
use crate::vod::{StoreError, Vod};

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound(format!("video {id} not found"))
}

/// The store failed: the caller may retry.
fn store_failed(id: u64, e: StoreError) -> ApiError {
    ApiError::Unavailable(format!("video {id}: the VOD store failed: {e}; retry"))
}

/// The bucket the nodes share failed reading the videos of `whose`: the caller
/// may retry.
fn bucket_failed(whose: &str, e: StoreError) -> ApiError {
    ApiError::Unavailable(format!(
        "the videos of {whose} could not be read from the bucket the nodes share: {e}; retry"
    ))
}

/// `GET /streaming/videos`: one page, by id.
///
/// In a cluster each node holds the videos it wrote (`design/cluster.md`
/// "Videos"), so the list is every live node's, merged by id: page `n` asks each
/// other node for its pages 1 to `n` (at once, marked as forwarded so each answers
/// from its own), the ids being unique across nodes. A node that does not answer
/// fails the list (503) rather than shorten it silently. A node that is gone from
/// the cluster (its lease expired) is not asked, and one that hangs while asked is
/// given up once its lease has ended ([`Cluster::node_gone`]): with a bucket the
/// nodes share, their videos are read from their records there (at most every
/// [`crate::vod::shared::FRESH_FOR`]; a failed read is a 503 too), else they are
/// not listed.
///
/// [`Cluster::node_gone`]: crate::cluster::Cluster::node_gone
pub async fn list(app: &App, headers: &HeaderMap, page: Page) -> Result<Value, ApiError> {
    let local = |skip, take| app.vod.videos_json(skip, take);
    let cluster = match &app.cluster {
        Some(c) if !Forwarder::is_forwarded(headers) => c,
        _ => return Ok(Value::Array(local(page.skip(), PAGE_SIZE))),
    };
    let pages = page.skip() / PAGE_SIZE + 1;
    let take = page.skip() + PAGE_SIZE;
    let peers = cluster.peers().await?;
    let answers = futures_util::future::join_all(peers.iter().map(|node| async move {
        let asks = (1..=pages).map(|n| {
            let url = format!(
                "{}/streaming/videos?page={n}",
                node.url.trim_end_matches('/')
            );
            async move { cluster.forward.get_json(&url, headers).await }
        });
        tokio::select! {
            listed = futures_util::future::try_join_all(asks) => listed.map_err(|e| {
                let id = &node.id;
                ApiError::Unavailable(format!("node {id} did not list its videos: {e}; retry"))
            }),
            // A node that hangs while asked: once its lease has ended, listed as a
            // node that is down, not waited on until the read timeout.
            _ = cluster.node_gone(&node.url) => {
                down_node_list(app, &node.id, take).await.map(|v| vec![Value::Array(v)])
            }
        }
    }));
    let live: HashSet<&str> = peers
        .iter()
        .map(|n| n.id.as_str())
        .chain([cluster.node().id.as_str()])
        .collect();
    let down = async {
        match &app.shared_videos {
            Some(shared) => (shared.of_nodes_not(&live).await)
                .map_err(|e| bucket_failed("nodes that are down", e)),
            None => Ok(Vec::new()),
        }
    };
    let (answers, down) = tokio::join!(answers, down);
    let mut all = local(0, take);
    for vod in down? {
        all.extend(vod.videos_json(0, take));
    }
    for listed in answers {
        for page in listed? {
            match page {
                Value::Array(videos) => all.extend(videos),
                _ => {
                    return Err(ApiError::Unavailable(
                        "a node's video list is not a list".into(),
                    ));
                }
            }
        }
    }
    all.sort_by_key(|v| v["id"].as_u64());
    all.dedup_by_key(|v| v["id"].as_u64());
    Ok(Value::Array(
        all.into_iter().skip(page.skip()).take(PAGE_SIZE).collect(),
    ))
}

/// The first `take` videos of node `id`, found gone while its list was asked: from
/// its records in the bucket the nodes share, none without one (as a node that
/// was down when the list began).
async fn down_node_list(app: &App, id: &str, take: usize) -> Result<Vec<Value>, ApiError> {
    match &app.shared_videos {
        Some(shared) => (shared.of_node(id).await)
            .map(|vod| vod.videos_json(0, take))
            .map_err(|e| bucket_failed(&format!("node {id}, which is down,"), e)),
        None => Ok(Vec::new()),
    }
}

/// `GET /streaming/videos/{id}` of the videos `vod` holds.
pub fn get(vod: &Vod, id: u64) -> Result<Value, ApiError> {
    vod.video_json(id).ok_or_else(|| not_found(id))
}

/// The videos of node `node`, which is down, for a call on one of them (steering
/// found its id drawn by that node and the node not live): read from its records in
/// the bucket the nodes share, read-only, for the service to answer a read or a
/// media link from exactly as from this node's own. A rename or a delete is refused
/// (503) until the node is back: only it writes its records, and it reads them into
/// memory at start-up (`design/cluster.md` "Videos").
pub async fn of_down_node(app: &App, node: &str, route: &Route) -> Result<Arc<Vod>, ApiError> {
    if let Route::Api(ApiRoute::PatchVideo(id) | ApiRoute::DeleteVideo(id)) = route {
        return Err(ApiError::Unavailable(format!(
            "node {node} holding video {id} is down; retry when it is back"
        )));
    }
    let shared = app
        .shared_videos
        .as_ref()
        .ok_or_else(|| ApiError::Internal("a down node's video without a shared bucket".into()))?;
    (shared.of_node(node).await)
        .map_err(|e| bucket_failed(&format!("node {node}, which is down,"), e))
}

/// `PATCH /streaming/videos/{id}`: the name (what Gcore's `videos.update` requires);
/// the other fields it sends describe transcoding and are ignored.
pub async fn patch(app: &App, id: u64, body: &[u8]) -> Result<Value, ApiError> {
    let req = PatchVideo::parse(body)?;
    match app.vod.rename(id, req.name).await {
        Ok(Some(_)) => get(&app.vod, id),
        Ok(None) => Err(not_found(id)),
        Err(e) => Err(store_failed(id, e)),
    }
}

/// `DELETE /streaming/videos/{id}`: record and media leave the store; a write in
/// progress is cancelled; 404 after.
pub async fn delete(app: &App, id: u64) -> Result<(), ApiError> {
    match app.vod.delete(id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_found(id)),
        Err(e) => Err(store_failed(id, e)),
    }
}
