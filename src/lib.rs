//! dvrclip cuts instant clips out of live fragmented-MP4 streams.
//!
//! This crate is the public facade: it re-exports the library API of the workspace.
//! - [`fmp4`]: parse CMAF init and media segments, write progressive MP4.
//! - [`engine`]: streams, rings, cutter, clips.
//! - [`hls`]: playlists for clips.
//! - [`ingest`]: media into the engine (named-file uploads, RTMP push, HLS pull).
//! - [`spool`]: what a restart must not lose (chunk payloads as files, a journal).
//! - [`cluster`]: what the nodes of a cluster agree on, kept in etcd.
//! - [`server`]: the HTTP side as a library: the Gcore API, HTTP ingest and the
//!   public links as a `tower::Service` over an engine the host owns
//!   ([`server::Service`], `examples/embed_axum.rs`), and the `dvrclip serve` binary.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use dvrclip_cluster as cluster;
pub use dvrclip_engine as engine;
pub use dvrclip_fmp4 as fmp4;
pub use dvrclip_hls as hls;
pub use dvrclip_ingest as ingest;
pub use dvrclip_server as server;
pub use dvrclip_spool as spool;
