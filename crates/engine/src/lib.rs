//! The dvrclip engine: streams, per-rendition rings of chunks, wall-clock mapping,
//! the keyframe-aligned cutter, clips and their store with expiry. Usable as a library
//! by a media server with no HTTP at all: no I/O and no async runtime live here (the
//! only async parts are `tokio::sync::watch` waits on recording clips).
//!
//! ```no_run
//! use dvrclip_engine::{ClipRequest, Engine, EngineConfig, StreamSettings};
//! # fn run(init: dvrclip_fmp4::InitSegment, seg: dvrclip_fmp4::MediaSegment) -> Result<(), dvrclip_engine::Error> {
//! let engine = Engine::new(EngineConfig::default());
//! let stream = engine.create_stream(StreamSettings::named("cam"))?.id;
//! engine.push_init(stream, "media_0", init)?;
//! engine.push_segment(stream, "media_0", Some("seg1.m4s"), seg)?;
//! let clip = engine.create_clip(stream, ClipRequest { duration_secs: 10, ..Default::default() })?;
//! for chunk in clip.view().reference().map(|r| r.chunks()).unwrap_or_default() {
//!     println!("{} {:.3}s {}", chunk.start_utc(), chunk.duration_secs(), chunk.bytes().len());
//! }
//! # Ok(()) }
//! ```
//!
//! Module map: [`time`](WallTime) (wall time, clocks), `ring` (one rendition's chunks:
//! the one-writer/many-readers structure and its costs), `cut` (the cutter's rules),
//! `clip` (clips, views, waiting), `engine` (streams, budget, deadlines), `dvr` (what
//! the DVR holds), [`persist`] (the hook a store hears commits through, and what
//! it hands back to [`Engine::restore`]), `memory` (exact accounting of payload bytes), `mp4` (a clip
//! rendition as a progressive MP4), [`secret`] (random keys, constant-time comparison,
//! safe names).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod chunk;
mod clip;
mod cut;
mod dvr;
mod engine;
mod error;
mod lost;
mod memory;
mod mp4;
pub mod persist;
mod ring;
pub mod secret;
mod stream;
#[cfg(test)]
mod testutil;
mod time;

pub use chunk::Chunk;
pub use clip::{Clip, ClipId, ClipProgress, ClipRendition, ClipRequest, ClipState, ClipView};
pub use cut::FOLLOW_TOLERANCE_MICROS;
pub use dvr::{DvrDiscontinuity, DvrGap, DvrInfo, DvrRange, RenditionDvr};
pub use engine::{Engine, EngineConfig, TickReport, VideoIds};
pub use error::{Error, Result};
pub use lost::{LostClip, MEDIA_LOST};
pub use memory::{MemoryReservation, MemoryStats};
pub use ring::{AnchorSource, PushOutcome};
pub use secret::is_safe_name;
pub use stream::{RenditionInfo, StreamId, StreamInfo, StreamPatch, StreamSettings};
pub use time::{Clock, MICROS_PER_SEC, ManualClock, SystemClock, WallTime, micros_from_ticks};

/// The parsed segment types the engine consumes, re-exported for convenience.
pub use dvrclip_fmp4::{InitSegment, MediaSegment};

/// What an embedding server needs, in one `use dvrclip_engine::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Chunk, Clip, ClipId, ClipRendition, ClipRequest, ClipState, ClipView, Clock, Engine,
        EngineConfig, Error, StreamId, StreamPatch, StreamSettings, SystemClock, WallTime,
    };
}
