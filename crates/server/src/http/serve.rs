//! The accept loop: HTTP/1.1 connections on a Tokio runtime, hyper's limits, a
//! bound on open connections, and graceful shutdown. What a request means is the
//! business of the per-connection service it is given.
//!
//! `half_close(true)` matters: ffmpeg shuts its side of the socket right after the
//! last chunk of an upload without reading the answer; with hyper's default the
//! request would be dropped before the handler reads the body (measured: 1–3 of 13
//! uploads arrived without it, 13 of 13 with it).
//!
//! hyper's header-read timer runs from the moment a connection waits for a request,
//! so it also bounds how long an idle keep-alive connection stays open; a client that
//! stops reading a response is cut off by [`SendTimeout`].
//!
//! Each connection's socket is a [`Spliced`]: response bytes that lie in frozen
//! payload mappings go out by page reference instead of a copy (`http::splice`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use super::HttpResponse;
use super::send_timeout::SendTimeout;
use super::splice::Spliced;

/// What one open connection is counted for in the memory budget, bytes: hyper's
/// buffers and the connection's task. `scripts/connection_cost.py` measures RSS per
/// connection with 1,000 open: 12.4 KiB idle, 16.4 KiB with half a request head read,
/// 13.6 KiB kept alive after a request; the rest is headroom for read buffers that
/// uploads grow.
pub const CONNECTION_BYTES: u64 = 20 << 10;

/// The limits of connections and their shutdown.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Request headers must arrive within this (also closes idle keep-alive
    /// connections).
    pub header_timeout: Duration,
    /// Most headers in one request.
    pub max_headers: usize,
    /// Open connections at most; past it the server stops accepting until one
    /// closes (the kernel's backlog holds the rest).
    pub max_connections: usize,
    /// A response write may find the socket full this long.
    pub send_timeout: Duration,
    /// In-flight connections get this long to finish at shutdown.
    pub grace: Duration,
}

/// Serves `listener` until `shutdown` resolves, then lets in-flight connections
/// finish for up to the grace period. `connect` makes each connection's service
/// (whatever it holds lives as long as the connection: a memory reservation).
pub async fn serve<F, S>(
    listener: TcpListener,
    limits: ConnectionLimits,
    mut connect: F,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    F: FnMut(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = HttpResponse, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .half_close(true)
        .keep_alive(true)
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.max_headers);
    let builder = Arc::new(builder);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        // At the connection limit, wait for one to close before accepting more.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = connect(peer);
        let builder = builder.clone();
        let send_timeout = limits.send_timeout;
        let mut stop_rx = stop_rx.clone();
        connections.spawn(async move {
            let _slot = slot;
            let io = TokioIo::new(SendTimeout::new(Spliced::new(stream), send_timeout));
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            tokio::select! {
                _ = &mut conn => {}
                _ = stop_rx.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    info!(open = connections.len(), "shutting down");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            left = connections.len(),
            "grace period over; closing connections"
        );
        connections.abort_all();
    }
    Ok(())
}
