//! The dvrclip engine: streams, per-rendition rings of chunks, wall-clock mapping,
//! the keyframe-aligned cutter, clips and their store with expiry, VOD persistence.
//! Usable as a library by a media server with no HTTP at all.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
