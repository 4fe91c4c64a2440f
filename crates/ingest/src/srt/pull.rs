//! Pulling MPEG-TS over SRT as a caller: an `srt://host:port[?streamid=…]` URL in a
//! stream's `uri` (Gcore's pull), for a source that listens (an encoder or gateway
//! in SRT listener mode, `ffmpeg … -f mpegts "srt://…?mode=listener"`). One call is
//! one connection, the caller (the pull runner) deciding when to call again or take
//! the next URI; each connection opens a discontinuity. The messages go through the
//! same `publish::receive` as a push's, into rendition
//! [`RENDITION`](super::RENDITION): the same demuxer, idle timeout and memory
//! reservation. An encrypted source is called with the URL's `passphrase` (10 to 79
//! bytes) and `pbkeylen` (16, 24 or 32; 16 when absent, libsrt's default), as ffmpeg
//! reads the same URL; a wrong passphrase fails the handshake like a dead source.

use std::time::Duration;

use dvrclip_engine::{Engine, StreamId};
use reqwest::Url;
use srt_tokio::SrtSocket;
use srt_tokio::options::{KeySize, Passphrase};

use super::publish::{PublishLimits, Received, receive};
use crate::ts::{TsError, TsStats};

/// Longest `streamid` sent, bytes (SRT's own limit is 512).
const MAX_STREAM_ID_BYTES: usize = 512;

/// Why a pull stopped.
#[derive(Debug, thiserror::Error)]
pub enum SrtPullError {
    /// Not an `srt://host:port[?streamid=…][&passphrase=…][&pbkeylen=…]` URL we
    /// can call.
    #[error(
        "not an srt://host:port URL with at most a streamid, a 10 to 79 byte passphrase and a pbkeylen of 16, 24 or 32"
    )]
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
    /// The key length and passphrase, for a source that encrypts.
    pub encryption: Option<(KeySize, Passphrase)>,
}

impl SrtSource {
    /// Reads an `srt://host:port[?streamid=…][&passphrase=…][&pbkeylen=…]` URL;
    /// other query parameters (ffmpeg's `mode`, `latency`, …) are ignored.
    pub fn parse(url: &Url) -> Result<Self, SrtPullError> {
        let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
            return Err(SrtPullError::Url);
        };
        if url.scheme() != "srt" {
            return Err(SrtPullError::Url);
        }
        let (mut stream_id, mut passphrase, mut key_size) = (None, None, KeySize::AES128);
        for (k, v) in url.query_pairs() {
            match &*k {
                "passphrase" => {
                    let p = Passphrase::try_from(v.into_owned()).map_err(|_| SrtPullError::Url)?;
                    passphrase = Some(p);
                }
                "pbkeylen" => {
                    key_size = match v.parse::<u16>().map(KeySize::try_from) {
                        Ok(Ok(KeySize::Unspecified)) => KeySize::AES128,
                        Ok(Ok(size)) => size,
                        _ => return Err(SrtPullError::Url),
                    }
                }
                "streamid" if v.len() <= MAX_STREAM_ID_BYTES => stream_id = Some(v.into_owned()),
                "streamid" => return Err(SrtPullError::Url),
                _ => {}
            }
        }
        Ok(SrtSource {
            remote: format!("{host}:{port}"),
            stream_id,
            encryption: passphrase.map(|p| (key_size, p)),
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
    let encryption = source.encryption.clone();
    let call = SrtSocket::builder()
        .set(|options| {
            if let Some((key_size, passphrase)) = encryption {
                options.encryption.key_size = key_size;
                options.encryption.passphrase = Some(passphrase);
            }
        })
        .call(source.remote.as_str(), source.stream_id.as_deref());
    let mut socket = tokio::time::timeout(connect, call)
        .await
        .map_err(|_| SrtPullError::Timeout("connect"))?
        .map_err(SrtPullError::Call)?;
    let (stats, ended) = receive(engine, engine, stream, &mut socket, limits, |_, _| {}).await;
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
                stream_id: Some("live/a".into()),
                encryption: None,
            }
        );
        assert_eq!(at("srt://h.example:9000").unwrap().stream_id, None);
        let secret = |u: &str| at(u).unwrap().encryption.map(|(size, _)| size);
        assert_eq!(
            secret("srt://h:1?passphrase=0123456789"),
            Some(KeySize::AES128)
        );
        assert_eq!(
            secret("srt://h:1?passphrase=0123456789&pbkeylen=32"),
            Some(KeySize::AES256)
        );
        assert_eq!(
            secret("srt://h:1?pbkeylen=0&passphrase=0123456789"),
            Some(KeySize::AES128)
        );
        for bad in [
            "srt://h.example",
            "srt://h.example:9000?passphrase=short",
            "srt://h.example:9000?passphrase=0123456789&pbkeylen=20",
            "http://h.example:9000",
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
        let long = format!("srt://h:1?streamid={}", "x".repeat(600));
        assert!(at(&long).is_err());
    }
}
