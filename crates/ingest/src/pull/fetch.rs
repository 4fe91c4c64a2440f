//! Fetching one playlist, init or segment from an origin: an HTTP client (reqwest over
//! rustls, already in the build through `object_store`), with every limit a hostile
//! or broken origin could test.
//!
//! - Size: a `Content-Length` over the limit is refused before the body; a body is
//!   read chunk by chunk and refused as soon as it passes the limit (an endless
//!   playlist costs at most the limit).
//! - Time: a connect timeout, a read timeout between chunks (a stalled origin), and a
//!   deadline for the whole answer (a trickling one).
//! - Redirects: at most [`super::PullConfig::max_redirects`], to `http`/`https` only.
//! - Retries: transport errors and 5xx are retried with doubling backoff; a 4xx is not.
//! - Memory: a body in flight is counted in the engine's budget for as long as it is
//!   held here (its declared length, or the limit when none is declared), and all
//!   pulls share one bound on bytes in flight.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dvrclip_engine::Engine;
use reqwest::{Client, StatusCode, Url};
use tokio::sync::Semaphore;

use super::{FetchError, PullConfig};

/// Bytes per permit of the in-flight bound.
const PERMIT_BYTES: u64 = 64 * 1024;

/// What is fetched, for its limit and deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    Playlist,
    Init,
    Segment,
}

/// The client every pull shares: one connection pool, one bound on bytes in flight.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: Client,
    config: Arc<PullConfig>,
    in_flight: Arc<Semaphore>,
}

impl Fetcher {
    pub(crate) fn new(config: Arc<PullConfig>) -> Result<Self, reqwest::Error> {
        let max_redirects = config.max_redirects;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= max_redirects {
                attempt.error("too many redirects")
            } else if !matches!(attempt.url().scheme(), "http" | "https") {
                attempt.error("redirect to a scheme other than http(s)")
            } else {
                attempt.follow()
            }
        });
        let client = Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_idle)
            .redirect(policy)
            .user_agent(concat!("dvrclip/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let permits = (config.max_in_flight_bytes / PERMIT_BYTES).clamp(1, u32::MAX as u64 / 2);
        Ok(Fetcher {
            client,
            in_flight: Arc::new(Semaphore::new(permits as usize)),
            config,
        })
    }

    fn limit(&self, what: What) -> u64 {
        match what {
            What::Playlist => self.config.max_playlist_bytes,
            What::Init => self.config.max_init_bytes,
            What::Segment => self.config.max_segment_bytes,
        }
    }

    fn deadline(&self, what: What) -> Duration {
        match what {
            What::Playlist | What::Init => self.config.playlist_timeout,
            What::Segment => self.config.segment_timeout,
        }
    }

    /// Fetches `url` whole, retrying what may pass. The body is counted in `engine`'s
    /// budget until the returned reservation drops.
    pub(crate) async fn get(
        &self,
        engine: &Engine,
        url: &Url,
        what: What,
    ) -> Result<(Bytes, dvrclip_engine::MemoryReservation), FetchError> {
        let mut backoff = self.config.retry_backoff;
        let mut attempt = 1;
        loop {
            match self.get_once(engine, url, what).await {
                Ok(done) => return Ok(done),
                Err(e) if e.is_retryable() && attempt < self.config.attempts => {
                    tracing::debug!(%url, attempt, error = %e, "pull: retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn get_once(
        &self,
        engine: &Engine,
        url: &Url,
        what: What,
    ) -> Result<(Bytes, dvrclip_engine::MemoryReservation), FetchError> {
        let limit = self.limit(what);
        let work = async {
            let transport = |source| FetchError::Transport {
                url: url.to_string(),
                source,
            };
            let mut resp = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(transport)?;
            let status = resp.status();
            if !status.is_success() {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                });
            }
            let declared = resp.content_length();
            if declared.is_some_and(|n| n > limit) {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                    limit,
                });
            }
            let expect = declared.unwrap_or(limit);
            let permits = expect.div_ceil(PERMIT_BYTES).max(1) as u32;
            let _permit = self
                .in_flight
                .acquire_many(permits.min(self.in_flight_max()))
                .await
                .map_err(|_| FetchError::Stopped)?;
            let reservation = engine.reserve_memory(expect);
            // Capacity from the declared length, never from the limit: a chunked
            // answer grows as it arrives.
            let mut body = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
            while let Some(chunk) = resp.chunk().await.map_err(transport)? {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(FetchError::TooLarge {
                        url: url.to_string(),
                        limit,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok((body.freeze(), reservation))
        };
        tokio::time::timeout(self.deadline(what), work)
            .await
            .map_err(|_| FetchError::Deadline {
                url: url.to_string(),
                secs: self.deadline(what).as_secs(),
            })?
    }

    fn in_flight_max(&self) -> u32 {
        ((self.config.max_in_flight_bytes / PERMIT_BYTES).clamp(1, u32::MAX as u64 / 2)) as u32
    }
}

impl FetchError {
    /// Whether another attempt may succeed: transport failures, deadlines, 5xx, 429.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            FetchError::Transport { .. } | FetchError::Deadline { .. } => true,
            FetchError::Status { status, .. } => {
                let s = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a hostile origin on 127.0.0.1:0 that answers by path.
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn origin(hits: Arc<AtomicUsize>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let hits = Arc::clone(&hits);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    hits.fetch_add(1, Ordering::SeqCst);
                    let reply = |s: &str| s.replace('\n', "\r\n");
                    match path.as_str() {
                        "/ok" => {
                            let _ = sock
                                .write_all(
                                    reply("HTTP/1.1 200 OK\nContent-Length: 5\n\nhello").as_bytes(),
                                )
                                .await;
                        }
                        "/declared-big" => {
                            let _ = sock
                                .write_all(
                                    reply("HTTP/1.1 200 OK\nContent-Length: 5000\n\n").as_bytes(),
                                )
                                .await;
                        }
                        "/endless" => {
                            let _ = sock
                                .write_all(
                                    reply("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n")
                                        .as_bytes(),
                                )
                                .await;
                            let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
                            while sock.write_all(chunk.as_bytes()).await.is_ok() {}
                        }
                        "/to-ftp" => {
                            let _ = sock.write_all(reply("HTTP/1.1 302 Found\nLocation: ftp://127.0.0.1/x\nContent-Length: 0\n\n").as_bytes()).await;
                        }
                        "/loop" => {
                            let _ = sock.write_all(reply("HTTP/1.1 302 Found\nLocation: /loop\nContent-Length: 0\n\n").as_bytes()).await;
                        }
                        "/stall" => {
                            let _ = sock
                                .write_all(
                                    reply("HTTP/1.1 200 OK\nContent-Length: 10\n\nab").as_bytes(),
                                )
                                .await;
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        _ => {
                            let _ = sock
                                .write_all(
                                    reply("HTTP/1.1 503 Busy\nContent-Length: 0\n\n").as_bytes(),
                                )
                                .await;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_hostile_origin_is_bounded() {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = origin(Arc::clone(&hits)).await;
        let config = Arc::new(PullConfig {
            max_playlist_bytes: 4096,
            read_idle: Duration::from_millis(300),
            retry_backoff: Duration::from_millis(1),
            ..PullConfig::default()
        });
        let f = Fetcher::new(config).unwrap();
        let engine = Engine::default();
        let url = |p: &str| Url::parse(&format!("http://{addr}{p}")).unwrap();
        let get = |p: &'static str| {
            let (f, u, e) = (&f, url(p), &engine);
            async move { f.get(e, &u, What::Playlist).await }
        };
        assert_eq!(&get("/ok").await.unwrap().0[..], b"hello");
        // A reservation lives as long as the bytes are held, then leaves the budget.
        assert_eq!(engine.memory().reserved_bytes, 0);
        assert!(matches!(
            get("/declared-big").await,
            Err(FetchError::TooLarge { limit: 4096, .. })
        ));
        assert!(matches!(
            get("/endless").await,
            Err(FetchError::TooLarge { .. })
        ));
        assert!(matches!(
            get("/to-ftp").await,
            Err(FetchError::Transport { .. })
        ));
        let before = hits.load(Ordering::SeqCst);
        assert!(matches!(
            get("/loop").await,
            Err(FetchError::Transport { .. })
        ));
        // At most 5 redirects followed per attempt, 3 attempts.
        assert!(hits.load(Ordering::SeqCst) - before <= 3 * 6);
        assert!(matches!(
            get("/stall").await,
            Err(FetchError::Transport { .. })
        ));
        let before = hits.load(Ordering::SeqCst);
        assert!(matches!(
            get("/busy").await,
            Err(FetchError::Status { status: 503, .. })
        ));
        assert_eq!(
            hits.load(Ordering::SeqCst) - before,
            3,
            "503 is retried, 3 attempts"
        );
    }
}
