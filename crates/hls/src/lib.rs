//! HLS playlists for clips (RFC 8216): the master playlist over every rendition and
//! one media playlist per rendition, VOD when complete, EVENT while recording.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
