//! Embedding dvrclip's HTTP side in a media server built on axum: the server owns
//! the engine and its own routes; dvrclip's [`Service`] (the Gcore API, HTTP ingest
//! and the public clip, live and VOD links) is mounted under `/clips`, behind the
//! host's own authorization check.
//!
//! It feeds the committed 3-rendition ladder (`tests/fixtures/ladder`, made by
//! ffmpeg) into the engine through the same upload door an encoder uses, cuts a
//! clip through the mounted API, then downloads its MP4 link over TCP as a player
//! would and checks it. `cargo run --example embed_axum -- --serve` keeps serving.
//!
//! ```text
//! cargo run --example embed_axum [-- --serve]
//! ```

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use dvrclip::engine::{Engine, EngineConfig, ManualClock, StreamId, WallTime};
use dvrclip::ingest::Upload;
use dvrclip::server::auth::AuthError;
use dvrclip::server::{App, Config, Service};
use http::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RENDITIONS: [&str; 3] = ["media_1_144", "media_2_180", "media_3_240"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let keep_serving = std::env::args().any(|a| a == "--serve");
    let (addr, mp4) = run(keep_serving).await?;
    println!("served {} bytes of MP4 from http://{addr}/clips", mp4.len());
    Ok(())
}

/// Mounts the service, cuts a clip through it and downloads the clip's MP4.
async fn run(keep_serving: bool) -> Result<(std::net::SocketAddr, Vec<u8>), Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    // The host's engine, on a clock set just after the fixture was recorded so its
    // dates are "recent"; a real server passes the system clock.
    let start = WallTime::parse_program_date_time("2026-11-25T05:59:30Z").ok_or("bad date")?;
    let clock = Arc::new(ManualClock::new(start));
    let engine = Arc::new(Engine::with_clock(EngineConfig::default(), clock.clone()));
    let stream = feed_ladder(&engine, &clock)?;

    // Links are built under the mount point; the API answers the host's own token.
    let config = Config::embedded(&format!("http://{addr}/clips"), "unused")?;
    let app = App::builder(config, engine.clone())
        .auth(Arc::new(|headers: &HeaderMap| {
            match headers.get("x-host-token").map(|v| v.as_bytes()) {
                Some(b"editor") => Ok(()),
                Some(_) => Err(AuthError::Invalid),
                None => Err(AuthError::Missing),
            }
        }))
        .build();
    let router = Router::new()
        .route("/", get(|| async { "the host's own page\n" }))
        .nest_service("/clips", Service::new(app));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Cut 4 s from the first chunk through the mounted API...
    let first = engine.rendition_chunks(stream, RENDITIONS[2])?[0].start_utc();
    let body = format!(r#"{{"duration": 4, "start": {}}}"#, first.unix_secs());
    let path = format!("/clips/streaming/streams/{stream}/clip_recording");
    let (status, _, answer) = request(addr, "PUT", &path, "x-host-token: editor", &body).await?;
    if status != 200 {
        return Err(format!(
            "clip refused: {status} {}",
            String::from_utf8_lossy(&answer)
        )
        .into());
    }
    let clip: serde_json::Value = serde_json::from_slice(&answer)?;
    let link = clip["mp4_master"].as_str().ok_or("no mp4_master")?;
    println!("clip {} -> {link}", clip["id"]);
    // ...and let its end pass, so it is complete.
    clock.advance_secs(60);
    engine.tick();

    // Download the MP4 as a player would: the public link needs no token.
    let path = link
        .strip_prefix(&format!("http://{addr}"))
        .ok_or("link elsewhere")?;
    let (status, headers, mp4) = request(addr, "GET", path, "", "").await?;
    if status != 200 || mp4.get(4..8) != Some(b"ftyp") {
        return Err(format!("MP4 link answered {status}, {} bytes", mp4.len()).into());
    }
    let length = header(&headers, "content-length").ok_or("no Content-Length")?;
    if length != mp4.len().to_string() {
        return Err(format!("Content-Length {length}, {} bytes", mp4.len()).into());
    }
    if keep_serving {
        println!("serving on http://{addr}/ (Ctrl-C to stop)");
        server.await??;
    }
    Ok((addr, mp4))
}

/// Uploads the ladder's init and segments, then its playlists (whose dates anchor
/// the segments), as ffmpeg would push them.
fn feed_ladder(engine: &Engine, clock: &ManualClock) -> Result<StreamId, Box<dyn Error>> {
    let info = engine.create_stream(dvrclip::engine::StreamSettings::named("ladder"))?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ladder");
    let put = |rendition: &str, file: &str, bytes: Vec<u8>| -> Result<(), Box<dyn Error>> {
        let upload = Upload::resolve(engine, &info.ingest_key, Some(rendition), file)?;
        upload.store(engine, Bytes::from(bytes))?;
        Ok(())
    };
    for (i, r) in RENDITIONS.iter().enumerate() {
        let init = format!("init_{}.mp4", 2 - i);
        put(r, "init.mp4", std::fs::read(dir.join(r).join(init))?)?;
    }
    for k in 0..4 {
        clock.advance_secs(2);
        for r in RENDITIONS {
            let file = format!("seg_{k:05}.m4s");
            put(r, &file, std::fs::read(dir.join(r).join(&file))?)?;
        }
    }
    for r in RENDITIONS {
        put(
            r,
            "index.m3u8",
            std::fs::read(dir.join(r).join("index.m3u8"))?,
        )?;
    }
    Ok(info.id)
}

/// One HTTP/1.1 request on a fresh connection: status, headers, body.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    extra_header: &str,
    body: &str,
) -> Result<(u16, String, Vec<u8>), Box<dyn Error>> {
    let mut tcp = TcpStream::connect(addr).await?;
    let extra = if extra_header.is_empty() {
        String::new()
    } else {
        format!("{extra_header}\r\n")
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((status, headers, raw[split + 4..].to_vec()))
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    /// The example's own run, as `cargo test` runs it: the clip's MP4 arrives whole
    /// through the host's router and ffprobe-free checks hold (its `ftyp`, its
    /// length); `tests/e2e.rs` decodes clips of the same service with ffmpeg.
    #[tokio::test]
    async fn a_clip_is_served_through_the_hosts_router() {
        let (_, mp4) = super::run(false).await.unwrap();
        assert!(mp4.len() > 10_000, "{}", mp4.len());
    }
}
