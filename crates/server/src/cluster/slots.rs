//! The owner's one-publisher slot held for publishes another node forwards
//! (`design/cluster.md` "RTMP and SRT in a cluster"): a push door's publish landing
//! on a non-owner is fragmented there and PUT to the owner with a publish id
//! ([`PUBLISH`]); the owner takes the stream's slot in the doors' [`Publishers`] for
//! that id at its first upload, so a second encoder on the same key is refused
//! wherever it lands (409 to a forwarded upload, which closes that publish; the
//! door's usual refusal to a local one), as on one node.
//!
//! The slot is released by the forwarding node's end of the publish (a DELETE with
//! the id); when the forwarding node (named by its uploads' `X-Dvrclip-Forwarded-By`)
//! is no longer a member, its lease ended (it died, or was cut off: the owner's
//! lease loop looks while it holds slots, and a publisher refused for the slot
//! looks at once, `Cluster::hold_slot`); when no upload of it arrived for [`IDLE`]
//! (its node stuck while still a member); or when this node's claims go (lease
//! lost, leaving).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use dvrclip_engine::StreamId;
use dvrclip_ingest::publishers::{Lease, Publishers};
use parking_lot::Mutex;

use crate::error::ApiError;

/// On a forwarded upload: the id of the publish it belongs to.
pub const PUBLISH: &str = "x-dvrclip-publish";

/// A forwarded publish whose uploads stop for this long loses the slot (its node
/// stuck before it could end the publish, yet still a member): well above a
/// fragment's length (a GOP, seconds) and the forwarder's retries.
pub const IDLE: Duration = Duration::from_secs(15);

struct Held {
    publish: String,
    /// The node forwarding it.
    node: String,
    _lease: Lease,
    seen: Instant,
}

/// The slots this node holds for forwarded publishes, by stream.
#[derive(Default)]
pub struct ForwardedSlots {
    held: Mutex<HashMap<StreamId, Held>>,
    /// Forwarded uploads refused because another publisher held the slot.
    pub refused: AtomicU64,
    /// Slots freed without their publish's end: its node left the cluster or it
    /// went silent.
    pub freed: AtomicU64,
}

impl std::fmt::Debug for ForwardedSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardedSlots")
            .field("held", &self.held.lock().len())
            .finish_non_exhaustive()
    }
}

impl ForwardedSlots {
    /// `stream`'s slot for `publish`, forwarded by `node`: taken at its first
    /// upload, kept by each one after; refused (409) while another publisher holds
    /// it.
    pub fn hold(
        &self,
        publishers: &Arc<Publishers>,
        stream: StreamId,
        publish: &str,
        node: &str,
    ) -> Result<(), ApiError> {
        let mut held = self.held.lock();
        if let Some(h) = held.get_mut(&stream) {
            if h.publish == publish {
                h.seen = Instant::now();
                return Ok(());
            }
            if h.seen.elapsed() < IDLE {
                return Err(self.refuse(stream));
            }
            self.freed.fetch_add(1, Relaxed);
            held.remove(&stream);
        }
        let Some(lease) = publishers.claim(stream) else {
            return Err(self.refuse(stream));
        };
        tracing::info!(
            stream = stream.0,
            publish,
            node,
            "forwarded publish holds the slot"
        );
        held.insert(
            stream,
            Held {
                publish: publish.to_owned(),
                node: node.to_owned(),
                _lease: lease,
                seen: Instant::now(),
            },
        );
        Ok(())
    }

    fn refuse(&self, stream: StreamId) -> ApiError {
        self.refused.fetch_add(1, Relaxed);
        ApiError::Conflict(format!("stream {stream} already has a publisher"))
    }

    /// `publish` ended: its slot, if it holds it, is free.
    pub fn end(&self, stream: StreamId, publish: &str) {
        let mut held = self.held.lock();
        if held.get(&stream).is_some_and(|h| h.publish == publish) {
            held.remove(&stream);
            tracing::info!(stream = stream.0, publish, "forwarded publish ended");
        }
    }

    /// Frees the slots of forwarded publishes silent for [`IDLE`].
    pub fn sweep(&self) {
        self.held.lock().retain(|stream, h| {
            let alive = h.seen.elapsed() < IDLE;
            if !alive {
                self.freed.fetch_add(1, Relaxed);
                tracing::warn!(stream = stream.0, publish = %h.publish, "forwarded publish went silent: slot freed");
            }
            alive
        });
    }

    /// The nodes forwarding the publishes that hold slots.
    pub fn nodes(&self) -> HashSet<String> {
        self.held.lock().values().map(|h| h.node.clone()).collect()
    }

    /// The node forwarding the publish that holds `stream`'s slot, unless it is
    /// `publish` itself.
    pub fn holder_other_than(&self, stream: StreamId, publish: &str) -> Option<String> {
        let held = self.held.lock();
        let h = held.get(&stream)?;
        (h.publish != publish).then(|| h.node.clone())
    }

    /// Frees the slots of publishes forwarded by a node not in `members` (its lease
    /// ended: it cannot end them).
    pub fn free_unless_member(&self, members: &HashSet<String>) {
        self.held.lock().retain(|stream, h| {
            let member = members.contains(&h.node);
            if !member {
                self.freed.fetch_add(1, Relaxed);
                tracing::warn!(
                    stream = stream.0, publish = %h.publish, node = %h.node,
                    "the node forwarding a publish left the cluster: slot freed"
                );
            }
            member
        });
    }

    /// Frees every slot (this node's claims are gone).
    pub fn clear(&self) {
        self.held.lock().clear();
    }

    /// Slots held now.
    pub fn held(&self) -> usize {
        self.held.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_forwarded_publisher_per_stream_until_it_ends() {
        let publishers = Arc::new(Publishers::default());
        let slots = ForwardedSlots::default();
        let s = StreamId(3);
        slots.hold(&publishers, s, "a", "n2").unwrap();
        slots.hold(&publishers, s, "a", "n2").unwrap();
        assert!(publishers.claim(s).is_none(), "a local door is refused");
        assert!(matches!(
            slots.hold(&publishers, s, "b", "n3"),
            Err(ApiError::Conflict(_))
        ));
        slots.end(s, "b");
        assert_eq!(slots.held(), 1);
        slots.end(s, "a");
        let local = publishers.claim(s).unwrap();
        assert!(slots.hold(&publishers, s, "b", "n3").is_err());
        drop(local);
        slots.hold(&publishers, s, "b", "n3").unwrap();
        assert_eq!(slots.refused.load(Relaxed), 2);
    }

    /// A slot whose forwarding node is no longer a member is freed, and only that.
    #[test]
    fn a_slot_goes_with_its_forwarding_node() {
        let publishers = Arc::new(Publishers::default());
        let slots = ForwardedSlots::default();
        slots.hold(&publishers, StreamId(1), "a", "n2").unwrap();
        slots.hold(&publishers, StreamId(2), "b", "n3").unwrap();
        assert_eq!(
            slots.holder_other_than(StreamId(1), "c").as_deref(),
            Some("n2")
        );
        assert_eq!(slots.holder_other_than(StreamId(1), "a"), None);
        assert_eq!(slots.nodes(), HashSet::from(["n2".into(), "n3".into()]));
        slots.free_unless_member(&HashSet::from(["n1".into(), "n3".into()]));
        assert_eq!(slots.held(), 1);
        assert_eq!(slots.freed.load(Relaxed), 1);
        slots.hold(&publishers, StreamId(1), "c", "n3").unwrap();
        assert!(slots.hold(&publishers, StreamId(2), "d", "n1").is_err());
    }
}
