//! Where a push door's (RTMP, SRT) publish goes, in a cluster (`design/cluster.md`
//! "Where a request goes"): the door's [`PublishRouter`], so the ingest crate knows
//! nothing of etcd or forwarding. A key is resolved in the engine, else in the
//! stream records; the stream is placed as an HTTP upload is (`Cluster::place`,
//! claiming it when nobody owns it): owned here, the publish goes into the engine
//! (the stream taken in from its record by the claim); owned elsewhere, the door
//! still ends the protocol and runs the fragmenter, and its fragments go to the
//! owner through an `OwnerSink`.

use std::sync::Arc;

use dvrclip_engine::Engine;
use dvrclip_ingest::door::{Destination, PublishRouter, RouteFuture, RouteRefusal};

use crate::cluster::push::OwnerSink;
use crate::cluster::{Cluster, Place};

/// The cluster's router for the push doors.
#[derive(Debug)]
pub struct ClusterRouter {
    engine: Arc<Engine>,
    cluster: Arc<Cluster>,
}

impl ClusterRouter {
    /// A router placing publishes of `engine`'s node in `cluster`.
    pub fn new(engine: Arc<Engine>, cluster: Arc<Cluster>) -> Arc<ClusterRouter> {
        Arc::new(ClusterRouter { engine, cluster })
    }

    async fn decide(&self, key: &str) -> Result<Destination, RouteRefusal> {
        let unavailable = |e: &dyn std::fmt::Display| RouteRefusal::Unavailable(e.to_string());
        let stream = match self.engine.stream_by_ingest_key(key) {
            Some(id) => id,
            None => self
                .cluster
                .records
                .by_ingest_key(key)
                .await
                .map_err(|e| unavailable(&e))?
                .ok_or(RouteRefusal::UnknownKey)?,
        };
        let place = self
            .cluster
            .place(&self.engine, stream, true)
            .await
            .map_err(|e| unavailable(&e))?;
        match place {
            // The door checks the engine's active flag.
            Place::Here => Ok(Destination::Local(stream)),
            Place::At(url) => {
                let record = self
                    .cluster
                    .records
                    .get(stream.0)
                    .await
                    .map_err(|e| unavailable(&e))?
                    .ok_or(RouteRefusal::UnknownKey)?;
                if !record.settings().active {
                    return Err(RouteRefusal::Inactive(stream));
                }
                tracing::info!(stream = stream.0, owner = %url, "publish forwarded to the owner");
                let sink = OwnerSink::start(&self.cluster, Arc::clone(&self.engine), &url, key)
                    .map_err(|e| unavailable(&e))?;
                Ok(Destination::Sink(stream, Arc::new(sink)))
            }
            Place::Nobody => Err(RouteRefusal::Unavailable(format!(
                "stream {stream} could not be claimed"
            ))),
        }
    }
}

impl PublishRouter for ClusterRouter {
    fn route<'a>(&'a self, key: &'a str) -> RouteFuture<'a> {
        Box::pin(self.decide(key))
    }
}
