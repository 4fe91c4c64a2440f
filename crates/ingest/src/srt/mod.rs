//! SRT push (`srt://{host}:{port}?streamid={ingest key}`, Gcore's `push_url_srt`):
//! ffmpeg `-f mpegts srt://…`, OBS, hardware encoders, in SRT's live mode. One
//! caller feeds one rendition, [`RENDITION`] (`srt`), through the MPEG-TS demuxer
//! ([`crate::ts::TsPublish`]) and the CMAF fragmenter, so a clip of an SRT stream is
//! the same kind of clip as any other.
//!
//! Rooms: [`streamid`] (which key a caller names, pure), [`serve`] (the UDP socket,
//! `srt-tokio`'s listener, the access decision, supervision, counters), [`publish`]
//! (one accepted caller: messages → TS → engine, idle timeout, memory reservation),
//! [`mod@pull`] (calling out to a listening source for a pulled stream's `srt://` URI,
//! through the same `publish::receive`). No MPEG-TS is parsed here.
//!
//! # Why `srt-tokio`
//! The candidates were `srt-tokio` 0.4 (pure Rust, Tokio-native, the only maintained
//! Rust SRT stack) and libsrt (the reference, C++) through a binding: the Rust
//! bindings (`srt-rs` 0.2 over `libsrt-sys` 1.4) are unmaintained and target libsrt
//! 1.4, and libsrt would add an apt package to CI and C++ to the attack surface.
//! `srt-tokio` was tried first against the real sender this door exists for,
//! Debian 12's ffmpeg 5.1 with libsrt 1.5.1 (gnutls), and works; it is kept, with
//! the guards below.
//!
//! # What we found (ffmpeg 5.1.9 / libsrt 1.5.1 → `srt-tokio` 0.4.4 listener)
//! - ffmpeg connects with `-f mpegts "srt://127.0.0.1:PORT?streamid=KEY"`; the
//!   `streamid` arrives whole in the listener's connection request.
//! - Payload size: `srt-tokio` does write its *payload* size (`SRTO_PAYLOADSIZE`,
//!   1316 by default) into the handshake's MSS field, where libsrt puts the MTU
//!   (1500). libsrt 1.5.1 does not shrink its messages for it: with the listener's
//!   default (announcing 1316), ffmpeg's default 1316-byte messages and
//!   `payload_size=1456` messages both arrive whole (1316 and 1456 bytes), and a
//!   720p 4 Mb/s stream arrived frame-complete (ffprobe: 150 of 150 frames, 5 s).
//!   The 1272-byte limit reported (MSS 1316 − 44 bytes of headers) was not seen with
//!   this libsrt. We announce 1500 all the same ([`serve`]), libsrt's own value, so
//!   a libsrt that honours the MSS has nothing to shrink.
//! - Messages are not aligned on 188-byte TS packets when the sender's payload size
//!   is not a multiple of 188 (`payload_size=1456`): the demuxer takes any slicing.
//! - Passphrase: with the listener's passphrase and ffmpeg's `passphrase=` (AES,
//!   key length by `pbkeylen` or left to the caller) the stream arrives decrypted; a
//!   wrong passphrase or none is refused in the handshake (ffmpeg: "Input/output
//!   error"), and nothing is stored.
//!
//! # What `srt-tokio` does with hostile input, and what we guard
//! - It panics (`unimplemented!`) in the handshake when the caller's key length
//!   differs from a listener-wide one (ffmpeg with `pbkeylen=16` against a listener
//!   whose length is unset), and when a caller sends keying material to a listener
//!   without a passphrase. Both are reached only after our access decision said yes.
//!   The first is avoided: the key settings are given per caller, with the length it
//!   announced. The second cannot be seen before it happens (a caller that leaves its
//!   key length to the default announces none); it kills the listener's task, so the
//!   door supervises it: the request stream ending means the task ended, and the
//!   socket is bound again after a second ([`SrtCounters::listener_restarts`]).
//!   Publishes in progress end with it. A caller that announces a key length to a
//!   door without a passphrase is refused before that.
//! - Its listener keeps a session entry (about 1.4 KB, measured: 100,000 induction
//!   packets from as many loopback addresses grew the process by 134 MB) per source
//!   address that sends a packet, removed only when that session is refused or
//!   dropped, and never on a timer: a flood from spoofed addresses grows it without
//!   end, and so do callers that close while no packet follows. We cannot reach
//!   into that map; the door bounds it from its counters instead
//!   ([`serve::sessions_bound`]): past [`SrtLimits::max_sessions`] (50,000, about
//!   70 MB) the listener is replaced by a new one, which drops the callers connected
//!   to it (their encoders call again), or past a quarter of it when nobody is
//!   connected. Under a sustained flood the door is thus replaced again and again
//!   and callers may not stay connected, but memory stays bounded and the rest of
//!   the server is untouched (`dvrclip_srt_listener_recycles_total` counts it). The
//!   handshake's SYN cookie (SRT HSv5, induction/conclusion) keeps a spoofed source
//!   from getting further than that entry. Filtering a flood before it reaches the
//!   process (a rate limit on new UDP flows) is the network's job.
//! - Callers that finish the handshake are answered at once, each in its own task
//!   (the listener's task waits while its queue of 100 requests is full); past
//!   [`SrtLimits::max_connections`] they are refused (`SRT_REJX_OVERLOAD`).
//! - Per connection, SRT's receive buffer is capped ([`SrtLimits::receive_buffer`],
//!   1 MiB) and the budget counts [`PublishLimits::connection_bytes`] plus what the
//!   demuxer holds, following it in 256 KiB steps through `Engine::reserve_memory`.
//! - It warns through the `log` facade once per datagram it cannot parse; the
//!   binary keeps only its errors unless `RUST_LOG` names it (`srt_protocol=warn`).
//!
//! # Rules
//! The `streamid` names the stream by its ingest key (Gcore's shape, or SRT's
//! access-control `#!::r={key},m=publish`), resolved in constant time; a stream
//! already published by another connection through any push door is refused
//! (`SRT_REJX_CONFLICT`: one connection at a time, as Gcore), as is an inactive one
//! (`SRT_REJX_FORBIDDEN`) or an unknown key (`SRT_REJX_UNAUTHORIZED`). Each
//! connection starts a new discontinuity; wall time is anchored by the engine on
//! arrival. A publish silent for 15 s (no message, though SRT keep-alives may still
//! flow) is closed; SRT itself drops a peer silent for 5 s. Every refusal, error and
//! timeout is logged and counted in `/metrics` (`dvrclip_srt_*`); what the engine
//! refused was never stored.

pub mod publish;
pub mod pull;
pub mod serve;
pub mod streamid;

pub use publish::{PublishLimits, RENDITION};
pub use pull::{SrtPullError, SrtSource, pull};
pub use serve::{BadPassphrase, SrtCounters, SrtDoor, SrtLimits};
pub use streamid::{StreamIdError, ingest_key};
