//! Which node answers a request, in a cluster (`design/cluster.md` "Where a request
//! goes"): the service asks [`steer`] before a room sees the request, and either
//! lets it through (this node owns what the request needs, or it needs no DVR) or
//! hands it whole to [`crate::cluster::forward`] for the owner.
//!
//! Per route:
//! - ingest (`/ingest/{key}/…`): the key's stream, claimed when nobody owns it;
//! - API calls needing the DVR (DVR view and cleanup, clips) and PATCH/DELETE of a
//!   stream: its owner (a clip this node holds is read here); nobody owning it,
//!   they are answered here;
//! - list, create and read of streams: here, from the records;
//! - a video (API call or media): here when this node's VOD holds it, else the node
//!   that drew its id (`Cluster::video_node`); that node down, here from its
//!   records in the bucket the nodes share, if they share one (else a 404 here);
//!   the list of videos: here;
//! - clip links: here when this node holds the clip (it may have cut it under an
//!   earlier ownership), else the stream's owner; nobody owning it, 404 (the seam
//!   where an archive of complete clips slots in);
//! - live playlists and their media: the play key's stream's owner;
//! - everything else (health, metrics, console): here.
//!
//! A request another node forwarded is always answered here ([`Forwarder::is_forwarded`]),
//! so ownership moving mid-request never bounces it between nodes; an upload among
//! them is taken only if this node still holds its claim (503 otherwise, and the
//! encoder's retry finds the new owner).

use http::request::Parts;

use crate::app::App;
use crate::cluster::forward::Forwarder;
use crate::cluster::{Cluster, Place, VideoNode};
use crate::error::ApiError;
use crate::route::{ApiRoute, PublicRoute, Route};
use dvrclip_engine::StreamId;

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Steer {
    /// Answer it here.
    Here,
    /// Forward it to the node at this URL: the owner of this stream, or (no stream)
    /// the node that holds a video.
    Forward(String, Option<StreamId>),
    /// A video of this node id, which is down: answer here from its records in the
    /// bucket the nodes share (the service's `down_video`).
    Down(String),
}

/// The video a route reads or changes: a video's API call or its media.
fn video_of(route: &Route) -> Option<u64> {
    match route {
        Route::Api(ApiRoute::GetVideo(v) | ApiRoute::PatchVideo(v) | ApiRoute::DeleteVideo(v))
        | Route::Public(PublicRoute::Vod(v, _)) => Some(*v),
        _ => None,
    }
}

/// Where `route` is answered. Errors are answers (503 when etcd is needed and away).
pub async fn steer(
    app: &App,
    cluster: &Cluster,
    route: &Route,
    parts: &Parts,
) -> Result<Steer, ApiError> {
    if Forwarder::is_forwarded(&parts.headers) {
        if let Route::Ingest(r) = route {
            forwarded_upload(app, cluster, &r.key).await?;
        }
        return Ok(Steer::Here);
    }
    if let Some(video) = video_of(route) {
        if app.vod.video(video).is_some() {
            return Ok(Steer::Here);
        }
        if matches!(route, Route::Api(_)) {
            app.auth.authorize(&parts.headers)?;
        }
        // Another node's video (its id from that node's block), else a 404 here.
        return Ok(match cluster.video_node(video).await? {
            VideoNode::Live(url) => Steer::Forward(url, None),
            // Its records are in the bucket the nodes share; without one, a 404
            // here until the node is back.
            VideoNode::Down(node) if app.shared_videos.is_some() => Steer::Down(node),
            VideoNode::Down(_) | VideoNode::Nobody => Steer::Here,
        });
    }
    let (stream, claim) = match route {
        Route::Ingest(r) => {
            let id = match app.engine.stream_by_ingest_key(&r.key) {
                Some(id) => Some(id),
                None => cluster.records.by_ingest_key(&r.key).await?,
            };
            (id, true)
        }
        Route::Api(r) => {
            // A clip this node cut (under an earlier ownership) is read here, as
            // its links are.
            if let ApiRoute::GetClip(_, clip) = r
                && app.engine.clip(*clip).is_ok()
            {
                return Ok(Steer::Here);
            }
            let id = match r {
                ApiRoute::PatchStream(id)
                | ApiRoute::DeleteStream(id)
                | ApiRoute::DvrCleanup(id)
                | ApiRoute::DvrView(id)
                | ApiRoute::CreateClip(id)
                | ApiRoute::ListClips(id)
                | ApiRoute::GetClip(id, _)
                | ApiRoute::DeleteClip(id, _) => *id,
                _ => return Ok(Steer::Here),
            };
            // Nothing is forwarded for a caller the owner would refuse.
            app.auth.authorize(&parts.headers)?;
            (Some(id), false)
        }
        Route::Public(PublicRoute::ClipLink { stream, clip, .. })
        | Route::Public(PublicRoute::ClipMedia { stream, clip, .. }) => {
            if app.engine.clip(*clip).is_ok() {
                return Ok(Steer::Here);
            }
            (Some(*stream), false)
        }
        Route::Public(PublicRoute::LivePlaylist { key, .. })
        | Route::Public(PublicRoute::LiveMedia { key, .. }) => {
            let id = match app.engine.stream_by_play_key(key) {
                Some(id) => Some(id),
                None => cluster.records.by_play_key(key).await?,
            };
            (id, false)
        }
        _ => return Ok(Steer::Here),
    };
    // An unknown key: the room refuses it as it would on one node.
    let Some(stream) = stream else {
        return Ok(Steer::Here);
    };
    Ok(match cluster.place(&app.engine, stream, claim).await? {
        Place::At(url) => Steer::Forward(url, Some(stream)),
        // Nobody owning it: answered here from what this node holds (a clip link of
        // a stream whose owner is gone is a 404 until the archive serves it).
        Place::Here | Place::Nobody => Steer::Here,
    })
}

/// Lets an upload another node forwarded through only under this node's own claim:
/// a node that lost the stream since the sender looked (or a client sending the
/// header itself) must not feed a DVR that another node now owns.
///
/// The stream may not be in the engine yet: the sender saw this node's claim in
/// etcd, and the upload can arrive while the request that claimed is still taking
/// the stream in from its record. So an unknown key is looked up in the records,
/// and a stream etcd says this node owns is taken in here as well (`Cluster::place`
/// does both, idempotently) rather than refused as unknown.
async fn forwarded_upload(app: &App, cluster: &Cluster, key: &str) -> Result<(), ApiError> {
    let id = match app.engine.stream_by_ingest_key(key) {
        Some(id) => id,
        None => match cluster.records.by_ingest_key(key).await? {
            Some(id) => id,
            // Unknown everywhere: the room refuses it as on one node.
            None => return Ok(()),
        },
    };
    if cluster.owns(id) {
        return Ok(());
    }
    match cluster.place(&app.engine, id, false).await? {
        Place::Here => Ok(()),
        Place::At(_) | Place::Nobody => Err(ApiError::Unavailable(format!(
            "node {} does not own stream {id} (ownership is moving); retry",
            cluster.node().id
        ))),
    }
}
