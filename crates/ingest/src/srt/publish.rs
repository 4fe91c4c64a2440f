//! One accepted SRT caller: its messages (MPEG-TS, 1316 bytes each by default, any
//! slicing accepted) into [`TsPublish`], the idle timeout, and the memory reservation
//! following what the connection holds. The stream's publisher slot ([`Lease`]) is
//! held until what the publish held has been flushed into the engine.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use dvrclip_engine::Engine;
use futures_util::StreamExt;
use srt_tokio::SrtSocket;

use super::serve::SrtCounters;
use crate::publishers::Lease;
use crate::ts::{TsError, TsPublish, TsStats};

/// The rendition an SRT publish feeds: one per publish, the encoder's own stream.
pub const RENDITION: &str = "srt";

/// The reservation follows what a connection holds in steps of this, bytes.
const RESERVATION_STEP: u64 = 256 << 10;

/// What one publish may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishLimits {
    /// A publish that sends no message for this long is closed (a stalled encoder
    /// that still answers SRT's keep-alives).
    pub idle: Duration,
    /// What a connection is counted for in the memory budget before it holds any
    /// media: SRT's receive buffer with its per-packet overhead, the packet queue
    /// between the listener and the connection, the task.
    pub connection_bytes: u64,
}

impl Default for PublishLimits {
    fn default() -> Self {
        PublishLimits {
            idle: Duration::from_secs(15),
            connection_bytes: (3 << 20) / 2 + (256 << 10),
        }
    }
}

/// How a publish ended other than by its caller closing.
#[derive(Debug)]
pub(super) enum Ended {
    /// No message within [`PublishLimits::idle`].
    Idle(TsStats),
    /// The engine or the fragmenter refused the media.
    Refused(TsError),
}

/// Runs one publish until its caller closes, goes silent, or its media is refused.
/// However it ends, what [`TsPublish`] holds is flushed first.
pub(super) async fn run(
    engine: &Engine,
    counters: &SrtCounters,
    limits: &PublishLimits,
    lease: Lease,
    mut socket: SrtSocket,
) -> Result<TsStats, Ended> {
    let stream = lease.stream();
    let mut ts = TsPublish::new(stream, RENDITION);
    // A new connection (an encoder restarting) opens a discontinuity even when its
    // init and clock carry on from the last one.
    let _ = engine.break_discontinuity(stream, RENDITION);
    let base = limits.connection_bytes;
    let mut reserved = base;
    let mut reservation = engine.reserve_memory(reserved);
    let mut fragments = 0;
    let mut idle = false;
    let mut refused = None;
    loop {
        let message = match tokio::time::timeout(limits.idle, socket.next()).await {
            Err(_) => {
                idle = true;
                break;
            }
            // The caller closed, or SRT gave up on it (its peer idle timeout).
            Ok(None | Some(Err(_))) => break,
            Ok(Some(Ok((_, bytes)))) => bytes,
        };
        counters.bytes.fetch_add(message.len() as u64, Relaxed);
        if let Err(e) = ts.feed(engine, &message) {
            refused = Some(e);
            break;
        }
        let now = ts.stats().fragments;
        counters
            .fragments
            .fetch_add(now.saturating_sub(fragments), Relaxed);
        fragments = now;
        let need = (base + ts.held_bytes() as u64).div_ceil(RESERVATION_STEP) * RESERVATION_STEP;
        if need.max(base) != reserved {
            reserved = need.max(base);
            drop(reservation);
            reservation = engine.reserve_memory(reserved);
        }
    }
    let finished = ts.finish(engine);
    let stats = ts.stats();
    counters
        .fragments
        .fetch_add(stats.fragments.saturating_sub(fragments), Relaxed);
    drop(lease);
    drop(reservation);
    // Tells the caller (SRT's shutdown) without waiting out a gone peer.
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close_and_finish()).await;
    match (refused, finished) {
        (Some(e), _) | (None, Err(e)) => Err(Ended::Refused(e)),
        (None, Ok(())) if idle => Err(Ended::Idle(stats)),
        (None, Ok(())) => Ok(stats),
    }
}
