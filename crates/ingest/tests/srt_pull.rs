//! Pulling over SRT as a caller (issue 17: "`srt://` URIs pulled as a caller"): real
//! ffmpeg serves MPEG-TS as an SRT listener (`mode=listener`, as an encoder or a
//! gateway in listener mode does), a pull with that `srt://` URI (`Puller`, the task
//! the server runs for `pull: true`) calls it, and the `srt` rendition's init and
//! chunks, concatenated, decode in ffprobe; the same with a source that encrypts
//! (AES-256, the passphrase in the URI), and a wrong passphrase pulls nothing.

#[path = "../../../tests/common/require.rs"]
mod require;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dvrclip_engine::{Engine, StreamSettings};
use dvrclip_ingest::pull::{PullConfig, Puller};
use dvrclip_ingest::srt::RENDITION;

#[test]
fn a_pull_calls_an_srt_listener() {
    if !(require::require_tool("ffmpeg") && require::require_tool("ffprobe")) {
        return;
    }
    let chunks = pull_from_ffmpeg("", "", 3, Duration::from_secs(25));
    assert_decodes(&chunks, "called");
}

#[test]
fn a_pull_calls_an_encrypting_srt_listener() {
    if !(require::require_tool("ffmpeg") && require::require_tool("ffprobe")) {
        return;
    }
    let secret = "&passphrase=correct-horse-battery&pbkeylen=32";
    let wrong = "&passphrase=battery-horse-wrong&pbkeylen=32";
    // A wrong passphrase: the handshake fails, and keeps failing, nothing is stored.
    let nothing = pull_from_ffmpeg(secret, wrong, 1, Duration::from_secs(6));
    assert!(
        nothing.is_empty(),
        "{} chunks with a wrong passphrase",
        nothing.len()
    );
    let chunks = pull_from_ffmpeg(secret, secret, 3, Duration::from_secs(25));
    assert_decodes(&chunks, "encrypted");
}

/// ffmpeg serves MPEG-TS as an SRT listener with `listener_query` appended to its
/// URL; a `Puller` calls it with `pull_query` appended to the URI until `want`
/// chunks are held or `within` has passed; the chunks held then.
fn pull_from_ffmpeg(
    listener_query: &str,
    pull_query: &str,
    want: usize,
    within: Duration,
) -> Vec<Arc<dvrclip_engine::Chunk>> {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut source = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args([
            "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
        ])
        .args(["-c:a", "aac", "-f", "mpegts"])
        .arg(format!(
            "srt://127.0.0.1:{port}?mode=listener&streamid=cam1{listener_query}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning ffmpeg");
    let engine = Arc::new(Engine::default());
    let id = engine
        .create_stream(StreamSettings::named("called"))
        .unwrap()
        .id;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri = format!("srt://127.0.0.1:{port}?streamid=cam1{pull_query}");
    let chunks = runtime.block_on(async {
        // ffmpeg opens its listener a moment after it starts: the pull's round robin
        // calls again until it answers.
        let config = PullConfig {
            connect_timeout: Duration::from_secs(2),
            retry_backoff: Duration::from_millis(200),
            ..PullConfig::default()
        };
        let _handle = Puller::new(config)
            .unwrap()
            .start(Arc::clone(&engine), id, &uri)
            .unwrap();
        let until = tokio::time::Instant::now() + within;
        loop {
            let held = engine.rendition_chunks(id, RENDITION).unwrap_or_default();
            if held.len() >= want || tokio::time::Instant::now() >= until {
                break held;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let _ = source.kill();
    let _ = source.wait();
    chunks
}

/// The chunks, after their init segment, decode in ffprobe: H.264, three one-second
/// GOPs at least.
fn assert_decodes(chunks: &[Arc<dvrclip_engine::Chunk>], name: &str) {
    assert!(chunks.len() >= 3, "{} chunks pulled", chunks.len());
    let mut file = chunks[0].init().bytes.to_vec();
    for c in chunks {
        file.extend_from_slice(c.bytes());
    }
    let dir = std::env::temp_dir().join(format!("dvrclip-srt-pull-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.mp4"));
    std::fs::write(&path, &file).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (codec, frames) = text.split_once(',').expect("a video stream");
    assert_eq!(codec, "h264");
    // Three chunks of one-second GOPs at least: 60 frames or more, all decodable.
    let frames: u64 = frames.parse().unwrap();
    assert!(frames >= 60, "{frames} frames");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
