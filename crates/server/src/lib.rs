//! The dvrclip HTTP server, as a library and as the `dvrclip serve` binary.
//!
//! Rooms, by job (dependencies point down this list, never up):
//! - [`cli`]: the binary's command line;
//! - [`service`]: every request from its [`route`] to its response; the
//!   `tower::Service` an embedding router mounts; [`steer`]: in a cluster, which
//!   node answers it; [`publish_route`]: in a cluster, where an RTMP or SRT
//!   publish goes;
//! - [`api`] (the Gcore-compatible JSON API), [`public`] (clip, live and VOD links),
//!   [`ingest`] (HTTP uploads), [`ops`] (health, metrics), [`console`] (the browser
//!   clipping console's static files): the handlers;
//! - [`app`]: the shared state and its background tasks; [`demo`]: the built-in
//!   stream; [`vod`]: videos persisted from clips; [`mp4_cache`]: built clip MP4s,
//!   counted in the memory budget; [`mp4_prebuild`]: complete clips' master MP4s
//!   built before their first request; [`playlist_cache`]: rendered playlists, shared
//!   between polls; [`pullers`]: the streams pulled from an origin; [`cluster`]:
//!   this node's membership, claims, stream records and forwarding (with
//!   `--cluster-etcd`);
//! - [`http`]: plumbing that knows no route (accept loop, bodies, payload placement,
//!   send timeout, byte-range serving); [`auth`] (who may call the API),
//!   [`config`], [`error`], [`metrics`], [`heap`].
//!
//! `design/architecture.md` walks a chunk from the socket to a Range response.

pub mod api;
pub mod app;
pub mod archive;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod demo;
pub mod error;
pub mod heap;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod mp4_cache;
pub mod mp4_prebuild;
pub mod ops;
pub mod playlist_cache;
pub mod public;
pub mod publish_route;
pub mod pull_takeover;
pub mod pullers;
pub mod route;
pub mod service;
pub mod steer;
pub mod vod;

pub use app::App;
pub use config::Config;
pub use service::{Service, serve};
