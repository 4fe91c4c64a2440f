//! Pulled streams outlive the node pulling them, in a cluster (`design/cluster.md`
//! "Who owns what"): a `pull: true` stream has no encoder whose next upload would
//! claim it on a live node, so each node scans the stream records every
//! [`SCAN_EVERY`] and claims pulled streams nobody owns (the one that wins the
//! claim starts the pull; the others see an owner). The same scan keeps this node's
//! pulls in line with its claims: a stream it owns is pulled, one it no longer owns
//! (its lease was lost and another node claimed) is not.
//!
//! Bounded: one range of the records and one of the owners per scan, and at most
//! [`CLAIMS_PER_SCAN`] claims (an etcd transaction and a record read each), so a
//! node taking over a dead node's pulls spreads them over scans and the others get
//! their share.

use std::sync::{Arc, Weak};
use std::time::Duration;

use dvrclip_engine::StreamId;

use crate::app::App;
use crate::cluster::{Cluster, Place};

/// How often a node looks for pulled streams nobody pulls.
pub const SCAN_EVERY: Duration = Duration::from_secs(2);

/// Most pulled streams one node claims per scan.
pub const CLAIMS_PER_SCAN: usize = 8;

/// Scans until the application is dropped; nothing without a cluster.
pub async fn run(app: Weak<App>) {
    let mut every = tokio::time::interval(SCAN_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(app) = app.upgrade() else { return };
        let Some(cluster) = app.cluster.clone() else {
            return;
        };
        scan(&app, &cluster).await;
    }
}

/// One scan: pulls of streams no longer owned stopped, pulled streams nobody owns
/// claimed (a few), every owned pulled stream pulled.
async fn scan(app: &Arc<App>, cluster: &Cluster) {
    for id in app.pullers.running() {
        if !cluster.owns(id) {
            tracing::info!(stream = %id, "pull: stopped, this node no longer owns the stream");
            app.pullers.stop(id);
        }
    }
    let (records, owned) = match tokio::join!(cluster.records.list(), cluster.owned_streams()) {
        (Ok(r), Ok(o)) => (r, o),
        (Err(e), _) => return tracing::debug!(error = %e, "pull takeover: records"),
        (_, Err(e)) => return tracing::debug!(error = %e, "pull takeover: owners"),
    };
    let mut claims = 0;
    for r in records
        .iter()
        .filter(|r| r.pull && r.active && r.uri.is_some())
    {
        let id = StreamId(r.id);
        if !cluster.owns(id) {
            if owned.contains(&id) || claims == CLAIMS_PER_SCAN {
                continue;
            }
            claims += 1;
            match cluster.place(&app.engine, id, true).await {
                Ok(Place::Here) => {
                    cluster.record_pull_takeover();
                    tracing::info!(stream = %id, "pull: taken over (its owner is gone)");
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(stream = %id, error = %e, "pull takeover");
                    continue;
                }
            }
        }
        if let Ok(info) = app.engine.stream(id) {
            app.pullers.sync(&app.engine, &info);
        }
    }
}
