//! The SRT listener: one UDP socket, `srt-tokio`'s multiplexing listener on it, the
//! access decision for each caller (its `streamid`'s key, the connection cap, the
//! passphrase) and one Tokio task per accepted caller ([`super::publish`]). The
//! listener is supervised: if `srt-tokio`'s task ends under us (it panics on some
//! hostile handshakes, see `super`'s module doc), the socket is bound again and the
//! door keeps taking callers. It is also replaced when the sessions it may hold
//! (one per source address that ever sent a packet, [`sessions_bound`]) pass
//! [`SrtLimits::max_sessions`]: the one bound on its memory we can enforce from
//! outside.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use dvrclip_engine::{Engine, StreamId, is_safe_name};
use futures_util::StreamExt;
use srt_protocol::listener::ListenerStatistics;
use srt_protocol::settings::KeySettings;
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::{
    ByteCount, KeySize, ListenerOptions, PacketSize, Passphrase, SocketOptions,
};
use srt_tokio::{ConnectionRequest, SrtListener};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use super::publish::{Ended, PublishLimits, run};
use super::streamid::ingest_key;
use crate::door::{Destination, FragmentSink, PublishRouter, RouteRefusal};
use crate::publishers::{Lease, Publishers};

/// How long a router may take to place a caller.
const ROUTE_DEADLINE: Duration = Duration::from_secs(10);

/// The door's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtLimits {
    /// Callers connected at most (publishing or in their handshake's last step); past
    /// it new callers are refused.
    pub max_connections: u64,
    /// What one publish may hold and how long it may be silent.
    pub publish: PublishLimits,
    /// Bytes of SRT's receive buffer per connection (packets waiting for a lost one
    /// or for their time to play): what the memory budget counts per connection.
    pub receive_buffer: u64,
    /// The receiver's latency (SRTO_RCVLATENCY); the larger of it and the caller's
    /// is used. 120 ms is SRT's default.
    pub latency: Duration,
    /// SRT's own peer idle timeout (SRTO_PEERIDLETIMEO): a caller from which no
    /// packet at all arrives for this long is dropped, which frees its stream for a
    /// restarted encoder.
    pub peer_idle: Duration,
    /// How long the listener waits before binding its socket again after its task
    /// ended.
    pub restart_delay: Duration,
    /// Sessions `srt-tokio`'s listener may hold ([`sessions_bound`]; about 1.4 KB
    /// each, measured) before it is replaced by a new one, which drops the callers
    /// connected to it (their encoders call again). A quarter of it is enough when
    /// no caller is connected, since then a replacement costs nothing.
    pub max_sessions: u64,
}

impl Default for SrtLimits {
    fn default() -> Self {
        SrtLimits {
            max_connections: 256,
            publish: PublishLimits::default(),
            receive_buffer: 1 << 20,
            latency: Duration::from_millis(120),
            peer_idle: Duration::from_secs(5),
            restart_delay: Duration::from_secs(1),
            max_sessions: 50_000,
        }
    }
}

/// A passphrase SRT cannot use (it must be 10 to 79 bytes).
#[derive(Debug, thiserror::Error)]
#[error("the SRT passphrase must be 10 to 79 bytes long, not {0}")]
pub struct BadPassphrase(pub usize);

/// Counters of the door, for `/metrics`.
#[derive(Debug, Default)]
pub struct SrtCounters {
    /// Callers that finished the handshake and asked to connect.
    pub requests: AtomicU64,
    /// Callers refused: an unknown key, an inactive stream, a stream already
    /// published, a bad `streamid`, encryption asked of a door without a passphrase,
    /// the connection cap.
    pub refused: AtomicU64,
    /// Publishes accepted.
    pub publishes: AtomicU64,
    /// Accepted callers whose connection then failed (a passphrase mismatch ends
    /// here) or whose media was refused.
    pub errors: AtomicU64,
    /// Publishes closed for a timeout (silence).
    pub timeouts: AtomicU64,
    /// Times the listener's task ended and its socket was bound again.
    pub listener_restarts: AtomicU64,
    /// Times the listener was replaced for holding too many sessions.
    pub listener_recycles: AtomicU64,
    /// Bytes received in messages.
    pub bytes: AtomicU64,
    /// Fragments stored.
    pub fragments: AtomicU64,
    /// Connections open (a gauge).
    pub open: AtomicU64,
}

impl SrtCounters {
    /// The counters in Prometheus text exposition format 0.0.4.
    pub fn render_metrics(&self) -> String {
        let rows: &[crate::door::MetricRow<'_>] = &[
            (
                "dvrclip_srt_requests_total",
                "counter",
                "SRT callers that asked to connect (handshake done).",
                &self.requests,
            ),
            (
                "dvrclip_srt_refused_total",
                "counter",
                "SRT callers refused: key, stream busy or inactive, streamid, encryption, connection cap.",
                &self.refused,
            ),
            (
                "dvrclip_srt_publishes_total",
                "counter",
                "SRT publishes accepted.",
                &self.publishes,
            ),
            (
                "dvrclip_srt_errors_total",
                "counter",
                "SRT connections that failed after acceptance: passphrase mismatch, refused media.",
                &self.errors,
            ),
            (
                "dvrclip_srt_timeouts_total",
                "counter",
                "SRT publishes closed for silence.",
                &self.timeouts,
            ),
            (
                "dvrclip_srt_listener_restarts_total",
                "counter",
                "Times the SRT listener's task ended and its socket was bound again.",
                &self.listener_restarts,
            ),
            (
                "dvrclip_srt_listener_recycles_total",
                "counter",
                "Times the SRT listener was replaced for holding too many sessions (a handshake flood).",
                &self.listener_recycles,
            ),
            (
                "dvrclip_srt_bytes_total",
                "counter",
                "Bytes received in SRT messages.",
                &self.bytes,
            ),
            (
                "dvrclip_srt_fragments_total",
                "counter",
                "Fragments stored from SRT publishes.",
                &self.fragments,
            ),
            (
                "dvrclip_srt_connections",
                "gauge",
                "SRT connections open.",
                &self.open,
            ),
        ];
        crate::door::render_metrics(rows)
    }
}

/// Why a caller is refused before its connection opens.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error(transparent)]
    StreamId(#[from] super::streamid::StreamIdError),
    #[error("unknown ingest key")]
    UnknownKey,
    #[error("stream {0:?} is not active")]
    Inactive(StreamId),
    #[error("stream {0:?} already has a publisher")]
    AlreadyPublishing(StreamId),
    #[error("the caller asks for encryption and no passphrase is configured")]
    Encryption,
    #[error("at the connection limit")]
    Full,
    #[error("the publish cannot be placed now: {0}")]
    Unplaced(String),
}

impl Refusal {
    /// The rejection code the caller sees (SRT's server codes, `SRT_REJX_*`).
    fn reason(&self) -> RejectReason {
        RejectReason::Server(match self {
            Refusal::StreamId(_) => ServerRejectReason::BadRequest,
            Refusal::UnknownKey => ServerRejectReason::Unauthorized,
            Refusal::Inactive(_) => ServerRejectReason::Forbidden,
            Refusal::AlreadyPublishing(_) => ServerRejectReason::Conflict,
            Refusal::Encryption => ServerRejectReason::Unacceptable,
            Refusal::Full => ServerRejectReason::Overload,
            Refusal::Unplaced(_) => ServerRejectReason::Down,
        })
    }
}

/// The SRT door: what every connection shares.
#[derive(Debug)]
pub struct SrtDoor {
    engine: Arc<Engine>,
    publishers: Arc<Publishers>,
    /// Counters.
    pub counters: SrtCounters,
    limits: SrtLimits,
    passphrase: Option<Passphrase>,
    router: Option<Arc<dyn PublishRouter>>,
}

impl SrtDoor {
    /// A door into `engine`. `publishers` may be another door's (RTMP), so a stream
    /// has one publisher whichever door it uses. With a passphrase, callers must
    /// encrypt with it (AES, any key length they choose); without, callers that
    /// encrypt are refused.
    pub fn new(
        engine: Arc<Engine>,
        limits: SrtLimits,
        passphrase: Option<&str>,
        publishers: Arc<Publishers>,
    ) -> Result<Arc<Self>, BadPassphrase> {
        Self::routed(engine, limits, passphrase, publishers, None)
    }

    /// As [`SrtDoor::new`], its publishes going where `router` says (the engine or a
    /// sink of the server's); without one, as [`SrtDoor::new`].
    pub fn routed(
        engine: Arc<Engine>,
        limits: SrtLimits,
        passphrase: Option<&str>,
        publishers: Arc<Publishers>,
        router: Option<Arc<dyn PublishRouter>>,
    ) -> Result<Arc<Self>, BadPassphrase> {
        let passphrase = passphrase
            .map(|p| Passphrase::try_from(p.to_owned()).map_err(|_| BadPassphrase(p.len())))
            .transpose()?;
        Ok(Arc::new(SrtDoor {
            engine,
            publishers,
            counters: SrtCounters::default(),
            limits,
            passphrase,
            router,
        }))
    }

    /// Binds the door's UDP socket (port 0: the OS chooses); its `local_addr` is
    /// what `push_url_srt` names. Done before the door exists, so the server knows
    /// the port before it starts.
    pub async fn bind(at: SocketAddr, limits: &SrtLimits) -> std::io::Result<UdpSocket> {
        srt_tokio::bind_socket(&socket_options(at, limits)).await
    }

    /// Takes callers on `socket` until `shutdown` resolves; then every connection is
    /// closed. What a publish held is flushed into the engine when its caller closes,
    /// goes silent or is refused, not at shutdown (its task is dropped), as RTMP's.
    pub async fn serve(
        self: Arc<Self>,
        socket: UdpSocket,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let at = socket.local_addr()?;
        let mut socket = Some(socket);
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let bound = match socket.take() {
                Some(s) => s,
                None => match Self::bind(at, &self.limits).await {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(%at, error = %e, "srt listener: binding again failed");
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(self.limits.restart_delay) => continue,
                        }
                    }
                },
            };
            let options = ListenerOptions::with(at, socket_options(at, &self.limits))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let (mut listener, mut incoming): (SrtListener, _) =
                SrtListener::bind_with_socket(options, bound).await?;
            let mut statistics = listener.statistics().clone();
            let sessions = loop {
                let request = tokio::select! {
                    _ = &mut shutdown => {
                        tasks.shutdown().await;
                        return Ok(());
                    }
                    r = incoming.incoming().next() => r,
                    Some(s) = statistics.next() => {
                        let sessions = sessions_bound(&s);
                        let open = self.counters.open.load(Relaxed);
                        if too_many(sessions, open, self.limits.max_sessions) {
                            break Some(sessions);
                        }
                        continue;
                    }
                };
                let Some(request) = request else { break None };
                while tasks.try_join_next().is_some() {}
                let door = Arc::clone(&self);
                // Each answer in its own task: the listener's task waits on a full
                // request queue, and an accept waits on the listener's task.
                tasks.spawn(async move { door.caller(request).await });
            };
            let Some(sessions) = sessions else {
                // The request stream ends only when the listener's task does.
                self.counters.listener_restarts.fetch_add(1, Relaxed);
                warn!(%at, "srt listener task ended; binding its socket again");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(self.limits.restart_delay) => {}
                }
                continue;
            };
            // Dropping the listener ends its task (and its session map); the request
            // stream ends with it, and then its socket is free to bind again.
            self.counters.listener_recycles.fetch_add(1, Relaxed);
            warn!(%at, sessions, "srt listener holds too many sessions (a handshake flood?); replacing it");
            drop(listener);
            let ended = async { while incoming.incoming().next().await.is_some() {} };
            let _ = tokio::time::timeout(Duration::from_secs(5), ended).await;
        }
        tasks.shutdown().await;
        Ok(())
    }

    /// Answers one caller and, when accepted, runs its publish to its end.
    async fn caller(self: Arc<Self>, request: ConnectionRequest) {
        self.counters.requests.fetch_add(1, Relaxed);
        let peer = request.remote();
        let open = self.counters.open.fetch_add(1, Relaxed) + 1;
        let _open = OpenGuard(&self.counters);
        let decided = if open > self.limits.max_connections {
            Err(Refusal::Full)
        } else {
            self.decide(&request).await
        };
        let (lease, sink) = match decided {
            Ok(decided) => decided,
            Err(refusal) => {
                self.counters.refused.fetch_add(1, Relaxed);
                // The streamid is not logged: it carries a secret key.
                warn!(%peer, error = %refusal, "srt caller refused");
                let _ = request.reject(refusal.reason()).await;
                return;
            }
        };
        let stream = lease.stream();
        // Per caller, with the key length it announced: `srt-tokio` panics when a
        // listener-wide length differs from the caller's.
        let keys = self.passphrase.clone().map(|passphrase| KeySettings {
            key_size: request.key_size(),
            passphrase,
        });
        let socket = match request.accept(keys).await {
            Ok(s) => s,
            Err(e) => {
                // The handshake failed after our yes: a wrong passphrase, or the
                // caller went away.
                self.counters.errors.fetch_add(1, Relaxed);
                warn!(%peer, %stream, error = %e, "srt connection failed after acceptance (passphrase mismatch?)");
                return;
            }
        };
        self.counters.publishes.fetch_add(1, Relaxed);
        info!(%peer, %stream, "srt publish started");
        match run(
            &self.engine,
            &*sink,
            &self.counters,
            &self.limits.publish,
            lease,
            socket,
        )
        .await
        {
            Ok(stats) => info!(%peer, %stream, ?stats, "srt publish ended"),
            Err(Ended::Idle(stats)) => {
                self.counters.timeouts.fetch_add(1, Relaxed);
                warn!(%peer, %stream, ?stats, "srt publish closed: silent too long");
            }
            Err(Ended::Refused(e)) => {
                self.counters.errors.fetch_add(1, Relaxed);
                warn!(%peer, %stream, error = %e, "srt publish closed: media refused");
            }
        }
    }

    /// The access decision: the key names an active stream nobody publishes, and
    /// encryption is asked only of a door that has a passphrase; with a router, the
    /// stream and where its fragments go are the router's (within the publish
    /// deadline of RTMP's default, 10 s).
    async fn decide(
        &self,
        request: &ConnectionRequest,
    ) -> Result<(Lease, Arc<dyn FragmentSink>), Refusal> {
        let streamid = request.stream_id().map_or("", |s| s.as_str());
        let key = ingest_key(streamid)?;
        if self.passphrase.is_none() && request.key_size() != KeySize::Unspecified {
            return Err(Refusal::Encryption);
        }
        let local: Arc<dyn FragmentSink> = self.engine.clone();
        if let Some(router) = &self.router {
            if !is_safe_name(key) {
                return Err(Refusal::UnknownKey);
            }
            let routed = tokio::time::timeout(ROUTE_DEADLINE, router.route(key))
                .await
                .unwrap_or_else(|_| Err(RouteRefusal::Unavailable("timed out".into())));
            let (stream, sink) = match routed {
                Ok(Destination::Local(stream)) => {
                    if !self.engine.stream(stream).is_ok_and(|s| s.active) {
                        return Err(Refusal::Inactive(stream));
                    }
                    (stream, local)
                }
                Ok(Destination::Sink(stream, sink)) => (stream, sink),
                Err(RouteRefusal::UnknownKey) => return Err(Refusal::UnknownKey),
                Err(RouteRefusal::Inactive(s)) => return Err(Refusal::Inactive(s)),
                Err(RouteRefusal::Unavailable(why)) => return Err(Refusal::Unplaced(why)),
            };
            let lease = self
                .publishers
                .claim(stream)
                .ok_or(Refusal::AlreadyPublishing(stream))?;
            return Ok((lease, sink));
        }
        let stream = is_safe_name(key)
            .then(|| self.engine.stream_by_ingest_key(key))
            .flatten()
            .ok_or(Refusal::UnknownKey)?;
        if !self.engine.stream(stream).is_ok_and(|s| s.active) {
            return Err(Refusal::Inactive(stream));
        }
        let lease = self
            .publishers
            .claim(stream)
            .ok_or(Refusal::AlreadyPublishing(stream))?;
        Ok((lease, local))
    }
}

/// An upper bound on the sessions `srt-tokio`'s listener holds, from its counters:
/// a session is made by a packet it did not hand to an open connection, and leaves
/// when refused or dropped. A drop can be counted once more than its session for
/// each caller that got to our access decision (`cx_inbound`), hence the term.
pub(super) fn sessions_bound(s: &ListenerStatistics) -> u64 {
    s.rx_packets
        .saturating_sub(s.delegated_packets)
        .saturating_sub(s.cx_rejected.saturating_add(s.cx_dropped))
        .saturating_add(s.cx_inbound)
}

/// Whether a listener holding up to `sessions` sessions, with `open` callers, is
/// to be replaced.
fn too_many(sessions: u64, open: u64, max: u64) -> bool {
    sessions > max || (open == 0 && sessions > max / 4)
}

/// The listener's socket options.
fn socket_options(at: SocketAddr, limits: &SrtLimits) -> SocketOptions {
    let mut o = SocketOptions::default();
    o.connect.local = at;
    // The kernel's buffer in front of every connection: a few hundred ms of a
    // few streams (Linux caps it at net.core.rmem_max).
    o.connect.udp_recv_buffer_size = ByteCount(4 << 20);
    // `srt-tokio` announces this in the handshake's MSS field, which libsrt reads
    // as the MTU: 1500 (libsrt's own default), not the 1316 payload it sends by
    // default (module doc, "What we found").
    o.sender.max_payload_size = PacketSize(1500);
    o.receiver.buffer_size = ByteCount(limits.receive_buffer);
    o.receiver.latency = limits.latency;
    o.session.peer_idle_timeout = limits.peer_idle;
    o
}

/// Counts a connection out of the gauge however its task ends.
struct OpenGuard<'a>(&'a SrtCounters);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_bound_follows_the_listener_counters() {
        let flood = ListenerStatistics {
            rx_packets: 10_000,
            ..ListenerStatistics::default()
        };
        assert_eq!(sessions_bound(&flood), 10_000);
        // Three callers: 4 handshake packets each, 1,000 media packets handed on,
        // one refused, two dropped after closing.
        let callers = ListenerStatistics {
            rx_packets: 12 + 1_000,
            delegated_packets: 1_000,
            cx_inbound: 3,
            cx_rejected: 1,
            cx_dropped: 2,
            ..ListenerStatistics::default()
        };
        assert_eq!(sessions_bound(&callers), 12);
        assert!(!too_many(12, 2, 100));
        assert!(
            too_many(30, 0, 100),
            "a quarter is enough with nobody connected"
        );
        assert!(!too_many(30, 1, 100));
        assert!(too_many(101, 5, 100));
    }
}
