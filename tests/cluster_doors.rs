//! The push doors in a cluster with the real parts (`design/cluster.md` "RTMP and
//! SRT in a cluster"): etcd on loopback, three `dvrclip serve --rtmp-listen
//! --srt-listen` nodes, nginx balancing HTTP and, through its `stream` module, TCP
//! (RTMP) or UDP (SRT) round robin to the nodes' doors; ffmpeg publishes through
//! nginx three times (`-f flv` to RTMP, `-f mpegts` to SRT), so each publish lands
//! on the next node and two of them on a node that does not own the stream.
//!
//! `rtmp_publishes_through_nginx_reach_the_owner`, `srt_…` the same: the first
//! publish claims the stream on the node it lands on; the others are ended there,
//! fragmented, and sent to the owner as HTTP uploads
//! (`dvrclip_cluster_door_uploads_total` grows, only one claim is ever made); every
//! publish's media is in the owner's DVR, and a clip of each publish, cut through
//! nginx, decodes.

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A push door: its rendition, and ffmpeg's output format for it.
#[derive(Clone, Copy)]
enum Door {
    Rtmp,
    Srt,
}

impl Door {
    fn rendition(self) -> &'static str {
        match self {
            Door::Rtmp => "rtmp",
            Door::Srt => "srt",
        }
    }
}

/// `ffmpeg -re` publishing test video and a tone to `url` for `secs`.
fn publish(door: Door, url: &str, secs: u32) -> Child {
    let format = match door {
        Door::Rtmp => "flv",
        Door::Srt => "mpegts",
    };
    publish_test_signal(url, format, "320x180", secs)
}

/// The rendition's last range in the DVR view through `lb`.
fn last_range(lb: SocketAddr, sid: u64, door: Door) -> Option<Value> {
    let d = dvr(lb, sid);
    let r = d["renditions"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == door.rendition())?
        .clone();
    r["ranges"].as_array()?.last().cloned()
}

#[test]
fn rtmp_publishes_through_nginx_reach_the_owner() {
    publishes_through_nginx_reach_the_owner(Door::Rtmp);
}

#[test]
fn srt_publishes_through_nginx_reach_the_owner() {
    publishes_through_nginx_reach_the_owner(Door::Srt);
}

fn publishes_through_nginx_reach_the_owner(door: Door) {
    if !(have_ffmpeg() && require_tool("etcd") && require_nginx_stream()) {
        return;
    }
    let etcd = EtcdServer::start();
    let rt = runtime();
    let etcd_client = etcd.client();
    let (lb_port, lb_door) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{lb_port}");
    let nodes: Vec<(String, Server, SocketAddr)> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| {
            // One port for both doors: RTMP's is TCP, SRT's UDP.
            let rtmp = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let door = rtmp.to_string();
            let extra = [
                "--public-url",
                &public,
                "--rtmp-listen",
                &door,
                "--srt-listen",
                &door,
            ];
            let s = cluster_node(&etcd, id, "2", &extra, &[]);
            (id.to_string(), s, rtmp)
        })
        .collect();
    let http: Vec<SocketAddr> = nodes.iter().map(|(_, s, _)| s.addr).collect();
    let doors: Vec<SocketAddr> = nodes.iter().map(|(_, _, r)| *r).collect();
    let nginx = match door {
        Door::Rtmp => Nginx::start_with_tcp(lb_port, &http, Some((lb_door, &doors))),
        Door::Srt => Nginx::start_with_streams(lb_port, &http, None, Some((lb_door, &doors))),
    };
    let lb = nginx.addr;

    let stream = create_stream(lb, "cam");
    let sid = stream["id"].as_u64().unwrap();
    let key = ingest_key(&stream);
    let url = match door {
        Door::Rtmp => format!("rtmp://127.0.0.1:{lb_door}/live/{key}"),
        Door::Srt => format!("srt://127.0.0.1:{lb_door}?streamid={key}"),
    };

    // Three publishes, one after another: round robin puts each on the next node.
    let mut ends = Vec::new();
    for round in 0..3 {
        let mut ffmpeg = ChildGuard(publish(door, &url, 7));
        let status = ffmpeg.0.wait().expect("ffmpeg");
        let mut err = String::new();
        if let Some(mut e) = ffmpeg.0.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "publish {round}: {status} {err}");
        // The publish's last fragments reach the owner shortly after it ends.
        let end = poll("the publish in the DVR", Duration::from_secs(15), || {
            let r = last_range(lb, sid, door)?;
            let (start, end) = (r["start"].as_f64()?, r["end"].as_f64()?);
            let after = ends.last().is_none_or(|e| start > *e);
            (after && end - start >= 5.0).then_some((start, end))
        });
        ends.push(end.1);
        let owner = rt
            .block_on(etcd_client.get(format!("/dvrclip/owners/{sid}").as_bytes()))
            .expect("etcd get")
            .map(|kv| String::from_utf8(kv.value).unwrap());
        println!("publish {round}: {end:?} in the DVR, owner {owner:?}");
        // A clip of this publish, cut and decoded through nginx.
        let start = end.0.ceil() as i64 + 1;
        let clip = create_complete_clip(lb, sid, start, 3);
        for link in ["mp4_master", "hls_master"] {
            let u = clip[link].as_str().expect("link");
            let (ok, errors) = ffmpeg_decode(u);
            assert!(ok && errors.is_empty(), "{u}: {errors}");
        }
    }

    let sum = |name: &str| http.iter().map(|a| metric(*a, name)).sum::<u64>();
    assert_eq!(sum("dvrclip_cluster_claims_total"), 1);
    assert_eq!(sum("dvrclip_cluster_owned_streams"), 1);
    assert_eq!(sum("dvrclip_cluster_door_forward_failures_total"), 0);
    let uploads = sum("dvrclip_cluster_door_uploads_total");
    let micros = sum("dvrclip_cluster_door_upload_micros_total");
    let bytes = sum("dvrclip_cluster_door_bytes_total");
    println!(
        "forwarded: {uploads} uploads, {bytes} bytes, {} us per upload on average",
        micros / uploads.max(1)
    );
    // Two publishes of three landed on a node that does not own the stream.
    // (each: its init and at least three 2 s fragments of its 7 s).
    assert!(uploads >= 2 * 4, "{uploads} uploads forwarded");
    let publishes = sum(match door {
        Door::Rtmp => "dvrclip_rtmp_publishes_total",
        Door::Srt => "dvrclip_srt_publishes_total",
    });
    assert_eq!(publishes, 3);
}
