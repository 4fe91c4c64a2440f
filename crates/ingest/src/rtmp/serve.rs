//! The RTMP accept loop: one Tokio task per connection, reading into a fixed 16 KiB
//! buffer and feeding [`Connection`]; the timeouts, the connection cap, the memory
//! reservation and the counters. Dropping the future (or `shutdown` resolving) closes
//! every connection; what a publish held is flushed into the engine first only when
//! the peer closes, not at shutdown. With a [`PublishRouter`] (a cluster), a
//! publish's key is resolved by it, within the publish deadline, and the publish
//! goes where it says (the engine, or its sink).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use dvrclip_engine::{Engine, MemoryReservation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use super::connection::{Connection, ConnectionLimits, Publishers, RtmpError};
use super::publish::PublishStats;
use crate::door::{PublishRouter, RouteRefusal};

/// What a connection is counted for in the memory budget before it holds any media:
/// its task, its 16 KiB read buffer, `rml_rtmp`'s session and handshake state.
pub const CONNECTION_BYTES: u64 = 64 << 10;
const READ_BUFFER: usize = 16 << 10;
/// The reservation follows what a connection holds in steps of this, bytes.
const RESERVATION_STEP: u64 = 256 << 10;

/// The door's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtmpLimits {
    /// Per-connection byte caps.
    pub connection: ConnectionLimits,
    /// The handshake, connect and publish must be done within this.
    pub publish_deadline: Duration,
    /// A connection that sends nothing for this long is closed (a stalled publisher).
    pub idle: Duration,
    /// A write the peer does not read for this long closes the connection.
    pub send_timeout: Duration,
    /// Open connections at most; past it new ones are closed at once.
    pub max_connections: usize,
}

impl Default for RtmpLimits {
    fn default() -> Self {
        RtmpLimits {
            connection: ConnectionLimits::default(),
            publish_deadline: Duration::from_secs(10),
            idle: Duration::from_secs(15),
            send_timeout: Duration::from_secs(15),
            max_connections: 1000,
        }
    }
}

/// Counters of the door, for `/metrics`.
#[derive(Debug, Default)]
pub struct RtmpCounters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections now open.
    pub open: AtomicU64,
    /// Publishes accepted.
    pub publishes: AtomicU64,
    /// Connections closed for an error (protocol, limits, refused key or media).
    pub errors: AtomicU64,
    /// Connections closed for a timeout (handshake/publish deadline, idle).
    pub timeouts: AtomicU64,
    /// Bytes received.
    pub bytes: AtomicU64,
    /// Fragments stored.
    pub fragments: AtomicU64,
}

impl RtmpCounters {
    /// The counters in Prometheus text exposition format 0.0.4.
    pub fn render_metrics(&self) -> String {
        let rows: &[crate::door::MetricRow<'_>] = &[
            (
                "dvrclip_rtmp_connections_total",
                "counter",
                "RTMP connections accepted.",
                &self.connections,
            ),
            (
                "dvrclip_rtmp_publishes_total",
                "counter",
                "RTMP publishes accepted.",
                &self.publishes,
            ),
            (
                "dvrclip_rtmp_errors_total",
                "counter",
                "RTMP connections closed for an error: protocol, a cap, a refused key or media.",
                &self.errors,
            ),
            (
                "dvrclip_rtmp_timeouts_total",
                "counter",
                "RTMP connections closed for a timeout: publish deadline, idle, send.",
                &self.timeouts,
            ),
            (
                "dvrclip_rtmp_bytes_total",
                "counter",
                "Bytes received on RTMP connections.",
                &self.bytes,
            ),
            (
                "dvrclip_rtmp_fragments_total",
                "counter",
                "Fragments stored from RTMP publishes.",
                &self.fragments,
            ),
            (
                "dvrclip_rtmp_connections",
                "gauge",
                "RTMP connections open.",
                &self.open,
            ),
        ];
        crate::door::render_metrics(rows)
    }
}

/// The RTMP door: what every connection shares.
#[derive(Debug)]
pub struct RtmpDoor {
    engine: Arc<Engine>,
    /// The streams being published.
    pub publishers: Arc<Publishers>,
    /// Counters.
    pub counters: RtmpCounters,
    limits: RtmpLimits,
    router: Option<Arc<dyn PublishRouter>>,
}

impl RtmpDoor {
    /// A door into `engine`.
    pub fn new(engine: Arc<Engine>, limits: RtmpLimits) -> Arc<Self> {
        Self::sharing(engine, limits, Arc::default())
    }

    /// A door into `engine` whose publishers are also another door's (SRT): one
    /// publisher per stream whichever door it comes through.
    pub fn sharing(
        engine: Arc<Engine>,
        limits: RtmpLimits,
        publishers: Arc<Publishers>,
    ) -> Arc<Self> {
        Self::routed(engine, limits, publishers, None)
    }

    /// A door sharing `publishers` whose publishes go where `router` says (the
    /// engine or a sink of the server's); without one, as [`RtmpDoor::sharing`].
    pub fn routed(
        engine: Arc<Engine>,
        limits: RtmpLimits,
        publishers: Arc<Publishers>,
        router: Option<Arc<dyn PublishRouter>>,
    ) -> Arc<Self> {
        Arc::new(RtmpDoor {
            engine,
            publishers,
            counters: RtmpCounters::default(),
            limits,
            router,
        })
    }

    /// Accepts connections on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (socket, peer) = tokio::select! {
                _ = &mut shutdown => break,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "rtmp accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            while tasks.try_join_next().is_some() {}
            if tasks.len() >= self.limits.max_connections {
                warn!(%peer, "rtmp connection refused: at the connection limit");
                self.counters.errors.fetch_add(1, Relaxed);
                continue;
            }
            let _ = socket.set_nodelay(true);
            self.counters.connections.fetch_add(1, Relaxed);
            let door = Arc::clone(&self);
            tasks.spawn(async move {
                door.counters.open.fetch_add(1, Relaxed);
                let result = door.connection(socket).await;
                door.counters.open.fetch_sub(1, Relaxed);
                match result {
                    Ok(Some(stats)) => info!(%peer, ?stats, "rtmp publish ended"),
                    Ok(None) => info!(%peer, "rtmp connection closed"),
                    Err(Closed::Timeout(what)) => {
                        door.counters.timeouts.fetch_add(1, Relaxed);
                        warn!(%peer, what, "rtmp connection closed: timeout");
                    }
                    Err(Closed::Error(e)) => {
                        door.counters.errors.fetch_add(1, Relaxed);
                        warn!(%peer, error = %e, "rtmp connection closed");
                    }
                    Err(Closed::Io(e)) => info!(%peer, error = %e, "rtmp connection lost"),
                }
            });
        }
        tasks.shutdown().await;
        Ok(())
    }

    /// Serves one connection. However it ends (the peer closing, an error, a
    /// timeout, a reset), what its publish holds is flushed into the engine: those
    /// samples arrived whole.
    async fn connection(&self, socket: TcpStream) -> Result<Option<PublishStats>, Closed> {
        let (engine, publishers) = (Arc::clone(&self.engine), Arc::clone(&self.publishers));
        let mut conn = match self.router {
            Some(_) => Connection::deferring(engine, publishers, self.limits.connection),
            None => Connection::new(engine, publishers, self.limits.connection),
        };
        let mut last = None;
        let pumped = self.pump(&mut conn, socket, &mut last).await;
        let finished = conn.finish();
        let final_stats = finished.as_ref().ok().copied().flatten();
        if let Some(s) = final_stats {
            let before = last.map_or(0, |l| l.fragments);
            let flushed = s.fragments.saturating_sub(before);
            self.counters.fragments.fetch_add(flushed, Relaxed);
        }
        pumped?;
        finished.map_err(Closed::Error)?;
        Ok(final_stats.or(last))
    }

    async fn pump(
        &self,
        conn: &mut Connection,
        mut socket: TcpStream,
        last: &mut Option<PublishStats>,
    ) -> Result<(), Closed> {
        let mut reservation = self.engine.reserve_memory(CONNECTION_BYTES);
        let mut reserved = CONNECTION_BYTES;
        let deadline = tokio::time::Instant::now() + self.limits.publish_deadline;
        let mut buf = vec![0u8; READ_BUFFER];
        let mut out = Vec::new();
        let mut fragments = 0;
        loop {
            let publishing = conn.publishing().is_some();
            let wait = if publishing {
                tokio::time::Instant::now() + self.limits.idle
            } else {
                deadline
            };
            let n = match tokio::time::timeout_at(wait, socket.read(&mut buf)).await {
                Err(_) if publishing => return Err(Closed::Timeout("idle")),
                Err(_) => return Err(Closed::Timeout("publish deadline")),
                Ok(r) => r.map_err(Closed::Io)?,
            };
            if n == 0 {
                return Ok(());
            }
            self.counters.bytes.fetch_add(n as u64, Relaxed);
            let mut fed = conn.feed(&buf[..n], &mut out);
            if fed.is_ok()
                && let (Some(key), Some(router)) = (conn.pending_publish(), &self.router)
            {
                let decided = tokio::time::timeout_at(deadline, router.route(key))
                    .await
                    .unwrap_or_else(|_| Err(RouteRefusal::Unavailable("timed out".into())));
                fed = conn.decide(decided, &mut out);
            }
            if !out.is_empty() {
                let write = socket.write_all(&out);
                match tokio::time::timeout(self.limits.send_timeout, write).await {
                    Err(_) => return Err(Closed::Timeout("send")),
                    Ok(r) => r.map_err(Closed::Io)?,
                }
                out.clear();
            }
            fed.map_err(Closed::Error)?;
            if !publishing && conn.publishing().is_some() {
                self.counters.publishes.fetch_add(1, Relaxed);
            }
            if let Some(s) = conn.stats() {
                *last = Some(s);
                self.counters
                    .fragments
                    .fetch_add(s.fragments.saturating_sub(fragments), Relaxed);
                fragments = s.fragments;
            }
            // The reservation follows what the connection holds, in steps.
            let need = (CONNECTION_BYTES + conn.held_bytes()).div_ceil(RESERVATION_STEP)
                * RESERVATION_STEP;
            if need.max(CONNECTION_BYTES) != reserved {
                reserved = need.max(CONNECTION_BYTES);
                reservation = swap(&self.engine, reservation, reserved);
            }
        }
    }
}

fn swap(engine: &Engine, old: MemoryReservation, bytes: u64) -> MemoryReservation {
    drop(old);
    engine.reserve_memory(bytes)
}

enum Closed {
    Timeout(&'static str),
    Error(RtmpError),
    Io(std::io::Error),
}
