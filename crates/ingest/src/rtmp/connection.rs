//! One RTMP connection, sans I/O: bytes from the socket in ([`Connection::feed`]),
//! bytes to write back out; the handshake and the chunk stream are `rml_rtmp`'s, the
//! policy (which app, which key, one publisher per key, the caps of `super`'s
//! module doc) is here, and so is the hand-off of media to [`Publish`].
//!
//! The key is resolved in the engine at the publish command, unless the connection
//! defers it ([`Connection::deferring`]: a server with a [`PublishRouter`](crate::door::PublishRouter)):
//! then the command waits in [`Connection::pending_publish`] until the caller
//! answers it with [`Connection::decide`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{Engine, StreamId, is_safe_name};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

use super::publish::{Publish, PublishError, PublishStats};
use crate::door::{Destination, FragmentSink, RouteRefusal};
use crate::publishers::Lease;
pub use crate::publishers::Publishers;

/// The only RTMP application: `rtmp://host:port/live/{ingest key}`.
pub const APP: &str = "live";

/// Caps on what one connection may make the server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Bytes a peer may send before its publish is accepted (handshake, connect,
    /// createStream, publish: about 4 KiB from ffmpeg and OBS).
    pub max_bytes_before_publish: u64,
    /// Bytes a peer may send without completing a message that raises an event:
    /// caps a message's length whatever chunk size or length its headers claim.
    pub max_message_bytes: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_bytes_before_publish: 64 << 10,
            max_message_bytes: 8 << 20,
        }
    }
}

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// Not an RTMP handshake.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The chunk stream or an AMF command does not parse.
    #[error("protocol: {0}")]
    Protocol(String),
    /// `rml_rtmp` panicked on the input (an arithmetic overflow on hostile headers).
    #[error("protocol: the RTMP parser gave up on this input")]
    ParserPanicked,
    /// More than [`ConnectionLimits::max_bytes_before_publish`].
    #[error("{0} bytes before a publish")]
    TooMuchBeforePublish(u64),
    /// More than [`ConnectionLimits::max_message_bytes`] without a complete message.
    #[error("a message over {0} bytes")]
    MessageTooLarge(u64),
    /// Control commands out of proportion with the media (createStream floods).
    #[error("too many commands")]
    TooManyCommands,
    /// `connect` to another application than [`APP`].
    #[error("unknown application {0:?}")]
    UnknownApp(String),
    /// A publish with a key that names no stream.
    #[error("unknown ingest key")]
    UnknownKey,
    /// The stream is deactivated.
    #[error("stream {0:?} is not active")]
    Inactive(StreamId),
    /// The server could not place the publish now.
    #[error("{0}")]
    Unplaced(String),
    /// Another connection publishes to this stream.
    #[error("stream {0:?} already has a publisher")]
    AlreadyPublishing(StreamId),
    /// A play request: this door only takes publishers.
    #[error("play is not served")]
    Play,
    /// The media was refused.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

enum State {
    Handshake(Box<Handshake>),
    Session(Box<ServerSession>),
}

/// One connection's protocol state.
pub struct Connection {
    engine: Arc<Engine>,
    publishers: Arc<Publishers>,
    limits: ConnectionLimits,
    state: State,
    received: u64,
    since_event: u64,
    commands: u64,
    publish: Option<(Publish, Lease, Arc<dyn FragmentSink>)>,
    defer: bool,
    pending: Option<(u32, String)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("received", &self.received)
            .field("publishing", &self.publishing())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection waiting for the client's handshake.
    pub fn new(engine: Arc<Engine>, publishers: Arc<Publishers>, limits: ConnectionLimits) -> Self {
        Connection {
            engine,
            publishers,
            limits,
            state: State::Handshake(Box::new(Handshake::new(PeerType::Server))),
            received: 0,
            since_event: 0,
            commands: 0,
            publish: None,
            defer: false,
            pending: None,
        }
    }

    /// A connection whose publish command waits for [`Connection::decide`].
    pub fn deferring(
        engine: Arc<Engine>,
        publishers: Arc<Publishers>,
        limits: ConnectionLimits,
    ) -> Self {
        Connection {
            defer: true,
            ..Connection::new(engine, publishers, limits)
        }
    }

    /// The key of a publish command waiting for [`Connection::decide`].
    pub fn pending_publish(&self) -> Option<&str> {
        self.pending.as_ref().map(|(_, k)| k.as_str())
    }

    /// Answers the waiting publish command with where it goes; appends the answer
    /// to `out`. A refusal closes the connection (after `out` is written).
    pub fn decide(
        &mut self,
        decided: Result<Destination, RouteRefusal>,
        out: &mut Vec<u8>,
    ) -> Result<(), RtmpError> {
        let Some((request_id, _)) = self.pending.take() else {
            return Ok(());
        };
        let State::Session(session) = &mut self.state else {
            return Ok(());
        };
        let protocol =
            |e: rml_rtmp::sessions::ServerSessionError| RtmpError::Protocol(e.to_string());
        let claimed = match decided {
            Ok(Destination::Local(stream)) => {
                if self.engine.stream(stream).is_ok_and(|s| s.active) {
                    let sink: Arc<dyn FragmentSink> = self.engine.clone();
                    self.publishers
                        .claim(stream)
                        .map(|l| (l, sink))
                        .ok_or(RtmpError::AlreadyPublishing(stream))
                } else {
                    Err(RtmpError::Inactive(stream))
                }
            }
            Ok(Destination::Sink(stream, sink)) => self
                .publishers
                .claim(stream)
                .map(|l| (l, sink))
                .ok_or(RtmpError::AlreadyPublishing(stream)),
            Err(RouteRefusal::UnknownKey) => Err(RtmpError::UnknownKey),
            Err(RouteRefusal::Inactive(s)) => Err(RtmpError::Inactive(s)),
            Err(e @ RouteRefusal::Unavailable(_)) => Err(RtmpError::Unplaced(e.to_string())),
        };
        match claimed {
            Ok((lease, sink)) => {
                self.publish = Some((Publish::new(lease.stream()), lease, sink));
                let r = session.accept_request(request_id).map_err(protocol)?;
                self.process(r, out)
            }
            Err(refused) => {
                let r = session
                    .reject_request(request_id, "NetStream.Publish.BadName", "refused")
                    .map_err(protocol)?;
                write_all(r, out);
                Err(refused)
            }
        }
    }

    /// The stream this connection publishes, once accepted.
    pub fn publishing(&self) -> Option<StreamId> {
        self.publish.as_ref().map(|(_, l, _)| l.stream())
    }

    /// What the publish did so far.
    pub fn stats(&self) -> Option<PublishStats> {
        self.publish.as_ref().map(|(p, _, _)| p.stats())
    }

    /// Bytes this connection may hold beside its socket buffers: what `rml_rtmp`
    /// buffers of a message in progress (its chunk buffer and the message's payload,
    /// each at most what arrived since the last message) and the fragmenter's samples.
    pub fn held_bytes(&self) -> u64 {
        2 * self.since_event
            + self
                .publish
                .as_ref()
                .map_or(0, |(p, _, _)| p.held_bytes() as u64)
    }

    /// Takes bytes read from the socket; appends what to write back to `out`. An
    /// error closes the connection (after `out` is written: a refusal's answer).
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), RtmpError> {
        self.received += bytes.len() as u64;
        self.since_event += bytes.len() as u64;
        if self.publish.is_none() && self.received > self.limits.max_bytes_before_publish {
            return Err(RtmpError::TooMuchBeforePublish(self.received));
        }
        if self.since_event > self.limits.max_message_bytes {
            return Err(RtmpError::MessageTooLarge(self.limits.max_message_bytes));
        }
        let results = match &mut self.state {
            State::Handshake(h) => {
                let r = catch_unwind(AssertUnwindSafe(|| h.process_bytes(bytes)))
                    .map_err(|_| RtmpError::ParserPanicked)?
                    .map_err(|e| RtmpError::Handshake(e.to_string()))?;
                match r {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        out.extend_from_slice(&response_bytes);
                        return Ok(());
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        out.extend_from_slice(&response_bytes);
                        let (mut session, mut first) =
                            ServerSession::new(ServerSessionConfig::new())
                                .map_err(|e| RtmpError::Protocol(e.to_string()))?;
                        let more = handle(&mut session, &remaining_bytes)?;
                        self.state = State::Session(Box::new(session));
                        first.extend(more);
                        first
                    }
                }
            }
            State::Session(s) => handle(s, bytes)?,
        };
        self.process(results, out)
    }

    /// The publish or the connection ended: what the publish holds becomes its last
    /// fragments, and the stream's publisher slot is freed. Returns the publish's
    /// final stats, if there was one.
    pub fn finish(&mut self) -> Result<Option<PublishStats>, RtmpError> {
        let Some((mut p, lease, sink)) = self.publish.take() else {
            return Ok(None);
        };
        let flushed = p.finish(&*sink);
        drop(lease);
        flushed?;
        Ok(Some(p.stats()))
    }

    fn process(
        &mut self,
        results: Vec<ServerSessionResult>,
        out: &mut Vec<u8>,
    ) -> Result<(), RtmpError> {
        let mut pending = std::collections::VecDeque::from(results);
        while let Some(r) = pending.pop_front() {
            let event = match r {
                ServerSessionResult::OutboundResponse(p) => {
                    out.extend_from_slice(&p.bytes);
                    continue;
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => continue,
                ServerSessionResult::RaisedEvent(e) => e,
            };
            self.since_event = 0;
            match event {
                ServerSessionEvent::AudioDataReceived {
                    data, timestamp, ..
                } => self.media(false, &data, timestamp.value)?,
                ServerSessionEvent::VideoDataReceived {
                    data, timestamp, ..
                } => self.media(true, &data, timestamp.value)?,
                other => {
                    // Commands are few; media pays for them (a createStream flood
                    // would grow the session's stream map).
                    self.commands += 1;
                    if self.commands > 64 + self.received / (64 << 10) {
                        return Err(RtmpError::TooManyCommands);
                    }
                    pending.extend(self.command(other, out)?);
                }
            }
        }
        Ok(())
    }

    fn media(&mut self, video: bool, data: &Bytes, ms: u32) -> Result<(), RtmpError> {
        // rml_rtmp raises media only for a stream it accepted as publishing.
        let Some((p, _, sink)) = self.publish.as_mut() else {
            return Ok(());
        };
        // A sink that gave up since the last fragment closes the publish now.
        sink.closed().map_err(PublishError::from)?;
        if video {
            p.video(&**sink, data, ms)?;
        } else {
            p.audio(&**sink, data, ms)?;
        }
        Ok(())
    }

    fn command(
        &mut self,
        event: ServerSessionEvent,
        out: &mut Vec<u8>,
    ) -> Result<Vec<ServerSessionResult>, RtmpError> {
        let State::Session(session) = &mut self.state else {
            return Ok(Vec::new());
        };
        let protocol =
            |e: rml_rtmp::sessions::ServerSessionError| RtmpError::Protocol(e.to_string());
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.trim_end_matches('/') != APP {
                    let r = session
                        .reject_request(request_id, "NetConnection.Connect.Rejected", "unknown app")
                        .map_err(protocol)?;
                    write_all(r, out);
                    return Err(RtmpError::UnknownApp(app_name));
                }
                session.accept_request(request_id).map_err(protocol)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                let claimed = if self.publish.is_some() || self.pending.is_some() {
                    Err(RtmpError::Protocol(
                        "a second publish on one connection".into(),
                    ))
                } else if self.defer && is_safe_name(&stream_key) {
                    self.pending = Some((request_id, stream_key));
                    return Ok(Vec::new());
                } else {
                    claim(&self.engine, &self.publishers, &stream_key)
                };
                let refused = match claimed {
                    Ok(lease) => {
                        let stream = lease.stream();
                        let sink: Arc<dyn FragmentSink> = self.engine.clone();
                        self.publish = Some((Publish::new(stream), lease, sink));
                        return session.accept_request(request_id).map_err(protocol);
                    }
                    Err(e) => e,
                };
                let r = session
                    .reject_request(request_id, "NetStream.Publish.BadName", "refused")
                    .map_err(protocol)?;
                write_all(r, out);
                Err(refused)
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.finish()?;
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamRequested { .. } => Err(RtmpError::Play),
            _ => Ok(Vec::new()),
        }
    }
}

/// Resolves the key (constant-time comparison in the engine) and takes the stream's
/// publisher slot.
fn claim(engine: &Engine, publishers: &Arc<Publishers>, key: &str) -> Result<Lease, RtmpError> {
    let stream = is_safe_name(key)
        .then(|| engine.stream_by_ingest_key(key))
        .flatten()
        .ok_or(RtmpError::UnknownKey)?;
    if !engine.stream(stream).is_ok_and(|s| s.active) {
        return Err(RtmpError::Inactive(stream));
    }
    publishers
        .claim(stream)
        .ok_or(RtmpError::AlreadyPublishing(stream))
}

fn handle(
    session: &mut ServerSession,
    bytes: &[u8],
) -> Result<Vec<ServerSessionResult>, RtmpError> {
    catch_unwind(AssertUnwindSafe(|| session.handle_input(bytes)))
        .map_err(|_| RtmpError::ParserPanicked)?
        .map_err(|e| RtmpError::Protocol(e.to_string()))
}

fn write_all(results: Vec<ServerSessionResult>, out: &mut Vec<u8>) {
    for r in results {
        if let ServerSessionResult::OutboundResponse(p) = r {
            out.extend_from_slice(&p.bytes);
        }
    }
}
