//! The `dvrclip serve` HTTP server: ingest from encoders, the Gcore-compatible JSON
//! API, public clip links (HLS and progressive MP4), metrics and health.

pub mod api;
pub mod app;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod heap;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod payload;
pub mod public;
pub mod ranged;
pub mod routes;
pub mod send_timeout;
pub mod serve;
pub mod vod;
pub mod wire;
