//! The SRT door under a handshake flood (issue 17: "memory stays bounded under any
//! input"): `srt-tokio`'s listener keeps a session per source address that never
//! expires, so the door replaces the listener when the sessions it may hold pass
//! `SrtLimits::max_sessions`. Induction packets from hundreds of loopback addresses
//! (each a distinct source, as spoofed ones would be) make it do so, with nobody
//! connected and with a real ffmpeg publisher connected; after each, ffmpeg
//! publishes again and its media is stored.

#[path = "../../../tests/common/require.rs"]
mod require;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use dvrclip_engine::{Engine, StreamSettings};
use dvrclip_ingest::publishers::Publishers;
use dvrclip_ingest::srt::{RENDITION, SrtDoor, SrtLimits};

/// An SRT HSv5 induction request from `socket_id` (a handshake control packet,
/// version 4, extension field 2, type induction).
fn induction(socket_id: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    for word in [0x8000_0000u32, 0, 0, 0, 4] {
        p.extend(word.to_be_bytes());
    }
    p.extend(0u16.to_be_bytes());
    p.extend(2u16.to_be_bytes());
    for word in [socket_id.wrapping_mul(7), 1500, 8192, 1, socket_id, 0] {
        p.extend(word.to_be_bytes());
    }
    p.extend([127, 0, 0, 1]);
    p.extend([0u8; 12]);
    p
}

/// One induction from each of `n` loopback addresses starting at `127.{first}.0.1`.
fn flood(to: SocketAddr, first: u8, n: u32) {
    for i in 0..n {
        let ip = Ipv4Addr::new(
            127,
            first + (i >> 16) as u8,
            (i >> 8) as u8,
            (i as u8).max(1),
        );
        if let Ok(s) = UdpSocket::bind((ip, 0)) {
            let _ = s.send_to(&induction(i + 1), to);
        }
    }
}

/// ffmpeg publishing `secs` of H.264/AAC MPEG-TS to `url`, in real time.
fn publish(url: &str, secs: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "30"])
        .args(["-c:a", "aac", "-f", "mpegts", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning ffmpeg")
}

/// Waits up to `secs` for `done`, polling every 100 ms.
async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            tokio::time::Instant::now() < end,
            "no {what} within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_handshake_flood_replaces_the_listener_and_the_door_still_takes_callers() {
    if !require::require_tool("ffmpeg") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = Arc::new(Engine::default());
        let stream = engine
            .create_stream(StreamSettings::named("flooded"))
            .unwrap();
        let limits = SrtLimits {
            max_sessions: 400,
            restart_delay: Duration::from_millis(100),
            ..SrtLimits::default()
        };
        let at: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let socket = SrtDoor::bind(at, &limits).await.unwrap();
        let to = socket.local_addr().unwrap();
        let door = SrtDoor::new(
            Arc::clone(&engine),
            limits,
            None,
            Arc::new(Publishers::default()),
        )
        .unwrap();
        tokio::spawn(Arc::clone(&door).serve(socket, std::future::pending()));
        let url = format!("srt://{to}?streamid={}", stream.ingest_key);
        let chunks = || {
            engine
                .rendition_chunks(stream.id, RENDITION)
                .map_or(0, |c| c.len())
        };
        let recycles = || door.counters.listener_recycles.load(Relaxed);

        // Nobody connected: a quarter of the cap is enough.
        tokio::task::spawn_blocking(move || flood(to, 1, 300))
            .await
            .unwrap();
        until("replacement with nobody connected", 10, || recycles() >= 1).await;
        let mut first = publish(&url, 20);
        until("chunks after the replacement", 20, || chunks() >= 2).await;

        // A publisher connected: past the cap itself; it is dropped with the
        // listener, and a new publish is taken and stored.
        tokio::task::spawn_blocking(move || flood(to, 2, 600))
            .await
            .unwrap();
        until("replacement with a caller connected", 10, || {
            recycles() >= 2
        })
        .await;
        let _ = first.kill();
        let _ = first.wait();
        until("the dropped caller gone", 15, || {
            door.counters.open.load(Relaxed) == 0
        })
        .await;
        let held = chunks();
        let mut second = publish(&url, 20);
        until("chunks from a caller after the flood", 20, || {
            chunks() >= held + 2
        })
        .await;
        let _ = second.kill();
        let _ = second.wait();
        assert_eq!(door.counters.listener_restarts.load(Relaxed), 0);
    });
}
