//! Pulling a live HLS stream, fMP4 or MPEG-TS, from an origin (Gcore's `pull: true`
//! with `uri`):
//! an HTTP client, not a server. Each URL of `uri` is a master or media playlist of
//! the same stream; one is followed at a time and the next taken, round robin, when
//! it fails or stops sending ([`PullStatus`] says which one is in use).
//!
//! - a master playlist: each variant (and each `EXT-X-MEDIA` with a URI) becomes a
//!   rendition named from its URI's directory, else `media_{index}`, never `master`
//!   ([`follow::rendition_name`]); a media playlist is one rendition;
//! - each rendition's playlist is reloaded by RFC 8216 §6.3.4 and each segment taken
//!   once by its media sequence number ([`follow`]); its `EXT-X-MAP` init is fetched
//!   once per URI; both reach the engine the way an upload does
//!   ([`crate::Upload::store`]); each segment's `EXT-X-PROGRAM-DATE-TIME` anchors it;
//! - a media sequence going backwards, an `EXT-X-DISCONTINUITY`, and a switch of
//!   origin each open a new discontinuity (logged);
//! - MPEG-TS segments (no `EXT-X-MAP`, RFC 8216 §3.2) go through one
//!   [`crate::ts::TsPublish`] per rendition, its state carried from segment to
//!   segment (a PES may straddle two), its held bytes counted in the budget; the
//!   discontinuities above call its `discontinuity`. Their
//!   `EXT-X-PROGRAM-DATE-TIME` is not applied (chunks are cut at keyframes, not at
//!   segment boundaries): wall time is anchored on arrival;
//! - limits in [`PullConfig`], enforced by `fetch`; LL-HLS parts are ignored;
//! - an `rtmp://host[:port]/app/key` URI is played with the RTMP client
//!   ([`crate::rtmp::pull()`]) into the `rtmp` rendition, one connection at a time in
//!   the same round robin: the server closing, a refusal, or 15 s without a message
//!   take the next URI, and each connection starts a new discontinuity (the RTMP
//!   door's epochs); an `srt://host:port[?streamid=…]` URI is called the same way
//!   ([`crate::srt::pull()`], MPEG-TS into the `srt` rendition); `rtmps://` URIs are
//!   refused by the API.
//!
//! Cancellation: dropping the [`PullHandle`] (or [`PullHandle::stop`]) aborts the
//! task at its next `.await`; a segment half fetched is dropped, nothing half pushed.

mod fetch;
pub mod follow;
mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use dvrclip_engine::{Engine, StreamId};
use reqwest::Url;

use fetch::Fetcher;

/// Limits and timeouts of every pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullConfig {
    /// Largest media segment, bytes (the server's segment upload limit).
    pub max_segment_bytes: u64,
    /// Largest playlist, bytes.
    pub max_playlist_bytes: u64,
    /// Largest init segment, bytes.
    pub max_init_bytes: u64,
    /// Bytes all pulls may hold in flight at once (fetched, not yet in a ring).
    pub max_in_flight_bytes: u64,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer.
    pub read_idle: Duration,
    /// Deadline of a whole playlist or init answer.
    pub playlist_timeout: Duration,
    /// Deadline of a whole segment answer.
    pub segment_timeout: Duration,
    /// Attempts per fetch (transport errors, 5xx).
    pub attempts: u32,
    /// First wait between attempts; doubles each time.
    pub retry_backoff: Duration,
    /// Redirects followed per fetch.
    pub max_redirects: usize,
    /// An origin with no new segment for this many target durations has stopped
    /// sending: the next URI is taken.
    pub stall_target_durations: u32,
    /// Longest wait after every URI failed in a row; the wait doubles up to it.
    pub max_round_backoff: Duration,
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            max_segment_bytes: 50 << 20,
            max_playlist_bytes: 1 << 20,
            max_init_bytes: 1 << 20,
            max_in_flight_bytes: 256 << 20,
            connect_timeout: Duration::from_secs(5),
            read_idle: Duration::from_secs(10),
            playlist_timeout: Duration::from_secs(10),
            segment_timeout: Duration::from_secs(60),
            attempts: 3,
            retry_backoff: Duration::from_millis(250),
            max_redirects: 5,
            stall_target_durations: 4,
            max_round_backoff: Duration::from_secs(30),
        }
    }
}

/// Why a `uri` cannot be pulled.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Not an `http://` or `https://` URL.
    #[error("{uri:?}: only http(s) URLs of HLS are pulled")]
    BadUri {
        /// The offending URL.
        uri: String,
    },
    /// No URL at all.
    #[error("no uri to pull from")]
    NoUri,
    /// The HTTP client could not be built (TLS setup).
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why one fetch, or one origin, failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connecting, TLS, a redirect refused, or reading the body failed.
    #[error("{url}: {source}")]
    Transport {
        /// What was fetched.
        url: String,
        /// The client's error.
        source: reqwest::Error,
    },
    /// The origin answered other than 2xx.
    #[error("{url}: HTTP {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// Its status.
        status: u16,
    },
    /// The body is over its limit.
    #[error("{url}: larger than {limit} bytes")]
    TooLarge {
        /// What was fetched.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The whole answer took longer than its deadline.
    #[error("{url}: no complete answer within {secs} s")]
    Deadline {
        /// What was fetched.
        url: String,
        /// The deadline.
        secs: u64,
    },
    /// The playlist does not parse.
    #[error("{url}: {source}")]
    Playlist {
        /// What was fetched.
        url: String,
        /// Why.
        source: dvrclip_hls::ingest::IngestPlaylistError,
    },
    /// A master playlist where a media playlist was expected, or one with no variant.
    #[error("{url}: {reason}")]
    Unusable {
        /// What was fetched.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// No new segment for too long.
    #[error("{url}: no new segment for {secs} s")]
    Stalled {
        /// The media playlist.
        url: String,
        /// Seconds without one.
        secs: u64,
    },
    /// An RTMP or SRT origin ended its stream, went silent or refused.
    #[error("{url}: {reason}")]
    Ended {
        /// The URI.
        url: String,
        /// How it ended.
        reason: String,
    },
    /// The pull is stopping.
    #[error("stopped")]
    Stopped,
}

/// What a pull is doing, for logs, metrics and the Stream object. Counters only grow.
#[derive(Debug)]
pub struct PullStatus {
    uris: Vec<String>,
    in_use: AtomicUsize,
    /// Switches from one URI to another.
    pub switches: AtomicU64,
    /// Segments stored.
    pub segments: AtomicU64,
    /// Media bytes fetched (inits and segments).
    pub bytes: AtomicU64,
    /// Fetches that failed after their retries, and segments the engine refused.
    pub errors: AtomicU64,
    /// Media sequence resets and lost segments noticed.
    pub resets: AtomicU64,
}

impl PullStatus {
    fn new(uris: Vec<String>) -> Self {
        PullStatus {
            uris,
            // The first URI is the one in use from the start.
            in_use: AtomicUsize::new(0),
            switches: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        }
    }

    /// The URIs, in their round-robin order.
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// The index of the URI in use.
    pub fn in_use_index(&self) -> Option<usize> {
        Some(self.in_use.load(Relaxed)).filter(|&i| i < self.uris.len())
    }

    /// The URI in use.
    pub fn in_use(&self) -> Option<&str> {
        self.in_use_index().map(|i| self.uris[i].as_str())
    }
}

/// Starts pulls; one per server, shared by every stream (one connection pool, one
/// bound on bytes in flight).
#[derive(Debug, Clone)]
pub struct Puller {
    fetcher: Fetcher,
    config: Arc<PullConfig>,
}

/// A running pull: stops when dropped.
#[derive(Debug)]
pub struct PullHandle {
    uri: String,
    status: Arc<PullStatus>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PullHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PullHandle {
    /// The `uri` this pull follows, as given.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// What it is doing.
    pub fn status(&self) -> &Arc<PullStatus> {
        &self.status
    }

    /// Stops it (as dropping it does).
    pub fn stop(self) {}
}

/// The URLs of a `uri`: separated by spaces, each `http://` or `https://` (HLS),
/// `rtmp://host[:port]/app/key` or `srt://host:port[?streamid=…]`.
pub fn parse_uris(uri: &str) -> Result<Vec<Url>, PullError> {
    let urls = uri
        .split_ascii_whitespace()
        .map(|u| match Url::parse(u) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
            Ok(url) if url.scheme() == "rtmp" && crate::rtmp::RtmpSource::parse(u).is_ok() => {
                Ok(url)
            }
            Ok(url) if url.scheme() == "srt" && crate::srt::SrtSource::parse(&url).is_ok() => {
                Ok(url)
            }
            _ => Err(PullError::BadUri { uri: u.to_owned() }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err(PullError::NoUri);
    }
    Ok(urls)
}

impl Puller {
    /// A puller with these limits.
    pub fn new(config: PullConfig) -> Result<Self, PullError> {
        let config = Arc::new(config);
        Ok(Puller {
            fetcher: Fetcher::new(Arc::clone(&config))?,
            config,
        })
    }

    /// Starts pulling `uri` into `stream`, on the current Tokio runtime.
    pub fn start(
        &self,
        engine: Arc<Engine>,
        stream: StreamId,
        uri: &str,
    ) -> Result<PullHandle, PullError> {
        let urls = parse_uris(uri)?;
        let status = Arc::new(PullStatus::new(
            urls.iter().map(|u| u.to_string()).collect(),
        ));
        let job = run::Job {
            engine,
            stream,
            urls,
            fetcher: self.fetcher.clone(),
            config: Arc::clone(&self.config),
            status: Arc::clone(&status),
        };
        Ok(PullHandle {
            uri: uri.to_owned(),
            status,
            task: tokio::spawn(job.run()),
        })
    }
}
