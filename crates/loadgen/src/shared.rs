//! What every task of a run shares: the server, the ladder, the samples, the streams
//! that can be clipped, and the stop signal.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;

use crate::ladder::Ladder;
use crate::stats::Stats;

/// A stream being pushed: its API id and when its first segment was due.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveStream {
    pub(crate) id: u64,
    pub(crate) started: Instant,
}

/// Shared by the pushers, the clip cutter and the reporter.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) server: SocketAddr,
    /// `Authorization` header line for the API, ending in `\r\n`.
    pub(crate) auth: String,
    pub(crate) ladder: Ladder,
    stats: Mutex<Stats>,
    streams: Mutex<Vec<LiveStream>>,
    pub(crate) stop: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(server: SocketAddr, api_key: &str, ladder: Ladder) -> Shared {
        Shared {
            server,
            auth: format!("Authorization: APIKey {api_key}\r\n"),
            ladder,
            stats: Mutex::new(Stats::default()),
            streams: Mutex::new(Vec::new()),
            stop: watch::channel(false).0,
        }
    }

    /// The samples (a poisoned lock still holds good counts).
    pub(crate) fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The streams being pushed.
    pub(crate) fn streams(&self) -> MutexGuard<'_, Vec<LiveStream>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The path (and query) of an absolute URL: `http://h:p/a/b` → `/a/b`.
pub(crate) fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .find('/')
        .and_then(|i| after_scheme.get(i..))
        .unwrap_or("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_path_strips_scheme_and_authority() {
        assert_eq!(super::url_path("http://127.0.0.1:8/ingest/k"), "/ingest/k");
        assert_eq!(super::url_path("http://h"), "/");
    }
}
