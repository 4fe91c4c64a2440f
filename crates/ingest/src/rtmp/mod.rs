//! RTMP push (`rtmp://{host}:{port}/live/{ingest key}`, Gcore's `push_url`): OBS,
//! ffmpeg `-f flv`, hardware encoders. One publish feeds one rendition,
//! [`RENDITION`] (`rtmp`), through the CMAF fragmenter, so a clip of an RTMP stream
//! is the same kind of clip as one of an uploaded stream.
//!
//! Rooms: [`connection`] (sans I/O: handshake, commands, policy, caps), [`publish`]
//! (FLV tags → fragments → engine, no I/O), [`serve`] (the Tokio accept loop,
//! timeouts, memory reservation, counters), [`mod@pull`] (the client side: `play` from
//! an RTMP server into a [`Publish`], for `rtmp://` URIs of pulled streams); FLV tag
//! bodies are `crate::flv`'s.
//!
//! # Why `rml_rtmp`
//! Of the candidates (`rml_rtmp`, `scuffle-rtmp`, `rtmp-rs`), `rml_rtmp` 0.8 is
//! sans-IO: its `Handshake` and `ServerSession` take byte slices and return byte
//! vectors and events, so the fuzz target (`fuzz/fuzz_targets/rtmp.rs`) drives the
//! whole message path with no socket, and every byte it holds arrives through our
//! [`Connection::feed`], where we can bound it. Its session answers ffmpeg's command
//! sequence (`releaseStream`, `FCPublish`, `createStream`, `publish`,
//! `@setDataFrame`; `tests/rtmp.rs`). It carries no Enhanced RTMP itself, which costs
//! nothing: E-RTMP lives in the FLV tag bodies, which `crate::flv` parses.
//!
//! What its source (0.8.0, `src/chunk_io/deserializer.rs`,
//! `src/sessions/server/mod.rs`) does with hostile input, and what we bound:
//! - `ChunkDeserializer::get_next_message` appends every fed slice to an internal
//!   `BytesMut` and consumes a chunk only once whole; at the first chunk of a message
//!   it `reserve`s the message's full declared length (24-bit: up to 16 MiB) for the
//!   payload. `set_max_chunk_size` accepts anything up to 2^31 from the peer's
//!   SetChunkSize. Neither is capped by the crate. Resident memory is nevertheless at
//!   most what was fed since the last complete message, twice (buffer + payload; an
//!   untouched reservation is not resident), so [`Connection::feed`] closes the
//!   connection when more than [`ConnectionLimits::max_message_bytes`] (8 MiB) arrive
//!   without a message that raises an event: that caps any message length and chunk
//!   size a peer claims.
//! - Before a publish is accepted, at most
//!   [`ConnectionLimits::max_bytes_before_publish`] (64 KiB) are taken; the
//!   handshake is 3,073 bytes and connect/createStream/publish about 1 KiB.
//! - `previous_headers` is a map keyed by chunk stream id (at most 65,599 small
//!   entries); `active_streams` grows by one per `createStream`: commands are capped
//!   to 64 plus one per 64 KiB received.
//! - Arithmetic on peer values is unchecked: `length - current_payload_length` when a
//!   new type-0 header arrives mid-message with a shorter length, `timestamp -
//!   MAX_INITIAL_TIMESTAMP` on a short extended timestamp, and the `u32`
//!   acknowledgement counter. With overflow checks on (our release profile) these
//!   panic; every call into the crate is wrapped in `catch_unwind` and a panic closes
//!   the connection ([`RtmpError::ParserPanicked`]).
//! - Media events are raised only for a stream the session accepted as publishing,
//!   and each carries the app and key strings, which we accepted (`live` and a
//!   32-character key), so they cannot amplify.
//!
//! Per connection the budget counts [`serve::CONNECTION_BYTES`] plus what
//! [`Connection::held_bytes`] reports (the message in progress, twice, and the
//! fragmenter's samples), following it in 256 KiB steps through
//! `Engine::reserve_memory`.
//!
//! # Rules
//! `connect` must name the app `live`; `publish` names the stream by its ingest key
//! (resolved in constant time); a stream already published by another connection is
//! refused (one connection at a time, as Gcore), as is an inactive stream. Every
//! refusal, protocol error, cap or timeout (publish deadline 10 s, idle 15 s) closes
//! the connection with a log line and a counter; what the engine refused was never
//! stored. Wall time is anchored by the engine on arrival; each publish opens a
//! discontinuity (`publish`'s "Epochs").

pub mod connection;
pub mod publish;
pub mod pull;
pub mod serve;

pub use connection::{APP, Connection, ConnectionLimits, Publishers, RtmpError};
pub use publish::{Publish, PublishError, PublishStats, RENDITION};
pub use pull::{PullLimits, RtmpPullError, RtmpSource, pull};
pub use serve::{RtmpCounters, RtmpDoor, RtmpLimits};
#[cfg(test)]
mod tests;
