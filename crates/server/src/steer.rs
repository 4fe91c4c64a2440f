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
//! - list, create and read of streams, videos: here, from the records;
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
use crate::cluster::{Cluster, Place};
use crate::error::ApiError;
use crate::route::{ApiRoute, PublicRoute, Route};
use dvrclip_engine::StreamId;

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Steer {
    /// Answer it here.
    Here,
    /// Forward it to the node at this URL, owner of this stream.
    Forward(String, StreamId),
}

/// Where `route` is answered. Errors are answers (503 when etcd is needed and away).
pub async fn steer(
    app: &App,
    cluster: &Cluster,
    route: &Route,
    parts: &Parts,
) -> Result<Steer, ApiError> {
    if Forwarder::is_forwarded(&parts.headers) {
        // Media is taken only under a claim: a node that lost the stream since the
        // sender looked (or a client sending the header itself) must not feed a
        // DVR that another node now owns.
        // Etcd may say this node owns it while its claim is still being taken in
        // (the stream restored from its shipped DVR): `place` waits for that
        // rather than let the upload find no stream here.
        if let Route::Ingest(r) = route {
            let id = match app.engine.stream_by_ingest_key(&r.key) {
                Some(id) => Some(id),
                None => cluster.records.by_ingest_key(&r.key).await?,
            };
            if let Some(id) = id
                && !cluster.owns(id)
                && cluster.place(&app.engine, id, false).await? != Place::Here
            {
                return Err(ApiError::Unavailable(format!(
                    "node {} does not own stream {id} (ownership is moving); retry",
                    cluster.node().id
                )));
            }
        }
        return Ok(Steer::Here);
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
        Place::At(url) => Steer::Forward(url, stream),
        // Nobody owning it: answered here from what this node holds (a clip link of
        // a stream whose owner is gone is a 404 until the archive serves it).
        Place::Here | Place::Nobody => Steer::Here,
    })
}
