//! Videos: the Video objects of clips persisted with `vod_required` (`ref/api.md`
//! "Videos"), as Gcore's SDK calls them: list (paged), read, rename, delete. Their
//! media is served by the public links; the store is [`crate::vod`]'s.

use http::HeaderMap;
use serde_json::Value;

use super::page::{PAGE_SIZE, Page};
use super::wire::PatchVideo;
use crate::app::App;
use crate::cluster::forward::Forwarder;
use crate::error::ApiError;
use crate::vod::StoreError;

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound(format!("video {id} not found"))
}

/// The store failed: the caller may retry.
fn store_failed(id: u64, e: StoreError) -> ApiError {
    ApiError::Unavailable(format!("video {id}: the VOD store failed: {e}; retry"))
}

/// `GET /streaming/videos`: one page, by id.
///
/// In a cluster each node holds the videos it wrote (`design/cluster.md`
/// "Videos"), so the list is every live node's, merged by id: page `n` asks each
/// other node for its pages 1 to `n` (at once, marked as forwarded so each answers
/// from its own), the ids being unique across nodes. A node that does not answer
/// fails the list (503) rather than shorten it silently; a node that is gone from
/// the cluster (its lease expired) is not asked, and its videos are not listed.
pub async fn list(app: &App, headers: &HeaderMap, page: Page) -> Result<Value, ApiError> {
    let local = |skip, take| app.vod.videos_json(skip, take);
    let cluster = match &app.cluster {
        Some(c) if !Forwarder::is_forwarded(headers) => c,
        _ => return Ok(Value::Array(local(page.skip(), PAGE_SIZE))),
    };
    let pages = page.skip() / PAGE_SIZE + 1;
    let asks = cluster.peers().await?.into_iter().flat_map(|node| {
        (1..=pages).map(move |n| {
            let url = format!(
                "{}/streaming/videos?page={n}",
                node.url.trim_end_matches('/')
            );
            (node.id.clone(), url)
        })
    });
    let answers = futures_util::future::join_all(asks.map(|(node, url)| async move {
        let answer = cluster.forward.get_json(&url, headers).await;
        answer.map_err(|e| {
            ApiError::Unavailable(format!("node {node} did not list its videos: {e}; retry"))
        })
    }))
    .await;
    let mut all = local(0, page.skip() + PAGE_SIZE);
    for answer in answers {
        match answer? {
            Value::Array(videos) => all.extend(videos),
            _ => {
                return Err(ApiError::Unavailable(
                    "a node's video list is not a list".into(),
                ));
            }
        }
    }
    all.sort_by_key(|v| v["id"].as_u64());
    all.dedup_by_key(|v| v["id"].as_u64());
    Ok(Value::Array(
        all.into_iter().skip(page.skip()).take(PAGE_SIZE).collect(),
    ))
}

/// `GET /streaming/videos/{id}`.
pub fn get(app: &App, id: u64) -> Result<Value, ApiError> {
    app.vod.video_json(id).ok_or_else(|| not_found(id))
}

/// `PATCH /streaming/videos/{id}`: the name (what Gcore's `videos.update` requires);
/// the other fields it sends describe transcoding and are ignored.
pub async fn patch(app: &App, id: u64, body: &[u8]) -> Result<Value, ApiError> {
    let req = PatchVideo::parse(body)?;
    match app.vod.rename(id, req.name).await {
        Ok(Some(_)) => get(app, id),
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
