//! Pulling from an RTMP server (issue 16 §3: "`rtmp://` URIs are pulled with the RTMP
//! client"): real ffmpeg publishes `-f flv` to a small relay written here on
//! `rml_rtmp`'s server session (publish in, play out, as nginx-rtmp or SRS do), and
//! `dvrclip_ingest::rtmp::pull` plays from it into a real engine; the rendition's init
//! and chunks, concatenated, decode in ffprobe.
//!
//! Why a relay and not ffmpeg's own `-listen 1` output: ffmpeg in that mode sends its
//! media on another message stream than the one its `createStream` answered, which
//! `rml_rtmp`'s client (rightly) ignores; servers in the field do not do that.

#[path = "../../../tests/common/require.rs"]
mod require;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dvrclip_engine::{Engine, StreamSettings};
use dvrclip_ingest::pull::{PullConfig, Puller};
use dvrclip_ingest::rtmp::{PullLimits, RENDITION, RtmpSource, pull};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;

/// One media message: video?, body, RTMP time.
type Media = (bool, Bytes, u32);

#[derive(Default)]
struct Relay {
    /// The sequence headers seen (video, audio), sent first to each player.
    headers: Vec<Media>,
    players: Vec<Sender<Media>>,
}

/// Serves one connection: a publisher's media goes to every player.
fn serve(mut socket: TcpStream, relay: Arc<Mutex<Relay>>) {
    socket
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut handshake = Handshake::new(PeerType::Server);
    let mut session: Option<ServerSession> = None;
    let mut playing: Option<(u32, Receiver<Media>)> = None;
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match socket.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => 0,
            Err(_) => return,
        };
        let mut results = Vec::new();
        if n > 0 {
            match &mut session {
                None => match handshake.process_bytes(&buf[..n]).unwrap() {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        socket.write_all(&response_bytes).unwrap();
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        socket.write_all(&response_bytes).unwrap();
                        let (mut s, first) =
                            ServerSession::new(ServerSessionConfig::new()).unwrap();
                        results.extend(first);
                        results.extend(s.handle_input(&remaining_bytes).unwrap());
                        session = Some(s);
                    }
                },
                Some(s) => results.extend(s.handle_input(&buf[..n]).unwrap()),
            }
        }
        let Some(s) = session.as_mut() else { continue };
        let mut pending = std::collections::VecDeque::from(results);
        while let Some(r) = pending.pop_front() {
            match r {
                ServerSessionResult::OutboundResponse(p) => {
                    if socket.write_all(&p.bytes).is_err() {
                        return;
                    }
                }
                ServerSessionResult::RaisedEvent(e) => match e {
                    ServerSessionEvent::ConnectionRequested { request_id, .. }
                    | ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                        pending.extend(s.accept_request(request_id).unwrap());
                    }
                    ServerSessionEvent::PlayStreamRequested {
                        request_id,
                        stream_id,
                        ..
                    } => {
                        pending.extend(s.accept_request(request_id).unwrap());
                        let (tx, rx) = channel();
                        let mut r = relay.lock().unwrap();
                        for h in &r.headers {
                            tx.send(h.clone()).unwrap();
                        }
                        r.players.push(tx);
                        playing = Some((stream_id, rx));
                    }
                    ServerSessionEvent::VideoDataReceived {
                        data, timestamp, ..
                    }
                    | ServerSessionEvent::AudioDataReceived {
                        data, timestamp, ..
                    } => {
                        let video = data.first().is_some_and(|b| b >> 4 != 0xa);
                        let m = (video, data.clone(), timestamp.value);
                        let mut r = relay.lock().unwrap();
                        // FLV: AVC/AAC packet type 0 is the sequence header.
                        if data.get(1) == Some(&0) {
                            r.headers.push(m.clone());
                        }
                        r.players.retain(|p| p.send(m.clone()).is_ok());
                    }
                    _ => {}
                },
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        if let Some((stream_id, rx)) = &playing {
            while let Ok((video, data, ms)) = rx.try_recv() {
                let t = RtmpTimestamp::new(ms);
                let p = if video {
                    s.send_video_data(*stream_id, data, t, false)
                } else {
                    s.send_audio_data(*stream_id, data, t, false)
                };
                if socket.write_all(&p.unwrap().bytes).is_err() {
                    return;
                }
            }
        }
    }
}

fn frames_by_kind(path: &str) -> (u64, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames"])
        .args(["-show_entries", "stream=codec_type,nb_read_frames"])
        .args(["-of", "csv=p=0", path])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = (0, 0);
    for line in text.lines() {
        match line.split_once(',') {
            Some(("video", n)) => counts.0 = n.trim().parse().unwrap_or(0),
            Some(("audio", n)) => counts.1 = n.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    counts
}

/// The relay on a loopback port, accepting until the test ends.
fn start_relay() -> (std::net::SocketAddr, Arc<Mutex<Relay>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = Arc::new(Mutex::new(Relay::default()));
    let r = relay.clone();
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            let r = r.clone();
            std::thread::spawn(move || serve(socket, r));
        }
    });
    (addr, relay)
}

/// ffmpeg publishing `secs` of H.264 + AAC to the relay as `live/source`.
fn publish(addr: std::net::SocketAddr, secs: u64) -> std::process::Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "60"])
        .args([
            "-c:a",
            "aac",
            "-f",
            "flv",
            &format!("rtmp://{addr}/live/source"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning ffmpeg")
}

/// Waits until the relay has both sequence headers (ffmpeg is publishing).
fn wait_for_headers(relay: &Mutex<Relay>) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while relay.lock().unwrap().headers.len() < 2 {
        assert!(std::time::Instant::now() < until, "ffmpeg never published");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pull_from_an_rtmp_server() {
    if !(require::require_tool("ffmpeg") && require::require_tool("ffprobe")) {
        return;
    }
    let (addr, relay) = start_relay();
    let secs = 6;
    let mut publisher = publish(addr, secs);
    wait_for_headers(&relay);

    let engine = Engine::default();
    let id = engine
        .create_stream(StreamSettings::named("pulled"))
        .unwrap()
        .id;
    let source = RtmpSource::parse(&format!("rtmp://{addr}/live/source")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The relay never closes a player: the pull ends on its idle timeout once ffmpeg
    // is done, which flushes what the fragmenter held.
    let limits = PullLimits {
        idle: Duration::from_secs(2),
        ..PullLimits::default()
    };
    let ended = runtime.block_on(pull(&engine, id, &source, &limits));
    let _ = publisher.wait();
    assert!(
        matches!(
            ended,
            Err(dvrclip_ingest::rtmp::RtmpPullError::Timeout("idle"))
        ),
        "{ended:?}"
    );

    let chunks = engine.rendition_chunks(id, RENDITION).unwrap();
    assert!(chunks.len() >= 2, "{} chunks", chunks.len());
    let mut file = chunks[0].init().bytes.to_vec();
    for c in &chunks {
        file.extend_from_slice(c.bytes());
    }
    let dir = std::env::temp_dir().join(format!("dvrclip-rtmp-pull-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pulled.mp4");
    std::fs::write(&path, &file).unwrap();
    let (video, audio) = frames_by_kind(path.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    // Played from the first keyframe after the play began (a GOP is 2 s): most of
    // the frames ffmpeg sent, and none invented.
    eprintln!(
        "pulled: {} chunks, {video} video frames, {audio} audio frames",
        chunks.len()
    );
    assert!(
        video >= 30 * (secs - 2) && video <= 30 * secs,
        "{video} video frames"
    );
    assert!(audio > 0);
}

/// The pull of a stream with `pull: true` and an `rtmp://` `uri` (`Puller`, the
/// task the server runs): it plays from the relay into the `rtmp` rendition, and a
/// dead first URI is passed over for the second.
#[test]
fn a_pull_follows_an_rtmp_uri() {
    if !require::require_tool("ffmpeg") {
        return;
    }
    let (addr, relay) = start_relay();
    let mut publisher = publish(addr, 8);
    wait_for_headers(&relay);
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("rtmp://127.0.0.1:{dead}/live/gone rtmp://{addr}/live/source");
    let engine = Arc::new(Engine::default());
    let id = engine
        .create_stream(StreamSettings::named("pulled"))
        .unwrap()
        .id;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let chunks = runtime.block_on(async {
        let puller = Puller::new(PullConfig::default()).unwrap();
        let handle = puller.start(Arc::clone(&engine), id, &uri).unwrap();
        let until = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let held = engine.rendition_chunks(id, RENDITION).unwrap_or_default();
            if held.len() >= 2 {
                assert_eq!(
                    handle.status().in_use_index(),
                    Some(1),
                    "the second URI plays"
                );
                assert!(handle.status().switches.load(Relaxed) >= 1);
                break held.len();
            }
            assert!(tokio::time::Instant::now() < until, "no chunks pulled");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let _ = publisher.kill();
    let _ = publisher.wait();
    assert!(chunks >= 2);
}

#[test]
fn nothing_listening_is_an_io_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let engine = Engine::default();
    let id = engine.create_stream(StreamSettings::named("p")).unwrap().id;
    let source = RtmpSource::parse(&format!("rtmp://127.0.0.1:{port}/live/k")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = runtime.block_on(pull(&engine, id, &source, &PullLimits::default()));
    assert!(
        matches!(r, Err(dvrclip_ingest::rtmp::RtmpPullError::Io(_))),
        "{r:?}"
    );
    assert!(engine.renditions(id).unwrap().is_empty());
}
