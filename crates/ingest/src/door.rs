//! What the push doors (RTMP, SRT) and their media paths share, written once: where
//! a publish's fragments go ([`FragmentSink`]: the local engine, or a sink the
//! server supplies), who decides which stream a key publishes to ([`PublishRouter`],
//! for a server whose engine may not know the stream yet: a cluster), a publish's
//! fragments stored as chunks, and a door's counters as Prometheus text.
//!
//! The seam is this small so the doors stay one implementation: a door ends its
//! protocol and runs the fragmenter the same way whatever the sink, and knows
//! nothing of how a server places streams (etcd, HTTP forwarding).

use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use dvrclip_engine::{Engine, StreamId};
use dvrclip_fmp4::fragment::Fragment;

/// Why a sink refused an init, a break or a fragment; the publish is closed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The local engine refused it.
    #[error(transparent)]
    Engine(#[from] dvrclip_engine::Error),
    /// A sink elsewhere refused it or could not keep up (its reason).
    #[error("fragments not delivered: {0}")]
    Elsewhere(String),
}

/// Where a publish's fragments go: the local engine, or another node (the server's
/// forwarding sink). Calls never wait on I/O: a sink that cannot take a fragment
/// now refuses it, which closes the publish (memory stays bounded).
pub trait FragmentSink: Send + Sync + std::fmt::Debug {
    /// `init` becomes `rendition`'s init segment (an epoch starts).
    fn push_init(&self, stream: StreamId, rendition: &str, init: Bytes) -> Result<(), SinkError>;
    /// The next fragment opens a discontinuity even when the init is unchanged.
    fn break_discontinuity(&self, stream: StreamId, rendition: &str) -> Result<(), SinkError>;
    /// One fragment (`moof` + `mdat`) of `rendition`.
    fn push_segment(
        &self,
        stream: StreamId,
        rendition: &str,
        fragment: Bytes,
    ) -> Result<(), SinkError>;
    /// Refuses once the sink has given up on its own between fragments (its
    /// destination failed: another node hung or refused), so the door closes the
    /// publish now rather than at its next fragment. Asked on every media message:
    /// it must cost next to nothing. The engine never gives up so.
    fn closed(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl FragmentSink for Engine {
    fn push_init(&self, stream: StreamId, rendition: &str, init: Bytes) -> Result<(), SinkError> {
        self.push_init_bytes(stream, rendition, init)?;
        Ok(())
    }

    fn break_discontinuity(&self, stream: StreamId, rendition: &str) -> Result<(), SinkError> {
        Engine::break_discontinuity(self, stream, rendition)?;
        Ok(())
    }

    fn push_segment(
        &self,
        stream: StreamId,
        rendition: &str,
        fragment: Bytes,
    ) -> Result<(), SinkError> {
        self.push_segment_bytes(stream, rendition, None, fragment)?;
        Ok(())
    }
}

/// A shared sink is the sink (callers holding an `Arc<Engine>` pass it as is).
impl<T: FragmentSink + ?Sized> FragmentSink for Arc<T> {
    fn push_init(&self, stream: StreamId, rendition: &str, init: Bytes) -> Result<(), SinkError> {
        (**self).push_init(stream, rendition, init)
    }

    fn break_discontinuity(&self, stream: StreamId, rendition: &str) -> Result<(), SinkError> {
        (**self).break_discontinuity(stream, rendition)
    }

    fn push_segment(
        &self,
        stream: StreamId,
        rendition: &str,
        fragment: Bytes,
    ) -> Result<(), SinkError> {
        (**self).push_segment(stream, rendition, fragment)
    }

    fn closed(&self) -> Result<(), SinkError> {
        (**self).closed()
    }
}

/// Where a publish goes, as a [`PublishRouter`] decided.
#[derive(Debug)]
pub enum Destination {
    /// Into the local engine, which holds this stream.
    Local(StreamId),
    /// Into this sink (another node owns the stream).
    Sink(StreamId, Arc<dyn FragmentSink>),
}

/// Why a router refused a publish.
#[derive(Debug, thiserror::Error)]
pub enum RouteRefusal {
    /// No stream has this key.
    #[error("unknown ingest key")]
    UnknownKey,
    /// The stream is deactivated.
    #[error("stream {0:?} is not active")]
    Inactive(StreamId),
    /// The decision could not be made now (the cluster's store away).
    #[error("publish cannot be placed now: {0}")]
    Unavailable(String),
}

/// What a router's decision is awaited as.
pub type RouteFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Destination, RouteRefusal>> + Send + 'a>>;

/// Decides, for a publish's ingest key, which stream it names, whether it may be
/// published, and where its fragments go. Without one a door resolves the key in
/// its own engine (one node).
pub trait PublishRouter: Send + Sync + std::fmt::Debug {
    /// The destination of a publish with `key` (already checked safe).
    fn route<'a>(&'a self, key: &'a str) -> RouteFuture<'a>;
}

/// Stores each of `fragments` as a chunk of `rendition`, each copied once into the one
/// buffer the engine keeps, and calls `stored` with its length; stops at the first
/// the engine refuses.
pub(crate) fn store_fragments(
    sink: &dyn FragmentSink,
    stream: StreamId,
    rendition: &str,
    fragments: Vec<Fragment>,
    mut stored: impl FnMut(u64),
) -> Result<(), SinkError> {
    for f in fragments {
        let bytes = f.to_bytes();
        let len = bytes.len() as u64;
        sink.push_segment(stream, rendition, bytes)?;
        stored(len);
    }
    Ok(())
}

/// One counter or gauge of a door: name, type, help, value.
pub(crate) type MetricRow<'a> = (&'a str, &'a str, &'a str, &'a AtomicU64);

/// `rows` in Prometheus' text format.
pub(crate) fn render_metrics(rows: &[MetricRow<'_>]) -> String {
    let mut out = String::new();
    for (name, kind, help, v) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            v.load(Relaxed)
        );
    }
    out
}
