//! Whether the node a forward waits on is still a member (`design/cluster.md`
//! "Failures and what they cost": an owner that hangs): a node stopped (SIGSTOP, a
//! frozen VM) still accepts connections in its kernel, so a forward to it waits
//! for an answer that may never come. Its lease ends at the TTL, and with it its
//! node record and its ownership keys; from then on the request is better placed
//! again (the stream is claimable) than kept waiting for the forwarder's read
//! timeout.
//!
//! Owns the table of nodes some forward waits on, by advertised URL. The first
//! forward to a URL starts one poll of the live nodes (one etcd range every
//! [`poll_every`]), shared by every forward to that URL while any waits, stopped
//! when none does; it says "gone" once no live node is reached at the URL. etcd
//! away says nothing (a forward is never given up on because etcd is).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::Cluster;

/// A poll's verdict: `Some(reason)` once the node is gone.
type Verdict = Option<String>;

/// How often the live nodes are read while a forward waits on one: at most once a
/// second, and at least twice a TTL.
pub fn poll_every(ttl: Duration) -> Duration {
    (ttl / 2).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// The nodes some forward waits on.
#[derive(Default)]
pub struct Liveness {
    watched: Mutex<HashMap<String, watch::Receiver<Verdict>>>,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("watched", &self.watched.lock().len())
            .finish()
    }
}

impl Liveness {
    /// A receiver of `url`'s verdict; `start` is given the sender when no poll of
    /// `url` runs.
    fn subscribe(
        &self,
        url: &str,
        start: impl FnOnce(watch::Sender<Verdict>),
    ) -> watch::Receiver<Verdict> {
        let mut watched = self.watched.lock();
        if let Some(rx) = watched.get(url) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        watched.insert(url.to_owned(), rx.clone());
        start(tx);
        rx
    }

    /// Whether the poll of `url` (sending on `tx`) is still wanted: no when only
    /// the table holds a receiver, and then it is forgotten (under the lock a new
    /// forward subscribes with, so none is left without a poll).
    fn wanted(&self, url: &str, tx: &watch::Sender<Verdict>) -> bool {
        let mut watched = self.watched.lock();
        if tx.receiver_count() > 1 {
            return true;
        }
        watched.remove(url);
        false
    }

    /// `url`'s node is gone: every forward waiting on it is told, and the next
    /// forward to the URL (a node joining again there) starts a poll of its own.
    fn gone(&self, url: &str, tx: &watch::Sender<Verdict>, reason: String) {
        self.watched.lock().remove(url);
        let _ = tx.send(Some(reason));
    }

    /// URLs polled now.
    pub fn polled(&self) -> usize {
        self.watched.lock().len()
    }
}

impl Cluster {
    /// Resolves, with the reason, once no live node is reached at `url` (its lease
    /// ended: a hung or dead node); never while it is, nor while etcd cannot say.
    /// Polled every [`poll_every`] of the TTL, one poll per URL however many
    /// forwards wait on it.
    pub fn node_gone(self: &Arc<Self>, url: &str) -> impl Future<Output = String> + Send + use<> {
        let every = poll_every(self.ttl);
        let mut rx = self.liveness.subscribe(url, |tx| {
            tokio::spawn(poll(Arc::downgrade(self), url.to_owned(), tx, every));
        });
        async move {
            loop {
                if let Some(reason) = rx.borrow_and_update().clone() {
                    return reason;
                }
                if rx.changed().await.is_err() {
                    // The poll ended without a verdict (the node shutting down).
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// Reads the live nodes every `every` while a forward waits on `url`.
async fn poll(cluster: Weak<Cluster>, url: String, tx: watch::Sender<Verdict>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(c) = cluster.upgrade() else { return };
        if !c.liveness.wanted(&url, &tx) {
            return;
        }
        // Not joined (etcd away, or this node's own lease lost): nothing to say.
        let Ok(m) = c.membership() else { continue };
        match m.nodes().await {
            Ok(nodes) if !nodes.iter().any(|n| n.url == url) => {
                c.liveness.gone(
                    &url,
                    &tx,
                    format!("the node at {url} stopped answering and its lease ended"),
                );
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_at_most_once_a_second_and_twice_a_ttl() {
        assert_eq!(poll_every(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(
            poll_every(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(poll_every(Duration::ZERO), Duration::from_millis(100));
    }

    /// One poll per URL while forwards wait; none left once they are done; a
    /// verdict reaches every forward waiting.
    #[test]
    fn one_poll_per_url_while_forwards_wait() {
        let l = Liveness::default();
        let mut started = Vec::new();
        let a = l.subscribe("http://a", |tx| started.push(tx));
        let b = l.subscribe("http://a", |tx| started.push(tx));
        assert_eq!(started.len(), 1);
        let tx = started.pop().unwrap();
        assert!(l.wanted("http://a", &tx));
        drop(a);
        assert!(l.wanted("http://a", &tx));
        l.gone("http://a", &tx, "gone".into());
        assert_eq!(b.borrow().as_deref(), Some("gone"));
        assert_eq!(l.polled(), 0);
        drop(b);
        let c = l.subscribe("http://a", |tx| started.push(tx));
        assert_eq!(started.len(), 1, "a new poll after a verdict");
        drop(c);
        assert!(!l.wanted("http://a", &started[0]));
        assert_eq!(l.polled(), 0);
    }
}
