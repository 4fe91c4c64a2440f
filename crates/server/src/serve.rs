//! The accept loop: HTTP/1.1 connections on a Tokio runtime, hyper's limits, one
//! tracing span per request, and graceful shutdown.
//!
//! `half_close(true)` matters: ffmpeg shuts its side of the socket right after the
//! last chunk of an upload without reading the answer; with hyper's default the
//! request would be dropped before the handler reads the body (measured: 1–3 of 13
//! uploads arrived without it, 13 of 13 with it).
//!
//! hyper's header-read timer runs from the moment a connection waits for a request,
//! so it also bounds how long an idle keep-alive connection stays open; a client that
//! stops reading a response is cut off by [`SendTimeout`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use crate::app::App;
use crate::send_timeout::SendTimeout;

/// What one open connection is counted for in the memory budget, bytes: hyper's
/// buffers and the connection's task. `scripts/connection_cost.py` measures RSS per
/// connection with 1,000 open: 12.4 KiB idle, 16.4 KiB with half a request head read,
/// 13.6 KiB kept alive after a request; the rest is headroom for read buffers that
/// uploads grow.
pub const CONNECTION_BYTES: u64 = 20 << 10;

/// Serves `listener` until `shutdown` resolves, then lets in-flight connections
/// finish for up to the configured grace period.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = app.config.limits.clone();
    let grace = app.config.shutdown_grace;
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
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let send_timeout = limits.send_timeout;
        let mut stop_rx = stop_rx.clone();
        // What an open connection holds (hyper's buffers, the task) is counted in the
        // memory budget for as long as it is open.
        let memory = app.engine.reserve_memory(CONNECTION_BYTES);
        connections.spawn(async move {
            let _slot = slot;
            let _memory = memory;
            let service = service_fn(move |req| handle(app.clone(), peer, req));
            let io = TokioIo::new(SendTimeout::new(stream, send_timeout));
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
    let drained = tokio::time::timeout(grace, async {
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

async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<crate::app::HttpResponse, Infallible> {
    let span = info_span!("request", method = %req.method(), path = %req.uri().path(), %peer);
    async move {
        let started = Instant::now();
        let resp = app.dispatch(req).await;
        let status = resp.status().as_u16();
        app.metrics.record_request(status);
        info!(
            status,
            micros = started.elapsed().as_micros() as u64,
            "done"
        );
        Ok(resp)
    }
    .instrument(span)
    .await
}
