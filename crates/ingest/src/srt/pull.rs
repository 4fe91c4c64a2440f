//! Pulling MPEG-TS over SRT as a caller: an `srt://host:port[?streamid=…]` URL in a
//! stream's `uri` (Gcore's pull), for a source that listens (an encoder or gateway
//! in SRT listener mode, `ffmpeg … -f mpegts "srt://…?mode=listener"`). One call is
//! one connection, the caller (the pull runner) deciding when to call again or take
//! the next URI; each connection opens a discontinuity. The messages go through the
//! same `publish::receive` as a push's, into rendition
//! [`RENDITION`](super::RENDITION): the same demuxer, idle timeout and memory
//! reservation. Encrypted sources (`passphrase=`) are not called yet.

use std::time::Duration;

use dvrclip_engine::{Engine, StreamId};
use reqwest::Url;
use srt_tokio::SrtSocket;

use super::publish::{PublishLimits, Received, receive};
use crate::ts::{TsError, TsStats};

/// Longest `streamid` sent, bytes (SRT's own limit is 512).
const MAX_STREAM_ID_BYTES: usize = 512;

/// Why a pull stopped.
#[derive(Debug, thiserror::Error)]
pub enum SrtPullError {
    /// Not an `srt://host:port[?streamid=…]` URL we can call.
    #[error("not an srt://host:port[?streamid=…] URL without a passphrase")]
    Url,
    /// The handshake did not complete.
    #[error("calling: {0}")]
    Call(std::io::Error),
    /// No answer within the connect timeout.
    #[error("timeout: {0}")]
    Timeout(&'static str),
    /// The media was refused.
    #[error(transparent)]
    Media(#[from] TsError),
}

/// Where to call: the address and the `streamid` to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtSource {
    /// `host:port`.
    pub remote: String,
    /// The `streamid` query parameter, if any.
    pub stream_id: Option<String>,
}

impl SrtSource {
    /// Reads an `srt://host:port[?streamid=…]` URL; other query parameters (ffmpeg's
    /// `mode`, `latency`, …) are ignored, `passphrase` is refused.
    pub fn parse(url: &Url) -> Result<Self, SrtPullError> {
        let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
            return Err(SrtPullError::Url);
        };
        if url.scheme() != "srt" {
            return Err(SrtPullError::Url);
        }
        let mut stream_id = None;
        for (k, v) in url.query_pairs() {
            match &*k {
                "passphrase" => return Err(SrtPullError::Url),
                "streamid" if v.len() <= MAX_STREAM_ID_BYTES => stream_id = Some(v.into_owned()),
                "streamid" => return Err(SrtPullError::Url),
                _ => {}
            }
        }
        Ok(SrtSource {
            remote: format!("{host}:{port}"),
            stream_id,
        })
    }
}

/// Calls `source` and pulls its stream into `stream` until it closes (`Ok`, the
/// stats), goes silent for `limits.idle`, or its media is refused.
pub async fn pull(
    engine: &Engine,
    stream: StreamId,
    source: &SrtSource,
    connect: Duration,
    limits: &PublishLimits,
) -> Result<TsStats, SrtPullError> {
    let call = SrtSocket::builder().call(source.remote.as_str(), source.stream_id.as_deref());
    let mut socket = tokio::time::timeout(connect, call)
        .await
        .map_err(|_| SrtPullError::Timeout("connect"))?
        .map_err(SrtPullError::Call)?;
    let (stats, ended) = receive(engine, stream, &mut socket, limits, |_, _| {}).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close_and_finish()).await;
    match ended {
        Received::Closed => Ok(stats),
        Received::Idle => Err(SrtPullError::Timeout("idle")),
        Received::Refused(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_urls_a_user_writes() {
        let at = |u: &str| SrtSource::parse(&Url::parse(u).unwrap());
        assert_eq!(
            at("srt://10.0.0.7:9000?streamid=live/a&latency=200").unwrap(),
            SrtSource {
                remote: "10.0.0.7:9000".into(),
                stream_id: Some("live/a".into())
            }
        );
        assert_eq!(at("srt://h.example:9000").unwrap().stream_id, None);
        for bad in [
            "srt://h.example",
            "srt://h.example:9000?passphrase=0123456789",
            "http://h.example:9000",
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
        let long = format!("srt://h:1?streamid={}", "x".repeat(600));
        assert!(at(&long).is_err());
    }
}
