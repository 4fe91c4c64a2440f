//! The sink a push door (RTMP, SRT) sends a publish's fragments into when another node
//! owns the stream (`design/cluster.md` "Where a request goes"): each init and
//! fragment becomes an HTTP PUT ingest upload to the owner (`init.mp4`,
//! `seg_{n}.m4s` under the door's rendition), marked with the loop header so the
//! owner takes it only while it holds the claim. A break the door asks for (an
//! epoch whose init is unchanged: an encoder reconnecting) travels as the
//! [`DISCONTINUITY`] header on the next fragment, which the owner's ingest honours
//! on a forwarded upload.
//!
//! Every upload carries the publish's id ([`PUBLISH`]), so the owner holds the
//! stream's one publisher slot for it ([`super::slots`]) and refuses a second
//! publisher wherever it lands; when the publish ends (the sink dropped, its queue
//! drained) a DELETE with the id frees the slot.
//!
//! Bounded: the door hands fragments over without waiting ([`FragmentSink`] never
//! blocks) into a queue of [`QUEUE`] uploads, sent in order by one task per
//! publish, each counted in the engine's memory budget until sent
//! ([`Engine::try_reserve_memory`]). An owner that refuses an upload or answers too
//! slowly for the queue, or a fragment the budget has no room for, closes the
//! publish (a warning and `dvrclip_cluster_door_forward_failures_total`, and
//! `…_over_budget_total` for the budget); the encoder's reconnect is placed again.
//! The door learns it at its next media message ([`FragmentSink::closed`]), not
//! at its next fragment.
//!
//! A hung owner (stopped, a frozen VM: its kernel still takes the upload's bytes,
//! nothing answers) is given up as a forwarded request is: each upload races the
//! owner's membership ([`Cluster::node_gone`], the one poll of the live nodes per
//! owner that `forward` uses too, running only while an upload waits), and once
//! the owner's lease has ended and it then stays silent for
//! [`super::forward::SILENT_AFTER_GONE`] the publish is closed, counted in
//! `dvrclip_cluster_forwards_abandoned_total` as well as in the door's failures.
//! Without the race it was closed only when the queue filled behind the upload
//! it hung on (four fragments later, ~10 s), with the read timeout at 30 s.
//!
//! What is on its way then (the upload the owner hung on and those queued behind
//! it, at most [`QUEUE`] + 1 fragments) is dropped, not sent anywhere else, and
//! its memory given back at once:
//! - nobody can take it: the stream has no owner until a node claims it, and this
//!   sink holds no claim; claiming here would switch a publish already under way to
//!   another sink mid-epoch, which the encoder's reconnect does through the
//!   ordinary path (a claim, the shipped DVR restored, a break, a new init);
//! - whether the hung owner took the upload in flight is unknown (its kernel may
//!   hold it whole until the node resumes), so sending it again could put the same
//!   fragment into two DVRs;
//! - what is lost is the media between the hang and the encoder's reconnect, as
//!   when the owner is killed; the next owner's DVR continues from what the hung one
//!   shipped before it stopped.
//!
//! Nor is the publish's end sent to a hung owner: its publisher slots went with
//! its claims at its lease's end, and the task ends at once rather than wait on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use bytes::Bytes;
use dvrclip_engine::{Engine, MemoryReservation, StreamId};
use dvrclip_ingest::door::{FragmentSink, SinkError};
use http::header::{HeaderMap, HeaderValue};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::Cluster;
use super::forward::PutError;
use super::slots::PUBLISH;

/// On a forwarded segment upload: open a discontinuity before it.
pub const DISCONTINUITY: &str = "x-dvrclip-discontinuity";

/// Uploads a publish may have queued for its owner; past it the publish is closed.
pub const QUEUE: usize = 4;

/// What the door sinks of this node sent, for `/metrics`.
#[derive(Debug, Default)]
pub struct PushCounters {
    /// Uploads (inits and fragments) the owner took.
    pub uploads: AtomicU64,
    /// Bytes of them.
    pub bytes: AtomicU64,
    /// Microseconds spent sending them, from the PUT's start to its answer.
    pub micros: AtomicU64,
    /// Publishes closed because the owner refused, fell behind or hung, or the memory
    /// budget had no room.
    pub failures: AtomicU64,
    /// Of those, publishes closed because the memory budget had no room for a
    /// fragment on its way.
    pub over_budget: AtomicU64,
}

struct Upload {
    url: String,
    bytes: Bytes,
    discontinuity: bool,
    /// The upload's bytes in the memory budget until it is sent.
    _memory: MemoryReservation,
}

/// One publish's fragments on their way to the stream's owner.
#[derive(Debug)]
pub struct OwnerSink {
    engine: Arc<Engine>,
    base: String,
    tx: mpsc::Sender<Upload>,
    /// Why the sender task gave up, once it has.
    failed: Arc<Mutex<Option<String>>>,
    next_segment: AtomicU64,
    pending_break: AtomicBool,
    counters: Arc<PushCounters>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upload({}, {} bytes)", self.url, self.bytes.len())
    }
}

impl OwnerSink {
    /// A sink for the publish of `key` into the owner at `owner_url`, its fragments
    /// counted in `engine`'s memory budget while queued; its sender task runs
    /// until the sink is dropped and the queue drained (then the publish's end is
    /// sent), or the owner refuses, fails or is given up as hung. An error when no
    /// publish id can be drawn.
    pub fn start(
        cluster: &Arc<Cluster>,
        engine: Arc<Engine>,
        owner_url: &str,
        key: &str,
    ) -> Result<OwnerSink, String> {
        let publish = dvrclip_engine::secret::random_hex::<8>().map_err(|e| e.to_string())?;
        let publish = HeaderValue::from_str(&publish).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel::<Upload>(QUEUE);
        let failed: Arc<Mutex<Option<String>>> = Arc::default();
        let counters = Arc::clone(&cluster.push);
        tokio::spawn(send_all(
            Arc::clone(cluster),
            owner_url.trim_end_matches('/').to_owned(),
            publish,
            rx,
            Arc::clone(&failed),
        ));
        Ok(OwnerSink {
            engine,
            base: format!("{}/ingest/{key}", owner_url.trim_end_matches('/')),
            tx,
            failed,
            next_segment: AtomicU64::new(0),
            pending_break: AtomicBool::new(false),
            counters,
        })
    }

    fn send(
        &self,
        rendition: &str,
        file: &str,
        bytes: Bytes,
        discontinuity: bool,
    ) -> Result<(), SinkError> {
        if let Some(reason) = self.failed.lock().clone() {
            return Err(SinkError::Elsewhere(reason));
        }
        let memory = match self.engine.try_reserve_memory(bytes.len() as u64) {
            Ok(m) => m,
            Err(e) => {
                let reason = format!("no room for a fragment on its way to the owner: {e}");
                tracing::warn!(%reason, "forwarded publish closed");
                self.counters.over_budget.fetch_add(1, Relaxed);
                self.counters.failures.fetch_add(1, Relaxed);
                *self.failed.lock() = Some(reason.clone());
                return Err(SinkError::Elsewhere(reason));
            }
        };
        let url = format!("{}/{rendition}/{file}", self.base);
        let upload = Upload {
            url,
            bytes,
            discontinuity,
            _memory: memory,
        };
        match self.tx.try_send(upload) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                let reason = format!("the owner falls behind: {QUEUE} uploads queued");
                tracing::warn!(%reason, "forwarded publish closed");
                self.counters.failures.fetch_add(1, Relaxed);
                Err(SinkError::Elsewhere(reason))
            }
            Err(TrySendError::Closed(_)) => Err(SinkError::Elsewhere(
                self.failed
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "the sender stopped".into()),
            )),
        }
    }
}

/// The sender task of one forwarded publish: sends `rx`'s uploads in order to the
/// owner at `owner` until the sink is dropped (then the publish's end), or one
/// fails (its reason in `failed`: the door closes the publish at its next media
/// message). Each upload is raced against the owner's membership
/// ([`Cluster::node_gone`]): a hung owner is given up at its lease's end plus
/// [`super::forward::SILENT_AFTER_GONE`], and the uploads queued behind it are
/// dropped (the module doc says why).
async fn send_all(
    cluster: Arc<Cluster>,
    owner: String,
    publish: HeaderValue,
    mut rx: mpsc::Receiver<Upload>,
    failed: Arc<Mutex<Option<String>>>,
) {
    let counters = &cluster.push;
    let mut last_url = None;
    let mut owner_gone = false;
    while let Some(u) = rx.recv().await {
        let started = Instant::now();
        let len = u.bytes.len() as u64;
        let mut headers = HeaderMap::new();
        headers.insert(PUBLISH, publish.clone());
        if u.discontinuity {
            headers.insert(DISCONTINUITY, HeaderValue::from_static("1"));
        }
        let gone = cluster.node_gone(&owner);
        let reason = match cluster.forward.put(&u.url, headers, u.bytes, gone).await {
            Ok(status) if status.is_success() => {
                counters.uploads.fetch_add(1, Relaxed);
                counters.bytes.fetch_add(len, Relaxed);
                let us = started.elapsed().as_micros() as u64;
                counters.micros.fetch_add(us, Relaxed);
                last_url = Some(u.url);
                continue;
            }
            Ok(status) => format!("the owner answered {status} to {}", u.url),
            Err(PutError::NodeGone(why)) => {
                owner_gone = true;
                cluster.record_forward_abandoned();
                format!("sending {} to the owner: {why}", u.url)
            }
            Err(e @ PutError::Failed(_)) => format!("sending {} to the owner: {e}", u.url),
        };
        tracing::warn!(%reason, "forwarded publish closed");
        counters.failures.fetch_add(1, Relaxed);
        *failed.lock() = Some(reason);
        break;
    }
    // What is still queued is dropped now (its memory given back), and the door's
    // next fragment finds the queue closed.
    drop(rx);
    // The publish is over: the owner frees its publisher slot. Not asked of an
    // owner given up as hung: its claims, and the slots with them, went with its
    // lease.
    if let (Some(url), false) = (last_url, owner_gone) {
        let mut headers = HeaderMap::new();
        headers.insert(PUBLISH, publish);
        let gone = cluster.node_gone(&owner);
        if let Err(e) = cluster.forward.delete(&url, headers, gone).await {
            tracing::debug!(error = %e, "ending a forwarded publish");
        }
    }
}

impl FragmentSink for OwnerSink {
    fn push_init(&self, _: StreamId, rendition: &str, init: Bytes) -> Result<(), SinkError> {
        self.send(rendition, "init.mp4", init, false)
    }

    /// Carried by the next fragment's upload ([`DISCONTINUITY`]).
    fn break_discontinuity(&self, _: StreamId, _: &str) -> Result<(), SinkError> {
        self.pending_break.store(true, Relaxed);
        Ok(())
    }

    fn push_segment(&self, _: StreamId, rendition: &str, fragment: Bytes) -> Result<(), SinkError> {
        let n = self.next_segment.fetch_add(1, Relaxed);
        let discontinuity = self.pending_break.swap(false, Relaxed);
        self.send(rendition, &format!("seg_{n}.m4s"), fragment, discontinuity)
    }

    /// The sender task gave up (the owner refused, failed or hung): the publish is
    /// closed at once, not at its next fragment.
    fn closed(&self) -> Result<(), SinkError> {
        match self.failed.lock().clone() {
            Some(reason) => Err(SinkError::Elsewhere(reason)),
            None => Ok(()),
        }
    }
}
