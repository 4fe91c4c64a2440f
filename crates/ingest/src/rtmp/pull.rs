//! Pulling a live stream from an RTMP server (an `rtmp://host[:port]/app/key` URL in a
//! stream's `uri`, Gcore's pull): `rml_rtmp`'s client handshake and session (sans
//! I/O, as the push side), `play` on the key, and the media through [`Publish`] into
//! rendition [`RENDITION`](super::RENDITION) exactly as a push's. One call is one
//! connection; the caller (the pull runner) decides when to connect again or move to
//! the next URI. Each call starts a new [`Publish`], so each connection opens a
//! discontinuity. Tested against ffmpeg publishing through a relay on `rml_rtmp`'s
//! server session (`crates/ingest/tests/rtmp_pull.rs`).
//!
//! The caps of `super`'s module doc hold here too: `rml_rtmp`'s chunk deserializer
//! buffers a message until whole, so at most [`PullLimits::max_message_bytes`] may
//! arrive without a message that raises an event, at most
//! [`PullLimits::max_bytes_before_play`] before the server accepts the `play`, and
//! every call into the crate is wrapped in `catch_unwind` (its arithmetic on peer
//! values can panic). The connection is counted in the memory budget as a push is.
//! Dropping the future closes the connection; what the fragmenter held is then lost
//! (it is flushed when the server closes, or on an error or timeout).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use dvrclip_engine::{Engine, StreamId};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent, ClientSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::publish::{Publish, PublishError, PublishStats};

/// Longest `rtmp://` URL taken, bytes.
const MAX_URL_BYTES: usize = 2048;
/// What a connection is counted for in the memory budget before it holds media.
const CONNECTION_BYTES: u64 = 64 << 10;
const READ_BUFFER: usize = 16 << 10;

/// A pull's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullLimits {
    /// The TCP connection must open within this.
    pub connect: Duration,
    /// The handshake, `connect` and `play` must be accepted within this.
    pub play_deadline: Duration,
    /// A server that sends nothing for this long is left.
    pub idle: Duration,
    /// Bytes the server may send without completing a message that raises an event.
    pub max_message_bytes: u64,
    /// Bytes the server may send before it accepts the `play`.
    pub max_bytes_before_play: u64,
}

impl Default for PullLimits {
    fn default() -> Self {
        PullLimits {
            connect: Duration::from_secs(10),
            play_deadline: Duration::from_secs(10),
            idle: Duration::from_secs(15),
            max_message_bytes: 8 << 20,
            max_bytes_before_play: 1 << 20,
        }
    }
}

/// Why a pull stopped.
#[derive(Debug, thiserror::Error)]
pub enum RtmpPullError {
    /// Not an `rtmp://host[:port]/app/key` URL (`rtmps://` is not pulled).
    #[error("not an rtmp://host[:port]/app/key URL")]
    Url,
    /// The socket failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// A deadline passed: `connect`, `play` or `idle`.
    #[error("timeout: {0}")]
    Timeout(&'static str),
    /// Not an RTMP handshake.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The chunk stream or a command does not parse.
    #[error("protocol: {0}")]
    Protocol(String),
    /// `rml_rtmp` panicked on the input.
    #[error("protocol: the RTMP parser gave up on this input")]
    ParserPanicked,
    /// The server refused the `connect`.
    #[error("connect refused: {0}")]
    Rejected(String),
    /// More than [`PullLimits::max_message_bytes`] without a complete message, or
    /// more than [`PullLimits::max_bytes_before_play`] before playing.
    #[error("over {0} bytes without a message")]
    TooMuch(u64),
    /// The media was refused.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Where to pull from: an `rtmp://` URL taken apart as ffmpeg does (the first path
/// component is the application, the rest the stream key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpSource {
    /// `host:port` to connect to (port 1935 unless given).
    pub authority: String,
    /// The application (`connect`).
    pub app: String,
    /// The stream key (`play`), query string included.
    pub key: String,
    /// The URL up to the application, sent as `tcUrl` (some servers need it).
    pub tc_url: String,
}

impl RtmpSource {
    /// Takes an `rtmp://host[:port]/app/key` URL apart.
    pub fn parse(url: &str) -> Result<Self, RtmpPullError> {
        if url.len() > MAX_URL_BYTES {
            return Err(RtmpPullError::Url);
        }
        let scheme = url.get(..7).ok_or(RtmpPullError::Url)?;
        if !scheme.eq_ignore_ascii_case("rtmp://") {
            return Err(RtmpPullError::Url);
        }
        let rest = url.get(7..).ok_or(RtmpPullError::Url)?;
        let (authority, path) = rest.split_once('/').ok_or(RtmpPullError::Url)?;
        let (app, key) = path.split_once('/').ok_or(RtmpPullError::Url)?;
        let host_ok = !authority.is_empty()
            && authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
        if !host_ok || app.is_empty() || key.is_empty() {
            return Err(RtmpPullError::Url);
        }
        // A port is present unless the authority ends in a host (an IPv6 literal
        // ends in `]`).
        let has_port = match authority.rsplit_once(':') {
            Some((h, p)) => !p.contains(']') && (!h.starts_with('[') || h.ends_with(']')),
            None => false,
        };
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:1935")
        };
        Ok(RtmpSource {
            tc_url: format!("rtmp://{authority}/{app}"),
            authority,
            app: app.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// Pulls `source` into `stream` until the server closes (`Ok`, the publish's
/// stats), a deadline passes, or something is refused. What the publish held is
/// flushed into the engine however it ends, except when the future is dropped.
pub async fn pull(
    engine: &Engine,
    stream: StreamId,
    source: &RtmpSource,
    limits: &PullLimits,
) -> Result<PublishStats, RtmpPullError> {
    let socket = tokio::time::timeout(limits.connect, TcpStream::connect(&source.authority))
        .await
        .map_err(|_| RtmpPullError::Timeout("connect"))??;
    let _ = socket.set_nodelay(true);
    let mut publish = Publish::new(stream);
    let pumped = pump(engine, &mut publish, socket, source, limits).await;
    let finished = publish.finish(engine);
    pumped?;
    finished?;
    Ok(publish.stats())
}

async fn pump(
    engine: &Engine,
    publish: &mut Publish,
    mut socket: TcpStream,
    source: &RtmpSource,
    limits: &PullLimits,
) -> Result<(), RtmpPullError> {
    let mut reservation = engine.reserve_memory(CONNECTION_BYTES);
    let mut reserved = CONNECTION_BYTES;
    let deadline = tokio::time::Instant::now() + limits.play_deadline;
    let mut handshake = Some(Handshake::new(PeerType::Client));
    let mut session: Option<ClientSession> = None;
    let mut out = guarded(|| {
        handshake
            .as_mut()
            .map(|h| h.generate_outbound_p0_and_p1())
            .transpose()
    })?
    .map_err(|e| RtmpPullError::Handshake(e.to_string()))?
    .unwrap_or_default();
    let mut buf = vec![0u8; READ_BUFFER];
    let (mut received, mut since_event) = (0u64, 0u64);
    let mut playing = false;
    loop {
        if !out.is_empty() {
            let write = socket.write_all(&out);
            tokio::time::timeout(limits.idle, write)
                .await
                .map_err(|_| RtmpPullError::Timeout("send"))??;
            out.clear();
        }
        let wait = if playing {
            tokio::time::Instant::now() + limits.idle
        } else {
            deadline
        };
        let n = tokio::time::timeout_at(wait, socket.read(&mut buf))
            .await
            .map_err(|_| RtmpPullError::Timeout(if playing { "idle" } else { "play" }))??;
        if n == 0 {
            return Ok(());
        }
        let bytes = buf.get(..n).unwrap_or_default();
        received += n as u64;
        since_event += n as u64;
        if !playing && received > limits.max_bytes_before_play {
            return Err(RtmpPullError::TooMuch(limits.max_bytes_before_play));
        }
        if since_event > limits.max_message_bytes {
            return Err(RtmpPullError::TooMuch(limits.max_message_bytes));
        }
        let results = match (&mut handshake, &mut session) {
            (Some(h), _) => {
                let r = guarded(|| h.process_bytes(bytes))?
                    .map_err(|e| RtmpPullError::Handshake(e.to_string()))?;
                let (response, remaining) = match r {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        out.extend_from_slice(&response_bytes);
                        continue;
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => (response_bytes, remaining_bytes),
                };
                out.extend_from_slice(&response);
                handshake = None;
                let mut config = ClientSessionConfig::new();
                config.tc_url = Some(source.tc_url.clone());
                let (mut s, mut first) =
                    guarded(|| ClientSession::new(config))?.map_err(protocol)?;
                first
                    .push(guarded(|| s.request_connection(source.app.clone()))?.map_err(protocol)?);
                first.extend(guarded(|| s.handle_input(&remaining))?.map_err(protocol)?);
                session = Some(s);
                first
            }
            (None, Some(s)) => guarded(|| s.handle_input(bytes))?.map_err(protocol)?,
            (None, None) => return Err(RtmpPullError::Protocol("no session".into())),
        };
        let Some(s) = session.as_mut() else {
            continue;
        };
        let mut pending = std::collections::VecDeque::from(results);
        while let Some(r) = pending.pop_front() {
            let event = match r {
                ClientSessionResult::OutboundResponse(p) => {
                    out.extend_from_slice(&p.bytes);
                    continue;
                }
                ClientSessionResult::UnhandleableMessageReceived(_) => continue,
                ClientSessionResult::RaisedEvent(e) => e,
            };
            since_event = 0;
            match event {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    let key = source.key.clone();
                    pending.push_back(guarded(|| s.request_playback(key))?.map_err(protocol)?);
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    let shown: String = description.chars().take(200).collect();
                    return Err(RtmpPullError::Rejected(shown));
                }
                ClientSessionEvent::PlaybackRequestAccepted => playing = true,
                ClientSessionEvent::VideoDataReceived { data, timestamp } if playing => {
                    publish.video(engine, &data, timestamp.value)?;
                }
                ClientSessionEvent::AudioDataReceived { data, timestamp } if playing => {
                    publish.audio(engine, &data, timestamp.value)?;
                }
                _ => {}
            }
        }
        // The reservation follows what the connection holds, in steps.
        let need = (CONNECTION_BYTES + 2 * since_event + publish.held_bytes() as u64)
            .div_ceil(CONNECTION_BYTES << 2)
            * (CONNECTION_BYTES << 2);
        if need.max(CONNECTION_BYTES) != reserved {
            reserved = need.max(CONNECTION_BYTES);
            drop(reservation);
            reservation = engine.reserve_memory(reserved);
        }
    }
}

/// Runs a call into `rml_rtmp`, a panic (its unchecked arithmetic on peer values)
/// becoming [`RtmpPullError::ParserPanicked`].
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, RtmpPullError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| RtmpPullError::ParserPanicked)
}

fn protocol(e: ClientSessionError) -> RtmpPullError {
    RtmpPullError::Protocol(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart_as_ffmpeg_does() {
        let s = RtmpSource::parse("rtmp://origin.example/live/abc").unwrap();
        assert_eq!(s.authority, "origin.example:1935");
        assert_eq!((s.app.as_str(), s.key.as_str()), ("live", "abc"));
        assert_eq!(s.tc_url, "rtmp://origin.example:1935/live");
        let s = RtmpSource::parse("RTMP://127.0.0.1:1936/app/a/b?token=1").unwrap();
        assert_eq!(s.authority, "127.0.0.1:1936");
        assert_eq!((s.app.as_str(), s.key.as_str()), ("app", "a/b?token=1"));
        let s = RtmpSource::parse("rtmp://[::1]/live/k").unwrap();
        assert_eq!(s.authority, "[::1]:1935");
        let s = RtmpSource::parse("rtmp://[::1]:19350/live/k").unwrap();
        assert_eq!(s.authority, "[::1]:19350");
        for bad in [
            "rtmps://h/live/k",
            "rtmp://h/live",
            "rtmp://h/live/",
            "rtmp:///live/k",
            "rtmp://h h/live/k",
            "http://h/live/k",
            "rtmp:/",
        ] {
            assert!(RtmpSource::parse(bad).is_err(), "{bad}");
        }
    }
}
