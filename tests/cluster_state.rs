//! What the nodes of a cluster keep consistent between them, with the real parts
//! (`design/cluster.md`): etcd on loopback, `dvrclip serve` nodes joined to it,
//! nginx in front of their HTTP, ffmpeg as encoder and as a live HLS origin, moto
//! as the bucket the nodes share for their videos.
//!
//! - `videos_across_nodes`: two streams owned by two of three nodes cut
//!   `vod_required` clips; their `video_id`s never meet, and every video is read
//!   (`GET /streaming/videos/{id}`, its MP4) through any node and through nginx;
//!   one of the two is SIGKILLed: past its lease its videos are still listed and
//!   read through the live nodes and nginx, from its records in the shared bucket
//!   (same Video object, the MP4 byte-identical and decoding, a range of it, its
//!   HLS form decoding), and a rename or delete of one is 503 naming the node;
//!   the third node hung (SIGSTOP), a list asking it is answered at its TTL;
//!   etcd away, a node hands out what its blocks hold, then answers 503 with the
//!   reason;
//! - `pulled_streams_fail_over`: the node pulling a `pull: true` stream is
//!   SIGKILLed; a live node claims the stream and pulls it, its DVR fills again.
//!
//! The tests share one machine's cores: they run one at a time.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::moto::CREDENTIALS;
use common::*;
use dvrclip::cluster::Etcd;
use serde_json::Value;

/// One test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// `n` nodes joined to `etcd` (lease TTL 2 s), their public URL `public`; with
/// `bucket` (moto's endpoint), their videos in its bucket `videos`.
fn nodes(etcd: &EtcdServer, n: usize, public: &str, bucket: Option<&str>) -> Vec<Server> {
    (1..=n)
        .map(|i| {
            let mut extra = vec!["--public-url", public];
            if let Some(endpoint) = bucket {
                extra.extend(["--s3-bucket", "videos", "--s3-endpoint", endpoint]);
                extra.extend(["--s3-region", "us-east-1"]);
            }
            cluster_node(etcd, &format!("n{i}"), "2", &extra, &CREDENTIALS)
        })
        .collect()
}

fn owner(etcd: &Etcd, rt: &tokio::runtime::Runtime, sid: u64) -> Option<String> {
    let key = format!("/dvrclip/owners/{sid}");
    rt.block_on(etcd.get(key.as_bytes()))
        .expect("etcd get")
        .map(|kv| String::from_utf8(kv.value).unwrap())
}

/// A `vod_required` clip of `sid` (a second of what its top rendition holds),
/// through `addr`: the answer's status and body.
fn vod_clip(addr: SocketAddr, sid: u64) -> (u16, Value) {
    let d = dvr(addr, sid);
    let r = d["renditions"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == LADDER[0].0))
        .expect("the top rendition");
    let start = r["ranges"][0]["start"].as_f64().unwrap().ceil() as i64 + 1;
    let body = format!(r#"{{"start": {start}, "duration": 1, "vod_required": true}}"#);
    let resp = api(
        addr,
        "PUT",
        &format!("/streaming/streams/{sid}/clip_recording"),
        Some(&body),
    );
    let status = resp.status;
    let text = resp.text();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn videos_across_nodes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !(have_ffmpeg() && require_tool("etcd") && require_tool(NGINX)) {
        return;
    }
    let Some(moto) = require_moto("videos") else {
        return;
    };
    let mut etcd = EtcdServer::start();
    let lb_port = free_port();
    let public = format!("http://127.0.0.1:{lb_port}");
    let mut servers: Vec<Option<Server>> = nodes(&etcd, 3, &public, Some(&moto.endpoint()))
        .into_iter()
        .map(Some)
        .collect();
    let http: Vec<SocketAddr> = servers.iter().map(|s| s.as_ref().unwrap().addr).collect();
    let nginx = Nginx::start(lb_port, &http);
    let lb = nginx.addr;

    // Stream i is pushed to node i directly, so n1 and n2 own one each.
    let mut sids = Vec::new();
    let mut pushes = Vec::new();
    for (i, addr) in http[..2].iter().enumerate() {
        let s = create_stream(lb, &format!("cam{i}"));
        let sid = s["id"].as_u64().unwrap();
        let url = format!("http://{addr}/ingest/{}", ingest_key(&s));
        pushes.push(ChildGuard(push_ladder(&url, 40, 440 + 220 * i as u32)));
        sids.push(sid);
    }
    for &sid in &sids {
        wait_chunks(lb, sid, LADDER[0].0, 3, Duration::from_secs(30));
    }
    let rt = runtime();
    let client = etcd.client();
    let owners: Vec<String> = sids
        .iter()
        .map(|&sid| owner(&client, &rt, sid).expect("owned"))
        .collect();
    assert_eq!(owners, ["n1", "n2"]);

    // Clips of both streams, cut alternately through nginx: each node's ids.
    let mut videos = Vec::new();
    for round in 0..6 {
        let sid = sids[round % 2];
        let (status, clip) = vod_clip(lb, sid);
        assert_eq!(status, 200, "{clip}");
        videos.push(clip["video_id"].as_u64().expect("a video id"));
    }
    let mut unique = videos.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), videos.len(), "video ids met: {videos:?}");
    println!("video ids: {videos:?}");

    // Every video is read through every node and through nginx, ready in the end.
    let mut held = BTreeMap::new();
    for &v in &videos {
        let path = format!("/streaming/videos/{v}");
        let bodies: Vec<Value> = poll("the video ready", Duration::from_secs(30), || {
            let bodies: Vec<Value> = http
                .iter()
                .chain([&lb])
                .map(|a| expect(api(*a, "GET", &path, None), 200).json())
                .collect();
            bodies
                .iter()
                .all(|b| b["status"] == "ready")
                .then_some(bodies)
        });
        for b in &bodies {
            assert_eq!(b["id"].as_u64(), Some(v), "{b}");
            assert_eq!(b["name"], bodies[0]["name"]);
        }
        let mp4: Vec<Vec<u8>> = http
            .iter()
            .map(|a| expect(get(*a, &format!("/vod/{v}.mp4")), 200).body)
            .collect();
        assert!(
            !mp4[0].is_empty() && mp4.iter().all(|m| *m == mp4[0]),
            "video {v}'s MP4 differs"
        );
        held.insert(v, (bodies[0].clone(), mp4[0].clone()));
    }
    assert_eq!(api(lb, "GET", "/streaming/videos/999999", None).status, 404);

    // The list through any node is every node's videos, by id, paged.
    let by_id: Vec<u64> = held.keys().copied().collect();
    let listed = |a: SocketAddr, why: &str| {
        let list = expect(api(a, "GET", "/streaming/videos", None), 200).json();
        let ids: Vec<u64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, by_id, "the list through {a} {why}");
        let second = expect(api(a, "GET", "/streaming/videos?page=2", None), 200).json();
        assert_eq!(second, serde_json::json!([]), "page 2 through {a} {why}");
        list
    };
    for a in http.iter().chain([&lb]) {
        listed(*a, "");
    }

    // n2 dies: past its lease, its videos are read from its records in the bucket.
    let dead = servers[1].take().unwrap();
    dead.signal("KILL");
    let killed = Instant::now();
    drop(dead);
    drop(pushes.pop());
    poll("n2's lease gone", Duration::from_secs(10), || {
        let key = b"/dvrclip/nodes/n2";
        rt.block_on(client.get(key))
            .expect("etcd")
            .is_none()
            .then_some(())
    });
    let gone = killed.elapsed();
    let alive = [http[0], http[2], lb];
    for a in alive {
        let list = listed(a, "after n2 died");
        for v in list.as_array().unwrap() {
            let id = v["id"].as_u64().unwrap();
            assert_eq!(v["name"], held[&id].0["name"], "{v}");
            assert_eq!(v["status"], "ready", "{v}");
        }
    }
    let of_n2: Vec<u64> = videos.iter().skip(1).step_by(2).copied().collect();
    for &v in &of_n2 {
        let (before, mp4) = &held[&v];
        for a in alive {
            let now = expect(api(a, "GET", &format!("/streaming/videos/{v}"), None), 200).json();
            assert_eq!(now, *before, "video {v} through {a} after n2 died");
            let got = expect(get(a, &format!("/vod/{v}.mp4")), 200);
            assert!(
                got.body == *mp4,
                "video {v}'s MP4 through {a} after n2 died"
            );
        }
    }
    let v = of_n2[0];
    let (_, mp4) = &held[&v];
    let ranged = request(
        lb,
        "GET",
        &format!("/vod/{v}.mp4"),
        &[("Range", "bytes=100-1099")],
        None,
    );
    let ranged = expect(ranged, 206);
    assert!(ranged.body == mp4[100..1100], "a range of video {v}'s MP4");
    for file in ["mp4", "m3u8"] {
        let (ok, errors) = ffmpeg_decode(&format!("http://{}/vod/{v}.{file}", http[2]));
        assert!(
            ok && errors.is_empty(),
            "video {v}.{file} decodes: {errors}"
        );
    }
    let rename = api(
        lb,
        "PATCH",
        &format!("/streaming/videos/{v}"),
        Some(r#"{"name":"x"}"#),
    );
    let delete = api(http[0], "DELETE", &format!("/streaming/videos/{v}"), None);
    for refused in [rename, delete] {
        let refused = expect(refused, 503).json();
        let why = refused["error"].as_str().unwrap_or("");
        assert!(
            why.contains("node n2") && why.contains("is down"),
            "{refused}"
        );
    }
    println!(
        "n2's lease gone {gone:?} after the kill; its videos {of_n2:?} listed and read \
         from the bucket {:?} after it",
        killed.elapsed()
    );

    // n3 hangs (SIGSTOP: its kernel still takes connections): a list through n1
    // asks it, and is answered once n3's lease has ended, not at the forwarder's
    // 30 s read timeout. n3 holds no video, so the list is the same.
    let hung = servers[2].take().unwrap();
    hung.signal("STOP");
    let stopped = Instant::now();
    listed(http[0], "while n3 hangs");
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the list waited {took:?} on a hung node"
    );
    println!("the list through n1 answered {took:?} after n3 hung");
    hung.signal("KILL");
    drop(hung);

    // etcd away: n1 hands out what its blocks hold (its stream's clips need no
    // etcd), then refuses with the reason instead of an id another node may draw.
    etcd.stop();
    let mut handed = 0;
    let refusal = loop {
        let (status, body) = vod_clip(http[0], sids[0]);
        match status {
            200 => handed += 1,
            503 => break body,
            s => panic!("{s} {body}"),
        }
        assert!(handed <= 64, "more ids than two blocks hold");
    };
    assert!(
        refusal["error"].as_str().unwrap_or("").contains("video id"),
        "{refusal}"
    );
    println!("etcd away: {handed} more video ids handed out, then {refusal}");
    // Clips without a video are still cut.
    let d = dvr(http[0], sids[0]);
    let start = d["renditions"][0]["ranges"][0]["start"]
        .as_f64()
        .unwrap()
        .ceil() as i64
        + 1;
    let body = format!(r#"{{"start": {start}, "duration": 1}}"#);
    let path = format!("/streaming/streams/{}/clip_recording", sids[0]);
    expect(api(http[0], "PUT", &path, Some(&body)), 200);
    drop(pushes);
}

#[test]
fn pulled_streams_fail_over() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !(have_ffmpeg() && require_tool("etcd") && require_tool(NGINX)) {
        return;
    }
    let dir = temp_dir("cluster-pull-origin");
    let ffmpeg = write_hls_ladder(&dir, 60);
    let (_origin, port) = http_origin(&dir);
    let etcd = EtcdServer::start();
    let lb_port = free_port();
    let public = format!("http://127.0.0.1:{lb_port}");
    let mut servers: Vec<Option<Server>> = nodes(&etcd, 3, &public, None)
        .into_iter()
        .map(Some)
        .collect();
    let http: Vec<SocketAddr> = servers.iter().map(|s| s.as_ref().unwrap().addr).collect();
    let nginx = Nginx::start(lb_port, &http);
    let lb = nginx.addr;
    poll("ffmpeg's first playlists", Duration::from_secs(15), || {
        ["master.m3u8", "v0/index.m3u8", "v1/index.m3u8"]
            .iter()
            .all(|f| dir.join(f).exists())
            .then_some(())
    });
    let uri = format!("http://127.0.0.1:{port}/master.m3u8");
    let body = format!(r#"{{"name":"pulled","pull":true,"uri":"{uri}"}}"#);
    let created = expect(api(http[0], "POST", "/streaming/streams", Some(&body)), 201).json();
    let sid = created["id"].as_u64().unwrap();
    let rt = runtime();
    let client = etcd.client();
    assert_eq!(owner(&client, &rt, sid).as_deref(), Some("n1"));
    wait_chunks(lb, sid, "v0", 2, Duration::from_secs(30));

    // The pulling node dies: a live node claims the stream and pulls it.
    let dead = servers[0].take().unwrap();
    dead.signal("KILL");
    let killed = std::time::Instant::now();
    drop(dead);
    let new_owner = poll(
        "a live node owning the stream",
        Duration::from_secs(20),
        || owner(&client, &rt, sid).filter(|o| o != "n1"),
    );
    let claimed = killed.elapsed();
    let alive = [http[1], http[2]];
    let r = wait_chunks(alive[0], sid, "v0", 2, Duration::from_secs(30));
    println!(
        "taken over by {new_owner} {claimed:?} after the kill (polled every 0.5 s), \
         2 chunks pulled again {:?} after it: {r}",
        killed.elapsed()
    );
    let taken: u64 = alive
        .iter()
        .map(|a| metric(*a, "dvrclip_cluster_pulls_taken_over_total"))
        .sum();
    assert_eq!(taken, 1);
    // Only the owner pulls it.
    let pulling: Vec<bool> = alive
        .iter()
        .map(|a| {
            let m = expect(get(*a, "/metrics"), 200).text();
            m.contains(&format!("dvrclip_pull_segments_total{{stream=\"{sid}\"}}"))
        })
        .collect();
    assert_eq!(pulling.iter().filter(|p| **p).count(), 1, "{pulling:?}");
    drop(ffmpeg);
    let _ = std::fs::remove_dir_all(&dir);
}
