//! The `dvrclip serve` HTTP server: ingest from encoders, the Gcore-compatible JSON
//! API, public clip links (HLS and progressive MP4), metrics and health.

pub mod ranged;
