//! One accepted SRT caller: its messages (MPEG-TS, 1316 bytes each by default, any
//! slicing accepted) into [`TsPublish`], the idle timeout, and the memory reservation
//! following what the connection holds. The stream's publisher slot ([`Lease`]) is
//! held until what the publish held has been flushed into the engine.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use dvrclip_engine::{Engine, StreamId};
use futures_util::StreamExt;
use srt_tokio::SrtSocket;

use super::serve::SrtCounters;
use crate::door::FragmentSink;
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
    sink: &dyn FragmentSink,
    counters: &SrtCounters,
    limits: &PublishLimits,
    lease: Lease,
    mut socket: SrtSocket,
) -> Result<TsStats, Ended> {
    let (stats, ended) = receive(
        engine,
        sink,
        lease.stream(),
        &mut socket,
        limits,
        |bytes, fragments| {
            counters.bytes.fetch_add(bytes, Relaxed);
            counters.fragments.fetch_add(fragments, Relaxed);
        },
    )
    .await;
    drop(lease);
    // Tells the caller (SRT's shutdown) without waiting out a gone peer.
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close_and_finish()).await;
    match ended {
        Received::Closed => Ok(stats),
        Received::Idle => Err(Ended::Idle(stats)),
        Received::Refused(e) => Err(Ended::Refused(e)),
    }
}

/// How [`receive`] ended.
#[derive(Debug)]
pub(super) enum Received {
    /// The peer closed, or SRT gave up on it (its peer idle timeout).
    Closed,
    /// No message within [`PublishLimits::idle`].
    Idle,
    /// The engine or the fragmenter refused the media.
    Refused(TsError),
}

/// Feeds `socket`'s messages to a new [`TsPublish`] of `stream` (after a
/// discontinuity: a new connection opens one even when its init and clock carry on
/// from the last) until the peer closes, goes silent or the media is refused, with
/// the connection counted in the budget; then flushes what it holds. `seen` gets the
/// bytes of each message and the fragments stored since the last call. Shared by a
/// caller pushing to the listener ([`run`]) and a pull calling out
/// ([`super::pull`]).
pub(super) async fn receive(
    engine: &Engine,
    sink: &dyn FragmentSink,
    stream: StreamId,
    socket: &mut SrtSocket,
    limits: &PublishLimits,
    mut seen: impl FnMut(u64, u64),
) -> (TsStats, Received) {
    let mut ts = TsPublish::new(stream, RENDITION);
    let _ = sink.break_discontinuity(stream, RENDITION);
    let base = limits.connection_bytes;
    let mut reserved = base;
    let mut reservation = engine.reserve_memory(reserved);
    let mut fragments = 0;
    let mut ended = Received::Closed;
    loop {
        let message = match tokio::time::timeout(limits.idle, socket.next()).await {
            Err(_) => {
                ended = Received::Idle;
                break;
            }
            Ok(None | Some(Err(_))) => break,
            Ok(Some(Ok((_, bytes)))) => bytes,
        };
        // A sink that gave up since the last fragment closes the publish now.
        if let Err(e) = sink.closed() {
            ended = Received::Refused(e.into());
            break;
        }
        let fed = ts.feed(sink, &message);
        let now = ts.stats().fragments;
        seen(message.len() as u64, now.saturating_sub(fragments));
        fragments = now;
        if let Err(e) = fed {
            ended = Received::Refused(e);
            break;
        }
        let need = (base + ts.held_bytes() as u64).div_ceil(RESERVATION_STEP) * RESERVATION_STEP;
        if need.max(base) != reserved {
            reserved = need.max(base);
            drop(reservation);
            reservation = engine.reserve_memory(reserved);
        }
    }
    let finished = ts.finish(sink);
    let stats = ts.stats();
    seen(0, stats.fragments.saturating_sub(fragments));
    drop(reservation);
    match (ended, finished) {
        (Received::Closed | Received::Idle, Err(e)) => (stats, Received::Refused(e)),
        (ended, _) => (stats, ended),
    }
}
