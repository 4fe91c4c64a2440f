//! RTMP publishes forwarded between the nodes of a cluster, with the real parts
//! (`design/cluster.md` "RTMP and SRT in a cluster"): etcd on loopback, three
//! `dvrclip serve --rtmp-listen` nodes, nginx balancing their HTTP (the API) and
//! their RTMP doors, ffmpeg publishing. Each publish that must land on a given node
//! is sent to that node's door; the reconnects after a failure go through nginx.
//!
//! - `one_publisher_per_stream_across_nodes`: a publish forwarded to the owner holds
//!   the owner's publisher slot, so a second encoder on the same key is refused
//!   whether it lands on another non-owner or on the owner; once the first ends, a
//!   new publish anywhere is taken;
//! - `forwarded_fragments_count_in_the_memory_budget`: a node whose budget has no
//!   room for a fragment on its way to the owner closes the publish, counted;
//! - `the_owner_dying_mid_publish`: the owner SIGKILLed while a publish is forwarded
//!   to it: the forward fails and the publish is closed (counted); ffmpeg publishing
//!   again through nginx gets the stream claimed by a live node, and its media lands
//!   there; no node panics;
//! - `the_owner_hanging_mid_publish`: the owner stopped (SIGSTOP: its kernel still
//!   takes the uploads' bytes, nothing answers) while a publish is forwarded to it:
//!   the upload waiting on it is given up once its lease has ended (not when the
//!   queue of 4 fills, nor at the 30 s read timeout) and the publish is closed
//!   (counted as abandoned and as a forward failure); ffmpeg publishing again
//!   through nginx gets the stream claimed by a live node; the owner resumed
//!   (SIGCONT) in any case;
//! - `a_dead_forwarding_node_frees_the_slot_at_its_ttl`: the node forwarding a
//!   publish SIGKILLed: the owner frees the publish's slot once that node's lease
//!   ends (not after the 15 s a silent publish keeps it), and a publish through
//!   another node is taken.
//!
//! The tests share one machine's cores: they run one at a time.

mod common;

use std::net::SocketAddr;
use std::process::{Child, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use dvrclip::cluster::Etcd;
use serde_json::Value;

/// The nodes' lease TTL, seconds.
const TTL: &str = "2";

/// One test at a time (three nodes and encoders each).
static SERIAL: Mutex<()> = Mutex::new(());

struct Set {
    _etcd: EtcdServer,
    etcd: Etcd,
    rt: tokio::runtime::Runtime,
    /// Each node: id, server, RTMP door.
    nodes: Vec<(String, Option<Server>, SocketAddr)>,
    nginx: Nginx,
    /// nginx's RTMP port.
    lb_rtmp: u16,
}

impl Set {
    /// etcd, nodes `n1`, `n2`, `n3` (`extra[i]` flags for node i) and nginx.
    fn start(extra: [&[&str]; 3]) -> Option<Set> {
        if !(have_ffmpeg() && require_tool("etcd") && require_nginx_stream()) {
            return None;
        }
        let etcd_server = EtcdServer::start();
        let rt = runtime();
        let etcd = etcd_server.client();
        let (lb_port, lb_rtmp) = (free_port(), free_port());
        let public = format!("http://127.0.0.1:{lb_port}");
        let nodes: Vec<(String, Option<Server>, SocketAddr)> = ["n1", "n2", "n3"]
            .iter()
            .zip(extra)
            .map(|(id, extra)| {
                let rtmp = SocketAddr::from(([127, 0, 0, 1], free_port()));
                let rtmp_arg = rtmp.to_string();
                let mut args = vec!["--public-url", &public, "--rtmp-listen", &rtmp_arg];
                args.extend_from_slice(extra);
                let node = cluster_node(&etcd_server, id, TTL, &args, &[]);
                (id.to_string(), Some(node), rtmp)
            })
            .collect();
        let http: Vec<SocketAddr> = nodes.iter().map(|n| n.1.as_ref().unwrap().addr).collect();
        let doors: Vec<SocketAddr> = nodes.iter().map(|n| n.2).collect();
        let nginx = Nginx::start_with_tcp(lb_port, &http, Some((lb_rtmp, &doors)));
        Some(Set {
            _etcd: etcd_server,
            etcd,
            rt,
            nodes,
            nginx,
            lb_rtmp,
        })
    }

    fn http(&self, i: usize) -> SocketAddr {
        self.nodes[i].1.as_ref().expect("a live node").addr
    }

    fn rtmp(&self, i: usize, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.nodes[i].2)
    }

    fn owner(&self, sid: u64) -> Option<String> {
        let key = format!("/dvrclip/owners/{sid}");
        self.rt
            .block_on(self.etcd.get(key.as_bytes()))
            .expect("etcd get")
            .map(|kv| String::from_utf8(kv.value).unwrap())
    }

    /// A stream created through nginx, claimed by node `i`: its id and ingest key.
    fn stream_owned_by(&self, i: usize) -> (u64, String) {
        let s = create_stream(self.nginx.addr, "cam");
        let sid = s["id"].as_u64().unwrap();
        let key = ingest_key(&s);
        // An empty master playlist: the node claims the stream, then refuses it.
        let r = request(
            self.http(i),
            "PUT",
            &format!("/ingest/{key}/master.m3u8"),
            &[],
            Some(b""),
        );
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(self.owner(sid).as_deref(), Some(self.nodes[i].0.as_str()));
        (sid, key)
    }

    /// SIGKILLs node `i`: when.
    fn kill(&mut self, i: usize) -> Instant {
        if let Some(s) = self.nodes[i].1.take() {
            s.signal("KILL");
        }
        Instant::now()
    }

    /// SIGSTOPs node `i`: when, and a guard that SIGCONTs it when dropped.
    fn stop(&self, i: usize) -> (Instant, Resume) {
        let node = self.nodes[i].1.as_ref().expect("a live node");
        node.signal("STOP");
        (Instant::now(), Resume(node.pid()))
    }

    /// The sum of a metric over the live nodes.
    fn sum(&self, name: &str) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| n.1.as_ref())
            .map(|s| metric(s.addr, name))
            .sum()
    }

    /// No live node's log has a panic.
    fn no_panic(&self) {
        for (id, s, _) in &self.nodes {
            if let Some(s) = s {
                let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                assert!(!log.contains("panicked"), "{id} panicked:\n{log}");
            }
        }
    }
}

/// A stopped node's process, resumed (SIGCONT) when dropped, whatever the test did.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("sh")
            .args(["-c", &format!("kill -CONT {}", self.0)])
            .status();
    }
}

/// ffmpeg publishing the test signal to `url` (RTMP) for `secs`.
fn publish(url: &str, secs: u32) -> ChildGuard {
    ChildGuard(publish_test_signal(url, "flv", "320x180", secs))
}

/// A stream owned by n1, published (60 s) through n2's door and so forwarded to n1:
/// its id, key, the publishing ffmpeg and the end of the DVR once 4 s of it are in.
fn publish_forwarded_to_n1(set: &Set) -> (u64, String, ChildGuard, f64) {
    let lb = set.nginx.addr;
    let (sid, key) = set.stream_owned_by(0);
    let forwarded = publish(&set.rtmp(1, &key), 60);
    let before = poll(
        "the forwarded publish in n1's DVR",
        Duration::from_secs(20),
        || {
            let (start, end) = last_range(lb, sid)?;
            (end - start >= 4.0).then_some(end)
        },
    );
    (sid, key, forwarded, before)
}

/// Publishes `key` (6 s of the test signal) through nginx again and again until one
/// publish runs to its end, i.e. a live node took the stream; an attempt that hangs
/// for 15 s (on a stopped node's door) is killed. How many attempts it took; fails
/// past `limit`.
fn publish_again_until_taken(set: &Set, key: &str, limit: Duration) -> u32 {
    let url = format!("rtmp://127.0.0.1:{}/live/{key}", set.lb_rtmp);
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut child = publish(&url, 6);
        let until = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = child.0.try_wait().expect("ffmpeg") {
                break Some(s);
            }
            if Instant::now() > until {
                break None; // hung on a stopped node: killed as `child` drops
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if status.is_some_and(|s| s.success()) {
            return attempts;
        }
        assert!(
            started.elapsed() < limit,
            "no live node took the publish after {attempts} attempts"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits (bounded) for `child` to exit: its status and stderr.
fn finished(child: &mut Child, limit: Duration) -> (ExitStatus, String) {
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("ffmpeg") {
            break s;
        }
        assert!(Instant::now() < until, "ffmpeg still running");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    (status, err)
}

/// The last range of the `rtmp` rendition in the DVR view through `lb`.
fn last_range(lb: SocketAddr, sid: u64) -> Option<(f64, f64)> {
    let d: Value = dvr(lb, sid);
    let r = d["renditions"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == "rtmp")?
        .clone();
    let last = r["ranges"].as_array()?.last()?.clone();
    Some((last["start"].as_f64()?, last["end"].as_f64()?))
}

#[test]
fn one_publisher_per_stream_across_nodes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(set) = Set::start([&[], &[], &[]]) else {
        return;
    };
    let lb = set.nginx.addr;
    let (sid, key) = set.stream_owned_by(0);

    // The first publisher lands on n2 and is forwarded to n1, which holds the slot.
    let mut first = publish(&set.rtmp(1, &key), 14);
    poll(
        "the forwarded publish holding n1's slot",
        Duration::from_secs(15),
        || (metric(set.http(0), "dvrclip_cluster_forwarded_publishes") == 1).then_some(()),
    );
    // A second encoder on n3 (forwarded too) is refused by the owner: closed.
    let mut second = publish(&set.rtmp(2, &key), 10);
    let (status, err) = finished(&mut second.0, Duration::from_secs(20));
    assert!(
        !status.success(),
        "a second publisher via n3 was taken: {err}"
    );
    assert!(
        metric(
            set.http(0),
            "dvrclip_cluster_forwarded_publishes_refused_total"
        ) >= 1
    );
    assert!(metric(set.http(2), "dvrclip_cluster_door_forward_failures_total") >= 1);
    // A third on the owner's own door is refused there, as on one node.
    let mut third = publish(&set.rtmp(0, &key), 10);
    let (status, err) = finished(&mut third.0, Duration::from_secs(20));
    assert!(
        !status.success(),
        "a second publisher on the owner was taken: {err}"
    );

    // The first went on undisturbed, and its end frees the slot.
    let (status, err) = finished(&mut first.0, Duration::from_secs(30));
    assert!(status.success(), "the first publisher: {err}");
    poll(
        "the slot freed at the publish's end",
        Duration::from_secs(10),
        || (metric(set.http(0), "dvrclip_cluster_forwarded_publishes") == 0).then_some(()),
    );
    let first_end = poll(
        "the first publish in the DVR",
        Duration::from_secs(15),
        || {
            let (start, end) = last_range(lb, sid)?;
            (end - start >= 10.0).then_some(end)
        },
    );

    // Now a publish on n3 is taken and its media lands on the owner.
    let mut again = publish(&set.rtmp(2, &key), 6);
    let (status, err) = finished(&mut again.0, Duration::from_secs(30));
    assert!(status.success(), "a publish after the first ended: {err}");
    poll(
        "the new publish in the DVR",
        Duration::from_secs(15),
        || {
            let (start, end) = last_range(lb, sid)?;
            (start > first_end && end - start >= 3.0).then_some(())
        },
    );
    assert_eq!(set.sum("dvrclip_cluster_claims_total"), 1);
    assert_eq!(set.owner(sid).as_deref(), Some("n1"));
    set.no_panic();
}

#[test]
fn forwarded_fragments_count_in_the_memory_budget() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // n2's budget is all but spent by the process itself: no room for a fragment.
    let Some(set) = Set::start([&[], &["--memory-budget-mib", "1"], &[]]) else {
        return;
    };
    let lb = set.nginx.addr;
    let (sid, key) = set.stream_owned_by(0);
    let mut refused = publish(&set.rtmp(1, &key), 10);
    let (status, err) = finished(&mut refused.0, Duration::from_secs(25));
    assert!(
        !status.success(),
        "a publish over n2's budget was forwarded: {err}"
    );
    assert!(metric(set.http(1), "dvrclip_cluster_door_over_budget_total") >= 1);
    assert!(metric(set.http(1), "dvrclip_cluster_door_forward_failures_total") >= 1);
    assert_eq!(metric(set.http(1), "dvrclip_cluster_door_uploads_total"), 0);
    // The same publish through n3, whose budget has room, reaches the owner.
    let mut taken = publish(&set.rtmp(2, &key), 6);
    let (status, err) = finished(&mut taken.0, Duration::from_secs(30));
    assert!(status.success(), "a publish through n3: {err}");
    poll("the publish in the DVR", Duration::from_secs(15), || {
        let (start, end) = last_range(lb, sid)?;
        (end - start >= 3.0).then_some(())
    });
    assert_eq!(
        metric(set.http(2), "dvrclip_cluster_door_over_budget_total"),
        0
    );
    set.no_panic();
}

#[test]
fn the_owner_dying_mid_publish() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut set) = Set::start([&[], &[], &[]]) else {
        return;
    };
    let lb = set.nginx.addr;
    let (sid, key, mut forwarded, before) = publish_forwarded_to_n1(&set);
    let uploads = metric(set.http(1), "dvrclip_cluster_door_uploads_total");
    assert!(uploads >= 2, "{uploads} uploads forwarded");

    // SIGKILL the owner: n2's next upload fails and the publish is closed.
    let killed = set.kill(0);
    let (status, _) = finished(&mut forwarded.0, Duration::from_secs(20));
    let closed = killed.elapsed();
    assert!(!status.success(), "the publish went on with its owner dead");
    assert!(metric(set.http(1), "dvrclip_cluster_door_forward_failures_total") >= 1);

    // ffmpeg publishes again through nginx until a live node takes the stream (the
    // dead owner's claim lasts until its lease's TTL; nginx may pick its dead door).
    let attempts = publish_again_until_taken(&set, &key, Duration::from_secs(40));
    let owner = set.owner(sid).expect("an owner");
    assert!(owner == "n2" || owner == "n3", "owned by {owner}");
    poll(
        "the new publish in the new owner's DVR",
        Duration::from_secs(15),
        || {
            let (start, end) = last_range(lb, sid)?;
            (start > before && end - start >= 3.0).then_some(())
        },
    );
    println!(
        "the forwarded publish closed {closed:?} after the kill; re-published through \
         nginx after {attempts} attempts, owner {owner}, media in its DVR {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(set.sum("dvrclip_cluster_claims_total"), 1);
    set.no_panic();
}

#[test]
fn the_owner_hanging_mid_publish() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(set) = Set::start([&[], &[], &[]]) else {
        return;
    };
    let (sid, key, mut forwarded, before) = publish_forwarded_to_n1(&set);
    assert!(metric(set.http(1), "dvrclip_cluster_door_uploads_total") >= 2);

    // SIGSTOP the owner: n2's next upload waits on it, and is given up once n1's
    // lease has ended and it stayed silent 1 s more; the door closes the publish at
    // once (its next message from ffmpeg).
    let (stopped, resume) = set.stop(0);
    let (status, _) = finished(&mut forwarded.0, Duration::from_secs(30));
    let closed = stopped.elapsed();
    assert!(!status.success(), "the publish went on with its owner hung");
    // The TTL (2 s, and etcd's tick) or the next fragment's upload (2 s apart),
    // whichever is later, + a poll (1 s) + the silence (1 s): about 4.5 s at worst.
    // Before, a hung owner's publish was closed only once the queue of 4 filled
    // behind the upload it hung on: 10 to 12 s (11.8 s measured).
    assert!(
        closed < Duration::from_secs(8),
        "the forwarded publish closed {closed:?} after the SIGSTOP"
    );
    assert!(metric(set.http(1), "dvrclip_cluster_forwards_abandoned_total") >= 1);
    assert!(metric(set.http(1), "dvrclip_cluster_door_forward_failures_total") >= 1);

    // ffmpeg publishes again through nginx until a live node takes the stream
    // (nginx may pick n1's hung door: that attempt hangs and is ended).
    let attempts = publish_again_until_taken(&set, &key, Duration::from_secs(60));
    let owner = set.owner(sid).expect("an owner");
    let at = match owner.as_str() {
        "n2" => set.http(1),
        "n3" => set.http(2),
        other => panic!("owned by {other} while n1 is stopped"),
    };
    // Asked of the new owner itself: nginx may pick the hung node.
    poll(
        "the new publish in the new owner's DVR",
        Duration::from_secs(15),
        || {
            let (start, end) = last_range(at, sid)?;
            (start > before && end - start >= 3.0).then_some(())
        },
    );
    println!(
        "the forwarded publish closed {closed:?} after the SIGSTOP (TTL {TTL} s); re-published \
         through nginx after {attempts} attempts, owner {owner}, media in its DVR {:?} after \
         the SIGSTOP",
        stopped.elapsed()
    );
    drop(resume);
    // n1 resumed: it finds its lease gone and joins again; nothing panicked.
    poll("n1 answering again", Duration::from_secs(15), || {
        (metric(set.http(0), "dvrclip_cluster_leases_lost_total") >= 1).then_some(())
    });
    assert_eq!(set.owner(sid).as_deref(), Some(owner.as_str()));
    set.no_panic();
}

#[test]
fn a_dead_forwarding_node_frees_the_slot_at_its_ttl() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut set) = Set::start([&[], &[], &[]]) else {
        return;
    };
    let lb = set.nginx.addr;
    let (sid, key) = set.stream_owned_by(0);
    let mut forwarded = publish(&set.rtmp(1, &key), 60);
    poll(
        "the forwarded publish holding n1's slot",
        Duration::from_secs(15),
        || (metric(set.http(0), "dvrclip_cluster_forwarded_publishes") == 1).then_some(()),
    );

    // SIGKILL the forwarding node: it never ends the publish, and its uploads stop.
    let killed = set.kill(1);
    let _ = finished(&mut forwarded.0, Duration::from_secs(20));
    poll(
        "the slot freed once n2's lease ended",
        Duration::from_secs(10),
        || (metric(set.http(0), "dvrclip_cluster_forwarded_publishes") == 0).then_some(()),
    );
    let freed = killed.elapsed();
    // The TTL (2 s) and etcd's tick, plus at most a refresh period of the owner's
    // lease loop: well before the 15 s a silent publish is kept.
    assert!(
        freed < Duration::from_secs(5),
        "freed {freed:?} after the kill"
    );
    assert_eq!(
        metric(
            set.http(0),
            "dvrclip_cluster_forwarded_publishes_freed_total"
        ),
        1
    );

    // A publish through n3 is taken, and its media lands on the owner.
    let mut again = publish(&set.rtmp(2, &key), 6);
    let (status, err) = finished(&mut again.0, Duration::from_secs(30));
    assert!(status.success(), "a publish after n2 died: {err}");
    poll(
        "the new publish in the DVR",
        Duration::from_secs(15),
        || {
            let (start, end) = last_range(lb, sid)?;
            (end - start >= 3.0).then_some(())
        },
    );
    println!("slot freed {freed:?} after the forwarding node's SIGKILL (TTL {TTL} s)");
    assert_eq!(set.owner(sid).as_deref(), Some("n1"));
    set.no_panic();
}
