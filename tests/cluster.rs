//! A cluster with the real parts (`design/cluster.md`): etcd on loopback, three
//! `dvrclip serve` nodes joined to it and archiving complete clips to moto (S3),
//! nginx as a round-robin balancer in front of their HTTP, ffmpeg pushing a live ladder by HTTP PUT through nginx (so each upload
//! lands on any node and two in three are forwarded to the owner).
//!
//! `three_nodes_behind_nginx`, in order:
//! - a stream created through nginx is listed by every node (records in etcd);
//! - the first node given media owns it; a clip cut through nginx is complete, and
//!   its MP4 and HLS links fetched through nginx decode; a ranged read through a
//!   node that does not own it is the owner's bytes; a request another node already
//!   forwarded is answered where it lands (no loop);
//! - the owner's DVR is shipped to moto as it arrives (`cluster::ship`); a clip is
//!   cut that is still recording (so not archived) when the owner is SIGKILLed:
//!   within the lease TTL another node claims the stream when media reaches it and
//!   restores the dead node's shipped DVR: the new owner's DVR view starts where
//!   the dead node's did, a clip cut there of media from before the kill decodes,
//!   the recording clip comes back, completes with the new media and plays; a
//!   re-push through nginx is owned by another node, new clips of it play; the dead
//!   node's archived clip is served through nginx, the same bytes, and the stream
//!   stays listed;
//! - etcd stopped: no node crashes, creates are refused with 503 and a reason;
//!   etcd restarted: creates are accepted again;
//! - the owner paused (SIGSTOP) past its lease TTL: the other node claims the
//!   stream (restoring what the paused one shipped); resumed, the old owner drops
//!   its claims and joins again, and forwards the stream's calls to the new owner
//!   instead of answering from its stale DVR;
//! - the new owner drained with SIGTERM: its stream is claimable at once.
//!
//! `a_forward_to_a_hung_owner_is_given_up_when_its_lease_ends`: an owner stopped
//! with SIGSTOP; a read and an upload through the other node are given up when
//! the owner's lease ends (the read placed again, the upload 503), not at the
//! forwarder's read timeout.
//!
//! `a_stream_deleted_while_nobody_owns_it_leaves_no_shipped_dvr`: the owner
//! killed, its lease ended, the stream deleted through the other node: that node
//! removes the shipped DVR no owner will.
//!
//! `a_claimed_dvr_survives_a_crash_of_the_new_owner`: a claim's restore is in the
//! new owner's spool with the real binary: n1 ships a DVR and a clip to moto and is
//! SIGKILLed, n2 (a spool of its own) claims and restores the stream, takes more
//! media, is SIGKILLed and started again on its spool: the same DVR (restored plus
//! after the claim), the clip complete and byte-identical, no spool error; it
//! re-claims the stream from its spool. Then the limit `design/cluster.md` names:
//! once the re-claim has shipped, a failover to n1 restores only what n2 took in
//! after its restart (the clip from the archive only).
//!
//! Two races found by a CI run, each made certain: an upload forwarded to a node
//! that has claimed the stream but not yet taken it in is taken
//! (`forwarded_upload_taken_before_the_owner_holds_the_stream`), and a key index
//! read just before another node's create finds the new stream
//! (`a_fresh_index_finds_a_stream_created_elsewhere`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::moto::CREDENTIALS;
use common::*;
use dvrclip::cluster::Etcd;
use serde_json::Value;

/// The nodes' lease TTL, seconds.
const TTL: u64 = 2;

/// The node id owning `sid`, read from etcd.
fn owner(etcd: &Etcd, rt: &tokio::runtime::Runtime, sid: u64) -> Option<String> {
    let key = format!("/dvrclip/owners/{sid}");
    // A connection pooled before an etcd restart fails once.
    let kv = rt
        .block_on(etcd.get(key.as_bytes()))
        .or_else(|_| rt.block_on(etcd.get(key.as_bytes())))
        .expect("etcd get")?;
    Some(String::from_utf8(kv.value).expect("node id"))
}

/// How long until an upload through `lb` with `key` is taken by a live node (not
/// 502 from a dead owner, nor 503), probing every 50 ms for at most `limit`.
fn until_claimable(lb: SocketAddr, key: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        // An empty master playlist: refused as a playlist (400) by whichever node
        // takes the stream, after it claimed it.
        let r = request(
            lb,
            "PUT",
            &format!("/ingest/{key}/master.m3u8"),
            &[],
            Some(b""),
        );
        if r.status != 502 && r.status != 503 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "not claimable: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `[start, end]` ranges (Unix s) of `rendition` in a DVR view.
fn ranges(dvr: &Value, rendition: &str) -> Vec<(f64, f64)> {
    dvr["renditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["name"] == rendition)
        .flat_map(|r| r["ranges"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| Some((r["start"].as_f64()?, r["end"].as_f64()?)))
        .collect()
}

/// Decodes the MP4 and HLS links of `clip` (through nginx), without an error.
fn links_decode(clip: &Value) {
    for link in ["mp4_master", "hls_master"] {
        let url = clip[link].as_str().expect("link");
        let (ok, errors) = ffmpeg_decode(url);
        assert!(ok && errors.is_empty(), "{url}: {errors}");
    }
}

/// Cuts `duration` s from a second into the top rendition's DVR and decodes its MP4
/// and HLS links (both through nginx: the public URL is the balancer's). The DVR is
/// read again right before the cut: a playlist's `EXT-X-PROGRAM-DATE-TIME` moves
/// chunks on the wall clock after they arrive, so an older view may name a range
/// that now ends earlier (and a clip past its end would be recording). Every
/// rendition must reach the end (a clip is complete when all do), not only the top.
fn clip_decodes(lb: SocketAddr, sid: u64, duration: i64) -> Value {
    let start = poll("a range long enough", Duration::from_secs(30), || {
        let d = dvr(lb, sid);
        let renditions = d["renditions"].as_array()?;
        let last_range = |r: &Value| r["ranges"].as_array()?.last().cloned();
        let top = renditions.iter().find(|r| r["name"] == LADDER[0].0)?;
        let start = last_range(top)?["start"].as_f64()?.ceil() as i64 + 1;
        let end = renditions
            .iter()
            .map(|r| last_range(r)?["end"].as_f64())
            .collect::<Option<Vec<f64>>>()?
            .into_iter()
            .fold(f64::INFINITY, f64::min);
        (renditions.len() == LADDER.len() && start as f64 + duration as f64 + 0.5 <= end)
            .then_some(start)
    });
    let clip = create_complete_clip(lb, sid, start, duration);
    for link in ["mp4_master", "hls_master"] {
        let url = clip[link].as_str().expect("link");
        assert!(url.starts_with(&format!("http://{lb}/")), "{url}");
        let (ok, errors) = ffmpeg_decode(url);
        assert!(ok && errors.is_empty(), "{url}: {errors}");
    }
    clip
}

#[test]
fn three_nodes_behind_nginx() {
    if !(have_ffmpeg() && require_tool("etcd") && require_tool(NGINX)) {
        return;
    }
    let Some(moto) = require_moto("clips") else {
        return;
    };
    let endpoint = moto.endpoint();
    let mut etcd = EtcdServer::start();
    let rt = runtime();
    let etcd_client = etcd.client();
    let lb_port = free_port();
    let public = format!("http://127.0.0.1:{lb_port}");
    let ttl = TTL.to_string();
    let mut nodes: Vec<(String, Server)> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| {
            let extra = [
                "--public-url",
                &public,
                "--clip-archive",
                "s3://clips",
                "--s3-endpoint",
                &endpoint,
                "--s3-region",
                "us-east-1",
            ];
            let s = cluster_node(&etcd, id, &ttl, &extra, &CREDENTIALS);
            (id.to_string(), s)
        })
        .collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|(_, s)| s.addr).collect();
    let nginx = Nginx::start(lb_port, &addrs);
    let lb = nginx.addr;

    // Records: created through any node, listed by every node.
    let stream = create_stream(lb, "cam");
    let sid = stream["id"].as_u64().unwrap();
    for a in &addrs {
        let list = expect(api(*a, "GET", "/streaming/streams", None), 200).json();
        assert!(
            list.as_array().unwrap().iter().any(|s| s["id"] == sid),
            "{list}"
        );
    }
    let push_url = stream["push_url_http"].as_str().unwrap().to_owned();
    let key = push_url.rsplit('/').next().unwrap().to_owned();

    // Push through nginx; the DVR through nginx (forwarded to the owner).
    let top = LADDER[0].0;
    let mut push = ChildGuard(push_ladder(&push_url, 12, 440));
    wait_chunks(lb, sid, top, 4, Duration::from_secs(40));
    let first = owner(&etcd_client, &rt, sid).expect("an owner");
    let clip = clip_decodes(lb, sid, 4);
    // Two uploads in three landed on a node that does not own the stream.
    let sum = |name: &str| addrs.iter().map(|a| metric(*a, name)).sum::<u64>();
    assert!(sum("dvrclip_cluster_forwarded_total") > 10);
    assert_eq!(sum("dvrclip_cluster_claims_total"), 1);
    assert_eq!(sum("dvrclip_cluster_owned_streams"), 1);

    // A ranged read through a node that does not own the stream: the owner's bytes.
    let mp4 = path_of(clip["mp4_master"].as_str().unwrap()).to_owned();
    let owner_addr = nodes.iter().find(|(id, _)| *id == first).unwrap().1.addr;
    let other_addr = nodes.iter().find(|(id, _)| *id != first).unwrap().1.addr;
    let range = [("Range", "bytes=100-4099")];
    let direct = expect(request(owner_addr, "GET", &mp4, &range, None), 206);
    let forwarded = expect(request(other_addr, "GET", &mp4, &range, None), 206);
    assert_eq!(forwarded.body, direct.body);
    assert_eq!(forwarded.body.len(), 4000);
    // Already forwarded once: answered where it lands, never sent on again.
    let dvr_path = format!("/streaming/streams/{sid}/dvr");
    let looped = request(
        other_addr,
        "GET",
        &dvr_path,
        &[("Authorization", AUTH), ("X-Dvrclip-Forwarded-By", "n0")],
        None,
    );
    assert_eq!(
        expect(looped, 200).json()["renditions"],
        serde_json::json!([])
    );
    let _ = push.0.wait();
    // The clip is in the archive before its node dies.
    poll("the clip archived", Duration::from_secs(30), || {
        (sum("dvrclip_archive_clips_total") >= 1).then_some(())
    });
    let served = expect(get(lb, &mp4), 200);

    // Before the kill: where the owner's DVR starts, and a clip still recording
    // (its end 7 s past the media), which the archive cannot hold yet.
    let before_kill = dvr(lb, sid);
    let (dvr_start, _) = ranges(&before_kill, top)[0];
    let media_end = LADDER
        .iter()
        .filter_map(|(r, ..)| ranges(&before_kill, r).last().map(|r| r.1))
        .fold(f64::INFINITY, f64::min);
    let body = format!(
        r#"{{"start": {}, "duration": 10}}"#,
        media_end.floor() as i64 - 3
    );
    let clips_path = format!("/streaming/streams/{sid}/clip_recording");
    let recording = expect(api(lb, "PUT", &clips_path, Some(&body)), 200).json();
    assert_eq!(recording["state"], "recording", "{recording}");
    let recording_id = recording["id"].as_str().unwrap().to_owned();
    // Everything the owner acknowledged is in the store before it dies.
    poll("the owner's DVR shipped", Duration::from_secs(10), || {
        (metric(owner_addr, "dvrclip_ship_pending_records") == 0).then_some(())
    });
    let shipped = metric(owner_addr, "dvrclip_ship_chunks_total");
    assert!(shipped >= 12, "{shipped} chunks shipped");
    println!(
        "shipping: {shipped} chunks, lag mean {} ms, max {} ms; {} S3 bytes for {} payload bytes",
        metric(owner_addr, "dvrclip_ship_lag_micros_total") / shipped / 1000,
        metric(owner_addr, "dvrclip_ship_lag_max_micros") / 1000,
        metric(owner_addr, "dvrclip_ship_bytes_total"),
        metric(owner_addr, "dvrclip_ship_chunk_bytes_total"),
    );

    // SIGKILL the owner: its stream is claimable within the TTL (plus a refresh).
    let at = nodes.iter().position(|(id, _)| *id == first).unwrap();
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    drop(nodes.remove(at));
    let failover = until_claimable(lb, &key, Duration::from_secs(4 * TTL));
    println!(
        "failover: SIGKILL -> claimable in {} ms (TTL {TTL} s)",
        failover.as_millis()
    );
    let second = owner(&etcd_client, &rt, sid).expect("a new owner");
    assert_ne!(second, first);
    // The new owner restored the dead node's shipped DVR: its view starts where the
    // dead node's did, before the kill, and a clip of that media decodes.
    let restored = dvr(lb, sid);
    let (start, end) = ranges(&restored, top)[0];
    assert!(
        (start - dvr_start).abs() < 0.5 && end < killed_at,
        "{restored} (before the kill: {before_kill})"
    );
    let live: Vec<SocketAddr> = nodes.iter().map(|(_, s)| s.addr).collect();
    let live_sum = |name: &str| live.iter().map(|a| metric(*a, name)).sum::<u64>();
    assert_eq!(live_sum("dvrclip_ship_restores_total"), 1);
    let counts = |d: &Value| -> Vec<u64> {
        d["renditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["chunks"].as_u64().unwrap_or(0))
            .collect()
    };
    println!(
        "chunks per rendition before the kill {:?}, restored {:?}",
        counts(&before_kill),
        counts(&restored)
    );
    println!(
        "restore: {} chunks, {} clips back in {} ms; DVR view from {start:.1} (before the kill: {dvr_start:.1}, killed at {killed_at:.1})",
        live_sum("dvrclip_ship_restored_chunks_total"),
        live_sum("dvrclip_ship_restored_clips_total"),
        live_sum("dvrclip_ship_restore_micros_total") / 1000,
    );
    assert_eq!(live_sum("dvrclip_ship_corrupt_objects_total"), 0);
    let old_clip = create_complete_clip(lb, sid, start.ceil() as i64 + 1, 4);
    links_decode(&old_clip);
    let mut push = ChildGuard(push_ladder(&push_url, 10, 660));
    poll(
        "new media after the restored DVR",
        Duration::from_secs(40),
        || (ranges(&dvr(lb, sid), top).len() >= 2).then_some(()),
    );
    clip_decodes(lb, sid, 3);
    let _ = push.0.wait();
    // The clip recording at the kill (never archived) came back with the DVR; the
    // new media completed it, and it plays.
    let back = poll(
        "the recording clip complete",
        Duration::from_secs(60),
        || {
            let r = api(lb, "GET", &format!("{clips_path}/{recording_id}"), None);
            (r.status == 200 && r.json()["state"] == "complete").then(|| r.json())
        },
    );
    links_decode(&back);
    // The dead node's clip: served through nginx from the archive, the same bytes.
    let archived = expect(get(lb, &mp4), 200);
    assert_eq!(archived.header("ETag"), served.header("ETag"));
    assert!(archived.body == served.body, "the archived MP4 differs");
    let list = expect(api(lb, "GET", "/streaming/streams", None), 200).json();
    assert!(list.as_array().unwrap().iter().any(|s| s["id"] == sid));

    // etcd away: no crash, creates refused with a reason; back: accepted.
    etcd.stop();
    let refused = api(lb, "POST", "/streaming/streams", Some(r#"{"name": "x"}"#));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.text().contains("etcd"), "{}", refused.text());
    for (_, n) in &nodes {
        expect(get(n.addr, "/healthz"), 200);
    }
    etcd.resume();
    poll("creates accepted again", Duration::from_secs(15), || {
        let r = api(lb, "POST", "/streaming/streams", Some(r#"{"name": "y"}"#));
        (r.status == 201).then_some(())
    });

    // A lease that expires under a live node (paused past its TTL): another node
    // claims the stream; the paused one, resumed, drops its claims and joins again,
    // so what reaches it for the stream goes to the new owner.
    let paused = &nodes.iter().find(|(id, _)| *id == second).unwrap().1;
    let (third, other) = nodes.iter().find(|(id, _)| *id != second).unwrap();
    paused.signal("STOP");
    // Until the TTL has passed, the other node forwards to the paused one, which
    // would hold the probe: wait for the lease to end first.
    std::thread::sleep(Duration::from_millis(TTL * 1000 + 1500));
    until_claimable(other.addr, &key, Duration::from_secs(2 * TTL));
    assert_eq!(
        owner(&etcd_client, &rt, sid).as_deref(),
        Some(third.as_str())
    );
    paused.signal("CONT");
    poll(
        "the resumed node forwarding to the new owner",
        Duration::from_secs(10),
        || {
            // The new owner restored what the paused node shipped, so the views
            // may read alike: the paused node's answer must be a forward. While it
            // joins again it owns nothing and answers 503.
            let forwarded = metric(paused.addr, "dvrclip_cluster_forwarded_total");
            let r = api(paused.addr, "GET", &dvr_path, None);
            let direct = api(other.addr, "GET", &dvr_path, None);
            (r.status == 200
                && metric(paused.addr, "dvrclip_cluster_forwarded_total") > forwarded
                && r.json() == direct.json())
            .then_some(())
        },
    );
    assert_eq!(
        owner(&etcd_client, &rt, sid).as_deref(),
        Some(third.as_str())
    );
    // An upload marked as forwarded is not taken into its stale DVR without a claim.
    let marked = request(
        paused.addr,
        "PUT",
        &format!("/ingest/{key}/master.m3u8"),
        &[("X-Dvrclip-Forwarded-By", "n0")],
        Some(b""),
    );
    assert_eq!(marked.status, 503, "{}", marked.text());

    // SIGTERM drains: the lease is revoked, the stream claimable at once.
    let third = third.clone();
    let at = nodes.iter().position(|(id, _)| *id == third).unwrap();
    let status = nodes.remove(at).1.terminate();
    assert!(status.success(), "{status}");
    let drained = until_claimable(lb, &key, Duration::from_secs(TTL));
    println!(
        "drain: SIGTERM exit -> claimable in {} ms",
        drained.as_millis()
    );
    assert_eq!(
        owner(&etcd_client, &rt, sid).as_deref(),
        Some(second.as_str())
    );
}

/// An upload another node forwarded reaches the owner while the owner is still
/// taking the stream in: the sender saw the claim in etcd, the owner's engine does
/// not hold the stream yet. Once seen in CI as 403 on every init of a brand-new
/// stream (three inits at once through nginx: one node claimed, the other two
/// forwarded to it before its own request had taken the stream in). Made certain
/// here: the claim is written in etcd on the node's lease, and the node has never
/// been given media for the stream.
#[test]
fn forwarded_upload_taken_before_the_owner_holds_the_stream() {
    if !require_tool("etcd") {
        return;
    }
    let etcd = EtcdServer::start();
    let rt = runtime();
    let etcd_client = etcd.client();
    let dir = temp_dir("cluster-forwarded-first");
    let args = [
        "--api-key",
        KEY,
        "--cluster-etcd",
        &etcd.url,
        "--node-id",
        "n1",
    ];
    let node = Server::start_env(dir.join("data"), dir, &args, &[]);
    let stream = create_stream(node.addr, "cam");
    let sid = stream["id"].as_u64().unwrap();
    let push_url = stream["push_url_http"].as_str().unwrap();
    let key = push_url.rsplit('/').next().unwrap();

    // n1's claim, as its own first upload would write it.
    let lease = rt
        .block_on(etcd_client.get(b"/dvrclip/nodes/n1"))
        .unwrap()
        .expect("n1's node record")
        .lease;
    let claimed = rt
        .block_on(etcd_client.create(format!("/dvrclip/owners/{sid}").as_bytes(), b"n1", lease))
        .unwrap();
    assert!(claimed.succeeded);

    let init = fixture("h264_aac/init.mp4");
    let r = request(
        node.addr,
        "PUT",
        &format!("/ingest/{key}/h264/init.mp4"),
        &[("x-dvrclip-forwarded-by", "n2")],
        Some(&init),
    );
    assert!(r.status / 100 == 2, "{} {}", r.status, r.text());
    assert_eq!(metric(node.addr, "dvrclip_cluster_owned_streams"), 1);
}

/// A node whose key index was read a moment before another node created a stream
/// still finds the new stream's keys at once (an encoder pushing right after the
/// create must not be refused as unknown), and a wrong key is still unknown.
#[test]
fn a_fresh_index_finds_a_stream_created_elsewhere() {
    use dvrclip::engine::{StreamId, StreamSettings, WallTime};
    use dvrclip::server::cluster::records::{Records, StreamRecord};
    if !require_tool("etcd") {
        return;
    }
    let etcd = EtcdServer::start();
    let rt = runtime();
    let node = || Records::new(etcd.client(), "/t");
    let (here, elsewhere) = (node(), node());
    let settings = StreamSettings {
        name: "cam".into(),
        dvr_enabled: true,
        dvr_duration_secs: 60,
        active: true,
        pull: false,
        uri: None,
    };
    let record = StreamRecord::new(7, &settings, WallTime::from_unix_micros(0)).unwrap();
    rt.block_on(async {
        assert!(here.list().await.unwrap().is_empty());
        elsewhere.create(&record).await.unwrap();
        let found = here.by_ingest_key(&record.ingest_key).await.unwrap();
        assert_eq!(found, Some(StreamId(7)));
        let found = here.by_play_key(&record.play_key).await.unwrap();
        assert_eq!(found, Some(StreamId(7)));
        assert_eq!(here.by_ingest_key("not-a-key").await.unwrap(), None);
    });
}

/// Node `id` of a cluster on `etcd` with the test's TTL, and `extra` flags.
fn node(etcd: &EtcdServer, id: &str, extra: &[&str]) -> Server {
    cluster_node(etcd, id, &TTL.to_string(), extra, &[])
}

/// A forward to an owner that hangs (SIGSTOP: its kernel still takes connections,
/// nothing answers) is given up once the owner's lease ends, not at the
/// forwarder's 30 s read timeout: a read, whose body is whole, is placed again
/// (nobody owns the stream now: answered by the node it reached); an upload, whose
/// body went to the hung node, is answered 503 with the reason, so the encoder's
/// retry is placed again.
#[test]
fn a_forward_to_a_hung_owner_is_given_up_when_its_lease_ends() {
    if !require_tool("etcd") {
        return;
    }
    let etcd = EtcdServer::start();
    let rt = runtime();
    let etcd_client = etcd.client();
    let (n1, n2) = (node(&etcd, "n1", &[]), node(&etcd, "n2", &[]));
    let stream = create_stream(n1.addr, "cam");
    let sid = stream["id"].as_u64().unwrap();
    let key = ingest_key(&stream);
    let upload = |addr: SocketAddr, file: &str, bytes: &[u8]| {
        request(
            addr,
            "PUT",
            &format!("/ingest/{key}/h264/{file}"),
            &[],
            Some(bytes),
        )
    };
    expect(
        upload(n1.addr, "init.mp4", &fixture("h264_aac/init.mp4")),
        201,
    );
    let seg = fixture("h264_aac/seg_000.m4s");
    expect(upload(n1.addr, "seg_000.m4s", &seg), 201);
    assert_eq!(owner(&etcd_client, &rt, sid).as_deref(), Some("n1"));
    let dvr_path = format!("/streaming/streams/{sid}/dvr");
    let through_n2 = expect(api(n2.addr, "GET", &dvr_path, None), 200).json();
    assert_eq!(through_n2["renditions"].as_array().map(Vec::len), Some(1));

    n1.signal("STOP");
    let stopped = Instant::now();
    let (read, put) = std::thread::scope(|s| {
        let read = s.spawn(|| {
            let r = api(n2.addr, "GET", &dvr_path, None);
            (r, stopped.elapsed())
        });
        let put = s.spawn(|| {
            let r = upload(n2.addr, "seg_001.m4s", &fixture("h264_aac/seg_001.m4s"));
            (r, stopped.elapsed())
        });
        (read.join().unwrap(), put.join().unwrap())
    });
    n1.signal("CONT");
    println!(
        "owner stopped: the forwarded read answered in {} ms ({}), the upload in {} ms ({}; TTL {TTL} s)",
        read.1.as_millis(),
        read.0.status,
        put.1.as_millis(),
        put.0.status
    );
    // The lease ends within the TTL (plus etcd's tick); the poll adds at most a
    // second, and the silence the forwarder then waits out another.
    let bound = Duration::from_secs(TTL + 4);
    assert!(read.1 < bound && put.1 < bound, "{read:?} {put:?}");
    // Placed again: nobody owns the stream, so n2 answers from what it holds.
    assert_eq!(
        expect(read.0, 200).json()["renditions"],
        serde_json::json!([])
    );
    let text = put.0.text();
    assert!(
        (put.0.status == 503 && text.contains("lease")) || put.0.status < 500,
        "{} {text}",
        put.0.status
    );
    assert!(metric(n2.addr, "dvrclip_cluster_forwards_abandoned_total") >= 1);
}

/// The files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A stream deleted while no node owns it (its owner died): no owner will remove
/// its shipped DVR, so the node the delete reaches does.
#[test]
fn a_stream_deleted_while_nobody_owns_it_leaves_no_shipped_dvr() {
    if !require_tool("etcd") {
        return;
    }
    let etcd = EtcdServer::start();
    let rt = runtime();
    let etcd_client = etcd.client();
    // The archive (and so the shipped DVR) in a directory both nodes share.
    let archive = temp_dir("cluster-unowned-archive");
    let archive_arg = archive.display().to_string();
    let extra = ["--clip-archive", archive_arg.as_str()];
    let (n1, n2) = (node(&etcd, "n1", &extra), node(&etcd, "n2", &extra));
    let stream = create_stream(n1.addr, "cam");
    let sid = stream["id"].as_u64().unwrap();
    let key = ingest_key(&stream);
    for (file, fixture_file) in [
        ("init.mp4", "h264_aac/init.mp4"),
        ("seg_000.m4s", "h264_aac/seg_000.m4s"),
        ("seg_001.m4s", "h264_aac/seg_001.m4s"),
    ] {
        let target = format!("/ingest/{key}/h264/{file}");
        expect(
            request(n1.addr, "PUT", &target, &[], Some(&fixture(fixture_file))),
            201,
        );
    }
    poll("the DVR shipped", Duration::from_secs(10), || {
        (metric(n1.addr, "dvrclip_ship_pending_records") == 0).then_some(())
    });
    let shipped = archive.join(format!("dvr/{sid}"));
    assert!(!files_under(&shipped).is_empty());

    // The owner dies; once its lease has ended nobody owns the stream.
    drop(n1);
    poll(
        "the dead owner's claim gone",
        Duration::from_secs(4 * TTL),
        || owner(&etcd_client, &rt, sid).is_none().then_some(()),
    );
    expect(
        api(
            n2.addr,
            "DELETE",
            &format!("/streaming/streams/{sid}"),
            None,
        ),
        204,
    );
    // The counter is added to once the last object is gone: both are waited for.
    poll("the shipped DVR removed", Duration::from_secs(10), || {
        files_under(&shipped).is_empty().then_some(())
    });
    poll("the removal counted", Duration::from_secs(5), || {
        (metric(n2.addr, "dvrclip_ship_removed_total") >= 2).then_some(())
    });
    let _ = std::fs::remove_dir_all(&archive);
}

/// The clip at `clip_path` is complete on `node` and its MP4 is `mp4`, byte for byte
/// (as before `what`).
fn same_complete_clip(node: SocketAddr, clip_path: &str, mp4_path: &str, mp4: &[u8], what: &str) {
    let back = expect(api(node, "GET", clip_path, None), 200).json();
    assert_eq!(back["state"], "complete", "{back}");
    let again = expect(get(node, mp4_path), 200);
    assert!(again.body == mp4, "the MP4 after {what} differs");
}

/// The chunks each rendition of a DVR view holds, by name.
fn chunk_counts(d: &Value) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = d["renditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let name = r["name"].as_str().unwrap_or_default().to_owned();
            (name, r["chunks"].as_u64().unwrap_or(0))
        })
        .collect();
    out.sort();
    out
}

/// A claim's restore is in the new owner's spool, end to end: n1 (memory only)
/// owns a stream, ships its DVR and a complete clip to moto and is SIGKILLed; n2
/// (a spool of its own) claims the stream with an upload and restores the shipped
/// DVR, then ffmpeg pushes more into n2; n2 is SIGKILLed and started again on the
/// same spool. Before it joins again nobody owns the stream and n2 answers from
/// what its spool gave back; its DVR is what it held before the kill (the restored
/// part and what came after the claim, range for range, chunk for chunk), the
/// restored clip is still known (complete) and its MP4 the same bytes, decoding;
/// no spool journal error, no restored chunk left out of the spool. An upload then
/// claims the stream again: n2 continues its spool's copy (no restore from the
/// bucket), and a clip of the restored media cut there decodes.
#[test]
fn a_claimed_dvr_survives_a_crash_of_the_new_owner() {
    if !(have_ffmpeg() && require_tool("etcd")) {
        return;
    }
    let Some(moto) = require_moto("clips") else {
        return;
    };
    let endpoint = moto.endpoint();
    let etcd = EtcdServer::start();
    let rt = runtime();
    let etcd_client = etcd.client();
    let spool = temp_dir("cluster-spool-n2");
    let spool_arg = spool.display().to_string();
    let archive = [
        "--clip-archive",
        "s3://clips",
        "--s3-endpoint",
        &endpoint,
        "--s3-region",
        "us-east-1",
    ];
    let with_spool: Vec<&str> = archive
        .iter()
        .copied()
        .chain(["--spool-dir", spool_arg.as_str()])
        .collect();
    let ttl = TTL.to_string();
    let n1 = cluster_node(&etcd, "n1", &ttl, &archive, &CREDENTIALS);
    let n2 = cluster_node(&etcd, "n2", &ttl, &with_spool, &CREDENTIALS);

    // n1 owns the stream: some DVR, a complete clip, all shipped and archived.
    let stream = create_stream(n1.addr, "cam");
    let sid = stream["id"].as_u64().unwrap();
    let key = ingest_key(&stream);
    let ingest_path = path_of(stream["push_url_http"].as_str().unwrap()).to_owned();
    let top = LADDER[0].0;
    let mut push = ChildGuard(push_ladder(
        &format!("http://{}{ingest_path}", n1.addr),
        8,
        440,
    ));
    wait_chunks(n1.addr, sid, top, 3, Duration::from_secs(30));
    assert_eq!(owner(&etcd_client, &rt, sid).as_deref(), Some("n1"));
    let clip = clip_decodes(n1.addr, sid, 2);
    let clip_id = clip["id"].as_str().unwrap().to_owned();
    let clip_path = format!("/streaming/streams/{sid}/clip_recording/{clip_id}");
    let mp4_path = path_of(clip["mp4_master"].as_str().unwrap()).to_owned();
    let first_mp4 = expect(get(n1.addr, &mp4_path), 200);
    let _ = push.0.wait();
    poll("n1's DVR shipped", Duration::from_secs(10), || {
        (metric(n1.addr, "dvrclip_ship_pending_records") == 0
            && metric(n1.addr, "dvrclip_archive_clips_total") >= 1)
            .then_some(())
    });
    let shipped_view = dvr(n1.addr, sid);

    // n1 dies; an upload through n2 claims the stream there, which restores it.
    drop(n1);
    until_claimable(n2.addr, &key, Duration::from_secs(4 * TTL));
    assert_eq!(owner(&etcd_client, &rt, sid).as_deref(), Some("n2"));
    assert_eq!(metric(n2.addr, "dvrclip_ship_restores_total"), 1);
    let restored_view = dvr(n2.addr, sid);
    assert_eq!(
        chunk_counts(&restored_view),
        chunk_counts(&shipped_view),
        "restored {restored_view}, shipped {shipped_view}"
    );
    assert_eq!(
        expect(api(n2.addr, "GET", &clip_path, None), 200).json()["state"],
        "complete"
    );

    // More media into n2, after the restored DVR.
    let mut push = ChildGuard(push_ladder(
        &format!("http://{}{ingest_path}", n2.addr),
        6,
        660,
    ));
    poll(
        "new media after the restored DVR",
        Duration::from_secs(30),
        || (ranges(&dvr(n2.addr, sid), top).len() >= 2).then_some(()),
    );
    let status = push.0.wait().unwrap();
    assert!(status.success(), "ffmpeg pushing into n2: {status}");
    let before_kill = dvr(n2.addr, sid);
    let served = expect(get(n2.addr, &mp4_path), 200);
    assert!(served.body == first_mp4.body, "n2's MP4 differs from n1's");
    for name in [
        "dvrclip_spool_journal_errors_total",
        "dvrclip_spool_refused_total",
        "dvrclip_spool_sync_errors_total",
        "dvrclip_ship_restore_unspooled_chunks_total",
        "dvrclip_ship_restore_failures_total",
    ] {
        assert_eq!(metric(n2.addr, name), 0, "{name} before n2's kill");
    }

    // n2 dies and starts again on the same spool.
    drop(n2);
    let n2 = cluster_node(&etcd, "n2", &ttl, &with_spool, &CREDENTIALS);
    // Its spool's copy, answered while nobody owns the stream (n2 joins again
    // once its old lease, and the claim on it, has ended).
    let after = poll("n2 answering its DVR", Duration::from_secs(15), || {
        let r = api(
            n2.addr,
            "GET",
            &format!("/streaming/streams/{sid}/dvr"),
            None,
        );
        (r.status == 200).then(|| r.json())
    });
    println!(
        "chunks per rendition: shipped {:?}, restored {:?}, before n2's kill {:?}, after its restart {:?}",
        chunk_counts(&shipped_view),
        chunk_counts(&restored_view),
        chunk_counts(&before_kill),
        chunk_counts(&after)
    );
    assert_eq!(
        chunk_counts(&after),
        chunk_counts(&before_kill),
        "after {after}, before {before_kill}"
    );
    for (name, ..) in LADDER {
        let (want, got) = (ranges(&before_kill, name), ranges(&after, name));
        assert_eq!(got.len(), want.len(), "{name}: {after} vs {before_kill}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g.0 - w.0).abs() < 0.01 && (g.1 - w.1).abs() < 0.01,
                "{name}: {after} vs {before_kill}"
            );
        }
    }
    same_complete_clip(
        n2.addr,
        &clip_path,
        &mp4_path,
        &first_mp4.body,
        "the restart",
    );
    let (ok, errors) = ffmpeg_decode(&format!("http://{}{mp4_path}", n2.addr));
    assert!(ok && errors.is_empty(), "{errors}");
    assert!(metric(n2.addr, "dvrclip_spool_recovered_chunks") > 0);
    for name in [
        "dvrclip_spool_journal_errors_total",
        "dvrclip_spool_recovery_dropped_chunks",
        "dvrclip_spool_recovery_lost_clips",
        "dvrclip_spool_recovery_torn_bytes",
    ] {
        assert_eq!(metric(n2.addr, name), 0, "{name} after n2's restart");
    }

    // An upload claims the stream again: n2 continues its spool's copy.
    until_claimable(n2.addr, &key, Duration::from_secs(4 * TTL));
    assert_eq!(owner(&etcd_client, &rt, sid).as_deref(), Some("n2"));
    assert_eq!(metric(n2.addr, "dvrclip_ship_restores_total"), 0);
    assert_eq!(chunk_counts(&dvr(n2.addr, sid)), chunk_counts(&before_kill));
    let (start, _) = ranges(&after, top)[0];
    let old = create_complete_clip(n2.addr, sid, start.ceil() as i64 + 1, 2);
    links_decode(&old);
    assert_eq!(metric(n2.addr, "dvrclip_spool_journal_errors_total"), 0);

    // The re-claim ships the DVR n2 holds again (design/cluster.md, "DVR
    // shipping"): once it is written, a failover to another node restores all of
    // it, the media from before n2's restart and the clip included.
    let mut push = ChildGuard(push_ladder(
        &format!("http://{}{ingest_path}", n2.addr),
        4,
        880,
    ));
    let _ = push.0.wait();
    let before_failover = poll("n2's DVR shipped again", Duration::from_secs(15), || {
        let d = dvr(n2.addr, sid);
        (ranges(&d, top).len() > ranges(&before_kill, top).len()
            && metric(n2.addr, "dvrclip_ship_pending_records") == 0)
            .then_some(d)
    });
    let n1 = cluster_node(&etcd, "n1", &ttl, &archive, &CREDENTIALS);
    drop(n2);
    until_claimable(n1.addr, &key, Duration::from_secs(4 * TTL));
    assert_eq!(owner(&etcd_client, &rt, sid).as_deref(), Some("n1"));
    assert_eq!(metric(n1.addr, "dvrclip_ship_restores_total"), 1);
    let failed_over = dvr(n1.addr, sid);
    println!(
        "after a failover from the restarted n2: {:?} (n2 held {:?}; before its restart {:?})",
        chunk_counts(&failed_over),
        chunk_counts(&before_failover),
        chunk_counts(&before_kill)
    );
    assert_eq!(
        chunk_counts(&failed_over),
        chunk_counts(&before_failover),
        "failed over {failed_over}, n2 held {before_failover}"
    );
    let (held_start, _) = ranges(&before_failover, top)[0];
    let (first_start, _) = ranges(&failed_over, top)[0];
    assert!(
        (first_start - held_start).abs() < 0.01,
        "{failed_over} vs {before_failover}"
    );
    same_complete_clip(
        n1.addr,
        &clip_path,
        &mp4_path,
        &first_mp4.body,
        "the failover",
    );
    let old_back = expect(
        api(
            n1.addr,
            "GET",
            &format!(
                "/streaming/streams/{sid}/clip_recording/{}",
                old["id"].as_str().unwrap()
            ),
            None,
        ),
        200,
    )
    .json();
    assert_eq!(old_back["state"], "complete", "{old_back}");
    assert_eq!(metric(n1.addr, "dvrclip_ship_corrupt_objects_total"), 0);
    drop(n1);
    let _ = std::fs::remove_dir_all(&spool);
}
