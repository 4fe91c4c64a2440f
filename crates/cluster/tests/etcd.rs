//! Membership, ownership and ids against a real etcd (Debian's `etcd-server`, 3.4),
//! started on loopback for each test in a fresh data directory.
//!
//! - `nodes_claims_and_leaving`: two nodes join, a third with a taken id is refused;
//!   a claim goes to the first claimant and is seen by the other; `leave` frees it
//!   at once.
//! - `a_dead_node_loses_its_streams_at_the_ttl`: a node that stops refreshing (as a
//!   killed one does) loses its claims within its lease TTL, another claims them, and
//!   the dead node's next refresh says its lease has expired.
//! - `ids_are_unique_across_nodes`: two nodes drawing 40 ids each at once get 1..=80.
//! - `an_unreachable_etcd_is_an_error`: a closed port answers a typed error in time.

#[path = "../../../tests/common/require.rs"]
mod require;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dvrclip_cluster::{ClusterError, Etcd, EtcdError, Membership, Node, Owner, VIDEO_ID_BLOCK};

struct EtcdServer {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A one-member etcd on loopback, once it answers; `None` when etcd is not installed
/// (outside CI only, see `require`).
fn etcd() -> Option<EtcdServer> {
    if !require::require_tool("etcd") {
        return None;
    }
    let (client, peer) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("dvrclip-etcd-{}-{client}", std::process::id()));
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning etcd");
    let server = EtcdServer { child, url, dir };
    let deadline = Instant::now() + Duration::from_secs(15);
    let rt = runtime();
    while Instant::now() < deadline {
        let e = Etcd::new(&[&server.url], Duration::from_secs(1)).unwrap();
        if rt.block_on(e.get(b"ready")).is_ok() {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("etcd did not answer within 15 s");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        url: format!("http://{id}.test:8080"),
    }
}

async fn join(server: &EtcdServer, id: &str, ttl: u64) -> Result<Membership, ClusterError> {
    let e = Etcd::new(&[&server.url], Duration::from_secs(2)).unwrap();
    Membership::join(e, "/test", node(id), Duration::from_secs(ttl)).await
}

#[test]
fn nodes_claims_and_leaving() {
    let Some(server) = etcd() else { return };
    runtime().block_on(async {
        let a = join(&server, "a", 10).await.unwrap();
        let b = join(&server, "b", 10).await.unwrap();
        assert!(matches!(
            join(&server, "a", 10).await,
            Err(ClusterError::NodeTaken(id)) if id == "a"
        ));
        assert_eq!(a.nodes().await.unwrap(), [node("a"), node("b")]);

        assert_eq!(b.owner(7).await.unwrap(), None);
        assert_eq!(a.claim(7).await.unwrap(), Owner::Me);
        assert_eq!(
            a.claim(7).await.unwrap(),
            Owner::Me,
            "a claim is idempotent"
        );
        assert_eq!(b.claim(7).await.unwrap(), Owner::Other("a".into()));
        assert_eq!(b.owner(7).await.unwrap(), Some(Owner::Other("a".into())));

        // A release by a node that does not own the stream changes nothing.
        b.release(7).await.unwrap();
        assert_eq!(b.owner(7).await.unwrap(), Some(Owner::Other("a".into())));
        a.release(7).await.unwrap();
        assert_eq!(b.claim(7).await.unwrap(), Owner::Me);

        // Leaving takes every claim with it at once, not at the TTL.
        assert_eq!(a.claim(8).await.unwrap(), Owner::Me);
        a.leave().await.unwrap();
        assert_eq!(b.owner(8).await.unwrap(), None);
        assert_eq!(b.nodes().await.unwrap(), [node("b")]);
    });
}

#[test]
fn a_dead_node_loses_its_streams_at_the_ttl() {
    let Some(server) = etcd() else { return };
    runtime().block_on(async {
        let ttl = 2;
        let dead = join(&server, "dead", ttl).await.unwrap();
        let alive = join(&server, "alive", 10).await.unwrap();
        assert_eq!(dead.claim(1).await.unwrap(), Owner::Me);
        dead.keep_alive().await.unwrap();
        let stopped = Instant::now();
        // `dead` refreshes no more, as a killed process would not.
        loop {
            match alive.claim(1).await.unwrap() {
                Owner::Me => break,
                Owner::Other(id) => assert_eq!(id, "dead"),
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(ttl * 3),
                "claim still held {:?} after its owner stopped",
                stopped.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = stopped.elapsed();
        eprintln!("stream re-owned {took:?} after its owner stopped refreshing (TTL {ttl} s)");
        assert!(
            took >= Duration::from_secs(1),
            "re-owned too early: {took:?}"
        );
        assert!(matches!(
            dead.keep_alive().await,
            Err(ClusterError::LeaseExpired(_))
        ));
        assert_eq!(alive.nodes().await.unwrap(), [node("alive")]);
    });
}

#[test]
fn ids_are_unique_across_nodes() {
    let Some(server) = etcd() else { return };
    runtime().block_on(async {
        let a = join(&server, "a", 10).await.unwrap();
        let b = join(&server, "b", 10).await.unwrap();
        let (mut x, y) = tokio::join!(draw_ids(&a, 40), draw_ids(&b, 40));
        x.extend(y);
        x.sort_unstable();
        assert_eq!(x, (1..=80).collect::<Vec<u64>>());
    });
}

#[test]
fn video_id_blocks_are_unique_and_name_their_node() {
    let Some(server) = etcd() else { return };
    runtime().block_on(async {
        let a = join(&server, "a", 10).await.unwrap();
        let b = join(&server, "b", 10).await.unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let (ra, rb) = tokio::join!(a.reserve_video_ids(1), b.reserve_video_ids(1));
            x.extend(ra.unwrap());
            y.extend(rb.unwrap());
        }
        for (ids, holder) in [(&x, "a"), (&y, "b")] {
            for id in [ids[0], ids[ids.len() - 1]] {
                assert_eq!(a.video_holder(id).await.unwrap().as_deref(), Some(holder));
            }
        }
        let mut all: Vec<u64> = x.iter().chain(&y).copied().collect();
        all.sort_unstable();
        let n = 10 * VIDEO_ID_BLOCK;
        assert_eq!(all, (1..=n).collect::<Vec<u64>>());
        // A floor (ids a node's store already holds) is skipped over, blocks aligned.
        let r = a.reserve_video_ids(n + 100).await.unwrap();
        assert!(
            *r.start() >= n + 100 && r.start() % VIDEO_ID_BLOCK == 1,
            "{r:?}"
        );
        assert_eq!(a.video_holder(n + 100).await.unwrap(), None);
        assert_eq!(a.video_holder(0).await.unwrap(), None);
    });
}

async fn draw_ids(m: &Membership, n: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(m.next_stream_id().await.unwrap());
    }
    ids
}

#[test]
fn an_unreachable_etcd_is_an_error() {
    runtime().block_on(async {
        let closed = format!("http://127.0.0.1:{}", free_port());
        let e = Etcd::new(&[&closed], Duration::from_secs(1)).unwrap();
        let started = Instant::now();
        let err = Membership::join(e, "/test", node("a"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClusterError::Etcd(EtcdError::Unreachable { .. })),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            Etcd::new(&["ftp://x"], Duration::from_secs(1)),
            Err(EtcdError::Endpoint(_))
        ));
    });
}
